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


def test_wireguard_dual_stack_has_calicos_second_device():
    import wireguard
    cluster = topology.plan("wireguard", 2, ipv6=True)
    a, b = cluster["nodes"]
    conf = wireguard.config_text(a, [b], "PRIVATE", {"node-b": "PUBLIC-B6"}, v6=True)
    assert conf.splitlines() == ["[Interface]", "PrivateKey = PRIVATE", "ListenPort = 51821", "FwMark = 0x100000", "",
                                 "[Peer]", "PublicKey = PUBLIC-B6", "Endpoint = [fd00:10:240::2]:51821",
                                 "AllowedIPs = fd00:10:244::80/122, fd00:10:244::80/128"]
    assert wireguard.ip_lines(a, [b], v6=True) == [
        "link set wg-v6.cali mtu 1420 up", "addr add fd00:10:244::40/128 dev wg-v6.cali nodad",
        "route add fd00:10:244::80/122 dev wg-v6.cali scope link table 1",
        "rule add not fwmark 0x100000/0x100000 lookup 1 priority 99"]
    # IPv4 keeps its own device, port and key
    assert "Endpoint = 10.240.0.9:51820" in wireguard.config_text(a, [b], "P4", {"node-b": "B4"})
    # the pods get the smaller MTU of the two devices; the main table routes the /122 as BGP does
    assert ipv6.pod_mtu("wireguard", topology.WIREGUARD_MTU) == 1420
    lines, fdb = ipv6.node_tail(cluster, a)
    assert lines[-1] == "route add fd00:10:244::80/122 via fe80::68:74ff:fe06:1 dev eth0 proto bird" and fdb == []


def test_flannel_dual_stack_has_flannel_v6_1_and_a_64_per_node():
    import flannel
    cluster = topology.plan("flannel", 3, ipv6=True)
    a, b, c = cluster["nodes"]
    assert (a["block6"], b["block6"], c["block6"]) == ("fd00:10:244::/64", "fd00:10:244:1::/64", "fd00:10:244:2::/64")
    assert (b["tunnel_ip6"], b["bridge_ip6"], b["vxlan6_mac"], b["ip6"]) == (
        "fd00:10:244:1::", "fd00:10:244:1::1", "6e:66:6c:06:00:01", "fd00:10:240::2")
    pods = {p["ip"]: p["ip6"] for p in cluster["pods"]}
    assert pods["10.244.0.2"] == "fd00:10:244::2" and pods["10.244.1.3"] == "fd00:10:244:1::3"
    assert topology.demo_flow(cluster) == ("fd00:10:244::2", "fd00:10:244:1::2", 443)
    lines = flannel.node_lines(cluster, a)
    assert lines[0] == "link add cni0 type bridge ageing_time 8640000 mcast_snooping 0"
    assert "addr add fd00:10:244::1/64 dev cni0 nodad" in lines
    assert ("link add flannel-v6.1 address 6e:66:6c:06:00:00 mtu 1430 type vxlan id 1 dstport 8472 "
            "local fd00:10:240::1 dev eth0 nolearning") in lines
    assert "route add fd00:10:244:1::/64 via fd00:10:244:1:: dev flannel-v6.1 onlink" in lines
    assert "neigh add fd00:10:244:2:: lladdr 6e:66:6c:06:00:02 dev flannel-v6.1 nud permanent" in lines
    assert flannel.fdb_lines(cluster, a)[2:] == ["fdb add 6e:66:6c:06:00:01 dev flannel-v6.1 dst fd00:10:240::2",
                                                 "fdb add 6e:66:6c:06:00:02 dev flannel-v6.1 dst fd00:10:240::3"]
    assert flannel.pod_lines(cluster, cluster["pods"][0])[4:] == [
        "addr add fd00:10:244::2/64 dev eth0 nodad", "route add default via fd00:10:244::1 dev eth0"]
    # flannel's pods keep flannel.1's MTU; IPv4 only: no IPv6 line at all
    assert ipv6.pod_mtu("flannel", flannel.MTU) == 1450
    v4 = topology.plan("flannel", 2)
    assert not any("flannel-v6" in line or ":" in line.split()[-1] for line in flannel.node_lines(v4, v4["nodes"][0])[1:])


def test_wire_drop_of_udp_or_tcp_matches_both_families():
    node = {"name": "node-b", "host_veth": "ht-node-b"}
    assert "oifname \"ht-node-b\" meta l4proto udp udp dport 51821 counter drop" in faults.wire_drop_ruleset(node, "udp", 51821)
    # without a protocol (or ICMP) IPv4 only: ICMPv6 carries the nodes' neighbour discovery
    assert "oifname \"ht-node-b\" meta protocol ip counter drop" in faults.wire_drop_ruleset(node)
    assert "meta protocol ip ip protocol icmp counter drop" in faults.wire_drop_ruleset(node, "icmp")
