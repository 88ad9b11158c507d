# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deferred path nodes: planned from the entry node's routes alone, their devices resolved on the
node when the captures start, and the completed plan equal to the one planned from both nodes."""

import pytest
from test_plan import INVENTORY_IPS, SEED_NODES, _bgp6_nodes, _crosssubnet_nodes, _vxlan_nodes

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_name
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.deferred import complete_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import PlanError, _route, build_plan
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import route_egress


def cid(cap):
    return "ht-run-%s-%s" % (cap["node"], capture_name(cap))


def started_on(nodes, plan, node):
    """What the capture module would return on ``node``: each selection resolved from that node's
    own routes (as ``ip route get`` would), as a start result keyed by capture id."""
    out = []
    for cap in plan["captures"]:
        if cap["node"] != node:
            continue
        if cap.get("select"):
            route = _route(node, nodes[node], cap["select"]["route_to"])
            dev = route_egress(route)[0][1]
        else:
            dev = cap["interface"]
        out.append({"id": cid(cap), "interface": dev, "failed": False, "link_type": "LINUX_SLL2"})
    return {"captures": out, "changed": True}


def strip(plan):
    captures = [{k: v for k, v in c.items() if k not in ("select", "link_type")} for c in plan["captures"]]
    return {"hops": plan["hops"], "captures": sorted(captures, key=lambda c: c["key"])}


CASES = {
    "ipip-seed": (SEED_NODES, "node-a", "node-b", ("172.17.25.79", "172.17.25.239", "tcp", 443), INVENTORY_IPS),
    "ipip-seed-entry-holds-dst": (SEED_NODES, "node-b", "node-a", ("172.17.25.79", "172.17.25.239", "tcp", 443), INVENTORY_IPS),
    "vxlan": (_vxlan_nodes(), "n1", "n3", ("172.16.1.10", "172.16.3.10", "tcp", 8080),
              {"n1": "10.0.1.11", "n2": "10.0.2.12", "n3": "10.0.3.13"}),
    "bgp-ipv6": (_bgp6_nodes(), "a", "b", ("fd00:172:16:1::5", "fd00:172:16:2::7", "tcp", 443),
                 {"a": "fd00:10::11", "b": "fd00:10::12"}),
    "crosssubnet-ipip": (_crosssubnet_nodes(), "n1", "n3", ("172.16.1.10", "172.16.3.10", "udp", 53),
                         {"n1": "10.1.0.11", "n2": "10.1.0.12", "n3": "10.2.0.13"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_completed_plan_equals_the_plan_from_both_nodes(case):
    nodes, entry, other, flow, ips = CASES[case]
    full = build_plan({entry: nodes[entry], other: nodes[other]}, *flow, node_ips=ips)
    deferred = build_plan({entry: nodes[entry]}, *flow, node_ips=ips, deferred=[other])
    assert all(c["interface"] is None and c["select"] for c in deferred["captures"] if c["node"] == other)
    assert deferred["warnings"] == []
    completed = complete_plan(deferred, {other: started_on(nodes, deferred, other)}, cid)
    assert strip(completed) == strip(full)
    assert (completed["src_node"], completed["dst_node"], completed["encap"]) == (full["src_node"], full["dst_node"], full["encap"])


def test_seed_selections_name_the_routes_the_other_node_resolves():
    plan = build_plan({"node-a": SEED_NODES["node-a"]}, "172.17.25.79", "172.17.25.239", "tcp", 443,
                      node_ips=INVENTORY_IPS, deferred=["node-b"])
    selected = {c["key"]: (c["role"], c["select"]) for c in plan["captures"] if c["node"] == "node-b"}
    assert selected == {
        "node-b/?10.240.128.12": ("underlay", {"route_to": "10.240.128.12"}),
        "node-b/?172.17.25.79": ("tunnel", {"route_to": "172.17.25.79"}),
        "node-b/?172.17.25.239": ("veth", {"route_to": "172.17.25.239", "local": True}),
    }
    underlay = next(c for c in plan["captures"] if c["key"] == "node-b/?10.240.128.12")
    assert underlay["filter"].startswith("(ip proto 4 and host 10.240.128.12 and ")
    assert [capture_name(c) for c in plan["captures"]] == [
        "cali41f14107a8d", "tunl0", "eth0", "sel-underlay", "sel-tunnel", "sel-veth"]


def test_a_selection_that_did_not_start_stays_unknown():
    plan = build_plan({"node-a": SEED_NODES["node-a"]}, "172.17.25.79", "172.17.25.239", "tcp", 443,
                      node_ips=INVENTORY_IPS, deferred=["node-b"])
    armed = started_on(SEED_NODES, plan, "node-b")
    armed["captures"][2] = {"id": armed["captures"][2]["id"], "failed": True,
                            "msg": "172.17.25.239 is not a pod on node-b: node-b routes it via 10.240.128.12 dev tunl0"}
    completed = complete_plan(plan, {"node-b": armed}, cid)
    veth = [h for h in completed["hops"] if h["node"] == "node-b" and h["role"] == "dst-veth"]
    assert [(h["interface"], h["capture"]) for h in veth] == [(None, "node-b/?172.17.25.239")] * 2
    assert [h["interface"] for h in completed["hops"] if h["node"] == "node-b" and h["role"] != "dst-veth"] == [
        "eth0", "tunl0", "tunl0", "eth0"]
    unreachable = complete_plan(plan, {"node-b": {"unreachable": True, "msg": "ssh: timed out"}}, cid)
    assert [h["interface"] for h in unreachable["hops"] if h["node"] == "node-b"] == [None] * 6
    assert plan["captures"][3]["interface"] is None  # the input plan is not changed


def test_two_selections_on_one_device_keep_their_keys_and_warn():
    plan = build_plan({"node-a": SEED_NODES["node-a"]}, "172.17.25.79", "172.17.25.239", "tcp", 443,
                      node_ips=INVENTORY_IPS, deferred=["node-b"])
    armed = started_on(SEED_NODES, plan, "node-b")
    armed["captures"][1]["interface"] = "eth0"  # node-b answers the pod without the tunnel
    completed = complete_plan(plan, {"node-b": armed}, cid)
    keys = [c["key"] for c in completed["captures"] if c["node"] == "node-b"]
    assert keys == ["node-b/eth0", "node-b/?172.17.25.79", "node-b/calic25e805a467"]
    assert completed["warnings"] == [
        "node-b routes 172.17.25.79 over eth0, a device already captured for another hop: its routes are not "
        "the mirror of the entry node's (asymmetric routing?)"]


def test_a_pod_the_entry_does_not_route_to_the_deferred_node_is_refused():
    # 172.17.25.70 is in node-a's own (blackholed) block: no route leads to node-b
    with pytest.raises(PlanError, match="the dst pod 172.17.25.70 is not routed to node-b from node-a's routes; read node-b too"):
        build_plan({"node-a": SEED_NODES["node-a"]}, "172.17.25.79", "172.17.25.70", "tcp", 443,
                   node_ips=INVENTORY_IPS, deferred=["node-b"])


def test_capture_args_and_ids_of_selected_captures_survive_completion():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_args, plan_capture_id
    plan = build_plan({"node-a": SEED_NODES["node-a"]}, "172.17.25.79", "172.17.25.239", "tcp", 443,
                      node_ips=INVENTORY_IPS, deferred=["node-b"])
    prefix = "ht-20261203T114157Z-2655b6"
    args = capture_args(plan, "node-b", prefix)
    assert [(a["id"], a.get("interface"), a.get("select")) for a in args] == [
        (prefix + "-node-b-sel-underlay", None, {"route_to": "10.240.128.12"}),
        (prefix + "-node-b-sel-tunnel", None, {"route_to": "172.17.25.79"}),
        (prefix + "-node-b-sel-veth", None, {"route_to": "172.17.25.239", "local": True}),
    ]
    armed = {"captures": [{"id": a["id"], "interface": dev, "failed": False, "link_type": "EN10MB"}
                          for a, dev in zip(args, ["eth0", "tunl0", "calic25e805a467"])]}
    completed = complete_plan(plan, {"node-b": armed}, lambda cap: plan_capture_id(prefix, cap))
    after = capture_args(completed, "node-b", prefix)
    assert [(a["id"], a["interface"]) for a in after] == [
        (prefix + "-node-b-sel-underlay", "eth0"), (prefix + "-node-b-sel-tunnel", "tunl0"),
        (prefix + "-node-b-sel-veth", "calic25e805a467")]
    long_host = "worker-17.eu-west-1.compute.internal.example.org"
    assert len(plan_capture_id(prefix, dict(plan["captures"][3], node=long_host))) <= 64
