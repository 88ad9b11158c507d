# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Correlate one flow's packets across hop captures and say where they stop.

Entry point: ``analyze(plan, captures)`` -> report dict (see the RETURN of
``plugins/modules/trace_analyze.py`` for its schema).

One pass per capture file, streaming. Memory is one small dict entry per distinct
packet (a 64-bit hash of its key -> bitmask of the captures that saw it), so a
million-packet trace stays in tens of MiB. Data are also compared by payload bytes
per hop, because GSO/GRO can split or merge them between hops (the veth
sees a 4096-byte segment, the underlay three 1428-byte ones); packets without
payload (SYN, ACK, FIN, RST) never change shape and are matched one by one.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import cause as why_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import repeat as repeat_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_conntrack as svc_ct
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_text
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import unsnat as unsnat_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import verdict as verdict_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import wg_underlay
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture, CaptureError
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.verdict import DIRECTIONS, RST_BITS

SCHEMA_VERSION = 1
SAMPLE = 512                       # packets per capture and direction kept with timestamps
CTRL_BIT = 1 << 30                 # in a packet's capture bitmask: the packet has no payload
CTL_MAX = 256                      # RSTs and ICMP errors kept per capture (and direction)
LATE_MARGIN_NS = 20000000          # a packet seen upstream this close to (or after) a later hop's capture end
LATE_MAX = 64                      # ... is not counted lost there; at most this many are looked up again
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


def _median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return None
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


class _CaptureState(object):
    __slots__ = ("key", "node", "interface", "input", "status", "error", "count", "first", "last", "flags",
                 "dup", "other", "undecodable", "bytes", "sample", "records", "cut", "truncated_tail",
                 "format", "linktypes", "retrans", "tsmult", "resets", "icmp")

    def __init__(self, key, node, interface, given):
        self.key, self.node, self.interface, self.input = key, node, interface, given or {}
        self.status = (given or {}).get("status") or ("ok" if given else "missing")
        self.error = (given or {}).get("error")
        self.count, self.first, self.last = [0, 0], [None, None], [None, None]
        self.flags = [[0] * 64, [0] * 64]
        self.dup, self.retrans = [0, 0], [0, 0]
        self.other = self.undecodable = self.records = self.cut = 0
        self.bytes = [0, 0]             # per direction: payload bytes (GSO/GRO keep the sum)
        self.sample = [[], []]          # per direction: [(hash, ts_ns)] of the first SAMPLE packets
        self.resets = [[], []]          # per direction: [(hash, ts_ns, key)] of the first CTL_MAX RSTs
        self.icmp = []                  # [(hash, ts_ns, IcmpError, direction it is about)], first CTL_MAX
        self.tsmult = 1000
        self.truncated_tail = False
        self.format = None
        self.linktypes = []


