"""Traces through the hoptrace.k8s.node_debug connection: no SSH, debug pods via kubectl.

No API server can run on these machines: the `kubectl` here is tests/lab/standin_kubectl.py, a
STAND-IN that maps `debug node/X` onto a bounded "pod" process and `exec ... nsenter -t 1 ...` onto
the lab node's namespaces (the lab's nodes are network namespaces with their own mount, UTS, IPC
and PID namespaces); its command lines are checked against the real kubectl in
tests/unit/plugins/plugin_utils/test_node_debug_kubectl.py. Everything else is real: the modules
run with the node's python3 and tcpdump, through the plugin's exec and file transfers.
"""
import json
import os
import time

import pytest

from lab import labctl
from test_trace import PATHS, ROOT, _env, flow, hop_rows, kill_controller_once_armed, node_leftovers, trace

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

STANDIN = os.path.join(ROOT, "tests", "lab", "standin_kubectl.py")


def debug_inventory(tmp_path, lab):
    """The lab's nodes reached only through debug pods (no ansible_host, no ssh settings)."""
    path = tmp_path / "debug.ini"
    lines = ["[nodes]"] + ["%s ip=%s" % (n["name"], n["ip"]) for n in lab["nodes"]]
    lines += ["", "[nodes:vars]", "ansible_connection=hoptrace.k8s.node_debug", "ansible_python_interpreter=/usr/bin/python3",
              "hoptrace_node_debug_cli=%s" % STANDIN, "hoptrace_node_debug_namespace=hoptrace",
              "hoptrace_node_debug_image=docker.io/library/busybox:1.36"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def standin_env(tmp_path):
    state = tmp_path / "standin"
    state.mkdir(exist_ok=True)
    # ssh would fail loudly if any task fell back to it
    return state, _env(HOPTRACE_STANDIN_DIR=str(state), ANSIBLE_SSH_EXECUTABLE="/bin/false")


def standin_pods(state):
    """The stand-in's pods as records (object, pid, profile), and which of them still run."""
    pods = []
    for name in sorted(os.listdir(state / "pods")) if (state / "pods").exists() else []:
        record = json.loads((state / "pods" / name).read_text())
        try:
            with open("/proc/%d/stat" % record["pid"]) as handle:
                fields = handle.read().rpartition(")")[2].split()
            running = fields[0] != "Z" and fields[19] == record["started"]
        except OSError:
            running = False
        pods.append(dict(record, running=running))
    return pods


def calls(state):
    return [json.loads(line) for line in (state / "calls.log").read_text().splitlines()]


def wait_until_no_pod(state, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end and standin_pods(state):
        time.sleep(0.2)
    return standin_pods(state)



def ipip_rows_all_seen():
    """The hop table of a healthy IPIP trace on the 2-node lab, as over SSH (tests/e2e/test_trace.py)."""
    path = PATHS["ipip"]
    nodes = ["node-a"] * 3 + ["node-b"] * 3
    rows = [("request", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes, path))]
    return rows + [("response", i + 1, n, iface, "seen") for i, (n, iface) in enumerate(zip(nodes[::-1], path[::-1]))]

def test_node_debug_trace_is_healthy_and_leaves_no_pod(lab_factory, tmp_path):
    lab = lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    rc, out, report = trace(tmp_path / "out", *flow(), env=env, inventory=debug_inventory(tmp_path, lab))
    assert rc == 0, out[-3000:]
    # the same hop table as over SSH (tests/e2e/test_trace.py)
    assert hop_rows(report) == ipip_rows_all_seen()
    assert report["verdict"] == "every hop saw the request and the response"
    run = next((tmp_path / "out").glob("*/report.json")).parent
    assert (run / "node-b" / "eth0.pcap").stat().st_size > 24      # binary pcap through exec
    # one debug pod per node, created once for the whole run, bounded by deadline (60) + 30 s
    argv = calls(state)
    debugs = [a for a in argv if a[0] == "debug"]
    assert sorted(a[1] for a in debugs) == ["node/node-a", "node/node-b"]
    for a in debugs:
        assert a[a.index("--") + 1:a.index("--") + 4] == ["/bin/sh", "-c", "exec sleep 90"], a
        assert "--profile=sysadmin" in a and "--namespace=hoptrace" in a and "--attach=false" in a
    labels = [a for a in argv if a[0] == "label"]
    assert len(labels) == 2 and all("app.kubernetes.io/managed-by=hoptrace" in a for a in labels)
    execs = [a for a in argv if a[0] == "exec"]
    assert execs and all(a[a.index("--") + 1:a.index("--") + 10] == ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"]
                         for a in execs)
    # the run's reaper deleted both pods once ansible-playbook ended
    assert wait_until_no_pod(state, 10) == []
    assert node_leftovers() == {}


def test_node_debug_pods_end_after_a_sigkilled_controller(lab_factory, tmp_path):
    lab = lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    # the reaper would delete the pods at once: this run has none (as if it had been killed too),
    # so only the pods' own bounded command ends them
    env["HOPTRACE_NODE_DEBUG_REAPER"] = "false"
    killed = kill_controller_once_armed(tmp_path / "out", deadline=10, inventory=debug_inventory(tmp_path, lab), env=env)
    pods = standin_pods(state)
    assert sorted(p["object"]["spec"]["nodeName"] for p in pods) == ["node-a", "node-b"]
    assert all(p["running"] for p in pods), pods
    assert all(p["object"]["spec"]["containers"][0]["command"][2] == "exec sleep 40" for p in pods)
    while time.monotonic() - killed < 45 and any(p["running"] for p in standin_pods(state)):
        time.sleep(0.5)
    assert [p["running"] for p in standin_pods(state)] == [False, False]
    # deadline 10 + 30 s from the pods' start, not earlier: the kill did not end them
    assert 20 < time.monotonic() - killed < 45
    # the next run deletes such finished pods of earlier runs
    rc, out, _report = trace(tmp_path / "out2", *flow(), env=dict(env, HOPTRACE_NODE_DEBUG_REAPER="true"),
                             inventory=debug_inventory(tmp_path, lab))
    assert rc == 0, out[-3000:]
    assert wait_until_no_pod(state, 10) == []
    # the killed run's capture files stay for the capture module's prune (as over SSH); no tcpdump runs
    assert [labctl.exec_in_node(n, ["pgrep", "-x", "tcpdump"]).returncode for n in ("node-a", "node-b")] == [1, 1]
    for node in ("node-a", "node-b"):
        labctl.exec_in_node(node, ["rm", "-rf", "/var/tmp/hoptrace"])


ROUTER_A, ROUTER_B = "openshift-ingress/router-default-77949c967-4t8f7", "openshift-ingress/router-default-77949c967-tgth7"


def no_inventory(tmp_path):
    """An empty inventory: only the implicit localhost; the nodes come from the API."""
    path = tmp_path / "empty.ini"
    path.write_text("")
    return str(path)


def api_flow(src, dst):
    return ["-e", json.dumps({"src": src, "dst": dst, "port": 443, "node_access": "kubectl", "node_access_cli": STANDIN,
                              "hoptrace_node_debug_namespace": "hoptrace"})]


@pytest.mark.parametrize("src,dst", [(ROUTER_A, ROUTER_B), ("172.17.25.79", "172.17.25.239")], ids=["names", "ips"])
def test_node_debug_without_inventory_finds_the_nodes_through_the_api(lab_factory, tmp_path, src, dst):
    lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    rc, out, report = trace(tmp_path / "out", *api_flow(src, dst), env=env, inventory=no_inventory(tmp_path))
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == ipip_rows_all_seen()
    assert (report["run"]["src"], report["run"]["dst"]) == ("172.17.25.79", "172.17.25.239")
    lookups = [a for a in calls(state) if a[0] == "get" and "--output=json" in a and "--field-selector=spec.nodeName=node-a" not in a
               and "--field-selector=spec.nodeName=node-b" not in a]
    if src == ROUTER_A:
        assert lookups == [["get", "pod", "router-default-77949c967-4t8f7", "--namespace=openshift-ingress", "--output=json"],
                           ["get", "pod", "router-default-77949c967-tgth7", "--namespace=openshift-ingress", "--output=json"]]
    else:
        assert lookups == [["get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.79", "--output=json"],
                           ["get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.239", "--output=json"]]
    assert sorted(a[1] for a in calls(state) if a[0] == "debug") == ["node/node-a", "node/node-b"]
    assert wait_until_no_pod(state, 10) == []
    assert node_leftovers() == {}


def _pod(name, phase="Running", ip="172.17.25.90", host_network=False, node="node-a"):
    return {"metadata": {"name": name, "namespace": "default", "labels": {}},
            "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": phase, "podIP": ip, "hostIP": "10.240.128.12"}}


