"""Lab modes wireguard and flannel with `--ipv6`: the IPv6 half is built as Calico and flanneld build it.

wireguard: a second wireguard-go per node drives Calico's wg-v6.cali (port 51821, MTU 1420, peers
at the other nodes' IPv6 addresses with their /122 as AllowedIPs, table 1 and rule 99 of the IPv6
family). flannel: flannel-v6.1 (VNI 1, port 8472 over the nodes' IPv6 addresses), a /64 per node
on cni0. Every pod reaches every other over IPv6. Root only.
"""
import os
import subprocess

import pytest

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def ssh(node, *argv):
    return subprocess.run(["ssh", "-F", os.path.join(labctl.LAB_DIR, "ssh_config"), node] + list(argv),
                          capture_output=True, text=True, timeout=30)


def assert_all_pairs6(pods):
    for a in pods:
        for b in pods:
            if a is not b:
                r = labctl.exec_in_pod(a["ip"], ["curl", "-sk", "--max-time", "5", "https://[%s]/" % b["ip6"]], timeout=15)
                assert r.returncode == 0, "curl %s -> %s: rc %d %s" % (a["ip6"], b["ip6"], r.returncode, r.stderr)
                assert r.stdout.strip().startswith("pod %s/%s " % (b["namespace"], b["name"])), r.stdout


def test_wireguard_dual_stack_has_wg_v6_cali_beside_wireguard_cali(lab_factory):
    st = lab_factory("wireguard", 2, ipv6=True)
    assert_all_pairs6(st["pods"])
    dump = [line.split("\t") for line in ssh("node-a", "wg", "show", "all", "dump").stdout.splitlines()]
    assert [(d[0], d[3], d[4]) for d in dump if len(d) == 5] == [("wg-v6.cali", "51821", "0x100000"),
                                                                 ("wireguard.cali", "51820", "0x100000")]
    peers = {d[0]: (d[3], d[4]) for d in dump if len(d) == 9}
    assert peers == {"wg-v6.cali": ("[fd00:10:240::2]:51821", "fd00:10:244::80/122,fd00:10:244::80/128"),
                     "wireguard.cali": ("10.240.0.9:51820", "172.17.25.192/26,172.17.25.192/32")}
    # one key pair per device, as Calico's node status has a public key for each family
    assert len({d[2] for d in dump if len(d) == 5}) == 2
    assert "99:\tnot from all fwmark 0x100000/0x100000 lookup 1" in labctl.exec_in_node("node-a", ["ip", "-6", "rule"]).stdout
    got = labctl.exec_in_node("node-a", ["ip", "-6", "route", "get", "fd00:10:244::af"]).stdout.split()
    assert got[:3] == ["fd00:10:244::af", "from", "::"] and got[3:7] == ["dev", "wg-v6.cali", "table", "1"]
    assert "mtu 1420" in labctl.exec_in_node("node-a", ["ip", "link", "show", "wg-v6.cali"]).stdout
    # the pods' MTU is the smaller of the two devices'
    assert "mtu 1420" in labctl.exec_in_pod("172.17.25.79", ["ip", "link", "show", "eth0"]).stdout


def test_flannel_dual_stack_has_flannel_v6_1_and_a_64_per_node(lab_factory):
    st = lab_factory("flannel", 2, ipv6=True)
    assert_all_pairs6(st["pods"])
    routes = labctl.exec_in_node("node-a", ["ip", "-6", "route"], check=True).stdout
    assert "fd00:10:244:1::/64 via fd00:10:244:1:: dev flannel-v6.1 metric 1024 onlink pref medium" in routes
    assert "fd00:10:244::/64 dev cni0 proto kernel metric 256 pref medium" in routes
    link = labctl.exec_in_node("node-a", ["ip", "-d", "link", "show", "flannel-v6.1"], check=True).stdout
    assert "mtu 1430" in link and "vxlan id 1 local fd00:10:240::1 dev eth0" in link and "dstport 8472" in link
    assert "6e:66:6c:06:00:01 dst fd00:10:240::2 self permanent" in labctl.exec_in_node(
        "node-a", ["bridge", "fdb", "show", "dev", "flannel-v6.1"], check=True).stdout
    assert "fd00:10:244:1:: lladdr 6e:66:6c:06:00:01 PERMANENT" in labctl.exec_in_node(
        "node-a", ["ip", "-6", "neigh", "show", "dev", "flannel-v6.1"], check=True).stdout
    route = labctl.exec_in_pod("10.244.0.2", ["ip", "-6", "route", "show", "default"], check=True).stdout
    assert route.split()[:5] == ["default", "via", "fd00:10:244::1", "dev", "eth0"]
