"""route_info: scripted iproute2 outputs (real fixtures) -> the internals.md result."""
import os
import socket

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.modules import route_info

from .helper import load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_route_info.yaml"))
TOP_KEYS = {"hostname", "routes", "links", "addresses", "workloads", "local_blocks", "remote_blocks", "peers",
            "node_ips", "route_get", "changed"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_route_info(case):
    result, script = run_module(route_info, case["input"], case["mocks"]["run_command"], bins=case.get("bins"))
    expected = dict(case["output"])
    if "msg" in expected:
        expected["msg"] = expected["msg"].replace("NODE", socket.gethostname())
    assert dict((k, result.get(k)) for k in expected) == expected
    assert not script.steps, "commands not run: %r" % script.steps
    if not result["failed"]:
        assert TOP_KEYS <= set(result)
        assert result["hostname"] == socket.gethostname()


def test_peers_and_blocks_from_json():
    result, _script = run_module(route_info, CASES[0]["input"], CASES[0]["mocks"]["run_command"])
    assert [(b["dst"], b["encap"], b["node_ip"]) for b in result["remote_blocks"]] == [
        ("172.17.25.192/26", "ipip", "10.240.0.9"), ("172.17.26.0/26", "vxlan", "10.240.0.10"),
        ("172.17.27.0/26", "none", "10.240.0.9")]
    assert [(p["node_ip"], p["dev"], p["src"], p["encap"]) for p in result["peers"]] == [
        ("10.240.0.9", "eth0", "10.240.128.12", "ipip"), ("10.240.0.10", "eth0", "10.240.128.12", "vxlan"),
        ("10.240.0.9", "eth0", "10.240.128.12", "none")]


def test_check_mode_reads_the_same():
    result, _script = run_module(route_info, CASES[0]["input"], CASES[0]["mocks"]["run_command"], check_mode=True)
    assert result["changed"] is False and result["workloads"]


def test_ip_not_installed():
    result, _script = run_module(route_info, {}, [], bins={"ip": None})
    assert result["failed"] and "ip" in result["msg"]


def test_wireguard_link_carries_its_peers_and_no_private_key():
    case = next(c for c in CASES if c["id"] == "wireguard-peers-from-wg-dump")
    result, _script = run_module(route_info, case["input"], case["mocks"]["run_command"])
    link = next(k for k in result["links"] if k["ifname"] == "wireguard.cali")
    assert (link["kind"], link["tun"], link["mtu"]) == ("wireguard", True, 1440)
    wg = link["wireguard"]
    assert (wg["public_key_id"], wg["listen_port"], wg["fwmark"]) == ("yDLWoXyp", 51820, 0x100000)
    assert [(p["public_key_id"], p["endpoint"], p["allowed_ips"]) for p in wg["peers"]] == [
        ("PdJZiNnE", "10.240.0.9:51820", ["172.17.25.192/26", "172.17.25.192/32"])]
    assert "private" not in repr(result)


def test_services_for_on_a_node_without_iptables_save_nor_nft_returns_a_note():
    # the seed node's iproute2 reads (real fixtures), then no kube-proxy tool at all: the address is not a pod's
    bins = {tool: None for tool in sr.SAVE_TOOLS + sr.SAVE6_TOOLS + ("nft", "ipvsadm")}
    result, script = run_module(route_info, dict(CASES[0]["input"], services_for="10.96.10.20"), CASES[0]["mocks"]["run_command"],
                                bins=bins)
    assert result["service_rules"] is None and not script.steps and not result["failed"]
    assert result["notes"] == ["kube-proxy's rules were not read on %s: none of iptables-save, iptables-nft-save, "
                               "iptables-legacy-save, nft is installed; a Service address is traced as a plain address"
                               % socket.gethostname()]
