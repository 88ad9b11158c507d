# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict in plain words: where the flow stopped, on which hop and why, from the hop rows and
capture states the analysis (plugins/plugin_utils/analysis.py) has built; a Service's own verdicts
(no endpoints, a refused port) and the masquerade it saw. Pure: reads no file.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import repeat as repeat_
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import service_text

DIRECTIONS = ("request", "response")
RST_BITS = [i for i in range(64) if i & 4]     # flag words (low 6 bits) with RST set

ROLE_REASON = {
    "src-veth": "the source pod's veth",
    "tunnel-out": "routing into the tunnel",
    "underlay-out": "encapsulation",
    "underlay-in": "underlay network between the nodes",
    "tunnel-in": "decapsulation",
    "dst-veth": "delivery to the pod",
}


def hop_name(r):
    return "%s %s" % (r["node"], r["interface"] or "?")


WIREGUARD_REASON = {
    "underlay-out": "WireGuard encryption",
    "underlay-in": "underlay network between the nodes, WireGuard UDP",
    "tunnel-in": "WireGuard decryption",
}


def _reason(r, encap):
    role = r.get("role")
    if role == "underlay-out" and encap in ("none", None):
        return "routing to the underlay"
    if encap == "wireguard" and role in WIREGUARD_REASON:
        return WIREGUARD_REASON[role]
    if role in ("src-veth", "dst-veth") and r.get("direction") == "response" and role == "src-veth":
        return "delivery to the source pod"
    return ROLE_REASON.get(role, role or "this hop")


def _hosting(node, plan):
    if node == plan.get("src_node") and node == plan.get("dst_node"):
        return "hosting both pods"
    if node == plan.get("src_node"):
        return "hosting the source"
    if node == plan.get("dst_node"):
        return "hosting the destination"
    return "on the path"


_DOWN = {"unreachable": "could not be reached", "timed out": "stopped answering", "failed": "could not be read"}


def _down_nodes(rows, caps, plan):
    """{node: why} for the path nodes none of whose captures came back, in path order."""
    by_node = {}
    for cs in caps:
        by_node.setdefault(cs.node, []).append(cs)
    down = {}
    for node in [r.get("node") for r in rows]:
        found = by_node.get(node) or []
        if node in down or not found or any(cs.status == "ok" for cs in found):
            continue
        first = found[0]
        error = str(first.error or "").strip()
        # "node unreachable while reading routes: ssh: connect to host ..." -> the ssh error itself
        if error.startswith("node unreachable while ") and ": " in error:
            error = error.split(": ", 1)[1]
        if error.startswith("Task failed: "):
            error = error[len("Task failed: "):]
        down[node] = "%s: %s" % (_DOWN.get(first.status, first.status), error) if error else _DOWN.get(first.status, first.status)
    return down


