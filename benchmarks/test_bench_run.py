"""benchmarks/run.py --quick on the lab (root only): it writes every table. No timing assertions."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench_run  # noqa: E402

pytest_plugins = ["lab.fixtures"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_quick_run_writes_the_tables(lab_factory, tmp_path):
    lab_factory("ipip", 2)          # holds the lab lock for the session; run.py's own flock is let through
    out = tmp_path / "BENCHMARKS.md"
    assert bench_run.main(["--quick", "--output", str(out)]) == 0
    text = out.read_text()
    for heading in ("## 1. End-to-end trace time", "## 2. Scale", "## 3. Analysis throughput", "## 4. Capture fidelity",
                    "## 5. Inventory size: 2 vs 500 hosts", "## 6. Counter snapshots"):
        assert heading in text
    assert "| trace, cold |" in text and "| floor: parallel ssh + tcpdump + scp |" in text
    assert "| 8 | ansible.cfg |" in text
    assert "| step | trace, cold | trace, warm |" in text and "| collect |" in text
    assert "| hoptrace analyze() (in-process time) | ipip |" in text
    assert "Machine: " in text and "kernel" in text
    assert "healthy runs" in text and "| 3 | 0 |" in text
    # the quick inventory section: one trace per inventory, no off-path host contacted
    assert "| `.lab/inventory.ini` | 2 |" in text and "| generated (`biginv.write_inventory`) | 500 |" in text
    assert "0 off-path connections" in text
    # the snapshots section: one trace with and one without, both healthy
    assert "| on (default) |" in text and "| 1/1 |" in text.split("## 6. Counter snapshots")[1]