class Analysis(object):
    """State of one analysis; use ``analyze()`` unless you need the pieces."""

    def __init__(self, plan, captures, vxlan_ports=None):
        self.plan = plan or {}
        run = self.plan.get("run") or {}
        self.run = run
        self.src = dec.ip_key(run["src"])
        self.dst = dec.ip_key(run["dst"])
        proto = str(run.get("proto") or "tcp").lower()
        self.proto = PROTOS.get(proto, 6)
        if self.proto == 1 and not isinstance(self.src, int):     # IPv6: 16 bytes, IPv4: an int
            self.proto = 58
        self.port = int(run["port"]) if run.get("port") not in (None, "") and self.proto in (6, 17) else None
        ports = set(dec.VXLAN_PORTS)
        for c in self.plan.get("captures") or []:
            if c.get("vxlan_port"):
                ports.add(int(c["vxlan_port"]))
        for p in vxlan_ports or ():
            ports.add(int(p))
        self.vxlan_ports = tuple(sorted(ports))
        self.hops = sorted(self.plan.get("hops") or [], key=lambda h: (DIRECTIONS.index(h.get("direction", "request")), h.get("index", 0)))
        given = {c.get("key"): c for c in captures or [] if c.get("key")}
        # captures that see a Service address instead of the backend's (plugin_utils/services.py)
        self.nat = {c["key"]: (dec.ip_key(c["nat"]["address"]), int(c["nat"]["port"]))
                    for c in self.plan.get("captures") or [] if c.get("key") and c.get("nat") and self.port is not None}
        self.caps = []
        self.cap_index = {}
        for hop in self.hops:
            key = hop.get("capture") or "%s/%s" % (hop.get("node"), hop.get("interface"))
            if key not in self.cap_index:
                self.cap_index[key] = len(self.caps)
                self.caps.append(_CaptureState(key, hop.get("node"), hop.get("interface"), given.get(key)))
        self.seen = [{}, {}]            # per direction: key hash -> bitmask of captures (+ CTRL_BIT)
        self.first_cap = [None, None]
        for d, name in enumerate(DIRECTIONS):
            for hop in self.hops:
                if hop.get("direction") == name:
                    ci = self.cap_index[hop.get("capture") or "%s/%s" % (hop.get("node"), hop.get("interface"))]
                    if self.caps[ci].status == "ok":
                        self.first_cap[d] = ci
                        break

    # ------------------------------------------------------------------ scanning
    def scan_all(self):
        for ci, cs in enumerate(self.caps):
            if cs.status != "ok":
                continue
            path = cs.input.get("file")
            if not path or not os.path.exists(path):
                cs.status, cs.error = "missing", "capture file not found on the controller: %s" % path
                continue
            try:
                self.scan(ci, path)
                if self.proto == 6 and any(cs.flags[d][i] for d in (0, 1) for i in RST_BITS):
                    self.scan_resets(ci, path)
            except (CaptureError, OSError) as exc:
                cs.status, cs.error = "failed", str(exc)

    def scan(self, ci, path):
        """Read one capture. The hot loop walks pcap records and reads header bytes in place.

        Per packet: one ``unpack_from`` of the record header, one of the innermost
        IP+TCP header at the offset the first decoded packet of the file gave (any
        packet that does not fit that layout goes through the full decoder), one hash,
        one dict update. Nothing else is kept per packet.

        The record walk of ``Capture.records()`` and the per-direction bookkeeping are
        written out inline on purpose: a generator step and a helper call per packet
        cost more than the whole rest of the loop (benchmarks/bench_analysis.py).
        """
        cs = self.caps[ci]
        cap = Capture(path)
        cs.format = cap.format
        bit = 1 << ci
        A, B, port, proto = self.src, self.dst, self.port, self.proto
        # a capture before the source node's DNAT (a Service address): its packets carry the Service's
        # address and port, matched as the backend's (DB:port) that the later hops see
        nat = self.nat.get(cs.key)
        if nat is not None:
            B, NB, NP, DB = nat[0], nat[0], nat[1], self.dst
        seen0, seen1 = self.seen
        get0, get1 = seen0.get, seen1.get
        first = cs.first
        samp0, samp1 = cs.sample[0].append, cs.sample[1].append
        icmp_error = self._icmp_error
        flags0, flags1 = cs.flags
        rs0 = set() if self.first_cap[0] == ci else None
        rs1 = set() if self.first_cap[1] == ci else None
        retrans = cs.retrans
        dup = cs.dup
        decode_at = dec.decode_at
        vports = self.vxlan_ports
        cur_lt = None
        lay = -1          # offset of the innermost IP header for the fast path, -1: none
        need = 0
        unpack = None
        b0 = None
        other = undecodable = packets = cut = 0
        n0 = n1 = 0
        pbytes0 = pbytes1 = 0
        tail = b""
        for data, linktype, runpack, mult in cap.chunks():
            if linktype != cur_lt:
                cur_lt, lay, tail = linktype, -1, b""
            buf = tail + data if tail else data
            bend = len(buf)
            roff = 0
            while roff + 16 <= bend:
                sec, frac, incl, orig = runpack(buf, roff)
                off = roff + 16
                if off + incl > bend:
                    break
                roff = off + incl
                packets += 1
                if incl < orig:
                    cut += 1
                t = None
                if lay >= 0 and incl >= need:
                    t = unpack(buf, off + lay)
                    if t[0] != b0 or t[3] != 6 or not ((t[4] == A and t[5] == B) or (t[4] == B and t[5] == A)):
                        t = None
                if t is None:
                    # slow path: full decode (first packet, other layouts, other traffic)
                    d = decode_at(buf, off, incl, linktype, vports)
                    if d is None:
                        undecodable += 1
                        continue
                    t = d.key
                    if t[3] != proto or not ((t[4] == A and t[5] == B) or (t[4] == B and t[5] == A)):
                        # an ICMP error about this flow comes from anyone (a router, a node) and is not
                        # one of its packets; only other traffic pays for the check
                        if (t[3] == 1 or t[3] == 58) and icmp_error(cs, buf, off, incl, d, sec * 1000000000 + frac * mult):
                            continue
                        other += 1
                        continue
                    if (proto == 1 or proto == 58) and icmp_error(cs, buf, off, incl, d, sec * 1000000000 + frac * mult):
                        continue
                    if d.fast:
                        lay, b0 = d.inner_offset, t[0]
                        st = dec.TCP4 if b0 >> 4 == 4 else dec.TCP6
                        unpack, need = st.unpack_from, lay + st.size
                if nat is not None:
                    if t[5] == NB and t[7] == NP:
                        t = t[:5] + (DB, t[6], port) + t[8:]
                    elif t[4] == NB and t[6] == NP:
                        t = t[:4] + (DB, t[5], port) + t[7:]
                if proto == 6:
                    of = t[10]
                    plen = (t[1] - ((t[0] & 15) << 2) if t[0] < 0x60 else t[2]) - ((of >> 12) << 2)
                else:
                    of = 0
                    plen = dec.payload_len(t)
                h = hash(t)
                if t[4] == A:
                    if port is not None and t[7] != port:
                        other += 1
                        continue
                    m = get0(h, 0)
                    if m & bit:
                        dup[0] += 1
                    else:
                        seen0[h] = m | bit if plen else m | bit | CTRL_BIT
                    n0 += 1
                    if n0 <= SAMPLE:
                        samp0((h, sec * 1000000000 + frac * mult))
                    flags0[of & 63] += 1
                    pbytes0 += plen
                    if proto == 6:
                        if rs0 is not None and (plen or of & 3):
                            rk = hash((t[6], t[8], plen, of & 7))
                            if rk in rs0:
                                retrans[0] += 1
                            else:
                                rs0.add(rk)
                else:
                    if port is not None and t[6] != port:
                        other += 1
                        continue
                    m = get1(h, 0)
                    if m & bit:
                        dup[1] += 1
                    else:
                        seen1[h] = m | bit if plen else m | bit | CTRL_BIT
                    n1 += 1
                    if n1 <= SAMPLE:
                        samp1((h, sec * 1000000000 + frac * mult))
                    flags1[of & 63] += 1
                    pbytes1 += plen
                    if proto == 6:
                        if rs1 is not None and (plen or of & 3):
                            rk = hash((t[7], t[8], plen, of & 7))
                            if rk in rs1:
                                retrans[1] += 1
                            else:
                                rs1.add(rk)
            tail = buf[roff:]
            if cur_lt is not None:
                cs.tsmult = mult
        cap.finish(tail, packets, cut)
        cs.bytes[0], cs.bytes[1] = pbytes0, pbytes1
        for d, samples in enumerate(cs.sample):
            if samples:
                first[d] = samples[0][1]
        cs.count[0], cs.count[1] = n0, n1
        cs.other, cs.undecodable = other, undecodable
        cs.records, cs.cut, cs.truncated_tail = cap.packets, cap.cut, cap.truncated_tail
        cs.linktypes = sorted({i["linktype"] for i in cap.interfaces})

    def forgive_late(self):
        """Packets an earlier hop saw after a later hop's capture had ended are not lost before it.

        The nodes' captures stop one after another; a retransmission that passes an earlier hop in
        between would look lost. For each capture with an ``ended_at`` and each direction, the few
        packets (at most LATE_MAX) that an earlier hop saw and it did not are looked up again in the
        file of the last earlier hop that saw them; those seen there later than ``ended_at`` minus
        LATE_MARGIN_NS get this capture's bit (not observable here) instead of counting as lost.
        Node clocks are compared as they are (the lab's are one clock; NTP keeps real ones within ms).
        """
        for d, name in enumerate(DIRECTIONS):
            order = []
            for hop in self.hops:
                if hop.get("direction") == name:
                    ci = self.cap_index[hop.get("capture") or "%s/%s" % (hop.get("node"), hop.get("interface"))]
                    if ci not in order:
                        order.append(ci)
            seen = self.seen[d]
            for j, cj in enumerate(order):
                end = self.caps[cj].input.get("ended_at")
                if not j or end is None or self.caps[cj].status != "ok":
                    continue
                bit, before = 1 << cj, 0
                for ci in order[:j]:
                    before |= 1 << ci
                missing = {h: m for h, m in seen.items() if m & before and not m & bit}
                if not missing or len(missing) > LATE_MAX:
                    continue
                cutoff = int(float(end) * 1e9) - LATE_MARGIN_NS
                for h, when in self._times_at(order[:j], missing).items():
                    if when > cutoff:
                        seen[h] |= bit

    def _times_at(self, upstream, missing):
        """``{hash: time}`` of ``missing`` packets on the last capture of ``upstream`` that saw each."""
        times = {}
        for ci in reversed(upstream):
            want = {h for h, m in missing.items() if m & (1 << ci) and h not in times}
            cs = self.caps[ci]
            path = cs.input.get("file")
            if not want or cs.status != "ok" or not path:
                continue
            for ts, incl, _orig, buf, off, linktype in Capture(path).records():
                dd = dec.decode_at(buf, off, incl, linktype, self.vxlan_ports)
                if dd is not None:
                    h = hash(dd.key)
                    if h in want:
                        times[h] = ts
        return times

    def scan_resets(self, ci, path):
        """Read a capture again for its RSTs (hash, time, key): only captures whose flag counts have one.

        The hot loop of ``scan`` keeps no per-packet RST check; a trace with a RST is a probe's few
        packets, or a passive capture that pays one more read of the files that hold one.
        """
        cs = self.caps[ci]
        A, B, port, vports = self.src, self.dst, self.port, self.vxlan_ports
        decode_at = dec.decode_at
        for ts, incl, _orig, buf, off, linktype in Capture(path).records():
            d = decode_at(buf, off, incl, linktype, vports)
            if d is None:
                continue
            t = d.key
            if t[3] != 6 or not t[10] & 4:
                continue
            if t[4] == A and t[5] == B and (port is None or t[7] == port):
                out = cs.resets[0]
            elif t[4] == B and t[5] == A and (port is None or t[6] == port):
                out = cs.resets[1]
            else:
                continue
            if len(out) < CTL_MAX:
                out.append((hash(t), ts, t))

    def _icmp_error(self, cs, buf, off, incl, d, ts):
        """Keep an ICMP error quoting a packet of this flow; True when it is one (slow path only)."""
        err = dec.icmp_error(buf, off, incl, d)
        if err is None or err.qproto != self.proto:
            return False
        A, B, port = self.src, self.dst, self.port
        if err.qsrc == A and err.qdst == B and (port is None or err.qdport == port):
            about = 0
        elif err.qsrc == B and err.qdst == A and (port is None or err.qsport == port):
            about = 1
        else:
            return False
        if len(cs.icmp) < CTL_MAX:
            cs.icmp.append((hash(d.key), ts, err, about))
        return True

    # ------------------------------------------------------------------ results
    def distinct(self, d):
        """Distinct packets of direction d seen on any hop."""
        return len(self.seen[d])

    def hop_rows(self):
        rows = []
        for hop in self.hops:
            d = DIRECTIONS.index(hop.get("direction", "request"))
            ci = self.cap_index[hop.get("capture") or "%s/%s" % (hop.get("node"), hop.get("interface"))]
            cs = self.caps[ci]
            flags = {}
            if cs.status == "ok" and self.proto == 6:
                for fbits, n in enumerate(cs.flags[d]):
                    if n:
                        flags[dec.flag_names(fbits)] = flags.get(dec.flag_names(fbits), 0) + n
            rows.append({
                "index": hop.get("index"), "direction": hop.get("direction"), "node": hop.get("node"),
                "interface": hop.get("interface"), "role": hop.get("role"), "encap": hop.get("encap") or "none",
                "capture": cs.key, "_ci": ci, "_d": d,
                "packets": cs.count[d] if cs.status == "ok" else None,
                "first_seen": cs.first[d] / 1e9 if cs.first[d] is not None else None,
                "flags": flags,
                "dropped": int(cs.input.get("dropped") or 0),
                "retransmissions": cs.retrans[d] if cs.status == "ok" else None,
                "duplicates": cs.dup[d] if cs.status == "ok" else None,
            })
        return rows

    def classify(self, rows):
        """Set status, lost_from_previous, bytes_short and last_hop_of on each row, per direction."""
        for d, name in enumerate(DIRECTIONS):
            path = [r for r in rows if r["direction"] == name]
            masks = Counter(self.seen[d].values())      # distinct bitmasks are few
            prev = None
            for i, r in enumerate(path):
                r["lost_from_previous"] = 0
                r["bytes_short"] = 0
                r["status"] = "unknown"
                if self.caps[r["_ci"]].status != "ok":
                    continue
                earlier = any(p["packets"] for p in path[:i])
                later = any(p["packets"] for p in path[i + 1:])
                if not r["packets"]:
                    r["status"] = "missed" if later else ("LOST" if earlier else "none")
                    if r["status"] == "none":
                        prev = None
                    continue
                r["status"] = "seen"
                if prev is not None:
                    pbit, cbit = 1 << prev["_ci"], 1 << r["_ci"]
                    lost = [(m, n) for m, n in masks.items() if m & pbit and not m & cbit]
                    r["lost_from_previous"] = sum(n for _m, n in lost)
                    lost_ctrl = sum(n for m, n in lost if m & CTRL_BIT)
                    r["bytes_short"] = self._bytes_short(prev, r, d)
                    if lost_ctrl or r["bytes_short"]:
                        r["status"] = "partial"
                prev = r
            # the last captured hop each packet reached
            order = [r for r in path if self.caps[r["_ci"]].status == "ok"]
            for r in path:
                r["last_hop_of"] = 0
            for m, n in masks.items():
                for r in reversed(order):
                    if m & (1 << r["_ci"]):
                        r["last_hop_of"] += n
                        break
        return rows

    def _bytes_short(self, prev, cur, d):
        """Payload bytes seen on the previous hop and not here.

        GSO/GRO split and merge segments between hops but keep the bytes, so the sum
        tells a size-dependent loss (MTU black hole) that per-packet matching cannot.
        """
        return max(0, self.caps[prev["_ci"]].bytes[d] - self.caps[cur["_ci"]].bytes[d])

    def timing(self, rows):
        """Delays between consecutive seen hops (median over sampled packets), clock offset."""
        per_dir = []
        for d in (0, 1):
            table = {}
            for ci, cs in enumerate(self.caps):
                for h, ts in cs.sample[d]:
                    table.setdefault(h, {}).setdefault(ci, ts)
            per_dir.append(table)
        offset = self._clock_offset(rows, per_dir)
        b_node = self.plan.get("dst_node")
        a_node = self.plan.get("src_node")
        for d, name in enumerate(DIRECTIONS):
            path = [r for r in rows if r["direction"] == name]
            prev = None
            since = 0.0
            raw_since = 0.0
            for r in path:
                r["delay_ms"] = r["since_first_ms"] = r["raw_delay_ms"] = None
                if not r["packets"]:
                    continue
                if prev is None:
                    r["delay_ms"] = r["raw_delay_ms"] = r["since_first_ms"] = 0.0
                    prev = r
                    continue
                deltas = [v[r["_ci"]] - v[prev["_ci"]] for v in per_dir[d].values() if r["_ci"] in v and prev["_ci"] in v]
                raw = _median(deltas) if deltas else (
                    self.caps[r["_ci"]].first[d] - self.caps[prev["_ci"]].first[d])
                raw_ms = raw / 1e6
                corr = raw_ms
                if offset is not None and prev["node"] != r["node"]:
                    if prev["node"] == a_node and r["node"] == b_node:
                        corr = raw_ms - offset
                    elif prev["node"] == b_node and r["node"] == a_node:
                        corr = raw_ms + offset
                since += corr
                raw_since += raw_ms
                r["raw_delay_ms"] = round(raw_ms, 6)
                r["delay_ms"] = round(corr, 6)
                r["since_first_ms"] = round(since, 6)
                prev = r
        return offset

    def _clock_offset(self, rows, per_dir):
        a_node, b_node = self.plan.get("src_node"), self.plan.get("dst_node")
        if not a_node or not b_node or a_node == b_node:
            return None

        def find(direction, role, node):
            # the first such hop of the direction, when it is on that node: a path through a third node (a
            # NodePort forwarded to the backend's node) has no underlay leg between the two, and no estimate
            for r in rows:
                if r["direction"] == direction and r["role"] == role and r["packets"]:
                    return r["_ci"] if r["node"] == node else None
            return None
        out_a, in_b = find("request", "underlay-out", a_node), find("request", "underlay-in", b_node)
        out_b, in_a = find("response", "underlay-out", b_node), find("response", "underlay-in", a_node)
        if None in (out_a, in_b, out_b, in_a):
            return None
        d1 = [v[in_b] - v[out_a] for v in per_dir[0].values() if in_b in v and out_a in v]
        d2 = [v[in_a] - v[out_b] for v in per_dir[1].values() if in_a in v and out_b in v]
        if not d1 or not d2:
            return None
        # minimum one-way times: the least queued packets; offset of dst_node's clock vs src_node's
        return round((min(d1) - min(d2)) / 2.0 / 1e6, 6)


