"""cause: why a direction failed, from the RSTs and ICMP errors in synthetic and real captures."""
import os
import struct
import time

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, cause, decode, report

import _synth
from flowpcap import shared_pcap

SRC, DST, SPORT = _synth.SRC, _synth.DST, _synth.SPORT
NODE_A, NODE_B = _synth.NODE_A, _synth.NODE_B
T0 = 1700000000 * 10**9


def _clock(ts):
    return "%s.%06d" % (time.strftime("%H:%M:%S", time.gmtime(ts // 10**9)), (ts % 10**9) // 1000)


def _icmp(itype, code, quoted, rest=0):
    """ICMP error: type, code, 4 bytes (unused / next-hop MTU), the quoted IP header + 8 bytes."""
    return struct.pack("!BBHI", itype, code, 0, rest) + quoted[:28]


def _udp(sport, dport, payload=b"q" * 8):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _frame(encap, iface, direction, inner):
    """(frame, linktype) of an inner IPv4 packet as a hop's capture sees it (as _synth.frame)."""
    if iface.startswith("cali") or iface == "vxlan.calico":
        return _synth.eth(inner), 1
    if iface == "tunl0":
        return inner, 101
    outer_src, outer_dst = (NODE_A, NODE_B) if direction == "request" else (NODE_B, NODE_A)
    if encap == "ipip":
        return _synth.eth(_synth.ipv4(outer_src, outer_dst, 4, inner, 3)), 1
    return _synth.eth(_synth.vxlan(outer_src, outer_dst, _synth.eth(inner))), 1


def make(tmp_path, packets, proto="tcp", port=8443, encap="ipip"):
    """Captures of a plan where each packet (direction, first hop, last hop, inner IPv4 packet)
    is seen on the hops first..last (1-based) of that direction; returns (plan, captures)."""
    plan = _synth.make_plan(encap)
    plan["run"].update(proto=proto, port=port)
    per_cap = {c["key"]: [] for c in plan["captures"]}
    lts = {}
    for n, (direction, first, last, inner) in enumerate(packets):
        path = [h for h in plan["hops"] if h["direction"] == direction]
        for pos in range(first, last + 1):
            hop = path[pos - 1]
            data, lt = _frame(encap, hop["interface"], direction, inner)
            per_cap[hop["capture"]].append((T0 + n * 1000000 + pos * 50000, data))
            lts[hop["capture"]] = lt
    captures = []
    for c in plan["captures"]:
        path = str(tmp_path / (c["key"].replace("/", "_") + ".pcap"))
        _synth.write_pcap(path, per_cap[c["key"]], lts.get(c["key"], 101 if c["interface"] == "tunl0" else 1))
        captures.append({"key": c["key"], "node": c["node"], "interface": c["interface"], "file": path, "captured": 0,
                         "received": 0, "dropped": 0, "status": "ok", "error": None})
    return plan, captures


def _syn(port=8443):
    return _synth.ipv4(SRC, DST, 6, _synth.tcp(SPORT, port, 694140744, 0, 0x02), 1000)


def _rst(port=8443, src=DST, ident=0):
    return _synth.ipv4(src, SRC, 6, _synth.tcp(port, SPORT, 0, 694140745, 0x14), ident)


def _statuses(rep, direction):
    return [h["status"] for h in rep["hops"] if h["direction"] == direction]


def test_rst_from_the_destination_pod_is_a_refusal(tmp_path):
    plan, caps = make(tmp_path, [("request", 1, 6, _syn()), ("response", 1, 6, _rst())])
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "172.17.25.239 refused port 8443 (RST from the destination pod); every hop saw the request and the reset"
    assert rep["healthy"] is False
    assert rep["why"] == ("the destination pod answered the SYN with RST+ACK (first seen on its veth node-b calic25e805a467): "
                          "nothing in the pod accepts connections on port 8443")
    assert rep["directions"]["request"]["cause"] is None
    got = rep["directions"]["response"]["cause"]
    assert (got["kind"], got["confidence"], got["text"]) == ("reset", "high", rep["why"])
    t = T0 + 1000000
    assert got["evidence"] == ["%s %s: 172.17.25.239.8443 > 172.17.25.79.38362 RST+ACK" % (_clock(t + pos * 50000), hop)
                               for pos, hop in enumerate(["node-b calic25e805a467", "node-b tunl0", "node-b eth0", "node-a eth0",
                                                          "node-a tunl0", "node-a cali41f14107a8d"], 1)]
    # the hop table still shows every hop seen
    assert _statuses(rep, "request") == ["seen"] * 6 and _statuses(rep, "response") == ["seen"] * 6
    assert [h["summary"] for h in rep["hops"]] == ["SYN"] * 6 + ["RST+ACK"] * 6
    lines = report.render_table(rep)
    at = lines.index("verdict: 172.17.25.239 refused port 8443 (RST from the destination pod); every")
    assert lines[at:at + 5] == [
        "verdict: 172.17.25.239 refused port 8443 (RST from the destination pod); every",
        "  hop saw the request and the reset",
        "why: the destination pod answered the SYN with RST+ACK (first seen on its veth",
        "  node-b calic25e805a467): nothing in the pod accepts connections on port 8443",
        "note: delays across nodes corrected for a clock offset of node-b vs node-a:"]
    md = report.render_markdown(rep)
    assert "**Why:** " + rep["why"] + "\n" in md
    assert "Evidence (response, reset, confidence high):\n\n- `%s`\n" % got["evidence"][0] in md


def test_rst_injected_on_the_underlay_was_sent_by_something_on_the_path(tmp_path):
    # the SYN never reaches node-b; a RST in the destination's name turns up on node-a's eth0
    plan, caps = make(tmp_path, [("request", 1, 3, _syn()), ("response", 4, 6, _rst(ident=77))])
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == ("the connection to 172.17.25.239 port 8443 was refused on the path (RST first seen on node-a eth0, "
                              "not sent by the destination pod); request reached node-a eth0 and was not seen on node-b eth0 "
                              "(underlay network between the nodes)")
    assert rep["why"] == ("a RST+ACK from 172.17.25.239's address was first seen on node-a eth0 and on no captured hop before it: "
                          "something between node-b eth0 and node-a eth0 sent it, not the destination pod")
    got = rep["directions"]["response"]["cause"]
    assert (got["kind"], got["confidence"]) == ("reset", "high")
    assert got["evidence"][-1] == "not seen on node-b calic25e805a467, node-b tunl0, node-b eth0 (captured)"
    assert len(got["evidence"]) == 4
    # nothing was sent on the hops before it: not a capture that missed packets
    assert _statuses(rep, "response") == ["none"] * 3 + ["seen"] * 3
    assert not any("saw nothing although later hops did" in n for n in rep["notes"])
    assert rep["healthy"] is False


def test_icmp_port_unreachable_for_a_udp_probe(tmp_path):
    request = _synth.ipv4(SRC, DST, 17, _udp(40000, 53), 1000)
    unreach = _synth.ipv4(DST, SRC, 1, _icmp(3, 3, request), 4242)
    plan, caps = make(tmp_path, [("request", 1, 6, request), ("response", 1, 6, unreach)], proto="udp", port=53)
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "172.17.25.239 refused port 53 (ICMP port unreachable from the destination pod)"
    assert rep["healthy"] is False
    assert rep["why"] == ("the destination pod answered the request with ICMP port unreachable (type 3 code 3, first seen on "
                          "node-b calic25e805a467): nothing in the pod listens on udp port 53")
    got = rep["directions"]["request"]["cause"]
    assert (got["kind"], got["confidence"]) == ("icmp-unreachable", "high")
    assert got["evidence"][0] == ("%s node-b calic25e805a467: 172.17.25.239 > 172.17.25.79 ICMP port unreachable (type 3 code 3) "
                                  "for udp 172.17.25.79.40000 > 172.17.25.239.53" % _clock(T0 + 1000000 + 50000))
    assert len(got["evidence"]) == 6
    assert rep["directions"]["response"]["cause"] is None
    # the ICMP errors are neither the flow's packets nor other traffic
    assert _statuses(rep, "request") == ["seen"] * 6 and _statuses(rep, "response") == ["none"] * 6
    assert [c["other"] for c in rep["captures"]] == [0] * 6


def test_frag_needed_with_mtu_1400(tmp_path):
    syn = _syn()
    synack = _synth.ipv4(DST, SRC, 6, _synth.tcp(8443, SPORT, 2893467652, 694140745, 0x12), 5000)
    ack = _synth.ipv4(SRC, DST, 6, _synth.tcp(SPORT, 8443, 694140745, 2893467653, 0x10), 1001)
    big = _synth.ipv4(SRC, DST, 6, _synth.tcp(SPORT, 8443, 694140745, 2893467653, 0x18, bytes(1448)), 1002)
    # node-a's kernel cannot put 1488 bytes into its tunnel and says so to the source pod
    frag = _synth.ipv4(NODE_A, SRC, 1, _icmp(3, 4, big, 1400), 9)
    plan, caps = make(tmp_path, [("request", 1, 6, syn), ("response", 1, 6, synack), ("request", 1, 6, ack),
                                 ("request", 1, 1, big), ("response", 6, 6, frag)])
    rep = analysis.analyze(plan, caps)
    # the verdict is the one of any size-dependent loss, unchanged; the why line says what the node said
    assert rep["verdict"] == ("request data stopped between node-a cali41f14107a8d and node-a tunl0: 1448 bytes seen on node-a "
                              "cali41f14107a8d never reached node-a tunl0 (routing into the tunnel)")
    assert rep["why"] == ("node-a (10.240.128.12) answered the request with ICMP fragmentation needed (type 3 code 4, mtu 1400, "
                          "first seen on node-a cali41f14107a8d): request packets larger than 1400 bytes do not pass it")
    got = rep["directions"]["request"]["cause"]
    assert (got["kind"], got["confidence"]) == ("icmp-frag-needed", "high")
    assert got["evidence"] == ["%s node-a cali41f14107a8d: 10.240.128.12 > 172.17.25.79 ICMP fragmentation needed (type 3 code 4, "
                               "mtu 1400) for tcp 172.17.25.79.38362 > 172.17.25.239.8443" % _clock(T0 + 4 * 1000000 + 6 * 50000)]
    assert rep["healthy"] is False


@pytest.mark.parametrize("drop", [("response", 4), ("request", 3)])
def test_a_loss_nothing_explains(tmp_path, drop):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=drop)
    rep = analysis.analyze(plan, caps)
    assert rep["why"] == "no packet in the captures explains the loss"
    assert rep["directions"]["request"]["cause"] is None and rep["directions"]["response"]["cause"] is None
    assert "why: no packet in the captures explains the loss" in report.render_table(rep)


def test_the_destination_never_answered_and_nothing_says_why(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", no_response=True)
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith("the destination pod never answered")
    assert rep["why"] == "no packet in the captures explains the loss"


def test_healthy_has_no_why_and_no_cause(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "vxlan")
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is True and rep["why"] is None
    assert rep["directions"]["request"]["cause"] is None and rep["directions"]["response"]["cause"] is None
    assert not any(line.startswith("why:") for line in report.render_table(rep))
    assert "**Why:**" not in report.render_markdown(rep)


def test_an_unknown_hop_alone_is_not_a_loss(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    caps[4]["status"], caps[4]["error"] = "unreachable", "ssh: connect to host node-b port 22: timed out"
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is False and rep["why"] is None


def test_a_reset_after_the_exchange_is_a_note_not_a_failure(tmp_path):
    syn = _syn()
    synack = _synth.ipv4(DST, SRC, 6, _synth.tcp(8443, SPORT, 2893467652, 694140745, 0x12), 5000)
    ack = _synth.ipv4(SRC, DST, 6, _synth.tcp(SPORT, 8443, 694140745, 2893467653, 0x10), 1001)
    rst = _synth.ipv4(DST, SRC, 6, _synth.tcp(8443, SPORT, 2893467653, 694140745, 0x14), 5001)
    plan, caps = make(tmp_path, [("request", 1, 6, syn), ("response", 1, 6, synack), ("request", 1, 6, ack),
                                 ("response", 1, 6, rst)])
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "every hop saw the request and the response" and rep["healthy"] is True
    assert rep["why"] is None
    assert ("the destination pod reset the connection after it was established (RST+ACK first seen on its veth "
            "node-b calic25e805a467)") in rep["notes"]
    assert rep["directions"]["response"]["cause"]["confidence"] == "medium"


def test_icmpv6_packet_too_big_is_decoded_with_its_mtu():
    def ip6(src, dst, nxt, payload):
        return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, src, dst) + payload
    a, b, router = (bytes(15) + bytes([n]) for n in (1, 2, 3))
    quoted = ip6(a, b, 6, _synth.tcp(40000, 443, 1, 0, 0x18, bytes(1400)))
    err = ip6(router, a, 58, struct.pack("!BBHI", 2, 0, 0, 1280) + quoted[:1232])
    d = decode.decode_at(err, 0, len(err), 101)
    got = decode.icmp_error(err, 0, len(err), d)
    assert got == decode.IcmpError(2, 0, 1280, router, a, a, b, 6, 40000, 443)
    assert cause.icmp_kind(got, 58) == "icmp-frag-needed" and cause.icmp_label(got, 58) == "ICMPv6 packet too big"


def test_real_tcp_rst_from_a_public_capture():
    """tcpdump's tests/tcp_rst_data-trunc.pcap: a real RST (with a BIG-IP reset reason as data), cut by the snaplen."""
    path = shared_pcap("tcpdump_tcp_rst_data-trunc.pcap")
    src, dst, port = "172.16.133.41", "199.204.31.89", 80
    plan = {"run": {"src": src, "dst": dst, "proto": "tcp", "port": port}, "src_node": "node-a", "dst_node": "node-a", "encap": "none",
            "hops": [{"index": 1, "direction": "request", "node": "node-a", "interface": "eth0", "role": "src-veth",
                      "capture": "node-a/eth0"},
                     {"index": 1, "direction": "response", "node": "node-a", "interface": "eth0", "role": "dst-veth",
                      "capture": "node-a/eth0"}],
            "captures": [{"key": "node-a/eth0", "node": "node-a", "interface": "eth0"}]}
    rep = analysis.analyze(plan, [{"key": "node-a/eth0", "node": "node-a", "interface": "eth0", "file": path, "status": "ok"}])
    assert rep["captures"][0]["snaplen_cut"] == 1
    got = rep["directions"]["response"]["cause"]
    # tcpdump -nn -tt: 1361916199.190965 IP 199.204.31.89.80 > 172.16.133.41.52875: Flags [R.], seq 1617159969:1617160027
    assert got["kind"] == "reset"
    assert got["evidence"] == ["%s node-a eth0: 199.204.31.89.80 > 172.16.133.41.52875 RST+ACK" % _clock(1361916199190965000)]
    # no SYN in the capture: a reset, not a refusal of a new connection
    assert got["text"] == "the destination pod reset the connection (RST+ACK first seen on its veth node-a eth0)"
    assert not rep["verdict"].startswith("199.204.31.89 refused")
    assert os.path.basename(path) == "tcpdump_tcp_rst_data-trunc.pcap"


def test_rst_first_seen_after_an_uncaptured_veth_is_not_pinned_on_the_pod(tmp_path):
    plan, caps = make(tmp_path, [("request", 1, 6, _syn()), ("response", 1, 6, _rst())])
    caps[3]["status"], caps[3]["error"] = "failed", "tcpdump: calic25e805a467: No such device"      # node-b's veth
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith("port 8443 of 172.17.25.239 was refused (RST first seen on node-b tunl0, from the destination "
                                     "pod or a hop before it); ")
    assert rep["why"] == ("a RST+ACK was first seen on node-b tunl0; no hop before it was captured, so the destination pod or "
                          "something before node-b tunl0 sent it")
    assert rep["directions"]["response"]["cause"]["confidence"] == "medium"
