# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Header decoding down to the innermost IP packet, as one compact flow-key tuple.

Handles link types Ethernet (with 802.1Q/802.1ad tags), raw IP (101, 12, 14),
Linux cooked v1/v2 and BSD loopback; IPv4/IPv6 (extension headers skipped);
IPIP (4), IPv6-in-IPv4 (41), VXLAN (UDP 4789, 8472 or any given port) and
Geneve (UDP 6081). Reads bytes in place: no object per packet.

The key tuple (``KEY_*`` indices) holds what stays constant across veth, tunnel
and underlay for one packet: addresses, ports, IP id (v4) / flow label (v6),
lengths, TCP seq/ack/flags. TTL and checksums are left out on purpose.
"""

from __future__ import annotations

import socket
import struct
from collections import namedtuple

# Key tuple layout (same positions for IPv4 and IPv6).
KEY_B0, KEY_LEN_A, KEY_LEN_B, KEY_PROTO, KEY_SRC, KEY_DST, KEY_SPORT, KEY_DPORT, KEY_SEQ, KEY_ACK, KEY_OFFFLAGS = range(11)

# Fast paths: IPv4 without options + TCP, IPv6 without extension headers + TCP.
# IPv4: (ver_ihl, total_len, ip_id, proto, src, dst, sport, dport, seq, ack, off_flags); addresses as int
TCP4 = struct.Struct("!BxHH3xB2xIIHHIIH")
# IPv6: (ver_tc, flow_label_low16, payload_len, next_header, src, dst, sport, dport, seq, ack, off_flags)
TCP6 = struct.Struct("!BxHHBx16s16sHHIIH")

VXLAN_PORTS = (4789, 8472)
GENEVE_PORTS = (6081,)

ETH_VLAN = (0x8100, 0x88A8, 0x9100)
AF_INET6_VALUES = (10, 24, 28, 30)

TCP_FLAGS = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))

Decoded = namedtuple("Decoded", "key inner_offset fast encap")
# An ICMP/ICMPv6 error and the packet it quotes: sender/target are the error's own (outer) source
# and destination, q* the quoted packet's addresses, protocol and ports (ports 0 when not quoted)
IcmpError = namedtuple("IcmpError", "type code mtu sender target qsrc qdst qproto qsport qdport")
# error types: ICMP destination unreachable, source quench, time exceeded, parameter problem;
# ICMPv6 destination unreachable, packet too big, time exceeded, parameter problem
ICMP_ERRORS = {1: (3, 4, 11, 12), 58: (1, 2, 3, 4)}
Packet = namedtuple("Packet", "src dst proto sport dport ip_id seq ack flags payload_len encap")

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_ICMP = struct.Struct("!BBxxHH").unpack_from
_UDP = struct.Struct("!HHH").unpack_from


def _link_to_ip(buf, off, end, linktype):
    """Return (offset of the L3 header, ethertype-ish version hint) or (None, None)."""
    if linktype == 1:
        if off + 14 > end:
            return None, None
        etype = _U16(buf, off + 12)[0]
        off += 14
        while etype in ETH_VLAN:
            if off + 4 > end:
                return None, None
            etype = _U16(buf, off + 2)[0]
            off += 4
        return off, etype
    if linktype in (101, 12, 14):
        return off, None
    if linktype == 113:
        if off + 16 > end:
            return None, None
        return off + 16, _U16(buf, off + 14)[0]
    if linktype == 276:
        if off + 20 > end:
            return None, None
        return off + 20, _U16(buf, off)[0]
    if linktype in (0, 108):
        if off + 4 > end:
            return None, None
        vals = struct.unpack_from("<I", buf, off) + struct.unpack_from(">I", buf, off)
        if 2 in vals:
            return off + 4, 0x0800
        if vals[0] in AF_INET6_VALUES or vals[1] in AF_INET6_VALUES:
            return off + 4, 0x86DD
        return None, None
    return None, None


def decode_at(buf, off, caplen, linktype, vxlan_ports=VXLAN_PORTS, geneve_ports=GENEVE_PORTS):
    """Decode one record ``buf[off:off+caplen]`` to the innermost IP packet.

    Returns ``Decoded(key, inner_offset, fast, encap)`` (``inner_offset`` relative
    to ``off``; ``fast``: the key can be read with TCP4/TCP6 at that offset) or
    ``None`` when there is no IP packet or the headers are cut by the snaplen.
    """
    end = off + caplen
    l3, etype = _link_to_ip(buf, off, end, linktype)
    if l3 is None:
        return None
    encap = []
    depth = 0
    while depth < 4:
        depth += 1
        if l3 >= end:
            return None
        version = buf[l3] >> 4
        if etype is not None and etype not in (0x0800, 0x86DD):
            return None
        if version == 4:
            if l3 + 20 > end:
                return None
            ihl = (buf[l3] & 0x0F) * 4
            proto = buf[l3 + 9]
            frag = _U16(buf, l3 + 6)[0] & 0x1FFF
            l4 = l3 + ihl
            tot_len, ip_id = struct.unpack_from("!HH", buf, l3 + 2)
            len_a, len_b = tot_len, ip_id
            src, dst = struct.unpack_from("!II", buf, l3 + 12)
        elif version == 6:
            if l3 + 40 > end:
                return None
            proto = buf[l3 + 6]
            l4 = l3 + 40
            frag = 0
            while proto in (0, 43, 60, 44) and l4 + 8 <= end:
                if proto == 44:
                    frag = _U16(buf, l4 + 2)[0] >> 3
                    proto, l4 = buf[l4], l4 + 8
                else:
                    proto, l4 = buf[l4], l4 + (buf[l4 + 1] + 1) * 8
            ihl = l4 - l3
            len_a, len_b = _U16(buf, l3 + 2)[0], _U16(buf, l3 + 4)[0]
            src, dst = buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]
        else:
            return None
        # tunnels: step inside
        if proto == 4 and not frag:
            encap.append("ipip")
            l3, etype = l4, 0x0800
            continue
        if proto == 41 and not frag:
            encap.append("ipip6")
            l3, etype = l4, 0x86DD
            continue
        if proto == 17 and not frag and l4 + 8 <= end:
            dport = _U16(buf, l4 + 2)[0]
            if dport in vxlan_ports and l4 + 16 <= end:
                encap.append("vxlan")
                l3, etype = _link_to_ip(buf, l4 + 16, end, 1)
                if l3 is None:
                    return None
                continue
            if dport in geneve_ports and l4 + 16 <= end:
                optlen = (buf[l4 + 8] & 0x3F) * 4
                ptype = _U16(buf, l4 + 10)[0]
                inner = l4 + 16 + optlen
                encap.append("geneve")
                if ptype == 0x6558:
                    l3, etype = _link_to_ip(buf, inner, end, 1)
                    if l3 is None:
                        return None
                elif ptype in (0x0800, 0x86DD):
                    l3, etype = inner, ptype
                else:
                    return None
                continue
        return _terminal(buf, off, end, l3, version, ihl, proto, frag, l4, len_a, len_b, src, dst, tuple(encap))
    return None


def _terminal(buf, off, end, l3, version, ihl, proto, frag, l4, len_a, len_b, src, dst, encap):
    b0 = buf[l3]
    if proto == 6 and not frag:
        if l4 + 14 > end:
            return None
        sport, dport, seq, ack, offflags = struct.unpack_from("!HHIIH", buf, l4)
        fast = (version == 4 and ihl == 20) or (version == 6 and ihl == 40)
        return Decoded((b0, len_a, len_b, 6, src, dst, sport, dport, seq, ack, offflags), l3 - off, fast, encap)
    if proto == 17 and not frag:
        if l4 + 6 > end:
            return None
        sport, dport, ulen = _UDP(buf, l4)
        return Decoded((b0, len_a, len_b, 17, src, dst, sport, dport, ulen, 0, 0), l3 - off, False, encap)
    if proto in (1, 58) and not frag:
        if l4 + 8 > end:
            return None
        itype, code, ident, iseq = _ICMP(buf, l4)
        return Decoded((b0, len_a, len_b, proto, src, dst, (itype << 8) | code, ident, iseq, 0, 0), l3 - off, False, encap)
    return Decoded((b0, len_a, len_b, proto, src, dst, 0, 0, frag, 0, 0), l3 - off, False, encap)


def icmp_error(buf, off, caplen, decoded):
    """The ICMP/ICMPv6 error a decoded packet carries, with the packet it quotes, or None.

    ``decoded`` is ``decode_at(buf, off, caplen, ...)``; None when it is not an ICMP error or
    the quoted IP header (and, for TCP/UDP, its ports) is cut by the snaplen. The MTU is the one
    of fragmentation needed (ICMP 3/4) and packet too big (ICMPv6 2), else 0.
    """
    key = decoded.key
    proto = key[KEY_PROTO]
    itype = key[KEY_SPORT] >> 8
    if itype not in ICMP_ERRORS.get(proto, ()):
        return None
    end = off + caplen
    l3 = off + decoded.inner_offset
    if proto == 1:
        l4 = l3 + (buf[l3] & 0x0F) * 4
    else:
        l4, nxt = l3 + 40, buf[l3 + 6]
        while nxt in (0, 43, 60) and l4 + 8 <= end:
            nxt, l4 = buf[l4], l4 + (buf[l4 + 1] + 1) * 8
    code = key[KEY_SPORT] & 0xFF
    mtu = 0
    if proto == 1 and itype == 3 and code == 4:
        mtu = key[KEY_SEQ]
    elif proto == 58 and itype == 2:
        mtu = (key[KEY_DPORT] << 16) | key[KEY_SEQ]
    q = l4 + 8
    if q >= end:
        return None
    version = buf[q] >> 4
    if version == 4 and q + 20 <= end:
        qproto = buf[q + 9]
        qsrc, qdst = struct.unpack_from("!II", buf, q + 12)
        ql4 = q + (buf[q] & 0x0F) * 4
    elif version == 6 and q + 40 <= end:
        qproto, ql4 = buf[q + 6], q + 40
        qsrc, qdst = buf[q + 8:q + 24], buf[q + 24:q + 40]
        while qproto in (0, 43, 60) and ql4 + 8 <= end:
            qproto, ql4 = buf[ql4], ql4 + (buf[ql4 + 1] + 1) * 8
    else:
        return None
    qsport = qdport = 0
    if qproto in (6, 17):
        if ql4 + 4 > end:
            return None
        qsport, qdport = struct.unpack_from("!HH", buf, ql4)
    return IcmpError(itype, code, mtu, key[KEY_SRC], key[KEY_DST], qsrc, qdst, qproto, qsport, qdport)


def payload_len(key):
    """Transport payload length of a key (TCP: bytes of data; others: best effort)."""
    version = key[KEY_B0] >> 4
    if version == 4:
        ip_payload = key[KEY_LEN_A] - (key[KEY_B0] & 0x0F) * 4
    else:
        ip_payload = key[KEY_LEN_B]
    if key[KEY_PROTO] == 6:
        return max(0, ip_payload - (key[KEY_OFFFLAGS] >> 12) * 4)
    if key[KEY_PROTO] == 17:
        return max(0, key[KEY_SEQ] - 8)
    if key[KEY_PROTO] in (1, 58):
        return max(0, ip_payload - 8)
    return ip_payload


def flag_names(offflags):
    """'SYN', 'SYN+ACK', 'PSH+ACK', ... from the TCP data-offset/flags word."""
    bits = offflags & 0xFF
    names = [name for bit, name in TCP_FLAGS if bits & bit and name not in ("ECE", "CWR")]
    order = ["SYN", "FIN", "RST", "PSH", "ACK", "URG"]
    names.sort(key=order.index)
    return "+".join(names) if names else "none"


def ip_text(raw):
    """Text of a key address: int for IPv4, 16 bytes for IPv6."""
    if isinstance(raw, int):
        return socket.inet_ntoa(struct.pack("!I", raw))
    return socket.inet_ntop(socket.AF_INET6, bytes(raw))


def ip_key(text):
    """An address as the key holds it: int for IPv4, 16 bytes for IPv6."""
    text = str(text)
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return struct.unpack("!I", socket.inet_aton(text))[0]


def to_packet(decoded):
    """A readable view of a Decoded (for tests, reports and debugging)."""
    key = decoded.key
    proto = key[KEY_PROTO]
    return Packet(
        src=ip_text(key[KEY_SRC]), dst=ip_text(key[KEY_DST]), proto=proto,
        sport=key[KEY_SPORT] if proto in (6, 17) else None, dport=key[KEY_DPORT] if proto in (6, 17) else None,
        ip_id=key[KEY_LEN_B] if key[KEY_B0] >> 4 == 4 else None,
        seq=key[KEY_SEQ] if proto == 6 else None, ack=key[KEY_ACK] if proto == 6 else None,
        flags=flag_names(key[KEY_OFFFLAGS]) if proto == 6 else None,
        payload_len=payload_len(key), encap=decoded.encap)


def decode(pkt, linktype, vxlan_ports=VXLAN_PORTS, geneve_ports=GENEVE_PORTS):
    """Decode one packet (bytes) to a ``Packet`` or None."""
    dec = decode_at(pkt, 0, len(pkt), linktype, vxlan_ports, geneve_ports)
    return to_packet(dec) if dec else None
