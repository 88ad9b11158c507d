"""IPv6 on WireGuard and Flannel end to end: the real playbook on `lab.py up --mode wireguard|flannel --ipv6`.

WireGuard: Calico's second device wg-v6.cali (wireguard-go, port 51821, MTU 1420) carries the
pods' IPv6 between the nodes' IPv6 addresses; its underlay hops are matched by node pair, port,
count and timing. Flannel: flannel-v6.1 (kernel VXLAN over IPv6, VNI 1, port 8472) and cni0's
IPv6 subnet. Per data path one healthy trace with the exact hop table and one injected loss with
the exact verdict, plus a WireGuard trace planned from both path nodes' routes (an entry node off
the path, 3 nodes); three lab shapes for the module. Root only.
"""
import os
import re

import pytest
from test_trace import DST_VETH, HEALTHY, SRC_VETH, flow, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

WG_SRC6, WG_DST6 = "fd00:10:244::4f", "fd00:10:244::af"        # the seed's pods' IPv6 addresses
FL_SRC6, FL_DST6 = "fd00:10:244::2", "fd00:10:244:1::2"        # flannel: node-a pod 0 -> node-b pod 0
FL_SRC_VETH, FL_DST_VETH = "veth7d27950a", "veth9e279555"
A6, B6 = "fd00:10:240::1", "fd00:10:240::2"


def rows(devices, request, response):
    """Hop rows of a node-a -> node-b path through `devices` (node-a's, then node-b's)."""
    half = len(devices) // 2
    nodes = ["node-a"] * half + ["node-b"] * half
    out = [("request", i, n, d, s) for i, (n, d, s) in enumerate(zip(nodes, devices, request), 1)]
    return out + [("response", i, n, d, s) for i, (n, d, s) in enumerate(zip(nodes[::-1], devices[::-1], response), 1)]


def lossy(tmp_path, pods, kind, node, **fault):
    labctl.fault_add(kind, node, **fault)
    try:
        return trace(tmp_path, *flow(pods[0], pods[1], 443), "-e", "probe_timeout=1")
    finally:
        labctl.fault_clear()


# ---------------------------------------------------------------- WireGuard (wg-v6.cali)

WG6 = [SRC_VETH, "wg-v6.cali", "eth0", "eth0", "wg-v6.cali", DST_VETH]


def test_ipv6_over_wg_v6_cali_is_healthy_and_matched_on_51821(lab_factory, tmp_path):
    lab_factory("wireguard", 2, ipv6=True)
    assert labctl.demo_flow() == (WG_SRC6, WG_DST6, 443)
    rc, out, report = trace(tmp_path, *flow(WG_SRC6, WG_DST6, 443))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == rows(WG6, ["seen"] * 6, ["seen"] * 6)
    assert report["healthy"] is True and report["encap"] == "wireguard"
    assert report["verdict"] == "every hop saw the request and the response" and HEALTHY in out
    assert [h["encap"] for h in report["hops"]][:6] == ["none", "none", "wireguard", "wireguard", "none", "none"]
    hops = {(h["direction"], h["index"]): h for h in report["hops"]}
    for direction, (a, b) in (("request", (A6, B6)), ("response", (B6, A6))):
        inner = hops[(direction, 2)]["packets"]
        assert [hops[(direction, i)]["packets"] for i in range(1, 7)] == [inner] * 6
        wg = report["wireguard"][direction]
        assert (wg["from_ip"], wg["to_ip"], wg["port"], wg["carried"], wg["lost"], wg["inferred"]) == (a, b, 51821, inner, 0, 0)
        assert wg["sent"]["data"] == wg["received"]["data"] >= inner
    assert any(n.startswith("node-a eth0 -> node-b eth0: WireGuard UDP 51821 from fd00:10:240::1 to fd00:10:240::2 is "
                            "encrypted, so the flow's packets there were matched by node pair, port, count and timing")
               for n in report["notes"]), report["notes"]
    # the path came from node-a's wg-v6.cali peer whose allowed IPs hold the destination
    assert re.search(r"dev wg-v6\.cali; WireGuard peer \S+ \(allowed IPs hold fd00:10:244::af\) has endpoint "
                     r"fd00:10:240::2, ip6 of node-b", " ".join(" ".join(report["path"]["lines"]).split())), report["path"]
    assert node_leftovers() == {}


