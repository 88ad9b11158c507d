# -*- coding: utf-8 -*-
# Copyright: hoptrace developers (@hoptrace)
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: trace_report
type: aggregate
short_description: Print hoptrace's hop table and verdict at the end of the play
version_added: 0.1.0
description:
  - Collects the results of C(hoptrace.k8s.trace_analyze) tasks and the trace plan (the fact
    C(trace_plan), set with C(set_fact)) and, when the playbook ends, prints one line per hop
    (direction, index, node, interface with its encapsulation, packets, TCP flags seen,
    C(seen)/C(LOST)/C(unknown), delay from the first hop), the verdict, a C(why:) line under it
    when the flow is not healthy (the RST or ICMP error that explains it, or C(no packet in the
    captures explains the loss)) and the run folder.
  - When the play failed before the analysis, prints the plan's hops as C(unknown) and the
    failed task with its message.
  - While the trace runs, prints one progress line on each long step - the nodes read (C(read node-a (entry))),
    the captures armed per node (C(captures armed on 6 hops) and the count of each node),
    C(probing 172.17.25.79 -> 172.17.25.239 tcp/443) (with the number of probes in repeat mode),
    C(capturing 4/60 s) every few seconds while a passive trace waits, the files fetched with their size
    (C(fetched 6 files, 2.1 MB) and the count of each node) and the run folder. The extra var
    C(quiet=true) (C(-e quiet=true)) turns them off; the table is printed either way.
  - The probe line's count and interval, and the passive duration, are read from the extra vars the
    collection's C(trace_flow) playbook takes (C(count), C(interval), C(mode), C(duration)).
  - Renders only; the table comes from C(plugin_utils/report.py), the progress lines from
    C(plugin_utils/progress.py).
author:
  - hoptrace developers (@hoptrace)
requirements:
  - enable it in C(callbacks_enabled) (ansible.cfg C([defaults]) or C(ANSIBLE_CALLBACKS_ENABLED))
options:
  color:
    description: Colour the status column and verdict; C(auto) colours only when stdout is a terminal.
    type: str
    default: auto
    choices: [auto, 'yes', 'no']
    env:
      - name: HOPTRACE_REPORT_COLOR
    ini:
      - section: callback_trace_report
        key: color
  width:
    description: Columns the table may use.
    type: int
    default: 80
    env:
      - name: HOPTRACE_REPORT_WIDTH
    ini:
      - section: callback_trace_report
        key: width
