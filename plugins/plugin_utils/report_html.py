# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.html: one self-contained page with the traced path drawn, for a person on call.

A pure function over the report dict made by ``analysis.analyze()`` (or ``report.report_from_plan``).
No script and no network fetch: inline CSS and two static SVG drawings of the same path, a wide one
(nodes side by side, the request above, the response below) and a narrow one (nodes stacked, the
request going down, the response up), switched by a CSS media query; print uses the wide one.
Every string taken from the report (node and interface names come from inventories) is escaped.

Each hop is an SVG ``<g class="hop">`` with ``data-direction``, ``data-index``, ``data-node``,
``data-interface`` and ``data-status`` (the hop's status in lower case: seen, lost, partial,
missed, none, unknown); the first lost or partial hop of a direction has a ``<g class="stop">``
with the direction's cause text. Repeat mode's per-hop ``loss_pct`` and ``latency_ms``
(p50/p95/max) and the report's ``repeat`` (count, lost) are shown when the report has them.
"""

from __future__ import annotations

import html
import os
import textwrap
from urllib.parse import quote

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_text

DIRECTIONS = ("request", "response")
# status -> (fill, stroke, text shown on the hop)
STATUS_STYLE = {
    "seen": ("#dcfce7", "#15803d", "seen"),
    "lost": ("#fee2e2", "#b91c1c", "LOST"),
    "partial": ("#ffedd5", "#c2410c", "partial"),
    "missed": ("#ede9fe", "#6d28d9", "missed"),
    "none": ("#f3f4f6", "#9ca3af", "not sent"),
    "unknown": ("#f3f4f6", "#6b7280", "unknown"),
}
STATUS_MEANING = {
    "seen": "packets of this direction seen here",
    "lost": "nothing seen here while an earlier hop saw packets",
    "partial": "some packets or bytes of the previous hop missing",
    "missed": "nothing seen here while later hops saw packets (a capture problem)",
    "none": "the direction never started",
    "unknown": "no capture of this hop",
}

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; padding: 12px 16px; max-width: 1200px; color: #111827; background: #fff; }
h1 { font-size: 1.25em; margin: 0 0 6px; word-break: break-word; }
h2 { font-size: 1.05em; margin: 18px 0 6px; }
.verdict { padding: 8px 12px; border-left: 6px solid; margin: 8px 0; }
.verdict.healthy { border-color: #15803d; background: #f0fdf4; }
.verdict.unhealthy { border-color: #b91c1c; background: #fef2f2; }
.verdict p { margin: 2px 0; }
.drawing svg { width: 100%; height: auto; display: block; }
.drawing.narrow { display: none; max-width: 520px; }
@media (max-width: 700px) {
  .drawing.wide { display: none; }
  .drawing.narrow { display: block; }
  body { padding: 8px; }
}
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d1d5db; padding: 3px 6px; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.st { font-weight: 600; }
tr.st-seen td.st { color: #15803d; } tr.st-lost td.st { color: #b91c1c; }
tr.st-partial td.st { color: #c2410c; } tr.st-missed td.st { color: #6d28d9; }
tr.st-unknown td.st, tr.st-none td.st { color: #6b7280; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
ul { padding-left: 20px; }
.evidence { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  .drawing.wide { display: block; }
  .drawing.narrow { display: none; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
  tr, .drawing { page-break-inside: avoid; }
}
"""


