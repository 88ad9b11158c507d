"""Progress lines of the trace_report callback on the lab: printed while the steps run, none with quiet=true.

The passive trace's 'capturing N/6 s' lines must arrive while the capture waits: the test reads
ansible-playbook's output as it comes and compares when each line arrived.
"""
import json
import os
import subprocess
import time

import pytest
from test_trace import BIN, DST, PLAYBOOK, ROOT, SRC, _env, flow, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

PROGRESS = ("read node-", "captures armed on", "probing ", "capturing ", "fetched ", "run folder: ")


def _streamed(out_dir, *args):
    """Run a trace; returns (rc, [(seconds since start, line)])."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", labctl.inventory_path(), PLAYBOOK, "-e", "output_dir=%s" % out_dir] + list(args)
    start = time.monotonic()
    lines = []
    with subprocess.Popen(argv, cwd=ROOT, env=_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
        rc = proc.wait(timeout=180)
    return rc, lines


def _when(lines, text):
    return next(t for t, line in lines if line == text)


def test_a_passive_trace_says_how_far_the_capture_is_while_it_waits(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, lines = _streamed(tmp_path, "-e", json.dumps({"src": SRC, "dst": DST, "port": 443, "mode": "passive", "duration": 6}))
    text = [line for _t, line in lines]
    assert rc == 2, "\n".join(text[-60:])           # nothing was sent: the request was not seen on any hop
    progress = [line for line in text if line.startswith(PROGRESS)]
    run_dir = next(line for line in progress if line.startswith("run folder: "))
    assert progress == ["read node-a (entry)", "captures armed on 6 hops (node-a: 3, node-b: 3)",
                        "capturing 0/6 s", "capturing 2/6 s", "capturing 4/6 s",
                        progress[5], run_dir], "\n".join(text[-60:])
    assert progress[5].startswith("fetched 6 files, ") and progress[5].endswith(" (node-a: 3, node-b: 3)")
    # the ticks came while the 6 s wait ran, not at its end: 'capturing 2/6 s' about 4 s before the files
    assert _when(lines, progress[5]) - _when(lines, "capturing 2/6 s") >= 2.5
    assert _when(lines, "capturing 4/6 s") - _when(lines, "capturing 2/6 s") >= 1.0
    # and before the table
    verdict = next(i for i, line in enumerate(text) if line.startswith("verdict: the request was not seen on any hop"))
    assert text.index("capturing 4/6 s") < verdict


def test_quiet_prints_the_table_and_no_progress_line(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, out, report = trace(tmp_path, *flow(), "-e", "quiet=true")
    assert rc == 0, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith(PROGRESS)] == []
    assert "verdict: every hop saw the request and the response" in out
    assert "request   1 node-a cali41f14107a8d" in out
    rc, out, report = trace(tmp_path, "-e", json.dumps({"src": SRC, "dst": DST, "mode": "passive", "duration": 3, "quiet": True}))
    assert [line for line in out.splitlines() if line.startswith(PROGRESS)] == []
    assert "verdict: the request was not seen on any hop" in out
