"""repeat mode: N probes, each its own flow, followed hop by hop on synthetic 12-hop captures."""
import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, report, repeat

import _synth

SPORT0 = 40000


def make_repeat(tmp_path, n, drop_request=(), drop_response=(), retransmit=(), delays=None, encap="ipip", proto="tcp"):
    """N probes 50 ms apart: a SYN and its SYN+ACK (or an echo request and reply) through the 6 hops.

    drop_request / drop_response: {probe index (1-based): hop position it is not seen from};
    retransmit: probes whose request is sent again 1 s later and passes every hop;
    delays: {probe index: extra ns between hop 3 and 4 (the underlay)} for the latency figures.
    """
    plan = _synth.make_plan(encap)
    plan["run"]["proto"] = proto
    if proto == "icmp":
        plan["run"]["port"] = None
    per_cap = {c["key"]: [] for c in plan["captures"]}
    lts = {}
    delays = delays or {}

    def send(k, direction, t0, ident, seg, stop, ip_proto):
        path = [h for h in plan["hops"] if h["direction"] == direction]
        src, dst = (_synth.SRC, _synth.DST) if direction == "request" else (_synth.DST, _synth.SRC)
        for pos, hop in enumerate(path, start=1):
            if stop and pos >= stop:
                break
            ts = _synth.BASE_NS + t0 + pos * 50000 + (300000 + delays.get(k, 0) if pos >= 4 else 0)
            inner = _synth.ipv4(src, dst, ip_proto, seg, ident, 64 - pos)
            data, lt = wrap(encap, hop, direction, inner)
            per_cap[hop["capture"]].append((ts, data))
            lts[hop["capture"]] = lt

    for k in range(1, n + 1):
        t0 = k * 50000000
        sport = SPORT0 + k
        if proto == "icmp":
            req = _icmp(8, 7, k)
            resp = _icmp(0, 7, k)
            ip_proto = 1
        else:
            req = _synth.tcp(sport, 443, 1000 * k, 0, 0x02)
            resp = _synth.tcp(443, sport, 9000 * k, 1000 * k + 1, 0x12)
            ip_proto = 6
        send(k, "request", t0, 100 + k, req, drop_request.get(k) if isinstance(drop_request, dict) else None, ip_proto)
        if k in retransmit:
            send(k, "request", t0 + 10**9, 2000 + k, req, None, ip_proto)
        if k not in (drop_request or {}) or k in retransmit:
            send(k, "response", t0 + 2000000, 5000 + k, resp, (drop_response or {}).get(k), ip_proto)
    captures = []
    for c in plan["captures"]:
        path = str(tmp_path / (c["key"].replace("/", "_") + ".pcap"))
        lt = lts.get(c["key"], 101 if c["interface"] == "tunl0" else 1)
        _synth.write_pcap(path, per_cap[c["key"]], lt)
        captures.append({"key": c["key"], "node": c["node"], "interface": c["interface"], "file": path,
                         "captured": len(per_cap[c["key"]]), "received": len(per_cap[c["key"]]), "dropped": 0,
                         "status": "ok", "error": None})
    return plan, captures


def _icmp(kind, ident, seq):
    import struct
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + b"hoptrace"


def wrap(encap, hop, direction, inner):
    iface = hop["interface"]
    if iface.startswith("cali"):
        return _synth.eth(inner), 1
    if iface == "tunl0":
        return inner, 101
    outer_src, outer_dst = (_synth.NODE_A, _synth.NODE_B) if direction == "request" else (_synth.NODE_B, _synth.NODE_A)
    return _synth.eth(_synth.ipv4(outer_src, outer_dst, 4, inner, 3)), 1


def attempts(n, proto="tcp"):
    if proto == "icmp":
        return [{"seq": k, "id": 7, "ok": True, "status": "replied", "time_ms": 0.5} for k in range(1, n + 1)]
    return [{"seq": k, "sport": SPORT0 + k, "ok": True, "status": "connected", "time_ms": 0.5} for k in range(1, n + 1)]


def _rows(rep, direction):
    return [h for h in rep["hops"] if h["direction"] == direction]


def test_percentiles_are_nearest_rank():
    values = list(range(1, 21))             # 1..20
    assert repeat.percentile(values, 50) == 10
    assert repeat.percentile(values, 95) == 19
    assert repeat.percentile([5.0], 95) == 5.0
    assert repeat.percentile([], 50) is None
    assert repeat.latency([0.25, 0.1, 0.2, 0.4]) == {"p50": 0.2, "p95": 0.4, "max": 0.4}


