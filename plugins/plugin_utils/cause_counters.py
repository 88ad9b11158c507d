# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Say why from the nodes' counters: what dropped a direction where no packet says it.

The capture module returns, per node, the deltas of its counters between the start and the stop
of its captures (``counters`` in its stop result; module_utils/_counters.py). ``explain(d, path,
counters, flow)`` looks at the nodes around the hop where direction ``d`` stopped - the node of the
last hop that saw it and the node of the first that did not - and returns one cause item:

- ``netfilter-rule``: a DROP/REJECT rule (or a DROP chain policy) whose packet counter rose by
  about the number of packets lost there; Calico's chains (Felix's ``cali-pi-`` / ``cali-po-``
  policy, ``cali-pri-`` / ``cali-pro-`` profile, ``cali-tw-`` / ``cali-fw-`` workload chains) and
  kube-proxy's are named for what they belong to;
- ``route``: the node's own route to the address the direction goes to is a blackhole, unreachable
  or prohibit route, or there is none;
- ``rp-filter``: the kernel's reverse path filter counter (``TcpExt.IPReversePathFilter``) rose;
- ``conntrack``: conntrack's invalid / insert_failed / drop counters rose;
- ``neighbour``: the neighbour entry of a path node's address (or of the pod) is FAILED or INCOMPLETE;
- ``interface-drops``: the interface of the hop where it stopped counted rx/tx drops or errors;
- ``mtu``: the last hop that saw it saw packets larger than the MTU of the first hop that did not
  (with a tunnel's header on an underlay NIC) - its capture is read again for the largest packet
  (``cause_mtu.largest``) - which comes first: a DROP of the fragmentation needed is then its symptom.

A rule or counter that rose by far more or far less than what was lost is not taken for the cause
(it counted other traffic). When nothing explains it, ``unexplained(...)`` says "no counter on
<node> explains the loss" - nothing is guessed. Pure functions.
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import cause_mtu

DIRECTIONS = ("request", "response")
EVIDENCE_MAX = 8
_COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')
_REJECT_WITH = re.compile(r"--reject-with (\S+)")
_FAMILY = {"iptables": "iptables", "ip6tables": "ip6tables", "nft": "nft"}
_ROUTE_WORDS = {"blackhole": "blackhole route", "unreachable": "unreachable route", "prohibit": "prohibit route",
                "no route": "no route", "error": "no usable route"}


def by_node(caps):
    """``{node: counters}`` from the analysis' captures (each capture carries its node's ``counters``)."""
    out = {}
    for cs in caps:
        counters = (cs.input or {}).get("counters")
        if counters and cs.node not in out:
            out[cs.node] = counters
    return out


def stop_of(path):
    """``(stop row, last row that saw it, packets lost there)`` of one direction's rows, or None."""
    prev = None
    for r in path:
        # every copy seen counts (a retransmission crosses the same rules again), not only distinct packets
        if r["status"] == "LOST":
            if prev is None:
                return None
            return r, prev, prev["packets"] or 0
        if r["status"] == "partial":
            short = (prev["packets"] or 0) - (r["packets"] or 0) if prev is not None else 0
            return r, prev, short if short > 0 else (r.get("lost_from_previous") or 0)
        if r["packets"]:
            prev = r
    return None


def dangling(path):
    """``(first unknown row, last row that saw it)`` when a direction was last seen just before a hop that
    could not be captured and on no hop after it (the node could not even name that hop's device), or None."""
    for i, r in enumerate(path):
        if r["status"] == "unknown" and i and path[i - 1]["packets"] and not any(x["packets"] for x in path[i:]):
            return r, path[i - 1]
    return None


def comments(rule):
    return [a or b for a, b in _COMMENT.findall(rule)]


def owner(chain, rule=""):
    """What a chain belongs to, in words: Calico's policies, profiles and workload chains, kube-proxy's; or ''."""
    notes = [c for c in comments(rule) if not c.startswith("cali:")]
    for prefix, what in (("cali-pi-", "Calico ingress policy"), ("cali-po-", "Calico egress policy"),
                         ("cali-pri-", "Calico ingress profile"), ("cali-pro-", "Calico egress profile")):
        if chain.startswith(prefix):
            name = chain[len(prefix):]
            if name.startswith("_"):
                return "%s (Felix hashed its name into the chain name)" % what
            if prefix in ("cali-pri-", "cali-pro-") and name.startswith("kns."):
                return "%s of namespace %s" % (what, name[4:])
            if prefix in ("cali-pri-", "cali-pro-") and name.startswith("ksa."):
                return "%s of service account %s" % (what, name[4:])
            return "%s %s" % (what, name)
    for prefix, what in (("cali-tw-", "Calico's chain to the workload on %s"), ("cali-fw-", "Calico's chain from the workload on %s")):
        if chain.startswith(prefix):
            text = what % chain[len(prefix):]
            return "%s: %s" % (text, notes[0]) if notes else text
    if chain.startswith("cali-"):
        return "Calico chain %s%s" % (chain, (": %s" % notes[0]) if notes else "")
    if chain.startswith("KUBE-"):
        return "kube-proxy%s" % ((": %s" % notes[0]) if notes else " chain %s" % chain)
    return ""


def _rule_words(rule):
    """The rule's target and first comment, as the why line shows them: 'DROP, -m comment --comment cali:abc'."""
    words = [rule["target"]]
    reject = _REJECT_WITH.search(rule["rule"])
    if reject:
        words[0] += " --reject-with %s" % reject.group(1)
    found = comments(rule["rule"])
    if found:
        words.append("-m comment --comment %s" % found[0])
    return ", ".join(words)


def _rule_evidence(node, rule):
    """'node-b iptables-nft (packets +3, bytes +180): -t filter -A ...': the rule as iptables-save prints it."""
    counted = (rule["packets"], rule["bytes"])
    return "%s %s (packets +%d, bytes +%d): -t %s %s" % ((node, rule["source"]) + counted + (rule["table"], rule["rule"]))


def _rule_name(rule):
    family = _FAMILY.get(rule["source"].split("-")[0], rule["source"])
    if rule["policy"]:
        return "the %s %s %s policy" % (family, rule["table"], rule["chain"])
    return "%s %s %s rule %d" % (family, rule["table"], rule["chain"], rule["number"])


def _fits(delta, lost):
    """high when ``delta`` is about ``lost`` (a retransmission or two more), medium when near, else None."""
    if lost <= 0:
        return None
    if lost <= delta <= lost + max(2, lost // 2):
        return "high"
    if lost // 2 <= delta <= 3 * lost + 5:
        return "medium"
    return None


def _item(d, kind, text, evidence, confidence, row, rank):
    return {"dir": d, "kind": kind, "text": text, "evidence": evidence[:EVIDENCE_MAX], "confidence": confidence,
            "first": row, "who": "node", "rank": "counters", "refusal": None, "order": rank}


def _rule_items(d, nodes, counters, lost, stop):
    items = []
    for node in nodes:
        for rule in (counters.get(node) or {}).get("rules") or []:
            confidence = _fits(rule["packets"], lost)
            if not confidence:
                continue
            verb = "rejected" if rule["target"] == "REJECT" else "dropped"
            text = "%s by %s (%s; %d packet%s while %d %s lost) on %s" % (
                verb, _rule_name(rule), _rule_words(rule), rule["packets"], "" if rule["packets"] == 1 else "s", lost,
                "was" if lost == 1 else "were", node)
            who = owner(rule["chain"], rule["rule"])
            if who:
                text += ": %s" % who
            evidence = [_rule_evidence(node, rule)]
            off = abs(rule["packets"] - lost)
            items.append((0 if confidence == "high" else 2, off, _item(d, "netfilter-rule", text, evidence, confidence, stop, 0)))
    return items


def _route_items(d, nodes, counters, flow, stop):
    addr = flow["dst"] if d == 0 else flow["src"]
    items = []
    for node in nodes:
        route = ((counters.get(node) or {}).get("routes") or {}).get(addr)
        if not route or not route.get("error"):
            continue
        words = _ROUTE_WORDS.get(route["error"], "no usable route")
        text = "%s for %s on %s" % (words, addr, node)
        if route.get("route"):
            text += " (%s)" % route["route"]
        evidence = ["%s: ip route get %s: %s" % (node, addr, route.get("message") or route["error"])]
        if route.get("route"):
            evidence.append("%s: %s" % (node, route["route"]))
        items.append((1, 0, _item(d, "route", text, evidence, "high", stop, 1)))
    return items


def _kernel_items(d, nodes, counters, lost, stop, flow):
    items = []
    for node in nodes:
        c = counters.get(node) or {}
        kernel, sysctl = c.get("kernel") or {}, c.get("sysctl") or {}
        rpf = kernel.get("TcpExt.IPReversePathFilter")
        if rpf:
            confidence = _fits(rpf, lost) or "low"
            modes = ", ".join("%s=%s" % (k.replace("net.ipv4.conf.", "").replace(".rp_filter", ""), v)
                              for k, v in sorted(sysctl.items()) if k.endswith(".rp_filter") and v)
            text = "the reverse path filter dropped it on %s (TcpExt.IPReversePathFilter rose by %d while %d %s lost%s)" % (
                node, rpf, lost, "was" if lost == 1 else "were", "; rp_filter %s" % modes if modes else "")
            items.append((3, abs(rpf - lost), _item(d, "rp-filter", text, ["%s: TcpExt.IPReversePathFilter +%d" % (node, rpf)],
                                                    confidence, stop, 3)))
        ct = dict((k, v) for k, v in (c.get("conntrack") or {}).items() if k in ("invalid", "insert_failed", "drop") and v)
        if ct:
            total = sum(ct.values())
            confidence = _fits(total, lost)
            if confidence:
                what = ", ".join("%s +%d" % (k, v) for k, v in sorted(ct.items()))
                text = "conntrack on %s counted the loss (%s while %d %s lost)" % (node, what, lost, "was" if lost == 1 else "were")
                items.append((4, abs(total - lost), _item(d, "conntrack", text, ["%s: conntrack %s" % (node, what)],
                                                          "medium", stop, 4)))
        for entry in c.get("neighbours") or []:
            if entry.get("dst") in flow["neighbours"]:
                text = "%s's neighbour entry for %s on %s is %s: the next hop does not answer ARP/ND" % (
                    node, entry["dst"], entry.get("dev"), entry["state"])
                items.append((5, 0, _item(d, "neighbour", text, ["%s: ip neigh: %s dev %s %s" % (
                    node, entry["dst"], entry.get("dev"), entry["state"])], "medium", stop, 5)))
        for iface in (stop["interface"],):
            link = (c.get("links") or {}).get(iface) if node == stop["node"] else None
            drops = dict((k, v) for k, v in (link or {}).items() if k != "mtu" and v)
            if drops and _fits(sum(drops.values()), lost):
                what = ", ".join("%s +%d" % (k, v) for k, v in sorted(drops.items()))
                text = "%s %s counted the loss (%s while %d %s lost)" % (node, iface, what, lost, "was" if lost == 1 else "were")
                items.append((6, 0, _item(d, "interface-drops", text, ["%s %s: %s" % (node, iface, what)], "medium", stop, 6)))
    return items


def _mtu_items(d, stop, prev, counters, flow):
    measure = flow.get("largest")
    link = ((counters.get(stop["node"]) or {}).get("links") or {}).get(stop["interface"]) or {}
    mtu = link.get("mtu")
    if measure is None or prev is None or not mtu:
        return []
    size = measure(prev)
    extra = cause_mtu.overhead(stop.get("encap"))      # the size measured is the inner packet's
    if not size or size + extra <= mtu:
        return []
    with_header = " (%d bytes with the %s header)" % (size + extra, stop["encap"].upper()) if extra else ""
    text = "packets of %d bytes seen at %s %s, never at %s %s%s: MTU %d on %s %s" % (
        size, prev["node"], prev["interface"], stop["node"], stop["interface"], with_header, mtu, stop["node"], stop["interface"])
    evidence = ["%s %s: largest packet %d bytes" % (prev["node"], prev["interface"], size),
                "%s %s: mtu %d" % (stop["node"], stop["interface"], mtu)]
    return [(-1, 0, _item(d, "mtu", text, evidence, "high", stop, -1))]


def stop_nodes(stop, prev):
    """The nodes where a direction that stopped between ``prev`` and ``stop`` could have been dropped."""
    nodes = [stop["node"]]
    if prev is not None and prev["node"] not in nodes:
        nodes.insert(0, prev["node"])
    return nodes


def explain(d, path, counters, flow):
    """The counters' cause item of direction ``d`` (module docstring), or None.

    ``path``: the direction's rows in order (analysis rows, classified); ``counters``: ``{node:
    counters}`` (``by_node``); ``flow``: ``{"src", "dst", "neighbours", "largest"}`` - the pods'
    addresses, the addresses whose neighbour entries matter (the path nodes', the pods') and
    ``largest(row)``, the largest packet of a row's direction at that hop (None: no MTU cause).
    """
    found = stop_of(path)
    if not counters:
        return None
    if not found:
        # the next hop could not be captured: only a route that refuses the address says why
        hanging = dangling(path)
        if not hanging:
            return None
        nodes = [n for n in stop_nodes(*hanging) if n in counters]
        items = _route_items(d, nodes, counters, flow, hanging[0])
        return items[0][2] if items else None
    stop, prev, lost = found
    nodes = [n for n in stop_nodes(stop, prev) if n in counters]
    if not nodes:
        return None
    items = _mtu_items(d, stop, prev, counters, flow)
    items += _rule_items(d, nodes, counters, lost, stop) + _route_items(d, nodes, counters, flow, stop)
    items += _kernel_items(d, nodes, counters, lost, stop, flow)
    if not items:
        return None
    items.sort(key=lambda i: (i[0], i[1]))
    best = items[0][2]
    for _order, _off, other in items[1:]:
        if len(best["evidence"]) < EVIDENCE_MAX:
            best["evidence"].append("also: %s" % other["text"])
    best["evidence"].extend(not_read(nodes, counters)[:EVIDENCE_MAX])
    return best


def rejecting_rule(item, counters):
    """For an ICMP error item: the REJECT rule that counted on the node where the error was first seen (who
    sent it, when its address is not a path node's), as ``(text, evidence)``, or None."""
    node = (item.get("first") or {}).get("node")
    rules = [r for r in ((counters.get(node) or {}).get("rules") or []) if r["target"] == "REJECT"]
    if not rules:
        return None
    rule = max(rules, key=lambda r: r["packets"])
    count = "1 packet" if rule["packets"] == 1 else "%d packets" % rule["packets"]
    text = "%s's %s sent it (%s; %s)" % (node, _rule_name(rule), _rule_words(rule), count)
    return text, _rule_evidence(node, rule)


def unexplained(d, path, counters):
    """"no counter on <node> explains the loss" for a direction that stopped where the nodes' counters
    were read, else None (no counters there: the packets' own text stays)."""
    found = stop_of(path)
    if not found:
        return None
    stop, prev, _lost = found
    nodes = [n for n in stop_nodes(stop, prev) if n in counters]
    if not nodes:
        return None
    text = "no counter on %s explains the loss" % " or ".join(nodes)
    unread = not_read(nodes, counters)
    return "%s (%s)" % (text, "; ".join(unread)) if unread else text


def not_read(nodes, counters):
    """What could not be read on ``nodes``: ``["node-b: could not read ip6tables rules: ..."]`` (the capture's notes)."""
    return ["%s: %s" % (node, note) for node in nodes for note in (counters.get(node) or {}).get("notes") or []]
