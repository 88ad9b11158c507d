"""Lab mode `flannel`: nodes shaped like a Flannel VXLAN node (the second CNI of the lab).

What flanneld and the CNI `bridge` plugin make on a real node, and so what this builds:
  - Pod CIDR 10.244.0.0/16, one /24 per node (node-a 10.244.0.0/24, node-b 10.244.1.0/24, ...)
  - `flannel.1`: kernel VXLAN, VNI 1, UDP 8472, nolearning, MTU 1450, address 10.244.N.0/32,
    a deterministic MAC
  - `cni0`: a bridge with 10.244.N.1/24 (MTU 1450); pods on veth pairs whose host side is named
    like the bridge plugin's (`veth` + 8 hex) and enslaved to cni0; pod eth0 10.244.N.x/24 with
    its default route via 10.244.N.1
  - for every other node M: `10.244.M.0/24 via 10.244.M.0 dev flannel.1 onlink`, a permanent
    neighbour 10.244.M.0 -> M's flannel.1 MAC and an fdb entry MAC -> M's node IP
There is no blackhole block route and no per-pod host route: a pod is behind the bridge, and
the node knows it only through its neighbour table (pod IP -> MAC) and cni0's fdb (MAC -> veth).

Dual-stack (`--ipv6`, flannel's EnableIPv6 with the vxlan backend), as flanneld programs it:
  - IPv6 pod CIDR fd00:10:244::/56, one /64 per node (flannel's default IPv6 subnet length):
    node-a fd00:10:244::/64, node-b fd00:10:244:1::/64, ...
  - `flannel-v6.1`: a second kernel VXLAN device, same VNI 1 and UDP port 8472, its local
    address the node's IPv6 address (fd00:10:240::N, tests/lab/ipv6.py), MTU 1430 (what the
    kernel gives a VXLAN over IPv6 on a 1500 link), address <subnet>::/128, its own MAC
  - cni0 also gets <subnet>::1/64; pods get <subnet>::x/64 (x as in their IPv4 address) with
    `default via <subnet>::1`; their MTU stays flannel.1's 1450 (flannel's subnet.env has one MTU)
  - for every other node M: `<M subnet>/64 via <M subnet>:: dev flannel-v6.1 onlink`, a permanent
    neighbour <M subnet>:: -> M's flannel-v6.1 MAC and an fdb entry MAC -> M's IPv6 node address

The shape is pure (`reshape`, called by topology.plan); `node_lines`/`pod_lines`/`fdb_lines`
are ip/bridge batch lines for cluster._configure; `warm` stands in for kubelet's probes.
"""
import hashlib
import ipaddress
import socket
import subprocess
import time

CIDR = "10.244.0.0/16"
VNI = 1
PORT = 8472
MTU = 1450
DEVICE = "flannel.1"
BRIDGE = "cni0"
CIDR6 = "fd00:10:244::/56"
SUBNET6_PREFIX = 64
DEVICE6 = "flannel-v6.1"
MTU6 = 1430              # 1500 - IPv6 40 - UDP 8 - VXLAN 8 - Ethernet 14
# The bridge plugin's cni0 forgets a MAC 300 s after its last frame; on a real node kubelet's
# probes (every 10 s) keep the pods' entries fresh. The lab's pods get no probes, so its cni0
# keeps learned entries for a day (centiseconds) instead.
AGEING = 8640000


def subnet(index):
    return "10.244.%d.0/24" % index


def veth_name(namespace, name):
    """Host-side veth like the CNI bridge plugin's (`veth` + 8 hex)."""
    return "veth" + hashlib.sha1(("%s/%s" % (namespace, name)).encode()).hexdigest()[:8]


