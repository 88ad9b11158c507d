"""wg_underlay: the flow's packets on a WireGuard underlay, matched to encrypted data messages.

Captures in tests/unit/fixtures/wireguard/ are real: the playbook's own pcaps of three traces of
172.17.25.79 (node-a) -> 172.17.25.239:443 (node-b) on `lab.py up --mode wireguard --nodes 2`
(wireguard-go: handshakes and ChaCha20-Poly1305 data messages on eth0):
* healthy/ - the first trace after lab up (one handshake each way, then data);
* drop_in_node_b_eth0/ - `fault add drop --node node-b --iface eth0 --dir in --proto udp --port 51820`
  (iptables mangle PREROUTING: node-b's tcpdump still sees the messages arrive);
* wire_drop_to_node_b/ - `fault add wire-drop --node node-b --proto udp --port 51820` (the lab
  bridge drops them: node-b's eth0 never sees them).
* ipv6_healthy/ - fd00:10:244::4f -> [fd00:10:244::af]:443 on `lab.py up --mode wireguard --nodes 2
  --ipv6`: Calico's second device wg-v6.cali, UDP 51821 between the nodes' IPv6 addresses
  fd00:10:240::1 and ::2 (the session was up already: no handshake in the trace).
"""
import json
import os
import struct

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import wg_underlay as wg

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "wireguard")
A_IP, B_IP = "10.240.128.12", "10.240.0.9"
SRC_VETH, DST_VETH = "cali41f14107a8d", "calic25e805a467"
PATH = [("node-a", SRC_VETH, "src-veth", "none"), ("node-a", "wireguard.cali", "tunnel-out", "none"),
        ("node-a", "eth0", "underlay-out", "wireguard"), ("node-b", "eth0", "underlay-in", "wireguard"),
        ("node-b", "wireguard.cali", "tunnel-in", "none"), ("node-b", DST_VETH, "dst-veth", "none")]
IPS = {"node-a": A_IP, "node-b": B_IP}


V6 = {"path": [(n, "wg-v6.cali" if i == "wireguard.cali" else i, r, e) for n, i, r, e in PATH],
      "ips": {"node-a": "fd00:10:240::1", "node-b": "fd00:10:240::2"}, "port": 51821,
      "run": {"src": "fd00:10:244::4f", "dst": "fd00:10:244::af", "proto": "tcp", "port": 443}}


def plan(shape=None):
    shape = shape or {}
    path, ips = shape.get("path", PATH), shape.get("ips", IPS)
    hops = []
    for i, (node, iface, role, encap) in enumerate(path, 1):
        hops.append({"index": i, "direction": "request", "node": node, "node_ip": ips[node], "interface": iface, "role": role,
                     "encap": encap, "capture": "%s/%s" % (node, iface)})
    for i, (node, iface, role, encap) in enumerate(reversed(path), 1):
        role = {"dst-veth": "src-veth", "src-veth": "dst-veth", "tunnel-in": "tunnel-out", "tunnel-out": "tunnel-in",
                "underlay-in": "underlay-out", "underlay-out": "underlay-in"}[role]
        hops.append({"index": i, "direction": "response", "node": node, "node_ip": ips[node], "interface": iface, "role": role,
                     "encap": encap, "capture": "%s/%s" % (node, iface)})
    captures = [{"key": "%s/%s" % (n, i), "node": n, "interface": i, "underlay_port": shape.get("port", 51820) if i == "eth0" else None}
                for n, i, _r, _e in path]
    return {"run": shape.get("run", {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}),
            "src_node": "node-a", "dst_node": "node-b", "encap": "wireguard", "hops": hops, "captures": captures}


def captures(case, path=None):
    return [{"key": "%s/%s" % (n, i), "node": n, "interface": i, "status": "ok",
             "file": os.path.join(FIXTURES, case, n, i + ".pcap"), "dropped": 0} for n, i, _r, _e in path or PATH]


def statuses(report, direction):
    return [h["status"] for h in report["hops"] if h["direction"] == direction]


