"""kube-proxy's translation (plugin_utils/kubeproxy.py), the path and plan of a trace to a Service
(hosting.py, services.py) and the analysis of the capture before the DNAT.

Rules: the lab node's real iptables-save after `lab.py services up` and the Kubernetes docs' real
"Debug Services" output (sources in the fixtures' headers); routes: the seed article's node."""
import json
import os
import struct

import _synth
import pytest
from test_hosting import INVENTORY, entry
from test_plan import SEED_B

from ansible_collections.hoptrace.k8s.plugins.filter.trace_plan import trace_plan
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, kubeproxy, services
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import PathError, describe, trace_path

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "fixtures", "services")
LAB = open(os.path.join(FIX, "lab-node-a-iptables-save.txt")).read()
DOCS = open(os.path.join(FIX, "k8s-website-debug-service-iptables-save.txt")).read()
SUBCTL = open(os.path.join(HERE, "..", "..", "fixtures", "counters", "kube-proxy-iptables-save-c.txt")).read()
SRC = "172.17.25.79"


def flow(dst, port=443):
    return {"src": SRC, "dst": dst, "proto": "tcp", "port": port}


def test_clusterip_with_one_endpoint():
    t = kubeproxy.translate(LAB, "10.96.10.20", 443, "tcp", src=SRC)
    assert (t["service"], t["port_name"], t["kind"], t["mode"]) == (
        "openshift-ingress/router-internal-default", "openshift-ingress/router-internal-default:https", "clusterip", "iptables")
    assert t["endpoints"] == [{"ip": "172.17.25.239", "port": 443, "chain": "KUBE-SEP-AD5L4NJ7EYI4Y7IC", "chance": 1.0, "hairpin": False}]
    assert t["chains"] == ["KUBE-SVC-PIUKAOOLWSYDMVAC", "KUBE-SEP-AD5L4NJ7EYI4Y7IC"]
    # a pod source is inside the cluster CIDR: the "! -s 172.17.0.0/16" masquerade rule does not apply
    assert (t["masquerade"], t["rejected"]) == (False, None)
    assert kubeproxy.translate(LAB, "10.96.10.20", 443, "tcp", src="10.240.0.9")["masquerade"] is True
    # another port or protocol of the same address is not this Service
    assert kubeproxy.translate(LAB, "10.96.10.20", 80, "tcp", src=SRC) is None
    assert kubeproxy.translate(LAB, "10.96.10.20", 443, "udp", src=SRC) is None


def test_two_endpoints_and_the_docs_three_with_their_chances():
    t = kubeproxy.translate(LAB, "10.96.10.30", 443, "tcp", src=SRC)
    assert [(e["ip"], e["port"], e["chance"]) for e in t["endpoints"]] == [("172.17.25.66", 443, 0.5), ("172.17.25.193", 443, 0.5)]
    t = kubeproxy.translate(DOCS, "10.0.1.175", 80, "tcp", src="10.244.0.5")
    assert (t["service"], t["port_name"]) == ("default/hostnames", "default/hostnames:")
    assert [(e["ip"], e["port"]) for e in t["endpoints"]] == [("10.244.1.7", 9376), ("10.244.2.3", 9376), ("10.244.3.6", 9376)]
    assert [e["chance"] for e in t["endpoints"]] == pytest.approx([1 / 3.0, 1 / 3.0, 1 / 3.0], abs=1e-4)


def test_no_endpoints_is_the_filter_tables_reject():
    t = kubeproxy.translate(LAB, "10.96.10.40", 443, "tcp", src=SRC)
    assert (t["service"], t["endpoints"]) == ("default/empty", [])
    assert t["rejected"] == ('-A KUBE-SERVICES -d 10.96.10.40/32 -p tcp -m comment --comment "default/empty:https has no endpoints" '
                             "-m tcp --dport 443 -j REJECT --reject-with icmp-port-unreachable")