def _e(value):
    """Escape for text and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _status(hop):
    return str(hop.get("status") or "unknown").lower()


def _delay_text(hop):
    lat = hop.get("latency_ms")
    if isinstance(lat, dict) and lat.get("p50") is not None:
        return "p50 %.3f" % lat["p50"]
    value = hop.get("delay_ms")
    return "" if value is None else "+%.3f ms" % value


def _latency_text(hop):
    lat = hop.get("latency_ms")
    if not isinstance(lat, dict):
        return ""
    parts = ["%s %.3f" % (k, lat[k]) for k in ("p50", "p95", "max") if lat.get(k) is not None]
    return " / ".join(parts) + " ms" if parts else ""


def _loss_text(hop):
    value = hop.get("loss_pct")
    return "" if value is None else "%g%% lost" % value


def _hop_name(hop):
    return "%s %s" % (hop.get("node"), hop.get("interface") or "?")


def _columns(hops):
    """The drawing's hop positions: (node, interface) in request order, then what only the response has.

    Returns ``(columns, nodes)``: columns a list of ``(node, interface)``, nodes the node names in order,
    each node's columns contiguous.
    """
    per_node, nodes = {}, []
    for direction in DIRECTIONS:
        for hop in hops:
            if hop.get("direction") != direction:
                continue
            node, iface = hop.get("node"), hop.get("interface") or "?"
            if node not in per_node:
                per_node[node] = []
                nodes.append(node)
            if iface not in per_node[node]:
                per_node[node].append(iface)
    return [(n, i) for n in nodes for i in per_node[n]], nodes


def _stops(report):
    """{direction: hop} for the first lost or partial hop of each direction."""
    stops = {}
    for hop in report.get("hops") or []:
        d = hop.get("direction")
        if d not in stops and _status(hop) in ("lost", "partial"):
            stops[d] = hop
    return stops


def _cause_text(report, direction):
    cause = ((report.get("directions") or {}).get(direction) or {}).get("cause") or {}
    return cause.get("text") or report.get("why") or ""


class _Geometry:
    """Where things go in one orientation: ``wide`` (the path along x) or ``narrow`` (along y)."""

    def __init__(self, wide, columns, nodes):
        self.wide = wide
        self.columns = columns
        self.nodes = nodes
        if wide:
            self.step, self.gap, self.start = 170, 70, 30       # along the path
            self.hw, self.hh = 46, 17                           # hop marker half extents (x, y)
            self.lane = {"request": 118, "response": 214}       # across the path
            self.label = 166
            self.box = (52, 258)
        else:
            self.step, self.gap, self.start = 74, 60, 62
            self.hw, self.hh = 44, 17
            self.lane = {"request": 220, "response": 318}
            self.label = 16
            self.box = (8, 392)
        self.pos, node_of, at = [], None, self.start
        for i, (node, _iface) in enumerate(columns):
            if i:
                at += self.step + (self.gap if node != node_of else 0)
            node_of = node
            self.pos.append(at)
        self.length = (self.pos[-1] if self.pos else self.start) + self.step

    def center(self, col, direction):
        """(x, y) of the hop marker of column ``col`` in ``direction``'s lane."""
        along, across = self.pos[col] + self.step / 2, self.lane[direction]
        return (along, across) if self.wide else (across, along)

    def edge(self, col, direction, forward):
        """The point of the marker's edge an arrow leaves from (forward) or arrives at."""
        x, y = self.center(col, direction)
        ahead = 1 if forward else -1
        if self.wide:
            return x + ahead * self.hw, y
        return x, y + ahead * self.hh

    def node_box(self, node):
        cols = [i for i, (n, _if) in enumerate(self.columns) if n == node]
        a, b = self.pos[cols[0]] + 4, self.pos[cols[-1]] + self.step - 4
        lo, hi = self.box
        return (a, lo, b - a, hi - lo) if self.wide else (lo, a - 40, hi - lo, b - a + 40)

    def size(self):
        return (self.length + 30, 0) if self.wide else (400, self.length + 20)


def _text(x, y, content, cls="", anchor="middle", size=12, weight="normal", fill="#111827"):
    return ('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" font-weight="%s" fill="%s"%s>%s</text>'
            % (x, y, anchor, size, weight, fill, ' class="%s"' % cls if cls else "", _e(content)))


def _wrapped(x, y, content, width_chars, size=12, fill="#111827", anchor="start", cls=""):
    """A text block wrapped into tspans; returns (svg, lines used)."""
    lines = textwrap.wrap(str(content), width_chars, break_long_words=True) or [""]
    # each line but the last keeps its trailing space: the element's text reads as the sentence
    spans = "".join('<tspan x="%.1f" dy="%s">%s</tspan>' % (x, "0" if i == 0 else "1.25em", _e(line + (" " if i < len(lines) - 1 else "")))
                    for i, line in enumerate(lines))
    return ('<text x="%.1f" y="%.1f" font-size="%d" fill="%s" text-anchor="%s"%s>%s</text>'
            % (x, y, size, fill, anchor, ' class="%s"' % cls if cls else "", spans), len(lines))


