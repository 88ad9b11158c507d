"""IPv6 and dual-stack end to end: the real playbook on a dual-stack lab (`lab.py up --ipv6`).

The pods keep their IPv4 addresses and get IPv6 ones from their nodes' /122 blocks; in vxlan mode
IPv6 rides Calico's vxlan-v6.calico (real kernel VXLAN over an IPv6 underlay), in bgp mode the
/122 blocks are routed via the peer's link-local address. One lab shape per test group, few traces.
"""
import os
import re

import pytest
from test_trace import DST_VETH, HEALTHY, SRC_VETH, flow, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SRC6, DST6 = "fd00:10:244::4f", "fd00:10:244::af"      # the seed's pods' IPv6 addresses (node-a -> node-b)
SRC4, DST4 = "172.17.25.79", "172.17.25.239"


def _rows(path):
    nodes = ["node-a"] * (len(path) // 2) + ["node-b"] * (len(path) // 2)
    rows = [("request", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes, path))]
    rows += [("response", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes[::-1], path[::-1]))]
    return rows


VXLAN6 = [SRC_VETH, "vxlan-v6.calico", "eth0", "eth0", "vxlan-v6.calico", DST_VETH]
VXLAN4 = [SRC_VETH, "vxlan.calico", "eth0", "eth0", "vxlan.calico", DST_VETH]
BGP = [SRC_VETH, "eth0", "eth0", DST_VETH]


def test_dual_stack_pods_have_both_addresses(lab_factory):
    st = lab_factory("vxlan", 2, ipv6=True)
    assert st["ipv6"] is True
    seed = {p["ip"]: p["ip6"] for p in st["pods"]}
    assert seed[SRC4] == SRC6 and seed[DST4] == DST6
    assert labctl.demo_flow() == (SRC6, DST6, 443)
    route = labctl.exec_in_pod(SRC4, ["ip", "-6", "route", "show", "default"], check=True).stdout
    assert route.split()[:5] == ["default", "via", "fe80::ecee:eeff:feee:eeee", "dev", "eth0"]
    link = labctl.exec_in_node("node-a", ["ip", "-d", "link", "show", "vxlan-v6.calico"], check=True).stdout
    assert "mtu 1430" in link and "vxlan id 4096 local fd00:10:240::1 dev eth0" in link and "dstport 4789" in link


def test_tcp_over_vxlan_v6_is_healthy(lab_factory, tmp_path):
    lab_factory("vxlan", 2, ipv6=True)
    rc, out, report = trace(tmp_path, *flow(SRC6, DST6, 443))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(VXLAN6)
    assert report["healthy"] is True and report["encap"] == "vxlan"
    assert report["verdict"] == "every hop saw the request and the response"
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop
    assert HEALTHY in out
    assert "request   3 node-a eth0 (vxlan)" in out
    assert "fd00:10:240::2 is ip6 of node-b" in " ".join(out.split())
    assert node_leftovers() == {}


def test_icmpv6_echo_over_vxlan_v6_is_healthy(lab_factory, tmp_path):
    lab_factory("vxlan", 2, ipv6=True)
    rc, out, report = trace(tmp_path, "-e", "src=%s" % SRC6, "-e", "dst=%s" % DST6, "-e", "proto=icmp")
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(VXLAN6)
    assert "hoptrace: icmp %s -> %s (vxlan, node-a -> node-b)" % (SRC6, DST6) in out


def test_udp_refusal_over_ipv6_is_the_icmpv6_error(lab_factory, tmp_path):
    # nothing listens on udp 443 in the pod: its ICMPv6 port unreachable comes back through the
    # vxlan-v6 tunnel and the filters of every hop pass it (ICMPv6 errors quoting the flow)
    lab_factory("vxlan", 2, ipv6=True)
    rc, out, report = trace(tmp_path, "-e", "src=%s" % SRC6, "-e", "dst=%s" % DST6, "-e", "proto=udp", "-e", "port=443")
    assert rc != 0
    assert report["verdict"] == "fd00:10:244::af refused port 443 (ICMPv6 port unreachable from the destination pod)"
    assert [r for r in hop_rows(report) if r[0] == "request"] == _rows(VXLAN6)[:6]


def test_inventory_without_ip6_maps_the_node_through_its_mac(lab_factory, tmp_path):
    # most inventories name nodes by IPv4 only: node-a's neighbour table gives node-b's IPv6 address
    # the MAC of its IPv4 one (route_info's peers[].same_link)
    lab_factory("vxlan", 2, ipv6=True)
    inventory = tmp_path / "inventory-v4.ini"
    with open(labctl.inventory_path()) as handle:
        inventory.write_text(re.sub(r" ip6=\S+", "", handle.read()))
    assert "ip6=" not in inventory.read_text()
    rc, out, report = trace(tmp_path / "run", *flow(SRC6, DST6, 443), inventory=str(inventory))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(VXLAN6)
    assert "fd00:10:240::2 has the MAC of 10.240.0.9, ansible_host of node-b (node-a's neighbour table)" in " ".join(out.split())


def test_ipv4_still_healthy_on_the_dual_stack_lab(lab_factory, tmp_path):
    lab_factory("vxlan", 2, ipv6=True)
    rc, out, report = trace(tmp_path, *flow(SRC4, DST4, 443))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(VXLAN4)
    assert report["verdict"] == "every hop saw the request and the response"


def test_drop_on_the_ipv6_underlay_is_localised(lab_factory, tmp_path):
    # ip6tables with xt_u32 on the inner IPv6 header inside vxlan-v6: node-b's eth0 sees the SYN
    # arrive, the kernel drops it before decapsulation
    lab_factory("vxlan", 2, ipv6=True)
    labctl.fault_add("drop", "node-b", iface="eth0", direction="in", src=SRC6, dst=DST6, proto="tcp", port="443")
    try:
        rc, out, report = trace(tmp_path, *flow(SRC6, DST6, 443), "-e", "probe_timeout=1")
    finally:
        labctl.fault_clear()
    assert rc != 0
    assert report["verdict"] == "request reached node-b eth0 and was not seen on node-b vxlan-v6.calico (decapsulation)"
    rows = {(h["direction"], h["index"]): h["status"] for h in report["hops"]}
    assert [rows[("request", i)] for i in range(1, 7)] == ["seen"] * 4 + ["LOST"] * 2
    # one SYN or its retransmission too, as the probe's 1 s allows: the rule counted every lost one
    assert re.fullmatch(r"dropped by ip6tables mangle PREROUTING rule 3 \(DROP, -m comment --comment hoptrace-fault-f1; "
                        r"(\d+) packets? while \1 (were|was) lost\) on node-b", report["why"]), report["why"]


def test_bgp_link_local_next_hops_over_ipv6(lab_factory, tmp_path):
    lab_factory("bgp", 2, ipv6=True)
    route = labctl.exec_in_node("node-a", ["ip", "-6", "route", "show", "fd00:10:244::80/122"], check=True).stdout
    assert route.split()[:6] == ["fd00:10:244::80/122", "via", "fe80::68:74ff:fe06:1", "dev", "eth0", "proto"]
    rc, out, report = trace(tmp_path, *flow(SRC6, DST6, 443))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(BGP)
    assert report["encap"] == "none" and report["healthy"] is True
    assert "via fe80::68:74ff:fe06:1 dev eth0 proto bird; fd00:10:240::2 is ip6 of node-b" in " ".join(out.split())
