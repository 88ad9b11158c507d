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

Chain hashes are kube-proxy's: base32(sha256(servicePortName + protocol [+ endpoint]))[:16].
A real node sends the service range to its default gateway; lab nodes have no default route, so
`services up` routes SERVICE_CIDR via the lab bridge's address (the controller's, inside the lab
network) - a packet to a Service IP without endpoints then reaches the filter table's REJECT as on
a real node. Pure data except install()/remove().
"""
import base64
import hashlib
import subprocess

SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "172.17.0.0/16"
GATEWAY = "10.240.255.254"          # topology.CONTROLLER_IP
NAT_CHAINS_FIXED = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")

# (namespace/name, port name, cluster IP, port, node port or None, [(pod ip, target port)])
SERVICES = (
    ("openshift-ingress/router-internal-default", "https", "10.96.10.20", 443, None, [("172.17.25.239", 443)]),
    ("default/web", "https", "10.96.10.30", 443, None, [("172.17.25.66", 443), ("172.17.25.193", 443)]),
    ("default/empty", "https", "10.96.10.40", 443, None, []),
    ("default/web-nodeport", "https", "10.96.10.50", 443, 30443, [("172.17.25.193", 443)]),
)


def _hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(port_name, proto="tcp"):
    return "KUBE-SVC-" + _hash(port_name + proto)


def ext_chain(port_name, proto="tcp"):
    return "KUBE-EXT-" + _hash(port_name + proto)


def sep_chain(port_name, endpoint, proto="tcp"):
    return "KUBE-SEP-" + _hash(port_name + proto + endpoint)


def services():
    """The lab's Services as dicts (name, port_name, cluster_ip, port, node_port, endpoints)."""
    out = []
    for name, pname, ip, port, node_port, endpoints in SERVICES:
        out.append({"name": name, "port_name": "%s:%s" % (name, pname), "cluster_ip": ip, "port": port,
                    "node_port": node_port, "endpoints": ["%s:%d" % e for e in endpoints]})
    return out


def _c(text):
    return '-m comment --comment "%s"' % text


def rules():
    """iptables-restore text (``--noflush``): the nat and filter tables' kube-proxy chains and jumps."""
    nat_chains, nat, flt = list(NAT_CHAINS_FIXED), [], []
    nodeports = []
    for s in services():
        spn, ip, port = s["port_name"], s["cluster_ip"], s["port"]
        if not s["endpoints"]:
            flt.append("-A KUBE-SERVICES -d %s/32 -p tcp %s -m tcp --dport %d -j REJECT --reject-with icmp-port-unreachable"
                       % (ip, _c("%s has no endpoints" % spn), port))
            continue
        svc = svc_chain(spn)
        nat_chains.append(svc)
        nat.append("-A KUBE-SERVICES -d %s/32 -p tcp %s -m tcp --dport %d -j %s" % (ip, _c("%s cluster IP" % spn), port, svc))
        nat.append("-A %s ! -s %s -d %s/32 -p tcp %s -m tcp --dport %d -j KUBE-MARK-MASQ"
                   % (svc, POD_CIDR, ip, _c("%s cluster IP" % spn), port))
        left = len(s["endpoints"])
        for ep in s["endpoints"]:
            sep = sep_chain(spn, ep)
            nat_chains.append(sep)
            stat = "" if left == 1 else " -m statistic --mode random --probability %.11f" % (1.0 / left)
            nat.append("-A %s %s%s -j %s" % (svc, _c("%s -> %s" % (spn, ep)), stat, sep))
            left -= 1
            nat.append("-A %s -s %s/32 %s -j KUBE-MARK-MASQ" % (sep, ep.split(":")[0], _c(spn)))
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


def install(netns):
    """The kube-proxy chains, their jumps and the service-range route in one node's netns."""
    remove(netns)
    text, _chains = rules()
    _run(["ip", "netns", "exec", netns, "iptables-restore", "-w", "--noflush"], data=text)
    for table, chain, args in JUMPS:
        _run(["ip", "netns", "exec", netns, "iptables", "-w", "-t", table, "-I", chain, "1"] + args)
    _run(["ip", "-n", netns, "route", "replace", SERVICE_CIDR, "via", GATEWAY, "dev", "eth0"])


def remove(netns):
    """Undo install() (whatever part of it is there)."""
    for table, chain, args in JUMPS:
        while _run(["ip", "netns", "exec", netns, "iptables", "-w", "-t", table, "-D", chain] + args, check=False).returncode == 0:
            pass
    _text, chains = rules()
    for table, names in (("nat", chains), ("filter", ["KUBE-SERVICES"])):
        for name in names:
            _run(["ip", "netns", "exec", netns, "iptables", "-w", "-t", table, "-F", name], check=False)
        for name in names:
            _run(["ip", "netns", "exec", netns, "iptables", "-w", "-t", table, "-X", name], check=False)
    _run(["ip", "-n", netns, "route", "del", SERVICE_CIDR], check=False)
