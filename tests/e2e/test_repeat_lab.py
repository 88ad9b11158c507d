"""Repeat mode end to end on the lab: N probes in one capture window, an intermittent drop counted exactly.

Real sshd, tcpdump and iptables in the lab's node namespaces; the intermittent loss is a real
xt_statistic rule (drop every 5th echo request arriving on node-b's eth0, matched on the inner
header inside IPIP), so the number of lost probes and the hops around the loss are known in advance.
"""
import os
from xml.etree import ElementTree

import pytest
from test_trace import DST, DST_VETH, SRC, SRC_VETH, flow, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

IPIP_REQUEST = [("node-a", SRC_VETH), ("node-a", "tunl0"), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0"),
                ("node-b", DST_VETH)]


def test_twenty_tcp_probes_every_hop_twenty_of_twenty(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, out, report = trace(tmp_path, *flow(), "-e", "count=20", "-e", "interval=0.05")
    assert rc == 0, out[-3000:]
    assert "verdict: every hop saw the request and the response of all 20 probes" in out
    assert report["repeat"]["count"] == 20 and report["repeat"]["lost"] == 0 and report["repeat"]["loss_pct"] == 0.0
    assert [(h["node"], h["interface"]) for h in report["hops"] if h["direction"] == "request"] == IPIP_REQUEST
    assert [h["probes_seen"] for h in report["hops"]] == [20] * 12
    assert [h["loss_pct"] for h in report["hops"]] == [0.0] * 12
    # 20 connections: 20 SYNs on every request hop, each from its own source port
    sports = [p["sport"] for p in report["repeat"]["probes"]]
    assert len(set(sports)) == 20 and [p["status"] for p in report["repeat"]["probes"]] == ["connected"] * 20
    for h in report["hops"]:
        assert h["flags"].get("SYN" if h["direction"] == "request" else "SYN+ACK") == 20, h
        if h["index"] > 1:
            lat = h["latency_ms"]
            assert 0 <= lat["p50"] <= lat["p95"] <= lat["max"], h
        else:
            assert h["latency_ms"] is None
    assert report["directions"]["request"]["lost"] == 0 and report["directions"]["response"]["lost"] == 0
    # the table: probes seen of 20, loss and p50/p95 per hop
    assert "dir       # node   interface       pkts probes loss      status   p50/p95 ms" in out, out[-3000:]
    assert "request   1 node-a cali41f14107a8d   80 20/20 0%         seen" in out
    assert "probing %s -> %s tcp/443, 20 probes 0.05 s apart" % (SRC, DST) in out
    # the run folder of a repeat run has the page and the JUnit file too (issue 14's "done when")
    run_dir = sorted(tmp_path.glob("*/report.json"))[-1].parent
    page = (run_dir / "report.html").read_text()
    # 12 hops, each in the wide and the narrow drawing; the table has the loss column
    assert page.count('data-status="seen"') == 24 and "0 %" in page
    suite = ElementTree.parse(str(run_dir / "junit.xml")).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("13", "0", "0")


@pytest.fixture
def every_fifth_echo_dropped(lab_factory):
    lab_factory("ipip", 2)

    def add():
        return labctl.fault_add("drop", "node-b", iface="eth0", direction="in", src=SRC, dst=DST, proto="icmp", every=5)
    try:
        yield add
    finally:
        labctl.fault_clear()


def _icmp(*extra):
    return ["-e", '{"src": "%s", "dst": "%s", "proto": "icmp"}' % (SRC, DST), "-e", "count=20", "-e", "interval=0.05"] + list(extra)


def test_an_intermittent_drop_is_counted_and_fails_the_trace(every_fifth_echo_dropped, tmp_path):
    every_fifth_echo_dropped()
    rc, out, report = trace(tmp_path, *_icmp())
    assert rc == 2, out[-3000:]
    assert "4 of 20 requests were lost between node-b eth0 and node-b tunl0" in report["verdict"]
    assert report["verdict"] == "4 of 20 requests were lost between node-b eth0 and node-b tunl0"
    assert report["healthy"] is False
    req = [h for h in report["hops"] if h["direction"] == "request"]
    assert [h["probes_seen"] for h in req] == [20, 20, 20, 20, 16, 16]
    assert [h["loss_pct"] for h in req] == [0.0, 0.0, 0.0, 0.0, 20.0, 20.0]
    assert [h["probes_seen"] for h in report["hops"] if h["direction"] == "response"] == [16] * 6
    assert [p["seq"] for p in report["repeat"]["probes"] if p["request_lost"]] == [5, 10, 15, 20]
    assert [p["status"] for p in report["repeat"]["probes"] if p["request_lost"]] == ["timeout"] * 4
    assert report["directions"]["request"]["lost_at"] == [{"between": ["node-b eth0", "node-b tunl0"], "count": 4}]
    assert report["repeat"]["loss_pct"] == 20.0
    assert "verdict: 4 of 20 requests were lost between node-b eth0 and node-b tunl0" in out
    assert "request   5 node-b tunl0             16 16/20 20%        PART" in out


def test_a_loss_within_max_loss_is_healthy_and_said(every_fifth_echo_dropped, tmp_path):
    every_fifth_echo_dropped()
    rc, out, report = trace(tmp_path, *_icmp("-e", "max_loss=25"))
    assert rc == 0, out[-3000:]
    assert report["healthy"] is True
    assert report["verdict"] == ("4 of 20 requests were lost between node-b eth0 and node-b tunl0; "
                                 "20% of the probes lost, within max_loss 25%")
