# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: find a pod's network namespace by its IP and probe from it; not a public API.
"""Network namespaces without kubectl or crictl.

A pod's namespace is found among ``/var/run/netns/*`` and ``/proc/*/ns/net`` (deduplicated by
inode) as the one where ``bind((ip, 0))`` succeeds, i.e. where the address is local. The search
and the probe run in a forked child that ``setns()``-es (libc through ctypes) into each candidate,
so the module's own process never leaves the node's namespace.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import ctypes
import ctypes.util
import errno
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import time

CLONE_NEWNET = 0x40000000
NAMED_DIRS = ('/var/run/netns', '/run/netns')
RTF_UP = 0x0001
RTF_GATEWAY = 0x0002
RTF_REJECT = 0x0200
RTF_LOCAL = 0x80000000

ERRNO_STATUS = {
    errno.ECONNREFUSED: 'refused',
    errno.ETIMEDOUT: 'timeout',
    errno.EHOSTUNREACH: 'unreachable',
    errno.ENETUNREACH: 'no route',
    errno.EACCES: 'prohibited',
    errno.EPERM: 'prohibited',
    errno.ECONNRESET: 'reset',
}


# ---------------------------------------------------------------------------- routes of this node

def _v4_routes(text):
    """(network, gateway, iface) from /proc/net/route text."""
    routes = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or int(f[3], 16) & (RTF_UP | RTF_REJECT) != RTF_UP:
            continue
        dest = socket.inet_ntoa(struct.pack('<I', int(f[1], 16)))
        gate = socket.inet_ntoa(struct.pack('<I', int(f[2], 16)))
        mask = socket.inet_ntoa(struct.pack('<I', int(f[7], 16)))
        try:
            net = ipaddress.ip_network(u'%s/%s' % (dest, mask))
        except ValueError:
            continue
        routes.append((net, None if gate == '0.0.0.0' else gate, f[0]))
    return routes


def _v6_routes(text):
    """(network, gateway, iface) from /proc/net/ipv6_route text."""
    routes = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 10 or int(f[8], 16) & (RTF_UP | RTF_REJECT | RTF_LOCAL) != RTF_UP:
            continue
        dest = str(ipaddress.IPv6Address(bytes.fromhex(f[0])))
        gate = str(ipaddress.IPv6Address(bytes.fromhex(f[4])))
        net = ipaddress.ip_network(u'%s/%d' % (dest, int(f[1], 16)), strict=False)
        routes.append((net, None if gate == '::' else gate, f[9]))
    return routes


def route_to(ip, v4_text, v6_text):
    """Longest-prefix route for ``ip`` as ``(network, gateway, iface)`` (None if no route)."""
    addr = ipaddress.ip_address(ip)
    routes = _v4_routes(v4_text) if addr.version == 4 else _v6_routes(v6_text)
    best = None
    for net, gate, dev in routes:
        if addr in net and (best is None or net.prefixlen > best[0].prefixlen) and dev != 'lo':
            best = (net, gate, dev)
    return best


def read_proc_routes():
    texts = []
    for path in ('/proc/net/route', '/proc/net/ipv6_route'):
        try:
            with open(path) as handle:
                texts.append(handle.read())
        except OSError:
            texts.append('')
    return texts


# ---------------------------------------------------------------------------- links (netlink)

NLMSG_DONE, NLMSG_ERROR, RTM_GETLINK, RTM_NEWLINK = 3, 2, 18, 16
RTM_NEWNSID, RTM_GETNSID = 88, 90
IFLA_IFNAME, IFLA_LINK, IFLA_LINK_NETNSID = 3, 5, 37
NETNSA_NSID, NETNSA_FD = 1, 3


def parse_link_dump(data, table):
    """Add ``{ifindex: {name, link, netnsid}}`` from RTM_NEWLINK messages in ``data``; True at NLMSG_DONE."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from('=IH', data, offset)
        if length < 16:
            return True
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if kind == RTM_NEWLINK:
            index = struct.unpack_from('=i', data, offset + 20)[0]
            entry = {'name': None, 'link': None, 'netnsid': None}
            attr = offset + 32
            while attr + 4 <= offset + length:
                alen, atype = struct.unpack_from('=HH', data, attr)
                if alen < 4:
                    break
                value = data[attr + 4:attr + alen]
                if atype == IFLA_IFNAME:
                    entry['name'] = bytes(value).split(b'\0', 1)[0].decode('utf-8', 'replace')
                elif atype == IFLA_LINK and len(value) >= 4:
                    entry['link'] = struct.unpack_from('=I', value)[0]
                elif atype == IFLA_LINK_NETNSID and len(value) >= 4:
                    entry['netnsid'] = struct.unpack_from('=i', value)[0]
                attr += (alen + 3) & ~3
            table[index] = entry
        offset += (length + 3) & ~3
    return False


