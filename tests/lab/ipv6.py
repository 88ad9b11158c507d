"""The lab's IPv6 half (`lab.py up --ipv6`): dual-stack pods wired the way Calico wires IPv6.

Pure shape (`extend`) plus the lines and sysctls cluster.py adds for an IPv6 lab; nothing here
runs anything itself.

  nodes    eth0 gets fd00:10:240::N/64 (nodad) and a fixed MAC, so its link-local address
           (the BGP next hop the peers route via) is known in advance
  pods     each keeps its IPv4 address and gets an IPv6 one from its node's /122 block of the
           pool fd00:10:244::/48 (the same offset in the block as its IPv4 address has in its /26);
           /128 on eth0, `default via fe80::ecee:eeff:feee:eeee dev eth0`: the host-side cali veth
           has Calico's MAC ee:ee:ee:ee:ee:ee, so that is its link-local address
  node     `fd00:..:4f dev caliX` /128 routes, `blackhole <own /122> proto bird`, and per mode:
    vxlan  vxlan-v6.calico (IPv6 underlay, VNI 4096, port 4789, MTU 1430) beside vxlan.calico:
           remote /122 via the peer's v6 tunnel address onlink, permanent neighbour + fdb entries
           whose dst is the peer's IPv6 node address
    bgp    remote /122 via the peer's eth0 link-local address `dev eth0 proto bird`
    ipip   as bgp (Calico's IPIP is IPv4-only; IPv6 is routed natively)
    wireguard  as bgp in the main table, plus Calico's second WireGuard device wg-v6.cali
           (tests/lab/wireguard.py: port 51821, MTU 1420, its own table and rule in the IPv6 family)
  flannel  not Calico's shape at all: flannel-v6.1 and cni0's IPv6 gateway (tests/lab/flannel.py,
           extend6); only the node addresses and sysctls here serve it
"""
import ipaddress
import socket

POOL6 = "fd00:10:244::/48"
NODE_NET6 = "fd00:10:240::/64"
BLOCK6_PREFIX = 122
CALI_MAC = "ee:ee:ee:ee:ee:ee"
CALI_LINK_LOCAL = "fe80::ecee:eeff:feee:eeee"
VXLAN6_DEV = "vxlan-v6.calico"
VXLAN6_MTU = 1430        # 1500 - IPv6 40 - UDP 8 - VXLAN 8 - Ethernet 14
MODES = ("ipip", "vxlan", "bgp", "wireguard", "flannel")     # the data paths that have an IPv6 twin here
WIREGUARD6_MTU = 1420    # Calico's wg-v6.cali default (1500 - IPv6 40 - UDP 8 - WireGuard 32)


def node_ip6(index):
    return str(ipaddress.ip_network(NODE_NET6).network_address + index + 1)


def node_block6(index):
    """node-a fd00:10:244::40/122, node-b fd00:10:244::80/122, ..."""
    base = ipaddress.ip_network(POOL6).network_address
    return "%s/%d" % (base + (index + 1) * (1 << (128 - BLOCK6_PREFIX)), BLOCK6_PREFIX)


def pod_ip6(block6, block4, ip4):
    """The pod's IPv6 address: the offset of its IPv4 address in the /26, in the /122."""
    offset = int(ipaddress.ip_address(ip4)) - int(ipaddress.ip_network(block4).network_address)
    return str(ipaddress.ip_network(block6).network_address + offset)


def eth0_mac(index):
    return "02:68:74:06:%02x:%02x" % (index // 256, index % 256)


def vxlan6_mac(index):
    return "66:68:74:06:%02x:%02x" % (index // 256, index % 256)


def link_local(mac):
    """The EUI-64 link-local address the kernel gives an interface with this MAC."""
    b = [int(x, 16) for x in mac.split(":")]
    eui = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]]
    return str(ipaddress.IPv6Address(bytes([0xfe, 0x80] + [0] * 6 + eui)))


def extend(cluster):
    """Add the IPv6 shape to a topology.plan() result (in place) and return it."""
    if cluster["mode"] not in MODES:
        raise ValueError("--ipv6 is for the modes %s (mode %s has no IPv6 path in the lab)" % (", ".join(MODES), cluster["mode"]))
    cluster["ipv6"] = True
    for n in cluster["nodes"]:
        block6 = node_block6(n["index"])
        n.update({"ip6": node_ip6(n["index"]), "block6": block6, "eth0_mac": eth0_mac(n["index"]),
                  "link_local": link_local(eth0_mac(n["index"])), "vxlan6_mac": vxlan6_mac(n["index"]),
                  "tunnel_ip6": str(ipaddress.ip_network(block6).network_address)})
    if cluster["mode"] == "flannel":            # flannel's own /64 per node and addresses in it
        try:
            from flannel import extend6
        except ImportError:                      # imported as lab.ipv6
            from .flannel import extend6
        return extend6(cluster)
    nodes = {n["name"]: n for n in cluster["nodes"]}
    for p in cluster["pods"]:
        n = nodes[p["node"]]
        p["ip6"] = pod_ip6(n["block6"], n["block"], p["ip"])
        p["node_ip6"] = n["ip6"]
    return cluster


