# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: the ready pods of a Service and their nodes, from the Kubernetes API's answer."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_pods import lookup_argv, selector_text, service_pods
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

DOCUMENTATION = r"""
name: service_pods
author: hoptrace developers
version_added: 0.2.0
short_description: The ready pods of a Service and the nodes hosting them, from the Kubernetes API
description:
  - Used by the trace role when the nodes are reached without an inventory (C(node_access) V(kubectl) or V(oc))
    and C(dst) is a Service given as C(svc/namespace/name) - the nodes to reach are then those hosting
    the Service's pods, besides the source pod's node.
  - Takes the API's answer about the pods of the Service's selector - the JSON text or object of
    C(kubectl get pods --namespace=NS --selector=SELECTOR -o json), or the C(resources) of
    P(kubernetes.core.k8s_info#module) - and keeps the ready ones (running, with an IP and a node, not
    terminating, condition C(Ready) true), the endpoints kube-proxy writes.
  - No ready pod is not an error (the trace then shows kube-proxy's REJECT). Refuses, saying what to do
    instead, a Service without a pod selector and one with more than 4 ready pods.
  - With O(argv=true) returns instead the kubectl/oc command line that lists those pods; with O(selector=true), the
    label selector (C(key=value,...)) that picks them, for P(kubernetes.core.k8s_info#module)'s C(label_selectors).
options:
  _input:
    description: The API's answer (JSON text, a list of pods or a dict with C(items)); with O(argv), ignored.
    type: raw
    required: true
  target:
    description: The Service as P(hoptrace.k8s.service_target#filter) returns it (C(namespace), C(text), C(selector)).
    type: dict
    required: true
  access:
    description: C(cli), C(kubeconfig) and C(context) (the C(access) that P(hoptrace.k8s.trace_inputs#filter) returns); with O(argv).
    type: dict
  argv:
    description: Return the command line that lists the pods instead.
    type: bool
    default: false
  selector:
    description: Return the Service's label selector as text instead.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: List the pods of the Service
  ansible.builtin.command:
    argv: "{{ '' | hoptrace.k8s.service_pods(target, access={'cli': 'kubectl'}, argv=true) }}"
  register: answer
  # argv: [kubectl, --request-timeout=10s, get, pods, --namespace=default, --selector=app=web, --output=json]

- name: Their nodes
  ansible.builtin.debug:
    msg: "{{ (answer.stdout | hoptrace.k8s.service_pods(target)).nodes }}"
  # => [{node: node-b, host_ip: 10.240.0.9}]
"""

RETURN = r"""
_value:
  description:
    - C(pods) (each with C(ip), C(namespace), C(name), C(node), C(host_ip)) and C(nodes) (each C(node) and its
      C(host_ip), in pod order without repeats); or, with O(argv), the command line as a list; or, with
      O(selector), the label selector as a string.
  type: raw
"""


def _service_pods(answer, target, access=None, argv=False, selector=False):
    try:
        if selector:
            return selector_text(target)
        if argv:
            return lookup_argv(target, access or {"cli": "kubectl"})
        if isinstance(answer, (str, bytes)):
            try:
                answer = json.loads(answer)
            except ValueError:
                raise AnsibleFilterError("dst %s: the Kubernetes API's answer is not JSON: %.200s" % (target.get("text"), answer)) from None
        return service_pods(answer, target)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    """hoptrace.k8s.service_pods"""

    def filters(self):
        return {"service_pods": _service_pods}
