# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard underlay hops: which encrypted messages carried the flow's packets.

On the underlay NIC WireGuard's payload is encrypted, so the flow's packets cannot be found by
their headers. What is in the clear is the UDP between the node pair (listen port 51820) and
the 16-byte message header: the type (1 handshake initiation, 2 handshake response, 3 cookie
reply, 4 transport data), and for data the receiver index and the 64-bit counter; a data
message is 16 + the inner packet padded to 16 bytes + a 16-byte tag, and a keepalive is a data
message of 32 bytes (nothing inside).

So, per direction:

* each inner packet the sending node's tunnel hop saw (in time order) is given the first unused
  data message from the sending node to the receiving node on the sending NIC that has the size
  the packet encrypts to, within ``SLACK_NS`` before and ``WINDOW_NS`` after it (same node, same
  clock): matched by node pair, port, count and timing, not by content;
* the receiving NIC's data messages are matched to those exactly by (receiver index, counter);
* a packet that no data message carried while the sender sent handshake initiations right after
  it was held for a handshake: the initiations stand for it on the sending NIC, and on the
  receiving NIC when that saw the same initiations (their sender index);
* a packet the receiving node's tunnel hop saw crossed the underlay whatever the matching says.

The packets found get the underlay captures' bits in ``Analysis.seen``, and those captures'
counts, flags, bytes and timing samples, so classification, timing and the verdict treat the
underlay hops like any other hop.
"""

from __future__ import annotations

import struct

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture

DEFAULT_PORT = 51820
MSG_INIT, MSG_RESPONSE, MSG_COOKIE, MSG_DATA = 1, 2, 3, 4
MSG_NAMES = {MSG_INIT: "handshake initiation", MSG_RESPONSE: "handshake response", MSG_COOKIE: "cookie reply",
             MSG_DATA: "data"}
KEEPALIVE_LEN = 32              # header 16 + tag 16, nothing inside
HEADER_LEN = 16
TAG_LEN = 16
SLACK_NS = 2000000              # a message may carry a packet the tunnel capture stamped this much later
WINDOW_NS = 6000000000          # ... or this much earlier (a packet waits for a handshake: REKEY_TIMEOUT 5 s)
LOOKAHEAD = 256                 # messages looked at past the first unused one (other traffic of the pair)
SAMPLE = 512
_U16 = struct.Struct("!H").unpack_from
_LE32 = struct.Struct("<I").unpack_from
_LE64 = struct.Struct("<Q").unpack_from


def encrypted_len(ip_len, mtu=None):
    """Length of the data message that carries an inner packet of ``ip_len`` bytes (padded to 16,
    never past the device MTU)."""
    padded = (ip_len + 15) // 16 * 16
    if mtu and padded > mtu >= ip_len:
        padded = mtu
    return HEADER_LEN + padded + TAG_LEN


def message(buf, off, caplen, linktype):
    """``(src, dst, sport, dport, type, length, index, counter)`` of a WireGuard-looking UDP
    packet (addresses as decode.ip_key holds them), or None. ``index`` is the receiver index of
    a data message or response, the sender index of an initiation; ``counter`` only for data."""
    end = off + caplen
    l3, etype = dec._link_to_ip(buf, off, end, linktype)
    if l3 is None or l3 >= end:
        return None
    version = buf[l3] >> 4
    if version == 4 and l3 + 20 <= end:
        if buf[l3 + 9] != 17 or _U16(buf, l3 + 6)[0] & 0x3FFF:
            return None
        src, dst = struct.unpack_from("!II", buf, l3 + 12)
        l4 = l3 + (buf[l3] & 0x0F) * 4
    elif version == 6 and l3 + 40 <= end:
        if buf[l3 + 6] != 17:
            return None
        src, dst = bytes(buf[l3 + 8:l3 + 24]), bytes(buf[l3 + 24:l3 + 40])
        l4 = l3 + 40
    else:
        return None
    if l4 + 8 + 4 > end:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", buf, l4)
    p = l4 + 8
    mtype = buf[p]
    if mtype not in MSG_NAMES or buf[p + 1] or buf[p + 2] or buf[p + 3]:
        return None
    length = ulen - 8
    index = counter = None
    if mtype == MSG_DATA and p + 16 <= end:
        index, counter = _LE32(buf, p + 4)[0], _LE64(buf, p + 8)[0]
    elif mtype == MSG_INIT and p + 8 <= end:
        index = _LE32(buf, p + 4)[0]
    elif mtype in (MSG_RESPONSE, MSG_COOKIE) and p + 12 <= end:
        index = _LE32(buf, p + 4)[0]
    return src, dst, sport, dport, mtype, length, index, counter


def ip_text_pair(msg):
    """(src, dst) of a :func:`message` as text."""
    return dec.ip_text(msg[0]), dec.ip_text(msg[1])


def read_messages(path, src, dst, port):
    """WireGuard messages from ``src`` to ``dst`` (key form) with ``port`` on either side, in file
    order: ``[(ts_ns, type, length, index, counter)]``."""
    out = []
    for ts, incl, _orig, buf, off, linktype in Capture(path).records():
        m = message(buf, off, incl, linktype)
        if m is None or m[0] != src or m[1] != dst or port not in (m[2], m[3]):
            continue
        out.append((ts, m[4], m[5], m[6], m[7]))
    return out


def _inner_packets(an, ci, d):
    """The flow's packets of direction ``d`` on capture ``ci`` (a tunnel hop), first sighting each:
    ``[(ts, hash, ip_len, payload_len, flags)]`` in time order."""
    A, B, port = (an.src, an.dst, an.port) if d == 0 else (an.dst, an.src, an.port)
    found, done = [], set()
    for ts, incl, _orig, buf, off, linktype in Capture(an.caps[ci].input["file"]).records():
        dd = dec.decode_at(buf, off, incl, linktype, an.vxlan_ports)
        if dd is None:
            continue
        t = dd.key
        if t[dec.KEY_PROTO] != an.proto or t[dec.KEY_SRC] != A or t[dec.KEY_DST] != B:
            continue
        if port is not None and t[dec.KEY_DPORT if d == 0 else dec.KEY_SPORT] != port:
            continue
        h = hash(t)
        if h in done:
            continue
        done.add(h)
        ip_len = t[dec.KEY_LEN_A] if t[dec.KEY_B0] >> 4 == 4 else t[dec.KEY_LEN_B] + 40
        found.append((ts, h, ip_len, dec.payload_len(t), t[dec.KEY_OFFFLAGS] & 63 if an.proto == 6 else 0))
    found.sort(key=lambda p: p[0])
    return found


def _hop(an, name, role):
    for hop in an.hops:
        if hop.get("direction") == name and hop.get("role") == role:
            return hop
    return None


def _ci(an, hop):
    if hop is None:
        return None
    return an.cap_index.get(hop.get("capture") or "%s/%s" % (hop.get("node"), hop.get("interface")))


def _port(an, hop):
    for cap in an.plan.get("captures") or []:
        if cap.get("key") == hop.get("capture") and cap.get("underlay_port"):
            return int(cap["underlay_port"])
    return DEFAULT_PORT


def _count(messages):
    counts = {"data": 0, "keepalive": 0, "handshake": 0, "cookie": 0}
    for m in messages:
        if m[1] == MSG_DATA:
            counts["keepalive" if m[2] == KEEPALIVE_LEN else "data"] += 1
        elif m[1] in (MSG_INIT, MSG_RESPONSE):
            counts["handshake"] += 1
        else:
            counts["cookie"] += 1
    return counts


def _carry(pkts, msgs, inits, mtu):
    """{packet hash: message} for the packets some data message carried, and {hash: [initiations]}
    for those held for a handshake."""
    carried, held = {}, {}
    used = [False] * len(msgs)
    first = 0
    for ts, h, ip_len, _plen, _flags in pkts:
        want = encrypted_len(ip_len, mtu)
        while first < len(msgs) and (used[first] or msgs[first][0] < ts - SLACK_NS):
            first += 1
        for j in range(first, min(len(msgs), first + LOOKAHEAD)):
            m = msgs[j]
            if m[0] > ts + WINDOW_NS:
                break
            if not used[j] and m[2] == want:
                used[j] = True
                carried[h] = m
                break
        else:
            pass
        if h not in carried:
            waiting = [i for i in inits if ts - SLACK_NS <= i[0] <= ts + WINDOW_NS]
            if waiting:
                held[h] = waiting
    return carried, held


def match(an, mtus=None):
    """Mark the flow's packets on the WireGuard underlay hops of ``an`` (after ``scan_all``).

    Returns ``{direction: {...}}`` per direction with a WireGuard underlay: the node pair, port,
    message counts on both NICs (data, keepalives, handshakes), packets carried, held for a
    handshake and inferred from the receiving tunnel hop.
    """
    result = {}
    for d, name in enumerate(("request", "response")):
        out_hop, in_hop = _hop(an, name, "underlay-out"), _hop(an, name, "underlay-in")
        if out_hop is None or in_hop is None or "wireguard" not in (out_hop.get("encap"), in_hop.get("encap")):
            continue
        t_out, t_in = _ci(an, _hop(an, name, "tunnel-out")), _ci(an, _hop(an, name, "tunnel-in"))
        u_out, u_in = _ci(an, out_hop), _ci(an, in_hop)
        s_ip, r_ip = out_hop.get("node_ip"), in_hop.get("node_ip")
        port = _port(an, out_hop)
        info = {"from": "%s %s" % (out_hop.get("node"), out_hop.get("interface") or "?"),
                "to": "%s %s" % (in_hop.get("node"), in_hop.get("interface") or "?"), "from_ip": s_ip, "to_ip": r_ip, "port": port,
                "sent": None, "received": None, "carried": 0, "held_for_handshake": 0, "inferred": 0, "lost": 0}
        result[name] = info
        if not s_ip or not r_ip:
            continue
        src, dst = dec.ip_key(s_ip), dec.ip_key(r_ip)
        ok = {ci: ci is not None and an.caps[ci].status == "ok" and an.caps[ci].input.get("file") for ci in (t_out, t_in, u_out, u_in)}
        sent = read_messages(an.caps[u_out].input["file"], src, dst, port) if ok[u_out] else None
        got = read_messages(an.caps[u_in].input["file"], src, dst, port) if ok[u_in] else None
        info["sent"] = _count(sent) if sent is not None else None
        info["received"] = _count(got) if got is not None else None
        if not ok[t_out]:
            continue
        pkts = _inner_packets(an, t_out, d)
        msgs = [m for m in sent or [] if m[1] == MSG_DATA and m[2] > KEEPALIVE_LEN]
        inits = [m for m in sent or [] if m[1] == MSG_INIT]
        carried, held = _carry(pkts, msgs, inits, (mtus or {}).get(out_hop.get("node")))
        arrived = {(m[3], m[4]): m[0] for m in got or [] if m[1] == MSG_DATA}
        arrived_inits = {m[3]: m[0] for m in got or [] if m[1] == MSG_INIT}
        seen = an.seen[d]
        tin_bit = 1 << t_in if ok[t_in] else 0
        marks = {u_out: [], u_in: []}
        for ts, h, _ip_len, plen, flags in pkts:
            at_out = at_in = None
            m = carried.get(h)
            if m is not None:
                at_out = m[0]
                at_in = arrived.get((m[3], m[4]))
                info["carried"] += 1
            elif h in held:
                at_out = held[h][0][0]
                at_in = next((arrived_inits[i[3]] for i in held[h] if i[3] in arrived_inits), None)
                info["held_for_handshake"] += 1
            if seen.get(h, 0) & tin_bit:
                if at_out is None or at_in is None:
                    info["inferred"] += 1
                at_out = ts if at_out is None else at_out
                at_in = ts if at_in is None else at_in
            if at_out is not None and ok[u_out]:
                marks[u_out].append((h, at_out, plen, flags))
            if at_in is not None and ok[u_in]:
                marks[u_in].append((h, at_in, plen, flags))
            elif at_out is not None:
                info["lost"] += 1
        for ci, found in marks.items():
            if ci is not None and ok[ci]:
                _mark(an, ci, d, found)
    return result


def _mark(an, ci, d, found):
    cs = an.caps[ci]
    bit = 1 << ci
    seen = an.seen[d]
    found.sort(key=lambda f: f[1])
    for h, ts, plen, flags in found:
        m = seen.get(h, 0)
        if m & bit:
            continue
        seen[h] = m | bit
        cs.count[d] += 1
        cs.flags[d][flags] += 1
        cs.bytes[d] += plen
        if len(cs.sample[d]) < SAMPLE:
            cs.sample[d].append((h, ts))
    if cs.sample[d]:
        cs.first[d] = min(ts for _h, ts in cs.sample[d])


def worth_saying(info):
    """A direction is described when its tunnel hop had packets or its NICs had messages."""
    if not info:
        return False
    sent = sum((info.get("sent") or {}).values()) + sum((info.get("received") or {}).values())
    return bool(sent or info["carried"] or info["held_for_handshake"] or info["inferred"])


def describe(info):
    """One sentence for the report about one direction's WireGuard underlay."""
    def counts(c):
        if c is None:
            return "no capture"
        return "%d data, %d keepalive, %d handshake" % (c["data"], c["keepalive"], c["handshake"])
    text = ("%s -> %s: WireGuard UDP %d from %s to %s is encrypted, so the flow's packets there were matched by "
            "node pair, port, count and timing (and the message counters between the two NICs), not by content "
            "(messages sent: %s; received: %s; %d packet(s) carried"
            % (info["from"], info["to"], info["port"], info["from_ip"], info["to_ip"],
               counts(info["sent"]), counts(info["received"]), info["carried"]))
    if info["held_for_handshake"]:
        text += ", %d held for a handshake" % info["held_for_handshake"]
    if info["inferred"]:
        text += ", %d inferred from the receiving tunnel hop" % info["inferred"]
    return text + ")"
