# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's glue between the plan and the capture module, on the controller.

``capture_args`` names each of a node's captures for the capture module (one run per node
arms, and one stops, all of them). ``capture_list`` turns what the role registered on each
node — ``trace_routes`` (route_info), ``trace_armed`` and ``trace_stopped`` (capture,
results in a ``captures`` list) — into the analysis' list of captures. A capture whose node was
unreachable, or whose start or stop failed, gets ``status`` unreachable or failed and the reason,
so that its hops are reported unknown instead of lost.
"""

from __future__ import annotations

import os
import re

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def capture_id(prefix, interface):
    """The capture module id of ``interface`` in the run named ``prefix`` (also its file name)."""
    return "%s-%s" % (prefix, _ID_UNSAFE.sub("_", interface))


def capture_args(plan, node, prefix):
    """``[{id, interface, filter}]`` of the plan's captures on ``node`` that have an interface."""
    return [{"id": capture_id(prefix, c["interface"]), "interface": c["interface"], "filter": c.get("filter") or ""}
            for c in plan.get("captures") or [] if c.get("node") == node and c.get("interface")]


def _entry(register, cid):
    """The per-capture result for ``cid`` in a capture module result, or None."""
    for result in (register or {}).get("captures") or []:
        if result.get("id") == cid:
            return result
    return None


def _problem(register, cid, what, step):
    """``(status, error)`` when ``register`` shows the node or this capture failed, else None.

    ``cid`` picks the capture's own result in a several-capture run; None looks at the task result.
    """
    if not register:
        return None
    result = register
    if cid is not None and not register.get("unreachable"):
        result = _entry(register, cid) or register
    timedout = result.get("timedout")
    if timedout:
        period = timedout.get("period") if isinstance(timedout, dict) else None
        return "timed out", "timed out in %s (no answer in %s s)" % (step, period or "?")
    if result.get("unreachable"):
        return "unreachable", "node unreachable while %s: %s" % (what, str(result.get("msg", "")).strip())
    if result.get("failed"):
        return "failed", "%s failed: %s" % (what, result.get("msg", ""))
    return None


def capture_list(plan, node_results, run_dir, prefix):
    """Return ``[{key, node, interface, file, captured, received, dropped, status, error}]``.

    ``node_results`` maps a node to ``{"routes": ..., "armed": ..., "stopped": ...}`` as the role
    registered them (missing entries are fine). ``file`` is the capture's path under
    ``run_dir/<node>/``. Keys whose value is unknown (no file, no counts, no error) are left out.
    """
    out = []
    for cap in plan.get("captures") or []:
        node, iface, key = cap.get("node"), cap.get("interface"), cap.get("key")
        res = node_results.get(node) or {}
        cid = capture_id(prefix, iface) if iface else None
        entry = {"key": key, "node": node, "interface": iface, "file": None,
                 "captured": None, "received": None, "dropped": None, "status": "ok", "error": None}
        problem = None
        checks = ((res.get("routes"), None, "reading routes", "discover"),
                  (res.get("armed"), cid, "starting the capture", "arm"),
                  (res.get("stopped"), cid, "stopping the capture", "collect"))
        for register, item, what, step in checks:
            problem = problem or _problem(register, item, what, step)
        if not iface:
            problem = problem or ("unreachable", "the hop's interface is unknown: %s could not be read" % node)
        stopped = _entry(res.get("stopped"), cid) or {}
        for count in ("captured", "received", "dropped"):
            entry[count] = stopped.get(count)
        path = os.path.join(run_dir, str(node), "%s.pcap" % iface) if iface else None
        if path and os.path.isfile(path):
            entry["file"] = path
        elif not problem:
            problem = ("failed", "no capture file was brought back from %s for %s" % (node, iface))
        if problem:
            entry["status"], entry["error"] = problem
        out.append({name: value for name, value in entry.items() if value is not None})
    return out
