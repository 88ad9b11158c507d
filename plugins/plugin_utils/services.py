# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A trace to a Service address: kube-proxy's translation, the backend to plan for, and the plan's
rewrite around the DNAT.

The entry node's route_info result carries kube-proxy's rules (``service_rules``) when the
destination is not a pod address. :func:`service_of` turns them into the Service, its endpoints
and the backend the hops after the DNAT go to; :func:`rewrite_plan` takes the plan made for the
backend (``src -> backend:port``) and puts the Service address back where the packets still carry
it: the source pod's veth, before the source node's DNAT (request) and after its un-DNAT
(response). That capture gets ``nat`` (``{"address", "port"}``, the Service's) so that the
analysis matches its packets with the backend's on the later hops. Pure.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.module_utils._netinfo import is_link_local
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import kubeproxy, kubeproxy_ipvs, kubeproxy_nft
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import plan as plan_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import any_of, capture_filter
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import describe, hostport


class ServiceError(ValueError):
    """The Service cannot be traced as asked; the message says why and what to do."""


def _text(service):
    return "Service %s (%s)" % (service["service"] or service["port_name"] or "?", hostport(service["address"], service["port"]))


MAX_ENDPOINTS = 4


def service_of(entry_name, entry, flow, local=False):
    """The Service behind ``flow["dst"]:port`` from the entry node's ``service_rules``, or None.

    :returns: kubeproxy.translate()'s dict plus ``read_on`` (the node whose rules say so) and
        ``backend`` (the one endpoint; None without endpoints, or with several: kube-proxy's DNAT
        picks one per connection, so every endpoint is a candidate and the captures tell which).
    :raises ServiceError: more than MAX_ENDPOINTS endpoints (the path nodes stay bounded).
    """
    rules = (entry or {}).get("service_rules") or {}
    if not (rules.get("text") or rules.get("ipvs") or rules.get("nft")) or flow.get("proto") == "icmp" or flow.get("port") in (None, ""):
        return None
    found = kubeproxy.translate(rules["text"], flow["dst"], flow["port"], flow.get("proto") or "tcp",
                                src=flow.get("src"), local=local)
    if found is None and rules.get("nft"):
        found = kubeproxy_nft.translate(rules["nft"], flow["dst"], flow["port"], flow.get("proto") or "tcp",
                                        src=flow.get("src"), local=local)
    if found is None and rules.get("ipvs"):
        # IPVS mode: kube-proxy's iptables rules match ipsets, the virtual servers hold the translation
        found = kubeproxy_ipvs.translate(rules["ipvs"], flow["dst"], flow["port"], flow.get("proto") or "tcp", local=local)
    if found is None:
        return None
    found["read_on"] = entry_name
    found["source"] = rules.get("source")
    found["backend"] = None
    endpoints = found["endpoints"]
    if len(endpoints) > MAX_ENDPOINTS:
        raise ServiceError(
            "%s has %d endpoints (%s, ...); kube-proxy's DNAT on the %s picks one at random per connection "
            "and a trace captures on the nodes of at most %d candidates: trace an endpoint with -e dst=IP -e port=PORT"
            % (_text(found), len(endpoints), ", ".join(hostport(e["ip"], e["port"]) for e in endpoints[:MAX_ENDPOINTS]),
               "node addressed" if found.get("kind") == "nodeport" else "source node", MAX_ENDPOINTS)
        )
    if len(endpoints) == 1:
        found["backend"] = dict(endpoints[0])
        found["chosen_by"] = "the Service's only endpoint"
    return found


def backend_flow(flow, service, backend=None):
    """The flow of the hops after the DNAT: to the backend's (or ``backend``'s) address and port."""
    backend = backend or service["backend"]
    return dict(flow, dst=backend["ip"], port=backend["port"] if backend.get("port") else flow.get("port"))


def rewrite_plan(plan, service, flow, backend=None):
    """The plan made for the backend flow, with the Service address on the source pod's veth.

    ``flow`` is the flow as the user gave it (dst the Service address)."""
    plan = dict(plan)
    if backend is not None:
        service = dict(service, backend=dict(backend))
    src_node = plan.get("src_node")
    veth_keys = {h["capture"] for h in plan.get("hops") or [] if h.get("role") == "src-veth" and h.get("node") == src_node}
    captures = []
    for capture in plan.get("captures") or []:
        capture = dict(capture)
        if capture.get("key") in veth_keys:
            capture["filter"] = any_of([capture_filter(dict(capture, role="veth"), flow)])
            capture["nat"] = {"address": service["address"], "port": int(service["port"])}
        captures.append(capture)
    plan["captures"] = captures
    plan["service"] = public(service, plan)
    return plan


def merge_candidates(plans, service):
    """One plan for a Service with several endpoints: every candidate's captures (one per device, the
    filters of the candidates that share it combined), the first candidate's hops, and ``candidates``
    (each candidate's run, nodes, encapsulation, hops and service) for the analysis to choose from."""
    captures, order = {}, []
    for plan in plans:
        for capture in plan["captures"]:
            key = capture["key"]
            if key not in captures:
                captures[key] = dict(capture)
                order.append(key)
            elif capture.get("filter") and capture["filter"] != captures[key].get("filter"):
                captures[key]["filter"] = any_of([captures[key]["filter"], capture["filter"]])
    merged = dict(plans[0])
    for key in order:
        # a NodePort's candidates rewrite their own captures (each its backend): each keeps its own list
        captures[key].pop("unsnat", None)
    merged["captures"] = [captures[key] for key in order]
    merged["warnings"] = [w for plan in plans for w in plan.get("warnings") or []]
    merged["candidates"] = [
        dict({k: plan.get(k) for k in ("run", "src_node", "dst_node", "encap", "response_encap", "hops", "service")},
             **({"captures": plan["captures"]} if any(c.get("unsnat") for c in plan["captures"]) else {}))
        for plan in plans
    ]
    merged["service"] = dict(merged["service"], backend=None, chosen_by=None,
                             line=describe(dict(merged["service"], backend=None)))
    return merged


def public(service, plan=None):
    """What the report keeps of the Service: names, addresses, the backend and its node, one sentence."""
    backend = service.get("backend")
    out = {
        "name": service.get("service"), "port_name": service.get("port_name"), "kind": service.get("kind"),
        "address": service.get("address"), "port": service.get("port"), "mode": service.get("mode"),
        "read_on": service.get("read_on"), "endpoints": [hostport(e["ip"], e["port"]) for e in service.get("endpoints") or []],
        "masquerade": bool(service.get("masquerade")), "rejected": service.get("rejected"),
        "dnat_on": service.get("dnat_on") or (plan or {}).get("src_node") or service.get("read_on"), "backend": None,
        "chosen_by": service.get("chosen_by"),
    }
    if backend:
        out["backend"] = {"ip": backend["ip"], "port": backend.get("port"), "node": (plan or {}).get("dst_node"),
                          "pod": service.get("backend_pod")}
    out["line"] = describe(out)
    return out


def nodeport_plan(nodes, flow, service):
    """The hops of a pod's connection to a NodePort whose endpoint is on the node addressed: the source
    pod's veth and the source node's egress device, the node's underlay device (the packet as sent, to
    ``node IP:nodePort``), then the backend's veth after the DNAT and masquerade. The last capture is
    filtered on the backend's address and port and carries ``unsnat`` (plugin_utils/unsnat.py)."""
    nodes, unread = plan_.check_nodes(nodes)
    warnings = ["%s could not be read (%s)" % item for item in sorted(unread.items())]
    holders = plan_.find_workload(nodes, flow["src"], warnings)
    if len(holders) != 1:
        raise plan_.PlanError("src %s is not one pod on the nodes read (%s)" % (flow["src"], plan_.searched(nodes)))
    src_node, src_veth = holders[0]
    target, backend = service["dnat_on"], service["backend"]
    if backend.get("host") and backend["host"] != target:
        return _remote_nodeport_plan(nodes, flow, service, warnings, src_node, src_veth, unread)
    route = plan_.route_for(src_node, nodes[src_node], flow["dst"])
    if route is None:
        raise plan_.PlanError("%s has no route to the NodePort's node address %s" % (src_node, flow["dst"]))
    _gateway, dev = plan_.first_egress(src_node, route, flow["dst"], warnings)
    a_ip = _source_node_address(nodes[src_node], route, flow["dst"])
    builder = plan_.Builder(nodes, flow)
    if target in nodes:
        veth = next((d for n, d in plan_.find_workload(nodes, backend["ip"], warnings) if n == target), None)
        back = plan_.route_for(target, nodes[target], a_ip)
        under = plan_.first_egress(target, back, a_ip, warnings)[1] if back else None
        in_hop, veth_hop = dict(interface=under), dict(interface=veth)
    else:
        in_hop = dict(interface=None, select={"route_to": a_ip})
        veth_hop = dict(interface=None, select={"route_to": backend["ip"], "local": True})
    builder.hop("request", src_node, "src-veth", src_veth, node_ip=a_ip)
    builder.hop("request", src_node, "underlay-out", dev, capture_role="egress", node_ip=a_ip)
    builder.hop("request", target, "underlay-in", capture_role="egress", node_ip=flow["dst"], **in_hop)
    builder.hop("request", target, "dst-veth", node_ip=flow["dst"], **veth_hop)
    # the answer goes back the way the node routes the source pod: through the pod network's tunnel
    # when there is one (the request to a node address went on the underlay) - the encapsulation of the
    # source node's route to the backend, as Calico routes both ways alike
    encap, tunnel, port = "none", None, None
    pod_route = plan_.route_for(src_node, nodes[src_node], backend["ip"])
    if pod_route is not None:
        pod_dev = plan_.first_egress(src_node, pod_route, backend["ip"], warnings)[1]
        kind = plan_.link_kind(nodes[src_node], pod_dev)
        if kind in plan_.TUNNEL_KINDS:
            encap, tunnel = kind, pod_dev
            link = plan_.links_of(nodes[src_node]).get(pod_dev) or {"ifname": pod_dev}
            port = ((link.get("vxlan") or {}).get("port") or plan_.DEFAULT_PORTS["vxlan"]) if kind == "vxlan" else \
                (plan_.wireguard_port(link) if kind == "wireguard" else None)
    builder.hop("response", target, "dst-veth", node_ip=flow["dst"], **veth_hop)
    if tunnel:
        tunnel_hop = dict(interface=tunnel) if target in nodes else dict(interface=None, select={"route_to": flow["src"]})
        builder.hop("response", target, "tunnel-out", node_ip=flow["dst"], **tunnel_hop)
        builder.hop("response", target, "underlay-out", encap=encap, peer=a_ip, port=port, node_ip=flow["dst"], **in_hop)
        builder.hop("response", src_node, "underlay-in", dev, encap, flow["dst"], port, node_ip=a_ip)
        builder.hop("response", src_node, "tunnel-in", tunnel, node_ip=a_ip)
    else:
        builder.hop("response", target, "underlay-out", capture_role="egress", node_ip=flow["dst"], **in_hop)
        builder.hop("response", src_node, "underlay-in", dev, capture_role="egress", node_ip=a_ip)
    builder.hop("response", src_node, "src-veth", src_veth, node_ip=a_ip)
    plan = plan_.finish(builder, flow, src_node, target, "none", encap, warnings)
    for hop in (plan["hops"][3], plan["hops"][4]):
        hop["after_dnat"] = True
    veth_key = plan["hops"][3]["capture"]
    for capture in plan["captures"]:
        if capture["key"] == veth_key:
            capture["filter"] = "host %s and tcp port %d" % (backend["ip"], int(backend["port"]))
            capture["unsnat"] = {"pod": flow["src"], "node_ip": flow["dst"], "node_port": int(flow["port"]),
                                 "backend": backend["ip"], "backend_port": int(backend["port"])}
    plan["service"] = public(service, plan)
    return plan


def _source_node_address(node, route, node_address):
    """The source node's own address toward the NodePort's node: its route's preferred source, else its first
    address of the NodePort address's family (an IPv6 node address is answered over the IPv6 underlay:
    vxlan-v6.calico's peer is the source node's IPv6 address, never its IPv4 one)."""
    version = 6 if ":" in str(node_address) else 4
    return route.get("prefsrc") or next(iter(plan_.node_ips(node, version)), None)


def _masquerade_address(node, dev, version):
    """The address MASQUERADE gives a packet leaving ``node`` on ``dev``: the device's own (Calico's tunl0 or
    vxlan.calico address from the node's block, the NIC's address without encapsulation), or None."""
    for entry in node.get("addresses") or []:
        if not isinstance(entry, dict) or entry.get("ifname") != dev or not entry.get("local"):
            continue
        if entry.get("family") not in (None, "inet" if version == 4 else "inet6") or is_link_local(entry["local"]):
            continue
        return entry["local"]
    return None


def _leg_hops(builder, direction, leg, a_name, b_name, hop_flow, after_dnat):
    """The tunnel and underlay hops of one node-to-node leg (no pod veths), on ``hop_flow``."""
    first = len(builder.hops)
    if leg["tunnel_out"]:
        builder.hop(direction, a_name, "tunnel-out", leg["tunnel_out"], node_ip=leg["a_ip"], flow=hop_flow)
    builder.hop(direction, a_name, "underlay-out", leg["underlay_out"], leg["encap"], leg["peer"], leg["port"],
                node_ip=leg["a_ip"], flow=hop_flow)
    builder.hop(direction, b_name, "underlay-in", leg["underlay_in"], leg["encap"], leg["a_ip"], leg["port"],
                node_ip=leg["b_ip"], flow=hop_flow)
    if leg["tunnel_in"]:
        builder.hop(direction, b_name, "tunnel-in", leg["tunnel_in"], node_ip=leg["b_ip"], flow=hop_flow)
    if after_dnat:
        for hop in builder.hops[first:]:
            hop["after_dnat"] = True


def _remote_nodeport_plan(nodes, flow, service, warnings, src_node, src_veth, unread):
    """A NodePort whose endpoint is a pod of another node (externalTrafficPolicy Cluster): the source pod's
    veth and egress device, the node addressed (B) receiving ``node IP:nodePort`` on its underlay, B's way to
    the backend's node (C) as B routes the backend - after B's DNAT and masquerade, so those hops are
    filtered on ``B's masquerade address -> backend:targetPort`` - C's devices and the backend's veth; the
    answer the mirror to B, then B's way back to the source pod after the un-DNAT (the pod network's tunnel).
    Every capture that sees the translated packets carries ``unsnat``; the hops that see them are marked
    ``after_dnat`` (a device of B sees both kinds: plugin_utils/analysis.py splits its capture).

    C may be the source pod's own node A (the endpoint is A's pod): the request leaves A plain to B and
    comes back after B's DNAT, so A's NIC and tunnel, like B's, see the flow before and after it, and the
    plan's destination node is A again."""
    target, backend = service["dnat_on"], service["backend"]
    far = backend["host"]
    missing = [name for name in (target, far) if name not in nodes]
    if missing:
        why = "; ".join("%s: %s" % (name, unread.get(name, "not read")) for name in missing)
        raise plan_.PlanError(
            "NodePort %s forwards on %s to %s on %s; planning it needs the routes of both nodes, and %s could not "
            "be read (%s)" % (hostport(flow["dst"], flow["port"]), target, hostport(backend["ip"], backend["port"]), far,
                              " and ".join(missing), why))
    route = plan_.route_for(src_node, nodes[src_node], flow["dst"])
    if route is None:
        raise plan_.PlanError("%s has no route to the NodePort's node address %s" % (src_node, flow["dst"]))
    _gateway, dev = plan_.first_egress(src_node, route, flow["dst"], warnings)
    a_ip = _source_node_address(nodes[src_node], route, flow["dst"])
    veth = next((d for n, d in plan_.find_workload(nodes, backend["ip"], warnings) if n == far), None)
    if veth is None:
        raise plan_.PlanError("the NodePort's endpoint %s is not a pod on %s (%s)" % (
            backend["ip"], far, plan_.searched({far: nodes[far]})))
    forward = plan_.leg(nodes, target, far, backend["ip"], warnings)
    version = 6 if ":" in backend["ip"] else 4
    masq = _masquerade_address(nodes[target], forward["tunnel_out"] or forward["underlay_out"], version)
    if masq is None:
        masq = forward["a_ip"]
        warnings.append("%s has no address on %s, the device of its route to %s: its masquerade address is taken to "
                        "be %s" % (target, forward["tunnel_out"] or forward["underlay_out"], backend["ip"], masq))
    back = plan_.leg(nodes, far, target, masq, warnings)
    home = plan_.leg(nodes, target, src_node, flow["src"], warnings)
    translated = dict(flow, src=masq, dst=backend["ip"], port=int(backend["port"]))
    b_in = plan_.route_for(target, nodes[target], a_ip) if a_ip else None
    b_dev = plan_.first_egress(target, b_in, a_ip, warnings)[1] if b_in else None
    b_ip = flow["dst"]
    builder = plan_.Builder(nodes, flow)
    builder.hop("request", src_node, "src-veth", src_veth, node_ip=a_ip)
    builder.hop("request", src_node, "underlay-out", dev, capture_role="egress", node_ip=a_ip)
    builder.hop("request", target, "underlay-in", b_dev, capture_role="egress", node_ip=b_ip)
    _leg_hops(builder, "request", forward, target, far, translated, True)
    builder.hop("request", far, "dst-veth", veth, node_ip=forward["b_ip"], flow=translated)
    builder.hops[-1]["after_dnat"] = True
    builder.hop("response", far, "dst-veth", veth, node_ip=back["a_ip"], flow=translated)
    builder.hops[-1]["after_dnat"] = True
    _leg_hops(builder, "response", back, far, target, translated, True)
    _leg_hops(builder, "response", home, target, src_node, None, False)
    builder.hop("response", src_node, "src-veth", src_veth, node_ip=a_ip)
    plan = plan_.finish(builder, flow, src_node, far, forward["encap"], home["encap"], warnings)
    seen_after = {h["capture"] for h in plan["hops"] if h.get("after_dnat")}
    for capture in plan["captures"]:
        if capture["key"] in seen_after:
            capture["unsnat"] = {"pod": flow["src"], "node_ip": flow["dst"], "node_port": int(flow["port"]),
                                 "backend": backend["ip"], "backend_port": int(backend["port"])}
    plan["service"] = public(service, plan)
    return plan
