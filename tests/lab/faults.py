"""Faults the lab can inject on purpose, each undoable; recorded in .lab/faults.json.

kinds:
  drop        drop one flow at a node, interface and direction (iptables, ip6tables for IPv6 addresses, in the node's netns:
              mangle PREROUTING -i IFACE for `in`, mangle POSTROUTING -o IFACE for `out`, so
              tcpdump on IFACE still sees an ingress packet and never sees an egress one). On
              the underlay interface of an ipip/vxlan node the encapsulated packets are matched
              on their inner header with xt_u32. With `every` N, only every Nth packet the rule
              matches is dropped (xt_statistic --mode nth, the counter of each rule starting at
              the rule's insertion): an intermittent loss whose count is known in advance.
  mtu         lower an interface's MTU and drop ICMP fragmentation-needed leaving the node
              (a PMTU black hole)
  sshd-down   stop every sshd of a node, open sessions too (the node is unreachable for Ansible)
  freeze      the node stops answering: SIGSTOP every sshd of the node (listener and sessions),
              so new SSH connections and sessions over existing ControlPersist masters hang
              instead of being refused; nothing else of the node is stopped. Undo sends SIGCONT.
  ipipd-down  stop a node's userspace IPIP daemon (tunl0 loses its carrier)
  wire-drop   the underlay network drops packets on their way to a node: an nft bridge-family rule
              (root namespace, table hoptrace_wire_<node>) on the lab bridge's forward to the
              node's port (its root-side veth), so neither node's tcpdump sees the loss
              happen (the sender's eth0 saw the packet leave, the receiver's eth0 never sees it);
              --proto and --port narrow it (e.g. WireGuard's UDP 51820)
  calico-deny, reject, pod-route-gone, rp-filter: the causes a trace must name (whyfaults.py)
"""
import ipaddress
import json
import os
import signal
import subprocess
import time

import cluster
import nsutil
import whyfaults

KINDS = ("drop", "mtu", "sshd-down", "freeze", "ipipd-down", "wire-drop") + whyfaults.KINDS
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
PROTOS6 = {"tcp": 6, "udp": 17, "icmp": 58}


