"""route_info's read of kube-proxy's rules is bounded (2 s each read) and says what it could not read: the note
reaches the path, its summary and the report's notes (a Service address is then traced as a plain address)."""
import time

import _synth
from test_hosting import INVENTORY, entry
from test_kubeproxy_ipvs import HANG, _Node
from test_services import flow

from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.modules.route_info import read_service_rules
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import summary, trace_path
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.report import render_markdown, report_from_plan

# what iptables-save prints on a node of kube-proxy's iptables mode, cut to the lines that matter here
SAVE = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
NONE4 = ("kube-proxy's rules were not read on node-a: none of iptables-save, iptables-nft-save, iptables-legacy-save, nft "
         "is installed; a Service address is traced as a plain address")
ETH0 = [{"ifname": "eth0"}]


def test_no_tool_installed_is_said_not_silent():
    node, notes = _Node({}), []
    assert read_service_rules(node, ETH0, "10.96.10.20", notes, "node-a") is None
    assert notes == [NONE4] and node.ran == []
    notes = []
    assert read_service_rules(_Node({}), ETH0, "fd00:10:96::14", notes, "node-a") is None
    assert notes == ["kube-proxy's rules were not read on node-a: none of ip6tables-save, ip6tables-nft-save, "
                     "ip6tables-legacy-save, nft is installed; a Service address is traced as a plain address"]


def test_tools_that_ran_and_found_no_service_say_nothing():
    notes = []
    node = _Node({"iptables-save": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "nft": ""})
    assert read_service_rules(node, ETH0, "10.96.10.20", notes, "node-a") is None
    assert notes == [] and len(node.ran) == 2
    # nft alone is a tool that could run
    assert read_service_rules(_Node({"nft": ""}), ETH0, "10.96.10.20", notes, "node-a") is None and notes == []


def test_each_read_is_bounded_at_two_seconds_and_the_timeout_said():
    assert sr.READ_SECONDS == 2.0
    node, notes = _Node({"iptables-save": HANG, "iptables-nft-save": SAVE}), []
    begin = time.time()
    found = read_service_rules(node, ETH0, "10.96.10.20", notes, "node-a")
    took = time.time() - begin
    assert 2.0 <= took < 5.0, took     # killed at the bound, not after the 30 s the tool sleeps
    assert found == {"source": "iptables-nft-save", "text": sr.trim(SAVE)}
    assert notes == ["kube-proxy's rules on node-a were read with iptables-nft-save, but iptables-save did not answer within 2 s"]
    assert node.ran == [["/usr/sbin/iptables-save"], ["/usr/sbin/iptables-nft-save"]]


def test_every_read_timing_out_leaves_the_address_plain_and_says_why():
    node, notes = _Node({"iptables-save": HANG, "nft": HANG}), []
    begin = time.time()
    assert read_service_rules(node, ETH0, "10.96.10.20", notes, "node-a", seconds=0.3) is None
    assert time.time() - begin < 3.0
    assert notes == ["kube-proxy's rules were not read on node-a: iptables-save did not answer within 0.3 s; nft did not "
                     "answer within 0.3 s; a Service address is traced as a plain address"]
    # ipvsadm hanging: the iptables rules are kept, the note names what is missing
    node, notes = _Node({"iptables-save": SAVE, "ipvsadm": HANG}), []
    found = read_service_rules(node, [{"ifname": "kube-ipvs0"}], "10.96.10.20", notes, "node-a", seconds=0.3)
    assert found == {"source": "iptables-save", "text": sr.trim(SAVE)}
    assert notes == ["kube-proxy's rules on node-a were read with iptables-save, but ipvsadm did not answer within 0.3 s"]


def test_kube_ipvs0_without_ipvsadm_is_said():
    notes = []
    found = read_service_rules(_Node({"iptables-save": SAVE}), [{"ifname": "kube-ipvs0"}], "10.96.10.20", notes, "node-a")
    assert found == {"source": "iptables-save", "text": sr.trim(SAVE)}
    assert notes == ["kube-proxy's IPVS rules were not read on node-a: it has kube-ipvs0 but ipvsadm is not installed; "
                     "a Service address IPVS translates is traced as a plain address"]


def test_the_note_reaches_the_path_its_summary_and_the_report(tmp_path):
    other = "wg (wireguard-tools) is not installed: the peers of wireguard.cali are unknown"
    path = trace_path("worker-a", entry(notes=[other, NONE4]), flow("10.96.10.20"), INVENTORY)
    assert path["dst"]["host"] is None and path["service"] is None     # traced as a plain address
    assert path["notes"] == [NONE4] and summary(path)["notes"] == [NONE4]
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    plan["path"] = summary(path)
    report = analysis.analyze(plan, caps)
    assert report["notes"][0] == NONE4
    assert "- %s" % NONE4 in render_markdown(report)
    assert report_from_plan(plan, "the play failed")["notes"] == [NONE4]
    # without the note: nothing added
    plan["path"] = summary(trace_path("worker-a", entry(), flow("10.96.10.20"), INVENTORY))
    assert NONE4 not in analysis.analyze(plan, caps)["notes"]
