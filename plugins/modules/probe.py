#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402 - ansible-test wants the imports below DOCUMENTATION/EXAMPLES/RETURN

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

DOCUMENTATION = r'''
---
module: probe
short_description: Send a TCP, UDP or ICMP probe from inside a pod's network namespace
version_added: 0.1.0
description:
  - Finds the network namespace of the pod that owns O(src) on this node without kubectl or
    crictl, among C(/var/run/netns/*) and C(/proc/*/ns/net) (one per namespace inode), as the
    namespace where O(src) can be bound; then, from a forked child that entered it with
    C(setns()), opens a TCP connection to O(dst):O(port), sends one UDP datagram, or sends an
    ICMP echo request (raw socket).
  - O(src) and O(dst) are both IPv4 or both IPv6; for IPv6, O(proto=icmp) sends an ICMPv6 echo request.
  - Reports the time taken or the exact failure - V(refused), V(timeout), V(unreachable),
    V(no route), V(prohibited), V(reset).
  - Needs no tool inside the pod.
  - The module fails only when it cannot probe (bad arguments, O(src) is not a pod on this node);
    a refused or timed-out probe is a result, see RV(ok) and RV(status).
  - O(src) must be routed on this node directly to a local device (the pod's veth); a pod of
    another node is refused with the route this node has for it. When that device is a veth, only
    the namespace at its other end is considered (its namespace id, read through rtnetlink, as
    C(ip netns list-id) shows it), so that a namespace elsewhere on the machine with the same
    address is never picked.
author:
  - hoptrace developers (@hoptrace)
options:
  src:
    description: IP address of the pod to send from; the pod must run on this node.
    type: str
    required: true
  dst:
    description: IP address to probe.
    type: str
    required: true
  port:
    description: Destination port; required for V(tcp) and V(udp), ignored for V(icmp).
    type: int
  proto:
    description: What to send.
    type: str
    choices: [tcp, udp, icmp]
    default: tcp
  timeout:
    description: Seconds to wait for each attempt (0.1 to 60).
    type: float
    default: 3
  count:
    description:
      - Number of probes (1 to 1000). With more than one, each is a new flow - TCP and UDP bind a new
        source port, ICMP sends a new echo sequence number - and they are started O(interval) seconds
        apart without waiting for the earlier ones, so the whole run takes at most
        (O(count) - 1) x O(interval) + O(timeout) seconds.
    type: int
    default: 1
  interval:
    description: Seconds between the starts of two probes (0 to 60; fractions such as 0.05 are fine).
    type: float
    default: 0.2
    version_added: 0.2.0
  size:
    description:
      - V(small) sends the usual small probe. V(max) sends an ICMP echo or a UDP datagram whose IP packet is as
        large as the MTU of the pod's route to O(dst), with DF set (neither the pod nor a router may fragment
        it), to find an MTU black hole that small probes pass; RV(probe_bytes) says how large.
      - V(max) needs O(proto=icmp) or O(proto=udp) (a TCP SYN carries no payload) and O(count=1).
    type: str
    choices: [small, max]
    default: small
    version_added: 0.2.0
notes:
  - Needs root (C(setns) and, for ICMP, a raw socket); run it with C(become).
  - Always C(changed=false) - it sends a few packets but changes nothing on the node or in the pod.
  - In check mode the namespace is found and nothing is sent (RV(status) is V(skipped)).
  - A UDP probe without reply is V(sent) with O(ignore:ok=true); only an ICMP port unreachable makes it V(refused).
attributes:
  check_mode:
    support: full
    description: Finds the pod's namespace and sends nothing.
seealso:
  - module: hoptrace.k8s.capture
  - module: hoptrace.k8s.route_info
'''

EXAMPLES = r'''
- name: Connect from the source pod to the destination pod's HTTPS port
  hoptrace.k8s.probe:
    src: 172.17.25.79
    dst: 172.17.25.239
    port: 443
  become: true
  register: probe

- name: Ping three times
  hoptrace.k8s.probe:
    src: 172.17.25.79
    dst: 172.17.25.239
    proto: icmp
    count: 3
  become: true

- name: Fifty connections, 50 ms apart, each from its own source port
  hoptrace.k8s.probe:
    src: 172.17.25.79
    dst: 172.17.25.239
    port: 443
    count: 50
    interval: 0.05
  become: true
'''

