"""A NodePort whose one endpoint is a pod of the source pod's own node (externalTrafficPolicy Cluster):
the node addressed DNATs and masquerades the request back to the source's node, so that node's NIC and
tunnel see the flow both before and after the DNAT. The path (hosting.py), the plan (services.py) and the
analysis that splits those captures (analysis.py, unsnat.py).

Rules: the lab node's real iptables-save (tests/unit/fixtures/services) with default/web-nodeport's
endpoint moved to worker-a's second pod 172.17.25.66; routes: the seed article's two nodes."""

from test_hosting import INVENTORY, entry
from test_nodeport_remote import _ipip, _plain
from test_nodeport_remote import _trace as _remote_trace
from test_plan import SEED_A, SEED_B
from test_services import LAB, SRC, flow

from ansible_collections.hoptrace.k8s.plugins.filter.trace_plan import trace_plan
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import describe, trace_path

NODE_IP = {"worker-a": "10.240.128.12", "worker-b": "10.240.0.9"}
BACKEND, MASQ, A_VETH, BACK_VETH = "172.17.25.66", "172.17.25.192", "cali41f14107a8d", "calib1a96c2cc82"
RULES = LAB.replace("172.17.25.193:443", BACKEND + ":443").replace("172.17.25.193/32", BACKEND + "/32")
TUNNELS = [{"ifname": "eth0", "kind": "physical"}, {"ifname": "tunl0", "kind": "ipip"}]


def _addresses(node_ip, tunnel_ip):
    return [{"ifname": "eth0", "family": "inet", "local": node_ip, "prefixlen": 24, "scope": "global"},
            {"ifname": "tunl0", "family": "inet", "local": tunnel_ip, "prefixlen": 32, "scope": "global"}]


def _nodes():
    a = entry(routes=SEED_A, service_rules={"source": "iptables-save", "text": sr.trim(RULES)},
              workloads=[{"ip": SRC, "dev": A_VETH}, {"ip": BACKEND, "dev": BACK_VETH}],
              addresses=_addresses("10.240.128.12", "172.17.25.64"))
    b = {"routes": parse_ip_route(SEED_B + "172.17.25.193 dev cali77a38a64072 scope link\n"),
         "links": TUNNELS, "node_ips": ["10.240.0.9"], "local_blocks": ["172.17.25.192/26"],
         "addresses": _addresses("10.240.0.9", MASQ),
         "workloads": [{"ip": "172.17.25.239", "dev": "calic25e805a467"}, {"ip": "172.17.25.193", "dev": "cali77a38a64072"}]}
    return {"worker-a": a, "worker-b": b}


def _plan(nodes=None):
    nodes = nodes or _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    return path, trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])


def test_path_of_a_nodeport_whose_endpoint_is_on_the_source_node():
    path, _plan_ = _plan()
    assert path["hosts"] == ["worker-a", "worker-b"]
    assert path["node_ips"] == NODE_IP
    # the NodePort's node is read before planning (the masquerade address is its own, its route to the backend)
    assert (path["read"], path["deferred"]) == (["worker-b"], [])
    svc = path["service"]
    assert (svc["kind"], svc["dnat_on"], svc["backend"]["ip"], svc["backend"]["port"], svc["backend"]["host"]) == (
        "nodeport", "worker-b", BACKEND, 443, "worker-a")
    assert describe(path)[1] == ("dst 10.240.0.9:30443: Service default/web-nodeport in worker-a's kube-proxy rules (iptables), "
                                 "NodePort of worker-b, backend 172.17.25.66:443 on worker-a")
    assert path["dst"]["found_by"] == (
        "the NodePort's node worker-b (10.240.0.9); backend 172.17.25.66:443 on worker-a (the entry node's route "
        "172.17.25.66 dev calib1a96c2cc82)")


