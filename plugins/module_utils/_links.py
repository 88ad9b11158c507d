# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: interface drop counters, neighbour states and routes of a node (node side, stdlib only).

Parsers of ``ip -s -j link show`` (MTU and the rx/tx ``errors``/``dropped`` counters of the hop
interfaces), ``ip -j neigh show`` (the entries that are FAILED or INCOMPLETE: a next hop that does
not answer ARP/ND), ``ip -j addr show`` (the node's own addresses, to name the node an ICMP error
came from) and ``ip -j route get`` (what the kernel does with an address: a device, or the
error of a blackhole, unreachable or prohibit route), with the blackhole/unreachable/prohibit route
that covers it from ``ip -j route show table all``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import ipaddress
import json

LINK_COUNTERS = (('rx', 'errors'), ('rx', 'dropped'), ('tx', 'errors'), ('tx', 'dropped'))
BAD_NEIGH = ('FAILED', 'INCOMPLETE')
# ip route get's error for each route type that refuses an address
ROUTE_ERRORS = {'Invalid argument': 'blackhole', 'No route to host': 'unreachable', 'Permission denied': 'prohibit',
                'Network is unreachable': 'no route'}
REFUSING = ('blackhole', 'unreachable', 'prohibit')


def _json(text):
    try:
        return json.loads(text or '[]')
    except ValueError:
        return []


def parse_links(text, interfaces):
    """``{iface: {"mtu": n, "rx_errors": n, "rx_dropped": n, "tx_errors": n, "tx_dropped": n}}`` of the
    interfaces named in ``interfaces`` from ``ip -s -j link show`` output."""
    wanted = set(interfaces)
    out = {}
    for link in _json(text):
        name = link.get('ifname') if isinstance(link, dict) else None
        if name not in wanted:
            continue
        stats = link.get('stats64') or link.get('stats') or {}
        entry = {'mtu': link.get('mtu')}
        for way, what in LINK_COUNTERS:
            value = (stats.get(way) or {}).get(what)
            if isinstance(value, int):
                entry['%s_%s' % (way, what)] = value
        out[name] = entry
    return out


def parse_addresses(text):
    """The node's own addresses from ``ip -j addr show`` (global and link scope; loopback's left out), sorted."""
    out = set()
    for link in _json(text):
        if not isinstance(link, dict):
            continue
        for info in link.get('addr_info') or []:
            if isinstance(info, dict) and info.get('local') and info.get('scope') != 'host':
                out.add(info['local'])
    return sorted(out)


def parse_neigh(text, interfaces=None):
    """``[{"dst", "dev", "state"}]``: the FAILED / INCOMPLETE entries of ``ip -j neigh show`` (on ``interfaces`` when given)."""
    wanted = set(interfaces or [])
    out = []
    for entry in _json(text):
        if not isinstance(entry, dict):
            continue
        states = entry.get('state') or []
        if isinstance(states, str):
            states = [states]
        bad = [s for s in states if s in BAD_NEIGH]
        if not bad or (wanted and entry.get('dev') not in wanted):
            continue
        out.append({'dst': entry.get('dst'), 'dev': entry.get('dev'), 'state': bad[0]})
    return out


def parse_route_get(rc, out, err):
    """What ``ip -j route get ADDR`` said: ``{"type": "unicast"|..., "dev", "gateway"}`` or ``{"error": kind, "message"}``."""
    if rc == 0:
        routes = _json(out)
        route = routes[0] if routes and isinstance(routes[0], dict) else {}
        return dict((k, route[k]) for k in ('type', 'dev', 'gateway', 'prefsrc') if route.get(k) is not None)
    message = (err or out or '').strip().splitlines()[-1:] or ['']
    text = message[0].replace('RTNETLINK answers: ', '').strip()
    return {'error': ROUTE_ERRORS.get(text, 'error'), 'message': text}


def refusing_route(text, address):
    """The most specific blackhole/unreachable/prohibit route of ``ip -j route show table all`` covering
    ``address``: ``"blackhole 172.17.25.192/26 table main"``, or None."""
    addr = ipaddress.ip_address(address)
    best = None
    for route in _json(text):
        if not isinstance(route, dict) or route.get('type') not in REFUSING:
            continue
        dst = route.get('dst')
        try:
            net = ipaddress.ip_network(dst if dst and dst != 'default' else ('0.0.0.0/0' if addr.version == 4 else '::/0'),
                                       strict=False)
        except ValueError:
            continue
        if net.version != addr.version or addr not in net:
            continue
        if best is None or net.prefixlen > best[0].prefixlen:
            best = (net, route)
    if best is None:
        return None
    net, route = best
    table = route.get('table')
    return '%s %s%s' % (route['type'], net, (' table %s' % table) if table and table != 'main' else '')
