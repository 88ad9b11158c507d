"""Say why (issue 12): lab faults shaped like the real causes, each trace's why line exact.

The capture module's counter snapshots (module_utils/_counters.py) come back with the stop of
each node's captures; the analysis names the rule, route or counter that explains where the
request stopped (plugin_utils/cause_counters.py). The faults are tests/lab/whyfaults.py: Felix-
shaped policy chains with a deny rule, a REJECT with icmp-admin-prohibited (the ICMP error is in
the captures: the filters pass ICMP errors about the flow), the pod's route gone so that Calico's
block blackhole takes it, strict rp_filter with an asymmetric route. Root only (the lab needs it).
"""
import os
import re

import pytest

from lab import labctl
from test_trace import DST, DST_VETH, SRC, flow, hop_rows, node_leftovers, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

# one SYN and its retransmissions lost (probe_timeout 1: see test_trace.test_drop_at_each_hop_is_named)
TRACE = ("-e", "probe_timeout=1")
REQUEST_PATH = [("request", 1, "node-a", "cali41f14107a8d"), ("request", 2, "node-a", "tunl0"), ("request", 3, "node-a", "eth0"),
                ("request", 4, "node-b", "eth0"), ("request", 5, "node-b", "tunl0"), ("request", 6, "node-b", DST_VETH)]


def faulty_trace(tmp_path, kind, **fault):
    labctl.fault_add(kind, "node-b", **fault)
    try:
        return trace(tmp_path, *flow(), *TRACE)
    finally:
        labctl.fault_clear()


def stopped_at_the_pod(tmp_path, kind, **fault):
    """A trace with ``kind`` on node-b whose request is seen up to node-b tunl0 and lost at the pod's veth:
    (printed output, report, packets lost there)."""
    rc, out, report = faulty_trace(tmp_path, kind, **fault)
    assert rc == 2, out[-3000:]
    assert request_rows(report) == lost_at(report, 6)
    return out, report, lost_packets(report, 6)


def lost_at(report, index):
    """The request hops' statuses: seen before ``index``, LOST from it on."""
    return [(d, i, n, iface, "seen" if i < index else "LOST") for d, i, n, iface in REQUEST_PATH]


def request_rows(report):
    return [r for r in hop_rows(report) if r[0] == "request"]


def lost_packets(report, index):
    hops = {h["index"]: h for h in report["hops"] if h["direction"] == "request"}
    return hops[index - 1]["packets"]


def test_a_calico_policy_deny_names_the_policy_chain_and_rule(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    out, report, lost = stopped_at_the_pod(tmp_path, "calico-deny", src=SRC, dst=DST, port="443")
    cause = report["directions"]["request"]["cause"]
    why = ("dropped by iptables filter cali-pi-_t2bh0oR5Tfyncq7TXdP rule 1 (DROP, -m comment --comment cali:hqHEy9ZRrsP1C5jR; "
           "%s while %s lost) on node-b: Calico ingress policy (Felix hashed its name into the chain name)") % (
        "1 packet" if lost == 1 else "%d packets" % lost, "1 was" if lost == 1 else "%d were" % lost)
    assert report["why"] == why, report["why"]
    assert (cause["kind"], cause["confidence"], cause["text"]) == ("netfilter-rule", "high", why)
    assert "why: dropped by iptables filter cali-pi-" in " ".join(line.strip() for line in out.splitlines())
    assert node_leftovers() == {}


def test_a_reject_with_admin_prohibited_is_in_the_captures(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    out, report, _lost = stopped_at_the_pod(tmp_path, "reject", src=SRC, dst=DST, port="443")
    # 172.17.25.192 is node-b's tunl0 address: node-b's own addresses come back with its counters
    assert report["verdict"] == ("node-b (172.17.25.192) rejected the request to 172.17.25.239 port 443 (ICMP communication administratively "
                                 "prohibited); request reached node-b tunl0 and was not seen on node-b calic25e805a467 (delivery to "
                                 "the pod)")
    why = ("node-b (172.17.25.192) answered the request with ICMP communication administratively prohibited (type 3 code 13, first seen "
           "on node-b tunl0); node-b's iptables filter FORWARD rule 1 sent it (REJECT --reject-with icmp-admin-prohibited, "
           "-m comment --comment hoptrace-fault-f1; 1 packet)")
    assert report["why"] == why
    cause = report["directions"]["request"]["cause"]
    assert (cause["kind"], cause["confidence"], cause["text"]) == ("icmp-unreachable", "high", why)
    # the error travels the response's hops back to the source pod, and every one of them kept it
    hops = ["node-b tunl0", "node-b eth0", "node-a eth0", "node-a tunl0", "node-a cali41f14107a8d"]
    assert len(cause["evidence"]) == 6
    for hop, line in zip(hops, cause["evidence"]):
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6} %s: 172\.17\.25\.192 > 172\.17\.25\.79 ICMP communication administratively "
                            r"prohibited \(type 3 code 13\) for tcp 172\.17\.25\.79\.\d+ > 172\.17\.25\.239\.443" % hop, line), line
    assert cause["evidence"][5] == ("node-b iptables-nft (packets +1, bytes +60): -t filter -A FORWARD -s 172.17.25.79/32 "
                                    "-d 172.17.25.239/32 -o calic25e805a467 -p tcp -m tcp --dport 443 -m comment --comment "
                                    "hoptrace-fault-f1 -j REJECT --reject-with icmp-admin-prohibited")


