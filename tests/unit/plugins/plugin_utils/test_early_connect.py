# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""early_connect: the connection opens in a thread while the module is built, and its failure is the task's."""

import threading

import pytest

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.early_connect import EarlyConnect


class Connection(object):
    """Records the commands; ``gate`` holds the first one until the test lets it go."""

    def __init__(self, fail=None):
        self.calls, self.fail, self.gate, self.threads = [], fail, threading.Event(), []

    def exec_command(self, cmd, in_data=None, sudoable=True):
        self.threads.append(threading.current_thread().name)
        self.gate.wait(10)
        self.calls.append((cmd, sudoable))
        if self.fail:
            raise self.fail
        return 0, b"", b""


def test_true_runs_in_its_own_thread_and_wait_waits_for_it():
    conn = Connection()
    early = EarlyConnect(conn)
    early.start()
    early.start()                       # once only
    assert conn.calls == []             # held at the gate: start() did not wait
    conn.gate.set()
    early.wait()
    assert conn.calls == [("true", False)] and conn.threads == ["hoptrace-connect"]
    early.wait()                        # again: nothing more


def test_an_unreachable_node_fails_the_task_once_with_the_same_error():
    conn = Connection(fail=AnsibleConnectionFailure("ssh: connect to host 10.240.0.9 port 22: Connection refused"))
    conn.gate.set()
    early = EarlyConnect(conn)
    early.start()
    with pytest.raises(AnsibleConnectionFailure, match="Connection refused"):
        early.wait()
    early.wait()                        # the task's own command reports anything after that


def test_another_error_is_left_to_the_task_own_command():
    conn = Connection(fail=RuntimeError("the plugin cannot run true"))
    conn.gate.set()
    early = EarlyConnect(conn)
    early.start()
    early.wait()
    assert conn.calls == [("true", False)]


def test_wait_without_start_does_nothing():
    EarlyConnect(Connection()).wait()


class _Base(object):
    """The part of ActionBase the mix-in relies on: _execute_module builds, then runs a command."""

    def __init__(self, connection, log):
        self._connection, self.log = connection, log

    def _execute_module(self, module, module_args=None, task_vars=None):
        self.log.append(("build", module, sorted(module_args)))
        self._low_level_execute_command("python3 -c ...")
        return {"ok": True}

    def _low_level_execute_command(self, cmd, **kwargs):
        self.log.append(("command", cmd, list(self._connection.calls)))
        return {}


def test_the_mixin_opens_the_connection_before_the_module_command_and_keeps_prebuild_off_the_node():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.overlap import OverlapMixin

    class Action(OverlapMixin, _Base):
        pass

    conn, log = Connection(), []
    conn.gate.set()
    action = Action(conn, log)
    result = action._execute_overlapped("hoptrace.k8s.route_info", {"ip": "172.17.25.239", "prebuild": []}, {},
                                        connect_early=True)
    assert result == {"ok": True}
    # prebuild never reaches the module's arguments; the module's command runs once `true` has
    assert log == [("build", "hoptrace.k8s.route_info", ["ip"]), ("command", "python3 -c ...", [("true", False)])]
