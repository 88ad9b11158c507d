# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open the ssh connections to the other path nodes while the controller finishes the path step.

Once the entry node's routes are read, the path is known, but the first task that contacts a
path node other than the entry (arming its captures) runs only after the controller has found
the path, planned the hops and started the second play: about 0.4 s. That node's ssh handshake
(about 0.2-0.3 s here, more across a real network) then adds to the arm step. :func:`start`
sets up, right after the entry read, the same ssh ControlMaster connection Ansible's ``ssh``
connection plugin would open for that host (the command line comes from the plugin itself,
configured from the host's variables, so the ControlPath and every option match), as a
detached ``ssh ... true``: the arm task's connection then finds the master ready.

Best effort only, and only for hosts using the ``ssh`` connection with ControlPersist (the
default): anything that goes wrong here (another connection plugin, a password prompt, an
unreachable node) is left to the task that contacts the node, which behaves exactly as without
this. Nothing runs on the node but ``true``; the master ends after ControlPersist as Ansible's
own do.
"""

from __future__ import annotations

import os
import subprocess

from ansible.utils.display import Display

display = Display()

SSH_TYPES = ("ssh", "smart", "ansible.builtin.ssh", "ansible.legacy.ssh")


def _host_variables(hostvars, host):
    try:
        values = hostvars[host]
    except KeyError:
        return None
    return dict(values, inventory_hostname=host)


def ssh_command(task, play_context, templar, hostvars, host):
    """The argv (bytes) of ``ssh ... true`` as Ansible would run it for ``host``, or None."""
    from ansible.plugins.loader import connection_loader

    variables = _host_variables(hostvars, host)
    if variables is None:
        return None
    kind = variables.get("ansible_connection") or play_context.connection or "ssh"
    if kind not in SSH_TYPES:
        return None
    task = task.copy(exclude_parent=True, exclude_tasks=True)
    task.delegate_to = None                 # the task reads the entry node; this is for ``host``
    context = play_context.set_task_and_variable_override(task=task, variables=variables, templar=templar)
    if not context.remote_addr:
        context.remote_addr = variables.get("ansible_host") or host
    if context.password or (context.private_key_file and "ansible_ssh_pass" in variables):
        return None                                 # an sshpass prompt: not worth it in the background
    connection = connection_loader.get("ssh", context, None)
    if connection is None:
        return None
    connection.set_options(task_keys={"timeout": context.timeout},
                           var_options=connection._resolve_option_variables(variables, templar))
    if connection.get_option("password"):
        return None
    argv = connection._build_command(connection.get_option("ssh_executable"), "ssh", connection.host, "true")
    if not any(b"ControlPersist" in arg for arg in argv):
        return None                                 # no master would outlive this command
    return argv


def start(task, play_context, templar, hostvars, hosts):
    """Start ``ssh ... true`` for each of ``hosts``, detached; returns the hosts it started for."""
    started = []
    for host in hosts:
        try:
            argv = ssh_command(task, play_context, templar, hostvars, host)
            if not argv:
                continue
            display.vvv("hoptrace: opening the ssh connection to %s ahead of its first task" % host, host=host)
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True, env=dict(os.environ))
            started.append(host)
        except Exception as exc:  # noqa: BLE001 - best effort: the arm task connects as always
            display.vvv("hoptrace: no connection ahead to %s: %s" % (host, exc), host=host)
    return started