def _netlink():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    sock.bind((0, 0))
    sock.settimeout(5)
    return sock


def link_table():
    """Links of the current network namespace through rtnetlink: ``{ifindex: {name, link, netnsid}}``."""
    sock = _netlink()
    try:
        sock.send(struct.pack('=IHHII', 32, RTM_GETLINK, 0x301, 1, 0) + struct.pack('=BBHiII', 0, 0, 0, 0, 0, 0))
        table = {}
        while not parse_link_dump(sock.recv(65536), table):
            pass
        return table
    finally:
        sock.close()


def parse_nsid(data):
    """The NETNSA_NSID of an RTM_NEWNSID answer (-1: not assigned), None on error."""
    if len(data) < 20:
        return None
    length, kind = struct.unpack_from('=IH', data, 0)
    if kind != RTM_NEWNSID:
        return None
    attr = 20
    while attr + 8 <= length:
        alen, atype = struct.unpack_from('=HH', data, attr)
        if alen < 4:
            break
        if atype == NETNSA_NSID:
            return struct.unpack_from('=i', data, attr + 4)[0]
        attr += (alen + 3) & ~3
    return None


def nsid_of(path):
    """The id the current namespace gives the namespace at ``path`` (as in ``ip netns list-id``)."""
    fd = os.open(path, os.O_RDONLY)
    sock = _netlink()
    try:
        sock.send(struct.pack('=IHHII', 28, RTM_GETNSID, 1, 1, 0) + struct.pack('=BxxxHHI', 0, 8, NETNSA_FD, fd))
        return parse_nsid(sock.recv(65536))
    finally:
        sock.close()
        os.close(fd)


def peer_netnsid(dev):
    """The namespace id (in this namespace) of the other end of veth ``dev``, None if not a veth."""
    for entry in link_table().values():
        if entry['name'] == dev:
            return entry['netnsid']
    return None


def attached_to(paths, netnsid):
    """The candidates that are the namespace ``netnsid`` of this namespace (the pod's veth end)."""
    found = []
    for path in paths:
        try:
            if nsid_of(path) == netnsid:
                found.append(path)
        except (OSError, socket.timeout):
            continue
    return found


# ---------------------------------------------------------------------------- namespaces

def candidates(named_dirs=NAMED_DIRS, proc='/proc'):
    """Network namespace paths, named ones first, one per namespace inode, without our own."""
    seen = set()
    try:
        own = os.stat(os.path.join(proc, 'self/ns/net'))
        seen.add((own.st_dev, own.st_ino))
    except OSError:
        pass
    paths = []
    for directory in named_dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        paths.extend(os.path.join(directory, n) for n in names)
    try:
        pids = sorted((p for p in os.listdir(proc) if p.isdigit()), key=int)
    except OSError:
        pids = []
    paths.extend(os.path.join(proc, p, 'ns/net') for p in pids)
    found = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            found.append(path)
    return found


def _libc():
    return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)


def setns(path, libc=None):
    libc = libc or _libc()
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, 'setns(%s): %s' % (path, os.strerror(err)))
    finally:
        os.close(fd)


def is_local(ip):
    """True when ``ip`` can be bound here, i.e. it is an address of this namespace."""
    family = socket.AF_INET6 if ':' in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, 0))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def find_and_enter(ip, paths):
    """In a child process: enter the first namespace among ``paths`` where ``ip`` is local.

    Returns ``(path, matches)``; the module narrows ``paths`` to the namespace at the other end of
    the pod's veth first (:func:`attached_to`), which matters wherever several namespaces share an
    address (a lab on one machine, a stale namespace of a deleted pod).
    """
    libc = _libc()
    handles = []
    for path in paths:
        try:
            handles.append((path, os.open(path, os.O_RDONLY)))
        except OSError:
            continue
    matches = []
    for path, fd in handles:
        if libc.setns(fd, CLONE_NEWNET) == 0 and is_local(ip):
            matches.append(path)
    if matches:
        setns(matches[0], libc)
    for _path, fd in handles:
        os.close(fd)
    return (matches[0] if matches else None), matches


