"""Traces to Kubernetes Services on the lab: kube-proxy-shaped nat rules (tests/lab/kubeproxy.py) on
every node, real kernel DNAT/un-DNAT and REJECT, the real playbook over SSH.

One lab shape (ipip, 2 nodes) with the lab's Services for the whole module; six traces.
"""
import json
import os

import pytest
from test_trace import SRC, SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SEED_SVC = "10.96.10.20"          # openshift-ingress/router-internal-default:https -> 172.17.25.239:443 (node-b)
WEB_SVC = "10.96.10.30"           # default/web:https -> 172.17.25.66:443 (node-a), 172.17.25.193:443 (node-b)
EMPTY_SVC = "10.96.10.40"         # default/empty:https, no endpoints
NODE_B = "10.240.0.9"             # default/web-nodeport:https, nodePort 30443 -> 172.17.25.193:443 (node-b)
B_VETH, B2_VETH, A2_VETH = "calic25e805a467", "cali77a38a64072", "cali2a1ec19d610"
REMOTE = [("node-a", SRC_VETH), ("node-a", "tunl0"), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0")]


def _keep(report, name):
    """HOPTRACE_KEEP_REPORTS=DIR: write the report there (the unit tests' fixtures come from these runs)."""
    where = os.environ.get("HOPTRACE_KEEP_REPORTS")
    if where:
        with open(os.path.join(where, name), "w") as handle:
            json.dump(report, handle, indent=1, sort_keys=True)


NODEPORT_ROWS = [
    ("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", "eth0", "seen"),
    ("request", 3, "node-b", "eth0", "seen"), ("request", 4, "node-b", B2_VETH, "seen"),
    ("response", 1, "node-b", B2_VETH, "seen"), ("response", 2, "node-b", "tunl0", "seen"),
    ("response", 3, "node-b", "eth0", "seen"), ("response", 4, "node-a", "eth0", "seen"),
    ("response", 5, "node-a", "tunl0", "seen"), ("response", 6, "node-a", SRC_VETH, "seen")]


def hop_table(request, response, status="seen"):
    """The rows hop_rows() gives for these (node, interface) paths, every hop with ``status``."""
    return [("request", i + 1, n, iface, status) for i, (n, iface) in enumerate(request)] + \
        [("response", i + 1, n, iface, status) for i, (n, iface) in enumerate(response)]


def remote_rows(dst_veth, status="seen"):
    path = REMOTE + [("node-b", dst_veth)]
    return hop_table(path, path[::-1], status)


def args(dst, port=443):
    return ["-e", "src=%s" % SRC, "-e", "dst=%s" % dst, "-e", "dport=%d" % port]


def services_lab(lab_factory, nodes=2):
    """An ipip lab of ``nodes`` nodes with the lab's Services, for a module's traces; its faults and
    Services removed after."""
    lab_factory("ipip", nodes)
    listed = labctl.services_up()
    yield listed
    labctl.fault_clear()
    labctl.services_down()


@pytest.fixture(scope="module")
def services(lab_factory):
    yield from services_lab(lab_factory)


def test_clusterip_with_a_remote_backend_is_healthy_and_names_it(services, tmp_path):
    rc, out, report = trace(tmp_path, *args(SEED_SVC))
    assert rc == 0, out[-3000:]
    svc = assert_seed_service(report, "iptables")
    title = "hoptrace: tcp 172.17.25.79 -> 10.96.10.20:443 -> 172.17.25.239:443 (ipip, node-a -> node-b)"
    assert title[:79] in out
    _keep(report, "lab-service-clusterip.json")
    md = next(tmp_path.glob("*/report.md")).read_text()
    assert md.startswith("# " + title.replace("hoptrace:", "hoptrace trace:"))
    assert "Service 10.96.10.20:443 (openshift-ingress/router-internal-default) -> backend" in md
    # the callback's service line (wrapped at 80 columns)
    assert "service: " + svc["line"] in " ".join(out.split())
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop
    # node-a's iptables-save answered within its 2 s bound: no note about kube-proxy's rules, in the path or the report
    assert report["path"]["notes"] == [] and not [n for n in report["notes"] if n.startswith("kube-proxy's")]
    assert node_leftovers() == {}


def test_two_endpoints_the_captures_tell_the_chosen_backend(services, tmp_path):
    rc, out, report = trace(tmp_path, *args(WEB_SVC))
    assert rc == 0, out[-3000:]
    assert_two_endpoints(report, "iptables")
    _keep(report, "lab-service-two-endpoints.json")
    # at once again: the first probe's connection is still in node-a's conntrack (TIME_WAIT, 120 s);
    # the probe's own source port picks the second's entry alone
    rc, out, again = trace(tmp_path / "again", *args(WEB_SVC))
    assert rc == 0, out[-3000:]
    assert_two_endpoints(again, "iptables")
    assert again["service"]["conntrack"]["entries"][0]["orig"]["sport"] != report["service"]["conntrack"]["entries"][0]["orig"]["sport"]


def test_service_without_endpoints_is_kube_proxys_reject(services, tmp_path):
    rc, out, report = trace(tmp_path, *args(EMPTY_SVC))
    assert rc == 2, out[-3000:]
    verdict = ("Service default/empty (10.96.10.40:443) has no endpoints: kube-proxy's REJECT rule on node-a "
               "answered (ICMP port unreachable)")
    assert report["verdict"] == verdict
    assert report["healthy"] is False
    _keep(report, "lab-service-no-endpoints.json")
    assert report["service"]["backend"] is None and report["service"]["endpoints"] == []
    assert "default/empty:https has no endpoints" in report["service"]["rejected"]
    assert "node-a's iptables filter KUBE-SERVICES rule 1 sent it" in report["why"]
    # kube-proxy's REJECT leaves no conntrack entry: nothing is said about it
    assert report["service"].get("conntrack") is None and not [n for n in report["notes"] if "conntrack" in n]
    assert hop_rows(report)[0] == ("request", 1, "node-a", SRC_VETH, "seen")


def test_dnat_done_but_backend_unreachable_says_where_it_stopped(services, tmp_path):
    labctl.fault_add("drop", node="node-b", iface="tunl0", direction="in", src=SRC, dst="172.17.25.239", proto="tcp", port=443)
    try:
        rc, out, report = trace(tmp_path, *args(SEED_SVC))
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    assert report["verdict"].startswith(
        "10.96.10.20:443 was DNATed by kube-proxy on node-a to 172.17.25.239:443 on node-b; request reached node-b tunl0 "
        "and was not seen on node-b calic25e805a467"), report["verdict"]


def test_nodeport_of_another_node_is_dnated_and_masqueraded_there(services, tmp_path):
    rc, out, report = trace(tmp_path, *args(NODE_B, 30443))
    assert rc == 0, out[-3000:]
    assert_nodeport(report, "iptables")
    assert [h["encap"] for h in report["hops"] if h["direction"] == "response"] == ["none", "none", "ipip", "ipip", "none", "none"]
    # the report names the capture files as tcpdump wrote them (the un-masqueraded copy was temporary)
    veth = next(c for c in report["captures"] if c["key"] == "node-b/%s" % B2_VETH)
    assert veth["file"].endswith("node-b/%s.pcap" % B2_VETH)
    # every packet of the flow on the backend's veth was matched through the un-masquerade: the capture's
    # matched count is its two hops' packets (request 4, response 1)
    hops = {(h["direction"], h["index"]): h["packets"] for h in report["hops"]}
    assert veth["matched"] == hops[("request", 4)] + hops[("response", 1)] and hops[("request", 4)] >= 3
    _keep(report, "lab-service-nodeport.json")


def test_masqueraded_nodeport_whose_answer_is_lost_says_where_the_backend_answers(services, tmp_path):
    # node-b loses its pod's answer on the way into the tunnel: the request was DNATed and masqueraded,
    # the backend answered node-b's address (conntrack on node-b), and the verdict says so
    labctl.fault_add("drop", node="node-b", iface="tunl0", direction="out", src="172.17.25.193", dst=SRC, proto="tcp", port=443)
    try:
        rc, out, report = trace(tmp_path, *args(NODE_B, 30443))
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    assert report["verdict"].startswith(
        "10.240.0.9:30443 was DNATed by kube-proxy on node-b to 172.17.25.193:443 on node-b and masqueraded to 10.240.0.9 "
        "(the backend answers 10.240.0.9, not the pod); response reached node-b %s and was not seen on node-b tunl0" % B2_VETH), \
        report["verdict"]
    assert report["service"]["snat_to"] == NODE_B


def assert_seed_service(report, mode):
    """The seed Service's trace (kube-proxy in ``mode``): its backend's hops, healthy, the Service named; its ``service``."""
    assert hop_rows(report) == remote_rows(B_VETH)
    assert report["verdict"] == "every hop saw the request and the response"
    svc = report["service"]
    assert svc["line"] == ("Service 10.96.10.20:443 (openshift-ingress/router-internal-default) -> backend "
                           "172.17.25.239:443 (on node-b), chosen by kube-proxy's DNAT on node-a")
    assert svc["backend"] == {"ip": "172.17.25.239", "port": 443, "node": "node-b", "pod": None}
    assert (svc["endpoints"], svc["kind"], svc["mode"], svc["chosen_by"]) == (
        ["172.17.25.239:443"], "clusterip", mode, "the Service's only endpoint")
    # the run is the backend's; the source veth saw the Service address (the title says both)
    assert report["run"]["dst"] == "172.17.25.239"
    return svc


def assert_two_endpoints(report, mode):
    """default/web's trace (kube-proxy in ``mode``): the chosen backend's hops, conntrack and the captures agreeing."""
    backend = report["service"]["backend"]
    other = {"172.17.25.66": "172.17.25.193:443", "172.17.25.193": "172.17.25.66:443"}[backend["ip"]]
    if backend["ip"] == "172.17.25.66":       # node-a's own pod: veth to veth after the DNAT
        assert backend["node"] == "node-a"
        assert hop_rows(report) == [("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", A2_VETH, "seen"),
                                    ("response", 1, "node-a", A2_VETH, "seen"), ("response", 2, "node-a", SRC_VETH, "seen")]
    else:
        assert backend["node"] == "node-b"
        assert hop_rows(report) == remote_rows(B2_VETH)
    # node-a's conntrack entry of the probe's connection (its source port) names the backend, and the
    # captures after the DNAT saw the flow on that backend's hops only
    ct = report["service"]["conntrack"]
    assert (ct["node"], ct["by"], len(ct["entries"])) == (
        "node-a", "conntrack -L -p tcp --orig-src %s --orig-dst %s --dport 443" % (SRC, WEB_SVC), 1)
    sport = ct["entries"][0]["orig"]["sport"]
    assert report["service"]["chosen_by"] == (
        "conntrack on node-a: %s:%d -> %s:443 was DNATed to %s:443; the captures agree: its hops saw the flow after the DNAT, "
        "those of %s did not" % (SRC, sport, WEB_SVC, backend["ip"], other))
    assert report["service"]["snat_to"] is None and not [n for n in report["notes"] if "conntrack" in n]
    assert report["service"]["endpoints"] == ["172.17.25.66:443", "172.17.25.193:443"]
    assert (report["service"]["mode"], report["healthy"]) == (mode, True)


def assert_nodeport(report, mode):
    """default/web-nodeport's trace through node-b's nodePort (kube-proxy in ``mode``); its ``service``."""
    # the request goes to node-b's address on the underlay; node-b DNATs and masquerades it to its pod,
    # whose answer goes back the way node-b routes the source pod: through the IPIP tunnel
    assert hop_rows(report) == NODEPORT_ROWS
    assert report["verdict"] == "every hop saw the request and the response"
    svc = report["service"]
    assert svc["line"] == ("NodePort 10.240.0.9:30443 (default/web-nodeport) -> backend 172.17.25.193:443 (on node-b), "
                           "chosen by kube-proxy's DNAT on node-b (masquerading the source to 10.240.0.9)")
    assert (svc["kind"], svc["masquerade"], svc["dnat_on"], svc["mode"]) == ("nodeport", True, "node-b", mode)
    # node-b's conntrack entry: DNATed to its pod and masqueraded to node-b's own address
    assert svc["snat_to"] == NODE_B
    (entry,) = svc["conntrack"]["entries"]
    (o, r) = entry["orig"], entry["reply"]
    assert (o["src"], o["dst"], o["dport"], r["src"], r["sport"], r["dst"]) == (SRC, NODE_B, 30443, "172.17.25.193", 443, NODE_B)
    assert svc["conntrack"]["text"] == ("conntrack on node-b: %s:%d -> 10.240.0.9:30443 was DNATed to 172.17.25.193:443 and "
                                        "masqueraded to 10.240.0.9:%d" % (SRC, o["sport"], r["dport"]))
    assert ("the connection was masqueraded on node-b: the backend answers 10.240.0.9:%d, not %s:%d (conntrack)"
            % (r["dport"], SRC, o["sport"])) in report["notes"]
    return svc


def test_a_service_by_name_is_traced_as_its_clusterip_and_names_the_backend_pod(services, tmp_path, standin_kubectl):
    # dst by name, no port: the Service's only port; read through the stand-in kubectl (as `kubectl` on PATH)
    env, state = standin_kubectl
    rc, out, report = trace(tmp_path, "-e", "src=%s" % SRC, "-e", "dst=svc/openshift-ingress/router-internal-default", env=env)
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == remote_rows(B_VETH)
    assert report["verdict"] == "every hop saw the request and the response"
    svc = report["service"]
    assert svc["line"] == ("Service 10.96.10.20:443 (openshift-ingress/router-internal-default, by name through kubectl) -> backend "
                           "172.17.25.239:443 (pod openshift-ingress/router-default-77949c967-tgth7 on node-b), chosen by "
                           "kube-proxy's DNAT on node-a")
    assert svc["backend"] == {"ip": "172.17.25.239", "port": 443, "node": "node-b",
                              "pod": "openshift-ingress/router-default-77949c967-tgth7"}
    assert svc["requested"] == {"name": "svc/openshift-ingress/router-internal-default", "port_name": "https", "via": "kubectl"}
    assert "service: " + svc["line"] in " ".join(out.split())
    # one read of the Service before any node, one bounded read of the backend's pod after the probe
    calls = [json.loads(line) for line in (state / "calls.log").read_text().splitlines()]
    assert calls == [
        ["--request-timeout=10s", "get", "services", "--namespace=openshift-ingress",
         "--field-selector=metadata.name=router-internal-default", "--output=json"],
        ["--request-timeout=5s", "get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.239", "--output=json"]]
    assert node_leftovers() == {}
