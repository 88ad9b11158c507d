# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the node's counter snapshots around a capture, and their deltas (node side, stdlib only).

The capture module takes one snapshot when it starts a node's captures (kept in the first
capture's state file) and one when it stops them, and returns the deltas: the DROP/REJECT rules
and DROP chain policies whose packet counters rose (iptables legacy and nft backends, IPv4 and
IPv6, nft's own tables), the kernel's drop counters (``_kstats.WANTED``), conntrack's
invalid/insert_failed/drop, the hop interfaces' rx/tx errors and drops; with the second snapshot
also what does not need a delta: the hop interfaces' MTU, FAILED/INCOMPLETE neighbours,
``ip_forward``/``rp_filter``, what the kernel does with the flow's addresses (``ip route get``) and,
after a trace to a Service, the conntrack entries of the flow on the node that translates it
(``_conntrack``: which backend its DNAT chose, whether it masqueraded).

Every reader runs at once (``Snapshot`` starts them all, ``collect`` waits) and the whole snapshot
is bounded by TIMEOUT seconds: a reader still running then is killed. A missing tool or file is a
note ("could not read ip6tables rules: not installed"), never a failure of the capture.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import ipaddress
import os
import subprocess
import time

from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
from ansible_collections.hoptrace.k8s.plugins.module_utils import _kstats as ks
from ansible_collections.hoptrace.k8s.plugins.module_utils import _links as lk
from ansible_collections.hoptrace.k8s.plugins.module_utils import _netfilter as nf
from ansible_collections.hoptrace.k8s.plugins.module_utils._bounded import LC_ENV

TIMEOUT = 2.0          # seconds for a whole snapshot
RULES_MAX = 32         # rules in a delta (the most packets first)
ROUTES_MAX = 8
# (source, tools to try in order): a family read by neither tool gets a note
SAVERS = (('iptables-legacy', ('iptables-legacy-save',)), ('iptables-nft', ('iptables-nft-save',)),
          ('ip6tables-legacy', ('ip6tables-legacy-save',)), ('ip6tables-nft', ('ip6tables-nft-save',)))
PLAIN_SAVERS = (('iptables', 'iptables-save'), ('ip6tables', 'ip6tables-save'))
FILES = (('snmp', '/proc/net/snmp'), ('netstat', '/proc/net/netstat'), ('snmp6', '/proc/net/snmp6'))
CONNTRACK_STAT = '/proc/net/stat/nf_conntrack'


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


class _Proc(object):
    """One reader started in the background."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **LC_ENV), universal_newlines=True)

    def result(self, deadline):
        """``(rc, out, err)``; rc None when it was killed at the deadline."""
        try:
            out, err = self.proc.communicate(timeout=max(0.01, deadline - time.time()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None, '', ''
        return self.proc.returncode, out, err


class Snapshot(object):
    """Start every reader at once; ``collect()`` waits (TIMEOUT at most) and returns the snapshot.

    ``which(name)`` finds a tool (``module.get_bin_path``), ``interfaces`` are the hop interfaces,
    ``routes`` the addresses to ask ``ip route get`` about, ``final`` the second snapshot (MTU,
    neighbours, sysctls and routes are read only then), ``flow`` (``_conntrack.check_flow``) the
    flow whose conntrack entries the second snapshot reads.
    """

    def __init__(self, which, interfaces, routes=(), final=False, timeout=TIMEOUT, flow=None):
        self.which, self.final = which, final
        self.flow = flow if final else None
        self.interfaces = sorted(set(i for i in interfaces if i and i != 'any'))
        self.routes = list(routes)[:ROUTES_MAX]
        self.started = time.time()
        self.timeout = timeout
        self.deadline = self.started + timeout
        self.notes = []
        self.procs = {}
        self.missing = []
        found = set()
        for source, tools in SAVERS:
            path = self._which(tools)
            if path:
                found.add(source.split('-', maxsplit=1)[0])
                self._start(('save', source), [path, '-c'])
        for family, tool in PLAIN_SAVERS:
            if family not in found:
                path = self._which((tool,))
                if path:
                    self._start(('save', family), [path, '-c'])
                else:
                    self.notes.append('could not read %s rules: %s is not installed' % (family, tool))
        self.nft = self._which(('nft',))
        if self.nft:
            self._start(('nft-tables',), [self.nft, 'list', 'tables'])
        self.ip = self._which(('ip',))
        if not self.ip:
            self.notes.append('could not read the interfaces, neighbours and routes: ip (iproute2) is not installed')
        else:
            if self.interfaces:
                self._start(('links',), [self.ip, '-s', '-j', 'link', 'show'])
            if final:
                self._start(('neigh',), [self.ip, '-j', 'neigh', 'show'])
                self._start(('addrs',), [self.ip, '-j', 'addr', 'show'])
                for addr in self.routes:
                    self._start(('route', addr), [self.ip, '-j', 'route', 'get', addr])
        self.conntrack = None
        if not os.path.exists(CONNTRACK_STAT):
            self.conntrack = self._which(('conntrack',))
            if self.conntrack:
                self._start(('conntrack',), [self.conntrack, '-S'])
        self.flow_tool = self._which(('conntrack',)) if self.flow else None
        if self.flow_tool:
            self._start(('flow-conntrack',), ct.argv(self.flow_tool, self.flow))

    def _which(self, tools):
        for tool in tools:
            path = self.which(tool)
            if path:
                return path
        return None

    def _start(self, key, argv):
        try:
            self.procs[key] = _Proc(argv)
        except (OSError, ValueError) as exc:
            self.notes.append('could not read %s: %s' % (' '.join(argv[:2]), exc))

    def _result(self, key, what):
        """``(out, err)`` of a reader, or None with a note when it failed or timed out."""
        proc = self.procs.get(key)
        if proc is None:
            return None
        rc, out, err = proc.result(self.deadline)
        if rc is None:
            self.notes.append('could not read %s: %s did not answer within %g s' % (what, os.path.basename(proc.argv[0]), self.timeout))
            return None
        if rc != 0 and key[0] != 'route':
            first = (err or out or '').strip().splitlines()[:1]
            said = (' (%s)' % first[0][:160]) if first else ''
            self.notes.append('could not read %s: %s exited %d%s' % (what, os.path.basename(proc.argv[0]), rc, said))
            return None
        return rc, out, err

    def collect(self):
        """The snapshot: ``{"t", "counters", "rules", "kernel", "conntrack", "links", ...}`` (see delta)."""
        snap = {'t': self.started, 'counters': {}, 'rules': {}, 'kernel': {}, 'conntrack': {}, 'links': {}}
        for key in sorted(k for k in self.procs if k[0] == 'save'):
            got = self._result(key, '%s rules' % key[1])
            if got:
                counters, rules = nf.parse_save(got[1], key[1])
                snap['counters'].update(counters)
                snap['rules'].update(rules)
        got = self._result(('nft-tables',), 'the nft tables')
        tables = nf.other_nft_tables(got[1]) if got else []
        if tables:
            proc = None
            try:
                proc = _Proc([self.nft, '-j', 'list', 'ruleset'])
            except (OSError, ValueError) as exc:
                self.notes.append('could not read the nft ruleset: %s' % exc)
            if proc:
                self.procs[('nft',)] = proc
                got = self._result(('nft',), 'the nft ruleset')
                if got:
                    counters, rules = nf.parse_nft(got[1], tables)
                    snap['counters'].update(counters)
                    snap['rules'].update(rules)
        for name, path in FILES:
            text = _read(path)
            if text is None:
                if name != 'snmp6' or os.path.exists('/proc/sys/net/ipv6'):
                    self.notes.append('could not read %s' % path)
                continue
            snap['kernel'].update(ks.parse_snmp6(text) if name == 'snmp6' else ks.parse_snmp(text))
        text = _read(CONNTRACK_STAT)
        if text is not None:
            snap['conntrack'] = ks.parse_nf_conntrack_stat(text)
        else:
            got = self._result(('conntrack',), 'the conntrack statistics')
            if got:
                snap['conntrack'] = ks.parse_conntrack_s(got[1])
            elif not self.conntrack:
                self.notes.append('could not read the conntrack statistics: no %s and conntrack is not installed' % CONNTRACK_STAT)
        got = self._result(('links',), 'the interface counters')
        if got:
            snap['links'] = lk.parse_links(got[1], self.interfaces)
        if self.final:
            self._final(snap)
        snap['notes'] = self.notes
        return snap

    def _final(self, snap):
        got = self._result(('neigh',), 'the neighbours')
        snap['neighbours'] = lk.parse_neigh(got[1], self.interfaces) if got else []
        got = self._result(('addrs',), 'the addresses')
        snap['addresses'] = lk.parse_addresses(got[1]) if got else []
        snap['sysctl'] = {}
        for name, path in ks.sysctl_paths(self.interfaces).items():
            text = _read(path)
            if text is not None and text.strip().lstrip('-').isdigit():
                snap['sysctl'][name] = int(text.strip())
        if self.flow:
            snap['flow_conntrack'] = self._flow_conntrack()
        snap['routes'] = {}
        for addr in self.routes:
            got = self._result(('route', addr), 'the route to %s' % addr)
            if not got:
                continue
            route = lk.parse_route_get(*got)
            if route.get('error') and self.ip:
                try:
                    table = _Proc([self.ip, '-6' if ':' in addr else '-4', '-j', 'route', 'show', 'table', 'all'])
                    rc, out, _err = table.result(self.deadline)
                except (OSError, ValueError):
                    rc, out = None, ''
                if rc == 0:
                    route['route'] = lk.refusing_route(out, addr)
            snap['routes'][addr] = route

    def _flow_conntrack(self):
        """The flow's conntrack entries: conntrack -L, else /proc/net/nf_conntrack, else a note why not."""
        proc = self.procs.get(('flow-conntrack',))
        if proc is not None:
            rc, out, err = proc.result(self.deadline)
            if rc == 0:
                return ct.bounded(ct.parse(out, self.flow), ' '.join(['conntrack'] + proc.argv[1:]))
            said = 'did not answer within %g s' % self.timeout if rc is None else 'exited %d (%s)' % (
                rc, ((err or out or '').strip().splitlines() or ['no message'])[0][:160])
            if not os.path.exists(ct.PROC):
                return ct.unread('conntrack -L %s and there is no %s' % (said, ct.PROC))
        elif not os.path.exists(ct.PROC):
            return ct.unread('conntrack %s and there is no %s' % ('could not be started' if self.flow_tool else 'is not installed', ct.PROC))
        return ct.read_proc(self.flow, self.deadline)


def compact(snap):
    """What the first snapshot keeps in the state file: its time and the non-zero counters."""
    return {'t': snap['t'], 'counters': dict((k, v) for k, v in snap['counters'].items() if v[0]),
            'kernel': snap['kernel'], 'conntrack': snap['conntrack'], 'links': snap['links'], 'notes': snap['notes']}


def _diff(after, before):
    return dict((k, v - before[k]) for k, v in after.items() if k in before and v - before[k] > 0)


def delta(before, after):
    """The counters' deltas between two snapshots, for the capture's result.

    ``{"seconds", "rules": [{source, table, chain, number, rule, target, policy, packets, bytes}],
    "kernel": {name: n}, "conntrack": {name: n}, "links": {iface: {mtu, rx_dropped, ...}},
    "neighbours": [...], "sysctl": {...}, "routes": {addr: {...}}, "addresses": [...], "notes": [...]}``: only rules that
    drop or reject (DROP/REJECT targets, DROP policies) whose packet counter rose, only counters
    that rose. Without ``before`` (no first snapshot) only what needs no delta, and a note.
    """
    notes = list(after.get('notes') or [])
    out = {'neighbours': after.get('neighbours', []), 'sysctl': after.get('sysctl', {}), 'routes': after.get('routes', {}),
           'addresses': after.get('addresses', [])}
    if 'flow_conntrack' in after:
        out['flow_conntrack'] = after['flow_conntrack']
    links = {}
    for iface, entry in (after.get('links') or {}).items():
        links[iface] = {'mtu': entry.get('mtu')}
    if before is None:
        notes.append('no counter snapshot was taken when the captures started: the counters\' deltas are unknown')
        out.update(seconds=None, rules=[], kernel={}, conntrack={}, links=links, notes=notes)
        return out
    for note in before.get('notes') or []:
        if note not in notes:
            notes.append(note)
    rules = []
    old = before.get('counters') or {}
    for key, (packets, size) in after['counters'].items():
        was = old.get(key, [0, 0])
        if packets - was[0] <= 0:
            continue
        info = nf.rule_info(key, after['rules'])
        if info['target'] not in nf.TERMINAL:
            continue
        info.update(packets=packets - was[0], bytes=max(0, size - was[1]))
        rules.append(info)
    rules.sort(key=lambda r: (-r['packets'], r['source'], r['table'], r['chain'], r['number']))
    if len(rules) > RULES_MAX:
        notes.append('%d more dropping rules counted packets (not listed)' % (len(rules) - RULES_MAX))
    for iface, entry in (after.get('links') or {}).items():
        counts = dict((k, v) for k, v in entry.items() if k != 'mtu')
        links[iface].update(_diff(counts, (before.get('links') or {}).get(iface) or {}))
    out.update(seconds=round(after['t'] - before['t'], 3), rules=rules[:RULES_MAX],
               kernel=_diff(after.get('kernel') or {}, before.get('kernel') or {}),
               conntrack=_diff(after.get('conntrack') or {}, before.get('conntrack') or {}), links=links, notes=notes)
    return out


def check_routes(addresses):
    """The addresses of the capture module's ``snapshot_routes``, canonical, or ValueError naming what to fix."""
    out = []
    for value in addresses or []:
        try:
            out.append(str(ipaddress.ip_address(str(value).strip())))
        except ValueError:
            raise ValueError('snapshot_routes must hold IP addresses; %r is not one' % (value,))
    if len(out) > ROUTES_MAX:
        raise ValueError('snapshot_routes holds %d addresses; give at most %d' % (len(out), ROUTES_MAX))
    return out


def keep_before(snap, state_paths, read_state, write_state):
    """Collect the first snapshot and keep it in the first of ``state_paths`` that holds a state."""
    before = compact(snap.collect())
    for path in state_paths:
        state = read_state(path)
        if state is not None:
            state['counters_before'] = before
            write_state(path, state)
            return True
    return False


def find_before(state_paths, read_state):
    """``(before or None, interfaces)`` from the state files of the captures being stopped."""
    before, interfaces = None, []
    for path in state_paths:
        state = read_state(path) or {}
        if before is None and state.get('counters_before'):
            before = state['counters_before']
        if state.get('interface'):
            interfaces.append(state['interface'])
    return before, interfaces
