"""addr and validation: netaddr-backed parsing, ip_hex, flow and interface checks."""
import pytest
from ansible.errors import AnsibleError

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import addr
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import (
    ValidationError,
    validate_flow,
    validate_ifname,
    validate_ip,
    validate_port,
    validate_proto,
)


@pytest.mark.parametrize("value, expected", [
    ("172.17.25.239", "0xac1119ef"),
    ("172.17.25.79", "0xac11194f"),
    ("10.240.0.9", "0x0af00009"),
    ("0.0.0.0", "0x00000000"),
    ("255.255.255.255", "0xffffffff"),
    ("fd00::1", ["0xfd000000", "0x00000000", "0x00000000", "0x00000001"]),
    ("2001:db8:1:2:3:4:5:6", ["0x20010db8", "0x00010002", "0x00030004", "0x00050006"]),
])
def test_ip_hex(value, expected):
    assert addr.ip_hex(value) == expected


@pytest.mark.parametrize("value", ["172.17.25", "10.1", "300.1.1.1", "172.17.25.239/32", "", None, "host 1.2.3.4", "fd00::1::2"])
def test_ip_hex_refuses_bad_input(value):
    with pytest.raises(addr.AddressError, match="is not an IP address"):
        addr.ip_hex(value)


def test_missing_netaddr_is_reported_at_use(monkeypatch):
    monkeypatch.setattr(addr, "netaddr", None)
    with pytest.raises(AnsibleError, match="Install netaddr on the controller"):
        addr.ip_hex("10.0.0.1")


def test_validate_flow_normalises():
    assert validate_flow("172.17.25.79", "172.17.25.239", "TCP", "443") == {
        "src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}
    assert validate_flow("fd00:0::2", "fd00::1", "icmp", 443) == {
        "src": "fd00::2", "dst": "fd00::1", "proto": "icmp", "port": None}


@pytest.mark.parametrize("args, message", [
    (("172.17.25.79", "fd00::1", "tcp", 443), "different IP families"),
    (("172.17.25.79", "172.17.25.79", "tcp", 443), "give two different addresses"),
    (("172.17.25.79", "172.17.25.239", "tcp", None), "port is required for proto tcp"),
    (("172.17.25.79", "172.17.25.239", "sctp", 1), "proto 'sctp' is not supported; use one of tcp, udp, icmp"),
    (("172.17.25.79", "172.17.25.239", "udp", 0), "out of range"),
    (("172.17.25.79", "172.17.25.239", "udp", "443; reboot"), "is not a port number"),
    (("172.17.25.79 or 1=1", "172.17.25.239", "tcp", 443), "src '172.17.25.79 or 1=1' is not an IP address"),
    (("$(id)", "172.17.25.239", "tcp", 443), "src"),
])
def test_validate_flow_errors(args, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        validate_flow(*args)


@pytest.mark.parametrize("name", ["eth0", "cali41f14107a8d", "vxlan.calico", "wireguard.cali", "eth0.100", "ens5", "veth@if5", "tunl0:1", "flannel.1"])
def test_valid_interface_names(name):
    assert validate_ifname(name) == name


@pytest.mark.parametrize("name", ["", "eth0; rm -rf /", "a b", "eth0$", "`id`", "x" * 16, None, "eth0\n", "e'th"])
def test_invalid_interface_names(name):
    with pytest.raises(ValidationError, match="not a valid Linux interface name"):
        validate_ifname(name)


def test_small_validators():
    assert validate_port(" 8472 ") == 8472
    assert validate_proto(" Udp ") == "udp"
    assert validate_ip("FD00::1") == "fd00::1"
    with pytest.raises(ValidationError):
        validate_port(True)
