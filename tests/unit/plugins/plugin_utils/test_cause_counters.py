"""cause_counters: why a direction stopped, from the counter deltas the capture module returns.

The traces are _synth's (the request lost from node-b tunl0 on: 4 packets seen on node-b eth0,
none after it); the counters are what module_utils/_counters.delta returns, with rules as Felix
and kube-proxy write them (tests/unit/fixtures/counters).
"""
import struct

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, cause_counters as cc, report

import _synth
import test_cause

DENY = '-A cali-pi-_hvIhg5e42MGXRa9paIF -m comment --comment "cali:x8K2Rn6C3d_N4cVm" -j DROP'
TW_DROP = ('-A cali-tw-calic25e805a467 -m comment --comment "cali:0HKmZy_mh8JT1Tl6" -m comment --comment '
           '"Drop if no policies passed packet" -m mark --mark 0x0/0x20000 -j DROP')


def rule(chain, text, packets, number=1, target="DROP", table="filter", source="iptables-nft", policy=False):
    return {"source": source, "table": table, "chain": chain, "number": number, "rule": text, "target": target,
            "policy": policy, "packets": packets, "bytes": packets * 60}


def counters(rules=(), routes=None, kernel=None, conntrack=None, neighbours=(), links=None, sysctl=None):
    return {"seconds": 2.1, "rules": list(rules), "routes": routes or {}, "kernel": kernel or {}, "conntrack": conntrack or {},
            "neighbours": list(neighbours), "links": links or {}, "sysctl": sysctl or {}, "notes": []}


def traced(tmp_path, by_node, drop=("request", 5)):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=drop)
    for cap in caps:
        if cap["node"] in by_node:
            cap["counters"] = by_node[cap["node"]]
    return analysis.analyze(plan, caps)


def test_a_calico_policy_deny_rule_is_the_cause(tmp_path):
    rep = traced(tmp_path, {"node-a": counters(), "node-b": counters([
        rule("cali-pi-_hvIhg5e42MGXRa9paIF", DENY, 4), rule("cali-tw-calic25e805a467", TW_DROP, 40, number=7)])})
    why = ("dropped by iptables filter cali-pi-_hvIhg5e42MGXRa9paIF rule 1 (DROP, -m comment --comment cali:x8K2Rn6C3d_N4cVm; "
           "4 packets while 4 were lost) on node-b: Calico ingress policy (Felix hashed its name into the chain name)")
    assert rep["why"] == why
    got = rep["directions"]["request"]["cause"]
    assert (got["kind"], got["confidence"], got["text"]) == ("netfilter-rule", "high", why)
    assert got["evidence"] == ["node-b iptables-nft (packets +4, bytes +240): -t filter %s" % DENY]
    assert rep["directions"]["response"]["cause"] is None
    assert "why: %s" % why[:40] in " ".join(report.render_table(rep))


def test_the_workload_chain_drop_when_no_policy_accepted(tmp_path):
    rep = traced(tmp_path, {"node-b": counters([rule("cali-tw-calic25e805a467", TW_DROP, 5, number=7)])})
    assert rep["why"] == ("dropped by iptables filter cali-tw-calic25e805a467 rule 7 (DROP, -m comment --comment "
                          "cali:0HKmZy_mh8JT1Tl6; 5 packets while 4 were lost) on node-b: Calico's chain to the workload "
                          "on calic25e805a467: Drop if no policies passed packet")
    assert rep["directions"]["request"]["cause"]["confidence"] == "high"


def test_a_reject_rule_and_a_drop_policy_are_named_as_such():
    reject = rule("FORWARD", "-A FORWARD -d 172.17.25.239/32 -p tcp -j REJECT --reject-with icmp-admin-prohibited", 4,
                  target="REJECT")
    policy = rule("FORWARD", "policy DROP", 4, number=0, source="ip6tables-legacy", policy=True)
    path = [{"node": "node-a", "interface": "eth0", "status": "seen", "packets": 4, "last_hop_of": 4},
            {"node": "node-b", "interface": "eth0", "status": "LOST", "packets": 0}]
    flow = {"src": _synth.SRC, "dst": _synth.DST, "neighbours": set()}
    got = cc.explain(0, path, {"node-b": counters([reject])}, flow)
    assert got["text"] == ("rejected by iptables filter FORWARD rule 1 (REJECT --reject-with icmp-admin-prohibited; "
                           "4 packets while 4 were lost) on node-b")
    got = cc.explain(0, path, {"node-b": counters([policy])}, flow)
    assert got["text"] == "dropped by the ip6tables filter FORWARD policy (DROP; 4 packets while 4 were lost) on node-b"
    # the stop lies between two nodes: both are looked at, the one before first
    assert cc.stop_nodes(path[1], path[0]) == ["node-a", "node-b"]


