"""Path-only discovery end to end (issue 11): one entry node read, only the path nodes touched.

Real sshd on the lab nodes, real Ansible over SSH. The off-path hosts of the large inventory are
entries whose ansible_host/ansible_port point at a loopback listener that counts connection
attempts (tests/lab/biginv.py): any contact with one of them is counted. Root only.
"""
import json
import os
import subprocess
import threading
import time

import pytest
from test_trace import DST, HEALTHY, SRC, _env, flow, hop_rows, node_leftovers, trace

from lab import biginv, labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
PLAYBOOK = os.path.join(ROOT, "playbooks", "trace_flow.yml")


def _trace_with(inventory, out_dir, *args, timeout=240):
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), PLAYBOOK, "-e", "output_dir=%s" % out_dir] + list(args)
    proc = subprocess.run(argv, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    reports = sorted(out_dir.glob("*/report.json")) if out_dir.exists() else []
    return proc.returncode, proc.stdout, json.loads(reports[-1].read_text()) if reports else None


def test_500_host_inventory_contacts_only_the_path(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    with biginv.ConnectionCounter() as counter:
        inventory = tmp_path / "big.ini"
        off = biginv.write_inventory(str(inventory), total=500, port=counter.port)
        assert len(off) == 498
        rc, out, report = _trace_with(inventory, tmp_path / "out", *flow())
        contacts = counter.count
    assert rc == 0, out[-3000:]
    assert report["healthy"] is True and HEALTHY in out
    assert contacts == 0, "off-path hosts were contacted %d times" % contacts
    assert report["path"]["group"] == {"name": "nodes", "hosts": 500, "how": "the default group"}
    assert report["path"]["entry"] == "node-a" and report["path"]["hosts"] == ["node-a", "node-b"]
    # node-a holds src: node-b was not read before arming, its captures resolved their own devices
    assert report["path"]["deferred"] == ["node-b"]
    assert [(h["node"], h["interface"]) for h in report["hops"] if h["direction"] == "request"][3:] == [
        ("node-b", "eth0"), ("node-b", "tunl0"), ("node-b", "calic25e805a467")]
    assert "path: read node-a of nodes (the default group, 500 hosts)" in out
    # the play's recap names no off-path host: Ansible never even skipped a task on one
    assert "off-0" not in out.split("PLAY RECAP")[-1]


def test_unreachable_entry_candidates_are_passed_over(lab_factory, tmp_path):
    """The group's first hosts refuse the connection: the next candidate is the entry; the counter sees
    exactly the refused tries (entry_tries bounds them)."""
    lab_factory("ipip", 2)
    with biginv.ConnectionCounter() as counter:
        inventory = tmp_path / "offfirst.ini"
        biginv.write_inventory(str(inventory), total=10, port=counter.port, lab_first=False)
        rc, out, report = _trace_with(inventory, tmp_path / "out", *flow(), "-e", "entry_tries=3")
        refused = counter.count
    assert rc != 0 and report is None
    assert refused == 3
    assert "no entry node could be read (off-000: " in " ".join(out.split())
    with biginv.ConnectionCounter() as counter:
        rc, out, report = _trace_with(inventory, tmp_path / "out2", *flow(), "-e", "via=node-b")
        assert counter.count == 0
    assert rc == 0, out[-3000:]
    assert report["path"]["entry"] == "node-b" and report["path"]["deferred"] == ["node-a"]
    assert [row[4] for row in hop_rows(report)] == ["seen"] * 12
    assert report["path"]["lines"][1] == "dst 172.17.25.239: on node-b (the entry node's route 172.17.25.239 dev calic25e805a467)"


def test_kubespray_inventory_without_nodes_group(lab_factory, tmp_path):
    """A kubespray-shaped YAML inventory: k8s_cluster children, node addresses in `ip` (no ansible_host;
    ssh reaches the hosts by name through the lab's ssh_config)."""
    lab_factory("ipip", 2)
    (a, a_ip), (b, b_ip) = biginv.lab_hosts()
    common = {}
    for line in biginv.lab_vars():
        key, _sep, value = line.partition("=")
        common[key] = value
    inv = {"all": {
        "hosts": {a: {"ip": a_ip, "access_ip": a_ip}, b: {"ip": b_ip, "access_ip": b_ip}},
        "vars": common,
        "children": {
            "kube_control_plane": {"hosts": {a: None}},
            "kube_node": {"hosts": {a: None, b: None}},
            "etcd": {"hosts": {a: None}},
            "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            "calico_rr": {"hosts": {}},
        },
    }}
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(json.dumps(inv, indent=1))  # JSON is YAML
    rc, out, report = _trace_with(inventory, tmp_path / "out", *flow())
    assert rc == 0, out[-3000:]
    assert report["path"]["group"]["name"] == "k8s_cluster" and report["path"]["group"]["how"] == "kubespray's group"
    assert report["path"]["lines"][1] == (
        "dst 172.17.25.239: on node-b (node-a's route 172.17.25.192/26 via %s dev tunl0 proto bird; %s is ip of node-b)"
        % (b_ip, b_ip))
    assert [row[4] for row in hop_rows(report)] == ["seen"] * 12


@pytest.mark.parametrize("args,message", [
    (["-e", "nodes=nosuch"], "the inventory group 'nosuch' (-e nodes=nosuch) has no hosts; groups with hosts in this inventory: nodes"),
    (["-e", "via=nosuch"], "via nosuch is not a host of this inventory"),
    (["-e", "deadline=0"], "deadline 0 is out of range: give an integer 5-3600"),
    (["-e", "entry_tries=-1"], "entry_tries -1 is out of range"),
])
def test_empty_group_and_bad_entry_fail_before_any_node(lab_factory, tmp_path, fake_ssh, args, message):
    lab_factory("ipip", 2)
    script, marker = fake_ssh
    rc, out, report = trace(tmp_path / "out", *flow(), *args, "-e", "ansible_ssh_executable=%s" % script)
    assert rc != 0 and report is None
    assert message in " ".join(out.split()), out[-3000:]
    assert not marker.exists(), "a task connected to a node: %s" % marker.read_text()


def test_inventory_without_cluster_groups_says_which_groups_exist(lab_factory, tmp_path, fake_ssh):
    lab_factory("ipip", 2)
    inventory = tmp_path / "web.ini"
    inventory.write_text("[web]\nw1 ansible_host=127.0.0.1\n")
    script, marker = fake_ssh
    rc, out, _report = _trace_with(inventory, tmp_path / "out", *flow(), "-e", "ansible_ssh_executable=%s" % script)
    assert rc != 0
    assert ("none of nodes, k8s_cluster, kube_node or kube_control_plane has hosts; groups with hosts in this "
            "inventory: web. Name the group with -e nodes=GROUP") in " ".join(out.split())
    assert not marker.exists()


def _tcpdumps(node):
    return labctl.exec_in_node(node, ["pgrep", "-c", "-x", "tcpdump"]).stdout.strip()


def test_node_that_stops_answering_after_arming(lab_factory, tmp_path):
    """node-b's sshd freezes (SIGSTOP: connections hang, nothing is refused) once its captures are armed:
    collect times out there, its hops are unknown, exit 2 within deadline + 30 s, and its tcpdumps
    still end by their deadline on the node."""
    lab_factory("ipip", 2)
    deadline = 20
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", labctl.inventory_path(), PLAYBOOK, "-e", "output_dir=%s" % tmp_path,
            "-e", "mode=passive", "-e", "duration=4", "-e", "deadline=%d" % deadline] + flow()
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        assert labctl.wait_for(lambda: _tcpdumps("node-b") == "3", 60), "node-b's captures were never armed"
        # armed means the arm task has returned (the module still sends its result after tcpdump
        # listens): the play has gone on to the passive wait
        assert labctl.wait_for(lambda: any("Wait for live traffic" in line for line in list(lines)), 30), "".join(lines)[-3000:]
        labctl.fault_add("freeze", "node-b")
        frozen = time.monotonic()
        labctl.exec_in_pod(SRC, ["curl", "-sk", "--max-time", "2", "https://%s" % DST])   # live traffic for the window
        proc.wait(timeout=deadline + 60)
        ended = time.monotonic()
        reader.join(10)
        out = "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tcpdump_gone = labctl.wait_for(lambda: _tcpdumps("node-b") == "0", deadline + 10, step=0.5)
        labctl.fault_clear()
    assert proc.returncode == 2, out[-3000:]
    assert ended - started < deadline + 30, "the trace took %.1f s" % (ended - started)
    assert ended - frozen > 4      # it did wait for the frozen node, up to the step timeout
    report = json.loads(next(tmp_path.glob("*/report.json")).read_text())
    assert report["verdict"].startswith("node-b (hosting the destination) stopped answering: timed out in collect (no answer in 5 s); "
                                        "its 6 hops are unknown"), report["verdict"]
    rows = {(h["direction"], h["index"]): (h["node"], h["status"]) for h in report["hops"]}
    assert {status for (node, status) in rows.values() if node == "node-b"} == {"unknown"}
    assert {status for (node, status) in rows.values() if node == "node-a"} == {"seen"}
    assert tcpdump_gone, "node-b's tcpdumps outlived their deadline"
    assert node_leftovers(["node-a"]) == {}
    labctl.exec_in_node("node-b", ["rm", "-rf", "/var/tmp/hoptrace"])


def test_node_that_does_not_answer_in_discover(lab_factory, tmp_path):
    """node-b is frozen before the trace: its first contact (arming: node-a's routes planned it) times
    out, nothing is armed there."""
    lab_factory("ipip", 2)
    labctl.fault_add("freeze", "node-b")
    try:
        started = time.monotonic()
        rc, out, report = trace(tmp_path, *flow(), "-e", "deadline=20")
        took = time.monotonic() - started
    finally:
        labctl.fault_clear()
    assert rc == 2, out[-3000:]
    assert took < 50
    assert report["verdict"].startswith("node-b (hosting the destination) "), report["verdict"]
    assert "its 6 hops are unknown" in report["verdict"]
    assert {h["status"] for h in report["hops"] if h["node"] == "node-b"} == {"unknown"}
    assert node_leftovers() == {}
