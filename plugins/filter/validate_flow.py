# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: validate and normalise the flow to trace."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_flow

DOCUMENTATION = r"""
name: validate_flow
author: hoptrace developers
version_added: 0.1.0
short_description: Validate the flow a trace follows (src, dst, proto, port)
description:
  - Checks that C(src) and C(dst) are IP addresses of one family and differ, that C(proto) is
    one of C(tcp), C(udp), C(icmp), and that C(port) is 1-65535 (not used for icmp).
  - Returns the flow normalised; refuses bad values with a message that says what to fix,
    before anything runs on a node.
options:
  _input:
    description: A dictionary with C(src), C(dst), C(proto) and C(port).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Normalise the flow
  ansible.builtin.set_fact:
    flow: "{{ {'src': '172.17.25.79', 'dst': '172.17.25.239', 'proto': 'TCP', 'port': '443'} | hoptrace.k8s.validate_flow }}"
  # => {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}
"""

RETURN = r"""
_value:
  description: The flow with C(src), C(dst) (canonical text), C(proto) (lower case) and C(port) (int, or null for icmp).
  type: dict
"""


def _validate_flow(flow):
    if not isinstance(flow, dict):
        raise AnsibleFilterError("validate_flow expects a dictionary with src, dst, proto and port")
    try:
        return validate_flow(flow.get("src"), flow.get("dst"), flow.get("proto", "tcp"), flow.get("port"))
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """hoptrace.k8s.validate_flow"""

    def filters(self):
        return {"validate_flow": _validate_flow}
