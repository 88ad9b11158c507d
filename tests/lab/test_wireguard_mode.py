"""Lab mode wireguard: real WireGuard (wireguard-go) between the nodes, shaped like Calico's.

Each node's own wireguard-go answers `wg` over that node's sshd (its private /run/wireguard),
pod traffic goes through table 1 and wireguard.cali, and eth0 carries only encrypted UDP 51820
between the node pair. Root only.
"""
import os
import subprocess

import pytest

from lab import labctl
from lab.test_lab import DST, NODE_A, NODE_B, SRC, assert_all_pairs, curl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def ssh(node, *argv):
    return subprocess.run(["ssh", "-F", os.path.join(labctl.LAB_DIR, "ssh_config"), node] + list(argv),
                          capture_output=True, text=True, timeout=30)


def test_wireguard_lab_is_calico_shaped_and_each_node_has_its_own_daemon(lab_factory, tmp_path):
    st = lab_factory("wireguard", 2)
    assert [(n["name"], n["wireguard_go"], n["ipipd"]) for n in st["nodes"]] == [("node-a", True, None), ("node-b", True, None)]
    assert_all_pairs(st["pods"])
    dumps = {n: ssh(n, "wg", "show", "wireguard.cali", "dump").stdout.splitlines() for n in ("node-a", "node-b")}
    own = {n: lines[0].split("\t") for n, lines in dumps.items()}
    peer = {n: lines[1].split("\t") for n, lines in dumps.items()}
    assert [own[n][2:] for n in ("node-a", "node-b")] == [["51820", "0x100000"]] * 2
    # each node's daemon: node-a's public key is node-b's peer and the other way round
    assert (peer["node-b"][0], peer["node-a"][0]) == (own["node-a"][1], own["node-b"][1])
    assert (peer["node-a"][2], peer["node-a"][3]) == ("%s:51820" % NODE_B, "172.17.25.192/26,172.17.25.192/32")
    assert int(peer["node-a"][4]) > 0                     # a handshake happened
    rules = labctl.exec_in_node("node-a", ["ip", "rule"]).stdout
    assert "99:\tnot from all fwmark 0x100000/0x100000 lookup 1" in rules
    assert labctl.exec_in_node("node-a", ["ip", "route", "get", DST]).stdout.split()[:3] == [DST, "dev", "wireguard.cali"]
    link = labctl.exec_in_node("node-a", ["ip", "-d", "link", "show", "wireguard.cali"]).stdout
    assert "mtu 1440" in link and "tun type tun" in link
    # eth0 shows only the node pair's UDP 51820 for the pods' HTTPS, never the pod addresses
    pcap = str(tmp_path / "eth0.pcap")
    cap = subprocess.Popen(labctl.netns_argv("node-a", ["tcpdump", "-i", "eth0", "-nn", "-U", "--immediate-mode", "-c", "1",
                                                        "-w", pcap, "udp port 51820 and src host %s and dst host %s" % (NODE_A, NODE_B)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            if "listening" in (cap.stderr.readline() or ""):
                break
        assert curl(SRC, DST).returncode == 0
        cap.wait(timeout=10)
    finally:
        if cap.poll() is None:
            cap.kill()
    plain = subprocess.run(["tcpdump", "-nn", "-r", pcap, "host 172.17.25.79"], capture_output=True, text=True).stdout
    assert os.path.getsize(pcap) > 24 and plain == ""