def _hop_svg(geo, col, hop):
    status = _status(hop)
    fill, stroke, label = STATUS_STYLE.get(status, STATUS_STYLE["unknown"])
    x, y = geo.center(col, hop.get("direction"))
    dash = ' stroke-dasharray="4 3"' if status in ("unknown", "none") else ""
    detail = []
    if hop.get("packets") is not None:
        detail.append("%s pkt" % hop.get("packets"))
    if _loss_text(hop):
        detail.append(_loss_text(hop))
    title = "%s %s %s: %s (%s)" % (hop.get("direction"), hop.get("index"), _hop_name(hop), label, STATUS_MEANING.get(status, status))
    if hop.get("summary") and hop.get("packets"):
        title += "; seen %s" % hop["summary"]
    if _latency_text(hop):
        title += "; latency %s" % _latency_text(hop)
    out = ['<g class="hop" data-direction="%s" data-index="%s" data-node="%s" data-interface="%s" data-status="%s">'
           % (_e(hop.get("direction")), _e(hop.get("index")), _e(hop.get("node")), _e(hop.get("interface") or "?"), _e(status)),
           "<title>%s</title>" % _e(title),
           '<rect x="%.1f" y="%.1f" width="%d" height="%d" rx="5" fill="%s" stroke="%s" stroke-width="2"%s/>'
           % (x - geo.hw, y - geo.hh, 2 * geo.hw, 2 * geo.hh, fill, stroke, dash),
           _text(x, y - 2, label, size=12, weight="bold", fill=stroke),
           _text(x, y + 11, " ".join(detail) or hop.get("direction"), size=9, fill="#374151"),
           "</g>"]
    return "".join(out)


def _arrow_svg(geo, cols, a, b, prev_hop, hop):
    """The arrow from hop ``prev_hop`` (column a) to ``hop`` (column b) with the delay on it."""
    direction = hop.get("direction")
    forward = cols[b] > cols[a]
    x1, y1 = geo.edge(cols[a], direction, forward)
    x2, y2 = geo.edge(cols[b], direction, not forward)
    status = _status(hop)
    if status == "seen":
        color, dash, cls = "#15803d", "", "ok"
    elif status in ("lost", "partial"):
        color, dash, cls = "#b91c1c", ' stroke-dasharray="6 4"', "lost"
    else:
        color, dash, cls = "#9ca3af", ' stroke-dasharray="3 4"', "dim"
    # marker ids are per drawing: an id used twice resolves to the first, which may be hidden
    marker = "ah-%s-%s" % (cls, "wide" if geo.wide else "narrow")
    out = ['<g class="arrow %s" data-direction="%s" data-to="%s">' % (cls, _e(direction), _e(hop.get("index"))),
           '<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s marker-end="url(#%s)"/>'
           % (x1, y1, x2, y2, color, dash, marker)]
    delay = _delay_text(hop) if status in ("seen", "partial") else ""
    if delay:
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        if not geo.wide and geo.columns[cols[a]][0] != geo.columns[cols[b]][0]:
            # across nodes: in the space between the two node boxes, clear of the next box's title
            my = (max(y1, y2) + min(y1, y2)) / 2 - 20 if forward else (y1 + y2) / 2 - 20
        if geo.wide:
            dy = -7 if direction == "request" else 16
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#374151" class="delay">%s</text>'
                       % (mx, my + dy, _e(delay)))
        else:
            dx = -8 if direction == "request" else 8
            anchor = "end" if direction == "request" else "start"
            out.append('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="10" fill="#374151" class="delay">%s</text>'
                       % (mx + dx, my + 4, anchor, _e(delay)))
    out.append("</g>")
    return "".join(out)


