# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter plugin: the hosting nodes of a flow from one entry node's routes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import summary
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.path_step import (
    FOUND_KEY,
    address_vars,
    find_path,
    found_earlier,
)

DOCUMENTATION = r"""
name: trace_path
author: hoptrace developers
version_added: 0.1.0
short_description: Find the nodes hosting a flow's pods from one entry node's routes
description:
  - Reads the route_info result of ONE entry node and finds the nodes that host the flow's source
    and destination pods - a local C(cali*) /32 route (the pod is on the entry node), a block routed
    C(via) a node IP (IPIP, BGP, CrossSubnet), a VXLAN block whose next hop's neighbour and fdb
    entries give the remote node's underlay IP, or a blackhole block route (the entry node owns the block).
  - Maps each node IP to the inventory host whose C(ansible_host), C(ip) or C(access_ip) (kubespray's
    variables) or name is that address; only when none is, the host names are resolved on the
    controller (bounded to 3 seconds). No host is contacted.
  - Fails with the IP and the candidates when an address maps to no host or to several.
  - Requires the Python library C(netaddr) on the controller.
options:
  _input:
    description:
      - What M(hoptrace.k8s.route_info) registered on the entry node; a loop's registration
        (C(results)) is accepted, its first successful item is used and its C(item) names the entry.
    type: raw
    required: true
  flow:
    description: The validated flow (C(src), C(dst), C(proto), C(port)).
    type: dict
    required: true
  hostvars:
    description: C(hostvars), to read the candidate hosts' address variables.
    type: raw
    required: true
  hosts:
    description: The candidate hosts (the group of the cluster's nodes).
    type: list
    elements: str
    required: true
  entry:
    description: The entry host, when O(_input) is a single result rather than a loop's.
    type: str
  group:
    description: The group O(hosts) came from (P(hoptrace.k8s.node_group#filter)'s result), named in C(summary).
    type: dict
"""

EXAMPLES = r"""
- name: Read one entry node
  hoptrace.k8s.route_info:
  delegate_to: "{{ groups['k8s_cluster'][0] }}"
  register: entry_routes
  run_once: true

- name: Find the path
  ansible.builtin.set_fact:
    path: >-
      {{ entry_routes | hoptrace.k8s.trace_path(flow={'src': '172.17.25.79', 'dst': '172.17.25.239', 'proto': 'tcp', 'port': 443},
         hostvars=hostvars, hosts=groups['k8s_cluster'], entry=groups['k8s_cluster'][0]) }}
  # => path.hosts == ['node-a', 'node-b'], path.src.host == 'node-a', path.dst.found_by == "node-a's route ..."
"""

RETURN = r"""
_value:
  description:
    - C(entry) (the host read), C(src) and C(dst) (each with C(address), C(how) - local, blackhole, via,
      vxlan, wireguard, external or unrouted - C(node_ip), C(host), C(evidence), the route that says so,
      and C(found_by), a sentence), C(hosts) (the 1-2 hosts on the path, source first;
      3 for a NodePort whose endpoint is on a third node - the source's, the node addressed, the endpoint's;
      2 again, the source's and the node addressed, when that endpoint is a pod of the source's own node;
      with several NodePort endpoints, each endpoint's node too),
      C(read) and C(deferred) (the hosts read before planning, and those that resolve their devices when
      their captures start), C(service) (the Service behind dst, or null), C(notes) (the entry's route_info
      notes about kube-proxy's rules, such as none of its tools installed), C(node_ips)
      (host - node IP), C(entry_result) (the entry's route_info result) and C(summary) (C(entry), C(group) with
      its name, how it was chosen and its host count, C(hosts), C(lines), one sentence per pod, and C(notes)), as the
      report keeps it; the report's notes list C(notes) after the plan's warnings.
  type: dict
"""


def _entry_result(registered, entry):
    """(entry host, route_info result) from a single registration or a loop's."""
    if isinstance(registered, dict) and "results" in registered and "routes" not in registered:
        tried = []
        for item in registered.get("results") or []:
            host = item.get(item.get("ansible_loop_var") or "item") if isinstance(item, dict) else None
            if isinstance(item, dict) and "routes" in item:
                return host, item
            if isinstance(item, dict) and not item.get("skipped"):
                tried.append("%s: %s" % (host, str(item.get("msg") or "no route_info result").strip()))
        raise AnsibleFilterError(
            "trace_path: no entry node could be read (%s); check SSH access, or name a reachable node "
            "with -e via=HOST" % ("; ".join(tried) or "none was tried")
        )
    if not isinstance(registered, dict) or "routes" not in registered:
        raise AnsibleFilterError("trace_path: %s returned no route_info result: %s"
                                 % (entry, (registered or {}).get("msg") if isinstance(registered, dict) else registered))
    return entry, registered


def _trace_path(registered, flow=None, hostvars=None, hosts=None, entry=None, group=None):
    if not isinstance(flow, dict) or not flow.get("src") or not flow.get("dst"):
        raise AnsibleFilterError("trace_path: flow must be the validated flow (src, dst, proto, port)")
    entry, result = _entry_result(registered, entry)
    if not entry:
        raise AnsibleFilterError("trace_path: name the entry host (entry=HOST)")
    path = found_earlier(result, flow, entry)
    if path is None:
        try:
            path = find_path(entry, result, flow, address_vars(hostvars, hosts, entry))
        except ValueError as exc:  # PathError, and AddressError from a malformed inventory address
            raise AnsibleFilterError("trace_path: %s" % exc) from None
    path = dict(path)
    path["entry_result"] = {k: v for k, v in result.items() if k != FOUND_KEY}
    path["summary"] = summary(path, group)
    return path


class FilterModule(object):
    """hoptrace.k8s.trace_path"""

    def filters(self):
        return {"trace_path": _trace_path}
