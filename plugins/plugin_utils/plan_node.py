# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning, part one: what one node's route_info result says - its links and their kinds, its
workloads and bridges, its route to an address and the device that route leaves by, its WireGuard
ports and peers, its tunnel and underlay devices, its own addresses. Used by the planner
(plugins/plugin_utils/plan.py) and the Service planners; pure, no Ansible.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.module_utils._netinfo import is_link_local
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import same_ip as _same
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import DEFAULT_PORTS
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import (
    DEAD_TYPES,
    RouteError,
    lookup_route,
    route_egress,
    route_network,
)

TUNNEL_KINDS = ("ipip", "vxlan", "wireguard")
# Calico's IPv6 WireGuard device and its default listen port (FelixConfiguration
# wireguardInterfaceNameV6 / wireguardListeningPortV6); IPv4's wireguard.cali listens on 51820
WIREGUARD_V6_DEVICE, WIREGUARD_V6_PORT = "wg-v6.cali", 51821


class PlanError(ValueError):
    """The flow cannot be planned from these nodes; the message says what was searched and what to fix."""


class NoNodeError(PlanError):
    """src (or an in-cluster dst) is not a workload on any of the nodes."""


def _links(node):
    return {link.get("ifname"): link for link in node.get("links") or [] if isinstance(link, dict)}


def link_kind(node, dev):
    """Kind of ``dev`` on ``node``: from its ``links`` entry, else guessed from the name."""
    link = _links(node).get(dev)
    if link and link.get("kind"):
        return link["kind"]
    name = dev or ""
    if name.startswith("tunl"):
        return "ipip"
    if name.startswith(("vxlan", "flannel.")):
        return "vxlan"
    if name.startswith(("wireguard", "wg")):
        return "wireguard"
    if name.startswith(("cali", "veth")):
        return "veth"
    return "physical"


def node_workloads(node):
    """``workloads`` of a route_info result, or, when absent, the host routes without gateway
    on veth devices (``172.17.25.79 dev cali41f14107a8d scope link``)."""
    if node.get("workloads") is not None:
        return [w for w in node["workloads"] if isinstance(w, dict) and w.get("ip")]
    found = []
    for route in node.get("routes") or []:
        dst = str(route.get("dst") or "")
        # IPv4 pod routes are scope link; IPv6 ones print no scope
        if route.get("type", "unicast") != "unicast" or route.get("gateway") or not route.get("dev"):
            continue
        if "/" in dst and not dst.endswith(("/32", "/128")):
            continue
        if link_kind(node, route["dev"]) != "veth":
            continue
        found.append({"ip": dst.split("/", maxsplit=1)[0], "dev": route["dev"]})
    return found


def bridge_of(node, address):
    """The pod bridge (Flannel's ``cni0``) whose subnet holds ``address``, when the node has no
    neighbour entry for that pod yet (so no ``workloads`` entry), else None. The node's own
    addresses (the bridge's gateway address) are not pods."""
    try:
        target = ip_address(address)
    except AddressError:
        return None
    if any(_same(a.get("local"), address) for a in node.get("addresses") or [] if isinstance(a, dict)):
        return None
    for bridge in node.get("pod_bridges") or []:
        if not isinstance(bridge, dict) or not bridge.get("dev"):
            continue
        for subnet in bridge.get("subnets") or []:
            try:
                if target in route_network({"dst": subnet}):
                    return bridge["dev"]
            except RouteError:
                continue
    return None


def bridge_note(node_name, workload=None, address=None, bridge=None):
    """Why a pod behind a bridge is captured on the bridge itself (no veth found), or None."""
    if workload is not None:
        if not workload.get("bridge") or workload.get("port"):
            return None
        return ("%s's %s has not learned the pod %s's MAC %s on a port yet (bridge fdb show br %s): capturing "
                "on %s itself, which sees the pod's traffic to other nodes but not the pod's veth"
                % (node_name, workload["bridge"], workload.get("ip"), workload.get("mac"), workload["bridge"], workload["bridge"]))
    return ("%s has no neighbour entry for the pod %s on %s yet (ip neigh show dev %s): capturing on %s itself, "
            "which sees the pod's traffic to other nodes but not the pod's veth" % (node_name, address, bridge, bridge, bridge))


