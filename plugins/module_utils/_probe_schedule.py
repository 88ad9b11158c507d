# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: repeated probes on a schedule, each a new connection; not a public API.
"""N probes started ``interval`` seconds apart, each waited for at most ``timeout`` seconds.

The probes overlap: probe k starts at ``k * interval`` whether the earlier ones have finished or
not, so N probes take ``(N - 1) * interval + timeout`` at most, a lost SYN (whose retransmission
comes one second later) does not delay the next probe, and every probe is a new flow: TCP and UDP
bind a new source port each (recorded as ``sport``), ICMP echo requests share one raw socket and
identifier and differ by ``seq``. Non-blocking sockets and one ``poll()`` loop; no thread.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import errno
import os
import select
import socket
import time

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netns as ns

_IN, _OUT = select.POLLIN, select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP


def _ms(start, now):
    return round((now - start) * 1000.0, 3)


def _failed(exc):
    return {'ok': False, 'status': ns._status(exc), 'error': str(exc)}


class _Stream(object):
    """One TCP connect or one UDP datagram, driven by poll events."""

    def __init__(self, proto, src, dst, port, seq):
        self.proto, self.seq, self.done, self.result = proto, seq, False, None
        kind = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
        self.sock = socket.socket(ns._family(dst), kind)
        self.sock.setblocking(False)
        self.start = time.time()
        self.sport = None
        try:
            self.sock.bind((src, 0))
            self.sport = self.sock.getsockname()[1]
            if proto == 'tcp':
                code = self.sock.connect_ex((dst, port))
                if code not in (0, errno.EINPROGRESS):
                    self.finish(_failed(OSError(code, os.strerror(code))))
            else:
                self.sock.connect((dst, port))
                self.sock.send(b'hoptrace probe\n')
        except OSError as exc:
            self.finish(_failed(exc))

    def events(self):
        return _OUT if self.proto == 'tcp' else _IN

    def ready(self, now):
        if self.proto == 'tcp':
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.finish(dict(_failed(OSError(code, os.strerror(code))), time_ms=_ms(self.start, now)))
            else:
                self.finish({'ok': True, 'status': 'connected', 'time_ms': _ms(self.start, now), 'error': None})
            return
        try:
            self.sock.recv(2048)
            self.finish({'ok': True, 'status': 'answered', 'time_ms': _ms(self.start, now), 'error': None})
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.finish(dict(_failed(exc), time_ms=_ms(self.start, now)))

    def expire(self, timeout):
        if self.proto == 'udp':
            self.finish({'ok': True, 'status': 'sent', 'time_ms': None,
                         'error': 'no reply within %ss (normal for many UDP services)' % timeout})
        else:
            self.finish({'ok': False, 'status': 'timeout', 'time_ms': _ms(self.start, time.time()), 'error': 'timed out'})

    def finish(self, result):
        if self.done:
            return
        result.setdefault('time_ms', None)
        result.update(seq=self.seq, sport=self.sport)
        self.done, self.result = True, result
        self.sock.close()


class _Echo(object):
    """One ICMP echo request on the shared raw socket; its reply is dispatched to it by seq."""

    def __init__(self, sock, dst, ident, seq, v6):
        self.seq, self.ident, self.done, self.result = seq, ident, False, None
        self.start = time.time()
        try:
            sock.sendto(ns.echo_request(ident, seq, v6), (dst, 0))
        except OSError as exc:
            self.finish(dict(_failed(exc), time_ms=None))

    def answer(self, status, code, now):
        if status == 'replied':
            self.finish({'ok': True, 'status': 'replied', 'time_ms': _ms(self.start, now), 'error': None})
        else:
            self.finish({'ok': False, 'status': status, 'time_ms': _ms(self.start, now),
                         'error': 'ICMP destination unreachable code %d from the network' % code})

    def expire(self, timeout):
        self.finish({'ok': False, 'status': 'timeout', 'time_ms': None, 'error': 'no echo reply within %ss' % timeout})

    def finish(self, result):
        if not self.done:
            result.update(seq=self.seq, id=self.ident)
            self.done, self.result = True, result


def run_schedule(src, dst, proto, port, timeout, count, interval):
    """``count`` probes ``interval`` s apart, each waited for ``timeout`` s; attempts in seq order."""
    v6 = ':' in dst
    raw = None
    if proto == 'icmp':
        raw = socket.socket(ns._family(dst), socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
        raw.setblocking(False)
        raw.bind((src, 0))
    ident = os.getpid() & 0xffff
    poller = select.poll()
    if raw is not None:
        poller.register(raw.fileno(), _IN)
    probes, live = [], {}
    begin = time.time()
    try:
        while len(probes) < count or live:
            now = time.time()
            while len(probes) < count and now >= begin + len(probes) * interval:
                seq = len(probes) + 1
                if raw is not None:
                    probe = _Echo(raw, dst, ident, seq, v6)
                    key = seq
                else:
                    probe = _Stream(proto, src, dst, port, seq)
                    key = probe.sock.fileno() if not probe.done else None
                    if key is not None:
                        poller.register(key, probe.events() | _ERR)
                probes.append(probe)
                if not probe.done:
                    live[key] = probe
            for key, probe in list(live.items()):
                if now - probe.start >= timeout:
                    if raw is None:
                        poller.unregister(key)
                    probe.expire(timeout)
                    del live[key]
            if len(probes) >= count and not live:
                break
            waits = [p.start + timeout - now for p in live.values()]
            if len(probes) < count:
                waits.append(begin + len(probes) * interval - now)
            for fd, _event in poller.poll(max(0, min(waits)) * 1000.0):
                now = time.time()
                if raw is not None and fd == raw.fileno():
                    _read_replies(raw, ident, v6, live, now)
                    continue
                probe = live.get(fd)
                if probe is None:
                    continue
                probe.ready(now)
                if probe.done:
                    poller.unregister(fd)
                    del live[fd]
    finally:
        for probe in live.values():
            if raw is None and not probe.done:
                probe.sock.close()
        if raw is not None:
            raw.close()
    return [p.result for p in probes]


def _read_replies(raw, ident, v6, live, now):
    while True:
        try:
            packet, _addr = raw.recvfrom(65535)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return
            raise
        for seq, probe in list(live.items()):
            seen = ns.parse_icmp_reply(bytearray(packet), ident, seq, v6)
            if seen is not None:
                probe.answer(seen[0], seen[1], now)
                del live[seq]
                break
