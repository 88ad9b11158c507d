# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the DNAT node's conntrack says about a traced Service's connection, cross-checked with the
captures (stdlib only: the analysis imports it).

After the probe, the node whose kube-proxy rules translate the flow (the source node for a ClusterIP,
the addressed node for a NodePort) reads the flow's conntrack entries in the capture module's stop
(``counters.flow_conntrack``, module_utils/_conntrack.py). An entry's reply source is the backend the
DNAT chose; a reply destination other than the original source means the connection was masqueraded.
:func:`judge` turns the reading into the Service's ``chosen_by`` sentence, the backend to report
(conntrack's when it names one for the probe's connections, else the captures'), ``snat_to`` and the
notes that say where conntrack and the captures disagree or why conntrack could not tell. Pure.
"""

from __future__ import annotations


def endpoint(ip, port):
    """``ip:port``, an IPv6 address in brackets."""
    return "[%s]:%s" % (ip, port) if ":" in str(ip) else "%s:%s" % (ip, port)


def reading_of(service, counters_by_node):
    """``(node, reading)``: the DNAT node and its ``flow_conntrack`` (None when it was not read)."""
    node = service.get("dnat_on")
    return node, (counters_by_node.get(node) or {}).get("flow_conntrack")


def backend_of(entry):
    """The reply's source - the backend the DNAT chose (the original destination when there was no DNAT)."""
    reply = entry["reply"]
    return reply.get("src"), reply.get("sport")


def snat_of(entry):
    """The address:port the backend answers when the connection was masqueraded (SNAT), else None."""
    orig, reply = entry["orig"], entry["reply"]
    if (reply.get("dst"), reply.get("dport")) == (orig.get("src"), orig.get("sport")):
        return None
    return reply.get("dst"), reply.get("dport")


def entry_text(node, entry):
    """``conntrack on node-a: 172.17.25.79:41234 -> 10.96.10.20:443 was DNATed to 172.17.25.239:443``
    (``and masqueraded to ...`` when SNAT'd; ``was not DNATed`` when the reply comes from the original destination)."""
    orig = entry["orig"]
    text = "conntrack on %s: %s -> %s" % (node, endpoint(orig.get("src"), orig.get("sport")), endpoint(orig.get("dst"), orig.get("dport")))
    backend = backend_of(entry)
    if backend == (orig.get("dst"), orig.get("dport")):
        text += " was not DNATed"
    else:
        text += " was DNATed to %s" % endpoint(*backend)
    snat = snat_of(entry)
    if snat:
        text += " and masqueraded to %s" % endpoint(*snat)
    return text


def _public(node, reading, used):
    return {"node": node, "by": reading.get("by"), "entries": list(reading.get("entries") or []),
            "more": reading.get("more") or 0, "text": entry_text(node, used) if used else None}


def judge(service, reading, flow, picked=None, captured=None):
    """What conntrack on the DNAT node says about the traced connection.

    ``service``: the plan's Service (``dnat_on``, ``address``, ``port``, ``endpoints``, ``backend``);
    ``reading``: ``flow_conntrack`` of that node, None when it was not asked for (snapshots off);
    ``flow``: the run (``src``, ``proto``); with several endpoints, ``picked`` is the backend
    (``(ip, port)``) whose hops saw the flow after the DNAT (None when the captures could not tell)
    and ``captured`` the captures' reason (``its hops saw the flow after the DNAT, those of ... did not``).

    :returns: ``{"backend", "chosen_by", "snat_to", "conntrack", "notes"}`` - ``backend`` conntrack's choice
        to report (None: keep the captures'), ``chosen_by`` None to keep the plan's, ``conntrack`` None when
        nothing was read.
    """
    out = {"backend": None, "chosen_by": None, "snat_to": None, "conntrack": None, "notes": []}
    node = service.get("dnat_on")
    several = len(service.get("endpoints") or []) > 1
    if reading is None or not service.get("endpoints"):
        # not asked for (counters off), or a Service without endpoints: kube-proxy's REJECT leaves no entry
        return out
    out["conntrack"] = _public(node, reading, None)
    fallback = "; the backend is the captures' pick" if several else ""
    if not reading.get("by"):
        out["notes"].append("conntrack on %s could not be read (%s)%s" % (node, reading.get("note") or "no reason given", fallback))
        return out
    if reading.get("note"):
        out["notes"].append("conntrack on %s: %s" % (node, reading["note"]))
    entries = reading.get("entries") or []
    if not entries:
        out["notes"].append("conntrack on %s has no entry for %s -> %s (%s) after the probe%s" % (
            node, flow.get("src"), endpoint(service["address"], service["port"]), flow.get("proto") or "tcp", fallback))
        return out
    backends = []
    for entry in entries:
        if backend_of(entry) not in backends:
            backends.append(backend_of(entry))
    if len(backends) > 1:
        counts = ", ".join("%s (%d)" % (endpoint(*b), sum(1 for e in entries if backend_of(e) == b)) for b in backends)
        out["notes"].append("conntrack on %s: the flow's %d connections went to %s%s" % (node, len(entries), counts, fallback))
        return out
    used = entries[0]
    text = entry_text(node, used)
    if len(entries) > 1:
        text += " (%d connections, all alike)" % len(entries)
    if "UNREPLIED" in (used.get("flags") or []):
        text += ", and no answer came back ([UNREPLIED])"
    out["conntrack"] = _public(node, reading, used)
    orig = used["orig"]
    backend = backends[0]
    if backend == (orig.get("dst"), orig.get("dport")):
        out["notes"].append("%s: its entry predates kube-proxy's rules for the Service, or they did not match it%s" % (text, fallback))
        return out
    snat = snat_of(used)
    if snat:
        out["snat_to"] = snat[0]
        out["notes"].append("the connection was masqueraded on %s: the backend answers %s, not %s (conntrack)" % (
            node, endpoint(*snat), endpoint(orig.get("src"), orig.get("sport"))))
    # the report's endpoints are written IP:PORT, [IPv6]:PORT
    named = endpoint(*backend) in (service.get("endpoints") or [])
    if not several:
        only = service.get("backend") or {}
        if (only.get("ip"), only.get("port")) != backend:
            out["notes"].append("%s, not to the Service's only endpoint %s that kube-proxy's rules on %s name" % (
                text, endpoint(only.get("ip"), only.get("port")), service.get("read_on") or node))
        return out
    if not named:
        out["notes"].append("%s, which is none of the endpoints kube-proxy's rules on %s name; the backend is the captures' pick"
                            % (text, service.get("read_on") or node))
        return out
    out["backend"] = backend
    if picked == backend:
        out["chosen_by"] = "%s; the captures agree: %s" % (text, captured)
    elif picked is None:
        out["chosen_by"] = text
        out["notes"].append("no capture after the DNAT saw the flow, so only conntrack tells the backend: %s" % endpoint(*backend))
    else:
        out["chosen_by"] = text
        out["notes"].append("conntrack on %s and the captures disagree: the hops of %s saw the flow after the DNAT, conntrack says %s; "
                            "the report follows conntrack" % (node, endpoint(*picked), endpoint(*backend)))
    return out
