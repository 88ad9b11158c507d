"""plan: hops and captures from route_info-shaped node results (seed, VXLAN, BGP, CrossSubnet,
WireGuard, same node, external dst, errors), with renamed devices, 3 nodes and IPv6."""
import json
import os

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import NoNodeError, PlanError, build_plan, wireguard_port

from flowpcap import compile_filter, flow_part, needs_tcpdump


def node(routes, links, node_ips, peers=None, workloads=None, local_blocks=None):
    """A route_info result as docs/internals.md describes it, routes from 'ip route' text."""
    result = {
        "routes": parse_ip_route(routes),
        "links": [dict({"ifname": name, "kind": kind}, **extra) for name, kind, extra in links],
        "node_ips": node_ips,
        "peers": peers or [],
        "local_blocks": local_blocks or [],
    }
    if workloads is not None:
        result["workloads"] = workloads
    return result


def path(plan, direction):
    return [(h["node"], h["interface"], h["role"], h["encap"]) for h in plan["hops"] if h["direction"] == direction]


def captures(plan):
    return {c["key"]: c for c in plan["captures"]}


# --- the seed: IPIP between 10.240.128.12 and 10.240.0.9 --------------------------------------

SEED_A = """default via 10.240.128.1 dev eth0
10.240.128.0/24 dev eth0 proto kernel scope link src 10.240.128.12
172.17.25.66 dev calib1a96c2cc82 scope link
172.17.25.79 dev cali41f14107a8d scope link
172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink
blackhole 172.17.25.64/26 proto bird
"""
# node-b: the seed shows its default route and the pod route; the tunnel route back to
# node-a's block is the mirror of node-a's.
SEED_B = """default via 10.240.0.1 dev eth0
10.240.0.0/24 dev eth0 proto kernel scope link src 10.240.0.9
172.17.25.239 dev calic25e805a467 scope link
172.17.25.64/26 via 10.240.128.12 dev tunl0 proto bird onlink
blackhole 172.17.25.192/26 proto bird
"""
LINKS = [("eth0", "physical", {}), ("tunl0", "ipip", {}), ("cali41f14107a8d", "veth", {}),
         ("calib1a96c2cc82", "veth", {}), ("calic25e805a467", "veth", {})]
SEED_NODES = {
    "node-a": node(SEED_A, LINKS, ["10.240.128.12"], local_blocks=["172.17.25.64/26"]),
    "node-b": node(SEED_B, LINKS, ["10.240.0.9"], local_blocks=["172.17.25.192/26"]),
}


def test_seed_acceptance():
    plan = build_plan(SEED_NODES, "172.17.25.79", "172.17.25.239", "tcp", 443)
    assert plan["run"] == {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}
    assert (plan["src_node"], plan["dst_node"], plan["encap"], plan["response_encap"]) == ("node-a", "node-b", "ipip", "ipip")
    assert path(plan, "request") == [
        ("node-a", "cali41f14107a8d", "src-veth", "none"),
        ("node-a", "tunl0", "tunnel-out", "none"),
        ("node-a", "eth0", "underlay-out", "ipip"),
        ("node-b", "eth0", "underlay-in", "ipip"),
        ("node-b", "tunl0", "tunnel-in", "none"),
        ("node-b", "calic25e805a467", "dst-veth", "none"),
    ]
    assert path(plan, "response") == [
        ("node-b", "calic25e805a467", "dst-veth", "none"),
        ("node-b", "tunl0", "tunnel-out", "none"),
        ("node-b", "eth0", "underlay-out", "ipip"),
        ("node-a", "eth0", "underlay-in", "ipip"),
        ("node-a", "tunl0", "tunnel-in", "none"),
        ("node-a", "cali41f14107a8d", "src-veth", "none"),
    ]
    assert len(plan["hops"]) == 12
    first = plan["hops"][0]
    assert first == {"index": 1, "direction": "request", "node": "node-a", "node_ip": "10.240.128.12",
                     "interface": "cali41f14107a8d", "role": "src-veth", "encap": "none",
                     "capture": "node-a/cali41f14107a8d"}
    assert [h["index"] for h in plan["hops"]] == [1, 2, 3, 4, 5, 6] * 2
    assert {h["node"]: h["node_ip"] for h in plan["hops"]} == {"node-a": "10.240.128.12", "node-b": "10.240.0.9"}

    caps = captures(plan)
    assert sorted(caps) == ["node-a/cali41f14107a8d", "node-a/eth0", "node-a/tunl0",
                            "node-b/calic25e805a467", "node-b/eth0", "node-b/tunl0"]
    src_eth0 = caps["node-a/eth0"]["filter"]
    assert src_eth0.startswith("(ip proto 4 and host 10.240.0.9 and ")
    assert "ip[36:4]==0xac1119ef" in src_eth0 and "ip[32:4]==0xac1119ef" in src_eth0
    assert "host 10.240.128.12" in caps["node-b/eth0"]["filter"]
    plain = "host 172.17.25.79 and host 172.17.25.239 and tcp port 443"
    for key in ("node-a/cali41f14107a8d", "node-a/tunl0", "node-b/tunl0", "node-b/calic25e805a467"):
        assert flow_part(caps[key]["filter"]) == plain
    assert caps["node-a/tunl0"]["link_type"] == "RAW" and caps["node-a/eth0"]["link_type"] == "EN10MB"
    assert caps["node-a/eth0"]["peer"] == "10.240.0.9" and caps["node-b/eth0"]["peer"] == "10.240.128.12"
    assert caps["node-a/eth0"]["encap"] == "ipip" and caps["node-a/tunl0"]["role"] == "tunnel"
    assert plan["warnings"] == []