def _candidate_score(plan, captures, vxlan_ports):
    """How far the flow got on one candidate backend's hops: hops that saw it, past the source veth (a
    NodePort's candidate: on its captures rewritten back from its backend, as its report would be)."""
    if any(c.get("unsnat") for c in plan.get("captures") or []):
        rows = _analyze_unsnat(plan, captures, vxlan_ports, None)["hops"]
    else:
        an = Analysis(plan, captures, vxlan_ports)
        an.scan_all()
        rows = an.hop_rows()
    return sum(1 for r in rows if r["packets"] and not (r["direction"] == "request" and r["index"] == 1)
               and not (r["direction"] == "response" and r["role"] == "src-veth"))


AFTER_DNAT = "#after-dnat"      # the key suffix of the translated half of a capture that sees both


def _analyze_unsnat(plan, captures, vxlan_ports, repeat):
    """A NodePort: the captures after the node's DNAT and masquerade, rewritten to the flow's addresses
    before them (plugin_utils/unsnat.py), are analysed in place of the files; the report names the files.

    The plan's hops marked ``after_dnat`` see the translated packets (a plan without marks: every hop of a
    capture with ``unsnat``). A capture that serves hops of both kinds (the NodePort node's NIC and tunnel
    when the endpoint is on a third node) is split: the rewritten packets go to its ``after_dnat`` hops as
    a capture of their own, the others stay with its other hops; the report shows the capture whole again."""
    plan = dict(plan, captures=[dict(c) for c in plan["captures"]], hops=[dict(h) for h in plan.get("hops") or []])
    files = {c.get("key"): c for c in captures or []}
    specs = {c["key"]: c.pop("unsnat") for c in plan["captures"] if c.get("unsnat")}
    marked = any(h.get("after_dnat") for h in plan["hops"])

    def after(hop):
        return bool(hop.get("after_dnat")) if marked else hop.get("capture") in specs

    def usable(entry):
        return bool(entry) and entry.get("status") == "ok" and os.path.exists(entry.get("file") or "")

    given, temp = [dict(c) for c in captures or []], tempfile.mkdtemp(prefix="hoptrace-unsnat-")
    split = {}
    try:
        # the SYNs as the source pod sent them: the request's hops before the DNAT
        upstream = []
        for hop in sorted((h for h in plan["hops"] if h.get("direction") == "request"), key=lambda h: h.get("index", 0)):
            if not after(hop) and hop.get("capture") not in upstream and usable(files.get(hop.get("capture"))):
                upstream.append(hop["capture"])
        syns = {}
        for key, spec in specs.items():
            mine = files.get(key)
            if not usable(mine) or not upstream:
                continue
            if not syns:
                for up in upstream:
                    syns.update(unsnat_.syn_ports(files[up]["file"], spec["node_ip"], spec["node_port"]))
            both = any(h.get("capture") == key and not after(h) for h in plan["hops"])
            out = os.path.join(temp, "%d.pcap" % len(os.listdir(temp)))
            rest = os.path.join(temp, "%d-rest.pcap" % len(os.listdir(temp))) if both else None
            unsnat_.rewrite(mine["file"], out, spec["pod"], spec["node_ip"], spec["node_port"], spec["backend"],
                            spec["backend_port"], syns, rest=rest)
            for entry in list(given):
                if entry.get("key") != key:
                    continue
                if both:
                    entry["file"] = rest
                    # its tcpdump drop counts stay with the whole capture's entry
                    given.append(dict(entry, key=key + AFTER_DNAT, file=out, dropped=0))
                    split[key + AFTER_DNAT] = key
                else:
                    entry["file"] = out
        for hop in plan["hops"]:
            if hop.get("capture") in specs and after(hop) and hop["capture"] + AFTER_DNAT in split:
                hop["capture"] += AFTER_DNAT
        report = analyze(plan, given, vxlan_ports, repeat)
    finally:
        for name in os.listdir(temp):
            os.unlink(os.path.join(temp, name))
        os.rmdir(temp)
    _join_split(report, split)
    for cap in report["captures"]:
        if cap["key"] in files:
            cap["file"] = files[cap["key"]].get("file")
    return report


