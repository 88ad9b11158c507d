"""IPv6 Services: kube-proxy's IPv6 ruleset read on the node (ip6tables-save, `nft list table ip6 kube-proxy`),
parsed on the controller (plugin_utils/kubeproxy.py, kubeproxy_nft.py), the path, plan and verdict of a trace
to an IPv6 ClusterIP.

Rules: kube-proxy's IPv6 nftables dump from kubernetes-sigs/knftables (listed by nft, source in the fixture's
header) and the dual-stack lab's own ip6tables-save and nft listing (`lab.py up --ipv6`, `services up`);
routes: the dual-stack lab's route_info results (test_ipv6_path.py)."""
import os
import socket
import struct

import _synth
from test_ipv6_path import LAB_INVENTORY, SRC6, lab
from test_kubeproxy_ipvs import _Node

from ansible_collections.hoptrace.k8s.plugins.filter.trace_plan import trace_plan
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.modules.route_info import read_service_rules
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, kubeproxy
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import kubeproxy_nft as nft
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import describe, trace_path

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "services")
LAB6 = open(os.path.join(FIX, "lab-node-a-ip6tables-save.txt")).read()
NFT6 = open(os.path.join(FIX, "lab-node-a-nft-list-table-ip6.txt")).read()
KNFT = open(os.path.join(FIX, "knftables-ip6-kube-proxy-nft-list.txt")).read()
SVC6, EMPTY6, WEB6 = "fd00:10:96::14", "fd00:10:96::28", "fd00:10:96::1e"
BACKEND6 = "fd00:10:244::af"


# ---------------------------------------------------------------- node side: which tools, which table

def test_an_ipv6_address_reads_ip6tables_save_and_the_ip6_table():
    assert sr.sources("fd00:10:96::14") == (sr.SAVE6_TOOLS, "ip6")
    assert sr.sources("10.96.10.20") == (sr.SAVE_TOOLS, "ip")
    assert sr.SAVE6_TOOLS == ("ip6tables-save", "ip6tables-nft-save", "ip6tables-legacy-save")
    node = _Node({"iptables-save": "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n", "ip6tables-save": LAB6, "nft": NFT6})
    found = read_service_rules(node, [{"ifname": "eth0"}], SVC6)
    assert (found["source"], found["text"]) == ("ip6tables-save", sr.trim(LAB6))
    assert node.ran == [["/usr/sbin/ip6tables-save"]]
    # nftables mode: no kube-proxy chain in ip6tables, the ip6 family's table
    node = _Node({"ip6tables-save": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "nft": NFT6})
    assert read_service_rules(node, [{"ifname": "eth0"}], SVC6) == {"source": "nft", "text": "", "nft": NFT6}
    assert node.ran == [["/usr/sbin/ip6tables-save"], ["/usr/sbin/nft", "list", "table", "ip6", "kube-proxy"]]


def test_ipv6_falls_back_to_the_other_ip6tables_backends_in_order():
    node = _Node({"ip6tables-legacy-save": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "ip6tables-nft-save": LAB6})
    assert read_service_rules(node, [{"ifname": "eth0"}], SVC6)["source"] == "ip6tables-nft-save"
    assert node.ran == [["/usr/sbin/ip6tables-nft-save"]]
    # no ip6tables-save shows kube-proxy's chains and no nft: nothing
    node = _Node({"ip6tables-save": "*nat\nCOMMIT\n", "ip6tables-legacy-save": "*nat\nCOMMIT\n"})
    assert read_service_rules(node, [{"ifname": "eth0"}], SVC6) is None
    assert node.ran == [["/usr/sbin/ip6tables-save"], ["/usr/sbin/ip6tables-legacy-save"]]


def test_ipv4_reads_exactly_what_it_read_before():
    node = _Node({"iptables-save": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "ip6tables-save": LAB6, "nft": NFT6})
    read_service_rules(node, [{"ifname": "eth0"}], "10.96.10.20")
    assert node.ran == [["/usr/sbin/iptables-save"], ["/usr/sbin/nft", "list", "table", "ip", "kube-proxy"]]


# ---------------------------------------------------------------- controller: the IPv6 forms of both modes