@needs_tcpdump
def test_seed_filters_compile():
    plan = build_plan(SEED_NODES, "172.17.25.79", "172.17.25.239", "tcp", 443)
    for capture in plan["captures"]:
        compile_filter(capture["filter"], capture["link_type"])


def test_seed_without_workloads_or_links_derives_them():
    bare = {name: {"routes": n["routes"], "node_ips": n["node_ips"]} for name, n in SEED_NODES.items()}
    plan = build_plan(bare, "172.17.25.79", "172.17.25.239", "icmp")
    assert [h["interface"] for h in plan["hops"]][:6] == [
        "cali41f14107a8d", "tunl0", "eth0", "eth0", "tunl0", "calic25e805a467"]
    assert flow_part(captures(plan)["node-a/eth0"]["filter"]).endswith("ip[29]==1")


# --- VXLAN, renamed devices, three nodes ---------------------------------------------------------

def _vxlan_nodes(name="vxlan.calico", port=4789, nic="ens5"):
    addrs = {"n1": "10.0.1.11", "n2": "10.0.2.12", "n3": "10.0.3.13"}
    blocks = {"n1": "172.16.1", "n2": "172.16.2", "n3": "172.16.3"}
    nodes = {}
    for me, ip in addrs.items():
        lines = ["default via 10.0.0.1 dev %s" % nic, "10.0.0.0/16 dev %s proto kernel scope link src %s" % (nic, ip),
                 "%s.10 dev cali%s0000000a scope link" % (blocks[me], me),
                 "blackhole %s.0/26 proto 80" % blocks[me]]
        for other in addrs:
            if other != me:
                lines.append("%s.0/26 via %s.0 dev %s proto 80 onlink" % (blocks[other], blocks[other], name))
        links = [(nic, "physical", {}), ("cali%s0000000a" % me, "veth", {}),
                 (name, "vxlan", {"vxlan": {"id": 4096, "port": port, "local": ip, "dev": nic}})]
        nodes[me] = node("\n".join(lines), links, [ip], local_blocks=["%s.0/26" % blocks[me]])
    return nodes


def test_vxlan_three_nodes_renamed_underlay():
    plan = build_plan(_vxlan_nodes(), "172.16.1.10", "172.16.3.10", "tcp", 8080)
    assert (plan["src_node"], plan["dst_node"], plan["encap"]) == ("n1", "n3", "vxlan")
    assert path(plan, "request") == [
        ("n1", "calin10000000a", "src-veth", "none"),
        ("n1", "vxlan.calico", "tunnel-out", "none"),
        ("n1", "ens5", "underlay-out", "vxlan"),
        ("n3", "ens5", "underlay-in", "vxlan"),
        ("n3", "vxlan.calico", "tunnel-in", "none"),
        ("n3", "calin30000000a", "dst-veth", "none"),
    ]
    assert len(plan["hops"]) == 12
    caps = captures(plan)
    assert caps["n1/ens5"]["filter"].startswith("(udp port 4789 and host 10.0.3.13 and udp[28:2]==0x0800")
    assert "udp[46:4]==0xac10030a" in caps["n1/ens5"]["filter"]
    assert caps["n3/ens5"]["filter"].startswith("(udp port 4789 and host 10.0.1.11 ")
    assert caps["n1/ens5"]["vxlan_port"] == 4789
    assert caps["n1/vxlan.calico"]["link_type"] == "EN10MB"
    assert not any(c["node"] == "n2" for c in plan["captures"])


