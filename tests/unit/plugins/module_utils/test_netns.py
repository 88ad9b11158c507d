"""module_utils/_netns: is a pod on this node (routes from /proc), ICMP parsing, netlink parsing."""
import os
import struct

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netns as ns

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "netns")


def read(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize("ip,expected", [
    ("172.17.25.79", ("172.17.25.79/32", None, "cali41f14107a8d")),
    ("172.17.25.239", ("172.17.25.239/32", None, "calic25e805a467")),
    ("10.240.0.9", ("10.240.0.0/16", None, "eth0")),
    ("172.17.25.80", ("0.0.0.0/0", "10.240.0.1", "eth0")),
    ("172.17.99.5", ("0.0.0.0/0", "10.240.0.1", "eth0")),   # the unreachable /24 is a reject route: skipped
    ("fe80::1", ("fe80::/64", None, "cali41f14107a8d")),
])
def test_route_to_from_real_proc(ip, expected):
    net, gate, dev = ns.route_to(ip, read("proc_net_route.txt"), read("proc_net_ipv6_route.txt"))
    assert (str(net), gate, dev) == expected


def test_no_route():
    assert ns.route_to("2001:db8::1", read("proc_net_route.txt"), read("proc_net_ipv6_route.txt")) is None


def test_checksum_and_echo():
    packet = ns.echo_request(0x1234, 7)
    assert packet[0] == 8 and ns.checksum(bytes(packet)) == 0
    assert struct.unpack("!HH", packet[4:8]) == (0x1234, 7)
    assert ns.echo_request(1, 1, v6=True)[0] == 128


def _ip(payload, proto=1):
    return bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                                 bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + payload)


def test_parse_icmp_reply_v4():
    reply = _ip(struct.pack("!BBHHH", 0, 0, 0, 42, 3) + b"x")
    assert ns.parse_icmp_reply(reply, 42, 3) == ("replied", 0)
    assert ns.parse_icmp_reply(reply, 42, 4) is None
    original = _ip(struct.pack("!BBHHH", 8, 0, 0, 42, 3))
    for code, status in ((1, "unreachable"), (0, "no route"), (13, "prohibited")):
        unreach = _ip(struct.pack("!BBHI", 3, code, 0, 0) + bytes(original))
        assert ns.parse_icmp_reply(unreach, 42, 3) == (status, code)
    assert ns.parse_icmp_reply(_ip(struct.pack("!BBHHH", 8, 0, 0, 42, 3)), 42, 3) is None  # our own request


def test_parse_icmp_reply_v6():
    assert ns.parse_icmp_reply(bytearray(struct.pack("!BBHHH", 129, 0, 0, 9, 1)), 9, 1, v6=True) == ("replied", 0)
    inner = bytes(40) + struct.pack("!BBHHH", 128, 0, 0, 9, 1)
    assert ns.parse_icmp_reply(bytearray(struct.pack("!BBHI", 1, 3, 0, 0) + inner), 9, 1, v6=True) == ("unreachable", 3)


def _attr(kind, value):
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\0" * ((4 - len(raw) % 4) % 4)


def test_parse_link_dump():
    attrs = _attr(ns.IFLA_IFNAME, b"cali41f14107a8d\0") + _attr(ns.IFLA_LINK, struct.pack("=I", 2)) + \
        _attr(ns.IFLA_LINK_NETNSID, struct.pack("=i", 3))
    body = struct.pack("=BBHiII", 0, 0, 1, 5, 0, 0) + attrs
    message = struct.pack("=IHHII", 16 + len(body), ns.RTM_NEWLINK, 2, 1, 0) + body
    done = struct.pack("=IHHII", 20, ns.NLMSG_DONE, 2, 1, 0) + b"\0" * 4
    table = {}
    assert ns.parse_link_dump(message, table) is False
    assert table == {5: {"name": "cali41f14107a8d", "link": 2, "netnsid": 3}}
    assert ns.parse_link_dump(done, table) is True


def test_parse_nsid():
    body = struct.pack("=Bxxx", 0) + _attr(ns.NETNSA_NSID, struct.pack("=i", 4))
    assert ns.parse_nsid(struct.pack("=IHHII", 16 + len(body), ns.RTM_NEWNSID, 0, 1, 0) + body) == 4
    assert ns.parse_nsid(struct.pack("=IHHII", 36, ns.NLMSG_ERROR, 0, 1, 0) + b"\0" * 20) is None


def test_summarise():
    attempts = [{"ok": True, "status": "connected", "time_ms": 1.0, "error": None},
                {"ok": False, "status": "refused", "time_ms": 0.2, "error": "refused"},
                {"ok": True, "status": "connected", "time_ms": 3.0, "error": None}]
    assert ns.summarise(attempts) == {"ok": False, "status": "refused", "error": "refused", "time_ms": 2.0,
                                      "sent": 3, "succeeded": 2}


def test_in_child_returns_and_raises():
    assert ns.in_child(lambda: {"pid": os.getpid()}, 10)["pid"] != os.getpid()
    with pytest.raises(RuntimeError) as err:
        ns.in_child(lambda: 1 / 0, 10)
    assert "ZeroDivisionError" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="reads every namespace; needs root")
def test_candidates_exclude_our_own_and_dedupe():
    paths = ns.candidates()
    own = os.stat("/proc/self/ns/net")
    keys = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:  # a process that ended meanwhile
            continue
        keys.append((st.st_dev, st.st_ino))
    assert (own.st_dev, own.st_ino) not in keys
    assert len(keys) == len(set(keys))


def test_a_full_size_echo_fills_the_route_mtu():
    """Over loopback (this machine's own namespace, nothing leaves it): the payload makes the packet the MTU."""
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _netns
    mtu = _netns.route_mtu("127.0.0.1", "127.0.0.1")
    assert mtu == min(65535, int(open("/sys/class/net/lo/mtu").read()))   # an IP packet holds 65535 bytes at most
    assert _netns.full_payload("127.0.0.1", "127.0.0.1", 8) == mtu - 28
    packet = _netns.echo_request(7, 1, payload_len=1452)
    assert len(packet) == 8 + 1452 and packet[8:16] == b"hoptrace"


def test_a_single_tcp_or_udp_probe_records_the_source_port_it_bound():
    # loopback only: the port the probe bound is the one the listener sees, so the conntrack lookup
    # after the probe (snapshot_conntrack.sports) can pick this probe's connection and no other
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    attempt = ns.tcp_once("127.0.0.1", "127.0.0.1", listener.getsockname()[1], 2.0)
    conn, peer = listener.accept()
    conn.close()
    listener.close()
    assert (attempt["ok"], attempt["status"], attempt["sport"]) == (True, "connected", peer[1])
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    attempt = ns.udp_once("127.0.0.1", "127.0.0.1", echo.getsockname()[1], 0.2)
    peer = echo.recvfrom(2048)[1]
    echo.close()
    assert (attempt["status"], attempt["sport"]) == ("sent", peer[1])
