"""Leftovers on the nodes (issue 16): what a killed controller leaves is pruned by a later trace, and two
inventory names for one machine never overwrite each other's captures.

Real sshd on the lab nodes, real Ansible over SSH, real tcpdump. The prune rule waits 10 minutes past a
capture's deadline; instead of waiting, the test makes the killed run's files older on the node: it
rewrites the times their state files record and sets their mtimes back (labctl.age_captures). Root only.
"""
import json
import os
import re
import subprocess
import time

import pytest
import yaml
from test_trace import DST, SRC, SRC_VETH, _env, flow, kill_controller_once_armed, node_leftovers, trace

from lab import biginv, labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
CAPTURE_DIR = "/var/tmp/hoptrace"          # the role's default trace_capture_dir
NODES = ("node-a", "node-b")
# capture-id names per node: node-a (the entry, read) by interface; node-b was not read before arming,
# so its captures are named by their route selection (plugin_utils/collect.py capture_name)
HOPS = {"node-a": (SRC_VETH, "tunl0", "eth0"), "node-b": ("sel-underlay", "sel-tunnel", "sel-veth")}


def listing(node, directory=CAPTURE_DIR):
    return sorted(labctl.exec_in_node(node, ["sh", "-c", "ls -A %s 2>/dev/null; true" % directory]).stdout.split())


def clean(directory=CAPTURE_DIR):
    for node in NODES:
        labctl.exec_in_node(node, ["rm", "-rf", directory])


def tcpdumps(node):
    return labctl.exec_in_node(node, ["pgrep", "-c", "-x", "tcpdump"]).stdout.strip()


def killed_trace(out_dir):
    """A passive trace (deadline 5 s) whose controller is SIGKILLed once every capture is armed; returns
    when the deadline has ended every tcpdump on the nodes."""
    kill_controller_once_armed(out_dir)
    ended = time.monotonic() + 15
    while time.monotonic() < ended and any(tcpdumps(n) != "0" for n in NODES):
        time.sleep(0.5)
    assert [tcpdumps(n) for n in NODES] == ["0", "0"], "the deadline did not end the captures"


def test_a_later_trace_prunes_what_a_killed_controller_left(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    clean()
    try:
        killed_trace(tmp_path / "killed")
        # the killed run left every capture's files, named <prefix>-<host>-<interface>
        left = {node: listing(node) for node in NODES}
        prefixes = set()
        for node in NODES:
            assert len(left[node]) == 9, left[node]
            for name in left[node]:
                match = re.fullmatch(r"(ht-\d{8}T\d{6}Z-[0-9a-f]{6})-%s-(\S+)\.(pcap|log|state\.json)" % node, name)
                assert match and match.group(2) in HOPS[node], name
                prefixes.add(match.group(1))
        assert len(prefixes) == 1, prefixes          # one run
        prefix = prefixes.pop()
        # node-a's leftovers are made 11 minutes old (state times and mtimes); node-b's stay as they are: a
        # run that ended seconds ago may still be wanted, and the prune leaves it
        labctl.age_captures("node-a", CAPTURE_DIR, prefix + "-", 660)

        rc, out, report = trace(tmp_path / "next", *flow())
        assert rc == 0, out[-3000:]
        assert report["healthy"] is True
        # node-a: none of the killed run's files and, as usual, none of this trace's own
        assert listing("node-a") == []
        # node-b: exactly the killed run's files (too recent to prune), none of this trace's
        assert listing("node-b") == left["node-b"]
        assert node_leftovers(["node-a"]) == {}
        # the runbook clean-up removes them, with their paths
        argv = [os.path.join(BIN, "ansible"), "-i", labctl.inventory_path(), "node-b", "-m", "hoptrace.k8s.capture",
                "-a", json.dumps({"state": "absent", "older_than": 0})]
        proc = subprocess.run(argv, cwd=ROOT, env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1"),
                              capture_output=True, text=True, timeout=60)
        result = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])[0]
        assert result["changed"] is True, proc.stdout
        assert result["removed"] == ["%s/%s" % (CAPTURE_DIR, name) for name in left["node-b"]]
        assert node_leftovers() == {}
    finally:
        clean()


