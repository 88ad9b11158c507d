# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Say why: the packets in the captures that explain what happened to a direction.

``explain(an, rows)`` looks at what ``analysis.Analysis`` kept besides the packet counts - the
flow's TCP RSTs per capture and direction (``resets``) and the ICMP/ICMPv6 errors quoting one of
its packets (``icmp``) - and returns one cause per direction:

    {"kind": "reset" | "icmp-unreachable" | "icmp-frag-needed" | "icmp-time-exceeded" | "icmp-error",
     "evidence": ["<time> <node> <interface>: <packet as seen>", ...],
     "confidence": "high" | "medium" | "low",
     "text": "one plain sentence"}

or None. A RST belongs to the direction it travels (it is that direction's packet); an ICMP
error to the direction of the packet it quotes (it travels the other way). Who sent a RST is
read from where it was first seen along its direction's hops: on the first hop (the sending
pod's veth) it is that pod; first seen further on, with the hops before it captured and
without it, something in between sent it. An ICMP error names its sender (its own source
address). Nothing is guessed: no such packet, no cause.

Pure functions; the analysis calls ``explain`` and ``why`` and puts the result in the report.
"""

from __future__ import annotations

import time

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import cause_counters as cc
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import cause_mtu
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec

NO_EXPLANATION = "no packet in the captures explains the loss"
DIRECTIONS = ("request", "response")
EVIDENCE_MAX = 8

_ICMP4 = {3: {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
              4: "fragmentation needed", 5: "source route failed", 6: "destination network unknown",
              7: "destination host unknown", 9: "network administratively prohibited",
              10: "host administratively prohibited", 11: "network unreachable for TOS", 12: "host unreachable for TOS",
              13: "communication administratively prohibited", 14: "host precedence violation", 15: "precedence cutoff"},
          4: {}, 11: {0: "time exceeded in transit", 1: "fragment reassembly time exceeded"}, 12: {}}
_ICMP4_TYPE = {3: "destination unreachable", 4: "source quench", 11: "time exceeded", 12: "parameter problem"}
_ICMP6 = {1: {0: "no route to destination", 1: "communication administratively prohibited", 2: "beyond scope of source address",
              3: "address unreachable", 4: "port unreachable", 5: "source address failed ingress/egress policy",
              6: "reject route to destination"},
          2: {}, 3: {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"}, 4: {}}
_ICMP6_TYPE = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 4: "parameter problem"}
_PROTO_NAME = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}

# ranks: the lower, the more it explains (and the first one wins in a direction)
_RANK = {"refusal": 0, "path-reset": 1, "icmp-unreachable": 2, "icmp-frag-needed": 3, "icmp-time-exceeded": 4,
         "icmp-error": 5, "reset": 6, "counters": 7}


_SYN = [i for i in range(64) if i & 0x12 == 0x02]       # flag words: SYN without ACK
_SYNACK = [i for i in range(64) if i & 0x12 == 0x12]


def _clock(ts_ns):
    return "%s.%06d" % (time.strftime("%H:%M:%S", time.gmtime(ts_ns // 1000000000)), (ts_ns % 1000000000) // 1000)


def _hop(r):
    return "%s %s" % (r["node"], r["interface"] or "?")


def _tcp_text(key):
    return "%s.%d > %s.%d %s" % (dec.ip_text(key[dec.KEY_SRC]), key[dec.KEY_SPORT], dec.ip_text(key[dec.KEY_DST]),
                                 key[dec.KEY_DPORT], dec.flag_names(key[dec.KEY_OFFFLAGS]))


def icmp_label(err, proto):
    """'ICMP port unreachable', 'ICMPv6 packet too big', ... for an IcmpError."""
    names, types = (_ICMP4, _ICMP4_TYPE) if proto == 1 else (_ICMP6, _ICMP6_TYPE)
    what = (names.get(err.type) or {}).get(err.code) or types.get(err.type) or "type %d" % err.type
    return "%s %s" % ("ICMP" if proto == 1 else "ICMPv6", what)


def icmp_kind(err, proto):
    if (proto == 1 and err.type == 3 and err.code == 4) or (proto == 58 and err.type == 2):
        return "icmp-frag-needed"
    if (proto == 1 and err.type == 3) or (proto == 58 and err.type == 1):
        return "icmp-unreachable"
    if (proto == 1 and err.type == 11) or (proto == 58 and err.type == 3):
        return "icmp-time-exceeded"
    return "icmp-error"


def _icmp_text(err, proto):
    extra = ", mtu %d" % err.mtu if err.mtu else ""
    quoted = _PROTO_NAME.get(err.qproto, "proto %d" % err.qproto)
    if err.qproto in (6, 17):
        inner = "%s %s.%d > %s.%d" % (quoted, dec.ip_text(err.qsrc), err.qsport, dec.ip_text(err.qdst), err.qdport)
    else:
        inner = "%s %s > %s" % (quoted, dec.ip_text(err.qsrc), dec.ip_text(err.qdst))
    return "%s > %s %s (type %d code %d%s) for %s" % (dec.ip_text(err.sender), dec.ip_text(err.target), icmp_label(err, proto),
                                                      err.type, err.code, extra, inner)


class _Context(object):
    """What the texts need to know about the run: addresses, port, node IPs."""

    def __init__(self, an):
        run = an.run
        self.src, self.dst = str(run.get("src")), str(run.get("dst"))
        self.src_key, self.dst_key = an.src, an.dst
        self.proto, self.port = an.proto, an.port
        self.nodes = {}
        plan = an.plan
        for hop in plan.get("hops") or []:
            if hop.get("node_ip") and hop.get("node"):
                self.nodes.setdefault(str(hop["node_ip"]), hop["node"])
        for host, ip in ((plan.get("path") or {}).get("node_ips") or {}).items():
            if ip:
                self.nodes.setdefault(str(ip), host)

    def what(self):
        return "port %d" % self.port if self.port is not None else "the %s probe" % _PROTO_NAME.get(self.proto, "")

    def sender(self, addr):
        """(who, short name): the destination pod, the source pod, a node by its IP, or the address."""
        if addr == self.dst_key:
            return "dst", "the destination pod"
        if addr == self.src_key:
            return "src", "the source pod"
        text = dec.ip_text(addr)
        if text in self.nodes:
            return "node", "%s (%s)" % (self.nodes[text], text)
        return "other", text


def _sightings(path, caps, items_of):
    """{hash: [(position in path, row, ts, item)]} over the captured rows of one direction, in path order."""
    seen = {}
    for pos, r in enumerate(path):
        cs = caps[r["_ci"]]
        if cs.status != "ok":
            continue
        for item in items_of(cs):
            h, ts = item[0], item[1]
            lst = seen.setdefault(h, [])
            if not any(x[1] is r for x in lst):
                lst.append((pos, r, ts, item))
    return seen


def _evidence(sights, line):
    return ["%s %s: %s" % (_clock(ts), _hop(r), line(item)) for _pos, r, ts, item in sights[:EVIDENCE_MAX]]


def _reset_item(d, path, caps, ctx):
    """The first RST of direction d (by the hop it was first seen on, then time) as a cause item."""
    groups = _sightings(path, caps, lambda cs: cs.resets[d])
    if not groups:
        return None
    sights = min(groups.values(), key=lambda s: (s[0][0], s[0][2]))
    pos, first, _ts, item = sights[0]
    key = item[2]
    flags = dec.flag_names(key[dec.KEY_OFFFLAGS])
    side = "destination" if d == 1 else "source"
    earlier = path[:pos]
    captured = [r for r in earlier if caps[r["_ci"]].status == "ok"]
    evidence = _evidence(sights, lambda it: _tcp_text(it[2]))
    # refused: the source sent a SYN and this side sent no SYN+ACK where the RST was first seen
    syn = any(cs.flags[0][i] for cs in caps if cs.status == "ok" for i in _SYN)
    synack = any(caps[first["_ci"]].flags[d][i] for i in _SYNACK)
    refused = d == 1 and syn and not synack
    if pos == 0:
        who, confidence = "endpoint", "high"
    elif captured:
        who = "path"
        prev = captured[-1]
        gap = [r for r in earlier[path.index(prev) + 1:] if caps[r["_ci"]].status != "ok"]
        confidence = "medium" if gap else "high"
        evidence.append("not seen on %s (captured)" % ", ".join(_hop(r) for r in captured))
    else:
        who, confidence = "either", "medium"
    cause = {"dir": d, "kind": "reset", "evidence": evidence[:EVIDENCE_MAX + 1], "confidence": confidence, "first": first,
             "who": who}
    hop = _hop(first)
    if who == "endpoint":
        if refused:
            cause.update(rank="refusal", refusal="%s refused port %d (RST from the destination pod)" % (ctx.dst, ctx.port),
                         text="the destination pod answered the SYN with %s (first seen on its veth %s): nothing in the pod "
                              "accepts connections on port %d" % (flags, hop, ctx.port))
        elif d == 1:
            cause.update(rank="reset", refusal=None, confidence="medium",
                         text="the destination pod reset the connection%s (%s first seen on its veth %s)" % (
                             " after it was established" if synack else "", flags, hop))
        else:
            cause.update(rank="reset", refusal=None, confidence="medium",
                         text="the source pod reset the connection (%s first seen on its veth %s)" % (flags, hop))
    elif who == "path":
        between = _hop(captured[-1])
        verb = "refused" if refused else "reset"
        cause.update(rank="refusal" if refused else "path-reset",
                     refusal="the connection to %s port %d was %s on the path (RST first seen on %s, not sent by the %s pod)" % (
                         ctx.dst, ctx.port, verb, hop, side),
                     text="a %s from %s's address was first seen on %s and on no captured hop before it: something between %s "
                          "and %s sent it, not the %s pod" % (flags, dec.ip_text(key[dec.KEY_SRC]), hop, between, hop, side))
    else:
        cause.update(rank="refusal" if refused else "reset",
                     refusal=("port %d of %s was refused (RST first seen on %s, from the destination pod or a hop before it)" % (
                         ctx.port, ctx.dst, hop)) if refused else None,
                     text="a %s was first seen on %s; no hop before it was captured, so the %s pod or something before %s "
                          "sent it" % (flags, hop, side, hop))
    return cause


def _icmp_items(d, rows, caps, ctx):
    """ICMP errors about direction d's packets; they travel the other direction's hops."""
    travel = [r for r in rows if r["_d"] == 1 - d]
    # an error about d seen only on captures missing from the travel path still counts
    extra = [r for r in rows if r["_d"] == d and r["_ci"] not in {t["_ci"] for t in travel}]
    groups = _sightings(travel + extra, caps, lambda cs: [e for e in cs.icmp if e[3] == d])
    items = []
    name = DIRECTIONS[d]
    for sights in groups.values():
        _pos, first, _ts, item = sights[0]
        err = item[2]
        proto = 1 if isinstance(err.sender, int) else 58
        kind = icmp_kind(err, proto)
        label = icmp_label(err, proto)
        who, sender = ctx.sender(err.sender)
        mtu = ", mtu %d" % err.mtu if err.mtu else ""
        full = "%s (type %d code %d%s, first seen on %s)" % (label, err.type, err.code, mtu, _hop(first))
        cause = {"dir": d, "kind": kind, "evidence": _evidence(sights, lambda it, p=proto: _icmp_text(it[2], p)), "confidence": "high",
                 "first": first, "who": who, "rank": kind, "refusal": None, "ts": sights[0][2]}
        if kind == "icmp-frag-needed":
            cause["text"] = "%s answered the %s with %s: %s packets larger than %d bytes do not pass it" % (
                sender, name, full, name, err.mtu)
        else:
            tail = ""
            if who == "dst" and d == 0 and ("port unreachable" in label) and ctx.port is not None:
                tail = ": nothing in the pod listens on %s port %d" % (_PROTO_NAME.get(ctx.proto), ctx.port)
            cause["text"] = "%s answered the %s with %s%s" % (sender, name, full, tail)
        if kind == "icmp-unreachable":
            if d == 0 and who == "dst":
                cause["refusal"] = "%s refused %s (%s from the destination pod)" % (ctx.dst, ctx.what(), label)
            elif d == 0:
                cause["refusal"] = "%s rejected the request to %s %s (%s)" % (sender, ctx.dst, ctx.what(), label)
            else:
                cause["refusal"] = "%s rejected the response to %s (%s)" % (sender, ctx.src, label)
        items.append(cause)
    return items


def explain(an, rows):
    """Per direction: the cause item that explains it best, or None (see the module docstring).

    Items carry, besides the public keys, ``refusal`` (the verdict's first words when it makes
    the flow unhealthy: a refused port, a RST on the path, an ICMP unreachable) and ``first``
    (the row of the hop it was first seen on). When a RST was sent on the path, the hops of its
    direction before that one saw nothing because nothing was sent there: their ``missed`` status
    (a capture problem) becomes ``none``.
    """
    ctx = _Context(an)
    causes = {}
    # no packet says why: the nodes' counters may (cause_counters.py; none without counters)
    counters = cc.by_node(an.caps)
    for node, c in sorted(counters.items()):
        for addr in c.get("addresses") or []:     # a node's own addresses name the node an ICMP error came from
            ctx.nodes.setdefault(addr, node)
    flow = {"src": ctx.src, "dst": ctx.dst, "neighbours": set(ctx.nodes) | {ctx.src, ctx.dst},
            "largest": lambda row: cause_mtu.largest(an, row)}
    for d, name in enumerate(DIRECTIONS):
        path = [r for r in rows if r["_d"] == d]
        items = []
        if an.proto == 6 and ctx.port is not None:
            item = _reset_item(d, path, an.caps, ctx)
            if item:
                items.append(item)
        items.extend(_icmp_items(d, rows, an.caps, ctx))
        if not items:
            item = cc.explain(d, path, counters, flow)
            items = [item] if item else []
        if not items:
            causes[name] = None
            causes["unexplained"] = causes.get("unexplained") or cc.unexplained(d, path, counters)
            continue
        best = min(items, key=lambda i: (_RANK[i["rank"]], i.get("ts", 0)))
        if best["kind"] == "reset" and best["who"] == "path":
            for r in path[:path.index(best["first"])]:
                if r["status"] == "missed" and not r["packets"]:
                    r["status"] = "none"
        if best["kind"] == "icmp-frag-needed" and direction_status(path) == "ok":
            best["confidence"] = "low"
        if best["kind"].startswith("icmp-"):
            sent = cc.rejecting_rule(best, counters) or _nft_refusal(best, an.plan.get("service"))
            if sent:
                best["text"] += "; %s" % sent[0]
                best["evidence"].append(sent[1])
        causes[name] = best
    return causes


def _nft_refusal(item, service):
    """For an ICMP error first seen on the node whose kube-proxy (nftables mode) rejects a Service without
    endpoints: the no-endpoint-services element that sends it there, as ``(text, evidence)``, or None.
    kube-proxy's nft rules have no counters, so its table's own words stand in for a counted rule."""
    node = (item.get("first") or {}).get("node")
    if not service or service.get("mode") != "nft" or not service.get("rejected") or node != service.get("dnat_on"):
        return None
    text = "%s's kube-proxy nft table sends it: %s, in table ip kube-proxy (its rules keep no counters)" % (
        node, service["rejected"])
    return text, "%s nft list table ip kube-proxy: %s" % (node, service["rejected"])


def direction_status(path):
    """ok, or lost/partial/none as the rows of one direction say."""
    if not any(r["packets"] for r in path):
        return "none"
    if any(r["status"] == "LOST" for r in path):
        return "lost"
    if any(r["status"] == "partial" for r in path):
        return "partial"
    return "ok"


def public(item):
    """The cause as report.json keeps it."""
    if item is None:
        return None
    return {"kind": item["kind"], "evidence": list(item["evidence"]), "confidence": item["confidence"], "text": item["text"]}


def refusal(causes):
    """The item whose ``refusal`` the verdict says first, or None (the request's first)."""
    found = [c for c in (causes.get(n) for n in DIRECTIONS) if c and c.get("refusal")]
    return min(found, key=lambda c: _RANK[c["rank"]]) if found else None


def why(causes, directions, rows, healthy):
    """The why line: the cause that explains the verdict, NO_EXPLANATION for an unexplained loss, else None."""
    if healthy:
        return None
    first = refusal(causes)
    if first:
        return first["text"]
    for name in DIRECTIONS:
        if directions[name]["status"] in ("lost", "partial") and causes.get(name):
            return causes[name]["text"]
    for name in DIRECTIONS:
        if causes.get(name):
            return causes[name]["text"]
    req = [r for r in rows if r["direction"] == "request"]
    resp = [r for r in rows if r["direction"] == "response"]
    status = {n: directions[n]["status"] for n in DIRECTIONS}
    if "lost" in status.values() or "partial" in status.values():
        return causes.get("unexplained") or NO_EXPLANATION
    if status["request"] == "none" and any(r["status"] != "unknown" for r in req):
        return NO_EXPLANATION
    if status["request"] != "none" and status["response"] == "none" and any(r["status"] != "unknown" for r in resp):
        return NO_EXPLANATION
    return None
