"""A NodePort whose one endpoint is a pod of a third node (externalTrafficPolicy Cluster): the path
(hosting.py), the plan across the DNAT and masquerade on the node addressed (services.py) and the
analysis that splits that node's captures into the packets before and after it (analysis.py, unsnat.py).

Rules: the lab node's real iptables-save (tests/unit/fixtures/services) with default/web-nodeport's
endpoint moved to worker-c's pod; routes: the seed article's nodes plus worker-c's block."""
import struct

import _synth
import pytest
from ansible.errors import AnsibleFilterError
from test_hosting import INVENTORY, entry
from test_plan import SEED_A, SEED_B
from test_services import LAB, SRC, flow

from ansible_collections.hoptrace.k8s.plugins.filter.trace_plan import trace_plan
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import describe, trace_path

NODE_IP = {"worker-a": "10.240.128.12", "worker-b": "10.240.0.9", "worker-c": "10.240.0.11"}
BACKEND, MASQ, A_VETH, B_VETH, C_VETH = "172.17.26.1", "172.17.25.192", "cali41f14107a8d", "cali77a38a64072", "cali0d3e2f7a9b1"
C_BLOCK_ROUTE = "172.17.26.0/26 via 10.240.0.11 dev tunl0 proto bird onlink\n"
C_ROUTES = """default via 10.240.0.1 dev eth0
10.240.0.0/24 dev eth0 proto kernel scope link src 10.240.0.11
172.17.26.1 dev cali0d3e2f7a9b1 scope link
172.17.25.64/26 via 10.240.128.12 dev tunl0 proto bird onlink
172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink
blackhole 172.17.26.0/26 proto bird
"""
RULES = LAB.replace("172.17.25.193:443", BACKEND + ":443").replace("172.17.25.193/32", BACKEND + "/32")
TUNNELS = [{"ifname": "eth0", "kind": "physical"}, {"ifname": "tunl0", "kind": "ipip"}]


def _addresses(node_ip, tunnel_ip):
    return [{"ifname": "eth0", "family": "inet", "local": node_ip, "prefixlen": 24, "scope": "global"},
            {"ifname": "tunl0", "family": "inet", "local": tunnel_ip, "prefixlen": 32, "scope": "global"}]


def _nodes():
    a = entry(routes=SEED_A + C_BLOCK_ROUTE, service_rules={"source": "iptables-save", "text": sr.trim(RULES)},
              workloads=[{"ip": SRC, "dev": A_VETH}, {"ip": "172.17.25.66", "dev": "calib1a96c2cc82"}],
              addresses=_addresses("10.240.128.12", "172.17.25.64"))
    b = {"routes": parse_ip_route(SEED_B + "172.17.25.193 dev cali77a38a64072 scope link\n" + C_BLOCK_ROUTE),
         "links": TUNNELS, "node_ips": ["10.240.0.9"], "local_blocks": ["172.17.25.192/26"],
         "addresses": _addresses("10.240.0.9", MASQ),
         "workloads": [{"ip": "172.17.25.239", "dev": "calic25e805a467"}, {"ip": "172.17.25.193", "dev": B_VETH}]}
    c = {"routes": parse_ip_route(C_ROUTES), "links": TUNNELS, "node_ips": ["10.240.0.11"], "local_blocks": ["172.17.26.0/26"],
         "addresses": _addresses("10.240.0.11", "172.17.26.0"), "workloads": [{"ip": BACKEND, "dev": C_VETH}]}
    return {"worker-a": a, "worker-b": b, "worker-c": c}


def _plan(nodes=None):
    nodes = nodes or _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    return path, trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])


def test_path_of_a_nodeport_whose_endpoint_is_on_a_third_node():
    path, _plan_ = _plan()
    assert path["hosts"] == ["worker-a", "worker-b", "worker-c"]
    assert path["node_ips"] == NODE_IP
    # the NodePort's node and the backend's are read before planning (the masquerade address is worker-b's own)
    assert (path["read"], path["deferred"]) == (["worker-b", "worker-c"], [])
    svc = path["service"]
    assert (svc["kind"], svc["dnat_on"], svc["backend"]["ip"], svc["backend"]["port"], svc["backend"]["host"]) == (
        "nodeport", "worker-b", BACKEND, 443, "worker-c")
    assert describe(path)[1] == ("dst 10.240.0.9:30443: Service default/web-nodeport in worker-a's kube-proxy rules (iptables), "
                                 "NodePort of worker-b, backend 172.17.26.1:443 on worker-c")
    assert path["dst"]["found_by"] == (
        "the NodePort's node worker-b (10.240.0.9); backend 172.17.26.1:443 on worker-c (worker-a's route 172.17.26.0/26 "
        "via 10.240.0.11 dev tunl0 proto bird; 10.240.0.11 is ansible_host of worker-c)")


