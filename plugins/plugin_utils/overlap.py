# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin mix-in: run a module while the controller does the next task's work.

:meth:`OverlapMixin._execute_overlapped` runs the module as ``_execute_module`` does, with the
``prebuild`` modules of its arguments built while the node runs it (:mod:`.prebuild`) and, with
``connect_early``, the connection opened while the module itself is built (:mod:`.early_connect`),
and with ``meanwhile``, a function of the action's own run in a thread while the node answers (its
return value in :attr:`OverlapMixin._meanwhile_result`). All hook into
``_low_level_execute_command``, the point where the module has been built and goes to the node.
"""

from __future__ import annotations

import threading

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.early_connect import EarlyConnect
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.prebuild import Prebuild


class OverlapMixin(object):
    """Put before ``ActionBase`` in an action plugin's bases."""

    _prebuild = None
    _early = None
    _meanwhile = None
    _meanwhile_thread = None
    _meanwhile_result = None

    def _low_level_execute_command(self, *args, **kwargs):
        if self._early is not None:
            self._early.wait()              # the connection object is used by one thread at a time
        if self._prebuild is not None:
            self._prebuild.begin()
        if self._meanwhile is not None and self._meanwhile_thread is None:
            self._meanwhile_thread = threading.Thread(target=self._run_meanwhile, name="hoptrace-meanwhile", daemon=True)
            self._meanwhile_thread.start()
        return super()._low_level_execute_command(*args, **kwargs)

    def _run_meanwhile(self):
        try:
            self._meanwhile_result = self._meanwhile()
        except Exception:  # noqa: BLE001 - best effort: the caller does the work itself on None
            self._meanwhile_result = None

    def _execute_overlapped(self, module, args, task_vars, connect_early=False, meanwhile=None):
        """``_execute_module(module, args)``; ``args['prebuild']`` (removed from them) is built meanwhile.

        ``meanwhile()`` runs in a thread while the node answers; after this returns its value is in
        ``self._meanwhile_result`` (None if it failed or never started)."""
        self._prebuild = Prebuild(self, args.pop("prebuild", None), task_vars)
        self._meanwhile, self._meanwhile_thread, self._meanwhile_result = meanwhile, None, None
        if connect_early:
            self._early = EarlyConnect(self._connection)
            self._early.start()
        try:
            return self._execute_module(module, module_args=args, task_vars=task_vars)
        finally:
            self._prebuild.finish()
            if self._meanwhile_thread is not None:
                self._meanwhile_thread.join()
