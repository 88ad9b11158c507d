# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A trace endpoint from the Kubernetes API's answer about its pod: its IP and the node hosting it.

The answer is a pod object (``kubectl get pod NAME -o json``), or a list of them (``kubectl get
pods -A --field-selector=status.podIP=IP -o json``'s ``items``, ``kubernetes.core.k8s_info``'s
``resources``). Pods that cannot be traced are refused with what to do instead.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_ip


def cli_argv(access, request_timeout=None):
    """kubectl/oc and its global flags: ``access`` is ``{cli, kubeconfig, context}``; ``request_timeout``
    (seconds) bounds each API request."""
    argv = [access["cli"]]
    if access.get("kubeconfig"):
        argv.append("--kubeconfig=%s" % access["kubeconfig"])
    if access.get("context"):
        argv.append("--context=%s" % access["context"])
    if request_timeout:
        argv.append("--request-timeout=%ds" % int(request_timeout))
    return argv


def lookup_argv(ref, access, request_timeout=None):
    """The kubectl/oc command line that reads the pod of ``ref`` (``{ip, namespace, name}``) as JSON;
    ``access``: ``{cli, kubeconfig, context}``."""
    argv = cli_argv(access, request_timeout)
    if ref.get("name"):
        return argv + ["get", "pod", ref["name"], "--namespace=%s" % ref["namespace"], "--output=json"]
    return argv + ["get", "pods", "--all-namespaces", "--field-selector=status.podIP=%s" % ref["ip"], "--output=json"]


def api_items(answer):
    """The objects of an API answer: a list's ``items`` (kubectl), a list (k8s_info's ``resources``) or one object."""
    items = answer.get("items") if isinstance(answer, dict) and "items" in answer else (
        answer if isinstance(answer, list) else [answer])
    return [item for item in items if isinstance(item, dict) and item]


def _label(what, ref):
    return "%s %s" % (what, "%s/%s" % (ref["namespace"], ref["name"]) if ref.get("name") else ref["ip"])


def pod_endpoint(answer, what, ref):
    """``{ip, node, host_ip, namespace, name}`` of the pod in ``answer``; ValidationError when there
    is no such pod, several, or one that is not running, not scheduled, has no IP yet or uses the
    host's network."""
    items = api_items(answer)
    label = _label(what, ref)
    if ref.get("name"):
        items = [pod for pod in items if (pod.get("metadata") or {}).get("name") == ref["name"]
                 and (pod.get("metadata") or {}).get("namespace", ref["namespace"]) == ref["namespace"]]
    else:
        # a hostNetwork pod has the node's IP: a pod IP names the pod network's pod
        own = [pod for pod in items if not (pod.get("spec") or {}).get("hostNetwork")]
        items = own or items
    if not items:
        if ref.get("name"):
            raise ValidationError("%s: no such pod in namespace %s (kubectl get pods -n %s lists them)%s" % (
                label, ref["namespace"], ref["namespace"],
                "; if %s is a Service, give it as svc/%s/%s" % (ref["name"], ref["namespace"], ref["name"]) if what == "dst" else ""))
        raise ValidationError("%s: no pod has this IP (kubectl get pods -A -o wide lists the pod IPs); give a pod's IP or namespace/pod%s" % (
            label, "; a Service's ClusterIP is given by name as svc/NAMESPACE/NAME" if what == "dst" else ""))
    if len(items) > 1:
        names = sorted("%s/%s" % ((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")) for p in items)
        raise ValidationError("%s: %d pods have this IP (%s); give one as namespace/pod" % (label, len(items), ", ".join(names)))
    pod = items[0]
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    name = "%s/%s" % (meta.get("namespace"), meta.get("name"))
    if spec.get("hostNetwork"):
        raise ValidationError("%s (%s) uses the host's network (hostNetwork: true): it has no interface of its own to trace; "
                              "give a pod on the pod network" % (label, name))
    phase = status.get("phase") or "unknown"
    if phase != "Running":
        raise ValidationError("%s (%s) is not running (phase %s): trace it once it runs (kubectl get pod -n %s %s)"
                              % (label, name, phase, meta.get("namespace"), meta.get("name")))
    if not spec.get("nodeName"):
        raise ValidationError("%s (%s) is not scheduled on a node yet" % (label, name))
    if not status.get("podIP"):
        raise ValidationError("%s (%s) has no IP yet: trace it once its network is set up" % (label, name))
    ip = validate_ip(status["podIP"], what)
    host_ip = status.get("hostIP") or ""
    return {"ip": ip, "node": spec["nodeName"], "host_ip": host_ip, "namespace": meta.get("namespace"), "name": meta.get("name")}
