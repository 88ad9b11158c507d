"""hosting: the nodes hosting a flow's pods from ONE entry node's routes, and their inventory hosts.

Routes are the seed article's real `ip route` output (Life of a Calico packet, node
kube-...-00023b09 = 10.240.128.12, destination node 10.240.0.9), plus VXLAN, BGP, blackhole and
external cases in the shapes route_info returns."""
import pytest
from test_plan import SEED_A  # the seed's source node, as printed there

from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import (
    PathError,
    describe,
    inventory_addresses,
    locate,
    map_node_ip,
    node_group,
    trace_path,
)

FLOW = {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}

LINKS = [{"ifname": "eth0", "kind": "physical"}, {"ifname": "tunl0", "kind": "ipip"},
         {"ifname": "cali41f14107a8d", "kind": "veth"}, {"ifname": "calib1a96c2cc82", "kind": "veth"}]


def entry(routes=SEED_A, links=None, **extra):
    result = {"routes": parse_ip_route(routes), "links": LINKS if links is None else links, "node_ips": ["10.240.128.12"],
              "local_blocks": ["172.17.25.64/26"]}
    result.update(extra)
    return result


INVENTORY = inventory_addresses({
    "worker-a": {"ansible_host": "10.240.128.12"},
    "worker-b": {"ansible_host": "203.0.113.9", "ip": "10.240.0.9", "access_ip": "10.240.0.9"},
    "worker-c": {"ansible_host": "10.240.0.11"},
})


def test_seed_source_is_local_and_destination_is_the_tunnel_next_hop():
    path = trace_path("worker-a", entry(), FLOW, INVENTORY)
    assert path["hosts"] == ["worker-a", "worker-b"]
    assert (path["src"]["how"], path["src"]["host"]) == ("local", "worker-a")
    assert (path["dst"]["how"], path["dst"]["node_ip"], path["dst"]["host"]) == ("via", "10.240.0.9", "worker-b")
    assert path["node_ips"] == {"worker-a": "10.240.128.12", "worker-b": "10.240.0.9"}
    # the entry holds src: its routes plan the trace, worker-b resolves its devices when arming
    assert (path["read"], path["deferred"]) == ([], ["worker-b"])
    assert describe(path) == [
        "src 172.17.25.79: on worker-a (the entry node's route 172.17.25.79 dev cali41f14107a8d)",
        "dst 172.17.25.239: on worker-b (worker-a's route 172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird; "
        "10.240.0.9 is ip of worker-b)",
    ]


def test_an_off_path_entry_finds_both_nodes():
    """Entry worker-c holds neither pod: both come from its block routes (BGP, no tunnel)."""
    routes = """default via 10.240.0.1 dev ens5
10.240.0.0/16 dev ens5 proto kernel scope link src 10.240.0.11
172.17.25.64/26 via 10.240.128.12 dev ens5 proto bird
172.17.25.192/26 via 10.240.0.9 dev ens5 proto bird
blackhole 172.17.25.128/26 proto bird
"""
    result = entry(routes, [{"ifname": "ens5", "kind": "physical"}], local_blocks=["172.17.25.128/26"])
    path = trace_path("worker-c", result, FLOW, INVENTORY)
    assert path["hosts"] == ["worker-a", "worker-b"]
    assert path["src"]["found_by"] == ("worker-c's route 172.17.25.64/26 via 10.240.128.12 dev ens5 proto bird; "
                                       "10.240.128.12 is ansible_host of worker-a")
    assert "worker-c" not in path["node_ips"]
    # an entry off the path knows where the pods are, not their veths: both are read
    assert (path["read"], path["deferred"]) == (["worker-a", "worker-b"], [])


