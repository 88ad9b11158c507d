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

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import kubeproxy
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import any_of, capture_filter
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import describe


class ServiceError(ValueError):
    """The Service cannot be traced as asked; the message says why and what to do."""


def _text(service):
    return "Service %s (%s:%s)" % (service["service"] or service["port_name"] or "?", service["address"], service["port"])


MAX_ENDPOINTS = 4


def service_of(entry_name, entry, flow, local=False):
    """The Service behind ``flow["dst"]:port`` from the entry node's ``service_rules``, or None.

    :returns: kubeproxy.translate()'s dict plus ``read_on`` (the node whose rules say so) and
        ``backend`` (the one endpoint; None without endpoints, or with several: kube-proxy's DNAT
        picks one per connection, so every endpoint is a candidate and the captures tell which).
    :raises ServiceError: more than MAX_ENDPOINTS endpoints (the path nodes stay bounded).
    """
    rules = (entry or {}).get("service_rules") or {}
    if not rules.get("text") or flow.get("proto") == "icmp" or flow.get("port") in (None, ""):
        return None
    found = kubeproxy.translate(rules["text"], flow["dst"], flow["port"], flow.get("proto") or "tcp",
                                src=flow.get("src"), local=local)
    if found is None:
        return None
    found["read_on"] = entry_name
    found["source"] = rules.get("source")
    found["backend"] = None
    endpoints = found["endpoints"]
    if len(endpoints) > MAX_ENDPOINTS:
        raise ServiceError(
            "%s has %d endpoints (%s, ...); kube-proxy's DNAT on the source node picks one at random per connection "
            "and a trace captures on the nodes of at most %d candidates: trace an endpoint with -e dst=IP -e port=PORT"
            % (_text(found), len(endpoints), ", ".join("%s:%s" % (e["ip"], e["port"]) for e in endpoints[:MAX_ENDPOINTS]),
               MAX_ENDPOINTS)
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
    merged["captures"] = [captures[key] for key in order]
    merged["warnings"] = [w for plan in plans for w in plan.get("warnings") or []]
    merged["candidates"] = [
        {k: plan.get(k) for k in ("run", "src_node", "dst_node", "encap", "response_encap", "hops", "service")}
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
        "read_on": service.get("read_on"), "endpoints": ["%s:%s" % (e["ip"], e["port"]) for e in service.get("endpoints") or []],
        "masquerade": bool(service.get("masquerade")), "rejected": service.get("rejected"),
        "dnat_on": (plan or {}).get("src_node") or service.get("read_on"), "backend": None,
        "chosen_by": service.get("chosen_by"),
    }
    if backend:
        out["backend"] = {"ip": backend["ip"], "port": backend.get("port"), "node": (plan or {}).get("dst_node"),
                          "pod": service.get("backend_pod")}
    out["line"] = describe(out)
    return out
