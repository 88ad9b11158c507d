"""The node_debug connection's command lines against the REAL kubectl client's flag parsing.

No API server can run here, so each command line runs against a kubeconfig whose server is a
closed loopback port: a command line kubectl accepts gets as far as connecting (refused), a flag
it does not know fails before that ("unknown flag"). Every flag is also looked up in the
subcommand's --help. Skipped where /usr/bin/kubectl is absent. The tests' stand-in kubectl must
reject what it does not implement, which is checked here too.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import node_debug as nd
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import lookup_argv
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.svcinfo import lookup_argv as service_lookup_argv

KUBECTL = "/usr/bin/kubectl"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
STANDIN = os.path.join(ROOT, "tests", "lab", "standin_kubectl.py")
REFUSED = "The connection to the server 127.0.0.1:9 was refused"
real = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="the real kubectl client (%s) is not installed" % KUBECTL)

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
  name: closed
contexts:
- context: {cluster: closed, user: nobody}
  name: closed
current-context: closed
users:
- name: nobody
  user: {token: not-a-token}
"""


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def plugin_argvs(kubeconfig):
    s = nd.check_settings({"node": "node-a", "cli": KUBECTL, "kubeconfig": kubeconfig, "context": "closed",
                           "namespace": "hoptrace", "image": "docker.io/library/busybox:1.36", "profile": "sysadmin",
                           "pod_timeout": 70})
    return {
        "debug": nd.create_argv(s, "hoptrace-tok"),
        "get": nd.find_argv(s),
        "label": nd.label_argv(s, "node-debugger-node-a-abcde", "sid"),
        "wait": nd.wait_argv(s, "node-debugger-node-a-abcde", 20),
        "exec": nd.exec_argv(s, "node-debugger-node-a-abcde", "echo ok"),
        "delete": nd.delete_argv(s, ["node-debugger-node-a-abcde"]),
        "delete-session": nd.delete_session_argv(s, "sid"),
        "delete-finished": nd.delete_finished_argv(s),
        # the trace role's pod lookups (plugin_utils/podinfo.py)
        "get-name": lookup_argv({"ip": None, "namespace": "default", "name": "web-0"}, s),
        "get-ip": lookup_argv({"ip": "172.17.25.239", "namespace": None, "name": None}, s),
        # a Service given by name (plugin_utils/svcinfo.py) and its backend's pod, bounded (service_names.py)
        "get-service": service_lookup_argv({"namespace": "default", "name": "web", "text": "svc/default/web"}, s),
        "get-backend": lookup_argv({"ip": "172.17.25.239", "namespace": None, "name": None}, s, 5),
    }


def run(argv, kubeconfig=None):
    env = dict(os.environ, KUBECONFIG=kubeconfig or "/nonexistent")
    return subprocess.run(argv[:1] + ["--request-timeout=2s"] + argv[1:], capture_output=True, text=True, timeout=60, env=env, check=False)


@real
@pytest.mark.parametrize("what", ["debug", "get", "label", "wait", "exec", "delete", "delete-session", "delete-finished",
                                  "get-name", "get-ip", "get-service", "get-backend"])
def test_real_kubectl_parses_the_plugins_command_line(kubeconfig, what):
    argv = plugin_argvs(kubeconfig)[what]
    proc = run(argv, kubeconfig)
    assert proc.returncode == 1
    assert "unknown flag" not in proc.stderr and "unknown shorthand" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(REFUSED), proc.stderr


@real
@pytest.mark.parametrize("what", ["debug", "get", "label", "wait", "exec", "delete", "get-name", "get-ip", "get-service",
                                  "get-backend"])
def test_every_flag_is_in_the_real_help(kubeconfig, what):
    argv = plugin_argvs(kubeconfig)[what]
    sub = argv[argv.index(what.split("-")[0])]
    helptext = subprocess.run([KUBECTL, sub, "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    helptext += subprocess.run([KUBECTL, "options"], capture_output=True, text=True, timeout=60, check=False).stdout
    known = set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)=", helptext, re.M)) | set(re.findall(r"^\s+(-\w), --", helptext, re.M))
    words = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    flags = {w.split("=", 1)[0] for w in words if w.startswith("-")}
    assert flags and flags <= known, flags - known


@real
def test_a_wrong_flag_or_profile_fails_in_the_real_client(kubeconfig):
    argv = plugin_argvs(kubeconfig)["debug"]
    bad = argv[:argv.index("--")] + ["--bogus"] + argv[argv.index("--"):]
    assert "unknown flag: --bogus" in run(bad, kubeconfig).stderr
    bad = [w.replace("--profile=sysadmin", "--profile=root") for w in argv]
    assert "unknown profile: root" in run(bad, kubeconfig).stderr


@pytest.mark.parametrize("argv, message", [
    (["get", "pods", "--namespace=x", "--output=json", "--bogus"], "unknown flag: --bogus"),
    (["get", "pods", "--output=yaml"], "get supports only --output=json"),
    (["exec", "-i", "p", "--tty", "--", "true"], "unknown flag: --tty"),
    (["debug", "node/node-a", "--image=b", "--attach=false", "--copy-to=x", "--", "sleep", "1"], "unknown flag: --copy-to"),
    (["apply", "-f", "x.yaml"], 'unknown command "apply"'),
    (["delete", "pods"], "no name was specified"),
    (["get", "services", "--field-selector=spec.clusterIP=10.96.0.1", "--output=json"], '"spec.clusterIP" is not a known field selector'),
    (["get", "services", "--selector=app=web", "--output=json"], "get services does not implement --selector"),
    (["--bogus=1", "get", "services", "--output=json"], 'unknown command "--bogus=1"'),
])
def test_the_stand_in_rejects_what_it_does_not_implement(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, STANDIN] + argv, capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, HOPTRACE_STANDIN_DIR=str(tmp_path)), check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


def test_the_stand_in_serves_the_lab_services_as_the_role_reads_them(tmp_path):
    argv = service_lookup_argv({"namespace": "default", "name": "web", "text": "svc/default/web"},
                               {"cli": STANDIN, "kubeconfig": "", "context": ""})
    proc = subprocess.run([sys.executable] + argv, capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, HOPTRACE_STANDIN_DIR=str(tmp_path)), check=False)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"], i["spec"]["clusterIP"], i["spec"]["ports"]) for i in items] == [
        ("default", "web", "10.96.10.30", [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}])]