# ---------------------------------------------------------------------------- probes

def _status(exc):
    if isinstance(exc, socket.timeout):
        return 'timeout'
    return ERRNO_STATUS.get(getattr(exc, 'errno', None), 'error')


def _family(ip):
    return socket.AF_INET6 if ':' in ip else socket.AF_INET


def tcp_once(src, dst, port, timeout):
    sock = socket.socket(_family(dst), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    start, sport = time.time(), None
    try:
        sock.bind((src, 0))
        sport = sock.getsockname()[1]
        sock.connect((dst, port))
        return {'ok': True, 'status': 'connected', 'time_ms': round((time.time() - start) * 1000.0, 3), 'error': None, 'sport': sport}
    except (OSError, socket.timeout) as exc:
        return {'ok': False, 'status': _status(exc), 'time_ms': round((time.time() - start) * 1000.0, 3), 'error': str(exc),
                'sport': sport}
    finally:
        sock.close()


IP_MTU, IPV6_MTU, IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, PMTUDISC_DO = 14, 24, 10, 23, 2


def route_mtu(src, dst):
    """The MTU of this namespace's route from ``src`` to ``dst`` (what a full-size probe fills)."""
    v6 = ':' in dst
    sock = socket.socket(_family(dst), socket.SOCK_DGRAM)
    try:
        sock.bind((src, 0))
        sock.connect((dst, 9))
        return sock.getsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, IPV6_MTU if v6 else IP_MTU)
    finally:
        sock.close()


def dont_fragment(sock, v6):
    """DF on everything ``sock`` sends (and no fragmentation by this host either)."""
    sock.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, IPV6_MTU_DISCOVER if v6 else IP_MTU_DISCOVER, PMTUDISC_DO)


def full_payload(src, dst, l4_header):
    """Payload bytes that make an IP packet from ``src`` to ``dst`` exactly its route's MTU."""
    return route_mtu(src, dst) - (40 if ':' in dst else 20) - l4_header


def udp_once(src, dst, port, timeout, full=False):
    """One datagram; a reply is ``answered``, an ICMP port unreachable ``refused``, silence ``sent``.
    ``full``: as large as the route's MTU, with DF."""
    sock = socket.socket(_family(dst), socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    start, sport = time.time(), None
    try:
        sock.bind((src, 0))
        sport = sock.getsockname()[1]
        sock.connect((dst, port))
        if full:
            dont_fragment(sock, ':' in dst)
            sock.send(b'hoptrace probe\n'.ljust(full_payload(src, dst, 8), b'.'))
        else:
            sock.send(b'hoptrace probe\n')
        sock.recv(2048)
        return {'ok': True, 'status': 'answered', 'time_ms': round((time.time() - start) * 1000.0, 3), 'error': None, 'sport': sport}
    except socket.timeout:
        return {'ok': True, 'status': 'sent', 'time_ms': None, 'error': 'no reply within %ss (normal for many UDP services)' % timeout,
                'sport': sport}
    except OSError as exc:
        return {'ok': False, 'status': _status(exc), 'time_ms': round((time.time() - start) * 1000.0, 3), 'error': str(exc),
                'sport': sport}
    finally:
        sock.close()


def checksum(data):
    if len(data) % 2:
        data += b'\x00'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def echo_request(ident, seq, v6=False, payload_len=None):
    payload = b'hoptrace' + struct.pack('!d', time.time())
    if payload_len:
        payload = payload.ljust(payload_len, b'.')
    kind = 128 if v6 else 8
    header = struct.pack('!BBHHH', kind, 0, 0, ident, seq)
    if v6:
        return header + payload  # the kernel fills in the ICMPv6 checksum
    return struct.pack('!BBHHH', kind, 0, checksum(header + payload), ident, seq) + payload


def parse_icmp_reply(packet, ident, seq, v6=False):
    """'replied', ('unreachable'|'no route'|'prohibited', code) for our echo, or None if not ours."""
    if not v6:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0f) * 4:]
    if len(packet) < 8:
        return None
    kind, code = packet[0], packet[1]
    reply, unreach = (129, 1) if v6 else (0, 3)
    if kind == reply:
        got_id, got_seq = struct.unpack('!HH', packet[4:8])
        return ('replied', code) if (got_id, got_seq) == (ident, seq) else None
    if kind == unreach:
        inner = packet[8:]
        if not v6:
            if len(inner) < 20:
                return None
            inner = inner[(inner[0] & 0x0f) * 4:]
        else:
            inner = inner[40:]
        if len(inner) < 8 or struct.unpack('!HH', inner[4:8]) != (ident, seq):
            return None
        if v6:
            status = {0: 'no route', 1: 'prohibited'}.get(code, 'unreachable')
        else:
            status = {0: 'no route', 9: 'prohibited', 10: 'prohibited', 13: 'prohibited'}.get(code, 'unreachable')
        return (status, code)
    return None