HOPS = [
    ("request", "worker-a", A_VETH, "src-veth", "none", False), ("request", "worker-a", "eth0", "underlay-out", "none", False),
    ("request", "worker-b", "eth0", "underlay-in", "none", False), ("request", "worker-b", "tunl0", "tunnel-out", "none", True),
    ("request", "worker-b", "eth0", "underlay-out", "ipip", True), ("request", "worker-c", "eth0", "underlay-in", "ipip", True),
    ("request", "worker-c", "tunl0", "tunnel-in", "none", True), ("request", "worker-c", C_VETH, "dst-veth", "none", True),
    ("response", "worker-c", C_VETH, "dst-veth", "none", True), ("response", "worker-c", "tunl0", "tunnel-out", "none", True),
    ("response", "worker-c", "eth0", "underlay-out", "ipip", True), ("response", "worker-b", "eth0", "underlay-in", "ipip", True),
    ("response", "worker-b", "tunl0", "tunnel-in", "none", True), ("response", "worker-b", "tunl0", "tunnel-out", "none", False),
    ("response", "worker-b", "eth0", "underlay-out", "ipip", False), ("response", "worker-a", "eth0", "underlay-in", "ipip", False),
    ("response", "worker-a", "tunl0", "tunnel-in", "none", False), ("response", "worker-a", A_VETH, "src-veth", "none", False)]


def _ipip(peer, a, b, port):
    """bpf.ipip_filter's text for the inner pair a<->b on port, between this node and peer."""
    ha, hb = ("0x%08x" % struct.unpack("!I", bytes(int(x) for x in ip.split(".")))[0] for ip in (a, b))
    return ("(ip proto 4 and host %s and ip[0]&0xf==5 and ((ip[32:4]==%s and ip[36:4]==%s) or (ip[32:4]==%s and ip[36:4]==%s)) "
            "and ip[29]==6 and ip[20]&0xf==5 and ip[26:2]&0x1fff==0 and (ip[40:2]==%d or ip[42:2]==%d)) or (ip proto 4 and host %s "
            "and ip[0]&0xf==5 and ip[29]==1 and ip[20]&0xf==5 and (ip[40]==3 or ip[40]==11 or ip[40]==12) and ip[57]==6 and "
            "((ip[60:4]==%s and ip[64:4]==%s) or (ip[60:4]==%s and ip[64:4]==%s)))" % (peer, ha, hb, hb, ha, port, port, peer, ha, hb, hb, ha))


def _plain(a, b, port):
    ha, hb = ("0x%08x" % struct.unpack("!I", bytes(int(x) for x in ip.split(".")))[0] for ip in (a, b))
    return ("(host %s and host %s and tcp port %d) or (icmp and (icmp[0]==3 or icmp[0]==11 or icmp[0]==12) and icmp[17]==6 and "
            "((icmp[20:4]==%s and icmp[24:4]==%s) or (icmp[20:4]==%s and icmp[24:4]==%s)))" % (a, b, port, ha, hb, hb, ha))


def test_plan_follows_the_flow_across_the_dnat_and_masquerade_on_the_node_addressed():
    _path, plan = _plan()
    assert [(h["direction"], h["node"], h["interface"], h["role"], h["encap"], bool(h.get("after_dnat"))) for h in plan["hops"]] == HOPS
    assert (plan["src_node"], plan["dst_node"], plan["encap"], plan["response_encap"], plan["warnings"]) == (
        "worker-a", "worker-c", "ipip", "ipip", [])
    caps = {c["key"]: c for c in plan["captures"]}
    assert list(caps) == ["worker-a/" + A_VETH, "worker-a/eth0", "worker-b/eth0", "worker-b/tunl0", "worker-c/eth0", "worker-c/tunl0",
                          "worker-c/" + C_VETH, "worker-a/tunl0"]
    before, after = ("172.17.25.79", "10.240.0.9", 30443), (MASQ, BACKEND, 443)
    assert caps["worker-a/eth0"]["filter"] == "(%s) or (%s)" % (_plain(*before), _ipip("10.240.0.9", *before))
    # worker-b's NIC: the plain request from worker-a, IPIP to and from worker-c after the masquerade (its
    # tunl0 address), the un-DNATed answer in IPIP to worker-a
    assert caps["worker-b/eth0"]["filter"] == "(%s) or (%s) or (%s)" % (
        _plain(*before), _ipip("10.240.0.11", *after), _ipip("10.240.128.12", *before))
    assert caps["worker-b/eth0"]["encap"] == "mixed"
    assert caps["worker-b/tunl0"]["filter"] == "(%s) or (%s)" % (_plain(*after), _plain(*before))
    assert caps["worker-c/eth0"]["filter"] == _ipip("10.240.0.9", *after)
    assert caps["worker-c/tunl0"]["filter"] == caps["worker-c/" + C_VETH]["filter"] == _plain(*after)
    unsnat = {"pod": SRC, "node_ip": "10.240.0.9", "node_port": 30443, "backend": BACKEND, "backend_port": 443}
    assert {k: c.get("unsnat") for k, c in caps.items()} == {
        "worker-a/" + A_VETH: None, "worker-a/eth0": None, "worker-b/eth0": unsnat, "worker-b/tunl0": unsnat,
        "worker-c/eth0": unsnat, "worker-c/tunl0": unsnat, "worker-c/" + C_VETH: unsnat, "worker-a/tunl0": None}
    assert plan["service"]["line"] == ("NodePort 10.240.0.9:30443 (default/web-nodeport) -> backend 172.17.26.1:443 (on worker-c), "
                                       "chosen by kube-proxy's DNAT on worker-b (masquerading the source)")
    assert (plan["service"]["dnat_on"], plan["service"]["backend"]["node"]) == ("worker-b", "worker-c")