def test_a_rule_that_counted_other_traffic_is_not_the_cause(tmp_path):
    rep = traced(tmp_path, {"node-a": counters(), "node-b": counters([rule("cali-tw-calic25e805a467", TW_DROP, 400)])})
    assert rep["why"] == "no counter on node-b explains the loss"
    assert rep["directions"]["request"]["cause"] is None


def test_a_blackholed_pod_route(tmp_path):
    routes = {_synth.DST: {"error": "blackhole", "message": "Invalid argument", "route": "blackhole %s/32" % _synth.DST}}
    rep = traced(tmp_path, {"node-b": counters(routes=routes)})
    assert rep["why"] == "blackhole route for %s on node-b (blackhole %s/32)" % (_synth.DST, _synth.DST)
    got = rep["directions"]["request"]["cause"]
    assert (got["kind"], got["confidence"]) == ("route", "high")
    assert got["evidence"] == ["node-b: ip route get %s: Invalid argument" % _synth.DST, "node-b: blackhole %s/32" % _synth.DST]


def test_the_reverse_path_filter(tmp_path):
    rep = traced(tmp_path, {"node-b": counters(kernel={"TcpExt.IPReversePathFilter": 4, "Ip.InDiscards": 1},
                                               sysctl={"net.ipv4.conf.all.rp_filter": 1, "net.ipv4.conf.eth0.rp_filter": 0})})
    assert rep["why"] == ("the reverse path filter dropped it on node-b (TcpExt.IPReversePathFilter rose by 4 while 4 were lost; "
                          "rp_filter all=1)")
    assert rep["directions"]["request"]["cause"]["kind"] == "rp-filter"


@pytest.mark.parametrize("extra,kind,text", [
    ({"conntrack": {"invalid": 4}}, "conntrack", "conntrack on node-b counted the loss (invalid +4 while 4 were lost)"),
    ({"neighbours": [{"dst": _synth.DST, "dev": "calic25e805a467", "state": "FAILED"}]}, "neighbour",
     "node-b's neighbour entry for %s on calic25e805a467 is FAILED: the next hop does not answer ARP/ND" % _synth.DST),
    ({"links": {"tunl0": {"mtu": 1480, "rx_dropped": 4}}}, "interface-drops",
     "node-b tunl0 counted the loss (rx_dropped +4 while 4 were lost)"),
])
def test_other_counters(tmp_path, extra, kind, text):
    rep = traced(tmp_path, {"node-b": counters(**extra)})
    assert rep["why"] == text
    assert rep["directions"]["request"]["cause"]["kind"] == kind


def test_what_could_not_be_read_is_said(tmp_path):
    notes = ["could not read iptables rules: iptables-save is not installed",
             "could not read the conntrack statistics: no /proc/net/stat/nf_conntrack and conntrack is not installed"]
    rep = traced(tmp_path, {"node-b": dict(counters(), notes=notes)})
    assert rep["why"] == ("no counter on node-b explains the loss (node-b: could not read iptables rules: iptables-save is not "
                          "installed; node-b: could not read the conntrack statistics: no /proc/net/stat/nf_conntrack and "
                          "conntrack is not installed)")
    routes = {_synth.DST: {"error": "unreachable", "message": "No route to host"}}
    rep = traced(tmp_path, {"node-b": dict(counters(routes=routes), notes=notes[:1])})
    assert rep["why"] == "unreachable route for %s on node-b" % _synth.DST
    evidence = ["node-b: ip route get %s: No route to host" % _synth.DST,
                "node-b: could not read iptables rules: iptables-save is not installed"]
    assert rep["directions"]["request"]["cause"]["evidence"] == evidence


def test_without_counters_the_packets_text_stays(tmp_path):
    rep = traced(tmp_path, {})
    assert rep["why"] == "no packet in the captures explains the loss"


def test_owners():
    assert cc.owner("cali-pi-default.deny-all") == "Calico ingress policy default.deny-all"
    assert cc.owner("cali-po-knp.default.web") == "Calico egress policy knp.default.web"
    assert cc.owner("cali-pri-kns.default") == "Calico ingress profile of namespace default"
    assert cc.owner("cali-pro-ksa.default.builder") == "Calico egress profile of service account default.builder"
    fw_rule = '-m comment --comment "cali:s2Jrc8hOvqYYH_jj" -m comment --comment "Drop if no profiles matched" -j DROP'
    assert cc.owner("cali-fw-cali5125b8e5d77", fw_rule) == "Calico's chain from the workload on cali5125b8e5d77: Drop if no profiles matched"
    assert cc.owner("KUBE-FIREWALL", '-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" '
                    '-m mark --mark 0x8000/0x8000 -j DROP') == "kube-proxy: kubernetes firewall for dropping marked packets"
    assert cc.owner("FORWARD") == ""


