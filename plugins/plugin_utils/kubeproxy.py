# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-proxy's translation of one Service address, from a node's ``iptables-save`` (iptables mode).

kube-proxy's iptables proxier writes, in the nat table, ``KUBE-SERVICES`` rules that match a
ClusterIP and port (``-d 10.96.0.10/32 -p tcp --dport 53 -m comment --comment "ns/name:port cluster
IP"``) and jump to ``KUBE-SVC-<hash>``; its last rule sends node-local destinations to
``KUBE-NODEPORTS``, whose rules match a nodePort and jump to ``KUBE-EXT-<hash>`` (older releases:
straight to ``KUBE-SVC-*``). ``KUBE-SVC-*`` picks one ``KUBE-SEP-<hash>`` per endpoint with ``-m
statistic --mode random --probability P`` (the last one unconditional), and each ``KUBE-SEP-*``
DNATs (``-j DNAT --to-destination IP:PORT``). Rules jumping to ``KUBE-MARK-MASQ`` mark packets that
``KUBE-POSTROUTING`` masquerades. A Service without endpoints has instead a filter-table rule
``... "ns/name:port has no endpoints" ... -j REJECT``.

:func:`parse_save` reads an iptables-save text into chains; :func:`translate` follows them for one
destination address, port and protocol. Pure; tested on real outputs (tests/unit/fixtures/services).
"""

from __future__ import annotations

import shlex

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address, ip_network

_MAX_DEPTH = 6
_PASSTHROUGH = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")


class RulesError(ValueError):
    """The rules cannot be read; the message says which line."""


def _rule(line):
    """One ``-A CHAIN ...`` line as a dict: chain, src/dst (with negation), proto, dport, target,
    comment, to (DNAT), probability, dst_type, reject_with, text."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise RulesError("cannot read the rule %r: %s" % (line, exc)) from None
    rule = {"chain": words[1], "text": line, "src": None, "src_neg": False, "dst": None, "dst_neg": False,
            "proto": None, "dport": None, "target": None, "comment": None, "to": None, "probability": None,
            "dst_type": None, "reject_with": None}
    negate = False
    i = 2
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if word == "!":
            negate = True
            i += 1
            continue
        if word in ("-s", "--source"):
            rule["src"], rule["src_neg"] = nxt, negate
        elif word in ("-d", "--destination"):
            rule["dst"], rule["dst_neg"] = nxt, negate
        elif word in ("-p", "--protocol"):
            rule["proto"] = nxt
        elif word in ("--dport", "--destination-port"):
            rule["dport"] = nxt
        elif word in ("-j", "-g", "--jump", "--goto"):
            rule["target"] = nxt
        elif word == "--comment":
            rule["comment"] = nxt
        elif word == "--to-destination":
            rule["to"] = nxt
        elif word == "--probability":
            rule["probability"] = float(nxt)
        elif word == "--dst-type":
            rule["dst_type"] = nxt
        elif word == "--reject-with":
            rule["reject_with"] = nxt
        else:
            negate = False
            i += 1
            continue
        negate = False
        i += 2
    return rule


def parse_save(text):
    """``{table: {chain: [rule, ...]}}`` of an iptables-save output (``-c`` counters allowed)."""
    tables, table = {}, None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line.startswith("[") and "] " in line:
            line = line.split("] ", 1)[1]
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {})
        elif line.startswith(":") and table is not None:
            table.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A ") and table is not None:
            rule = _rule(line)
            table.setdefault(rule["chain"], []).append(rule)
    return tables


def _in(address, cidr):
    try:
        return ip_address(address) in ip_network(cidr if "/" in cidr else cidr + ("/32" if ":" not in cidr else "/128"))
    except (AddressError, ValueError):
        return False


def _matches(rule, dst, port, proto, src, local):
    """Whether the packet (src -> dst:port/proto, ``local``: dst is the node's own) passes the rule's tests."""
    if rule["proto"] and rule["proto"] != proto:
        return False
    if rule["dport"] and str(rule["dport"]) != str(port):
        return False
    if rule["dst"] and _in(dst, rule["dst"]) == rule["dst_neg"]:
        return False
    if rule["src"] and src is not None and _in(src, rule["src"]) == rule["src_neg"]:
        return False
    if rule["dst_type"] == "LOCAL" and not local:
        return False
    return True


def _name_of(comment):
    """``("ns/name", "ns/name:port")`` from a kube-proxy comment."""
    text = (comment or "").strip()
    for tail in (" cluster IP", " has no endpoints", " external IP", " loadbalancer IP", " health check node port"):
        if text.endswith(tail):
            text = text[: -len(tail)]
    if text.startswith("masquerade traffic for "):
        text = text[len("masquerade traffic for "):].replace(" external destinations", "")
    text = text.split(" -> ")[0]
    if "/" not in text:
        return None, None
    return text.split(":", 1)[0], text


