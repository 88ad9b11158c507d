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
author:
  - hoptrace developers (@hoptrace)
options:
  id:
    description:
      - Name of the capture; becomes the file name C(<id>.pcap).
      - 1 to 64 characters from C(A-Z a-z 0-9 _ . -).
    type: str
    required: true
  state:
    description:
      - V(started) starts the capture (nothing happens if O(id) is already running).
      - V(stopped) stops it with SIGINT and returns tcpdump's own counts; stopping a capture that
        already ended is not an error.
      - V(absent) stops it if needed and removes its files.
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
notes:
  - Needs root (or CAP_NET_RAW and CAP_NET_ADMIN); run it with C(become). As root tcpdump is given
    C(-Z root) so that it does not drop to user C(tcpdump), which could not write the private
    directory.
  - Needs C(tcpdump) and coreutils C(timeout) on the node.
  - Files are C(<id>.pcap) (tcpdump's output), C(<id>.log) (tcpdump's stderr) and
    C(<id>.state.json) (what the module needs to stop it).
attributes:
  check_mode:
    support: full
    description: Validates the arguments, the interface and the filter (compiled with C(tcpdump -d)) and starts nothing.
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
'''

RETURN = r'''
id:
  description: The capture id.
  returned: always
  type: str
  sample: run1-eth0
file:
  description: Path of the pcap file on the node.
  returned: always
  type: str
  sample: /var/tmp/hoptrace/run1-eth0.pcap
pid:
  description: Pid of the C(timeout) process supervising tcpdump (signal it with SIGINT to stop).
  returned: state=started and not check mode
  type: int
  sample: 41231
interface:
  description: Interface captured on.
  returned: state=started
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
ended_by:
  description: >-
    Why tcpdump ended - V(stopped) (by this task), V(deadline), V(count) (packet or size bound),
    V(exited) (anything else, see RV(log)), V(unknown) (no record of the capture on the node).
  returned: state=stopped
  type: str
  sample: stopped
log:
  description: tcpdump's stderr.
  returned: state=stopped
  type: str
  sample: "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 192 bytes"
removed:
  description: Files removed.
  returned: state=absent
  type: list
  elements: str
  sample: [/var/tmp/hoptrace/run1-eth0.pcap, /var/tmp/hoptrace/run1-eth0.log]
