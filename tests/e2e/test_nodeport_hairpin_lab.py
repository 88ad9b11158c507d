"""A NodePort whose one endpoint is a pod of the source pod's own node (externalTrafficPolicy Cluster), on the
lab: node-a's pod connects to node-b's address and nodePort 30445 (default/web-back, tests/lab/kubeproxy.py),
node-b's kube-proxy rules DNAT it to node-a's second pod and masquerade it to node-b's tunl0 address, so the
request goes back to node-a over the tunnel; node-a's pod answers node-b, node-b un-DNATs and answers node-a's
first pod over the tunnel. node-a's NIC and tunnel see the flow before and after node-b's DNAT. Real kernel
DNAT/SNAT, the real playbook over SSH, a 2-node ipip lab: a healthy trace and a drop on node-a's way in.
"""
import os

import pytest
from test_services_lab import hop_table, services_lab
from test_trace import SRC, SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl, topology

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

NODE_B, NODE_PORT = "10.240.0.9", 30445
BACKEND = topology.SEED_SECOND[0]                           # node-a's second pod, 172.17.25.66
MASQ = "172.17.25.192"                                      # node-b's tunl0 address (the first of its block)
A2_VETH = "cali2a1ec19d610"                                 # its veth (tests/e2e/test_trace.py)
NODES = ("node-a", "node-b")

REQUEST = [("node-a", SRC_VETH), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0"), ("node-b", "eth0"),
           ("node-a", "eth0"), ("node-a", "tunl0"), ("node-a", A2_VETH)]
RESPONSE = [("node-a", A2_VETH), ("node-a", "tunl0"), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0"),
            ("node-b", "tunl0"), ("node-b", "eth0"), ("node-a", "eth0"), ("node-a", "tunl0"), ("node-a", SRC_VETH)]
ROWS = hop_table(REQUEST, RESPONSE)
ARGS = ["-e", "src=%s" % SRC, "-e", "dst=%s" % NODE_B, "-e", "dport=%d" % NODE_PORT]


@pytest.fixture(scope="module")
def services(lab_factory):
    yield from services_lab(lab_factory)


def test_the_lab_writes_the_nodeport_back_to_node_a(services):
    svc = next(s for s in services if s["name"] == "default/web-back")
    assert (svc["node_port"], svc["endpoints"]) == (NODE_PORT, ["%s:443" % BACKEND])


def test_a_nodeport_forwarded_back_to_the_source_node_is_traced_hop_by_hop(services, tmp_path):
    rc, out, report = trace(tmp_path, *ARGS)
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == ROWS
    assert report["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30445 was DNATed by kube-proxy on node-b "
                                 "to 172.17.25.66:443 on node-a (the source pod's own node) and masqueraded to 172.17.25.192")
    svc = report["service"]
    assert (svc["name"], svc["kind"], svc["dnat_on"], svc["snat_to"], svc["masquerade"]) == (
        "default/web-back", "nodeport", "node-b", MASQ, True)
    assert svc["backend"] == {"ip": BACKEND, "port": 443, "node": "node-a", "pod": None}
    assert svc["line"] == ("NodePort 10.240.0.9:30445 (default/web-back) -> backend 172.17.25.66:443 (on node-a), chosen by "
                           "kube-proxy's DNAT on node-b (masquerading the source to 172.17.25.192)")
    # node-b's conntrack entry: the pod's connection to its nodePort, DNATed to node-a's second pod, answered to node-b's tunl0
    (entry,) = svc["conntrack"]["entries"]
    o, r = entry["orig"], entry["reply"]
    assert (o["src"], o["dst"], o["dport"], r["src"], r["sport"], r["dst"]) == (SRC, NODE_B, NODE_PORT, BACKEND, 443, MASQ)
    assert (report["src_node"], report["dst_node"]) == ("node-a", "node-a")
    # node-a's and node-b's NICs and tunnels are one capture each in the report, named by their files as tcpdump wrote them
    keys = [c["key"] for c in report["captures"]]
    assert keys == ["node-a/" + SRC_VETH, "node-a/eth0", "node-b/eth0", "node-b/tunl0", "node-a/tunl0", "node-a/" + A2_VETH]
    caps = {c["key"]: c for c in report["captures"]}
    assert caps["node-a/eth0"]["file"].endswith("node-a/eth0.pcap")
    hops = {(h["direction"], h["index"]): h["packets"] for h in report["hops"]}
    # every packet of the flow on each NIC was matched: its four hops' packets
    assert caps["node-a/eth0"]["matched"] == hops[("request", 2)] + hops[("request", 6)] + hops[("response", 3)] + hops[("response", 8)]
    assert caps["node-b/eth0"]["matched"] == hops[("request", 3)] + hops[("request", 5)] + hops[("response", 4)] + hops[("response", 7)]
    assert caps["node-a/tunl0"]["matched"] == hops[("request", 7)] + hops[("response", 2)] + hops[("response", 9)]
    assert hops[("request", 8)] >= 3 and hops[("response", 1)] >= 2
    assert node_leftovers(NODES) == {}


