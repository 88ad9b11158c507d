# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: whether kubernetes.core.k8s_info can run on this controller."""

from __future__ import annotations

import importlib.util

from ansible.plugins.loader import module_loader

DOCUMENTATION = r"""
name: k8s_info_usable
author: hoptrace developers
version_added: 0.2.0
short_description: Whether P(kubernetes.core.k8s_info#module) can read pods from this controller
description:
  - True when the C(kubernetes.core) collection is installed (its C(k8s_info) module is found) and the
    Python C(kubernetes) client it needs can be imported; the trace role then reads pod names through it,
    else through C(kubectl get pod -o json).
  - The input is ignored.
options:
  _input:
    description: Anything (ignored).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Pick how pods are read
  ansible.builtin.set_fact:
    use_k8s_info: "{{ none | hoptrace.k8s.k8s_info_usable }}"
"""

RETURN = r"""
_value:
  description: Whether the module and its Python client are both there.
  type: bool
"""


def usable(_input=None):
    found = module_loader.find_plugin_with_context("kubernetes.core.k8s_info")
    return bool(found.resolved) and importlib.util.find_spec("kubernetes") is not None


class FilterModule(object):
    """hoptrace.k8s.k8s_info_usable"""

    def filters(self):
        return {"k8s_info_usable": usable}