def _defs(suffix):
    heads = []
    for name, color in (("ah-ok-" + suffix, "#15803d"), ("ah-lost-" + suffix, "#b91c1c"), ("ah-dim-" + suffix, "#9ca3af")):
        heads.append('<marker id="%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                     '<path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>' % (name, color))
    return "<defs>%s</defs>" % "".join(heads)


def _drawing(report, wide, suffix):
    hops = report.get("hops") or []
    columns, nodes = _columns(hops)
    if not columns:
        return '<p class="empty">No hops were planned.</p>'
    geo = _Geometry(wide, columns, nodes)
    col_of = {c: i for i, c in enumerate(columns)}
    width, _h = geo.size()
    body = []
    # node boxes with the node name and the interface labels
    for node in nodes:
        bx, by, bw, bh = geo.node_box(node)
        body.append('<g class="node" data-node="%s">' % _e(node))
        body.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="8" fill="#f9fafb" stroke="#6b7280" stroke-width="1.5"/>'
                    % (bx, by, bw, bh))
        role = "source node" if node == report.get("src_node") else ("destination node" if node == report.get("dst_node") else "node")
        if node == report.get("src_node") and node == report.get("dst_node"):
            role = "source and destination node"
        if wide:
            body.append(_text(bx + 10, by + 22, node, anchor="start", size=15, weight="bold"))
            body.append(_text(bx + 10, by + 38, role, anchor="start", size=10, fill="#4b5563"))
        else:
            body.append(_text(bx + 10, by + 20, node, anchor="start", size=14, weight="bold"))
            body.append(_text(bx + 10, by + 33, role, anchor="start", size=10, fill="#4b5563"))
        body.append("</g>")
    roles = {}
    for hop in hops:
        roles.setdefault((hop.get("node"), hop.get("interface") or "?"), hop.get("role") or "")
    for i, (node, iface) in enumerate(columns):
        role = roles.get((node, iface), "")
        encap = next((h.get("encap") for h in hops if (h.get("node"), h.get("interface") or "?") == (node, iface)), None)
        sub = role + (" (%s)" % encap if encap and encap != "none" else "")
        if wide:
            x = geo.pos[i] + geo.step / 2
            body.append('<g class="iface">%s%s</g>' % (_text(x, geo.label, iface, size=12, weight="bold", cls="mono"),
                                                       _text(x, geo.label + 13, sub, size=9, fill="#4b5563")))
        else:
            y = geo.pos[i] + geo.step / 2
            body.append('<g class="iface">%s%s</g>' % (_text(geo.label, y - 2, iface, anchor="start", size=12, weight="bold", cls="mono"),
                                                       _text(geo.label, y + 12, sub, anchor="start", size=9, fill="#4b5563")))
    # lane titles
    if wide:
        body.append(_text(16, 34, "upper row: request \u2192", anchor="start", size=11, fill="#4b5563"))
        body.append(_text(width - 16, 34, "\u2190 response: lower row", anchor="end", size=11, fill="#4b5563"))
    else:
        body.append(_text(geo.lane["request"], geo.start - 4, "request \u2193", size=11, fill="#4b5563"))
        body.append(_text(geo.lane["response"], geo.start - 4, "response \u2191", size=11, fill="#4b5563"))
    # arrows then hops, per direction in path order
    for direction in DIRECTIONS:
        path = [h for h in hops if h.get("direction") == direction]
        cols = [col_of[(h.get("node"), h.get("interface") or "?")] for h in path]
        for k in range(1, len(path)):
            if cols[k] != cols[k - 1]:
                body.append(_arrow_svg(geo, cols, k - 1, k, path[k - 1], path[k]))
        for k, hop in enumerate(path):
            body.append(_hop_svg(geo, cols[k], hop))
    # where each direction stopped, and why
    extra = 0
    stops = _stops(report)
    notes_y = (geo.box[1] + 26) if wide else geo.length + 24
    for direction in DIRECTIONS:
        hop = stops.get(direction)
        if not hop:
            continue
        col = col_of[(hop.get("node"), hop.get("interface") or "?")]
        x, y = geo.center(col, direction)
        cause = _cause_text(report, direction)
        head = "%s stopped at %s" % (direction, _hop_name(hop))
        if wide:
            mark_y = y - geo.hh - 4 if direction == "request" else y + geo.hh + 4
            cross = ('<path d="M%.1f,%.1f l10,10 m0,-10 l-10,10" stroke="#b91c1c" stroke-width="3"/>' % (x + geo.hw - 4, mark_y - 5))
            txt, n = _wrapped(16, notes_y + extra, "%s: %s" % (head, cause) if cause else head, int((width - 40) / 6.6), size=12, fill="#991b1b")
        else:
            cross = ('<path d="M%.1f,%.1f l10,10 m0,-10 l-10,10" stroke="#b91c1c" stroke-width="3"/>' % (x + geo.hw + 2, y - 5))
            txt, n = _wrapped(12, notes_y + extra, "%s: %s" % (head, cause) if cause else head, 58, size=12, fill="#991b1b")
        body.append('<g class="stop" data-direction="%s" data-node="%s" data-interface="%s" data-cause="%s">%s%s</g>'
                    % (_e(direction), _e(hop.get("node")), _e(hop.get("interface") or "?"), _e(cause), cross, txt))
        extra += 16 * n + 8
    # a refusal or other cause with every hop seen: say it under the drawing too
    for direction in DIRECTIONS:
        cause = ((report.get("directions") or {}).get(direction) or {}).get("cause") or {}
        if direction in stops or not cause.get("text"):
            continue
        txt, n = _wrapped(16 if wide else 12, notes_y + extra, "%s: %s" % (direction, cause["text"]),
                          int((width - 40) / 6.6) if wide else 58, size=12, fill="#9a3412")
        body.append('<g class="cause" data-direction="%s">%s</g>' % (_e(direction), txt))
        extra += 16 * n + 8
    # legend
    legend_y = notes_y + extra + 10
    lx = 16
    items = []
    for status in ("seen", "lost", "partial", "missed", "unknown", "none"):
        fill, stroke, label = STATUS_STYLE[status]
        items.append('<rect x="%d" y="%.1f" width="14" height="12" rx="2" fill="%s" stroke="%s" stroke-width="1.5"/>'
                     % (lx, legend_y - 10, fill, stroke) + _text(lx + 19, legend_y, label, anchor="start", size=10, fill="#374151"))
        lx += 30 + 6 * len(label)
        if not wide and status == "missed":
            legend_y += 18
            lx = 16
    body.append('<g class="legend">%s</g>' % "".join(items))
    repeat = any(isinstance(h.get("latency_ms"), dict) for h in hops)
    legend_y += 18
    body.append(_text(16, legend_y, "on the arrows: the delay from the previous hop%s" % (
        ", p50 over the probes, in ms" if repeat else ""), anchor="start", size=10, fill="#374151"))
    height = legend_y + 14
    label = "path of the traced flow: %d hops on %d node%s" % (len(hops), len(nodes), "" if len(nodes) == 1 else "s")
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" data-layout="%s" id="path-%s">%s%s</svg>'
            % (width, height, _e(label), "wide" if wide else "narrow", suffix, _defs(suffix), "".join(body)))


