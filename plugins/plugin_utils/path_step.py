# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The path step's computation, shared by the ``trace_path`` filter and the route_info action.

:func:`address_vars` reads the address variables of the candidate hosts (``hostvars[host]`` costs
Ansible about 1 ms a host, 0.5 s for a 500-host inventory, so the route_info action reads them in
a thread while the entry node answers); :func:`find_path` finds the path from the entry node's
result (``hosting.trace_path``); :func:`found_earlier` returns what the action found for the same
flow, so that the filter does not compute it a second time.
"""

from __future__ import annotations

import socket
import threading
import time

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import (
    ADDRESS_VARS,
    inventory_addresses,
    trace_path,
)
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import validate_host_folder

RESOLVE_BUDGET = 3.0
FOUND_KEY = "hoptrace_path"      # where the route_info action leaves the path in its result


def resolve_names(names, budget=RESOLVE_BUDGET):
    """``{name: [addresses]}`` for the names that resolve within ``budget`` seconds in all."""
    found = {}
    lock = threading.Lock()

    def one(name):
        try:
            infos = socket.getaddrinfo(name, None)
        except (OSError, UnicodeError):
            return
        with lock:
            found[name] = sorted({info[4][0] for info in infos})

    threads = [threading.Thread(target=one, args=(name,), daemon=True) for name in names[:256]]
    for thread in threads:
        thread.start()
    end = time.monotonic() + budget
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    with lock:
        return dict(found)


def no_lookup(names):
    """A resolver that resolves nothing (the action's: a path that needs DNS is left to the filter)."""
    return {}


def address_vars(hostvars, hosts, entry):
    """``{host: {var: value}}`` of ADDRESS_VARS for ``hosts`` and the entry (unknown hosts skipped)."""
    candidates = list(hosts or [])
    if entry not in candidates:
        candidates.append(entry)
    out = {}
    for host in candidates:
        try:
            values = hostvars[host]
        except KeyError:
            continue
        out[host] = {var: values.get(var) for var in ADDRESS_VARS}
    return out


def find_path(entry, result, flow, host_vars, resolve=resolve_names):
    """``hosting.trace_path`` for this entry and result (raises ValueError as it does, and for a path
    host whose name cannot name its folder in the run folder)."""
    path = trace_path(entry, result, flow, inventory_addresses(host_vars), resolve,
                      entry_address=(host_vars.get(entry) or {}).get("ansible_host"))
    for host in path["hosts"]:
        validate_host_folder(host)
    return path


def _same_flow(a, b):
    keys = ("src", "dst", "proto", "port")
    return isinstance(a, dict) and isinstance(b, dict) and all(str(a.get(k)) == str(b.get(k)) for k in keys)


def found_earlier(result, flow, entry):
    """The path the action left in ``result`` for this flow and entry, else None."""
    found = result.get(FOUND_KEY) if isinstance(result, dict) else None
    if not isinstance(found, dict) or found.get("entry") != entry or not _same_flow(found.get("flow"), flow):
        return None
    return found.get("path")
