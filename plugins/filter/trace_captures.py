# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: gather the role's per-node capture results for the analysis."""

from __future__ import annotations

DOCUMENTATION = r"""
name: trace_captures
author: hoptrace developers
version_added: 0.1.0
short_description: Gather each hop's capture result for M(hoptrace.k8s.trace_analyze)
description:
  - Used by the C(hoptrace.k8s.trace) role between collecting and analysing.
  - For every capture of the plan, looks up what the node registered (C(trace_routes),
    C(trace_armed), C(trace_stopped)) and the fetched file under the run folder, and returns
    one entry per capture with its status (C(ok), C(unreachable), C(failed)) and why.
options:
  _input:
    description: The trace plan (from P(hoptrace.k8s.trace_plan#filter)).
    type: dict
    required: true
  hostvars:
    description: C(hostvars), where each node's registered results are found.
    type: raw
    required: true
  run_dir:
    description: The run folder the captures were brought into (C(<run_dir>/<node>/<interface>.pcap)).
    type: path
    required: true
  prefix:
    description: The run's capture id prefix, as given to P(hoptrace.k8s.capture_args#filter).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Analyse
  hoptrace.k8s.trace_analyze:
    plan: "{{ trace_plan }}"
    captures: "{{ trace_plan | hoptrace.k8s.trace_captures(hostvars, trace_run_dir, trace_capture_prefix) }}"
    output_dir: "{{ trace_run_dir }}"
"""

RETURN = r"""
_value:
  description: One entry per capture with C(key), C(node), C(interface), C(file), C(captured), C(received), C(dropped), C(status), C(error).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_list

_REGISTERS = {"routes": "trace_routes", "armed": "trace_armed", "stopped": "trace_stopped"}


def _trace_captures(plan, hostvars, run_dir, prefix):
    if not isinstance(plan, dict):
        raise AnsibleFilterError("trace_captures expects the trace plan (a dictionary) as input")
    node_results = {}
    for node in {c.get("node") for c in plan.get("captures") or []}:
        try:
            host = hostvars[node]
        except KeyError:
            continue
        node_results[node] = {name: host.get(var) for name, var in _REGISTERS.items()}
    try:
        return capture_list(plan, node_results, run_dir, prefix)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """hoptrace.k8s.trace_captures"""

    def filters(self):
        return {"trace_captures": _trace_captures}
