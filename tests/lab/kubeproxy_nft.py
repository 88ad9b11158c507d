"""kube-proxy-shaped Services in the lab, nftables mode: the table kube-proxy's nftables proxier writes.

`lab.py services up --proxy-mode nft` installs it in every node's netns with `nft -f` (and no iptables
kube-proxy chain, so route_info falls back to `nft list table ip kube-proxy` as on a real nft-mode
node); `lab.py services down` deletes the table. The Services are tests/lab/kubeproxy.py's SERVICES.
The shapes follow kube-proxy's nftables proxier (Kubernetes 1.31+, pkg/proxy/nftables), read from its
source:

  table ip kube-proxy { comment "rules for kube-proxy"
    base chains ${type}-${hook}: filter-prerouting/-input/-forward/-output (priority dstnat - 10),
      filter-output-post-dnat (dstnat + 10), nat-prerouting/-output (dstnat), nat-postrouting (srcnat);
      written as numbers (-110, -90, -100, 100): this nft (1.0.6) takes the name dstnat on prerouting only
    jumps: filter-input   ct state new -> nodeport-endpoints-check, service-endpoints-check
           filter-forward ct state new -> service-endpoints-check, cluster-ips-check
           filter-output  ct state new -> service-endpoints-check, firewall-check
           filter-prerouting ct state new -> firewall-check; filter-output-post-dnat -> cluster-ips-check
           nat-output, nat-prerouting -> services; nat-postrouting -> masquerading
    services:  ip daddr . meta l4proto . th dport vmap @service-ips
               fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
    service-ips      CLUSTER_IP . tcp . PORT : goto service-<HASH>-ns/name/tcp/portname
    service-nodeports          tcp . NODEPORT : goto external-<HASH>-ns/name/tcp/portname
    no-endpoint-services CLUSTER_IP . tcp . PORT comment "ns/name:portname" : goto reject-chain
    cluster-ips (set)  every ClusterIP; cluster-ips-check rejects its other ports, drops the rest of the range
    service-<HASH>-...: ip daddr IP tcp dport P ip saddr != POD_CIDR jump mark-for-masquerade
                        numgen random mod N vmap { 0 : goto endpoint-<HASH>-...__IP/PORT, ... }
    endpoint-<HASH>-...__IP/PORT: ip saddr IP jump mark-for-masquerade; meta l4proto tcp dnat to IP:PORT
    external-<HASH>-...: jump mark-for-masquerade; goto service-<HASH>-...
    mark-for-masquerade: meta mark set meta mark | 0x4000
    masquerading: meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000; masquerade fully-random }

IPv6 (a lab up with --ipv6): kube-proxy's IPv6 proxier writes the same shapes in ``table ip6 kube-proxy``
(ip6 daddr/saddr, ipv6_addr, ``dnat to [IP]:PORT``, ``ip6 daddr != ::1``), for the dual-stack Services'
IPv6 ClusterIPs and endpoints (kubeproxy.services(ip6_of)); install() writes both tables.

<HASH> is kube-proxy's: the first 8 characters of base32(sha256(the name after it)); an endpoint's name
has its address with ``:`` as ``.`` (``__fd00.10.244..af/443``). Pure data except install()/remove().
"""
import base64
import hashlib

try:
    from . import kubeproxy
except ImportError:                       # loaded as a top-level module (lab.py)
    import kubeproxy

TABLE = "kube-proxy"
MASQ_MARK = "0x00004000"             # kube-proxy's default masquerade bit 14, printed as %#08x


def _hashed(name):
    return base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8] + "-" + name


def _base(port_name, proto="tcp"):
    """``ns/name/tcp/portname`` of ``ns/name:portname``."""
    svc, _sep, pname = port_name.partition(":")
    return "%s/%s/%s" % (svc, proto, pname)


def service_chain(port_name, proto="tcp"):
    return "service-" + _hashed(_base(port_name, proto))


