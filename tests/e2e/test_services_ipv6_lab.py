"""Traces to IPv6 Services on the dual-stack lab (`lab.py up --ipv6`): kube-proxy-shaped dual-stack Services
(tests/lab/kubeproxy.py, kubeproxy_nft.py: one ruleset per family, the IPv6 one in ip6tables or in `table ip6
kube-proxy`) on every node, real kernel IPv6 DNAT and REJECT, vxlan-v6.calico, the real playbook over SSH.

One lab shape (vxlan, 2 nodes, dual-stack) for the whole module; iptables mode, then nftables mode.
"""
import os

import pytest
from test_ipv6_lab import SRC6, VXLAN6, _rows
from test_services_lab import A2_VETH, B2_VETH
from test_trace import SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SEED_SVC6 = "fd00:10:96::14"      # openshift-ingress/router-internal-default:https -> [fd00:10:244::af]:443 (node-b)
WEB_SVC6 = "fd00:10:96::1e"       # default/web:https -> [fd00:10:244::42]:443 (node-a), [fd00:10:244::81]:443 (node-b)
EMPTY_SVC6 = "fd00:10:96::28"     # default/empty:https, no endpoints
BACKEND6 = "fd00:10:244::af"
SEED_LINE = ("Service [fd00:10:96::14]:443 (openshift-ingress/router-internal-default) -> backend [fd00:10:244::af]:443 "
             "(on node-b), chosen by kube-proxy's DNAT on node-a")


def args(dst, port=443):
    return ["-e", "src=%s" % SRC6, "-e", "dst=%s" % dst, "-e", "dport=%d" % port]


def dual_stack_lab(lab_factory):
    """The dual-stack vxlan 2-node lab of a module's Service traces; its faults and Services removed after."""
    st = lab_factory("vxlan", 2, ipv6=True)
    yield st
    labctl.fault_clear()
    labctl.services_down()


@pytest.fixture(scope="module")
def lab6(lab_factory):
    yield from dual_stack_lab(lab_factory)


def services(mode):
    """kube-proxy's rules of ``mode`` on every node (the other mode's removed), from empty conntrack tables:
    an earlier trace's TIME_WAIT entry to the same Service would be listed too."""
    listed = labctl.services_up(mode)
    for node in ("node-a", "node-b"):
        labctl.exec_in_node(node, ["conntrack", "-F"], check=True)
        labctl.exec_in_node(node, ["conntrack", "-F", "-f", "ipv6"], check=True)
    return listed


def test_the_lab_services_are_dual_stack(lab6):
    listed = {s["name"]: s for s in services("iptables")}
    seed = listed["openshift-ingress/router-internal-default"]
    assert (seed["cluster_ip"], seed["cluster_ip6"], seed["endpoints6"]) == ("10.96.10.20", SEED_SVC6, ["[%s]:443" % BACKEND6])
    saved = labctl.exec_in_node("node-a", ["ip6tables-save", "-t", "nat"], check=True).stdout
    assert ("-A KUBE-SEP-BM6BBDMQJ2VFHN2F -p tcp -m comment --comment \"openshift-ingress/router-internal-default:https\" -m tcp "
            "-j DNAT --to-destination [fd00:10:244::af]:443") in saved.splitlines()


def assert_seed_service6(report, out, mode, run_dir):
    assert hop_rows(report) == _rows(VXLAN6)
    assert (report["verdict"], report["healthy"], report["encap"]) == ("every hop saw the request and the response", True, "vxlan")
    svc = report["service"]
    assert svc["line"] == SEED_LINE
    assert svc["backend"] == {"ip": BACKEND6, "port": 443, "node": "node-b", "pod": None}
    assert (svc["endpoints"], svc["kind"], svc["mode"], svc["chosen_by"]) == (
        ["[%s]:443" % BACKEND6], "clusterip", mode, "the Service's only endpoint")
    assert report["run"]["dst"] == BACKEND6
    assert report["path"]["lines"][1].startswith(
        "dst [fd00:10:96::14]:443: Service openshift-ingress/router-internal-default in node-a's kube-proxy rules (%s), "
        "backend [fd00:10:244::af]:443 on node-b" % mode)
    title = "hoptrace: tcp fd00:10:244::4f -> [fd00:10:96::14]:443 -> [fd00:10:244::af]:443 (vxlan, node-a -> node-b)"
    assert title[:79] in out           # the callback's table title, cut at 80 columns
    md = next(run_dir.glob("*/report.md")).read_text()
    assert md.startswith("# " + title.replace("hoptrace:", "hoptrace trace:") + "\n")
    # the source veth saw the Service address, the hops after the DNAT the backend's
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop


def test_ipv6_clusterip_with_a_remote_backend_is_healthy_and_names_it(lab6, tmp_path):
    services("iptables")
    rc, out, report = trace(tmp_path, *args(SEED_SVC6))
    assert rc == 0, out[-3000:]
    assert_seed_service6(report, out, "iptables", tmp_path)
    assert "service: " + SEED_LINE in " ".join(out.split())
    assert node_leftovers() == {}