def test_vxlan_next_hop_maps_to_the_underlay_through_neighbour_and_fdb():
    routes = """default via 10.0.0.1 dev ens5
172.16.1.10 dev calia0000000001 scope link
172.16.3.0/26 via 172.16.3.0 dev vxlan.calico onlink
"""
    links = [{"ifname": "ens5", "kind": "physical"}, {"ifname": "vxlan.calico", "kind": "vxlan"},
             {"ifname": "calia0000000001", "kind": "veth"}]
    # route_info resolved 172.16.3.0 -> 66:... (ip neigh, PERMANENT) -> 10.0.3.13 (bridge fdb)
    blocks = [{"dst": "172.16.3.0/26", "via": "172.16.3.0", "dev": "vxlan.calico", "encap": "vxlan", "node_ip": "10.0.3.13"}]
    result = entry(routes, links, remote_blocks=blocks, node_ips=["10.0.1.11"])
    flow = dict(FLOW, src="172.16.1.10", dst="172.16.3.10")
    hosts = inventory_addresses({"n1": {"ansible_host": "10.0.1.11"}, "n3": {"ip": "10.0.3.13"}})
    path = trace_path("n1", result, flow, hosts)
    assert (path["dst"]["how"], path["dst"]["node_ip"], path["dst"]["host"]) == ("vxlan", "10.0.3.13", "n3")
    # without the fdb entry the path cannot be found: say what to look at
    with pytest.raises(PathError, match=r"no neighbour/fdb entry .*\(ip neigh show dev vxlan.calico; bridge fdb show dev vxlan.calico\)"):
        trace_path("n1", entry(routes, links, node_ips=["10.0.1.11"]), flow, hosts)


def test_blackhole_block_means_the_entry_owns_it_and_external_dst_has_no_node():
    place = locate("worker-a", entry(), "172.17.25.70")
    assert (place["how"], place["host"], place["evidence"]) == ("blackhole", "worker-a", "blackhole 172.17.25.64/26 proto bird")
    place = locate("worker-a", entry(), "198.51.100.7")
    assert (place["how"], place["host"], place["evidence"]) == ("external", None, "default via 10.240.128.1 dev eth0")
    path = trace_path("worker-a", entry(), dict(FLOW, dst="198.51.100.7"), INVENTORY)
    assert path["hosts"] == ["worker-a"] and path["dst"]["host"] is None
    assert describe(path)[1] == "dst 198.51.100.7: outside the cluster (worker-a's route default via 10.240.128.1 dev eth0)"


def test_src_the_entry_cannot_place_is_refused_with_the_route():
    with pytest.raises(PathError, match=r"src 198.51.100.7 is not a pod the entry node worker-a knows: its route for it is "
                                        r"default via 10.240.128.1 dev eth0 \(external\)"):
        trace_path("worker-a", entry(), dict(FLOW, src="198.51.100.7"), INVENTORY)


def test_unmapped_and_ambiguous_node_ips_name_the_ip_and_candidates():
    with pytest.raises(PathError, match=r"node IP 10.240.0.9 \(where worker-a's route 172.17.25.192/26 via 10.240.0.9 dev tunl0 "
                                        r"proto bird sends the dst 172.17.25.239\) is not the address of any inventory host"):
        trace_path("worker-a", entry(), FLOW, inventory_addresses({"worker-a": {"ansible_host": "10.240.128.12"}}))
    twice = inventory_addresses({"worker-a": {}, "worker-b": {"ip": "10.240.0.9"}, "worker-b2": {"access_ip": "10.240.0.9"}})
    with pytest.raises(PathError, match=r"belongs to several inventory hosts: worker-b \(ip\), worker-b2 \(access_ip\)"):
        trace_path("worker-a", entry(), FLOW, twice)


def test_names_are_resolved_only_when_no_address_matches():
    asked = []

    def resolve(names):
        asked.append(list(names))
        return {"worker-b.example": ["10.240.0.9"]}

    hosts = inventory_addresses({"worker-a": {"ansible_host": "10.240.128.12"}, "worker-b": {"ansible_host": "worker-b.example"}})
    assert map_node_ip("10.240.128.12", hosts, resolve) == ("worker-a", "ansible_host")
    assert asked == []
    assert map_node_ip("10.240.0.9", hosts, resolve) == ("worker-b", "ansible_host worker-b.example, resolved")
    assert asked == [["worker-a", "worker-b", "worker-b.example"]]


def test_host_named_by_its_ip():
    assert map_node_ip("10.240.0.9", inventory_addresses({"10.240.0.9": {}})) == ("10.240.0.9", "the host name")


GROUPS = {"all": ["a", "b", "c"], "ungrouped": [], "kube_control_plane": ["a"], "kube_node": ["b", "c"],
          "etcd": ["a"], "calico_rr": []}


