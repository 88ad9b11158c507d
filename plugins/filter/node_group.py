# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: the inventory group of the cluster's nodes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import PathError, node_group

DOCUMENTATION = r"""
name: node_group
author: hoptrace developers
version_added: 0.1.0
short_description: Choose the inventory group of the cluster's nodes
description:
  - With a group named, that group; else the first of C(nodes), kubespray's C(k8s_cluster), and
    kubespray's C(kube_node) plus C(kube_control_plane) that has hosts.
  - Fails when that group has no host, naming the groups with hosts this inventory has, so that a
    trace never "succeeds" on an empty group.
options:
  _input:
    description: Ansible's C(groups).
    type: dict
    required: true
  requested:
    description: The group the user named (C(-e nodes=GROUP)); empty for the defaults.
    type: str
"""

EXAMPLES = r"""
- name: The cluster's nodes
  ansible.builtin.set_fact:
    cluster: "{{ groups | hoptrace.k8s.node_group(nodes | default('')) }}"
  # => {"name": "k8s_cluster", "hosts": ["node1", "node2"], "how": "kubespray's group"}
"""

RETURN = r"""
_value:
  description: C(name) (the group, or C(kube_node + kube_control_plane)), C(hosts) and C(how) (how it was chosen).
  type: dict
"""


def _node_group(groups, requested=None):
    try:
        return node_group(groups, requested)
    except PathError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    """hoptrace.k8s.node_group"""

    def filters(self):
        return {"node_group": _node_group}