def _load():
    try:
        with open(cluster.FAULTS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def _save(faults):
    cluster.save_json(cluster.FAULTS, faults)


def _iptables(netns, args, check=True, v6=False):
    argv = ["ip", "netns", "exec", netns, "ip6tables" if v6 else "iptables", "-w"] + args
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.returncode == 0


def _hex(ip):
    return "0x%08x" % int(ipaddress.ip_address(ip))


def _u32(base, src, dst, proto, port):
    """xt_u32 tests on an inner IPv4 header starting at byte `base` (IHLs of 5 assumed).

    Returns one expression per alternative (u32 has no OR): inner sport==port, inner dport==port.
    """
    tests = []
    if src:
        tests.append("%d=%s" % (base + 12, _hex(src)))
    if dst:
        tests.append("%d=%s" % (base + 16, _hex(dst)))
    if proto:
        tests.append("%d&0xFF=%d" % (base + 6, PROTOS[proto]))
    if port is None:
        return ["&&".join(tests) or "0>>32=0"]
    return ["&&".join(tests + ["%d>>16=%d" % (base + 20, port)]), "&&".join(tests + ["%d&0xFFFF=%d" % (base + 20, port)])]


def _u32_v6(base, src, dst, proto, port):
    """xt_u32 tests on an inner IPv6 header at byte `base` (no extension headers): the addresses
    word by word (src at base+8, dst at base+24), next header at base+6, ports at base+40."""
    tests = []
    for at, ip in ((base + 8, src), (base + 24, dst)):
        if ip:
            raw = ipaddress.ip_address(ip).packed
            tests += ["%d=0x%s" % (at + 4 * i, raw[4 * i:4 * i + 4].hex()) for i in range(4)]
    if proto:
        tests.append("%d>>8&0xFF=%d" % (base + 4, PROTOS6[proto]))
    if port is None:
        return ["&&".join(tests) or "0>>32=0"]
    return ["&&".join(tests + ["%d>>16=%d" % (base + 40, port)]), "&&".join(tests + ["%d&0xFFFF=%d" % (base + 40, port)])]


def is_v6(*ips):
    """True when the flow's addresses are IPv6: the rules then go into ip6tables."""
    return any(ip and ipaddress.ip_address(ip).version == 6 for ip in ips)


def drop_rules(mode, iface, direction, src, dst, proto, port, every=None):
    """iptables (ip6tables for an IPv6 flow) argument lists (without -A/-D) that drop the flow at
    iface/direction.

    ``every``: drop only the Nth, 2Nth, ... packet each rule matches (the statistic match comes
    last, so its counter only counts the packets the rule's other matches let through).
    """
    if direction == "in":
        where = ["-t", "mangle", "PREROUTING", "-i", iface]
    else:
        where = ["-t", "mangle", "POSTROUTING", "-o", iface]
    rules = []
    plain = []
    v6 = is_v6(src, dst)
    if src:
        plain += ["-s", src]
    if dst:
        plain += ["-d", dst]
    if proto:
        plain += ["-p", "ipv6-icmp" if v6 and proto == "icmp" else proto]
    if port is not None:
        if proto not in ("tcp", "udp"):
            raise ValueError("--port needs --proto tcp or udp")
        plain += ["-m", "multiport", "--ports", str(port)]
    rules.append(where + plain)
    underlay = not (iface.startswith(("cali", "veth"))
                    or iface in ("tunl0", "vxlan.calico", "vxlan-v6.calico", "flannel.1", "cni0", "lo"))
    if underlay and mode == "ipip" and not v6:           # IPv6 pods are routed natively beside IPIP
        for expr in _u32(20, src, dst, proto, port):
            rules.append(where + ["-p", "4", "-m", "u32", "--u32", expr])
    if underlay and mode == "vxlan" and v6:              # vxlan-v6.calico: outer IPv6 40 + UDP 8 + VXLAN 8 + Ethernet 14
        for expr in _u32_v6(70, src, dst, proto, port):
            rules.append(where + ["-p", "udp", "--dport", "4789", "-m", "u32", "--u32", expr])
    if underlay and mode in ("vxlan", "flannel") and not v6:
        for expr in _u32(50, src, dst, proto, port):
            rules.append(where + ["-p", "udp", "--dport", "8472" if mode == "flannel" else "4789", "-m", "u32", "--u32", expr])
    if every:
        nth = ["-m", "statistic", "--mode", "nth", "--every", str(int(every)), "--packet", str(int(every) - 1)]
        rules = [rule + nth for rule in rules]
    return rules


def _rule_args(rule, op, tag):
    table, chain, rest = rule[:2], rule[2], rule[3:]
    return table + [op, chain] + rest + ["-m", "comment", "--comment", tag, "-j", "DROP"]


def _procs(node, what):
    return cluster.node_processes(node["init_pid"])[what]


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:             # gone meanwhile
            pass


def _freeze(node):
    """SIGSTOP the node's sshd processes; returns their pids.

    The listener may fork a session between listing and stopping, so list again until
    no new sshd shows up (a stopped listener forks no more).
    """
    stopped = []
    for _ in range(50):
        new = [p for p in _procs(node, "sshd") if p not in stopped]
        if not new:
            break
        _signal(new, signal.SIGSTOP)
        stopped += new
    return sorted(stopped)


def _thaw(node, pids):
    """SIGCONT the recorded pids still in the node (not a reused pid elsewhere) and every current sshd."""
    in_node = set(nsutil.pids_in_pidns(node["init_pid"]))
    _signal(sorted({p for p in pids if p in in_node} | set(_procs(node, "sshd"))), signal.SIGCONT)


def _run_in_node(node, argv):
    """Start a daemon in the node; its output goes to the node's log (a pipe would never close)."""
    with open(os.path.join(cluster.LOGS, "%s.log" % node["name"]), "ab") as logf:
        subprocess.run(cluster.nsenter_argv(node["init_pid"]) + argv, check=True, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)


def _apply(state, node, f, undo=False):
    kind = f["kind"]
    tag = "hoptrace-fault-%s" % f["id"]
    if kind == "drop":
        for rule in drop_rules(state["mode"], f["iface"], f["dir"], f.get("src"), f.get("dst"), f.get("proto"), f.get("port"),
                               f.get("every")):
            _iptables(node["netns"], _rule_args(rule, "-D" if undo else "-A", tag), check=not undo, v6=is_v6(f.get("src"), f.get("dst")))
    elif kind == "mtu":
        subprocess.run(["ip", "-n", node["netns"], "link", "set", f["iface"], "mtu", str(f["old_mtu"] if undo else f["mtu"])], check=True)
        for chain in ("OUTPUT", "FORWARD"):
            _iptables(node["netns"], ["-t", "filter", "-D" if undo else "-A", chain, "-p", "icmp", "--icmp-type", "fragmentation-needed",
                                      "-m", "comment", "--comment", tag, "-j", "DROP"], check=not undo)
    elif kind in whyfaults.KINDS:
        whyfaults.apply(node, f, _iptables, undo=undo)
    elif kind == "wire-drop":
        _wire_drop(node, f, undo)
    elif kind == "sshd-down":
        if undo:
            if not _procs(node, "sshd"):
                _run_in_node(node, [cluster.SSHD, "-f", os.path.join(cluster.LAB, "sshd_config.%s" % node["name"])])
        else:
            nsutil.kill_and_wait(_procs(node, "sshd"))
    elif kind == "freeze":
        if undo:
            _thaw(node, f.get("pids") or [])
        else:
            f["pids"] = _freeze(node)
    elif kind == "ipipd-down":
        if state["mode"] != "ipip":
            raise RuntimeError("ipipd-down needs an ipip lab")
        if undo:
            if not _procs(node, "ipipd"):
                ready = os.path.join(cluster.RUN, "ipipd.%s.ready" % node["name"])
                if os.path.exists(ready):
                    os.unlink(ready)
                _run_in_node(node, cluster.ipipd_argv(state, node, daemon=True))
                deadline = time.monotonic() + 5
                while not os.path.exists(ready) and time.monotonic() < deadline:
                    time.sleep(0.01)
        else:
            nsutil.kill_and_wait(_procs(node, "ipipd"))


def wire_table(node):
    return "hoptrace_wire_%s" % node["name"].replace("-", "_")


def wire_drop_ruleset(node, proto=None, port=None):
    """nft script (root namespace, bridge family) dropping packets the lab's bridge forwards to
    ``node`` (out of its root-side veth): IPv4 ones, or with ``--proto tcp|udp`` IPv4 and IPv6
    ones of that protocol (``meta l4proto``: a dual-stack lab's WireGuard or VXLAN over IPv6 too;
    never ICMPv6, which carries IPv6's neighbour discovery)."""
    match = ["oifname", '"%s"' % node["host_veth"]]
    if proto in ("tcp", "udp"):
        match += ["meta", "l4proto", proto]
    else:
        match += ["meta", "protocol", "ip"] + (["ip", "protocol", proto] if proto else [])
    if port is not None:
        if proto not in ("tcp", "udp"):
            raise ValueError("--port needs --proto tcp or udp")
        match += [proto, "dport", str(int(port))]
    table = wire_table(node)
    return "\n".join(["table bridge %s {" % table, "  chain forward {",
                      "    type filter hook forward priority 0; policy accept;",
                      "    %s counter drop" % " ".join(match), "  }", "}", ""])


def _wire_drop(node, f, undo):
    if undo:
        subprocess.run(["nft", "delete", "table", "bridge", wire_table(node)], capture_output=True)
        return
    r = subprocess.run(["nft", "-f", "-"], input=wire_drop_ruleset(node, f.get("proto"), f.get("port")),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nft (wire-drop on %s): %s" % (node["name"], r.stderr.strip()))


def _mtu_of(netns, iface):
    out = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "dev", iface], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["mtu"]


def add(kind, node, iface=None, direction=None, src=None, dst=None, proto=None, port=None, mtu=None, every=None):
    if kind not in KINDS:
        raise ValueError("fault kind must be one of %s" % ", ".join(KINDS))
    state, n = cluster.node_by_name(node)
    faults = _load()
    fid = "f%d" % (max([int(f["id"][1:]) for f in faults] or [0]) + 1)
    f = {"id": fid, "kind": kind, "node": node}
    if kind == "drop":
        if not iface or direction not in ("in", "out"):
            raise ValueError("drop needs --iface and --dir in|out")
        if proto == "any":
            proto = None
        if every is not None and int(every) < 2:
            raise ValueError("--every needs 2 or more (every Nth packet is dropped)")
        f.update({"iface": iface, "dir": direction, "src": src, "dst": dst, "proto": proto, "port": port,
                  "every": int(every) if every is not None else None})
    elif kind == "mtu":
        if not iface or not mtu:
            raise ValueError("mtu needs --iface and --mtu")
        f.update({"iface": iface, "mtu": int(mtu), "old_mtu": _mtu_of(n["netns"], iface)})
    elif kind in whyfaults.KINDS:
        whyfaults.record(f, state, n, iface=iface, src=src, dst=dst, port=port)
    elif kind == "wire-drop":
        if any(o["kind"] == "wire-drop" and o["node"] == node for o in faults):
            raise ValueError("%s already has a wire-drop; delete it first" % node)
        if proto == "any":
            proto = None
        wire_drop_ruleset(n, proto, port)        # checks the arguments
        f.update({"proto": proto, "port": port})
    _apply(state, n, f)
    faults.append(f)
    _save(faults)
    return f


def delete(fid, quiet=False):
    faults = _load()
    keep, gone = [], None
    for f in faults:
        if f["id"] == fid:
            gone = f
        else:
            keep.append(f)
    if gone is None:
        raise ValueError("no fault %s" % fid)
    state, n = cluster.node_by_name(gone["node"])
    _apply(state, n, gone, undo=True)
    _save(keep)
    return gone


def clear(quiet=False):
    faults = _load()
    state = cluster.load_state()
    errors = []
    for f in reversed(faults):
        if not state:
            break
        node = next((n for n in state["nodes"] if n["name"] == f["node"]), None)
        if node is None or not nsutil.is_alive(node.get("init_pid") or -1):
            continue
        try:
            _apply(state, node, f, undo=True)
        except Exception as exc:  # noqa: BLE001 - undo the others regardless
            errors.append("%s: %s" % (f["id"], exc))
    if os.path.exists(cluster.FAULTS):
        _save([])
    if errors:
        raise RuntimeError("; ".join(errors))
    return faults


def listing():
    return _load()
