# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side address helpers on top of netaddr (the one place that imports it).

A missing netaddr is reported when an address is first used, as an ``AnsibleError`` that says
to install it on the controller, never as an ImportError when the plugin is loaded.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.basic import missing_required_lib

try:
    import netaddr
except ImportError:  # pragma: no cover - exercised by test_addr with a patched module
    netaddr = None


class AddressError(ValueError):
    """An address, prefix or family that cannot be used; the message says what to fix."""


def require_netaddr():
    """Return the netaddr module or raise an AnsibleError naming the fix."""
    if netaddr is None:
        raise AnsibleError(
            missing_required_lib("netaddr", reason="for hoptrace address handling")
            + " Install netaddr on the controller (pip install netaddr), in the same Python"
            " that runs ansible-playbook."
        )
    return netaddr


def ip_address(value, what="address"):
    """Parse one IP address (no prefix) into a ``netaddr.IPAddress``; AddressError if invalid."""
    na = require_netaddr()
    if isinstance(value, na.IPAddress):
        return value
    text = "" if value is None else str(value).strip()
    if not text or "/" in text:
        raise AddressError(
            "%s %r is not an IP address; give a single IPv4 or IPv6 address such as "
            "172.17.25.239 or fd00::1 (no prefix length)" % (what, value)
        )
    try:
        # INET_PTON: refuse '10.1' or '012.1.1.1' that inet_aton would accept
        return na.IPAddress(text, flags=na.INET_PTON)
    except (na.AddrFormatError, ValueError, TypeError):
        raise AddressError(
            "%s %r is not an IP address; give a single IPv4 or IPv6 address such as "
            "172.17.25.239 or fd00::1" % (what, value)
        ) from None


def ip_network(value, family=None, what="prefix"):
    """Parse a route destination (``default``, a CIDR or a bare host address) to an IPNetwork.

    ``default`` needs ``family`` ('inet' or 'inet6', default inet).
    """
    na = require_netaddr()
    text = "" if value is None else str(value).strip()
    if text in ("default", "all", "any"):
        return na.IPNetwork("::/0" if family == "inet6" else "0.0.0.0/0")
    try:
        if "/" in text:
            addr, plen = text.split("/", 1)
            ip_address(addr, what)
            return na.IPNetwork(text).cidr
        ip = ip_address(text, what)
        return na.IPNetwork("%s/%d" % (ip, 32 if ip.version == 4 else 128))
    except (na.AddrFormatError, ValueError, TypeError):
        raise AddressError(
            "%s %r is not a prefix; expected 'default', a CIDR such as 172.17.25.192/26 or a "
            "host address" % (what, value)
        ) from None


def family_of(value):
    """'inet' or 'inet6' for an address."""
    return "inet6" if ip_address(value).version == 6 else "inet"


def same_ip(a, b):
    """True when two address strings are the same address (``fd00::1`` == ``fd00:0::1``)."""
    try:
        return ip_address(a) == ip_address(b)
    except AddressError:
        return False


def ip_hex(value):
    """``0x`` + 8 hex digits for IPv4; a list of four such 32-bit words for IPv6.

    These are the constants tcpdump compares with ``ip[N:4]==...`` / ``ip6[N:4]==...``.
    """
    ip = ip_address(value)
    if ip.version == 4:
        return "0x%08x" % int(ip)
    number = int(ip)
    return ["0x%08x" % ((number >> shift) & 0xFFFFFFFF) for shift in (96, 64, 32, 0)]
