# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every input checked in one controller-side call (plugin_utils/inputs.py)."""

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.inputs import check_inputs, step_timeout
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

GROUPS = {"all": ["node-a", "node-b", "bastion"], "nodes": ["node-a", "node-b"], "ungrouped": ["bastion"]}


def settings(**overrides):
    base = {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443, "mode": "probe",
            "deadline": 60, "duration": 10, "snaplen": 192, "probe_timeout": 3, "entry_tries": 3,
            "nodes": "", "via": ""}
    base.update(overrides)
    return base


def test_ips_give_the_flow_the_group_and_the_step_timeout():
    got = check_inputs(settings(port="443", deadline="60"), GROUPS)
    assert got["flow"] == {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}
    assert got["unresolved"] == []
    assert got["cluster"]["name"] == "nodes" and got["cluster"]["hosts"] == ["node-a", "node-b"]
    assert got["numbers"] == {"deadline": 60, "duration": 10, "snaplen": 192, "probe_timeout": 3, "entry_tries": 3,
                              "count": 1, "interval": 0.2, "max_loss": 0.0}
    assert got["step_timeout"] == 15


def test_a_pod_name_is_left_for_the_api_and_the_flow_waits():
    got = check_inputs(settings(dst="default/web-0"), GROUPS)
    assert got["flow"] is None
    assert got["unresolved"] == [{"what": "dst", "ref": {"ip": None, "namespace": "default", "name": "web-0"}}]
    assert got["src_ref"]["ip"] == "172.17.25.79"


@pytest.mark.parametrize("deadline, expected", [(5, 5), (19, 5), (20, 5), (60, 15), (120, 30), (3600, 30)])
def test_step_timeout_is_a_quarter_of_the_deadline_within_5_to_30(deadline, expected):
    assert step_timeout(deadline) == expected


@pytest.mark.parametrize("override, message", [
    ({"deadline": 0}, "deadline 0 is out of range: give an integer 5-3600"),
    ({"deadline": "60s"}, "deadline 60s is out of range: give an integer 5-3600"),
    ({"duration": -1}, "duration -1 is out of range: give an integer 1-3600"),
    ({"snaplen": 0}, "snaplen 0 is out of range: give an integer 64-262144"),
    ({"probe_timeout": 301}, "probe_timeout 301 is out of range: give an integer 1-300"),
    ({"entry_tries": True}, "entry_tries True is out of range: give an integer 1-20"),
    ({"mode": "live"}, "mode 'live' is not supported; use one of probe, passive"),
    ({"count": 0}, "count 0 is out of range: give an integer 1-1000"),
    ({"count": 100000}, "count 100000 is out of range: give an integer 1-1000"),
    ({"count": "5; reboot"}, "count 5; reboot is out of range: give an integer 1-1000"),
    ({"interval": -1}, "interval -1 is out of range: give a number 0-60 (fractions such as 0.2 are fine)"),
    ({"interval": "1e3"}, "interval 1e3 is out of range: give a number 0-60"),
    ({"interval": "nan"}, "interval nan is out of range: give a number 0-60"),
    ({"max_loss": 101}, "max_loss 101 is out of range: give a number 0-100 (fractions such as 0.2 are fine)"),
    ({"max_loss": "5%"}, "max_loss 5% is out of range: give a number 0-100"),
    ({"count": 100, "interval": 1}, "count 100 x interval 1 s + probe_timeout 3 s takes up to 103 s, longer than deadline 60 s "
                                    "(when the captures end): lower count or interval, or raise deadline (up to 3600)"),
    ({"src": "172.17.25.79; reboot"}, "src '172.17.25.79; reboot' is neither an IP address nor namespace/pod"),
    ({"port": 0}, "port 0 is out of range; give an integer 1-65535"),
    ({"dst": "172.17.25.79"}, "src and dst are both 172.17.25.79"),
    ({"nodes": "workers"}, "workers"),
    ({"via": "nosuch"}, "via nosuch is not a host of this inventory; name a node of the cluster (one of node-a, node-b)"),
])
def test_each_bad_input_is_refused_with_what_to_fix(override, message):
    with pytest.raises(ValueError) as err:
        check_inputs(settings(**override), GROUPS)
    assert message in str(err.value)


