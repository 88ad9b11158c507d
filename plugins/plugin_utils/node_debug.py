# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers of the ``hoptrace.k8s.node_debug`` connection: the kubectl/oc command lines, the
checks of its settings, the debug pod found again among ``get pods -o json``, the session id.

Nothing here runs a process (except :data:`REAPER`, a script the connection starts); every
function is unit-tested without Ansible or a cluster.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

# how the command reaches the host from the debug container (the seed article's procedure):
# the host's mount, UTS, IPC, network and PID namespaces of its PID 1
NSENTER = ("nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--")
PROFILES = ("sysadmin", "general", "netadmin", "legacy", "baseline", "restricted")
LABEL_SESSION = "hoptrace.k8s/session"
LABEL_NODE = "hoptrace.k8s/node"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "hoptrace"
# Kubernetes names: DNS-1123 subdomain (nodes, pods), DNS-1123 label (namespaces)
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.@:/-]{1,253}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def cli_flavour(cli):
    """``kubectl`` or ``oc`` for a cli setting (a command name or a path): ``oc`` when its base name
    is ``oc`` (or ``oc.exe``), else ``kubectl`` (kubectl itself, a wrapper, the tests' stand-in)."""
    base = os.path.basename(str(cli or "")).lower()
    return "oc" if base in ("oc", "oc.exe") else "kubectl"


def check_settings(settings):
    """Check the connection's settings; returns them normalised, or raises ValidationError saying
    what to fix. ``settings``: node, cli, kubeconfig, context, namespace, image, profile, pod_timeout."""
    node = str(settings.get("node") or "").strip()
    if not _SUBDOMAIN.match(node):
        raise ValidationError("node_debug: node %r is not a Kubernetes node name (lower-case letters, digits, '-' and '.'); "
                              "set ansible_host (or hoptrace_node_debug_node) to the node's name as `kubectl get nodes` shows it" % node)
    cli = str(settings.get("cli") or "kubectl").strip()
    if not cli or any(c.isspace() for c in cli) or re.search(r"[;&|$`<>*?!\\\"']", cli):
        raise ValidationError("node_debug: cli %r must be a command name or path (kubectl, oc, /usr/local/bin/kubectl)" % cli)
    namespace = str(settings.get("namespace") or "").strip()
    if not _LABEL.match(namespace):
        raise ValidationError("node_debug: namespace %r is not a Kubernetes namespace name (lower-case letters, digits and '-')" % namespace)
    image = str(settings.get("image") or "").strip()
    if not _IMAGE.match(image):
        raise ValidationError("node_debug: image %r is not an image reference (such as busybox:1.36 or "
                              "registry.example.com/tools/netshoot@sha256:...)" % image)
    profile = str(settings.get("profile") or "").strip()
    if profile not in PROFILES:
        raise ValidationError("node_debug: profile %r is not one of %s (sysadmin: nsenter into the host needs a privileged pod)"
                              % (profile, ", ".join(PROFILES)))
    context = str(settings.get("context") or "").strip()
    if context and not _CONTEXT.match(context):
        raise ValidationError("node_debug: context %r has characters a kubeconfig context name should not have" % context)
    kubeconfig = str(settings.get("kubeconfig") or "").strip()
    if kubeconfig and re.search(r"[\x00-\x1f\x7f;&|$`<>*?!\\\"']", kubeconfig):
        raise ValidationError("node_debug: kubeconfig %r has a character a path should not have" % kubeconfig)
    text = str(settings.get("pod_timeout", "")).strip()
    if isinstance(settings.get("pod_timeout"), bool) or not re.match(r"^[0-9]+$", text) or not 10 <= int(text) <= 86400:
        raise ValidationError("node_debug: pod_timeout %r is out of range: give the seconds the debug pod may live, 10-86400"
                              % settings.get("pod_timeout"))
    return {"node": node, "cli": cli, "flavour": cli_flavour(cli), "namespace": namespace, "image": image,
            "profile": profile, "context": context, "kubeconfig": kubeconfig, "pod_timeout": int(text)}


def global_args(settings):
    """The flags every call carries: kubeconfig and context when set."""
    args = []
    if settings.get("kubeconfig"):
        args.append("--kubeconfig=%s" % settings["kubeconfig"])
    if settings.get("context"):
        args.append("--context=%s" % settings["context"])
    return args


def label_value(text):
    """``text`` as a label value: at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric at both ends
    (long values keep a hash of the whole, so two long names stay apart)."""
    value = _LABEL_VALUE_BAD.sub("-", str(text))
    if len(value) > 63:
        value = value[:54] + "-" + hashlib.sha256(str(text).encode()).hexdigest()[:8]
    return value.strip("-_.") or "x"


def session_id(hostname, pid, started):
    """One controller run: its host, the ansible-playbook process id and that process's start time
    (so a reused pid is another session); a label value."""
    digest = hashlib.sha256(("%s/%s/%s" % (hostname, pid, started)).encode()).hexdigest()[:12]
    return label_value("%s-%s" % (pid, digest))


def pod_command(seconds, token):
    """The debug container's command: it ends by itself after ``seconds`` (so a pod left by a killed
    controller stops running), and carries ``token`` (as ``$0``) to be found again."""
    return ["/bin/sh", "-c", "exec sleep %d" % int(seconds), token]


