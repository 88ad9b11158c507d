#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402 - ansible-test wants the imports below DOCUMENTATION/EXAMPLES/RETURN

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

DOCUMENTATION = r'''
---
module: capture
short_description: Start, stop and remove a bounded tcpdump capture on a node
version_added: 0.1.0
description:
  - Runs C(tcpdump) in the background on one interface with one BPF filter, writing
    C(<directory>/<id>.pcap), and returns only once tcpdump is listening.
  - Every capture ends by itself on the node at its O(deadline) even if the controller goes away,
    because tcpdump runs under coreutils C(timeout --signal=INT --kill-after=5 DEADLINE).
    The recorded pid is the one of C(timeout), which passes a SIGINT on to tcpdump.
  - Several captures may run at once on a node, one per O(id).
  - tcpdump is started from an argv list (never a shell), with C(--immediate-mode) so that packets
    are written at once (libpcap otherwise buffers about one second and a quick stop loses them),
    C(-U) packet-buffered output and the filter after C(--).
  - With O(state=started) the module first removes the leftovers of earlier captures from O(directory) -
    the files of captures whose controller went away (killed, disconnected) before removing them - and
    returns their names in RV(pruned); every removal is logged on the node (syslog or journal).
  - A capture is a leftover when its recorded process is gone and its recorded deadline passed more than
    10 minutes ago; without a readable C(<id>.state.json), when its newest file is older than 70 minutes
    (the longest deadline, 3600 s, plus 10 minutes).
  - Never pruned - a capture whose recorded process may still run; one stopped with
    O(remove_returned=false) (its files are kept on purpose; O(state=absent) still removes them); the
    captures of this module run; a lone C(<id>.log) (nothing shows it is a capture's); anything but
    regular files of the user running the module named C(<id>.pcap), C(<id>.log), C(<id>.state.json) or
    C(<id>.state.json.tmp) for a valid O(id), directly in O(directory) (not below it, never through a
    symlink); anything in a directory writable by its group or by others.
author:
  - hoptrace developers (@hoptrace)
options:
  id:
    description:
      - Name of the capture; becomes the file name C(<id>.pcap).
      - 1 to 64 characters from C(A-Z a-z 0-9 _ . -).
      - Exactly one of O(id) and O(captures) is required, except with O(state=absent) and O(older_than).
    type: str
  captures:
    description:
      - Several captures handled in one module run, so that a node arms, stops or removes all its
        captures in one round trip instead of one per capture.
      - With O(state=started) every filter is compiled first, then all tcpdumps are started at once
        and the module returns once every one of them is listening (or has failed).
      - The other options (O(state), O(snaplen), O(deadline), O(directory), ...) apply to every capture.
      - One capture failing does not stop the others; the module fails when any of them failed and
        RV(captures) says which and why.
      - Exactly one of O(id) and O(captures) is required, except with O(state=absent) and O(older_than).
    type: list
    elements: dict
    suboptions:
      id:
        description: As O(id).
        type: str
        required: true
      interface:
        description: As O(interface); with O(state=started) this or O(captures[].select) is required.
        type: str
      select:
        description:
          - Instead of O(captures[].interface) with O(state=started), the device of this node's own
            route to an address, as a dict with key C(route_to) (an IP address; the kernel's decision,
            C(ip route get), so policy rules count) and optional key C(local) (true requires a direct
            route, as to a pod's veth, and refuses one via a gateway).
          - The trace role uses it on the path node it did not read before planning; the resolved
            device is the C(interface) of its entry in RV(captures).
          - With C(local) and a route to a bridge (Flannel's C(cni0)), the device is the bridge port the
            pod's MAC was learned on (its veth), from C(ip neigh show dev cni0) and C(bridge fdb show br cni0).
        type: dict
      filter:
        description: As O(filter).
        type: str
        default: ''
  state:
    description:
      - V(started) starts the capture (nothing happens if O(id) is already running).
      - V(stopped) stops it with SIGINT and returns tcpdump's own counts; stopping a capture that
        already ended is not an error.
      - V(absent) stops it if needed and removes its files; with O(older_than) it removes old captures
        instead, see there.
    type: str
    choices: [started, stopped, absent]
    default: started
  interface:
    description:
      - Interface to capture on; must exist in the node's network namespace (V(any) is allowed).
      - Required with O(state=started).
    type: str
  filter:
    description:
      - BPF filter expression, for example C(ip proto 4 and host 10.240.0.9 and ip[36:4]==0xac1119ef).
      - It is compiled with C(tcpdump -d) before anything is started, so a bad filter fails clearly.
      - C(; ` $ \\), quotes, newline, NUL and words starting with C(-) are refused. BPF's own operators
        (C(&), C(|), C(<), C(>)) are allowed; the filter is one argv element of tcpdump, never shell text.
        Empty means every packet.
    type: str
    default: ''
  snaplen:
    description:
      - Bytes kept of each packet.
      - The default 192 holds the headers of the deepest encapsulation planned for, namely 14 Ethernet
        + 4 VLAN + 20 outer IPv4 + 8 UDP + 8 VXLAN + 14 inner Ethernet + 40 inner IPv6 + 60 TCP = 168,
        rounded up.
      - Ignored when O(payload=true).
    type: int
    default: 192
  payload:
    description:
      - Keep whole packets (snaplen 262144) instead of headers only.
    type: bool
    default: false
  count:
    description:
      - tcpdump exits after this many packets (C(-c)).
      - It is lowered further so that the file stays under O(max_size_mb), see there.
    type: int
    default: 100000
  max_size_mb:
    description:
      - Upper bound of the pcap file in MiB.
      - Enforced by lowering the packet count to C(max_size_mb * 2^20 / (snaplen + 16)) (each record
        is at most snaplen bytes plus a 16-byte header), not with tcpdump's C(-C) rotation, which
        would write C(<id>.pcap1) and more files.
    type: int
    default: 64
  deadline:
    description:
      - Seconds after which the capture ends by itself on the node (1 to 3600).
    type: int
    default: 120
  directory:
    description:
      - Directory of the capture files, created mode 0700; files are created mode 0600.
      - Must be absolute without components starting with C(.) (tcpdump's AppArmor profile
        refuses dot-directories and names not ending in C(.pcap)).
    type: path
    default: /var/tmp/hoptrace
  content_max_size:
    description:
      - With O(state=stopped), also return the capture file itself, base64-encoded in RV(content),
        when it holds at most this many bytes; V(0) never does.
      - Lets the controller write small captures (a probe's few packets) from the stop's own result
        instead of fetching each file in further round trips.
      - 0 to 67108864 (64 MiB).
    type: int
    default: 0
  remove_returned:
    description:
      - With O(state=stopped), remove the files of every capture whose content was returned in
        RV(content), in the same module run, so that no further round trip is needed to clean up.
      - The result is then the only copy of the capture; RV(removed) lists what was removed.
    type: bool
    default: false
  dest:
    description:
      - A folder on the controller. With O(state=stopped), the action plugin of the same name writes
        every stopped capture there as C(<interface>.pcap), from the stop's own result (O(content_max_size)
        defaults to 8 MiB then); a larger file is read with M(ansible.builtin.slurp), which works with
        C(become), and removed from the node afterwards when O(remove_returned=true).
      - RV(content) is then replaced by RV(dest) in the result.
      - Ignored with the other states and in check mode.
    type: path
  listen_timeout:
    description:
      - Seconds to wait for tcpdump to report C(listening on) before failing.
    type: int
    default: 15
  stop_timeout:
    description:
      - Seconds to wait for tcpdump to exit after SIGINT before it is killed.
    type: int
    default: 10
  older_than:
    description:
      - With O(state=absent) only, seconds (0 to 315360000). Without O(id) and O(captures), removes every
        capture in O(directory) whose newest file is older than this, for a clean-up task in a runbook;
        with them, only those of the named captures.
      - The safety rules of the automatic prune (see the description) apply, except that captures stopped
        with their files kept are removed too - never a capture whose recorded process may still run, never
        anything but the module's own files directly in O(directory).
      - RV(removed) lists the paths removed (in check mode, the paths that would be).
    type: int
    version_added: 0.2.0
  snapshot:
    description:
      - Read the node's counters when the captures start (kept in the first capture's state file) and again when
        they stop, and return the deltas in RV(counters) - in the same module runs, no extra round trip.
      - Read-only and bounded to 2 seconds; a missing tool (C(iptables-save), C(nft), C(conntrack)) is a note in
        RV(counters), never a failure of the capture. Not taken in check mode.
    type: bool
    default: true
    version_added: 0.2.0
  snapshot_routes:
    description:
      - With O(state=stopped) and O(snapshot), addresses (at most 8) whose route the second snapshot reads with
        C(ip route get), so that a blackhole, unreachable or prohibit route to the flow's pods is seen.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  snapshot_conntrack:
    description:
      - With O(state=stopped) and O(snapshot), a flow whose conntrack entries the second snapshot reads (read-only,
        within its time bound) and returns in RV(counters) as C(flow_conntrack) - after a trace to a Kubernetes
        Service, on the node whose kube-proxy rules translate it, so that the entry tells which backend the DNAT
        chose and whether the connection was masqueraded.
      - Read with C(conntrack -L) filtered on the original tuple (C(-f ipv6) for IPv6), or from
        C(/proc/net/nf_conntrack) when the tool is missing; neither there is a note in C(flow_conntrack), never a
        failure of the capture.
    type: dict
    suboptions:
      src:
        description: The original source address (the source pod's).
        type: str
        required: true
      dst:
        description: The original destination address (the Service's ClusterIP, or the node address of a NodePort).
        type: str
        required: true
      port:
        description: The original destination port (the Service's port, or the NodePort).
        type: int
        required: true
      proto:
        description: The protocol.
        type: str
        choices: [tcp, udp, sctp]
        default: tcp
      sports:
        description: The original source ports of the probes' connections (at most 64); empty keeps every source port.
        type: list
        elements: int
        default: []
    version_added: 0.2.0
  prebuild:
    description:
      - Names (FQCN) of modules that later tasks of the play will run. While this module runs on the
        node, the action plugin builds their payloads on the controller, where Ansible keeps them for
        the rest of the run (see M(hoptrace.k8s.route_info)'s option of the same name).
      - Controller side only; nothing changes on the node.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
notes:
  - Needs root (or CAP_NET_RAW and CAP_NET_ADMIN); run it with C(become). As root tcpdump is given
    C(-Z root) so that it does not drop to user C(tcpdump), which could not write the private
    directory.
  - Needs C(tcpdump) and coreutils C(timeout) on the node.
  - Files are C(<id>.pcap) (tcpdump's output), C(<id>.log) (tcpdump's stderr) and
    C(<id>.state.json) (what the module needs to stop it, and what the prune reads). Give every node and
    inventory name its own ids (the C(hoptrace.k8s.trace) role's are C(<prefix>-<host>-<interface>)) when
    nodes share a capture directory, for example on NFS.
  - A directory writable by others or sticky (C(/tmp), C(/var/tmp) itself) is refused; use a directory
    of its own.
attributes:
  check_mode:
    support: full
    description: >-
      Validates the arguments, the interface and the filter (compiled with C(tcpdump -d)) and starts, stops and removes
      nothing; RV(pruned) and RV(removed) list what would be removed.
seealso:
  - module: hoptrace.k8s.route_info
  - module: hoptrace.k8s.probe
'''

