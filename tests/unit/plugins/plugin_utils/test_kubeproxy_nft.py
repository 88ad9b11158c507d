"""kube-proxy's nftables mode (plugin_utils/kubeproxy_nft.py) on a real `nft list table ip kube-proxy`
(source in the fixture's header), and a trace's Service found through it."""
import os

from test_hosting import INVENTORY, entry
from test_services import flow

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import kubeproxy_nft as nft
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import trace_path

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = open(os.path.join(HERE, "..", "..", "fixtures", "services", "nft-kube-proxy-table.txt")).read()
POD = "10.42.0.5"


def test_the_tables_maps_and_chains():
    tables = nft.parse_table(REAL)
    assert len(tables["maps"]["service-ips"]) == 9 and tables["maps"]["nodeport-ips"] == ["10.34.4.246"]
    assert tables["maps"]["service-nodeports"] == ["tcp . 30000 : goto external-P6J77WGM-riset/hellopod-np-svc/tcp/"]
    assert tables["chains"]["endpoint-MIBO4EMV-default/kubernetes/tcp/https__10.34.4.142/6443"] == [
        "ip saddr 10.34.4.142 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.34.4.142:6443"]


def test_clusterip_with_one_and_nine_endpoints():
    t = nft.translate(REAL, "10.43.0.1", 443, "tcp", src=POD)
    assert (t["mode"], t["service"], t["port_name"], t["kind"], t["masquerade"]) == (
        "nft", "default/kubernetes", "default/kubernetes:https", "clusterip", False)
    assert [(e["ip"], e["port"], e["chance"]) for e in t["endpoints"]] == [("10.34.4.142", 6443, 1.0)]
    assert t["rule"] == "10.43.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https (map service-ips)"
    # a source outside 10.42.0.0/16 is masqueraded
    assert nft.translate(REAL, "10.43.0.1", 443, "tcp", src="10.34.4.10")["masquerade"] is True
    t = nft.translate(REAL, "10.43.195.72", 8000, "tcp", src=POD)
    assert len(t["endpoints"]) == 9 and t["endpoints"][0]["ip"] == "10.42.2.218" and t["endpoints"][0]["chance"] == 0.111111
    # in the map, but its service chain is not in the excerpt: named, no endpoint seen
    t = nft.translate(REAL, "10.43.0.10", 53, "udp", src=POD)
    assert (t["port_name"], t["endpoints"], t["rejected"]) == ("kube-system/kube-dns:dns", [], None)
    assert nft.translate(REAL, "10.43.0.99", 53, "tcp", src=POD) is None


def test_nodeport_and_no_endpoints():
    t = nft.translate(REAL, "10.34.4.246", 30000, "tcp", src=POD, local=True)
    assert (t["kind"], t["service"], t["masquerade"], len(t["endpoints"])) == ("nodeport", "riset/hellopod-np-svc", True, 9)
    assert t["chains"][:2] == ["external-P6J77WGM-riset/hellopod-np-svc/tcp/", "service-P6J77WGM-riset/hellopod-np-svc/tcp/"]
    t = nft.translate(REAL, "10.43.21.102", 4317, "tcp", src=POD)
    assert (t["service"], t["port_name"], t["endpoints"]) == ("riset/otelcol-opentelemetry-collector",
                                                              "riset/otelcol-opentelemetry-collector:otlp", [])
    assert t["rejected"].endswith(": goto reject-chain (map no-endpoint-services)")


def test_a_trace_finds_the_service_through_nft():
    table = REAL.replace("10.43.0.1 . tcp . 443", "10.96.10.20 . tcp . 443").replace("10.34.4.142", "172.17.25.239")
    path = trace_path("worker-a", entry(service_rules={"source": "nft", "text": "", "nft": table}), flow("10.96.10.20"), INVENTORY)
    assert (path["service"]["mode"], path["service"]["service"], path["dst"]["host"]) == ("nft", "default/kubernetes", "worker-b")


