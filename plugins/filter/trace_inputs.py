# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: check every input of a trace on the controller, in one step."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.inputs import check_inputs

DOCUMENTATION = r"""
name: trace_inputs
author: hoptrace developers
version_added: 0.1.0
short_description: Check every input of a trace before anything runs on a node
description:
  - Checks the whole numbers (C(deadline) 5-3600, C(duration) 1-3600, C(snaplen) 64-262144,
    C(probe_timeout) 1-300, C(entry_tries) 1-20, C(count) 1-1000), the numbers that may have a
    fraction (C(interval) 0-60 seconds, C(max_loss) 0-100 percent), that C(count) x C(interval) +
    C(probe_timeout) fits in C(deadline) in probe mode, C(mode), C(src) and C(dst) (a pod IP or
    C(namespace/pod); dst also a Service as C(svc/namespace/service), with proto tcp or udp and C(port) a number,
    a port name or empty), the flow when both are IPs (see P(hoptrace.k8s.validate_flow#filter)),
    the group of the cluster's nodes (see P(hoptrace.k8s.node_group#filter)), the entry
    node C(via), the yes/no settings C(keep_captures) and C(snapshot) (true/false, yes/no, on/off, 1/0) and C(probe_size)
    (C(small), or C(max) with C(proto) icmp or udp and C(count) 1).
  - Checks C(node_access) (C(ssh), C(kubectl) or C(oc)) and the cluster access settings C(cli), C(kubeconfig)
    and C(context); with C(kubectl) or C(oc) no inventory group is needed (the cluster is the nodes hosting
    the pods, from the Kubernetes API) and both endpoints are looked up there.
  - Refuses the first bad value with a message that says what to fix.
options:
  _input:
    description:
      - The settings, a dictionary with C(src), C(dst), C(proto), C(port), C(mode), C(deadline),
        C(duration), C(snaplen), C(probe_timeout), C(entry_tries), C(nodes) and C(via); C(count),
        C(interval), C(max_loss), C(keep_captures), C(snapshot) and C(probe_size) when given (else 1, 0.2, 0,
        false, true and small).
    type: dict
    required: true
  groups:
    description: The inventory's groups (the C(groups) variable).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the inputs
  ansible.builtin.set_fact:
    checked: >-
      {{ {'src': '172.17.25.79', 'dst': 'default/web-0', 'proto': 'tcp', 'port': 443, 'mode': 'probe',
          'deadline': 60, 'duration': 10, 'snaplen': 192, 'probe_timeout': 3, 'entry_tries': 3,
          'nodes': '', 'via': ''} | hoptrace.k8s.trace_inputs(groups=groups) }}
  # => unresolved: [{what: dst, ref: {ip: null, namespace: default, name: web-0}}], flow: null,
  #    cluster: {name: nodes, hosts: [...], how: ...}, step_timeout: 15, ...
"""

RETURN = r"""
_value:
  description:
    - C(numbers) (the numbers as integers, C(interval) and C(max_loss) as floats), C(flags)
      (C(keep_captures) and C(snapshot) as bools), C(src_ref) and C(dst_ref) (C(ip), C(namespace), C(name)),
      C(unresolved) (the C({what, ref}) that need the Kubernetes API), C(flow) (the validated flow, or
      null while a name is unresolved), C(cluster) (C(name), C(hosts), C(how)) and C(step_timeout)
      (seconds each remote step may take, C(deadline)/4 within 5-30).
    - C(service) is dst given as C(svc/namespace/service) (C(namespace), C(name), C(text), and C(port), the number or
      port name given, empty for the Service's only port), else null; C(port) the port to trace otherwise (443
      when left out); C(names) whether the run reads the Kubernetes API (names given, or node_access kubectl/oc).
  type: dict
"""


def _trace_inputs(settings, groups=None):
    if not isinstance(settings, dict) or not isinstance(groups, dict):
        raise AnsibleFilterError("trace_inputs expects the settings (a dictionary) and groups=groups")
    try:
        return check_inputs(settings, groups)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    """hoptrace.k8s.trace_inputs"""

    def filters(self):
        return {"trace_inputs": _trace_inputs}
