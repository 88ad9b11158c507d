"""The trace end to end: `ansible-playbook playbooks/trace_flow.yml` against the lab over real SSH.

Real sshd on every lab node, real tcpdump, real kernel VXLAN, real IP protocol 4 on the wire.
What cannot exist here is a Kubernetes API server: the one test that resolves pod names puts a
stand-in `kubectl` (a script answering from the lab's pods.json) on the controller's PATH, and
says so. Root only (the lab needs it).
"""
import json
import os
import signal
import subprocess
import time

import pytest

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
PLAYBOOK = os.path.join(ROOT, "playbooks", "trace_flow.yml")
SRC, DST = "172.17.25.79", "172.17.25.239"             # the seed's pods: node-a -> node-b
SRC_VETH, DST_VETH = "cali41f14107a8d", "calic25e805a467"
HEALTHY = "verdict: every hop saw the request and the response"


def _env(**extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_TIMEOUT="5",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    env.update(extra)
    return env


def trace(out_dir, *args, env=None, timeout=180, playbook=PLAYBOOK, inventory=None):
    """Run a trace (on the lab's SSH inventory unless another is given); returns (rc, printed output,
    report dict or None)."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory or labctl.inventory_path(), playbook,
            "-e", "output_dir=%s" % out_dir] + list(args)
    proc = subprocess.run(argv, cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    reports = sorted(p for p in out_dir.glob("*/report.json")) if out_dir.exists() else []
    report = json.loads(reports[-1].read_text()) if reports else None
    return proc.returncode, proc.stdout, report


def flow(src=SRC, dst=DST, port=443):
    """Extra vars as JSON: values reach the play exactly as given, spaces and all."""
    return ["-e", json.dumps({"src": src, "dst": dst, "port": port})]


def hop_rows(report):
    return [(h["direction"], h["index"], h["node"], h["interface"], h["status"]) for h in report["hops"]]


def node_leftovers(nodes=("node-a", "node-b")):
    """tcpdump processes and capture files still on the nodes."""
    left = {}
    for node in nodes:
        procs = labctl.exec_in_node(node, ["pgrep", "-a", "tcpdump"]).stdout.strip()
        files = labctl.exec_in_node(node, ["sh", "-c", "ls -A /var/tmp/hoptrace 2>/dev/null; true"]).stdout.strip()
        if procs or files:
            left[node] = (procs, files)
    return left


PATHS = {
    "ipip": [SRC_VETH, "tunl0", "eth0", "eth0", "tunl0", DST_VETH],
    "vxlan": [SRC_VETH, "vxlan.calico", "eth0", "eth0", "vxlan.calico", DST_VETH],
    "bgp": [SRC_VETH, "eth0", "eth0", DST_VETH],
}


@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_every_hop_sees_both_directions(lab_factory, tmp_path, mode):
    lab_factory(mode, 2)
    rc, out, report = trace(tmp_path, *flow())
    assert rc == 0, out[-3000:]
    path = PATHS[mode]
    nodes = ["node-a"] * (len(path) // 2) + ["node-b"] * (len(path) // 2)
    expected = [("request", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes, path))]
    expected += [("response", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes[::-1], path[::-1]))]
    assert hop_rows(report) == expected
    assert report["healthy"] is True and report["encap"] == {"bgp": "none"}.get(mode, mode)
    assert report["verdict"] == "every hop saw the request and the response"
    # every hop saw the handshake: the SYN on the request path, the SYN+ACK on the response path
    for hop in report["hops"]:
        assert ("SYN" if hop["direction"] == "request" else "SYN+ACK") in hop["summary"], hop
    # the callback's table, as printed at the end of the play
    assert HEALTHY in out
    assert "request   3 node-a eth0 (%s)" % mode in out if mode != "bgp" else "request   2 node-a eth0" in out
    run = next(tmp_path.glob("*/report.json")).parent
    for name in ["report.json", "report.md", "report.html", "junit.xml", "trace.pcapng", "node-a/eth0.pcap", "node-b/%s.pcap" % DST_VETH]:
        assert (run / name).is_file(), name
    # the merged capture opens in tshark with one interface per hop
    names = subprocess.run(["tshark", "-r", str(run / "trace.pcapng"), "-T", "fields", "-e", "frame.interface_name"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert set(names) == {"%s/%s" % (n, i) for n, i in zip(nodes, path)}
    assert node_leftovers() == {}


def test_same_node_is_veth_to_veth(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    rc, out, report = trace(tmp_path, *flow(dst="172.17.25.66"))
    assert rc == 0, out[-3000:]
    assert report["encap"] == "local"
    assert hop_rows(report) == [
        ("request", 1, "node-a", SRC_VETH, "seen"), ("request", 2, "node-a", "cali2a1ec19d610", "seen"),
        ("response", 1, "node-a", "cali2a1ec19d610", "seen"), ("response", 2, "node-a", SRC_VETH, "seen")]
    assert HEALTHY in out


# Where a drop makes each hop the last one seen (or the first one missed). tcpdump sees a packet
# arriving on an interface before the node's netfilter and a packet leaving after it, so a drop
# on arrival ("in") leaves the hop seen and the next one lost; a drop on leaving ("out") loses the
# hop itself. Either way the verdict must name this hop.
def _drop_cases():
    cases = []
    for mode, tunnel in (("ipip", "tunl0"), ("vxlan", "vxlan.calico")):
        request = [("node-a", SRC_VETH, "in"), ("node-a", tunnel, "out"), ("node-a", "eth0", "out"),
                   ("node-b", "eth0", "in"), ("node-b", tunnel, "in"), ("node-b", DST_VETH, "out")]
        response = [("node-b", DST_VETH, "in"), ("node-b", tunnel, "out"), ("node-b", "eth0", "out"),
                    ("node-a", "eth0", "in"), ("node-a", tunnel, "in"), ("node-a", SRC_VETH, "out")]
        for direction, hops in (("request", request), ("response", response)):
            for index, (node, iface, way) in enumerate(hops, 1):
                cases.append(pytest.param(mode, direction, index, node, iface, way,
                                          id="%s-%s%d-%s-%s-%s" % (mode, direction, index, node, iface, way)))
    return cases


@pytest.mark.parametrize("mode,direction,index,node,iface,way", _drop_cases())
def test_drop_at_each_hop_is_named(lab_factory, tmp_path, mode, direction, index, node, iface, way):
    lab_factory(mode, 2)
    src, dst = (SRC, DST) if direction == "request" else (DST, SRC)
    labctl.fault_add("drop", node, iface=iface, direction=way, src=src, dst=dst, proto="tcp", port="443")
    try:
        # probe_timeout 1: the captures stop (about 0.3-0.8 s after the probe gives up) well before the
        # peer's next retransmission (TCP's SYN/SYN+ACK backoff: 1 s, 3 s, ...); with 2 the stop fell
        # near the 3 s one, and a retransmission caught on one node's capture but not yet stopped on the
        # other looked like a loss between them
        rc, out, report = trace(tmp_path, *flow(), "-e", "probe_timeout=1")
    finally:
        labctl.fault_clear()
    assert rc != 0, out[-3000:]
    assert report is not None and report["healthy"] is False, out[-3000:]
    hop = "%s %s" % (node, iface)
    verdict = report["verdict"]
    assert hop in verdict, verdict
    assert verdict.startswith(direction) or ("%s reached" % direction) in verdict, verdict
    rows = {(h["direction"], h["index"]): h["status"] for h in report["hops"]}
    lost_index = index + 1 if way == "in" else index
    assert rows[(direction, lost_index)] == "LOST", (verdict, rows)
    assert all(rows[(direction, i)] == "seen" for i in range(1, lost_index)), rows
    assert "verdict: %s" % verdict.split("\n")[0][:40] in out


def test_unreachable_node_is_reported_unknown(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    labctl.fault_add("sshd-down", "node-b")
    try:
        rc, out, report = trace(tmp_path, *flow())
    finally:
        labctl.fault_clear()
    assert rc != 0
    rows = {(h["direction"], h["index"]): (h["node"], h["interface"], h["status"]) for h in report["hops"]}
    assert [rows[("request", i)] for i in (1, 2, 3)] == [
        ("node-a", SRC_VETH, "seen"), ("node-a", "tunl0", "seen"), ("node-a", "eth0", "seen")]
    assert [rows[("response", i)] for i in (4, 5, 6)] == [
        ("node-a", "eth0", "seen"), ("node-a", "tunl0", "seen"), ("node-a", SRC_VETH, "seen")]
    assert {rows[("request", i)][2] for i in (4, 5, 6)} == {"unknown"}
    assert {rows[("response", i)][2] for i in (1, 2, 3)} == {"unknown"}
    assert report["verdict"].startswith("node-b (hosting the destination) could not be reached: "), report["verdict"]
    assert "Connection refused; its 6 hops are unknown; " in report["verdict"], report["verdict"]
    assert "request   4 node-b" in out and "unknown" in out
    assert node_leftovers(["node-a"]) == {}


def kill_controller_once_armed(out_dir, deadline=5, inventory=None, env=None):
    """Start a passive trace (deadline 5 s) and SIGKILL its controller once every capture is armed;
    returns when it was killed (time.monotonic())."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory or labctl.inventory_path(), PLAYBOOK,
            "-e", "output_dir=%s" % out_dir, "-e", "mode=passive", "-e", "duration=60", "-e", "deadline=%d" % deadline] + flow()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env or _env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        armed = time.monotonic() + 60
        while time.monotonic() < armed:
            counts = [labctl.exec_in_node(n, ["pgrep", "-c", "-x", "tcpdump"]).stdout.strip() for n in ("node-a", "node-b")]
            if counts == ["3", "3"]:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the captures were never armed")
        os.killpg(proc.pid, signal.SIGKILL)
        return time.monotonic()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_killed_controller_leaves_no_tcpdump(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    killed = kill_controller_once_armed(tmp_path)
    while time.monotonic() - killed < 15:
        if all(labctl.exec_in_node(n, ["pgrep", "-x", "tcpdump"]).returncode == 1 for n in ("node-a", "node-b")):
            break
        time.sleep(0.5)
    left = [labctl.exec_in_node(n, ["pgrep", "-a", "tcpdump"]).stdout for n in ("node-a", "node-b")]
    assert left == ["", ""], left
    # the deadline (5 s), not the controller, ended them
    assert time.monotonic() - killed < 12
    for node in ("node-a", "node-b"):
        labctl.exec_in_node(node, ["rm", "-rf", "/var/tmp/hoptrace"])


@pytest.mark.parametrize("args,message", [
    (flow(src="172.17.25.300"), "src '172.17.25.300' is neither an IP address nor namespace/pod"),
    (flow(src="172.17.25.79; touch /tmp/hoptrace-pwned"), "is neither an IP address nor namespace/pod"),
    (flow(dst="$(touch /tmp/hoptrace-pwned)"), "dst '$(touch /tmp/hoptrace-pwned)' is neither"),
    (flow(port="443; touch /tmp/hoptrace-pwned"), "port '443; touch /tmp/hoptrace-pwned' is not a port number; give an integer 1-65535"),
    (flow(port="70000"), "port '70000' is out of range"),
    (flow(dst=SRC), "give two different addresses"),
    (flow(dst="fd00::1"), "different IP families"),
    (flow() + ["-e", json.dumps({"proto": "sctp"})], "proto 'sctp' is not supported; use one of tcp, udp, icmp"),
    (flow() + ["-e", json.dumps({"mode": "-w /etc/x"})], "mode '-w /etc/x' is not supported; use one of probe, passive"),
    (["-e", json.dumps({"dst": DST})], "src is empty"),
])
def test_bad_input_is_refused_before_any_node_is_touched(lab_factory, tmp_path, fake_ssh, args, message):
    lab_factory("ipip", 2)
    script, marker = fake_ssh
    rc, out, report = trace(tmp_path / "out", *args, "-e", "ansible_ssh_executable=%s" % script)
    assert rc != 0
    assert message in out, out[-3000:]
    assert not marker.exists(), "a task connected to a node: %s" % marker.read_text()
    assert report is None and not os.path.exists("/tmp/hoptrace-pwned")


def test_pod_names_with_a_stand_in_kubectl(lab_factory, tmp_path):
    """No API server can run here: a stand-in kubectl answers `get pod` from the lab's pods.json."""
    lab_factory("ipip", 2)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    # tests/lab/standin_kubectl.py: a STAND-IN serving `get pod NAME -o json` from the lab's pods.json
    kubectl.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (os.path.join(BIN, "python"), os.path.join(ROOT, "tests", "lab", "standin_kubectl.py")))
    kubectl.chmod(0o755)
    (tmp_path / "standin").mkdir()
    env = _env(PATH=str(bindir) + os.pathsep + _env()["PATH"], HOPTRACE_STANDIN_DIR=str(tmp_path / "standin"))
    rc, out, report = trace(tmp_path / "out", "-e", "src=openshift-ingress/router-default-77949c967-4t8f7",
                            "-e", "dst=openshift-ingress/router-default-77949c967-tgth7", env=env)
    assert rc == 0, out[-3000:]
    assert (report["run"]["src"], report["run"]["dst"]) == (SRC, DST)
    rc, out, report = trace(tmp_path / "out2", "-e", "src=openshift-ingress/no-such-pod", "-e", "dst=%s" % DST, env=env)
    assert rc != 0 and report is None
    assert "src openshift-ingress/no-such-pod is a pod name: resolving it needs cluster access" in " ".join(out.split())
    assert 'pods "no-such-pod" not found' in out