def pod_mtu(mode, mtu):
    """Calico gives pods the smallest MTU of the encapsulations in use (flannel keeps flannel.1's:
    its pods' MTU comes from the IPv4 device)."""
    return min(mtu, {"vxlan": VXLAN6_MTU, "wireguard": WIREGUARD6_MTU}.get(mode, mtu))


# ---------------------------------------------------------------- what cluster.py runs
def node_head(cluster, n):
    """ip batch lines for node `n` before its links come up: the MACs link-locals are made from."""
    lines = ["link set eth0 address %s" % n["eth0_mac"]]
    for p in cluster["pods"]:
        if p["node"] == n["name"]:
            lines.append("link set %s address %s" % (p["veth"], CALI_MAC))
    return lines


def node_tail(cluster, n):
    """(ip batch lines, bridge batch lines) for node `n` after its IPv4 part."""
    lines = ["addr add %s/64 dev eth0 nodad" % n["ip6"]]
    for p in cluster["pods"]:
        if p["node"] == n["name"]:
            lines.append("route add %s/128 dev %s" % (p["ip6"], p["veth"]))
    lines.append("route add blackhole %s proto bird" % n["block6"])
    fdb = []
    others = [o for o in cluster["nodes"] if o is not n]
    if cluster["mode"] == "vxlan":
        lines += ["link add %s address %s mtu %d type vxlan id 4096 dstport 4789 local %s dev eth0 nolearning"
                  % (VXLAN6_DEV, n["vxlan6_mac"], VXLAN6_MTU, n["ip6"]),
                  "link set %s up" % VXLAN6_DEV, "addr add %s/128 dev %s nodad" % (n["tunnel_ip6"], VXLAN6_DEV)]
        for o in others:
            lines += ["neigh add %s lladdr %s dev %s nud permanent" % (o["tunnel_ip6"], o["vxlan6_mac"], VXLAN6_DEV),
                      "route add %s via %s dev %s proto bird onlink" % (o["block6"], o["tunnel_ip6"], VXLAN6_DEV)]
            fdb.append("fdb add %s dev %s dst %s" % (o["vxlan6_mac"], VXLAN6_DEV, o["ip6"]))
    else:
        for o in others:
            lines.append("route add %s via %s dev eth0 proto bird" % (o["block6"], o["link_local"]))
    return lines, fdb


def pod_lines(p):
    return ["addr add %s/128 dev eth0 nodad" % p["ip6"], "route add default via %s dev eth0" % CALI_LINK_LOCAL]


def node_sysctls(nsutil, cluster, n):
    """In node `n`'s netns: IPv6 on, forwarding, no DAD (link-locals usable at once)."""
    for k in ("all", "default"):
        nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % k, 0)
        nsutil.sysctl("net/ipv6/conf/%s/accept_dad" % k, 0)
        nsutil.sysctl("net/ipv6/conf/%s/forwarding" % k, 1)
    devs = ["eth0"] + [p["veth"] for p in cluster["pods"] if p["node"] == n["name"]]
    for dev in devs:
        nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % dev, 0)
        nsutil.sysctl("net/ipv6/conf/%s/accept_dad" % dev, 0)


def pod_sysctls(nsutil):
    for k in ("all", "default", "eth0"):
        nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % k, 0)
        nsutil.sysctl("net/ipv6/conf/%s/accept_dad" % k, 0)


def greet_peers(nsutil, cluster):
    """One UDP datagram from every node to each peer's IPv6 and IPv4 node address (port 179, where
    BIRD's BGP sessions would run between them): the real neighbour discovery and ARP they cause
    leave each node neighbour entries of every peer's addresses, as the node-to-node traffic of a
    Calico cluster does. route_info ties a link-local next hop, and a peer's IPv6 address, to the
    peer's other addresses through them (same MAC)."""
    for n in cluster["nodes"]:
        with nsutil.netns(n["netns"]):
            for family, key in ((socket.AF_INET6, "ip6"), (socket.AF_INET, "ip")):
                s = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    for o in cluster["nodes"]:
                        if o is not n:
                            s.sendto(b"hoptrace-lab", (o[key], 179))
                finally:
                    s.close()