def test_node_side_reads_the_nft_table_only_without_kube_proxys_iptables_chains():
    from test_kubeproxy_ipvs import _Node

    from ansible_collections.hoptrace.k8s.plugins.modules.route_info import read_service_rules
    node = _Node({"iptables-save": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "nft": REAL})
    assert read_service_rules(node, [{"ifname": "eth0"}]) == {"source": "nft", "text": "", "nft": REAL}
    assert node.ran == [["/usr/sbin/iptables-save"], ["/usr/sbin/nft", "list", "table", "ip", "kube-proxy"]]
    node = _Node({"iptables-save": "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n", "nft": REAL})
    assert "nft" not in read_service_rules(node, [{"ifname": "eth0"}])
    assert node.ran == [["/usr/sbin/iptables-save"]]


LAB = open(os.path.join(HERE, "..", "..", "fixtures", "services", "lab-node-a-nft-list-table.txt")).read()
SRC = "172.17.25.79"


def test_the_labs_real_listing():
    t = nft.translate(LAB, "10.96.10.20", 443, "tcp", src=SRC)
    assert (t["service"], t["port_name"], t["kind"], t["masquerade"], t["rejected"]) == (
        "openshift-ingress/router-internal-default", "openshift-ingress/router-internal-default:https", "clusterip", False, None)
    assert t["endpoints"] == [{"ip": "172.17.25.239", "port": 443, "chance": 1.0, "hairpin": False,
                               "chain": "endpoint-UXYJUDAF-openshift-ingress/router-internal-default/tcp/https__172.17.25.239/443"}]
    t = nft.translate(LAB, "10.96.10.30", 443, "tcp", src=SRC)
    assert [(e["ip"], e["chance"]) for e in t["endpoints"]] == [("172.17.25.66", 0.5), ("172.17.25.193", 0.5)]
    # the backend itself through its Service: the endpoint chain's hairpin masquerade
    assert nft.translate(LAB, "10.96.10.30", 443, "tcp", src="172.17.25.66")["endpoints"][0]["hairpin"] is True
    t = nft.translate(LAB, "10.96.10.40", 443, "tcp", src=SRC)
    assert t["rejected"] == '10.96.10.40 . tcp . 443 comment "default/empty:https" : goto reject-chain (map no-endpoint-services)'
    assert (t["service"], t["endpoints"], t["chains"]) == ("default/empty", [], ["reject-chain"])
    t = nft.translate(LAB, "10.240.0.9", 30443, "tcp", src=SRC, local=True)
    assert (t["kind"], t["service"], t["masquerade"], [e["ip"] for e in t["endpoints"]]) == (
        "nodeport", "default/web-nodeport", True, ["172.17.25.193"])
    assert t["rule"] == "tcp . 30443 : goto external-QRJBX24H-default/web-nodeport/tcp/https (map service-nodeports)"
    # the nodePort only on a node's own address (the services chain's fib daddr type local)
    assert nft.translate(LAB, "10.240.0.9", 30443, "tcp", src=SRC) is None


def test_what_refuses_a_service_without_endpoints_is_named_per_mode():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import describe, refuser
    rejected = nft.translate(LAB, "10.96.10.40", 443, "tcp", src=SRC)["rejected"]
    svc = {"mode": "nft", "rejected": rejected, "address": "10.96.10.40", "port": 443, "name": "default/empty", "dnat_on": "node-a"}
    assert refuser(svc) == "kube-proxy's nft map no-endpoint-services -> reject-chain"
    assert describe(svc) == ("Service 10.96.10.40:443 (default/empty) has no endpoints: kube-proxy's nft map "
                             "no-endpoint-services -> reject-chain on node-a answers")
    # externalTrafficPolicy Local without local endpoints: kube-proxy's element says drop
    dropped = LAB.replace(': goto reject-chain }', ': drop }')
    assert refuser(dict(svc, rejected=nft.translate(dropped, "10.96.10.40", 443, "tcp")["rejected"])) == (
        "kube-proxy's nft map no-endpoint-services -> drop")
    assert refuser(dict(svc, mode="iptables")) == "kube-proxy's REJECT rule"


def test_the_cause_of_the_reject_names_the_nft_element():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.cause import _nft_refusal
    rejected = nft.translate(LAB, "10.96.10.40", 443, "tcp", src=SRC)["rejected"]
    svc = {"mode": "nft", "rejected": rejected, "dnat_on": "node-a"}
    item = {"first": {"node": "node-a"}}
    assert _nft_refusal(item, svc) == (
        "node-a's kube-proxy nft table sends it: 10.96.10.40 . tcp . 443 comment \"default/empty:https\" : goto reject-chain "
        "(map no-endpoint-services), in table ip kube-proxy (its rules keep no counters)",
        "node-a nft list table ip kube-proxy: " + rejected)
    # an error first seen elsewhere, or iptables mode (its REJECT rule has counters): not this
    assert _nft_refusal({"first": {"node": "node-b"}}, svc) is None
    assert _nft_refusal(item, dict(svc, mode="iptables")) is None