EXAMPLES = r'''
- name: Capture IPIP packets to and from the peer node carrying the destination pod
  hoptrace.k8s.capture:
    id: run1-eth0
    interface: eth0
    filter: ip proto 4 and host 10.240.0.9 and (ip[32:4]==0xac1119ef or ip[36:4]==0xac1119ef)
    deadline: 60
  become: true
  register: cap

- name: Stop it and get tcpdump's counts
  hoptrace.k8s.capture:
    id: run1-eth0
    state: stopped
  become: true
  register: stopped

- name: Remove the files once fetched
  hoptrace.k8s.capture:
    id: run1-eth0
    state: absent
  become: true

- name: Runbook clean-up - remove every capture file older than a day (running captures are kept)
  hoptrace.k8s.capture:
    state: absent
    older_than: 86400
  become: true

- name: Start two captures in one module run (both listening when it returns)
  hoptrace.k8s.capture:
    captures:
      - {id: run2-eth0, interface: eth0, filter: ip proto 4 and host 10.240.0.9}
      - {id: run2-tunl0, interface: tunl0, filter: host 172.17.25.239}
    deadline: 60
  become: true
  register: caps
'''

RETURN = r'''
id:
  description: The capture id.
  returned: with O(id)
  type: str
  sample: run1-eth0
captures:
  description:
    - With O(captures), one result per capture in the order given, each with the keys this module
      returns for a single capture (RV(id), RV(file), RV(pid), RV(captured), ...) and for the
      captures that failed C(failed=true) and C(msg).
  returned: with O(captures)
  type: list
  elements: dict
  sample: [{id: run2-eth0, file: /var/tmp/hoptrace/run2-eth0.pcap, pid: 41231, link_type: EN10MB, failed: false}]
select_note:
  description:
    - In an entry of RV(captures) started with O(captures[].select) for a pod behind a bridge (Flannel's
      C(cni0)) whose veth was not found (no neighbour or fdb entry yet), why the capture runs on the
      bridge itself.
  returned: when that happened
  type: str
  version_added: 0.2.0
  sample: "node-b has no neighbour entry for the pod 10.244.1.2 on cni0 yet (ip neigh show dev cni0): capturing on cni0 itself,
    which sees the pod's traffic to other nodes but not the pod's veth"
file:
  description: Path of the pcap file on the node.
  returned: with O(id)
  type: str
  sample: /var/tmp/hoptrace/run1-eth0.pcap
pid:
  description: Pid of the C(timeout) process supervising tcpdump (signal it with SIGINT to stop).
  returned: state=started and not check mode
  type: int
  sample: 41231
interface:
  description: Interface captured on.
  returned: state=started, and state=stopped when the capture is known
  type: str
  sample: eth0
filter:
  description: BPF filter in use.
  returned: state=started
  type: str
  sample: ip proto 4 and host 10.240.0.9
snaplen:
  description: Bytes kept of each packet.
  returned: state=started
  type: int
  sample: 192
count:
  description: Packet bound passed to tcpdump (after the size bound).
  returned: state=started
  type: int
  sample: 100000
link_type:
  description: Link type tcpdump reported (EN10MB, RAW, LINUX_SLL2, ...).
  returned: state=started and not check mode
  type: str
  sample: EN10MB
started_at:
  description: When tcpdump was listening, seconds since the epoch on the node's clock.
  returned: state=started and not check mode
  type: float
  sample: 1764156000.125
deadline_at:
  description: When the capture ends by itself, seconds since the epoch on the node's clock.
  returned: state=started and not check mode
  type: float
  sample: 1764156120.1
listen_ms:
  description: Milliseconds from starting tcpdump until it reported C(listening on).
  returned: state=started, when it was started by this task
  type: float
  sample: 21.4
argv:
  description: The command that was (or would be) run.
  returned: state=started
  type: list
  elements: str
  sample: [timeout, --signal=INT, --kill-after=5, '120', tcpdump, --immediate-mode, -U, -nn, -i, eth0]
size:
  description: Size of the pcap file in bytes (0 when missing).
  returned: state=stopped
  type: int
  sample: 4096
captured:
  description: tcpdump's C(packets captured) count; null if tcpdump printed none (killed).
  returned: state=stopped
  type: int
  sample: 12
received:
  description: tcpdump's C(packets received by filter) count.
  returned: state=stopped
  type: int
  sample: 12
dropped:
  description: tcpdump's C(packets dropped by kernel) count.
  returned: state=stopped
  type: int
  sample: 0
ended_at:
  description: When the capture ended (epoch seconds, the node's clock) - for V(stopped), the moment this task
    sent tcpdump SIGINT, after which it may miss packets; else when tcpdump was found ended. The analysis does
    not count as lost a packet that an earlier hop saw after a later hop's capture had ended.
  returned: state=stopped, for a capture this node started
  type: float
  sample: 1796298618.84
ended_by:
  description: >-
    Why tcpdump ended - V(stopped) (by this task), V(deadline), V(count) (packet or size bound),
    V(exited) (anything else, see RV(log)), V(unknown) (no record of the capture on the node).
  returned: state=stopped
  type: str
  sample: stopped
dest:
  description: Where the capture was written on the controller (with O(dest)).
  returned: state=stopped with O(dest), when the file is not empty
  type: str
  sample: /home/ops/traces/20261126T120422Z-ba8336/node-b/tunl0.pcap
content:
  description: The pcap file, base64-encoded.
  returned: state=stopped, when the file is not empty and at most O(content_max_size) bytes
  type: str
  sample: 1MOyoQIABAAAAAAAAAAAAMAAAAABAAAA
log:
  description: tcpdump's stderr.
  returned: state=stopped
  type: str
  sample: "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 192 bytes"
removed:
  description: Files removed (in check mode, that would be removed).
  returned: state=absent, or state=stopped with O(remove_returned) when the content was returned
  type: list
  elements: str
  sample: [/var/tmp/hoptrace/run1-eth0.pcap, /var/tmp/hoptrace/run1-eth0.log]
counters:
  description:
    - With O(snapshot), once per module run (not per capture), what changed on the node between the start and
      the stop of its captures, plus what needs no delta.
    - C(rules) - the DROP/REJECT rules and DROP chain policies whose packet counter rose, each with C(source)
      (C(iptables-nft), C(ip6tables-legacy), C(nft), ...), C(table), C(chain), C(number) (in its chain, 0 for a
      policy), C(rule) (as C(iptables-save) prints it), C(target), C(policy), C(packets) and C(bytes).
    - C(kernel) - the drop counters of C(/proc/net/snmp), C(/proc/net/netstat) and C(/proc/net/snmp6) that rose
      (C(Ip.InDiscards), C(TcpExt.IPReversePathFilter), C(Ip6InNoRoutes), ...); C(conntrack) - the rise of
      C(invalid), C(insert_failed), C(drop), C(early_drop), C(icmp_error).
    - C(links) - per captured interface its C(mtu) and the rise of C(rx_errors), C(rx_dropped), C(tx_errors),
      C(tx_dropped); C(neighbours) - FAILED or INCOMPLETE entries on them; C(sysctl) - C(ip_forward) and
      C(rp_filter); C(routes) - what C(ip route get) said for each of O(snapshot_routes); C(addresses) - the node's
      own addresses (loopback's left out).
    - C(flow_conntrack) - with O(snapshot_conntrack) only, the flow's conntrack entries - C(by) (the command or
      file read, null when neither could be), C(entries) (at most 16, each with C(family), C(proto), C(timeout),
      C(state), C(orig) and C(reply) (C(src), C(dst), C(sport), C(dport), and C(packets), C(bytes) when the kernel
      accounts them), C(flags) (C(UNREPLIED), C(ASSURED), ...), C(mark), C(zone)), C(more) (entries left out) and
      C(note) (why it could not be read, or was cut).
    - C(seconds) between the snapshots, and C(notes) - what could not be read and why.
  returned: state=stopped with O(snapshot), not in check mode
  type: dict
  sample: {seconds: 2.41, rules: [{source: iptables-nft, table: filter, chain: cali-pi-_hvIhg5e42MGXRa9paIF, number: 1,
           rule: '-A cali-pi-_hvIhg5e42MGXRa9paIF -m comment --comment "cali:x8K2Rn6C3d_N4cVm" -j DROP', target: DROP,
           policy: false, packets: 3, bytes: 180}], kernel: {}, conntrack: {}, links: {eth0: {mtu: 1500}},
           neighbours: [], sysctl: {net.ipv4.ip_forward: 1}, routes: {}, notes: []}
pruned:
  description:
    - Names of the files of earlier captures removed from O(directory) before starting (in check mode, that would
      be removed), see the description; also logged on the node.
    - With O(captures), once in the module's result (not per capture).
  returned: state=started
  type: list
  elements: str
  sample: [ht-20261126T120422Z-ba8336-node-a-eth0.log, ht-20261126T120422Z-ba8336-node-a-eth0.pcap,
           ht-20261126T120422Z-ba8336-node-a-eth0.state.json]
'''

