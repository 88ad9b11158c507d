"""Counter snapshots (module_utils/_counters.py and its parsers) on real outputs.

The fixtures (tests/unit/fixtures/counters/README.md) are a Calico node's and a kube-proxy node's
iptables-save -c from public sources, and this machine's own outputs read in a scratch network
namespace after 3 datagrams to an iptables-nft DROP rule, 2 to an iptables-legacy REJECT rule and
4 to an nft table of its own.
"""
import json
import os
import stat

from ansible_collections.hoptrace.k8s.plugins.module_utils import _counters as ctr
from ansible_collections.hoptrace.k8s.plugins.module_utils import _kstats as ks
from ansible_collections.hoptrace.k8s.plugins.module_utils import _links as lk
from ansible_collections.hoptrace.k8s.plugins.module_utils import _netfilter as nf

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "counters")


def fixture(name):
    with open(os.path.join(FIX, name)) as handle:
        return handle.read()


def lowered(text, by):
    """The same output with every rule's packet counter lowered by ``by`` (an earlier snapshot)."""
    out = []
    for line in text.splitlines():
        if line.startswith("[") and not line.startswith("[0:"):
            pkts, rest = line[1:].split(":", 1)
            line = "[%d:%s" % (max(0, int(pkts) - by), rest)
        out.append(line)
    return "\n".join(out)


def test_calico_rules_keep_their_chain_number_text_and_target():
    counters, rules = nf.parse_save(fixture("calico-iptables-save-c.txt"), "iptables-nft", every=True)
    assert len(counters) == 20
    drops = [nf.rule_info(k, rules) for k in counters if counters[k][0] and rules[k][3] == "DROP"]
    assert drops == [{
        "source": "iptables-nft", "table": "filter", "chain": "cali-fw-cali5125b8e5d77", "number": 7, "target": "DROP",
        "policy": False,
        "rule": '-A cali-fw-cali5125b8e5d77 -m comment --comment "cali:mFJHSWPsX6BjHV5u" -m comment --comment '
                '"Drop if no policies passed packet" -m mark --mark 0x0/0x20000 -j DROP'}]
    jump = next(k for k in counters if "cali:yWm8oY1YDuoYpkS6" in rules[k][2])
    assert counters[jump] == [3, 180]
    assert nf.rule_info(jump, rules)["target"] == "cali-pi-_hvIhg5e42MGXRa9paIF"
    # what a snapshot keeps: the 6 DROP rules only, numbered as before
    dropping, kept = nf.parse_save(fixture("calico-iptables-save-c.txt"), "iptables-nft")
    assert sorted((kept[k][0], kept[k][1]) for k in dropping) == [
        ("cali-fw-cali5125b8e5d77", 2), ("cali-fw-cali5125b8e5d77", 7), ("cali-fw-cali5125b8e5d77", 10),
        ("cali-tw-cali5125b8e5d77", 2), ("cali-tw-cali5125b8e5d77", 7), ("cali-tw-cali5125b8e5d77", 10)]
    assert set(dropping) <= set(counters)


def test_kube_proxy_rules_parse_and_dnat_is_not_a_drop():
    text = fixture("kube-proxy-iptables-save-c.txt")
    counters, rules = nf.parse_save(text, "iptables-legacy", every=True)
    assert len(counters) == 9
    dnat = next(k for k in counters if counters[k][0] == 102)
    assert counters[dnat] == [102, 8638]
    assert nf.rule_info(dnat, rules)["target"] == "DNAT"
    before = dict(counters=dict(nf.parse_save(lowered(text, 50), "iptables-legacy", every=True)[0]), kernel={}, conntrack={},
                  links={}, t=0)
    after = dict(counters=counters, rules=rules, kernel={}, conntrack={}, links={}, t=1.5)
    assert ctr.delta(before, after)["rules"] == []   # counters rose, none of them drops


