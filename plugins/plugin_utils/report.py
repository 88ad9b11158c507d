# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a trace report: the terminal hop table, report.md and report.json.

Pure functions over the report dict made by ``analysis.analyze()``; the
``trace_report`` callback and the ``trace_analyze`` action only call these.
"""

from __future__ import annotations

import json
import os
import textwrap

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import report_html, report_junit

ANSI = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "dim": "\033[2m", "bold": "\033[1m", "reset": "\033[0m"}
STATUS_COLOR = {"seen": "green", "LOST": "red", "partial": "yellow", "unknown": "yellow", "missed": "yellow", "none": "dim"}
STATUS_TEXT = {"seen": "seen", "LOST": "LOST", "partial": "PART", "unknown": "unknown", "missed": "missed", "none": "-"}


def _paint(text, color, on):
    if not on or not color:
        return text
    return ANSI[color] + text + ANSI["reset"]


def _clip(text, width):
    text = str(text)
    return text if len(text) <= width else text[:max(1, width - 1)] + "~"


def _delay(hop):
    value = hop.get("since_first_ms")
    if value is None:
        return ""
    return "%+.3f ms" % value


def _interface(hop):
    encap = hop.get("encap")
    name = hop.get("interface") or "?"
    return "%s (%s)" % (name, encap) if encap and encap != "none" else name


def _seen(hop):
    if hop.get("packets") is None:
        return ""
    return hop.get("summary") or "-"


def _probes(hop, count):
    """Repeat mode's "seen" column: probes seen of N and the loss, '47/50 6%'."""
    if hop.get("probes_seen") is None:
        return ""
    return "%d/%d %g%%" % (hop["probes_seen"], count, hop.get("loss_pct") or 0)


def _ms(value):
    return "%.3f" % value if value < 10 else ("%.2f" % value if value < 100 else "%.0f" % value)


def _latency(hop, full=False):
    """Repeat mode's delay column: p50/p95 from the previous hop, in ms ('0.041/0.090')."""
    lat = hop.get("latency_ms")
    if not lat:
        return ""
    keys = ("p50", "p95", "max") if full else ("p50", "p95")
    return (" / " if full else "/").join(_ms(lat[k]) for k in keys)


def _path_lines(report):
    """How the path was found (path-only discovery): the group, the entry node, one line per pod."""
    path = report.get("path") or {}
    if not path:
        return []
    group = path.get("group") or {}
    head = "path: read %s" % path.get("entry")
    if group.get("name"):
        head += " of %s (%s, %d hosts)" % (group["name"], group.get("how"), group.get("hosts") or 0)
    return [head] + ["  %s" % line for line in path.get("lines") or []]


