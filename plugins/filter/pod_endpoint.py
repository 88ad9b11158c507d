# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: a trace endpoint (IP and node) from the Kubernetes API's answer about its pod."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import lookup_argv, pod_endpoint
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

DOCUMENTATION = r"""
name: pod_endpoint
author: hoptrace developers
version_added: 0.2.0
short_description: The IP and node of a trace endpoint's pod, from the Kubernetes API
description:
  - Takes the API's answer about the pod of C(src) or C(dst) - the JSON text or object of
    C(kubectl get pod NAME -o json), or a list of pods (C(kubectl get pods -A --field-selector=status.podIP=IP -o json),
    or the C(resources) of P(kubernetes.core.k8s_info#module)) - and returns its IP, its node and the node's IP.
  - Refuses, saying what to do instead, a pod that is missing, not running, not scheduled, without an IP
    yet, or on the host's network (C(hostNetwork), no interface of its own to trace), and an IP several pods have.
  - With O(argv=true) returns instead the kubectl/oc command line that reads that pod.
options:
  _input:
    description: The API's answer (JSON text, a pod, a list of pods or a dict with C(items)); with O(argv), ignored.
    type: raw
    required: true
  what:
    description: C(src) or C(dst), for the messages.
    type: str
    required: true
  ref:
    description: The endpoint as P(hoptrace.k8s.pod_ref#filter) parsed it (C(ip), C(namespace), C(name)).
    type: dict
    required: true
  access:
    description: C(cli), C(kubeconfig) and C(context) (the C(access) that P(hoptrace.k8s.trace_inputs#filter) returns); with O(argv).
    type: dict
  argv:
    description: Return the command line that reads the pod instead.
    type: bool
    default: false
  request_timeout:
    description:
      - With O(argv), seconds each API request of that command line may take (C(--request-timeout)); 0 leaves kubectl's own.
      - The trace role bounds with it the lookups that only name a Service's backend pod.
    type: int
    default: 0
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Read the pod of dst
  ansible.builtin.command:
    argv: "{{ '' | hoptrace.k8s.pod_endpoint('dst', ref, access={'cli': 'kubectl'}, argv=true) }}"
  register: answer
  # argv: [kubectl, get, pod, web-0, --namespace=default, --output=json]

- name: Its IP and node
  ansible.builtin.debug:
    msg: "{{ answer.stdout | hoptrace.k8s.pod_endpoint('dst', ref) }}"
  # => {ip: 172.17.25.239, node: node-b, host_ip: 10.240.0.9, namespace: default, name: web-0}
"""

RETURN = r"""
_value:
  description:
    - C(ip) (the pod IP), C(node) (its C(spec.nodeName)), C(host_ip) (the node's IP, C(status.hostIP)),
      C(namespace) and C(name); or, with O(argv), the command line as a list.
  type: raw
"""


def _pod_endpoint(answer, what, ref, access=None, argv=False, request_timeout=0):
    if argv:
        return lookup_argv(ref, access or {"cli": "kubectl"}, request_timeout)
    if isinstance(answer, (str, bytes)):
        try:
            answer = json.loads(answer)
        except ValueError:
            raise AnsibleFilterError("%s: the Kubernetes API's answer is not JSON: %.200s" % (what, answer)) from None
    try:
        return pod_endpoint(answer, what, ref)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    """hoptrace.k8s.pod_endpoint"""

    def filters(self):
        return {"pod_endpoint": _pod_endpoint}
