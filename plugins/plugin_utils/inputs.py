# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every input of a trace checked at once, on the controller, before anything runs on a node.

One pure function, so that the role needs one controller task for all of it (each Ansible task
costs about 0.05-0.1 s; the checks themselves cost microseconds): the numbers and their ranges,
src and dst (pod IP or ``namespace/pod``; dst also ``svc/namespace/service``), the flow when both are IPs, the group of the cluster's
nodes, the entry node named with ``via``, and the per-step timeout derived from ``deadline``.
"""

from __future__ import annotations

import os
import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import node_group
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podref import pod_ref, service_ref
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.svcinfo import check_port_choice
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_flow

# name, low, high: whole numbers a user may give with -e
RANGES = (
    ("deadline", 5, 3600),
    ("duration", 1, 3600),
    ("snaplen", 64, 262144),
    ("probe_timeout", 1, 300),
    ("entry_tries", 1, 20),
    ("count", 1, 1000),
)
# numbers that may have a fraction (a user writes interval=0.2, max_loss=2.5)
FRACTIONS = (
    ("interval", 0, 60),
    ("max_loss", 0, 100),
)
MODES = ("probe", "passive")
# how the nodes are reached: ssh (the inventory), or debug pods (hoptrace.k8s.node_debug) on the
# nodes the Kubernetes API says host the pods
NODE_ACCESS = ("ssh", "kubectl", "oc")
API_GROUP = "hoptrace_api_nodes"
PROBE_SIZES = ("small", "max")     # max: an ICMP echo or UDP datagram as large as the pod route's MTU, DF set
# yes/no settings, spelled as Ansible's bool filter and argument specs accept them
BOOLEANS = {"keep_captures": False, "snapshot": True}     # name: when left out
_TRUE, _FALSE = ("1", "true", "yes", "on", "y", "t"), ("0", "false", "no", "off", "n", "f", "")
OPTIONAL = {"count": 1, "interval": 0.2, "max_loss": 0}    # repeat mode: one probe unless asked
_WHOLE = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_SHOWN = 8
DEFAULT_PORT = 443      # port left out: 443, except for a Service by name (its only port)


def check_number(name, value, low, high):
    """``value`` as an int in ``low..high`` ("60" is accepted), or ValidationError naming the range."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not _WHOLE.match(text) or not low <= int(text) <= high:
        raise ValidationError("%s %s is out of range: give an integer %d-%d" % (name, value, low, high))
    return int(text)


def check_fraction(name, value, low, high):
    """``value`` as a float in ``low..high`` ("0.2", ".5", "3" are accepted; no sign, exponent, inf or nan)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not _DECIMAL.match(text) or not low <= float(text) <= high:
        raise ValidationError("%s %s is out of range: give a number %g-%g (fractions such as 0.2 are fine)" % (name, value, low, high))
    return float(text)


def check_repeat(numbers, mode):
    """The probes must end before the captures do: count x interval + probe_timeout <= deadline."""
    if mode != "probe":
        return
    total = numbers["count"] * numbers["interval"] + numbers["probe_timeout"]
    if total > numbers["deadline"]:
        raise ValidationError(
            "count %d x interval %g s + probe_timeout %d s takes up to %g s, longer than deadline %d s (when the captures end): "
            "lower count or interval, or raise deadline (up to 3600)"
            % (numbers["count"], numbers["interval"], numbers["probe_timeout"], total, numbers["deadline"]))


_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f;&|$`<>*?!\\\"']")


def check_junit(value):
    """``junit``: a controller file path for a copy of junit.xml, or empty; returns it absolute, or "".

    No shell metacharacters, quotes or control characters (newlines); not a directory; its directory
    must exist and be writable, so that a typo fails before anything runs on a node.
    """
    text = "" if value is None else str(value)
    if not text.strip():
        return ""
    if _UNSAFE_PATH.search(text):
        raise ValidationError("junit %r has a character a path should not have (shell metacharacters, quotes, "
                              "control characters or newlines): give a plain file path such as reports/hoptrace.xml" % text)
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        raise ValidationError("junit %s is a directory: give a file path such as %s" % (text, os.path.join(text, "junit.xml")))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ValidationError("junit %s: directory %s does not exist on the controller; create it or give another path" % (text, parent))
    if not os.access(parent, os.W_OK):
        raise ValidationError("junit %s: directory %s is not writable; give another path" % (text, parent))
    return path


def check_bool(name, value):
    """``value`` as a bool (true/false, yes/no, on/off, 1/0), or ValidationError naming the spellings."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValidationError("%s %r is not a yes/no value: give true or false" % (name, value))