def test_delta_names_the_dropping_rules_whose_counter_rose():
    nft_text, legacy_text = fixture("machine-iptables-nft-save-c.txt"), fixture("machine-iptables-legacy-save-c.txt")
    after = {"t": 10.0, "counters": {}, "rules": {}, "kernel": {"Ip.OutDiscards": 9}, "conntrack": {"invalid": 2},
             "links": {"veth-h3a": {"mtu": 1500, "rx_dropped": 4, "tx_dropped": 0}}, "notes": []}
    before = {"t": 7.5, "counters": {}, "kernel": {"Ip.OutDiscards": 9}, "conntrack": {"invalid": 0},
              "links": {"veth-h3a": {"mtu": 1500, "rx_dropped": 1, "tx_dropped": 0}}}
    for source, text in (("iptables-nft", nft_text), ("iptables-legacy", legacy_text)):
        counters, rules = nf.parse_save(text, source)
        after["counters"].update(counters)
        after["rules"].update(rules)
        before["counters"].update(nf.parse_save(lowered(text, 1), source)[0])
    d = ctr.delta(json.loads(json.dumps(ctr.compact(dict(before, notes=[])))), after)
    assert d["seconds"] == 2.5
    assert [(r["source"], r["chain"], r["number"], r["target"], r["packets"]) for r in d["rules"]] == [
        ("iptables-legacy", "OUTPUT", 1, "REJECT", 1), ("iptables-nft", "OUTPUT", 1, "DROP", 1)]
    assert d["rules"][1]["rule"] == '-A OUTPUT -d 10.99.0.7/32 -p udp -m comment --comment "h3 fixture" -j DROP'
    assert d["kernel"] == {} and d["conntrack"] == {"invalid": 2}
    assert d["links"] == {"veth-h3a": {"mtu": 1500, "rx_dropped": 3}}
    # without a first snapshot nothing is counted, and the result says so
    none = ctr.delta(None, after)
    assert none["rules"] == [] and none["links"] == {"veth-h3a": {"mtu": 1500}}
    assert none["notes"] == ["no counter snapshot was taken when the captures started: the counters' deltas are unknown"]


def test_a_drop_policy_is_a_dropping_rule():
    counters, rules = nf.parse_save(fixture("machine-ip6tables-nft-save-c.txt"), "ip6tables-nft")
    key = "ip6tables-nft|filter|FORWARD|policy|0"
    assert counters[key] == [0, 0]
    assert nf.rule_info(key, rules) == {"source": "ip6tables-nft", "table": "filter", "chain": "FORWARD", "number": 0,
                                        "rule": "policy DROP", "target": "DROP", "policy": True}


def test_nft_own_tables_only():
    assert nf.other_nft_tables(fixture("machine-nft-list-tables.txt")) == ["inet h3own"]
    counters, rules = nf.parse_nft(fixture("machine-nft-j-list-ruleset.json"), ["inet h3own"])
    assert list(counters.values()) == [[4, 116]]
    info = nf.rule_info(list(counters)[0], rules)
    assert (info["source"], info["table"], info["chain"], info["number"], info["target"]) == ("nft", "inet h3own", "out", 1, "DROP")
    assert info["rule"].endswith(' comment "h3 own" drop')
    assert nf.parse_nft("not json", ["inet h3own"]) == ({}, {})


def test_kernel_counters():
    snmp = ks.parse_snmp(fixture("machine-proc-net-snmp.txt"))
    assert snmp["Ip.OutDiscards"] == 9 and snmp["Icmp.OutDestUnreachs"] == 2 and snmp["Udp.NoPorts"] == 0
    assert "Ip.Forwarding" not in snmp and "Ip.InReceives" not in snmp
    netstat = ks.parse_snmp(fixture("machine-proc-net-netstat.txt"))
    assert netstat["TcpExt.IPReversePathFilter"] == 0 and "IpExt.InNoRoutes" in netstat
    snmp6 = ks.parse_snmp6(fixture("machine-proc-net-snmp6.txt"))
    assert set(snmp6) == set(ks.WANTED6) and snmp6["Ip6OutNoRoutes"] == 0


def test_conntrack_statistics():
    assert ks.parse_nf_conntrack_stat(fixture("machine-nf_conntrack-stat.txt")) == {
        "invalid": 0, "insert_failed": 0, "drop": 0, "early_drop": 0, "icmp_error": 0}
    rows = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error\n"
            "00000003  00000000 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000000\n"
            "00000003  00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000004 00000000 00000000\n")
    assert ks.parse_nf_conntrack_stat(rows) == {"invalid": 12, "insert_failed": 1, "drop": 4, "early_drop": 0, "icmp_error": 0}
    text = ("cpu=0   \tfound=0 invalid=3 insert=0 insert_failed=1 drop=0 early_drop=0 error=2 search_restart=0\n"
            "cpu=1   \tfound=0 invalid=1 insert=0 insert_failed=0 drop=5 early_drop=0 error=0 search_restart=0\n")
    assert ks.parse_conntrack_s(text) == {"invalid": 4, "insert_failed": 1, "drop": 5, "early_drop": 0, "icmp_error": 2}


