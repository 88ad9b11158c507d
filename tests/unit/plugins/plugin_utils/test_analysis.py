"""analysis: correlation, per-hop status, verdict and timing on synthetic 12-hop traces."""
import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import verdict as verdict_

import _synth

CASES = [(encap, direction, k) for encap in ("ipip", "vxlan") for direction in ("request", "response") for k in range(1, 7)]


def _hop(report, direction, k):
    return next(h for h in report["hops"] if h["direction"] == direction and h["index"] == k)


def _name(report, direction, k):
    h = _hop(report, direction, k)
    return "%s %s" % (h["node"], h["interface"])


@pytest.mark.parametrize("encap", ["ipip", "vxlan"])
def test_healthy(tmp_path, encap):
    plan, caps = _synth.make_trace(tmp_path, encap)
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "every hop saw the request and the response"
    assert rep["healthy"] and rep["complete"] and not rep["uncertain"]
    assert [h["status"] for h in rep["hops"]] == ["seen"] * 12
    assert [h["packets"] for h in rep["hops"]] == [4] * 6 + [3] * 6
    assert rep["directions"]["request"] == {"packets": 4, "status": "ok", "reached": "node-b calic25e805a467",
                                            "stopped_at": None, "retransmissions": 0, "cause": None}
    assert rep["why"] is None
    assert _hop(rep, "request", 1)["summary"] == "SYN PSH+ACK ACK"
    assert _hop(rep, "response", 1)["flags"] == {"SYN+ACK": 1, "ACK": 1, "PSH+ACK": 1}
    # every packet reached the last hop of its direction
    assert _hop(rep, "request", 6)["last_hop_of"] == 4 and _hop(rep, "request", 5)["last_hop_of"] == 0
    # 50 us per hop, 300 us more between the nodes (synthetic timing), clocks equal
    assert [_hop(rep, "request", k)["since_first_ms"] for k in range(1, 7)] == pytest.approx([0, 0.05, 0.1, 0.45, 0.5, 0.55])
    assert rep["clock"]["offset_ms"] == pytest.approx(0.0, abs=1e-6)
    assert [c["records"] for c in rep["captures"]] == [7] * 6
    assert {c["format"] for c in rep["captures"]} == {"pcap"}


@pytest.mark.parametrize("encap,direction,k", CASES)
def test_drop_from_each_hop(tmp_path, encap, direction, k):
    plan, caps = _synth.make_trace(tmp_path, encap, drop=(direction, k))
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is False
    hop = _name(rep, direction, k)
    if direction == "request" and k == 1:
        assert rep["verdict"] == "the request was not seen on any hop (first: %s): nothing of this flow left the source pod" % hop
    elif direction == "response" and k == 1:
        assert rep["verdict"] == ("the destination pod never answered: the request reached %s but no response was seen on any hop"
                                  % _name(rep, "request", 6))
    else:
        reason = verdict_.ROLE_REASON[_hop(rep, direction, k)["role"]]
        if direction == "response" and k == 6:
            reason = "delivery to the source pod"
        assert rep["verdict"] == "%s reached %s and was not seen on %s (%s)" % (direction, _name(rep, direction, k - 1), hop, reason)
        assert _hop(rep, direction, k)["status"] == "LOST"
        assert rep["directions"][direction]["stopped_at"] == hop
    # nothing in these captures says why (no RST, no ICMP error), and the why line says exactly that
    assert rep["why"] == "no packet in the captures explains the loss"
    assert rep["directions"]["request"]["cause"] is None and rep["directions"]["response"]["cause"] is None
    # exactly that hop is named as where it stopped
    others = [_name(rep, direction, j) for j in range(k + 1, 7)]
    assert all(("not seen on %s" % o) not in rep["verdict"] for o in others)


def test_seed_example_verdict(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("request", 5))
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation)"
    assert [_hop(rep, "request", k)["status"] for k in range(1, 7)] == ["seen"] * 4 + ["LOST"] * 2
    assert [_hop(rep, "response", k)["status"] for k in range(1, 7)] == ["none"] * 6