def check_probe_size(value, mode, proto, count):
    """``probe_size``: small (the default) or max - one ICMP echo or UDP datagram filling the MTU, with DF."""
    size = str(value or "small").strip().lower()
    if size not in PROBE_SIZES:
        raise ValidationError("probe_size %r is not supported; use small (the default) or max" % (value,))
    if size == "max" and (mode != "probe" or str(proto or "tcp").lower() not in ("icmp", "udp") or count != 1):
        raise ValidationError("probe_size=max sends one ICMP echo or UDP datagram as large as the MTU: give proto=icmp "
                              "or proto=udp, mode probe and count 1 (a TCP SYN carries no payload)")
    return size


_CLI_BAD = re.compile(r"[\s;&|$`<>*?!\\\"']")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.@:/-]{1,253}$")


def check_node_access(settings):
    """``node_access`` (ssh, kubectl or oc) and the cluster access settings used for pod names and
    debug pods: ``cli`` (kubectl or oc by name or path; empty: the node_access's own), ``kubeconfig``
    (a path) and ``context`` (a kubeconfig context name), empty when not given."""
    access = str(settings.get("node_access") or "ssh").strip()
    if access not in NODE_ACCESS:
        raise ValidationError("node_access %r is not supported; use one of %s (ssh: the inventory's nodes over SSH; "
                              "kubectl or oc: debug pods on the nodes the API names)" % (settings.get("node_access"), ", ".join(NODE_ACCESS)))
    cli = str(settings.get("cli") or "").strip() or ("oc" if access == "oc" else "kubectl")
    if _CLI_BAD.search(cli):
        raise ValidationError("node_access_cli %r must be a command name or path, such as kubectl, oc or /usr/local/bin/kubectl" % cli)
    kubeconfig = str(settings.get("kubeconfig") or "").strip()
    if kubeconfig and _UNSAFE_PATH.search(kubeconfig):
        raise ValidationError("kubeconfig %r has a character a path should not have (shell metacharacters, quotes, "
                              "control characters or newlines)" % kubeconfig)
    context = str(settings.get("context") or "").strip()
    if context and not _CONTEXT.match(context):
        raise ValidationError("context %r is not a kubeconfig context name (letters, digits, '_', '.', '@', ':', '/', '-')" % context)
    return {"node_access": access, "cli": cli, "kubeconfig": kubeconfig, "context": context}


def check_service(settings):
    """dst as a Service name (``svc/namespace/name``): ``{namespace, name, text, port}`` (``port``: the
    number or port name given, "" for the Service's only port), None for a pod or an IP."""
    src = settings.get("src")
    if isinstance(src, str):
        service_ref(src.strip(), "src")         # a Service as src is refused with what to give instead
    dst = settings.get("dst")
    service = service_ref(dst.strip(), "dst") if isinstance(dst, str) else None
    if service is None:
        return None
    proto = str(settings.get("proto") or "tcp").strip().lower()
    if proto not in ("tcp", "udp"):
        raise ValidationError("dst %s: a Service is traced on one of its ports with proto tcp or udp (kube-proxy "
                              "translates ports, not ICMP); give proto=tcp or proto=udp" % service["text"])
    return dict(service, port=check_port_choice(settings.get("port")))