import socket
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hoptrace.k8s.plugins.module_utils import _capture_files as cf
from ansible_collections.hoptrace.k8s.plugins.module_utils import _capture_procs as pr
from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
from ansible_collections.hoptrace.k8s.plugins.module_utils import _counters as ctr
from ansible_collections.hoptrace.k8s.plugins.module_utils import _select as sel
from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v
from ansible_collections.hoptrace.k8s.plugins.module_utils._tcpdump import CaptureFailed

PER_CAPTURE = ('id', 'interface', 'filter')
MAX_OLDER_THAN = 10 * 365 * 86400


def argspec():
    return dict(
        id=dict(type='str'),
        captures=dict(type='list', elements='dict', options=dict(
            id=dict(type='str', required=True),
            interface=dict(type='str'),
            select=dict(type='dict'),
            filter=dict(type='str', default=''),
        )),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'absent']),
        interface=dict(type='str'),
        filter=dict(type='str', default=''),
        snaplen=dict(type='int', default=td.HEADER_SNAPLEN),
        payload=dict(type='bool', default=False),
        count=dict(type='int', default=100000),
        max_size_mb=dict(type='int', default=64),
        deadline=dict(type='int', default=120),
        directory=dict(type='path', default='/var/tmp/hoptrace'),
        content_max_size=dict(type='int', default=0),
        remove_returned=dict(type='bool', default=False),
        dest=dict(type='path'),
        listen_timeout=dict(type='int', default=15),
        stop_timeout=dict(type='int', default=10),
        older_than=dict(type='int'),
        snapshot=dict(type='bool', default=True),
        snapshot_routes=dict(type='list', elements='str', default=[]),
        snapshot_conntrack=dict(type='dict', options=dict(
            src=dict(type='str', required=True), dst=dict(type='str', required=True), port=dict(type='int', required=True),
            proto=dict(type='str', choices=['tcp', 'udp', 'sctp'], default='tcp'),
            sports=dict(type='list', elements='int', default=[]))),
        # used by the action plugin on the controller; never reaches the node
        prebuild=dict(type='list', elements='str', default=[]),
    )


