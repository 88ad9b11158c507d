"""Lab faults shaped like the real causes a trace must name (issue 12), for faults.py.

kinds:
  calico-deny     Felix-shaped policy chains on the node holding the destination pod, with a deny
                  rule for the flow: FORWARD -> cali-FORWARD -> cali-to-wl-dispatch (-o VETH, goto)
                  -> cali-tw-VETH (conntrack, marks, "Start of policies", the policy jump, "Return
                  if policy accepted", "Drop if no policies passed packet") -> cali-pi-_HASH, whose
                  first rule drops SRC -> DST:PORT and whose next rules accept the rest as Felix
                  does (mark 0x10000, RETURN). Chain names, marks and `cali:<hash>` comments as
                  Felix writes them; the policy chain's name is Felix's hash of tier/policy
                  (sha224, URL-safe base64, cut to 28 characters).
  reject          REJECT --reject-with icmp-admin-prohibited for SRC -> DST:PORT in FORWARD on
                  the node (the ICMP error travels back to the source pod).
  pod-route-gone  the destination pod's /32 route is removed from its node, so its block's
                  blackhole route (`blackhole 172.17.25.192/26 proto bird`, as Calico's BIRD
                  keeps it) takes the packets; undo puts the route back.
  rp-filter       strict rp_filter on the node (all and the tunnel device) and an asymmetric
                  route back to SRC: a policy rule `from DST lookup 100` whose table sends SRC
                  over the underlay NIC, unencapsulated. Requests arriving on the tunnel fail the
                  reverse path check (the kernel looks SRC up from DST); the node's plain route to
                  SRC, which the trace reads, still leads into the tunnel.
"""
import base64
import hashlib
import subprocess

KINDS = ("calico-deny", "reject", "pod-route-gone", "rp-filter")
POLICY = "default/knp.default.deny-web"


def felix_chain(prefix, name, limit=28):
    """A chain name as Felix makes it: prefix + name when it fits, else prefix + '_' + a hash of the name."""
    if len(prefix) + len(name) <= limit:
        return prefix + name
    digest = base64.urlsafe_b64encode(hashlib.sha224(name.encode()).digest()).decode().rstrip("=")
    return prefix + "_" + digest[:limit - len(prefix) - 1]


def rule_id(*parts):
    """A `cali:<16 characters>` comment id, stable for the same rule (Felix hashes each rule too)."""
    digest = base64.urlsafe_b64encode(hashlib.sha224("/".join(parts).encode()).digest()).decode()
    return "cali:%s" % digest[:16]


def _c(*parts):
    return ["-m", "comment", "--comment", rule_id(*parts)]


def _note(text):
    return ["-m", "comment", "--comment", text]


