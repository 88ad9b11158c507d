# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_select: a capture's device named by the node's own route to an address."""

import json
import os

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _select as sel

# `ip -j route get` as iproute2 6.x prints it on the lab's node-b (IPIP) for the three selections
TO_NODE_A = '[{"dst":"10.240.128.12","dev":"eth0","prefsrc":"10.240.0.9","flags":[],"uid":0,"cache":[]}]'
TO_SRC_POD = '[{"dst":"172.17.25.79","gateway":"10.240.128.12","dev":"tunl0","prefsrc":"10.240.0.9","flags":["onlink"],"uid":0,"cache":[]}]'
TO_DST_POD = '[{"dst":"172.17.25.239","dev":"calic25e805a467","prefsrc":"10.240.0.9","flags":[],"uid":0,"cache":[]}]'


@pytest.mark.parametrize("select, out, dev", [
    ({"route_to": "10.240.128.12"}, TO_NODE_A, "eth0"),
    ({"route_to": "172.17.25.79"}, TO_SRC_POD, "tunl0"),
    ({"route_to": "172.17.25.239", "local": True}, TO_DST_POD, "calic25e805a467"),
])
def test_each_selection_gives_the_routes_device(select, out, dev):
    assert sel.device_for(sel.check_select(select), sel.route_decision(out), "node-b") == dev


def test_a_pod_routed_via_a_gateway_is_not_local():
    with pytest.raises(ValueError) as err:
        sel.device_for(sel.check_select({"route_to": "172.17.25.79", "local": True}), sel.route_decision(TO_SRC_POD), "node-b")
    assert str(err.value) == ("172.17.25.79 is not a pod on node-b: node-b routes it via 10.240.128.12 dev tunl0; "
                              "is the pod still running there?")


@pytest.mark.parametrize("out, why", [
    ('[{"type":"blackhole","dst":"172.17.25.200","flags":[],"uid":0,"cache":[]}]', "(blackhole)"),
    ("", "(no route)"),
])
def test_no_usable_route(out, why):
    with pytest.raises(ValueError, match=r"node-b has no usable route to 172.17.25.200 \%s" % why[:-1] + r"\)"):
        sel.device_for(sel.check_select({"route_to": "172.17.25.200"}), sel.route_decision(out), "node-b")


@pytest.mark.parametrize("select", [None, {}, {"route_to": "10.0.0.1;reboot"}, {"route_to": "10.0.0.1", "dev": "eth0"}])
def test_bad_selections_are_refused(select):
    with pytest.raises(ValueError, match="select"):
        sel.check_select(select)


def test_ipv6_address_is_canonical():
    assert sel.check_select({"route_to": "fd00:10:0::12"}) == {"route_to": "fd00:10::12", "local": False}


# a Flannel pod is routed to cni0: its veth is the port its MAC was learned on (lab node-a's outputs)
FLANNEL = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flannel")


def _fixture(name):
    with open(os.path.join(FLANNEL, name)) as handle:
        return handle.read()


def test_a_pod_behind_cni0_resolves_to_its_veth():
    neigh, fdb = _fixture("lab-node-a-ip-j-neigh-cni0.json"), _fixture("lab-node-a-bridge-j-fdb-br-cni0.json")
    assert sel.bridge_port("10.244.0.2", "cni0", neigh, fdb, "node-a") == ("veth7d27950a", None)
    assert sel.bridge_port("10.244.0.3", "cni0", neigh, fdb, "node-a") == ("veth5002c6d0", None)


def test_a_pod_without_neighbour_or_fdb_entry_stays_on_cni0_and_says_why():
    neigh, fdb = _fixture("lab-node-a-ip-j-neigh-cni0.json"), _fixture("lab-node-a-bridge-j-fdb-br-cni0.json")
    assert sel.bridge_port("10.244.0.9", "cni0", neigh, fdb, "node-a") == (
        "cni0", "node-a has no neighbour entry for the pod 10.244.0.9 on cni0 yet (ip neigh show dev cni0): capturing on cni0 "
                "itself, which sees the pod's traffic to other nodes but not the pod's veth")
    assert sel.bridge_port("10.244.0.2", "cni0", neigh, "[]", "node-a") == (
        "cni0", "node-a's cni0 has not learned the pod 10.244.0.2's MAC 66:5f:25:58:23:95 on a port yet (bridge fdb show br "
                "cni0): capturing on cni0 itself, which sees the pod's traffic to other nodes but not the pod's veth")


def test_only_a_bridge_link_is_looked_behind():
    links = json.loads(_fixture("lab-node-a-ip-j-d-link.json"))
    kinds = {link["ifname"]: sel.is_bridge(json.dumps([link])) for link in links}
    assert kinds == {"lo": False, "eth0": False, "veth7d27950a": False, "veth5002c6d0": False, "cni0": True, "flannel.1": False}
    assert sel.is_bridge("") is False and sel.is_bridge("not json") is False


class FakeModule:
    """run_command answers from a table of argv tuples (what the node would print)."""

    def __init__(self, answers):
        self.answers, self.ran = answers, []

    def get_bin_path(self, name, required=False):
        return "/usr/sbin/" + name

    def run_command(self, argv, environ_update=None):
        self.ran.append(tuple(argv))
        return 0, self.answers[tuple(argv)], ""


def test_resolve_looks_behind_cni0_in_the_capture_start():
    to_pod = '[{"dst":"10.244.0.2","dev":"cni0","prefsrc":"10.244.0.1","flags":[],"uid":0,"cache":[]}]'
    cni0 = json.dumps([link for link in json.loads(_fixture("lab-node-a-ip-j-d-link.json")) if link["ifname"] == "cni0"])
    module = FakeModule({
        ("/usr/sbin/ip", "-j", "route", "get", "10.244.0.2"): to_pod,
        ("/usr/sbin/ip", "-j", "-d", "link", "show", "dev", "cni0"): cni0,
        ("/usr/sbin/ip", "-j", "neigh", "show", "dev", "cni0"): _fixture("lab-node-a-ip-j-neigh-cni0.json"),
        ("/usr/sbin/bridge", "-j", "fdb", "show", "br", "cni0"): _fixture("lab-node-a-bridge-j-fdb-br-cni0.json"),
    })
    assert sel.resolve(module, {"route_to": "10.244.0.2", "local": True}, "node-a") == ("veth7d27950a", None)
    assert len(module.ran) == 4


def test_resolve_of_a_calico_veth_or_a_tunnel_runs_only_the_route_lookup():
    module = FakeModule({("/usr/sbin/ip", "-j", "route", "get", "172.17.25.239"): TO_DST_POD,
                         ("/usr/sbin/ip", "-j", "route", "get", "172.17.25.79"): TO_SRC_POD})
    assert sel.resolve(module, {"route_to": "172.17.25.239", "local": True}, "node-b") == ("calic25e805a467", None)
    assert sel.resolve(module, {"route_to": "172.17.25.79"}, "node-b") == ("tunl0", None)
    assert len(module.ran) == 2