def icmp_once(src, dst, seq, timeout, full=False):
    """One echo request; ``full``: as large as the route's MTU, with DF."""
    v6 = ':' in dst
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = socket.socket(_family(dst), socket.SOCK_RAW, proto)
    ident = os.getpid() & 0xffff
    start = time.time()
    try:
        sock.bind((src, 0))
        size = None
        if full:
            dont_fragment(sock, v6)
            size = full_payload(src, dst, 8)
        sock.sendto(echo_request(ident, seq, v6, size), (dst, 0))
        deadline = start + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return {'ok': False, 'status': 'timeout', 'time_ms': None, 'error': 'no echo reply within %ss' % timeout}
            ready, _w, _x = select.select([sock], [], [], left)
            if not ready:
                continue
            packet, _addr = sock.recvfrom(65535)
            seen = parse_icmp_reply(bytearray(packet), ident, seq, v6)
            if seen is None:
                continue
            elapsed = round((time.time() - start) * 1000.0, 3)
            if seen[0] == 'replied':
                return {'ok': True, 'status': 'replied', 'time_ms': elapsed, 'error': None}
            return {'ok': False, 'status': seen[0], 'time_ms': elapsed,
                    'error': 'ICMP destination unreachable code %d from the network' % seen[1]}
    except OSError as exc:
        return {'ok': False, 'status': _status(exc), 'time_ms': None, 'error': str(exc)}
    finally:
        sock.close()


def run_probes(src, dst, proto, port, timeout, count, interval=0.2, full=False):
    """``full``: udp and icmp probes as large as the route's MTU, with DF (tcp: a SYN either way)."""
    attempts = []
    for seq in range(1, count + 1):
        if proto == 'tcp':
            attempt = tcp_once(src, dst, port, timeout)
        elif proto == 'udp':
            attempt = udp_once(src, dst, port, timeout, full)
        else:
            attempt = icmp_once(src, dst, seq, timeout, full)
        attempt['seq'] = seq
        attempts.append(attempt)
        if seq < count:
            time.sleep(interval)
    return attempts


def summarise(attempts):
    failed = [a for a in attempts if not a['ok']]
    times = [a['time_ms'] for a in attempts if a['ok'] and a['time_ms'] is not None]
    first = failed[0] if failed else attempts[0]
    return {'ok': not failed, 'status': first['status'], 'error': first['error'],
            'time_ms': round(sum(times) / len(times), 3) if times else None,
            'sent': len(attempts), 'succeeded': len(attempts) - len(failed)}


# ---------------------------------------------------------------------------- fork

def in_child(func, limit):
    """Run ``func()`` in a forked child and return what it returns (JSON-able) or raise."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            try:
                payload = {'result': func()}
            except Exception as exc:  # report everything back to the parent
                payload = {'error': '%s: %s' % (type(exc).__name__, exc)}
            data = json.dumps(payload).encode('utf-8')
            while data:
                data = data[os.write(write_fd, data):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    deadline = time.time() + limit
    try:
        while True:
            left = deadline - time.time()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise RuntimeError('the probe did not finish within %.0fs' % limit)
            ready, _w, _x = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    payload = json.loads(b''.join(chunks).decode('utf-8') or '{}')
    if 'error' in payload:
        raise RuntimeError(payload['error'])
    if 'result' not in payload:
        raise RuntimeError('the probe process ended without a result')
    return payload['result']
