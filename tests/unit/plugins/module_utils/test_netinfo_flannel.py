"""module_utils/_netinfo on Flannel VXLAN nodes: flannel.1, pods behind cni0 (neighbour + bridge fdb).

Real outputs from public Flannel issues (named in each fixture's first line) and the lab's flannel
node-a (tests/unit/fixtures/flannel/README.md)."""
import json
import os

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flannel")


def text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return "".join(line for line in handle if not line.startswith("# source: "))


def jload(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


# ---------------------------------------------------------------- real outputs (public issues)

def test_flannel1_link_text_is_vxlan_vni_1_on_8472():
    (link,) = ni.links_from_text(text("flannel-io-flannel-1757-ip-d-link-flannel1.txt"))
    assert (link["ifname"], link["kind"], link["mtu"], link["address"]) == ("flannel.1", "vxlan", 1370, "aa:bb:cc:dd:ee:ff")
    assert link["vxlan"] == {"id": 1, "port": 8472, "local": "10.0.0.1", "dev": "abc"}


def test_flannel1_fdb_text_maps_each_vtep_mac_to_its_node():
    assert ni.fdb_from_text(text("flannel-io-flannel-1119-bridge-fdb-flannel1.txt")) == {
        "a2:05:9f:ac:40:da": "192.168.56.103", "0e:22:e2:f3:09:04": "192.168.56.103",
        "ce:cf:6f:d7:c9:4c": "192.168.56.102", "8e:32:8d:27:ac:9a": "192.168.56.102"}


def test_old_bridge_fdb_text_gives_the_learned_mac_and_not_self_entries():
    ports = ni.bridge_ports_from_text(text("flannel-io-flannel-203-bridge-fdb.txt"), "docker0")
    # the container's MAC learned on its veth wins over the veth's own permanent MAC; docker0's own
    # entry and every `self` entry (eth0's and the veth's multicast) are not ports
    assert ports == {"02:42:c0:a8:d0:02": "veth603752d", "b2:b3:c4:3d:89:c3": "veth603752d"}


def flannel_node_1029():
    """node3 of flannel issue 1029: its real routes; links as its `ip route` and `brctl show` name them."""
    routes = ni.routes_from_text(text("flannel-io-flannel-1029-ip-route.txt"), "inet")
    ports = [w for w in text("flannel-io-flannel-1029-brctl-show.txt").split() if w.startswith("veth")]
    links = ([{"ifname": "eno2", "kind": "physical"}, {"ifname": "docker0", "kind": "bridge"},
              {"ifname": "cni0", "kind": "bridge"},
              {"ifname": "flannel.1", "kind": "vxlan", "vxlan": {"id": 1, "port": 8472, "local": "192.168.56.74", "dev": "eno2"}}]
             + [{"ifname": p, "kind": "veth", "master": "cni0"} for p in ports])
    return routes, links, ports


def test_real_flannel_routes_give_cni0_as_pod_bridge_and_five_vxlan_blocks():
    routes, links, ports = flannel_node_1029()
    assert len(ports) == 12
    # docker0 has no ports: not a pod bridge; cni0's connected /24 is the node's pod subnet
    assert ni.pod_bridges(routes, links) == [{"dev": "cni0", "subnets": ["172.20.4.0/24"], "ports": ports}]
    blocks = ni.remote_blocks(routes, links)
    assert [(b["dst"], b["via"], b["dev"], b["encap"]) for b in blocks] == [
        ("172.20.%d.0/24" % i, "172.20.%d.0" % i, "flannel.1", "vxlan") for i in (0, 1, 2, 3, 5)]
    # no per-pod routes: without the neighbour table the node knows no pod by address
    assert ni.workloads(routes, links) == []


def test_pods_behind_cni0_come_from_the_neighbour_table_and_the_bridge_fdb():
    routes, links, ports = flannel_node_1029()
    bridges = ni.pod_bridges(routes, links)
    neigh = {"cni0": {"172.20.4.7": "0A:58:AC:14:04:07", "172.20.4.9": "0a:58:ac:14:04:09",
                      "172.20.4.1": "72:f6:fa:41:f4:99", "192.168.56.1": "00:11:22:33:44:55"}}
    fdb = {"cni0": {"0a:58:ac:14:04:07": "veth03565e0b"}}
    assert ni.bridge_workloads(bridges, neigh, fdb, own={"172.20.4.1"}) == [
        {"ip": "172.20.4.7", "dev": "veth03565e0b", "bridge": "cni0", "mac": "0a:58:ac:14:04:07", "port": "veth03565e0b"},
        # known as a neighbour, but the bridge has not learned its MAC: the bridge is the device
        {"ip": "172.20.4.9", "dev": "cni0", "bridge": "cni0", "mac": "0a:58:ac:14:04:09", "port": None},
    ]


# ---------------------------------------------------------------- the lab's flannel node-a (JSON)

def lab_node():
    routes = ni.routes_from_json(jload("lab-node-a-ip-j-route-all.json"), "inet")
    links = ni.links_from_json(jload("lab-node-a-ip-j-d-link.json"))
    addresses = ni.addresses_from_json(jload("lab-node-a-ip-j-addr.json"))
    neigh = {"cni0": ni.neigh_from_json(jload("lab-node-a-ip-j-neigh-cni0.json")),
             "flannel.1": ni.neigh_from_json(jload("lab-node-a-ip-j-neigh-flannel1.json"))}
    fdb = {"flannel.1": ni.fdb_from_json(jload("lab-node-a-bridge-j-fdb-flannel1.json"))}
    ports = {"cni0": ni.bridge_ports_from_json(jload("lab-node-a-bridge-j-fdb-br-cni0.json"), "cni0")}
    return ni.derive(routes, links, addresses, neigh, fdb, ports)


def test_lab_flannel_node_derives_its_pods_block_and_peer():
    node = lab_node()
    assert node["workloads"] == [
        {"ip": "10.244.0.2", "dev": "veth7d27950a", "bridge": "cni0", "mac": "66:5f:25:58:23:95", "port": "veth7d27950a"},
        {"ip": "10.244.0.3", "dev": "veth5002c6d0", "bridge": "cni0", "mac": "c6:45:dd:12:3f:5b", "port": "veth5002c6d0"}]
    assert node["pod_bridges"] == [{"dev": "cni0", "subnets": ["10.244.0.0/24"], "ports": ["veth7d27950a", "veth5002c6d0"]}]
    assert node["remote_blocks"] == [{"dst": "10.244.1.0/24", "via": "10.244.1.0", "dev": "flannel.1", "encap": "vxlan",
                                      "protocol": "boot", "node_ip": "10.240.0.9"}]
    # cni0's gateway address and flannel.1's /32 are not the node's address
    assert node["node_ips"] == ["10.240.128.12"]
    assert node["local_blocks"] == []


def test_bridge_fdb_json_and_text_agree():
    as_json = ni.bridge_ports_from_json(jload("lab-node-a-bridge-j-fdb-br-cni0.json"), "cni0")
    assert ni.bridge_ports_from_text(text("lab-node-a-bridge-fdb-br-cni0.txt"), "cni0") == as_json
    assert as_json == {"66:5f:25:58:23:95": "veth7d27950a", "0e:ee:43:bf:72:1f": "veth7d27950a",
                       "c6:45:dd:12:3f:5b": "veth5002c6d0", "62:2e:f1:81:7e:69": "veth5002c6d0"}


# ---------------------------------------------------------------- the lab's dual-stack flannel (route_info)

def test_dual_stack_cni0_has_both_pod_subnets_and_no_link_local_pods():
    # route_info's normalised routes and links of node-a of `lab.py up --mode flannel --ipv6`:
    # cni0 has 10.244.0.0/24, fd00:10:244::/64 and the kernel's fe80::/64 (and the pods' link-locals
    # in its neighbour table); only the first two are pod subnets
    node = jload("lab_dual_stack_route_info.json")["node-a"]
    assert [r["dst"] for r in node["routes"] if r["dev"] == "cni0" and r["protocol"] == "kernel" and "/" in r["dst"]
            and r["table"] == "main"] == ["10.244.0.0/24", "fd00:10:244::/64", "fe80::/64"]
    assert ni.pod_bridges(node["routes"], node["links"]) == [
        {"dev": "cni0", "subnets": ["10.244.0.0/24", "fd00:10:244::/64"], "ports": ["veth7d27950a", "veth5002c6d0"]}]
    neigh = {"cni0": {"fd00:10:244::2": "c6:f4:3a:44:53:6e", "fe80::c4f4:3aff:fe44:536e": "c6:f4:3a:44:53:6e"}}
    ports = {"cni0": {"c6:f4:3a:44:53:6e": "veth7d27950a"}}
    assert [w["ip"] for w in ni.bridge_workloads(ni.pod_bridges(node["routes"], node["links"]), neigh, ports)] == ["fd00:10:244::2"]
    # flannel-v6.1's blocks resolve through its own neighbour and fdb entries to node-b's IPv6 address
    assert [(b["dst"], b["via"], b["dev"], b["node_ip"]) for b in node["remote_blocks"]] == [
        ("10.244.1.0/24", "10.244.1.0", "flannel.1", "10.240.0.9"),
        ("fd00:10:244:1::/64", "fd00:10:244:1::", "flannel-v6.1", "fd00:10:240::2")]
