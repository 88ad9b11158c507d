# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.route_info: the module on the node. The connection opens while the
module is built (plugin_utils/early_connect.py), and the payloads of the modules named in
``prebuild`` are built while the node runs it (plugin_utils/prebuild.py).

With ``connect_ahead`` (controller only: ``flow``, the validated flow, and ``hosts``, the
candidate hosts), the path is found from the result at once (the ``trace_path`` filter's own
code) and the ssh connections to the other path nodes are opened in the background
(plugin_utils/connect_ahead.py), while the controller goes on to plan."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.filter.trace_path import path_from_registration
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import connect_ahead
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.overlap import OverlapMixin

MODULE = "hoptrace.k8s.route_info"


def _no_lookup(names):
    """No DNS here: a path that needs it is found by the path step's filter, without a connection ahead."""
    return {}


class ActionModule(OverlapMixin, ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        ahead = args.pop("connect_ahead", None)
        result.update(self._execute_overlapped(MODULE, args, task_vars, connect_early=True))
        if ahead and "routes" in result and not result.get("failed"):
            self._connect_ahead(ahead, result, task_vars)
        return result

    def _connect_ahead(self, ahead, result, task_vars):
        entry = self._task.delegate_to or task_vars.get("inventory_hostname")
        hostvars = task_vars.get("hostvars")
        try:
            path = path_from_registration(result, flow=ahead.get("flow"), hostvars=hostvars,
                                          hosts=ahead.get("hosts"), entry=entry, resolve=_no_lookup)
        except Exception:  # noqa: BLE001 - the path step's own filter reports what is wrong
            return
        others = [host for host in path["hosts"] if host != entry]
        if others:
            connect_ahead.start(self._task, self._play_context, self._templar, hostvars, others)
