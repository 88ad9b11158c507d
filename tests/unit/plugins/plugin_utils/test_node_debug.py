"""node_debug helpers: the kubectl/oc command lines, the settings' checks, finding the debug pod, the reaper."""
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import node_debug as nd
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

BASE = {"node": "node-a", "cli": "kubectl", "kubeconfig": "", "context": "", "namespace": "hoptrace",
        "image": "docker.io/library/busybox:1.36", "profile": "sysadmin", "pod_timeout": 40}


def settings(**changes):
    return nd.check_settings(dict(BASE, **changes))


def test_create_argv_kubectl_is_bounded_and_detached():
    s = settings(kubeconfig="/etc/kube/config", context="prod")
    assert nd.create_argv(s, "tok") == [
        "kubectl", "--kubeconfig=/etc/kube/config", "--context=prod", "debug", "node/node-a",
        "--image=docker.io/library/busybox:1.36", "--profile=sysadmin", "--namespace=hoptrace",
        "--attach=false", "--quiet", "--", "/bin/sh", "-c", "exec sleep 40", "tok"]


def test_create_argv_oc():
    s = settings(cli="/usr/local/bin/oc")
    assert s["flavour"] == "oc"
    assert nd.create_argv(s, "tok") == [
        "/usr/local/bin/oc", "debug", "node/node-a", "--to-namespace=hoptrace",
        "--image=docker.io/library/busybox:1.36", "--", "/bin/sh", "-c", "exec sleep 40", "tok"]


