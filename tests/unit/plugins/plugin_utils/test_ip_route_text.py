"""module_utils/_ip_route_text: text of ip route -> the ip -j route shape (stdlib only)."""
import json
import os

import pytest
import yaml

from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import (
    IpRouteTextError,
    parse_ip_route,
    parse_route_line,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
KEYS = {"dst", "gateway", "dev", "protocol", "scope", "prefsrc", "metric", "type", "table", "flags", "family", "nexthops"}
with open(os.path.join(FIXTURES, "planning", "ip_route_text.yaml")) as handle:
    CASES = yaml.safe_load(handle)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_text_cases(case):
    routes = parse_ip_route(case["text"])
    assert len(routes) == case.get("count", len(case["expect"]))
    for route, expected in zip(routes, case["expect"]):
        assert KEYS <= set(route)
        assert {key: route.get(key) for key in expected} == expected


@pytest.mark.parametrize("name", ["route_v4", "route_v6"])
def test_text_equals_json_of_the_same_table(name):
    """The route_info fixtures hold 'ip route' and 'ip -j route' of one namespace: same routes."""
    base = os.path.join(FIXTURES, "netinfo", name)
    if not os.path.exists(base + ".txt"):
        pytest.skip("netinfo fixtures not present")
    with open(base + ".txt") as handle:
        parsed = parse_ip_route(handle.read())
    with open(base + ".json") as handle:
        expected = json.load(handle)
    assert len(parsed) == len(expected)
    defaults = {"type": "unicast", "table": "main", "scope": "global", "protocol": "boot"}
    for route, want in zip(parsed, expected):
        for key in ("dst", "gateway", "dev", "protocol", "scope", "prefsrc", "metric", "type", "table", "flags", "pref"):
            assert route.get(key) == want.get(key, defaults.get(key)), (key, route, want)


def test_family_argument_for_lines_that_do_not_tell():
    assert parse_ip_route("default dev wg0", family="inet6")[0]["family"] == "inet6"
    assert parse_ip_route("default dev wg0")[0]["family"] == "inet"


def test_list_of_lines_and_empty_input():
    assert parse_ip_route(["default via 10.0.0.1 dev eth0", ""])[0]["gateway"] == "10.0.0.1"
    assert parse_ip_route("") == []
    assert parse_ip_route(None) == []


def test_strict_mode_names_the_line():
    with pytest.raises(IpRouteTextError, match="line 2 is not an 'ip route' line"):
        parse_ip_route("default via 10.0.0.1 dev eth0\nnonsense here\n", strict=True)


def test_a_line_without_device_or_gateway_is_not_a_route():
    assert parse_route_line("10.240.0.9 Ready master,worker 3d8h") is None
    assert parse_route_line("10.0.0.0/8 proto bird", allow_incomplete=True)["dst"] == "10.0.0.0/8"
