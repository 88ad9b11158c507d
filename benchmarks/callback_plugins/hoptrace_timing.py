# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: when each task started and ended, written as JSON.

Loaded by benchmarks/run.py with ANSIBLE_CALLBACK_PLUGINS=benchmarks/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=hoptrace_timing; writes to $HOPTRACE_TIMING_FILE at the end of the play.
Like profile_tasks (ansible.posix, not installed here), a task lasts from its start until the
next task starts (the strategy's own overhead between tasks is charged to the task before).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: hoptrace_timing
type: aggregate
short_description: record task start and end times for the benchmarks
description: Writes the start and end time of every task to $HOPTRACE_TIMING_FILE.
requirements: [enable in configuration]
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'hoptrace_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.t_start = time.time()
        self.tasks = []

    def _close_last(self, now):
        if self.tasks and self.tasks[-1]['end'] is None:
            self.tasks[-1]['end'] = now

    def v2_playbook_on_start(self, playbook):
        self.t_playbook = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.time()
        self._close_last(now)
        path = task.get_path() or ''
        self.tasks.append({'name': task.get_name(), 'file': os.path.basename(path.rsplit(':', 1)[0]),
                           'start': now, 'end': None, 'hosts': {}})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _host_done(self, result, status):
        if self.tasks:
            self.tasks[-1]['hosts'][result._host.get_name()] = [status, time.time()]

    def v2_runner_on_ok(self, result):
        self._host_done(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host_done(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._host_done(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._host_done(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close_last(now)
        out = os.environ.get('HOPTRACE_TIMING_FILE')
        if out:
            with open(out, 'w') as handle:
                json.dump({'callback_loaded': self.t_start, 'playbook_start': getattr(self, 't_playbook', None),
                           'stats': now, 'tasks': self.tasks}, handle, indent=1)
