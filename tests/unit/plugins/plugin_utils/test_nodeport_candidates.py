"""A NodePort with several endpoints (externalTrafficPolicy Cluster): kube-proxy on the node addressed picks
one per connection, so every endpoint is a candidate with its own path - here worker-b's own pod and
worker-a's second pod (back to the source's node) - and the captures tell which it took (hosting.py,
trace_plan, services.merge_candidates, analysis._analyze_candidates).

Rules: the lab node's real iptables-save (tests/unit/fixtures/services) with a second endpoint
172.17.25.66:443 (worker-a's second pod) for default/web-nodeport, as kube-proxy writes two; routes: the
seed article's two nodes."""
import _synth
import pytest
import test_nodeport_hairpin as hairpin
from test_hosting import INVENTORY
from test_services import LAB, flow

from ansible_collections.hoptrace.k8s.plugins.filter.trace_plan import trace_plan
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import PathError, describe, trace_path

SEP = "-A KUBE-SVC-OBTREKPB7UR4IIGU -m comment --comment \"default/web-nodeport:https -> 172.17.25.193:443\" -j KUBE-SEP-ZIG3EPOSSQEQ7FYE"
TWO = LAB.replace(SEP, SEP.replace(" -j ", " -m statistic --mode random --probability 0.50000000000 -j ") + "\n" +
                  SEP.replace("ZIG3EPOSSQEQ7FYE", "WEB2WEB2WEB2WEB2").replace("172.17.25.193", "172.17.25.66"))
TWO = TWO.replace(":KUBE-SEP-ZIG3EPOSSQEQ7FYE - [0:0]", ":KUBE-SEP-ZIG3EPOSSQEQ7FYE - [0:0]\n:KUBE-SEP-WEB2WEB2WEB2WEB2 - [0:0]\n"
                  "-A KUBE-SEP-WEB2WEB2WEB2WEB2 -p tcp -m tcp -j DNAT --to-destination 172.17.25.66:443")
B_VETH = "cali77a38a64072"


def _nodes():
    nodes = hairpin._nodes()
    nodes["worker-a"]["service_rules"] = {"source": "iptables-save", "text": sr.trim(TWO)}
    return nodes


def _plan():
    nodes = _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    return path, trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])


def test_path_of_a_nodeport_with_two_endpoints_holds_both_and_reads_the_node_addressed():
    assert SEP in LAB
    path, _plan_ = _plan()
    assert (path["hosts"], path["read"], path["deferred"]) == (["worker-a", "worker-b"], ["worker-b"], [])
    svc = path["service"]
    assert (svc["kind"], svc["dnat_on"], svc["backend"]) == ("nodeport", "worker-b", None)
    assert [(e["ip"], e["host"]) for e in svc["endpoints"]] == [("172.17.25.193", "worker-b"), ("172.17.25.66", "worker-a")]
    assert describe(path)[1] == ("dst 10.240.0.9:30443: Service default/web-nodeport in worker-a's kube-proxy rules (iptables), "
                                 "NodePort of worker-b, endpoints 172.17.25.193:443 there, 172.17.25.66:443 on worker-a")


def test_plan_has_one_candidate_per_endpoint_each_its_own_nodeport_path():
    _path, plan = _plan()
    one, back = plan["candidates"]
    assert [(h["direction"], h["node"], h["interface"]) for h in one["hops"]] == [
        ("request", "worker-a", hairpin.A_VETH), ("request", "worker-a", "eth0"), ("request", "worker-b", "eth0"),
        ("request", "worker-b", B_VETH), ("response", "worker-b", B_VETH), ("response", "worker-b", "tunl0"),
        ("response", "worker-b", "eth0"), ("response", "worker-a", "eth0"), ("response", "worker-a", "tunl0"),
        ("response", "worker-a", hairpin.A_VETH)]
    assert [(h["direction"], h["node"], h["interface"], h["role"], h["encap"], bool(h.get("after_dnat"))) for h in back["hops"]] == \
        hairpin.HOPS
    assert (one["dst_node"], back["dst_node"]) == ("worker-b", "worker-a")
    # the armed captures: every device of either path once, without a candidate's rewrite; each candidate keeps its own
    assert [c["key"] for c in plan["captures"]] == ["worker-a/" + hairpin.A_VETH, "worker-a/eth0", "worker-b/eth0", "worker-b/" + B_VETH,
                                                    "worker-b/tunl0", "worker-a/tunl0", "worker-a/" + hairpin.BACK_VETH]
    assert not any(c.get("unsnat") for c in plan["captures"])
    assert {c["key"]: c["unsnat"]["backend"] for c in back["captures"] if c.get("unsnat")} == {
        "worker-a/eth0": "172.17.25.66", "worker-b/eth0": "172.17.25.66", "worker-b/tunl0": "172.17.25.66",
        "worker-a/tunl0": "172.17.25.66", "worker-a/" + hairpin.BACK_VETH: "172.17.25.66"}
    assert plan["service"]["line"] == ("NodePort 10.240.0.9:30443 (default/web-nodeport) -> one of 2 endpoints (172.17.25.193:443, "
                                       "172.17.25.66:443), chosen per connection by kube-proxy's DNAT on worker-b")