def test_an_entry_node_off_the_path_reads_both_and_filters_each_familys_peer(lab_factory, tmp_path):
    # node-c plans from node-a's and node-b's routes: each lists the other as 10.240.x and fd00:10:240::x;
    # the IPv6 flow's underlay filter must name the wg-v6.cali peer's IPv6 address
    lab_factory("wireguard", 3, ipv6=True)
    rc, out, report = trace(tmp_path, *flow(WG_SRC6, WG_DST6, 443), "-e", "via=node-c")
    assert rc == 0, out[-3000:]
    # both path nodes were read (none deferred): the plan took each direction's own route_info
    assert (report["path"]["entry"], report["path"]["hosts"], report["path"]["deferred"]) == ("node-c", ["node-a", "node-b"], [])
    assert hop_rows(report) == rows(WG6, ["seen"] * 6, ["seen"] * 6)
    wg = report["wireguard"]["request"]
    assert (wg["from_ip"], wg["to_ip"], wg["port"], wg["inferred"]) == (A6, B6, 51821, 0)
    assert wg["sent"]["data"] == wg["received"]["data"] >= wg["carried"] == report["hops"][1]["packets"]


def test_wire_drop_of_udp_51821_is_put_between_the_two_nics(lab_factory, tmp_path):
    lab_factory("wireguard", 2, ipv6=True)
    rc, out, report = lossy(tmp_path, (WG_SRC6, WG_DST6), "wire-drop", "node-b", proto="udp", port="51821")
    assert rc == 2, out[-3000:]
    assert report["verdict"] == ("request reached node-a eth0 and was not seen on node-b eth0 "
                                 "(underlay network between the nodes, WireGuard UDP)")
    assert hop_rows(report) == rows(WG6, ["seen"] * 3 + ["LOST"] * 3, ["none"] * 6)
    wg = report["wireguard"]["request"]
    assert (wg["from_ip"], wg["to_ip"], wg["port"]) == (A6, B6, 51821)
    assert wg["received"] == {"data": 0, "keepalive": 0, "handshake": 0, "cookie": 0}
    assert wg["lost"] == wg["carried"] + wg["held_for_handshake"] >= 1


# ---------------------------------------------------------------- Flannel (flannel-v6.1)

FL6 = [FL_SRC_VETH, "flannel-v6.1", "eth0", "eth0", "flannel-v6.1", FL_DST_VETH]


def test_ipv6_over_flannel_v6_1_is_healthy(lab_factory, tmp_path):
    st = lab_factory("flannel", 2, ipv6=True)
    assert {p["ip6"]: p["veth"] for p in st["pods"]}[FL_DST6] == FL_DST_VETH
    assert labctl.demo_flow() == (FL_SRC6, FL_DST6, 443)
    rc, out, report = trace(tmp_path, *flow(FL_SRC6, FL_DST6, 443))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == rows(FL6, ["seen"] * 6, ["seen"] * 6)
    assert report["healthy"] is True and report["encap"] == "vxlan"
    assert report["verdict"] == "every hop saw the request and the response"
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop
    assert report["path"]["lines"][1] == ("dst fd00:10:244:1::2: on node-b (node-a's route fd00:10:244:1::/64 via "
                                          "fd00:10:244:1:: dev flannel-v6.1; fd00:10:240::2 is ip6 of node-b)")
    assert "request   3 node-a eth0 (vxlan)" in out and "request   6 node-b %s" % FL_DST_VETH in out
    assert node_leftovers() == {}


def test_a_drop_on_node_b_flannel_v6_1_names_that_hop(lab_factory, tmp_path):
    lab_factory("flannel", 2, ipv6=True)
    rc, out, report = lossy(tmp_path, (FL_SRC6, FL_DST6), "drop", "node-b", iface="flannel-v6.1", direction="in",
                            src=FL_SRC6, dst=FL_DST6, proto="tcp", port="443")
    assert rc == 2, out[-3000:]
    assert hop_rows(report)[:6] == rows(FL6, ["seen"] * 5 + ["LOST"], [])
    assert report["verdict"] == ("request reached node-b flannel-v6.1 and was not seen on node-b %s (delivery to the pod)"
                                 % FL_DST_VETH)
    assert re.fullmatch(r"dropped by ip6tables mangle PREROUTING rule 1 \(DROP, -m comment --comment hoptrace-fault-f1; "
                        r"(\d+) packets? while \1 (were|was) lost\) on node-b", report["why"]), report["why"]
    assert node_leftovers() == {}
