"""The role's glue on the controller: endpoint parsing and gathering capture results."""

import re

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils._validate import check_id
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.collect import capture_args, capture_id, capture_list, host_part
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


def _batch(node, *items):
    """A several-capture module result of ``node``: one entry per capture id."""
    return {"captures": [dict(id="%s-%s-%s" % (PREFIX, node, iface), **extra) for iface, extra in items]}


def test_capture_args_names_each_capture_of_one_node():
    assert capture_args(PLAN, "node-a", PREFIX) == [
        {"id": "ht-run1-node-a-eth0", "interface": "eth0", "filter": "ip proto 4"},
        {"id": "ht-run1-node-a-tunl0", "interface": "tunl0", "filter": "host 172.17.25.239"}]
    assert capture_args(PLAN, "node-b", PREFIX) == [{"id": "ht-run1-node-b-eth0", "interface": "eth0", "filter": "ip proto 4"}]
    assert capture_args(PLAN, "node-c", PREFIX) == []
    assert capture_id("ht-x", "node-a", "eth0.100@if3:1") == "ht-x-node-a-eth0.100_if3_1"


RUN = "ht-20261126T120422Z-ba8336"      # the role's prefix: ht-<run id>, 26 characters
LONG = "ip-10-240-128-12.eu-west-1.compute.internal"


@pytest.mark.parametrize("host,interface,expected", [
    ("node-a", "eth0", RUN + "-node-a-eth0"),
    ("node-a", "cali41f14107a8d", RUN + "-node-a-cali41f14107a8d"),
    ("10.240.128.12", "tunl0", RUN + "-10.240.128.12-tunl0"),                         # IP-like: as it is
    ("worker-1.example.com", "vxlan.calico", RUN + "-worker-1.example.com-vxlan.calico"),   # dotted, 20: fits
    # 21 characters is the most that fits with a 15-character interface: kept whole
    ("worker-12.example.com", "cali41f14107a8d", RUN + "-worker-12.example.com-cali41f14107a8d"),
    # longer: the first 10 characters, "_" and 10 hex of sha1(name), the same for every interface
    (LONG, "eth0", RUN + "-ip-10-240-_6a31da29f1-eth0"),
    (LONG, "cali41f14107a8d", RUN + "-ip-10-240-_6a31da29f1-cali41f14107a8d"),
    ("worker-123.example.com", "eth0", RUN + "-worker-123_6cb5851492-eth0"),
    # characters an id cannot hold: replaced, and the hash keeps "fd00::1" apart from "fd00__1"
    ("fd00::1", "eth0", RUN + "-fd00__1_b2217d8152-eth0"),
    ("fd00__1", "eth0", RUN + "-fd00__1-eth0"),
    ("node a", "eth0", RUN + "-node_a_347ed7b3b9-eth0"),
])
def test_capture_id_format(host, interface, expected):
    """The hashes are sha1(host)[:10], e.g. hashlib.sha1(b"fd00::1").hexdigest()[:10] == "b2217d8152"."""
    cid = capture_id(RUN, host, interface)
    assert cid == expected
    assert len(cid) <= 64 and check_id(cid) == cid          # the node side accepts it as it is


@pytest.mark.parametrize("host", ["node-a", "10.240.128.12", "fd00::1", LONG, "x" * 300, "a.b." * 60,
                                  "k8s-worker-%d.very.long.cluster.domain.of.some.company.example" % 7])
def test_capture_id_is_at_most_64_characters_for_any_host(host):
    for interface in ("lo", "eth0", "cali41f14107a8d"):
        cid = capture_id(RUN, host, interface)
        assert len(cid) <= 64 and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cid), cid
        assert cid.startswith(RUN + "-" + host_part(RUN, host) + "-") and cid.endswith("-" + interface)


def test_long_host_names_never_collide():
    # two FQDNs that share their first 40 characters, and 500 workers of one long domain
    a = "k8s-worker-0001.eu-west-1.compute.internal.corp.example.com"
    b = "k8s-worker-0001.eu-west-1.compute.internal.corp.example.org"
    assert capture_id(RUN, a, "eth0") != capture_id(RUN, b, "eth0")
    names = ["k8s-worker-%04d.eu-west-1.compute.internal.corp.example.com" % i for i in range(500)]
    ids = {capture_id(RUN, name, "cali41f14107a8d") for name in names}
    assert len(ids) == 500 and max(len(i) for i in ids) == 64
    # stable: the same name gives the same id in every run of the filter
    assert capture_id(RUN, a, "eth0") == capture_id(RUN, a, "eth0") == RUN + "-k8s-worker_%s-eth0" % host_part(RUN, a)[-10:]


def test_capture_id_prefix_too_long():
    assert capture_id("p" * 40, "node-a", "eth0") == "p" * 40 + "-node-a-eth0"     # a short name still fits
    with pytest.raises(ValueError) as err:
        capture_id("p" * 40, LONG, "eth0")
    assert "use a prefix of at most 35 characters" in str(err.value)
    assert len(capture_id("p" * 35, LONG, "cali41f14107a8d")) == 64


