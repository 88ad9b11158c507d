# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.route_info: the module on the node. The connection opens while the
module is built (plugin_utils/early_connect.py), and the payloads of the modules named in
``prebuild`` are built while the node runs it (plugin_utils/prebuild.py).

With ``connect_ahead`` (controller only: ``flow``, the validated flow, and ``hosts``, the
candidate hosts), the candidates' address variables are read while the node answers, the path is
found from the result at once (plugin_utils/path_step.py, the ``trace_path`` filter's own code,
which then reuses it from the result's ``hoptrace_path``) and the ssh connections to the other path
nodes are opened in the background (plugin_utils/connect_ahead.py) while the controller plans."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import connect_ahead
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.overlap import OverlapMixin
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.path_step import (
    FOUND_KEY,
    address_vars,
    find_path,
    no_lookup,
)

MODULE = "hoptrace.k8s.route_info"


class ActionModule(OverlapMixin, ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        ahead = args.pop("connect_ahead", None)
        entry = self._task.delegate_to or task_vars.get("inventory_hostname")
        hostvars = task_vars.get("hostvars")
        meanwhile = None
        if isinstance(ahead, dict) and hostvars is not None:
            def meanwhile():
                return address_vars(hostvars, ahead.get("hosts"), entry)
        result.update(self._execute_overlapped(MODULE, args, task_vars, connect_early=True, meanwhile=meanwhile))
        host_vars = self._meanwhile_result
        if host_vars is not None and "routes" in result and not result.get("failed"):
            self._find_path_and_connect(ahead["flow"], entry, result, host_vars, hostvars)
        return result

    def _find_path_and_connect(self, flow, entry, result, host_vars, hostvars):
        try:
            path = find_path(entry, result, flow, host_vars, resolve=no_lookup)   # DNS: left to the filter
        except Exception:  # noqa: BLE001 - the path step's filter finds it again and says what is wrong
            return
        result[FOUND_KEY] = {"entry": entry, "flow": flow, "path": path}
        others = [host for host in path["hosts"] if host != entry]
        if others:
            connect_ahead.start(self._task, self._play_context, self._templar, hostvars, others)
