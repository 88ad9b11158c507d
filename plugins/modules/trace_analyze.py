#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hoptrace developers (@hoptrace)
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file is documentation only: the action plugin plugins/action/trace_analyze.py runs on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
module: trace_analyze
short_description: Say where one traced flow's packets stopped, from the hop captures
version_added: 0.1.0
description:
  - Runs on the controller (action plugin). Reads every hop's capture (pcap or pcapng, any
    of Ethernet, raw IP, Linux cooked v1/v2 link types), decodes outer and inner headers
    (VLAN, IPIP, IPv6-in-IPv4, VXLAN, Geneve), keeps the traced flow's packets in both
    directions and matches each packet across hops.
  - Per hop and direction it reports the packets seen, first-seen time and delay from the
    previous hop; per direction the hop where packets stopped; a verdict in plain words.
  - Per direction it also looks for the packets that say why (RV(report.directions.cause)), a TCP RST
    (and who sent it, from the hop it was first seen on) or an ICMP/ICMPv6 error quoting one of the flow's
    packets (destination unreachable, fragmentation needed / packet too big with its MTU, time exceeded)
    and the address that sent it. A refused connection - a RST answering the SYN, a RST sent by something
    on the path, an ICMP unreachable - is not healthy, and the verdict says it first. RV(why) is one
    sentence on the cause, or C(no packet in the captures explains the loss).
  - Hops whose capture is missing, C(unreachable), C(failed) or C(timed out) are C(unknown), not lost, and
    the verdict says it is incomplete; kernel drops reported by tcpdump make it uncertain.
  - Across two nodes the clock offset is estimated from the flow itself (request/response
    symmetry on the underlay hops) and delays are corrected, which the report says; not for a path
    through a third node (a NodePort forwarded to its endpoint's node), where no underlay leg joins them, nor
    for a NodePort forwarded back to the source's node (the plan's two nodes are then the same).
  - A NodePort forwarded to an endpoint on another node - the plan's C(unsnat) captures of the node
    addressed that also see the flow before its DNAT - is analysed in two halves, the packets before and
    after the DNAT each matched with their own hops; a healthy verdict then says where the flow went
    (C(every hop saw the request and the response; 10.240.0.9:30444 was DNATed by kube-proxy on node-b to
    172.17.26.1:443 on node-c and masqueraded to 172.17.25.192)). An endpoint on the source pod's own node
    is said so (C(... to 172.17.25.66:443 on node-a (the source pod's own node) and masqueraded to ...)); its
    NIC and tunnel, which also see the flow before and after the DNAT, are split the same way.
  - The C(unsnat) copies of a NodePort's captures after the DNAT are rewritten in IPv4 and IPv6 alike (a NodePort
    on a node's IPv6 address), addresses and ports only, every checksum left as captured.
  - Writes C(report.json), C(report.md) and C(trace.pcapng) (one interface per capture, named
    like C(node-b/tunl0)) into O(output_dir).
  - Also writes C(report.html) there, one self-contained page (no script, nothing fetched) with the
    path drawn - each node a box with its hops, the request and the response as arrows through them,
    each hop coloured by its status, the delays between hops, where a direction stopped and why - above
    the hop table, the verdict, the notes and links to the captures; and C(junit.xml), the trace as a
    JUnit test suite (one test case per hop and direction, a failure on the hops that lost the flow,
    one more for the verdict), also written to O(junit) when given.
author:
  - hoptrace developers (@hoptrace)
requirements:
  - dpkt >= 1.9.8 on the controller
options:
  plan:
    description:
      - The trace plan (output of the C(hoptrace.k8s.trace_plan) filter) with C(run), C(hops),
        C(captures), C(src_node), C(dst_node), C(encap). See docs/internals.md.
    type: dict
    required: true
  captures:
    description:
      - One entry per capture as collected on the controller.
      - Captures of the plan that are not listed here are reported C(unknown).
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: Capture key of the plan, C(node/interface).
        type: str
        required: true
      node:
        description: Inventory hostname of the node.
        type: str
      interface:
        description: Interface captured.
        type: str
      file:
        description: Local path of the fetched pcap on the controller.
        type: path
      captured:
        description: Packets tcpdump reported captured.
        type: int
      received:
        description: Packets tcpdump reported received by the filter.
        type: int
      dropped:
        description: Packets tcpdump reported dropped by the kernel.
        type: int
        default: 0
      ended_at:
        description:
          - When the capture ended (epoch seconds, the node's clock), from M(hoptrace.k8s.capture)'s stop.
          - A packet an earlier hop saw after this capture had ended (within 20 ms) is not counted as lost
            before this hop (it could not have been seen here); this keeps a retransmission that lands
            while the nodes are being stopped from looking like a loss.
        type: float
      counters:
        description:
          - The node's counter deltas between the start and the stop of its captures, from M(hoptrace.k8s.capture)'s
            stop (RV(hoptrace.k8s.capture#module:counters)); the same on each capture of a node.
          - Where a direction stopped and no packet says why, a DROP/REJECT rule whose counter rose by about the
            packets lost there, a blackhole or missing route, the reverse path filter, conntrack or a failed
            neighbour on the nodes around that hop is the cause (see RV(report.directions)).
        type: dict
        version_added: 0.2.0
      status:
        description: Whether the capture could be taken and fetched.
        type: str
        choices: [ok, unreachable, failed, timed out]
        default: ok
      error:
        description: Why the capture is not C(ok).
        type: str
  output_dir:
    description: Run folder where the reports and the merged pcapng are written (created if needed).
    type: path
    required: true
  junit:
    description:
      - A file path on the controller where C(junit.xml) is also written (for a CI job to collect); its
        directory must exist. The run folder always has its own C(junit.xml).
    type: path
    version_added: 0.2.0
  merge_pcapng:
    description: Write C(trace.pcapng), all captures merged in time order.
    type: bool
    default: true
  vxlan_ports:
    description: UDP ports decoded as VXLAN besides 4789, 8472 and the plan's C(vxlan_port).
    type: list
    elements: int
    default: []
  repeat:
    description:
      - Repeat mode, when the probe sent more than one probe (each a new flow). Each probe is followed
        hop by hop by its first packet in each direction (SYN, SYN+ACK, datagram, echo request and reply);
        the hops get C(probes_seen), C(loss_pct) and C(latency_ms) (see RV(report.hops)),
        the directions how many probes were lost between which hops, and the report RV(report.repeat).
      - When some probes got through and some were lost, the verdict counts them (C(3 of 50 requests were
        lost between node-a eth0 and node-b eth0)) and the trace is healthy only when the share of lost
        probes is at most O(repeat.max_loss).
    type: dict
    version_added: 0.2.0
    suboptions:
      count:
        description: Number of probes sent; 1 (or no O(repeat)) is a single probe, analysed as before.
        type: int
        default: 1
      max_loss:
        description: Percent of the probes that may be lost while the trace is still healthy (0 to 100).
        type: float
        default: 0
      probes:
        description:
          - The C(attempts) the probe module returned (C(seq), C(status), C(sport) or C(id)),
            which tell the probes' flows apart; without them, the flows seen in the captures are the probes.
        type: list
        elements: dict
        default: []
  names:
    description:
      - What the Kubernetes API said about a Service trace, when the run reads the API (a name in O(plan)'s flow
        or node_access through debug pods); the trace role passes it.
      - The backend's pod is named from these lookups (C(service.backend.pod) of RV(report)); one that failed or found
        no single pod leaves it null and adds a note. A Service given by name gets C(service.requested) in RV(report).
    type: dict
    version_added: 0.2.0
    suboptions:
      service:
        description:
          - dst as the Service it was given by name (C(svc/namespace/name)) resolved - C(text), C(ip), C(port),
            C(port_name), C(namespace), C(name), C(type) (P(hoptrace.k8s.service_target#filter)'s result); null otherwise.
        type: dict
      lookups:
        description:
          - The registered results of the pod lookups of the Service's endpoints, one per address (under its loop
            variable) - C(rc), C(stdout) and C(stderr) of C(kubectl get pods -A --field-selector=status.podIP=IP -o json),
            or the C(resources) of P(kubernetes.core.k8s_info#module).
        type: list
        elements: dict
        default: []
      via:
        description: What read the API, for the report - C(kubernetes.core.k8s_info), or the kubectl/oc command's name.
        type: str
        default: kubectl
notes:
  - Packets are matched by inner addresses, ports, IP id, TCP seq/ack/flags and length (TTL and
    checksums change between hops and are ignored). Data segments that GSO/GRO split or merge
    between hops are compared by TCP sequence coverage instead.
  - Timestamps of different nodes come from different clocks; see RV(report.clock).
seealso:
  - module: hoptrace.k8s.capture
'''

EXAMPLES = r'''
- name: Analyse the captures of this run
  hoptrace.k8s.trace_analyze:
    plan: "{{ hoptrace_plan }}"
    captures: "{{ hoptrace_captures }}"
    output_dir: "{{ hoptrace_run_dir }}"
  register: hoptrace_result

- name: Fail the play when the flow is broken
  ansible.builtin.assert:
    that: hoptrace_result.healthy
    fail_msg: "{{ hoptrace_result.verdict }}"

- name: Also leave the JUnit report where the CI job collects test reports
  hoptrace.k8s.trace_analyze:
    plan: "{{ hoptrace_plan }}"
    captures: "{{ hoptrace_captures }}"
    output_dir: "{{ hoptrace_run_dir }}"
    junit: "{{ lookup('ansible.builtin.env', 'CI_PROJECT_DIR') }}/reports/hoptrace.xml"
'''

RETURN = r'''
healthy:
  description:
    - Every planned hop was captured and saw both the request and the response.
    - False when a packet was lost on the way, and also when a hop could not be captured
      (unreachable node, failed capture), because a path with unseen hops is not known to be healthy.
  returned: always
  type: bool
verdict:
  description: Where the packets stopped, in plain words.
  returned: always
  type: str
  sample: "request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation)"
why:
  description:
    - One plain sentence on why the flow is not healthy, from the packets in the captures (the text of the
      cause that explains the verdict, see RV(report.directions.cause)).
    - V(no packet in the captures explains the loss) when a direction was lost and no RST or ICMP error
      says why and the nodes' counters were not read; C(no counter on node-b explains the loss) when they
      were and none of them explains it either; null when the flow is healthy, or when only hops are unknown.
  returned: always
  type: str
  sample: "the destination pod answered the SYN with RST+ACK (first seen on its veth node-b calic25e805a467):
    nothing in the pod accepts connections on port 8443"
files:
  description: Paths written.
  returned: always
  type: dict
  contains:
    json:
      description: report.json
      type: str
    markdown:
      description: report.md
      type: str
    html:
      description: report.html (the path drawn, the hop table, links to the captures).
      type: str
      version_added: 0.2.0
    junit:
      description: junit.xml in the run folder.
      type: str
      version_added: 0.2.0
    junit_copy:
      description: The copy of junit.xml written to O(junit) (absent without it).
      type: str
      version_added: 0.2.0
    pcapng:
      description: trace.pcapng (absent when O(merge_pcapng=false)).
      type: str
report:
  description: The whole report, also written as report.json.
  returned: always
  type: dict
  contains:
    schema:
      description: Version of this schema.
      type: int
      sample: 1
    run:
      description: The flow traced, from the plan (C(src), C(dst), C(proto), C(port)).
      type: dict
    src_node:
      description: Node of the source pod.
      type: str
    dst_node:
      description: Node of the destination pod (null outside the cluster).
      type: str
    encap:
      description: Encapsulation of the path.
      type: str
    healthy:
      description: As RV(healthy).
      type: bool
    complete:
      description: Every capture of the plan could be read.
      type: bool
    uncertain:
      description: tcpdump reported kernel drops on some capture.
      type: bool
    verdict:
      description: As RV(verdict).
      type: str
    why:
      description: As RV(why).
      type: str
    notes:
      description: Remarks (the plan's warnings, such as a pod captured on its bridge because its veth
        was not found; clock correction, hops that missed packets later hops saw, drops).
      type: list
      elements: str
    directions:
      description: Per direction (C(request), C(response)).
      type: dict
      contains:
        packets:
          description: Distinct packets of that direction seen on any hop.
          type: int
        status:
          description: C(ok), C(lost), C(partial) or C(none) (never seen).
          type: str
        reached:
          description: Last hop (C(node interface)) that saw packets of that direction.
          type: str
        stopped_at:
          description: First hop where packets were lost, or null.
          type: str
        retransmissions:
          description: Segments seen twice (same seq and length) at the direction's first hop.
          type: int
        cause:
          description:
            - What the captures say happened to this direction, or, when no packet says it, the counters of the
              nodes around the hop where it stopped (see O(captures[].counters)); null when neither says it.
            - A RST belongs to the direction it travels; an ICMP error to the direction of the packet it
              quotes (it travels the other way). The most telling one is kept - a refusal, a RST sent on
              the path, an ICMP unreachable, fragmentation needed, time exceeded, a RST from an endpoint.
            - A RST is sent by the pod of that side when it is first seen on the direction's first hop (its
              veth), else by something between the last captured hop without it and the hop it was first seen on.
          type: dict
          contains:
            kind:
              description: >-
                C(reset), C(icmp-unreachable), C(icmp-frag-needed), C(icmp-time-exceeded) or C(icmp-error) from the
                packets; C(mtu), C(netfilter-rule), C(route), C(rp-filter), C(conntrack), C(neighbour) or
                C(interface-drops) from the counters (C(mtu) - the last hop that saw the direction saw packets larger
                than the next hop interface's MTU).
              type: str
              sample: reset
            evidence:
              description: >-
                The packet as seen, one line per hop in path order (time of that node's clock in UTC, hop,
                addresses, flags or ICMP type, code and MTU, the quoted packet), and for a RST sent on the path
                the captured hops that did not see it; from the counters the node and what it counted (the rule
                with its packet and byte deltas, the route, the counter), then C(also:) the other candidates.
              type: list
              elements: str
              sample: ["12:53:31.841311 node-b calic25e805a467: 172.17.25.239.8443 > 172.17.25.79.51672 RST+ACK"]
            confidence:
              description: >-
                C(high) (seen on the sender's own hop, or named by an ICMP error's source address), C(medium)
                (hops before it were not captured; a RST from an endpoint after the connection was established),
                C(low) (fragmentation needed while the direction still got through); from the counters C(high) when
                a rule or the reverse path filter counted about the packets lost (or a route refuses the address),
                C(medium) when it counted somewhat more or fewer, or for conntrack, neighbour and interface counters.
              type: str
            text:
              description: One plain sentence.
              type: str
    clock:
      description: Clock offset of C(other) (dst node) versus C(reference) (src node).
      type: dict
      contains:
        offset_ms:
          description: Estimated offset in ms, null when it could not be estimated.
          type: float
        corrected:
          description: Whether cross-node delays were corrected with it.
          type: bool
        reference:
          description: Node whose clock the delays use.
          type: str
        other:
          description: The other node.
          type: str
        method:
          description: How the offset was estimated.
          type: str
    hops:
      description: The plan's hops in path order (request then response) with what each saw.
      type: list
      elements: dict
      contains:
        index:
          description: Position in its direction, from 1.
          type: int
        direction:
          description: C(request) or C(response).
          type: str
        node:
          description: Node.
          type: str
        interface:
          description: Interface.
          type: str
        role:
          description: C(src-veth), C(tunnel-out), C(underlay-out), C(underlay-in), C(tunnel-in), C(dst-veth).
          type: str
        encap:
          description: Encapsulation on that interface.
          type: str
        capture:
          description: Capture key.
          type: str
        status:
          description: >-
            C(seen); C(LOST) (nothing, while an earlier hop saw packets); C(partial) (packets without
            payload or TCP bytes seen on the previous hop are missing); C(missed) (nothing, while later
            hops saw packets: a capture problem); C(none) (the direction never started); C(unknown)
            (no capture).
          type: str
        packets:
          description: Packets of this direction seen there (null when unknown).
          type: int
        summary:
          description: TCP flags seen, most telling first, e.g. C(SYN PSH+ACK ACK).
          type: str
        flags:
          description: Packet count per TCP flag combination.
          type: dict
        first_seen:
          description: Epoch seconds of the first packet (that node's clock).
          type: float
        delay_ms:
          description: Median delay from the previous seen hop over matched packets (clock-corrected across nodes).
          type: float
        raw_delay_ms:
          description: The same without clock correction.
          type: float
        since_first_ms:
          description: Sum of the delays from the direction's first hop.
          type: float
        lost_from_previous:
          description: Packets seen on the previous captured hop and not here.
          type: int
        bytes_short:
          description: TCP bytes seen on the previous hop that never appeared here.
          type: int
        last_hop_of:
          description: Packets for which this was the last captured hop they reached.
          type: int
        retransmissions:
          description: Retransmitted segments counted at this capture when it is the direction's first hop.
          type: int
        duplicates:
          description: The same packet seen twice at this hop.
          type: int
        dropped:
          description: Kernel drops tcpdump reported for this capture.
          type: int
        probes_seen:
          description: Repeat mode - how many of the probes this hop saw (the first packet of each in this direction).
          type: int
          version_added: 0.2.0
        loss_pct:
          description: Repeat mode - percent of the probes this hop did not see.
          type: float
          version_added: 0.2.0
        latency_ms:
          description:
            - Repeat mode - C(p50), C(p95) and C(max) over the probes of the delay from the previous hop that saw
              the same packet, in ms (nearest rank; corrected for the clock offset across nodes); null on the first hop.
          type: dict
          version_added: 0.2.0
    repeat:
      description:
        - Repeat mode only (more than one probe) - C(count), C(lost) (probes whose request or response was lost),
          C(loss_pct), C(max_loss), C(healthy) (C(loss_pct) at most C(max_loss)), C(text) (the loss in words) and
          C(probes), one per probe with C(seq), C(sport) (TCP, UDP) or C(id) (ICMP, told apart by C(seq)), the
          probe's own C(status) and C(time_ms), C(request_lost) and C(response_lost).
        - The directions then also have C(sent) (probes whose packet of that direction was seen on a hop), C(lost)
          and C(lost_at), a list of C(between) (two hop names) and C(count).
      type: dict
      returned: when more than one probe was sent
      version_added: 0.2.0
    service:
      description:
        - A trace to a Service address only - the Service kube-proxy's rules name (C(name), C(port_name),
          C(kind), C(address), C(port), C(mode)), C(read_on) (the node whose rules were read), C(dnat_on) (the
          source node, whose DNAT picks the backend; for a NodePort the node addressed), C(endpoints) (IP:PORT), C(masquerade), C(rejected) (the
          REJECT rule, in nftables mode the no-endpoint-services element, when it has no endpoints; in nftables
          mode, with C(name) null, the cluster-ips-check rule refusing a port or address no Service has), C(backend)
          (C(ip), C(port), C(node), C(pod)), C(chosen_by) (the only endpoint, the DNAT node's conntrack entry
          cross-checked with the captures after the DNAT, or the captures alone) and C(line), one sentence.
        - C(conntrack) - what the DNAT node's conntrack said after the probe - C(node), C(by) (the command or file),
          C(entries) (the flow's, see the C(flow_conntrack) of M(hoptrace.k8s.capture)'s C(counters)), C(more) and
          C(text) (the entry used, one sentence); null when it was not read. C(snat_to) - the address the backend
          answers when that entry shows the connection masqueraded, else null.
        - C(backend.pod) is C(namespace/name) when the run read the Kubernetes API (see O(names)), else null.
        - C(requested) (C(name), the C(svc/namespace/name) given as dst; C(port_name); C(via), kubectl or
          kubernetes.core.k8s_info) when dst was the Service's name.
        - C(run) is then the flow to the backend.
      type: dict
      returned: when dst is a Service address
      version_added: 0.2.0
    wireguard:
      description:
        - Per direction whose underlay is WireGuard (C(request), C(response)) - how the encrypted underlay hops
          were matched. C(from) and C(to) (the two underlay hops), C(from_ip), C(to_ip), C(port) (the node pair
          and UDP port), C(sent) and C(received) (messages of the pair on each NIC - C(data), C(keepalive),
          C(handshake), C(cookie)), C(carried) (the sending tunnel hop's packets matched to a data message by
          size, order and timing), C(held_for_handshake) (packets that waited while the sender sent handshake
          initiations), C(inferred) (seen on the receiving tunnel hop though no message was matched) and C(lost)
          (matched on the sending NIC, not on the receiving one, by receiver index and counter).
        - The payload is encrypted, so these hops are matched by node pair, port, count and timing, not by
          content; a note says so.
      type: dict
      returned: when a direction crosses a WireGuard underlay
      version_added: 0.2.0
    captures:
      description: >-
        Per capture: C(key), C(node), C(interface), C(status), C(error), C(file), C(format), C(linktypes),
        C(records), C(matched), C(other) (packets of other flows), C(undecodable), C(snaplen_cut),
        C(truncated_tail) (file ends inside a record), C(captured), C(received), C(dropped).
      type: list
      elements: dict
'''