def test_ip6tables_clusterip_endpoints_masquerade_and_reject():
    t = kubeproxy.translate(LAB6, SVC6, 443, "tcp", src=SRC6)
    assert (t["service"], t["kind"], t["masquerade"], t["rejected"]) == (
        "openshift-ingress/router-internal-default", "clusterip", False, None)
    assert t["endpoints"] == [{"ip": BACKEND6, "port": 443, "chain": "KUBE-SEP-BM6BBDMQJ2VFHN2F", "chance": 1.0, "hairpin": False}]
    assert t["rule"] == ('-A KUBE-SERVICES -d fd00:10:96::14/128 -p tcp -m comment --comment '
                         '"openshift-ingress/router-internal-default:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-PIUKAOOLWSYDMVAC')
    # a source outside fd00:10:244::/48 is masqueraded; the IPv4 address of the same Service is not in this ruleset
    assert kubeproxy.translate(LAB6, SVC6, 443, "tcp", src="fd00:10:240::1")["masquerade"] is True
    assert kubeproxy.translate(LAB6, "10.96.10.20", 443, "tcp", src=SRC6) is None
    t = kubeproxy.translate(LAB6, WEB6, 443, "tcp", src=SRC6)
    assert [(e["ip"], e["port"], e["chance"]) for e in t["endpoints"]] == [("fd00:10:244::42", 443, 0.5), ("fd00:10:244::81", 443, 0.5)]
    t = kubeproxy.translate(LAB6, EMPTY6, 443, "tcp", src=SRC6)
    assert (t["service"], t["endpoints"]) == ("default/empty", [])
    assert t["rejected"] == ('-A KUBE-SERVICES -d fd00:10:96::28/128 -p tcp -m comment --comment "default/empty:https has no endpoints" '
                             "-m tcp --dport 443 -j REJECT --reject-with icmp6-port-unreachable")
    t = kubeproxy.translate(LAB6, "fd00:10:240::1", 30443, "tcp", src=SRC6, local=True)
    assert (t["kind"], t["service"], t["masquerade"], [(e["ip"], e["port"]) for e in t["endpoints"]]) == (
        "nodeport", "default/web-nodeport", True, [("fd00:10:244::81", 443)])


def test_nft_ip6_table_of_kube_proxys_own_dump():
    tables = nft.parse_table(KNFT)
    assert tables["chains"]["endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80"] == [
        "ip6 saddr fd00:10:180::2:1 jump mark-for-masquerade", "meta l4proto tcp dnat to [fd00:10:180::2:1]:80"]
    t = nft.translate(KNFT, "fd00:172:30::41", 80, "tcp", src="fd00:10::5")
    assert (t["mode"], t["service"], t["port_name"], t["masquerade"]) == ("nft", "ns1/svc1", "ns1/svc1:p80", False)
    assert [(e["ip"], e["port"], e["chance"]) for e in t["endpoints"]] == [("fd00:10:180::1", 80, 0.5), ("fd00:10:180::2:1", 80, 0.5)]
    assert t["rule"] == "fd00:172:30::41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 (map service-ips)"
    # ip6 saddr != fd00:10::/64: another source is masqueraded; an address written uncompressed is the same
    assert nft.translate(KNFT, "fd00:172:30:0:0::41", 80, "tcp", src="2001:db8::5")["masquerade"] is True
    t = nft.translate(KNFT, "2001:db8::1", 3001, "tcp", src="fd00:10::5", local=True)
    assert (t["kind"], t["masquerade"], len(t["endpoints"])) == ("nodeport", True, 2)
    # cluster-ips-check: a ClusterIP's other port is rejected, an unallocated address of fd00:10:96::/112 dropped
    assert nft.translate(KNFT, "fd00:172:30::41", 81, "tcp")["rejected"] == (
        'ip6 daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs" (chain cluster-ips-check)')
    assert nft.translate(KNFT, "fd00:10:96::99", 80, "tcp")["rejected"] == (
        'ip6 daddr fd00:10:96::/112 drop comment "Drop traffic to unallocated ClusterIPs" (chain cluster-ips-check)')


def test_nft_dnat_forms_as_an_ip6_or_inet_table_lists_them():
    chain = "\tchain endpoint-X {\n\t\t%s\n\t}\n"
    for rule in ("meta l4proto tcp dnat to [fd00:10:244::af]:443", "meta l4proto tcp dnat ip6 to [fd00:10:244::af]:443"):
        table = "table ip6 kube-proxy {\n" + chain % rule + "\tchain service-X {\n\t\tnumgen random mod 1 vmap { 0 : goto endpoint-X }\n\t}\n}\n"
        out = {"endpoints": [], "masquerade": [], "chains": []}
        nft._walk(nft.parse_table(table), "service-X", None, out)
        assert [(e["ip"], e["port"]) for e in out["endpoints"]] == [(BACKEND6, 443)], rule