def test_node_group_defaults_follow_kubespray():
    assert node_group(dict(GROUPS, nodes=["x"]))["name"] == "nodes"
    assert node_group(dict(GROUPS, k8s_cluster=["a", "b", "c"])) == {
        "name": "k8s_cluster", "hosts": ["a", "b", "c"], "how": "kubespray's group"}
    assert node_group(GROUPS) == {"name": "kube_node + kube_control_plane", "hosts": ["b", "c", "a"], "how": "kubespray's groups"}
    assert node_group(GROUPS, "etcd") == {"name": "etcd", "hosts": ["a"], "how": "the group named with -e nodes"}


def test_empty_or_missing_group_is_refused_naming_the_groups():
    with pytest.raises(PathError, match=r"the inventory group 'calico_rr' \(-e nodes=calico_rr\) has no hosts; groups with hosts "
                                        r"in this inventory: etcd, kube_control_plane, kube_node"):
        node_group(GROUPS, "calico_rr")
    with pytest.raises(PathError, match=r"none of nodes, k8s_cluster, kube_node or kube_control_plane has hosts; groups with "
                                        r"hosts in this inventory: web"):
        node_group({"all": ["w"], "web": ["w"], "nodes": []})


# --- WireGuard: the block's peer in `wg show dump` names the node --------------------------------

WG_ROUTES = """default via 10.240.0.1 dev eth0
10.240.0.0/16 dev eth0 proto kernel scope link src 10.240.128.12
172.17.25.79 dev cali41f14107a8d scope link
blackhole 172.17.25.64/26 proto bird
172.17.25.192/26 via 10.240.0.9 dev eth0 proto bird
172.17.25.192/26 dev wireguard.cali table 1 scope link
"""
WG_PEERS = [{"public_key_id": "PdJZiNnE", "endpoint": "10.240.0.9:51820", "endpoint_ip": "10.240.0.9", "endpoint_port": 51820,
             "allowed_ips": ["172.17.25.192/26", "172.17.25.192/32"], "latest_handshake": 0, "transfer_rx": 0,
             "transfer_tx": 0, "persistent_keepalive": None}]


def wg_entry(peers):
    links = [{"ifname": "eth0", "kind": "physical"}, {"ifname": "cali41f14107a8d", "kind": "veth"},
             {"ifname": "wireguard.cali", "kind": "wireguard", "tun": True,
              "wireguard": {"public_key_id": "yDLWoXyp", "listen_port": 51820, "fwmark": 0x100000, "peers": peers}}]
    return entry(WG_ROUTES, links)


def test_wireguard_block_maps_to_the_endpoint_of_the_peer_that_allows_it():
    path = trace_path("worker-a", wg_entry(WG_PEERS), FLOW, INVENTORY)
    dst = path["dst"]
    assert (dst["how"], dst["node_ip"], dst["peer"], dst["host"]) == ("wireguard", "10.240.0.9", "PdJZiNnE", "worker-b")
    assert describe(path)[1] == (
        "dst 172.17.25.239: on worker-b (worker-a's route 172.17.25.192/26 dev wireguard.cali; WireGuard peer PdJZiNnE "
        "(allowed IPs hold 172.17.25.239) has endpoint 10.240.0.9, ip of worker-b)")


def test_wireguard_without_a_matching_peer_says_what_was_looked_at():
    with pytest.raises(PathError) as err:
        trace_path("worker-a", wg_entry([]), FLOW, INVENTORY)
    assert str(err.value) == (
        "worker-a routes the dst 172.17.25.239 into WireGuard (172.17.25.192/26 dev wireguard.cali), but no peer of "
        "wireguard.cali in `wg show wireguard.cali dump` has allowed IPs that hold it (is wg installed there?); pass "
        "-e via=HOST naming the node that holds the pod")
    roaming = [dict(WG_PEERS[0], endpoint=None, endpoint_ip=None, endpoint_port=None)]
    with pytest.raises(PathError, match="its WireGuard peer PdJZiNnE .whose allowed IPs hold it. has no endpoint yet"):
        trace_path("worker-a", wg_entry(roaming), FLOW, INVENTORY)
