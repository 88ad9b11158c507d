"""The DNAT node's conntrack entry of a traced Service's connection (plugin_utils/service_conntrack.py)
and its use in the analysis: the backend it names, cross-checked with the captures after the DNAT,
and the masquerade it shows.

Entries are parsed from the real listings of tests/unit/fixtures/conntrack (sources in their headers);
the captures are the synthetic seed trace (_synth)."""
import os

import _synth

from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_conntrack as sc

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "conntrack")
MONGO = {"address": "10.0.223.224", "port": 27017, "dnat_on": "aks-0", "read_on": "aks-0", "endpoints": ["10.244.1.7:27017"],
         "backend": {"ip": "10.244.1.7", "port": 27017}}
RUN = {"src": "10.244.2.6", "proto": "tcp"}


def entries(name, src, dst, port, proto="tcp", sports=()):
    with open(os.path.join(FIX, name)) as handle:
        return ct.parse(handle.read(), ct.check_flow({"src": src, "dst": dst, "port": port, "proto": proto, "sports": list(sports)}))


def reading(found, by="conntrack -L -p tcp ..."):
    return dict(ct.bounded(found, by))


def aks(sports=(34659,)):
    return entries("aks-engine-1912-clusterip.txt", "10.244.2.6", "10.0.223.224", 27017, sports=sports)


def test_entry_sentences_dnat_masquerade_and_neither():
    (dnat,) = aks()[:1]
    assert sc.entry_text("aks-0", dnat) == "conntrack on aks-0: 10.244.2.6:34659 -> 10.0.223.224:27017 was DNATed to 10.244.1.7:27017"
    (both,) = entries("machine-conntrack-L-dnat-snat.txt", "10.99.1.1", "10.96.99.1", 443)
    assert sc.entry_text("n", both) == ("conntrack on n: 10.99.1.1:45436 -> 10.96.99.1:443 was DNATed to 10.99.1.1:8443 "
                                        "and masqueraded to 10.99.1.1:40000")
    snat = entries("k8s-38802-conntrack-L.txt", "10.10.28.7", "10.28.65.157", 2379)[0]
    assert sc.entry_text("n", snat) == ("conntrack on n: 10.10.28.7:59492 -> 10.28.65.157:2379 was not DNATed "
                                        "and masqueraded to 10.28.65.112:59492")
    (udp6,) = entries("machine-proc-net-nf_conntrack.txt", "fd00:99::1", "fd00:96::1", 53, "udp")
    assert sc.entry_text("n", udp6) == "conntrack on n: [fd00:99::1]:48535 -> [fd00:96::1]:53 was DNATed to [fd00:99::1]:5353"


def test_one_endpoint_confirmed_says_nothing_more():
    got = sc.judge(MONGO, reading(aks()), RUN)
    assert (got["backend"], got["chosen_by"], got["snat_to"], got["notes"]) == (None, None, None, [])
    assert got["conntrack"]["text"] == "conntrack on aks-0: 10.244.2.6:34659 -> 10.0.223.224:27017 was DNATed to 10.244.1.7:27017"
    assert got["conntrack"]["node"] == "aks-0" and len(got["conntrack"]["entries"]) == 2


def test_one_endpoint_and_another_backend_in_conntrack_is_a_note():
    svc = dict(MONGO, endpoints=["10.244.1.9:27017"], backend={"ip": "10.244.1.9", "port": 27017})
    assert sc.judge(svc, reading(aks()), RUN)["notes"] == [
        "conntrack on aks-0: 10.244.2.6:34659 -> 10.0.223.224:27017 was DNATed to 10.244.1.7:27017 (2 connections, all alike), "
        "not to the Service's only endpoint 10.244.1.9:27017 that kube-proxy's rules on aks-0 name"]


def test_nothing_read_or_no_endpoints_is_silent_and_a_missing_tool_a_note():
    assert sc.judge(MONGO, None, RUN) == {"backend": None, "chosen_by": None, "snat_to": None, "conntrack": None, "notes": []}
    # kube-proxy's REJECT leaves no entry: no noise
    assert sc.judge(dict(MONGO, endpoints=[], backend=None), reading([]), RUN)["notes"] == []
    two = dict(MONGO, endpoints=["10.244.1.7:27017", "10.244.3.4:27017"], backend=None)
    missing = ct.unread("conntrack is not installed and there is no /proc/net/nf_conntrack")
    got = sc.judge(two, missing, RUN, picked=("10.244.1.7", 27017), captured="x")
    assert (got["backend"], got["chosen_by"]) == (None, None)
    assert got["notes"] == ["conntrack on aks-0 could not be read (conntrack is not installed and there is no "
                            "/proc/net/nf_conntrack); the backend is the captures' pick"]
    assert got["conntrack"] == {"node": "aks-0", "by": None, "entries": [], "more": 0, "text": None}
    assert sc.judge(MONGO, reading([]), RUN)["notes"] == [
        "conntrack on aks-0 has no entry for 10.244.2.6 -> 10.0.223.224:27017 (tcp) after the probe"]


