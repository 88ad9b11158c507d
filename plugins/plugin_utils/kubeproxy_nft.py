# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-proxy's nftables mode: one Service address's translation from ``nft list table ip kube-proxy``.

kube-proxy's nftables proxier keeps the Service addresses in the verdict map ``service-ips``
(``10.96.0.10 . tcp . 53 : goto service-<hash>-ns/name/tcp/portname``) and the NodePorts in
``service-nodeports`` (``tcp . 30080 : goto external-<hash>-ns/name/tcp/portname``, which marks for
masquerade and goes to the service chain). A service chain marks sources outside the pod network
(``ip saddr != CIDR jump mark-for-masquerade``) and picks an endpoint chain with ``numgen random mod
N vmap { 0 : goto endpoint-<hash>-...__IP/PORT, ... }``; an endpoint chain DNATs (``dnat to
IP:PORT``). A Service without endpoints is an element of ``no-endpoint-services`` with its name in
a comment, going to ``reject-chain`` (or ``drop``). Since Kubernetes 1.31 the set ``cluster-ips`` holds
every ClusterIP and the chain ``cluster-ips-check`` rejects the ports no Service has on them (``ip daddr
@cluster-ips reject``) and drops the unallocated addresses of the Service range (``ip daddr { CIDR }
drop``). :func:`translate` answers in the shape of ``kubeproxy.translate``. Pure; tested on real listings
(tests/unit/fixtures/services).
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address, ip_network

_CHAIN = re.compile(r"^\s*chain\s+(\S+)\s*\{\s*$")
_BLOCK = re.compile(r"^\s*(map|set)\s+(\S+)\s*\{\s*$")
_GOTO = re.compile(r"goto\s+(\S+?)(?=[,}\s]|$)")
# ``dnat to 10.0.0.5:80`` (table ip), ``dnat to [fd00::5]:80`` (table ip6), ``dnat ip|ip6 to ...`` (as an inet table lists it)
_DNAT = re.compile(r"\bdnat\s+(?:ip6?\s+)?to\s+(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d+)\b")
_SADDR = re.compile(r"\bip6?\s+saddr\s+(!=\s+)?(\S+)\s+jump\s+mark-for-masquerade")
# a rule's counter (``nft list`` prints its values; kube-proxy writes none, a node's admin may add some)
_COUNTER = re.compile(r"\s*\bcounter\s+packets\s+\d+\s+bytes\s+\d+")


def parse_table(text):
    """``{"chains": {name: [rule lines]}, "maps": {name: [element text]}}`` of an ``nft list table`` output."""
    chains, maps = {}, {}
    current, kind, elements = None, None, None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if current is None:
            m = _CHAIN.match(raw)
            b = _BLOCK.match(raw)
            if m:
                current, kind = m.group(1), "chain"
                chains[current] = []
            elif b:
                current, kind, elements = b.group(2), b.group(1), None
                maps[current] = []
            continue
        if kind == "chain":
            if line == "}":
                current = None
            else:
                chains[current].append(_COUNTER.sub("", line))
            continue
        # a map or set: its elements may span lines, up to the closing brace of "elements = { ... }"
        if elements is not None:
            elements += " " + line
        elif line.startswith("elements = {"):
            elements = line[len("elements = {"):]
        elif line == "}":
            current = None
            continue
        if elements is not None and "}" in elements:
            body = elements[:elements.rindex("}")]
            maps[current] = [e.strip() for e in _split(body) if e.strip()]
            elements = None
    return {"chains": chains, "maps": maps}


def _split(body):
    """Elements separated by commas outside quotes."""
    parts, cur, quoted = [], [], False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _name(chain):
    """``("ns/name", "ns/name:port")`` from ``service-HASH-ns/name/proto/port`` (or endpoint-/external-)."""
    m = re.match(r"^(?:service|external|endpoint|local|cluster)-[A-Z0-9]+-([^/]+)/([^/]+)/[a-z]+/([^_]*)", chain or "")
    if not m:
        return None, None
    return "%s/%s" % (m.group(1), m.group(2)), "%s/%s:%s" % (m.group(1), m.group(2), m.group(3))


def _in(address, cidr):
    try:
        return ip_address(address) in ip_network(cidr if "/" in cidr else cidr + ("/128" if ":" in cidr else "/32"))
    except (AddressError, ValueError):
        return False


def _lookup(elements, key):
    """The verdict (goto target) of the element whose key is ``key`` (``a . b . c``), and its comment."""
    for element in elements:
        left, _sep, verdict = element.rpartition(":")
        comment = None
        if " comment " in left:
            left, _sep2, comment = left.partition(" comment ")
            comment = comment.strip().strip('"')
        if [w.strip() for w in left.split(".")] == key or left.strip() == " . ".join(key):
            target = _GOTO.search(verdict)
            return (target.group(1) if target else verdict.strip()), comment
    return None, None