def assert_two_endpoints6(report, mode):
    backend = report["service"]["backend"]
    other = {"fd00:10:244::42": "[fd00:10:244::81]:443", "fd00:10:244::81": "[fd00:10:244::42]:443"}[backend["ip"]]
    if backend["ip"] == "fd00:10:244::42":       # node-a's own pod: veth to veth after the DNAT
        assert backend["node"] == "node-a"
        assert hop_rows(report) == [("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", A2_VETH, "seen"),
                                    ("response", 1, "node-a", A2_VETH, "seen"), ("response", 2, "node-a", SRC_VETH, "seen")]
    else:
        assert backend["node"] == "node-b"
        assert hop_rows(report) == _rows(VXLAN6[:-1] + [B2_VETH])
    # node-a's IPv6 conntrack entry of the probe's connection names the backend; the captures agree
    ct = report["service"]["conntrack"]
    assert (ct["node"], len(ct["entries"])) == ("node-a", 1)
    assert ct["by"] == "conntrack -L -f ipv6 -p tcp --orig-src %s --orig-dst %s --dport 443" % (SRC6, WEB_SVC6)
    sport = ct["entries"][0]["orig"]["sport"]
    assert report["service"]["chosen_by"] == (
        "conntrack on node-a: [%s]:%d -> [%s]:443 was DNATed to [%s]:443; the captures agree: its hops saw the flow after the "
        "DNAT, those of %s did not" % (SRC6, sport, WEB_SVC6, backend["ip"], other))
    assert report["service"]["endpoints"] == ["[fd00:10:244::42]:443", "[fd00:10:244::81]:443"]
    assert (report["service"]["mode"], report["healthy"]) == (mode, True)


def test_ipv6_two_endpoints_conntrack_names_the_chosen_backend(lab6, tmp_path):
    services("iptables")
    rc, out, report = trace(tmp_path, *args(WEB_SVC6))
    assert rc == 0, out[-3000:]
    assert_two_endpoints6(report, "iptables")


def test_ipv6_service_without_endpoints_is_kube_proxys_icmp6_reject(lab6, tmp_path):
    services("iptables")
    rc, out, report = trace(tmp_path, *args(EMPTY_SVC6))
    assert rc == 2, out[-3000:]
    assert report["verdict"] == ("Service default/empty ([fd00:10:96::28]:443) has no endpoints: kube-proxy's REJECT rule on node-a "
                                 "answered (ICMPv6 port unreachable)")
    assert report["healthy"] is False
    assert report["service"]["backend"] is None and report["service"]["endpoints"] == []
    assert report["service"]["rejected"] == (
        '-A KUBE-SERVICES -d fd00:10:96::28/128 -p tcp -m comment --comment "default/empty:https has no endpoints" -m tcp '
        "--dport 443 -j REJECT --reject-with icmp6-port-unreachable")
    assert "node-a's ip6tables filter KUBE-SERVICES rule 1 sent it" in report["why"]
    assert hop_rows(report)[0] == ("request", 1, "node-a", SRC_VETH, "seen")


def test_nft_ipv6_clusterip_with_a_remote_backend_is_healthy(lab6, tmp_path):
    services("nft")
    assert "KUBE-" not in labctl.exec_in_node("node-a", ["ip6tables-save"], check=True).stdout
    rc, out, report = trace(tmp_path, *args(SEED_SVC6))
    assert rc == 0, out[-3000:]
    assert_seed_service6(report, out, "nft", tmp_path)


def test_nft_ipv6_service_without_endpoints_is_the_reject_chain(lab6, tmp_path):
    services("nft")
    rc, out, report = trace(tmp_path, *args(EMPTY_SVC6))
    assert rc == 2, out[-3000:]
    assert report["verdict"] == (
        "Service default/empty ([fd00:10:96::28]:443) has no endpoints: kube-proxy's nft map no-endpoint-services -> reject-chain "
        "on node-a answered (ICMPv6 port unreachable)")
    assert report["service"]["rejected"] == (
        'fd00:10:96::28 . tcp . 443 comment "default/empty:https" : goto reject-chain (map no-endpoint-services)')


def test_a_dual_stack_service_by_name_from_an_ipv6_pod_is_its_ipv6_clusterip(lab6, tmp_path, standin_kubectl):
    # the stand-in kubectl serves the lab's Services dual-stack (clusterIPs: [10.96.10.20, fd00:10:96::14]);
    # the IPv6 source picks the IPv6 ClusterIP
    services("iptables")
    env, state = standin_kubectl
    rc, out, report = trace(tmp_path, "-e", "src=%s" % SRC6, "-e", "dst=svc/openshift-ingress/router-internal-default", env=env)
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == _rows(VXLAN6)
    svc = report["service"]
    assert (svc["address"], svc["port"], svc["backend"]["ip"], svc["backend"]["node"]) == (SEED_SVC6, 443, BACKEND6, "node-b")
    assert svc["requested"] == {"name": "svc/openshift-ingress/router-internal-default", "port_name": "https", "via": "kubectl"}
    assert svc["line"].startswith("Service [fd00:10:96::14]:443 (openshift-ingress/router-internal-default, by name through "
                                  "kubectl) -> backend [fd00:10:244::af]:443 (")
