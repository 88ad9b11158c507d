#!/usr/bin/env python3
"""Benchmark hoptrace's capture analysis against tcpdump and tshark reading the same files.

Generates a trace of one TCP bulk transfer (request data segments, response ACKs) as seen
on the six captures of a two-node IPIP and VXLAN path (src veth, tunnel, eth0 on each node;
snaplen 200 as hoptrace captures headers only), N packets in total, in a temporary directory.
Captures are made by patching a template with struct, not by building packets one by one.

Then, several times each: hoptrace's ``analyze()`` in a child process (peak RSS of that
child alone via RUSAGE_CHILDREN), ``tcpdump -nn -r FILE > /dev/null`` and ``tshark -r FILE
> /dev/null`` over the same six files. Prints a Markdown table: median and min-max seconds,
peak RSS.

    .venv/bin/python benchmarks/bench_analysis.py --packets 1000000 --repeat 3
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPLEN = 200
SRC, DST, SPORT, PORT = "172.17.25.79", "172.17.25.239", 38362, 443
NODE_A, NODE_B = "10.240.128.12", "10.240.0.9"
MSS = 1400


def _ip(text):
    return bytes(int(x) for x in text.split("."))


def _ipv4(src, dst, proto, payload_len, ttl=64):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000, ttl, proto, 0, _ip(src), _ip(dst))


def _eth():
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def _template(encap, layer, direction):
    """Return (frame header bytes, offset of the inner IP header) for one hop and direction."""
    src, dst, sp, dp = (SRC, DST, SPORT, PORT) if direction == 0 else (DST, SRC, PORT, SPORT)
    plen = MSS if direction == 0 else 0
    tcp = struct.pack("!HHIIHHHH", sp, dp, 0, 0, (5 << 12) | (0x18 if plen else 0x10), 1000, 0, 0)
    inner = _ipv4(src, dst, 6, 20 + plen) + tcp
    if layer == "veth":
        return _eth() + inner, 14, 1
    if layer == "tunnel":
        return (inner, 0, 101) if encap == "ipip" else (_eth() + inner, 14, 1)
    osrc, odst = (NODE_A, NODE_B) if direction == 0 else (NODE_B, NODE_A)
    if encap == "ipip":
        return _eth() + _ipv4(osrc, odst, 4, 40 + plen) + inner, 34, 1
    inner_frame = _eth() + inner
    udp = struct.pack("!HHHH", 40000, 4789, 8 + 8 + len(inner_frame) + plen, 0) + struct.pack("!BBHI", 8, 0, 0, 4096 << 8)
    return _eth() + _ipv4(osrc, odst, 17, len(udp) + len(inner_frame) + plen) + udp + inner_frame, 14 + 20 + 16 + 14, 1


def write_capture(path, encap, layer, n, shift_us):
    """n packets alternating request data / response ACK; fields patched into templates."""
    temps = []
    linktype = 1
    for direction in (0, 1):
        frame, ioff, linktype = _template(encap, layer, direction)
        orig = len(frame) + (MSS if direction == 0 else 0)
        rec = bytearray(struct.pack("<IIII", 0, 0, min(len(frame), SNAPLEN), orig) + frame[:SNAPLEN])
        temps.append((rec, ioff + 16))
    pack_ts = struct.Struct("<II").pack_into
    pack_id = struct.Struct("!H").pack_into
    pack_seq = struct.Struct("!II").pack_into
    base = 1700000000
    seq0, seq1 = 1000, 50000
    out = []
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        for i in range(n):
            d = i & 1
            rec, ip = temps[d]
            k = i >> 1
            us = i * 20 + shift_us
            pack_ts(rec, 0, base + us // 1000000, us % 1000000)
            pack_id(rec, ip + 4, (k + d * 7) & 0xFFFF)
            if d == 0:
                pack_seq(rec, ip + 24, (seq0 + k * MSS) & 0xFFFFFFFF, seq1)
            else:
                pack_seq(rec, ip + 24, seq1, (seq0 + (k + 1) * MSS) & 0xFFFFFFFF)
            out.append(bytes(rec))
            if len(out) >= 65536:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))
    return linktype


def make_trace(tmp, encap, total):
    tunnel = "tunl0" if encap == "ipip" else "vxlan.calico"
    per = max(2, total // 6)
    captures, hops, plan_caps = [], [], []
    layout = [("node-a", "cali41f14107a8d", "veth"), ("node-a", tunnel, "tunnel"), ("node-a", "eth0", "underlay"),
              ("node-b", "eth0", "underlay"), ("node-b", tunnel, "tunnel"), ("node-b", "calic25e805a467", "veth")]
    roles = ["src-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "dst-veth"]
    for pos, (node, iface, layer) in enumerate(layout):
        key = "%s/%s" % (node, iface)
        path = os.path.join(tmp, "%s-%s_%s.pcap" % (encap, node, iface))
        write_capture(path, encap, layer, per, pos * 30)
        captures.append({"key": key, "node": node, "interface": iface, "file": path, "captured": per, "received": per,
                         "dropped": 0, "status": "ok", "error": None})
        plan_caps.append({"key": key, "node": node, "interface": iface, "encap": encap if layer == "underlay" else "none"})
        hops.append({"index": pos + 1, "direction": "request", "node": node, "interface": iface, "role": roles[pos],
                     "encap": encap if layer == "underlay" else "none", "capture": key})
    for pos, (node, iface, layer) in enumerate(reversed(layout)):
        role = ["dst-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "src-veth"][pos]
        hops.append({"index": pos + 1, "direction": "response", "node": node, "interface": iface, "role": role,
                     "encap": encap if layer == "underlay" else "none", "capture": "%s/%s" % (node, iface)})
    plan = {"run": {"src": SRC, "dst": DST, "proto": "tcp", "port": PORT}, "src_node": "node-a", "dst_node": "node-b",
            "encap": encap, "hops": hops, "captures": plan_caps}
    return plan, captures, per * 6


CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.analysis import analyze
t1 = time.perf_counter()
spec = json.load(open(sys.argv[2]))
report = analyze(spec["plan"], spec["captures"])
t2 = time.perf_counter()
if len(sys.argv) > 3:
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import write_merged_pcapng
    write_merged_pcapng(sys.argv[3], [(c["key"], c["file"]) for c in spec["captures"]])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "analysis": t2 - t1, "merge": t3 - t2, "verdict": report["verdict"],
                  "matched": sum(c["matched"] for c in report["captures"])}))
"""


