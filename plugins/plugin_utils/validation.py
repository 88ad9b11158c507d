# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of everything that ends up in a tcpdump filter or argv: IPs, ports, protocols,
interface names; and of the host names that name folders of the run folder. One ``validate_flow``
for the planner and the role.

Every refusal is a :class:`ValidationError` (a ``ValueError``) whose message says what to fix.
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address

PROTOCOLS = ("tcp", "udp", "icmp")
# Linux IFNAMSIZ is 16 with the NUL; VLAN (eth0.100), alias (eth0:1) and "veth@if5" spellings
IFNAME_RE = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")
# what a host name may not hold to name its own folder: a path separator or a control character
FOLDER_BAD_RE = re.compile(r"[/\\\x00-\x1f\x7f]")


class ValidationError(ValueError):
    """Input that hoptrace refuses; the message names the value and the fix."""


def validate_ip(value, what="address"):
    """Return the canonical text of one IP address (``fd00:0::1`` -> ``fd00::1``)."""
    try:
        return str(ip_address(value, what))
    except AddressError as exc:
        raise ValidationError(str(exc)) from None


def validate_port(value, what="port"):
    """Return the port as an int in 1..65535 (``"443"`` is accepted)."""
    if isinstance(value, bool):
        raise ValidationError("%s %r is not a port number; give an integer 1-65535" % (what, value))
    try:
        port = int(str(value).strip(), 10)
    except (TypeError, ValueError):
        raise ValidationError("%s %r is not a port number; give an integer 1-65535" % (what, value)) from None
    if not 1 <= port <= 65535:
        raise ValidationError("%s %r is out of range; give an integer 1-65535" % (what, value))
    return port


def validate_proto(value):
    """Return the protocol lower-cased; one of tcp, udp, icmp."""
    proto = str(value or "").strip().lower()
    if proto not in PROTOCOLS:
        raise ValidationError("proto %r is not supported; use one of %s" % (value, ", ".join(PROTOCOLS)))
    return proto


def validate_ifname(value, what="interface"):
    """Return an interface name that is safe to pass to tcpdump -i (no shell metacharacters)."""
    name = value if isinstance(value, str) else ""
    if not IFNAME_RE.fullmatch(name):
        raise ValidationError(
            "%s name %r is not a valid Linux interface name; use 1-15 characters from "
            "A-Z a-z 0-9 _ . @ : - (no spaces, quotes or shell metacharacters)" % (what, value)
        )
    return name


def validate_host_folder(name):
    """Return an inventory host name that can name its folder in the run folder (``RUN/HOST/``).

    A name with ``/``, a control character, or ``.``/``..`` would put that host's captures outside
    its folder (``../../etc``) or into another's."""
    text = name if isinstance(name, str) else ""
    if text in ("", ".", "..") or FOLDER_BAD_RE.search(text):
        raise ValidationError(
            "inventory host %r is on the path, and its captures are written to RUN_FOLDER/<host name>/: a host "
            "name must not be empty, '.' or '..' nor contain '/', '\\' or control characters; rename the host in "
            "the inventory (keep its address in ansible_host)" % (name,)
        )
    return text


def validate_flow(src, dst, proto="tcp", port=None):
    """Validate one flow and return it normalised as a dict ``{src, dst, proto, port}``.

    ``port`` is required for tcp and udp, and ignored (returned as None) for icmp. src and dst
    must be of the same IP family and differ.
    """
    src_ip = validate_ip(src, "src")
    dst_ip = validate_ip(dst, "dst")
    proto = validate_proto(proto)
    if ip_address(src_ip).version != ip_address(dst_ip).version:
        raise ValidationError(
            "src %s and dst %s are of different IP families; trace an IPv4 pair or an IPv6 pair" % (src_ip, dst_ip)
        )
    if src_ip == dst_ip:
        raise ValidationError("src and dst are both %s; give two different addresses" % src_ip)
    if proto == "icmp":
        port = None
    elif port is None or port == "":
        raise ValidationError("port is required for proto %s; give the destination port, e.g. port=443" % proto)
    else:
        port = validate_port(port)
    return {"src": src_ip, "dst": dst_ip, "proto": proto, "port": port}