def _href(path, run_dir):
    """A relative href for a file inside the run folder, else None."""
    if not path:
        return None
    if run_dir and os.path.isabs(path):
        rel = os.path.relpath(path, run_dir)
        if rel.startswith(".."):
            return None
        path = rel
    elif os.path.isabs(path):
        return None
    return quote(path.replace(os.sep, "/"))


def title(report):
    """``hoptrace: tcp 172.17.25.79 -> 172.17.25.239:443 (ipip, node-a -> node-b)``: the table's, report.md's
    and the page's title line."""
    run = report.get("run") or {}
    dst = run.get("dst") or "?"
    if run.get("port") and (run.get("proto") or "tcp") != "icmp":
        dst = service_text.hostport(dst, run["port"])
    service = report.get("service") or {}
    if service.get("backend"):
        # the hops go to the backend; the user asked for the Service
        backend = service["backend"]
        dst = "%s -> %s" % (service_text.hostport(service["address"], service["port"]), service_text.hostport(backend["ip"], backend["port"]))
    nodes = report.get("src_node") or "?"
    if report.get("dst_node") and report.get("dst_node") != report.get("src_node"):
        nodes += " -> %s" % report["dst_node"]
    return "hoptrace: %s %s -> %s (%s, %s)" % (run.get("proto") or "tcp", run.get("src") or "?", dst, report.get("encap") or "?", nodes)


def _table(report):
    hops = report.get("hops") or []
    repeat = any(h.get("loss_pct") is not None or isinstance(h.get("latency_ms"), dict) for h in hops)
    head = ["direction", "#", "node", "interface", "role", "encap", "packets", "seen", "status", "since first hop"]
    if repeat:
        head += ["loss", "latency p50 / p95 / max"]
    rows = ["<tr>%s</tr>" % "".join("<th>%s</th>" % _e(h) for h in head)]
    for h in hops:
        status = _status(h)
        since = h.get("since_first_ms")
        cells = [("", h.get("direction")), ("num", h.get("index")), ("", h.get("node")), ("mono", h.get("interface") or "?"),
                 ("", h.get("role") or ""), ("", h.get("encap") or "none"),
                 ("num", "" if h.get("packets") is None else h.get("packets")),
                 ("mono", (h.get("summary") or "-") if h.get("packets") is not None else ""),
                 ("st", STATUS_STYLE.get(status, STATUS_STYLE["unknown"])[2] if status != "none" else "-"),
                 ("num", "" if since is None else "%+.3f ms" % since)]
        if repeat:
            cells += [("num", "" if h.get("loss_pct") is None else "%g %%" % h["loss_pct"]), ("num", _latency_text(h))]
        rows.append('<tr class="st-%s" data-direction="%s" data-index="%s">%s</tr>' % (
            _e(status), _e(h.get("direction")), _e(h.get("index")),
            "".join('<td%s>%s</td>' % (' class="%s"' % c if c else "", _e(v)) for c, v in cells)))
    return '<div class="scroll"><table class="hops">%s</table></div>' % "".join(rows)