def test_without_encapsulation_the_masquerade_is_the_nics_address():
    # BGP: every node routes the other blocks via the node's address on eth0; worker-b masquerades to 10.240.0.9
    nodes = _nodes()
    for node in nodes.values():
        node["routes"] = [dict(r, dev="eth0") if r.get("dev") == "tunl0" else r for r in node["routes"]]
        node["links"] = TUNNELS[:1]
    _path, plan = _plan(nodes)
    assert [(h["direction"], h["node"], h["interface"], h["encap"]) for h in plan["hops"]] == [
        ("request", "worker-a", A_VETH, "none"), ("request", "worker-a", "eth0", "none"), ("request", "worker-b", "eth0", "none"),
        ("request", "worker-b", "eth0", "none"), ("request", "worker-c", "eth0", "none"), ("request", "worker-c", C_VETH, "none"),
        ("response", "worker-c", C_VETH, "none"), ("response", "worker-c", "eth0", "none"), ("response", "worker-b", "eth0", "none"),
        ("response", "worker-b", "eth0", "none"), ("response", "worker-a", "eth0", "none"), ("response", "worker-a", A_VETH, "none")]
    caps = {c["key"]: c for c in plan["captures"]}
    assert caps["worker-c/eth0"]["filter"] == _plain("10.240.0.9", BACKEND, 443)
    assert caps["worker-b/eth0"]["filter"] == "(%s) or (%s)" % (_plain(SRC, "10.240.0.9", 30443), _plain("10.240.0.9", BACKEND, 443))


def test_the_nodeport_and_backend_nodes_must_be_read():
    nodes = _nodes()
    path = trace_path("worker-a", nodes["worker-a"], flow("10.240.0.9", 30443), INVENTORY)
    nodes["worker-c"] = {"unreachable": True, "msg": "ssh: connect to host 10.240.0.11 port 22: No route to host"}
    refused = (r"^trace_plan: NodePort 10.240.0.9:30443 forwards on worker-b to 172.17.26.1:443 on worker-c; planning it "
               r"needs the routes of both nodes, and worker-c could not be read \(worker-c: ssh: connect")
    with pytest.raises(AnsibleFilterError, match=refused):
        trace_plan(nodes, flow=flow("10.240.0.9", 30443), service=path["service"])


# --------------------------------------------------------------------------------------------- analysis

MPORT = 61000          # worker-b's masquerade source port (--random-fully)


def _frame(plan, hop, direction, src, dst, ident, seg, ttl, backend=BACKEND):
    """The packet as ``hop``'s device sees it: before worker-b's DNAT pod:port <-> 10.240.0.9:30443,
    after it MASQ:MPORT <-> backend:443; IPIP on a NIC between the hop's node and its neighbour's."""
    sport, dport = struct.unpack("!HH", seg[:4])
    if hop.get("after_dnat"):
        if direction == "request":
            src, dst, seg = MASQ, backend, struct.pack("!HH", MPORT, 443) + seg[4:]
        else:
            src, dst, seg = backend, MASQ, struct.pack("!HH", 443, MPORT) + seg[4:]
    elif direction == "request":
        dst, seg = "10.240.0.9", struct.pack("!HH", sport, 30443) + seg[4:]
    else:
        src, seg = "10.240.0.9", struct.pack("!HH", 30443, dport) + seg[4:]
    inner = _synth.ipv4(src, dst, 6, seg, ident, ttl)
    if hop["interface"] == "tunl0":
        return inner, 101
    if hop["encap"] != "ipip":
        return _synth.eth(inner), 1
    path = [h for h in plan["hops"] if h["direction"] == direction]
    at = path.index(hop)
    other = path[at + 1] if hop["role"] == "underlay-out" else path[at - 1]
    a, b = (hop, other) if hop["role"] == "underlay-out" else (other, hop)
    return _synth.eth(_synth.ipv4(NODE_IP[a["node"]], NODE_IP[b["node"]], 4, inner, 3)), 1