def create_argv(settings, token):
    """Create the node's debug pod, detached: ``kubectl debug node/N`` (returns once the pod object
    exists) or ``oc debug node/N`` (stays attached while the pod runs; the connection starts it in
    the background, and oc deletes the pod when its command ends)."""
    command = pod_command(settings["pod_timeout"], token)
    base = [settings["cli"]] + global_args(settings)
    if settings["flavour"] == "oc":
        return base + ["debug", "node/%s" % settings["node"], "--to-namespace=%s" % settings["namespace"],
                       "--image=%s" % settings["image"], "--"] + command
    return base + ["debug", "node/%s" % settings["node"], "--image=%s" % settings["image"],
                   "--profile=%s" % settings["profile"], "--namespace=%s" % settings["namespace"],
                   "--attach=false", "--quiet", "--"] + command


def find_argv(settings):
    """List the pods on the node in the namespace, as JSON, to find the one created with a token."""
    return [settings["cli"]] + global_args(settings) + [
        "get", "pods", "--namespace=%s" % settings["namespace"],
        "--field-selector=spec.nodeName=%s" % settings["node"], "--output=json"]


def labels(session, node):
    return {LABEL_SESSION: session, LABEL_NODE: label_value(node), LABEL_MANAGED: MANAGED_BY}


def label_argv(settings, pod, session):
    """Label the debug pod (kubectl debug cannot): the session's reaper deletes by these labels."""
    return [settings["cli"]] + global_args(settings) + [
        "label", "pod", pod, "--namespace=%s" % settings["namespace"], "--overwrite"] + [
        "%s=%s" % item for item in sorted(labels(session, settings["node"]).items())]


def wait_argv(settings, pod, seconds):
    """Wait until the debug pod is Ready (its container runs)."""
    return [settings["cli"]] + global_args(settings) + [
        "wait", "--for=condition=Ready", "pod/%s" % pod, "--namespace=%s" % settings["namespace"],
        "--timeout=%ds" % int(seconds)]


def exec_argv(settings, pod, cmd):
    """Run the shell command ``cmd`` on the host: kubectl exec into the debug pod, nsenter into the
    namespaces of the host's PID 1, ``/bin/sh -c cmd`` there (stdin passed, for pipelining)."""
    return [settings["cli"]] + global_args(settings) + [
        "exec", "-i", pod, "--namespace=%s" % settings["namespace"], "--"] + list(NSENTER) + ["/bin/sh", "-c", cmd]


def put_command(path):
    """Node-side shell command writing its stdin (binary) to ``path``."""
    return "cat > %s" % shlex.quote(path)


def fetch_command(path):
    """Node-side shell command printing ``path`` (binary) on its stdout; fails when it is missing."""
    return "cat -- %s" % shlex.quote(path)


def delete_argv(settings, pods):
    """Delete the named debug pods without waiting for them to terminate."""
    return [settings["cli"]] + global_args(settings) + [
        "delete", "pod"] + list(pods) + ["--namespace=%s" % settings["namespace"], "--ignore-not-found", "--wait=false"]


def delete_session_argv(settings, session):
    """Delete every debug pod of a session (the reaper, when the controller has ended)."""
    return [settings["cli"]] + global_args(settings) + [
        "delete", "pods", "--namespace=%s" % settings["namespace"],
        "--selector=%s=%s,%s=%s" % (LABEL_SESSION, session, LABEL_MANAGED, MANAGED_BY),
        "--ignore-not-found", "--wait=false"]


def delete_finished_argv(settings):
    """Delete hoptrace's debug pods that are no longer running (left by killed controllers: their
    command ended, the pod object stays until deleted)."""
    return [settings["cli"]] + global_args(settings) + [
        "delete", "pods", "--namespace=%s" % settings["namespace"],
        "--selector=%s=%s" % (LABEL_MANAGED, MANAGED_BY),
        "--field-selector=status.phase!=Running,status.phase!=Pending", "--ignore-not-found", "--wait=false"]


def find_pod(pods, token):
    """The pod of ``get pods -o json`` (a List) whose container command carries ``token``:
    ``{name, phase}``, or None."""
    for pod in (pods or {}).get("items") or []:
        for container in (pod.get("spec") or {}).get("containers") or []:
            words = list(container.get("command") or []) + list(container.get("args") or [])
            if token in words:
                return {"name": (pod.get("metadata") or {}).get("name"), "phase": (pod.get("status") or {}).get("phase")}
    return None


def describe_failure(argv, rc, stderr):
    """One line for a failed kubectl/oc call: what ran (the command name and subcommand), its exit
    status and its last error line."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    sub = next((word for word in argv[1:] if not word.startswith("-")), "")
    return "%s %s failed (rc %s): %s" % (os.path.basename(argv[0]), sub, rc, lines[-1] if lines else "no error output")


# The reaper: started once per session and detached from the controller's process group, it waits
# until the controller process has ended (or the debug pods' own lifetime has passed), then deletes
# the session's pods. argv: controller pid, its start time (or ""), seconds to live at most, state
# directory (removed at the end), then the delete command.
REAPER = r"""
import os, shutil, subprocess, sys, time
pid, started, until, state = int(sys.argv[1]), sys.argv[2], time.time() + float(sys.argv[3]), sys.argv[4]
argv = sys.argv[5:]
def alive():
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
        return not started or fields[19] == started
    except OSError:
        try:
            os.kill(pid, 0)
            return not started
        except OSError:
            return False
while alive() and time.time() < until:
    time.sleep(0.2)
try:
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
finally:
    shutil.rmtree(state, ignore_errors=True)
"""


def process_start(pid):
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), or "" where unknown."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            return handle.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError, ValueError):
        return ""
