# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: a command run through ``AnsibleModule.run_command`` with a time bound (node side, stdlib only).

``run_command`` has no timeout of its own: a tool that hangs (an ``iptables-save`` waiting for the xtables
lock, an ``nft`` stuck on netlink) would hold the module, and the trace, until the controller's task timeout.
:func:`run` gives it ``seconds``: a timer started when the process exists (``before_communicate_callback``)
kills it then, as the counter snapshots of ``_counters`` kill a reader still running at their deadline, and
the caller learns that it was killed, to say so in a note.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import threading

# the C locale for every tool whose output is parsed (one definition for the node-side code)
LC_ENV = {'LC_ALL': 'C', 'LANG': 'C'}


class _Killer(object):
    """Kills the process it is given once ``seconds`` pass; ``fired`` says whether it did."""

    def __init__(self, seconds):
        self.seconds, self.fired, self.timer = seconds, False, None

    def arm(self, proc):
        self.timer = threading.Timer(self.seconds, self._kill, (proc,))
        self.timer.daemon = True
        self.timer.start()

    def _kill(self, proc):
        if proc.poll() is None:
            self.fired = True
            try:
                proc.kill()
            except OSError:
                pass

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()


def run(module, argv, seconds):
    """``(rc, out, err)`` of ``argv`` (LC_ALL=C), rc None when it did not end within ``seconds`` and was killed."""
    killer = _Killer(seconds)
    try:
        rc, out, err = module.run_command(argv, environ_update=LC_ENV, before_communicate_callback=killer.arm)
    finally:
        killer.cancel()
    if killer.fired:
        return None, out, err
    return rc, out, err


def did_not_answer(tool, seconds):
    """The words for a command :func:`run` killed, as ``_counters`` says them."""
    return '%s did not answer within %g s' % (tool, seconds)