def test_nodeport_on_a_node_address_masquerades():
    t = kubeproxy.translate(LAB, "10.240.0.9", 30443, "tcp", src=SRC, local=True)
    assert (t["kind"], t["service"], t["masquerade"]) == ("nodeport", "default/web-nodeport", True)
    assert [(e["ip"], e["port"]) for e in t["endpoints"]] == [("172.17.25.193", 443)]
    assert t["chains"] == ["KUBE-EXT-OBTREKPB7UR4IIGU", "KUBE-SVC-OBTREKPB7UR4IIGU", "KUBE-SEP-ZIG3EPOSSQEQ7FYE"]
    assert kubeproxy.translate(LAB, "10.240.0.9", 30443, "tcp", src=SRC, local=False) is None


def test_counters_and_endpoint_chains_only():
    tables = kubeproxy.parse_save(SUBCTL)
    dnat = [r for r in tables["nat"]["KUBE-SEP-EHRALZ2IVFLIEMXK"] if r["target"] == "DNAT"][0]
    assert (dnat["to"], dnat["proto"], dnat["comment"]) == ("10.131.0.2:53", "udp", "kube-system/kube-dns:dns")
    # no KUBE-SERVICES rule names any address there
    assert kubeproxy.translate(SUBCTL, "10.131.0.2", 53, "udp") is None


def test_node_side_reads_only_for_a_non_pod_address_and_keeps_kube_proxys_lines():
    node = {"workloads": [{"ip": SRC, "dev": "cali41f14107a8d"}], "local_blocks": ["172.17.25.64/26"],
            "remote_blocks": [{"dst": "172.17.25.192/26"}]}
    assert [sr.needs_rules(node, ip) for ip in (SRC, "172.17.25.66", "172.17.25.239", "10.96.10.20", "fd00::1")] == \
        [False, False, False, True, True]
    kept = sr.trim("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n[3:180] -A PREROUTING -m comment --comment x -j KUBE-SERVICES\n"
                   "-A PREROUTING -j cali-PREROUTING\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n")
    assert kept == "*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment x -j KUBE-SERVICES\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n"
    assert sr.has_services(LAB) and not sr.has_services(kept.replace("KUBE-SERVICES", "X"))


def _entry(**extra):
    return entry(service_rules={"source": "iptables-save", "text": sr.trim(LAB)}, **extra)


def test_path_to_a_clusterip_goes_to_the_backends_node():
    path = trace_path("worker-a", _entry(), flow("10.96.10.20"), INVENTORY)
    assert path["hosts"] == ["worker-a", "worker-b"]
    assert (path["dst"]["address"], path["dst"]["host"]) == ("172.17.25.239", "worker-b")
    assert path["service"]["backend"]["ip"] == "172.17.25.239"
    assert describe(path)[1] == (
        "dst 10.96.10.20:443: Service openshift-ingress/router-internal-default in worker-a's kube-proxy rules (iptables), "
        "backend 172.17.25.239:443 on worker-b (worker-a's route 172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird; "
        "10.240.0.9 is ip of worker-b)")
    # two endpoints: both nodes are on the path (one of them the source's)
    path = trace_path("worker-a", _entry(), flow("10.96.10.30"), INVENTORY)
    assert path["hosts"] == ["worker-a", "worker-b"] and path["service"]["backend"] is None
    assert [e["host"] for e in path["service"]["endpoints"]] == ["worker-a", "worker-b"]
    # no endpoints: only the source node
    path = trace_path("worker-a", _entry(), flow("10.96.10.40"), INVENTORY)
    assert path["hosts"] == ["worker-a"] and path["service"]["rejected"]
    # a pod dst never looks at the rules
    assert trace_path("worker-a", _entry(), flow("172.17.25.239"), INVENTORY)["service"] is None


def test_an_endpoint_outside_the_pod_network_is_refused():
    rules = LAB.replace("172.17.25.239:443", "192.0.2.7:443")
    with pytest.raises(PathError, match=r"DNATs to 192.0.2.7:443, which worker-a's routes do not place on a node"):
        trace_path("worker-a", entry(service_rules={"text": rules}), flow("10.96.10.20"), INVENTORY)


