# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Captures whose device the node resolves itself, and the plan completed from their start.

Path-only discovery reads the entry node only. When the entry node holds one of the pods, the
other path node is not read before its captures start: the planner gives its captures a
``select`` (``{"route_to": IP}``, plus ``"local": true`` for the pod's veth) instead of an
interface, the capture module resolves it on the node (module_utils/_select.py) and returns
the device in its start result (ids: ``collect.capture_name``). :func:`complete_plan` then puts those devices into the plan's
hops and captures, so that everything after the start reads an ordinary plan. This saves the
separate read of that node: one round trip per trace.
"""

from __future__ import annotations

import copy

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import _entry


def _started(register, cid):
    """The start result of capture ``cid`` when it started (and so names its device), else None."""
    result = _entry(register, cid)
    return result if result and not result.get("failed") and result.get("interface") else None


def complete_plan(plan, armed, capture_id):
    """The plan with the device each selected capture was started on.

    :arg armed: ``{node: the capture module's start result}`` (the role's ``trace_armed``).
    :arg capture_id: ``f(capture) -> id`` as the start used it.
    A capture that did not start keeps ``interface: None`` (its hops are reported unknown, with
    the start's error). Two selections that end on one device are a routing surprise (e.g. a
    node that answers without the tunnel): the second keeps its own key and gets a warning.
    """
    plan = copy.deepcopy(plan)
    keys = {c["key"] for c in plan.get("captures") or []}
    resolved = {}  # old key -> (new key, interface)
    for cap in plan.get("captures") or []:
        if not cap.get("select") or cap.get("interface"):
            continue
        result = _started((armed or {}).get(cap["node"]), capture_id(cap))
        if result is None:
            continue
        interface = result["interface"]
        cap["interface"] = interface
        cap["link_type"] = result.get("link_type") or cap.get("link_type")
        if result.get("select_note"):  # a pod's veth not found behind its bridge: captured on the bridge
            plan.setdefault("warnings", []).append(result["select_note"])
        key = "%s/%s" % (cap["node"], interface)
        if key in keys:
            plan.setdefault("warnings", []).append(
                "%s routes %s over %s, a device already captured for another hop: its routes are not "
                "the mirror of the entry node's (asymmetric routing?)" % (cap["node"], cap["select"]["route_to"], interface)
            )
            key = cap["key"]
        keys.discard(cap["key"])
        keys.add(key)
        resolved[cap["key"]] = (key, interface)
        cap["key"] = key
    # a Service with several endpoints keeps each candidate backend's hops too (plugin_utils/services.py)
    hops = list(plan.get("hops") or []) + [h for c in plan.get("candidates") or [] for h in c.get("hops") or []]
    for hop in hops:
        if hop.get("capture") in resolved:
            hop["capture"], hop["interface"] = resolved[hop["capture"]]
    return plan
