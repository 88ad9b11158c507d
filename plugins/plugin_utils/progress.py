# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-line progress messages the ``trace_report`` callback prints on a trace's long steps.

Pure functions over plain values, so that their words are tested without Ansible; the callback
keeps the state (which step runs, the counts per node) and calls these.
"""

from __future__ import annotations

TRUE = ("1", "true", "yes", "on", "y", "t")


def truthy(value):
    """A yes/no extra var as Ansible's bool filter reads it (``-e quiet=true`` gives the string "true")."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE if value is not None else False


def size(nbytes):
    """Bytes in words: '812 B', '4.1 kB', '2.1 MB' (powers of 1000, like ls -h --si)."""
    nbytes = int(nbytes or 0)
    if nbytes < 1000:
        return "%d B" % nbytes
    for unit in ("kB", "MB", "GB"):
        nbytes /= 1000.0
        if nbytes < 1000 or unit == "GB":
            return "%.1f %s" % (nbytes, unit)
    return "%.1f GB" % nbytes      # not reached


def _per_node(counts):
    return ", ".join("%s: %d" % (node, n) for node, n in sorted(counts))


def read_line(node, entry=False):
    return "read %s%s" % (node, " (entry)" if entry else "")


def unread_line(node, why):
    return "could not read %s (entry candidate): %s" % (node, why)


def armed_line(counts):
    """``counts``: [(node, captures armed)]; the nodes are named in order."""
    total = sum(n for _node, n in counts)
    return "captures armed on %d hop%s (%s)" % (total, "" if total == 1 else "s", _per_node(counts))


def probe_line(run, count=1, interval=None):
    """'probing 172.17.25.79 -> 172.17.25.239 tcp/443', with ', 20 probes 0.05 s apart' in repeat mode."""
    run = run or {}
    proto = str(run.get("proto") or "tcp")
    what = "%s/%s" % (proto, run["port"]) if run.get("port") and proto != "icmp" else proto
    line = "probing %s -> %s %s" % (run.get("src") or "?", run.get("dst") or "?", what)
    if count and int(count) > 1:
        line += ", %d probes %g s apart" % (int(count), float(interval if interval is not None else 0.2))
    return line


def capturing_line(elapsed, duration):
    return "capturing %d/%d s" % (min(int(elapsed), int(duration)), int(duration))


def fetched_line(counts, nbytes):
    """``counts``: [(node, files)] of the capture files brought back; ``nbytes`` their total size."""
    total = sum(n for _node, n in counts)
    return "fetched %d file%s, %s (%s)" % (total, "" if total == 1 else "s", size(nbytes), _per_node(counts))


def run_folder_line(run_dir):
    return "run folder: %s" % run_dir


def tick_seconds(duration):
    """How often the passive capture says how far it is: every 2 s up to 20 s, then every 5 s."""
    return 2.0 if float(duration) <= 20 else 5.0