def _nodes():
    a = _entry()
    a["workloads"] = [{"ip": SRC, "dev": "cali41f14107a8d"}, {"ip": "172.17.25.66", "dev": "calib1a96c2cc82"}]
    b = {"routes": parse_ip_route(SEED_B + "172.17.25.193 dev cali77a38a64072 scope link\n"),
         "links": [{"ifname": "eth0", "kind": "physical"}, {"ifname": "tunl0", "kind": "ipip"}],
         "node_ips": ["10.240.0.9"], "local_blocks": ["172.17.25.192/26"],
         "workloads": [{"ip": "172.17.25.239", "dev": "calic25e805a467"}, {"ip": "172.17.25.193", "dev": "cali77a38a64072"}]}
    return {"worker-a": a, "worker-b": b}


def test_plan_keeps_the_service_address_on_the_source_veth_only():
    nodes = _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.96.10.20"), INVENTORY)
    plan = trace_plan(nodes, flow=flow("10.96.10.20"), service=path["service"])
    assert plan["run"]["dst"] == "172.17.25.239" and plan["dst_node"] == "worker-b"
    caps = {c["key"]: c for c in plan["captures"]}
    veth = caps["worker-a/cali41f14107a8d"]
    assert veth["nat"] == {"address": "10.96.10.20", "port": 443}
    assert veth["filter"].startswith("(host 172.17.25.79 and host 10.96.10.20 and tcp port 443) or (icmp and")
    assert "ip[36:4]==0xac1119ef" in caps["worker-a/eth0"]["filter"] and "nat" not in caps["worker-a/eth0"]
    assert caps["worker-b/calic25e805a467"]["filter"].startswith("(host 172.17.25.79 and host 172.17.25.239 and tcp port 443)")
    assert plan["service"]["line"] == ("Service 10.96.10.20:443 (openshift-ingress/router-internal-default) -> backend "
                                       "172.17.25.239:443 (on worker-b), chosen by kube-proxy's DNAT on worker-a")


def test_plan_of_two_endpoints_has_a_candidate_each_and_every_capture():
    nodes = _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.96.10.30"), INVENTORY)
    plan = trace_plan(nodes, flow=flow("10.96.10.30"), service=path["service"])
    assert [(c["run"]["dst"], c["dst_node"], c["encap"]) for c in plan["candidates"]] == [
        ("172.17.25.66", "worker-a", "local"), ("172.17.25.193", "worker-b", "ipip")]
    assert [c["key"] for c in plan["captures"]] == [
        "worker-a/cali41f14107a8d", "worker-a/calib1a96c2cc82", "worker-a/tunl0", "worker-a/eth0", "worker-b/eth0",
        "worker-b/tunl0", "worker-b/cali77a38a64072"]
    assert plan["service"]["line"] == ("Service 10.96.10.30:443 (default/web) -> one of 2 endpoints (172.17.25.66:443, "
                                       "172.17.25.193:443), chosen per connection by kube-proxy's DNAT on worker-a")


def _nat_trace(tmp_path, svc_ip="10.96.10.20", svc_port=8443):
    """The synthetic seed trace with the source veth's packets carrying the Service address and port."""
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    key = "node-a/%s" % _synth.SRC_VETH
    records = []
    for direction, t0, src, dst, ident, seg in _synth.flow_packets():
        sport, dport = struct.unpack("!HH", seg[:4])
        if direction == "request":
            dst, seg = svc_ip, struct.pack("!HH", sport, svc_port) + seg[4:]
        else:
            src, seg = svc_ip, struct.pack("!HH", svc_port, dport) + seg[4:]
        pos = 1 if direction == "request" else 6
        records.append((_synth.BASE_NS + t0 + pos * 50000 + (300000 if pos >= 4 else 0), _synth.eth(_synth.ipv4(src, dst, 6, seg, ident))))
    path = next(c["file"] for c in caps if c["key"] == key)
    _synth.write_pcap(path, records, 1)
    return plan, caps, key


