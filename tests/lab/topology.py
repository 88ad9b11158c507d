"""The lab cluster's shape as pure data: names, addresses, blocks, pods, veth names.

Nothing here touches the system; `lab.py` builds what `plan()` describes.
"""
import hashlib
import ipaddress

try:
    from . import ipv6 as _ipv6
except ImportError:                       # loaded as a top-level module (lab.py, cluster.py)
    import ipv6 as _ipv6

MODES = ("ipip", "vxlan", "bgp", "flannel", "wireguard")
MAX_NODES = 32
BRIDGE = "htbr0"
CONTROLLER_IP = "10.240.255.254"
PREFIX = "ht-"                      # netns names and root-side veths
SEED_PODS = {
    # node index -> (namespace, name, ip) of the seed article's pods
    0: ("openshift-ingress", "router-default-77949c967-4t8f7", "172.17.25.79"),
    1: ("openshift-ingress", "router-default-77949c967-tgth7", "172.17.25.239"),
}
SEED_SECOND = {0: "172.17.25.66"}   # node-a's second pod in the article
VXLAN_VNI = 4096
VXLAN_PORT = 4789
VXLAN_MTU = 1450
IPIP_MTU = 1480
WIREGUARD_MTU = 1440             # calico-node's wireguard.cali (tests/lab/wireguard.py)


def node_name(index):
    """node-a .. node-z, node-aa, node-ab, ..."""
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return "node-" + letters


def node_ip(index):
    if index == 0:
        return "10.240.128.12"
    if index == 1:
        return "10.240.0.9"
    return "10.240.1.%d" % (index + 1)


def node_block(index):
    if index == 0:
        return "172.17.25.64/26"
    if index == 1:
        return "172.17.25.192/26"
    k = index - 2
    return "172.17.%d.%d/26" % (26 + k // 4, (k % 4) * 64)


def calico_veth(namespace, name):
    """Calico's host-side veth name for a workload."""
    return "cali" + hashlib.sha1(("%s.%s" % (namespace, name)).encode()).hexdigest()[:11]


def vxlan_mac(index):
    """Deterministic MAC for a node's vxlan.calico (locally administered)."""
    return "66:68:74:00:%02x:%02x" % (index // 256, index % 256)


def pod_netns(node, i):
    return "%spod-%s-%d" % (PREFIX, node[len("node-"):], i)


def pod_addresses(index, count):
    block = ipaddress.ip_network(node_block(index))
    wanted = []
    if index in SEED_PODS:
        wanted.append(SEED_PODS[index][2])
    if index in SEED_SECOND:
        wanted.append(SEED_SECOND[index])
    taken = set(wanted) | {str(block.network_address)}   # the first address is the tunnel's
    for host in block.hosts():
        if len(wanted) >= count:
            break
        if str(host) not in taken:
            wanted.append(str(host))
            taken.add(str(host))
    if len(wanted) < count:
        raise ValueError("too many pods for a /26 block")
    return wanted[:count]


def demo_flow(cluster):
    """(src, dst, port) of the flow `make demo` traces on this lab: the seed article's pods where the
    lab has them, else the first pod of node-a to the first pod of node-b; on an IPv6 lab
    (`--ipv6`) the same pods' IPv6 addresses."""
    pods = cluster["pods"]
    key = "ip6" if cluster.get("ipv6") else "ip"
    by_ip = {p["ip"]: p for p in pods}
    if SEED_PODS[0][2] in by_ip and SEED_PODS[1][2] in by_ip:
        return by_ip[SEED_PODS[0][2]][key], by_ip[SEED_PODS[1][2]][key], 443
    first = {}
    for p in pods:
        first.setdefault(p["node"], p)
    names = [n["name"] for n in cluster["nodes"]]
    a = first[names[0]]
    b = first[names[1]] if len(names) > 1 else [p for p in pods if p is not a][0]
    return a[key], b[key], 443


def plan(mode, nodes, pods_per_node=2, ipv6=False):
    """The whole cluster: {mode, ipv6, nodes: [...], pods: [...]}; `ipv6` makes the pods dual-stack
    (tests/lab/ipv6.py adds the IPv6 addresses, blocks and tunnel details)."""
    if mode not in MODES:
        raise ValueError("mode must be one of %s" % ", ".join(MODES))
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError("nodes must be 1..%d" % MAX_NODES)
    if not 1 <= pods_per_node <= 60:
        raise ValueError("pods-per-node must be 1..60")
    node_list, pods = [], []
    for idx in range(nodes):
        name = node_name(idx)
        block = node_block(idx)
        net = ipaddress.ip_network(block)
        node = {
            "index": idx, "name": name, "ip": node_ip(idx), "block": block,
            "netns": PREFIX + name, "host_veth": PREFIX + name,
            "tunnel_ip": str(net.network_address), "vxlan_mac": vxlan_mac(idx),
        }
        node_list.append(node)
        for i, ip in enumerate(pod_addresses(idx, pods_per_node)):
            if i == 0 and idx in SEED_PODS:
                namespace, pname = SEED_PODS[idx][:2]
            else:
                namespace, pname = "default", "web-%s-%d" % (name[len("node-"):], i)
            pods.append({
                "namespace": namespace, "name": pname, "ip": ip, "node": name,
                "node_ip": node["ip"], "netns": pod_netns(name, i),
                "veth": calico_veth(namespace, pname),
            })
    cluster = {"mode": mode, "pods_per_node": pods_per_node, "nodes": node_list, "pods": pods, "ipv6": False}
    if mode == "flannel":           # Flannel's own addresses and veth names: tests/lab/flannel.py
        try:
            from flannel import reshape
        except ImportError:         # imported as lab.topology
            from .flannel import reshape
        cluster = reshape(cluster)
    return _ipv6.extend(cluster) if ipv6 else cluster
