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

What one node's result says is read in plan_node.py, one direction between two nodes is found in
plan_leg.py; this file builds the hops and captures from them (their names stay importable from here).
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import ip_address
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import same_ip as _same
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import DEFAULT_PORTS, any_of, capture_filter
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import (
    DEAD_TYPES,
    RouteError,
    as_routes,
    route_network,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import (
    ValidationError,
    validate_flow,
    validate_ifname,
)

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan_node import (  # noqa: F401 - re-exported for plugin_utils/services.py and the tests
    NoNodeError,
    PlanError,
    TUNNEL_KINDS,
    _first_egress,
    _gateway_node_ip,
    _links,
    _node_address,
    _node_ips,
    _route,
    _underlay_dev,
    bridge_note,
    bridge_of,
    link_kind,
    node_workloads,
    wireguard_port,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan_leg import (  # noqa: F401 - re-exported for plugin_utils/services.py and the tests
    _leg,
)

REQUEST_ROLES = ("src-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "dst-veth")
_CAPTURE_ROLE = {
    "src-veth": "veth", "dst-veth": "veth", "tunnel-out": "tunnel", "tunnel-in": "tunnel",
    "underlay-out": "underlay", "underlay-in": "underlay",
}
_LIST_LIMIT = 8


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