def test_flannel_style_vxlan_port_comes_from_the_link():
    plan = build_plan(_vxlan_nodes(name="flannel.1", port=8472, nic="enp1s0"), "172.16.2.10", "172.16.1.10", "udp", 53)
    caps = captures(plan)
    assert caps["n2/enp1s0"]["filter"].startswith("(udp port 8472 and host 10.0.1.11")
    assert flow_part(caps["n2/flannel.1"]["filter"]) == "host 172.16.2.10 and host 172.16.1.10 and udp port 53"
    assert caps["n1/enp1s0"]["underlay_port"] == 8472


# --- BGP (no encapsulation), IPv6 ----------------------------------------------------------------

def _bgp6_nodes():
    a = node("""fd00:10::/64 dev ens5 proto kernel metric 256 pref medium
fd00:172:16:1::5 dev cali0000000001a metric 1024 pref medium
blackhole fd00:172:16:1::/122 proto bird metric 1024 pref medium
fd00:172:16:2::/122 via fd00:10::12 dev ens5 proto bird metric 1024 pref medium
default via fd00:10::1 dev ens5 metric 1024 pref medium""",
             [("ens5", "physical", {}), ("cali0000000001a", "veth", {})], ["fd00:10::11"])
    b = node("""fd00:10::/64 dev ens5 proto kernel metric 256 pref medium
fd00:172:16:2::7 dev cali0000000002b metric 1024 pref medium
fd00:172:16:1::/122 via fd00:10::11 dev ens5 proto bird metric 1024 pref medium""",
             [("ens5", "physical", {}), ("cali0000000002b", "veth", {})], ["fd00:10::12"])
    return {"a": a, "b": b}


def test_bgp_ipv6_eight_hops_plain_filters():
    plan = build_plan(_bgp6_nodes(), "fd00:172:16:1::5", "fd00:172:16:2::7", "tcp", 443)
    assert plan["encap"] == "none"
    assert path(plan, "request") == [
        ("a", "cali0000000001a", "src-veth", "none"), ("a", "ens5", "underlay-out", "none"),
        ("b", "ens5", "underlay-in", "none"), ("b", "cali0000000002b", "dst-veth", "none")]
    assert path(plan, "response") == [
        ("b", "cali0000000002b", "dst-veth", "none"), ("b", "ens5", "underlay-out", "none"),
        ("a", "ens5", "underlay-in", "none"), ("a", "cali0000000001a", "src-veth", "none")]
    assert {flow_part(c["filter"]) for c in plan["captures"]} == {"host fd00:172:16:1::5 and host fd00:172:16:2::7 and tcp port 443"}
    assert {h["node_ip"] for h in plan["hops"]} == {"fd00:10::11", "fd00:10::12"}


# --- CrossSubnet: encapsulation only between subnets ---------------------------------------------

def _crosssubnet_nodes():
    def routes(ip, own, net, rest):
        return "\n".join(["default via %s.1 dev ens5" % net, "%s.0/24 dev ens5 proto kernel scope link src %s" % (net, ip),
                          "%s.10 dev cali%s scope link" % (own, own.replace(".", "")[-11:].rjust(11, "0"))] + rest)
    n1 = node(routes("10.1.0.11", "172.16.1", "10.1.0", [
        "172.16.2.0/26 via 10.1.0.12 dev ens5 proto bird",                     # same subnet: direct
        "172.16.3.0/26 via 10.2.0.13 dev tunl-x proto bird onlink"]),          # other subnet: IPIP
        [("ens5", "physical", {}), ("tunl-x", "ipip", {})], ["10.1.0.11"])
    n2 = node(routes("10.1.0.12", "172.16.2", "10.1.0", [
        "172.16.1.0/26 via 10.1.0.11 dev ens5 proto bird",
        "172.16.3.0/26 via 10.2.0.13 dev tunl-x proto bird onlink"]),
        [("ens5", "physical", {}), ("tunl-x", "ipip", {})], ["10.1.0.12"])
    n3 = node(routes("10.2.0.13", "172.16.3", "10.2.0", [
        "172.16.1.0/26 via 10.1.0.11 dev tunl-x proto bird onlink",
        "172.16.2.0/26 via 10.1.0.12 dev tunl-x proto bird onlink"]),
        [("ens5", "physical", {}), ("tunl-x", "ipip", {})], ["10.2.0.13"])
    return {"n1": n1, "n2": n2, "n3": n3}


