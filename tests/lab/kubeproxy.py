"""kube-proxy-shaped Services in the lab (iptables mode): the nat and filter rules kube-proxy writes.

`lab.py services up` installs them in every node's netns with `iptables-restore --noflush`;
`lab.py services down` removes them. The shapes follow kube-proxy's iptables proxier (1.26+):

  nat    PREROUTING/OUTPUT -m comment "kubernetes service portals" -j KUBE-SERVICES
         KUBE-SERVICES -d CLUSTER_IP/32 -p tcp "ns/name:port cluster IP" --dport P -j KUBE-SVC-<hash>
         KUBE-SERVICES ... "kubernetes service nodeports; NOTE: ..." addrtype LOCAL -j KUBE-NODEPORTS
         KUBE-SVC-<hash>: ! -s POD_CIDR -> KUBE-MARK-MASQ; one rule per endpoint
                          "ns/name:port -> IP:PORT", all but the last with -m statistic --probability
         KUBE-SEP-<hash>: -s ENDPOINT/32 -> KUBE-MARK-MASQ (hairpin); -j DNAT --to-destination IP:PORT
         KUBE-NODEPORTS -p tcp "ns/name:port" --dport NODEPORT -j KUBE-EXT-<hash>
         KUBE-EXT-<hash>: "masquerade traffic for ns/name:port external destinations" -> KUBE-MARK-MASQ,
                          then KUBE-SVC-<hash>
         KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000; POSTROUTING -> KUBE-POSTROUTING: unmarked RETURN,
         clear the mark, MASQUERADE --random-fully "kubernetes service traffic requiring SNAT"
  filter FORWARD/OUTPUT --ctstate NEW "kubernetes service portals" -j KUBE-SERVICES
         KUBE-SERVICES -d CLUSTER_IP/32 -p tcp "ns/name:port has no endpoints" --dport P
                       -j REJECT --reject-with icmp-port-unreachable

IPv6 (a lab up with --ipv6): the Services are dual-stack, as kube-proxy writes them - one ruleset per
family, the same names and chains; the IPv6 one in ip6tables with ClusterIP fd00:10:96::N (N the IPv4
ClusterIP's last byte: 10.96.10.20 -> fd00:10:96::14), /128, the pods' IPv6 addresses as endpoints
(``--to-destination [fd00:10:244::af]:443``), ``! -s fd00:10:244::/48`` and ``icmp6-port-unreachable``.

Chain hashes are kube-proxy's: base32(sha256(servicePortName + protocol [+ endpoint]))[:16], the
endpoint as kube-proxy prints it (``[IPv6]:PORT``).
A real node sends the service range to its default gateway; lab nodes have no default route, so
`services up` routes SERVICE_CIDR via the lab bridge's address (the controller's, inside the lab
network; SERVICE_CIDR6 on eth0, the bridge has no IPv6 address) - a packet to a Service IP without endpoints then reaches the filter table's REJECT as on
a real node. Pure data except install()/remove().
"""
import base64
import hashlib
import subprocess

SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "172.17.0.0/16"
SERVICE_CIDR6 = "fd00:10:96::/112"
POD_CIDR6 = "fd00:10:244::/48"      # ipv6.POOL6
GATEWAY = "10.240.255.254"          # topology.CONTROLLER_IP
NAT_CHAINS_FIXED = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")

# (namespace/name, port name, cluster IP, port, node port or None, [(pod ip, target port)])
SERVICES = (
    ("openshift-ingress/router-internal-default", "https", "10.96.10.20", 443, None, [("172.17.25.239", 443)]),
    ("default/web", "https", "10.96.10.30", 443, None, [("172.17.25.66", 443), ("172.17.25.193", 443)]),
    ("default/empty", "https", "10.96.10.40", 443, None, []),
    ("default/web-nodeport", "https", "10.96.10.50", 443, 30443, [("172.17.25.193", 443)]),
    # externalTrafficPolicy Cluster with the one endpoint on node-c (a lab of 3 nodes or more): every node
    # DNATs its nodePort to node-c's first pod and masquerades (tests/e2e/test_nodeport_remote_lab.py)
    ("default/web-remote", "https", "10.96.10.60", 443, 30444, [("172.17.26.1", 443)]),
    # the one endpoint is node-a's second pod: from node-a's first pod, node-b's nodePort sends the request
    # back to node-a, masqueraded (tests/e2e/test_nodeport_hairpin_lab.py)
    ("default/web-back", "https", "10.96.10.70", 443, 30445, [("172.17.25.66", 443)]),
    # two endpoints behind one nodePort: node-b's own pod and node-a's second pod; node-b picks one per connection
    ("default/web-pair", "https", "10.96.10.80", 443, 30446, [("172.17.25.193", 443), ("172.17.25.66", 443)]),
)