def test_a_missing_pod_route_falls_into_the_block_blackhole(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, out, report = faulty_trace(tmp_path, "pod-route-gone", dst=DST)
    assert rc == 2, out[-3000:]
    # node-b cannot name the pod's veth either (no route to the pod): that hop is unknown
    assert [r[4] for r in request_rows(report)] == ["seen"] * 5 + ["unknown"]
    assert "node-b has no route to 172.17.25.239: RTNETLINK answers: Invalid argument" in report["verdict"]
    assert report["why"] == "blackhole route for 172.17.25.239 on node-b (blackhole 172.17.25.192/26)"
    cause = report["directions"]["request"]["cause"]
    assert (cause["kind"], cause["confidence"]) == ("route", "high")
    assert cause["evidence"] == ["node-b: ip route get 172.17.25.239: Invalid argument", "node-b: blackhole 172.17.25.192/26"]


def test_strict_rp_filter_with_an_asymmetric_route(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    out, report, lost = stopped_at_the_pod(tmp_path, "rp-filter", src=SRC, dst=DST, iface="tunl0")
    assert report["why"] == ("the reverse path filter dropped it on node-b (TcpExt.IPReversePathFilter rose by %d while %d %s lost; "
                             "rp_filter all=1, tunl0=1)" % (lost, lost, "was" if lost == 1 else "were"))
    assert report["directions"]["request"]["cause"]["kind"] == "rp-filter"


def test_an_mtu_black_hole_found_with_a_full_size_probe(lab_factory, tmp_path):
    """node-b's end of the pod's veth gets MTU 1400 and its fragmentation needed errors are dropped: the
    small probe passes, the full-size one (1480 bytes, the pods' IPIP MTU, DF) never reaches the pod."""
    lab_factory("ipip", 2)
    labctl.fault_add("mtu", "node-b", iface=DST_VETH, mtu="1400")
    try:
        rc_small, out_small, small = trace(tmp_path / "small", *flow(), "-e", "proto=icmp")
        rc, out, report = trace(tmp_path / "max", *flow(), "-e", "proto=icmp", "-e", "probe_size=max")
    finally:
        labctl.fault_clear()
    assert rc_small == 0 and small["healthy"] is True, out_small[-3000:]
    assert rc == 2, out[-3000:]
    assert request_rows(report) == lost_at(report, 6)
    why = ("packets of 1480 bytes seen at node-b tunl0, never at node-b calic25e805a467: MTU 1400 on node-b "
           "calic25e805a467")
    assert report["why"] == why
    cause = report["directions"]["request"]["cause"]
    assert (cause["kind"], cause["confidence"], cause["text"]) == ("mtu", "high", why)
    assert cause["evidence"][:2] == ["node-b tunl0: largest packet 1480 bytes", "node-b calic25e805a467: mtu 1400"]
    # the fault's DROP of the fragmentation needed errors counted too: a symptom, listed after the cause
    assert cause["evidence"][2].startswith("also: dropped by iptables filter ")