def test_numbers_are_checked_before_the_addresses():
    with pytest.raises(ValidationError, match="^deadline 0 is out of range"):
        check_inputs(settings(deadline=0, src="bad"), GROUPS)


@pytest.mark.parametrize("value, expected", [("true", True), ("yes", True), ("1", True), (True, True),
                                             ("false", False), ("no", False), ("", False), (False, False)])
def test_keep_captures_takes_the_yes_no_spellings_of_ansible(value, expected):
    assert check_inputs(settings(keep_captures=value), GROUPS)["flags"] == {"keep_captures": expected, "snapshot": True}
    assert check_inputs(settings(snapshot=value), GROUPS)["flags"] == {"keep_captures": False, "snapshot": expected}


def test_keep_captures_with_another_word_is_refused():
    # the playbook skips the role's argument spec (one task less), so this check is the one that catches it
    with pytest.raises(ValidationError, match="^keep_captures 'maybe' is not a yes/no value: give true or false$"):
        check_inputs(settings(keep_captures="maybe"), GROUPS)


@pytest.mark.parametrize("count, interval, max_loss, expected", [
    ("20", "0.05", "0", (20, 0.05, 0.0)),
    (50, ".2", "2.5", (50, 0.2, 2.5)),
    ("1000", "0", "100", (1000, 0.0, 100.0)),
    (19, "3", 0, (19, 3.0, 0.0)),          # 19 x 3 + 3 = 60: exactly the deadline fits
])
def test_repeat_numbers_as_a_user_writes_them(count, interval, max_loss, expected):
    got = check_inputs(settings(count=count, interval=interval, max_loss=max_loss), GROUPS)["numbers"]
    assert (got["count"], got["interval"], got["max_loss"]) == expected


def test_the_repeat_time_bound_applies_to_probes_only():
    got = check_inputs(settings(mode="passive", count=1000, interval=60), GROUPS)
    assert got["numbers"]["count"] == 1000
    with pytest.raises(ValueError) as err:
        check_inputs(settings(count=20, interval="3"), GROUPS)
    assert "count 20 x interval 3 s + probe_timeout 3 s takes up to 63 s, longer than deadline 60 s" in str(err.value)


# junit: a controller path for a copy of junit.xml, checked before anything runs on a node
def test_junit_path_is_made_absolute_and_empty_means_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_inputs(settings(junit="ci-junit.xml"), GROUPS)["junit"] == str(tmp_path / "ci-junit.xml")
    assert check_inputs(settings(junit=""), GROUPS)["junit"] == ""
    assert check_inputs(settings(), GROUPS)["junit"] == ""


@pytest.mark.parametrize("value, message", [
    ("out.xml; reboot", "junit 'out.xml; reboot' has a character a path should not have"),
    ("a\nb.xml", "junit 'a\\nb.xml' has a character a path should not have"),
    ("$(reboot).xml", "junit '$(reboot).xml' has a character a path should not have"),
    ("/no/such/dir/junit.xml", "junit /no/such/dir/junit.xml: directory /no/such/dir does not exist on the controller; "
                               "create it or give another path"),
    ("/tmp", "junit /tmp is a directory: give a file path such as /tmp/junit.xml"),
])
def test_a_bad_junit_path_is_refused_with_what_to_fix(value, message):
    with pytest.raises(ValidationError) as err:
        check_inputs(settings(junit=value), GROUPS)
    assert str(err.value).startswith(message), str(err.value)


def test_probe_size():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.inputs import check_probe_size
    assert check_probe_size(None, "probe", "tcp", 1) == "small"
    assert check_probe_size(" MAX", "probe", "icmp", 1) == "max"
    assert check_probe_size("max", "probe", "udp", 1) == "max"
    for args, msg in ((("huge", "probe", "icmp", 1), "probe_size 'huge' is not supported; use small (the default) or max"),
                      (("max", "probe", "tcp", 1), "probe_size=max sends one ICMP echo or UDP datagram as large as the MTU"),
                      (("max", "passive", "icmp", 1), "give proto=icmp or proto=udp, mode probe and count 1"),
                      (("max", "probe", "icmp", 5), "give proto=icmp or proto=udp, mode probe and count 1")):
        with pytest.raises(ValidationError) as err:
            check_probe_size(*args)
        assert msg in str(err.value)
