"""routes: longest-prefix lookup over route_info routes, the way the kernel picks."""
import os

import pytest
import yaml

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import (
    RouteError,
    as_routes,
    lookup_route,
    parse_routes,
    route_egress,
    route_network,
)

with open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "planning", "route_lookup.yaml")) as handle:
    TABLE = yaml.safe_load(handle)
ROUTES = parse_routes(TABLE["routes"])


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["address"] for c in TABLE["cases"]])
def test_lookup_table(case):
    route = lookup_route(ROUTES, case["address"])
    assert route is not None
    assert {key: route.get(key) for key in case["expect"]} == case["expect"]


def test_multipath_egress_pairs():
    route = lookup_route(ROUTES, "10.9.1.1")
    assert route_egress(route) == [("10.240.0.9", "eth0"), ("10.240.1.5", "eth0")]
    assert route_egress(lookup_route(ROUTES, "192.0.2.1")) == []
    assert route_egress(lookup_route(ROUTES, "172.17.25.239")) == [("10.240.0.9", "tunl0")]


def test_throw_continues_with_the_next_table():
    assert lookup_route(ROUTES, "10.60.0.1", tables=["100", "main"])["dev"] == "eth4"
    assert lookup_route(ROUTES, "10.60.0.1", tables=["100"]) is None


def test_no_route_is_none():
    assert lookup_route("10.0.0.0/8 dev eth0", "192.168.1.1") is None
    assert lookup_route([], "fd00::1") is None


def test_accepts_text_and_route_info_result_and_numeric_tables():
    text = "default via 10.0.0.1 dev ens5\n10.1.0.0/16 dev ens6 table 254"
    assert lookup_route(text, "10.1.2.3")["dev"] == "ens6"
    assert lookup_route({"routes": parse_routes(text)}, "10.9.9.9")["dev"] == "ens5"


def test_route_network_of_default_and_host_routes():
    assert str(route_network({"dst": "default", "family": "inet6"})) == "::/0"
    assert str(route_network({"dst": "default"})) == "0.0.0.0/0"
    assert str(route_network({"dst": "172.17.25.79"})) == "172.17.25.79/32"
    assert str(route_network({"dst": "fd00::1"})) == "fd00::1/128"
    assert str(route_network({"dst": "10.9.1.1/16"})) == "10.9.0.0/16"


@pytest.mark.parametrize("call, message", [
    (lambda: lookup_route(ROUTES, "not-an-ip"), "address to look up 'not-an-ip' is not an IP address"),
    (lambda: lookup_route(ROUTES, "10.0.0.0/8"), "no prefix length"),
    (lambda: lookup_route(42, "10.0.0.1"), "routes must be a list of route dicts"),
    (lambda: lookup_route([{"dev": "eth0"}], "10.0.0.1"), "route 1 is not a route dict with a 'dst' key"),
    (lambda: lookup_route([{"dst": "10.0.0/8x"}], "10.0.0.1"), "route dst '10.0.0/8x' is not a prefix"),
    (lambda: parse_routes("x", family="ipv4"), "family 'ipv4' is not valid"),
    (lambda: parse_routes("junk", strict=True), "line 1 is not an 'ip route' line"),
])
def test_errors_say_what_to_fix(call, message):
    with pytest.raises(RouteError, match=message):
        call()


def test_as_routes_passes_lists_through():
    assert as_routes([{"dst": "default"}]) == [{"dst": "default"}]