@pytest.mark.parametrize("src,message", [
    ("default/no-such-pod", 'src default/no-such-pod is a pod name: resolving it needs cluster access (kubectl and a kubeconfig '
                            'on the controller), and that failed: Error from server (NotFound): pods "no-such-pod" not found'),
    ("default/pending-0", "src default/pending-0 (default/pending-0) is not running (phase Pending): trace it once it runs"),
    ("default/noip-0", "src default/noip-0 (default/noip-0) has no IP yet: trace it once its network is set up"),
    ("default/hostnet-0", "src default/hostnet-0 (default/hostnet-0) uses the host's network (hostNetwork: true): it has no "
                          "interface of its own to trace; give a pod on the pod network"),
    ("172.17.25.99", "src 172.17.25.99: no pod has this IP (kubectl get pods -A -o wide lists the pod IPs)"),
])
def test_node_debug_pods_that_cannot_be_traced_are_refused_before_any_node(lab_factory, tmp_path, src, message):
    lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    (state / "fixture_pods.json").write_text(json.dumps([
        _pod("pending-0", phase="Pending", ip=None), _pod("noip-0", ip=None),
        _pod("hostnet-0", ip="10.240.128.12", host_network=True)]))
    rc, out, report = trace(tmp_path / "out", *api_flow(src, ROUTER_B), env=env, inventory=no_inventory(tmp_path))
    assert rc != 0 and report is None
    assert message in " ".join(out.split()), out[-3000:]
    assert [a for a in calls(state) if a[0] in ("debug", "exec")] == []