def run_child(argv):
    """Run argv, return (wall seconds, stdout, peak RSS MiB of the child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all waited-for children: only trustworthy when it grew
    return wall, proc.stdout, (after / 1024.0) if after > before else None


def measure_hoptrace(spec_path, merge_path=None):
    collections = os.path.join(ROOT, ".collections")
    argv = [sys.executable, "-c", CHILD, collections, spec_path] + ([merge_path] if merge_path else [])
    # a fresh interpreter per run and ru_maxrss of RUSAGE_CHILDREN: run it from a clean helper
    # process so the peak is this child's alone, not the generator's
    helper = [sys.executable, "-c", (
        "import resource, subprocess, sys, json, time\n"
        "t=time.perf_counter(); out=subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout\n"
        "w=time.perf_counter()-t\n"
        "r=json.loads(out); r['wall']=w; r['rss_mib']=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024.0\n"
        "print(json.dumps(r))")] + argv
    out = subprocess.run(helper, stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)


def measure_tool(argv_for_file, files):
    t0 = time.perf_counter()
    for f in files:
        with open(os.devnull, "wb") as null:
            subprocess.run(argv_for_file(f), stdout=null, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def fmt(values):
    if not values:
        return "-"
    return "%.2f (%.2f-%.2f)" % (statistics.median(values), min(values), max(values))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1000000, help="packets in the whole trace (all six captures)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tool-repeat", type=int, default=None, help="repetitions for tcpdump/tshark (default: --repeat)")
    ap.add_argument("--encap", action="append", choices=["ipip", "vxlan"], help="default: both")
    ap.add_argument("--no-tools", action="store_true", help="skip tcpdump and tshark")
    ap.add_argument("--merge", action="store_true", help="also time writing the merged trace.pcapng")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args(argv)
    tool_repeat = args.tool_repeat if args.tool_repeat is not None else args.repeat
    tmp = tempfile.mkdtemp(prefix="hoptrace-bench-")
    rows, raw = [], {}
    try:
        for encap in args.encap or ["ipip", "vxlan"]:
            t0 = time.perf_counter()
            plan, captures, total = make_trace(tmp, encap, args.packets)
            gen = time.perf_counter() - t0
            spec = os.path.join(tmp, encap + ".json")
            with open(spec, "w") as f:
                json.dump({"plan": plan, "captures": captures}, f)
            files = [c["file"] for c in captures]
            size = sum(os.path.getsize(p) for p in files) / 1048576.0
            runs = [measure_hoptrace(spec, os.path.join(tmp, encap + "-trace.pcapng") if args.merge else None) for _ in range(args.repeat)]
            entry = {"packets": total, "size_mib": size, "generate_s": gen, "hoptrace": runs}
            rows.append(("hoptrace analyze() (in-process time)", encap, total, fmt([r["analysis"] for r in runs]),
                         "%.1f" % max(r["rss_mib"] for r in runs)))
            rows.append(("hoptrace child process wall (python start + imports + analyze%s)" % (" + merge" if args.merge else ""), encap, total,
                         fmt([r["wall"] for r in runs]), "%.1f" % max(r["rss_mib"] for r in runs)))
            if args.merge:
                rows.append(("hoptrace merged trace.pcapng write", encap, total, fmt([r["merge"] for r in runs]), "-"))
            if not args.no_tools:
                for tool, mk in (("tcpdump", lambda p: ["tcpdump", "-nn", "-r", p]), ("tshark", lambda p: ["tshark", "-r", p])):
                    if not shutil.which(tool):
                        continue
                    times = [measure_tool(mk, files) for _ in range(tool_repeat)]
                    entry[tool] = times
                    rows.append(("`%s > /dev/null`" % " ".join(mk("FILE")), encap, total, fmt(times), "-"))
            entry["verdict"] = runs[-1]["verdict"]
            raw[encap] = entry
            print("%s: %d packets in 6 captures, %.0f MiB, generated in %.1f s; verdict: %s" % (
                encap, total, size, gen, runs[-1]["verdict"]), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| what | encap | packets | seconds: median (min-max) | peak RSS MiB |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print("| %s | %s | %d | %s | %s |" % r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
