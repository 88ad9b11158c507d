"""Repeated probes on a schedule (module_utils/_probe_schedule.py), over loopback only."""
import os
import socket

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _probe_schedule as sched
from ansible_collections.hoptrace.k8s.plugins.modules import probe


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def test_each_tcp_probe_is_a_new_connection_from_its_own_port(listener):
    got = sched.run_schedule("127.0.0.1", "127.0.0.1", "tcp", listener, 1.0, 10, 0.02)
    assert [a["seq"] for a in got] == list(range(1, 11))
    assert [a["status"] for a in got] == ["connected"] * 10
    assert all(a["ok"] and a["error"] is None and a["time_ms"] >= 0 for a in got)
    assert len({a["sport"] for a in got}) == 10


def test_each_udp_probe_is_a_datagram_from_its_own_port_and_silence_is_sent():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    try:
        got = sched.run_schedule("127.0.0.1", "127.0.0.1", "udp", server.getsockname()[1], 0.2, 5, 0.01)
        heard = sorted(server.recvfrom(100)[1][1] for _n in range(5))
    finally:
        server.close()
    assert [(a["ok"], a["status"], a["time_ms"]) for a in got] == [(True, "sent", None)] * 5
    assert sorted(a["sport"] for a in got) == heard and len(set(heard)) == 5


def test_a_closed_port_is_refused_for_each_probe():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    got = sched.run_schedule("127.0.0.1", "127.0.0.1", "tcp", closed, 1.0, 3, 0.01)
    assert [(a["ok"], a["status"]) for a in got] == [(False, "refused")] * 3
    assert all("Connection refused" in a["error"] for a in got)


@pytest.mark.skipif(os.geteuid() != 0, reason="a raw ICMP socket needs root")
def test_icmp_probes_share_one_id_and_differ_by_seq():
    got = sched.run_schedule("127.0.0.1", "127.0.0.1", "icmp", None, 1.0, 4, 0.01)
    assert [(a["seq"], a["status"]) for a in got] == [(1, "replied"), (2, "replied"), (3, "replied"), (4, "replied")]
    assert len({a["id"] for a in got}) == 1


@pytest.mark.parametrize("override, message", [
    ({"count": 0}, "count"),
    ({"count": 1001}, "count"),
    ({"interval": -1}, "interval -1 is out of range: give seconds from 0 to 60, e.g. 0.2"),
    ({"interval": 61}, "interval 61 is out of range"),
])
def test_the_module_bounds_count_and_interval(override, message):
    params = {"src": "172.17.25.79", "dst": "172.17.25.239", "port": 443, "proto": "tcp", "timeout": 3, "count": 1, "interval": 0.2}
    params.update(override)
    with pytest.raises(ValueError) as err:
        probe.validated(params)
    assert message in str(err.value)
