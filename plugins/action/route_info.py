# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.route_info: the module on the node. The connection opens while the
module is built (plugin_utils/early_connect.py), and the payloads of the modules named in
``prebuild`` are built while the node runs it (plugin_utils/prebuild.py)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import early_connect, prebuild

MODULE = "hoptrace.k8s.route_info"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _prebuild = None

    _early = None

    def _low_level_execute_command(self, *args, **kwargs):
        # the module is built (while the connection opened); while the node runs it, build the
        # ones the next tasks need
        if self._early is not None:
            self._early.wait()
        if self._prebuild is not None:
            self._prebuild.begin()
        return super()._low_level_execute_command(*args, **kwargs)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        self._prebuild = prebuild.Prebuild(self, args.pop("prebuild", None), task_vars)
        self._early = early_connect.EarlyConnect(self._connection)
        self._early.start()
        try:
            result.update(self._execute_module(MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._prebuild.finish()
        return result
