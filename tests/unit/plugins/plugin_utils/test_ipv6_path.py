"""IPv6 and dual-stack: route_info's derivation, the hosting nodes and the plan of an IPv6 flow.

Real Calico IPv6 node output from public issues and docs (named in each fixture's first lines:
calico#10321 link-local BGP next hops, calico#2254 global BGP next hops, calico#7638 vxlan-v6.calico
routes, aadhilam/k8-networking-calico-containerlab's vxlan-v6.calico neighbour/fdb/link), and
route_info results of the dual-stack lab (`lab.py up --ipv6`, bgp and vxlan) for the whole path.
"""
import json
import os

import pytest
from flowpcap import compile_filter, needs_tcpdump

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import PathError, inventory_addresses, trace_path
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import build_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_flow

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "netinfo_ipv6")
SRC6, DST6 = "fd00:10:244::4f", "fd00:10:244::af"


def text(name):
    """A fixture without its source comment lines."""
    with open(os.path.join(FIXTURES, name)) as handle:
        return "".join(line for line in handle if not line.startswith("#"))


def lab(mode):
    with open(os.path.join(FIXTURES, "lab_%s_ipv6_route_info.json" % mode)) as handle:
        return json.load(handle)


LAB_INVENTORY = inventory_addresses({
    "node-a": {"ansible_host": "10.240.128.12", "ip6": "fd00:10:240::1"},
    "node-b": {"ansible_host": "10.240.0.9", "ip6": "fd00:10:240::2"},
})


# ---------------------------------------------------------------- route_info's derivation, real outputs

def test_bgp_v6_routes_with_link_local_next_hops_calico_10321():
    routes = ni.routes_from_text(text("route6_bgp_linklocal.txt"), "inet6")
    links = [{"ifname": "eth0", "kind": None}, {"ifname": "calif5092d0a86b", "kind": "veth"}, {"ifname": "lo", "kind": "loopback"}]
    assert ni.workloads(routes, links) == [{"ip": "fd10:100:64:7ad:ec37:62c2:d2a:c200", "dev": "calif5092d0a86b"}]
    assert ni.local_blocks(routes) == ["fd10:100:64:7ad:ec37:62c2:d2a:c200/122"]
    assert ni.link_local_devs(routes) == ["eth0"]
    # the next hop is the router's link-local (its EUI-64 MAC 02:50:56:56:44:52), and no
    # global address of that MAC is in the table: the node behind it stays unknown
    resolve = ni.vxlan_resolver({"eth0": {"10.1.1.1": "00:11:22:33:44:55"}}, {})
    blocks = ni.remote_blocks(routes, links, resolve)
    assert [b["dst"] for b in blocks] == [
        "fd10:100:64:275:1e0c:b9d4:2239:f600/122", "fd10:100:64:1b4c:d41b:fb11:865f:7580/122",
        "fd10:100:64:27ea:d1e6:b05:9025:ce40/122", "fd10:100:64:3ab3:2bea:8960:88e:e040/122",
        "fd10:100:64:4259:80e2:f20b:5614:ef40/122"]
    assert {(b["via"], b["dev"], b["encap"], b["protocol"], b["node_ip"]) for b in blocks} == {
        ("fe80::50:56ff:fe56:4452", "eth0", "none", "bird", None)}
    # once the neighbour table holds a global address with that MAC, it is the node behind the hop
    resolve = ni.vxlan_resolver({"eth0": {"fd10:100:64::9": "02:50:56:56:44:52", "10.1.1.9": "02:50:56:56:44:52"}}, {})
    assert {b["node_ip"] for b in ni.remote_blocks(routes, links, resolve)} == {"fd10:100:64::9"}


