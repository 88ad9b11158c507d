# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter parse_ip_route: text of ip route into the ip -j route shape."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import parse_routes

DOCUMENTATION = r"""
name: parse_ip_route
author: hoptrace developers
version_added: 0.1.0
short_description: Parse the text of C(ip route) / C(ip -6 route) into the C(ip -j route) structure
description:
  - Turns the text output of C(ip route), C(ip -6 route) or C(ip route show table all) into a list
    of route dicts with the keys of C(ip -j route), normalised as the C(route_info) module returns
    them (keys C(dst), C(gateway), C(dev), C(protocol), C(scope), C(prefsrc), C(metric), C(flags),
    C(type), C(table), C(nexthops), C(family), plus C(expires), C(pref) and other attributes when
    the line carries them).
  - Tolerant of pasted terminal sessions - shell prompts and the C(ip route) command are stripped,
    also when the first route is glued to the command; lines that are not routes are skipped;
    C(nexthop) continuation lines attach to the route above them; old double-spaced output and
    numeric protocols (C(proto 80)) are understood.
  - Stdlib only; the same parser is the C(route_info) module's fallback for iproute2 without C(-j).
options:
  _input:
    description: The text (a string with newlines, or a list of lines).
    type: raw
    required: true
  family:
    description:
      - Family of lines that do not tell it themselves (C(default dev wg0)). An C(ip -6 route)
        command line in the text sets it for the lines after it.
    type: str
    choices: [inet, inet6]
  strict:
    description: Fail on a line that is not a route instead of skipping it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Routes of an old node whose iproute2 has no -j
  ansible.builtin.set_fact:
    routes: "{{ ip_route_output.stdout | hoptrace.k8s.parse_ip_route }}"

- name: The tunnel route of the seed
  ansible.builtin.debug:
    msg: "{{ '172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink' | hoptrace.k8s.parse_ip_route }}"
  # => [{"dst": "172.17.25.192/26", "gateway": "10.240.0.9", "dev": "tunl0", "protocol": "bird",
  #      "scope": "global", "prefsrc": null, "metric": null, "type": "unicast", "table": "main",
  #      "flags": ["onlink"], "family": "inet", "nexthops": []}]
"""

RETURN = r"""
_value:
  description:
    - One dict per route, in the order of the text.
    - Defaults are those iproute2 leaves out of its output - C(type=unicast), C(table=main),
      C(scope=global), C(protocol=boot); C(dst) is C(default), a CIDR or a bare host address as printed.
  type: list
  elements: dict
"""


def parse_ip_route(text, family=None, strict=False):
    """Jinja2 entry point; errors become AnsibleFilterError."""
    if not isinstance(text, (str, list, tuple)):
        raise AnsibleFilterError(
            "parse_ip_route: input must be the text of 'ip route' (a string or a list of lines), got %s" % type(text).__name__
        )
    try:
        return parse_routes(text, family=family, strict=bool(strict))
    except ValueError as exc:
        raise AnsibleFilterError("parse_ip_route: %s" % exc) from None


class FilterModule(object):
    """hoptrace parse_ip_route filter."""

    def filters(self):
        return {"parse_ip_route": parse_ip_route}