def _files(report, run_dir, pcapng):
    items = []
    if pcapng:
        items.append('<li><a href="%s">%s</a> (every hop merged, one interface per hop; opens in Wireshark)</li>'
                     % (_e(quote(pcapng)), _e(pcapng)))
    for name in ("report.json", "report.md", "junit.xml"):
        items.append('<li><a href="%s">%s</a></li>' % (_e(name), _e(name)))
    for cap in report.get("captures") or []:
        href = _href(cap.get("file"), run_dir)
        label = cap.get("key") or cap.get("file") or "?"
        status = cap.get("status") or "?"
        if cap.get("error"):
            status += ": %s" % cap["error"]
        extra = " (%s, %s records, %s dropped by the kernel)" % (status, cap.get("records"), cap.get("dropped") or 0)
        if href:
            items.append('<li><a href="%s" class="pcap">%s</a>%s</li>' % (_e(href), _e(label), _e(extra)))
        else:
            items.append('<li><span class="pcap">%s</span>%s</li>' % (_e(label), _e(extra)))
    return "<ul class=\"files\">%s</ul>" % "".join(items)


def render_html(report, run_dir=None, pcapng="trace.pcapng"):
    """report.html as a string.

    :arg run_dir: the run folder; capture files inside it are linked relative to it.
    :arg pcapng: name of the merged capture in the run folder, or None when none was written.
    """
    report = report or {}
    heading = title(report)
    healthy = bool(report.get("healthy"))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>%s</title>" % _e(heading), "<style>%s</style></head><body>" % CSS,
             "<h1>%s</h1>" % _e(heading)]
    parts.append('<div class="verdict %s" id="verdict"><p><strong>verdict:</strong> <span class="text">%s</span></p>'
                 % ("healthy" if healthy else "unhealthy", _e(report.get("verdict") or "none")))
    if report.get("why"):
        parts.append('<p id="why"><strong>why:</strong> %s</p>' % _e(report["why"]))
    repeat = report.get("repeat") if isinstance(report.get("repeat"), dict) else {}
    count = repeat.get("count") or report.get("count")
    if count:
        text = "%s" % count
        if repeat.get("lost") is not None:
            text += ", %s lost (%g %%; max_loss %g %%)" % (repeat["lost"], repeat.get("loss_pct") or 0, repeat.get("max_loss") or 0)
        parts.append('<p id="probes"><strong>probes:</strong> %s</p>' % _e(text))
    parts.append("<p>healthy: %s, complete: %s, uncertain: %s</p></div>" % (
        str(healthy).lower(), str(bool(report.get("complete"))).lower(), str(bool(report.get("uncertain"))).lower()))
    parts.append('<div class="drawing wide">%s</div>' % _drawing(report, True, "wide"))
    parts.append('<div class="drawing narrow">%s</div>' % _drawing(report, False, "narrow"))
    for name in DIRECTIONS:
        cause = ((report.get("directions") or {}).get(name) or {}).get("cause")
        if cause and cause.get("evidence"):
            parts.append("<h2>Evidence (%s, %s, confidence %s)</h2>" % (_e(name), _e(cause.get("kind")), _e(cause.get("confidence"))))
            parts.append('<div class="evidence">%s</div>' % "\n".join(_e(line) for line in cause["evidence"]))
    parts.append("<h2>Hops</h2>")
    parts.append(_table(report))
    path = report.get("path") or {}
    if path.get("lines"):
        parts.append("<h2>How the path was found</h2><ul>%s</ul>" % "".join("<li>%s</li>" % _e(line) for line in path["lines"]))
    notes = report.get("notes") or []
    if notes:
        parts.append('<h2>Notes</h2><ul class="notes">%s</ul>' % "".join("<li>%s</li>" % _e(n) for n in notes))
    parts.append("<h2>Files</h2>")
    parts.append(_files(report, run_dir, pcapng))
    parts.append("</body></html>\n")
    return "\n".join(parts)