def test_the_labs_nft_no_endpoints_report_follows_the_schema():
    import json

    from test_report_schema import SCHEMA, validate
    data = json.load(open(os.path.join(HERE, "..", "..", "fixtures", "services", "lab-service-nft-no-endpoints.json")))
    assert validate(data, SCHEMA) == []
    assert (data["service"]["mode"], data["healthy"]) == ("nft", False)
    assert "no-endpoint-services -> reject-chain on node-a answered" in data["verdict"]


def test_cluster_ips_check_refuses_a_clusterips_other_port_and_the_ranges_unallocated_addresses():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import services
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import unserved
    t = nft.translate(LAB, "10.96.10.20", 80, "tcp", src=SRC)
    rejected = 'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs" (chain cluster-ips-check)'
    assert (t["service"], t["endpoints"], t["rejected"], t["chains"], t["port"]) == (None, [], rejected, ["cluster-ips-check"], 80)
    svc = services.public(dict(t, read_on="node-a"))
    assert unserved(svc) == "10.96.10.20 is a ClusterIP but port 80 is none of its Service's ports"
    assert svc["line"] == ("10.96.10.20 is a ClusterIP but port 80 is none of its Service's ports: kube-proxy's nft chain "
                           "cluster-ips-check on node-a answers")
    t = nft.translate(LAB, "10.96.10.99", 443, "tcp", src=SRC)
    assert t["rejected"] == 'ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs" (chain cluster-ips-check)'
    assert services.public(dict(t, read_on="node-a"))["line"] == (
        "10.96.10.99 is in the Service range but no Service's ClusterIP: kube-proxy's nft chain cluster-ips-check on node-a drops it")
    # outside the Service range, and on the k3s node (kube-proxy before 1.31: no cluster-ips set): not kube-proxy's
    assert nft.translate(LAB, "10.95.0.1", 443, "tcp", src=SRC) is None
    assert nft.translate(REAL, "10.43.0.1", 80, "tcp", src=POD) is None


def test_a_trace_to_a_clusterips_other_port_says_no_service_has_it():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import describe
    path = trace_path("worker-a", entry(service_rules={"source": "nft", "text": "", "nft": LAB}), flow("10.96.10.20", 80), INVENTORY)
    assert (path["service"]["service"], path["service"]["endpoints"], path["hosts"]) == (None, [], ["worker-a"])
    assert describe(path)[1] == ("dst 10.96.10.20:80: no Service in worker-a's kube-proxy rules (nft), refused by ip daddr "
                                 '@cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs" (chain cluster-ips-check)')


def test_the_verdict_of_an_unallocated_service_address(tmp_path):
    import _synth

    from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, services
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("request", 5))
    plan["service"] = services.public(dict(nft.translate(LAB, "10.96.10.99", 443, "tcp", src=SRC), read_on="node-a"), plan)
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"] == ("10.96.10.99 is in the Service range but no Service's ClusterIP (kube-proxy's nft chain "
                              "cluster-ips-check on node-a); no answer was seen")
    assert rep["healthy"] is False


def test_rules_with_counters_read_the_same():
    # `nft list` prints a counter's values inside the rule; kube-proxy adds none, an admin's copy may
    counted = LAB.replace(" jump mark-for-masquerade", " counter packets 3 bytes 180 jump mark-for-masquerade").replace(
        "meta l4proto tcp dnat", "meta l4proto tcp counter packets 0 bytes 0 dnat")
    assert counted != LAB
    for dst, port, src in (("10.96.10.20", 443, "10.240.0.9"), ("10.96.10.30", 443, SRC), ("10.96.10.30", 443, "172.17.25.66")):
        assert nft.translate(counted, dst, port, "tcp", src=src) == nft.translate(LAB, dst, port, "tcp", src=src)
    assert nft.translate(counted, "10.96.10.20", 443, "tcp", src="10.240.0.9")["masquerade"] is True
