# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: tcpdump argv, log parsing and capture bookkeeping; not a public API.
"""Pure helpers for the ``capture`` module.

A capture runs as ``timeout --signal=INT --kill-after=5 DEADLINE tcpdump ...`` in its own
session. coreutils ``timeout`` is the node-side deadline: it sends SIGINT to tcpdump when the
deadline passes (tcpdump then flushes and prints its counts) and SIGKILL 5 s later if tcpdump
is still there, whether or not the controller is still alive. The recorded pid is the one of
``timeout``: a SIGINT sent to it is passed on to tcpdump, so stopping early and the deadline end
the same way.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import json
import os
import re

HEADER_SNAPLEN = 192
PAYLOAD_SNAPLEN = 262144
PCAP_FILE_HEADER = 24
PCAP_RECORD_HEADER = 16
KILL_AFTER = 5

_COUNT_RE = re.compile(r'^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)\s*$', re.M)
_LISTEN_RE = re.compile(r'^tcpdump: listening on (\S+), link-type (\S+)(?: \(([^)]*)\))?, (?:snapshot length|capture size) (\d+)',
                        re.M)
_NOISE = ('listening on', 'verbose output suppressed', 'data link type')


def effective_count(count, snaplen, max_size_mb):
    """Packet bound that keeps the file under ``max_size_mb``.

    Each pcap record is at most ``snaplen`` bytes plus a 16-byte header, so capping the count
    bounds the size without tcpdump's ``-C`` rotation (which renames files and would leave
    ``<id>.pcap1`` behind, a name AppArmor's tcpdump profile refuses).
    """
    budget = max_size_mb * 1024 * 1024 - PCAP_FILE_HEADER
    by_size = max(1, budget // (snaplen + PCAP_RECORD_HEADER))
    return int(min(count, by_size))


def tcpdump_argv(tcpdump, interface, bpf_filter, snaplen, count, pcap_file, as_root):
    """argv of tcpdump itself; the filter comes last, after ``--``, as one element."""
    argv = [tcpdump, '--immediate-mode', '-U', '-nn', '-i', interface, '-s', str(snaplen), '-c', str(count),
            '-w', pcap_file]
    if as_root:
        # Debian/Ubuntu builds drop to user tcpdump; keep root so the 0700 directory stays private.
        argv += ['-Z', 'root']
    argv.append('--')
    if bpf_filter:
        argv.append(bpf_filter)
    return argv


def capture_argv(timeout_bin, deadline, tcpdump_args):
    """Wrap tcpdump's argv in coreutils timeout, the deadline enforced on the node."""
    return [timeout_bin, '--signal=INT', '--kill-after=%d' % KILL_AFTER, str(int(deadline))] + list(tcpdump_args)


def compile_argv(tcpdump, interface, bpf_filter):
    """argv that checks a filter compiles for an interface's link type without capturing."""
    argv = [tcpdump, '-d', '-i', interface, '--']
    if bpf_filter:
        argv.append(bpf_filter)
    return argv


def parse_counts(log_text):
    """tcpdump's closing counts from its stderr; None for counts it did not print."""
    counts = {'captured': None, 'received': None, 'dropped': None, 'dropped_by_interface': None}
    keys = {'captured': 'captured', 'received by filter': 'received', 'dropped by kernel': 'dropped',
            'dropped by interface': 'dropped_by_interface'}
    for number, what in _COUNT_RE.findall(log_text or ''):
        counts[keys[what]] = int(number)
    return counts


def parse_listening(log_text):
    """``{interface, link_type, snaplen}`` once tcpdump printed ``listening on``, else None."""
    match = _LISTEN_RE.search(log_text or '')
    if not match:
        return None
    return {'interface': match.group(1), 'link_type': match.group(2), 'link_type_name': match.group(3),
            'snaplen': int(match.group(4))}


def error_text(log_text):
    """tcpdump's own error lines (without the banner and counts), joined."""
    lines = []
    for line in (log_text or '').splitlines():
        line = line.strip()
        if not line or _COUNT_RE.match(line) or any(n in line for n in _NOISE):
            continue
        lines.append(line)
    return ' '.join(lines)


class Detached(object):
    """A process started in its own session with stdin/stdout on /dev/null and stderr to a file.

    fork + setsid + exec rather than subprocess, so that the module can return (and the SSH
    session close) while the process keeps running; the module waits on it only while it starts.
    """

    def __init__(self, argv, log_path, env, umask=0o077):
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        pid = os.fork()
        if pid == 0:  # child: never returns
            try:
                os.setsid()
                os.umask(umask)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(log_fd, 2)
                os.closerange(3, 65536)
                os.execve(argv[0], argv, env)
            except BaseException as exc:  # report why exec failed in the log the module reads
                try:
                    os.write(2, ('tcpdump: cannot run %s: %s\n' % (argv[0], exc)).encode('utf-8'))
                finally:
                    os._exit(127)
        os.close(log_fd)
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        return self.returncode

    def wait(self):
        if self.returncode is None:
            status = os.waitpid(self.pid, 0)[1]
            self.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        return self.returncode


def paths(directory, capture_id):
    base = os.path.join(directory, capture_id)
    return {'file': base + '.pcap', 'log': base + '.log', 'state': base + '.state.json'}


def read_state(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_state(path, state):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        json.dump(state, handle, sort_keys=True)
    os.rename(tmp, path)


def read_text(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def proc_start_time(pid):
    """Start time of ``pid`` in clock ticks (field 22 of /proc/PID/stat), None if gone or a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(')') + 2:].split()
    if fields[0] in ('Z', 'X'):
        return None
    return int(fields[19])


def is_running(state):
    """True while the recorded process is alive and is still the one we started (no pid reuse)."""
    if not state or not state.get('pid'):
        return False
    start = proc_start_time(int(state['pid']))
    return start is not None and start == state.get('pid_start')


def ended_by(counts, state, ended_at):
    """Why a capture that is no longer running ended: count, deadline or exited."""
    if counts.get('captured') is not None and counts['captured'] >= state.get('count', 0):
        return 'count'
    if ended_at is not None and ended_at >= state.get('deadline_at', 0) - 0.5:
        return 'deadline'
    return 'exited'