def test_node_debug_files_are_binary_safe_and_reset_deletes_the_pod(lab_factory, tmp_path):
    """copy (put_file without pipelining) and fetch (fetch_file) of every byte value through exec; then
    meta: reset_connection deletes the node's pod at once, and the next task makes another."""
    lab = lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 64 + b"\r\n\x00end")
    play = tmp_path / "files.yml"
    play.write_text("""
- hosts: node-b
  gather_facts: false
  vars: {ansible_pipelining: false}
  tasks:
    - ansible.builtin.copy: {src: %(blob)s, dest: /var/tmp/hoptrace-blob.bin, mode: "0600"}
    - ansible.builtin.fetch: {src: /var/tmp/hoptrace-blob.bin, dest: %(back)s, flat: true}
    - ansible.builtin.command: cat /proc/sys/kernel/hostname
      register: hostname
      changed_when: false
    - ansible.builtin.meta: reset_connection
    - ansible.builtin.file: {path: /var/tmp/hoptrace-blob.bin, state: absent}
""" % {"blob": blob, "back": tmp_path / "back.bin"})
    rc, out, _report = trace(tmp_path / "unused", env=env, inventory=debug_inventory(tmp_path, lab), playbook=str(play))
    assert rc == 0, out[-3000:]
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()
    argv = calls(state)
    debugs = [i for i, a in enumerate(argv) if a[0] == "debug"]
    deletes = [i for i, a in enumerate(argv) if a[0] == "delete" and a[1] == "pod"]
    # one pod until reset_connection deleted it by name, then a second one for the last task
    assert len(debugs) == 2 and len(deletes) == 1 and debugs[0] < deletes[0] < debugs[1], argv
    assert wait_until_no_pod(state, 10) == []
    assert labctl.exec_in_node("node-b", ["ls", "/var/tmp/hoptrace-blob.bin"]).returncode != 0


def test_node_debug_without_inventory_traces_a_service_by_name_to_its_pods_node(lab_factory, tmp_path):
    # no inventory: the source pod's node from its pod, the backend's node from the Service's ready pods
    # (its selector, one read), kube-proxy's rules on node-a deciding the backend as ever
    lab_factory("ipip", 2)
    labctl.services_up()
    try:
        state, env = standin_env(tmp_path)
        rc, out, report = trace(tmp_path / "out", "-e", json.dumps(
            {"src": "172.17.25.79", "dst": "svc/openshift-ingress/router-internal-default", "node_access": "kubectl",
             "node_access_cli": STANDIN, "hoptrace_node_debug_namespace": "hoptrace"}), env=env, inventory=no_inventory(tmp_path))
    finally:
        labctl.services_down()
    assert rc == 0, out[-3000:]
    assert hop_rows(report) == ipip_rows_all_seen()
    assert report["service"]["line"] == (
        "Service 10.96.10.20:443 (openshift-ingress/router-internal-default, by name through standin_kubectl.py) -> backend "
        "172.17.25.239:443 (pod openshift-ingress/router-default-77949c967-tgth7 on node-b), chosen by kube-proxy's DNAT on node-a")
    # the API reads (the debug pods' own lookups by node left out)
    lookups = [a for a in calls(state) if "get" in a[:2] and not any(w.startswith("--field-selector=spec.nodeName=") for w in a)]
    assert lookups == [
        ["get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.79", "--output=json"],
        ["--request-timeout=10s", "get", "services", "--namespace=openshift-ingress",
         "--field-selector=metadata.name=router-internal-default", "--output=json"],
        ["--request-timeout=10s", "get", "pods", "--namespace=openshift-ingress",
         "--selector=lab.hoptrace/router-internal-default=backend", "--output=json"],
        ["--request-timeout=5s", "get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.239", "--output=json"]]
    assert sorted(a[1] for a in calls(state) if a[0] == "debug") == ["node/node-a", "node/node-b"]
    assert wait_until_no_pod(state, 10) == []
    assert node_leftovers() == {}


def test_node_debug_refuses_a_service_without_selector_before_any_node(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    state, env = standin_env(tmp_path)
    (state / "fixture_services.json").write_text(json.dumps([{
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual", "namespace": "default"},
        "spec": {"clusterIP": "10.96.10.60", "clusterIPs": ["10.96.10.60"], "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}}]))
    rc, out, report = trace(tmp_path / "out", "-e", json.dumps(
        {"src": "172.17.25.79", "dst": "svc/default/manual", "node_access": "kubectl", "node_access_cli": STANDIN,
         "hoptrace_node_debug_namespace": "hoptrace"}), env=env, inventory=no_inventory(tmp_path))
    assert rc != 0 and report is None
    assert ("dst svc/default/manual has no pod selector: its endpoints are kept by hand and need not be pods, so the API "
            "does not say which nodes to reach") in " ".join(out.split()), out[-3000:]
    assert [a for a in calls(state) if a[0] in ("debug", "exec")] == []