def test_healthy_trace_every_underlay_hop_carries_the_inner_packets():
    report = analysis.analyze(plan(), captures("healthy"))
    assert report["verdict"] == "every hop saw the request and the response" and report["healthy"] is True
    assert statuses(report, "request") == ["seen"] * 6 and statuses(report, "response") == ["seen"] * 6
    assert [h["packets"] for h in report["hops"]] == [4] * 6 + [3] * 6
    assert [h["summary"] for h in report["hops"]][:6] == ["SYN ACK FIN+ACK"] * 6
    assert report["wireguard"]["request"] == {
        "from": "node-a eth0", "to": "node-b eth0", "from_ip": A_IP, "to_ip": B_IP, "port": 51820,
        "sent": {"data": 4, "keepalive": 0, "handshake": 1, "cookie": 0},
        "received": {"data": 4, "keepalive": 0, "handshake": 1, "cookie": 0},
        "carried": 4, "held_for_handshake": 0, "inferred": 0, "lost": 0}
    assert report["wireguard"]["response"]["carried"] == 3
    assert report["notes"][0] == (
        "node-a eth0 -> node-b eth0: WireGuard UDP 51820 from 10.240.128.12 to 10.240.0.9 is encrypted, so the flow's "
        "packets there were matched by node pair, port, count and timing (and the message counters between the two "
        "NICs), not by content (messages sent: 4 data, 0 keepalive, 1 handshake; received: 4 data, 0 keepalive, "
        "1 handshake; 4 packet(s) carried)")
    # the underlay hops take part in the timing like any other hop
    delays = [h["delay_ms"] for h in report["hops"][:6]]
    assert all(d is not None and d >= 0 for d in delays[1:]), delays


def test_drop_after_node_b_eth0_is_put_at_its_wireguard():
    report = analysis.analyze(plan(), captures("drop_in_node_b_eth0"))
    assert report["verdict"] == "request reached node-b eth0 and was not seen on node-b wireguard.cali (WireGuard decryption)"
    assert statuses(report, "request") == ["seen"] * 4 + ["LOST"] * 2
    assert report["wireguard"]["request"]["lost"] == 0


def test_drop_between_the_nodes_is_put_between_the_two_nics():
    report = analysis.analyze(plan(), captures("wire_drop_to_node_b"))
    assert report["verdict"] == ("request reached node-a eth0 and was not seen on node-b eth0 "
                                 "(underlay network between the nodes, WireGuard UDP)")
    assert statuses(report, "request") == ["seen"] * 3 + ["LOST"] * 3
    info = report["wireguard"]["request"]
    assert info["received"] == {"data": 0, "keepalive": 0, "handshake": 0, "cookie": 0}
    assert info["lost"] == info["carried"] + info["held_for_handshake"] == 1


def test_ipv6_on_wg_v6_cali_is_matched_between_the_nodes_ipv6_addresses_on_51821():
    report = analysis.analyze(plan(V6), captures("ipv6_healthy", V6["path"]))
    assert report["verdict"] == "every hop saw the request and the response" and report["healthy"] is True
    assert statuses(report, "request") == ["seen"] * 6 and statuses(report, "response") == ["seen"] * 6
    assert [h["packets"] for h in report["hops"]] == [4] * 6 + [2] * 6
    assert report["wireguard"]["request"] == {
        "from": "node-a eth0", "to": "node-b eth0", "from_ip": "fd00:10:240::1", "to_ip": "fd00:10:240::2", "port": 51821,
        "sent": {"data": 4, "keepalive": 0, "handshake": 0, "cookie": 0},
        "received": {"data": 4, "keepalive": 0, "handshake": 0, "cookie": 0},
        "carried": 4, "held_for_handshake": 0, "inferred": 0, "lost": 0}
    assert report["wireguard"]["response"]["carried"] == 2
    assert report["notes"][0].startswith(
        "node-a eth0 -> node-b eth0: WireGuard UDP 51821 from fd00:10:240::1 to fd00:10:240::2 is encrypted, so the flow's "
        "packets there were matched by node pair, port, count and timing")
    # IPv4's port finds none of these messages: the port is part of the match
    wrong = analysis.analyze(plan(dict(V6, port=51820)), captures("ipv6_healthy", V6["path"]))
    assert wrong["wireguard"]["request"]["sent"]["data"] == 0 and wrong["wireguard"]["request"]["inferred"] == 4


