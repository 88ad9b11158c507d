# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.route_info: the module on the node. The connection opens while the
module is built (plugin_utils/early_connect.py), and the payloads of the modules named in
``prebuild`` are built while the node runs it (plugin_utils/prebuild.py)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.overlap import OverlapMixin

MODULE = "hoptrace.k8s.route_info"


class ActionModule(OverlapMixin, ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self._execute_overlapped(MODULE, dict(self._task.args), task_vars, connect_early=True))
        return result
