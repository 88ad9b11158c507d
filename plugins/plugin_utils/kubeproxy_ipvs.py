# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-proxy's IPVS mode: the virtual server of one Service address from ``ipvsadm -Ln``.

In IPVS mode kube-proxy puts every ClusterIP on the dummy device ``kube-ipvs0`` and makes one
virtual server per Service address and port (``TCP  10.96.0.10:53 rr``), whose real servers are the
endpoints (``  -> 10.244.1.5:53  Masq  1  0  0``); IPVS picks one per connection by its scheduler
(``rr``, ``lc``, ...; ``persistent N`` keeps a client on one). IPVS knows no Service names. A
virtual server without real servers drops the packets. :func:`translate` answers in the shape of
``kubeproxy.translate``. Pure; tested on real ``ipvsadm -Ln`` outputs (tests/unit/fixtures/services).
"""

from __future__ import annotations

import re

_VS = re.compile(r"^(TCP|UDP|SCTP)\s+(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)\s+(\S+)(.*)$")
_RS = re.compile(r"^\s+->\s+(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def parse_ipvsadm(text):
    """The virtual servers of an ``ipvsadm -Ln`` output: ``[{proto, address, port, scheduler,
    persistent, reals: [{ip, port, forward, weight, active, inactive}]}]`` (numeric output only)."""
    servers = []
    for line in (text or "").splitlines():
        vs = _VS.match(line.rstrip())
        if vs:
            flags = vs.group(5).split()
            persistent = int(flags[flags.index("persistent") + 1]) if "persistent" in flags[:-1] else None
            servers.append({"proto": vs.group(1).lower(), "address": vs.group(2).strip("[]"), "port": int(vs.group(3)),
                            "scheduler": vs.group(4), "persistent": persistent, "reals": []})
            continue
        rs = _RS.match(line)
        if rs and servers:
            servers[-1]["reals"].append({"ip": rs.group(1).strip("[]"), "port": int(rs.group(2)), "forward": rs.group(3),
                                         "weight": int(rs.group(4)), "active": int(rs.group(5)), "inactive": int(rs.group(6))})
    return servers


def translate(text, dst, port, proto="tcp", local=False):
    """The virtual server for ``dst:port`` as kubeproxy.translate() answers, or None."""
    proto = (proto or "tcp").lower()
    for vs in parse_ipvsadm(text) if isinstance(text, str) else text:
        if vs["proto"] != proto or vs["address"] != str(dst) or vs["port"] != int(port):
            continue
        weights = sum(r["weight"] for r in vs["reals"]) or 0
        endpoints = [{"ip": r["ip"], "port": r["port"], "chain": None, "hairpin": False,
                      "chance": round(r["weight"] / float(weights), 6) if weights else 0.0}
                     for r in vs["reals"] if r["weight"] > 0]
        rule = "%s  %s:%d %s%s" % (proto.upper(), vs["address"], vs["port"], vs["scheduler"],
                                   " persistent %d" % vs["persistent"] if vs["persistent"] else "")
        return {
            "mode": "ipvs", "service": None, "port_name": None, "kind": "nodeport" if local else "clusterip",
            "address": str(dst), "port": int(port), "proto": proto, "endpoints": endpoints,
            "masquerade": False, "masquerade_rules": [], "rejected": None, "rule": rule, "chains": [],
            "scheduler": vs["scheduler"], "persistent": vs["persistent"],
        }
    return None
