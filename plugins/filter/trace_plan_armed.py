# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: the trace plan with the devices the path nodes resolved when arming."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import plan_capture_id
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.deferred import complete_plan

DOCUMENTATION = r"""
name: trace_plan_armed
author: hoptrace developers
version_added: 0.2.0
short_description: Put the devices the path nodes resolved when arming into the trace plan
description:
  - Used by the C(hoptrace.k8s.trace) role right after the captures start.
  - A plan made with P(hoptrace.k8s.trace_plan#filter)'s C(deferred) option has captures with a
    C(select) instead of an interface on the node that was not read before planning;
    M(hoptrace.k8s.capture) resolves them on that node and returns the device in its result.
    This filter puts those devices into the plan's captures and hops, so that collecting and
    analysing read an ordinary plan.
  - A capture that did not start keeps no interface; its hops are reported unknown with the
    start's error. Two selections that end on one device keep separate captures and add a
    warning (the node's routes are not the mirror of the entry node's).
options:
  _input:
    description: The trace plan.
    type: dict
    required: true
  armed:
    description: Dict C({inventory_hostname - the capture module's start result}) (the role's C(trace_armed)).
    type: dict
    required: true
  prefix:
    description: The run's capture id prefix the start used (the role's C(trace_capture_prefix)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Put the resolved devices into the plan
  ansible.builtin.set_fact:
    trace_plan: >-
      {{ trace_plan | hoptrace.k8s.trace_plan_armed({'node-b': trace_armed_b}, 'ht-20261203T114157Z-2655b6') }}
  run_once: true
"""

RETURN = r"""
_value:
  description: The plan (same shape), with C(interface), C(key) and C(link_type) set on the captures that started.
  type: dict
"""


def _trace_plan_armed(plan, armed, prefix):
    if not isinstance(plan, dict) or not isinstance(armed, dict) or not isinstance(prefix, str):
        raise AnsibleFilterError("trace_plan_armed expects the plan (a dict), armed (a dict of start results per node) and the prefix")
    return complete_plan(plan, armed, lambda cap: plan_capture_id(prefix, cap))


class FilterModule(object):
    """hoptrace.k8s.trace_plan_armed"""

    def filters(self):
        return {"trace_plan_armed": _trace_plan_armed}