def _backend_node(service, plan):
    """`` on NODE`` for the verdict: the backend's node, which a NodePort forwarded back to the source pod's
    node calls so (its hops there come after the node addressed)."""
    node = service["backend"].get("node")
    if not node:
        return ""
    if service.get("kind") == "nodeport" and node == plan.get("src_node") and node != service.get("dnat_on"):
        return " on %s (the source pod's own node)" % node
    return " on %s" % node


_SUMMED = ("records", "matched", "other", "undecodable", "snaplen_cut")


def _join_split(report, split):
    """The report of a split capture: one entry again (its counts summed), its hops named by it."""
    if not split:
        return
    caps = {c["key"]: c for c in report["captures"]}
    for part, whole in split.items():
        if part in caps and whole in caps:
            for field in _SUMMED:
                if isinstance(caps[part].get(field), int) and isinstance(caps[whole].get(field), int):
                    caps[whole][field] += caps[part][field]
    order = []          # each capture where its first hop (of either half) put it
    for cap in report["captures"]:
        whole = caps.get(split.get(cap["key"], cap["key"]))
        if whole is not None and whole not in order:
            order.append(whole)
    report["captures"] = order
    for hop in report["hops"]:
        if hop.get("capture") in split:
            hop["capture"] = split[hop["capture"]]


