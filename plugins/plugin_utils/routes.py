# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route tables as route_info returns them (``ip -j route`` shape, see docs/internals.md):
parsing pasted text and longest-prefix lookup, the way the kernel picks a route.

``lookup_route`` walks the tables in rule order (``local``, ``main``, ``default`` unless told
otherwise); inside a table the longest prefix wins, then the lowest metric; ``throw`` moves on
to the next table; ``blackhole``/``unreachable``/``prohibit`` are returned as matches (their
``type`` says packets die there). Multipath routes keep their ``nexthops``.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import (
    IpRouteTextError,
    parse_ip_route,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import (
    AddressError,
    ip_address,
    ip_network,
)

DEFAULT_TABLES = ("local", "main", "default")
DEAD_TYPES = ("blackhole", "unreachable", "prohibit")
_TABLE_IDS = {"255": "local", "254": "main", "253": "default"}


class RouteError(ValueError):
    """Routes or an address that cannot be used; the message says what to fix."""


__all__ = [
    "DEAD_TYPES", "DEFAULT_TABLES", "RouteError", "as_routes", "lookup_route", "parse_routes",
    "route_egress", "route_network",
]


def parse_routes(text, family=None, strict=False):
    """Text of ``ip route`` / ``ip -6 route`` (a terminal paste is fine) -> list of route dicts."""
    if family not in (None, "inet", "inet6"):
        raise RouteError("family %r is not valid; use inet or inet6" % (family,))
    try:
        return parse_ip_route(text, family=family, strict=strict)
    except IpRouteTextError as exc:
        raise RouteError(str(exc)) from None


def as_routes(routes):
    """Accept route dicts, text, or a route_info result (``{'routes': [...]}``) -> list of dicts."""
    if isinstance(routes, dict) and "routes" in routes:
        routes = routes["routes"]
    if isinstance(routes, str):
        return parse_routes(routes)
    if not isinstance(routes, (list, tuple)):
        raise RouteError(
            "routes must be a list of route dicts (route_info 'routes', ip -j route) or the text of "
            "'ip route'; got %s" % type(routes).__name__
        )
    for number, route in enumerate(routes, 1):
        if not isinstance(route, dict) or "dst" not in route:
            raise RouteError("route %d is not a route dict with a 'dst' key: %r" % (number, route))
    return list(routes)


def _family(route):
    family = route.get("family")
    if family in ("inet", "inet6"):
        return family
    for key in ("dst", "gateway", "prefsrc"):
        value = route.get(key)
        if value and value != "default":
            return "inet6" if ":" in str(value) else "inet"
    return "inet"


def _table(route):
    table = route.get("table")
    if table in (None, ""):
        return "main"
    return _TABLE_IDS.get(str(table), str(table))


def route_network(route):
    """The destination of a route as a ``netaddr.IPNetwork`` (``default`` -> /0 of its family)."""
    try:
        return ip_network(route.get("dst"), family=_family(route), what="route dst")
    except AddressError as exc:
        raise RouteError(str(exc)) from None


def _metric(route):
    metric = route.get("metric")
    try:
        return int(metric) if metric not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def lookup_route(routes, address, tables=None):
    """Return the route the kernel would use for ``address``, or None when no route matches.

    :arg routes: route dicts (route_info ``routes``), a route_info result, or ``ip route`` text.
    :arg address: the destination IP address.
    :arg tables: table names in rule order; default ``('local', 'main', 'default')``. Routes
        without a table count as ``main``.
    """
    try:
        target = ip_address(address, "address to look up")
    except AddressError as exc:
        raise RouteError(str(exc)) from None
    family = "inet6" if target.version == 6 else "inet"
    routes = as_routes(routes)
    order = [str(t) for t in (tables or DEFAULT_TABLES)]
    order = [_TABLE_IDS.get(t, t) for t in order]
    for table in order:
        best = None
        best_key = None
        for position, route in enumerate(routes):
            if _table(route) != table or _family(route) != family:
                continue
            if route.get("type") in ("broadcast", "multicast", "anycast") and table != "local":
                continue
            network = route_network(route)
            if target not in network:
                continue
            linkdown = "linkdown" in (route.get("flags") or [])
            # longest prefix, then lowest metric, then a live link, then first listed
            key = (-network.prefixlen, _metric(route), linkdown, position)
            if best_key is None or key < best_key:
                best, best_key = route, key
        if best is None:
            continue
        if best.get("type") == "throw":
            continue
        return best
    return None


def route_egress(route):
    """The ``(gateway, dev)`` pairs a route sends through: its own, or each multipath nexthop."""
    if not route:
        return []
    if route.get("nexthops"):
        return [(hop.get("gateway"), hop.get("dev")) for hop in route["nexthops"]]
    if route.get("type") in DEAD_TYPES:
        return []
    return [(route.get("gateway"), route.get("dev"))]
