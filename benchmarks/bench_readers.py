#!/usr/bin/env python3
"""Ways to read a pcap in Python, timed on the same generated 1M-packet trace (for docs/dependencies.md).

    .venv/bin/python benchmarks/bench_readers.py --packets 1000000
"""
import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".collections"))

import bench_analysis  # noqa: E402
import dpkt  # noqa: E402

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.analysis import analyze  # noqa: E402
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture  # noqa: E402

KEY = struct.Struct("!BxHH3xB2xIIHHIIH")


def dpkt_objects(files, offsets):
    for path in files:
        with open(path, "rb") as f:
            for _ts, buf in dpkt.pcap.Reader(f):
                eth = dpkt.ethernet.Ethernet(buf) if offsets[path] else None
                ip = eth.data if eth is not None else dpkt.ip.IP(buf)
                while isinstance(ip.data, dpkt.ip.IP):
                    ip = ip.data
                tcp = ip.data
                hash((ip.src, ip.dst, ip.id, ip.len, tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags))


def dpkt_reader_direct(files, offsets):
    for path in files:
        lay = offsets[path]
        with open(path, "rb") as f:
            for _ts, buf in dpkt.pcap.Reader(f):
                hash(KEY.unpack_from(buf, lay))


def dpkt_reader_only(files, offsets):
    for path in files:
        with open(path, "rb") as f:
            for _ts, _buf in dpkt.pcap.Reader(f):
                pass


def bulk_records_direct(files, offsets):
    for path in files:
        lay = offsets[path]
        for _ts, _incl, _orig, buf, off, _lt in Capture(path).records():
            hash(KEY.unpack_from(buf, off + lay))


def bulk_records_only(files, offsets):
    for path in files:
        for _rec in Capture(path).records():
            pass


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1000000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="hoptrace-readers-")
    try:
        plan, captures, total = bench_analysis.make_trace(tmp, "ipip", args.packets)
        files = [c["file"] for c in captures]
        offsets = {c["file"]: (34 if c["interface"] == "eth0" else 0 if c["interface"] == "tunl0" else 14) for c in captures}
        ways = [
            ("dpkt.pcap.Reader + dpkt protocol objects per packet", dpkt_objects),
            ("dpkt.pcap.Reader + struct.unpack_from of the header bytes", dpkt_reader_direct),
            ("dpkt.pcap.Reader, iteration only", dpkt_reader_only),
            ("hoptrace bulk 1 MiB reads (dpkt validates the header) + struct", bulk_records_direct),
            ("hoptrace bulk 1 MiB reads, iteration only", bulk_records_only),
            ("hoptrace analyze() (bulk reads walked inline, whole analysis)", lambda f, o: analyze(plan, captures)),
        ]
        print("| reader (%d packets, IPIP, 6 files) | seconds: median (min-max) |" % total)
        print("| --- | ---: |")
        for name, fn in ways:
            times = []
            for _ in range(1 if fn is dpkt_objects else args.repeat):
                t0 = time.perf_counter()
                fn(files, offsets)
                times.append(time.perf_counter() - t0)
            print("| %s | %.2f (%.2f-%.2f) |" % (name, statistics.median(times), min(times), max(times)))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
