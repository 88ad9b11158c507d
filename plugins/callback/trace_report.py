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
  - Renders only; the table comes from C(plugin_utils/report.py).
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

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.report import render_table, report_from_plan


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

    # -- collecting ---------------------------------------------------------------
    def v2_runner_on_ok(self, result, **kwargs):
        res = result._result or {}
        facts = res.get("ansible_facts") or {}
        if isinstance(facts.get("trace_plan"), dict):
            self.plan = facts["trace_plan"]
        if str(result._task.action).rsplit(".", maxsplit=1)[-1] == "trace_analyze" and isinstance(res.get("report"), dict):
            files = res.get("files") or {}
            run_dir = os.path.dirname(files["json"]) if files.get("json") else None
            self.reports.append((res["report"], run_dir))

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
