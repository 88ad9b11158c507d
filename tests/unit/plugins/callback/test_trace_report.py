"""trace_analyze + trace_report end to end: run a playbook on localhost and read what it prints.

Exceptions in callbacks only become warnings, so asserting on the printed text is what
catches a broken summary.
"""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin_utils"))
import _synth  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        trace_plan: "{{ plan }}"
    - ansible.builtin.fail:
        msg: "tcpdump: eth0: No such device exists"
      when: break_it | default(false) | bool
    - hoptrace.k8s.trace_analyze:
        plan: "{{ plan }}"
        captures: "{{ caps }}"
        output_dir: "{{ out }}"
      register: result
"""


def _play(tmp_path, extra):
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), HOPTRACE_REPORT_COLOR="auto")
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([ansible, "-i", "localhost,", "-c", "local", "-e", "@%s" % extra, str(book)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout


@pytest.fixture
def trace(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("request", 5))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"plan": plan, "caps": caps, "out": str(tmp_path / "run")}))
    return extra


def test_table_printed_at_the_end(tmp_path, trace):
    rc, out = _play(tmp_path, trace)
    assert rc == 0, out
    tail = out[out.index("PLAY RECAP"):]
    assert "request   4 node-b eth0 (ipip)        4 SYN PSH+ACK ACK  seen      +0.450 ms" in tail
    assert "request   5 node-b tunl0              0 -                LOST" in tail
    assert "verdict: request reached node-b eth0 and was not seen on node-b tunl0\n  (decapsulation)" in tail
    assert "files: %s" % (tmp_path / "run") in tail
    assert "\033[" not in tail                       # not a TTY: no colour
    assert sorted(os.listdir(tmp_path / "run")) == ["junit.xml", "report.html", "report.json", "report.md", "trace.pcapng"]


def test_failed_play_prints_plan_and_reason(tmp_path, trace):
    data = json.loads(trace.read_text())
    data["break_it"] = True
    trace.write_text(json.dumps(data))
    rc, out = _play(tmp_path, trace)
    assert rc != 0
    tail = out[out.index("PLAY RECAP"):]
    assert "request   1 node-a cali41f14107a8d                       unknown" in tail
    assert ("verdict: no verdict: the play failed at task 'ansible.builtin.fail' on\n"
            "  localhost: tcpdump: eth0: No such device exists") in tail
