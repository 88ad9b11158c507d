"""pcapio: reading real public captures and writing the merged pcapng."""
import os
import shutil
import struct
import subprocess

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import pcapio
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.decode import decode_at, to_packet

import _synth

PCAPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "shared", "pcaps")
PCAPS = os.path.normpath(PCAPS)
needs_pcaps = pytest.mark.skipif(not os.path.isdir(PCAPS), reason="shared public pcaps not present (../shared/pcaps)")

# file: (format, linktype, records read, snaplen-cut records, truncated tail); counts verified with tcpdump -r
EXPECTED = {
    "gopacket_test_ethernet.pcap": ("pcap", 1, 10, 0, False),
    "joincap_unexpected_eof_on_second_packet.pcap": ("pcap", 1, 1, 0, True),
    "packetgen_ipv6_tcp.pcapng": ("pcapng", 1, 3, 0, False),
    "pcaps_ipip__ping__tunl2.pcap": ("pcap", 101, 2, 0, False),
    "pcaps_ipip__ping__veth2.pcap": ("pcap", 1, 6, 0, False),
    "tcpdump_geneve-gcp.pcap": ("pcap", 1, 1, 0, False),
    "tcpdump_geneve.pcap": ("pcap", 1, 39, 0, False),
    "tcpdump_gso-ipv6-vxlan-ipv6.pcap": ("pcap", 1, 1, 0, False),
    "tcpdump_quic_handshake_truncated.pcap": ("pcap", 0, 18, 4, False),
    "tcpdump_tcp-handshake-nano.pcap": ("pcap", 113, 3, 0, False),
    "tcpdump_tcp_rst_data-trunc.pcap": ("pcap", 1, 1, 1, False),
    "tcpdump_vxlan.pcap": ("pcap", 1, 10, 0, False),
    "tcpdump_vxlan_port_8472.pcap": ("pcap", 1, 10, 0, False),
}


def _packets(name):
    cap = pcapio.Capture(os.path.join(PCAPS, name))
    out = []
    for ts, incl, _orig, buf, off, lt in cap.records():
        dec = decode_at(buf, off, incl, lt)
        out.append((ts, to_packet(dec) if dec else None))
    return cap, out


@needs_pcaps
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_capture_reads(name):
    fmt, linktype, records, cut, tail = EXPECTED[name]
    cap, pkts = _packets(name)
    assert (cap.format, cap.linktype, len(pkts), cap.packets, cap.cut, cap.truncated_tail) == (fmt, linktype, records, records, cut, tail)


@needs_pcaps
def test_public_captures_listed():
    assert sorted(f for f in os.listdir(PCAPS) if f.endswith((".pcap", ".pcapng"))) == sorted(EXPECTED)


@needs_pcaps
def test_nanosecond_timestamps():
    cap, pkts = _packets("tcpdump_tcp-handshake-nano.pcap")
    assert cap.nanosecond
    # tcpdump --nano -tt: 1418145369.924505488, 1418145370.052027262, 1418145370.052115157
    assert [ts for ts, _p in pkts] == [1418145369924505488, 1418145370052027262, 1418145370052115157]
    assert [(p.src, p.sport, p.dst, p.dport, p.flags) for _t, p in pkts] == [
        ("131.155.215.69", 46656, "137.116.81.94", 80, "SYN"),
        ("137.116.81.94", 80, "131.155.215.69", 46656, "SYN+ACK"),
        ("131.155.215.69", 46656, "137.116.81.94", 80, "ACK")]


@needs_pcaps
def test_microsecond_timestamps_and_plain_tcp():
    _cap, pkts = _packets("gopacket_test_ethernet.pcap")
    assert pkts[0][0] == 1513204139656584000
    first = pkts[0][1]
    assert (first.src, first.dst, first.sport, first.dport, first.seq, first.flags) == ("10.1.1.2", "10.1.1.1", 44644, 80, 2471086128, "SYN")
    assert pkts[3][1].payload_len == 72 and pkts[3][1].flags == "PSH+ACK"


@needs_pcaps
def test_pcapng_ipv6():
    cap, pkts = _packets("packetgen_ipv6_tcp.pcapng")
    p = pkts[0][1]
    assert (p.src, p.dst, p.sport, p.dport, p.seq, p.flags) == (
        "2a01:e35:8b7f:9c10:128b:3c32:c3e4:c01b", "2a00:1450:4007:810::2003", 40780, 443, 2268953616, "SYN")
    assert pkts[1][1].ack == 2268953617
    assert pkts[0][0] // 1000 == 1480764787032572     # tcpdump: 11:33:07.032572


@needs_pcaps
def test_truncated_files():
    cap, pkts = _packets("joincap_unexpected_eof_on_second_packet.pcap")
    assert cap.truncated_tail and len(pkts) == 1
    assert (pkts[0][1].src, pkts[0][1].dst, pkts[0][1].dport) == ("fe80::f074:8bd7:d999:42b9", "ff02::c", 1900)
    cap, pkts = _packets("tcpdump_tcp_rst_data-trunc.pcap")
    p = pkts[0][1]
    assert cap.cut == 1 and (p.src, p.dst, p.flags, p.payload_len) == ("199.204.31.89", "172.16.133.41", "RST+ACK", 58)
    cap, pkts = _packets("tcpdump_quic_handshake_truncated.pcap")
    assert cap.cut == 4 and all(p.src == "::1" and p.proto == 17 for _t, p in pkts)
    assert [p.payload_len for _t, p in pkts[:4]] == [1200, 134, 1197, 119]