def test_crosssubnet_same_subnet_is_unencapsulated():
    plan = build_plan(_crosssubnet_nodes(), "172.16.1.10", "172.16.2.10", "tcp", 80)
    assert plan["encap"] == "none" and len(plan["hops"]) == 8
    assert flow_part(captures(plan)["n1/ens5"]["filter"]) == "host 172.16.1.10 and host 172.16.2.10 and tcp port 80"


def test_crosssubnet_other_subnet_is_ipip_on_a_renamed_tunnel():
    plan = build_plan(_crosssubnet_nodes(), "172.16.1.10", "172.16.3.10", "tcp", 80)
    assert plan["encap"] == "ipip" and len(plan["hops"]) == 12
    assert [h["interface"] for h in plan["hops"]][:6] == ["cali00000172161", "tunl-x", "ens5", "ens5", "tunl-x", "cali00000172163"]
    caps = captures(plan)
    assert caps["n1/ens5"]["filter"].startswith("(ip proto 4 and host 10.2.0.13 ")
    assert caps["n3/ens5"]["filter"].startswith("(ip proto 4 and host 10.1.0.11 ")
    assert caps["n1/tunl-x"]["link_type"] == "RAW"


# --- WireGuard -------------------------------------------------------------------------------

def test_wireguard_routes_in_their_own_table_win():
    def wg(ip, own, other, other_ip):
        return node("\n".join([
            "default via 10.0.0.1 dev eth0", "10.0.0.0/24 dev eth0 proto kernel scope link src %s" % ip,
            "%s.10 dev cali%s scope link" % (own, "0" * 11),
            "%s.0/26 via %s dev eth0 proto bird" % (other, other_ip),
            "%s.0/26 dev wireguard.cali table 1 scope link" % other]),
            [("eth0", "physical", {}), ("wireguard.cali", "wireguard", {}), ("cali" + "0" * 11, "veth", {})], [ip])
    nodes = {"w1": wg("10.0.0.11", "172.16.1", "172.16.2", "10.0.0.12"),
             "w2": wg("10.0.0.12", "172.16.2", "172.16.1", "10.0.0.11")}
    plan = build_plan(nodes, "172.16.1.10", "172.16.2.10", "tcp", 443)
    assert plan["encap"] == "wireguard"
    assert [h["interface"] for h in plan["hops"]][:6] == [
        "cali00000000000", "wireguard.cali", "eth0", "eth0", "wireguard.cali", "cali00000000000"]
    caps = captures(plan)
    assert caps["w1/eth0"]["filter"] == "udp port 51820 and host 10.0.0.12"
    assert caps["w2/eth0"]["filter"] == "udp port 51820 and host 10.0.0.11"
    assert flow_part(caps["w1/wireguard.cali"]["filter"]) == "host 172.16.1.10 and host 172.16.2.10 and tcp port 443"
    assert caps["w1/wireguard.cali"]["link_type"] == "RAW"


# --- same node, external dst, asymmetric -----------------------------------------------------

def test_same_node_is_veth_to_veth():
    plan = build_plan(SEED_NODES, "172.17.25.79", "172.17.25.66", "udp", 53)
    assert plan["encap"] == "local" and plan["dst_node"] == "node-a"
    assert path(plan, "request") == [("node-a", "cali41f14107a8d", "src-veth", "none"), ("node-a", "calib1a96c2cc82", "dst-veth", "none")]
    assert path(plan, "response") == [("node-a", "calib1a96c2cc82", "dst-veth", "none"), ("node-a", "cali41f14107a8d", "src-veth", "none")]
    assert len(plan["captures"]) == 2