def test_bgp_v6_routes_via_global_next_hops_calico_2254():
    routes = ni.routes_from_text(text("route6_bgp_global.txt"), "inet6")
    blocks = ni.remote_blocks(routes, [{"ifname": "eth0", "kind": None}])
    assert [(b["dst"], b["via"], b["node_ip"]) for b in blocks] == [
        ("8888:8888::6800/122", "2000:1691::81", "2000:1691::81"), ("8888:8888::8700/122", "2000:1691::82", "2000:1691::82")]
    assert ni.link_local_devs(routes) == []


def test_vxlan_v6_routes_neighbours_and_fdb():
    routes = ni.routes_from_text(text("route6_vxlan_v6.txt"), "inet6")
    links = ni.links_from_text(text("link_vxlan_v6.txt"))
    assert [(k["ifname"], k["kind"], k["mtu"], k["vxlan"]["id"], k["vxlan"]["local"], k["vxlan"]["dev"], k["vxlan"]["port"])
            for k in links] == [("vxlan-v6.calico", "vxlan", 1430, 4096, "fd00:10:10::10", "eth1", 4789)]
    veths = [{"ifname": name, "kind": "veth"} for name in ("cali7e0006961db", "cali5303040d7b7", "cali46cdfff24bf", "cali1d5c70e43a2")]
    assert [w["ip"] for w in ni.workloads(routes, links + veths)] == [
        "fc00::1:be62:c02e:8d8b:e44", "fc00::1:be62:c02e:8d8b:e45", "fc00::1:be62:c02e:8d8b:e4a", "fc00::1:be62:c02e:8d8b:e4b"]
    assert ni.local_blocks(routes) == ["fc00::1:be62:c02e:8d8b:e00/120"]
    blocks = ni.remote_blocks(routes, links)
    assert [(b["dst"], b["via"], b["dev"], b["encap"]) for b in blocks][0] == (
        "fc00::502b:1891:83a0:3900/120", "fc00::502b:1891:83a0:3900", "vxlan-v6.calico", "vxlan")
    assert len(blocks) == 4
    # the containerlab README's neighbour + fdb entries map each VTEP to its node's IPv6 address
    neigh = ni.neigh_from_text(text("neigh6_vxlan_v6.txt"))
    fdb = ni.fdb_from_text(text("fdb6_vxlan_v6.txt"))
    resolve = ni.vxlan_resolver({"vxlan-v6.calico": neigh}, {"vxlan-v6.calico": fdb})
    assert resolve("fd00:10:244:1b38:1133:7e2c:be1e:4d00", links[0]) == "fd00:10:10::11"
    assert resolve("fd00:10:244:b742:2d01:58:8f51:b000", links[0]) == "fd00:10:10::12"
    assert resolve("fd00:10:244::1", links[0]) is None


def test_link_local_helpers():
    assert ni.is_link_local("fe80::68:74ff:fe06:1") and not ni.is_link_local("fd00:10:240::2")
    assert not ni.is_link_local("169.254.1.1") and not ni.is_link_local("not-an-ip") and not ni.is_link_local(None)
    assert ni.eui64_mac("fe80::68:74ff:fe06:1") == "02:68:74:06:00:01"
    assert ni.eui64_mac("fe80::ecee:eeff:feee:eeee") == "ee:ee:ee:ee:ee:ee"
    assert ni.eui64_mac("fe80::1") is None                      # not EUI-64 (manual, stable-privacy)
    table = ni.neigh_from_text(text("lab_neigh_eth0_bgp.txt"))
    assert table == {"10.240.255.254": "2e:4e:c1:9e:3f:b7", "fd00:10:240::2": "02:68:74:06:00:01"}
    assert ni.same_link_address(table, "fe80::68:74ff:fe06:1") == "fd00:10:240::2"
    assert ni.same_link_address(dict(table, **{"fe80::5": "02:68:74:06:00:01"}), "fe80::5") == "fd00:10:240::2"
    assert ni.same_link_address({"10.240.0.9": "02:68:74:06:00:01"}, "fe80::68:74ff:fe06:1") == "10.240.0.9"
    assert ni.same_link_address(table, "fe80::1") is None


