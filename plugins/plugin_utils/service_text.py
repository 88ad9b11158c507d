# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sentence that names a traced Service and its backend, and the words for what refuses a Service
without endpoints (stdlib only: the analysis imports it without the planning code, which needs netaddr
and ansible)."""

from __future__ import annotations

import re

# kubeproxy_nft.translate's ``rejected``: 'IP . tcp . PORT comment "ns/name:port" : goto reject-chain (map no-endpoint-services)'
_NFT_REJECTED = re.compile(r":\s*(?:goto\s+(\S+)|(drop))\s*\(map\s+([^)\s]+)\)\s*$")


def refuser(svc):
    """What refuses a Service without endpoints, in words: ``kube-proxy's REJECT rule`` (iptables mode),
    ``kube-proxy's nft map no-endpoint-services -> reject-chain`` (nftables mode: the map and its element's verdict)."""
    if svc.get("mode") != "nft":
        return "kube-proxy's REJECT rule"
    found = _NFT_REJECTED.search(svc.get("rejected") or "")
    if not found:
        return "kube-proxy's nft map no-endpoint-services"
    return "kube-proxy's nft map %s -> %s" % (found.group(3), found.group(1) or found.group(2))


def describe(svc):
    """``Service 10.96.10.20:443 -> backend 172.17.25.239:443 (pod ns/name on node-b), chosen by kube-proxy's DNAT on node-a``."""
    head = "%s %s:%s" % ("NodePort" if svc.get("kind") == "nodeport" else "Service", svc["address"], svc["port"])
    if svc.get("name"):
        head += " (%s)" % svc["name"]
    backend = svc.get("backend")
    if not backend and svc.get("endpoints"):
        return "%s -> one of %d endpoints (%s), chosen per connection by kube-proxy's DNAT on %s" % (
            head, len(svc["endpoints"]), ", ".join(svc["endpoints"]), svc.get("dnat_on"))
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
    text = "%s -> backend %s:%s%s, chosen by kube-proxy's DNAT on %s%s" % (
        head, backend["ip"], backend["port"], " (%s)" % " ".join(where) if where else "", svc.get("dnat_on"), masquerading)
    if len(svc.get("endpoints") or []) > 1:
        text += " (1 of %d endpoints; %s)" % (len(svc["endpoints"]), svc.get("chosen_by") or "?")
    return text