def test_external_dst_ends_at_the_egress_nic():
    plan = build_plan(SEED_NODES, "172.17.25.79", "8.8.8.8", "tcp", 443)
    assert plan["dst_node"] is None and plan["encap"] == "none"
    assert path(plan, "request") == [("node-a", "cali41f14107a8d", "src-veth", "none"), ("node-a", "eth0", "underlay-out", "none")]
    assert path(plan, "response") == [("node-a", "eth0", "underlay-in", "none"), ("node-a", "cali41f14107a8d", "src-veth", "none")]
    egress = captures(plan)["node-a/eth0"]
    assert egress["role"] == "egress"
    assert flow_part(egress["filter"]) == "host 8.8.8.8 and (host 172.17.25.79 or host 10.240.128.12) and tcp port 443"


def test_external_dst_without_route_keeps_the_veth_and_warns():
    nodes = {"node-a": node("172.17.25.79 dev cali41f14107a8d scope link\nunreachable default", LINKS, ["10.240.128.12"])}
    plan = build_plan(nodes, "172.17.25.79", "8.8.8.8", "icmp")
    assert [h["interface"] for h in plan["hops"]] == ["cali41f14107a8d", "cali41f14107a8d"]
    assert "unreachable" in plan["warnings"][0]


def test_asymmetric_encapsulation_combines_filters_and_warns():
    nodes = dict(SEED_NODES)
    nodes["node-b"] = node(SEED_B.replace("via 10.240.128.12 dev tunl0 proto bird onlink", "via 10.240.0.1 dev eth0 proto bird"),
                           LINKS, ["10.240.0.9"])
    plan = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443)
    assert (plan["encap"], plan["response_encap"]) == ("ipip", "none")
    assert "asymmetric" in plan["warnings"][0]
    combined = captures(plan)["node-a/eth0"]
    assert combined["encap"] == "mixed"
    assert combined["filter"].startswith("((ip proto 4 and host 10.240.0.9 ")
    assert ") or ((host 172.17.25.79 and host 172.17.25.239 and tcp port 443) or (icmp and " in combined["filter"]


def test_stale_tunnel_route_to_another_node_warns():
    nodes = dict(SEED_NODES)
    nodes["node-c"] = node("172.17.26.5 dev cali00000000c01 scope link", LINKS, ["10.240.1.5"])
    nodes["node-a"] = node(SEED_A.replace("via 10.240.0.9 dev tunl0", "via 10.240.1.5 dev tunl0"), LINKS, ["10.240.128.12"])
    plan = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443)
    assert "to 10.240.1.5 (node-c), but the pod is on node-b" in plan["warnings"][0]


# --- errors ----------------------------------------------------------------------------------

def test_src_on_no_node_names_nodes_and_addresses():
    with pytest.raises(NoNodeError) as info:
        build_plan(SEED_NODES, "172.17.25.80", "172.17.25.239", "tcp", 443)
    message = str(info.value)
    assert "src 172.17.25.80 is not a pod on any of the 2 nodes searched" in message
    assert "node-a (172.17.25.66, 172.17.25.79)" in message and "node-b (172.17.25.239)" in message


def test_dst_in_a_pod_block_but_on_no_node():
    with pytest.raises(NoNodeError, match=r"dst 172.17.25.200 is in pod block 172.17.25.192/26 of node-b, but no node"):
        build_plan(SEED_NODES, "172.17.25.79", "172.17.25.200", "tcp", 443)


@pytest.mark.parametrize("nodes, args, message", [
    (SEED_NODES, ("172.17.25.79", "172.17.25.239", "tcp", None), "port is required"),
    (SEED_NODES, ("172.17.25.79", "fd00::1", "tcp", 443), "different IP families"),
    ({}, ("172.17.25.79", "172.17.25.239", "tcp", 443), "at least one node"),
    ({"node-a": {"failed": True}}, ("172.17.25.79", "172.17.25.239", "tcp", 443), "no node could be read \\(node-a: failed\\)"),
    ({"node-a": node("172.17.25.79 dev eth0;id scope link", [("eth0;id", "veth", {})], ["10.0.0.1"])},
     ("172.17.25.79", "172.17.25.66", "tcp", 443), "not a valid Linux interface name"),
])
def test_plan_errors(nodes, args, message):
    with pytest.raises(PlanError, match=message):
        build_plan(nodes, *args)


