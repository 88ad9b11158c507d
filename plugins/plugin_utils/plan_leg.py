# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning, part two: one direction between two nodes - the leg from the sending node's route to
the receiving node (device, encapsulation, underlay device and peer), and which node owns an
address or pod block across the nodes read. Used by plugins/plugin_utils/plan.py; pure, no Ansible.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import ip_address
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import same_ip as _same
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import DEFAULT_PORTS
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import (
    DEAD_TYPES,
    RouteError,
    route_network,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan_node import (
    PlanError,
    TUNNEL_KINDS,
    _first_egress,
    _gateway_node_ip,
    _links,
    _node_address,
    _node_ips,
    _route,
    _tunnel_link,
    _underlay_dev,
    link_kind,
    wireguard_port,
)


def _leg(nodes, a_name, b_name, to_ip, warnings):
    """How node ``a`` sends to pod ``to_ip`` on node ``b``: encap and devices on both ends."""
    a, b = nodes[a_name], nodes[b_name]
    version = ip_address(to_ip).version
    route = _route(a_name, a, to_ip)
    if route is None:
        raise PlanError(
            "%s has no route to %s (on %s); check the pod network routes on %s (ip route get %s)"
            % (a_name, to_ip, b_name, a_name, to_ip)
        )
    if route.get("type") in DEAD_TYPES:
        raise PlanError(
            "%s routes %s to a %s route (%s); the pod's block is not routed to %s: check the "
            "CNI's routes (BGP sessions, IP pool) on %s" % (a_name, to_ip, route["type"], route.get("dst"), b_name, a_name)
        )
    gateway, dev = _first_egress(a_name, route, to_ip, warnings)
    if dev is None:
        raise PlanError("%s's route to %s (%s) names no device; cannot tell where to capture" % (a_name, to_ip, route.get("dst")))
    gateway = _gateway_node_ip(a, gateway)
    kind = link_kind(a, dev)
    encap = kind if kind in TUNNEL_KINDS else "none"
    leg = {"encap": encap, "tunnel_out": None, "tunnel_in": None, "port": None, "route": route}
    if encap == "none":
        leg["underlay_out"] = dev
        src_ip = route.get("prefsrc")
        peer = gateway if gateway and _node_owner(nodes, gateway) == b_name else _node_address(b, version)
        a_ip = _node_address(a, ip_address(peer).version if peer else version, src_ip)
    else:
        leg["tunnel_out"] = dev
        a_link = _links(a).get(dev) or {"ifname": dev}
        b_link = _tunnel_link(b, encap, like=a_link)
        if encap == "ipip":
            peer = gateway or _node_address(b, 4)
        elif encap == "vxlan":
            local = (b_link or {}).get("vxlan") or {}
            peer = local.get("local") or _peer_from_list(a, b, encap) or _node_address(b, version)
            leg["port"] = (a_link.get("vxlan") or {}).get("port") or DEFAULT_PORTS["vxlan"]
        else:
            peer = _peer_from_blocks(a, b, route, dev) or _peer_from_list(a, b, encap, version) or _node_address(b, version)
            leg["port"] = wireguard_port(a_link)
        if not peer:
            raise PlanError("cannot tell %s's underlay address: its route_info result has no node_ips" % b_name)
        owner = _node_owner(nodes, peer)
        if owner is not None and owner != b_name:
            warnings.append(
                "%s sends traffic for %s to %s (%s), but the pod is on %s; the route looks stale"
                % (a_name, to_ip, peer, owner, b_name)
            )
        vxlan_dev = (a_link.get("vxlan") or {}).get("dev") if encap == "vxlan" else None
        under_dev, src_ip = _underlay_dev(a_name, a, peer)
        leg["underlay_out"] = vxlan_dev or under_dev
        a_ip = _node_address(a, ip_address(peer).version, src_ip)
        if b_link is None:
            warnings.append("%s has no %s device; the decapsulated packets cannot be captured there" % (b_name, encap))
        else:
            leg["tunnel_in"] = b_link.get("ifname")
    leg["peer"] = peer
    leg["a_ip"] = a_ip
    leg["b_ip"] = peer if peer and _node_owner(nodes, peer) == b_name else _node_address(b, version)
    # where b receives from a: its device towards a's underlay address
    if encap == "vxlan" and leg["tunnel_in"]:
        b_vx = (_links(b).get(leg["tunnel_in"]) or {}).get("vxlan") or {}
        leg["underlay_in"] = b_vx.get("dev")
    else:
        leg["underlay_in"] = None
    if not leg["underlay_in"]:
        if a_ip:
            leg["underlay_in"] = _underlay_dev(b_name, b, a_ip)[0]
        else:
            raise PlanError("cannot tell %s's underlay address: its route_info result has no node_ips" % a_name)
    return leg


def _peer_from_blocks(a, b, route, dev):
    """The underlay address of ``b`` that ``a``'s ``remote_blocks`` give for this route's block on
    ``dev``: for WireGuard the endpoint of the peer whose AllowedIPs hold it, so a dual-stack
    node's IPv6 blocks on wg-v6.cali map to the peer's IPv6 address, its IPv4 ones to its IPv4."""
    try:
        net = route_network(route)
    except RouteError:
        return None
    for entry in a.get("remote_blocks") or []:
        if not isinstance(entry, dict) or entry.get("dev") != dev or not entry.get("node_ip"):
            continue
        try:
            same = route_network({"dst": entry.get("dst")}) == net
        except RouteError:
            continue
        if same and any(_same(entry["node_ip"], ip) for ip in _node_ips(b)):
            return entry["node_ip"]
    return None


def _peer_from_list(a, b, encap, version=None):
    """The address of ``b`` that ``a``'s peers list knows (route_info reports the underlay peers),
    one of IP ``version`` first when ``b`` has several (a dual-stack node)."""
    found = []
    for entry in a.get("peers") or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("encap") not in (None, encap):
            continue
        if any(_same(entry.get("node_ip"), ip) for ip in _node_ips(b)):
            found.append(entry["node_ip"])
    found.sort(key=lambda ip: ip_address(ip).version != version)
    return found[0] if found else None


def _node_owner(nodes, address):
    for name, node in nodes.items():
        if any(_same(address, ip) for ip in _node_ips(node)):
            return name
    return None
