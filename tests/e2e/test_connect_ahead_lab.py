"""The path step opens node-b's ssh connection before the arm step needs it (plugin_utils/connect_ahead.py).

ssh's own debug log (-v -E FILE, through ansible_ssh_extra_args) shows every connection the
controller opens: node-b must be connected to exactly once, and the first command over that
connection must be the background `true`, not the arm task's module. Root only (the lab).
"""
import json
import os

import pytest

from lab import labctl
from test_trace import HEALTHY, _env, flow, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def test_node_b_is_connected_once_and_first_by_the_path_step(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    log = tmp_path / "ssh-node-b.log"
    inventory = tmp_path / "inventory.ini"
    lines = []
    for line in open(labctl.inventory_path()).read().splitlines():
        if line.startswith("node-b "):
            line += ' ansible_ssh_extra_args="-v -E %s"' % log          # ssh's debug log for node-b only
        lines.append(line)
    inventory.write_text("\n".join(lines) + "\n")
    extra = ["-e", json.dumps({"ansible_control_path_dir": str(tmp_path / "cp")})]   # cold: no master yet
    rc, out, report = trace(tmp_path / "out", *(flow() + extra), env=_env(), inventory=str(inventory))
    assert rc == 0, out[-3000:]
    assert HEALTHY in out and report["healthy"] is True
    text = log.read_text()
    assert text.count("debug1: Connecting to ") == 1, text[-3000:]
    sent = [line[len("debug1: Sending command: "):] for line in text.splitlines()
            if line.startswith("debug1: Sending command: ")]
    assert sent[0] == "true"
    assert len(sent) >= 3          # arm and collect came over the same master
