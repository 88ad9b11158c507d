# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Trace planning: from every node's route_info result and one flow to the ordered hops of
the request and the response, and one capture (with its BPF filter) per node and interface.

Nothing here assumes device names, IPv4 or two nodes: the pod's node is the one whose
``workloads`` hold the address; each direction follows the sending node's own route for the
other pod (so CrossSubnet, asymmetric set-ups and renamed devices come out as the routes say);
the encapsulation is the kind of the route's device (``ipip``, ``vxlan``, ``wireguard``, else
none); the underlay device and peer come from the vxlan link, the ``peers`` list, or the
route to the peer node.

Per-hop ``encap`` is the encapsulation of the packets *as captured on that interface*: pod
veths and tunnel devices see the pod packets themselves (``none``), the underlay NIC sees
``ipip``/``vxlan``/``wireguard``. Shape: docs/internals.md ("Plan"). Besides the documented
keys a plan carries ``response_encap`` and ``warnings``; a capture carries ``role``
(veth|tunnel|underlay|egress), ``link_type`` (EN10MB or RAW) and ``underlay_port``.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.module_utils._netinfo import is_link_local
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import DEFAULT_PORTS, any_of, capture_filter
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import (
    DEAD_TYPES,
    RouteError,
    as_routes,
    lookup_route,
    route_egress,
    route_network,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import (
    ValidationError,
    validate_flow,
    validate_ifname,
)

TUNNEL_KINDS = ("ipip", "vxlan", "wireguard")
# Calico's IPv6 WireGuard device and its default listen port (FelixConfiguration
# wireguardInterfaceNameV6 / wireguardListeningPortV6); IPv4's wireguard.cali listens on 51820
WIREGUARD_V6_DEVICE, WIREGUARD_V6_PORT = "wg-v6.cali", 51821
REQUEST_ROLES = ("src-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "dst-veth")
_CAPTURE_ROLE = {
    "src-veth": "veth", "dst-veth": "veth", "tunnel-out": "tunnel", "tunnel-in": "tunnel",
    "underlay-out": "underlay", "underlay-in": "underlay",
}
_LIST_LIMIT = 8


class PlanError(ValueError):
    """The flow cannot be planned from these nodes; the message says what was searched and what to fix."""


class NoNodeError(PlanError):
    """src (or an in-cluster dst) is not a workload on any of the nodes."""


# ---------------------------------------------------------------------------------------------
# reading one node's route_info result


def _same(a, b):
    try:
        return ip_address(a) == ip_address(b)
    except AddressError:
        return False


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


# ---------------------------------------------------------------------------------------------
# one direction between two nodes


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


# ---------------------------------------------------------------------------------------------
# the plan


def _find_workload(nodes, address, warnings=None):
    """``[(node, device)]`` of the nodes holding pod ``address``; a pod behind a bridge whose veth
    is not known yet is held on the bridge, with a warning saying so."""
    holders, notes = [], []
    for name, node in nodes.items():
        for workload in node_workloads(node):
            if _same(workload.get("ip"), address):
                holders.append((name, workload.get("dev")))
                notes.append(bridge_note(name, workload))
    if not holders:
        for name, node in nodes.items():
            bridge = bridge_of(node, address)
            if bridge:
                holders.append((name, bridge))
                notes.append(bridge_note(name, address=address, bridge=bridge))
    if warnings is not None:
        warnings.extend(n for n in notes if n)
    return holders


def _searched(nodes):
    parts = []
    for name, node in nodes.items():
        ips = [str(w.get("ip")) for w in node_workloads(node)]
        shown = ", ".join(ips[:_LIST_LIMIT]) if ips else "no workloads"
        if len(ips) > _LIST_LIMIT:
            shown += ", and %d more" % (len(ips) - _LIST_LIMIT)
        parts.append("%s (%s)" % (name, shown))
    return "; ".join(parts)


def _block_owner(nodes, address):
    target = ip_address(address)
    for name, node in nodes.items():
        for block in node.get("local_blocks") or []:
            try:
                if target in route_network({"dst": block}):
                    return name, block
            except RouteError:
                continue
    return None, None


def _unread(node):
    """Why a registered result holds no route_info (unreachable or failed node), else None."""
    if isinstance(node, dict) and "routes" not in node and (node.get("unreachable") or node.get("failed")):
        return str(node.get("msg") or ("unreachable" if node.get("unreachable") else "failed")).strip()
    return None


def _check_nodes(nodes):
    """``(readable nodes, {name: why} of nodes whose route_info result is an unreachable/failed task)``."""
    if not isinstance(nodes, dict) or not nodes:
        raise PlanError(
            "nodes must be a dict {inventory_hostname: route_info result} with at least one node; got %r"
            % (type(nodes).__name__ if not isinstance(nodes, dict) else nodes,)
        )
    checked, unread = {}, {}
    for name, node in nodes.items():
        why = _unread(node)
        if why is not None:
            unread[str(name)] = why
            continue
        if not isinstance(node, dict) or "routes" not in node:
            raise PlanError(
                "node %s has no route_info result (no 'routes'); run hoptrace.k8s.route_info on it "
                "and pass the registered results keyed by inventory_hostname" % name
            )
        node = dict(node)
        try:
            node["routes"] = as_routes(node["routes"])
        except RouteError as exc:
            raise PlanError("node %s: %s" % (name, exc)) from None
        checked[str(name)] = node
    if not checked:
        raise PlanError("no node could be read (%s); check SSH access to the nodes"
                        % "; ".join("%s: %s" % item for item in sorted(unread.items())))
    return checked, unread


class _Builder:
    def __init__(self, nodes, flow):
        self.nodes = nodes
        self.flow = flow
        self.hops = []
        self.uses = {}  # (node, interface) -> list of filter specs
        self.order = []

    def hop(self, direction, node, role, interface, encap="none", peer=None, port=None, capture_role=None,
            node_ip=None, snat_ips=None, select=None, flow=None):
        """One hop; ``select`` (with ``interface`` None) names a device the node itself resolves
        when its captures start: ``{"route_to": IP}``, plus ``"local": True`` for a pod's veth.
        ``flow``: the packets as they are at this hop when a NAT on the way rewrote them (a NodePort's
        hops after the DNAT and masquerade), else the builder's flow; the capture's filter is built on it."""
        if interface is not None:
            try:
                validate_ifname(interface, "%s interface on %s" % (role, node))
            except ValidationError as exc:
                raise PlanError(str(exc)) from None
        if node_ip is None and node in self.nodes:
            ips = _node_ips(self.nodes[node], ip_address(peer).version if peer else None) or _node_ips(self.nodes[node])
            node_ip = ips[0] if ips else None
        label = interface or ("?" + select["route_to"] if select else "?")
        key = "%s/%s" % (node, label)
        index = 1 + sum(1 for h in self.hops if h["direction"] == direction)
        self.hops.append({
            "index": index, "direction": direction, "node": node, "node_ip": node_ip,
            "interface": interface, "role": role, "encap": encap, "capture": key,
        })
        spec = {
            "role": capture_role or _CAPTURE_ROLE[role], "encap": encap, "peer": peer,
            "underlay_port": port, "snat_ips": snat_ips, "select": select, "flow": flow,
        }
        if (node, label) not in self.uses:
            self.uses[(node, label)] = []
            self.order.append((node, label))
        if spec not in self.uses[(node, label)]:
            self.uses[(node, label)].append(spec)

    def captures(self):
        out = []
        for node, label in self.order:
            specs = self.uses[(node, label)]
            first = specs[0]
            interface = None if label.startswith("?") else label
            if interface is None and first["select"]:
                out.append(self._deferred_capture(node, label, specs))
                continue
            if interface is None:
                # a node that could not be read: one placeholder capture, reported unknown
                out.append({"key": "%s/?" % node, "node": node, "interface": None, "role": first["role"],
                            "encap": first["encap"], "filter": None, "peer": None, "vxlan_port": None,
                            "underlay_port": None, "link_type": None})
                continue
            try:
                expr = any_of([capture_filter(spec, spec["flow"] or self.flow) for spec in specs])
            except ValidationError as exc:
                raise PlanError("capture %s/%s: %s" % (node, interface, exc)) from None
            encaps = sorted({s["encap"] for s in specs})
            role = first["role"]
            kind = link_kind(self.nodes[node], interface)
            out.append({
                "key": "%s/%s" % (node, interface), "node": node, "interface": interface,
                "role": role, "encap": encaps[0] if len(encaps) == 1 else "mixed", "filter": expr,
                "peer": first["peer"], "vxlan_port": first["underlay_port"] if first["encap"] == "vxlan" else None,
                "underlay_port": first["underlay_port"],
                "link_type": "RAW" if kind in ("ipip", "wireguard") or (kind == "tun") else "EN10MB",
            })
        return out

    def _deferred_capture(self, node, label, specs):
        """A capture on a device the node resolves itself (``select``); ``interface`` and
        ``link_type`` are filled in from its start result (plugin_utils/deferred.py)."""
        first = specs[0]
        try:
            expr = any_of([capture_filter(spec, spec["flow"] or self.flow) for spec in specs])
        except ValidationError as exc:
            raise PlanError("capture %s/%s: %s" % (node, label, exc)) from None
        encaps = sorted({s["encap"] for s in specs})
        return {
            "key": "%s/%s" % (node, label), "node": node, "interface": None, "select": dict(first["select"]),
            "role": first["role"], "encap": encaps[0] if len(encaps) == 1 else "mixed", "filter": expr,
            "peer": first["peer"], "vxlan_port": first["underlay_port"] if first["encap"] == "vxlan" else None,
            "underlay_port": first["underlay_port"], "link_type": None,
        }


def _direction(builder, direction, leg, a_name, b_name, a_veth, b_veth):
    """Hops of one direction from the pod on ``a`` (veth ``a_veth``) to the pod on ``b``."""
    a_role, b_role = ("src-veth", "dst-veth") if direction == "request" else ("dst-veth", "src-veth")
    builder.hop(direction, a_name, a_role, a_veth, node_ip=leg["a_ip"])
    if leg["tunnel_out"]:
        builder.hop(direction, a_name, "tunnel-out", leg["tunnel_out"], node_ip=leg["a_ip"])
    builder.hop(direction, a_name, "underlay-out", leg["underlay_out"], leg["encap"], leg["peer"], leg["port"],
                node_ip=leg["a_ip"])
    builder.hop(direction, b_name, "underlay-in", leg["underlay_in"], leg["encap"], leg["a_ip"], leg["port"],
                node_ip=leg["b_ip"])
    if leg["tunnel_in"]:
        builder.hop(direction, b_name, "tunnel-in", leg["tunnel_in"], node_ip=leg["b_ip"])
    builder.hop(direction, b_name, b_role, b_veth, node_ip=leg["b_ip"])


def build_plan(nodes, src, dst, proto="tcp", port=None, node_ips=None, deferred=()):
    """Plan the trace of one flow.

    :arg nodes: ``{inventory_hostname: route_info result}`` for every node that may hold the pods.
    :arg src: source pod IP; it must be a workload on one of the nodes.
    :arg dst: destination IP: a pod on one of the nodes, or an address outside the cluster (the
        trace then ends at the source node's egress device).
    :arg proto: tcp, udp or icmp.  :arg port: destination port (tcp/udp).
    :arg node_ips: ``{inventory_hostname: address}`` (the inventory's ``ansible_host``), used to
        recognise a node whose route_info result is an unreachable or failed task: when the other
        pod's block is routed to it, its hops are planned with ``interface: None`` (unknown).
    :arg deferred: names of nodes not read on purpose (path-only discovery reads the entry node
        only): the one holding the other pod gets captures with a ``select`` instead of an
        interface (the device of its route to an address), which the node resolves when its
        captures start; plugin_utils/deferred.py fills in the interfaces from that result.
    :returns: the plan dict of docs/internals.md.
    :raises PlanError: (``NoNodeError`` when src, or a dst inside a pod block, is on no node).
    """
    try:
        flow = validate_flow(src, dst, proto, port)
    except ValidationError as exc:
        raise PlanError(str(exc)) from None
    nodes, unread = _check_nodes(nodes)
    warnings = ["%s could not be read (%s)" % item for item in sorted(unread.items())]
    later = [str(name) for name in deferred or () if str(name) not in nodes and str(name) not in unread]
    src_holders = _find_workload(nodes, flow["src"], warnings)
    dst_holders = _find_workload(nodes, flow["dst"], warnings)
    if (unread or later) and bool(src_holders) != bool(dst_holders):
        half = _unread_half(nodes, dict(unread, **{name: None for name in later}), node_ips or {}, flow,
                            src_holders, dst_holders, warnings)
        if half is not None:
            return half
        if later:
            raise PlanError(
                "the %s pod %s is not routed to %s from %s's routes; read %s too (give no deferred nodes)"
                % ("dst" if src_holders else "src", flow["dst"] if src_holders else flow["src"],
                   " or ".join(later), " and ".join(sorted(nodes)), " and ".join(later))
            )
    if not src_holders:
        raise NoNodeError(
            "src %s is not a pod on any of the %d nodes searched: %s. Give the IP of a running pod "
            "(kubectl get pods -o wide) and include the node that runs it in the inventory"
            % (flow["src"], len(nodes), _searched(nodes))
        )
    if len(src_holders) > 1:
        raise PlanError(
            "src %s is a workload on several nodes (%s); stale routes? Remove the stale pod route "
            "or limit the inventory to the right node" % (flow["src"], ", ".join("%s dev %s" % h for h in src_holders))
        )
    src_node, src_veth = src_holders[0]
    if len(dst_holders) > 1:
        raise PlanError(
            "dst %s is a workload on several nodes (%s); stale routes? Remove the stale pod route "
            "or limit the inventory to the right node" % (flow["dst"], ", ".join("%s dev %s" % h for h in dst_holders))
        )
    builder = _Builder(nodes, flow)
    if not dst_holders:
        owner, block = _block_owner(nodes, flow["dst"])
        if owner is not None:
            raise NoNodeError(
                "dst %s is in pod block %s of %s, but no node has a workload route for it; searched: %s. "
                "Check the pod IP (kubectl get pods -o wide) and that the pod is running"
                % (flow["dst"], block, owner, _searched(nodes))
            )
        dst_node = None
        encap = response_encap = _external(builder, nodes, src_node, src_veth, flow, warnings)
    else:
        dst_node, dst_veth = dst_holders[0]
        if dst_node == src_node:
            encap = response_encap = "local"
            for direction, (a_role, a_dev), (b_role, b_dev) in (
                ("request", ("src-veth", src_veth), ("dst-veth", dst_veth)),
                ("response", ("dst-veth", dst_veth), ("src-veth", src_veth)),
            ):
                builder.hop(direction, src_node, a_role, a_dev)
                builder.hop(direction, src_node, b_role, b_dev)
        else:
            request = _leg(nodes, src_node, dst_node, flow["dst"], warnings)
            response = _leg(nodes, dst_node, src_node, flow["src"], warnings)
            encap, response_encap = request["encap"], response["encap"]
            if encap != response_encap:
                warnings.append(
                    "asymmetric encapsulation: %s sends with %s, %s answers with %s"
                    % (src_node, encap, dst_node, response_encap)
                )
            _direction(builder, "request", request, src_node, dst_node, src_veth, dst_veth)
            _direction(builder, "response", response, dst_node, src_node, dst_veth, src_veth)
    return _plan(builder, flow, src_node, dst_node, encap, response_encap, warnings)


def _plan(builder, flow, src_node, dst_node, encap, response_encap, warnings):
    hops = [h for h in builder.hops if h["direction"] == "request"] + [h for h in builder.hops if h["direction"] == "response"]
    return {
        "run": flow,
        "src_node": src_node,
        "dst_node": dst_node,
        "encap": encap,
        "response_encap": response_encap,
        "hops": hops,
        "captures": builder.captures(),
        "warnings": warnings,
    }


def _unread_half(nodes, unread, node_ips, flow, src_holders, dst_holders, warnings):
    """One pod on a readable node, the other routed to a node that could not be read.

    The readable node's own route for the other pod gives its hops; the unread node's hops get
    ``interface: None``, or, when it was not read on purpose (``unread[name]`` is None), a
    ``select`` each that the node resolves itself. Returns None when the other pod is not routed
    to an unread node.
    """
    known_is_src = bool(src_holders)
    known, veth = (src_holders or dst_holders)[0]
    other_ip = flow["dst"] if known_is_src else flow["src"]
    node = nodes[known]
    route = _route(known, node, other_ip)
    if route is None or route.get("type") in DEAD_TYPES:
        return None
    gateway, dev = _first_egress(known, route, other_ip, warnings)
    if dev is None:
        return None
    gateway = _gateway_node_ip(node, gateway)
    kind = link_kind(node, dev)
    encap = kind if kind in TUNNEL_KINDS else "none"
    candidates = [name for name in unread if gateway and _same(node_ips.get(name), gateway)]
    if not candidates and encap != "none" and len(unread) == 1:
        candidates = list(unread)  # vxlan/wireguard next hops are tunnel addresses, not node addresses
    if len(candidates) != 1:
        return None
    other = candidates[0]
    later = unread[other] is None
    if not later:
        warnings.append("%s holds the %s pod %s but could not be read: its hops are unknown"
                        % (other, "dst" if known_is_src else "src", other_ip))
    peer = node_ips.get(other) or gateway
    tunnel = dev if encap != "none" else None
    port = None
    if encap == "vxlan":
        link = _links(node).get(dev) or {}
        port = (link.get("vxlan") or {}).get("port") or DEFAULT_PORTS["vxlan"]
        underlay = (link.get("vxlan") or {}).get("dev") or _underlay_dev(known, node, peer)[0]
    elif encap == "none":
        underlay = dev
    else:
        if encap == "wireguard":
            port = wireguard_port(_links(node).get(dev) or {"ifname": dev})
        underlay = _underlay_dev(known, node, peer)[0]
    known_ip = _node_address(node, ip_address(peer).version)
    builder = _Builder(nodes, flow)
    known_role, other_role = ("src-veth", "dst-veth") if known_is_src else ("dst-veth", "src-veth")
    out_dir, in_dir = ("request", "response") if known_is_src else ("response", "request")
    known_pod = flow["src"] if known_is_src else flow["dst"]
    # the other node's devices, as it resolves them: towards the known node (underlay), towards
    # the known pod (its tunnel device; none without encapsulation), and its own pod's veth
    other_hop = {
        "underlay-in": dict(encap=encap, peer=known_ip, port=port, select={"route_to": known_ip}),
        "tunnel-in": dict(select={"route_to": known_pod}),
        other_role: dict(select={"route_to": other_ip, "local": True}),
    }
    other_hop["underlay-out"], other_hop["tunnel-out"] = other_hop["underlay-in"], other_hop["tunnel-in"]

    def unknown_or_selected(direction, role):
        extra = other_hop[role] if later else {}
        builder.hop(direction, other, role, None, node_ip=peer, **extra)

    # the readable node sends (request when it holds src) ...
    builder.hop(out_dir, known, known_role, veth, node_ip=known_ip)
    if tunnel:
        builder.hop(out_dir, known, "tunnel-out", tunnel, node_ip=known_ip)
    builder.hop(out_dir, known, "underlay-out", underlay, encap, peer, port, node_ip=known_ip)
    for role in ("underlay-in",) + (("tunnel-in",) if tunnel else ()) + (other_role,):
        unknown_or_selected(out_dir, role)
    # ... and receives the other direction
    for role in (other_role,) + (("tunnel-out",) if tunnel else ()) + ("underlay-out",):
        unknown_or_selected(in_dir, role)
    builder.hop(in_dir, known, "underlay-in", underlay, encap, peer, port, node_ip=known_ip)
    if tunnel:
        builder.hop(in_dir, known, "tunnel-in", tunnel, node_ip=known_ip)
    builder.hop(in_dir, known, known_role, veth, node_ip=known_ip)
    src_node, dst_node = (known, other) if known_is_src else (other, known)
    return _plan(builder, flow, src_node, dst_node, encap, encap, warnings)


def _external(builder, nodes, src_node, src_veth, flow, warnings):
    """dst outside the cluster: src veth and the src node's egress device, both directions."""
    node = nodes[src_node]
    route = _route(src_node, node, flow["dst"])
    if route is None or route.get("type") in DEAD_TYPES:
        warnings.append(
            "%s has %s for %s: packets die on the node; only the pod's veth is captured"
            % (src_node, "no route" if route is None else "a %s route (%s)" % (route["type"], route.get("dst")), flow["dst"])
        )
        builder.hop("request", src_node, "src-veth", src_veth)
        builder.hop("response", src_node, "src-veth", src_veth)
        return "none"
    gateway, dev = _first_egress(src_node, route, flow["dst"], warnings)
    kind = link_kind(node, dev)
    encap = "none"
    snat = [ip for ip in [route.get("prefsrc")] + _node_ips(node, ip_address(flow["dst"]).version) if ip]
    snat = [ip for i, ip in enumerate(snat) if ip not in snat[:i]]
    node_ip = snat[0] if snat else None
    if kind in TUNNEL_KINDS:
        warnings.append("%s sends %s into tunnel %s; capturing the tunnel device only" % (src_node, flow["dst"], dev))
    builder.hop("request", src_node, "src-veth", src_veth, node_ip=node_ip)
    builder.hop("request", src_node, "underlay-out", dev, capture_role="egress", node_ip=node_ip, snat_ips=snat)
    builder.hop("response", src_node, "underlay-in", dev, capture_role="egress", node_ip=node_ip, snat_ips=snat)
    builder.hop("response", src_node, "src-veth", src_veth, node_ip=node_ip)
    return encap


# what plugin_utils/services.py builds a NodePort's hops with
Builder = _Builder
check_nodes, find_workload, searched, node_ips = _check_nodes, _find_workload, _searched, _node_ips
route_for, first_egress, finish, links_of, leg = _route, _first_egress, _plan, _links, _leg
