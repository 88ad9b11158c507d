"""report: the terminal table, report.md and report.json from a known report."""
import json

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, report

import _synth

RUN_DIR = "/srv/traces/20250101-120000-172.17.25.79-172.17.25.239"

EXPECTED = [
    "hoptrace: tcp 172.17.25.79 -> 172.17.25.239:443 (ipip, node-a -> node-b)",
    "dir       # node   interface       pkts seen             status        delay",
    "request   1 node-a cali41f14107a8d    4 SYN PSH+ACK ACK  seen      +0.000 ms",
    "request   2 node-a tunl0              4 SYN PSH+ACK ACK  seen      +0.050 ms",
    "request   3 node-a eth0 (ipip)        4 SYN PSH+ACK ACK  seen      +0.100 ms",
    "request   4 node-b eth0 (ipip)        4 SYN PSH+ACK ACK  seen      +0.450 ms",
    "request   5 node-b tunl0              0 -                LOST",
    "request   6 node-b calic25e805a467    0 -                LOST",
    "response  1 node-b calic25e805a467    0 -                -",
    "response  2 node-b tunl0              0 -                -",
    "response  3 node-b eth0 (ipip)        0 -                -",
    "response  4 node-a eth0 (ipip)        0 -                -",
    "response  5 node-a tunl0              0 -                -",
    "response  6 node-a cali41f14107a8d    0 -                -",
    "verdict: request reached node-b eth0 and was not seen on node-b tunl0",
    "  (decapsulation)",
    "why: no packet in the captures explains the loss",
    "files: /srv/traces/20250101-120000-172.17.25.79-172.17.25.239",
]


def _report(tmp_path, **kw):
    plan, caps = _synth.make_trace(tmp_path, "ipip", **kw)
    return analysis.analyze(plan, caps)


def test_table_exact_lines(tmp_path):
    assert report.render_table(_report(tmp_path, drop=("request", 5)), run_dir=RUN_DIR) == EXPECTED


def test_table_fits_80_columns_without_ansi(tmp_path):
    rep = _report(tmp_path, node_b_shift_ns=3000000)
    rep["hops"][0]["interface"] = "cali0123456789abcdef-very-long-name"
    lines = report.render_table(rep, width=80, color=False, run_dir=RUN_DIR)
    assert all(len(line) <= 80 for line in lines)
    assert not any("\033" in line for line in lines)
    assert lines[2].startswith("request   1 node-a cali0123456789abcdef-~    4 SYN PSH+ACK~ seen")
    assert lines[-1] == "files: " + RUN_DIR
    assert any(line.startswith("note: delays across nodes corrected for a clock offset") for line in lines)


def test_table_colour_only_when_asked(tmp_path):
    rep = _report(tmp_path, drop=("request", 5))
    coloured = report.render_table(rep, color=True)
    assert "\033[31mLOST   \033[0m" in coloured[6]
    assert coloured[2].endswith("\033[32mseen   \033[0m   +0.000 ms")
    plain = [line.replace("\033[31m", "").replace("\033[32m", "").replace("\033[2m", "").replace("\033[0m", "") for line in coloured]
    assert [line.rstrip() for line in plain] == report.render_table(rep, color=False)


def test_failed_play_shows_plan_as_unknown():
    plan = _synth.make_plan("vxlan")
    rep = report.report_from_plan(plan, "the play failed at task 'arm captures' on node-b: tcpdump: eth0: No such device")
    lines = report.render_table(rep)
    assert lines[2] == "request   1 node-a cali41f14107a8d                       unknown"
    assert lines[4] == "request   3 node-a eth0 (vxlan)                          unknown"
    assert lines[-2:] == ["verdict: no verdict: the play failed at task 'arm captures' on node-b: tcpdump:",
                          "  eth0: No such device"]
    assert all(len(line) <= 80 for line in lines)


def test_markdown_and_json(tmp_path):
    rep = _report(tmp_path, drop=("response", 4))
    paths = report.write_report_files(rep, str(tmp_path / "out"))
    md = open(paths["markdown"]).read()
    assert "**Verdict:** response reached node-b eth0 and was not seen on node-a eth0 (underlay network between the nodes)" in md
    assert "| response | 4 | node-a | `eth0` | underlay-in | ipip | 0 | - | LOST |  |" in md
    assert "| request | 1 | node-a | `cali41f14107a8d` | src-veth | none | 4 | SYN PSH+ACK ACK | seen | +0.000 ms |" in md
    assert "| node-b/tunl0 | ok | 7 | 7 | 0 | 0 | no |" in md
    data = json.load(open(paths["json"]))
    assert data["schema"] == 1 and data["healthy"] is False
    assert sorted(data) == ["captures", "clock", "complete", "directions", "dst_node", "encap", "healthy", "hops", "notes",
                            "path", "run", "schema", "src_node", "uncertain", "verdict", "why"]
    assert data["why"] == "no packet in the captures explains the loss"
    assert data["directions"]["response"]["cause"] is None
    assert "**Why:** no packet in the captures explains the loss\n" in md
    assert data["directions"]["response"]["stopped_at"] == "node-a eth0"
