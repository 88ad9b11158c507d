"""Flannel VXLAN end to end: the real playbook over real SSH on the lab's `flannel` mode.

The lab's flannel nodes are shaped like flanneld's (tests/lab/flannel.py): pods behind the `cni0`
bridge on `veth` + 8 hex ports, `flannel.1` (kernel VXLAN, VNI 1, UDP 8472), one /24 per node with
`via 10.244.M.0 dev flannel.1 onlink` routes. The trace finds each pod's veth from the node's
neighbour table and cni0's fdb (there is no per-pod route), captures the inner packets on
flannel.1 and the VXLAN on eth0. One lab shape for the module, few traces. Root only.
"""
import os
import subprocess

import pytest

from lab import labctl
from test_trace import flow, hop_rows, node_leftovers, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SRC, DST, SAME = "10.244.0.2", "10.244.1.2", "10.244.0.3"       # node-a pod 0 -> node-b pod 0; node-a pod 1
SRC_VETH, DST_VETH, SAME_VETH = "veth7d27950a", "veth9e279555", "veth5002c6d0"
PATH = [("node-a", SRC_VETH), ("node-a", "flannel.1"), ("node-a", "eth0"),
        ("node-b", "eth0"), ("node-b", "flannel.1"), ("node-b", DST_VETH)]


def rows(path, statuses):
    request = [("request", i, n, iface, s) for i, ((n, iface), s) in enumerate(zip(path, statuses["request"]), 1)]
    response = [("response", i, n, iface, s) for i, ((n, iface), s) in enumerate(zip(path[::-1], statuses["response"]), 1)]
    return request + response


@pytest.fixture
def flannel_lab(lab_factory):
    st = lab_factory("flannel", 2)
    veths = {p["ip"]: p["veth"] for p in st["pods"]}
    assert (veths[SRC], veths[DST], veths[SAME]) == (SRC_VETH, DST_VETH, SAME_VETH)
    return st


def test_healthy_flannel_trace_has_veth_flannel1_and_vxlan_8472_hops(flannel_lab, tmp_path):
    rc, out, report = trace(tmp_path, *flow(SRC, DST))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == rows(PATH, {"request": ["seen"] * 6, "response": ["seen"] * 6})
    assert report["encap"] == "vxlan" and report["healthy"] is True
    assert report["verdict"] == "every hop saw the request and the response"
    assert report["path"]["lines"] == [
        "src 10.244.0.2: on node-a (the entry node's route 10.244.0.2 dev %s)" % SRC_VETH,
        "dst 10.244.1.2: on node-b (node-a's route 10.244.1.0/24 via 10.244.1.0 dev flannel.1; 10.240.0.9 is "
        "ansible_host of node-b)"]
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop
    # node-b was not read before its captures started: it found its pod's veth behind cni0 itself
    assert report["path"]["deferred"] == ["node-b"]
    assert "request   3 node-a eth0 (vxlan)" in out and "request   6 node-b %s" % DST_VETH in out
    # the underlay captures held VXLAN on Flannel's port: every eth0 packet is UDP 8472
    run = next(tmp_path.glob("*/report.json")).parent
    for node in ("node-a", "node-b"):
        ports = subprocess.run(["tshark", "-r", str(run / node / "eth0.pcap"), "-d", "udp.port==8472,vxlan", "-T", "fields",
                                "-e", "udp.dstport", "-e", "vxlan.vni"], capture_output=True, text=True, timeout=60).stdout
        assert set(ports.splitlines()) == {"8472\t1"}, ports
    assert node_leftovers() == {}


def test_a_drop_on_node_b_flannel1_names_that_hop(flannel_lab, tmp_path):
    labctl.fault_add("drop", "node-b", iface="flannel.1", direction="in", src=SRC, dst=DST, proto="tcp", port="443")
    try:
        rc, out, report = trace(tmp_path, *flow(SRC, DST), "-e", "probe_timeout=1")
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    assert hop_rows(report)[:6] == rows(PATH, {"request": ["seen"] * 5 + ["LOST"], "response": []})
    assert report["verdict"] == ("request reached node-b flannel.1 and was not seen on node-b %s (delivery to the pod)"
                                 % DST_VETH)
    assert report["why"] == ("dropped by iptables mangle PREROUTING rule 1 (DROP, -m comment --comment hoptrace-fault-f1; "
                             "1 packet while 1 was lost) on node-b")
    assert "verdict: request reached node-b flannel.1" in out
    assert node_leftovers() == {}


def test_same_node_flannel_pods_are_veth_to_veth(flannel_lab, tmp_path):
    rc, out, report = trace(tmp_path, *flow(SRC, SAME))
    assert rc == 0, out[-3000:]
    assert report["encap"] == "local"
    assert hop_rows(report) == [
        ("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", SAME_VETH, "seen"),
        ("response", 1, "node-a", SAME_VETH, "seen"), ("response", 2, "node-a", SRC_VETH, "seen")]


def test_a_pod_the_node_has_no_neighbour_for_is_captured_on_cni0(flannel_lab, tmp_path):
    # node-b forgets its pod (as after a reboot of the neighbour table): its capture start finds the
    # pod routed to cni0 but no veth behind it, captures on cni0 and says why
    labctl.exec_in_node("node-b", ["ip", "neigh", "del", DST, "dev", "cni0"])
    rc, out, report = trace(tmp_path, *flow(SRC, DST))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == rows(PATH[:5] + [("node-b", "cni0")], {"request": ["seen"] * 6, "response": ["seen"] * 6})
    note = ("node-b has no neighbour entry for the pod 10.244.1.2 on cni0 yet (ip neigh show dev cni0): capturing on "
            "cni0 itself, which sees the pod's traffic to other nodes but not the pod's veth")
    assert note in report["notes"], report["notes"]
    assert "note: node-b has no neighbour entry for the pod 10.244.1.2 on cni0 yet" in out
    # the trace's own packets taught node-b its pod again: later traces find the veth
    assert "10.244.1.2 lladdr" in labctl.exec_in_node("node-b", ["ip", "neigh", "show", "dev", "cni0"]).stdout