def test_a_drop_on_the_way_back_into_the_source_node_is_localised(services, tmp_path):
    # node-b DNATs and masquerades the request and sends it back to node-a, whose NIC receives it (it sent the
    # request out before, too) and drops it before its tunnel decapsulates it
    labctl.fault_add("drop", node="node-a", iface="eth0", direction="in", dst=BACKEND, proto="tcp", port=443)
    try:
        rc, out, report = trace(tmp_path, *ARGS)
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    rows = hop_rows(report)
    assert rows[:7] == ROWS[:6] + [("request", 7, "node-a", "tunl0", "LOST")]
    assert report["verdict"] == (
        "10.240.0.9:30445 was DNATed by kube-proxy on node-b to 172.17.25.66:443 on node-a (the source pod's own node) and "
        "masqueraded to 172.17.25.192; request reached node-a eth0 and was not seen on node-a tunl0 (decapsulation)")
    # dropped after node-b's masquerade: node-b's conntrack confirmed the connection and says so
    assert report["service"]["snat_to"] == MASQ and len(report["service"]["conntrack"]["entries"]) == 1
    assert rows[7][4] == "LOST" and {r[4] for r in rows[8:]} == {"none"}
    assert report["directions"]["request"]["stopped_at"] == "node-a tunl0"
    assert node_leftovers(NODES) == {}


# default/web-pair, nodePort 30446: node-b's own pod 172.17.25.193 and node-a's second pod; node-b's kube-proxy
# picks one per connection, the captures and node-b's conntrack entry say which
PAIR_PORT, B2_VETH = 30446, "cali77a38a64072"
LOCAL_ROWS = [("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", "eth0", "seen"),
              ("request", 3, "node-b", "eth0", "seen"), ("request", 4, "node-b", B2_VETH, "seen"),
              ("response", 1, "node-b", B2_VETH, "seen"), ("response", 2, "node-b", "tunl0", "seen"),
              ("response", 3, "node-b", "eth0", "seen"), ("response", 4, "node-a", "eth0", "seen"),
              ("response", 5, "node-a", "tunl0", "seen"), ("response", 6, "node-a", SRC_VETH, "seen")]


def test_a_nodeport_with_two_endpoints_follows_the_one_node_b_picked(services, tmp_path):
    rc, out, report = trace(tmp_path, "-e", "src=%s" % SRC, "-e", "dst=%s" % NODE_B, "-e", "dport=%d" % PAIR_PORT)
    assert rc == 0, out[-3000:]
    svc = report["service"]
    assert (svc["name"], svc["endpoints"], svc["dnat_on"]) == ("default/web-pair", ["172.17.25.193:443", BACKEND + ":443"], "node-b")
    (entry,) = svc["conntrack"]["entries"]
    o, r = entry["orig"], entry["reply"]
    chosen, other = (r["src"], BACKEND if r["src"] == "172.17.25.193" else "172.17.25.193")
    assert svc["backend"]["ip"] == chosen
    if chosen == BACKEND:           # back to node-a: masqueraded to node-b's tunl0 address
        assert (hop_rows(report), svc["snat_to"], svc["backend"]["node"]) == (ROWS, MASQ, "node-a")
        assert report["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30446 was DNATed by kube-proxy on node-b "
                                     "to 172.17.25.66:443 on node-a (the source pod's own node) and masqueraded to 172.17.25.192")
    else:                           # node-b's own pod: masqueraded to node-b's address
        assert (hop_rows(report), svc["snat_to"], svc["backend"]["node"]) == (LOCAL_ROWS, NODE_B, "node-b")
        assert report["verdict"] == "every hop saw the request and the response"
    assert svc["chosen_by"] == (
        "conntrack on node-b: %s:%d -> 10.240.0.9:30446 was DNATed to %s:443 and masqueraded to %s:%d; the captures agree: its hops "
        "saw the flow after the DNAT, those of %s:443 did not" % (SRC, o["sport"], chosen, svc["snat_to"], r["dport"], other))
    assert node_leftovers(NODES) == {}
