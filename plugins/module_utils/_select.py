# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device a capture names by a route instead of by its name (node side, stdlib only).

Path-only discovery reads one entry node; the other node on the path is not read before its
captures start. Its captures say which device they want as ``{"route_to": IP}`` - the device of
this node's own route to that address (``ip -j route get``, so policy rules and WireGuard's own
table count) - plus ``"local": true`` for a pod's veth, which must be a direct route.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import ipaddress
import json

LC_ENV = {'LC_ALL': 'C', 'LANG': 'C'}


def check_select(select):
    """The selector with a canonical address, or ValueError naming what to fix."""
    if not isinstance(select, dict) or set(select) - {'route_to', 'local'} or not select.get('route_to'):
        raise ValueError('select must be {route_to: IP} with an optional local: true; got %r' % (select,))
    try:
        address = str(ipaddress.ip_address(str(select['route_to']).strip()))
    except ValueError:
        raise ValueError('select route_to %r is not an IP address' % (select['route_to'],))
    return {'route_to': address, 'local': bool(select.get('local'))}


def route_decision(text):
    """``{dev, gateway, type}`` from ``ip -j route get`` output, or None."""
    try:
        data = json.loads(text or '[]')
    except ValueError:
        return None
    if not data or not isinstance(data[0], dict):
        return None
    raw = data[0]
    return {'dev': raw.get('dev'), 'gateway': raw.get('gateway'), 'type': raw.get('type') or 'unicast'}


def device_for(select, decision, node):
    """The device ``decision`` (this node's route for the selector's address) gives, or ValueError."""
    address = select['route_to']
    if decision is None or not decision.get('dev') or decision['type'] != 'unicast':
        raise ValueError('%s has no usable route to %s (%s): ip route get %s on %s'
                         % (node, address, decision['type'] if decision else 'no route', address, node))
    if select['local'] and (decision.get('gateway') or decision['dev'] == 'lo'):
        raise ValueError('%s is not a pod on %s: %s routes it %s dev %s; is the pod still running there?'
                         % (address, node, node, 'via %s' % decision['gateway'] if decision.get('gateway') else 'to',
                            decision['dev']))
    return decision['dev']


def resolve(module, select, node):
    """The device of ``select`` on this node (runs ``ip -j route get``), or ValueError."""
    select = check_select(select)
    ip_bin = module.get_bin_path('ip')
    if not ip_bin:
        raise ValueError('ip (iproute2) is not installed on %s: install iproute2' % node)
    rc, out, err = module.run_command([ip_bin, '-j', 'route', 'get', select['route_to']], environ_update=LC_ENV)
    if rc != 0:
        raise ValueError('%s has no route to %s: %s' % (node, select['route_to'], (err or out).strip()))
    return device_for(select, route_decision(out), node)