@needs_pcaps
@pytest.mark.parametrize("name,index,expect", [
    # values checked with tcpdump -nn -r first
    ("tcpdump_vxlan.pcap", 0, ("192.168.203.3", "192.168.203.5", 1, ("vxlan",))),
    ("tcpdump_vxlan.pcap", 3, ("192.168.203.5", "192.168.203.3", 1, ("vxlan",))),
    ("tcpdump_vxlan_port_8472.pcap", 0, ("192.168.203.3", "192.168.203.5", 1, ("vxlan",))),
    ("tcpdump_gso-ipv6-vxlan-ipv6.pcap", 0, ("fd00::2", "fd00::1", 6, ("vxlan",))),
    ("tcpdump_geneve.pcap", 2, ("30.0.0.2", "30.0.0.1", 6, ("geneve",))),
    ("tcpdump_geneve.pcap", 3, ("30.0.0.1", "30.0.0.2", 6, ("geneve",))),
    ("tcpdump_geneve-gcp.pcap", 0, ("192.168.100.2", "192.168.100.1", 6, ("geneve",))),
    ("pcaps_ipip__ping__veth2.pcap", 2, ("172.16.1.1", "172.16.2.1", 1, ("ipip",))),
    ("pcaps_ipip__ping__veth2.pcap", 3, ("172.16.2.1", "172.16.1.1", 1, ("ipip",))),
    ("pcaps_ipip__ping__tunl2.pcap", 0, ("172.16.1.1", "172.16.2.1", 1, ())),
])
def test_tunnel_inner_addresses(name, index, expect):
    _cap, pkts = _packets(name)
    p = pkts[index][1]
    assert (p.src, p.dst, p.proto, p.encap) == expect


@needs_pcaps
def test_tunnel_inner_tcp_fields():
    _cap, pkts = _packets("tcpdump_gso-ipv6-vxlan-ipv6.pcap")
    p = pkts[0][1]
    assert (p.sport, p.dport, p.seq, p.ack, p.payload_len) == (43583, 44175, 1840055637, 989320780, 4074)
    _cap, pkts = _packets("tcpdump_geneve.pcap")
    assert (pkts[2][1].sport, pkts[2][1].dport, pkts[2][1].seq, pkts[2][1].flags) == (51225, 22, 397610159, "SYN")
    _cap, pkts = _packets("tcpdump_vxlan.pcap")
    assert pkts[1][1] is None     # inner ARP: no IP packet


def test_not_a_capture(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a pcap at all")
    with pytest.raises(pcapio.CaptureError):
        pcapio.Capture(str(bad))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(pcapio.CaptureError, match="empty"):
        pcapio.Capture(str(empty))


def test_missing_dpkt_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(pcapio, "HAS_DPKT", False)
    with pytest.raises(pcapio.CaptureError, match="install dpkt"):
        pcapio.Capture("/nonexistent.pcap")


def test_big_records_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(pcapio, "CHUNK", 100)
    path = str(tmp_path / "big.pcap")
    frames = [(_synth.BASE_NS + i * 1000, _synth.eth(bytes(300 + i))) for i in range(5)]
    _synth.write_pcap(path, frames, 1)
    recs = [(ts, incl) for ts, incl, _o, _b, _s, _l in pcapio.Capture(path).records()]
    assert recs == [(_synth.BASE_NS + i * 1000, 314 + i) for i in range(5)]


def test_merged_pcapng(tmp_path):
    plan, captures = _synth.make_trace(tmp_path, "ipip")
    out = str(tmp_path / "trace.pcapng")
    res = pcapio.write_merged_pcapng(out, [(c["key"], c["file"]) for c in captures])
    assert res["packets"] == 7 * 6 and res["interfaces"] == [c["key"] for c in captures]
    cap = pcapio.Capture(out)
    recs = list(cap.records())
    assert [i["name"] for i in cap.interfaces] == [c["key"] for c in captures]
    assert [i["linktype"] for i in cap.interfaces] == [1, 101, 1, 1, 101, 1]
    times = [r[0] for r in recs]
    assert times == sorted(times) and len(recs) == 42
    # the raw tunl0 packets keep their link type in the merged file
    assert {r[5] for r in recs} == {1, 101}
    with open(out, "rb") as f:
        assert struct.unpack("<I", f.read(4))[0] == 0x0A0D0D0A


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_merged_pcapng_tshark(tmp_path):
    plan, captures = _synth.make_trace(tmp_path, "ipip")
    out = str(tmp_path / "trace.pcapng")
    pcapio.write_merged_pcapng(out, [(c["key"], c["file"]) for c in captures])
    res = subprocess.run(["tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name", "-e", "ip.src"],
                         capture_output=True, check=True, text=True)
    rows = [line.split("\t") for line in res.stdout.splitlines()]
    assert len(rows) == 42
    assert rows[0] == ["node-a/cali41f14107a8d", "172.17.25.79"]
    assert ["node-a/eth0", "10.240.128.12,172.17.25.79"] in rows
    assert ["node-b/tunl0", "172.17.25.79"] in rows
    assert {r[0] for r in rows} == {c["key"] for c in captures}