'''

import os
import signal
import socket
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v

LC_ENV = {'LC_ALL': 'C', 'LANG': 'C'}


def argspec():
    return dict(
        id=dict(type='str', required=True),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'absent']),
        interface=dict(type='str'),
        filter=dict(type='str', default=''),
        snaplen=dict(type='int', default=td.HEADER_SNAPLEN),
        payload=dict(type='bool', default=False),
        count=dict(type='int', default=100000),
        max_size_mb=dict(type='int', default=64),
        deadline=dict(type='int', default=120),
        directory=dict(type='path', default='/var/tmp/hoptrace'),
        listen_timeout=dict(type='int', default=15),
        stop_timeout=dict(type='int', default=10),
    )


def validated(params, node):
    """Checked copy of the parameters; raises ValueError naming what to fix."""
    p = dict(params)
    p['id'] = v.check_id(p['id'])
    p['directory'] = v.check_directory(p['directory'])
    p['stop_timeout'] = v.check_range(p['stop_timeout'], 'stop_timeout', 1, 300)
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


def prepare_directory(directory):
    """Create the private capture directory (0700) or check an existing one is ours and private."""
    if not os.path.lexists(directory):
        os.makedirs(directory, 0o700)
    st = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise ValueError('%s is not a directory: remove it or choose another directory' % directory)
    if st.st_uid != os.geteuid():
        raise ValueError('%s belongs to uid %d, not to the user running the module (%d): remove it or choose another directory'
                         % (directory, st.st_uid, os.geteuid()))
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)


def public(state, keys=('id', 'pid', 'file', 'interface', 'filter', 'snaplen', 'count', 'link_type',
                        'started_at', 'deadline_at', 'argv')):
    return dict((k, state.get(k)) for k in keys)


def compile_filter(module, tcpdump, p, node):
    rc, out, err = module.run_command(td.compile_argv(tcpdump, p['interface'], p['filter']), environ_update=LC_ENV)
    if rc != 0:
        why = td.error_text(err) or err.strip() or out.strip()
        module.fail_json(msg="filter %r does not compile for interface '%s' on %s: %s"
                         % (p['filter'], p['interface'], node, why), stderr=err, rc=rc)


def start(module, p, node):
    paths = td.paths(p['directory'], p['id'])
    current = td.read_state(paths['state'])
    if td.is_running(current):
        result = public(current)
        result.update(changed=False, msg='capture %s is already running' % p['id'])
        return result
    tcpdump = module.get_bin_path('tcpdump')
    if not tcpdump:
        module.fail_json(msg='tcpdump is not installed on %s: install the tcpdump package' % node)
    timeout_bin = module.get_bin_path('timeout')
    if not timeout_bin:
        module.fail_json(msg='timeout (coreutils) is not installed on %s: install coreutils' % node)
    compile_filter(module, tcpdump, p, node)
    count = td.effective_count(p['count'], p['snaplen'], p['max_size_mb'])
    argv = td.capture_argv(timeout_bin, p['deadline'], td.tcpdump_argv(
        tcpdump, p['interface'], p['filter'], p['snaplen'], count, paths['file'], os.geteuid() == 0))
    state = {'id': p['id'], 'file': paths['file'], 'log': paths['log'], 'interface': p['interface'],
             'filter': p['filter'], 'snaplen': p['snaplen'], 'count': count, 'argv': argv, 'pid': None,
             'deadline': p['deadline']}
    if module.check_mode:
        result = public(state)
        result.update(changed=True, msg='would start tcpdump on %s' % p['interface'])
        return result

    prepare_directory(p['directory'])
    for name in ('file', 'log'):
        if os.path.lexists(paths[name]):
            os.unlink(paths[name])
    begin = time.time()
    proc = td.Detached(argv, paths['log'], dict(os.environ, **LC_ENV))
    state.update(pid=proc.pid, pid_start=td.proc_start_time(proc.pid), deadline_at=begin + p['deadline'])
    td.write_state(paths['state'], state)

    limit = begin + p['listen_timeout']
    while True:
        text = td.read_text(paths['log'])
        listening = td.parse_listening(text)
        if listening:
            now = time.time()
            state.update(started_at=now, link_type=listening['link_type'])
            td.write_state(paths['state'], state)
            result = public(state)
            result.update(changed=True, listen_ms=round((now - begin) * 1000.0, 1))
            return result
        if proc.poll() is not None:
            module.fail_json(msg="tcpdump could not capture on '%s' on %s: %s"
                             % (p['interface'], node, td.error_text(text) or 'it exited with status %s' % proc.returncode),
                             log=text, rc=proc.returncode, argv=argv)
        if time.time() > limit:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            module.fail_json(msg="tcpdump did not report 'listening on' within %ds on %s; it was killed. Its output: %s"
                             % (p['listen_timeout'], node, text.strip() or '(none)'), argv=argv)
        time.sleep(0.01)


def wait_gone(state, seconds):
    limit = time.time() + seconds
    while td.is_running(state):
        if time.time() > limit:
            return False
        time.sleep(0.02)
    return True


def stop(module, p, node):
    paths = td.paths(p['directory'], p['id'])
    state = td.read_state(paths['state'])
    result = {'id': p['id'], 'file': paths['file'], 'changed': False}
    if state is None:
        result.update(size=_size(paths['file']), ended_by='unknown', log=td.read_text(paths['log']),
                      **td.parse_counts(td.read_text(paths['log'])))
        result['msg'] = 'no capture %s on %s' % (p['id'], node)
        return result
    if td.is_running(state):
        result['changed'] = True
        if module.check_mode:
            result.update(msg='would stop capture %s (pid %s)' % (p['id'], state['pid']))
            return result
        os.kill(state['pid'], signal.SIGINT)
        if not wait_gone(state, p['stop_timeout']):
            _kill_group(state['pid'])
            wait_gone(state, 5)
        state['ended_by'] = 'stopped'
        state['ended_at'] = time.time()
    text = td.read_text(paths['log'])
    counts = td.parse_counts(text)
    if not state.get('ended_by'):
        state['ended_at'] = time.time()
        state['ended_by'] = td.ended_by(counts, state, state['ended_at'])
    if not module.check_mode:
        td.write_state(paths['state'], state)
    result.update(size=_size(paths['file']), ended_by=state['ended_by'], log=text, **counts)
    return result


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def absent(module, p, node):
    paths = td.paths(p['directory'], p['id'])
    state = td.read_state(paths['state'])
    existing = [paths[k] for k in ('file', 'log', 'state') if os.path.lexists(paths[k])]
    result = {'id': p['id'], 'file': paths['file'], 'removed': existing, 'changed': bool(existing)}
    if module.check_mode:
        return result
    if td.is_running(state):
        os.kill(state['pid'], signal.SIGINT)
        if not wait_gone(state, p['stop_timeout']):
            _kill_group(state['pid'])
            wait_gone(state, 5)
    for path in existing:
        os.unlink(path)
    return result


def execute_module(module):
    node = socket.gethostname()
    try:
        p = validated(module.params, node)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        if p['state'] == 'started':
            result = start(module, p, node)
        elif p['state'] == 'stopped':
            result = stop(module, p, node)
        else:
            result = absent(module, p, node)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='capture %s (%s) failed on %s: %s' % (p['id'], p['state'], node, exc),
                         exception=traceback.format_exc())
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    execute_module(module)


if __name__ == '__main__':
    main()