def verdict(rows, caps, plan, refusal=None, repeat=None):
    """Plain-words verdict; returns (text, healthy, notes).

    ``refusal``: the cause item (``cause.refusal()``) whose words come first - a refused port, a
    RST sent on the path, an ICMP unreachable; the flow is then not healthy.
    ``repeat``: repeat mode's summary (``repeat.summarise()``); when some of the probes got through
    and some were lost, its counts are the verdict and ``max_loss`` decides whether it is healthy.
    """
    encap = plan.get("encap")
    notes = []
    dirs = {}
    for name in DIRECTIONS:
        path = [r for r in rows if r["direction"] == name]
        seen_any = any(r["packets"] for r in path)
        stop = next((r for r in path if r["status"] in ("LOST", "partial")), None)
        dirs[name] = (path, seen_any, stop)
    parts = []
    down = _down_nodes(rows, caps, plan)
    for node, why in down.items():
        count = sum(1 for r in rows if r.get("node") == node and r["status"] == "unknown")
        plural = ("", "is") if count == 1 else ("s", "are")
        parts.append("%s (%s) %s; its %d hop%s %s unknown" % (node, _hosting(node, plan), why, count, plural[0], plural[1]))
    healthy = False
    req_path, req_any, req_stop = dirs["request"]
    resp_path, resp_any, resp_stop = dirs["response"]

    def stop_text(name, path, stop):
        idx = path.index(stop)
        before = [r for r in path[:idx] if r["packets"]]
        prev = before[-1] if before else None
        gap = [r for r in path[path.index(prev) + 1 if prev else 0:idx] if r["status"] == "unknown"]
        if stop["status"] == "LOST":
            text = "%s reached %s and was not seen on %s (%s)" % (name, hop_name(prev), hop_name(stop), _reason(stop, encap))
        elif stop["bytes_short"]:
            text = "%s data stopped between %s and %s: %d bytes seen on %s never reached %s (%s)" % (
                name, hop_name(prev), hop_name(stop), stop["bytes_short"], hop_name(prev), hop_name(stop), _reason(stop, encap))
        else:
            text = "%d %s packet(s) reached %s but were not seen on %s (%s)" % (
                stop["lost_from_previous"], name, hop_name(prev), hop_name(stop), _reason(stop, encap))
        if gap:
            text += "; %s in between was not captured, so the loss is somewhere from %s on" % (
                ", ".join(hop_name(g) for g in gap), hop_name(prev))
        if stop["dropped"]:
            text += "; uncertain: tcpdump on %s reported %d kernel drops" % (hop_name(stop), stop["dropped"])
        return text

    lost_some = repeat_.verdict_part(repeat) if not down and req_any and resp_any else None
    if lost_some and all(s is None or s["status"] == "partial" for s in (req_stop, resp_stop)):
        parts.append(lost_some)
        healthy = repeat["healthy"]
    elif not req_any:
        known = [r for r in req_path if r["status"] != "unknown"]
        if known:
            parts.append("the request was not seen on any hop (first: %s): nothing of this flow left the source pod" % hop_name(known[0]))
        else:
            parts.append("no hop of the request could be captured")
    elif req_stop is not None:
        parts.append(stop_text("request", req_path, req_stop))
    elif not resp_any:
        last = [r for r in req_path if r["packets"]][-1]
        if any(r["status"] != "unknown" for r in resp_path):
            parts.append("the destination pod never answered: the request reached %s but no response was seen on any hop" % hop_name(last))
        else:
            parts.append("the request reached %s; no hop of the response could be captured" % hop_name(last))
    elif resp_stop is not None:
        parts.append(stop_text("response", resp_path, resp_stop))
    elif any(r["status"] == "unknown" for r in rows):
        parts.append("every hop that could be captured saw the request and the response")
    else:
        healthy = True
        parts.append("every hop saw the request and the response" + (" of all %d probes" % repeat["count"] if repeat else ""))
    if refusal is not None:
        healthy = False
        reply = "the reset" if refusal["kind"] == "reset" else "the ICMP error"
        rest = []
        for part in parts:
            if part.startswith("the destination pod never answered: "):
                continue                # it did: with the ICMP error
            rest.append(part.replace("saw the request and the response", "saw the request and %s" % reply))
        parts = [refusal["refusal"]] + rest
    for r in rows:
        if r["status"] == "missed":
            notes.append("%s %s saw nothing although later hops did: check that capture (interface, filter)" % (r["direction"], hop_name(r)))
    unknown = []
    for cs in caps:
        if cs.status != "ok" and cs.node not in down:
            unknown.append("%s (%s%s)" % (cs.key, cs.status, ": %s" % cs.error if cs.error else ""))
    if unknown:
        parts.append("incomplete: no capture from %s" % ", ".join(unknown))
    dropped = [(r["capture"], r["dropped"]) for r in rows if r["dropped"]]
    seen_caps = set()
    drops = []
    for key, n in dropped:
        if key not in seen_caps:
            seen_caps.add(key)
            drops.append("%s dropped %d" % (key, n))
    if drops:
        notes.append("tcpdump reported kernel drops (%s): the verdict is uncertain there" % ", ".join(drops))
        if healthy is False and "uncertain" not in parts[0]:
            parts.append("uncertain: tcpdump dropped packets (%s)" % ", ".join(drops))
    return "; ".join(parts), healthy, notes


def service_verdict(service, an):
    """A Service without endpoints: kube-proxy's REJECT rule (nft: its no-endpoint-services map's
    reject-chain) answers on the source node (plan ``service``)."""
    head = service_text.unserved(service)
    node, who = service.get("dnat_on"), service_text.refuser(service)
    # destination unreachable: ICMP type 3, ICMPv6 type 1 (ip6tables' icmp6-port-unreachable, nft's reject);
    # the sender is an int for IPv4, 16 bytes for IPv6 (decode.ip_text)
    answered = [err for cs in an.caps if cs.node == node for (_h, _ts, err, about) in cs.icmp
                if about == 0 and err.type == (3 if isinstance(err.sender, int) else 1)]
    rst = any(cs.flags[1][i] for cs in an.caps if cs.node == node for i in RST_BITS)
    if answered or rst:
        how = ("ICMP port unreachable" if isinstance(answered[0].sender, int) else "ICMPv6 port unreachable") if answered else "a TCP RST"
        return "%s: %s on %s answered (%s)" % (head, who, node, how)
    if not any(cs.count[0] for cs in an.caps):
        return "%s (%s on %s); the request was not seen" % (head, who, node)
    return "%s (%s on %s); no answer was seen" % (head, who, node)


def masqueraded(service, rows):
    """`` and masqueraded to S`` for a verdict after a masquerading DNAT; when the request reached every
    hop, the answer's way depends on it: `` (the backend answers S, not the pod)``."""
    snat = service.get("snat_to")
    if not snat:
        return ""
    request = [r for r in rows if r["direction"] == "request"]
    reached = bool(request) and all(r["packets"] and r["status"] not in ("LOST", "partial") for r in request)
    return " and masqueraded to %s%s" % (snat, " (the backend answers %s, not the pod)" % snat if reached else "")
