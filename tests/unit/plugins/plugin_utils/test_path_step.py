# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""path_step: what the route_info action finds early is reused by the filter only for the same flow and entry."""

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import ADDRESS_VARS
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.path_step import (
    FOUND_KEY,
    address_vars,
    found_earlier,
    no_lookup,
)

FLOW = {"src": "172.17.25.79", "dst": "172.17.25.239", "proto": "tcp", "port": 443}


def test_address_vars_reads_only_the_address_variables_of_known_hosts_and_the_entry():
    hostvars = {"node-a": {"ansible_host": "10.240.128.12", "ansible_user": "root"},
                "node-b": {"ip": "10.240.0.9", "access_ip": "192.0.2.9"},
                "entry": {"ansible_host": "10.240.1.3"}}
    none = dict.fromkeys(ADDRESS_VARS)
    assert address_vars(hostvars, ["node-a", "node-b", "gone"], "entry") == {
        "node-a": dict(none, ansible_host="10.240.128.12"),
        "node-b": dict(none, ip="10.240.0.9", access_ip="192.0.2.9"),
        "entry": dict(none, ansible_host="10.240.1.3"),
    }


def test_found_earlier_needs_the_same_entry_and_flow():
    path = {"hosts": ["node-a", "node-b"]}
    result = {"routes": [], FOUND_KEY: {"entry": "node-a", "flow": dict(FLOW, port="443"), "path": path}}
    assert found_earlier(result, FLOW, "node-a") is path            # "443" from a template is port 443
    assert found_earlier(result, FLOW, "node-b") is None
    assert found_earlier(result, dict(FLOW, dst="172.17.25.240"), "node-a") is None
    assert found_earlier(result, dict(FLOW, proto="udp"), "node-a") is None
    assert found_earlier({"routes": []}, FLOW, "node-a") is None
    assert found_earlier({"routes": [], FOUND_KEY: "junk"}, FLOW, "node-a") is None


def test_no_lookup_resolves_nothing():
    assert no_lookup(["node-a"]) == {}


class NoHostvars(dict):
    """hostvars that must not be read: the filter reuses the action's path."""

    def __getitem__(self, key):
        raise AssertionError("hostvars[%r] read" % key)


def test_the_filter_reuses_the_actions_path_and_keeps_it_out_of_entry_result():
    from test_hosting import entry

    from ansible_collections.hoptrace.k8s.plugins.filter.trace_path import FilterModule
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.path_step import find_path

    trace_path = FilterModule().filters()["trace_path"]
    result = entry()
    host_vars = {"worker-a": {"ansible_host": "10.240.128.12"}, "worker-b": {"ip": "10.240.0.9"}}
    found = find_path("worker-a", result, FLOW, host_vars, resolve=no_lookup)
    assert found["hosts"] == ["worker-a", "worker-b"]
    result[FOUND_KEY] = {"entry": "worker-a", "flow": FLOW, "path": found}
    path = trace_path(result, flow=FLOW, hostvars=NoHostvars(), hosts=["worker-a", "worker-b"], entry="worker-a")
    assert path["hosts"] == ["worker-a", "worker-b"] and path["summary"]["entry"] == "worker-a"
    assert FOUND_KEY not in path["entry_result"] and path["entry_result"]["routes"] == result["routes"]
    # another flow: computed again, from hostvars
    other = dict(FLOW, port=80)
    path = trace_path(result, flow=other, hostvars=host_vars, hosts=["worker-a", "worker-b"], entry="worker-a")
    assert path["hosts"] == ["worker-a", "worker-b"]


def test_a_path_host_whose_name_would_leave_the_run_folder_is_refused_before_arming():
    from test_hosting import entry

    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.path_step import find_path
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

    for bad in ("../../etc", "a/b", "..", "x\\y", "tab\there"):
        host_vars = {"worker-a": {"ansible_host": "10.240.128.12"}, bad: {"ip": "10.240.0.9"}}
        try:
            find_path("worker-a", entry(), FLOW, host_vars, resolve=no_lookup)
        except ValidationError as exc:
            assert str(exc) == (
                "inventory host %r is on the path, and its captures are written to RUN_FOLDER/<host name>/: a host "
                "name must not be empty, '.' or '..' nor contain '/', '\\' or control characters; rename the host in "
                "the inventory (keep its address in ansible_host)" % (bad,))
        else:
            raise AssertionError("%r was accepted" % bad)
    # an off-path host may be named anything: only the path's hosts get folders
    host_vars = {"worker-a": {"ansible_host": "10.240.128.12"}, "worker-b": {"ip": "10.240.0.9"}, "../x": {"ip": "10.9.9.9"}}
    assert find_path("worker-a", entry(), FLOW, host_vars, resolve=no_lookup)["hosts"] == ["worker-a", "worker-b"]
