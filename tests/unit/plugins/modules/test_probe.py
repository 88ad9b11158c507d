"""probe: argument checks and the 'pod is not on this node' answer (real /proc/net/route fixtures)."""
import os
import socket
from unittest import mock

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netns
from ansible_collections.hoptrace.k8s.plugins.modules import probe

from .helper import FIXTURES, load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_probe.yaml"))


def proc_routes():
    texts = []
    for name in ("proc_net_route.txt", "proc_net_ipv6_route.txt"):
        with open(os.path.join(FIXTURES, "netns", name)) as handle:
            texts.append(handle.read())
    return texts


@pytest.fixture
def node_routes():
    with mock.patch.object(_netns, "read_proc_routes", proc_routes), \
            mock.patch.object(_netns, "in_child", side_effect=AssertionError("probed")):
        yield


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_refused_arguments(case, node_routes):
    result, _script = run_module(probe, case["input"], [])
    assert result["failed"] and case["msg"] in result["msg"]


def test_pod_of_another_node(node_routes):
    result, _script = run_module(probe, {"src": "172.17.25.80", "dst": "172.17.25.239", "port": 443}, [])
    assert result["failed"]
    assert result["msg"] == ("172.17.25.80 is not a pod on %s: this node routes it via 10.240.0.1 dev eth0 (0.0.0.0/0); "
                             "run the probe on the node that holds the pod" % socket.gethostname())


def test_not_found_names_what_was_searched(node_routes):
    with mock.patch.object(_netns, "candidates", return_value=["/var/run/netns/a", "/proc/1/ns/net"]), \
            mock.patch.object(_netns, "peer_netnsid", return_value=None), \
            mock.patch.object(_netns, "in_child", return_value={"netns": None, "matches": []}):
        result, _script = run_module(probe, {"src": "172.17.25.79", "dst": "172.17.25.239", "port": 443}, [])
    assert result["failed"]
    assert result["msg"].startswith("no network namespace on %s has 172.17.25.79 (the node routes it to cali41f14107a8d): "
                                    "searched 2 namespaces" % socket.gethostname())


def test_result_shape(node_routes):
    found = {"netns": "/var/run/netns/pod-a", "matches": ["/var/run/netns/pod-a"],
             "attempts": [{"seq": 1, "ok": False, "status": "refused", "time_ms": 0.3, "error": "[Errno 111] Connection refused"}]}
    with mock.patch.object(_netns, "candidates", return_value=["/var/run/netns/pod-a"]), \
            mock.patch.object(_netns, "peer_netnsid", return_value=None), \
            mock.patch.object(_netns, "in_child", return_value=found):
        result, _script = run_module(probe, {"src": "172.17.25.79", "dst": "172.17.25.239", "port": 444}, [])
    assert not result["failed"] and result["changed"] is False
    assert (result["ok"], result["status"], result["netns"], result["pod_dev"]) == (
        False, "refused", "/var/run/netns/pod-a", "cali41f14107a8d")
