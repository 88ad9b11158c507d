"""WireGuard end to end: the real playbook on `lab_factory("wireguard", 2)`.

The lab's wireguard.cali is wireguard-go (a TUN device) with real handshakes and real encrypted
UDP 51820 on eth0 (tests/lab/wireguard.py). The underlay hops are matched by node pair, port,
count and timing, so these tests check the exact hop table and that a loss is put where it
happens: at node-b's WireGuard (the NIC saw the messages, netfilter dropped them before
wireguard-go) or between the two NICs (the lab's bridge drops them: wire-drop).
One lab shape for the module, three traces.
"""
import os

import pytest

from lab import labctl
from test_trace import DST_VETH, SRC_VETH, flow, node_leftovers, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

WG = "wireguard.cali"
REQUEST = [("node-a", SRC_VETH, "none"), ("node-a", WG, "none"), ("node-a", "eth0", "wireguard"),
           ("node-b", "eth0", "wireguard"), ("node-b", WG, "none"), ("node-b", DST_VETH, "none")]
RESPONSE = [(n, i, "wireguard" if i == "eth0" else "none") for n, i, _e in reversed(REQUEST)]


def rows(report):
    return [(h["direction"], h["index"], h["node"], h["interface"], h["encap"], h["status"]) for h in report["hops"]]


def table(request_status, response_status):
    out = [("request", i, n, iface, e, s) for i, ((n, iface, e), s) in enumerate(zip(REQUEST, request_status), 1)]
    return out + [("response", i, n, iface, e, s) for i, ((n, iface, e), s) in enumerate(zip(RESPONSE, response_status), 1)]


def faulty(tmp_path, kind, node, **fault):
    labctl.fault_add(kind, node, **fault)
    try:
        return trace(tmp_path, *flow(), "-e", "probe_timeout=1")
    finally:
        labctl.fault_clear()


def test_healthy_trace_matches_the_encrypted_underlay(lab_factory, tmp_path):
    lab_factory("wireguard", 2)
    rc, out, report = trace(tmp_path, *flow())
    assert rc == 0, out[-3000:]
    assert report["healthy"] is True and report["encap"] == "wireguard"
    assert report["verdict"] == "every hop saw the request and the response"
    assert rows(report) == table(["seen"] * 6, ["seen"] * 6)
    hops = {(h["direction"], h["index"]): h for h in report["hops"]}
    for direction in ("request", "response"):
        inner = hops[(direction, 2)]["packets"]
        # every packet the sending tunnel hop saw was carried by one data message, on both NICs
        assert [hops[(direction, i)]["packets"] for i in range(1, 7)] == [inner] * 6
        wg = report["wireguard"][direction]
        assert (wg["carried"], wg["lost"], wg["inferred"], wg["port"]) == (inner, 0, 0, 51820)
        assert wg["sent"]["data"] == wg["received"]["data"] >= inner
    assert "SYN" in hops[("request", 3)]["summary"] and "SYN+ACK" in hops[("response", 3)]["summary"]
    wg = report["wireguard"]["request"]
    assert (wg["from"], wg["to"], wg["from_ip"], wg["to_ip"]) == ("node-a eth0", "node-b eth0", "10.240.128.12", "10.240.0.9")
    assert any(n.startswith("node-a eth0 -> node-b eth0: WireGuard UDP 51820 from 10.240.128.12 to 10.240.0.9 is "
                            "encrypted, so the flow's packets there were matched by node pair, port, count and timing")
               for n in report["notes"]), report["notes"]
    # the path came from node-a's WireGuard peer whose allowed IPs hold the destination
    assert "has endpoint 10.240.0.9, ansible_host of node-b" in report["path"]["lines"][1]
    assert "request   3 node-a eth0 (wireguard)" in out
    assert node_leftovers() == {}


def test_udp_51820_dropped_in_node_b_stops_at_its_wireguard(lab_factory, tmp_path):
    lab_factory("wireguard", 2)
    rc, out, report = faulty(tmp_path, "drop", "node-b", iface="eth0", direction="in", proto="udp", port="51820")
    assert rc == 2, out[-3000:]
    assert report["verdict"] == "request reached node-b eth0 and was not seen on node-b wireguard.cali (WireGuard decryption)"
    assert rows(report) == table(["seen"] * 4 + ["LOST"] * 2, ["none"] * 6)
    assert report["why"].startswith("dropped by iptables mangle PREROUTING rule 1 (DROP, -m comment --comment hoptrace-fault-")
    # the messages reached node-b's NIC: carried on node-a eth0, the same counters on node-b eth0
    wg = report["wireguard"]["request"]
    assert wg["lost"] == 0 and wg["carried"] + wg["held_for_handshake"] >= 1


def test_the_underlay_between_the_nodes_dropping_wireguard_is_named(lab_factory, tmp_path):
    lab_factory("wireguard", 2)
    rc, out, report = faulty(tmp_path, "wire-drop", "node-b", proto="udp", port="51820")
    assert rc == 2, out[-3000:]
    assert report["verdict"] == ("request reached node-a eth0 and was not seen on node-b eth0 "
                                 "(underlay network between the nodes, WireGuard UDP)")
    assert rows(report) == table(["seen"] * 3 + ["LOST"] * 3, ["none"] * 6)
    wg = report["wireguard"]["request"]
    assert wg["received"] == {"data": 0, "keepalive": 0, "handshake": 0, "cookie": 0}
    assert wg["lost"] == wg["carried"] + wg["held_for_handshake"] >= 1