def external_chain(port_name, proto="tcp"):
    return "external-" + _hashed(_base(port_name, proto))


def endpoint_chain(port_name, endpoint, proto="tcp"):
    ip, _sep, port = endpoint.rpartition(":")
    ip = ip.strip("[]")
    return "endpoint-" + _hashed("%s__%s/%s" % (_base(port_name, proto), ip.replace(":", "."), port))


def _chain(name, rules, head=None):
    lines = ["\tchain %s {" % name] + (["\t\t%s" % head] if head else []) + ["\t\t%s" % r for r in rules] + ["\t}"]
    return "\n".join(lines)


def _elements(name, kind, typ, comment, elements):
    body = ["\t%s %s {" % (kind, name), "\t\ttype %s" % typ, '\t\tcomment "%s"' % comment]
    if elements:
        body.append("\t\telements = { %s }" % ",\n\t\t\t     ".join(elements))
    return "\n".join(body + ["\t}"])


BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", -110, ["ct state new jump firewall-check"]),
    ("filter-input", "filter", "input", -110,
     ["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"]),
    ("filter-forward", "filter", "forward", -110,
     ["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"]),
    ("filter-output", "filter", "output", -110,
     ["ct state new jump service-endpoints-check", "ct state new jump firewall-check"]),
    ("filter-output-post-dnat", "filter", "output", -90, ["ct state new jump cluster-ips-check"]),
    ("nat-prerouting", "nat", "prerouting", -100, ["jump services"]),
    ("nat-output", "nat", "output", -100, ["jump services"]),
    ("nat-postrouting", "nat", "postrouting", 100, ["jump masquerading"]),
)


