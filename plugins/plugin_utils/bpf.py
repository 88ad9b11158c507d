# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tcpdump (libpcap) filter expressions that match one flow at one hop, both directions.

What a capture sees depends on where it sits:

* pod veth, tunnel device (``tunl0``, ``vxlan.calico``, ``wireguard.cali``: already
  decapsulated), NIC without encapsulation: the pod packets themselves -> plain host/port
  filter (:func:`plain_filter`);
* underlay NIC with IPIP: outer IPv4 protocol 4 between this node and the peer node, the pod
  addresses at fixed offsets inside (:func:`ipip_filter`);
* underlay NIC with VXLAN: outer UDP to the VXLAN port, inner Ethernet + IP at fixed offsets
  inside (:func:`vxlan_filter`);
* underlay NIC with WireGuard: encrypted, only the node-pair UDP is visible
  (:func:`wireguard_filter`).

Offsets (outer IPv4 without options, which is what Linux tunnels send; the filters check it):

    IPIP   ip[0..19] outer IP | ip[20..] inner IP: proto ip[29], frag ip[26:2], src ip[32:4],
           dst ip[36:4], inner L4 ip[40] (only when ip[20]&0xf==5) -> ports ip[40:2], ip[42:2]
    VXLAN  udp[0..7] UDP | udp[8..15] VXLAN | udp[16..29] inner Ethernet, type udp[28:2] |
           udp[30..] inner IPv4: proto udp[39], frag udp[36:2], src udp[42:4], dst udp[46:4],
           ports udp[50:2]/udp[52:2] when udp[30]&0xf==5.
           Inner IPv6: next header udp[36], src udp[38..53], dst udp[54..69], ports udp[70:2]/udp[72:2].
           libpcap's udp[] follows the outer IPv4 header length itself. With an IPv6 outer header
           udp[] is not available (libpcap 1.10 rejects it), so the same offsets are taken from
           ip6[40 + n] (udp[n] behind a 40-byte IPv6 header without extension headers).

