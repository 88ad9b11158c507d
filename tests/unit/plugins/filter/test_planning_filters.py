"""The five planning filters: thin wrappers, errors as AnsibleFilterError, docs that parse."""
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hoptrace.k8s.plugins.filter import bpf_filter, ip_hex, parse_ip_route, route_lookup, trace_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import addr

MODULES = {"ip_hex": ip_hex, "bpf_filter": bpf_filter, "route_lookup": route_lookup,
           "parse_ip_route": parse_ip_route, "trace_plan": trace_plan}
FLOW = {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docs_are_complete_yaml(name):
    module = MODULES[name]
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["name"] == name and doc["version_added"] == "0.1.0" and doc["short_description"]
    assert "_input" in doc["options"]
    assert "_value" in yaml.safe_load(module.RETURN)
    assert isinstance(yaml.safe_load(module.EXAMPLES), list)
    assert list(module.FilterModule().filters()) == [name]


def test_ip_hex_filter():
    assert ip_hex.ip_hex("172.17.25.239") == "0xac1119ef"
    assert ip_hex.ip_hex("fd00::1")[3] == "0x00000001"
    with pytest.raises(AnsibleFilterError, match="ip_hex: address '172.17.25' is not an IP address"):
        ip_hex.ip_hex("172.17.25")


def test_missing_netaddr_becomes_a_filter_error(monkeypatch):
    monkeypatch.setattr(addr, "netaddr", None)
    with pytest.raises(AnsibleFilterError, match="Install netaddr on the controller"):
        ip_hex.ip_hex("10.0.0.1")
    with pytest.raises(AnsibleFilterError, match="Install netaddr on the controller"):
        route_lookup.route_lookup("default dev eth0", "10.0.0.1")


def test_bpf_filter_from_capture_dict_string_and_kwargs():
    capture = {"encap": "ipip", "peer": "10.240.0.9", "role": "underlay"}
    got = bpf_filter.bpf_filter(capture, FLOW)
    assert got.startswith("(ip proto 4 and host 10.240.0.9 and ") and "ip[36:4]==0xac1119ef" in got
    assert bpf_filter.bpf_filter("none", src="172.17.25.79", dst="172.17.25.239", proto="tcp", port=443).startswith(
        "(host 172.17.25.79 and host 172.17.25.239 and tcp port 443) or (icmp and (icmp[0]==3 or ")
    assert bpf_filter.bpf_filter({"encap": "ipip", "role": "tunnel"}, FLOW) == bpf_filter.bpf_filter("none", FLOW)
    assert bpf_filter.bpf_filter("wireguard", FLOW, peer="10.240.0.9") == "udp port 51820 and host 10.240.0.9"
    assert bpf_filter.bpf_filter("vxlan", FLOW, peer="10.0.0.2", underlay_port=8472, vlan=True).startswith("vlan and ((udp port 8472")


@pytest.mark.parametrize("args, kwargs, message", [
    ((42, FLOW), {}, "input must be a capture/hop dict or an encapsulation name"),
    (("ipip", "flow"), {}, "flow must be a dict"),
    (("ipip",), {}, "give the flow"),
    (("geneve", FLOW), {}, "encap 'geneve' is not supported"),
    (("none", dict(FLOW, port="443 or 1=1")), {}, "is not a port number"),
])
def test_bpf_filter_errors(args, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        bpf_filter.bpf_filter(*args, **kwargs)


def test_parse_ip_route_and_route_lookup_filters():
    routes = parse_ip_route.parse_ip_route("default via 10.240.128.1 dev eth0\n172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink")
    assert routes[1]["flags"] == ["onlink"]
    assert route_lookup.route_lookup(routes, "172.17.25.239")["dev"] == "tunl0"
    assert route_lookup.route_lookup({"routes": routes}, "8.8.8.8")["dst"] == "default"
    assert route_lookup.route_lookup("10.0.0.0/8 dev eth0", "192.168.0.1") is None
    with pytest.raises(AnsibleFilterError, match="route_lookup: no route to 192.168.0.1 in tables local, main, default"):
        route_lookup.route_lookup("10.0.0.0/8 dev eth0", "192.168.0.1", required=True)
    with pytest.raises(AnsibleFilterError, match="tables must be a list"):
        route_lookup.route_lookup(routes, "10.0.0.1", tables="main")
    with pytest.raises(AnsibleFilterError, match="input must be the text"):
        parse_ip_route.parse_ip_route(42)
    with pytest.raises(AnsibleFilterError, match="line 1 is not an 'ip route' line"):
        parse_ip_route.parse_ip_route("junk", strict=True)


def _seed_nodes():
    links = [{"ifname": "eth0", "kind": "physical"}, {"ifname": "tunl0", "kind": "ipip"}]
    a = parse_ip_route.parse_ip_route("default via 10.240.128.1 dev eth0\n172.17.25.79 dev cali41f14107a8d scope link\n"
                                      "172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink")
    b = parse_ip_route.parse_ip_route("default via 10.240.0.1 dev eth0\n172.17.25.239 dev calic25e805a467 scope link\n"
                                      "172.17.25.64/26 via 10.240.128.12 dev tunl0 proto bird onlink")
    return {"node-a": {"routes": a, "links": links, "node_ips": ["10.240.128.12"]},
            "node-b": {"routes": b, "links": links, "node_ips": ["10.240.0.9"]}}


def test_trace_plan_filter_keyword_positional_and_flow_dict():
    by_kw = trace_plan.trace_plan(_seed_nodes(), src="172.17.25.79", dst="172.17.25.239", proto="tcp", port=443)
    assert by_kw == trace_plan.trace_plan(_seed_nodes(), "172.17.25.79", "172.17.25.239", "tcp", 443)
    assert by_kw == trace_plan.trace_plan(_seed_nodes(), flow=FLOW)
    assert [h["interface"] for h in by_kw["hops"]][:6] == ["cali41f14107a8d", "tunl0", "eth0", "eth0", "tunl0", "calic25e805a467"]


def test_trace_plan_filter_errors():
    with pytest.raises(AnsibleFilterError, match="trace_plan: src 172.17.25.1 is not a pod on any of the 2 nodes searched"):
        trace_plan.trace_plan(_seed_nodes(), "172.17.25.1", "172.17.25.239", "tcp", 443)
    with pytest.raises(AnsibleFilterError, match="give src and dst"):
        trace_plan.trace_plan(_seed_nodes())
    with pytest.raises(AnsibleFilterError, match="flow must be a dict"):
        trace_plan.trace_plan(_seed_nodes(), flow="x")
