"""report.html in a real browser, and junit.xml for CI, from a real trace with a drop injected.

A drop rule on node-b's tunnel (the response leaving it) on the lab, the real playbook over real SSH,
then Debian's headless Chromium opens the run folder's report.html from disk: the DOM it builds must
draw that hop as lost, the hops before it as seen, and the stop marker with its cause; screenshots
in a narrow and a wide window must have the window's size. The same run's junit.xml (also written
where ``-e junit=`` says) must fail exactly the hops that lost the flow and validate against the
Jenkins xUnit plugin's JUnit schema. Chromium and xmllint are installed by ``make apt``.
"""
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from test_trace import DST, DST_VETH, SRC, SRC_VETH, flow, trace

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
XSD = os.path.join(ROOT, "tests", "unit", "fixtures", "junit", "junit-10.xsd")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(tmp_path, *args):
    """Headless Chromium with nothing of its own going to the network (no sync, updates, QUIC)."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--user-data-dir=%s" % (tmp_path / "chromium-profile")] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


class SvgElements(HTMLParser):
    """Attributes of every <g> and <svg> element of the page (as the browser serialised its DOM)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.groups, self.svgs, self._open = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "g":
            el = dict(attrs, _text="")
            self.groups.append(el)
            self._open.append(el)
        elif tag == "svg":
            self.svgs.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag == "g" and self._open:
            self._open.pop()

    def handle_data(self, data):
        for el in self._open:
            el["_text"] += data


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def drop_run(lab_factory, tmp_path):
    """One trace with the response dropped as it leaves into node-b's tunnel; returns the run folder."""
    lab_factory("ipip", 2)
    labctl.fault_add("drop", "node-b", iface="tunl0", direction="out", src=DST, dst=SRC, proto="tcp", port="443")
    ci = tmp_path / "ci"
    ci.mkdir()
    try:
        rc, out, report = trace(tmp_path / "out", *flow(), "-e", "probe_timeout=1", "-e", "junit=%s" % (ci / "hoptrace.xml"))
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    assert report["verdict"] == "response reached node-b %s and was not seen on node-b tunl0 (routing into the tunnel)" % DST_VETH
    run = next((tmp_path / "out").glob("*/report.json")).parent
    # what the analysis says about why (tested with the analysis); the page and the XML must show it
    cause = (report["directions"]["response"]["cause"] or {}).get("text") or report["why"]
    assert cause
    return run, ci / "hoptrace.xml", report, cause


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium (Debian package, `make apt`) is not installed")
def test_report_html_in_chromium_draws_the_drop(drop_run, tmp_path):
    run, _junit, report, cause = drop_run
    page = run / "report.html"
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = SvgElements(dom.stdout)
    assert sorted(s.get("data-layout") for s in parsed.svgs) == ["narrow", "wide"]
    hops = [(g["data-direction"], int(g["data-index"]), g["data-node"], g["data-interface"], g["data-status"])
            for g in parsed.groups if g.get("class") == "hop"]
    response = [h for h in hops if h[0] == "response"][:6]
    assert response == [
        ("response", 1, "node-b", DST_VETH, "seen"), ("response", 2, "node-b", "tunl0", "lost"),
        ("response", 3, "node-b", "eth0", "lost"), ("response", 4, "node-a", "eth0", "lost"),
        ("response", 5, "node-a", "tunl0", "lost"), ("response", 6, "node-a", SRC_VETH, "lost")]
    request = [h for h in hops if h[0] == "request"][:6]
    assert [h[4] for h in request] == ["seen"] * 6 and request[0][3] == SRC_VETH and request[5][3] == DST_VETH
    stops = [g for g in parsed.groups if g.get("class") == "stop"]
    assert [(s["data-direction"], s["data-node"], s["data-interface"], s["data-cause"]) for s in stops] == [
        ("response", "node-b", "tunl0", cause)] * 2
    assert stops[0]["_text"] == "response stopped at node-b tunl0: %s" % cause
    # what the browser fetched: nothing; no script at all in the page
    assert "<script" not in dom.stdout
    for name, size in (("narrow", (420, 900)), ("wide", (1280, 800))):
        png = tmp_path / ("report-%s.png" % name)
        shot = chromium(tmp_path, "--screenshot=%s" % png, "--window-size=%d,%d" % size, page.as_uri())
        assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
        assert png_size(png) == size
        assert png.stat().st_size > 20000, "a %s screenshot of %d bytes is blank" % (name, png.stat().st_size)


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint (Debian libxml2-utils, `make apt`) is not installed")
def test_junit_xml_of_the_drop_fails_the_lost_hops(drop_run):
    run, copy, report, cause = drop_run
    assert copy.read_bytes() == (run / "junit.xml").read_bytes()
    check = subprocess.run(["xmllint", "--noout", "--schema", XSD, str(copy)], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr
    suite = ET.parse(str(copy)).getroot()
    assert suite.get("name") == "hoptrace %s -> %s tcp/443" % (SRC, DST)
    failed = [(c.get("classname"), c.get("name")) for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == [("hoptrace.response", "2 node-b tunl0"), ("hoptrace.response", "3 node-b eth0"),
                      ("hoptrace.response", "4 node-a eth0"), ("hoptrace.response", "5 node-a tunl0"),
                      ("hoptrace.response", "6 node-a %s" % SRC_VETH), ("hoptrace", "verdict")]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("13", "6", "0", "0")
    message = suite.findall("testcase")[7].find("failure").get("message")
    assert message == "%s (why: %s)" % (report["verdict"], cause)
