# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the conntrack entries of one flow, read on a node after the probe (node side, stdlib only).

After a trace to a Service, the node whose kube-proxy rules translate the flow reads the entries
whose original tuple is the flow: ``conntrack -L -p PROTO --orig-src SRC --orig-dst DST --dport
PORT`` (``-f ipv6`` for IPv6), or the matching lines of /proc/net/nf_conntrack when the tool is
missing. The reply tuple's source is the backend kube-proxy's DNAT chose; a reply destination that
is not the original source means the connection was masqueraded (SNAT).

:func:`parse_line` reads the three formats the kernel and conntrack-tools print - ``conntrack -L``,
``conntrack -L -o extended`` and /proc/net/nf_conntrack (both start with the family's name and
number, and the latter writes IPv6 addresses in full) - with or without ``[UNREPLIED]``,
``[ASSURED]``, ``packets=``/``bytes=``, ``mark=``, ``zone=``, ``secctx=``, ``use=``. Pure except
:func:`read_proc`.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import ipaddress
import time

PROC = '/proc/net/nf_conntrack'
ENTRIES_MAX = 16           # entries of the flow kept (the probes' connections, a few earlier ones)
SPORTS_MAX = 64
PROTOS = {'tcp': 6, 'udp': 17, 'sctp': 132, 'dccp': 33, 'udplite': 136, 'icmp': 1, 'icmpv6': 58}
NAMES = dict((number, name) for name, number in PROTOS.items())
TUPLE_KEYS = ('src', 'dst', 'sport', 'dport', 'type', 'code', 'id', 'packets', 'bytes')
NUMBERS = ('sport', 'dport', 'type', 'code', 'id', 'packets', 'bytes')


def check_flow(value):
    """The flow of ``snapshot_conntrack`` (``src``, ``dst``, ``port``, ``proto``, ``sports``) in
    canonical form, or ValueError naming what to fix."""
    if not isinstance(value, dict):
        raise ValueError('snapshot_conntrack must be a dictionary with src, dst, port and proto; got %r' % (value,))
    out = {}
    for key in ('src', 'dst'):
        try:
            out[key] = str(ipaddress.ip_address(str(value.get(key) or '').strip()))
        except ValueError:
            raise ValueError('snapshot_conntrack.%s must be an IP address; %r is not one' % (key, value.get(key)))
    if (':' in out['src']) != (':' in out['dst']):
        raise ValueError('snapshot_conntrack.src %s and dst %s are not of one address family' % (out['src'], out['dst']))
    proto = str(value.get('proto') or 'tcp').strip().lower()
    if proto not in ('tcp', 'udp', 'sctp'):
        raise ValueError('snapshot_conntrack.proto must be tcp, udp or sctp (a Service port); got %r' % (value.get('proto'),))
    out['proto'] = proto
    out['port'] = _port(value.get('port'), 'port')
    sports = value.get('sports') or []
    if not isinstance(sports, (list, tuple)) or len(sports) > SPORTS_MAX:
        raise ValueError('snapshot_conntrack.sports must be a list of at most %d source ports' % SPORTS_MAX)
    out['sports'] = sorted(set(_port(p, 'sports') for p in sports))
    return out


def _port(value, name):
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError('snapshot_conntrack.%s must hold port numbers (1 to 65535); %r is not one' % (name, value))
    return port


def argv(tool, flow):
    """``conntrack -L`` filtered on the flow's original tuple (the source port is filtered after, as
    the probes may have used several)."""
    out = [tool, '-L']
    if ':' in flow['src']:
        out += ['-f', 'ipv6']
    return out + ['-p', flow['proto'], '--orig-src', flow['src'], '--orig-dst', flow['dst'], '--dport', str(flow['port'])]


def _addr(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def parse_line(line):
    """One entry as ``{"family", "proto", "timeout", "state", "orig", "reply", "flags", "mark", "zone"}``
    (``orig``/``reply``: ``src``, ``dst``, ``sport``, ``dport`` or ICMP's ``type``, ``code``, ``id``,
    and ``packets``/``bytes`` when accounted), or None for a line that is no entry."""
    words = line.split()
    family = None
    if len(words) > 2 and words[0] in ('ipv4', 'ipv6'):
        family, words = words[0], words[2:]
    if len(words) < 3 or not words[1].isdigit():
        return None
    number = int(words[1])
    proto = NAMES.get(number, words[0])
    rest = words[2:]
    timeout = None
    if rest and rest[0].isdigit():
        timeout, rest = int(rest[0]), rest[1:]
    state = None
    if rest and '=' not in rest[0] and not rest[0].startswith('['):
        state, rest = rest[0], rest[1:]
    tuples, flags, meta = [], [], {}
    for word in rest:
        if word.startswith('[') and word.endswith(']'):
            flags.append(word[1:-1])
            continue
        key, sep, value = word.partition('=')
        if not sep:
            continue
        if key in TUPLE_KEYS and not meta:
            if key == 'src' or not tuples:
                if len(tuples) == 2:
                    return None
                tuples.append({})
            tuples[-1][key] = int(value) if key in NUMBERS and value.isdigit() else (_addr(value) if key in ('src', 'dst') else value)
        else:
            meta[key] = value
    if len(tuples) != 2 or not all('src' in t and 'dst' in t for t in tuples):
        return None
    if family is None:
        family = 'ipv6' if ':' in tuples[0]['src'] else 'ipv4'
    entry = {'family': family, 'proto': proto, 'timeout': timeout, 'state': state, 'orig': tuples[0], 'reply': tuples[1],
             'flags': flags, 'mark': None, 'zone': None}
    for key in ('mark', 'zone'):
        value = meta.get(key)
        if value is not None:
            try:
                entry[key] = int(value, 0)
            except ValueError:
                entry[key] = value
    return entry


def matches(entry, flow):
    """Whether ``entry``'s original tuple is the flow's (and one of its source ports, when known)."""
    orig = entry['orig']
    return (entry['proto'] == flow['proto'] and orig.get('src') == flow['src'] and orig.get('dst') == flow['dst']
            and orig.get('dport') == flow['port'] and (not flow['sports'] or orig.get('sport') in flow['sports']))


def parse(text, flow=None):
    """The entries of ``text`` (every line that is one; with ``flow``, only the flow's)."""
    out = []
    for line in (text or '').splitlines():
        entry = parse_line(line)
        if entry is not None and (flow is None or matches(entry, flow)):
            out.append(entry)
    return out


def bounded(entries, by):
    """The reading for the capture's result: at most ENTRIES_MAX entries, ``more`` the rest."""
    return {'by': by, 'entries': entries[:ENTRIES_MAX], 'more': max(0, len(entries) - ENTRIES_MAX), 'note': None}


def unread(why):
    """A reading that could not be taken, saying why."""
    return {'by': None, 'entries': [], 'more': 0, 'note': why}


def read_proc(flow, deadline, path=PROC):
    """The flow's entries in /proc/net/nf_conntrack, read line by line until ``deadline`` (time.time());
    a reading (see bounded), or one that says it was cut at the deadline or could not be opened."""
    needle = 'dport=%d ' % flow['port']
    found = []
    try:
        with open(path) as handle:
            for n, line in enumerate(handle):
                if n % 2048 == 0 and time.time() > deadline:
                    out = bounded(found, path)
                    out['note'] = 'stopped reading %s at the time limit after %d lines' % (path, n)
                    return out
                if needle in line:
                    entry = parse_line(line)
                    if entry is not None and matches(entry, flow):
                        found.append(entry)
    except OSError as exc:
        return unread('could not read %s: %s' % (path, exc.strerror or exc))
    return bounded(found, path)
