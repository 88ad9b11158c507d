# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter bpf_filter: the tcpdump expression for one flow at one hop."""

from __future__ import annotations

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.bpf import capture_filter

DOCUMENTATION = r"""
name: bpf_filter
author: hoptrace developers
version_added: 0.1.0
short_description: The tcpdump filter that matches one flow at one hop, in both directions
description:
  - Builds the libpcap expression that matches exactly one flow's packets, request and response,
    as they look on a given interface.
  - Pod veths, tunnel devices and NICs without encapsulation see the pod packets themselves -
    C(host SRC and host DST and tcp port 443) (ICMP - C(icmp and host SRC and host DST)).
  - An underlay NIC with IPIP sees protocol 4 between the nodes - C(ip proto 4 and host PEER and
    ip[0]&0xf==5 and ((ip[32:4]==SRC and ip[36:4]==DST) or (ip[32:4]==DST and ip[36:4]==SRC)))),
    the inner protocol and, when the inner header has no options, the inner port.
  - An underlay NIC with VXLAN sees UDP to the VXLAN port - C(udp port 4789 and host PEER) and the
    inner Ethernet/IP at fixed offsets behind outer IP + UDP (8) + VXLAN (8) + Ethernet (14) -
    inner src at C(udp[42:4]), dst at C(udp[46:4]), ports at C(udp[50:2])/C(udp[52:2]). IPv6 inner
    and IPv6 outer (C(ip6[40+n])) are supported.
  - An underlay NIC with WireGuard only shows the node pair's UDP - C(udp port 51820 and host PEER).
  - Every filter but WireGuard's also passes the ICMP/ICMPv6 errors about the flow, as a second alternative -
    destination unreachable, time exceeded, parameter problem, packet too big, from anyone, whose quoted
    packet has the flow's protocol and addresses (inside the same tunnel on an underlay NIC), so that an
    administratively prohibited or a fragmentation needed reaches the analysis.
  - Requires the Python library C(netaddr) on the controller.
options:
  _input:
    description:
      - The capture or hop - a dict with C(encap) (C(none), C(local), C(ipip), C(vxlan), C(wireguard)),
        C(role) (C(veth), C(tunnel), C(underlay), C(egress), or a hop role such as C(src-veth);
        veth and tunnel roles always get the plain filter), C(peer), C(vxlan_port) or
        C(underlay_port), C(vlan) - as in a C(trace_plan) capture.
      - Or just the encapsulation name as a string.
    type: raw
    required: true
  flow:
    description: The flow, a dict with C(src), C(dst), C(proto) and C(port) (the plan's C(run)).
    type: dict
  src:
    description: Source pod IP (instead of, or overriding, O(flow)).
    type: str
  dst:
    description: Destination IP (instead of, or overriding, O(flow)).
    type: str
  proto:
    description: Protocol.
    type: str
    choices: [tcp, udp, icmp]
  port:
    description: Destination port of the flow (tcp and udp).
    type: int
  peer:
    description: Underlay address of the other node (overrides the capture's C(peer)).
    type: str
  underlay_port:
    description: VXLAN or WireGuard UDP port (default 4789 and 51820).
    type: int
  vlan:
    description: The underlay is VLAN-tagged - C(true) for any tag or a VLAN id.
    type: raw
"""

EXAMPLES = r"""
- name: Filter for the source node's underlay NIC with Calico IPIP
  ansible.builtin.debug:
    msg: >-
      {{ {'encap': 'ipip', 'peer': '10.240.0.9'}
         | hoptrace.k8s.bpf_filter(src='172.17.25.79', dst='172.17.25.239', proto='tcp', port=443) }}
  # => "ip proto 4 and host 10.240.0.9 and ip[0]&0xf==5 and ((ip[32:4]==0xac11194f and
  #     ip[36:4]==0xac1119ef) or (ip[32:4]==0xac1119ef and ip[36:4]==0xac11194f)) and ip[29]==6
  #     and ip[20]&0xf==5 and ip[26:2]&0x1fff==0 and (ip[40:2]==443 or ip[42:2]==443)"

- name: Filter for every capture of a plan
  ansible.builtin.debug:
    msg: "{{ item | hoptrace.k8s.bpf_filter(plan.run) }}"
  loop: "{{ plan.captures }}"

- name: Flannel VXLAN on port 8472
  ansible.builtin.debug:
    msg: "{{ 'vxlan' | hoptrace.k8s.bpf_filter(flow, peer='10.0.0.2', underlay_port=8472) }}"
"""

RETURN = r"""
_value:
  description: A libpcap filter expression, to pass to tcpdump as one argument.
  type: str
  sample: "(host 172.17.25.79 and host 172.17.25.239 and tcp port 443) or (icmp and (icmp[0]==3 or icmp[0]==11 or
    icmp[0]==12) and icmp[17]==6 and ((icmp[20:4]==0xac11194f and icmp[24:4]==0xac1119ef) or (icmp[20:4]==0xac1119ef
    and icmp[24:4]==0xac11194f)))"
"""


def bpf_filter(capture, flow=None, src=None, dst=None, proto=None, port=None, peer=None, underlay_port=None, vlan=None):
    """Jinja2 entry point; errors become AnsibleFilterError."""
    if isinstance(capture, str):
        capture = {"encap": capture, "role": "underlay"}
    if not isinstance(capture, dict):
        raise AnsibleFilterError("bpf_filter: input must be a capture/hop dict or an encapsulation name, got %s" % type(capture).__name__)
    if flow is not None and not isinstance(flow, dict):
        raise AnsibleFilterError("bpf_filter: flow must be a dict with src, dst, proto and port")
    flow = dict(flow or {})
    for key, value in (("src", src), ("dst", dst), ("proto", proto), ("port", port)):
        if value is not None:
            flow[key] = value
    if not flow.get("src") or not flow.get("dst"):
        raise AnsibleFilterError("bpf_filter: give the flow, as flow={src, dst, proto, port} or src=, dst=, proto=, port=")
    capture = dict(capture)
    for key, value in (("peer", peer), ("underlay_port", underlay_port), ("vlan", vlan)):
        if value is not None:
            capture[key] = value
    try:
        return capture_filter(capture, flow)
    except ValueError as exc:
        raise AnsibleFilterError("bpf_filter: %s" % exc) from None
    except AnsibleError as exc:
        raise AnsibleFilterError("bpf_filter: %s" % exc.message) from None


class FilterModule(object):
    """hoptrace bpf_filter filter."""

    def filters(self):
        return {"bpf_filter": bpf_filter}