def calico_chains(veth, src, dst, port):
    """(chain names in creation order, [(chain, rule args)], the jump into cali-FORWARD) for the fault."""
    tw, pi = "cali-tw-%s" % veth, felix_chain("cali-pi-", POLICY)
    chains = ["cali-FORWARD", "cali-to-wl-dispatch", tw, pi]
    rules = [
        ("cali-FORWARD", ["-o", "cali+"] + _c("fwd", "to-wl") + ["-j", "cali-to-wl-dispatch"]),
        ("cali-to-wl-dispatch", ["-o", veth] + _c("dispatch", veth) + ["-g", tw]),
        (tw, _c(tw, "est") + ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
        (tw, _c(tw, "inv") + ["-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"]),
        (tw, _c(tw, "clr") + ["-j", "MARK", "--set-xmark", "0x0/0x10000"]),
        (tw, _c(tw, "start") + _note("Start of policies") + ["-j", "MARK", "--set-xmark", "0x0/0x20000"]),
        (tw, _c(tw, "pol") + ["-m", "mark", "--mark", "0x0/0x20000", "-j", pi]),
        (tw, _c(tw, "ret") + _note("Return if policy accepted") + ["-m", "mark", "--mark", "0x10000/0x10000", "-j", "RETURN"]),
        (tw, _c(tw, "drop") + _note("Drop if no policies passed packet") + ["-m", "mark", "--mark", "0x0/0x20000",
                                                                          "-j", "DROP"]),
        (pi, ["-s", "%s/32" % src, "-p", "tcp"] + _c(pi, "deny") + ["-m", "multiport", "--dports", str(port), "-j", "DROP"]),
        (pi, _c(pi, "allow") + ["-j", "MARK", "--set-xmark", "0x10000/0x10000"]),
        (pi, _c(pi, "ret") + ["-m", "mark", "--mark", "0x10000/0x10000", "-j", "RETURN"]),
    ]
    jump = ["FORWARD"] + _c("FORWARD", "cali") + ["-j", "cali-FORWARD"]
    return chains, rules, jump


def _ip(netns, args, check=True):
    r = subprocess.run(["ip", "-n", netns] + args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip -n %s %s: %s" % (netns, " ".join(args), r.stderr.strip()))
    return r


def _sysctl(netns, name, value=None):
    path = "/proc/sys/" + name
    if value is None:
        return subprocess.run(["ip", "netns", "exec", netns, "cat", path], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", 'echo "$1" > "$2"', "sh", str(value), path], check=True)
    return value


def record(f, state, node, iface=None, src=None, dst=None, port=None):
    """Fill the fault record ``f`` (what undo needs too), or ValueError naming what to give."""
    kind = f["kind"]
    pods = {p["ip"]: p for p in state["pods"]}
    if kind in ("calico-deny", "reject"):
        if not (src and dst and port):
            raise ValueError("%s needs --src, --dst and --port" % kind)
        pod = pods.get(dst)
        if not pod or pod["node"] != node["name"]:
            raise ValueError("%s needs --dst a pod of %s" % (kind, node["name"]))
        f.update(src=src, dst=dst, port=int(port), iface=iface or pod["veth"])
    elif kind == "pod-route-gone":
        pod = pods.get(dst)
        if not pod or pod["node"] != node["name"]:
            raise ValueError("pod-route-gone needs --dst a pod of %s" % node["name"])
        f.update(dst=dst, iface=pod["veth"])
    elif kind == "rp-filter":
        if not (src and dst and iface):
            raise ValueError("rp-filter needs --src (the pod whose packets fail the check), --dst (the pod of this node "
                             "they go to) and --iface (the tunnel device)")
        peer = next(n for n in state["nodes"] if n["name"] == pods[src]["node"])
        f.update(src=src, dst=dst, iface=iface, via=peer["ip"],
                 old={"net/ipv4/conf/all/rp_filter": _sysctl(node["netns"], "net/ipv4/conf/all/rp_filter"),
                      "net/ipv4/conf/%s/rp_filter" % iface: _sysctl(node["netns"], "net/ipv4/conf/%s/rp_filter" % iface)})
    return f


def apply(node, f, iptables, undo=False):
    """Inject (or undo) one of KINDS on ``node``; ``iptables(netns, args, check)`` runs iptables there."""
    netns, kind = node["netns"], f["kind"]
    if kind == "calico-deny":
        chains, rules, jump = calico_chains(f["iface"], f["src"], f["dst"], f["port"])
        if undo:
            iptables(netns, ["-D"] + jump, check=False)
            for chain in chains:
                iptables(netns, ["-F", chain], check=False)
            for chain in chains:
                iptables(netns, ["-X", chain], check=False)
            return
        for chain in chains:
            iptables(netns, ["-N", chain])
        for chain, args in rules:
            iptables(netns, ["-A", chain] + args)
        iptables(netns, ["-I"] + jump[:1] + ["1"] + jump[1:])
    elif kind == "reject":
        args = ["FORWARD", "-o", f["iface"], "-s", "%s/32" % f["src"], "-d", "%s/32" % f["dst"], "-p", "tcp",
                "-m", "tcp", "--dport", str(f["port"]), "-m", "comment", "--comment", "hoptrace-fault-%s" % f["id"],
                "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]
        iptables(netns, (["-D"] + args) if undo else (["-I", args[0], "1"] + args[1:]), check=not undo)
    elif kind == "pod-route-gone":
        route = ["%s/32" % f["dst"], "dev", f["iface"], "scope", "link"]
        _ip(netns, (["route", "replace"] if undo else ["route", "del"]) + route, check=not undo)
    elif kind == "rp-filter":
        route = ["%s/32" % f["src"], "via", f["via"], "dev", "eth0", "table", "100"]
        rule = ["from", "%s/32" % f["dst"], "lookup", "100", "priority", "100"]
        if undo:
            _ip(netns, ["rule", "del"] + rule, check=False)
            _ip(netns, ["route", "del"] + route, check=False)
            for name, value in f["old"].items():
                _sysctl(netns, name, value)
            return
        _ip(netns, ["route", "replace"] + route)
        _ip(netns, ["rule", "add"] + rule)
        for name in f["old"]:
            _sysctl(netns, name, 1)