def test_pod_names_without_cluster_access_say_so(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    env = _env(PATH=BIN + os.pathsep + "/usr/bin:/bin")
    rc, out, report = trace(tmp_path, "-e", "src=openshift-ingress/router-a", "-e", "dst=%s" % DST, env=env)
    assert rc != 0 and report is None
    text = " ".join(out.split())
    assert "resolving it needs cluster access (kubectl and a kubeconfig on the controller)" in text
    assert "or pass the pod IP instead" in text


def test_check_mode_changes_nothing(lab_factory, tmp_path):
    """Also: the playbook by its collection name, as an installed collection is used."""
    lab_factory("ipip", 2)
    rc, out, report = trace(tmp_path, *flow(), "--check", playbook="hoptrace.k8s.trace_flow")
    assert rc == 0, out[-3000:]
    assert report is None and not any(tmp_path.iterdir())
    assert "check mode: hops planned from the nodes' routes; nothing was captured" in " ".join(out.split())
    assert "request   5 node-b tunl0" in out
    assert node_leftovers() == {}


def test_two_traces_in_one_play_do_not_mix(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    play = tmp_path / "two.yml"
    play.write_text("""
- hosts: nodes
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: hoptrace.k8s.trace
      vars: {trace_src: 172.17.25.79, trace_dst: 172.17.25.239, trace_output_dir: %(out)s}
    - ansible.builtin.include_role:
        name: hoptrace.k8s.trace
      vars: {trace_src: 172.17.25.66, trace_dst: 172.17.25.193, trace_output_dir: %(out)s}
""" % {"out": tmp_path / "out"})
    rc, out, _report = trace(tmp_path / "unused", playbook=str(play))
    assert rc == 0, out[-3000:]
    reports = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*/report.json"))]
    assert len(reports) == 2
    flows = sorted((r["run"]["src"], r["run"]["dst"]) for r in reports)
    assert flows == [("172.17.25.66", "172.17.25.193"), (SRC, DST)]
    for rep in reports:
        assert rep["healthy"], rep["verdict"]
        assert all(h["status"] == "seen" for h in rep["hops"])
        for cap in rep["captures"]:
            assert cap["other"] == 0, cap       # no packet of the other trace's flow in this one's files
    assert out.count(HEALTHY) == 2
