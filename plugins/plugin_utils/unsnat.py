# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo a NodePort's DNAT and masquerade in the capture on the backend pod's veth, so that the
analysis matches its packets with the hops before the translation.

On the node that owns the NodePort, kube-proxy DNATs ``node IP:nodePort`` to the backend and
masquerades the source (``KUBE-MARK-MASQ``, ``MASQUERADE --random-fully``): the backend's veth
sees ``node address:random port -> backend:targetPort``. The source port is new, but TCP keeps
its initial sequence number: the SYN seen upstream (``pod:port -> node IP:nodePort``) and the
one on the veth carry the same ``seq``, which maps each masqueraded port back to the pod's. The
capture is rewritten into a new pcap (addresses and ports in place) with the pre-translation tuple.
IPv4 and IPv6 alike (a NodePort on a node's IPv6 address: kube-proxy's IPv6 ruleset masquerades to an
IPv6 address of that node; both 16-byte addresses and the ports are rewritten, after any extension
headers). Checksums are left as they were, in both families: IPv4's header checksum and TCP's, whose
pseudo-header covers the addresses of either family, are stale in the copy; they are not part of the
analysis' match, which reads the copy only. TCP only (a UDP NodePort has no sequence number to follow).
Pure, stdlib only.
"""

from __future__ import annotations

import socket
import struct

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture

_U32 = struct.Struct("!I")


def _packed(address):
    """An address as its header carries it: 4 bytes for IPv4, 16 for IPv6."""
    address = str(address)
    return socket.inet_pton(socket.AF_INET6, address) if ":" in address else socket.inet_aton(address)


def _l4_offset(data, ip, version):
    """Where TCP starts in the IP packet at ``ip``: after IPv4's options, or after IPv6's extension headers
    (hop-by-hop, routing, destination options; a fragment never reaches here, decode keeps no TCP ports for
    it), or None when the headers are cut."""
    if version == 4:
        return ip + (data[ip] & 0x0F) * 4
    nxt, l4 = data[ip + 6], ip + 40
    while nxt in (0, 43, 60):
        if l4 + 8 > len(data):
            return None
        nxt, l4 = data[l4], l4 + (data[l4 + 1] + 1) * 8
    return l4 if nxt == 6 else None


def syn_ports(path, node_ip, node_port):
    """``{seq: source port}`` of the SYNs to ``node_ip:node_port`` in an upstream capture."""
    target = dec.ip_key(node_ip)
    found = {}
    for _ts, caplen, _orig, buf, off, lt in Capture(path).records():
        d = dec.decode_at(buf, off, caplen, lt)
        if d is None:
            continue
        t = d.key
        if t[dec.KEY_PROTO] == 6 and t[dec.KEY_DST] == target and t[dec.KEY_DPORT] == node_port \
                and t[dec.KEY_OFFFLAGS] & 0x12 == 0x02:
            found[t[dec.KEY_SEQ]] = t[dec.KEY_SPORT]
    return found


def rewrite(path, out, pod, node_ip, node_port, backend, backend_port, syns, rest=None):
    """Write ``out``: the capture at ``path`` with the backend's packets of the flow in the flow's
    pre-translation addresses (``pod:port <-> node_ip:node_port``). Returns how many were rewritten.

    ``rest``: a second file for the packets left as they are, ``out`` then holding only the rewritten
    ones - a device of the NodePort's node sees the flow both before the DNAT (from the source pod's
    node) and after it (to the backend's node), and each half belongs to other hops."""
    pod_b, node_b = _packed(pod), _packed(node_ip)
    version = 6 if len(pod_b) == 16 else 4
    backend_k = dec.ip_key(backend)
    ports = {}          # masqueraded port -> the pod's own
    records = []
    done = 0
    cap = Capture(path)
    linktype = None
    for ts, caplen, _orig, buf, off, lt in cap.records():
        linktype = lt if linktype is None else linktype
        data = bytearray(buf[off:off + caplen])
        before = done
        d = dec.decode_at(buf, off, caplen, lt)
        if d is not None and d.key[dec.KEY_PROTO] == 6 and d.key[dec.KEY_B0] >> 4 == version:
            t = d.key
            ip = d.inner_offset
            l4, addrs = _l4_offset(data, ip, version), ip + (8 if version == 6 else 12)
            if l4 is None:
                records.append((ts, caplen, bytes(data), False))
                continue
            if t[dec.KEY_DST] == backend_k and t[dec.KEY_DPORT] == backend_port:
                if t[dec.KEY_OFFFLAGS] & 0x12 == 0x02 and t[dec.KEY_SEQ] in syns:
                    ports[t[dec.KEY_SPORT]] = syns[t[dec.KEY_SEQ]]
                mine = ports.get(t[dec.KEY_SPORT])
                if mine is not None and len(data) >= l4 + 4:
                    data[addrs:addrs + 2 * len(pod_b)] = pod_b + node_b
                    data[l4:l4 + 4] = struct.pack("!HH", mine, node_port)
                    done += 1
            elif t[dec.KEY_SRC] == backend_k and t[dec.KEY_SPORT] == backend_port:
                mine = ports.get(t[dec.KEY_DPORT])
                if mine is not None and len(data) >= l4 + 4:
                    data[addrs:addrs + 2 * len(pod_b)] = node_b + pod_b
                    data[l4:l4 + 4] = struct.pack("!HH", node_port, mine)
                    done += 1
        records.append((ts, caplen, bytes(data), done > before))
    halves = [(out, None)] if rest is None else [(out, True), (rest, False)]
    for name, which in halves:
        with open(name, "wb") as handle:
            handle.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype if linktype is not None else 1))
            for ts, caplen, data, changed in records:
                if which is None or changed == which:
                    sec, ns = divmod(ts, 1000000000)
                    handle.write(struct.pack("<IIII", sec, ns, caplen, caplen) + data)
    return done