HOPS = [
    ("request", "worker-a", A_VETH, "src-veth", "none", False), ("request", "worker-a", "eth0", "underlay-out", "none", False),
    ("request", "worker-b", "eth0", "underlay-in", "none", False), ("request", "worker-b", "tunl0", "tunnel-out", "none", True),
    ("request", "worker-b", "eth0", "underlay-out", "ipip", True), ("request", "worker-a", "eth0", "underlay-in", "ipip", True),
    ("request", "worker-a", "tunl0", "tunnel-in", "none", True), ("request", "worker-a", BACK_VETH, "dst-veth", "none", True),
    ("response", "worker-a", BACK_VETH, "dst-veth", "none", True), ("response", "worker-a", "tunl0", "tunnel-out", "none", True),
    ("response", "worker-a", "eth0", "underlay-out", "ipip", True), ("response", "worker-b", "eth0", "underlay-in", "ipip", True),
    ("response", "worker-b", "tunl0", "tunnel-in", "none", True), ("response", "worker-b", "tunl0", "tunnel-out", "none", False),
    ("response", "worker-b", "eth0", "underlay-out", "ipip", False), ("response", "worker-a", "eth0", "underlay-in", "ipip", False),
    ("response", "worker-a", "tunl0", "tunnel-in", "none", False), ("response", "worker-a", A_VETH, "src-veth", "none", False)]


def test_plan_goes_to_the_node_addressed_and_back_to_the_backend_on_the_source_node():
    _path, plan = _plan()
    assert [(h["direction"], h["node"], h["interface"], h["role"], h["encap"], bool(h.get("after_dnat"))) for h in plan["hops"]] == HOPS
    assert (plan["src_node"], plan["dst_node"], plan["encap"], plan["response_encap"], plan["warnings"]) == (
        "worker-a", "worker-a", "ipip", "ipip", [])
    caps = {c["key"]: c for c in plan["captures"]}
    assert list(caps) == ["worker-a/" + A_VETH, "worker-a/eth0", "worker-b/eth0", "worker-b/tunl0", "worker-a/tunl0",
                          "worker-a/" + BACK_VETH]
    before, after = (SRC, "10.240.0.9", 30443), (MASQ, BACKEND, 443)
    # worker-a's NIC: the plain request to worker-b, IPIP to and from worker-b after its masquerade (worker-b's
    # tunl0 address), the un-DNATed answer in IPIP from worker-b; worker-b's NIC the same toward worker-a
    assert caps["worker-a/eth0"]["filter"] == "(%s) or (%s) or (%s)" % (
        _plain(*before), _ipip("10.240.0.9", *after), _ipip("10.240.0.9", *before))
    assert caps["worker-b/eth0"]["filter"] == "(%s) or (%s) or (%s)" % (
        _plain(*before), _ipip("10.240.128.12", *after), _ipip("10.240.128.12", *before))
    assert caps["worker-a/eth0"]["encap"] == caps["worker-b/eth0"]["encap"] == "mixed"
    assert caps["worker-a/tunl0"]["filter"] == caps["worker-b/tunl0"]["filter"] == "(%s) or (%s)" % (_plain(*after), _plain(*before))
    assert caps["worker-a/" + BACK_VETH]["filter"] == _plain(*after)
    assert caps["worker-a/" + A_VETH]["filter"] == _plain(*before)
    unsnat = {"pod": SRC, "node_ip": "10.240.0.9", "node_port": 30443, "backend": BACKEND, "backend_port": 443}
    assert {k: c.get("unsnat") for k, c in caps.items()} == {
        "worker-a/" + A_VETH: None, "worker-a/eth0": unsnat, "worker-b/eth0": unsnat, "worker-b/tunl0": unsnat,
        "worker-a/tunl0": unsnat, "worker-a/" + BACK_VETH: unsnat}
    assert plan["service"]["line"] == ("NodePort 10.240.0.9:30443 (default/web-nodeport) -> backend 172.17.25.66:443 (on worker-a), "
                                       "chosen by kube-proxy's DNAT on worker-b (masquerading the source)")
    assert (plan["service"]["dnat_on"], plan["service"]["backend"]["node"]) == ("worker-b", "worker-a")