def _analyze_candidates(plan, captures, vxlan_ports, repeat):
    """A Service with several endpoints: the candidate whose post-DNAT hops saw the flow is the backend
    kube-proxy chose; the report is that candidate's."""
    plans = []
    for candidate in plan["candidates"]:
        one = dict(plan)
        one.pop("candidates")
        one.update(candidate)
        plans.append(one)
    scores = [_candidate_score(one, captures, vxlan_ports) for one in plans]
    best = max(range(len(plans)), key=lambda i: scores[i])
    backends = [(p["service"]["backend"]["ip"], int(p["service"]["backend"]["port"])) for p in plans]

    def others(index):
        return ", ".join(service_text.hostport(*b) for i, b in enumerate(backends) if i != index)

    picked = best if scores[best] and scores.count(scores[best]) == 1 else None
    captured = "its hops saw the flow after the DNAT, those of %s did not" % others(best)
    # the DNAT node's conntrack entry names the backend too (plugin_utils/service_conntrack.py)
    _node, reading = svc_ct.reading_of(plan["service"], _counters_by_node(captures))
    ct = svc_ct.judge(plan["service"], reading, plan.get("run") or {}, backends[picked] if picked is not None else None, captured)
    if ct["backend"] is not None:
        best = backends.index(ct["backend"])
    chosen = plans[best]
    service = dict(chosen["service"], conntrack=ct["conntrack"], snat_to=ct["snat_to"])
    if ct["snat_to"]:
        service["masquerade"] = True
    if ct["chosen_by"]:
        service["chosen_by"] = ct["chosen_by"]
    elif picked is not None:
        service["chosen_by"] = "the captures: " + captured
    else:
        service["chosen_by"] = "unknown: no capture after the DNAT saw the flow; %s could have been chosen as well" % others(best)
    service["line"] = service_text.describe(service)
    chosen["service"] = service
    report = analyze(chosen, captures, vxlan_ports, repeat)
    report["notes"].extend(ct["notes"])
    return report