# ---------------------------------------------------------------- hosting nodes and plans, the lab's route_info

def test_bgp_v6_path_maps_the_link_local_next_hop_to_its_node():
    nodes = lab("bgp")
    flow = {"src": SRC6, "dst": DST6, "proto": "tcp", "port": 443}
    path = trace_path("node-a", nodes["node-a"], flow, LAB_INVENTORY)
    assert path["hosts"] == ["node-a", "node-b"] and path["deferred"] == ["node-b"]
    assert path["dst"]["found_by"] == ("node-a's route fd00:10:244::80/122 via fe80::68:74ff:fe06:1 dev eth0 proto bird; "
                                       "fd00:10:240::2 is ip6 of node-b")
    plan = build_plan({"node-a": nodes["node-a"]}, SRC6, DST6, "tcp", 443, node_ips=path["node_ips"], deferred=["node-b"])
    hops = [(h["direction"], h["node"], h["interface"], h["node_ip"]) for h in plan["hops"]]
    assert hops[:3] == [("request", "node-a", "cali41f14107a8d", "fd00:10:240::1"), ("request", "node-a", "eth0", "fd00:10:240::1"),
                        ("request", "node-b", None, "fd00:10:240::2")]
    # node-b resolves its own device towards node-a's IPv6 address when its capture starts
    capture = next(c for c in plan["captures"] if c["key"] == plan["hops"][2]["capture"])
    assert capture["select"] == {"route_to": "fd00:10:240::1"} and capture["peer"] == "fd00:10:240::1"
    assert capture["filter"].startswith("(host fd00:10:244::4f and host fd00:10:244::af and tcp port 443) or (icmp6 and ")
    assert plan["encap"] == "none"
    # the same path with both nodes read plans every device
    full = build_plan(nodes, SRC6, DST6, "tcp", 443)
    assert [(h["direction"], h["node"], h["interface"]) for h in full["hops"]] == [
        ("request", "node-a", "cali41f14107a8d"), ("request", "node-a", "eth0"), ("request", "node-b", "eth0"),
        ("request", "node-b", "calic25e805a467"), ("response", "node-b", "calic25e805a467"), ("response", "node-b", "eth0"),
        ("response", "node-a", "eth0"), ("response", "node-a", "cali41f14107a8d")]


def test_bgp_v6_link_local_next_hop_without_a_neighbour_is_refused_clearly():
    entry = dict(lab("bgp")["node-a"])
    entry["remote_blocks"] = [dict(b, node_ip=None) if b["via"].startswith("fe80") else b for b in entry["remote_blocks"]]
    entry["peers"] = [p for p in entry["peers"] if not p["via"].startswith("fe80")]
    with pytest.raises(PathError, match=r"node-a routes the dst fd00:10:244::af via the link-local address "
                                        r"fe80::68:74ff:fe06:1 .*ip neigh show dev eth0.*Pass -e via=HOST"):
        trace_path("node-a", entry, {"src": SRC6, "dst": DST6, "proto": "tcp", "port": 443}, LAB_INVENTORY)