TWO = dict(MONGO, endpoints=["10.244.1.7:27017", "10.244.3.4:27017"], backend=None)
CAPTURED = "its hops saw the flow after the DNAT, those of 10.244.3.4:27017 did not"
SAID = "conntrack on aks-0: 10.244.2.6:34659 -> 10.0.223.224:27017 was DNATed to 10.244.1.7:27017 (2 connections, all alike)"


def test_several_endpoints_conntrack_and_the_captures_agree_in_one_sentence():
    got = sc.judge(TWO, reading(aks()), RUN, picked=("10.244.1.7", 27017), captured=CAPTURED)
    assert got["backend"] == ("10.244.1.7", 27017)
    assert got["chosen_by"] == SAID + "; the captures agree: " + CAPTURED
    assert got["notes"] == []


def test_several_endpoints_disagreeing_or_silent_captures_are_notes():
    got = sc.judge(TWO, reading(aks()), RUN, picked=("10.244.3.4", 27017), captured="whatever")
    assert (got["backend"], got["chosen_by"]) == (("10.244.1.7", 27017), SAID)
    assert got["notes"] == ["conntrack on aks-0 and the captures disagree: the hops of 10.244.3.4:27017 saw the flow after the DNAT, "
                            "conntrack says 10.244.1.7:27017; the report follows conntrack"]
    got = sc.judge(TWO, reading(aks()), RUN, picked=None)
    assert (got["backend"], got["chosen_by"]) == (("10.244.1.7", 27017), SAID)
    assert got["notes"] == ["no capture after the DNAT saw the flow, so only conntrack tells the backend: 10.244.1.7:27017"]


def test_several_backends_in_conntrack_or_one_outside_the_endpoints_leave_it_to_the_captures():
    mixed = aks()
    mixed[1] = dict(mixed[1], reply=dict(mixed[1]["reply"], src="10.244.3.4"))
    got = sc.judge(TWO, reading(mixed), RUN, picked=("10.244.3.4", 27017), captured=CAPTURED)
    assert (got["backend"], got["chosen_by"], got["conntrack"]["text"]) == (None, None, None)
    assert got["notes"] == ["conntrack on aks-0: the flow's 2 connections went to 10.244.1.7:27017 (1), 10.244.3.4:27017 (1); "
                            "the backend is the captures' pick"]
    other = dict(TWO, endpoints=["10.244.3.4:27017", "10.244.3.5:27017"])
    assert sc.judge(other, reading(aks()), RUN, picked=None)["notes"] == [
        SAID + ", which is none of the endpoints kube-proxy's rules on aks-0 name; the backend is the captures' pick"]


def test_an_entry_without_dnat_predates_the_rules_and_unreplied_is_said():
    svc = {"address": "10.28.65.157", "port": 2379, "dnat_on": "n", "endpoints": ["10.2.0.1:2379", "10.2.0.2:2379"], "backend": None}
    old = entries("k8s-38802-conntrack-L.txt", "10.10.28.7", "10.28.65.157", 2379)
    assert sc.judge(svc, reading(old), {"src": "10.10.28.7"}, picked=None)["notes"] == [
        "conntrack on n: 10.10.28.7:59492 -> 10.28.65.157:2379 was not DNATed and masqueraded to 10.28.65.112:59492: its entry predates "
        "kube-proxy's rules for the Service, or they did not match it; the backend is the captures' pick"]
    dns = entries("k8s-126130-udp-clusterip.txt", "10.11.4.5", "10.12.201.0", 8125, "udp")
    svc = {"address": "10.12.201.0", "port": 8125, "dnat_on": "gke-1", "endpoints": ["10.11.4.22:8125", "10.11.5.3:8125"],
           "backend": None}
    got = sc.judge(svc, reading(dns), {"src": "10.11.4.5", "proto": "udp"}, picked=None)
    assert got["chosen_by"] == ("conntrack on gke-1: 10.11.4.5:48931 -> 10.12.201.0:8125 was DNATed to 10.11.4.22:8125, "
                                "and no answer came back ([UNREPLIED])")


def test_masquerade_gives_snat_to_and_a_note():
    (both,) = entries("machine-conntrack-L-dnat-snat.txt", "10.99.1.1", "10.96.99.1", 443)
    svc = {"address": "10.96.99.1", "port": 443, "dnat_on": "n", "endpoints": ["10.99.1.1:8443"], "backend": {"ip": "10.99.1.1", "port": 8443}}
    got = sc.judge(svc, reading([both]), {"src": "10.99.1.1"})
    assert got["snat_to"] == "10.99.1.1"
    assert got["notes"] == ["the connection was masqueraded on n: the backend answers 10.99.1.1:40000, not 10.99.1.1:45436 (conntrack)"]


# ---------------------------------------------------------------- in the analysis

def _svc(endpoints):
    return {"name": "default/web", "port_name": "default/web:https", "kind": "clusterip", "address": "10.96.10.30", "port": 443,
            "mode": "iptables", "read_on": "node-a", "endpoints": endpoints, "masquerade": False, "rejected": None,
            "dnat_on": "node-a", "backend": None, "chosen_by": None, "line": "-"}