def _counters_by_node(captures):
    """``{node: counters}`` of the capture entries (each carries its node's counters from the stop)."""
    out = {}
    for capture in captures or []:
        if capture.get("counters") and capture.get("node") not in out:
            out[capture.get("node")] = capture["counters"]
    return out


def analyze(plan, captures, vxlan_ports=None, repeat=None):
    """Analyse the captures of one trace.

    ``plan``: the trace plan (``run``, ``hops``, ``captures``, ``src_node``, ``dst_node``, ``encap``).
    ``captures``: ``[{key, node, interface, file, captured, received, dropped, status, error}]``;
    a hop whose capture is missing or not ``ok`` is reported ``unknown``.
    ``repeat``: ``{count, max_loss, probes}`` of repeat mode (``repeat.analyse()``); count 1 or None: one probe.
    Returns the report dict (schema in the trace_analyze RETURN docs).
    """
    if (plan or {}).get("candidates"):
        return _analyze_candidates(plan, captures, vxlan_ports, repeat)
    if any(c.get("unsnat") for c in (plan or {}).get("captures") or []):
        return _analyze_unsnat(plan, captures, vxlan_ports, repeat)
    an = Analysis(plan, captures, vxlan_ports)
    an.scan_all()
    wireguard = wg_underlay.match(an)
    an.forgive_late()
    rows = an.classify(an.hop_rows())
    offset = an.timing(rows)
    repeated = repeat_.analyse(an, rows, offset, repeat)
    causes = why_.explain(an, rows)
    text, healthy, notes = verdict_.verdict(rows, an.caps, an.plan, why_.refusal(causes), repeated[0] if repeated else None)
    # what planning had to guess (a pod captured on its bridge, multipath, stale routes) comes first, then
    # what the path step could not read (the entry node's kube-proxy rules: a Service traced as a plain address)
    notes[:0] = [str(w) for w in an.plan.get("warnings") or [] if w] + [str(n) for n in (an.plan.get("path") or {}).get("notes") or [] if n]
    service = an.plan.get("service")
    if service and service.get("backend") and "conntrack" not in service:
        # one backend: the DNAT node's conntrack entry confirms it and says whether it masqueraded
        _node, reading = svc_ct.reading_of(service, _counters_by_node(captures))
        ct = svc_ct.judge(service, reading, an.run)
        service = dict(service, conntrack=ct["conntrack"], snat_to=ct["snat_to"])
        if ct["snat_to"]:
            service.update(masquerade=True, line=service_text.describe(dict(service, masquerade=True)))
        notes.extend(ct["notes"])
    if service and not service.get("backend"):
        text, healthy = verdict_.service_verdict(service, an), False
    elif service and not healthy:
        # the DNAT happened (the hops after it carry the backend's address): say to which backend
        backend = service["backend"]
        text = "%s was DNATed by kube-proxy on %s to %s%s%s; %s" % (
            service_text.hostport(service["address"], service["port"]), service.get("dnat_on"),
            service_text.hostport(backend["ip"], backend["port"]),
            _backend_node(service, an.plan), verdict_.masqueraded(service, rows), text)
    elif service and service.get("kind") == "nodeport" and service["backend"].get("node") not in (None, service.get("dnat_on")):
        # a healthy NodePort forwarded to another node (a third one, or back to the source's): the verdict says
        # where the flow went after the node addressed
        backend = service["backend"]
        text = "%s; %s was DNATed by kube-proxy on %s to %s%s%s" % (
            text, service_text.hostport(service["address"], service["port"]), service.get("dnat_on"),
            service_text.hostport(backend["ip"], backend["port"]), _backend_node(service, an.plan),
            " and masqueraded to %s" % service["snat_to"] if service.get("snat_to") else "")
    directions = {}
    for d, name in enumerate(DIRECTIONS):
        path = [r for r in rows if r["direction"] == name]
        seen_rows = [r for r in path if r["packets"]]
        stop = next((r for r in path if r["status"] in ("LOST", "partial")), None)
        first_cap = an.first_cap[d]
        directions[name] = {
            "packets": an.distinct(d),
            "status": "none" if not seen_rows else ("lost" if stop and stop["status"] == "LOST" else ("partial" if stop else "ok")),
            "reached": verdict_.hop_name(seen_rows[-1]) if seen_rows else None,
            "stopped_at": verdict_.hop_name(stop) if stop else None,
            "retransmissions": an.caps[first_cap].retrans[d] if first_cap is not None else 0,
            "cause": why_.public(causes[name]),
        }
        if repeated:
            directions[name].update(repeated[1][name])
    why = why_.why(causes, directions, rows, healthy)
    if healthy:
        # nothing to explain, but a reset or an ICMP error was seen: say so
        notes.extend(c["text"] for c in (causes[n] for n in DIRECTIONS) if c)
    uncertain = any(r["dropped"] for r in rows)
    a_node, b_node = an.plan.get("src_node"), an.plan.get("dst_node")
    clock = {"reference": a_node, "other": b_node if b_node != a_node else None, "offset_ms": offset,
             "corrected": offset is not None,
             "method": "((t_in_b - t_out_a) - (t_in_a - t_out_b)) / 2 on the underlay hops, minimum one-way times"}
    notes.extend(wg_underlay.describe(wireguard[name]) for name in DIRECTIONS if wg_underlay.worth_saying(wireguard.get(name)))
    if offset is not None:
        notes.append("delays across nodes corrected for a clock offset of %s vs %s: %+.3f ms (estimated from the flow)" % (b_node, a_node, offset))
    hops = []
    for r in rows:
        hop = {k: v for k, v in r.items() if not k.startswith("_")}
        hop["summary"] = _summary(r)
        hops.append(hop)
    caps = []
    for cs in an.caps:
        caps.append({
            "key": cs.key, "node": cs.node, "interface": cs.interface, "status": cs.status, "error": cs.error,
            "file": cs.input.get("file"), "format": cs.format, "linktypes": cs.linktypes, "records": cs.records,
            "matched": cs.count[0] + cs.count[1], "other": cs.other, "undecodable": cs.undecodable,
            "snaplen_cut": cs.cut, "truncated_tail": cs.truncated_tail,
            "captured": cs.input.get("captured"), "received": cs.input.get("received"), "dropped": cs.input.get("dropped"),
        })
    out = {
        "schema": SCHEMA_VERSION,
        "run": dict(an.run),
        "src_node": a_node, "dst_node": b_node, "encap": an.plan.get("encap"),
        "healthy": healthy,
        "complete": all(cs.status == "ok" for cs in an.caps),
        "uncertain": uncertain,
        "verdict": text,
        "why": why,
        "notes": notes,
        "directions": directions,
        "clock": clock,
        "hops": hops,
        "captures": caps,
        "path": an.plan.get("path"),
    }
    if service:
        out["service"] = service
    if repeated:
        out["repeat"] = repeated[0]
    if wireguard:
        out["wireguard"] = wireguard
    return out


_FLAG_ORDER = ["SYN", "SYN+ACK", "PSH+ACK", "ACK", "FIN+ACK", "FIN+PSH+ACK", "RST", "RST+ACK"]


def _summary(r):
    """What a hop saw, short: 'SYN', 'SYN ACK PSH+ACK', '-'."""
    if not r.get("packets"):
        return "-"
    if not r["flags"]:
        return "%d pkt" % r["packets"]
    names = sorted(r["flags"], key=lambda k: (_FLAG_ORDER.index(k) if k in _FLAG_ORDER else len(_FLAG_ORDER), k))
    return " ".join(names[:3]) + (" .." if len(names) > 3 else "")