def _walk(tables, chain, src, out, depth=0):
    if depth > 4:
        return
    rules = tables["chains"].get(chain) or []
    for rule in rules:
        masq = _SADDR.search(rule)
        if masq:
            negated, cidr = bool(masq.group(1)), masq.group(2)
            if src is None or _in(src, cidr) != negated:
                out["masquerade"].append(rule)
            continue
        if rule == "jump mark-for-masquerade":
            out["masquerade"].append(rule)
            continue
        targets = _GOTO.findall(rule)
        endpoints = [t for t in targets if t.startswith("endpoint-")]
        if endpoints:
            for target in endpoints:
                dnat = next((_DNAT.search(r) for r in tables["chains"].get(target) or [] if _DNAT.search(r)), None)
                if dnat:
                    ip = dnat.group(1) or dnat.group(2)
                    out["endpoints"].append({"ip": ip, "port": int(dnat.group(3)), "chain": target,
                                             "chance": round(1.0 / len(endpoints), 6), "hairpin": src == ip})
                    out["chains"].append(target)
            continue
        for target in targets:
            if target.startswith(("service-", "cluster-", "local-")):
                out["chains"].append(target)
                _walk(tables, target, src, out, depth + 1)


_RANGE_DROP = re.compile(r"^ip6?\s+daddr\s+\{?\s*([^{}]+?)\s*\}?\s+drop\b")
CLUSTER_IPS_CHECK = "cluster-ips-check"


def _cluster_ips_check(tables, dst, port, proto):
    """The rule of ``cluster-ips-check`` that refuses ``dst:port``: a ClusterIP without that port (its
    ``@cluster-ips reject``) or an unallocated address of the Service range (``drop``); None otherwise."""
    cluster_ips = [e.split(" comment ")[0].strip() for e in tables["maps"].get("cluster-ips") or []]
    for rule in tables["chains"].get(CLUSTER_IPS_CHECK) or []:
        ranges = _RANGE_DROP.match(rule)
        if (rule.startswith(("ip daddr @cluster-ips reject", "ip6 daddr @cluster-ips reject")) and dst in cluster_ips) \
                or (ranges and any(_in(dst, cidr.strip()) for cidr in ranges.group(1).split(","))):
            text = "%s (chain %s)" % (rule, CLUSTER_IPS_CHECK)
            return {"mode": "nft", "service": None, "port_name": None, "kind": "clusterip", "address": dst, "port": port,
                    "proto": proto, "endpoints": [], "masquerade": False, "masquerade_rules": [], "rejected": text,
                    "rule": text, "chains": [CLUSTER_IPS_CHECK]}
    return None


def translate(text, dst, port, proto="tcp", src=None, local=False):
    """What kube-proxy's nftables table does with ``src -> dst:port``, as kubeproxy.translate() answers, or None."""
    tables = parse_table(text) if isinstance(text, str) else text
    proto = (proto or "tcp").lower()
    try:
        dst = str(ip_address(dst))         # nft lists IPv6 addresses compressed (fd00:10:96::14)
    except (AddressError, ValueError):
        dst = str(dst)
    key = [dst, proto, str(port)]
    target, _comment = _lookup(tables["maps"].get("service-ips") or [], key)
    kind = "clusterip"
    if target is None and local:
        target, _comment = _lookup(tables["maps"].get("service-nodeports") or [], key[1:])
        kind = "nodeport"
    if target is None:
        rejected, comment = _lookup(tables["maps"].get("no-endpoint-services") or [], key)
        if rejected is None:
            return _cluster_ips_check(tables, str(dst), int(port), proto)
        service = comment.split(":", 1)[0] if comment else None
        verdict = rejected if rejected == "drop" else "goto %s" % rejected
        element = "%s . %s . %s comment \"%s\" : %s (map no-endpoint-services)" % (dst, proto, port, comment, verdict)
        return {"mode": "nft", "service": service, "port_name": comment, "kind": "clusterip", "address": str(dst),
                "port": int(port), "proto": proto, "endpoints": [], "masquerade": False, "masquerade_rules": [],
                "rejected": element, "rule": element, "chains": [rejected] if rejected != "drop" else []}
    out = {"endpoints": [], "masquerade": [], "chains": [target]}
    _walk(tables, target, src, out)
    service, port_name = _name(target)
    element = " . ".join(key if kind == "clusterip" else key[1:])
    which = "service-ips" if kind == "clusterip" else "service-nodeports"
    return {"mode": "nft", "service": service, "port_name": port_name, "kind": kind, "address": str(dst), "port": int(port),
            "proto": proto, "endpoints": out["endpoints"], "masquerade": bool(out["masquerade"]),
            "masquerade_rules": out["masquerade"], "rejected": None,
            "rule": "%s : goto %s (map %s)" % (element, target, which), "chains": out["chains"]}
