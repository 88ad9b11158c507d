# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The largest packet of a direction at one hop, for the MTU cause (slow path only).

``largest(an, row)`` reads the capture of one hop again - only when a direction stopped after
it and the next hop's interface has a smaller MTU than what may have been seen - and returns the
largest IP packet (the innermost header's total length, IPv6 with its fixed header) of that
row's direction, 0 when none. ``overhead(encap)`` is what a tunnel adds on the underlay.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import decode as dec
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.pcapio import Capture, CaptureError

# bytes a tunnel adds in front of the inner IP packet on the underlay NIC (outer IPv4 header, UDP+VXLAN+Ethernet)
OVERHEAD = {"ipip": 20, "vxlan": 50}


def overhead(encap):
    return OVERHEAD.get(encap or "none", 0)


def largest(an, row):
    """The largest IP packet of ``row``'s direction in its capture (bytes), 0 when none or unreadable."""
    cs = an.caps[row["_ci"]]
    path = (cs.input or {}).get("file")
    if cs.status != "ok" or not path:
        return 0
    A, B, port, d = an.src, an.dst, an.port, row["_d"]
    biggest = 0
    try:
        for _ts, incl, _orig, buf, off, linktype in Capture(path).records():
            got = dec.decode_at(buf, off, incl, linktype, an.vxlan_ports)
            if got is None:
                continue
            t = got.key
            if t[dec.KEY_PROTO] != an.proto:
                continue
            if d == 0 and not (t[dec.KEY_SRC] == A and t[dec.KEY_DST] == B and (port is None or t[dec.KEY_DPORT] == port)):
                continue
            if d == 1 and not (t[dec.KEY_SRC] == B and t[dec.KEY_DST] == A and (port is None or t[dec.KEY_SPORT] == port)):
                continue
            size = t[dec.KEY_LEN_A] if t[dec.KEY_B0] < 0x60 else t[dec.KEY_LEN_B] + 40
            biggest = max(biggest, size)
    except (CaptureError, OSError, ValueError):
        return 0
    return biggest