def _hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(port_name, proto="tcp"):
    return "KUBE-SVC-" + _hash(port_name + proto)


def ext_chain(port_name, proto="tcp"):
    return "KUBE-EXT-" + _hash(port_name + proto)


def sep_chain(port_name, endpoint, proto="tcp"):
    return "KUBE-SEP-" + _hash(port_name + proto + endpoint)


def cluster_ip6(ip):
    """The IPv6 ClusterIP of a dual-stack lab Service: fd00:10:96:: plus the IPv4 one's last byte."""
    return "fd00:10:96::%x" % int(ip.rsplit(".", 1)[1])


def services(ip6_of=None):
    """The lab's Services as dicts (name, port_name, cluster_ip, port, node_port, endpoints); with
    ``ip6_of`` (pod IPv4 -> IPv6 address, a dual-stack lab) also cluster_ip6 and endpoints6 (``[IP]:PORT``)."""
    out = []
    for name, pname, ip, port, node_port, endpoints in SERVICES:
        svc = {"name": name, "port_name": "%s:%s" % (name, pname), "cluster_ip": ip, "port": port,
               "node_port": node_port, "endpoints": ["%s:%d" % e for e in endpoints]}
        if ip6_of:
            # an endpoint that is no pod of this lab (node-c's on a 2-node lab) has no IPv6 address: as kube-proxy
            # with an EndpointSlice per family, the Service then has no IPv6 endpoint
            svc.update(cluster_ip6=cluster_ip6(ip), endpoints6=["[%s]:%d" % (ip6_of[e[0]], e[1]) for e in endpoints if e[0] in ip6_of])
        out.append(svc)
    return out


def _c(text):
    return '-m comment --comment "%s"' % text


def family_of(s, family):
    """``(cluster ip, endpoints, host prefix, pod CIDR, ICMP reject type)`` of one Service in one family."""
    if family == 6:
        return s["cluster_ip6"], s["endpoints6"], 128, POD_CIDR6, "icmp6-port-unreachable"
    return s["cluster_ip"], s["endpoints"], 32, POD_CIDR, "icmp-port-unreachable"


