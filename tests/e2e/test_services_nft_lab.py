"""Traces to Kubernetes Services on the lab in kube-proxy's nftables mode: the table kube-proxy's
nftables proxier writes (tests/lab/kubeproxy_nft.py, `lab.py services up --proxy-mode nft`) on every
node and no iptables kube-proxy chain, so route_info reads `nft list table ip kube-proxy`; real
kernel DNAT (numgen vmap, dnat to), reject-chain, masquerade fully-random; the real playbook over SSH.

The same flows as test_services_lab.py's (one lab shape, ipip with 2 nodes); four traces.
"""
import os

import pytest
from test_services_lab import (EMPTY_SVC, NODE_B, SEED_SVC, WEB_SVC, _keep, args, assert_nodeport, assert_seed_service,
                               assert_two_endpoints)
from test_trace import SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SEED_SERVICE_CHAIN = "service-WF3IK77V-openshift-ingress/router-internal-default/tcp/https"
SEED_ENDPOINT_CHAIN = "endpoint-UXYJUDAF-openshift-ingress/router-internal-default/tcp/https__172.17.25.239/443"


@pytest.fixture(scope="module")
def nft_services(lab_factory):
    lab_factory("ipip", 2)
    listed = labctl.services_up("nft")
    # test_services_lab.py's traces to the same Services leave TIME_WAIT entries (120 s); the role's
    # conntrack read lists those too when it has no probe source port to pick with (seen 2026-12-07),
    # so each module starts from the nodes' empty tables, as after a fresh lab
    for node in ("node-a", "node-b"):
        labctl.exec_in_node(node, ["conntrack", "-F"], check=True)
    yield listed
    labctl.fault_clear()
    labctl.services_down()


def test_nft_mode_has_no_iptables_kube_proxy_chain(nft_services):
    # as on a real nft-mode node: route_info must find the Services in the nft table alone
    saved = labctl.exec_in_node("node-a", ["iptables-save"]).stdout
    assert "KUBE-" not in saved
    listed = labctl.exec_in_node("node-a", ["nft", "list", "table", "ip", "kube-proxy"]).stdout
    assert "chain %s {" % SEED_SERVICE_CHAIN in listed and "chain %s {" % SEED_ENDPOINT_CHAIN in listed


def test_nft_clusterip_with_a_remote_backend_is_healthy_and_names_it(nft_services, tmp_path):
    rc, out, report = trace(tmp_path, *args(SEED_SVC))
    assert rc == 0, out[-3000:]
    assert_seed_service(report, "nft")
    # the path says where the translation was read: nft mode, not iptables
    assert report["path"]["lines"][1].startswith(
        "dst 10.96.10.20:443: Service openshift-ingress/router-internal-default in node-a's kube-proxy rules (nft), "
        "backend 172.17.25.239:443 on node-b")
    assert node_leftovers() == {}


def test_nft_two_endpoints_the_captures_tell_the_chosen_backend(nft_services, tmp_path):
    rc, out, report = trace(tmp_path, *args(WEB_SVC))
    assert rc == 0, out[-3000:]
    assert_two_endpoints(report, "nft")


def test_nft_service_without_endpoints_is_kube_proxys_reject_chain(nft_services, tmp_path):
    rc, out, report = trace(tmp_path, *args(EMPTY_SVC))
    assert rc == 2, out[-3000:]
    assert report["verdict"] == ("Service default/empty (10.96.10.40:443) has no endpoints: kube-proxy's nft map "
                                 "no-endpoint-services -> reject-chain on node-a answered (ICMP port unreachable)")
    rejected = '10.96.10.40 . tcp . 443 comment "default/empty:https" : goto reject-chain (map no-endpoint-services)'
    assert report["service"]["rejected"] == rejected
    # kube-proxy's nft rules have no counters: the table's element says who sent the ICMP error
    assert report["why"] == ("node-a (10.240.128.12) answered the request with ICMP port unreachable (type 3 code 3, first seen "
                             "on node-a %s); node-a's kube-proxy nft table sends it: %s, in table ip kube-proxy (its rules keep "
                             "no counters)" % (SRC_VETH, rejected))
    _keep(report, "lab-service-nft-no-endpoints.json")
    assert report["healthy"] is False
    assert report["service"]["backend"] is None and report["service"]["endpoints"] == []
    # the reject leaves no conntrack entry: nothing is said about it
    assert report["service"].get("conntrack") is None and not [n for n in report["notes"] if "conntrack" in n]
    assert hop_rows(report)[0] == ("request", 1, "node-a", SRC_VETH, "seen")


def test_nft_nodeport_of_another_node_is_dnated_and_masqueraded_there(nft_services, tmp_path):
    rc, out, report = trace(tmp_path, *args(NODE_B, 30443))
    assert rc == 0, out[-3000:]
    assert_nodeport(report, "nft")


def test_nft_clusterip_port_no_service_has_is_rejected_by_cluster_ips_check(nft_services, tmp_path):
    # nft mode only (Kubernetes 1.31+): a ClusterIP's other ports are rejected by the chain cluster-ips-check
    rc, out, report = trace(tmp_path, *args(SEED_SVC, 80))
    assert rc == 2, out[-3000:]
    assert report["verdict"] == ("10.96.10.20 is a ClusterIP but port 80 is none of its Service's ports: kube-proxy's nft "
                                 "chain cluster-ips-check on node-a answered (ICMP port unreachable)")
    rejected = 'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs" (chain cluster-ips-check)'
    assert (report["service"]["name"], report["service"]["rejected"], report["service"]["endpoints"]) == (None, rejected, [])
    assert report["why"].endswith("; node-a's kube-proxy nft table sends it: %s, in table ip kube-proxy (its rules keep "
                                  "no counters)" % rejected), report["why"]
    assert report["path"]["lines"][1] == ("dst 10.96.10.20:80: no Service in node-a's kube-proxy rules (nft), refused by "
                                          + rejected)
