# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This is a private module_utils file: its API may change without notice.
"""Parse the text output of ``ip route`` / ``ip -6 route`` into the ``ip -j route`` shape.

Node side (stdlib only): ``route_info`` uses it as the fallback for iproute2 builds without
``-j``; the ``parse_ip_route`` filter wraps it on the controller.

Every route comes back normalised to the route shape of ``docs/internals.md``::

    {dst, gateway, dev, protocol, scope, prefsrc, metric, type, table, flags, family, nexthops}

plus ``expires``/``pref``/``nhid``/``mtu``/... only when the line carries them. Defaults are the
ones iproute2 leaves out of its output: type ``unicast``, table ``main``, scope ``global``,
protocol ``boot``.

The parser is tolerant of pasted terminal sessions: shell prompts and the ``ip route`` command
itself are stripped (also when the first route is glued to the command, ``ip routedefault via``),
lines that are not routes (``...``, tcpdump output, prose) are skipped, whitespace is free, and
``nexthop`` continuation lines attach to the route above them. ``strict=True`` turns skipped
lines into errors instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import re

# `ip route <verb>` commands in a paste that print no routes of their own
_NOT_A_LISTING = ("get", "add", "del", "delete", "change", "replace", "append", "flush", "save", "restore", "help")

ROUTE_TYPES = (
    "unicast", "local", "broadcast", "multicast", "throw", "unreachable",
    "prohibit", "blackhole", "nat", "anycast",
)
# types that need no device or gateway to be a complete route
_DEVICELESS_TYPES = ("throw", "unreachable", "prohibit", "blackhole")

# numeric protocols as current iproute2 names them (/usr/share/iproute2/rt_protos)
PROTOCOL_NAMES = {
    "0": "unspec", "1": "redirect", "2": "kernel", "3": "boot", "4": "static",
    "8": "gated", "9": "ra", "10": "mrt", "11": "zebra", "12": "bird", "13": "dnrouted",
    "14": "xorp", "15": "ntk", "16": "dhcp", "17": "mrouted", "18": "keepalived",
    "42": "babel", "99": "openr", "186": "bgp", "187": "isis", "188": "ospf", "189": "rip",
    "192": "eigrp",
}

ROUTE_FLAGS = (
    "onlink", "linkdown", "pervasive", "offload", "notify", "dead", "trap",
    "rt_offload", "rt_trap", "rt_offload_failed", "unresolved",
)

# keywords followed by one value; kept under their own name when present
_VALUE_KEYS = {
    "mtu": "mtu", "advmss": "advmss", "hoplimit": "hoplimit", "nhid": "nhid",
    "realm": "realms", "realms": "realms", "error": "error", "uid": "uid",
    "rtt": "rtt", "rttvar": "rttvar", "window": "window", "cwnd": "cwnd",
    "initcwnd": "initcwnd", "initrwnd": "initrwnd", "ssthresh": "ssthresh",
    "reordering": "reordering", "features": "features", "quickack": "quickack",
    "congctl": "congctl", "rto_min": "rto_min", "fastopen_no_cookie": "fastopen_no_cookie",
    "tos": "tos", "dsfield": "tos", "from": "from", "ttl-propagate": "ttl_propagate",
}
_INT_KEYS = ("mtu", "advmss", "hoplimit", "nhid", "error", "uid", "window", "cwnd",
             "initcwnd", "initrwnd", "ssthresh", "reordering", "quickack")
# words that carry no information for us
_NOISE = ("lock", "cache", "ipid", "used", "age", "users")

# "[root@host /]# ip -6 route show table all" and friends, possibly glued to the first route
_COMMAND_RE = re.compile(
    r"^(?:.*?[#$>]\s*)?ip\s+((?:-\S+\s+)*)(?:route|rout|rou|ro|r)"
    r"(?:\s+(?:show|list|lst|sh|ls)\b)?((?:\s+table\s+\S+)?)\s*(.*)$"
)
_NUMBER_RE = re.compile(r"^-?\d+$")
_HEXV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?$")
_V6_RE = re.compile(r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%\S+)?(?:/\d{1,3})?$")


class IpRouteTextError(ValueError):
    """A line could not be read as a route (``strict=True`` only)."""


def _is_address(token):
    """True for an IPv4/IPv6 address or prefix as iproute2 prints it."""
    return bool(_HEXV4_RE.match(token) or (":" in token and _V6_RE.match(token)))


def _family_of(token):
    if token is None:
        return None
    return "inet6" if ":" in token else "inet"


def _new_route():
    return {
        "dst": None, "gateway": None, "dev": None, "protocol": "boot", "scope": "global",
        "prefsrc": None, "metric": None, "type": "unicast", "table": "main", "flags": [],
        "family": None, "nexthops": [],
    }


def _to_int(value):
    return int(value) if _NUMBER_RE.match(value) else value


def _parse_expires(value):
    match = re.match(r"^(-?\d+)", value)
    return int(match.group(1)) if match else value


def _parse_nexthop(tokens, start):
    """Read one ``nexthop via GW dev DEV weight W onlink`` clause from tokens[start]."""
    hop = {"gateway": None, "dev": None, "weight": 1, "flags": []}
    i = start
    while i < len(tokens) and tokens[i] != "nexthop":
        word = tokens[i]
        if word == "via" and i + 1 < len(tokens):
            if tokens[i + 1] in ("inet", "inet6") and i + 2 < len(tokens):
                i += 1
            hop["gateway"] = tokens[i + 1]
            i += 2
        elif word == "dev" and i + 1 < len(tokens):
            hop["dev"] = tokens[i + 1]
            i += 2
        elif word == "weight" and i + 1 < len(tokens):
            hop["weight"] = _to_int(tokens[i + 1])
            i += 2
        elif word in ROUTE_FLAGS:
            hop["flags"].append(word)
            i += 1
        elif word in _VALUE_KEYS and i + 1 < len(tokens):
            hop[_VALUE_KEYS[word]] = _to_int(tokens[i + 1])
            i += 2
        else:
            i += 1
    return hop, i


def parse_route_line(line, family=None, table=None, allow_incomplete=False):
    """Parse one route line; return the route dict or None when the line is not a route.

    ``family`` ('inet'/'inet6') is used when the line itself does not tell (``default dev wg0``);
    ``table`` is the table given on the command line (``ip route show table 254``).
    ``allow_incomplete`` accepts a line with neither ``dev`` nor ``via`` (the head of a
    multipath route whose ``nexthop`` lines follow).
    """
    tokens = line.split()
    if not tokens:
        return None
    route = _new_route()
    i = 0
    if tokens[0] in ROUTE_TYPES:
        route["type"] = tokens[0]
        i = 1
    if i >= len(tokens):
        return None
    dst = tokens[i]
    if dst == "default" or dst == "all":
        route["dst"] = "default"
    elif _is_address(dst):
        route["dst"] = dst
    else:
        return None
    i += 1
    if table:
        route["table"] = table
    other = {}
    while i < len(tokens):
        word = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if word == "nexthop":
            hop, i = _parse_nexthop(tokens, i + 1)
            route["nexthops"].append(hop)
            continue
        if word == "via" and nxt is not None:
            if nxt in ("inet", "inet6") and i + 2 < len(tokens):
                i += 1
                nxt = tokens[i + 1]
            route["gateway"] = nxt
            i += 2
        elif word == "dev" and nxt is not None:
            route["dev"] = nxt
            i += 2
        elif word in ("proto", "protocol") and nxt is not None:
            route["protocol"] = PROTOCOL_NAMES.get(nxt, nxt)
            i += 2
        elif word == "scope" and nxt is not None:
            route["scope"] = {"0": "global", "253": "link", "254": "host"}.get(nxt, nxt)
            i += 2
        elif word == "src" and nxt is not None:
            route["prefsrc"] = nxt
            i += 2
        elif word in ("metric", "preference", "priority") and nxt is not None:
            route["metric"] = _to_int(nxt)
            i += 2
        elif word == "table" and nxt is not None:
            route["table"] = nxt
            i += 2
        elif word == "expires" and nxt is not None:
            other["expires"] = _parse_expires(nxt)
            i += 2
        elif word == "pref" and nxt is not None:
            other["pref"] = nxt
            i += 2
        elif word in ROUTE_FLAGS:
            if word not in route["flags"]:
                route["flags"].append(word)
            i += 1
        elif word in _VALUE_KEYS and nxt is not None:
            if word == "mtu" and nxt == "lock" and i + 2 < len(tokens):
                i += 1
                nxt = tokens[i + 1]
            key = _VALUE_KEYS[word]
            other[key] = _to_int(nxt) if key in _INT_KEYS else nxt
            i += 2
        elif word == "encap" and nxt is not None:
            # lightweight tunnel encap: 'encap mpls 100', 'encap ip id 1 dst ...': keep the kind
            other["encap"] = nxt
            i += 2
        else:
            # unknown or noise word: skip it (newer iproute2 keywords, 'lock', 'cache')
            i += 1
    incomplete = (route["gateway"] is None and route["dev"] is None and not route["nexthops"]
                  and route["type"] not in _DEVICELESS_TYPES)
    if incomplete and not allow_incomplete:
        return None
    route["family"] = (
        _family_of(route["dst"] if route["dst"] != "default" else None)
        or _family_of(route["gateway"])
        or _family_of(route["nexthops"][0]["gateway"] if route["nexthops"] else None)
        or family or "inet"
    )
    route.update(other)
    return route


def parse_ip_route(text, family=None, strict=False):
    """Parse ``ip route`` text (one or many lines, a terminal paste is fine) into route dicts.

    :arg text: the output; a list of lines is accepted too.
    :arg family: 'inet' or 'inet6' for lines that do not say (the command ``ip -6 route`` in
        the text sets it for the lines after it).
    :arg strict: raise :class:`IpRouteTextError` on a line that is not a route instead of
        skipping it.
    :returns: list of route dicts (internals.md route shape).
    """
    if text is None:
        return []
    lines = text if isinstance(text, (list, tuple)) else str(text).splitlines()
    routes = []
    current_family = family
    current_table = None
    pending = None  # head line of a multipath route, waiting for its nexthop lines
    for number, raw in enumerate(lines, 1):
        line = raw.replace("\t", " ").rstrip()
        stripped = line.strip()
        if not stripped or set(stripped) <= set(".…"):
            continue
        if stripped.startswith("..."):
            continue
        command = _COMMAND_RE.match(stripped)
        if command:
            opts = command.group(1) or ""
            if "-6" in opts.split():
                current_family = "inet6"
            elif "-4" in opts.split():
                current_family = "inet"
            else:
                current_family = family
            table_clause = (command.group(2) or "").split()
            current_table = table_clause[1] if len(table_clause) == 2 and table_clause[1] != "all" else None
            rest = command.group(3)
            if not rest or rest.split()[0] in _NOT_A_LISTING:
                continue
            stripped = rest
            line = rest
        if stripped.startswith("nexthop") and (pending or routes):
            if pending:
                routes.append(pending)
                pending = None
            tokens = stripped.split()
            i = 0
            while i < len(tokens) and tokens[i] == "nexthop":
                hop, i = _parse_nexthop(tokens, i + 1)
                routes[-1]["nexthops"].append(hop)
                if routes[-1]["dst"] == "default" and hop["gateway"]:
                    routes[-1]["family"] = _family_of(hop["gateway"])
            continue
        pending = None
        route = parse_route_line(stripped, family=current_family, table=current_table)
        if route is None:
            head = parse_route_line(stripped, family=current_family, table=current_table, allow_incomplete=True)
            if head is not None and number < len(lines) and lines[number].strip().startswith("nexthop"):
                pending = head
                continue
            if strict:
                raise IpRouteTextError(
                    "line %d is not an 'ip route' line: %r; pass the plain output of 'ip route' "
                    "(or use strict=false to skip such lines)" % (number, raw)
                )
            continue
        routes.append(route)
    return routes