def _echo(size, ident):
    """An ICMP echo request from the source pod whose IPv4 packet is ``size`` bytes."""
    payload = struct.pack("!BBHHH", 8, 0, 0, 0x4854, ident) + b"m" * (size - 28)
    return _synth.ipv4(_synth.SRC, _synth.DST, 1, payload, ident)


@pytest.mark.parametrize("stop_hop,iface,mtu,text", [
    (6, "calic25e805a467", 1400, "packets of 1480 bytes seen at node-b tunl0, never at node-b calic25e805a467: MTU 1400 on "
                                 "node-b calic25e805a467"),
    (3, "eth0", 1480, "packets of 1480 bytes seen at node-a tunl0, never at node-a eth0 (1500 bytes with the IPIP header): "
                      "MTU 1480 on node-a eth0"),
])
def test_packets_larger_than_the_next_hops_mtu(tmp_path, stop_hop, iface, mtu, text):
    node = "node-b" if stop_hop > 3 else "node-a"
    # three small echoes get through, three of 1480 bytes stop before stop_hop
    packets = [("request", 1, 6, _echo(84, i)) for i in range(3)] + [("request", 1, stop_hop - 1, _echo(1480, 10 + i))
                                                                     for i in range(3)]
    plan, caps = test_cause.make(tmp_path, packets, proto="icmp", port=None)
    frag_drop = rule("OUTPUT", "-A OUTPUT -p icmp -m icmp --icmp-type 3/4 -m comment --comment hoptrace-fault-f1 -j DROP", 3)
    for cap in caps:
        cap["counters"] = counters([frag_drop] if cap["node"] == node else [], links={iface: {"mtu": mtu}})
    rep = analysis.analyze(plan, caps)
    assert rep["why"] == text
    got = rep["directions"]["request"]["cause"]
    assert (got["kind"], got["confidence"]) == ("mtu", "high")
    # the dropped fragmentation-needed errors are the symptom, listed after it
    assert got["evidence"][2].startswith("also: dropped by iptables filter OUTPUT rule 1 (DROP, -m comment --comment "
                                         "hoptrace-fault-f1; 3 packets while ")


def test_no_mtu_cause_when_the_packets_fit(tmp_path):
    packets = [("request", 1, 5, _echo(1400, i)) for i in range(3)]
    plan, caps = test_cause.make(tmp_path, packets, proto="icmp", port=None)
    for cap in caps:
        cap["counters"] = counters(links={"calic25e805a467": {"mtu": 1400}})
    rep = analysis.analyze(plan, caps)
    assert rep["why"] == "no counter on node-b explains the loss"


def test_an_icmp_error_from_a_nodes_own_address_names_the_node_and_its_reject_rule(tmp_path):
    syn = test_cause._syn(443)
    prohibited = _synth.ipv4("172.17.25.192", _synth.SRC, 1, test_cause._icmp(3, 13, syn), 77)
    # the SYN stops before node-b's veth; the error goes back from node-b's tunl0 (response hops 2..6)
    plan, caps = test_cause.make(tmp_path, [("request", 1, 5, syn), ("response", 2, 6, prohibited)], port=443)
    reject = rule("FORWARD", "-A FORWARD -d 172.17.25.239/32 -p tcp -m tcp --dport 443 -j REJECT --reject-with "
                  "icmp-admin-prohibited", 1, target="REJECT")
    for cap in caps:
        cap["counters"] = dict(counters([reject] if cap["node"] == "node-b" else []),
                               addresses=["10.240.0.9", "172.17.25.192"] if cap["node"] == "node-b" else ["10.240.128.12"])
    rep = analysis.analyze(plan, caps)
    assert rep["verdict"].startswith("node-b (172.17.25.192) rejected the request to 172.17.25.239 port 443 (ICMP communication "
                                     "administratively prohibited)")
    assert rep["why"] == ("node-b (172.17.25.192) answered the request with ICMP communication administratively prohibited "
                          "(type 3 code 13, first seen on node-b tunl0); node-b's iptables filter FORWARD rule 1 sent it "
                          "(REJECT --reject-with icmp-admin-prohibited; 1 packet)")
