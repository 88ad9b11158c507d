"""The benchmark runs (tiny N); no timing assertions."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_analysis  # noqa: E402


def test_bench_runs(capsys):
    assert bench_analysis.main(["--packets", "2000", "--repeat", "1", "--merge"]) == 0
    out = capsys.readouterr().out
    assert "| hoptrace analyze() (in-process time) | ipip | 1998 |" in out
    assert "| hoptrace analyze() (in-process time) | vxlan | 1998 |" in out
    assert "| hoptrace merged trace.pcapng write | vxlan |" in out


def test_generated_trace_is_healthy(tmp_path):
    sys.path.insert(0, os.path.join(bench_analysis.ROOT, ".collections"))
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.analysis import analyze
    plan, captures, total = bench_analysis.make_trace(str(tmp_path), "vxlan", 600)
    rep = analyze(plan, captures)
    assert total == 600 and rep["healthy"] and [h["packets"] for h in rep["hops"]] == [50] * 12
