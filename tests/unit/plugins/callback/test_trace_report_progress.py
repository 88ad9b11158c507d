"""trace_report's progress lines, driven with fake play, task and result objects (no playbook run)."""
import threading
import time

import pytest

from ansible_collections.hoptrace.k8s.plugins.callback import trace_report
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import progress

RUN = {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}


class Display(object):
    verbosity = 0

    def __init__(self):
        self.lines = []
        self.times = []
        self.lock = threading.Lock()

    def display(self, msg, screen_only=False, **kwargs):
        with self.lock:
            self.lines.append(msg)
            self.times.append(time.monotonic())


class Manager(object):
    def __init__(self, extra):
        self.extra_vars = extra


class Play(object):
    def __init__(self, extra):
        self.manager = Manager(extra)

    def get_variable_manager(self):
        return self.manager


class Task(object):
    def __init__(self, action, args=None, name="task"):
        self.action, self.args, self.name = action, args or {}, name

    def get_name(self):
        return self.name


class Host(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Result(object):
    def __init__(self, task, host, result):
        self._task, self._host, self._result = task, Host(host), result


def _callback(extra):
    display = Display()
    cb = trace_report.CallbackModule(display=display)
    cb.v2_playbook_on_play_start(Play(extra))
    return cb, display


def _probe_trace(cb):
    entry = Task("hoptrace.k8s.route_info")
    cb.v2_playbook_on_task_start(entry, False)
    cb.v2_runner_item_on_failed(Result(entry, "localhost", {"trace_entry_host": "node-c", "msg": "ssh: connect to host refused\nmore"}))
    cb.v2_runner_item_on_ok(Result(entry, "localhost", {"trace_entry_host": "node-a", "routes": []}))
    cb.v2_runner_on_ok(Result(entry, "localhost", {"results": [], "ansible_facts": {}}))
    cb.v2_runner_on_ok(Result(Task("ansible.builtin.set_fact"), "localhost", {"ansible_facts": {"trace_plan": {"run": RUN}}}))
    arm = Task("hoptrace.k8s.capture", {"state": "started"})
    cb.v2_playbook_on_task_start(arm, False)
    cb.v2_runner_on_ok(Result(arm, "node-a", {"captures": [{"id": "a1"}, {"id": "a2"}, {"id": "a3"}]}))
    cb.v2_runner_on_ok(Result(arm, "node-b", {"captures": [{"id": "b1"}, {"id": "b2"}, {"id": "b3", "failed": True}]}))
    cb.v2_playbook_on_task_start(Task("hoptrace.k8s.probe"), False)
    stop = Task("hoptrace.k8s.capture", {"state": "stopped"})
    cb.v2_playbook_on_task_start(stop, False)
    cb.v2_runner_on_ok(Result(stop, "node-a", {"captures": [{"size": 1200000}, {"size": 600000}, {"size": 0}]}))
    cb.v2_runner_on_ok(Result(stop, "node-b", {"captures": [{"size": 300000}, {"size": 24}]}))
    cb.v2_playbook_on_task_start(Task("hoptrace.k8s.trace_analyze"), False)
    cb._flush()


def test_probe_trace_progress_lines_in_order():
    cb, display = _callback({"count": "20", "interval": "0.05"})
    _probe_trace(cb)
    assert display.lines == [
        "could not read node-c (entry candidate): ssh: connect to host refused",
        "read node-a (entry)",
        "captures armed on 5 hops (node-a: 3, node-b: 2)",
        "probing 172.17.25.79 -> 172.17.25.239 tcp/443, 20 probes 0.05 s apart",
        "fetched 4 files, 2.1 MB (node-a: 2, node-b: 2)",
    ]


def test_one_probe_and_icmp_say_no_count_and_no_port():
    cb, display = _callback({})
    cb.plan = {"run": dict(RUN, proto="icmp", port=None)}
    cb.v2_playbook_on_task_start(Task("hoptrace.k8s.probe"), False)
    assert display.lines == ["probing 172.17.25.79 -> 172.17.25.239 icmp"]


def test_quiet_prints_no_progress_line():
    cb, display = _callback({"quiet": "true", "count": "20"})
    _probe_trace(cb)
    cb.v2_playbook_on_task_start(Task("ansible.builtin.wait_for"), False)
    assert display.lines == []


def test_passive_wait_ticks_while_it_runs_and_stops_at_its_end(monkeypatch):
    monkeypatch.setattr(progress, "tick_seconds", lambda duration: 0.1)
    cb, display = _callback({"mode": "passive", "duration": "6"})
    cb.plan = {"run": RUN}
    wait = Task("ansible.builtin.wait_for")
    start = time.monotonic()
    cb.v2_playbook_on_task_start(wait, False)
    time.sleep(0.35)
    during = list(display.lines)
    cb.v2_runner_on_ok(Result(wait, "localhost", {"elapsed": 6}))
    after = len(display.lines)
    time.sleep(0.25)
    assert during[0] == "capturing 0/6 s"
    assert during[1:] == ["capturing 0/6 s"] * 3          # 0.1 s ticks of a 6 s wait: whole seconds shown
    assert all(t - start < 0.34 for t in display.times[:4])
    assert len(display.lines) == after, "the ticker kept printing after the wait ended"
    assert cb.ticker is None


def test_ticks_count_the_seconds(monkeypatch):
    monkeypatch.setattr(progress, "tick_seconds", lambda duration: 1.0)
    cb, display = _callback({"mode": "passive", "duration": "3"})
    cb.plan = {"run": RUN}
    cb.v2_playbook_on_task_start(Task("ansible.builtin.wait_for"), False)
    time.sleep(2.3)
    cb._flush()
    assert display.lines == ["capturing 0/3 s", "capturing 1/3 s", "capturing 2/3 s"]


def test_probe_mode_does_not_tick_on_a_wait_and_without_a_plan_nothing_is_said():
    cb, display = _callback({})
    cb.v2_playbook_on_task_start(Task("ansible.builtin.wait_for"), False)
    cb.v2_playbook_on_task_start(Task("hoptrace.k8s.probe"), False)
    assert display.lines == [] and cb.ticker is None


@pytest.mark.parametrize("nbytes, text", [(0, "0 B"), (812, "812 B"), (4096, "4.1 kB"), (2100000, "2.1 MB"), (3 * 10**9, "3.0 GB")])
def test_sizes(nbytes, text):
    assert progress.size(nbytes) == text


@pytest.mark.parametrize("value, expected", [("true", True), ("yes", True), (True, True), ("1", True), ("false", False),
                                             ("no", False), (None, False), ("", False), (False, False)])
def test_quiet_spellings(value, expected):
    assert progress.truthy(value) is expected
