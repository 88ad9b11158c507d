# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repeat mode: N probes in one capture window, each its own flow, followed hop by hop.

With ``count`` > 1 the probe module opens N connections (TCP, UDP: a new source port each;
ICMP: one echo identifier, a new sequence number each). Their packets are N flows that differ
only by that port (or sequence number), so this module reads the captures once more - only in
repeat mode, the analysis' hot loop is unchanged - and keeps per capture and direction the packets
of each probe: ``{probe id: [(time, packet hash)]}``.

A probe's *request* (*response*) is its first packet in that direction - the SYN (SYN+ACK), the
datagram, the echo request (reply) - as the first hop that saw any of its packets saw it. A
retransmission is another packet: a SYN lost and sent again one second later still counts as
that probe's request lost. Per hop: how many of the N probes it saw (``probes_seen``),
``loss_pct`` = the share it did not see, and the delay from the previous hop that saw the same
packet, over the probes (``latency_ms``: p50, p95, max; nearest rank, corrected for the nodes'
clock offset as the hop delays are). Per direction: how many were lost and between which hops;
a probe is lost between the last hop that saw it and the next hop that could be captured.
"""

from __future__ import annotations

import math

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture

DIRECTIONS = ("request", "response")
ECHO_TYPES = (8, 0, 128, 129)       # ICMP echo request / reply, ICMPv6 echo request / reply


def percentile(values, pct):
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, int(math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


def latency(values):
    """``{p50, p95, max}`` in ms (3 decimals) of ``values`` in ms, or None without values."""
    if not values:
        return None
    return {"p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3), "max": round(max(values), 3)}


def probe_id(t, d, proto):
    """The probe a decoded key belongs to: the source pod's port (TCP, UDP) or (echo id, seq) for ICMP."""
    if proto in (1, 58):
        if t[dec.KEY_SPORT] >> 8 not in ECHO_TYPES:
            return None
        return (t[dec.KEY_DPORT], t[dec.KEY_SEQ])
    return t[dec.KEY_SPORT] if d == 0 else t[dec.KEY_DPORT]


def given_ids(probes, proto):
    """Probe ids in send order from the probe module's ``attempts`` (``sport``, or ``id`` and ``seq``)."""
    ids = []
    for a in probes or []:
        if proto in (1, 58):
            if a.get("id") is not None and a.get("seq") is not None:
                ids.append((int(a["id"]), int(a["seq"])))
        elif a.get("sport"):
            ids.append(int(a["sport"]))
    return ids


def read_probes(an):
    """Per capture index and direction: ``{probe id: [(ts_ns, hash)]}`` of the flow's packets, in file order."""
    A, B, port, proto = an.src, an.dst, an.port, an.proto
    out = {}
    for ci, cs in enumerate(an.caps):
        if cs.status != "ok" or not cs.input.get("file"):
            continue
        per = ({}, {})
        for ts, incl, _orig, buf, off, linktype in Capture(cs.input["file"]).records():
            d = dec.decode_at(buf, off, incl, linktype, an.vxlan_ports)
            if d is None:
                continue
            t = d.key
            if t[dec.KEY_PROTO] != proto:
                continue
            if t[dec.KEY_SRC] == A and t[dec.KEY_DST] == B and (port is None or t[dec.KEY_DPORT] == port):
                direction = 0
            elif t[dec.KEY_SRC] == B and t[dec.KEY_DST] == A and (port is None or t[dec.KEY_SPORT] == port):
                direction = 1
            else:
                continue
            pid = probe_id(t, direction, proto)
            if pid is not None:
                per[direction].setdefault(pid, []).append((ts, hash(t)))
        out[ci] = per
    return out


def _hop_name(r):
    return "%s %s" % (r["node"], r["interface"] or "?")


def _first_packets(path, seen, d, ids):
    """{probe: (hash)} of each probe's first packet in direction d on the first hop that saw the probe."""
    first = {}
    for r in path:
        per = seen.get(r["_ci"])
        if per is None:
            continue
        for pid in ids:
            if pid not in first and per[d].get(pid):
                first[pid] = min(per[d][pid])[1]
    return first