def test_pod_claimed_by_two_nodes_is_refused():
    nodes = dict(SEED_NODES)
    nodes["node-c"] = node("172.17.25.79 dev cali00000000c01 scope link", LINKS, ["10.240.1.5"])
    with pytest.raises(PlanError, match="src 172.17.25.79 is a workload on several nodes"):
        build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443)


def test_dst_block_routed_to_blackhole_is_explained():
    nodes = dict(SEED_NODES)
    nodes["node-a"] = node(SEED_A.replace("172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink", "blackhole 172.17.25.192/26"),
                           LINKS, ["10.240.128.12"])
    with pytest.raises(PlanError, match="node-a routes 172.17.25.239 to a blackhole route"):
        build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443)


UNREACHABLE = {"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused"}
INVENTORY_IPS = {"node-a": "10.240.128.12", "node-b": "10.240.0.9"}


def _hop_list(plan):
    return [(h["direction"], h["index"], h["node"], h["interface"], h["role"]) for h in plan["hops"]]


def test_dst_node_unreachable_hops_are_unknown():
    nodes = dict(SEED_NODES, **{"node-b": UNREACHABLE})
    plan = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443, node_ips=INVENTORY_IPS)
    assert (plan["src_node"], plan["dst_node"], plan["encap"]) == ("node-a", "node-b", "ipip")
    assert _hop_list(plan) == [
        ("request", 1, "node-a", "cali41f14107a8d", "src-veth"),
        ("request", 2, "node-a", "tunl0", "tunnel-out"),
        ("request", 3, "node-a", "eth0", "underlay-out"),
        ("request", 4, "node-b", None, "underlay-in"),
        ("request", 5, "node-b", None, "tunnel-in"),
        ("request", 6, "node-b", None, "dst-veth"),
        ("response", 1, "node-b", None, "dst-veth"),
        ("response", 2, "node-b", None, "tunnel-out"),
        ("response", 3, "node-b", None, "underlay-out"),
        ("response", 4, "node-a", "eth0", "underlay-in"),
        ("response", 5, "node-a", "tunl0", "tunnel-in"),
        ("response", 6, "node-a", "cali41f14107a8d", "src-veth"),
    ]
    captures = {c["key"]: c for c in plan["captures"]}
    assert sorted(captures) == ["node-a/cali41f14107a8d", "node-a/eth0", "node-a/tunl0", "node-b/?"]
    assert captures["node-b/?"]["interface"] is None and captures["node-b/?"]["filter"] is None
    assert "ip[36:4]==0xac1119ef" in captures["node-a/eth0"]["filter"]
    assert "host 10.240.0.9" in captures["node-a/eth0"]["filter"]
    assert plan["warnings"][0].startswith("node-b could not be read (Failed to connect")
    assert plan["warnings"][1] == "node-b holds the dst pod 172.17.25.239 but could not be read: its hops are unknown"


def test_src_node_unreachable_hops_are_unknown():
    nodes = dict(SEED_NODES, **{"node-a": UNREACHABLE})
    plan = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443, node_ips=INVENTORY_IPS)
    assert (plan["src_node"], plan["dst_node"]) == ("node-a", "node-b")
    request = [h for h in _hop_list(plan) if h[0] == "request"]
    assert [h[3] for h in request] == [None, None, None, "eth0", "tunl0", "calic25e805a467"]
    assert [h[4] for h in request] == ["src-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "dst-veth"]


def test_unreachable_node_not_on_the_path_is_only_a_warning():
    nodes = dict(SEED_NODES, **{"node-c": UNREACHABLE})
    plan = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443, node_ips=dict(INVENTORY_IPS, **{"node-c": "10.240.1.3"}))
    assert all(h["interface"] for h in plan["hops"]) and len(plan["hops"]) == 12
    assert plan["warnings"] == ["node-c could not be read (Failed to connect to the host via ssh: Connection refused)"]


