"""Test helper: write small pcaps with struct and run the real tcpdump on them.

Packets are built byte by byte so the tests check the BPF offsets against headers laid out
the way the kernel lays them out (IPIP, VXLAN, VLAN tags, IPv6), not against another library.
"""
import ipaddress
import os
import shutil
import struct
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SHARED_PCAPS = os.path.join(os.path.dirname(ROOT), "shared", "pcaps")
DLT_EN10MB = 1
DLT_RAW = 101


def tcpdump_bin():
    return shutil.which("tcpdump") or (os.path.exists("/usr/sbin/tcpdump") and "/usr/sbin/tcpdump") or None


needs_tcpdump = pytest.mark.skipif(tcpdump_bin() is None, reason="tcpdump is not installed")


def shared_pcap(name):
    """Path of a shared capture; skips the test when ../shared is not there."""
    path = os.path.join(SHARED_PCAPS, name)
    if not os.path.exists(path):
        pytest.skip("shared capture %s not available (../shared/pcaps is absent)" % name)
    return path


def compile_filter(expr, linktype="EN10MB"):
    """Compile with the real libpcap; return the BPF program text (fails the test on error)."""
    result = subprocess.run([tcpdump_bin(), "-d", "-y", linktype, expr], capture_output=True, text=True, check=False)
    assert result.returncode == 0, "libpcap rejected %r: %s" % (expr, result.stderr)
    assert result.stdout.strip(), "no BPF program for %r" % expr
    return result.stdout


def read_pcap(path):
    """Packets (bytes) of a classic pcap file."""
    with open(path, "rb") as handle:
        data = handle.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    packets, offset = [], 24
    while offset + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[offset + 8:offset + 12])[0]
        packets.append(data[offset + 16:offset + 16 + caplen])
        offset += 16 + caplen
    return packets


def matching(path, expr, tmp_path):
    """Indices of the packets of ``path`` that tcpdump's filter ``expr`` accepts."""
    out = str(tmp_path / ("out%d.pcap" % len(os.listdir(str(tmp_path)))))
    argv = [tcpdump_bin(), "-nn", "-r", path, "-w", out]
    if os.geteuid() == 0:
        argv[1:1] = ["-Z", "root"]
    result = subprocess.run(argv + [expr], capture_output=True, text=True, check=False)
    assert result.returncode == 0, "tcpdump failed on %r: %s" % (expr, result.stderr)
    wanted = read_pcap(path)
    got = read_pcap(out)
    indices, start = [], 0
    for packet in got:
        index = wanted.index(packet, start)
        indices.append(index)
        start = index + 1
    return indices


def write_pcap(path, packets, linktype=DLT_EN10MB):
    with open(str(path), "wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for number, packet in enumerate(packets):
            handle.write(struct.pack("<IIII", 1700000000 + number, 0, len(packet), len(packet)))
            handle.write(packet)
    return str(path)


# --- headers ---------------------------------------------------------------------------------

def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(payload, ethertype=0x0800, vlan=None, src=b"\x02\0\0\0\0\x01", dst=b"\x02\0\0\0\0\x02"):
    if vlan is not None:
        return dst + src + struct.pack("!HHH", 0x8100, vlan, ethertype) + payload
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, options=b"", frag=0):
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 1, frag, 64, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def ipv6(src, dst, next_header, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def tcp(sport, dport, flags=0x02, data=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 28800, 0, 0) + data


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(reply=False, seq=1):
    return struct.pack("!BBHHH", 0 if reply else 8, 0, 0, 0x1234, seq) + b"x" * 16


def inner_ip(src, dst, proto, sport=None, dport=None, options=b""):
    """An inner (pod) packet: IPv4 or IPv6 by address, tcp/udp/icmp payload."""
    if proto == "tcp":
        l4, number = tcp(sport, dport), 6
    elif proto == "udp":
        l4, number = udp(sport, dport, b"q" * 8), 17
    else:
        l4, number = icmp_echo(reply=sport == "reply"), 1
    if ":" in src:
        return ipv6(src, dst, 58 if number == 1 else number, l4)
    return ipv4(src, dst, number, l4, options=options)


def ipip(outer_src, outer_dst, inner, vlan=None):
    return ether(ipv4(outer_src, outer_dst, 4, inner), vlan=vlan)


def vxlan(outer_src, outer_dst, inner, port=4789, vni=4096, vlan=None, sport=51234):
    inner_type = 0x86DD if inner[0] >> 4 == 6 else 0x0800
    frame = ether(inner, ethertype=inner_type, src=b"\x66\xab\x8a\0\0\x01", dst=b"\x66\xab\x8a\0\0\x02")
    payload = udp(sport, port, struct.pack("!II", 0x08000000, vni << 8) + frame)
    if ":" in outer_src:
        return ether(ipv6(outer_src, outer_dst, 17, payload), ethertype=0x86DD, vlan=vlan)
    return ether(ipv4(outer_src, outer_dst, 17, payload), vlan=vlan)


def plain(inner, vlan=None):
    return ether(inner, ethertype=0x86DD if inner[0] >> 4 == 6 else 0x0800, vlan=vlan)


def arp():
    return ether(b"\0\x01\x08\0\x06\x04\0\x01" + b"\0" * 20, ethertype=0x0806)


def flow_part(expr):
    """The flow's own part of a bpf filter: without the ICMP errors part bpf adds as ``(flow) or (errors)``."""
    if not expr.startswith("("):
        return expr
    depth = 0
    for i, ch in enumerate(expr):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return expr[1:i] if expr[i + 1:].startswith(" or (") else expr
    return expr
