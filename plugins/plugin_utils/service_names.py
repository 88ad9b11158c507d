# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names the Kubernetes API gave a Service trace, put into its report: the Service asked for by
name (``svc/namespace/name``) and the pod behind the chosen backend's address.

The role reads the pods of the Service's endpoints (``kubectl get pods -A
--field-selector=status.podIP=IP``, or kubernetes.core.k8s_info) only when the run uses the API
anyway; each answer arrives here as the registered task result. A lookup that failed or found no
single pod leaves ``backend.pod`` null and becomes a note: naming is never a reason to fail a trace.
Pure (stdlib only).
"""

from __future__ import annotations

import json

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import api_items
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import describe


def _answer(result):
    """(pod objects, None) of one registered lookup, or (None, why it gave none)."""
    if "resources" in result and not result.get("failed"):
        return result["resources"] or [], None
    if result.get("rc") == 0 and not result.get("failed"):
        try:
            return api_items(json.loads(result.get("stdout") or "")), None
        except ValueError:
            return None, "the answer was not JSON"
    text = (result.get("stderr") or result.get("msg") or "no answer").strip().splitlines()
    return None, (text[-1] if text else "no answer")[:200]


def backend_pods(lookups):
    """``({ip: "namespace/name"}, {ip: note})`` from the registered results of the pod lookups (each
    carries its address under its loop variable)."""
    pods, notes = {}, {}
    for result in lookups or []:
        ip = result.get(result.get("ansible_loop_var") or "item")
        if not ip or result.get("skipped"):
            continue
        items, error = _answer(result)
        if error:
            notes[ip] = "the pod of backend %s could not be read from the Kubernetes API (%s)" % (ip, error)
            continue
        own = [p for p in items if not (p.get("spec") or {}).get("hostNetwork")
               and (p.get("status") or {}).get("podIP") in (None, ip)]
        names = sorted("%s/%s" % ((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name"))
                       for p in own)
        if len(names) == 1:
            pods[ip] = names[0]
        elif names:
            notes[ip] = "backend %s: %d pods have this IP (%s), so none is named" % (ip, len(names), ", ".join(names))
        else:
            notes[ip] = "backend %s: no pod has this IP in the Kubernetes API (an endpoint outside the pod network?)" % ip
    return pods, notes


def apply(report, names):
    """Put ``names`` (``{service, lookups, via}``: the Service as svcinfo.service_target() resolved it or
    None, the pod lookups' results, ``kubectl`` or ``kubernetes.core.k8s_info``) into ``report``."""
    if not names:
        return report
    requested = names.get("service")
    service = report.get("service")
    pods, problems = backend_pods(names.get("lookups"))
    notes = []
    if service:
        service = dict(service)
        if requested:
            service["requested"] = {"name": requested.get("text"), "port_name": requested.get("port_name"),
                                    "via": names.get("via") or "kubectl"}
        if service.get("backend"):
            service["backend"] = dict(service["backend"], pod=pods.get(service["backend"]["ip"]))
            if service["backend"]["ip"] in problems:       # the other candidates' lookups do not matter
                notes.append(problems[service["backend"]["ip"]])
        service["line"] = describe(service)
        report["service"] = service
    elif requested:
        notes.append("dst %s is ClusterIP %s:%s (from the Kubernetes API), but no kube-proxy rule on the source node "
                     "translates it: it was traced as a plain address" % (requested["text"], requested["ip"], requested["port"]))
    report["notes"] = list(report.get("notes") or []) + notes
    return report
