# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device a capture names by a route instead of by its name (node side, stdlib only).

Path-only discovery reads one entry node; the other node on the path is not read before its
captures start. Its captures say which device they want as ``{"route_to": IP}`` - the device of
this node's own route to that address (``ip -j route get``, so policy rules and WireGuard's own
table count) - plus ``"local": true`` for a pod's veth, which must be a direct route.

A pod behind a bridge (Flannel's ``cni0``) is routed to the bridge, not to its veth: the veth is
the bridge port its MAC (from the bridge's neighbour table) was learned on (the bridge's fdb).
When either entry is missing the capture stays on the bridge and the note says so.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import ipaddress
import json

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni
from ansible_collections.hoptrace.k8s.plugins.module_utils._bounded import LC_ENV


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


def is_bridge(link_text):
    """True when ``ip -j -d link show dev X`` output is a bridge."""
    try:
        data = json.loads(link_text or '[]')
    except ValueError:
        return False
    return bool(data) and isinstance(data[0], dict) and (data[0].get('linkinfo') or {}).get('info_kind') == 'bridge'


def bridge_port(address, bridge, neigh_text, fdb_text, node):
    """``(port or bridge, note or None)`` for the pod ``address`` behind ``bridge`` from the JSON of
    ``ip -j neigh show dev BRIDGE`` and ``bridge -j fdb show br BRIDGE``."""
    try:
        neigh = ni.neigh_from_json(json.loads(neigh_text or '[]'))
        ports = ni.bridge_ports_from_json(json.loads(fdb_text or '[]'), bridge)
    except (ValueError, AttributeError, TypeError):
        neigh, ports = {}, {}
    mac = neigh.get(address)
    if not mac:
        return bridge, ('%s has no neighbour entry for the pod %s on %s yet (ip neigh show dev %s): capturing on %s '
                        "itself, which sees the pod's traffic to other nodes but not the pod's veth"
                        % (node, address, bridge, bridge, bridge))
    port = ports.get(mac.lower())
    if not port:
        return bridge, ("%s's %s has not learned the pod %s's MAC %s on a port yet (bridge fdb show br %s): capturing "
                        "on %s itself, which sees the pod's traffic to other nodes but not the pod's veth"
                        % (node, bridge, address, mac.lower(), bridge, bridge))
    return port, None


def _run_json(module, argv):
    rc, out, dummy = module.run_command(argv, environ_update=LC_ENV)
    return out if rc == 0 else ''


def resolve(module, select, node):
    """``(device, note)`` of ``select`` on this node (runs ``ip -j route get``; for a pod behind a
    bridge also its neighbour and fdb lookups), or ValueError. ``note`` is None unless a pod's
    veth could not be found behind its bridge."""
    select = check_select(select)
    ip_bin = module.get_bin_path('ip')
    if not ip_bin:
        raise ValueError('ip (iproute2) is not installed on %s: install iproute2' % node)
    rc, out, err = module.run_command([ip_bin, '-j', 'route', 'get', select['route_to']], environ_update=LC_ENV)
    if rc != 0:
        raise ValueError('%s has no route to %s: %s' % (node, select['route_to'], (err or out).strip()))
    dev = device_for(select, route_decision(out), node)
    # a pod's own veth (cali*, lxc*, ...) is the answer; anything else may be the pod's bridge
    if not select['local'] or dev.startswith(ni.WORKLOAD_PREFIXES):
        return dev, None
    if not is_bridge(_run_json(module, [ip_bin, '-j', '-d', 'link', 'show', 'dev', dev])):
        return dev, None
    bridge_bin = module.get_bin_path('bridge')
    neigh = _run_json(module, [ip_bin, '-j', 'neigh', 'show', 'dev', dev])
    fdb = _run_json(module, [bridge_bin, '-j', 'fdb', 'show', 'br', dev]) if bridge_bin else ''
    return bridge_port(select['route_to'], dev, neigh, fdb, node)
