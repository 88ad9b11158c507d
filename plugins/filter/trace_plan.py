# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter trace_plan: hops and captures of one flow from every node's route_info result."""

from __future__ import annotations

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import build_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.services import backend_flow, merge_candidates, nodeport_plan, public, rewrite_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import validate_flow

DOCUMENTATION = r"""
name: trace_plan
author: hoptrace developers
version_added: 0.1.0
short_description: Plan a hop-by-hop trace of one flow from the nodes' route_info results
description:
  - Finds the nodes holding the source and destination pods (the node whose C(workloads) contain
    the address), follows each node's own route for the other pod, and returns the ordered hops of
    the request and of the response (pod veth, tunnel device, underlay NIC on each node) and one
    capture per node and interface, with the tcpdump filter that serves both directions.
  - The encapsulation comes from the route's device (IPIP, VXLAN, WireGuard, or none for BGP and the
    same-subnet half of CrossSubnet); devices come from the routes and links, never assumed.
  - A destination outside the cluster is traced to the source node's egress device.
  - Requires the Python library C(netaddr) on the controller.
options:
  _input:
    description:
      - Dict C({inventory_hostname - route_info result}) for every node that may hold the pods.
    type: dict
    required: true
  src:
    description: Source pod IP.
    type: str
  dst:
    description: Destination IP, a pod IP or an address outside the cluster.
    type: str
  proto:
    description: Protocol of the flow.
    type: str
    choices: [tcp, udp, icmp]
    default: tcp
  port:
    description: Destination port (required for tcp and udp, ignored for icmp).
    type: int
  flow:
    description: The flow as one dict C({src, dst, proto, port}) instead of the separate options.
    type: dict
  node_ips:
    description:
      - Dict C({inventory_hostname - address}) of the nodes, for example from C(ansible_host).
      - A node whose result is an unreachable or failed task (no C(routes)) is recognised by this
        address when the other pod's block is routed to it; its hops are planned with no interface
        and reported unknown instead of failing the plan.
    type: dict
  deferred:
    description:
      - Names of nodes deliberately not read (the role reads only the entry node when that node
        holds one of the pods).
      - The one holding the other pod gets captures with a C(select) (C(route_to), plus C(local)
        for the pod's veth) instead of an interface. M(hoptrace.k8s.capture) resolves it on the
        node when the capture starts, and P(hoptrace.k8s.trace_plan_armed#filter) puts the
        devices into the plan.
    type: list
    elements: str
  service:
    description:
      - The Service P(hoptrace.k8s.trace_path#filter) found behind O(dst) in the entry node's kube-proxy
        rules (its C(service)). With a backend, the hops are planned to the backend's address and port,
        and the source pod's veth capture keeps the Service address (C(nat) on that capture; the
        analysis matches its packets with the backend's). The plan gets C(service), what the report keeps.
      - A NodePort (C(kind) nodeport) is planned through the node addressed (C(dnat_on)); when its endpoint is a
        pod of a third node, both nodes' route_info results are needed, and the hops after the DNAT (C(after_dnat))
        are filtered on the node's masquerade address and the endpoint's address and port, their captures
        carrying C(unsnat). An endpoint that is a pod of the source's own node is planned the same way, the
        request coming back to that node after the DNAT (its NIC and tunnel then serve hops before and after it;
        C(dst_node) is the source's node). With several endpoints, one such plan per endpoint is a candidate
        (C(candidates), each with its own C(captures)), as for a ClusterIP.
      - A NodePort on a node's IPv6 address is planned in IPv6 throughout, the source node's hops with its IPv6
        address (its route's preferred source, else its first IPv6 node address) and C(ip6) filters.
    type: dict
    version_added: 0.2.0
notes:
  - The plan shape is documented in the collection's C(docs/internals.md).
"""

EXAMPLES = r"""
- name: Plan the trace from the route_info results of all nodes
  ansible.builtin.set_fact:
    plan: >-
      {{ dict(groups['nodes'] | zip(groups['nodes'] | map('extract', hostvars, 'hoptrace_route')))
         | hoptrace.k8s.trace_plan(src='172.17.25.79', dst='172.17.25.239', proto='tcp', port=443) }}
  run_once: true

- name: Same, positional
  ansible.builtin.set_fact:
    plan: "{{ route_infos | hoptrace.k8s.trace_plan('172.17.25.79', '172.17.25.239', 'tcp', 443) }}"
"""

RETURN = r"""
_value:
  description:
    - The plan - C(run) (the validated flow), C(src_node), C(dst_node) (none outside the cluster),
      C(encap) and C(response_encap) (ipip, vxlan, wireguard, none or local), C(hops) (request then
      response, each with index, direction, node, node_ip, interface, role, encap, capture),
      C(captures) (key, node, interface, role, encap, filter, peer, vxlan_port, underlay_port,
      link_type; with C(select) instead of an interface on a deferred node) and C(warnings).
  type: dict
"""


def trace_plan(nodes, src=None, dst=None, proto=None, port=None, flow=None, node_ips=None, deferred=None, service=None):
    """Jinja2 entry point; errors become AnsibleFilterError."""
    if flow is not None:
        if not isinstance(flow, dict):
            raise AnsibleFilterError("trace_plan: flow must be a dict with src, dst, proto and port")
        src = src if src is not None else flow.get("src")
        dst = dst if dst is not None else flow.get("dst")
        proto = proto if proto is not None else flow.get("proto")
        port = port if port is not None else flow.get("port")
    if not src or not dst:
        raise AnsibleFilterError("trace_plan: give src and dst (pod IPs), e.g. trace_plan(src='172.17.25.79', dst='172.17.25.239', port=443)")
    try:
        if service and service.get("kind") == "nodeport" and service.get("backend"):
            return nodeport_plan(nodes, validate_flow(src, dst, proto or "tcp", port), service)
        if service and service.get("kind") == "nodeport" and service.get("endpoints"):
            # several endpoints: one NodePort plan per candidate (each its own 2- or 3-node path), the analysis
            # picks the one the packets took and the node addressed's conntrack names
            given = validate_flow(src, dst, proto or "tcp", port)
            plans = [nodeport_plan(nodes, given, dict(service, backend=dict(e), chosen_by=None)) for e in service["endpoints"]]
            return merge_candidates(plans, service)
        if service and service.get("endpoints"):
            # the hops after the source node's DNAT go to the backend; the source veth sees the Service
            # address. Several endpoints: one plan per candidate, the analysis picks the one the packets took
            given = {"src": src, "dst": dst, "proto": proto or "tcp", "port": port}
            plans = []
            for endpoint in service["endpoints"]:
                after = backend_flow(given, service, endpoint)
                plan = build_plan(nodes, src, after["dst"], after["proto"], after["port"], node_ips=node_ips,
                                  deferred=deferred or ())
                plans.append(rewrite_plan(plan, service, validate_flow(src, dst, proto or "tcp", port), endpoint))
            return plans[0] if len(plans) == 1 else merge_candidates(plans, service)
        plan = build_plan(nodes, src, dst, proto or "tcp", port, node_ips=node_ips, deferred=deferred or ())
        if service:
            plan["service"] = public(service, plan)
        return plan
    except ValueError as exc:
        raise AnsibleFilterError("trace_plan: %s" % exc) from None
    except AnsibleError as exc:
        raise AnsibleFilterError("trace_plan: %s" % exc.message) from None


class FilterModule(object):
    """hoptrace trace_plan filter."""

    def filters(self):
        return {"trace_plan": trace_plan}