def validated(params, node):
    """Checked copy of the parameters; raises ValueError naming what to fix."""
    p = dict(params)
    p.pop('captures', None)
    p['id'] = v.check_id(p['id'])
    p['directory'] = v.check_directory(p['directory'])
    p['stop_timeout'] = v.check_range(p['stop_timeout'], 'stop_timeout', 1, 300)
    p['content_max_size'] = v.check_range(p['content_max_size'], 'content_max_size', 0, 64 * 1024 * 1024)
    if p.get('older_than') is not None:
        p['older_than'] = check_older_than(p['older_than'])
    if p['state'] != 'started':
        return p
    if not p.get('interface'):
        raise ValueError('interface is required with state=started: give the interface to capture on, e.g. eth0')
    p['interface'] = v.check_ifname(p['interface'])
    p['filter'] = v.check_filter(p['filter'] or '')
    p['snaplen'] = td.PAYLOAD_SNAPLEN if p['payload'] else v.check_range(p['snaplen'], 'snaplen', 68, td.PAYLOAD_SNAPLEN)
    p['count'] = v.check_range(p['count'], 'count', 1, 100000000)
    p['max_size_mb'] = v.check_range(p['max_size_mb'], 'max_size_mb', 1, 65536)
    p['deadline'] = v.check_range(p['deadline'], 'deadline', 1, 3600)
    p['listen_timeout'] = v.check_range(p['listen_timeout'], 'listen_timeout', 1, 120)
    v.check_interface_exists(p['interface'], node)
    return p


