# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn what the role registered on each node into the analysis' list of captures.

Per node the role registers ``hoptrace_routes`` (route_info), ``hoptrace_armed`` (capture
started, a loop) and ``hoptrace_stopped`` (capture stopped, a loop). A capture whose node was
unreachable, or whose start or stop failed, becomes a capture with ``status`` unreachable or
failed and the reason, so that its hops are reported unknown instead of lost.
"""

from __future__ import annotations

import os


def _loop_result(register, key):
    """The loop item result of ``register`` for capture ``key``, or None."""
    for result in (register or {}).get("results") or []:
        item = result.get("item") or {}
        if item.get("key") == key:
            return result
    return None


def _problem(register, key, what):
    """``(status, error)`` when ``register`` shows the node or this capture failed, else None.

    ``key`` picks the loop item of a looped task; None looks at the task result itself.
    """
    if not register:
        return None
    result = register
    if key is not None and not register.get("unreachable"):
        result = _loop_result(register, key) or register
    if result.get("unreachable"):
        return "unreachable", "node unreachable while %s: %s" % (what, str(result.get("msg", "")).strip())
    if result.get("failed"):
        return "failed", "%s failed: %s" % (what, result.get("msg", ""))
    return None


def capture_list(plan, node_results, run_dir):
    """Return ``[{key, node, interface, file, captured, received, dropped, status, error}]``.

    Keys whose value is unknown (no file, no counts, no error) are left out.

    ``node_results`` maps a node to ``{"routes": ..., "armed": ..., "stopped": ...}`` as the role
    registered them (missing entries are fine). ``file`` is the fetched path under ``run_dir``,
    or None when there is none.
    """
    out = []
    for cap in plan.get("captures") or []:
        node, iface, key = cap.get("node"), cap.get("interface"), cap.get("key")
        res = node_results.get(node) or {}
        entry = {"key": key, "node": node, "interface": iface, "file": None,
                 "captured": None, "received": None, "dropped": None, "status": "ok", "error": None}
        problem = None
        checks = ((res.get("routes"), None, "reading routes"), (res.get("armed"), key, "starting the capture"),
                  (res.get("stopped"), key, "stopping the capture"))
        for register, item_key, what in checks:
            problem = problem or _problem(register, item_key, what)
        if not iface:
            problem = problem or ("unreachable", "the hop's interface is unknown: %s could not be read" % node)
        stopped = _loop_result(res.get("stopped"), key) or {}
        for count in ("captured", "received", "dropped"):
            entry[count] = stopped.get(count)
        path = os.path.join(run_dir, str(node), "%s.pcap" % iface) if iface else None
        if path and os.path.isfile(path):
            entry["file"] = path
        elif not problem:
            problem = ("failed", "no capture file was fetched from %s for %s" % (node, iface))
        if problem:
            entry["status"], entry["error"] = problem
        out.append({name: value for name, value in entry.items() if value is not None})
    return out
