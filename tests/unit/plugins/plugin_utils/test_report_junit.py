"""report_junit: junit.xml from known reports, checked element by element and against the JUnit
schema the Jenkins xUnit plugin uses (tests/unit/fixtures/junit/junit-10.xsd) with xmllint.

xmllint comes from Debian's libxml2-utils, which the Makefile's apt target installs; only where it
is absent (a bare developer machine) is the schema check skipped, and the skip says so.
"""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, report, report_junit

import _synth

XSD = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "junit", "junit-10.xsd")
XMLLINT = shutil.which("xmllint")
needs_xmllint = pytest.mark.skipif(XMLLINT is None, reason="xmllint (Debian libxml2-utils, `make apt`) is not installed: "
                                                           "junit.xml cannot be validated against junit-10.xsd here")


def _report(tmp_path, **kw):
    plan, caps = _synth.make_trace(tmp_path, "ipip", **kw)
    return analysis.analyze(plan, caps)


def _cases(xml):
    suite = ET.fromstring(xml)
    out = []
    for case in suite.findall("testcase"):
        outcome = [(c.tag, c.get("type")) for c in case if c.tag in ("failure", "error", "skipped")]
        out.append((case.get("classname"), case.get("name"), outcome[0] if outcome else None))
    return suite, out


def _validate(path):
    return subprocess.run([XMLLINT, "--noout", "--schema", XSD, str(path)], capture_output=True, text=True, timeout=30, check=False)


def test_drop_fails_the_hops_that_lost_the_flow(tmp_path):
    rep = _report(tmp_path, drop=("request", 5))
    suite, cases = _cases(report_junit.render_junit(rep))
    assert suite.tag == "testsuite" and suite.get("name") == "hoptrace 172.17.25.79 -> 172.17.25.239 tcp/443"
    assert cases[:6] == [
        ("hoptrace.request", "1 node-a cali41f14107a8d", None), ("hoptrace.request", "2 node-a tunl0", None),
        ("hoptrace.request", "3 node-a eth0", None), ("hoptrace.request", "4 node-b eth0", None),
        ("hoptrace.request", "5 node-b tunl0", ("failure", "hoptrace.lost")),
        ("hoptrace.request", "6 node-b calic25e805a467", ("failure", "hoptrace.lost"))]
    assert cases[6] == ("hoptrace.response", "1 node-b calic25e805a467", ("skipped", "hoptrace.none"))
    assert cases[12] == ("hoptrace", "verdict", ("failure", "hoptrace.unhealthy"))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("13", "3", "0", "6")
    # hop delays in seconds: 0.050 + 0.050 + 0.350 ms; the suite's time is their sum with the schema's 3 decimals
    assert [c.get("time") for c in suite.findall("testcase")][:4] == ["0.000000", "0.000050", "0.000050", "0.000350"]
    assert suite.get("time") == "0.000"
    failure = suite.findall("testcase")[4].find("failure")
    assert failure.get("message") == ("request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation) "
                                      "(why: no packet in the captures explains the loss)")
    assert failure.text.splitlines() == [
        "verdict: request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation)",
        "why: no packet in the captures explains the loss",
        "request stopped at node-b tunl0",
        "request hop 5 node-b tunl0: 0 packets, 0 lost from the previous hop"]
    skipped = suite.findall("testcase")[6].find("skipped")
    assert skipped.get("message") == "the response never started, so no hop of it saw a packet"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": "443", "encap": "ipip",
                     "src_node": "node-a", "dst_node": "node-b", "healthy": "false", "complete": "true", "schema": "1"}


def test_healthy_trace_passes_every_case(tmp_path):
    suite, cases = _cases(report_junit.render_junit(_report(tmp_path)))
    assert len(cases) == 13 and all(c[2] is None for c in cases)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("13", "0", "0", "0")
    assert suite.findall("testcase")[0].find("system-out").text == "seen: SYN PSH+ACK ACK (4 packets)"


