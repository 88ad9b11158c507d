# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""junit.xml: one trace as a JUnit test suite, for the CI job that ran it (Jenkins, GitLab).

A pure function over the report dict made by ``analysis.analyze()`` (or ``report.report_from_plan``),
written with the standard library's ElementTree in the format the Jenkins xUnit plugin's
``junit-10.xsd`` describes (the Ant/Surefire format GitLab also reads):

- one ``<testsuite>`` named after the flow, ``hoptrace 172.17.25.79 -> 172.17.25.239 tcp/443``;
- one ``<testcase>`` per hop and direction, ``classname`` ``hoptrace.<direction>``, ``name``
  ``<index> <node> <interface>``, ``time`` the hop's delay from the previous hop in seconds
  (microseconds; the suite's ``time``, their sum, in milliseconds as the schema wants);
  a hop that did not see the flow (LOST, partial) has a ``<failure>`` with the verdict as its
  message and the cause in its text; a hop seen nowhere because its capture did not work
  (missed) an ``<error>``; a hop without a capture (unknown) or of a direction that never
  started (none) is ``<skipped>`` with the reason;
- one more ``<testcase>`` ``hoptrace`` / ``verdict`` that fails whenever the trace is not healthy,
  so that a refused connection (every hop saw it) still fails the suite.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# characters XML 1.0 cannot carry, even escaped
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _s(value):
    return _INVALID.sub("?", "" if value is None else str(value))


def _seconds(ms):
    return "%.6f" % (max(0.0, float(ms)) / 1000.0) if ms is not None else "0.000000"


def suite_name(report):
    """``hoptrace SRC -> DST PROTO/PORT`` (no port for icmp)."""
    run = report.get("run") or {}
    proto = run.get("proto") or "tcp"
    where = proto if proto == "icmp" or not run.get("port") else "%s/%s" % (proto, run["port"])
    return "hoptrace %s -> %s %s" % (run.get("src") or "?", run.get("dst") or "?", where)


def _cause(report, direction):
    cause = ((report.get("directions") or {}).get(direction) or {}).get("cause") or {}
    return cause


def _failure_text(report, hop):
    direction = hop.get("direction")
    lines = ["verdict: %s" % (report.get("verdict") or "none")]
    cause = _cause(report, direction)
    if cause.get("text"):
        lines.append("cause (%s, confidence %s): %s" % (cause.get("kind"), cause.get("confidence"), cause["text"]))
    elif report.get("why"):
        lines.append("why: %s" % report["why"])
    stopped = ((report.get("directions") or {}).get(direction) or {}).get("stopped_at")
    if stopped:
        lines.append("%s stopped at %s" % (direction, stopped))
    lines.append("%s hop %s %s %s: %s packets, %s lost from the previous hop" % (
        direction, hop.get("index"), hop.get("node"), hop.get("interface") or "?", hop.get("packets"),
        hop.get("lost_from_previous") or 0))
    if hop.get("loss_pct") is not None:
        lines.append("loss: %s%%" % hop["loss_pct"])
    lines.extend(cause.get("evidence") or [])
    return "\n".join(lines)


def _message(report, hop):
    direction = hop.get("direction")
    text = report.get("verdict") or "not seen"
    cause = _cause(report, direction).get("text") or report.get("why")
    return "%s (why: %s)" % (text, cause) if cause else text


def render_junit(report):
    """junit.xml as a string (UTF-8 XML declaration included)."""
    report = report or {}
    hops = report.get("hops") or []
    suite = ET.Element("testsuite", {"name": _s(suite_name(report))})
    props = ET.SubElement(suite, "properties")
    run = report.get("run") or {}
    for key, value in (("src", run.get("src")), ("dst", run.get("dst")), ("proto", run.get("proto")), ("port", run.get("port")),
                       ("encap", report.get("encap")), ("src_node", report.get("src_node")), ("dst_node", report.get("dst_node")),
                       ("healthy", str(bool(report.get("healthy"))).lower()), ("complete", str(bool(report.get("complete"))).lower()),
                       ("schema", report.get("schema"))):
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": _s(value)})
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    for hop in hops:
        direction = hop.get("direction") or "request"
        status = str(hop.get("status") or "unknown").lower()
        seconds = _seconds(hop.get("delay_ms") if status in ("seen", "partial") else None)
        total += float(seconds)
        case = ET.SubElement(suite, "testcase", {
            "classname": _s("hoptrace.%s" % direction),
            "name": _s("%s %s %s" % (hop.get("index"), hop.get("node"), hop.get("interface") or "?")),
            "time": seconds})
        counts["tests"] += 1
        if status in ("lost", "partial"):
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", {"message": _s(_message(report, hop)), "type": "hoptrace.%s" % status})
            failure.text = _s(_failure_text(report, hop))
        elif status == "missed":
            counts["errors"] += 1
            error = ET.SubElement(case, "error", {
                "message": _s("%s %s saw nothing while later hops saw the %s: its capture missed them" % (
                    hop.get("node"), hop.get("interface") or "?", direction)),
                "type": "hoptrace.missed"})
            error.text = _s("verdict: %s" % report.get("verdict"))
        elif status in ("unknown", "none"):
            counts["skipped"] += 1
            if status == "none":
                reason = "the %s never started, so no hop of it saw a packet" % direction
            else:
                cap = next((c for c in report.get("captures") or [] if c.get("key") == hop.get("capture")), {})
                reason = "not captured"
                if cap.get("status") and cap.get("status") != "ok":
                    reason += ": %s%s" % (cap["status"], " (%s)" % cap["error"] if cap.get("error") else "")
                elif not cap:
                    reason += ": %s" % (report.get("verdict") or "no capture")
            ET.SubElement(case, "skipped", {"message": _s(reason), "type": "hoptrace.%s" % status})
        if hop.get("summary") and hop.get("packets"):
            ET.SubElement(case, "system-out").text = _s("seen: %s (%s packets)" % (hop["summary"], hop["packets"]))
    verdict = ET.SubElement(suite, "testcase", {"classname": "hoptrace", "name": "verdict", "time": "0.000000"})
    counts["tests"] += 1
    if not report.get("healthy"):
        counts["failures"] += 1
        failure = ET.SubElement(verdict, "failure", {"message": _s(report.get("verdict") or "no verdict"), "type": "hoptrace.unhealthy"})
        failure.text = _s("\n".join(["verdict: %s" % report.get("verdict")] + (["why: %s" % report["why"]] if report.get("why") else [])
                                    + ["note: %s" % n for n in report.get("notes") or []]))
    for key, value in counts.items():
        suite.set(key, str(value))
    # junit-10.xsd allows at most 3 decimals on the suite (SUREFIRE_TIME); test cases keep microseconds
    suite.set("time", "%.3f" % total)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