def _entry(backend, sport=_synth.SPORT, snat=None):
    return {"family": "ipv4", "proto": "tcp", "timeout": 119, "state": "TIME_WAIT", "flags": ["ASSURED"], "mark": 0, "zone": None,
            "orig": {"src": _synth.SRC, "dst": "10.96.10.30", "sport": sport, "dport": 443},
            "reply": {"src": backend, "dst": snat or _synth.SRC, "sport": 443, "dport": 61000 if snat else sport}}


def _with_conntrack(caps, found):
    by = "conntrack -L -p tcp --orig-src %s --orig-dst 10.96.10.30 --dport 443" % _synth.SRC
    for cap in caps:
        if cap["node"] == "node-a":
            cap["counters"] = {"flow_conntrack": ct.bounded(found, by)}
    return caps


def _candidates_plan(plan):
    """The seed trace's plan as a Service with two endpoints: the seed's backend, and one no capture sees."""
    svc = _svc(["172.17.25.239:443", "172.17.25.240:443"])
    cands = []
    for dst in ("172.17.25.239", "172.17.25.240"):
        cands.append({"run": dict(plan["run"], dst=dst), "src_node": "node-a", "dst_node": "node-b", "encap": "ipip",
                      "response_encap": "ipip", "hops": plan["hops"],
                      "service": dict(svc, backend={"ip": dst, "port": 443, "node": "node-b", "pod": None})})
    return dict(plan, candidates=cands, service=svc)


def test_analysis_of_two_endpoints_agreeing(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    rep = analysis.analyze(_candidates_plan(plan), _with_conntrack(caps, [_entry(_synth.DST)]))
    assert rep["service"]["chosen_by"] == (
        "conntrack on node-a: 172.17.25.79:38362 -> 10.96.10.30:443 was DNATed to 172.17.25.239:443; the captures agree: "
        "its hops saw the flow after the DNAT, those of 172.17.25.240:443 did not")
    assert rep["service"]["backend"]["ip"] == _synth.DST and rep["healthy"] is True
    assert not [n for n in rep["notes"] if "conntrack" in n]


def test_analysis_of_two_endpoints_follows_conntrack_when_they_disagree(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip")
    rep = analysis.analyze(_candidates_plan(plan), _with_conntrack(caps, [_entry("172.17.25.240")]))
    assert rep["service"]["backend"]["ip"] == "172.17.25.240" and rep["run"]["dst"] == "172.17.25.240"
    assert rep["service"]["chosen_by"] == "conntrack on node-a: 172.17.25.79:38362 -> 10.96.10.30:443 was DNATed to 172.17.25.240:443"
    assert ("conntrack on node-a and the captures disagree: the hops of 172.17.25.239:443 saw the flow after the DNAT, conntrack says "
            "172.17.25.240:443; the report follows conntrack") in rep["notes"]
    # without a conntrack reading the captures' pick stays as it was
    for cap in caps:
        cap.pop("counters", None)
    rep = analysis.analyze(_candidates_plan(plan), caps)
    assert rep["service"]["chosen_by"] == "the captures: its hops saw the flow after the DNAT, those of 172.17.25.240:443 did not"
    assert rep["service"]["conntrack"] is None


def test_analysis_of_a_masqueraded_path_says_where_the_answer_goes(tmp_path):
    plan, caps = _synth.make_trace(tmp_path, "ipip", drop=("response", 4))
    svc = dict(_svc(["172.17.25.239:443"]), backend={"ip": _synth.DST, "port": 443, "node": "node-b", "pod": None},
               chosen_by="the Service's only endpoint")
    rep = analysis.analyze(dict(plan, service=svc), _with_conntrack(caps, [_entry(_synth.DST, snat="10.240.128.12")]))
    assert rep["verdict"] == (
        "10.96.10.30:443 was DNATed by kube-proxy on node-a to 172.17.25.239:443 on node-b and masqueraded to 10.240.128.12 "
        "(the backend answers 10.240.128.12, not the pod); response reached node-b eth0 and was not seen on node-a eth0 "
        "(underlay network between the nodes)")
    assert (rep["service"]["snat_to"], rep["service"]["masquerade"]) == ("10.240.128.12", True)
    assert rep["service"]["line"].endswith("chosen by kube-proxy's DNAT on node-a (masquerading the source to 10.240.128.12)")
    assert ("the connection was masqueraded on node-a: the backend answers 10.240.128.12:61000, not 172.17.25.79:38362 (conntrack)"
            in rep["notes"])
    # the request stopping: the masquerade is said, the answer's way is not in question
    (tmp_path / "request").mkdir()
    plan, caps = _synth.make_trace(tmp_path / "request", "ipip", drop=("request", 5))
    rep = analysis.analyze(dict(plan, service=svc), _with_conntrack(caps, [_entry(_synth.DST, snat="10.240.128.12")]))
    assert rep["verdict"].startswith("10.96.10.30:443 was DNATed by kube-proxy on node-a to 172.17.25.239:443 on node-b and masqueraded "
                                     "to 10.240.128.12; request reached node-b eth0 and was not seen on node-b tunl0")