RETURN = r'''
ok:
  description: True when every attempt succeeded (connected, replied, answered or sent).
  returned: always
  type: bool
  sample: true
status:
  description: >-
    V(connected), V(replied), V(answered), V(sent), V(refused), V(timeout), V(unreachable),
    V(no route), V(prohibited), V(reset), V(error) - of the first failed attempt, else of the first one;
    V(skipped) in check mode.
  returned: always
  type: str
  sample: connected
error:
  description: The failure as the kernel reported it, or null.
  returned: always
  type: str
  sample: "[Errno 111] Connection refused"
time_ms:
  description: Mean connect (TCP), round-trip (ICMP) or reply (UDP) time of the successful attempts, in ms.
  returned: always
  type: float
  sample: 0.412
sent:
  description: Number of attempts.
  returned: always
  type: int
  sample: 1
succeeded:
  description: Number of successful attempts.
  returned: always
  type: int
  sample: 1
attempts:
  description:
    - Each attempt with C(seq), C(ok), C(status), C(time_ms), C(error), and the source port C(sport)
      (TCP, UDP) or the echo identifier C(id) (ICMP, whose C(seq) is the echo sequence number), so
      that each probe's packets can be told apart in the captures.
  returned: always
  type: list
  elements: dict
  sample: [{seq: 1, ok: true, status: connected, time_ms: 0.412, error: null, sport: 38362}]
netns:
  description: The namespace the probe ran in (a C(/var/run/netns) name when there is one).
  returned: always
  type: str
  sample: /proc/4242/ns/net
netns_matches:
  description: Every namespace where O(src) is local (more than one means a stale namespace).
  returned: always
  type: list
  elements: str
  sample: [/proc/4242/ns/net]
probe_bytes:
  description: With O(size=max), the size of the probe's IP packet (the MTU of the pod's route to O(dst)).
  returned: with O(size=max), not in check mode
  type: int
  sample: 1480
pod_dev:
  description: The device this node routes O(src) to (the pod's veth).
  returned: always
  type: str
  sample: cali41f14107a8d
src:
  description: Source address as given, normalised.
  returned: always
  type: str
  sample: 172.17.25.79
dst:
  description: Destination address, normalised.
  returned: always
  type: str
  sample: 172.17.25.239
port:
  description: Destination port (null for ICMP).
  returned: always
  type: int
  sample: 443
proto:
  description: Protocol probed.
  returned: always
  type: str
  sample: tcp
'''

import socket
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hoptrace.k8s.plugins.module_utils import _netns as ns
from ansible_collections.hoptrace.k8s.plugins.module_utils import _probe_schedule as sched
from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v


def argspec():
    return dict(
        src=dict(type='str', required=True),
        dst=dict(type='str', required=True),
        port=dict(type='int'),
        proto=dict(type='str', default='tcp', choices=['tcp', 'udp', 'icmp']),
        timeout=dict(type='float', default=3.0),
        count=dict(type='int', default=1),
        interval=dict(type='float', default=0.2),
        size=dict(type='str', default='small', choices=['small', 'max']),
    )


def validated(params):
    p = dict(params)
    p['src'] = v.check_ip(p['src'], 'src')
    p['dst'] = v.check_ip(p['dst'], 'dst')
    if (':' in p['src']) != (':' in p['dst']):
        raise ValueError('src %s and dst %s are of different IP versions: give two IPv4 or two IPv6 addresses'
                         % (p['src'], p['dst']))
    if p['proto'] == 'icmp':
        p['port'] = None
    elif p['port'] is None:
        raise ValueError('port is required with proto=%s: give the destination port, e.g. 443' % p['proto'])
    else:
        p['port'] = v.check_port(p['port'])
    if not 0.1 <= float(p['timeout']) <= 60:
        raise ValueError('timeout %s is out of range: give seconds from 0.1 to 60' % p['timeout'])
    p['count'] = v.check_range(p['count'], 'count', 1, 1000)
    if not 0 <= float(p['interval']) <= 60:
        raise ValueError('interval %s is out of range: give seconds from 0 to 60, e.g. 0.2' % p['interval'])
    if p['size'] == 'max' and (p['proto'] == 'tcp' or p['count'] > 1):
        raise ValueError('size=max sends one ICMP echo or UDP datagram as large as the MTU: use proto icmp or udp '
                         'and count 1 (a TCP SYN carries no payload)')
    return p