'''

import os
import sys
import textwrap
import threading
import time

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import progress
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.report import render_table, report_from_plan


def _action(task):
    return str(task.action).rsplit(".", maxsplit=1)[-1]


class _Ticker(object):
    """A timer thread that prints 'capturing N/D s' every few seconds until stopped."""

    def __init__(self, say, duration, tick):
        self.say, self.duration, self.tick = say, duration, tick
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hoptrace-progress", daemon=True)
        self.start = time.monotonic()
        self.thread.start()

    def _run(self):
        n = 1
        while not self.stop_event.wait(max(0.0, self.start + n * self.tick - time.monotonic())):
            elapsed = time.monotonic() - self.start
            if elapsed >= self.duration:
                return
            self.say(progress.capturing_line(elapsed, self.duration))
            n += 1

    def stop(self):
        self.stop_event.set()
        self.thread.join(1.0)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'hoptrace.k8s.trace_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.reports = []        # (report dict, run folder)
        self.plan = None
        self.failures = []       # (task name, host, message)
        self.quiet = False
        self.settings = {}       # the trace_flow playbook's extra vars the progress lines need
        self.pending = None      # (kind, [(node, n)], bytes) of the running task, printed when it ends
        self.ticker = None

    # -- progress -----------------------------------------------------------------
    def _say(self, line):
        if not self.quiet:
            self._display.display(line, screen_only=True)

    def _flush(self):
        """The step that just ended: its summed line, and the passive capture's ticks stop."""
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        pending, self.pending = self.pending, None
        if pending and pending[1]:
            kind, counts, nbytes = pending
            self._say(progress.armed_line(counts) if kind == "armed" else progress.fetched_line(counts, nbytes))

    def _setting(self, name, default=None):
        for key in (name, "trace_" + name):
            if self.settings.get(key) not in (None, ""):
                return self.settings[key]
        return default

    def v2_playbook_on_play_start(self, play):
        self._flush()
        manager = play.get_variable_manager() if hasattr(play, "get_variable_manager") else None
        extra = dict(getattr(manager, "extra_vars", None) or {})
        self.quiet = progress.truthy(extra.get("quiet"))
        self.settings = extra

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._flush()
        action = _action(task)
        mode = str(self._setting("mode", "probe"))
        if action == "probe" and mode == "probe" and self.plan is not None:
            self._say(progress.probe_line(self.plan.get("run"), self._setting("count", 1), self._setting("interval")))
        elif action == "wait_for" and mode == "passive" and self.plan is not None:
            duration = int(float(self._setting("duration", 10)))
            self._say(progress.capturing_line(0, duration))
            if not self.quiet:
                self.ticker = _Ticker(self._say, duration, progress.tick_seconds(duration))

    def _progress_ok(self, result, res):
        action, host = _action(result._task), result._host.get_name()
        if action == "route_info" and "results" not in res:
            entry = res.get("trace_entry_host")
            self._say(progress.read_line(entry or host, entry is not None))
        elif action == "capture" and isinstance(res.get("captures"), list):
            state = (result._task.args or {}).get("state")
            done = [c for c in res["captures"] if isinstance(c, dict) and not c.get("failed")]
            if state == "started":
                self._pending("armed", host, len(done), 0)
            elif state == "stopped":
                files = [c for c in done if c.get("size")]
                self._pending("fetched", host, len(files), sum(int(c.get("size") or 0) for c in files))
        elif action == "wait_for" and self.ticker is not None:
            self._flush()

    def _pending(self, kind, host, n, nbytes):
        if self.pending is None or self.pending[0] != kind:
            self.pending = (kind, [], 0)
        self.pending[1].append((host, n))
        self.pending = (kind, self.pending[1], self.pending[2] + nbytes)

    def v2_runner_item_on_ok(self, result):
        self._progress_ok(result, result._result or {})

    def v2_runner_item_on_failed(self, result):
        res = result._result or {}
        if _action(result._task) == "route_info" and res.get("trace_entry_host"):
            msg = str(res.get("msg") or "failed").strip().splitlines()
            self._say(progress.unread_line(res["trace_entry_host"], msg[0] if msg else "failed"))

    # -- collecting ---------------------------------------------------------------
    def v2_runner_on_ok(self, result, **kwargs):
        res = result._result or {}
        facts = res.get("ansible_facts") or {}
        if isinstance(facts.get("trace_plan"), dict):
            self.plan = facts["trace_plan"]
        self._progress_ok(result, res)
        if str(result._task.action).rsplit(".", maxsplit=1)[-1] == "trace_analyze" and isinstance(res.get("report"), dict):
            files = res.get("files") or {}
            run_dir = os.path.dirname(files["json"]) if files.get("json") else None
            self.reports.append((res["report"], run_dir))
            if run_dir:
                self._say(progress.run_folder_line(run_dir))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._failed(result)

    def v2_runner_on_unreachable(self, result):
        self._failed(result)

    def _failed(self, result):
        res = result._result or {}
        msg = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
        self.failures.append((result._task.get_name(), result._host.get_name(), str(msg).strip().splitlines()[0] if str(msg).strip() else "failed"))

    # -- rendering ----------------------------------------------------------------
    def _color(self):
        choice = str(self.get_option("color")).lower()
        if choice in ("yes", "true", "1", "always"):
            return True
        if choice in ("no", "false", "0", "never"):
            return False
        return hasattr(sys.stdout, "isatty") and sys.stdout.isatty()

    def v2_playbook_on_stats(self, stats):
        self._flush()
        if not self.reports and self.plan is None:
            return
        width, color = self.get_option("width"), self._color()
        lines = [""]
        for rep, run_dir in self.reports:
            lines.extend(render_table(rep, width=width, color=color, run_dir=run_dir))
        if not self.reports:
            if self.failures:
                task, host, msg = self.failures[0]
                reason = "the play failed at task '%s' on %s: %s" % (task, host, msg)
            elif context.CLIARGS.get("check"):
                reason = "check mode: hops planned from the nodes' routes; nothing was captured"
            else:
                reason = "the play ended before the captures were analysed"
            lines.extend(render_table(report_from_plan(self.plan, reason), width=width, color=color))
        for task, host, msg in self.failures[1:] if not self.reports else self.failures:
            lines.extend(textwrap.wrap("failed: %s (%s): %s" % (task, host, msg), width=width, subsequent_indent="  "))
        for line in lines:
            self._display.display(line, screen_only=True)