def follow(rows, seen, ids, plan, offset):
    """Per direction: where each probe's first packet was seen, lost, and the hop latencies.

    Sets ``probes_seen``, ``loss_pct`` and ``latency_ms`` on each row; returns
    ``{direction: {"sent": n, "lost": n, "lost_at": [{"between": [a, b], "count": n}], "lost_ids": [...]}}``.
    """
    n = len(ids)
    a_node, b_node = plan.get("src_node"), plan.get("dst_node")
    out = {}
    for d, name in enumerate(DIRECTIONS):
        path = [r for r in rows if r["direction"] == name]
        first = _first_packets(path, seen, d, ids)
        times = {}              # row position -> {probe: ts of its first packet there}
        for pos, r in enumerate(path):
            per = seen.get(r["_ci"])
            if per is None:
                continue
            here = {}
            for pid, h in first.items():
                for ts, ph in per[d].get(pid, ()):
                    if ph == h:
                        here[pid] = ts
                        break
            times[pos] = here
        deltas = {pos: [] for pos in range(len(path))}
        lost_at, lost_ids = {}, []
        for pid in ids:
            if pid not in first:
                continue
            prev = None
            for pos in range(len(path)):
                if pos not in times or pid not in times[pos]:
                    continue
                if prev is not None:
                    ms = (times[pos][pid] - times[prev][pid]) / 1e6
                    pn, rn = path[prev]["node"], path[pos]["node"]
                    if offset is not None and pn != rn:
                        if pn == a_node and rn == b_node:
                            ms -= offset
                        elif pn == b_node and rn == a_node:
                            ms += offset
                    deltas[pos].append(ms)
                prev = pos
            after = [pos for pos in range(prev + 1, len(path)) if pos in times]
            if after:
                key = (prev, after[0])
                lost_at[key] = lost_at.get(key, 0) + 1
                lost_ids.append(pid)
        for pos, r in enumerate(path):
            if pos not in times:
                r["probes_seen"] = r["loss_pct"] = r["latency_ms"] = None
                continue
            r["probes_seen"] = len(times[pos])
            r["loss_pct"] = round(100.0 * (n - len(times[pos])) / n, 3) if n else None
            r["latency_ms"] = latency(deltas[pos])
        out[name] = {
            "sent": len(first),
            "lost": sum(lost_at.values()),
            "lost_at": [{"between": [_hop_name(path[a]), _hop_name(path[b])], "count": c} for (a, b), c in sorted(lost_at.items())],
            "lost_ids": lost_ids,
        }
        never = [pid for pid in ids if pid not in first]
        if name == "request" and never:
            known = [r for r in path if r["_ci"] in seen]
            out[name]["never_seen"] = len(never)
            out[name]["first_hop"] = _hop_name(known[0]) if known else None
            out[name]["lost_ids"] = out[name]["lost_ids"] + never
    return out


def _text(n, name, lost):
    parts = []
    if name == "request" and lost.get("never_seen"):
        parts.append("%d of %d requests were not seen on any hop (first: %s)" % (lost["never_seen"], n, lost.get("first_hop")))
    total = n if name == "request" else lost["sent"]
    for item in lost["lost_at"]:
        parts.append("%d of %d %ss were lost between %s and %s" % (item["count"], total, name, item["between"][0], item["between"][1]))
    return parts


def summarise(rows, seen, ids, plan, offset, max_loss, probes=None):
    """The repeat part of the report: ``(repeat dict, per-direction dict)``; rows get their per-probe fields."""
    n = len(ids)
    dirs = follow(rows, seen, ids, plan, offset)
    lost = set(dirs["request"]["lost_ids"]) | set(dirs["response"]["lost_ids"])
    loss_pct = round(100.0 * len(lost) / n, 3) if n else 0.0
    texts = _text(n, "request", dirs["request"]) + _text(n, "response", dirs["response"])
    by_id = {}
    for a in probes or []:
        pid = (a.get("id"), a.get("seq")) if a.get("id") is not None else a.get("sport")
        by_id[pid] = a
    listing = []
    for k, pid in enumerate(ids, start=1):
        a = by_id.get(pid) or {}
        item = {"seq": a.get("seq", k), "status": a.get("status"), "time_ms": a.get("time_ms"),
                "request_lost": pid in set(dirs["request"]["lost_ids"]), "response_lost": pid in set(dirs["response"]["lost_ids"])}
        if isinstance(pid, tuple):
            item["id"] = pid[0]
        else:
            item["sport"] = pid
        listing.append(item)
    repeat = {
        "count": n, "lost": len(lost), "loss_pct": loss_pct, "max_loss": max_loss,
        "healthy": loss_pct <= max_loss, "text": "; ".join(texts) if texts else None, "probes": listing,
    }
    directions = {name: {"sent": dirs[name]["sent"], "lost": dirs[name]["lost"] + dirs[name].get("never_seen", 0),
                         "lost_at": dirs[name]["lost_at"]} for name in DIRECTIONS}
    return repeat, directions


def verdict_part(repeat):
    """The verdict's words for the loss among the probes, or None when none was lost."""
    if not repeat or not repeat["lost"]:
        return None
    text = repeat["text"] or "%d of %d probes were lost" % (repeat["lost"], repeat["count"])
    if repeat["healthy"]:
        text += "; %g%% of the probes lost, within max_loss %g%%" % (repeat["loss_pct"], repeat["max_loss"])
    return text


def analyse(an, rows, offset, settings):
    """Repeat mode for one analysis, or None when ``settings`` asks for one probe.

    ``settings``: ``{count, max_loss, probes}`` (``probes``: the probe module's attempts, for their
    source ports / echo ids; without them the flows seen in the captures are the probes).
    """
    settings = settings or {}
    count = int(settings.get("count") or 1)
    if count <= 1:
        return None
    seen = read_probes(an)
    ids = given_ids(settings.get("probes"), an.proto)
    if not ids:
        found = {}
        for per in seen.values():
            for pid, pkts in per[0].items():
                found[pid] = min(found.get(pid, pkts[0][0]), pkts[0][0])
        ids = sorted(found, key=lambda p: (found[p], p))
    return summarise(rows, seen, ids, an.plan, offset, float(settings.get("max_loss") or 0), settings.get("probes"))