def render_table(report, width=80, color=False, run_dir=None):
    """The hop table and verdict as printed at the end of the play; a list of lines.

    Fits ``width`` columns (interface and "seen" columns shrink first); ANSI colours only
    when ``color`` is true.
    """
    hops = report.get("hops") or []
    width = max(60, int(width or 80))
    count = (report.get("repeat") or {}).get("count")
    seen, delay = (lambda h: _probes(h, count), _latency) if count else (_seen, _delay)
    w_node = min(14, max([4] + [len(str(h.get("node"))) for h in hops]))
    w_if = min(24, max([9] + [len(_interface(h)) for h in hops]))
    w_pk = max([4] + [len(str(h.get("packets"))) for h in hops if h.get("packets") is not None])
    w_st, w_dl = 7, 11
    fixed = 8 + 1 + 2 + 1 + w_node + 1 + 1 + w_pk + 1 + 1 + w_st + 1 + w_dl
    w_seen = min(16, max(12, width - fixed - w_if - 1))
    if fixed + w_if + 1 + w_seen > width:
        w_if = max(8, width - fixed - 1 - w_seen)
    lines = [_clip(report_html.title(report), width)]
    for line in _path_lines(report):
        lines.extend(textwrap.wrap(line, width, subsequent_indent="  ", break_long_words=False))
    if (report.get("service") or {}).get("line"):
        # names (pods, Services, paths) are never split at a hyphen: they stay copyable
        lines.extend(textwrap.wrap("service: %s" % report["service"]["line"], width, subsequent_indent="  ", break_long_words=False,
                                   break_on_hyphens=False))
    fmt = "%-8s %2s %-{n}s %-{i}s %{p}s %-{s}s %-{t}s %{d}s".format(n=w_node, i=w_if, p=w_pk, s=w_seen, t=w_st, d=w_dl)
    head = ("probes loss", "p50/p95 ms") if count else ("seen", "delay")
    lines.append(_paint((fmt % ("dir", "#", "node", "interface", "pkts", head[0], "status", head[1])).rstrip(), "dim", color))
    for hop in hops:
        status = hop.get("status") or "unknown"
        st_text = STATUS_TEXT.get(status, status)
        pk = "" if hop.get("packets") is None else str(hop.get("packets"))
        line = fmt % (hop.get("direction"), hop.get("index"), _clip(hop.get("node"), w_node), _clip(_interface(hop), w_if), pk,
                      _clip(seen(hop), w_seen), st_text, _clip(delay(hop), w_dl))
        line = line.rstrip()
        if color:
            # colour the status word only; the padding is already computed on plain text
            pre = fmt % (hop.get("direction"), hop.get("index"), _clip(hop.get("node"), w_node), _clip(_interface(hop), w_if), pk,
                         _clip(seen(hop), w_seen), "", "")
            pre = pre[:len(pre) - w_st - 1 - w_dl]
            line = (pre + _paint(st_text.ljust(w_st), STATUS_COLOR.get(status), True) + " " + _clip(delay(hop), w_dl).rjust(w_dl)).rstrip()
        lines.append(line)
    verdict = "verdict: %s" % (report.get("verdict") or "none")
    vcolor = "green" if report.get("healthy") else "red"
    for i, part in enumerate(textwrap.wrap(verdict, width, subsequent_indent="  ") or [verdict]):
        lines.append(_paint(part, vcolor if i == 0 else None, color) if i == 0 else part)
    if report.get("why"):
        lines.extend(textwrap.wrap("why: %s" % report["why"], width, subsequent_indent="  ", break_long_words=False))
    for note in report.get("notes") or []:
        lines.extend(textwrap.wrap("note: %s" % note, width, subsequent_indent="  "))
    if run_dir:
        lines.extend(textwrap.wrap("files: %s" % run_dir, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False))
    return lines