def test_capture_list_statuses(tmp_path):
    (tmp_path / "node-a").mkdir()
    (tmp_path / "node-a" / "eth0.pcap").write_bytes(b"x")
    results = {
        "node-a": {
            "routes": {"changed": False},
            "armed": dict(_batch("node-a", ("eth0", {}), ("tunl0", {"failed": True, "msg": "no such device"})), failed=True,
                          msg="1 of 2 captures failed"),
            "stopped": _batch("node-a", ("eth0", {"captured": 7, "received": 9, "dropped": 0}), ("tunl0", {})),
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


def test_capture_list_finds_each_alias_of_one_machine_by_its_own_id(tmp_path):
    """Two inventory names for one machine: each name's counts come from its own id, its file from its own folder."""
    plan = {"captures": [{"key": "a/eth0", "node": "node-a", "interface": "eth0"},
                         {"key": "a2/eth0", "node": "node-a-again", "interface": "eth0"}]}
    for node in ("node-a", "node-a-again"):
        (tmp_path / node).mkdir()
        (tmp_path / node / "eth0.pcap").write_bytes(b"x")
    both = {"captures": [{"id": "ht-run1-node-a-eth0", "captured": 3}, {"id": "ht-run1-node-a-again-eth0", "captured": 5}]}
    got = capture_list(plan, {"node-a": {"stopped": both}, "node-a-again": {"stopped": both}}, str(tmp_path), PREFIX)
    assert [(c["key"], c["captured"], c["file"], c["status"]) for c in got] == [
        ("a/eth0", 3, str(tmp_path / "node-a" / "eth0.pcap"), "ok"),
        ("a2/eth0", 5, str(tmp_path / "node-a-again" / "eth0.pcap"), "ok")]


def test_capture_list_missing_file_is_failed(tmp_path):
    results = {"node-a": {"armed": _batch("node-a", ("eth0", {})), "stopped": _batch("node-a", ("eth0", {"captured": 1}))}}
    got = capture_list({"captures": PLAN["captures"][:1]}, results, str(tmp_path), PREFIX)
    assert got[0]["status"] == "failed"
    assert got[0]["error"] == "no capture file was brought back from node-a for eth0"


def test_capture_list_unreachable_at_stop(tmp_path):
    results = {"node-b": {"armed": _batch("node-b", ("eth0", {})), "stopped": {"unreachable": True, "msg": "timed out"}}}
    got = capture_list({"captures": PLAN["captures"][2:3]}, results, str(tmp_path), PREFIX)
    assert (got[0]["status"], got[0]["error"]) == ("unreachable", "node unreachable while stopping the capture: timed out")


def test_capture_list_timed_out_step_names_the_step(tmp_path):
    """A task ended by its `timeout:` (Ansible's result carries timedout.period) is 'timed out in <step>'."""
    results = {"node-b": {"armed": _batch("node-b", ("eth0", {})),
                          "stopped": {"failed": True, "timedout": {"period": 10}, "msg": "The task timed out"}}}
    got = capture_list({"captures": PLAN["captures"][2:3]}, results, str(tmp_path), PREFIX)
    assert (got[0]["status"], got[0]["error"]) == ("timed out", "timed out in collect (no answer in 10 s)")


def test_capture_args_filter_says_when_the_prefix_is_too_long():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.hoptrace.k8s.plugins.filter.capture_args import FilterModule
    capture_args_filter = FilterModule().filters()["capture_args"]
    plan = {"captures": [{"node": LONG, "interface": "eth0", "filter": ""}]}
    assert capture_args_filter(plan, LONG, RUN) == [{"id": RUN + "-ip-10-240-_6a31da29f1-eth0", "interface": "eth0", "filter": ""}]
    with pytest.raises(AnsibleFilterError) as err:
        capture_args_filter(plan, LONG, "p" * 40)
    assert "use a prefix of at most 35 characters" in str(err.value)


def test_capture_list_gives_each_capture_its_nodes_counters(tmp_path):
    for name in ("eth0", "tunl0"):
        (tmp_path / "node-a").mkdir(exist_ok=True)
        (tmp_path / "node-a" / ("%s.pcap" % name)).write_bytes(b"x")
    counters = {"seconds": 2.0, "rules": [], "kernel": {"Ip.InDiscards": 1}, "notes": []}
    stopped = dict(_batch("node-a", ("eth0", {"captured": 1}), ("tunl0", {"captured": 1})), counters=counters)
    got = capture_list({"captures": PLAN["captures"][:2]}, {"node-a": {"stopped": stopped}}, str(tmp_path), PREFIX)
    assert [c["counters"] for c in got] == [counters, counters]
    # a node whose stop returned no counters (snapshot false, an older module): the key is left out
    got = capture_list({"captures": PLAN["captures"][:1]}, {"node-a": {"stopped": _batch("node-a", ("eth0", {}))}}, str(tmp_path),
                       PREFIX)
    assert "counters" not in got[0]