def test_analysis_matches_the_service_address_before_the_dnat(tmp_path):
    plan, caps, key = _nat_trace(tmp_path)
    # without the plan's nat the source veth's packets are another flow: the request "never left"
    rep = analysis.analyze(plan, caps)
    assert rep["healthy"] is False and rep["hops"][0]["packets"] == 0
    for cap in plan["captures"]:
        if cap["key"] == key:
            cap["nat"] = {"address": "10.96.10.20", "port": 8443}
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == "every hop saw the request and the response"
    assert [h["packets"] for h in rep["hops"]] == [4] * 6 + [3] * 6


def test_service_verdicts(tmp_path):
    plan, caps, key = _nat_trace(tmp_path)
    for cap in plan["captures"]:
        if cap["key"] == key:
            cap["nat"] = {"address": "10.96.10.20", "port": 8443}
    svc = services.public(dict(kubeproxy.translate(LAB, "10.96.10.20", 443, "tcp", src=SRC), read_on="node-a",
                               backend={"ip": _synth.DST, "port": 443}), plan)
    # DNAT done, the backend's node loses the packet on its tunnel: said with the backend
    (tmp_path / "drop").mkdir()
    plan2, caps2 = _synth.make_trace(tmp_path / "drop", "ipip", drop=("request", 5))
    plan2["service"] = svc
    rep = analysis.analyze(plan2, caps2)
    assert rep["verdict"] == ("10.96.10.20:443 was DNATed by kube-proxy on node-a to 172.17.25.239:443 on node-b; request reached "
                              "node-b eth0 and was not seen on node-b tunl0 (decapsulation)")
    assert rep["service"]["line"].startswith("Service 10.96.10.20:443 (openshift-ingress/router-internal-default) -> backend")
    # no endpoints and no answer seen
    empty = services.public(dict(kubeproxy.translate(LAB, "10.96.10.40", 443, "tcp", src=SRC), read_on="node-a"), plan)
    plan2["service"] = empty
    rep = analysis.analyze(plan2, caps2)
    assert rep["verdict"] == "Service default/empty (10.96.10.40:443) has no endpoints (kube-proxy's REJECT rule on node-a); no answer was seen"
    assert rep["healthy"] is False


@pytest.mark.parametrize("name", ["lab-service-clusterip.json", "lab-service-two-endpoints.json", "lab-service-no-endpoints.json",
                                  "lab-service-nodeport.json"])
def test_real_service_reports_follow_the_schema(name):
    from test_report_schema import SCHEMA, validate
    data = json.load(open(os.path.join(FIX, name)))
    assert validate(data, SCHEMA) == []
    assert data["service"]["mode"] == "iptables"


def test_path_and_plan_of_a_nodeport_on_the_backends_node():
    nodes = _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    assert path["hosts"] == ["worker-a", "worker-b"] and path["dst"]["how"] == "nodeport"
    assert (path["service"]["kind"], path["service"]["dnat_on"], path["service"]["backend"]["ip"]) == ("nodeport", "worker-b", "172.17.25.193")
    plan = trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])
    assert [(h["direction"], h["node"], h["interface"], h["encap"]) for h in plan["hops"]] == [
        ("request", "worker-a", "cali41f14107a8d", "none"), ("request", "worker-a", "eth0", "none"),
        ("request", "worker-b", "eth0", "none"), ("request", "worker-b", "cali77a38a64072", "none"),
        ("response", "worker-b", "cali77a38a64072", "none"), ("response", "worker-b", "tunl0", "none"),
        ("response", "worker-b", "eth0", "ipip"), ("response", "worker-a", "eth0", "ipip"),
        ("response", "worker-a", "tunl0", "none"), ("response", "worker-a", "cali41f14107a8d", "none")]
    caps = {c["key"]: c for c in plan["captures"]}
    assert caps["worker-b/cali77a38a64072"]["filter"] == "host 172.17.25.193 and tcp port 443"
    assert caps["worker-b/cali77a38a64072"]["unsnat"] == {"pod": SRC, "node_ip": "10.240.0.9", "node_port": 30443,
                                                          "backend": "172.17.25.193", "backend_port": 443}
    # node-b's underlay serves the plain request and the IPIP answer
    assert caps["worker-b/eth0"]["encap"] == "mixed" and "ip proto 4 and host 10.240.128.12" in caps["worker-b/eth0"]["filter"]
    # deferred (not read): node-b's devices are selected on the node
    plan = trace_plan({"worker-a": nodes["worker-a"]}, flow=flow("10.240.0.9", 30443), service=path["service"])
    assert [c["key"] for c in plan["captures"] if c["node"] == "worker-b"] == [
        "worker-b/?10.240.128.12", "worker-b/?172.17.25.193", "worker-b/?172.17.25.79"]


