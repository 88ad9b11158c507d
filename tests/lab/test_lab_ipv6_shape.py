"""The dual-stack lab's shape and its IPv6 drop rules, as pure data (no root, nothing built)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faults  # noqa: E402
import ipv6  # noqa: E402
import topology  # noqa: E402


def test_plan_without_ipv6_is_unchanged():
    cluster = topology.plan("vxlan", 2)
    assert cluster["ipv6"] is False
    assert "ip6" not in cluster["pods"][0] and "ip6" not in cluster["nodes"][0]
    assert topology.demo_flow(cluster) == ("172.17.25.79", "172.17.25.239", 443)


def test_dual_stack_pods_and_nodes():
    cluster = topology.plan("vxlan", 3, ipv6=True)
    assert cluster["ipv6"] is True
    a, b, c = cluster["nodes"]
    assert (a["ip6"], a["block6"], a["tunnel_ip6"]) == ("fd00:10:240::1", "fd00:10:244::40/122", "fd00:10:244::40")
    assert (b["ip6"], b["block6"], b["link_local"]) == ("fd00:10:240::2", "fd00:10:244::80/122", "fe80::68:74ff:fe06:1")
    assert c["block6"] == "fd00:10:244::c0/122"
    pods = {p["ip"]: p["ip6"] for p in cluster["pods"]}
    # the offset in the /26 is the offset in the /122: .79 of .64/26 -> ::4f of ::40/122
    assert pods["172.17.25.79"] == "fd00:10:244::4f" and pods["172.17.25.239"] == "fd00:10:244::af"
    assert pods["172.17.25.66"] == "fd00:10:244::42"
    assert topology.demo_flow(cluster) == ("fd00:10:244::4f", "fd00:10:244::af", 443)


def test_calico_v6_wiring_lines():
    cluster = topology.plan("vxlan", 2, ipv6=True)
    a = cluster["nodes"][0]
    assert ipv6.node_head(cluster, a) == ["link set eth0 address 02:68:74:06:00:00", "link set cali41f14107a8d address ee:ee:ee:ee:ee:ee",
                                          "link set cali2a1ec19d610 address ee:ee:ee:ee:ee:ee"]
    lines, fdb = ipv6.node_tail(cluster, a)
    assert "route add fd00:10:244::4f/128 dev cali41f14107a8d" in lines
    assert "route add blackhole fd00:10:244::40/122 proto bird" in lines
    assert ("link add vxlan-v6.calico address 66:68:74:06:00:00 mtu 1430 type vxlan id 4096 dstport 4789 "
            "local fd00:10:240::1 dev eth0 nolearning") in lines
    assert "route add fd00:10:244::80/122 via fd00:10:244::80 dev vxlan-v6.calico proto bird onlink" in lines
    assert "neigh add fd00:10:244::80 lladdr 66:68:74:06:00:01 dev vxlan-v6.calico nud permanent" in lines
    assert fdb == ["fdb add 66:68:74:06:00:01 dev vxlan-v6.calico dst fd00:10:240::2"]
    bgp = topology.plan("bgp", 2, ipv6=True)
    lines, fdb = ipv6.node_tail(bgp, bgp["nodes"][0])
    assert lines[-1] == "route add fd00:10:244::80/122 via fe80::68:74ff:fe06:1 dev eth0 proto bird" and fdb == []
    assert ipv6.pod_lines(cluster["pods"][0]) == ["addr add fd00:10:244::4f/128 dev eth0 nodad",
                                                  "route add default via fe80::ecee:eeff:feee:eeee dev eth0"]
    assert ipv6.pod_mtu("vxlan", 1450) == 1430 and ipv6.pod_mtu("bgp", 1500) == 1500


def test_link_local_is_the_kernels_eui64():
    assert ipv6.link_local("ee:ee:ee:ee:ee:ee") == "fe80::ecee:eeff:feee:eeee"
    assert ipv6.link_local("02:68:74:06:00:00") == "fe80::68:74ff:fe06:0"


def test_ipv6_drop_rules_use_ip6tables_shapes():
    src, dst = "fd00:10:244::4f", "fd00:10:244::af"
    assert faults.is_v6(src, dst) and not faults.is_v6("172.17.25.79", None)
    rules = faults.drop_rules("vxlan", "vxlan-v6.calico", "in", src, dst, "icmp", None)
    assert rules == [["-t", "mangle", "PREROUTING", "-i", "vxlan-v6.calico", "-s", src, "-d", dst, "-p", "ipv6-icmp"]]
    rules = faults.drop_rules("vxlan", "eth0", "in", src, dst, "tcp", 443)
    words = ("0x%s" % w for w in ("fd000010", "02440000", "00000000"))
    prefix = "&&".join("%d=%s" % (at, w) for at, w in zip((78, 82, 86), words))
    assert rules[1] == ["-t", "mangle", "PREROUTING", "-i", "eth0", "-p", "udp", "--dport", "4789", "-m", "u32", "--u32",
                        prefix + "&&90=0x0000004f&&94=0xfd000010&&98=0x02440000&&102=0x00000000&&106=0x000000af"
                        "&&74>>8&0xFF=6&&110>>16=443"]
    assert rules[2][-1].endswith("&&110&0xFFFF=443")
    # bgp: IPv6 is not encapsulated, the plain rule is the whole fault
    assert len(faults.drop_rules("bgp", "eth0", "out", src, dst, "tcp", 443)) == 1
    assert len(faults.drop_rules("ipip", "eth0", "out", src, dst, "tcp", 443)) == 1
