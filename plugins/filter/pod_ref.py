# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: classify a src/dst value as a pod IP or namespace/pod."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podref import pod_ref

DOCUMENTATION = r"""
name: pod_ref
author: hoptrace developers
version_added: 0.1.0
short_description: Parse a trace endpoint given as a pod IP or C(namespace/pod)
description:
  - Returns a dictionary with either C(ip) set (a pod IP, canonical text) or C(namespace) and C(name)
    set (a pod name that still has to be resolved with cluster access).
  - Refuses anything else with a message that says what to give instead, so bad input never
    reaches a node.
options:
  _input:
    description: The endpoint, for example C(172.17.25.79) or C(openshift-ingress/router-a).
    type: str
    required: true
  what:
    description: What the value is, used in error messages (C(src), C(dst)).
    type: str
    default: src
"""

EXAMPLES = r"""
- name: An IP stays an IP
  ansible.builtin.debug:
    msg: "{{ '172.17.25.79' | hoptrace.k8s.pod_ref }}"
  # => {"ip": "172.17.25.79", "namespace": null, "name": null}

- name: A name is split for resolution
  ansible.builtin.debug:
    msg: "{{ 'openshift-ingress/router-a' | hoptrace.k8s.pod_ref(what='dst') }}"
  # => {"ip": null, "namespace": "openshift-ingress", "name": "router-a"}
"""

RETURN = r"""
_value:
  description: C(ip), C(namespace) and C(name); exactly one of C(ip) or the two names is set.
  type: dict
"""

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError


def _pod_ref(value, what="src"):
    try:
        return pod_ref(value, what)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """hoptrace.k8s.pod_ref"""

    def filters(self):
        return {"pod_ref": _pod_ref}