def test_healthy_twenty_probes_every_hop_twenty_of_twenty(tmp_path):
    plan, caps = make_repeat(tmp_path, 20)
    rep = analysis.analyze(plan, caps, repeat={"count": 20, "max_loss": 0, "probes": attempts(20)})
    assert rep["verdict"] == "every hop saw the request and the response of all 20 probes"
    assert rep["healthy"] is True
    assert [h["probes_seen"] for h in rep["hops"]] == [20] * 12
    assert [h["loss_pct"] for h in rep["hops"]] == [0.0] * 12
    assert [h["packets"] for h in rep["hops"]] == [20] * 12
    req = _rows(rep, "request")
    assert req[0]["latency_ms"] is None
    # 50 us per hop, 300 us more on the underlay (synthetic timing)
    assert req[1]["latency_ms"] == {"p50": 0.05, "p95": 0.05, "max": 0.05}
    assert req[3]["latency_ms"] == {"p50": 0.35, "p95": 0.35, "max": 0.35}
    assert rep["repeat"]["count"] == 20 and rep["repeat"]["lost"] == 0 and rep["repeat"]["loss_pct"] == 0.0
    assert [p["sport"] for p in rep["repeat"]["probes"]] == [SPORT0 + k for k in range(1, 21)]
    assert rep["directions"]["request"]["lost"] == 0 and rep["directions"]["request"]["lost_at"] == []
    assert rep["directions"]["request"]["sent"] == 20 and rep["directions"]["response"]["sent"] == 20


def test_intermittent_request_loss_names_the_count_and_the_hops(tmp_path):
    # probes 5, 10, 15 lose their SYN on the underlay between node-a eth0 and node-b eth0 (hop 4)
    plan, caps = make_repeat(tmp_path, 50, drop_request={5: 4, 10: 4, 15: 4})
    rep = analysis.analyze(plan, caps, repeat={"count": 50, "max_loss": 0, "probes": attempts(50)})
    assert rep["verdict"] == "3 of 50 requests were lost between node-a eth0 and node-b eth0"
    assert rep["healthy"] is False
    assert [h["probes_seen"] for h in _rows(rep, "request")] == [50, 50, 50, 47, 47, 47]
    assert [h["loss_pct"] for h in _rows(rep, "request")] == [0.0, 0.0, 0.0, 6.0, 6.0, 6.0]
    assert [h["probes_seen"] for h in _rows(rep, "response")] == [47] * 6
    assert rep["directions"]["request"]["lost"] == 3
    assert rep["directions"]["request"]["lost_at"] == [{"between": ["node-a eth0", "node-b eth0"], "count": 3}]
    assert rep["directions"]["response"]["lost"] == 0
    assert rep["repeat"]["loss_pct"] == 6.0 and rep["repeat"]["lost"] == 3
    lost = [p["sport"] for p in rep["repeat"]["probes"] if p["request_lost"]]
    assert lost == [SPORT0 + 5, SPORT0 + 10, SPORT0 + 15]


def test_loss_at_or_below_max_loss_is_healthy_and_still_said(tmp_path):
    plan, caps = make_repeat(tmp_path, 50, drop_request={5: 4, 10: 4, 15: 4})
    rep = analysis.analyze(plan, caps, repeat={"count": 50, "max_loss": 6, "probes": attempts(50)})
    assert rep["healthy"] is True
    assert rep["verdict"] == ("3 of 50 requests were lost between node-a eth0 and node-b eth0; "
                              "6% of the probes lost, within max_loss 6%")
    rep = analysis.analyze(plan, caps, repeat={"count": 50, "max_loss": 5.9, "probes": attempts(50)})
    assert rep["healthy"] is False


def test_a_retransmitted_syn_still_counts_its_first_syn_as_lost(tmp_path):
    plan, caps = make_repeat(tmp_path, 20, drop_request={4: 5}, retransmit={4})
    rep = analysis.analyze(plan, caps, repeat={"count": 20, "max_loss": 0, "probes": attempts(20)})
    assert rep["verdict"] == "1 of 20 requests were lost between node-b eth0 and node-b tunl0"
    assert [h["probes_seen"] for h in _rows(rep, "request")] == [20, 20, 20, 20, 19, 19]
    assert [h["probes_seen"] for h in _rows(rep, "response")] == [20] * 6


def test_response_loss_counts_the_responses_sent(tmp_path):
    plan, caps = make_repeat(tmp_path, 10, drop_request={1: 2}, drop_response={3: 6, 7: 6})
    rep = analysis.analyze(plan, caps, repeat={"count": 10, "max_loss": 0, "probes": attempts(10)})
    assert rep["verdict"] == ("1 of 10 requests were lost between %s and node-a tunl0; "
                              "2 of 9 responses were lost between node-a tunl0 and %s" % ("node-a " + _synth.SRC_VETH, "node-a " + _synth.SRC_VETH))
    assert rep["repeat"]["lost"] == 3 and rep["repeat"]["loss_pct"] == 30.0
    assert [h["probes_seen"] for h in _rows(rep, "response")] == [9, 9, 9, 9, 9, 7]


