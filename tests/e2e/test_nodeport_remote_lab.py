"""A NodePort whose one endpoint is on a third node (externalTrafficPolicy Cluster), on the lab: node-a's pod
connects to node-b's address and nodePort 30444 (default/web-remote, tests/lab/kubeproxy.py), node-b's
kube-proxy rules DNAT it to node-c's pod and masquerade it to node-b's tunl0 address, node-c's pod answers
node-b, node-b un-DNATs and answers node-a's pod over the tunnel. Real kernel DNAT/SNAT, the real playbook
over SSH: on a 3-node ipip lab a healthy trace and a drop between node-b and node-c, then the healthy trace
on 3-node VXLAN and BGP labs.
"""
import os

import pytest
from test_services_lab import hop_table, services_lab
from test_trace import SRC, SRC_VETH, hop_rows, node_leftovers, trace

from lab import labctl, topology

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

NODE_B, NODE_PORT = "10.240.0.9", 30444
BACKEND = "172.17.26.1"                                     # node-c's first pod, default/web-c-0
MASQ = "172.17.25.192"                                      # node-b's tunl0 address (the first of its block)
C_VETH = topology.calico_veth("default", "web-c-0")
NODES = ("node-a", "node-b", "node-c")

REQUEST = [("node-a", SRC_VETH), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0"), ("node-b", "eth0"),
           ("node-c", "eth0"), ("node-c", "tunl0"), ("node-c", C_VETH)]
RESPONSE = [("node-c", C_VETH), ("node-c", "tunl0"), ("node-c", "eth0"), ("node-b", "eth0"), ("node-b", "tunl0"),
            ("node-b", "tunl0"), ("node-b", "eth0"), ("node-a", "eth0"), ("node-a", "tunl0"), ("node-a", SRC_VETH)]
ROWS = hop_table(REQUEST, RESPONSE)
ARGS = ["-e", "src=%s" % SRC, "-e", "dst=%s" % NODE_B, "-e", "dport=%d" % NODE_PORT]


@pytest.fixture(scope="module")
def services(lab_factory):
    yield from services_lab(lab_factory, nodes=3)


def test_the_lab_writes_the_remote_nodeport(services):
    svc = next(s for s in services if s["name"] == "default/web-remote")
    assert (svc["node_port"], svc["endpoints"]) == (NODE_PORT, ["%s:443" % BACKEND])


def test_a_nodeport_forwarded_to_a_third_node_is_traced_hop_by_hop(services, tmp_path):
    rc, out, report = trace(tmp_path, *ARGS)
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == ROWS
    assert report["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30444 was DNATed by kube-proxy on node-b "
                                 "to 172.17.26.1:443 on node-c and masqueraded to 172.17.25.192")
    svc = report["service"]
    assert (svc["name"], svc["kind"], svc["dnat_on"], svc["snat_to"], svc["masquerade"]) == (
        "default/web-remote", "nodeport", "node-b", MASQ, True)
    assert svc["backend"] == {"ip": BACKEND, "port": 443, "node": "node-c", "pod": None}
    assert svc["line"] == ("NodePort 10.240.0.9:30444 (default/web-remote) -> backend 172.17.26.1:443 (on node-c), chosen by "
                           "kube-proxy's DNAT on node-b (masquerading the source to 172.17.25.192)")
    # node-b's conntrack entry: the pod's connection to its nodePort, DNATed to node-c's pod, answered to node-b's tunl0
    (entry,) = svc["conntrack"]["entries"]
    o, r = entry["orig"], entry["reply"]
    assert (o["src"], o["dst"], o["dport"], r["src"], r["sport"], r["dst"]) == (SRC, NODE_B, NODE_PORT, BACKEND, 443, MASQ)
    assert (report["src_node"], report["dst_node"]) == ("node-a", "node-c")
    # node-b's NIC and tunnel are one capture each in the report, named by their files as tcpdump wrote them
    keys = [c["key"] for c in report["captures"]]
    assert keys == ["node-a/" + SRC_VETH, "node-a/eth0", "node-b/eth0", "node-b/tunl0", "node-c/eth0", "node-c/tunl0",
                    "node-c/" + C_VETH, "node-a/tunl0"]
    eth0 = next(c for c in report["captures"] if c["key"] == "node-b/eth0")
    assert eth0["file"].endswith("node-b/eth0.pcap")
    hops = {(h["direction"], h["index"]): h["packets"] for h in report["hops"]}
    # every packet of the flow on node-b's NIC was matched: its four hops' packets
    assert eth0["matched"] == hops[("request", 3)] + hops[("request", 5)] + hops[("response", 4)] + hops[("response", 7)]
    assert hops[("request", 8)] >= 3 and hops[("response", 1)] >= 2
    assert node_leftovers(NODES) == {}


def test_a_drop_between_the_nodeport_node_and_the_backends_is_localised(services, tmp_path):
    # node-b DNATs the request, then loses it on its way into the tunnel to node-c
    labctl.fault_add("drop", node="node-b", iface="tunl0", direction="out", dst=BACKEND, proto="tcp", port=443)
    try:
        rc, out, report = trace(tmp_path, *ARGS)
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    rows = hop_rows(report)
    assert rows[:4] == ROWS[:3] + [("request", 4, "node-b", "tunl0", "LOST")]
    assert report["verdict"] == (
        "10.240.0.9:30444 was DNATed by kube-proxy on node-b to 172.17.26.1:443 on node-c; "
        "request reached node-b eth0 and was not seen on node-b tunl0 (routing into the tunnel)")
    # dropped before its masquerade (mangle POSTROUTING comes before nat), the connection was never confirmed
    # in node-b's conntrack: nothing says it was masqueraded
    assert report["service"]["snat_to"] is None and report["service"]["conntrack"]["entries"] == []
    assert "conntrack on node-b has no entry for 172.17.25.79 -> 10.240.0.9:30444 (tcp) after the probe" in report["notes"]
    assert [r[4] for r in rows[4:8]] == ["LOST"] * 4 and {r[4] for r in rows[8:]} == {"none"}
    assert report["directions"]["request"]["stopped_at"] == "node-b tunl0"
    assert node_leftovers(NODES) == {}


# the same Service on a VXLAN and a BGP lab: node-b masquerades to vxlan.calico's address (the first of its
# block, as tunl0's) and, without encapsulation, to its eth0 address; its NIC is then also the device to node-c
OTHER_MODES = {
    "vxlan": (MASQ, [(n, "vxlan.calico" if i == "tunl0" else i) for n, i in REQUEST],
              [(n, "vxlan.calico" if i == "tunl0" else i) for n, i in RESPONSE]),
    "bgp": (NODE_B, [(n, i) for n, i in REQUEST if i != "tunl0"], [(n, i) for n, i in RESPONSE if i != "tunl0"]),
}


@pytest.mark.parametrize("mode", sorted(OTHER_MODES))
def test_the_same_nodeport_over_vxlan_and_bgp(lab_factory, tmp_path, mode):
    lab_factory(mode, 3)
    labctl.services_up()
    try:
        rc, out, report = trace(tmp_path, *ARGS)
    finally:
        labctl.services_down()
    assert rc == 0, out[-3000:]
    masq, request, response = OTHER_MODES[mode]
    assert hop_rows(report) == [("request", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(request)] + \
        [("response", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(response)]
    assert report["verdict"] == ("every hop saw the request and the response; 10.240.0.9:30444 was DNATed by kube-proxy on node-b "
                                 "to 172.17.26.1:443 on node-c and masqueraded to %s" % masq)
    assert report["service"]["snat_to"] == masq