def test_nft_ip6_table_of_the_lab():
    t = nft.translate(NFT6, SVC6, 443, "tcp", src=SRC6)
    assert [(e["ip"], e["port"], e["chain"]) for e in t["endpoints"]] == [
        (BACKEND6, 443, "endpoint-LFS3JFVJ-openshift-ingress/router-internal-default/tcp/https__fd00.10.244..af/443")]
    t = nft.translate(NFT6, EMPTY6, 443, "tcp", src=SRC6)
    assert (t["service"], t["endpoints"]) == ("default/empty", [])
    assert t["rejected"] == 'fd00:10:96::28 . tcp . 443 comment "default/empty:https" : goto reject-chain (map no-endpoint-services)'


# ---------------------------------------------------------------- path, plan, verdict

def _nodes(rules=None):
    nodes = lab("vxlan")
    nodes["node-a"] = dict(nodes["node-a"], service_rules=rules or {"source": "ip6tables-save", "text": sr.trim(LAB6)})
    return nodes


def _flow(dst):
    return {"src": SRC6, "dst": dst, "proto": "tcp", "port": 443}


def test_path_and_plan_of_an_ipv6_clusterip_with_a_remote_backend():
    nodes = _nodes()
    path = trace_path("node-a", nodes["node-a"], _flow(SVC6), LAB_INVENTORY)
    assert path["hosts"] == ["node-a", "node-b"]
    assert describe(path)[1] == (
        "dst [fd00:10:96::14]:443: Service openshift-ingress/router-internal-default in node-a's kube-proxy rules (iptables), "
        "backend [fd00:10:244::af]:443 on node-b (node-a's route fd00:10:244::80/122 via fd00:10:244::80 dev vxlan-v6.calico "
        "proto bird; fd00:10:240::2 is ip6 of node-b)")
    plan = trace_plan(nodes, flow=_flow(SVC6), service=path["service"])
    assert (plan["run"]["dst"], plan["dst_node"], plan["encap"]) == (BACKEND6, "node-b", "vxlan")
    assert [(h["direction"], h["node"], h["interface"], h["encap"]) for h in plan["hops"]] == [
        ("request", "node-a", "cali41f14107a8d", "none"), ("request", "node-a", "vxlan-v6.calico", "none"),
        ("request", "node-a", "eth0", "vxlan"), ("request", "node-b", "eth0", "vxlan"),
        ("request", "node-b", "vxlan-v6.calico", "none"), ("request", "node-b", "calic25e805a467", "none"),
        ("response", "node-b", "calic25e805a467", "none"), ("response", "node-b", "vxlan-v6.calico", "none"),
        ("response", "node-b", "eth0", "vxlan"), ("response", "node-a", "eth0", "vxlan"),
        ("response", "node-a", "vxlan-v6.calico", "none"), ("response", "node-a", "cali41f14107a8d", "none")]
    caps = {c["key"]: c for c in plan["captures"]}
    veth = caps["node-a/cali41f14107a8d"]
    assert veth["nat"] == {"address": SVC6, "port": 443}
    assert veth["filter"].startswith("(host fd00:10:244::4f and host fd00:10:96::14 and tcp port 443) or (icmp6 and ")
    assert caps["node-a/vxlan-v6.calico"]["filter"].startswith("(host fd00:10:244::4f and host fd00:10:244::af and tcp port 443) or")
    assert "nat" not in caps["node-a/vxlan-v6.calico"]
    assert caps["node-a/eth0"]["filter"].startswith("(ip6 and udp port 4789 and host fd00:10:240::2 and ip6[68:2]==0x86dd and ")
    assert plan["service"]["line"] == ("Service [fd00:10:96::14]:443 (openshift-ingress/router-internal-default) -> backend "
                                       "[fd00:10:244::af]:443 (on node-b), chosen by kube-proxy's DNAT on node-a")


def test_nft_mode_finds_the_same_backend():
    nodes = _nodes({"source": "nft", "text": "", "nft": NFT6})
    path = trace_path("node-a", nodes["node-a"], _flow(SVC6), LAB_INVENTORY)
    assert (path["service"]["mode"], path["service"]["backend"]["ip"], path["dst"]["host"]) == ("nft", BACKEND6, "node-b")


