"""report_html: the drawn path, the hop table and the links of report.html, without a browser.

The page is parsed with the standard library's HTMLParser, so the assertions are on elements and
attributes (what a browser would build), not on substrings of the markup.
"""
from html.parser import HTMLParser

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, report, report_html

import _synth


class Page(HTMLParser):
    """Every element as (tag, attrs, text inside it); text of nested elements included."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack, self.tags = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        self.tags.append(tag)
        if tag not in ("meta", "path", "rect", "line", "link", "br"):
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})
        self.tags.append(tag)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"] += data

    def find(self, tag=None, **attrs):
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]


def _report(tmp_path, **kw):
    plan, caps = _synth.make_trace(tmp_path, "ipip", **kw)
    return analysis.analyze(plan, caps)


def _hops(page, layout="wide"):
    svg = page.find("svg", data_layout=layout)
    assert len(svg) == 1
    return [(e["attrs"]["data-direction"], int(e["attrs"]["data-index"]), e["attrs"]["data-node"], e["attrs"]["data-interface"],
             e["attrs"]["data-status"]) for e in page.find("g") if e["attrs"].get("class") == "hop"]


def test_drop_is_drawn_lost_at_the_hop_with_the_stop_and_its_cause(tmp_path):
    rep = _report(tmp_path, drop=("request", 5))
    page = Page(report_html.render_html(rep, run_dir=str(tmp_path)))
    hops = _hops(page)
    # both layouts draw every hop once: 12 hops x 2 drawings, the same statuses in each
    assert len(hops) == 24 and hops[:12] == hops[12:]
    assert hops[:6] == [
        ("request", 1, "node-a", "cali41f14107a8d", "seen"), ("request", 2, "node-a", "tunl0", "seen"),
        ("request", 3, "node-a", "eth0", "seen"), ("request", 4, "node-b", "eth0", "seen"),
        ("request", 5, "node-b", "tunl0", "lost"), ("request", 6, "node-b", "calic25e805a467", "lost")]
    assert {h[4] for h in hops[6:12]} == {"none"}
    stops = [e for e in page.find("g") if e["attrs"].get("class") == "stop"]
    assert len(stops) == 2     # one per layout, the request's only
    for stop in stops:
        assert (stop["attrs"]["data-direction"], stop["attrs"]["data-node"], stop["attrs"]["data-interface"]) == ("request", "node-b", "tunl0")
        assert stop["attrs"]["data-cause"] == "no packet in the captures explains the loss"
        assert stop["text"] == "request stopped at node-b tunl0: no packet in the captures explains the loss"
    verdict = page.find("div", id="verdict")[0]
    assert verdict["attrs"]["class"] == "verdict unhealthy"
    assert "request reached node-b eth0 and was not seen on node-b tunl0 (decapsulation)" in verdict["text"]
    assert page.find("p", id="why")[0]["text"] == "why: no packet in the captures explains the loss"
    # the delays on the arrows: node-a eth0 -> node-b eth0 took 0.350 ms in the synthetic trace
    delays = [e["text"] for e in page.find("text") if e["attrs"].get("class") == "delay"]
    assert delays[:3] == ["+0.050 ms", "+0.050 ms", "+0.350 ms"]
    # arrows into the lost hops are drawn as lost, those of the response that never started dimmed
    arrows = [(e["attrs"]["data-direction"], e["attrs"]["data-to"], e["attrs"]["class"]) for e in page.find("g")
              if e["attrs"].get("class", "").startswith("arrow")][:10]
    assert arrows[:5] == [("request", "2", "arrow ok"), ("request", "3", "arrow ok"), ("request", "4", "arrow ok"),
                          ("request", "5", "arrow lost"), ("request", "6", "arrow lost")]
    assert {a[2] for a in arrows[5:10]} == {"arrow dim"}


def test_healthy_trace_links_every_capture_relative_to_the_run_folder(tmp_path):
    rep = _report(tmp_path)
    page = Page(report_html.render_html(rep, run_dir=str(tmp_path)))
    assert {h[4] for h in _hops(page)} == {"seen"}
    assert not [e for e in page.find("g") if e["attrs"].get("class") == "stop"]
    assert page.find("div", id="verdict")[0]["attrs"]["class"] == "verdict healthy"
    hrefs = [e["attrs"]["href"] for e in page.find("a")]
    assert hrefs == ["trace.pcapng", "report.json", "report.md", "junit.xml", "node-a_cali41f14107a8d.pcap", "node-a_tunl0.pcap",
                     "node-a_eth0.pcap", "node-b_eth0.pcap", "node-b_tunl0.pcap", "node-b_calic25e805a467.pcap"]
    rows = [e for e in page.find("tr") if e["attrs"].get("data-direction")]
    assert len(rows) == 12 and all(r["attrs"]["class"] == "st-seen" for r in rows)
    # nothing fetched: no script, no stylesheet link, no external URL anywhere
    text = report_html.render_html(rep, run_dir=str(tmp_path))
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "@media print" in text and "@media (max-width: 700px)" in text


def test_files_outside_the_run_folder_are_not_linked_and_no_pcapng_without_one(tmp_path):
    rep = _report(tmp_path)
    page = Page(report_html.render_html(rep, run_dir=str(tmp_path / "elsewhere"), pcapng=None))
    assert [e["attrs"]["href"] for e in page.find("a")] == ["report.json", "report.md", "junit.xml"]
    assert [e["text"] for e in page.find("span") if e["attrs"].get("class") == "pcap"][0] == "node-a/cali41f14107a8d"


SAME_NODE = {
    "schema": 1, "run": {"src": "172.17.25.79", "dst": "172.17.25.66", "proto": "tcp", "port": 443},
    "src_node": "node-a", "dst_node": "node-a", "encap": "local", "healthy": True, "complete": True, "uncertain": False,
    "verdict": "every hop saw the request and the response", "why": None, "notes": [],
    "directions": {"request": {"cause": None}, "response": {"cause": None}},
    "hops": [
        {"index": 1, "direction": "request", "node": "node-a", "interface": "cali41f14107a8d", "role": "src-veth", "encap": "none",
         "status": "seen", "packets": 4, "delay_ms": 0.0, "since_first_ms": 0.0, "summary": "SYN ACK FIN+ACK"},
        {"index": 2, "direction": "request", "node": "node-a", "interface": "cali2a1ec19d610", "role": "dst-veth", "encap": "none",
         "status": "seen", "packets": 4, "delay_ms": 0.021, "since_first_ms": 0.021, "summary": "SYN ACK FIN+ACK"},
        {"index": 1, "direction": "response", "node": "node-a", "interface": "cali2a1ec19d610", "role": "dst-veth", "encap": "none",
         "status": "seen", "packets": 3, "delay_ms": 0.0, "since_first_ms": 0.0, "summary": "SYN+ACK ACK FIN+ACK"},
        {"index": 2, "direction": "response", "node": "node-a", "interface": "cali41f14107a8d", "role": "src-veth", "encap": "none",
         "status": "seen", "packets": 3, "delay_ms": 0.019, "since_first_ms": 0.019, "summary": "SYN+ACK ACK FIN+ACK"}],
    "captures": [],
}


def test_same_node_is_one_node_box_with_two_veths():
    page = Page(report_html.render_html(SAME_NODE))
    boxes = [e["attrs"]["data-node"] for e in page.find("g") if e["attrs"].get("class") == "node"]
    assert boxes == ["node-a", "node-a"]      # one box per layout
    assert _hops(page)[:4] == [("request", 1, "node-a", "cali41f14107a8d", "seen"), ("request", 2, "node-a", "cali2a1ec19d610", "seen"),
                               ("response", 1, "node-a", "cali2a1ec19d610", "seen"), ("response", 2, "node-a", "cali41f14107a8d", "seen")]
    assert any("source and destination node" in e["text"] for e in page.find("text"))
    assert [e["text"] for e in page.find("text") if e["attrs"].get("class") == "delay"][:2] == ["+0.021 ms", "+0.019 ms"]


def test_plan_only_report_renders_every_hop_unknown():
    rep = report.report_from_plan(_synth.make_plan("vxlan"), "the play failed at task 'arm captures' on node-b")
    page = Page(report_html.render_html(rep))
    hops = _hops(page)
    assert len(hops) == 24 and {h[4] for h in hops} == {"unknown"}
    assert hops[1] == ("request", 2, "node-a", "vxlan.calico", "unknown")
    assert "no verdict: the play failed at task 'arm captures' on node-b" in page.find("div", id="verdict")[0]["text"]
    assert not [e for e in page.find("g") if e["attrs"].get("class") == "stop"]


def test_repeat_mode_fields_are_shown_when_present(tmp_path):
    rep = _report(tmp_path)
    for hop in rep["hops"]:
        hop["loss_pct"] = 0
        hop["latency_ms"] = {"p50": 0.05, "p95": 0.125, "max": 0.5}
    rep["hops"][4]["loss_pct"] = 15
    rep["repeat"] = {"count": 20, "lost": 3, "loss_pct": 15.0, "max_loss": 0, "healthy": False, "text": None, "probes": []}
    page = Page(report_html.render_html(rep))
    head = [e["text"] for e in page.find("th")]
    assert head[-2:] == ["loss", "latency p50 / p95 / max"]
    row = [e for e in page.find("tr") if e["attrs"].get("data-direction") == "request" and e["attrs"].get("data-index") == "5"][0]
    assert "15 %" in row["text"] and "p50 0.050 / p95 0.125 / max 0.500 ms" in row["text"]
    assert "15% lost" in [e for e in page.find("g") if e["attrs"].get("data-index") == "5"][0]["text"]
    assert [e["text"] for e in page.find("text") if e["attrs"].get("class") == "delay"][0] == "p50 0.050"
    assert any(e["text"] == "on the arrows: the delay from the previous hop, p50 over the probes, in ms" for e in page.find("text"))
    assert page.find("p", id="probes")[0]["text"] == "probes: 20, 3 lost (15 %; max_loss 0 %)"


def test_every_string_from_the_inventory_is_escaped(tmp_path):
    rep = _report(tmp_path, drop=("request", 5))
    evil = '<script>alert("x")</script>&"\''
    for hop in rep["hops"]:
        if hop["node"] == "node-b":
            hop["node"] = evil
        hop["interface"] = hop["interface"] + '"><img src=x>'
    rep["verdict"] = "lost at <b>%s</b>" % evil
    rep["notes"] = ["<iframe src=//x>"]
    rep["path"] = {"lines": ["dst on <svg onload=alert(1)>"]}
    text = report_html.render_html(rep, run_dir=str(tmp_path))
    page = Page(text)
    assert "script" not in page.tags and "img" not in page.tags and "iframe" not in page.tags and "b" not in page.tags
    assert len(page.find("svg")) == 2    # the two drawings, no injected one
    assert "<script>" not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;" in text
    lost = [e for e in page.find("g") if e["attrs"].get("data-status") == "lost"][0]
    assert lost["attrs"]["data-node"] == evil and lost["attrs"]["data-interface"] == 'tunl0"><img src=x>'
    assert not any(k.startswith("on") for e in page.elements for k in e["attrs"])
