"""plan and hosting on Flannel VXLAN nodes: pods behind cni0 (found by neighbour + bridge fdb, or
only by cni0's subnet), flannel.1 with UDP 8472, the path from the entry node, same-node pods.

node-a is the lab's flannel node-a as route_info derives it from its real outputs
(tests/unit/fixtures/flannel); node-b is its mirror, written out."""
import json
import os

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import inventory_addresses, locate, trace_path
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import bridge_of, build_plan

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flannel")
SRC, DST, SAME = "10.244.0.2", "10.244.1.2", "10.244.0.3"
INVENTORY = inventory_addresses({"node-a": {"ansible_host": "10.240.128.12"}, "node-b": {"ansible_host": "10.240.0.9"}})
CNI0_NOTE = ("node-b has no neighbour entry for the pod 10.244.1.2 on cni0 yet (ip neigh show dev cni0): capturing on cni0 "
             "itself, which sees the pod's traffic to other nodes but not the pod's veth")


def jload(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


def node_a():
    routes = ni.routes_from_json(jload("lab-node-a-ip-j-route-all.json"), "inet")
    links = ni.links_from_json(jload("lab-node-a-ip-j-d-link.json"))
    addresses = ni.addresses_from_json(jload("lab-node-a-ip-j-addr.json"))
    neigh = {"cni0": ni.neigh_from_json(jload("lab-node-a-ip-j-neigh-cni0.json")),
             "flannel.1": ni.neigh_from_json(jload("lab-node-a-ip-j-neigh-flannel1.json"))}
    fdb = {"flannel.1": ni.fdb_from_json(jload("lab-node-a-bridge-j-fdb-flannel1.json"))}
    ports = {"cni0": ni.bridge_ports_from_json(jload("lab-node-a-bridge-j-fdb-br-cni0.json"), "cni0")}
    return dict(ni.derive(routes, links, addresses, neigh, fdb, ports), routes=routes, links=links, addresses=addresses, peers=[])


def _route(dst, dev, gateway=None, protocol="kernel", table="main", type_="unicast", flags=()):
    return {"dst": dst, "gateway": gateway, "dev": dev, "protocol": protocol, "scope": "link" if not gateway else "global",
            "prefsrc": None, "metric": None, "type": type_, "table": table, "flags": list(flags), "family": "inet", "nexthops": []}


def node_b(neighbours=True):
    """node-b of the lab as route_info returns it (the mirror of node-a)."""
    workloads = [{"ip": DST, "dev": "veth9e279555", "bridge": "cni0", "mac": "3a:db:66:e3:c3:4b", "port": "veth9e279555"}]
    return {
        "routes": [_route("10.240.0.0/16", "eth0"), _route("10.244.0.0/24", "flannel.1", "10.244.0.0", "boot", flags=["onlink"]),
                   _route("10.244.1.0/24", "cni0"), _route("10.244.1.1", "cni0", protocol="kernel", table="local", type_="local")],
        "links": [{"ifname": "eth0", "kind": "veth"}, {"ifname": "veth9e279555", "kind": "veth", "master": "cni0"},
                  {"ifname": "cni0", "kind": "bridge"},
                  {"ifname": "flannel.1", "kind": "vxlan", "vxlan": {"id": 1, "port": 8472, "local": "10.240.0.9", "dev": "eth0"}}],
        "addresses": [{"ifname": "eth0", "local": "10.240.0.9"}, {"ifname": "cni0", "local": "10.244.1.1"},
                      {"ifname": "flannel.1", "local": "10.244.1.0"}],
        "workloads": workloads if neighbours else [],
        "pod_bridges": [{"dev": "cni0", "subnets": ["10.244.1.0/24"], "ports": ["veth9e279555"]}],
        "local_blocks": [], "node_ips": ["10.240.0.9"], "peers": [],
        "remote_blocks": [{"dst": "10.244.0.0/24", "via": "10.244.0.0", "dev": "flannel.1", "encap": "vxlan", "node_ip": "10.240.128.12"}],
    }


def hops(plan, direction):
    return [(h["node"], h["interface"], h["role"], h["encap"]) for h in plan["hops"] if h["direction"] == direction]


REQUEST = [("node-a", "veth7d27950a", "src-veth", "none"), ("node-a", "flannel.1", "tunnel-out", "none"),
           ("node-a", "eth0", "underlay-out", "vxlan"), ("node-b", "eth0", "underlay-in", "vxlan"),
           ("node-b", "flannel.1", "tunnel-in", "none"), ("node-b", "veth9e279555", "dst-veth", "none")]


def test_entry_node_locates_its_pod_by_veth_and_the_remote_pod_through_flannel1():
    a = node_a()
    assert locate("node-a", a, SRC) == {"address": SRC, "how": "local", "node_ip": None, "host": "node-a",
                                        "evidence": "10.244.0.2 dev veth7d27950a", "dev": None}
    dst = locate("node-a", a, DST)
    assert (dst["how"], dst["node_ip"], dst["dev"], dst["evidence"]) == (
        "vxlan", "10.240.0.9", "flannel.1", "10.244.1.0/24 via 10.244.1.0 dev flannel.1")


def test_a_pod_in_cni0s_subnet_without_neighbour_is_local_not_external():
    a = node_a()
    place = locate("node-a", a, "10.244.0.9")
    assert (place["how"], place["host"], place["dev"], place["evidence"]) == (
        "local", "node-a", "cni0", "10.244.0.9 in the pod subnet of cni0 (no neighbour entry yet)")
    # cni0's own address is the node's, not a pod; an address off the pod network is external
    assert bridge_of(a, "10.244.0.1") is None and locate("node-a", a, "10.244.0.1")["how"] == "local"
    assert bridge_of(a, "10.244.1.9") is None and locate("node-a", a, "192.0.2.1")["how"] == "unrouted"


def test_path_from_node_a_defers_node_b():
    path = trace_path("node-a", node_a(), {"src": SRC, "dst": DST, "proto": "tcp", "port": 443}, INVENTORY)
    assert (path["hosts"], path["read"], path["deferred"]) == (["node-a", "node-b"], [], ["node-b"])
    assert path["node_ips"] == {"node-a": "10.240.128.12", "node-b": "10.240.0.9"}


def test_plan_with_both_nodes_read():
    plan = build_plan({"node-a": node_a(), "node-b": node_b()}, SRC, DST, "tcp", 443)
    assert plan["encap"] == plan["response_encap"] == "vxlan" and plan["warnings"] == []
    assert hops(plan, "request") == REQUEST
    assert [h[:2] for h in hops(plan, "response")] == [h[:2] for h in REQUEST[::-1]]
    caps = {c["key"]: c for c in plan["captures"]}
    for key, peer in (("node-a/eth0", "10.240.0.9"), ("node-b/eth0", "10.240.128.12")):
        assert (caps[key]["vxlan_port"], caps[key]["underlay_port"], caps[key]["peer"]) == (8472, 8472, peer)
        assert caps[key]["filter"].startswith("(udp port 8472 and host %s and " % peer), caps[key]["filter"]
    assert caps["node-a/flannel.1"]["link_type"] == "EN10MB" and caps["node-b/veth9e279555"]["role"] == "veth"


def test_plan_from_the_entry_node_only_selects_node_b_devices_on_8472():
    plan = build_plan({"node-a": node_a()}, SRC, DST, "tcp", 443, node_ips={"node-b": "10.240.0.9"}, deferred=["node-b"])
    assert [h[:3] for h in hops(plan, "request")][:3] == [h[:3] for h in REQUEST[:3]]
    selected = {c["key"]: (c["select"], c["underlay_port"]) for c in plan["captures"] if c["node"] == "node-b"}
    assert selected == {"node-b/?10.240.128.12": ({"route_to": "10.240.128.12"}, 8472),
                        "node-b/?10.244.0.2": ({"route_to": SRC}, None),
                        "node-b/?10.244.1.2": ({"route_to": DST, "local": True}, None)}


def test_a_pod_without_neighbour_entry_is_captured_on_cni0_with_a_warning():
    plan = build_plan({"node-a": node_a(), "node-b": node_b(neighbours=False)}, SRC, DST, "tcp", 443)
    assert hops(plan, "request")[-1] == ("node-b", "cni0", "dst-veth", "none")
    assert plan["warnings"] == [CNI0_NOTE]


@pytest.mark.parametrize("port, note", [
    (None, "node-b's cni0 has not learned the pod 10.244.1.2's MAC 3a:db:66:e3:c3:4b on a port yet (bridge fdb show br cni0): "
           "capturing on cni0 itself, which sees the pod's traffic to other nodes but not the pod's veth"),
    ("veth9e279555", None),
])
def test_a_neighbour_without_fdb_entry_is_captured_on_cni0(port, note):
    b = node_b()
    b["workloads"][0].update(port=port, dev=port or "cni0")
    plan = build_plan({"node-a": node_a(), "node-b": b}, SRC, DST, "tcp", 443)
    assert hops(plan, "request")[-1][1] == (port or "cni0")
    assert plan["warnings"] == ([note] if note else [])


def test_same_node_flannel_pods_are_veth_to_veth():
    plan = build_plan({"node-a": node_a()}, SRC, SAME, "tcp", 443)
    assert plan["encap"] == "local"
    assert hops(plan, "request") == [("node-a", "veth7d27950a", "src-veth", "none"), ("node-a", "veth5002c6d0", "dst-veth", "none")]


@pytest.mark.parametrize("src,dst,tunnel,a_ip,b_ip", [
    ("fd00:10:244::2", "fd00:10:244:1::2", "flannel-v6.1", "fd00:10:240::1", "fd00:10:240::2"),
    ("10.244.0.2", "10.244.1.2", "flannel.1", "10.240.128.12", "10.240.0.9")])
def test_dual_stack_flannel_takes_each_familys_vxlan_device(src, dst, tunnel, a_ip, b_ip):
    # route_info of both nodes of `lab.py up --mode flannel --ipv6`: flannel.1 and flannel-v6.1 (same
    # VNI 1 and port 8472), pods behind cni0 with both addresses
    nodes = jload("lab_dual_stack_route_info.json")
    plan = build_plan(nodes, src, dst, "tcp", 443)
    assert plan["encap"] == "vxlan" and plan["warnings"] == []
    assert [(h["node"], h["interface"], h["node_ip"]) for h in plan["hops"] if h["direction"] == "request"] == [
        ("node-a", "veth7d27950a", a_ip), ("node-a", tunnel, a_ip), ("node-a", "eth0", a_ip),
        ("node-b", "eth0", b_ip), ("node-b", tunnel, b_ip), ("node-b", "veth9e279555", b_ip)]
    eth0 = {c["key"]: c for c in plan["captures"]}["node-a/eth0"]
    assert eth0["vxlan_port"] == 8472
    assert eth0["filter"].startswith("(ip6 and udp port 8472 and host fd00:10:240::2 and ip6[68:2]==0x86dd and "
                                     if ":" in src else "(udp port 8472 and host 10.240.0.9 and udp[28:2]==0x0800 and ")