def check_older_than(value):
    return v.check_range(value, 'older_than', 0, MAX_OLDER_THAN)


HANDLERS = {'started': pr.start_all, 'stopped': pr.stop_all, 'absent': pr.absent_all}


def _run(module, ps, node):
    """Results (dicts, or CaptureFailed) of the state's handler for every capture of ``ps``."""
    state = module.params['state']
    try:
        return HANDLERS[state](module, ps, node)
    except ValueError as exc:
        return [CaptureFailed(str(exc))] * len(ps)
    except OSError as exc:
        ids = ', '.join(p['id'] for p in ps if not isinstance(p, CaptureFailed))
        return [CaptureFailed('capture %s (%s) failed on %s: %s' % (ids, state, node, exc),
                              exception=traceback.format_exc())] * len(ps)


def clean_directory(module):
    """state=absent with older_than and no ids: remove every old capture of the directory."""
    try:
        older_than = check_older_than(module.params['older_than'])
        directory = v.check_directory(module.params['directory'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    cf.clean_directory(module, directory, older_than)


def snapshot_begin(module, ps):
    """Start the node's counter readers for this start or stop (None when not wanted); see _counters."""
    state = module.params['state']
    if not module.params['snapshot'] or module.check_mode or state == 'absent':
        return None
    valid = [p for p in ps if not isinstance(p, CaptureFailed)]
    paths = [td.paths(p['directory'], p['id'])['state'] for p in valid]
    if state == 'started':
        return ctr.Snapshot(module.get_bin_path, [p['interface'] for p in valid]), paths, None
    before, interfaces = ctr.find_before(paths, td.read_state)
    routes = ctr.check_routes(module.params['snapshot_routes'])
    flow = ct.check_flow(module.params['snapshot_conntrack']) if module.params.get('snapshot_conntrack') else None
    return ctr.Snapshot(module.get_bin_path, interfaces, routes, final=True, flow=flow), paths, before


def snapshot_end(taken, out):
    """Keep the first snapshot in a state file, or put the deltas into the result ``out``."""
    if taken is None or not isinstance(out, dict):
        return
    snap, paths, before = taken
    if snap.final:
        out['counters'] = ctr.delta(before, snap.collect())
    else:
        ctr.keep_before(snap, paths, td.read_state, td.write_state)


def execute_module(module):
    node = socket.gethostname()
    params = module.params
    if params.get('older_than') is not None and params['state'] != 'absent':
        module.fail_json(msg='older_than is only used with state=absent (the clean-up of old capture files); '
                             'with state=%s leave it out' % params['state'])
    try:
        ctr.check_routes(params['snapshot_routes'])
        if params.get('snapshot_conntrack'):
            ct.check_flow(params['snapshot_conntrack'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params.get('id') is None and params.get('captures') is None:
        if params['state'] == 'absent' and params.get('older_than') is not None:
            clean_directory(module)
        module.fail_json(msg='one of the following is required: id, captures (or older_than with state=absent)')
    started = params['state'] == 'started'
    if params.get('captures') is None:
        try:
            p = validated(params, node)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        pruned = cf.prune_before_start(module, [p]) if started else None
        taken = snapshot_begin(module, [p])
        result = _run(module, [p], node)[0]
        snapshot_end(taken, result)
        if isinstance(result, CaptureFailed):
            module.fail_json(msg=result.msg, **dict(result.extra, **({'pruned': pruned} if started else {})))
        if started:
            result.update(pruned=pruned, changed=bool(result.get('changed') or pruned))
        module.exit_json(**result)

    ps, notes = [], {}
    for entry in module.params['captures']:
        entry_params = dict(module.params, **dict((k, entry.get(k)) for k in PER_CAPTURE))
        try:
            if module.params['state'] == 'started' and entry.get('select') and not entry.get('interface'):
                entry_params['interface'], notes[entry.get('id')] = sel.resolve(module, entry['select'], node)
            ps.append(validated(entry_params, node))
        except ValueError as exc:
            ps.append(CaptureFailed(str(exc)))
    pruned = cf.prune_before_start(module, ps) if started else None
    taken = snapshot_begin(module, ps)
    results = []
    for entry, result in zip(module.params['captures'], _run(module, ps, node)):
        if isinstance(result, CaptureFailed):
            result = dict(result.extra, id=entry.get('id'), failed=True, changed=False, msg=result.msg)
        else:
            result = dict(result, failed=False)
            if notes.get(entry.get('id')):
                result['select_note'] = notes[entry.get('id')]
        results.append(result)
    failed = [r for r in results if r['failed']]
    out = {'captures': results, 'changed': any(r.get('changed') for r in results) or bool(pruned)}
    snapshot_end(taken, out)
    if started:
        out['pruned'] = pruned
    if failed:
        module.fail_json(msg='%d of %d captures failed on %s: %s' % (
            len(failed), len(results), node, '; '.join('%s: %s' % (r['id'], r['msg']) for r in failed)), **out)
    module.exit_json(**out)


def main():
    # id or captures is required, except for state=absent with older_than (execute_module checks it)
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True, mutually_exclusive=[('id', 'captures')])
    execute_module(module)


if __name__ == '__main__':
    main()
