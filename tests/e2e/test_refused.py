"""A refused connection is not a healthy flow: the trace says who refused it and exits 2.

The lab's pods serve HTTPS on 443 only (tests/lab/podserver.py), so a probe to 8443 gets the
pod kernel's RST+ACK: every hop sees the SYN and the RST, and before issue 12 the trace called
that "every hop saw the request and the response" and exited 0. Root only (the lab needs it).
"""
import os
import re

import pytest

from test_trace import DST, DST_VETH, SRC, SRC_VETH, flow, hop_rows, node_leftovers, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

REFUSED = "172.17.25.239 refused port 8443 (RST from the destination pod)"
WHY = ("the destination pod answered the SYN with RST+ACK (first seen on its veth node-b calic25e805a467): nothing in the pod "
       "accepts connections on port 8443")


def test_a_closed_port_is_refused_by_the_destination_pod(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, out, report = trace(tmp_path, *flow(port=8443))
    assert rc == 2, out[-3000:]
    assert report is not None, out[-3000:]
    assert report["healthy"] is False
    assert report["verdict"].startswith(REFUSED), report["verdict"]
    assert report["verdict"] == REFUSED + "; every hop saw the request and the reset"
    assert report["why"] == WHY
    cause = report["directions"]["response"]["cause"]
    assert (cause["kind"], cause["confidence"], cause["text"]) == ("reset", "high", WHY)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{6} node-b %s: %s\.8443 > %s\.\d+ RST\+ACK" % (
        DST_VETH, re.escape(DST), re.escape(SRC)), cause["evidence"][0]), cause["evidence"]
    assert report["directions"]["request"]["cause"] is None
    # the hop table still shows every hop seen, the SYN one way and the RST back
    path = [SRC_VETH, "tunl0", "eth0", "eth0", "tunl0", DST_VETH]
    nodes = ["node-a"] * 3 + ["node-b"] * 3
    expected = [("request", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes, path))]
    expected += [("response", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes[::-1], path[::-1]))]
    assert hop_rows(report) == expected
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "RST+ACK") in hop["summary"], hop
    # the callback's summary: the verdict, then the why line under it (wrapped at 80 columns)
    printed = " ".join(line.strip() for line in out.splitlines())
    assert "verdict: %s; every hop saw the request and the reset" % REFUSED in printed
    assert "reset why: %s" % WHY in printed
    # the role failed the play with the verdict
    assert "%s; every hop saw the request and the reset (reports in " % REFUSED in out
    md = next(tmp_path.glob("*/report.md")).read_text()
    assert "**Why:** %s\n" % WHY in md
    assert node_leftovers() == {}
