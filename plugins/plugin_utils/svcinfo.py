# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A trace destination from the Kubernetes API's answer about a Service named ``svc/namespace/name``:
its ClusterIP and the one port to trace.

The answer is ``kubectl get services --namespace=NS --field-selector=metadata.name=NAME -o json``
(a list: a missing Service is an empty list, not an error to tell apart from a broken kubectl),
``kubernetes.core.k8s_info``'s ``resources``, or one Service object. Services that cannot be traced
as a ClusterIP are refused with what to do instead. Pure: no kubectl runs here.
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import api_items, cli_argv
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_ip

# a Service port's name: an IANA service name (lower-case letters, digits, '-'; at most 15)
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
_NUMBER = re.compile(r"^[0-9]{1,5}$")


def check_port_choice(value):
    """The ``port`` given with a Service name: a number, a port name, or "" (its only port)."""
    text = "" if value is None else str(value).strip()
    if text == "" or _NUMBER.match(text) and 1 <= int(text) <= 65535 or _PORT_NAME.match(text) and not text.isdigit():
        return text
    raise ValidationError("port %r is neither a port number (1-65535) nor a Service port name such as https; "
                          "leave it out for a Service with one port" % (value,))


def lookup_argv(ref, access, request_timeout=10):
    """The kubectl/oc command line that lists the Service ``ref`` (``{namespace, name}``) as JSON."""
    return cli_argv(access, request_timeout) + [
        "get", "services", "--namespace=%s" % ref["namespace"], "--field-selector=metadata.name=%s" % ref["name"],
        "--output=json"]


def _ports_text(ports):
    return ", ".join("%s%s/%s" % ("%s " % p["name"] if p.get("name") else "", p.get("port"), p.get("protocol") or "TCP")
                     for p in ports)


def _pick_port(label, ports, choice, proto):
    mine = [p for p in ports if (p.get("protocol") or "TCP").lower() == proto]
    if not ports:
        raise ValidationError("%s has no ports: nothing to connect to" % label)
    if not mine:
        raise ValidationError("%s has no %s port (its ports: %s); give the matching proto" % (label, proto, _ports_text(ports)))
    if choice == "":
        if len(mine) == 1:
            return mine[0]
        raise ValidationError("%s has %d %s ports (%s): say which with -e port=NAME or -e port=NUMBER"
                              % (label, len(mine), proto, _ports_text(mine)))
    key = "port" if choice.isdigit() else "name"
    want = int(choice) if key == "port" else choice
    found = [p for p in mine if p.get(key) == want]
    if not found:
        raise ValidationError("%s has no %s port %s (its ports: %s)" % (label, proto, choice, _ports_text(ports)))
    return found[0]


def _pick_address(label, spec, family):
    addresses = [a for a in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if a]
    if not addresses:
        raise ValidationError("%s has no ClusterIP yet: trace it once the API server has allocated one" % label)
    ips = [validate_ip(a, "the ClusterIP of %s" % label) for a in addresses]
    if family is None:
        return ips[0]
    same = [ip for ip in ips if (":" in ip) == (family == 6)]
    if not same:
        raise ValidationError("%s has only IPv%d ClusterIPs (%s) and the source is IPv%d: src and dst must be of one family"
                              % (label, 10 - family, ", ".join(ips), family))
    return same[0]


def service_target(answer, ref, port="", proto="tcp", family=None):
    """``{ip, port, port_name, protocol, namespace, name, text, type, selector}`` of the Service ``ref``
    (``selector``: its pod selector, None when it has none).

    :arg ref: ``{namespace, name, text}`` (podref.service_ref()).
    :arg port: a port number or name, or "" for the Service's only port of ``proto``.
    :arg family: 4 or 6 (the source pod's), to pick a dual-stack Service's ClusterIP; None: the first.
    :raises ValidationError: no such Service, headless, ExternalName, no ClusterIP, no such port or several.
    """
    items = [s for s in api_items(answer) if (s.get("metadata") or {}).get("name") == ref["name"]
             and (s.get("metadata") or {}).get("namespace", ref["namespace"]) == ref["namespace"]]
    label = "dst %s" % ref["text"]
    if not items:
        raise ValidationError("%s: no such Service in namespace %s (kubectl get services -n %s lists them)"
                              % (label, ref["namespace"], ref["namespace"]))
    spec = items[0].get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        raise ValidationError("%s is an ExternalName Service (a DNS alias for %s): it has no ClusterIP and no kube-proxy "
                              "rule to trace; trace to the address that name resolves to" % (label, spec.get("externalName") or "?"))
    if spec.get("clusterIP") == "None":
        raise ValidationError("%s is headless (clusterIP: None): kube-proxy does not translate it, clients connect to its "
                              "pods directly; trace one of them as -e dst=%s/POD (kubectl get endpointslices -n %s "
                              "-l kubernetes.io/service-name=%s lists them)" % (label, ref["namespace"], ref["namespace"], ref["name"]))
    chosen = _pick_port(label, spec.get("ports") or [], check_port_choice(port), str(proto or "tcp").lower())
    return {"ip": _pick_address(label, spec, family), "port": int(chosen["port"]), "port_name": chosen.get("name"),
            "protocol": str(proto or "tcp").lower(), "namespace": ref["namespace"], "name": ref["name"],
            "text": ref["text"], "type": kind,
            "selector": dict(spec.get("selector") or {}) or None}