def test_wireguard_with_the_other_node_deferred_uses_the_devices_listen_port():
    n1 = node("\n".join([
        "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.11", "172.16.1.10 dev cali%s scope link" % ("0" * 11),
        "172.16.2.0/26 via 10.0.0.12 dev eth0 proto bird", "172.16.2.0/26 dev wireguard.cali table 1 scope link"]),
        [("eth0", "physical", {}), ("wireguard.cali", "wireguard", {"wireguard": {"listen_port": 51820, "peers": []}}),
         ("cali" + "0" * 11, "veth", {})], ["10.0.0.11"])
    plan = build_plan({"w1": n1}, "172.16.1.10", "172.16.2.10", "tcp", 443, node_ips={"w2": "10.0.0.12"}, deferred=["w2"])
    assert plan["encap"] == "wireguard"
    caps = captures(plan)
    assert caps["w1/eth0"]["filter"] == "udp port 51820 and host 10.0.0.12"
    assert caps["w1/wireguard.cali"]["link_type"] == "RAW"
    assert [h["interface"] for h in plan["hops"] if h["direction"] == "request"] == [
        "cali00000000000", "wireguard.cali", "eth0", None, None, None]
    # a device on another port (Calico's IPv6 wg-v6.cali listens on 51821): its own port, not the default
    n1["links"][1] = {"ifname": "wireguard.cali", "kind": "wireguard", "wireguard": {"listen_port": 51830, "peers": []}}
    plan = build_plan({"w1": n1}, "172.16.1.10", "172.16.2.10", "tcp", 443, node_ips={"w2": "10.0.0.12"}, deferred=["w2"])
    assert captures(plan)["w1/eth0"]["filter"] == "udp port 51830 and host 10.0.0.12"
    # no `wg` on the node (no listen port read): Calico's default of the device, 51821 for its IPv6 wg-v6.cali
    n1["links"][1] = {"ifname": "wireguard.cali", "kind": "wireguard"}
    plan = build_plan({"w1": n1}, "172.16.1.10", "172.16.2.10", "tcp", 443, node_ips={"w2": "10.0.0.12"}, deferred=["w2"])
    assert captures(plan)["w1/eth0"]["filter"] == "udp port 51820 and host 10.0.0.12"
    assert [wireguard_port(link) for link in ({"ifname": "wg-v6.cali", "kind": "wireguard"}, {"ifname": "wg-v6.cali"},
                                              {"ifname": "wg-v6.cali", "wireguard": {"listen_port": 51900}}, {})] == [
        51821, 51821, 51900, 51820]


def _lab_nodes(name):
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", name)) as handle:
        return json.load(handle)


@pytest.mark.parametrize("src,dst,tunnel,port,a_ip,b_ip", [
    ("fd00:10:244::4f", "fd00:10:244::af", "wg-v6.cali", 51821, "fd00:10:240::1", "fd00:10:240::2"),
    ("172.17.25.79", "172.17.25.239", "wireguard.cali", 51820, "10.240.128.12", "10.240.0.9")])
def test_dual_stack_wireguard_takes_each_familys_device_port_and_node_addresses(src, dst, tunnel, port, a_ip, b_ip):
    # route_info of both nodes of `lab.py up --mode wireguard --ipv6`: wireguard.cali and wg-v6.cali,
    # and node-a's peers name node-b twice (10.240.0.9 and fd00:10:240::2) for each encapsulation
    plan = build_plan(_lab_nodes("wireguard/lab_dual_stack_route_info.json"), src, dst, "tcp", 443)
    assert plan["encap"] == plan["response_encap"] == "wireguard" and plan["warnings"] == []
    assert [(h["node"], h["interface"], h["node_ip"]) for h in plan["hops"] if h["direction"] == "request"] == [
        ("node-a", "cali41f14107a8d", a_ip), ("node-a", tunnel, a_ip), ("node-a", "eth0", a_ip),
        ("node-b", "eth0", b_ip), ("node-b", tunnel, b_ip), ("node-b", "calic25e805a467", b_ip)]
    caps = captures(plan)
    # the peer of the block's own device (its AllowedIPs), not the first address of node-b in the peers list
    assert caps["node-a/eth0"]["filter"] == "udp port %d and host %s" % (port, b_ip)
    assert caps["node-b/eth0"]["filter"] == "udp port %d and host %s" % (port, a_ip)
    assert caps["node-a/%s" % tunnel]["link_type"] == "RAW"
