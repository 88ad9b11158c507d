"""module_utils/_wireguard: `wg show all dump` / `wg show DEV dump` parsing, and the WireGuard
peers route_info derives from it.

Fixtures (tests/unit/fixtures/wireguard/):
* lab_node_a_dump.txt - `wg show all dump` on node-a of a 3-node `lab.py up --mode wireguard`
  (wireguard-go v0.0.20220316, wireguard-tools), right after a curl to node-b; the private key
  field replaced by "(private key removed)".
* firezone_wg0_dump.txt - a real `wg show wg0 dump` output (two roaming clients with IPv4 and
  IPv6 allowed IPs, NATed endpoints) from firezone/firezone's fz_vpn sandbox CLI test, added in
  https://github.com/firezone/firezone/pull/546 ("Process wg show ... dump").
* lab_link_wireguard_cali.json - `ip -j -d link show wireguard.cali` on the same node: a TUN device.
"""
import json
import os

from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni
from ansible_collections.hoptrace.k8s.plugins.module_utils import _wireguard as wgd

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "wireguard")


def text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_lab_dump_gives_each_peer_its_endpoint_and_allowed_ips():
    devices = wgd.parse_dump(text("lab_node_a_dump.txt"))
    assert list(devices) == ["wireguard.cali"]
    dev = devices["wireguard.cali"]
    assert (dev["public_key_id"], dev["listen_port"], dev["fwmark"]) == ("DRJcrOG7", 51820, 0x100000)
    assert dev["peers"] == [
        {"public_key_id": "ZqQoaVWr", "endpoint": "10.240.0.9:51820", "endpoint_ip": "10.240.0.9", "endpoint_port": 51820,
         "allowed_ips": ["172.17.25.192/26", "172.17.25.192/32"], "latest_handshake": 1796319109,
         "transfer_rx": 2316, "transfer_tx": 1876, "persistent_keepalive": None},
        {"public_key_id": "wQF3vqmh", "endpoint": "10.240.1.3:51820", "endpoint_ip": "10.240.1.3", "endpoint_port": 51820,
         "allowed_ips": ["172.17.26.0/26", "172.17.26.0/32"], "latest_handshake": 0,
         "transfer_rx": 0, "transfer_tx": 0, "persistent_keepalive": None},
    ]
    assert "removed" not in json.dumps(devices)       # nothing of the private key field is kept


def test_public_dump_of_one_device_without_the_device_column():
    devices = wgd.parse_dump(text("firezone_wg0_dump.txt"), device="wg0")
    dev = devices["wg0"]
    assert (dev["public_key_id"], dev["listen_port"], dev["fwmark"]) == ("7E8wSJ2u", 51820, None)
    assert [(p["public_key_id"], p["endpoint_ip"], p["endpoint_port"], p["allowed_ips"], p["latest_handshake"],
             p["transfer_rx"], p["transfer_tx"]) for p in dev["peers"]] == [
        ("+wEYaT5k", "140.82.48.115", 54248, ["10.3.2.7/32", "fd00::3:2:7/128"], 1650286790, 14161600, 3668160),
        ("JOvewkqu", "149.28.197.67", 44491, ["10.3.2.8/32", "fd00::3:2:8/128"], 1650286747, 177417128, 138272552),
    ]
    assert "0A+FvaRb" not in json.dumps(devices)        # the private key


def test_peer_for_takes_the_longest_allowed_prefix_of_the_same_family():
    dev = wgd.parse_dump(text("firezone_wg0_dump.txt"), device="wg0")["wg0"]
    assert wgd.peer_for(dev, "10.3.2.8")["public_key_id"] == "JOvewkqu"
    assert wgd.peer_for(dev, "fd00::3:2:7")["public_key_id"] == "+wEYaT5k"
    assert wgd.peer_for(dev, "10.3.2.9") is None
    lab = wgd.parse_dump(text("lab_node_a_dump.txt"))["wireguard.cali"]
    assert wgd.peer_for(lab, "172.17.25.192/26")["endpoint_ip"] == "10.240.0.9"      # a block inside the allowed IPs
    assert wgd.peer_for(lab, "172.17.25.0/24") is None                                # wider than any
    assert wgd.peer_for(lab, "not an ip") is None and wgd.peer_for(None, "10.0.0.1") is None


def test_endpoints_in_every_form():
    assert wgd.split_endpoint("[fd00::1]:51820") == ("fd00::1", 51820)
    assert wgd.split_endpoint("[fe80::1%eth0]:51820") == ("fe80::1", 51820)
    assert wgd.split_endpoint("(none)") == (None, None)
    assert wgd.split_endpoint("vpn.example.com:51820") == (None, 51820)


def test_short_or_odd_lines_are_skipped():
    assert wgd.parse_dump("wg0\tonly\tthree\n\ngarbage\n") == {}


def test_wireguard_go_tun_device_is_a_wireguard_link():
    with open(os.path.join(FIXTURES, "lab_link_wireguard_cali.json")) as handle:
        link = ni.links_from_json(json.load(handle))[0]
    assert (link["ifname"], link["kind"], link.get("tun"), link["mtu"]) == ("wireguard.cali", "wireguard", True, 1440)


def test_a_block_on_wireguard_gets_its_peers_endpoint_as_node_ip():
    routes = ni.routes_from_text("172.17.25.192/26 via 10.240.0.9 dev eth0 proto bird\n"
                                 "10.240.0.0/16 dev eth0 proto kernel scope link src 10.240.128.12\n", "inet")
    routes += ni.routes_from_text("172.17.25.192/26 dev wireguard.cali table 1 scope link\n"
                                  "172.17.26.0/26 dev wireguard.cali table 1 scope link\n", "inet")
    links = [{"ifname": "eth0", "kind": "physical", "vxlan": None}, {"ifname": "wireguard.cali", "kind": "wireguard", "vxlan": None}]
    devices = wgd.parse_dump(text("lab_node_a_dump.txt"))
    derived = ni.derive(routes, links, [], wg_resolve=ni.wireguard_resolver(devices, wgd.peer_for))
    assert [(b["dst"], b["dev"], b["encap"], b["node_ip"]) for b in derived["remote_blocks"]] == [
        ("172.17.25.192/26", "eth0", "none", "10.240.0.9"),
        ("172.17.25.192/26", "wireguard.cali", "wireguard", "10.240.0.9"),
        ("172.17.26.0/26", "wireguard.cali", "wireguard", "10.240.1.3"),
    ]
    gets = {"10.240.0.9": {"dev": "eth0", "prefsrc": "10.240.128.12"}, "10.240.1.3": {"dev": "eth0", "prefsrc": "10.240.128.12"}}
    assert [(p["node_ip"], p["encap"], p["dev"]) for p in ni.peers(derived["remote_blocks"], links, gets)] == [
        ("10.240.0.9", "none", "eth0"), ("10.240.0.9", "wireguard", "eth0"), ("10.240.1.3", "wireguard", "eth0")]
    # without wg (no dump) the WireGuard blocks have no node
    assert [b["node_ip"] for b in ni.derive(routes, links, [])["remote_blocks"]] == ["10.240.0.9", None, None]
