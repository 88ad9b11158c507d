# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: one node's captures of a trace plan, as the capture module takes them."""

from __future__ import annotations

DOCUMENTATION = r"""
name: capture_args
author: hoptrace developers
version_added: 0.1.0
short_description: One node's captures of a trace plan, for M(hoptrace.k8s.capture)
description:
  - Returns the C(captures) list for M(hoptrace.k8s.capture) on one node, C([{id, interface, filter}]),
    so that one module run arms (and one stops) every capture of the node.
  - The id is C(<prefix>-<node>-<interface>) with characters other than C(A-Z a-z 0-9 _ . -) replaced by C(_),
    so that two inventory names for one machine, or two nodes sharing a capture directory, never write the same
    files; captures whose interface is unknown (a node that could not be read) are left out.
  - Ids stay within the module's 64 characters for any host name. A node name that does not fit (with the
    prefix and the longest interface name, 15 characters) or that has other characters (an IPv6 address, say)
    is shortened to its first characters, C(_) and 10 hex digits of its sha1, so that two different names never
    get the same part; C(ip-10-240-128-12.eu-west-1.compute.internal) gives C(ht-20261126T120422Z-ba8336-ip-10-240-_6a31da29f1-eth0).
options:
  _input:
    description: The trace plan (from P(hoptrace.k8s.trace_plan#filter)).
    type: dict
    required: true
  node:
    description: Inventory hostname of the node.
    type: str
    required: true
  prefix:
    description:
      - Prefix that makes the ids unique to one run, for example C(ht-20261126T120422Z-ba8336).
      - Up to 35 characters always leave room for the node and the interface (a longer one fails for long node names).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Arm every capture of this node
  hoptrace.k8s.capture:
    state: started
    captures: "{{ trace_plan | hoptrace.k8s.capture_args(inventory_hostname, 'ht-run1') }}"
    deadline: 60
"""

RETURN = r"""
_value:
  description: C([{id, interface, filter}]), in the plan's order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_args


def _capture_args(plan, node, prefix):
    if not isinstance(plan, dict):
        raise AnsibleFilterError("capture_args expects the trace plan (a dictionary) as input")
    try:
        return capture_args(plan, node, prefix)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """hoptrace.k8s.capture_args"""

    def filters(self):
        return {"capture_args": _capture_args}
