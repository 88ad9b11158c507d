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


# ---------------------------------------------------------------- a NodePort on a node's IPv6 address

NODE_B6, NODE_A6, NODE_PORT = "fd00:10:240::2", "fd00:10:240::1", 30443
NP_BACKEND6, MASQ6, MPORT = "fd00:10:244::81", "fd00:10:244::80", 61000      # node-b's pod; its vxlan-v6.calico address
NP_HOPS = [
    ("request", "node-a", "cali41f14107a8d", "none", NODE_A6), ("request", "node-a", "eth0", "none", NODE_A6),
    ("request", "node-b", "eth0", "none", NODE_B6), ("request", "node-b", "cali77a38a64072", "none", NODE_B6),
    ("response", "node-b", "cali77a38a64072", "none", NODE_B6), ("response", "node-b", "vxlan-v6.calico", "none", NODE_B6),
    ("response", "node-b", "eth0", "vxlan", NODE_B6), ("response", "node-a", "eth0", "vxlan", NODE_A6),
    ("response", "node-a", "vxlan-v6.calico", "none", NODE_A6), ("response", "node-a", "cali41f14107a8d", "none", NODE_A6)]
NP_LINE = ("NodePort [fd00:10:240::2]:30443 (default/web-nodeport) -> backend [fd00:10:244::81]:443 (on node-b), chosen by "
           "kube-proxy's DNAT on node-b (masquerading the source)")


def _np_plan(rules=None):
    nodes = _nodes(rules)
    flow = dict(_flow(NODE_B6), port=NODE_PORT)
    path = trace_path("node-a", nodes["node-a"], flow, LAB_INVENTORY)
    return path, trace_plan(nodes, flow=flow, service=path["service"])


def test_path_and_plan_of_an_ipv6_nodeport_on_the_backends_node():
    path, plan = _np_plan()
    assert (path["hosts"], path["dst"]["how"]) == (["node-a", "node-b"], "nodeport")
    assert describe(path)[1] == ("dst [fd00:10:240::2]:30443: Service default/web-nodeport in node-a's kube-proxy rules (iptables), "
                                 "NodePort of node-b, backend [fd00:10:244::81]:443 there")
    svc = path["service"]
    assert (svc["kind"], svc["dnat_on"], svc["backend"]["ip"], svc["backend"]["port"], svc["masquerade"]) == (
        "nodeport", "node-b", NP_BACKEND6, 443, True)
    # every hop of the source node carries its IPv6 address, and node-b answers over vxlan-v6.calico to it
    assert [(h["direction"], h["node"], h["interface"], h["encap"], h["node_ip"]) for h in plan["hops"]] == NP_HOPS
    caps = {c["key"]: c for c in plan["captures"]}
    pre = "(host fd00:10:244::4f and host fd00:10:240::2 and tcp port 30443) or (icmp6 and "
    assert caps["node-a/cali41f14107a8d"]["filter"].startswith(pre)
    assert caps["node-a/eth0"]["filter"].startswith("(" + pre)
    assert "(ip6 and udp port 4789 and host fd00:10:240::2 and ip6[68:2]==0x86dd and " in caps["node-a/eth0"]["filter"]
    assert "(ip6 and udp port 4789 and host fd00:10:240::1 and ip6[68:2]==0x86dd and " in caps["node-b/eth0"]["filter"]
    for cap in plan["captures"]:
        assert "10.240." not in cap["filter"] and "udp[" not in cap["filter"], cap
    assert caps["node-b/cali77a38a64072"]["filter"] == "host fd00:10:244::81 and tcp port 443"
    assert caps["node-b/cali77a38a64072"]["unsnat"] == {"pod": SRC6, "node_ip": NODE_B6, "node_port": NODE_PORT,
                                                        "backend": NP_BACKEND6, "backend_port": 443}
    assert plan["service"]["line"] == NP_LINE
    # node-b deferred (not read before its captures): its devices are selected on the node by IPv6 routes
    plan = trace_plan({"node-a": _nodes()["node-a"]}, flow=dict(_flow(NODE_B6), port=NODE_PORT), service=path["service"])
    assert [(c["key"], c["select"]) for c in plan["captures"] if c["node"] == "node-b"] == [
        ("node-b/?fd00:10:240::1", {"route_to": NODE_A6}), ("node-b/?fd00:10:244::81", {"route_to": NP_BACKEND6, "local": True}),
        ("node-b/?fd00:10:244::4f", {"route_to": SRC6})]