Every flow filter also passes the ICMP/ICMPv6 errors about the flow (``icmp_error_part``):
destination unreachable, time exceeded, parameter problem (and ICMPv6 packet too big) whose
quoted packet has the flow's protocol and its two addresses either way round, wherever the error
comes from (the destination pod refusing a UDP port, a node's REJECT rule, a router's
fragmentation needed). Quoted header offsets behind an ICMP header of 8 bytes:
    IPv4   icmp[0] type | icmp[8..] quoted IPv4: proto icmp[17], src icmp[20:4], dst icmp[24:4]
           (libpcap's icmp[] follows the IPv4 header length); inside IPIP the inner ICMP is at
           ip[40] (inner header without options), inside VXLAN at udp[50].
    IPv6   ip6[40] type | ip6[48..] quoted IPv6: next header ip6[54], src ip6[56..71],
           dst ip6[72..87] (no extension headers); inside VXLAN the ICMPv6 is at udp[70].

A VLAN-tagged underlay is handled with libpcap's ``vlan`` keyword in front: it shifts every
offset after it by the tag. All functions return a string; bad input raises
:class:`ValidationError` (a ``ValueError``).
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import ip_address, ip_hex
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import (
    ValidationError,
    validate_flow,
    validate_ip,
    validate_port,
)

ENCAPS = ("none", "local", "ipip", "vxlan", "wireguard")
DEFAULT_PORTS = {"vxlan": 4789, "wireguard": 51820}
# capture roles whose packets are the pod packets themselves
PLAIN_ROLES = ("veth", "tunnel", "src-veth", "dst-veth", "tunnel-in", "tunnel-out")
_IP_PROTO = {("tcp", 4): 6, ("udp", 4): 17, ("icmp", 4): 1, ("tcp", 6): 6, ("udp", 6): 17, ("icmp", 6): 58}
ICMP4_ERRORS = (3, 11, 12)       # destination unreachable, time exceeded, parameter problem
ICMP6_ERRORS = (1, 2, 3, 4)      # destination unreachable, packet too big, time exceeded, parameter problem


def _flow(flow):
    """Accept a flow dict (src, dst, proto, port) and return it validated."""
    if not isinstance(flow, dict):
        raise ValidationError("flow must be a dict with src, dst, proto and port; got %r" % (flow,))
    return validate_flow(flow.get("src"), flow.get("dst"), flow.get("proto", "tcp"), flow.get("port"))


def _version(address):
    return ip_address(address).version


def _vlan_prefix(vlan):
    if vlan is None or vlan is False or vlan == "":
        return ""
    if vlan is True:
        return "vlan and "
    try:
        vid = int(vlan)
    except (TypeError, ValueError):
        raise ValidationError("vlan %r is not a VLAN id; give true (any tag) or an id 0-4094" % (vlan,)) from None
    if not 0 <= vid <= 4094:
        raise ValidationError("vlan %r is out of range; give true (any tag) or an id 0-4094" % (vlan,))
    return "vlan %d and " % vid


def _words(address):
    """The 32-bit words of an address as tcpdump constants (one for IPv4, four for IPv6)."""
    value = ip_hex(address)
    return [value] if isinstance(value, str) else value


def _equals(load, offset, address):
    """``load(offset)==w0 and load(offset+4)==w1 ...`` for the words of ``address``."""
    parts = ["%s==%s" % (load(offset + 4 * i, 4), word) for i, word in enumerate(_words(address))]
    return parts[0] if len(parts) == 1 else "(%s)" % " and ".join(parts)


def _pair(load, src_off, dst_off, flow):
    """Inner src/dst equal to the flow's pair, either way round."""
    fwd = "%s and %s" % (_equals(load, src_off, flow["src"]), _equals(load, dst_off, flow["dst"]))
    rev = "%s and %s" % (_equals(load, src_off, flow["dst"]), _equals(load, dst_off, flow["src"]))
    return "((%s) or (%s))" % (fwd, rev)


def _ports(load, l4_off, port):
    return "(%s==%d or %s==%d)" % (load(l4_off, 2), port, load(l4_off + 2, 2), port)


def icmp_error_part(flow, load, icmp_at, version):
    """The test for an ICMP (``version`` 4) or ICMPv6 (6) error about ``flow``: its ICMP header at
    ``icmp_at`` (as ``load`` addresses it), its type one of the errors, the packet it quotes of the
    flow's protocol with the flow's two addresses either way round.

    ``(icmp[0]==3 or icmp[0]==11 or icmp[0]==12) and icmp[17]==6 and ((icmp[20:4]==S and ...) or (...))``
    """
    flow = _flow(flow)
    types = ICMP4_ERRORS if version == 4 else ICMP6_ERRORS
    kinds = "(%s)" % " or ".join("%s==%d" % (load(icmp_at, 1), t) for t in types)
    quoted = icmp_at + 8
    if version == 4:
        proto, src, dst = quoted + 9, quoted + 12, quoted + 16
    else:
        proto, src, dst = quoted + 6, quoted + 8, quoted + 24
    return "%s and %s==%d and %s" % (kinds, load(proto, 1), _IP_PROTO[(flow["proto"], version)], _pair(load, src, dst, flow))


def _loader(name, base=0):
    def load(offset, size):
        return "%s[%d:%d]" % (name, base + offset, size) if size != 1 else "%s[%d]" % (name, base + offset)
    return load


def _or_errors(vlan, expr, errors):
    """``expr``, or ``(expr) or (errors)`` when the ICMP errors are passed too, behind the VLAN prefix."""
    if not errors:
        return _vlan_prefix(vlan) + expr
    # libpcap's and/or have one precedence, left to right: the VLAN test must hold for both parts
    both = "(%s) or (%s)" % (expr, errors)
    return _vlan_prefix(vlan) + "(%s)" % both if vlan not in (None, False, "") else both


def plain_filter(flow, vlan=None, snat_ips=None, icmp_errors=True):
    """Filter for the pod packets themselves, e.g.
    ``(host 172.17.25.79 and host 172.17.25.239 and tcp port 443) or (icmp and ...)`` - the second
    part the ICMP errors about the flow (``icmp_errors=False`` leaves it out).

    ``snat_ips``: addresses the source may be rewritten to on this interface (a node's egress
    NIC with masquerading); the filter then accepts either the pod or those as the other host.
    """
    flow = _flow(flow)
    version = _version(flow["src"])
    if snat_ips:
        others = [validate_ip(flow["src"], "src")] + [validate_ip(ip, "snat address") for ip in snat_ips]
        hosts = "host %s and (%s)" % (flow["dst"], " or ".join("host %s" % ip for ip in others))
    else:
        hosts = "host %s and host %s" % (flow["src"], flow["dst"])
    if flow["proto"] == "icmp":
        expr = "%s and %s" % ("icmp" if version == 4 else "icmp6", hosts)
    else:
        expr = "%s and %s port %d" % (hosts, flow["proto"], flow["port"])
    errors = None
    if icmp_errors:
        if version == 4:
            errors = "icmp and " + icmp_error_part(flow, _loader("icmp"), 0, 4)
        else:
            errors = "icmp6 and " + icmp_error_part(flow, _loader("ip6"), 40, 6)
    return _or_errors(vlan, expr, errors)


def ipip_filter(flow, peer=None, vlan=None, icmp_errors=True):
    """Filter for IPIP (IPv4 in IPv4) on the underlay between this node and ``peer``.

    ``ip proto 4 and host PEER and ip[0]&0xf==5 and ((ip[32:4]==S and ip[36:4]==D) or
    (ip[32:4]==D and ip[36:4]==S)) and ip[29]==6 ...`` plus the inner port when the inner
    header has no options (``ip[20]&0xf==5``) and is not a later fragment.
    """
    flow = _flow(flow)
    if _version(flow["src"]) != 4:
        raise ValidationError(
            "IPIP carries IPv4 only, but the flow %s -> %s is IPv6; IPv6 pods are routed without "
            "IPIP (BGP) or over VXLAN, so plan the capture with encap none or vxlan" % (flow["src"], flow["dst"])
        )
    parts = ["ip proto 4"]
    if peer:
        peer = validate_ip(peer, "peer")
        if _version(peer) != 4:
            raise ValidationError("IPIP peer %s is IPv6; IPIP runs over IPv4: give the peer node's IPv4 address" % peer)
        parts.append("host %s" % peer)
    parts.append("ip[0]&0xf==5")
    outer = list(parts)

    def load(offset, size):
        return "ip[%d:%d]" % (offset, size) if size != 1 else "ip[%d]" % offset

    parts.append(_pair(load, 32, 36, flow))
    parts.append("ip[29]==%d" % _IP_PROTO[(flow["proto"], 4)])
    if flow["port"] is not None:
        parts.append("ip[20]&0xf==5 and ip[26:2]&0x1fff==0")
        parts.append(_ports(load, 40, flow["port"]))
    errors = None
    if icmp_errors:
        # an ICMP error about the flow, inside IPIP between the same nodes: inner ICMP at ip[40]
        errors = " and ".join(outer + ["ip[29]==1 and ip[20]&0xf==5", icmp_error_part(flow, load, 40, 4)])
    return _or_errors(vlan, " and ".join(parts), errors)


def vxlan_filter(flow, peer=None, port=None, vlan=None, outer_family=None, icmp_errors=True):
    """Filter for VXLAN on the underlay: UDP ``port`` (default 4789) to/from ``peer``, inner
    Ethernet carrying the flow's pod packets in either direction.

    The outer family is the peer's (or ``outer_family`` 'inet'/'inet6' when no peer is given);
    the inner family is the flow's; every combination is supported.
    """
    flow = _flow(flow)
    port = DEFAULT_PORTS["vxlan"] if port in (None, "") else validate_port(port, "vxlan port")
    if peer:
        peer = validate_ip(peer, "peer")
        outer = _version(peer)
    else:
        outer = 6 if outer_family == "inet6" else 4
    if outer == 4:
        parts = ["udp port %d" % port]

        def load(offset, size):
            return "udp[%d:%d]" % (offset, size) if size != 1 else "udp[%d]" % offset
    else:
        parts = ["ip6 and udp port %d" % port]

        def load(offset, size):
            return "ip6[%d:%d]" % (40 + offset, size) if size != 1 else "ip6[%d]" % (40 + offset)
    if peer:
        parts.append("host %s" % peer)
    outer_parts = list(parts)
    inner = _version(flow["src"])
    proto = _IP_PROTO[(flow["proto"], inner)]
    if inner == 4:
        parts.append("%s==0x0800" % load(28, 2))
        parts.append(_pair(load, 42, 46, flow))
        parts.append("%s==%d" % (load(39, 1), proto))
        if flow["port"] is not None:
            parts.append("%s&0xf==5 and %s&0x1fff==0" % (load(30, 1), load(36, 2)))
            parts.append(_ports(load, 50, flow["port"]))
    else:
        parts.append("%s==0x86dd" % load(28, 2))
        parts.append(_pair(load, 38, 54, flow))
        parts.append("%s==%d" % (load(36, 1), proto))
        if flow["port"] is not None:
            parts.append(_ports(load, 70, flow["port"]))
    errors = None
    if icmp_errors:
        # an ICMP error about the flow inside the same tunnel: inner ICMP at udp[50], ICMPv6 at udp[70]
        if inner == 4:
            tests = ["%s==0x0800" % load(28, 2), "%s&0xf==5 and %s==1" % (load(30, 1), load(39, 1)), icmp_error_part(flow, load, 50, 4)]
        else:
            tests = ["%s==0x86dd" % load(28, 2), "%s==58" % load(36, 1), icmp_error_part(flow, load, 70, 6)]
        errors = " and ".join(outer_parts + tests)
    return _or_errors(vlan, " and ".join(parts), errors)


def wireguard_filter(peer=None, port=None, vlan=None):
    """Filter for WireGuard on the underlay: only the node pair's UDP is visible
    (``udp port 51820 and host PEER``); the pod packets inside are encrypted."""
    port = DEFAULT_PORTS["wireguard"] if port in (None, "") else validate_port(port, "wireguard port")
    expr = "udp port %d" % port
    if peer:
        expr += " and host %s" % validate_ip(peer, "peer")
    return _vlan_prefix(vlan) + expr


def flow_filter(flow, encap="none", peer=None, port=None, vlan=None, outer_family=None, snat_ips=None):
    """The filter for ``flow`` as seen in encapsulation ``encap`` (none|local|ipip|vxlan|wireguard).

    ``port`` is the underlay port (VXLAN 4789 / 8472, WireGuard 51820), not the flow's port.
    """
    if encap in ("none", "local", None, ""):
        return plain_filter(flow, vlan=vlan, snat_ips=snat_ips)
    if encap == "ipip":
        return ipip_filter(flow, peer=peer, vlan=vlan)
    if encap == "vxlan":
        return vxlan_filter(flow, peer=peer, port=port, vlan=vlan, outer_family=outer_family)
    if encap == "wireguard":
        _flow(flow)
        return wireguard_filter(peer=peer, port=port, vlan=vlan)
    raise ValidationError("encap %r is not supported; use one of %s" % (encap, ", ".join(ENCAPS)))


def capture_filter(capture, flow):
    """The filter for one capture or hop of a plan (``role``, ``encap``, ``peer``,
    ``vxlan_port``/``underlay_port``, ``vlan``, ``snat_ips``) and a flow.

    Captures on pod veths and tunnel devices see decapsulated packets: they always get the
    plain filter, whatever the encapsulation of the path.
    """
    if not isinstance(capture, dict):
        raise ValidationError("capture must be a dict with at least 'encap'; got %r" % (capture,))
    role = capture.get("role") or "underlay"
    encap = capture.get("encap") or "none"
    if role in PLAIN_ROLES:
        encap = "none"
    port = capture.get("underlay_port")
    if port in (None, ""):
        port = capture.get("vxlan_port") if encap == "vxlan" else capture.get("wireguard_port")
    return flow_filter(
        flow,
        encap=encap,
        peer=capture.get("peer"),
        port=port,
        vlan=capture.get("vlan"),
        outer_family=capture.get("outer_family"),
        snat_ips=capture.get("snat_ips") if role == "egress" else None,
    )


def any_of(filters):
    """Combine several filters for one capture (e.g. request and response took different
    encapsulations on the same NIC) into one expression; duplicates are dropped."""
    unique = []
    for expr in filters:
        if expr and expr not in unique:
            unique.append(expr)
    if not unique:
        raise ValidationError("no filter to combine")
    if len(unique) == 1:
        return unique[0]
    return " or ".join("(%s)" % expr for expr in unique)
