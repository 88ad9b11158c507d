# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""connect_ahead: the background ``ssh ... true`` is Ansible's own command line for that host (so
the arm task's connection finds the master), and nothing starts where it would not help."""

import os
import subprocess

import pytest

from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.connection.ssh import Connection as SshConnection
from ansible.template import Templar
from ansible.parsing.dataloader import DataLoader

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import connect_ahead


def _task():
    task = Task()
    task.delegate_to = "node-a"         # the route_info task reads the entry node, not the host below
    return task


def _argv(hostvars, host="node-b"):
    return connect_ahead.ssh_command(_task(), PlayContext(), Templar(loader=DataLoader()), hostvars, host)


def test_the_command_is_ansibles_for_the_host_not_the_delegated_entry(tmp_path):
    hostvars = {"node-b": {"ansible_host": "10.240.0.9", "ansible_user": "alice", "ansible_port": 2222,
                           "ansible_control_path_dir": str(tmp_path),
                           "ansible_ssh_common_args": "-F /etc/lab/ssh_config"}}
    argv = [a.decode() for a in _argv(hostvars)]
    assert argv[0] == "ssh" and argv[-2:] == ["10.240.0.9", "true"]
    assert "ControlMaster=auto" in argv and "ControlPersist=60s" in argv
    assert 'User="alice"' in argv and "Port=2222" in argv
    assert "-F" in argv and argv[argv.index("-F") + 1] == "/etc/lab/ssh_config"
    # the same socket the ssh connection plugin computes for this host, port and user
    control = SshConnection._create_control_path("10.240.0.9", 2222, "alice") % {"directory": str(tmp_path)}
    assert 'ControlPath="%s"' % control in argv


def test_the_host_name_is_the_address_without_ansible_host(tmp_path):
    argv = [a.decode() for a in _argv({"node-b": {"ansible_control_path_dir": str(tmp_path)}})]
    assert argv[-2:] == ["node-b", "true"]


@pytest.mark.parametrize("extra", [
    {"ansible_connection": "local"},
    {"ansible_connection": "hoptrace.k8s.node_debug"},
    {"ansible_password": "secret"},
    {"ansible_ssh_args": "-o ControlMaster=no"},      # no ControlPersist: no master outlives `true`
])
def test_no_command_where_a_master_would_not_help_or_would_prompt(tmp_path, extra):
    hostvars = {"node-b": dict({"ansible_host": "10.240.0.9", "ansible_control_path_dir": str(tmp_path)}, **extra)}
    assert _argv(hostvars) is None


def test_an_unknown_host_is_skipped():
    assert _argv({}, host="node-x") is None


def test_start_runs_detached_and_reports_the_hosts_it_started(tmp_path, monkeypatch):
    started = []

    class Popen(object):
        def __init__(self, argv, **kwargs):
            started.append((argv, kwargs))

    monkeypatch.setattr(subprocess, "Popen", Popen)
    hostvars = {"node-b": {"ansible_host": "10.240.0.9", "ansible_control_path_dir": str(tmp_path)},
                "node-c": {"ansible_connection": "local"}}
    hosts = connect_ahead.start(_task(), PlayContext(), Templar(loader=DataLoader()), hostvars, ["node-b", "node-c", "node-x"])
    assert hosts == ["node-b"]
    (argv, kwargs), = started
    assert argv[-2:] == [b"10.240.0.9", b"true"]
    assert kwargs["start_new_session"] is True and kwargs["stdin"] == subprocess.DEVNULL
    assert kwargs["stdout"] == subprocess.DEVNULL and kwargs["stderr"] == subprocess.DEVNULL
    assert os.listdir(str(tmp_path)) == []            # nothing ran: no socket was made