def test_vxlan_v6_path_and_plan_with_ip6_filters():
    nodes = lab("vxlan")
    flow = {"src": SRC6, "dst": DST6, "proto": "tcp", "port": 443}
    path = trace_path("node-a", nodes["node-a"], flow, LAB_INVENTORY)
    assert path["node_ips"] == {"node-a": "10.240.128.12", "node-b": "fd00:10:240::2"}
    plan = build_plan(nodes, SRC6, DST6, "tcp", 443)
    rows = [(h["direction"], h["node"], h["interface"], h["encap"]) for h in plan["hops"]]
    assert rows[:6] == [
        ("request", "node-a", "cali41f14107a8d", "none"), ("request", "node-a", "vxlan-v6.calico", "none"),
        ("request", "node-a", "eth0", "vxlan"), ("request", "node-b", "eth0", "vxlan"),
        ("request", "node-b", "vxlan-v6.calico", "none"), ("request", "node-b", "calic25e805a467", "none")]
    eth0 = next(c for c in plan["captures"] if c["node"] == "node-a" and c["interface"] == "eth0")
    assert eth0["filter"].startswith("(ip6 and udp port 4789 and host fd00:10:240::2 and ip6[68:2]==0x86dd")
    if needs_tcpdump():
        compile_filter(eth0["filter"])
    # the IPv4 pair of the same dual-stack pods still goes through vxlan.calico over IPv4
    v4 = build_plan(nodes, "172.17.25.79", "172.17.25.239", "tcp", 443)
    assert [h["interface"] for h in v4["hops"]][:3] == ["cali41f14107a8d", "vxlan.calico", "eth0"]
    eth0 = next(c for c in v4["captures"] if c["node"] == "node-a" and c["interface"] == "eth0")
    assert eth0["filter"].startswith("(udp port 4789 and host 10.240.0.9 and udp[28:2]==0x0800")


def test_mixed_families_are_refused_before_anything_runs():
    with pytest.raises(ValidationError, match="different IP families"):
        validate_flow(SRC6, "172.17.25.239", "tcp", 443)


# ---------------------------------------------------------------- an inventory that names IPv4 addresses only

V4_INVENTORY = inventory_addresses({"node-a": {"ansible_host": "10.240.128.12"}, "node-b": {"ansible_host": "10.240.0.9"}})


def test_ipv6_peers_carry_their_other_addresses_from_the_neighbour_table():
    table = ni.neigh_from_text(text("lab_neigh_eth0_vxlan.txt"))
    peers = [{"node_ip": "fd00:10:240::2", "dev": "eth0"}, {"node_ip": "10.240.0.9", "dev": "eth0"},
             {"node_ip": "fd00:10:240::7", "dev": "eth0"}]
    assert ni.same_link_devs(peers) == ["eth0"]
    assert ni.add_same_link(peers, {"eth0": table}) == [
        {"node_ip": "fd00:10:240::2", "dev": "eth0", "same_link": ["10.240.0.9"]},
        {"node_ip": "10.240.0.9", "dev": "eth0"},                       # IPv4 peers are left as they are
        {"node_ip": "fd00:10:240::7", "dev": "eth0", "same_link": []}]  # not in the table
    assert lab("vxlan")["node-a"]["peers"][1]["same_link"] == ["10.240.0.9"]


@pytest.mark.parametrize("mode,evidence", [
    ("vxlan", "fd00:10:244::80/122 via fd00:10:244::80 dev vxlan-v6.calico proto bird"),
    ("bgp", "fd00:10:244::80/122 via fe80::68:74ff:fe06:1 dev eth0 proto bird")])
def test_ipv6_node_address_maps_through_its_mac_when_the_inventory_names_ipv4_only(mode, evidence):
    flow = {"src": SRC6, "dst": DST6, "proto": "tcp", "port": 443}
    path = trace_path("node-a", lab(mode)["node-a"], flow, V4_INVENTORY)
    assert path["hosts"] == ["node-a", "node-b"]
    assert path["dst"]["found_by"] == ("node-a's route %s; fd00:10:240::2 has the MAC of 10.240.0.9, ansible_host of "
                                       "node-b (node-a's neighbour table)" % evidence)


def test_ipv6_node_address_nothing_maps_asks_for_ip6():
    entry = dict(lab("vxlan")["node-a"])
    entry["peers"] = [dict(p, same_link=[]) for p in entry["peers"]]
    with pytest.raises(PathError, match=r"node IP fd00:10:240::2 .* Add ip6=fd00:10:240::2 \(or ansible_host\)"):
        trace_path("node-a", entry, {"src": SRC6, "dst": DST6, "proto": "tcp", "port": 443}, V4_INVENTORY)