def test_a_cause_goes_into_the_failure(tmp_path):
    rep = _report(tmp_path, drop=("response", 2))
    rep["directions"]["response"]["cause"] = {
        "kind": "icmp-unreachable", "confidence": "high", "text": "node-b rejected the response (ICMP host unreachable)",
        "evidence": ["12:00:00.000001 node-b tunl0: 10.240.0.9 > 172.17.25.239 ICMP host unreachable"]}
    suite, cases = _cases(report_junit.render_junit(rep))
    assert cases[7] == ("hoptrace.response", "2 node-b tunl0", ("failure", "hoptrace.lost"))
    failure = suite.findall("testcase")[7].find("failure")
    assert failure.get("message").endswith("(why: node-b rejected the response (ICMP host unreachable))")
    assert "cause (icmp-unreachable, confidence high): node-b rejected the response (ICMP host unreachable)" in failure.text
    assert failure.text.splitlines()[-1] == "12:00:00.000001 node-b tunl0: 10.240.0.9 > 172.17.25.239 ICMP host unreachable"


def test_a_refusal_seen_on_every_hop_still_fails_the_suite(tmp_path):
    rep = _report(tmp_path)
    rep.update(healthy=False, verdict="172.17.25.239 refused port 443 (RST from the destination pod)",
               why="the destination pod answered the SYN with RST+ACK")
    suite, cases = _cases(report_junit.render_junit(rep))
    assert [c[2] for c in cases[:12]] == [None] * 12
    assert cases[12] == ("hoptrace", "verdict", ("failure", "hoptrace.unhealthy"))
    assert suite.findall("testcase")[12].find("failure").get("message") == rep["verdict"]
    assert suite.get("failures") == "1"


def test_plan_only_report_skips_every_hop_with_the_reason():
    rep = report.report_from_plan(_synth.make_plan("vxlan"), "the play failed at task 'arm captures' on node-b")
    suite, cases = _cases(report_junit.render_junit(rep))
    assert len(cases) == 13 and [c[2] for c in cases[:12]] == [("skipped", "hoptrace.unknown")] * 12
    assert suite.findall("testcase")[0].find("skipped").get("message") == (
        "not captured: no verdict: the play failed at task 'arm captures' on node-b")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("13", "1", "12")


def test_unreachable_capture_reason_and_hostile_names(tmp_path):
    rep = _report(tmp_path)
    rep["hops"][3].update(status="unknown", packets=None)
    cap = next(c for c in rep["captures"] if c["key"] == rep["hops"][3]["capture"])
    cap.update(status="unreachable", error="ssh: connect to host 10.240.0.9 port 22: Connection refused")
    rep["hops"][4].update(status="missed", packets=0)
    rep["hops"][0]["node"] = 'a<b>&"c\x01\x1b'
    xml = report_junit.render_junit(rep)
    suite, cases = _cases(xml)
    assert cases[0][1] == '1 a<b>&"c?? cali41f14107a8d'
    assert cases[3][2] == ("skipped", "hoptrace.unknown")
    assert suite.findall("testcase")[3].find("skipped").get("message") == (
        "not captured: unreachable (ssh: connect to host 10.240.0.9 port 22: Connection refused)")
    assert cases[4][2] == ("error", "hoptrace.missed")
    assert (suite.get("errors"), suite.get("skipped")) == ("1", "1")


@needs_xmllint
@pytest.mark.parametrize("case", ["healthy", "drop", "plan", "hostile"])
def test_junit_xml_validates_against_the_jenkins_schema(tmp_path, case):
    if case == "plan":
        rep = report.report_from_plan(_synth.make_plan("vxlan"), "failed")
    else:
        rep = _report(tmp_path, drop=("request", 3) if case == "drop" else None)
    if case == "hostile":
        rep["hops"][0]["node"] = "n\x00<&>\"'\u2028"
        rep["verdict"] = "]]> <!-- --> \x07"
        rep["healthy"] = False
    out = tmp_path / "out"
    paths = report.write_report_files(rep, str(out), junit=str(tmp_path / "ci-junit.xml"))
    assert paths["junit"] == str(out / "junit.xml") and paths["junit_copy"] == str(tmp_path / "ci-junit.xml")
    assert (out / "junit.xml").read_bytes() == (tmp_path / "ci-junit.xml").read_bytes()
    result = _validate(out / "junit.xml")
    assert result.returncode == 0 and "validates" in result.stderr, result.stderr


@needs_xmllint
def test_the_schema_check_can_fail(tmp_path):
    """The validation is not vacuous: a suite without its required counts is refused."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?>\n<testsuite name="x"><testcase name="a"/></testsuite>\n')
    result = _validate(bad)
    assert result.returncode != 0 and "attribute 'tests' is required" in result.stderr, result.stderr