def vtep_mac(index):
    """Deterministic MAC for a node's flannel.1 (locally administered, unicast)."""
    return "6e:66:6c:00:%02x:%02x" % (index // 256, index % 256)


def subnet6(index):
    """node-a fd00:10:244::/64, node-b fd00:10:244:1::/64, ..."""
    net = ipaddress.ip_network(CIDR6)
    return "%s/%d" % (net.network_address + (index << (128 - SUBNET6_PREFIX)), SUBNET6_PREFIX)


def vtep6_mac(index):
    """Deterministic MAC for a node's flannel-v6.1 (flanneld gives the v6 device its own)."""
    return "6e:66:6c:06:%02x:%02x" % (index // 256, index % 256)


def extend6(cluster):
    """The IPv6 half of a flannel lab (after ipv6.extend gave the nodes ip6 and eth0 MACs)."""
    by_node = {}
    for n in cluster["nodes"]:
        net = ipaddress.ip_network(subnet6(n["index"]))
        n.update(block6=str(net), tunnel_ip6=str(net.network_address), vxlan6_mac=vtep6_mac(n["index"]),
                 bridge_ip6=str(net.network_address + 1))
        by_node[n["name"]] = (n, net)
    for p in cluster["pods"]:
        n, net = by_node[p["node"]]
        offset = int(ipaddress.ip_address(p["ip"])) - int(ipaddress.ip_network(n["block"]).network_address)
        p["ip6"] = str(net.network_address + offset)
        p["node_ip6"] = n["ip6"]
    return cluster


def node_lines6(cluster, n):
    """`ip -batch` lines of a flannel node's IPv6 half (after node_lines)."""
    return ["addr add %s/64 dev eth0 nodad" % n["ip6"], "addr add %s/%d dev %s nodad" % (n["bridge_ip6"], SUBNET6_PREFIX, BRIDGE)] + \
        _vxlan_lines(cluster, n, DEVICE6, MTU6, 6)


# the node keys of each family's VXLAN device: local address, MAC, tunnel address, subnet
_KEYS = {4: ("ip", "vxlan_mac", "tunnel_ip", "block"), 6: ("ip6", "vxlan6_mac", "tunnel_ip6", "block6")}


def _vxlan_lines(cluster, n, device, mtu, family):
    """The VXLAN device of one family (4 or 6) and a permanent neighbour and an onlink route for
    every other node's subnet."""
    ip, mac, tunnel, block = _KEYS[family]
    lines = ["link add %s address %s mtu %d type vxlan id %d dstport %d local %s dev eth0 nolearning"
             % (device, n[mac], mtu, VNI, PORT, n[ip]),
             "link set %s up" % device,
             "addr add %s/32 dev %s" % (n[tunnel], device) if family == 4 else "addr add %s/128 dev %s nodad" % (n[tunnel], device)]
    for o in cluster["nodes"]:
        if o is not n:
            lines += ["neigh add %s lladdr %s dev %s nud permanent" % (o[tunnel], o[mac], device),
                      "route add %s via %s dev %s onlink" % (o[block], o[tunnel], device)]
    return lines


def reshape(cluster):
    """The flannel shape of topology.plan's cluster (same nodes, pod names and netns)."""
    if len(cluster["nodes"]) > 255:
        raise ValueError("flannel mode has one /24 of 10.244.0.0/16 per node (at most 255 nodes)")
    by_node = {}
    for n in cluster["nodes"]:
        net = ipaddress.ip_network(subnet(n["index"]))
        n.update(block=str(net), tunnel_ip=str(net.network_address), vxlan_mac=vtep_mac(n["index"]),
                 bridge_ip=str(net.network_address + 1))
        by_node[n["name"]] = (n, [str(net.network_address + k) for k in range(2, 254)])
    for p in cluster["pods"]:
        node, free = by_node[p["node"]]
        p["ip"] = free.pop(0)
        p["veth"] = veth_name(p["namespace"], p["name"])
    return cluster


def node_lines(cluster, n):
    """`ip -batch` lines of one flannel node (after its eth0 has its address); with IPv6 also
    node_lines6. A dual-stack cni0 floods multicast (neighbour solicitations between its pods
    whether or not it saw their MLD reports)."""
    v6 = bool(cluster.get("ipv6"))
    lines = ["link add %s type bridge ageing_time %d%s" % (BRIDGE, AGEING, " mcast_snooping 0" if v6 else "")]
    for p in cluster["pods"]:
        if p["node"] == n["name"]:
            lines.append("link set %s master %s up" % (p["veth"], BRIDGE))
    lines += ["link set %s mtu %d up" % (BRIDGE, MTU), "addr add %s/24 dev %s" % (n["bridge_ip"], BRIDGE)]
    lines += _vxlan_lines(cluster, n, DEVICE, MTU, 4)
    return lines + (node_lines6(cluster, n) if v6 else [])


def fdb_lines(cluster, n):
    """`bridge -batch` lines: the fdb entries flanneld programs (remote VTEP MAC -> node IP)."""
    others = [o for o in cluster["nodes"] if o is not n]
    lines = ["fdb add %s dev %s dst %s" % (o["vxlan_mac"], DEVICE, o["ip"]) for o in others]
    if cluster.get("ipv6"):
        lines += ["fdb add %s dev %s dst %s" % (o["vxlan6_mac"], DEVICE6, o["ip6"]) for o in others]
    return lines


def pod_lines(cluster, p):
    nodes = {n["name"]: n for n in cluster["nodes"]}
    lines = ["link set lo up", "addr add %s/24 dev eth0" % p["ip"], "link set eth0 up",
             "route add default via %s dev eth0" % nodes[p["node"]]["bridge_ip"]]
    if cluster.get("ipv6"):
        lines += ["addr add %s/%d dev eth0 nodad" % (p["ip6"], SUBNET6_PREFIX),
                  "route add default via %s dev eth0" % nodes[p["node"]]["bridge_ip6"]]
    return lines


def _neighbours(netns):
    out = subprocess.run(["ip", "-n", netns, "neigh", "show", "dev", BRIDGE], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if "lladdr" in line}


def warm(cluster, nsutil, timeout=5.0):
    """Every pod sends one datagram to its gateway (each family's), as the first packet of kubelet's
    probes would be answered: the node learns the pod's neighbour entry (IP -> MAC) and cni0 its
    fdb entry (MAC -> veth), which is how a real flannel node knows its pods."""
    nodes = {n["name"]: n for n in cluster["nodes"]}
    families = [(socket.AF_INET, "ip", "bridge_ip")] + ([(socket.AF_INET6, "ip6", "bridge_ip6")] if cluster.get("ipv6") else [])
    for p in cluster["pods"]:
        with nsutil.netns(p["netns"]):
            for family, _key, gateway in families:
                s = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    s.sendto(b"hoptrace-lab", (nodes[p["node"]][gateway], 9))
                except OSError:
                    pass
                finally:
                    s.close()
    deadline = time.monotonic() + timeout
    for n in cluster["nodes"]:
        want = {p[key] for p in cluster["pods"] if p["node"] == n["name"] for _f, key, _g in families}
        while not want <= _neighbours(n["netns"]):
            if time.monotonic() > deadline:
                raise RuntimeError("%s learned no neighbour entry for %s on %s"
                                   % (n["name"], ", ".join(sorted(want - _neighbours(n["netns"]))), BRIDGE))
            time.sleep(0.01)