def ruleset(family=4, ip6_of=None):
    """``nft -f`` text: the whole ``table ip kube-proxy`` for the lab's Services (kubeproxy.services()), or
    with ``family`` 6 ``table ip6 kube-proxy`` for their IPv6 ClusterIPs (endpoints: ``ip6_of``)."""
    v6 = family == 6
    fam, addr, lo = ("ip6", "ipv6_addr", "::1") if v6 else ("ip", "ipv4_addr", "127.0.0.0/8")
    service_cidr = kubeproxy.SERVICE_CIDR6 if v6 else kubeproxy.SERVICE_CIDR
    service_ips, nodeports, no_endpoints, cluster_ips, chains = [], [], [], [], []
    for s in kubeproxy.services(ip6_of):
        spn, port = s["port_name"], s["port"]
        ip, endpoints, _plen, pod_cidr, _reject = kubeproxy.family_of(s, family)
        cluster_ips.append(ip)
        if not endpoints:
            no_endpoints.append('%s . tcp . %d comment "%s" : goto reject-chain' % (ip, port, spn))
            continue
        svc = service_chain(spn)
        service_ips.append("%s . tcp . %d : goto %s" % (ip, port, svc))
        picks = ", ".join("%d : goto %s" % (i, endpoint_chain(spn, ep)) for i, ep in enumerate(endpoints))
        chains.append(_chain(svc, ["%s daddr %s tcp dport %d %s saddr != %s jump mark-for-masquerade" % (fam, ip, port, fam, pod_cidr),
                                   "numgen random mod %d vmap { %s }" % (len(endpoints), picks)]))
        for ep in endpoints:
            chains.append(_chain(endpoint_chain(spn, ep), ["%s saddr %s jump mark-for-masquerade" % (fam, ep.rpartition(":")[0].strip("[]")),
                                                           "meta l4proto tcp dnat to %s" % ep]))
        if s["node_port"]:
            ext = external_chain(spn)
            nodeports.append("tcp . %d : goto %s" % (s["node_port"], ext))
            chains.append(_chain(ext, ["jump mark-for-masquerade", "goto %s" % svc]))
    out = ["table %s %s {" % (fam, TABLE), '\tcomment "rules for kube-proxy"']
    # every chain a rule jumps to is declared before the base chains refer to it
    out.append(_chain("mark-for-masquerade", ["meta mark set meta mark | %s" % MASQ_MARK]))
    out.append(_chain("masquerading", ["meta mark & %s == 0 return" % MASQ_MARK, "meta mark set meta mark ^ %s" % MASQ_MARK,
                                       "masquerade fully-random"]))
    out.append(_elements("cluster-ips", "set", addr, "Active ClusterIPs", cluster_ips))
    out.append(_chain("cluster-ips-check", [
        '%s daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"' % fam,
        '%s daddr { %s } drop comment "Drop traffic to unallocated ClusterIPs"' % (fam, service_cidr)]))
    out.append(_elements("no-endpoint-services", "map", addr + " . inet_proto . inet_service : verdict",
                         "vmap to drop or reject packets to services with no endpoints", no_endpoints))
    out.append(_elements("no-endpoint-nodeports", "map", "inet_proto . inet_service : verdict",
                         "vmap to drop or reject packets to service nodeports with no endpoints", []))
    out.append(_chain("reject-chain", ["reject"], head='comment "helper for @no-endpoint-services / @no-endpoint-nodeports"'))
    out.append(_chain("service-endpoints-check", ["%s daddr . meta l4proto . th dport vmap @no-endpoint-services" % fam]))
    out.append(_chain("nodeport-endpoints-check", ["%s daddr != %s meta l4proto . th dport vmap @no-endpoint-nodeports" % (fam, lo)]))
    out.append(_elements("firewall-ips", "map", addr + " . inet_proto . inet_service : verdict",
                         "destinations that are subject to LoadBalancerSourceRanges", []))
    out.append(_chain("firewall-check", ["%s daddr . meta l4proto . th dport vmap @firewall-ips" % fam]))
    out += chains
    out.append(_elements("service-ips", "map", addr + " . inet_proto . inet_service : verdict",
                         "ClusterIP, ExternalIP and LoadBalancer IP traffic", service_ips))
    out.append(_elements("service-nodeports", "map", "inet_proto . inet_service : verdict", "NodePort traffic", nodeports))
    out.append(_chain("services", ["%s daddr . meta l4proto . th dport vmap @service-ips" % fam,
                                   "fib daddr type local %s daddr != %s meta l4proto . th dport vmap @service-nodeports" % (fam, lo)]))
    for name, typ, hook, prio, rules in BASE_CHAINS:
        out.append(_chain(name, rules, head="type %s hook %s priority %d; policy accept;" % (typ, hook, prio)))
    out.append("}")
    return "\n".join(out) + "\n"


def install(netns, ip6_of=None):
    """kube-proxy's nft table and the service-range route in one node's netns (no iptables chains); with
    ``ip6_of`` (a dual-stack lab) its ``table ip6 kube-proxy`` and the IPv6 service range's route too."""
    remove(netns)
    kubeproxy._run(["ip", "netns", "exec", netns, "nft", "-f", "-"], data=ruleset())
    kubeproxy._run(["ip", "-n", netns, "route", "replace", kubeproxy.SERVICE_CIDR, "via", kubeproxy.GATEWAY, "dev", "eth0"])
    if ip6_of:
        kubeproxy._run(["ip", "netns", "exec", netns, "nft", "-f", "-"], data=ruleset(6, ip6_of))
        kubeproxy._run(["ip", "-n", netns, "-6", "route", "replace", kubeproxy.SERVICE_CIDR6, "dev", "eth0"])


def remove(netns):
    """Undo install() (whatever part of it is there, both families)."""
    for family, cidr in (("ip", kubeproxy.SERVICE_CIDR), ("ip6", kubeproxy.SERVICE_CIDR6)):
        kubeproxy._run(["ip", "netns", "exec", netns, "nft", "delete", "table", family, TABLE], check=False)
        kubeproxy._run(["ip", "-n", netns, "route", "del", cidr], check=False)
