"""pytest plugin: the lab for tests.

Use from any test module (tests/ is on sys.path through tests/conftest.py):

    pytest_plugins = ["lab.fixtures"]

    def test_x(lab_factory):
        lab = lab_factory("vxlan", 2)       # status dict: mode, nodes, pods, inventory, pods_json
        ...

`lab_factory(mode="ipip", nodes=2, pods_per_node=2, ipv6=False)` (ipv6: dual-stack pods) reuses a running, healthy lab of that shape
(clearing its faults) or brings one up; `lab` is `lab_factory("ipip", 2)`. The first use takes an
exclusive flock on /run/hoptrace-lab-tests.lock and holds it for the session, so two pytest runs
never share the lab; a lab this session changed is brought down at the end. Skips when not root.
"""
import fcntl
import os

import pytest

try:
    from . import labctl
except ImportError:                       # loaded as a top-level module
    import labctl

TESTS_LOCK = "/run/hoptrace-lab-tests.lock"


def _healthy(st, mode, nodes, pods_per_node, ipv6=False):
    if not st.get("up") or st.get("mode") != mode or len(st.get("nodes") or []) != nodes:
        return False
    if bool(st.get("ipv6")) != bool(ipv6):
        return False
    if len(st.get("pods") or []) != nodes * pods_per_node:
        return False
    for n in st["nodes"]:
        if not (n["alive"] and n["sshd"] and n["podserver"] and n["ipipd"] in (True, None)
                and n.get("wireguard_go") in (True, None)):
            return False
    return True


class _Session:
    def __init__(self):
        self.lock = None
        self.changed = False

    def acquire(self):
        if self.lock is None:
            self.lock = open(TESTS_LOCK, "a")
            fcntl.flock(self.lock, fcntl.LOCK_EX)

    def factory(self, mode="ipip", nodes=2, pods_per_node=2, ipv6=False):
        self.acquire()
        st = labctl.status()
        if _healthy(st, mode, nodes, pods_per_node, ipv6):
            if st.get("faults"):
                labctl.fault_clear()
                st = labctl.status()
            return st
        self.changed = True
        return labctl.up(mode, nodes, pods_per_node, ipv6=ipv6)

    def close(self):
        try:
            if self.changed and self.lock is not None:
                labctl.down()
        finally:
            if self.lock is not None:
                self.lock.close()
                self.lock = None


@pytest.fixture(scope="session")
def lab_factory():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    session = _Session()
    try:
        yield session.factory
    finally:
        session.close()


@pytest.fixture
def lab(lab_factory):
    return lab_factory("ipip", 2)
