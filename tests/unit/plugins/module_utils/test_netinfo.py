"""module_utils/_netinfo: iproute2 JSON and text of one Calico-like node, and what route_info derives."""
import json
import os

import pytest
import yaml

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "netinfo")
with open(os.path.join(os.path.dirname(__file__), "test_netinfo.yaml")) as handle:
    KIND_CASES = yaml.safe_load(handle)
LINK_KEYS = {"ifname", "ifindex", "kind", "mtu", "operstate", "link_type", "address", "master", "vxlan", "vlan_id"}


def jload(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


def tload(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.fixture(scope="module")
def node():
    routes = ni.routes_from_json(jload("route_v4.json"), "inet") + ni.routes_from_json(jload("route_v6.json"), "inet6")
    links = ni.links_from_json(jload("link.json"))
    addresses = ni.addresses_from_json(jload("addr.json"))
    neigh = {"vxlan.calico": ni.neigh_from_json(jload("neigh_vxlan.json"))}
    fdb = {"vxlan.calico": ni.fdb_from_json(jload("fdb_vxlan.json"))}
    derived = ni.derive(routes, links, addresses, neigh, fdb)
    return dict(derived, routes=routes, links=links, addresses=addresses)


@pytest.mark.parametrize("case", KIND_CASES, ids=[c["id"] for c in KIND_CASES])
def test_link_kinds(case):
    link = ni.links_from_json([case["link"]])[0]
    assert LINK_KEYS <= set(link)
    assert dict((k, link.get(k)) for k in case["expect"]) == case["expect"]


@pytest.mark.parametrize("name,family", [("route_v4", "inet"), ("route_v6", "inet6")])
def test_routes_json_and_text_agree(name, family):
    assert ni.routes_from_json(jload(name + ".json"), family) == ni.routes_from_text(tload(name + ".txt"), family)


def test_links_json_and_text_agree():
    assert ni.links_from_json(jload("link.json")) == ni.links_from_text(tload("link.txt"))


def test_addresses_json_and_text_agree():
    assert ni.addresses_from_json(jload("addr.json")) == ni.addresses_from_text(tload("addr.txt"))


def test_neigh_and_fdb_json_and_text_agree():
    assert ni.neigh_from_json(jload("neigh_vxlan.json")) == ni.neigh_from_text(tload("neigh_vxlan.txt")) == {
        "172.17.26.0": "66:2e:5f:aa:01:02"}
    assert ni.fdb_from_json(jload("fdb_vxlan.json")) == ni.fdb_from_text(tload("fdb_vxlan.txt")) == {
        "66:2e:5f:aa:01:02": "10.240.0.10"}


@pytest.mark.parametrize("name", ["route_get_ipip", "route_get_underlay"])
def test_route_get_json_and_text_agree(name):
    assert ni.route_get_from_json(jload(name + ".json")) == ni.route_get_from_text(tload(name + ".txt"))


def test_route_get_ipip():
    assert ni.route_get_from_json(jload("route_get_ipip.json")) == {
        "dst": "172.17.25.192", "dev": "tunl0", "gateway": "10.240.0.9", "prefsrc": "172.17.25.64", "type": "unicast"}


def test_tunnel_route_shape(node):
    tunl = [r for r in node["routes"] if r["dev"] == "tunl0" and r["table"] == "main"]
    assert tunl == [{"dst": "172.17.25.192/26", "gateway": "10.240.0.9", "dev": "tunl0", "protocol": "bird",
                     "scope": "global", "prefsrc": None, "metric": None, "type": "unicast", "table": "main",
                     "flags": ["onlink", "linkdown"], "family": "inet", "nexthops": []}]


def test_links(node):
    by_name = dict((link["ifname"], link) for link in node["links"])
    assert by_name["tunl0"]["kind"] == "ipip" and by_name["tunl0"]["tun"] is True and by_name["tunl0"]["mtu"] == 1480
    assert by_name["vxlan.calico"]["vxlan"] == {"id": 4096, "port": 4789, "local": "10.240.128.12", "dev": "eth0"}
    assert by_name["cali41f14107a8d"]["kind"] == "veth"
    assert by_name["br-test"]["kind"] == "bridge"


def test_workloads(node):
    assert node["workloads"] == [{"ip": "172.17.25.79", "dev": "cali41f14107a8d"},
                                 {"ip": "fd00:172:17:25::79", "dev": "cali41f14107a8d"}]


def test_blocks(node):
    assert node["local_blocks"] == ["172.17.25.64/26"]
    assert node["remote_blocks"] == [
        {"dst": "172.17.25.192/26", "via": "10.240.0.9", "dev": "tunl0", "encap": "ipip", "protocol": "bird",
         "node_ip": "10.240.0.9"},
        {"dst": "172.17.26.0/26", "via": "172.17.26.0", "dev": "vxlan.calico", "encap": "vxlan", "protocol": "80",
         "node_ip": "10.240.0.10"},
        {"dst": "172.17.27.0/26", "via": "10.240.0.9", "dev": "eth0", "encap": "none", "protocol": "bird",
         "node_ip": "10.240.0.9"},
    ]


def test_node_ips(node):
    assert node["node_ips"] == ["10.240.128.12", "fd00:10:240::12"]


def test_peers(node):
    underlay = ni.route_get_from_json(jload("route_get_underlay.json"))
    gets = {"10.240.0.9": dict(underlay, dst="10.240.0.9"), "10.240.0.10": underlay}
    assert ni.peers(node["remote_blocks"], node["links"], gets) == [
        {"node_ip": "10.240.0.9", "dev": "eth0", "src": "10.240.128.12", "encap": "ipip", "via": "10.240.0.9"},
        {"node_ip": "10.240.0.10", "dev": "eth0", "src": "10.240.128.12", "encap": "vxlan", "via": "172.17.26.0"},
        {"node_ip": "10.240.0.9", "dev": "eth0", "src": "10.240.128.12", "encap": "none", "via": "10.240.0.9"},
    ]


def test_vxlan_peer_unknown_without_fdb(node):
    blocks = ni.remote_blocks(node["routes"], node["links"], ni.vxlan_resolver({}, {}))
    vxlan = [b for b in blocks if b["encap"] == "vxlan"]
    assert vxlan[0]["node_ip"] is None
    assert all(t[1] != "vxlan" for t in ni.peer_targets(blocks))


SEED_ROUTES = """\
default via 10.240.128.1 dev eth0
10.240.128.0/24 dev eth0 proto kernel scope link src 10.240.128.12
172.17.25.66 dev calib1a96c2cc82 scope link
172.17.25.79 dev cali41f14107a8d scope link
172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink
"""


def test_seed_node_a():
    """The seed article's `ip route` on node-a, with the links such a node has."""
    routes = ni.routes_from_text(SEED_ROUTES, "inet")
    links = ni.links_from_json([
        {"ifindex": 1, "ifname": "lo", "link_type": "loopback"},
        {"ifindex": 2, "ifname": "eth0", "link_type": "ether", "mtu": 1500},
        {"ifindex": 4, "ifname": "tunl0", "link_type": "ipip", "mtu": 1480, "linkinfo": {"info_kind": "ipip"}},
        {"ifindex": 7, "ifname": "calib1a96c2cc82", "link_type": "ether", "linkinfo": {"info_kind": "veth"}},
        {"ifindex": 9, "ifname": "cali41f14107a8d", "link_type": "ether", "linkinfo": {"info_kind": "veth"}},
    ])
    addresses = [{"ifname": "eth0", "family": "inet", "local": "10.240.128.12", "prefixlen": 24, "scope": "global"},
                 {"ifname": "tunl0", "family": "inet", "local": "172.17.25.64", "prefixlen": 32, "scope": "global"}]
    got = ni.derive(routes, links, addresses)
    assert {"ip": "172.17.25.79", "dev": "cali41f14107a8d"} in got["workloads"]
    assert len(got["workloads"]) == 2
    assert got["remote_blocks"] == [{"dst": "172.17.25.192/26", "via": "10.240.0.9", "dev": "tunl0", "encap": "ipip",
                                     "protocol": "bird", "node_ip": "10.240.0.9"}]
    assert got["node_ips"] == ["10.240.128.12"]
    assert got["local_blocks"] == []


def test_wireguard_routes_in_their_own_table():
    routes = ni.routes_from_text("172.17.25.192/26 dev wireguard.cali table 1 proto 80 scope link\n", "inet")
    links = ni.links_from_json([{"ifindex": 8, "ifname": "wireguard.cali", "link_type": "none",
                                 "linkinfo": {"info_kind": "wireguard"}}])
    assert ni.remote_blocks(routes, links) == [{"dst": "172.17.25.192/26", "via": None, "dev": "wireguard.cali",
                                                "encap": "wireguard", "protocol": "80", "node_ip": None}]


def test_multipath_bgp_route():
    text = "172.17.30.0/26 proto bird\n\tnexthop via 10.240.0.9 dev eth0 weight 1\n\tnexthop via 10.240.0.10 dev eth1 weight 1\n"
    routes = ni.routes_from_text(text, "inet")
    links = ni.links_from_json([{"ifindex": 2, "ifname": "eth0", "link_type": "ether"},
                                {"ifindex": 3, "ifname": "eth1", "link_type": "ether"}])
    blocks = ni.remote_blocks(routes, links)
    assert [(b["via"], b["dev"], b["encap"]) for b in blocks] == [("10.240.0.9", "eth0", "none"), ("10.240.0.10", "eth1", "none")]


def test_address_with_peer_text():
    text = ("5: tun0: <POINTOPOINT,UP> mtu 1500 qdisc fq state UNKNOWN group default qlen 500\n"
            "    link/none\n    inet 10.8.0.1 peer 10.8.0.2/32 scope global tun0\n")
    assert ni.addresses_from_text(text) == [{"ifname": "tun0", "family": "inet", "local": "10.8.0.1", "prefixlen": 32,
                                             "scope": "global"}]
