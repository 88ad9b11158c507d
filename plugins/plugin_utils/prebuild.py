# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the payloads of modules that later tasks will run, while a task waits for a node.

The first time a run uses a module, Ansible builds its payload on the controller (the module
and every ``module_utils`` file it imports, scanned and zipped: about 0.2 s of CPU for each of
ours) before it even connects, and keeps the build in the run's local temporary directory for
every later task. The trace's first remote step, reading the entry node's routes, spends most of
its time waiting for ssh and the node; :class:`Prebuild` builds the module of the next step in a
thread meanwhile (the capture while the routes are read, the probe while the source node arms),
so that arming and probing find it ready.

Best effort only: whatever fails here is left to the task that needs the module, which builds it
as it always does. The payload in the cache holds neither the interpreter nor the arguments
(both are added per task), so building it here with a placeholder interpreter gives the same
entry the later task looks up, and no interpreter discovery runs from this thread.
"""

from __future__ import annotations

import threading

from ansible import constants as C
from ansible.template import Templar
from ansible.utils.display import Display

display = Display()

# only the cache entry is kept; the interpreter is set per task after the cache lookup
_PLACEHOLDER_INTERPRETER = "/usr/bin/python3"


def _build(loader, templar, names, task_vars, collections):
    try:
        from ansible.executor.module_common import modify_module
    except ImportError as exc:                          # another ansible-core layout: nothing to gain
        display.debug("hoptrace prebuild: %s" % exc)
        return
    variables = dict(task_vars, ansible_python_interpreter=_PLACEHOLDER_INTERPRETER)
    compression = C.config.get_config_value("DEFAULT_MODULE_COMPRESSION", variables=task_vars)
    for name in names:
        try:
            found = loader.find_plugin_with_context(name, collection_list=collections)
            if not found.resolved:
                continue
            modify_module(module_name=name, module_path=found.plugin_resolved_path, module_args={},
                          templar=templar, task_vars=variables, module_compression=compression)
        except Exception as exc:  # noqa: BLE001 - best effort: the task that needs it builds it
            display.debug("hoptrace prebuild of %s: %s" % (name, exc))


class Prebuild(object):
    """The builds of ``names`` (module FQCNs) for one action, started by :meth:`begin`.

    The action calls :meth:`begin` once its own module is built and goes to the node (its
    ``_low_level_execute_command``), so that the builds share the controller with the wait for
    the node and not with the action's own build; :meth:`finish` before it returns.
    """

    def __init__(self, action, names, task_vars):
        self.names = [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []
        self.action, self.task_vars, self.thread = action, dict(task_vars or {}), None

    def begin(self):
        if self.thread is not None or not self.names:
            return
        action = self.action
        # a templar of its own: the task's is in use by the task meanwhile
        templar = Templar(loader=action._loader, variables=self.task_vars)
        self.thread = threading.Thread(
            target=_build, name="hoptrace-prebuild", daemon=True,
            args=(action._shared_loader_obj.module_loader, templar, self.names, self.task_vars, action._task.collections))
        self.thread.start()

    def finish(self, seconds=5.0):
        """Wait (at most ``seconds``) for the builds, so the worker does not exit in the middle of one."""
        if self.thread is not None:
            self.thread.join(seconds)