def test_an_ipv6_nodeport_in_nft_mode_is_the_ip6_tables_service_nodeports():
    path, plan = _np_plan({"source": "nft", "text": "", "nft": NFT6})
    assert (path["service"]["mode"], path["service"]["kind"], path["service"]["backend"]["ip"]) == ("nft", "nodeport", NP_BACKEND6)
    assert [(h["direction"], h["node"], h["interface"], h["encap"], h["node_ip"]) for h in plan["hops"]] == NP_HOPS


def _ip6fl(src, dst, nh, payload, label=0):
    return struct.pack("!IHBB16s16s", 0x60000000 | label, len(payload), nh, 64, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def test_unsnat_of_an_ipv6_capture_rewrites_both_addresses_and_the_ports(tmp_path):
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import unsnat
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    up, veth, out = str(tmp_path / "up.pcap"), str(tmp_path / "veth.pcap"), str(tmp_path / "out.pcap")
    t0 = _synth.BASE_NS
    _synth.write_pcap(up, [(t0, _synth.eth(_ip6fl(SRC6, NODE_B6, 6, _synth.tcp(38362, NODE_PORT, 777, 0, 0x02)), 0x86DD))], 1)
    syn = _synth.tcp(MPORT, 443, 777, 0, 0x02)
    # a destination options header (8 bytes of padding) before TCP: the ports are found behind it
    dstopt = struct.pack("!BB6s", 6, 0, b"\x01\x04\x00\x00\x00\x00")
    _synth.write_pcap(veth, [
        (t0 + 1000, _synth.eth(_ip6fl(MASQ6, NP_BACKEND6, 6, syn, 5), 0x86DD)),
        (t0 + 2000, _synth.eth(_ip6fl(NP_BACKEND6, MASQ6, 60, dstopt + _synth.tcp(443, MPORT, 9000, 778, 0x12), 9), 0x86DD)),
        # another connection to the backend, not of this flow: left as it is
        (t0 + 3000, _synth.eth(_ip6fl(MASQ6, NP_BACKEND6, 6, _synth.tcp(MPORT + 1, 443, 5, 0, 0x02)), 0x86DD)),
        # an IPv4 packet of the same ports: another family, left as it is
        (t0 + 4000, _synth.eth(_synth.ipv4("10.240.0.9", "172.17.25.193", 6, syn, 1)))], 1)
    syns = unsnat.syn_ports(up, NODE_B6, NODE_PORT)
    assert syns == {777: 38362}
    assert unsnat.rewrite(veth, out, SRC6, NODE_B6, NODE_PORT, NP_BACKEND6, 443, syns) == 2
    records = list(Capture(out).records())
    keys = [dec.decode_at(buf, off, n, lt).key for _ts, n, _o, buf, off, lt in records]
    show = [(dec.ip_text(k[dec.KEY_SRC]), k[dec.KEY_SPORT], dec.ip_text(k[dec.KEY_DST]), k[dec.KEY_DPORT], k[dec.KEY_SEQ]) for k in keys]
    assert show == [(SRC6, 38362, NODE_B6, NODE_PORT, 777), (NODE_B6, NODE_PORT, SRC6, 38362, 9000),
                    (MASQ6, MPORT + 1, NP_BACKEND6, 443, 5), ("10.240.0.9", MPORT, "172.17.25.193", 443, 777)]
    # the flow label (key[1] for IPv6) and the extension header stay; nothing else of the packet moves
    assert (keys[0][dec.KEY_LEN_A], keys[1][dec.KEY_LEN_A]) == (5, 9)
    assert bytes(records[1][3][records[1][4] + 14 + 40:records[1][4] + 14 + 48]) == dstopt


def _np_frame(hop, direction, src, dst, ident, seg):
    """The packet as ``hop``'s device sees it: before node-b's DNAT [pod]:port <-> [node-b]:30443, after it
    [MASQ6]:MPORT <-> [backend]:443; VXLAN over the nodes' IPv6 addresses on the NICs of the answer."""
    sport, dport = struct.unpack("!HH", seg[:4])
    if hop.get("after_dnat"):
        if direction == "request":
            src, dst, seg = MASQ6, NP_BACKEND6, struct.pack("!HH", MPORT, 443) + seg[4:]
        else:
            src, dst, seg = NP_BACKEND6, MASQ6, struct.pack("!HH", 443, MPORT) + seg[4:]
    elif direction == "request":
        src, dst, seg = SRC6, NODE_B6, struct.pack("!HH", sport, NODE_PORT) + seg[4:]
    else:
        src, dst, seg = NODE_B6, SRC6, struct.pack("!HH", NODE_PORT, dport) + seg[4:]
    inner = _synth.eth(_ip6fl(src, dst, 6, seg, ident), 0x86DD)
    if hop["encap"] != "vxlan":
        return inner
    outer = (NODE_B6, NODE_A6)
    udp_payload = struct.pack("!BBHI", 0x08, 0, 0, 4096 << 8) + inner
    return _synth.eth(_ip6fl(outer[0], outer[1], 17, struct.pack("!HHHH", 40000, 4789, 8 + len(udp_payload), 0) + udp_payload), 0x86DD)


def _np_trace(tmp_path, drop=None):
    """Captures of the IPv6 NodePort flow on every hop; ``drop=("response", k)``: the answer absent from hop k on."""
    _path, plan = _np_plan()
    per_cap = {c["key"]: [] for c in plan["captures"]}
    for direction, t0, src, dst, ident, seg in _synth.flow_packets():
        for pos, hop in enumerate([h for h in plan["hops"] if h["direction"] == direction], start=1):
            if drop and direction == drop[0] and pos >= drop[1]:
                break
            per_cap[hop["capture"]].append((_synth.BASE_NS + t0 + pos * 50000, _np_frame(hop, direction, src, dst, ident, seg)))
    captures = []
    for c in plan["captures"]:
        path = str(tmp_path / (c["key"].replace("/", "_") + ".pcap"))
        _synth.write_pcap(path, per_cap[c["key"]], 1)
        captures.append({"key": c["key"], "node": c["node"], "interface": c["interface"], "file": path, "status": "ok",
                         "error": None, "captured": len(per_cap[c["key"]]), "received": len(per_cap[c["key"]]), "dropped": 0})
    return plan, captures


def test_analysis_of_an_ipv6_nodeport_sees_every_hop_through_the_unsnat(tmp_path):
    plan, captures = _np_trace(tmp_path)
    rep = analysis.analyze(plan, captures)
    assert [(h["direction"], h["node"], h["interface"], h["status"], h["packets"]) for h in rep["hops"]] == [
        (d, n, i, "seen", 4 if d == "request" else 3) for d, n, i, _e, _ip in NP_HOPS]
    assert (rep["verdict"], rep["healthy"]) == ("every hop saw the request and the response", True)
    caps = {c["key"]: c for c in rep["captures"]}
    # the backend's veth: every packet matched through the rewrite, and the report names the file as captured
    assert (caps["node-b/cali77a38a64072"]["matched"], caps["node-b/cali77a38a64072"]["other"]) == (7, 0)
    assert caps["node-b/cali77a38a64072"]["file"] == str(tmp_path / "node-b_cali77a38a64072.pcap")


def test_an_ipv6_nodeports_lost_answer_names_the_dnat_and_the_masquerade(tmp_path):
    # node-b's pod answers, node-b never puts the answer into vxlan-v6.calico; node-b's IPv6 conntrack entry of the
    # probe's connection (read in its capture stop) says it was DNATed and masqueraded to MASQ6
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
    plan, captures = _np_trace(tmp_path, drop=("response", 2))
    entry = {"family": "ipv6", "proto": "tcp", "timeout": 119, "state": "SYN_RECV", "flags": [], "mark": 0, "zone": None,
             "orig": {"src": SRC6, "dst": NODE_B6, "sport": _synth.SPORT, "dport": NODE_PORT},
             "reply": {"src": NP_BACKEND6, "dst": MASQ6, "sport": 443, "dport": MPORT}}
    by = "conntrack -L -f ipv6 -p tcp --orig-src %s --orig-dst %s --dport %d" % (SRC6, NODE_B6, NODE_PORT)
    for cap in captures:
        if cap["node"] == "node-b":
            cap["counters"] = {"flow_conntrack": dict(ct.bounded([entry], by))}
    rep = analysis.analyze(plan, captures)
    assert rep["verdict"] == (
        "[fd00:10:240::2]:30443 was DNATed by kube-proxy on node-b to [fd00:10:244::81]:443 on node-b and masqueraded to "
        "fd00:10:244::80 (the backend answers fd00:10:244::80, not the pod); response reached node-b cali77a38a64072 and was not "
        "seen on node-b vxlan-v6.calico (routing into the tunnel)")
    assert rep["healthy"] is False
    assert (rep["service"]["snat_to"], rep["service"]["line"]) == (MASQ6, NP_LINE.replace("the source)", "the source to %s)" % MASQ6))
    assert ("the connection was masqueraded on node-b: the backend answers [fd00:10:244::80]:61000, not [fd00:10:244::4f]:38362 "
            "(conntrack)") in rep["notes"]