def render_markdown(report):
    """report.md: a table and the verdict, ready to paste into a ticket."""
    out = ["# %s" % report_html.title(report).replace("hoptrace: ", "hoptrace trace: "), ""]
    out.append("**Verdict:** %s" % report.get("verdict"))
    out.append("")
    if report.get("why"):
        out.append("**Why:** %s" % report["why"])
        out.append("")
        for name in ("request", "response"):
            cause = ((report.get("directions") or {}).get(name) or {}).get("cause")
            if cause and cause.get("text") == report["why"]:
                out.append("Evidence (%s, %s, confidence %s):" % (name, cause.get("kind"), cause.get("confidence")))
                out.append("")
                out.extend("- `%s`" % line for line in cause.get("evidence") or [])
                out.append("")
    path_lines = _path_lines(report)
    if path_lines:
        out.extend("- %s" % line.strip() for line in path_lines)
        out.append("")
    if (report.get("service") or {}).get("line"):
        out.append("**Service:** %s" % report["service"]["line"])
        out.append("")
    out.append("healthy: %s, complete: %s, uncertain: %s" % (
        str(bool(report.get("healthy"))).lower(), str(bool(report.get("complete"))).lower(), str(bool(report.get("uncertain"))).lower()))
    out.append("")
    out.append("| direction | # | node | interface | role | encap | packets | seen | status | delay from first hop |")
    out.append("| --- | ---: | --- | --- | --- | --- | ---: | --- | --- | ---: |")
    for h in report.get("hops") or []:
        out.append("| %s | %s | %s | `%s` | %s | %s | %s | %s | %s | %s |" % (
            h.get("direction"), h.get("index"), h.get("node"), h.get("interface") or "?", h.get("role") or "", h.get("encap") or "none",
            "" if h.get("packets") is None else h.get("packets"), _seen(h), h.get("status"), _delay(h)))
    rep = report.get("repeat")
    if rep:
        out.append("")
        out.append("Repeat mode: %d probes, %d lost (%g%%), max_loss %g%%." % (rep["count"], rep["lost"], rep["loss_pct"], rep["max_loss"]))
        out.append("")
        out.append("| direction | # | node | interface | probes seen | loss | latency from the previous hop p50 / p95 / max (ms) |")
        out.append("| --- | ---: | --- | --- | ---: | ---: | ---: |")
        for h in report.get("hops") or []:
            out.append("| %s | %s | %s | `%s` | %s | %s | %s |" % (
                h.get("direction"), h.get("index"), h.get("node"), h.get("interface") or "?",
                "" if h.get("probes_seen") is None else "%d/%d" % (h["probes_seen"], rep["count"]),
                "" if h.get("loss_pct") is None else "%g%%" % h["loss_pct"], _latency(h, full=True)))
    notes = list(report.get("notes") or [])
    if notes:
        out.append("")
        out.append("Notes:")
        out.append("")
        out.extend("- %s" % n for n in notes)
    caps = report.get("captures") or []
    if caps:
        out.append("")
        out.append("| capture | status | records | matched | tcpdump dropped | snaplen-cut | file cut short |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | --- |")
        for c in caps:
            status = c.get("status") if not c.get("error") else "%s: %s" % (c.get("status"), c.get("error"))
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                c.get("key"), status.replace("|", "/"), c.get("records"), c.get("matched"), c.get("dropped") if c.get("dropped") is not None else "",
                c.get("snaplen_cut"), "yes" if c.get("truncated_tail") else "no"))
    out.append("")
    return "\n".join(out)


def report_from_plan(plan, reason):
    """What is known when the play failed before the analysis: the plan's hops, all unknown."""
    plan = plan or {}
    hops = []
    for h in plan.get("hops") or []:
        hops.append({"index": h.get("index"), "direction": h.get("direction"), "node": h.get("node"), "interface": h.get("interface"),
                     "role": h.get("role"), "encap": h.get("encap"), "capture": h.get("capture"), "status": "unknown", "packets": None})
    return {"run": plan.get("run") or {}, "src_node": plan.get("src_node"), "dst_node": plan.get("dst_node"), "encap": plan.get("encap"),
            "healthy": False, "complete": False, "uncertain": True, "hops": hops,
            "notes": list((plan.get("path") or {}).get("notes") or []), "path": plan.get("path"),
            "verdict": "no verdict: %s" % reason}


def write_report_files(report, output_dir, junit=None, pcapng="trace.pcapng"):
    """Write report.json, report.md, report.html and junit.xml into output_dir; return their paths.

    ``junit``: a controller path where junit.xml is also written (its directory must exist).
    ``pcapng``: the merged capture's name that report.html links to, None when none is written.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {"json": os.path.join(output_dir, "report.json"), "markdown": os.path.join(output_dir, "report.md"),
             "html": os.path.join(output_dir, "report.html"), "junit": os.path.join(output_dir, "junit.xml")}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(paths["markdown"], "w") as f:
        f.write(render_markdown(report))
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(report_html.render_html(report, run_dir=output_dir, pcapng=pcapng))
    xml = report_junit.render_junit(report)
    for where in [paths["junit"]] + ([junit] if junit else []):
        with open(where, "w", encoding="utf-8") as f:
            f.write(xml)
    if junit:
        paths["junit_copy"] = junit
    return paths
