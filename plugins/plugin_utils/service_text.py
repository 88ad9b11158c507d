# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sentence that names a traced Service and its backend, and the words for what refuses a Service
address without a backend (stdlib only: the analysis imports it without the planning code, which needs netaddr
and ansible)."""

from __future__ import annotations

import re

# kubeproxy_nft.translate's ``rejected``: 'IP . tcp . PORT comment "ns/name:port" : goto reject-chain (map no-endpoint-services)'
_NFT_REJECTED = re.compile(r":\s*(?:goto\s+(\S+)|(drop))\s*\(map\s+([^)\s]+)\)\s*$")


def hostport(ip, port):
    """``IP:PORT``, the IPv6 address in brackets (``[fd00:10:96::14]:443``) as kube-proxy and curl write it."""
    return "[%s]:%s" % (ip, port) if ":" in str(ip) else "%s:%s" % (ip, port)


def refuser(svc):
    """What refuses a Service without endpoints, in words: ``kube-proxy's REJECT rule`` (iptables mode),
    ``kube-proxy's nft map no-endpoint-services -> reject-chain`` (nftables mode: the map and its element's
    verdict), ``kube-proxy's nft chain cluster-ips-check`` (no Service at that address and port)."""
    if svc.get("mode") != "nft":
        return "kube-proxy's REJECT rule"
    if _cluster_ips_check(svc):
        return "kube-proxy's nft chain cluster-ips-check"
    found = _NFT_REJECTED.search(svc.get("rejected") or "")
    if not found:
        return "kube-proxy's nft map no-endpoint-services"
    return "kube-proxy's nft map %s -> %s" % (found.group(3), found.group(1) or found.group(2))


def _cluster_ips_check(svc):
    """kubeproxy_nft.translate's refusal by ``cluster-ips-check`` (a ClusterIP's unknown port, an unallocated address)."""
    return (svc.get("rejected") or "").endswith("(chain cluster-ips-check)")


def _dropped(svc):
    """The cluster-ips-check rule that refuses is the Service range's ``drop`` (no answer comes), not ``reject``."""
    return " drop " in (svc.get("rejected") or "")


def unserved(svc):
    """What is wrong with a Service address kube-proxy refuses, in words (a verdict's head): ``Service NS/NAME
    (IP:PORT) has no endpoints``; in nftables mode also ``IP is a ClusterIP but PORT is none of its Service's
    ports`` (the set cluster-ips) or ``IP is in the Service range but no Service's ClusterIP``."""
    if _cluster_ips_check(svc):
        if _dropped(svc):
            return "%s is in the Service range but no Service's ClusterIP" % svc["address"]
        return "%s is a ClusterIP but port %s is none of its Service's ports" % (svc["address"], svc["port"])
    return "Service %s (%s) has no endpoints" % (svc.get("name") or svc.get("port_name"), hostport(svc["address"], svc["port"]))


def describe(svc):
    """``Service 10.96.10.20:443 (ns/svc) -> backend 172.17.25.239:443 (pod ns/name on node-b), chosen by kube-proxy's DNAT on node-a``."""
    head = "%s %s" % ("NodePort" if svc.get("kind") == "nodeport" else "Service", hostport(svc["address"], svc["port"]))
    requested = svc.get("requested")
    if requested:
        # dst was the Service's name (svc/namespace/name), resolved to this address by the Kubernetes API
        head += " (%s, by name through %s)" % (svc.get("name") or requested["name"][len("svc/"):], requested.get("via") or "kubectl")
    elif svc.get("name"):
        head += " (%s)" % svc["name"]
    backend = svc.get("backend")
    if not backend and svc.get("endpoints"):
        return "%s -> one of %d endpoints (%s), chosen per connection by kube-proxy's DNAT on %s" % (
            head, len(svc["endpoints"]), ", ".join(svc["endpoints"]), svc.get("dnat_on"))
    if not backend and _cluster_ips_check(svc):
        return "%s: %s on %s %s" % (unserved(svc), refuser(svc), svc.get("dnat_on"), "drops it" if _dropped(svc) else "answers")
    if not backend:
        return "%s has no endpoints: %s on %s answers" % (head, refuser(svc), svc.get("dnat_on"))
    where = []
    if backend.get("pod"):
        where.append("pod %s" % backend["pod"])
    if backend.get("node"):
        where.append("on %s" % backend["node"])
    masquerading = ""
    if svc.get("snat_to"):          # what the DNAT node's conntrack entry says (plugin_utils/service_conntrack.py)
        masquerading = " (masquerading the source to %s)" % svc["snat_to"]
    elif svc.get("masquerade") and svc.get("kind") == "nodeport":
        masquerading = " (masquerading the source)"
    text = "%s -> backend %s%s, chosen by kube-proxy's DNAT on %s%s" % (
        head, hostport(backend["ip"], backend["port"]), " (%s)" % " ".join(where) if where else "", svc.get("dnat_on"), masquerading)
    if len(svc.get("endpoints") or []) > 1:
        text += " (1 of %d endpoints; %s)" % (len(svc["endpoints"]), svc.get("chosen_by") or "?")
    return text