def rules(family=4, ip6_of=None):
    """iptables-restore text (``--noflush``; ip6tables-restore for ``family`` 6, whose endpoints ``ip6_of``
    gives): the nat and filter tables' kube-proxy chains and jumps."""
    nat_chains, nat, flt = list(NAT_CHAINS_FIXED), [], []
    nodeports = []
    for s in services(ip6_of):
        spn, port = s["port_name"], s["port"]
        ip, endpoints, plen, pod_cidr, reject = family_of(s, family)
        if not endpoints:
            flt.append("-A KUBE-SERVICES -d %s/%d -p tcp %s -m tcp --dport %d -j REJECT --reject-with %s"
                       % (ip, plen, _c("%s has no endpoints" % spn), port, reject))
            continue
        svc = svc_chain(spn)
        nat_chains.append(svc)
        nat.append("-A KUBE-SERVICES -d %s/%d -p tcp %s -m tcp --dport %d -j %s" % (ip, plen, _c("%s cluster IP" % spn), port, svc))
        nat.append("-A %s ! -s %s -d %s/%d -p tcp %s -m tcp --dport %d -j KUBE-MARK-MASQ"
                   % (svc, pod_cidr, ip, plen, _c("%s cluster IP" % spn), port))
        left = len(endpoints)
        for ep in endpoints:
            sep = sep_chain(spn, ep)
            nat_chains.append(sep)
            stat = "" if left == 1 else " -m statistic --mode random --probability %.11f" % (1.0 / left)
            nat.append("-A %s %s%s -j %s" % (svc, _c("%s -> %s" % (spn, ep)), stat, sep))
            left -= 1
            nat.append("-A %s -s %s/%d %s -j KUBE-MARK-MASQ" % (sep, ep.rpartition(":")[0].strip("[]"), plen, _c(spn)))
            nat.append("-A %s -p tcp %s -m tcp -j DNAT --to-destination %s" % (sep, _c(spn), ep))
        if s["node_port"]:
            ext = ext_chain(spn)
            nat_chains.append(ext)
            nodeports.append("-A KUBE-NODEPORTS -p tcp %s -m tcp --dport %d -j %s" % (_c(spn), s["node_port"], ext))
            nat.append("-A %s %s -j KUBE-MARK-MASQ" % (ext, _c("masquerade traffic for %s external destinations" % spn)))
            nat.append("-A %s -j %s" % (ext, svc))
    nat.append("-A KUBE-SERVICES %s -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
               % _c("kubernetes service nodeports; NOTE: this must be the last rule in this chain"))
    nat += nodeports
    nat += [
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KUBE-POSTROUTING %s -j MASQUERADE --random-fully" % _c("kubernetes service traffic requiring SNAT"),
    ]
    text = ["*nat"] + [":%s - [0:0]" % c for c in nat_chains] + nat + ["COMMIT", "*filter", ":KUBE-SERVICES - [0:0]"]
    text += flt + ["COMMIT"]
    return "\n".join(text) + "\n", nat_chains


JUMPS = (
    ("nat", "PREROUTING", ["-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]),
    ("nat", "OUTPUT", ["-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]),
    ("nat", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"]),
    ("filter", "FORWARD", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals",
                           "-j", "KUBE-SERVICES"]),
    ("filter", "OUTPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals",
                          "-j", "KUBE-SERVICES"]),
)


def _run(argv, data=None, check=True):
    r = subprocess.run(argv, input=data, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def install(netns, ip6_of=None):
    """The kube-proxy chains, their jumps and the service-range route in one node's netns; with ``ip6_of``
    (a dual-stack lab) the IPv6 ruleset too, with ip6tables."""
    remove(netns)
    families = ((4, "iptables", SERVICE_CIDR), (6, "ip6tables", SERVICE_CIDR6)) if ip6_of else ((4, "iptables", SERVICE_CIDR),)
    for family, tool, cidr in families:
        text, _chains = rules(family, ip6_of)
        _run(["ip", "netns", "exec", netns, tool + "-restore", "-w", "--noflush"], data=text)
        for table, chain, args in JUMPS:
            _run(["ip", "netns", "exec", netns, tool, "-w", "-t", table, "-I", chain, "1"] + args)
        gateway = ["via", GATEWAY] if family == 4 else []
        _run(["ip", "-n", netns, "-%d" % family, "route", "replace", cidr] + gateway + ["dev", "eth0"])


def remove(netns):
    """Undo install() (whatever part of it is there, both families)."""
    for tool, cidr in (("iptables", SERVICE_CIDR), ("ip6tables", SERVICE_CIDR6)):
        for table, chain, args in JUMPS:
            while _run(["ip", "netns", "exec", netns, tool, "-w", "-t", table, "-D", chain] + args, check=False).returncode == 0:
                pass
        # the chains kube-proxy's shape declares (their KUBE-SEP names depend on the endpoints of each family)
        saved = _run(["ip", "netns", "exec", netns, tool + "-save", "-t", "nat"], check=False).stdout
        chains = [line[1:].split()[0] for line in saved.splitlines() if line.startswith(":KUBE-")]
        for table, names in (("nat", chains), ("filter", ["KUBE-SERVICES"])):
            for name in names:
                _run(["ip", "netns", "exec", netns, tool, "-w", "-t", table, "-F", name], check=False)
            for name in names:
                _run(["ip", "netns", "exec", netns, tool, "-w", "-t", table, "-X", name], check=False)
        _run(["ip", "-n", netns, "route", "del", cidr], check=False)