def test_the_captures_tell_kube_proxy_sent_the_flow_back_to_the_source_node(tmp_path):
    # the packets took the path back to worker-a's second pod; worker-b's own pod's veth saw nothing
    _path, plan = _plan()
    _single, captures = hairpin._trace(tmp_path)
    empty = str(tmp_path / "empty.pcap")
    _synth.write_pcap(empty, [], 1)
    captures.append({"key": "worker-b/" + B_VETH, "node": "worker-b", "interface": B_VETH, "file": empty, "status": "ok",
                     "error": None, "captured": 0, "received": 0, "dropped": 0})
    rep = analysis.analyze(plan, captures)
    assert [(h["direction"], h["node"], h["interface"], h["status"]) for h in rep["hops"]] == [
        (d, n, i, "seen") for d, n, i, _r, _e, _a in hairpin.HOPS]
    assert rep["service"]["chosen_by"] == "the captures: its hops saw the flow after the DNAT, those of 172.17.25.193:443 did not"
    assert rep["service"]["backend"] == {"ip": "172.17.25.66", "port": 443, "node": "worker-a", "pod": None}
    assert rep["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30443 was DNATed by kube-proxy on worker-b "
                              "to 172.17.25.66:443 on worker-a (the source pod's own node)")


def test_a_nodeport_without_endpoints_is_refused():
    none = LAB.replace(SEP + "\n", "")
    assert none != LAB
    with pytest.raises(PathError, match=r"^NodePort 10.240.0.9:30443 \(default/web-nodeport\) has no endpoints; tracing a NodePort "
                                        r"follows its endpoints: trace the endpoint itself"):
        trace_path("worker-a", dict(_nodes()["worker-a"], service_rules={"text": none}), flow("10.240.0.9", 30443), INVENTORY)


def test_a_nodeport_with_more_than_four_endpoints_is_refused():
    lines, chains = [], []
    for i in range(5):
        chain = "KUBE-SEP-FIVE%012d" % i
        chains.append(":%s - [0:0]" % chain)
        # kube-proxy's random pick: 1/5, 1/4, 1/3, 1/2, then the last endpoint
        stat = " -m statistic --mode random --probability %.11f -j " % (1.0 / (5 - i)) if i < 4 else " -j "
        lines.append(SEP.replace("KUBE-SEP-ZIG3EPOSSQEQ7FYE", chain).replace("172.17.25.193", "172.17.25.%d" % (194 + i))
                     .replace(" -j ", stat))
        lines.append("-A %s -p tcp -m tcp -j DNAT --to-destination 172.17.25.%d:443" % (chain, 194 + i))
    five = LAB.replace(SEP, "\n".join(lines)).replace(":KUBE-SEP-ZIG3EPOSSQEQ7FYE - [0:0]", "\n".join(chains))
    with pytest.raises(PathError, match=r"^Service default/web-nodeport \(10.240.0.9:30443\) has 5 endpoints \(172.17.25.194:443, "
                                        r"172.17.25.195:443, 172.17.25.196:443, 172.17.25.197:443, \.\.\.\); kube-proxy's DNAT on the "
                                        r"node addressed picks one at random per connection and a trace captures on the nodes of at "
                                        r"most 4 candidates"):
        trace_path("worker-a", dict(_nodes()["worker-a"], service_rules={"text": five}), flow("10.240.0.9", 30443), INVENTORY)


def test_two_endpoints_on_the_node_addressed_read_it_before_planning():
    # each candidate keeps its own captures: none is left to a node resolving its devices when they start
    nodes = _nodes()
    nodes["worker-a"]["service_rules"] = {"source": "iptables-save", "text": sr.trim(TWO.replace("172.17.25.66", "172.17.25.239"))}
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    assert (path["hosts"], path["read"], path["deferred"]) == (["worker-a", "worker-b"], ["worker-b"], [])
    plan = trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])
    assert [[h["interface"] for h in c["hops"] if h["node"] == "worker-b" and h["role"] == "dst-veth"] for c in plan["candidates"]] == [
        [B_VETH, B_VETH], ["calic25e805a467", "calic25e805a467"]]
