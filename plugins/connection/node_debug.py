# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin: reach a Kubernetes node through a debug pod (kubectl debug node / oc debug node)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: node_debug
author:
  - hoptrace developers (@hoptrace)
version_added: 0.2.0
short_description: Reach a Kubernetes node through a debug pod, without SSH
description:
  - Runs every command on a node the way C(oc debug node/NAME) and C(nsenter -t 1 -m -u -i -n -p) do by
    hand, for clusters with no SSH to their nodes (managed OpenShift, GKE, EKS, AKS).
  - On first use in a run of C(ansible-playbook) it creates ONE debug pod on the node with
    C(kubectl debug node/NAME --image=IMAGE --profile=PROFILE --namespace=NAMESPACE --attach=false --quiet),
    or C(oc debug node/NAME --to-namespace=NAMESPACE --image=IMAGE) kept running in the background when
    O(cli) is C(oc). The pod's command is C(sleep) of O(pod_timeout) seconds, so the pod stops running by
    itself even when the controller is killed.
  - kubectl debug cannot label the pod it creates, so the command carries a unique token; the plugin finds
    the pod among C(kubectl get pods --field-selector=spec.nodeName=NAME -o json) by that token, labels it
    (C(hoptrace.k8s/session), C(hoptrace.k8s/node), C(app.kubernetes.io/managed-by=hoptrace)) with
    C(kubectl label pod), waits until it is Ready, and remembers it on the controller for the next tasks
    of the same run (a file in the controller's temporary directory).
  - Every command runs as C(kubectl exec -i POD -- nsenter -t 1 -m -u -i -n -p -- /bin/sh -c CMD), in the
    host's namespaces with the host's own python3 and tcpdump; stdin is passed (pipelining). Files go
    through the same exec (C(cat), binary safe).
  - The pods are deleted by C(meta reset_connection) and, whatever ends the run (its normal end, a
    failure, Ctrl-C or SIGKILL of ansible-playbook), by a small reaper process started with the first pod
    that waits for the controller process to end and then deletes the run's pods by label (it lives at
    most O(pod_timeout) seconds). Pods whose command already ended (a killed controller and reaper) are
    deleted by the next run in the same namespace.
  - The host needs python3 for the modules (as over SSH). The debug image needs C(/bin/sh), C(nsenter) and
    C(cat) (busybox or util-linux); the pod must be privileged with the host's PID namespace
    (C(--profile=sysadmin); C(oc debug node) pods are).
requirements:
  - kubectl (or oc) on the controller, with a kubeconfig allowed to create pods in O(namespace), exec
    into them, list, label and delete them (README, Clusters without SSH).
