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

import errno
import json
import os
import re
import stat

HEADER_SNAPLEN = 192
PAYLOAD_SNAPLEN = 262144
PCAP_FILE_HEADER = 24
PCAP_RECORD_HEADER = 16
KILL_AFTER = 5

_COUNT_RE = re.compile(r'^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)\s*$', re.M)
_LISTEN_RE = re.compile(r'^tcpdump: listening on (\S+), link-type (\S+)(?: \(([^)]*)\))?, (?:snapshot length|capture size) (\d+)',
                        re.M)
_NOISE = ('listening on', 'verbose output suppressed', 'data link type')


class CaptureFailed(Exception):
    """One capture could not be handled: ``msg`` and extra result keys."""

    def __init__(self, msg, **extra):
        Exception.__init__(self, msg)
        self.msg = msg
        self.extra = extra


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


# Leftovers: the files of captures whose controller went away before removing them.
# A capture's files are <id><suffix>; the longest suffix is tried first.
SUFFIXES = ('.state.json.tmp', '.state.json', '.pcap', '.log')
# A name that proves a capture (a lone <name>.log could be anybody's log file).
EVIDENCE = ('.state.json.tmp', '.state.json', '.pcap')
PRUNE_AFTER = 600            # seconds after a capture's deadline before its files are leftovers
MAX_DEADLINE = 3600          # the longest deadline the module accepts
STATE_MAX_BYTES = 65536


def split_name(name, valid_id):
    """``(id, suffix)`` when ``name`` is one of a capture's file names, else None.

    ``valid_id`` tells whether a string is an id the module accepts (``_validate.check_id``).
    """
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            cid = name[:-len(suffix)]
            if valid_id(cid):
                return cid, suffix
    return None


def may_be_running(state):
    """True unless the state's recorded process is certainly gone (or is another process now)."""
    if not isinstance(state, dict) or not state.get('pid'):
        return False
    try:
        start = proc_start_time(int(state['pid']))
    except (TypeError, ValueError, OverflowError):
        return False
    return start is not None and state.get('pid_start') in (None, start)


def _deadline(state, cid):
    """The recorded deadline (epoch seconds) of a state file that belongs to ``cid``, else None."""
    if not isinstance(state, dict) or state.get('id') != cid:
        return None
    value = state.get('deadline_at')
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def leftover_reason(cid, mtimes, state, now, older_than=None, named=False):
    """Why the files of capture ``cid`` may be removed, or None to keep them.

    ``mtimes`` maps each of its suffixes present to the file's mtime; ``state`` is its parsed state
    file, None when missing or unreadable. Never a capture whose recorded process may still run.
    With ``older_than`` None (the automatic prune when a capture starts): a capture whose recorded
    deadline passed more than PRUNE_AFTER seconds ago and that was not stopped with its files kept
    on purpose (``keep``); without a usable state file, one whose newest file is older than
    MAX_DEADLINE + PRUNE_AFTER (no capture runs longer after writing its files). With ``older_than``
    (the operator's clean-up): a capture whose newest file is older than that many seconds.
    ``named``: the operator named the id, so a lone ``<id>.log`` counts as the capture's.
    """
    if not mtimes or (not named and not any(s in mtimes for s in EVIDENCE)):
        return None
    if may_be_running(state):
        return None
    age = now - max(mtimes.values())
    if older_than is not None:
        return 'its files are %d s old (older_than %d)' % (age, older_than) if age > older_than else None
    deadline = _deadline(state, cid)
    if deadline is not None:
        if state.get('keep'):
            return None
        if now > deadline + PRUNE_AFTER:
            return 'its deadline passed %d s ago' % (now - deadline)
        return None
    if age > MAX_DEADLINE + PRUNE_AFTER:
        return 'no readable state file and its files are %d s old' % age
    return None


def _read_state_at(dir_fd, name):
    """The parsed state file ``name`` in the directory ``dir_fd`` (never through a symlink), or None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        data = os.read(fd, STATE_MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > STATE_MAX_BYTES:
        return None
    try:
        state = json.loads(data.decode('utf-8'))
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _ours(dir_fd, name):
    """lstat of ``name`` when it is a regular file of this user (not a symlink), else None."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        return None
    return st


def shared_directory(st):
    """Why a directory with stat ``st`` is not private to this user, or None when it is."""
    if st.st_uid != os.geteuid():
        return 'it belongs to uid %d' % st.st_uid
    if st.st_mode & (stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH):
        return 'it is shared (mode %04o)' % stat.S_IMODE(st.st_mode)
    return None


def prune(directory, valid_id, now, exclude=(), older_than=None, only=None, dry_run=False):
    """Remove the files of leftover captures (see leftover_reason) from ``directory``.

    Only directly in ``directory`` (not below it), only regular files of this user whose names are
    ``<id><suffix>`` (never through a symlink: the directory is opened with O_NOFOLLOW and every name
    is looked up relative to it), only in a directory private to this user. ``exclude``: ids never
    touched (the captures of this run); ``only``: ids to consider (None: every id found, with the
    evidence rule). ``dry_run``: remove nothing, report what would be removed.
    Returns ``{'removed': [file names], 'captures': {id: reason}, 'errors': [...], 'skipped': why or None}``.
    """
    out = {'removed': [], 'captures': {}, 'errors': [], 'skipped': None}
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            out['skipped'] = '%s cannot be opened as a directory: %s' % (directory, exc.strerror)
        return out
    try:
        why = shared_directory(os.fstat(dir_fd))
        if why:
            out['skipped'] = 'nothing pruned in %s: %s' % (directory, why)
            return out
        groups = {}
        for name in os.listdir(dir_fd):
            parts = split_name(name, valid_id)
            if not parts or parts[0] in exclude or (only is not None and parts[0] not in only):
                continue
            st = _ours(dir_fd, name)
            if st is not None:
                groups.setdefault(parts[0], {})[parts[1]] = (name, st.st_mtime)
        for cid in sorted(groups):
            files = groups[cid]
            state = _read_state_at(dir_fd, files['.state.json'][0]) if '.state.json' in files else None
            reason = leftover_reason(cid, dict((s, m) for s, (n, m) in files.items()), state, now,
                                     older_than=older_than, named=only is not None)
            if not reason:
                continue
            out['captures'][cid] = reason
            # the state file last: what is left after a failure still says what it was
            for suffix in ('.pcap', '.log', '.state.json.tmp', '.state.json'):
                if suffix not in files:
                    continue
                name = files[suffix][0]
                if dry_run:
                    out['removed'].append(name)
                    continue
                if _ours(dir_fd, name) is None:
                    continue
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:     # gone already: another run pruned it first
                        out['errors'].append('%s: %s' % (name, exc.strerror))
                    continue
                out['removed'].append(name)
    finally:
        os.close(dir_fd)
    out['removed'].sort()
    return out
