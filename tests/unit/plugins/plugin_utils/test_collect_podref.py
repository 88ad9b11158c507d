"""The role's glue on the controller: endpoint parsing and gathering capture results."""

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_args, capture_id, capture_list
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podref import pod_ref
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError


@pytest.mark.parametrize("value,expected", [
    ("172.17.25.79", {"ip": "172.17.25.79", "namespace": None, "name": None}),
    (" fd00::0:1 ", {"ip": "fd00::1", "namespace": None, "name": None}),
    ("openshift-ingress/router-default-77949c967-4t8f7",
     {"ip": None, "namespace": "openshift-ingress", "name": "router-default-77949c967-4t8f7"}),
])
def test_pod_ref_accepts(value, expected):
    assert pod_ref(value) == expected


@pytest.mark.parametrize("value,fragment", [
    ("", "is empty"),
    ("172.17.25.300", "neither an IP address nor namespace/pod"),
    ("172.17.25.79; touch /tmp/x", "neither an IP address nor namespace/pod"),
    ("$(id)", "neither an IP address nor namespace/pod"),
    ("ns/pod;rm", "neither an IP address nor namespace/pod"),
    ("Upper/pod", "neither an IP address nor namespace/pod"),
    ("ns/-w /etc/x", "neither an IP address nor namespace/pod"),
    ("a/b/c", "neither an IP address nor namespace/pod"),
])
def test_pod_ref_refuses(value, fragment):
    with pytest.raises(ValidationError) as err:
        pod_ref(value, "dst")
    assert fragment in str(err.value)
    assert str(err.value).startswith("dst ")


PLAN = {"captures": [
    {"key": "node-a/eth0", "node": "node-a", "interface": "eth0", "filter": "ip proto 4"},
    {"key": "node-a/tunl0", "node": "node-a", "interface": "tunl0", "filter": "host 172.17.25.239"},
    {"key": "node-b/eth0", "node": "node-b", "interface": "eth0", "filter": "ip proto 4"},
    {"key": "node-c/?", "node": "node-c", "interface": None, "filter": None},
]}
PREFIX = "ht-run1"


def _batch(*items):
    """A several-capture module result: one entry per capture id."""
    return {"captures": [dict(id="%s-%s" % (PREFIX, iface), **extra) for iface, extra in items]}


def test_capture_args_names_each_capture_of_one_node():
    assert capture_args(PLAN, "node-a", PREFIX) == [
        {"id": "ht-run1-eth0", "interface": "eth0", "filter": "ip proto 4"},
        {"id": "ht-run1-tunl0", "interface": "tunl0", "filter": "host 172.17.25.239"}]
    assert capture_args(PLAN, "node-c", PREFIX) == []
    assert capture_id("ht-x", "eth0.100@if3:1") == "ht-x-eth0.100_if3_1"


def test_capture_list_statuses(tmp_path):
    (tmp_path / "node-a").mkdir()
    (tmp_path / "node-a" / "eth0.pcap").write_bytes(b"x")
    results = {
        "node-a": {
            "routes": {"changed": False},
            "armed": dict(_batch(("eth0", {}), ("tunl0", {"failed": True, "msg": "no such device"})), failed=True,
                          msg="1 of 2 captures failed"),
            "stopped": _batch(("eth0", {"captured": 7, "received": 9, "dropped": 0}), ("tunl0", {})),
        },
        "node-b": {"routes": {"unreachable": True, "msg": "ssh: connect refused "}},
    }
    got = {c["key"]: c for c in capture_list(PLAN, results, str(tmp_path), PREFIX)}
    assert got["node-a/eth0"] == {
        "key": "node-a/eth0", "node": "node-a", "interface": "eth0", "file": str(tmp_path / "node-a" / "eth0.pcap"),
        "captured": 7, "received": 9, "dropped": 0, "status": "ok"}
    assert got["node-a/tunl0"]["status"] == "failed"
    assert got["node-a/tunl0"]["error"] == "starting the capture failed: no such device"
    assert got["node-b/eth0"]["status"] == "unreachable"
    assert got["node-b/eth0"]["error"] == "node unreachable while reading routes: ssh: connect refused"
    assert got["node-c/?"] == {"key": "node-c/?", "node": "node-c", "status": "unreachable",
                               "error": "the hop's interface is unknown: node-c could not be read"}


def test_capture_list_missing_file_is_failed(tmp_path):
    results = {"node-a": {"armed": _batch(("eth0", {})), "stopped": _batch(("eth0", {"captured": 1}))}}
    got = capture_list({"captures": PLAN["captures"][:1]}, results, str(tmp_path), PREFIX)
    assert got[0]["status"] == "failed"
    assert got[0]["error"] == "no capture file was brought back from node-a for eth0"


def test_capture_list_unreachable_at_stop(tmp_path):
    results = {"node-b": {"armed": _batch(("eth0", {})), "stopped": {"unreachable": True, "msg": "timed out"}}}
    got = capture_list({"captures": PLAN["captures"][2:3]}, results, str(tmp_path), PREFIX)
    assert (got[0]["status"], got[0]["error"]) == ("unreachable", "node unreachable while stopping the capture: timed out")


def test_capture_list_timed_out_step_names_the_step(tmp_path):
    """A task ended by its `timeout:` (Ansible's result carries timedout.period) is 'timed out in <step>'."""
    results = {"node-b": {"armed": _batch(("eth0", {})),
                          "stopped": {"failed": True, "timedout": {"period": 10}, "msg": "The task timed out"}}}
    got = capture_list({"captures": PLAN["captures"][2:3]}, results, str(tmp_path), PREFIX)
    assert (got[0]["status"], got[0]["error"]) == ("timed out", "timed out in collect (no answer in 10 s)")
