# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ip_hex: an IP address as the hex constant(s) tcpdump compares with ip[N:4]."""

from __future__ import annotations

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import ip_hex as _ip_hex

DOCUMENTATION = r"""
name: ip_hex
author: hoptrace developers
version_added: 0.1.0
short_description: IP address as the hex constant(s) a tcpdump byte-offset filter compares with
description:
  - Converts an IPv4 address to C(0x) followed by eight hex digits, the constant a tcpdump filter
    such as C(ip[36:4]==0xac1119ef) compares with.
  - Converts an IPv6 address to a list of four such 32-bit words, most significant first, for
    C(ip6[N:4]) comparisons.
  - Requires the Python library C(netaddr) on the controller.
options:
  _input:
    description: One IPv4 or IPv6 address, without a prefix length.
    type: str
    required: true
notes:
  - An invalid address fails the task with a message naming the value.
"""

EXAMPLES = r"""
- name: Inner destination of an IPIP packet, as in ip[36:4]==0xac1119ef
  ansible.builtin.debug:
    msg: "{{ '172.17.25.239' | hoptrace.k8s.ip_hex }}"
  # => "0xac1119ef"

- name: IPv6 gives four words
  ansible.builtin.debug:
    msg: "{{ 'fd00::1' | hoptrace.k8s.ip_hex }}"
  # => ["0xfd000000", "0x00000000", "0x00000000", "0x00000001"]
"""

RETURN = r"""
_value:
  description:
    - For IPv4, C(0x) and eight lower-case hex digits.
    - For IPv6, a list of four such strings, most significant word first.
  type: raw
  sample: "0xac1119ef"
"""


def ip_hex(value):
    """Jinja2 entry point; errors become AnsibleFilterError."""
    try:
        return _ip_hex(value)
    except ValueError as exc:
        raise AnsibleFilterError("ip_hex: %s" % exc) from None
    except AnsibleError as exc:
        raise AnsibleFilterError("ip_hex: %s" % exc.message) from None


class FilterModule(object):
    """hoptrace ip_hex filter."""

    def filters(self):
        return {"ip_hex": ip_hex}