# --------------------------------------------------------------------------------------------- analysis

def _trace(tmp_path, drop=None):
    """Captures of the healthy flow on every hop of the hairpin plan (test_nodeport_remote's synthesis)."""
    return _remote_trace(tmp_path, drop, plan=_plan()[1], backend=BACKEND)


def test_analysis_sees_every_hop_of_a_healthy_flow_and_names_the_backend_on_the_source_node(tmp_path):
    plan, captures = _trace(tmp_path)
    rep = analysis.analyze(plan, captures)
    assert [(h["direction"], h["node"], h["interface"], h["status"], h["packets"]) for h in rep["hops"]] == [
        (d, n, i, "seen", 4 if d == "request" else 3) for d, n, i, _r, _e, _a in HOPS]
    assert rep["healthy"] is True
    assert rep["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30443 was DNATed by kube-proxy on worker-b "
                              "to 172.17.25.66:443 on worker-a (the source pod's own node)")
    # worker-a's and worker-b's NICs and tunnels are one capture each again in the report, with the files as captured
    caps = {c["key"]: c for c in rep["captures"]}
    assert list(caps) == [c["key"] for c in plan["captures"]]
    assert (caps["worker-a/eth0"]["records"], caps["worker-a/eth0"]["matched"], caps["worker-a/eth0"]["other"]) == (4 + 4 + 3 + 3, 14, 0)
    assert (caps["worker-b/eth0"]["records"], caps["worker-b/eth0"]["matched"]) == (14, 14)
    assert caps["worker-a/tunl0"]["matched"] == caps["worker-b/tunl0"]["matched"] == 4 + 3 + 3
    assert caps["worker-a/eth0"]["file"] == str(tmp_path / "worker-a_eth0.pcap")
    assert {h["capture"] for h in rep["hops"]} == set(caps)


def test_analysis_localises_a_drop_on_the_way_back_into_the_source_node(tmp_path):
    # worker-b sends the DNATed request back to worker-a in IPIP, worker-a's NIC receives it and its tunnel
    # never decapsulates it: the stop is worker-a tunl0, though that NIC also sent the request out before
    plan, captures = _trace(tmp_path, drop=("request", 7))
    rep = analysis.analyze(plan, captures)
    rows = [(h["direction"], h["index"], h["node"], h["interface"], h["status"]) for h in rep["hops"]]
    assert rows[:8] == [("request", 1, "worker-a", A_VETH, "seen"), ("request", 2, "worker-a", "eth0", "seen"),
                        ("request", 3, "worker-b", "eth0", "seen"), ("request", 4, "worker-b", "tunl0", "seen"),
                        ("request", 5, "worker-b", "eth0", "seen"), ("request", 6, "worker-a", "eth0", "seen"),
                        ("request", 7, "worker-a", "tunl0", "LOST"), ("request", 8, "worker-a", BACK_VETH, "LOST")]
    assert rep["verdict"].startswith(
        "10.240.0.9:30443 was DNATed by kube-proxy on worker-b to 172.17.25.66:443 on worker-a (the source pod's own node); "
        "request reached worker-a eth0 and was not seen on worker-a tunl0"), rep["verdict"]
    assert rep["directions"]["request"]["stopped_at"] == "worker-a tunl0"


def test_analysis_localises_a_drop_before_the_dnat_on_the_source_nodes_nic(tmp_path):
    # nothing leaves worker-a's NIC: its capture holds no packet of either half, the stop is worker-a eth0
    plan, captures = _trace(tmp_path, drop=("request", 2))
    rep = analysis.analyze(plan, captures)
    rows = [(h["index"], h["status"]) for h in rep["hops"] if h["direction"] == "request"]
    assert rows == [(1, "seen")] + [(i, "LOST") for i in range(2, 9)]
    assert rep["directions"]["request"]["stopped_at"] == "worker-a eth0"