def step_timeout(deadline):
    """Seconds every remote step (and the ssh connection inside it) may take: deadline/4 in 5..30."""
    return min(max(int(deadline) // 4, 5), 30)


def check_inputs(settings, groups):
    """Check one trace's settings; returns what the role needs next.

    :arg settings: ``src``, ``dst``, ``proto``, ``port``, ``mode``, the numbers of :data:`RANGES` and
        :data:`FRACTIONS` (``count``, ``interval`` and ``max_loss`` may be left out: 1, 0.2, 0),
        ``nodes`` (a group name or empty), ``via`` (a host name or empty) and ``junit`` (a controller
        file path or empty, see :func:`check_junit`; ``junit`` in the result is it made absolute),
        the yes/no settings of :data:`BOOLEANS` (``keep_captures``, left out: false; ``snapshot``, left out: true), ``probe_size``
        (:data:`PROBE_SIZES`; left out: small) and ``node_access``, ``cli``, ``kubeconfig``, ``context``
        (see :func:`check_node_access`; left out: ssh and kubectl's own defaults).
    :arg groups: the inventory's ``{group: [hosts]}`` (Ansible's ``groups``).
    :returns: ``{numbers, flags, src_ref, dst_ref, unresolved, flow, cluster, step_timeout, junit, probe_size, access,
        service, port, names}`` (``flags``: the yes/no settings as bools); ``flow``
        is the validated flow when src and dst are IPs, else None and ``unresolved`` lists the
        pods' ``{what, ref}`` that need the Kubernetes API; ``service`` is dst as a Service name
        (:func:`check_service`) or None; ``port`` the port to trace when dst is not a Service name
        (left out: :data:`DEFAULT_PORT`); ``names``: whether this run reads the Kubernetes API (and so
        names the backend pod of a Service too).
    :raises ValidationError: (or :class:`~hosting.PathError`, also a ValueError) saying what to fix.
    """
    numbers = {name: check_number(name, settings.get(name, OPTIONAL.get(name)), low, high) for name, low, high in RANGES}
    numbers.update((name, check_fraction(name, settings.get(name, OPTIONAL[name]), low, high)) for name, low, high in FRACTIONS)
    mode = str(settings.get("mode") or "").strip()
    if mode not in MODES:
        raise ValidationError("mode %r is not supported; use one of %s" % (settings.get("mode"), ", ".join(MODES)))
    check_repeat(numbers, mode)
    probe_size = check_probe_size(settings.get("probe_size"), mode, settings.get("proto"), numbers["count"])
    flags = {name: check_bool(name, settings.get(name, default)) for name, default in BOOLEANS.items()}
    service = check_service(settings)
    port = settings.get("port")
    if service is None and (port is None or str(port).strip() == ""):
        port = DEFAULT_PORT
    refs = {what: pod_ref(settings.get(what), what) for what in ("src", "dst") if not (what == "dst" and service)}
    if service:
        refs["dst"] = {"ip": None, "namespace": service["namespace"], "name": service["name"]}
    access = check_node_access(settings)
    api_nodes = access["node_access"] != "ssh"
    # through the API, the pods of IPs are looked up too: they name the nodes to reach
    unresolved = [{"what": what, "ref": refs[what]} for what in ("src", "dst")
                  if (refs[what]["ip"] is None or api_nodes) and not (what == "dst" and service)]
    flow = None
    if refs["src"]["ip"] is not None and refs["dst"]["ip"] is not None:
        flow = validate_flow(refs["src"]["ip"], refs["dst"]["ip"], settings.get("proto", "tcp"), port)
    if unresolved or service:
        flow = None
    if api_nodes:
        # filled once the pods are resolved (resolve.yml adds their nodes to this group)
        cluster = {"name": API_GROUP, "hosts": [], "how": "the nodes hosting the pods, from the Kubernetes API"}
    else:
        cluster = node_group(groups, settings.get("nodes") or "")
    via = settings.get("via") or ""
    if via and api_nodes:
        raise ValidationError("via %s: with node_access=%s the entry node is the source pod's node; leave via out" % (via, access["node_access"]))
    if via and via not in (groups.get("all") or []):
        hosts = cluster["hosts"]
        raise ValidationError(
            "via %s is not a host of this inventory; name a node of the cluster (one of %s%s)"
            % (via, ", ".join(hosts[:_SHOWN]), " ..." if len(hosts) > _SHOWN else "")
        )
    return {
        "numbers": numbers,
        "flags": flags,
        "src_ref": refs["src"],
        "dst_ref": refs["dst"],
        "unresolved": unresolved,
        "flow": flow,
        "cluster": cluster,
        "step_timeout": step_timeout(numbers["deadline"]),
        "junit": check_junit(settings.get("junit")),
        "probe_size": probe_size,
        "access": access,
        "service": service,
        "port": port,
        # the Kubernetes API is used in this run (names given, or debug pods): the backend pod is named too
        "names": bool(unresolved or service),
    }
