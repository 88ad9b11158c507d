# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the kernel's drop counters and forwarding settings (node side, stdlib only).

Parsers of ``/proc/net/snmp``, ``/proc/net/netstat`` (``Name: keys`` / ``Name: values`` line
pairs), ``/proc/net/snmp6`` (``key value`` lines), ``/proc/net/stat/nf_conntrack`` (hex columns,
one row per CPU) and ``conntrack -S`` (``key=value`` per CPU). Only the counters that say a packet
was dropped or refused are kept (``WANTED``): the deltas stay small and say something.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

WANTED = {
    'Ip': ('InHdrErrors', 'InAddrErrors', 'InUnknownProtos', 'InDiscards', 'OutDiscards', 'OutNoRoutes', 'ReasmFails',
           'FragFails'),
    'Icmp': ('InDestUnreachs', 'OutDestUnreachs'),
    'Tcp': ('InErrs', 'OutRsts', 'AttemptFails'),
    'Udp': ('NoPorts', 'InErrors', 'RcvbufErrors'),
    'TcpExt': ('IPReversePathFilter', 'ListenDrops', 'ListenOverflows', 'TCPBacklogDrop', 'TCPMinTTLDrop'),
    'IpExt': ('InNoRoutes', 'InTruncatedPkts', 'InCsumErrors'),
}
WANTED6 = ('Ip6InHdrErrors', 'Ip6InTooBigErrors', 'Ip6InNoRoutes', 'Ip6InAddrErrors', 'Ip6InDiscards', 'Ip6OutDiscards',
           'Ip6OutNoRoutes', 'Ip6ReasmFails', 'Ip6FragFails', 'Icmp6InDestUnreachs', 'Icmp6OutDestUnreachs',
           'Icmp6InPktTooBigs', 'Icmp6OutPktTooBigs', 'Udp6NoPorts', 'Udp6InErrors')
CONNTRACK = ('invalid', 'insert_failed', 'drop', 'early_drop', 'icmp_error')
# conntrack -S says "error" for what /proc/net/stat/nf_conntrack calls icmp_error
_CONNTRACK_ALIASES = {'error': 'icmp_error'}


def parse_snmp(text):
    """``{"Ip.InDiscards": n, ...}`` of the WANTED counters in /proc/net/snmp or /proc/net/netstat text."""
    out = {}
    lines = text.splitlines()
    for head, values in zip(lines, lines[1:]):
        name, _sep, keys = head.partition(':')
        vname, _sep, nums = values.partition(':')
        if name != vname or name not in WANTED or not keys or keys.split()[0].lstrip('-').isdigit():
            continue
        wanted = WANTED[name]
        for key, value in zip(keys.split(), nums.split()):
            if key in wanted:
                try:
                    out['%s.%s' % (name, key)] = int(value)
                except ValueError:
                    pass
    return out


def parse_snmp6(text):
    """``{"Ip6InDiscards": n, ...}`` of the WANTED6 counters in /proc/net/snmp6 text."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in WANTED6:
            try:
                out[words[0]] = int(words[1])
            except ValueError:
                pass
    return out


def parse_nf_conntrack_stat(text):
    """``{"invalid": n, ...}``: the CONNTRACK columns of /proc/net/stat/nf_conntrack summed over the CPUs."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    header = lines[0]
    out = {}
    for row in lines[1:]:
        for name, value in zip(header, row):
            if name in CONNTRACK:
                try:
                    out[name] = out.get(name, 0) + int(value, 16)
                except ValueError:
                    pass
    return out


def parse_conntrack_s(text):
    """``{"invalid": n, ...}`` from ``conntrack -S`` (``cpu=0 found=0 invalid=3 ...``), summed over the CPUs."""
    out = {}
    for line in text.splitlines():
        for word in line.split():
            key, sep, value = word.partition('=')
            key = _CONNTRACK_ALIASES.get(key, key)
            if sep and key in CONNTRACK:
                try:
                    out[key] = out.get(key, 0) + int(value)
                except ValueError:
                    pass
    return out


def sysctl_paths(interfaces):
    """``{sysctl name: /proc/sys path}`` of the forwarding settings that matter for the hop interfaces."""
    names = ['net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter', 'net.ipv6.conf.all.forwarding']
    for iface in interfaces:
        names.append('net.ipv4.conf.%s.rp_filter' % iface)
    # an interface name may hold dots (vxlan.calico): /proc/sys spells them as they are
    out = {}
    for name in names:
        parts = name.split('.')
        if parts[2] == 'conf' and len(parts) > 5:
            parts = parts[:3] + ['.'.join(parts[3:-1]), parts[-1]]
        out[name] = '/proc/sys/' + '/'.join(parts)
    return out
