# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: the ClusterIP and port of a Service given by name, from the Kubernetes API's answer."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.svcinfo import lookup_argv, service_target
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

DOCUMENTATION = r"""
name: service_target
author: hoptrace developers
version_added: 0.2.0
short_description: The ClusterIP and port to trace for a Service given as C(svc/namespace/name)
description:
  - Takes the API's answer about the Service - the JSON text or object of
    C(kubectl get services --namespace=NS --field-selector=metadata.name=NAME -o json) (a list, empty when
    there is no such Service), one Service object, or the C(resources) of P(kubernetes.core.k8s_info#module) -
    and returns its ClusterIP and the one port to trace.
  - The port is O(port) by number or by name; left empty, the Service's only port of O(proto). A Service
    with several such ports and no O(port) is refused with the list of its ports.
  - Refuses, saying what to do instead, a missing Service, a headless one (C(clusterIP) V(None)), an
    C(ExternalName) one, one without a ClusterIP yet, and a dual-stack mismatch with the source's family.
  - With O(argv=true) returns instead the kubectl/oc command line that reads the Service.
options:
  _input:
    description: The API's answer (JSON text, a Service, a list of them or a dict with C(items)); with O(argv), ignored.
    type: raw
    required: true
  ref:
    description: The Service as P(hoptrace.k8s.trace_inputs#filter) returns it in C(service) (C(namespace), C(name), C(text)).
    type: dict
    required: true
  port:
    description: A port number, a Service port name, or empty for the Service's only port.
    type: raw
    default: ""
  proto:
    description: C(tcp) or C(udp); only the Service's ports of this protocol are considered.
    type: str
    default: tcp
  family:
    description: 4 or 6, the source pod's address family, to pick a dual-stack Service's ClusterIP; 0 takes the first.
    type: int
    default: 0
  access:
    description: C(cli), C(kubeconfig) and C(context) (the C(access) that P(hoptrace.k8s.trace_inputs#filter) returns); with O(argv).
    type: dict
  argv:
    description: Return the command line that reads the Service instead.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the Service of dst
  ansible.builtin.command:
    argv: "{{ '' | hoptrace.k8s.service_target(svc, access={'cli': 'kubectl'}, argv=true) }}"
  vars:
    svc: {namespace: default, name: web, text: svc/default/web}
  register: answer
  # argv: [kubectl, --request-timeout=10s, get, services, --namespace=default,
  #        --field-selector=metadata.name=web, --output=json]

- name: Its ClusterIP and port
  ansible.builtin.debug:
    msg: "{{ answer.stdout | hoptrace.k8s.service_target(svc, port='https') }}"
  vars:
    svc: {namespace: default, name: web, text: svc/default/web}
  # => {ip: 10.96.10.30, port: 443, port_name: https, protocol: tcp, namespace: default, name: web,
  #     text: svc/default/web, type: ClusterIP, selector: {app: web}}
"""

RETURN = r"""
_value:
  description:
    - C(ip) (the ClusterIP), C(port) (the Service port, a number), C(port_name), C(protocol), C(namespace),
      C(name), C(text) (C(svc/namespace/name)), C(type) and C(selector) (its pod selector, a dict, or V(None)
      for a Service without one); or, with O(argv), the command line as a list.
  type: raw
"""


def _service_target(answer, ref, port="", proto="tcp", family=0, access=None, argv=False):
    if argv:
        return lookup_argv(ref, access or {"cli": "kubectl"})
    if isinstance(answer, (str, bytes)):
        try:
            answer = json.loads(answer)
        except ValueError:
            raise AnsibleFilterError("dst %s: the Kubernetes API's answer is not JSON: %.200s" % (ref.get("text"), answer)) from None
    try:
        return service_target(answer, ref, port, proto, family or None)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    """hoptrace.k8s.service_target"""

    def filters(self):
        return {"service_target": _service_target}