def test_exec_find_label_wait_delete_argv():
    s = settings()
    assert nd.exec_argv(s, "p1", "echo hi") == [
        "kubectl", "exec", "-i", "p1", "--namespace=hoptrace", "--",
        "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "/bin/sh", "-c", "echo hi"]
    assert nd.find_argv(s) == ["kubectl", "get", "pods", "--namespace=hoptrace",
                               "--field-selector=spec.nodeName=node-a", "--output=json"]
    assert nd.label_argv(s, "p1", "sid") == [
        "kubectl", "label", "pod", "p1", "--namespace=hoptrace", "--overwrite",
        "app.kubernetes.io/managed-by=hoptrace", "hoptrace.k8s/node=node-a", "hoptrace.k8s/session=sid"]
    assert nd.wait_argv(s, "p1", 12) == ["kubectl", "wait", "--for=condition=Ready", "pod/p1",
                                         "--namespace=hoptrace", "--timeout=12s"]
    assert nd.delete_argv(s, ["p1"]) == ["kubectl", "delete", "pod", "p1", "--namespace=hoptrace",
                                         "--ignore-not-found", "--wait=false"]
    assert nd.delete_session_argv(s, "sid") == [
        "kubectl", "delete", "pods", "--namespace=hoptrace",
        "--selector=hoptrace.k8s/session=sid,app.kubernetes.io/managed-by=hoptrace", "--ignore-not-found", "--wait=false"]
    assert nd.delete_finished_argv(s)[-3] == "--field-selector=status.phase!=Running,status.phase!=Pending"


def test_file_commands_quote_paths():
    assert nd.put_command("/root/.ansible/tmp/a b/x.py") == "cat > '/root/.ansible/tmp/a b/x.py'"
    assert nd.fetch_command("/var/tmp/x;rm -rf /") == "cat -- '/var/tmp/x;rm -rf /'"


@pytest.mark.parametrize("change, message", [
    ({"node": "Node_A"}, "node 'Node_A' is not a Kubernetes node name"),
    ({"node": ""}, "node '' is not a Kubernetes node name"),
    ({"namespace": "kube system"}, "namespace 'kube system' is not a Kubernetes namespace name"),
    ({"image": "busybox; rm -rf /"}, "image 'busybox; rm -rf /' is not an image reference"),
    ({"profile": "root"}, "profile 'root' is not one of sysadmin, general"),
    ({"pod_timeout": 5}, "pod_timeout 5 is out of range: give the seconds the debug pod may live, 10-86400"),
    ({"pod_timeout": "60s"}, "pod_timeout '60s' is out of range"),
    ({"cli": "kubectl --as=admin"}, "cli 'kubectl --as=admin' must be a command name or path"),
    ({"context": "a b"}, "context 'a b' has characters"),
    ({"kubeconfig": "$(id)"}, "kubeconfig '$(id)' has a character"),
])
def test_bad_settings_say_what_to_fix(change, message):
    with pytest.raises(ValidationError) as err:
        settings(**change)
    assert message in str(err.value)


def test_find_pod_by_token_in_command_or_args():
    pods = {"items": [
        {"metadata": {"name": "web"}, "spec": {"containers": [{"command": ["nginx"]}]}, "status": {"phase": "Running"}},
        {"metadata": {"name": "node-debugger-node-a-x1"}, "spec": {"containers": [{"command": ["/bin/sh", "-c", "exec sleep 40", "tok-2"]}]},
         "status": {"phase": "Pending"}},
        {"metadata": {"name": "oc-style"}, "spec": {"containers": [{"args": ["tok-3"]}]}, "status": {"phase": "Running"}},
    ]}
    assert nd.find_pod(pods, "tok-2") == {"name": "node-debugger-node-a-x1", "phase": "Pending"}
    assert nd.find_pod(pods, "tok-3") == {"name": "oc-style", "phase": "Running"}
    assert nd.find_pod(pods, "tok") is None
    assert nd.find_pod({}, "tok") is None


def test_label_values_and_session():
    assert nd.label_value("node-a") == "node-a"
    long = nd.label_value("ip-10-0-1-17." + "x" * 80 + ".internal")
    assert len(long) == 63 and long.startswith("ip-10-0-1-17.xxx")
    assert nd.label_value("a/b:c") == "a-b-c"
    sid = nd.session_id("ctl", 4242, "9876")
    assert sid.startswith("4242-") and len(sid) == 17
    assert sid != nd.session_id("ctl", 4242, "9877")     # a reused pid is another run


def test_cli_flavour():
    assert [nd.cli_flavour(c) for c in ("kubectl", "oc", "/opt/bin/oc", "/x/standin_kubectl.py", "")] == [
        "kubectl", "oc", "oc", "kubectl", "kubectl"]


def test_describe_failure_names_the_call_and_its_last_error():
    argv = ["/usr/bin/kubectl", "--context=x", "debug", "node/a"]
    assert nd.describe_failure(argv, 1, 'warning\nError from server (Forbidden): pods is forbidden\n') == (
        "kubectl debug failed (rc 1): Error from server (Forbidden): pods is forbidden")


def test_reaper_waits_for_the_controller_then_deletes(tmp_path):
    """The reaper script, run for real: it acts only once the watched process has ended."""
    controller = subprocess.Popen(["sleep", "30"])
    state = tmp_path / "state"
    state.mkdir()
    done = tmp_path / "deleted"
    reaper = subprocess.Popen([sys.executable, "-c", nd.REAPER, str(controller.pid), nd.process_start(controller.pid),
                               "60", str(state), "touch", str(done)])
    try:
        time.sleep(0.8)
        assert not done.exists() and reaper.poll() is None
        controller.kill()
        controller.wait()
        assert reaper.wait(timeout=10) == 0
        assert done.exists() and not state.exists()
    finally:
        controller.kill()
        reaper.kill()


def test_reaper_is_bounded_by_its_lifetime(tmp_path):
    controller = subprocess.Popen(["sleep", "30"])
    done = tmp_path / "deleted"
    try:
        start = time.monotonic()
        reaper = subprocess.run([sys.executable, "-c", nd.REAPER, str(controller.pid), nd.process_start(controller.pid),
                                 "1", str(tmp_path / "none"), "touch", str(done)], timeout=20, check=False)
        assert reaper.returncode == 0 and done.exists()
        assert controller.poll() is None and 1 <= time.monotonic() - start < 5
    finally:
        controller.kill()
        controller.wait()


def test_process_start_of_a_missing_process():
    assert nd.process_start(os.getpid()) != ""
    assert nd.process_start(2 ** 22 + 1) == ""
