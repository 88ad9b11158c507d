# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open the connection to a node while the controller builds the module for it.

A task's first contact with a node goes: build the module's payload on the controller (about
0.2 s of CPU the first time a run uses it), then open the connection (an ssh handshake: about
0.3 s, more across a real network), then run. The two do not depend on each other: an action
plugin calls :meth:`EarlyConnect.start` first, which runs ``true`` on the node in a thread
(with ssh's ControlMaster this sets up the shared connection the module then uses; other
connection plugins do their own set-up in it), and :meth:`EarlyConnect.wait` before its first
command, so the connection object is never used by two threads at once.

A node that cannot be reached fails in the thread; :meth:`wait` raises that same failure, so the
task reports the node unreachable after one connection timeout, not two.
"""

from __future__ import annotations

import threading

from ansible.errors import AnsibleConnectionFailure
from ansible.utils.display import Display

display = Display()


class EarlyConnect(object):
    """``true`` on the node through ``connection``, in a thread, from :meth:`start` to :meth:`wait`."""

    def __init__(self, connection):
        self.connection, self.thread, self.error = connection, None, None

    def start(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self._connect, name="hoptrace-connect", daemon=True)
            self.thread.start()

    def _connect(self):
        try:
            self.connection.exec_command("true", sudoable=False)
        except AnsibleConnectionFailure as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - the task's own command reports whatever else is wrong
            display.debug("hoptrace early connect: %s" % exc)

    def wait(self):
        """Wait for the connection; raise the failure that made it impossible (once)."""
        if self.thread is not None:
            self.thread.join()
        error, self.error = self.error, None
        if error is not None:
            raise error