def test_a_nodeports_answer_over_wireguard_is_filtered_on_the_devices_listen_port():
    # worker-a routes the backend's block over wireguard.cali, whose wg show says it listens on
    # 51830: the answer's underlay hops match that port, not Calico's default 51820
    nodes = _nodes()
    a = nodes["worker-a"]
    a["routes"] = [dict(r, dev="wireguard.cali", gateway=None) if r.get("dev") == "tunl0" else r for r in a["routes"]]
    a["links"] = [link for link in a["links"] if link.get("ifname") != "tunl0"] + [
        {"ifname": "wireguard.cali", "kind": "wireguard", "wireguard": {"listen_port": 51830, "peers": [
            {"endpoint_ip": "10.240.0.9", "endpoint_port": 51830, "allowed_ips": ["172.17.25.192/26"]}]}}]
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    plan = trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])
    response = [(h["node"], h["interface"], h["encap"]) for h in plan["hops"] if h["direction"] == "response"]
    assert response[2:4] == [("worker-b", "eth0", "wireguard"), ("worker-a", "eth0", "wireguard")]
    caps = {c["key"]: c for c in plan["captures"]}
    assert "udp port 51830 and host 10.240.0.9" in caps["worker-a/eth0"]["filter"]
    assert "51820" not in caps["worker-a/eth0"]["filter"]


def test_unsnat_maps_the_masqueraded_port_back_by_the_syn_sequence(tmp_path):
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import unsnat
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture
    up, veth, out = str(tmp_path / "up.pcap"), str(tmp_path / "veth.pcap"), str(tmp_path / "out.pcap")
    t0 = _synth.BASE_NS
    _synth.write_pcap(up, [(t0, _synth.eth(_synth.ipv4(SRC, "10.240.0.9", 6, _synth.tcp(38362, 30443, 777, 0, 0x02), 1)))], 1)
    _synth.write_pcap(veth, [
        (t0 + 1000, _synth.eth(_synth.ipv4("10.240.0.9", "172.17.25.193", 6, _synth.tcp(61000, 443, 777, 0, 0x02), 1))),
        (t0 + 2000, _synth.eth(_synth.ipv4("172.17.25.193", "10.240.0.9", 6, _synth.tcp(443, 61000, 9000, 778, 0x12), 2))),
        # another connection to the backend, not of this flow: left as it is
        (t0 + 3000, _synth.eth(_synth.ipv4("10.240.0.9", "172.17.25.193", 6, _synth.tcp(61001, 443, 5, 0, 0x02), 3)))], 1)
    syns = unsnat.syn_ports(up, "10.240.0.9", 30443)
    assert syns == {777: 38362}
    assert unsnat.rewrite(veth, out, SRC, "10.240.0.9", 30443, "172.17.25.193", 443, syns) == 2
    keys = [dec.decode_at(buf, off, n, lt).key for _ts, n, _o, buf, off, lt in Capture(out).records()]
    show = [(dec.ip_text(k[4]), k[6], dec.ip_text(k[5]), k[7]) for k in keys]
    assert show == [(SRC, 38362, "10.240.0.9", 30443), ("10.240.0.9", 30443, SRC, 38362), ("10.240.0.9", 61001, "172.17.25.193", 443)]