def _node_ips(node, version=None):
    ips = [ip for ip in node.get("node_ips") or [] if ip]
    if version is not None:
        ips = [ip for ip in ips if ip_address(ip).version == version]
    return ips


def _route(node_name, node, address, prefer_wireguard=True):
    """The route ``node`` uses for ``address``. WireGuard routes live in their own table behind
    an ip rule that route_info does not report: a route on a wireguard device in any table wins."""
    routes = node["routes"]
    if prefer_wireguard:
        wg_routes = [r for r in routes if r.get("dev") and link_kind(node, r["dev"]) == "wireguard"]
        if wg_routes:
            tables = sorted({str(r.get("table") or "main") for r in wg_routes})
            found = lookup_route(wg_routes, address, tables=tables)
            if found is not None:
                return found
    return lookup_route(routes, address)


def _first_egress(node_name, route, address, warnings):
    pairs = [p for p in route_egress(route) if p[1]]
    if not pairs:
        return None, None
    if len({pair[1] for pair in pairs}) > 1:
        warnings.append(
            "%s reaches %s over a multipath route (%s); tracing the first path only"
            % (node_name, address, ", ".join("%s via %s" % (dev, gw) for gw, dev in pairs))
        )
    return pairs[0]


def _gateway_node_ip(node, gateway):
    """The node address behind a next hop: the gateway itself, or for an IPv6 link-local next hop
    (BGP over IPv6) the peer's global address route_info found for it (``remote_blocks``)."""
    if not gateway or not is_link_local(gateway):
        return gateway
    for entry in node.get("remote_blocks") or []:
        if isinstance(entry, dict) and entry.get("node_ip") and _same(entry.get("via"), gateway):
            return entry["node_ip"]
    return gateway


def wireguard_port(link):
    """UDP port of a WireGuard link: its listen port from ``wg show`` (route_info), else Calico's
    default for that device (51821 for wg-v6.cali, 51820 for any other), e.g. when ``wg`` is not
    installed on the node."""
    wg = (link or {}).get("wireguard") or {}
    port = wg.get("listen_port") or wg.get("port")
    if port:
        return port
    return WIREGUARD_V6_PORT if (link or {}).get("ifname") == WIREGUARD_V6_DEVICE else DEFAULT_PORTS["wireguard"]


def _peer_entry(node, peer_ip):
    for entry in node.get("peers") or []:
        if isinstance(entry, dict) and _same(entry.get("node_ip"), peer_ip):
            return entry
    return None


def _tunnel_link(node, kind, like=None):
    """The node's link of ``kind``; prefer the one named like ``like`` (same VNI for vxlan)."""
    links = [link for link in node.get("links") or [] if isinstance(link, dict) and link_kind(node, link.get("ifname")) == kind]
    if like is not None:
        for link in links:
            if link.get("ifname") == like.get("ifname"):
                return link
        if kind == "vxlan":
            vni = (like.get("vxlan") or {}).get("id")
            for link in links:
                if (link.get("vxlan") or {}).get("id") == vni:
                    return link
    if links:
        return links[0]
    # no links reported (old route_info, hand-made input): a device of that kind in the routes
    for route in node.get("routes") or []:
        dev = route.get("dev")
        if dev and link_kind(node, dev) == kind:
            return {"ifname": dev}
    return None


def _underlay_dev(node_name, node, peer_ip):
    """Device and source address ``node`` uses to reach ``peer_ip`` on the underlay."""
    entry = _peer_entry(node, peer_ip)
    if entry and entry.get("dev"):
        return entry["dev"], entry.get("src")
    route = lookup_route(node["routes"], peer_ip)
    if route is None or route.get("type") in DEAD_TYPES:
        raise PlanError(
            "%s has no usable route to the peer node %s (%s); check the node's underlay routes "
            "(ip route get %s on %s)" % (node_name, peer_ip, route and route.get("type") or "no route", peer_ip, node_name)
        )
    gateway, dev = route_egress(route)[0]
    return dev, route.get("prefsrc")


def _node_address(node, version, preferred=None):
    if preferred:
        return preferred
    ips = _node_ips(node, version) or _node_ips(node)
    return ips[0] if ips else None
