"""A NodePort on a node's IPv6 address, on the dual-stack lab (`lab.py up --ipv6`, vxlan, 2 nodes): node-a's pod
connects from its IPv6 address to node-b's (fd00:10:240::2) nodePort 30443 (default/web-nodeport,
tests/lab/kubeproxy.py: kube-proxy's IPv6 ruleset has its KUBE-NODEPORTS / service-nodeports too), node-b's
kube-proxy rules DNAT it to node-b's pod [fd00:10:244::81]:443 and masquerade it to an IPv6 address of node-b -
the kernel's IPv6 source address selection for the pod picks the longest matching prefix, vxlan-v6.calico's
fd00:10:244::80 from node-b's block, not eth0's fd00:10:240::2 (IPv4 masquerades to eth0's 10.240.0.9) - the pod
answers node-b, node-b un-DNATs and answers node-a's pod over vxlan-v6.calico. Real kernel IPv6
DNAT/SNAT, the real playbook over SSH; iptables mode, then nftables mode.
"""
import os

import pytest
from test_ipv6_lab import SRC6
from test_services_ipv6_lab import dual_stack_lab, services
from test_services_lab import B2_VETH
from test_trace import SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

NODE_B6, NODE_PORT = "fd00:10:240::2", 30443
BACKEND6 = "fd00:10:244::81"                     # node-b's second pod (172.17.25.193), default/web-nodeport's endpoint
MASQ6 = "fd00:10:244::80"                        # node-b's vxlan-v6.calico address, where its IPv6 masquerade puts the source
ROWS = [
    ("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", "eth0", "seen"),
    ("request", 3, "node-b", "eth0", "seen"), ("request", 4, "node-b", B2_VETH, "seen"),
    ("response", 1, "node-b", B2_VETH, "seen"), ("response", 2, "node-b", "vxlan-v6.calico", "seen"),
    ("response", 3, "node-b", "eth0", "seen"), ("response", 4, "node-a", "eth0", "seen"),
    ("response", 5, "node-a", "vxlan-v6.calico", "seen"), ("response", 6, "node-a", SRC_VETH, "seen")]
ARGS = ["-e", "src=%s" % SRC6, "-e", "dst=%s" % NODE_B6, "-e", "dport=%d" % NODE_PORT]
LINE = ("NodePort [fd00:10:240::2]:30443 (default/web-nodeport) -> backend [fd00:10:244::81]:443 (on node-b), chosen by "
        "kube-proxy's DNAT on node-b (masquerading the source to fd00:10:244::80)")


@pytest.fixture(scope="module")
def lab6(lab_factory):
    yield from dual_stack_lab(lab_factory)


def test_the_lab_writes_the_ipv6_nodeport_in_both_modes(lab6):
    listed = {s["name"]: s for s in services("iptables")}
    assert listed["default/web-nodeport"]["endpoints6"] == ["[%s]:443" % BACKEND6]
    saved = labctl.exec_in_node("node-b", ["ip6tables-save", "-t", "nat"], check=True).stdout.splitlines()
    # (the lab's other IPv6 NodePorts, whose endpoints have IPv6 addresses, are beside it)
    assert ('-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web-nodeport:https" -m tcp --dport 30443 '
            '-j KUBE-EXT-OBTREKPB7UR4IIGU') in saved
    services("nft")
    listed = labctl.exec_in_node("node-b", ["nft", "list", "map", "ip6", "kube-proxy", "service-nodeports"], check=True).stdout
    assert "tcp . 30443 : goto external-" in listed


def assert_nodeport6(report, out, mode):
    assert hop_rows(report) == ROWS
    assert (report["verdict"], report["healthy"]) == ("every hop saw the request and the response", True)
    assert [h["encap"] for h in report["hops"] if h["direction"] == "response"] == ["none", "none", "vxlan", "vxlan", "none", "none"]
    svc = report["service"]
    assert svc["line"] == LINE
    assert "service: " + LINE in " ".join(out.split())
    assert (svc["name"], svc["kind"], svc["dnat_on"], svc["snat_to"], svc["masquerade"], svc["mode"]) == (
        "default/web-nodeport", "nodeport", "node-b", MASQ6, True, mode)
    assert svc["backend"] == {"ip": BACKEND6, "port": 443, "node": "node-b", "pod": None}
    # node-b's IPv6 conntrack entry: DNATed to its pod and masqueraded to node-b's vxlan-v6.calico address
    (entry,) = svc["conntrack"]["entries"]
    o, r = entry["orig"], entry["reply"]
    assert (o["src"], o["dst"], o["dport"], r["src"], r["sport"], r["dst"]) == (SRC6, NODE_B6, NODE_PORT, BACKEND6, 443, MASQ6)
    assert svc["conntrack"]["by"] == "conntrack -L -f ipv6 -p tcp --orig-src %s --orig-dst %s --dport %d" % (SRC6, NODE_B6, NODE_PORT)
    assert ("the connection was masqueraded on node-b: the backend answers [fd00:10:244::80]:%d, not [%s]:%d (conntrack)"
            % (r["dport"], SRC6, o["sport"])) in report["notes"]
    # every packet of the flow on the backend's veth was matched through the un-masquerade (request 4, response 1)
    veth = next(c for c in report["captures"] if c["key"] == "node-b/%s" % B2_VETH)
    hops = {(h["direction"], h["index"]): h["packets"] for h in report["hops"]}
    assert veth["matched"] == hops[("request", 4)] + hops[("response", 1)] and hops[("request", 4)] >= 3
    assert node_leftovers() == {}


def test_ipv6_nodeport_of_another_node_is_dnated_and_masqueraded_there(lab6, tmp_path):
    services("iptables")
    rc, out, report = trace(tmp_path, *ARGS)
    assert rc == 0, out[-3000:]
    assert_nodeport6(report, out, "iptables")


def test_nft_ipv6_nodeport_is_dnated_and_masqueraded_there(lab6, tmp_path):
    services("nft")
    assert "KUBE-" not in labctl.exec_in_node("node-b", ["ip6tables-save"], check=True).stdout
    rc, out, report = trace(tmp_path, *ARGS)
    assert rc == 0, out[-3000:]
    assert_nodeport6(report, out, "nft")
