# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: the tcpdump processes of the capture module; not a public API.
"""The capture module's tcpdump processes: started all at once, stopped, killed (node side, stdlib only).

``start_all`` compiles every capture's filter at once (``tcpdump -d``, ``run_at_once``), launches every
tcpdump under coreutils ``timeout`` (``Launched``, ``_tcpdump.Detached``) and waits until each one
says ``listening on`` or fails; ``stop_all`` sends SIGINT to every running capture first, then waits
for each (``finish_stop`` kills the process group of one that does not end) and returns tcpdump's
counts, and the file itself when it is small; ``absent_all`` stops and removes captures. Results come
in the order of the captures given, a ``CaptureFailed`` for each one that failed. The argument checks
stay in the module; the directory and its clean-up are ``_capture_files``'s.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import base64
import os
import signal
import threading
import time

from ansible_collections.hoptrace.k8s.plugins.module_utils import _capture_files as cf
from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
from ansible_collections.hoptrace.k8s.plugins.module_utils._tcpdump import CaptureFailed
from ansible_collections.hoptrace.k8s.plugins.module_utils._bounded import LC_ENV


def public(state, keys=('id', 'pid', 'file', 'interface', 'filter', 'snaplen', 'count', 'link_type',
                        'started_at', 'deadline_at', 'argv')):
    return dict((k, state.get(k)) for k in keys)


def run_at_once(module, argvs):
    """``(rc, out, err)`` of each argv, run at the same time, in order (module.run_command runs one
    at a time: compiling three filters one after the other costs about 0.1 s more on every node).
    Each runs through module.run_command in a thread of its own; run_command keeps no shared state."""
    if len(argvs) == 1:
        return [module.run_command(argvs[0], environ_update=LC_ENV)]
    results = [None] * len(argvs)

    def run(i):
        try:
            results[i] = module.run_command(argvs[i], environ_update=LC_ENV)
        except Exception as exc:  # noqa: BLE001 - reported as that command's failure
            results[i] = (1, '', '%s' % exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(argvs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def compile_filters(module, planned, node):
    """Check that each planned capture's filter compiles for its interface (``tcpdump -d``), all at
    once; returns None or the CaptureFailed for each entry of ``planned`` ``[(p, tcpdump), ...]``."""
    answers = run_at_once(module, [td.compile_argv(tcpdump, p['interface'], p['filter']) for p, tcpdump in planned])
    errors = []
    for (p, _tcpdump), (rc, out, err) in zip(planned, answers):
        why = td.error_text(err) or err.strip() or out.strip()
        errors.append(None if rc == 0 else CaptureFailed(
            "filter %r does not compile for interface '%s' on %s: %s" % (p['filter'], p['interface'], node, why),
            stderr=err, rc=rc))
    return errors


def plan_start(module, p, node):
    """``(result, None, None)`` for a capture that is already running, else ``(None, state, tcpdump)``
    for one whose filter is still to be compiled (:func:`compile_filters`) before it launches."""
    paths = td.paths(p['directory'], p['id'])
    current = td.read_state(paths['state'])
    if td.is_running(current):
        result = public(current)
        result.update(changed=False, msg='capture %s is already running' % p['id'])
        return result, None, None
    tcpdump = module.get_bin_path('tcpdump')
    if not tcpdump:
        raise CaptureFailed('tcpdump is not installed on %s: install the tcpdump package' % node)
    timeout_bin = module.get_bin_path('timeout')
    if not timeout_bin:
        raise CaptureFailed('timeout (coreutils) is not installed on %s: install coreutils' % node)
    count = td.effective_count(p['count'], p['snaplen'], p['max_size_mb'])
    argv = td.capture_argv(timeout_bin, p['deadline'], td.tcpdump_argv(
        tcpdump, p['interface'], p['filter'], p['snaplen'], count, paths['file'], os.geteuid() == 0))
    state = {'id': p['id'], 'file': paths['file'], 'log': paths['log'], 'interface': p['interface'],
             'filter': p['filter'], 'snaplen': p['snaplen'], 'count': count, 'argv': argv, 'pid': None,
             'deadline': p['deadline']}
    return None, state, tcpdump


def would_start(state):
    """Check mode: what a start would do (the filter compiled)."""
    result = public(state)
    result.update(changed=True, msg='would start tcpdump on %s' % state['interface'])
    return result


class Launched(object):
    """A tcpdump started by this run, until it reports ``listening on`` (or fails to)."""

    def __init__(self, p, state):
        self.p, self.state = p, state
        paths = td.paths(p['directory'], p['id'])
        self.state_path = paths['state']
        for name in ('file', 'log'):
            if os.path.lexists(paths[name]):
                os.unlink(paths[name])
        self.begin = time.time()
        self.proc = td.Detached(state['argv'], paths['log'], dict(os.environ, **LC_ENV))
        state.update(pid=self.proc.pid, pid_start=td.proc_start_time(self.proc.pid),
                     deadline_at=self.begin + p['deadline'])
        td.write_state(self.state_path, state)
        self.limit = self.begin + p['listen_timeout']

    def check(self, node):
        """The result once listening; None while waiting; raises CaptureFailed when it failed."""
        p, state = self.p, self.state
        text = td.read_text(state['log'])
        listening = td.parse_listening(text)
        if listening:
            now = time.time()
            state.update(started_at=now, link_type=listening['link_type'])
            td.write_state(self.state_path, state)
            result = public(state)
            result.update(changed=True, listen_ms=round((now - self.begin) * 1000.0, 1))
            return result
        if self.proc.poll() is not None:
            raise CaptureFailed("tcpdump could not capture on '%s' on %s: %s"
                                % (p['interface'], node, td.error_text(text) or 'it exited with status %s' % self.proc.returncode),
                                log=text, rc=self.proc.returncode, argv=state['argv'])
        if time.time() > self.limit:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise CaptureFailed("tcpdump did not report 'listening on' within %ds on %s; it was killed. Its output: %s"
                                % (p['listen_timeout'], node, text.strip() or '(none)'), argv=state['argv'])
        return None


def start_all(module, ps, node):
    """Start every capture of ``ps`` (validated parameters, or CaptureFailed) at once.

    Filters are compiled first (all at once), then every tcpdump is started, then this waits until each one
    listens; returns one result (or CaptureFailed) per entry, in order.
    """
    results = list(ps)
    planned = []
    for i, p in enumerate(ps):
        if isinstance(p, CaptureFailed):
            continue
        try:
            result, state, tcpdump = plan_start(module, p, node)
        except CaptureFailed as exc:
            results[i] = exc
            continue
        if state is None:
            results[i] = result
        else:
            planned.append((i, p, state, tcpdump))
    ready = []
    errors = compile_filters(module, [(p, tcpdump) for _i, p, _state, tcpdump in planned], node) if planned else []
    for (i, p, state, _tcpdump), error in zip(planned, errors):
        if error is not None:
            results[i] = error
        elif module.check_mode:
            results[i] = would_start(state)
        else:
            ready.append((i, p, state))
    if ready:
        cf.prepare_directory(ready[0][1]['directory'])
    waiting = [(i, Launched(p, state)) for i, p, state in ready]
    while waiting:
        still = []
        for i, launched in waiting:
            try:
                result = launched.check(node)
            except CaptureFailed as exc:
                results[i] = exc
                continue
            if result is None:
                still.append((i, launched))
            else:
                results[i] = result
        waiting = still
        if waiting:
            time.sleep(0.01)
    return results


def wait_gone(state, seconds):
    limit = time.time() + seconds
    while td.is_running(state):
        if time.time() > limit:
            return False
        time.sleep(0.02)
    return True


def signal_stop(state):
    """SIGINT to a running capture; the time it was sent (None if it was not running)."""
    if not td.is_running(state):
        return None
    signalled_at = time.time()
    os.kill(state['pid'], signal.SIGINT)
    return signalled_at


def finish_stop(state, seconds):
    if not wait_gone(state, seconds):
        kill_group(state['pid'])
        wait_gone(state, 5)


def stop_all(module, ps, node):
    """Stop every capture of ``ps`` at once (SIGINT to all, then wait for each); results in order."""
    results = list(ps)
    states = {}
    for i, p in enumerate(ps):
        if isinstance(p, CaptureFailed):
            continue
        state = td.read_state(td.paths(p['directory'], p['id'])['state'])
        signalled = signal_stop(state) if state is not None and not module.check_mode else None
        states[i] = (state, signalled)
    for i, (state, signalled) in states.items():
        p = ps[i]
        paths = td.paths(p['directory'], p['id'])
        result = {'id': p['id'], 'file': paths['file'], 'changed': False}
        if state is not None and state.get('interface'):
            result['interface'] = state['interface']
        if state is None:
            result.update(size=cf.size(paths['file']), ended_by='unknown', log=td.read_text(paths['log']),
                          **td.parse_counts(td.read_text(paths['log'])))
            result['msg'] = 'no capture %s on %s' % (p['id'], node)
            results[i] = result
            continue
        if module.check_mode and td.is_running(state):
            result.update(changed=True, msg='would stop capture %s (pid %s)' % (p['id'], state['pid']))
            results[i] = result
            continue
        if signalled is not None:
            result['changed'] = True
            finish_stop(state, p['stop_timeout'])
            state['ended_by'] = 'stopped'
            # a packet after SIGINT may be missed (the wait for the exit took 20 ms or more: with
            # the exit time, a late packet upstream looked lost between the nodes)
            state['ended_at'] = signalled
        text = td.read_text(paths['log'])
        counts = td.parse_counts(text)
        if not state.get('ended_by'):
            state['ended_at'] = time.time()
            state['ended_by'] = td.ended_by(counts, state, state['ended_at'])
        if not module.check_mode:
            # stopped without remove_returned: the caller keeps the files on purpose, so a later
            # start does not prune them (state=absent, with or without older_than, still removes them)
            state['keep'] = not p['remove_returned']
            td.write_state(paths['state'], state)
        result.update(size=cf.size(paths['file']), ended_by=state['ended_by'], ended_at=state.get('ended_at'), log=text, **counts)
        if 0 < result['size'] <= p['content_max_size']:
            with open(paths['file'], 'rb') as handle:
                result['content'] = base64.b64encode(handle.read()).decode('ascii')
            if p['remove_returned'] and not module.check_mode:
                result['removed'] = [paths[k] for k in ('file', 'log', 'state') if os.path.lexists(paths[k])]
                for path in result['removed']:
                    os.unlink(path)
                result['changed'] = True
        results[i] = result
    return results


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def absent_all(module, ps, node):
    """Stop (all at once) and remove the files of every capture of ``ps``; results in order."""
    if module.params.get('older_than') is not None:
        return cf.absent_older(module, ps, node)
    results = list(ps)
    todo = []
    for i, p in enumerate(ps):
        if isinstance(p, CaptureFailed):
            continue
        paths = td.paths(p['directory'], p['id'])
        state = td.read_state(paths['state'])
        existing = [paths[k] for k in ('file', 'log', 'state') if os.path.lexists(paths[k])]
        results[i] = {'id': p['id'], 'file': paths['file'], 'removed': existing, 'changed': bool(existing)}
        if not module.check_mode:
            todo.append((p, state, existing, signal_stop(state)))
    for p, state, existing, signalled in todo:
        if signalled is not None:
            finish_stop(state, p['stop_timeout'])
        for path in existing:
            os.unlink(path)
    return results