def pod_device(src, node):
    """The device this node routes ``src`` to directly, or ValueError explaining where it goes."""
    v4_text, v6_text = ns.read_proc_routes()
    route = ns.route_to(src, v4_text, v6_text)
    if route is None:
        raise ValueError('%s is not a pod on %s: this node has no route to it; run the probe on the node '
                         'that holds the pod' % (src, node))
    net, gateway, dev = route
    if gateway:
        raise ValueError('%s is not a pod on %s: this node routes it via %s dev %s (%s); run the probe on the node '
                         'that holds the pod' % (src, node, gateway, dev, net))
    return dev


def execute_module(module):
    node = socket.gethostname()
    try:
        p = validated(module.params)
        dev = pod_device(p['src'], node)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    paths = searched = ns.candidates()
    try:
        netnsid = ns.peer_netnsid(dev)
    except (OSError, socket.timeout):
        netnsid = None  # no rtnetlink answer: match on the address alone
    if netnsid is not None and netnsid >= 0:
        paths = ns.attached_to(paths, netnsid)

    def work():
        path, matches = ns.find_and_enter(p['src'], paths)
        if path is None:
            return {'netns': None, 'matches': []}
        if module.check_mode:
            return {'netns': path, 'matches': matches, 'attempts': None}
        if p['count'] > 1:
            attempts = sched.run_schedule(p['src'], p['dst'], p['proto'], p['port'], float(p['timeout']), p['count'],
                                          float(p['interval']))
        else:
            full = p['size'] == 'max'
            attempts = ns.run_probes(p['src'], p['dst'], p['proto'], p['port'], float(p['timeout']), 1, full=full)
            if full:
                return {'netns': path, 'matches': matches, 'attempts': attempts, 'probe_bytes': ns.route_mtu(p['src'], p['dst'])}
        return {'netns': path, 'matches': matches, 'attempts': attempts}

    limit = 10 + len(paths) * 0.05 + (p['count'] - 1) * float(p['interval']) + float(p['timeout']) + 1
    try:
        found = ns.in_child(work, limit)
    except (RuntimeError, OSError, ValueError) as exc:
        module.fail_json(msg='probe from %s to %s failed on %s: %s' % (p['src'], p['dst'], node, exc),
                         exception=traceback.format_exc())
    if not found['netns']:
        module.fail_json(msg='no network namespace on %s has %s (the node routes it to %s): searched %d namespaces '
                             'in /var/run/netns and /proc/*/ns/net%s; is the pod running, and is this its node?'
                             % (node, p['src'], dev, len(searched),
                                ' (%d at the other end of %s)' % (len(paths), dev) if paths is not searched else ''))
    result = dict(changed=False, src=p['src'], dst=p['dst'], port=p['port'], proto=p['proto'], pod_dev=dev,
                  netns=found['netns'], netns_matches=found['matches'])
    if found.get('probe_bytes'):
        result['probe_bytes'] = found['probe_bytes']
    if found['attempts'] is None:
        result.update(ok=True, status='skipped', error=None, time_ms=None, sent=0, succeeded=0, attempts=[])
    else:
        result.update(ns.summarise(found['attempts']), attempts=found['attempts'])
    if len(found['matches']) > 1:
        module.warn('%s is local in %d namespaces on %s (%s); probed from the first'
                    % (p['src'], len(found['matches']), node, ', '.join(found['matches'])))
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    execute_module(module)


if __name__ == '__main__':
    main()