def test_sysctl_paths_spell_dotted_interface_names():
    paths = ks.sysctl_paths(["vxlan.calico", "eth0"])
    assert paths["net.ipv4.conf.vxlan.calico.rp_filter"] == "/proc/sys/net/ipv4/conf/vxlan.calico/rp_filter"
    assert paths["net.ipv4.conf.eth0.rp_filter"] == "/proc/sys/net/ipv4/conf/eth0/rp_filter"
    assert paths["net.ipv4.ip_forward"] == "/proc/sys/net/ipv4/ip_forward"


def test_links_neighbours_and_routes():
    links = lk.parse_links(fixture("machine-ip-s-j-link.json"), ["veth-h3a", "lo", "absent0"])
    assert links == {"lo": {"mtu": 65536, "rx_errors": 0, "rx_dropped": 0, "tx_errors": 0, "tx_dropped": 0},
                     "veth-h3a": {"mtu": 1500, "rx_errors": 0, "rx_dropped": 0, "tx_errors": 0, "tx_dropped": 0}}
    assert lk.parse_neigh(fixture("machine-ip-j-neigh.json")) == [{"dst": "10.99.0.50", "dev": "veth-h3a", "state": "FAILED"}]
    assert lk.parse_neigh(fixture("machine-ip-j-neigh.json"), ["eth0"]) == []
    routes = fixture("machine-ip-j-route-all.json")
    assert lk.refusing_route(routes, "10.98.0.5") == "blackhole 10.98.0.0/24"
    assert lk.refusing_route(routes, "10.99.0.5") is None
    assert lk.parse_addresses(fixture("machine-ip-j-addr.json")) == [
        "10.99.0.1", "fd00:99::1", "fe80::30ec:cbff:fecf:79b1", "fe80::bcd0:1bff:fe08:2ffa"]   # loopback's are left out
    assert lk.parse_route_get(2, "", "RTNETLINK answers: Invalid argument\n") == {"error": "blackhole", "message": "Invalid argument"}
    assert lk.parse_route_get(2, "", "RTNETLINK answers: No route to host\n")["error"] == "unreachable"
    assert lk.parse_route_get(0, '[{"dst":"10.99.0.5","dev":"veth-h3a","prefsrc":"10.99.0.1","flags":[]}]', "") == {
        "dev": "veth-h3a", "prefsrc": "10.99.0.1"}


def test_a_node_without_the_tools_still_gets_a_snapshot_with_notes():
    snap = ctr.Snapshot(lambda name: None, ["eth0"], routes=["10.0.0.1"], final=True).collect()
    assert snap["counters"] == {} and snap["links"] == {}
    assert snap["notes"][:3] == ["could not read iptables rules: iptables-save is not installed",
                                 "could not read ip6tables rules: ip6tables-save is not installed",
                                 "could not read the interfaces, neighbours and routes: ip (iproute2) is not installed"]
    d = ctr.delta(ctr.compact(snap), snap)
    assert d["rules"] == [] and d["routes"] == {} and d["notes"] == snap["notes"]


def test_a_reader_that_hangs_is_killed_at_the_deadline(tmp_path):
    slow = tmp_path / "iptables-nft-save"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    tools = {"iptables-nft-save": str(slow)}
    snap = ctr.Snapshot(tools.get, [], timeout=0.3)
    got = snap.collect()
    assert got["counters"] == {}
    assert "could not read iptables-nft rules: iptables-nft-save did not answer within 0.3 s" in got["notes"]
    assert snap.procs[("save", "iptables-nft")].proc.returncode is not None


def test_snapshot_routes_are_checked():
    assert ctr.check_routes(["172.17.25.239 ", "fd00::1"]) == ["172.17.25.239", "fd00::1"]
    for bad, msg in ((["10.0.0.1; rm"], "snapshot_routes must hold IP addresses; '10.0.0.1; rm' is not one"),
                     (["10.0.0.%d" % i for i in range(9)], "snapshot_routes holds 9 addresses; give at most 8")):
        try:
            ctr.check_routes(bad)
        except ValueError as exc:
            assert str(exc) == msg
        else:
            raise AssertionError("accepted %r" % (bad,))
