# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter route_lookup: longest-prefix match over a node's routes."""

from __future__ import annotations

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import lookup_route

DOCUMENTATION = r"""
name: route_lookup
author: hoptrace developers
version_added: 0.1.0
short_description: The route a node uses for an address (longest prefix match, like the kernel)
description:
  - Picks the route for an address from a node's routes the way the kernel does - tables in rule
    order (C(local), C(main), C(default) unless O(tables) says otherwise), the longest prefix,
    then the lowest metric; C(throw) continues with the next table.
  - C(blackhole), C(unreachable) and C(prohibit) routes are returned like any other; their C(type)
    says that packets die there. Multipath routes come back with their C(nexthops).
  - Understands C(default), host routes without C(/32), IPv4 and IPv6.
  - Requires the Python library C(netaddr) on the controller.
options:
  _input:
    description:
      - The routes - the C(routes) list of a C(hoptrace.k8s.route_info) result, the whole result,
        the parsed C(ip -j route) output, or the text of C(ip route).
    type: raw
    required: true
  address:
    description: The destination IP address to look up.
    type: str
    required: true
  tables:
    description: Routing tables to search, in order.
    type: list
    elements: str
    default: [local, main, default]
  required:
    description: Fail when no route matches instead of returning C(none).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Where does node-a send the destination pod's packets?
  ansible.builtin.debug:
    msg: "{{ hostvars['node-a'].route.routes | hoptrace.k8s.route_lookup('172.17.25.239') }}"
  # => {"dst": "172.17.25.192/26", "gateway": "10.240.0.9", "dev": "tunl0", "protocol": "bird", ...}

- name: Egress device for an address outside the cluster, failing when there is no route
  ansible.builtin.set_fact:
    egress_dev: "{{ (route.routes | hoptrace.k8s.route_lookup('8.8.8.8', required=true)).dev }}"
"""

RETURN = r"""
_value:
  description:
    - The matching route dict, unchanged (internals.md route shape), or C(none) when no route matches.
  type: dict
"""


def route_lookup(routes, address, tables=None, required=False):
    """Jinja2 entry point; errors become AnsibleFilterError."""
    if tables is not None and (isinstance(tables, str) or not isinstance(tables, (list, tuple))):
        raise AnsibleFilterError("route_lookup: tables must be a list of table names, e.g. ['local', 'main']")
    try:
        route = lookup_route(routes, address, tables=tables)
    except ValueError as exc:
        raise AnsibleFilterError("route_lookup: %s" % exc) from None
    except AnsibleError as exc:
        raise AnsibleFilterError("route_lookup: %s" % exc.message) from None
    if route is None and required:
        raise AnsibleFilterError(
            "route_lookup: no route to %s in tables %s; add a default route or check that the "
            "routes are from the right node" % (address, ", ".join(tables or ("local", "main", "default")))
        )
    return route


class FilterModule(object):
    """hoptrace route_lookup filter."""

    def filters(self):
        return {"route_lookup": route_lookup}