def test_latency_percentiles_over_the_probes(tmp_path):
    # underlay delay 0.35 ms plus 0, 0.1, ..., 1.9 ms extra for probes 1..20
    plan, caps = make_repeat(tmp_path, 20, delays={k: (k - 1) * 100000 for k in range(1, 21)})
    rep = analysis.analyze(plan, caps, repeat={"count": 20, "max_loss": 0, "probes": attempts(20)})
    underlay = _rows(rep, "request")[3]
    assert underlay["latency_ms"] == {"p50": pytest.approx(1.25), "p95": pytest.approx(2.15), "max": pytest.approx(2.25)}
    assert _rows(rep, "request")[4]["latency_ms"] == {"p50": 0.05, "p95": 0.05, "max": 0.05}


def test_icmp_probes_are_told_apart_by_echo_sequence(tmp_path):
    plan, caps = make_repeat(tmp_path, 20, drop_request={5: 5, 10: 5, 15: 5, 20: 5}, proto="icmp")
    rep = analysis.analyze(plan, caps, repeat={"count": 20, "max_loss": 0, "probes": attempts(20, "icmp")})
    assert rep["verdict"] == "4 of 20 requests were lost between node-b eth0 and node-b tunl0"
    assert [p["seq"] for p in rep["repeat"]["probes"] if p["request_lost"]] == [5, 10, 15, 20]
    assert {p["id"] for p in rep["repeat"]["probes"]} == {7}


def test_without_the_probe_list_the_flows_in_the_captures_are_the_probes(tmp_path):
    plan, caps = make_repeat(tmp_path, 8, drop_request={2: 4})
    rep = analysis.analyze(plan, caps, repeat={"count": 8, "max_loss": 0})
    assert rep["verdict"] == "1 of 8 requests were lost between node-a eth0 and node-b eth0"


def test_a_probe_seen_nowhere_is_lost_before_the_first_hop(tmp_path):
    plan, caps = make_repeat(tmp_path, 5, drop_request={3: 1})
    rep = analysis.analyze(plan, caps, repeat={"count": 5, "max_loss": 0, "probes": attempts(5)})
    assert rep["verdict"] == "1 of 5 requests were not seen on any hop (first: node-a %s)" % _synth.SRC_VETH
    assert rep["repeat"]["lost"] == 1 and rep["directions"]["request"]["lost"] == 1
    assert rep["healthy"] is False


def test_count_one_keeps_the_report_as_it_was(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    plain = analysis.analyze(plan, caps)
    once = analysis.analyze(plan, caps, repeat={"count": 1, "max_loss": 0, "probes": []})
    assert once == plain and "repeat" not in once and "probes_seen" not in once["hops"][0]


def test_the_hop_table_shows_probes_loss_and_percentiles_in_80_columns(tmp_path):
    plan, caps = make_repeat(tmp_path, 50, drop_request={5: 4, 10: 4, 15: 4})
    rep = analysis.analyze(plan, caps, repeat={"count": 50, "max_loss": 0, "probes": attempts(50)})
    lines = report.render_table(rep, width=80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].split() == ["dir", "#", "node", "interface", "pkts", "probes", "loss", "status", "p50/p95", "ms"]
    assert lines[2].split() == ["request", "1", "node-a", _synth.SRC_VETH, "50", "50/50", "0%", "seen"]
    assert lines[5].split() == ["request", "4", "node-b", "eth0", "(ipip)", "47", "47/50", "6%", "PART", "0.350/0.350"]
    assert "verdict: 3 of 50 requests were lost between node-a eth0 and node-b eth0" in lines
    md = report.render_markdown(rep)
    assert "Repeat mode: 50 probes, 3 lost (6%), max_loss 0%." in md
    assert "| request | 4 | node-b | `eth0` | 47/50 | 6% | 0.350 / 0.350 / 0.350 |" in md
    assert "| request | 1 | node-a | `%s` | 50/50 | 0%% |  |" % _synth.SRC_VETH in md


@pytest.mark.parametrize("kw", [{}, {"drop_request": {5: 4, 10: 4}}, {"drop_response": {3: 6}}, {"drop_request": {2: 1}}],
                         ids=["healthy", "request-loss", "response-loss", "never-seen"])
def test_repeat_reports_follow_the_report_schema(tmp_path, kw):
    import json

    from test_report_schema import SCHEMA, validate
    plan, caps = make_repeat(tmp_path, 20, **kw)
    data = json.loads(json.dumps(analysis.analyze(plan, caps, repeat={"count": 20, "max_loss": 0, "probes": attempts(20)})))
    assert validate(data, SCHEMA) == []