def _endpoint(rules):
    for rule in rules:
        if rule["target"] == "DNAT" and rule["to"]:
            host, _sep, port = rule["to"].rpartition(":")
            host = host.strip("[]")
            return host, int(port) if port.isdigit() else None
    return None, None


def _walk(nat, chain, dst, port, proto, src, out, share, depth):
    """Follow ``chain`` for the packet: endpoints (with their chance) into ``out``; masquerade marks."""
    if depth > _MAX_DEPTH:
        return
    remaining = share
    for rule in nat.get(chain) or []:
        if not _matches(rule, dst, port, proto, src, local=False) or remaining <= 0:
            continue
        target = rule["target"] or ""
        if target == "KUBE-MARK-MASQ":
            out["masquerade"].append(rule["text"])
            continue
        chance = remaining * (rule["probability"] if rule["probability"] is not None else 1.0)
        if target.startswith("KUBE-SEP-"):
            ip, to_port = _endpoint(nat.get(target) or [])
            if ip:
                masq = [r["text"] for r in nat.get(target) or []
                        if r["target"] == "KUBE-MARK-MASQ" and _matches(r, dst, port, proto, src, local=False)]
                out["endpoints"].append({"ip": ip, "port": to_port, "chain": target, "chance": round(chance, 6),
                                         "hairpin": bool(masq)})
                out["chains"].append(target)
        elif target.startswith(_PASSTHROUGH):
            out["chains"].append(target)
            _walk(nat, target, dst, port, proto, src, out, chance, depth + 1)
        elif target in ("DROP", "REJECT"):
            out["dropped"].append(rule["text"])
        remaining -= chance
        if target == "RETURN":
            break


def translate(text, dst, port, proto="tcp", src=None, local=False):
    """What kube-proxy's rules in ``text`` (an iptables-save output) do with ``src -> dst:port``.

    :arg local: ``dst`` is an address of the node (a nodePort is looked up then).
    :returns: None when no kube-proxy rule names ``dst:port``; else ``{"mode": "iptables", "service":
        "ns/name", "port_name": "ns/name:port", "kind": "clusterip"|"nodeport", "address", "port", "proto",
        "endpoints": [{"ip", "port", "chain", "chance", "hairpin"}], "masquerade": bool (a KUBE-MARK-MASQ
        rule applies), "rejected": the REJECT rule's text when the Service has no endpoints, else None,
        "rule": the matching rule's text, "chains": the chains followed}``.
    """
    tables = parse_save(text) if isinstance(text, str) else text
    nat, flt = tables.get("nat") or {}, tables.get("filter") or {}
    proto = (proto or "tcp").lower()
    out = {"endpoints": [], "masquerade": [], "chains": [], "dropped": []}
    found = None
    for rule in nat.get("KUBE-SERVICES") or []:
        target = rule["target"] or ""
        if rule["dst"] and target.startswith(_PASSTHROUGH) and _matches(rule, dst, port, proto, src, local):
            found = dict(rule, kind="clusterip")
            break
    if found is None and local:
        for rule in nat.get("KUBE-NODEPORTS") or []:
            target = rule["target"] or ""
            if target == "KUBE-MARK-MASQ" and _matches(rule, dst, port, proto, src, local):
                out["masquerade"].append(rule["text"])
            elif target.startswith(_PASSTHROUGH) and _matches(rule, dst, port, proto, src, local):
                found = dict(rule, kind="nodeport")
                break
    rejected = None
    if found is None:
        for chain in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS"):
            for rule in flt.get(chain) or []:
                if rule["target"] == "REJECT" and _matches(rule, dst, port, proto, src, local or chain != "KUBE-EXTERNAL-SERVICES") \
                        and (rule["dst"] or rule["dst_type"] == "LOCAL"):
                    found, rejected = dict(rule, kind="clusterip" if rule["dst"] else "nodeport"), rule["text"]
                    break
            if found is not None:
                break
        if found is None:
            return None
    else:
        out["chains"].append(found["target"])
        _walk(nat, found["target"], dst, port, proto, src, out, 1.0, 1)
    service, port_name = _name_of(found["comment"])
    return {
        "mode": "iptables", "service": service, "port_name": port_name, "kind": found["kind"],
        "address": str(dst), "port": int(port) if port is not None else None, "proto": proto,
        "endpoints": out["endpoints"], "masquerade": bool(out["masquerade"]), "masquerade_rules": out["masquerade"],
        "rejected": rejected, "rule": found["text"], "chains": out["chains"],
    }