def test_a_missing_underlay_capture_is_unknown_and_the_rest_still_matched():
    caps = captures("healthy")
    caps[3]["status"] = "failed"
    report = analysis.analyze(plan(), caps)
    assert statuses(report, "request") == ["seen", "seen", "seen", "unknown", "seen", "seen"]


# ------------------------------------------------------------------ pure parts


def test_encrypted_length_is_the_padded_packet_plus_header_and_tag():
    assert [wg.encrypted_len(n) for n in (40, 52, 60, 64, 65)] == [80, 96, 96, 96, 112]
    assert wg.encrypted_len(1439, mtu=1440) == 16 + 1440 + 16        # padding never past the MTU
    assert wg.encrypted_len(1437, mtu=1440) == 16 + 1440 + 16


def _frame(mtype, length, index=7, counter=0, src=A_IP, dst=B_IP):
    body = struct.pack("<B3xI", mtype, index) + (struct.pack("<Q", counter) if mtype == 4 else b"")
    body += b"\0" * (length - len(body))
    udp = struct.pack("!HHHH", 51820, 51820, 8 + len(body), 0) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return b"\2\0\0\0\0\2\2\0\0\0\0\1\x08\x00" + ip + udp


@pytest.mark.parametrize("mtype,length,want", [
    (1, 148, (1, 148, 7, None)), (2, 92, (2, 92, 7, None)), (3, 64, (3, 64, 7, None)),
    (4, 32, (4, 32, 7, 9)), (4, 96, (4, 96, 7, 9))])
def test_message_types_and_sizes_are_read_from_the_clear_header(mtype, length, want):
    buf = _frame(mtype, length, counter=9)
    m = wg.message(buf, 0, len(buf), 1)
    assert m[4:] == want
    assert wg.ip_text_pair(m) == (A_IP, B_IP)


def test_non_wireguard_udp_is_not_a_message():
    buf = bytearray(_frame(4, 96))
    buf[14 + 20 + 8 + 1] = 1                 # reserved bytes must be zero
    assert wg.message(bytes(buf), 0, len(buf), 1) is None
    buf = bytearray(_frame(4, 96))
    buf[14 + 20 + 8] = 9                     # no such type
    assert wg.message(bytes(buf), 0, len(buf), 1) is None


def test_carry_skips_other_traffic_of_the_pair_and_holds_packets_for_a_handshake():
    ms = 1000000
    # (ts, hash, ip_len, payload, flags) on the tunnel; data messages (ts, type, len, index, counter) on the NIC
    pkts = [(10 * ms, "syn", 60, 0, 2), (20 * ms, "ack", 52, 0, 16), (30 * ms, "data", 300, 248, 24)]
    msgs = [(10 * ms + 50000, 4, 96, 1, 0),            # the SYN
            (15 * ms, 4, 1488, 1, 1),                  # another pod's full-size packet
            (20 * ms + 40000, 4, 96, 1, 2),            # the ACK
            (30 * ms + 60000, 4, 336, 1, 3)]           # the data: 300 -> 304 padded + 32
    carried, held = wg._carry(pkts, msgs, [], None)
    assert {h: m[4] for h, m in carried.items()} == {"syn": 0, "ack": 2, "data": 3} and held == {}
    # a message cannot carry a packet the tunnel saw after it (beyond the slack)
    carried, _held = wg._carry([(10 * ms, "late", 60, 0, 2)], [(5 * ms, 4, 96, 1, 0)], [], None)
    assert carried == {}
    # no session: the packet waits while initiations go out
    inits = [(10 * ms + 30000, 1, 148, 42, None), (5010 * ms, 1, 148, 43, None)]
    carried, held = wg._carry([(10 * ms, "syn", 60, 0, 2)], [], inits, None)
    assert carried == {} and [i[3] for i in held["syn"]] == [42, 43]


@pytest.mark.parametrize("case", ["healthy", "drop_in_node_b_eth0", "wire_drop_to_node_b"])
def test_wireguard_reports_follow_the_report_schema(case):
    from test_report_schema import SCHEMA, validate
    data = json.loads(json.dumps(analysis.analyze(plan(), captures(case))))
    assert "wireguard" in data and validate(data, SCHEMA) == []
    broken = dict(data, wireguard={"request": dict(data["wireguard"]["request"], extra=1)})
    assert validate(broken, SCHEMA) != []
