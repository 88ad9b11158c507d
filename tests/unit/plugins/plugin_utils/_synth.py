"""Private: synthetic hop captures of the seed's flow (IPIP and VXLAN) for the analysis tests."""
import socket
import struct

SRC, DST, PORT, SPORT = "172.17.25.79", "172.17.25.239", 443, 38362
NODE_A, NODE_B = "10.240.128.12", "10.240.0.9"
SRC_VETH, DST_VETH = "cali41f14107a8d", "calic25e805a467"
BASE_NS = 1700000000 * 10**9

ROLES = ["src-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "dst-veth"]


def _ip(a):
    return socket.inet_aton(a)


def ipv4(src, dst, proto, payload, ident, ttl=64):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, _ip(src), _ip(dst))
    return hdr + payload


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIHHHH", sport, dport, seq, ack, (5 << 12) | flags, 28800, 0, 0) + payload


def eth(payload, etype=0x0800):
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + struct.pack("!H", etype) + payload


def vxlan(outer_src, outer_dst, inner_frame, port=4789, vni=4096):
    udp_payload = struct.pack("!BBHI", 0x08, 0, 0, vni << 8) + inner_frame
    udp = struct.pack("!HHHH", 40000, port, 8 + len(udp_payload), 0) + udp_payload
    return ipv4(outer_src, outer_dst, 17, udp, 7)


def write_pcap(path, records, linktype, nano=False):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ts, data in sorted(records, key=lambda r: r[0]):
            sec, ns = divmod(ts, 10**9)
            frac = ns if nano else ns // 1000
            f.write(struct.pack("<IIII", sec, frac, len(data), len(data)) + data)


# (direction, flags, payload length): handshake, a request, a response, final ACK
FLOW = [("request", 0x02, 0), ("response", 0x12, 0), ("request", 0x10, 0), ("request", 0x18, 100),
        ("response", 0x10, 0), ("response", 0x18, 200), ("request", 0x10, 0)]


def flow_packets():
    """Inner IPv4/TCP packets with their direction and send time (ns from BASE)."""
    out = []
    seq = {"request": 694140744, "response": 2893467652}
    ack = {"request": 0, "response": 694140745}
    ident = {"request": 1000, "response": 5000}
    for i, (d, fl, plen) in enumerate(FLOW):
        other = "response" if d == "request" else "request"
        src, dst, sp, dp = (SRC, DST, SPORT, PORT) if d == "request" else (DST, SRC, PORT, SPORT)
        payload = bytes(plen)
        seg = tcp(sp, dp, seq[d], ack[d] if fl != 0x02 else 0, fl, payload)
        out.append((d, i * 1000000, src, dst, ident[d], seg))
        ident[d] += 1
        seq[d] = (seq[d] + plen + (1 if fl & 0x03 else 0)) & 0xFFFFFFFF
        ack[other] = seq[d]
        if d == "response" and fl == 0x12:
            ack["request"] = seq[d]
    return out


def make_plan(encap="ipip"):
    tunnel = "tunl0" if encap == "ipip" else "vxlan.calico"
    ifaces = {"a": [SRC_VETH, tunnel, "eth0"], "b": [DST_VETH, tunnel, "eth0"]}
    req = [("node-a", ifaces["a"][0]), ("node-a", tunnel), ("node-a", "eth0"), ("node-b", "eth0"), ("node-b", tunnel), ("node-b", DST_VETH)]
    resp = [("node-b", DST_VETH), ("node-b", tunnel), ("node-b", "eth0"), ("node-a", "eth0"), ("node-a", tunnel), ("node-a", SRC_VETH)]
    hops = []
    for direction, path in (("request", req), ("response", resp)):
        for i, (node, iface) in enumerate(path):
            role = ROLES[i] if direction == "request" else ["dst-veth", "tunnel-out", "underlay-out", "underlay-in", "tunnel-in", "src-veth"][i]
            hops.append({"index": i + 1, "direction": direction, "node": node, "node_ip": NODE_A if node == "node-a" else NODE_B,
                         "interface": iface, "role": role, "encap": encap if iface == "eth0" else "none", "capture": "%s/%s" % (node, iface)})
    caps = []
    for node in ("node-a", "node-b"):
        for iface in (SRC_VETH if node == "node-a" else DST_VETH, tunnel, "eth0"):
            caps.append({"key": "%s/%s" % (node, iface), "node": node, "interface": iface, "encap": encap if iface == "eth0" else "none",
                         "filter": "", "peer": None, "vxlan_port": 4789 if encap == "vxlan" and iface == "eth0" else None})
    return {"run": {"src": SRC, "dst": DST, "proto": "tcp", "port": PORT}, "src_node": "node-a", "dst_node": "node-b",
            "encap": encap, "hops": hops, "captures": caps}


def frame(encap, node, iface, direction, src, dst, ident, seg, ttl):
    inner = ipv4(src, dst, 6, seg, ident, ttl)
    if iface.startswith("cali"):
        return eth(inner), 1
    if iface == "tunl0":
        return inner, 101
    if iface == "vxlan.calico":
        return eth(inner), 1
    outer_src, outer_dst = (NODE_A, NODE_B) if direction == "request" else (NODE_B, NODE_A)
    if encap == "ipip":
        return eth(ipv4(outer_src, outer_dst, 4, inner, 3)), 1
    return eth(vxlan(outer_src, outer_dst, eth(inner))), 1


def make_trace(tmpdir, encap="ipip", drop=None, only=None, node_b_shift_ns=0, no_response=False, nano_hops=("tunl0",)):
    """Write one pcap per capture; return (plan, captures).

    drop=("request", k): packets of that direction are absent from hop k onwards (and, for a
    request drop, the whole response is absent: the server never got the request).
    only=("request", k): packets of that direction are absent at hop k only.
    """
    plan = make_plan(encap)
    per_cap = {c["key"]: [] for c in plan["captures"]}
    linktypes = {}
    for direction, t0, src, dst, ident, seg in flow_packets():
        if no_response and direction == "response":
            continue
        if drop and drop[0] == "request" and direction == "response":
            continue
        path = [h for h in plan["hops"] if h["direction"] == direction]
        for pos, hop in enumerate(path, start=1):
            if drop and drop[0] == direction and pos >= drop[1]:
                break
            if only and only[0] == direction and pos == only[1]:
                continue
            ts = BASE_NS + t0 + pos * 50000 + (300000 if pos >= 4 else 0)
            if hop["node"] == "node-b":
                ts += node_b_shift_ns
            data, lt = frame(encap, hop["node"], hop["interface"], direction, src, dst, ident, seg, 64 - pos)
            per_cap[hop["capture"]].append((ts, data))
            linktypes[hop["capture"]] = lt
    captures = []
    for c in plan["captures"]:
        path = str(tmpdir / (c["key"].replace("/", "_") + ".pcap"))
        lt = linktypes.get(c["key"], 101 if c["interface"] == "tunl0" else 1)
        write_pcap(path, per_cap[c["key"]], lt, nano=c["interface"] in nano_hops)
        captures.append({"key": c["key"], "node": c["node"], "interface": c["interface"], "file": path,
                         "captured": len(per_cap[c["key"]]), "received": len(per_cap[c["key"]]), "dropped": 0, "status": "ok", "error": None})
    return plan, captures
