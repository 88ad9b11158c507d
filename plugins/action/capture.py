# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.capture: the module on the node, plus ``dest`` on the controller.

With ``state=stopped`` and ``dest``, the captures come back inside the stop's own result
(``content``, up to ``content_max_size``) and are written into ``dest`` here; a larger file is
read with ``ansible.builtin.slurp`` (which works with become). With ``remove_returned`` the node
removes what it returned in the same run, and the slurped ones are removed after. One round trip
per node instead of one per capture and file.
"""

from __future__ import annotations

import base64
import os

from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.overlap import OverlapMixin

MODULE = "hoptrace.k8s.capture"
INLINE_DEFAULT = 8 * 1024 * 1024


def _write(folder, name, data):
    """Write ``data`` as ``folder/name.pcap`` atomically; returns the path."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError("refusing to write a capture named %r" % (name,))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "%s.pcap" % name)
    part = os.path.join(folder, ".%s.pcap.part" % name)
    with open(part, "wb") as handle:
        handle.write(data)
    os.replace(part, path)
    return path


class ActionModule(OverlapMixin, ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        dest = args.pop("dest", None)
        collect = bool(dest) and args.get("state") == "stopped" and not self._task.check_mode
        if collect and not args.get("content_max_size"):
            args["content_max_size"] = INLINE_DEFAULT
        # the modules named in prebuild are built on the controller while the node runs this one
        result.update(self._execute_overlapped(MODULE, args, task_vars))
        if not collect:
            return result
        folder = os.path.expanduser(dest)
        entries = result.get("captures") if "captures" in result else [result]
        leftovers = []
        written = set()  # a second capture on one device (two route selections that met) keeps its id
        for entry in entries:
            name = entry.get("interface") or entry.get("id")
            name = entry.get("id") if name in written else name
            written.add(name)
            if entry.get("failed") or not entry.get("size"):
                continue
            try:
                content = entry.pop("content", None)
                if content is None:
                    slurped = self._execute_module("ansible.builtin.slurp", module_args={"src": entry["file"]},
                                                   task_vars=task_vars)
                    if slurped.get("failed"):
                        raise OSError(slurped.get("msg"))
                    content = slurped["content"]
                    leftovers.append(entry["id"])
                entry["dest"] = _write(folder, name, base64.b64decode(content))
            except (OSError, ValueError, KeyError) as exc:
                entry.update(failed=True, msg="could not bring %s into %s: %s" % (entry.get("file"), folder, exc))
        if leftovers and args.get("remove_returned"):
            absent = {"state": "absent", "captures": [{"id": i} for i in leftovers]}
            if args.get("directory"):
                absent["directory"] = args["directory"]
            removed = self._execute_module(MODULE, module_args=absent, task_vars=task_vars)
            if removed.get("failed"):
                result.setdefault("warnings", []).append("could not remove %s: %s" % (", ".join(leftovers), removed.get("msg")))
        failed = [e for e in entries if e.get("failed")]
        if failed and not result.get("failed"):
            result.update(failed=True, msg="; ".join("%s: %s" % (e.get("id"), e.get("msg")) for e in failed))
        return result