def _trace(tmp_path, drop=None, plan=None, backend=BACKEND):
    """Captures of the healthy flow on every hop of ``plan`` (this file's NodePort plan unless given, its
    endpoint ``backend``); ``drop=("request", k)``: none from request hop k on, no answer."""
    plan = plan or _plan()[1]
    per_cap = {c["key"]: [] for c in plan["captures"]}
    linktype = {}
    for direction, t0, src, dst, ident, seg in _synth.flow_packets():
        if drop and direction == "response":
            continue
        for pos, hop in enumerate([h for h in plan["hops"] if h["direction"] == direction], start=1):
            if drop and pos >= drop[1]:
                break
            data, lt = _frame(plan, hop, direction, src, dst, ident, seg, 64 - pos, backend)
            per_cap[hop["capture"]].append((_synth.BASE_NS + t0 + pos * 50000, data))
            linktype[hop["capture"]] = lt
    captures = []
    for c in plan["captures"]:
        path = str(tmp_path / (c["key"].replace("/", "_") + ".pcap"))
        _synth.write_pcap(path, per_cap[c["key"]], linktype.get(c["key"], 101 if c["interface"] == "tunl0" else 1))
        captures.append({"key": c["key"], "node": c["node"], "interface": c["interface"], "file": path, "status": "ok",
                         "error": None, "captured": len(per_cap[c["key"]]), "received": len(per_cap[c["key"]]), "dropped": 0})
    return plan, captures


def test_analysis_sees_every_hop_of_a_healthy_flow_and_names_the_backend_and_its_node(tmp_path):
    plan, captures = _trace(tmp_path)
    rep = analysis.analyze(plan, captures)
    assert [(h["direction"], h["node"], h["interface"], h["status"], h["packets"]) for h in rep["hops"]] == [
        (d, n, i, "seen", 4 if d == "request" else 3) for d, n, i, _r, _e, _a in HOPS]
    assert rep["healthy"] is True
    assert rep["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30443 was DNATed by kube-proxy on worker-b "
                              "to 172.17.26.1:443 on worker-c")
    # worker-b's NIC and tunnel are one capture each again in the report, with the hops and files as captured
    caps = {c["key"]: c for c in rep["captures"]}
    assert list(caps) == [c["key"] for c in plan["captures"]]
    assert (caps["worker-b/eth0"]["records"], caps["worker-b/eth0"]["matched"], caps["worker-b/eth0"]["other"]) == (4 + 4 + 3 + 3, 14, 0)
    assert caps["worker-b/tunl0"]["matched"] == 4 + 3 + 3
    assert caps["worker-b/eth0"]["file"] == str(tmp_path / "worker-b_eth0.pcap")
    assert {h["capture"] for h in rep["hops"]} == set(caps)
    # no underlay leg joins worker-a and worker-c: no clock offset is estimated between them
    assert (rep["clock"]["offset_ms"], rep["clock"]["corrected"]) == (None, False)


def test_analysis_localises_a_drop_on_the_way_from_the_nodeport_node_to_the_backends(tmp_path):
    # worker-b DNATs the request but its tunnel device never sends it: the stop is worker-b tunl0, after the
    # hop that saw the packet arrive on the same NIC it would leave by
    plan, captures = _trace(tmp_path, drop=("request", 4))
    rep = analysis.analyze(plan, captures)
    rows = [(h["direction"], h["index"], h["node"], h["interface"], h["status"]) for h in rep["hops"]]
    assert rows[:5] == [("request", 1, "worker-a", A_VETH, "seen"), ("request", 2, "worker-a", "eth0", "seen"),
                        ("request", 3, "worker-b", "eth0", "seen"), ("request", 4, "worker-b", "tunl0", "LOST"),
                        ("request", 5, "worker-b", "eth0", "LOST")]
    assert rep["verdict"].startswith(
        "10.240.0.9:30443 was DNATed by kube-proxy on worker-b to 172.17.26.1:443 on worker-c; request reached worker-b eth0 and was "
        "not seen on worker-b tunl0"), rep["verdict"]
    assert rep["directions"]["request"]["stopped_at"] == "worker-b tunl0"
