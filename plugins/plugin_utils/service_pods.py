# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nodes to reach for a Service traced without an inventory (``node_access`` kubectl/oc): those
hosting the ready pods its selector picks.

With an inventory, the source node's kube-proxy rules name the endpoints and its routes their nodes.
Through the API alone only the source pod's node is known before the trace, so the nodes of the
Service's pods are added too, read once with ``kubectl get pods --namespace=NS --selector=... -o
json`` (or kubernetes.core.k8s_info): the pods that are Ready are the endpoints kube-proxy writes
(EndpointSlice ``ready``). kube-proxy's rules still decide which endpoints the trace follows; this
only says where their nodes are. Pure: no kubectl runs here.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import api_items, cli_argv
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.services import MAX_ENDPOINTS
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_ip


def selector_text(target):
    """``k=v,k2=v2`` of the Service's pod selector (sorted); ValidationError for a Service without one."""
    selector = target.get("selector") or {}
    if not selector:
        raise ValidationError(
            "dst %s has no pod selector: its endpoints are kept by hand and need not be pods, so the API does not say "
            "which nodes to reach; trace it with an inventory of the nodes (leave node_access out), or trace an "
            "endpoint itself with -e dst=IP -e port=PORT" % target["text"])
    return ",".join("%s=%s" % (key, selector[key]) for key in sorted(selector))


def lookup_argv(target, access, request_timeout=10):
    """The kubectl/oc command line that lists the pods of the Service ``target`` (service_target's
    result) as JSON."""
    return cli_argv(access, request_timeout) + [
        "get", "pods", "--namespace=%s" % target["namespace"], "--selector=%s" % selector_text(target), "--output=json"]


def _ready(pod):
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP") or not (pod.get("spec") or {}).get("nodeName"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False        # terminating: kube-proxy has taken it out of the Service
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or [] if isinstance(c, dict)}
    return conditions.get("Ready", "True") == "True"


def service_pods(answer, target):
    """``{pods: [{ip, namespace, name, node, host_ip}], nodes: [{node, host_ip}]}`` of the ready pods
    in ``answer`` (the pods of ``target``'s selector), nodes in pod order without repeats.

    No ready pod is not an error: the trace then shows kube-proxy's REJECT on the source node.
    :raises ValidationError: more ready pods than a trace follows (services.MAX_ENDPOINTS).
    """
    pods = []
    for pod in api_items(answer):
        if not _ready(pod):
            continue
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        pods.append({"ip": validate_ip(status["podIP"], "the pod IP of %s/%s" % (meta.get("namespace"), meta.get("name"))),
                     "namespace": meta.get("namespace"), "name": meta.get("name"), "node": spec["nodeName"],
                     "host_ip": status.get("hostIP") or ""})
    if len(pods) > MAX_ENDPOINTS:
        shown = ", ".join("%s/%s" % (p["namespace"], p["name"]) for p in pods[:MAX_ENDPOINTS])
        raise ValidationError(
            "dst %s has %d ready pods (%s ...) and a trace captures on the nodes of at most %d candidates: trace one of "
            "them with -e dst=NAMESPACE/POD" % (target["text"], len(pods), shown, MAX_ENDPOINTS))
    nodes, seen = [], set()
    for pod in pods:
        if pod["node"] not in seen:
            seen.add(pod["node"])
            nodes.append({"node": pod["node"], "host_ip": pod["host_ip"]})
    return {"pods": pods, "nodes": nodes}