def _ip6(src, dst, nh, payload, hlim=64):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, hlim, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def test_no_endpoints_verdict_names_the_icmpv6_port_unreachable(tmp_path):
    nodes = _nodes()
    path = trace_path("node-a", nodes["node-a"], _flow(EMPTY6), LAB_INVENTORY)
    assert path["hosts"] == ["node-a"]
    plan = trace_plan({"node-a": nodes["node-a"]}, flow=_flow(EMPTY6), service=path["service"])
    assert [(h["direction"], h["interface"]) for h in plan["hops"]] == [("request", "cali41f14107a8d"), ("response", "cali41f14107a8d")]
    assert plan["service"]["line"] == "Service [fd00:10:96::28]:443 (default/empty) has no endpoints: kube-proxy's REJECT rule on node-a answers"
    syn = _ip6(SRC6, EMPTY6, 6, _synth.tcp(38362, 443, 777, 0, 0x02))
    # ip6tables' REJECT --reject-with icmp6-port-unreachable: ICMPv6 destination unreachable (1), port unreachable (4)
    reject = _ip6(EMPTY6, SRC6, 58, struct.pack("!BBHI", 1, 4, 0, 0) + syn)
    pcap = str(tmp_path / "veth.pcap")
    _synth.write_pcap(pcap, [(_synth.BASE_NS, _synth.eth(syn, 0x86DD)), (_synth.BASE_NS + 40000, _synth.eth(reject, 0x86DD))], 1)
    cap = plan["captures"][0]
    report = analysis.analyze(plan, [{"key": cap["key"], "node": "node-a", "interface": cap["interface"], "file": pcap,
                                      "captured": 2, "received": 2, "dropped": 0, "status": "ok", "error": None}])
    assert report["verdict"] == ("Service default/empty ([fd00:10:96::28]:443) has no endpoints: kube-proxy's REJECT rule "
                                 "on node-a answered (ICMPv6 port unreachable)")
    assert report["healthy"] is False


def test_conntrack_names_the_ipv6_backend_among_the_reports_endpoints():
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_conntrack as sc
    svc = {"address": WEB6, "port": 443, "dnat_on": "node-a", "read_on": "node-a", "backend": None,
           "endpoints": ["[fd00:10:244::42]:443", "[fd00:10:244::81]:443"]}
    # node-a's entry of the lab's probe (conntrack -L -f ipv6): DNATed to node-a's own pod, not masqueraded
    entry = {"family": "ipv6", "proto": "tcp", "timeout": 119, "state": "TIME_WAIT", "flags": ["ASSURED"], "mark": 0, "zone": None,
             "orig": {"src": SRC6, "dst": WEB6, "sport": 39823, "dport": 443},
             "reply": {"src": "fd00:10:244::42", "dst": SRC6, "sport": 443, "dport": 39823}}
    captured = "its hops saw the flow after the DNAT, those of [fd00:10:244::81]:443 did not"
    got = sc.judge(svc, dict(ct.bounded([entry], "conntrack -L -f ipv6 ...")), {"src": SRC6, "proto": "tcp"},
                   picked=("fd00:10:244::42", 443), captured=captured)
    assert got["backend"] == ("fd00:10:244::42", 443)
    assert got["chosen_by"] == ("conntrack on node-a: [fd00:10:244::4f]:39823 -> [fd00:10:96::1e]:443 was DNATed to "
                                "[fd00:10:244::42]:443; the captures agree: " + captured)
    assert got["notes"] == []


def test_no_endpoints_verdict_of_ipv4_still_names_the_icmp_port_unreachable(tmp_path):
    # the same verdict for kube-proxy's IPv4 REJECT (icmp-port-unreachable: type 3, code 3)
    from test_services import LAB as LAB4
    from test_services import SRC as SRC4
    nodes = lab("vxlan")
    nodes["node-a"] = dict(nodes["node-a"], service_rules={"source": "iptables-save", "text": sr.trim(LAB4)})
    flow = {"src": "172.17.25.79", "dst": "10.96.10.40", "proto": "tcp", "port": 443}
    path = trace_path("node-a", nodes["node-a"], flow, LAB_INVENTORY)
    plan = trace_plan({"node-a": nodes["node-a"]}, flow=flow, service=path["service"])
    syn = _synth.ipv4(SRC4, "10.96.10.40", 6, _synth.tcp(38362, 443, 777, 0, 0x02), 1)
    reject = _synth.ipv4("10.96.10.40", SRC4, 1, struct.pack("!BBHI", 3, 3, 0, 0) + syn[:28], 2)
    pcap = str(tmp_path / "veth.pcap")
    _synth.write_pcap(pcap, [(_synth.BASE_NS, _synth.eth(syn)), (_synth.BASE_NS + 40000, _synth.eth(reject))], 1)
    cap = plan["captures"][0]
    report = analysis.analyze(plan, [{"key": cap["key"], "node": "node-a", "interface": cap["interface"], "file": pcap,
                                      "captured": 2, "received": 2, "dropped": 0, "status": "ok", "error": None}])
    assert report["verdict"] == ("Service default/empty (10.96.10.40:443) has no endpoints: kube-proxy's REJECT rule "
                                 "on node-a answered (ICMP port unreachable)")