def test_two_inventory_names_for_one_node_keep_their_own_captures(lab_factory, tmp_path):
    """node-a under a second inventory name (same ansible_host): both names arm and stop a capture on the
    same interface with the same run prefix, at once, in one play. Their ids differ (the host name is in
    them) and each gets its own file back. The two captures filter different ports (443 and 444, one
    probe each) so that each file shows whose it is: a capture overwritten by the other name's would hold
    the other port, or nothing."""
    lab_factory("ipip", 2)
    directory = "/var/tmp/hoptrace-alias"
    clean(directory)
    (a, a_ip), _b = biginv.lab_hosts()
    assert a == "node-a"
    inventory = tmp_path / "alias.ini"
    inventory.write_text("\n".join(["[nodes]", "node-a ansible_host=%s" % a_ip, "node-a-again ansible_host=%s" % a_ip,
                                    "", "[nodes:vars]"] + biginv.lab_vars()) + "\n")
    pod_filter = "host %s and host %s and tcp port {port}" % (SRC, DST)
    plan = {"captures": [{"node": "node-a", "interface": SRC_VETH, "filter": pod_filter.format(port=443)},
                         {"node": "node-a-again", "interface": SRC_VETH, "filter": pod_filter.format(port=444)}]}
    prefix = "ht-20261203T120000Z-a11a5e"
    args = "{{ plan | hoptrace.k8s.capture_args(inventory_hostname, prefix) }}"
    run_dir = tmp_path / "run"
    play = [{"hosts": "nodes", "gather_facts": False, "vars": {"plan": plan, "prefix": prefix}, "tasks": [
        {"name": "arm", "hoptrace.k8s.capture": {"state": "started", "captures": args, "deadline": 60, "directory": directory},
         "register": "armed"},
        {"name": "files while both run", "ansible.builtin.command": {"argv": ["ls", "-A", directory]},
         "register": "during", "changed_when": False, "run_once": True},
        {"name": "probe 443 and 444 from the pod", "hoptrace.k8s.probe": {"src": SRC, "dst": DST, "port": "{{ item }}"},
         "loop": [443, 444], "register": "probes", "when": "inventory_hostname == 'node-a'"},
        {"name": "stop and bring back", "hoptrace.k8s.capture": {
            "state": "stopped", "captures": args, "dest": "%s/{{ inventory_hostname }}" % run_dir, "remove_returned": True,
            "directory": directory}, "register": "stopped"},
        {"name": "files after", "ansible.builtin.command": {"argv": ["ls", "-A", directory]},
         "register": "after", "changed_when": False, "run_once": True},
        {"name": "save", "delegate_to": "localhost", "run_once": True, "ansible.builtin.copy": {
            "dest": str(tmp_path / "out.json"), "mode": "0600", "content": "{{ {"
            "'armed': dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'armed'))),"
            "'stopped': dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'stopped'))),"
            "'probes': hostvars['node-a'].probes, 'during': during.stdout_lines, 'after': after.stdout_lines"
            "} | to_json }}"}},
    ]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    try:
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(tmp_path / "play.yml")],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-4000:]
        out = json.loads((tmp_path / "out.json").read_text())
        ids = {"node-a": "%s-node-a-%s" % (prefix, SRC_VETH), "node-a-again": "%s-node-a-again-%s" % (prefix, SRC_VETH)}
        # both names armed their own capture (not "already running": another id, another tcpdump)
        armed = {host: out["armed"][host]["captures"] for host in ids}
        for host, cid in ids.items():
            assert [(c["id"], c["interface"], c["changed"]) for c in armed[host]] == [(cid, SRC_VETH, True)], armed[host]
        assert armed["node-a"][0]["pid"] != armed["node-a-again"][0]["pid"]
        assert out["during"] == sorted("%s%s" % (cid, suffix) for cid in ids.values()
                                       for suffix in (".log", ".pcap", ".state.json"))
        assert [p["status"] for p in out["probes"]["results"]] == ["connected", "refused"]
        # each name got its own non-empty file back, in its own folder, with its own port's packets only
        for host, port, other in (("node-a", 443, 444), ("node-a-again", 444, 443)):
            (stopped,) = out["stopped"][host]["captures"]
            path = run_dir / host / ("%s.pcap" % SRC_VETH)
            assert stopped["id"] == ids[host] and stopped["dest"] == str(path) and stopped["ended_by"] == "stopped"
            assert path.stat().st_size == stopped["size"] > 24 and stopped["captured"] >= 1
            text = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, check=True).stdout
            assert re.search(r"%s\.\d+ > %s\.%d: Flags \[S\]" % (re.escape(SRC), re.escape(DST), port), text), (host, text)
            assert ".%d:" % other not in text and ".%d " % other not in text, (host, text)
        assert sorted(os.listdir(str(run_dir))) == ["node-a", "node-a-again"]
        # and nothing is left on the node
        assert out["after"] == [] and listing("node-a", directory) == []
    finally:
        clean(directory)
