# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_select: a capture's device named by the node's own route to an address."""

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