def test_destination_never_answered(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", no_response=True)
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith("the destination pod never answered")
    assert rep["directions"]["response"]["status"] == "none"


def test_unknown_hop(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    caps[4]["status"], caps[4]["error"] = "unreachable", "ssh: connect to host node-b port 22: timed out"
    rep = analysis.analyze(plan, caps)
    assert _hop(rep, "request", 5)["status"] == "unknown" and _hop(rep, "response", 2)["status"] == "unknown"
    assert _hop(rep, "request", 5)["packets"] is None
    # a path with hops nobody could see is not known to be healthy
    assert rep["complete"] is False and rep["healthy"] is False
    assert rep["verdict"] == ("every hop that could be captured saw the request and the response; incomplete: no capture from node-b/tunl0 "
                              "(unreachable: ssh: connect to host node-b port 22: timed out)")


def test_missing_capture_and_file(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "vxlan")
    del caps[0]                                  # not collected at all
    caps[0]["file"] = str(tmp_path / "gone.pcap")   # collected, then lost
    rep = analysis.analyze(plan, caps)
    assert _hop(rep, "request", 1)["status"] == "unknown" and _hop(rep, "request", 2)["status"] == "unknown"
    assert "incomplete: no capture from node-a/cali41f14107a8d (missing)" in rep["verdict"]
    assert "node-a/vxlan.calico (missing: capture file not found" in rep["verdict"]


def test_loss_after_unknown_hop(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("request", 4))
    caps[2]["status"] = "failed"          # node-a eth0, just before the loss
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith("request reached node-a tunl0 and was not seen on node-b eth0 (underlay network between the nodes); "
                                     "node-a eth0 in between was not captured")


def test_kernel_drops_make_it_uncertain(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("request", 5))
    caps[4]["dropped"] = 12
    rep = analysis.analyze(plan, caps)
    assert rep["uncertain"] is True
    assert rep["verdict"] == ("request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation); "
                              "uncertain: tcpdump on node-b tunl0 reported 12 kernel drops")
    assert "tcpdump reported kernel drops (node-b/tunl0 dropped 12): the verdict is uncertain there" in rep["notes"]


def test_capture_missed_packets_later_hops_saw(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", only=("request", 2))
    rep = analysis.analyze(plan, caps)
    assert _hop(rep, "request", 2)["status"] == "missed"
    assert "request node-a tunl0 saw nothing although later hops did: check that capture (interface, filter)" in rep["notes"]


def test_partial_loss_of_data(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    # drop the request's 100-byte data segment from node-b eth0 on: a size-dependent loss
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    for c in caps[3:]:
        recs = [(ts, bytes(buf[off:off + n])) for ts, n, _o, buf, off, _l in Capture(c["file"]).records()]
        keep = [r for r in recs if len(r[1]) < 100 + 40]
        lt = 101 if c["interface"] == "tunl0" else 1
        _synth.write_pcap(c["file"], keep, lt)
    rep = analysis.analyze(plan, caps)
    hop = _hop(rep, "request", 4)
    assert hop["status"] == "partial" and hop["bytes_short"] == 100 and hop["lost_from_previous"] == 1
    assert rep["verdict"].startswith("request data stopped between node-a eth0 and node-b eth0: 100 bytes seen on node-a eth0 never "
                                     "reached node-b eth0 (underlay network between the nodes)")
    assert rep["healthy"] is False


def test_clock_offset(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", node_b_shift_ns=5000000)
    rep = analysis.analyze(plan, caps)
    assert rep["clock"]["offset_ms"] == pytest.approx(5.0, abs=0.01) and rep["clock"]["corrected"]
    req4 = _hop(rep, "request", 4)
    resp4 = _hop(rep, "response", 4)
    assert req4["raw_delay_ms"] == pytest.approx(5.35) and req4["delay_ms"] == pytest.approx(0.35)
    assert resp4["raw_delay_ms"] == pytest.approx(-4.65) and resp4["delay_ms"] == pytest.approx(0.35)
    assert all(h["delay_ms"] >= 0 for h in rep["hops"] if h["delay_ms"] is not None)
    assert any("corrected for a clock offset of node-b vs node-a: +5.000 ms" in n for n in rep["notes"])


def test_retransmissions(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    c = caps[0]
    recs = [(ts, bytes(buf[off:off + n])) for ts, n, _o, buf, off, _l in Capture(c["file"]).records()]
    syn = bytearray(recs[0][1])
    syn[14 + 5] = 99          # same SYN, new IP id: a retransmission, not a duplicate
    recs.append((recs[0][0] + 1000000000, bytes(syn)))
    _synth.write_pcap(c["file"], recs, 1)
    rep = analysis.analyze(plan, caps)
    assert rep["directions"]["request"]["retransmissions"] == 1
    assert _hop(rep, "request", 1)["packets"] == 5


def test_other_traffic_is_ignored(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    c = caps[0]
    recs = [(ts, bytes(buf[off:off + n])) for ts, n, _o, buf, off, _l in Capture(c["file"]).records()]
    other = _synth.eth(_synth.ipv4("172.17.25.79", "172.17.25.239", 6, _synth.tcp(40000, 80, 1, 0, 2), 1))
    arp = _synth.eth(bytes(28), 0x0806)
    recs += [(recs[0][0] + 10, other), (recs[0][0] + 20, arp)]
    _synth.write_pcap(c["file"], recs, 1)
    rep = analysis.analyze(plan, caps)
    cap0 = rep["captures"][0]
    assert (cap0["records"], cap0["matched"], cap0["other"], cap0["undecodable"]) == (9, 7, 1, 1)
    assert rep["healthy"]


def test_a_node_whose_captures_all_failed_is_named_first(tmp_path):
    """Issue 11: say first what is known - which node could not be reached, and how many hops that costs."""
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    for cap in caps:
        if cap["node"] == "node-b":
            cap["status"], cap["error"] = "unreachable", ("node unreachable while reading routes: Task failed: "
                                                          "ssh: connect to host 10.240.0.9 port 22: Connection refused")
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith(
        "node-b (hosting the destination) could not be reached: ssh: connect to host 10.240.0.9 port 22: Connection refused; "
        "its 6 hops are unknown; ")
    assert "incomplete" not in rep["verdict"] and rep["healthy"] is False


def test_a_node_that_stopped_answering_in_collect(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    for cap in caps:
        if cap["node"] == "node-a":
            cap["status"], cap["error"] = "timed out", "timed out in collect (no answer in 10 s)"
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith(
        "node-a (hosting the source) stopped answering: timed out in collect (no answer in 10 s); its 6 hops are unknown; ")


def _add_late_response(tmp_path, plan, caps, at_ns):
    """A retransmitted SYN+ACK (new IP id) that node-b's response hops saw at ``at_ns``, after node-a's
    captures had ended: node-a's files do not have it."""
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    seg = _synth.tcp(_synth.PORT, _synth.SPORT, 2893467652, 694140745, 0x12)
    path = [h for h in plan["hops"] if h["direction"] == "response"]
    for pos, hop in enumerate(path[:3], start=1):
        cap = next(c for c in caps if c["key"] == hop["capture"])
        records = [(ts, bytes(buf[off:off + incl])) for ts, incl, _o, buf, off, _lt in Capture(cap["file"]).records()]
        data, lt = _synth.frame("ipip", hop["node"], hop["interface"], "response", _synth.DST, _synth.SRC, 7777, seg, 64 - pos)
        _synth.write_pcap(cap["file"], records + [(at_ns + pos * 50000, data)], lt, nano=hop["interface"] == "tunl0")


def test_a_retransmission_after_the_next_nodes_capture_ended_is_not_a_loss(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    late = _synth.BASE_NS + 2 * 10**9                       # 2 s after the flow
    _add_late_response(tmp_path, plan, caps, late)
    for cap in caps:                                          # node-a stopped at +1.5 s, node-b at +2.5 s
        cap["ended_at"] = (_synth.BASE_NS + (15 if cap["node"] == "node-a" else 25) * 10**8) / 1e9
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is True, rep["verdict"]
    assert [_hop(rep, "response", k)["lost_from_previous"] for k in range(1, 7)] == [0] * 6
    # the same packet before node-a's captures ended is a loss between the nodes
    for cap in caps:
        cap["ended_at"] = (_synth.BASE_NS + (25 if cap["node"] == "node-a" else 30) * 10**8) / 1e9
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is False
    assert _hop(rep, "response", 4)["lost_from_previous"] == 1