options:
  node:
    description:
      - The Kubernetes node name (C(kubectl get nodes)). Defaults to the host's address, C(ansible_host)
        or else its inventory name (also when a task is delegated to it).
    type: str
    vars:
      - name: hoptrace_node_debug_node
  cli:
    description:
      - The kubectl or oc command (a name on PATH or a path). A base name of C(oc) uses C(oc debug node).
    type: str
    default: kubectl
    vars:
      - name: node_access_cli
      - name: hoptrace_node_debug_cli
    env:
      - name: HOPTRACE_NODE_DEBUG_CLI
  kubeconfig:
    description:
      - The kubeconfig file (passed as C(--kubeconfig)); else kubectl's own default (C(KUBECONFIG), C(~/.kube/config)).
    type: str
    vars:
      - name: hoptrace_node_debug_kubeconfig
    env:
      - name: HOPTRACE_NODE_DEBUG_KUBECONFIG
  context:
    description:
      - The kubeconfig context (passed as C(--context)); else the current one.
    type: str
    vars:
      - name: hoptrace_node_debug_context
    env:
      - name: HOPTRACE_NODE_DEBUG_CONTEXT
  namespace:
    description:
      - The namespace of the debug pods. Privileged pods must be admitted there (Pod Security
        C(pod-security.kubernetes.io/enforce=privileged), or OpenShift's privileged SCC).
    type: str
    default: default
    vars:
      - name: hoptrace_node_debug_namespace
    env:
      - name: HOPTRACE_NODE_DEBUG_NAMESPACE
  image:
    description:
      - The debug container's image; it needs C(/bin/sh), C(nsenter) and C(cat).
    type: str
    default: docker.io/library/busybox:1.36
    vars:
      - name: hoptrace_node_debug_image
    env:
      - name: HOPTRACE_NODE_DEBUG_IMAGE
  profile:
    description:
      - The C(kubectl debug --profile); C(sysadmin) makes the pod privileged, which C(nsenter) into the
        host's mount namespace needs. Not used with C(oc).
    type: str
    default: sysadmin
    choices: [sysadmin, general, netadmin, legacy, baseline, restricted]
    vars:
      - name: hoptrace_node_debug_profile
    env:
      - name: HOPTRACE_NODE_DEBUG_PROFILE
  pod_timeout:
    description:
      - Seconds the debug pod's command runs (10-86400); the pod stops running by itself after that.
        The trace role sets it to C(deadline) + 30 (its variable C(trace_node_debug_pod_timeout)).
    type: int
    default: 300
    vars:
      - name: trace_node_debug_pod_timeout
      - name: hoptrace_node_debug_pod_timeout
    env:
      - name: HOPTRACE_NODE_DEBUG_POD_TIMEOUT
  start_timeout:
    description:
      - Seconds to wait for a new debug pod to be Ready (image pull included).
    type: int
    default: 120
    vars:
      - name: hoptrace_node_debug_start_timeout
    env:
      - name: HOPTRACE_NODE_DEBUG_START_TIMEOUT
  reaper:
    description:
      - Start the reaper process that deletes the run's pods once ansible-playbook has ended. Without
        it the pods stay until O(pod_timeout) has passed (their command ends) and the next run in the
        namespace deletes them, or C(meta reset_connection) does.
    type: bool
    default: true
    vars:
      - name: hoptrace_node_debug_reaper
    env:
      - name: HOPTRACE_NODE_DEBUG_REAPER
  pipelining:
    description:
      - Send modules on the stdin of C(kubectl exec) instead of copying them first (fewer exec calls).
    type: bool
    default: true
    vars:
      - name: ansible_pipelining
      - name: hoptrace_node_debug_pipelining
    env:
      - name: ANSIBLE_PIPELINING
"""

EXAMPLES = r"""
# inventory: nodes reached through debug pods, named as `kubectl get nodes` shows them
# [nodes]
# ip-10-0-1-17.ec2.internal ip=10.0.1.17
# ip-10-0-2-9.ec2.internal ip=10.0.2.9
# [nodes:vars]
# ansible_connection=hoptrace.k8s.node_debug
# ansible_python_interpreter=/usr/bin/python3
# hoptrace_node_debug_namespace=hoptrace
# hoptrace_node_debug_image=registry.example.com/tools/busybox:1.36

- name: Read a node's routes through a debug pod
  hosts: nodes
  gather_facts: false
  vars:
    ansible_connection: hoptrace.k8s.node_debug
  tasks:
    - name: Routes of the host (nsenter into its namespaces)
      ansible.builtin.command: ip route
      changed_when: false

    - name: Delete the debug pod now (else the run's end does)
      ansible.builtin.meta: reset_connection
"""

import fcntl
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import node_debug as nd
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

display = Display()

# seconds a kubectl call other than exec may take (get, label, delete)
_CALL_TIMEOUT = 60


class Connection(ConnectionBase):
    """A node reached through its debug pod."""

    transport = "hoptrace.k8s.node_debug"
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._settings = None
        self._pod = None

    # -- the session: one run of ansible-playbook ------------------------------------------------

    @staticmethod
    def _controller():
        """pid and start time of the ansible-playbook process: the workers' parent, or this process
        itself where the strategy runs meta tasks (reset_connection)."""
        parent = multiprocessing.parent_process()
        pid = parent.pid if parent is not None else os.getpid()
        return pid, nd.process_start(pid)

    def _session(self):
        pid, started = self._controller()
        return nd.session_id(socket.gethostname(), pid, started)

    def _state_dir(self, session):
        path = os.path.join(tempfile.gettempdir(), "hoptrace-node-debug-%d" % os.getuid(), session)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def _run(self, argv, timeout=_CALL_TIMEOUT, stdin=None):
        display.vvv("NODE_DEBUG: %s" % " ".join(argv), host=self._settings["node"] if self._settings else None)
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise AnsibleConnectionFailure("node_debug: %s was not found on the controller: install kubectl (or oc) or set "
                                           "hoptrace_node_debug_cli to its path" % argv[0]) from None
        except subprocess.TimeoutExpired:
            raise AnsibleConnectionFailure("node_debug: %s did not answer within %d s" % (" ".join(argv[:3]), timeout)) from None
        return proc

    def _check(self, argv, timeout=_CALL_TIMEOUT):
        proc = self._run(argv, timeout=timeout)
        if proc.returncode != 0:
            raise AnsibleConnectionFailure("node_debug on %s: %s" % (
                self._settings["node"], nd.describe_failure(argv, proc.returncode, to_text(proc.stderr, errors="replace"))))
        return proc

    def _start_reaper(self, state, session):
        """Once per session and namespace: a detached process that deletes the run's pods once the
        controller has ended (normally, by a failure, Ctrl-C or SIGKILL)."""
        marker = os.path.join(state, "reaper-%s" % nd.label_value(self._settings["namespace"]))
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        os.close(fd)
        # pods whose command ended in earlier runs (killed controller and reaper) are removed
        subprocess.Popen(nd.delete_finished_argv(self._settings), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        if not self.get_option("reaper"):
            return
        pid, started = self._controller()
        argv = [sys.executable, "-c", nd.REAPER, str(pid), started, str(self._settings["pod_timeout"] + 10), state]
        argv += nd.delete_session_argv(self._settings, session)
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         close_fds=True, start_new_session=True)

    def _create(self, state, session):
        settings = self._settings
        token = "hoptrace-%s-%s" % (session, uuid.uuid4().hex[:10])
        self._start_reaper(state, session)
        argv = nd.create_argv(settings, token)
        if settings["flavour"] == "oc":
            # oc debug stays attached while the pod runs and deletes it when the command ends
            with open(os.path.join(state, "oc-%s.log" % nd.label_value(settings["node"])), "ab") as log:
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, start_new_session=True)
        else:
            self._check(argv)
        deadline = time.monotonic() + self.get_option("start_timeout")
        pod = None
        while pod is None:
            proc = self._check(nd.find_argv(settings))
            try:
                pod = nd.find_pod(json.loads(to_text(proc.stdout)), token)
            except ValueError:
                raise AnsibleConnectionFailure("node_debug on %s: get pods did not return JSON" % settings["node"]) from None
            if pod is None:
                if time.monotonic() > deadline:
                    raise AnsibleConnectionFailure("node_debug on %s: the debug pod did not appear in namespace %s within %d s"
                                                   % (settings["node"], settings["namespace"], self.get_option("start_timeout")))
                time.sleep(0.5)
        self._check(nd.label_argv(settings, pod["name"], session))
        left = max(int(deadline - time.monotonic()), 1)
        self._check(nd.wait_argv(settings, pod["name"], left), timeout=left + 10)
        return pod["name"]

    def _prepare(self):
        """Settings, session and the controller file that names this node's pod."""
        try:
            options = {name: self.get_option(name) for name in (
                "node", "cli", "kubeconfig", "context", "namespace", "image", "profile", "pod_timeout")}
            options["node"] = options["node"] or self._play_context.remote_addr
            self._settings = nd.check_settings(options)
        except ValidationError as exc:
            raise AnsibleError(str(exc)) from None
        session = self._session()
        state = self._state_dir(session)
        self._record = os.path.join(state, "%s.%s.pod" % (nd.label_value(self._settings["namespace"]), nd.label_value(self._settings["node"])))
        return session, state, self._record

    def _connect(self):
        if self._connected:
            return self
        session, state, record = self._prepare()
        with open(record + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(record) as handle:
                    self._pod = handle.read().strip()
            except OSError:
                self._pod = None
            if not self._pod:
                self._pod = self._create(state, session)
                with open(record, "w") as handle:
                    handle.write(self._pod)
        self._connected = True
        return self

    # -- commands and files -----------------------------------------------------------------------

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = nd.exec_argv(self._settings, self._pod, to_text(cmd))
        display.vvv("EXEC %s" % to_text(cmd), host=self._settings["node"])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = proc.communicate(to_bytes(in_data) if in_data is not None else b"")
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._settings["node"])
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as handle:
            data = handle.read()
        argv = nd.exec_argv(self._settings, self._pod, nd.put_command(out_path))
        proc = self._run(argv, timeout=max(_CALL_TIMEOUT, len(data) // 100000), stdin=data)
        if proc.returncode != 0:
            raise AnsibleError("node_debug on %s: writing %s failed: %s" % (
                self._settings["node"], out_path, nd.describe_failure(argv, proc.returncode, to_text(proc.stderr, errors="replace"))))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._settings["node"])
        argv = nd.exec_argv(self._settings, self._pod, nd.fetch_command(in_path))
        proc = self._run(argv, timeout=600)
        if proc.returncode != 0:
            raise AnsibleError("node_debug on %s: reading %s failed: %s" % (
                self._settings["node"], in_path, nd.describe_failure(argv, proc.returncode, to_text(proc.stderr, errors="replace"))))
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as handle:
            handle.write(proc.stdout)

    # -- the end ----------------------------------------------------------------------------------

    def reset(self):
        """Delete this node's debug pod now (meta: reset_connection); the next task creates another."""
        try:
            _session, _state, record = self._prepare()
        except AnsibleError:
            return
        with open(record + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(record) as handle:
                    pod = handle.read().strip()
                os.unlink(record)
            except OSError:
                pod = None
            if pod:
                self._run(nd.delete_argv(self._settings, [pod]))
        self._pod = None
        self._connected = False

    def close(self):
        """The end of a task: the pod stays for the next task of the run (reset_connection or the
        run's reaper deletes it)."""
        self._connected = False
