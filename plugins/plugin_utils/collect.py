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

import hashlib
import os
import re

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
ID_MAX = 64          # the capture module's bound on an id (module_utils/_validate.py ID_RE)
IFNAME_MAX = 15      # IFNAMSIZ - 1: the longest interface name Linux allows
HASH_LEN = 10        # hex digits of sha1(host name) in a shortened or altered host part


def _safe(text):
    return _ID_UNSAFE.sub("_", str(text))


def host_part(prefix, host, interface=""):
    """The host name as it appears in the capture ids of ``prefix``.

    The name itself when it is made of ``A-Z a-z 0-9 _ . -`` and fits; otherwise (a long FQDN, an IPv6
    address, a name with other characters) its first characters, ``_`` and the first HASH_LEN hex
    digits of its sha1, so that two different names never share a host part. The room is what 64
    characters leave after ``<prefix>-`` and ``-<interface>`` for the longest interface name (15),
    so that one host's ids all carry the same host part.
    """
    host = str(host)
    room = ID_MAX - len(_safe(prefix)) - 2 - max(IFNAME_MAX, len(_safe(interface)))
    name = _safe(host)
    if name and name == host and len(name) <= room:
        return name
    if room < HASH_LEN + 2:
        raise ValueError("capture id prefix %r leaves no room for the host name %r within %d characters: "
                         "use a prefix of at most %d characters" % (prefix, host, ID_MAX, ID_MAX - 2 - IFNAME_MAX - HASH_LEN - 2))
    digest = hashlib.sha1(host.encode("utf-8")).hexdigest()[:HASH_LEN]
    return "%s_%s" % (name[:room - HASH_LEN - 1], digest)


def capture_id(prefix, host, interface):
    """The capture module id of ``interface`` on inventory host ``host`` in the run named ``prefix``.

    ``<prefix>-<host>-<interface>`` (see host_part), at most 64 characters: two inventory names for one
    machine, or two nodes sharing a capture directory, never write the same files.
    """
    return "%s-%s-%s" % (_safe(prefix), host_part(prefix, host, interface), _safe(interface))


def capture_name(capture):
    """What names one of the plan's captures in its id: ``sel-<role>`` (``sel-underlay``, ``sel-tunnel``,
    ``sel-veth``: one of each per node, as short as an interface name) for a device the node resolves
    itself (plugin_utils/deferred.py), else the interface. It does not change when the device is filled in."""
    if capture.get("select"):
        return "sel-%s" % capture["role"]
    return capture.get("interface")


def plan_capture_id(prefix, capture):
    """The id of one of the plan's captures (stable when a selected device is filled in)."""
    return capture_id(prefix, capture["node"], capture_name(capture))


def capture_args(plan, node, prefix):
    """``[{id, interface, filter}]`` of the plan's captures on ``node`` that have an interface,
    or ``{id, select, filter}`` for a device the node resolves itself (plugin_utils/deferred.py)."""
    out = []
    for c in plan.get("captures") or []:
        if c.get("node") != node or not (c.get("interface") or c.get("select")):
            continue
        arg = {"id": plan_capture_id(prefix, c), "filter": c.get("filter") or ""}
        if c.get("interface"):
            arg["interface"] = c["interface"]
        else:
            arg["select"] = c["select"]
        out.append(arg)
    return out


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
    """Return ``[{key, node, interface, file, captured, received, dropped, ended_at, counters, status, error}]``.

    ``node_results`` maps a node to ``{"routes": ..., "armed": ..., "stopped": ...}`` as the role
    registered them (missing entries are fine). ``file`` is the capture's path under
    ``run_dir/<node>/``. ``counters`` are the node's counter deltas from the stop (the capture
    module's ``counters``, one per node, on each of its captures). Keys whose value is unknown (no
    file, no counts, no error) are left out.
    """
    out = []
    written = set()  # (node, interface): a second capture on one device is written under its id
    for cap in plan.get("captures") or []:
        node, iface, key = cap.get("node"), cap.get("interface"), cap.get("key")
        res = node_results.get(node) or {}
        cid = plan_capture_id(prefix, cap) if iface or cap.get("select") else None
        entry = {"key": key, "node": node, "interface": iface, "file": None,
                 "captured": None, "received": None, "dropped": None, "ended_at": None, "counters": None, "status": "ok",
                 "error": None}
        problem = None
        checks = ((res.get("routes"), None, "reading routes", "discover"),
                  (res.get("armed"), cid, "starting the capture", "arm"),
                  (res.get("stopped"), cid, "stopping the capture", "collect"))
        for register, item, what, step in checks:
            problem = problem or _problem(register, item, what, step)
        if not iface:
            problem = problem or ("unreachable", "the hop's interface is unknown: %s could not be read" % node)
        stopped = _entry(res.get("stopped"), cid) or {}
        for count in ("captured", "received", "dropped", "ended_at"):
            entry[count] = stopped.get(count)
        entry["counters"] = (res.get("stopped") or {}).get("counters") or None
        path = None
        if iface:
            path = os.path.join(run_dir, str(node), "%s.pcap" % (cid if (node, iface) in written else iface))
            written.add((node, iface))
        if path and os.path.isfile(path):
            entry["file"] = path
        elif not problem:
            problem = ("failed", "no capture file was brought back from %s for %s" % (node, iface))
        if problem:
            entry["status"], entry["error"] = problem
        out.append({name: value for name, value in entry.items() if value is not None})
    return out
