"""Build, tear down and inspect the lab cluster (see docs/internals.md, "The lab").

Everything the lab makes is named so that `down()` can find it without the state file:
netns `ht-node-*` / `ht-pod-*`, root links `htbr0` / `ht-node-*`, node PID 1 processes
running `nodeinit.py`.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import flannel
import ipv6 as lab6
import nsutil
import topology
import wireguard

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(ROOT, ".lab")
RUN = os.path.join(LAB, "run")
LOGS = os.path.join(LAB, "logs")
STATE = os.path.join(LAB, "state.json")
FAULTS = os.path.join(LAB, "faults.json")
INVENTORY = os.path.join(LAB, "inventory.ini")
SSH_CONFIG = os.path.join(LAB, "ssh_config")
# Ansible's ssh multiplexing sockets for the lab: a master left from a lab that was rebuilt
# would hang every later connection, so they live here and `down` ends them.
CONTROL_DIR = os.path.join(LAB, "cp")
PODS_JSON = os.path.join(LAB, "pods.json")
CLIENT_KEY = os.path.join(LAB, "id_ed25519")
HOST_KEY = os.path.join(LAB, "ssh_host_ed25519_key")
TLS_CERT = os.path.join(LAB, "tls.crt")
TLS_KEY = os.path.join(LAB, "tls.key")
SSHD = "/usr/sbin/sshd"
# node-side daemons run on the system python (stdlib only): the venv's interpreter may live under
# /root, which every node hides behind its own home
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else os.path.realpath(sys.executable)
BRNF = "net/bridge/bridge-nf-call-iptables"
BRNF6 = "net/bridge/bridge-nf-call-ip6tables"
PRIVSEP = "/run/sshd"
NETNS_PREFIXES = (topology.PREFIX + "node-", topology.PREFIX + "pod-")


def log(msg):
    sys.stderr.write(msg + "\n")


# ---------------------------------------------------------------- assets
def ensure_assets():
    """Keys and certificate, made once and kept in .lab/ (down keeps them)."""
    for d in (LAB, RUN, LOGS):
        os.makedirs(d, exist_ok=True)
    os.chmod(LAB, 0o700)
    procs = []
    if not os.path.exists(CLIENT_KEY):
        procs.append(subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hoptrace-lab", "-f", CLIENT_KEY]))
    if not os.path.exists(HOST_KEY):
        procs.append(subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hoptrace-lab-host", "-f", HOST_KEY]))
    if not os.path.exists(TLS_CERT):
        procs.append(subprocess.Popen(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", TLS_KEY, "-out", TLS_CERT, "-days", "3650", "-subj", "/CN=hoptrace-lab"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("generating lab keys failed: %s" % p.args)
    shutil.copyfile(CLIENT_KEY + ".pub", os.path.join(LAB, "authorized_keys"))


def sshd_config(node):
    path = os.path.join(LAB, "sshd_config.%s" % node["name"])
    with open(path, "w") as f:
        f.write("\n".join([
            "ListenAddress %s:22" % node["ip"],
            "HostKey %s" % HOST_KEY,
            "PidFile %s" % os.path.join(RUN, "sshd.%s.pid" % node["name"]),
            "AuthorizedKeysFile %s" % os.path.join(LAB, "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
            "",
        ]))
    return path


def write_client_files(cluster):
    nodes = cluster["nodes"]
    with open(SSH_CONFIG, "w") as f:
        for n in nodes:
            f.write("Host %s\n  HostName %s\n" % (n["name"], n["ip"]))
        f.write("\n".join([
            "Host node-* 10.240.*",
            "  User root",
            "  IdentityFile %s" % CLIENT_KEY,
            "  IdentitiesOnly yes",
            "  UserKnownHostsFile /dev/null",
            "  StrictHostKeyChecking no",
            "  LogLevel ERROR",
            "  ConnectTimeout 5",
            "",
        ]))
    with open(INVENTORY, "w") as f:
        f.write("[nodes]\n")
        for n in nodes:
            f.write("%s ansible_host=%s%s\n" % (n["name"], n["ip"], " ip6=%s" % n["ip6"] if n.get("ip6") else ""))
        f.write("\n[nodes:vars]\n")
        f.write("ansible_user=root\n")
        f.write("ansible_ssh_private_key_file=%s\n" % CLIENT_KEY)
        f.write("ansible_ssh_common_args=-F %s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no\n" % SSH_CONFIG)
        f.write("ansible_python_interpreter=/usr/bin/python3\n")
        f.write("ansible_control_path_dir=%s\n" % CONTROL_DIR)
    with open(PODS_JSON, "w") as f:
        json.dump(cluster["pods"], f, indent=1)
        f.write("\n")


def load_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- up
def _mode_mtu(mode):
    return {"ipip": topology.IPIP_MTU, "vxlan": topology.VXLAN_MTU, "flannel": flannel.MTU,
            "wireguard": topology.WIREGUARD_MTU}.get(mode, 1500)


def _root_create(cluster):
    lines = ["link add %s type bridge" % topology.BRIDGE]
    for n in cluster["nodes"]:
        lines.append("netns add %s" % n["netns"])
    for p in cluster["pods"]:
        lines.append("netns add %s" % p["netns"])
    for n in cluster["nodes"]:
        lines.append("link add %s type veth peer name eth0 netns %s" % (n["host_veth"], n["netns"]))
    nodes = {n["name"]: n for n in cluster["nodes"]}
    mtu = _mode_mtu(cluster["mode"])
    if cluster.get("ipv6"):
        mtu = lab6.pod_mtu(cluster["mode"], mtu)
    for p in cluster["pods"]:
        lines.append("link add %s mtu %d netns %s type veth peer name eth0 mtu %d netns %s"
                     % (p["veth"], mtu, nodes[p["node"]]["netns"], mtu, p["netns"]))
    return lines


def _sysctls(cluster, saved):
    """Per-namespace sysctls and tx checksum offload off (in-process setns, fast)."""
    val = nsutil.read_sysctl(BRNF)
    if val is not None:
        saved[BRNF] = val
        nsutil.sysctl(BRNF, 0)        # bridged lab frames must not go through the host's FORWARD chain
    v6 = bool(cluster.get("ipv6"))
    val = nsutil.read_sysctl(BRNF6) if v6 else None
    if val is not None:
        saved[BRNF6] = val
        nsutil.sysctl(BRNF6, 0)
    for name in [topology.BRIDGE] + [n["host_veth"] for n in cluster["nodes"]]:
        nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % name, 1)
    for n in cluster["nodes"]:
        nsutil.tx_csum_off(n["host_veth"])
    by_node = {}
    for p in cluster["pods"]:
        by_node.setdefault(p["node"], []).append(p)
    for n in cluster["nodes"]:
        with nsutil.netns(n["netns"]):
            if v6:
                lab6.node_sysctls(nsutil, cluster, n)
            else:
                for k in ("all", "default"):
                    nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % k, 1)
            nsutil.sysctl("net/ipv4/ip_forward", 1)
            nsutil.sysctl("net/ipv4/conf/all/rp_filter", 0)
            nsutil.sysctl("net/ipv4/conf/default/rp_filter", 0)
            nsutil.tx_csum_off("eth0")
            for p in by_node.get(n["name"], []):
                nsutil.sysctl("net/ipv4/conf/%s/proxy_arp" % p["veth"], 1)
                nsutil.sysctl("net/ipv4/neigh/%s/proxy_delay" % p["veth"], 0)
                nsutil.sysctl("net/ipv4/conf/%s/rp_filter" % p["veth"], 0)
                nsutil.tx_csum_off(p["veth"])
    for p in cluster["pods"]:
        with nsutil.netns(p["netns"]):
            if v6:
                lab6.pod_sysctls(nsutil)
            else:
                for k in ("all", "default"):
                    nsutil.sysctl("net/ipv6/conf/%s/disable_ipv6" % k, 1)
            nsutil.tx_csum_off("eth0")


def _configure(cluster):
    mode = cluster["mode"]
    batches = []
    v6 = bool(cluster.get("ipv6"))
    root = ["addr add %s/16 dev %s" % (topology.CONTROLLER_IP, topology.BRIDGE), "link set %s up" % topology.BRIDGE]
    if v6:    # neighbour solicitations must reach every node whether or not the bridge saw MLD reports
        root.insert(0, "link set %s type bridge mcast_snooping 0" % topology.BRIDGE)
    for n in cluster["nodes"]:
        root.append("link set %s master %s up" % (n["host_veth"], topology.BRIDGE))
    batches.append((None, root, "ip"))
    nodes = cluster["nodes"]
    if mode == "flannel":           # tests/lab/flannel.py: cni0, flannel.1, no per-pod routes
        for n in nodes:
            head = ["link set eth0 address %s" % n["eth0_mac"]] if v6 else []     # its link-local, as Calico's nodes
            batches += [(n["netns"], head + ["link set lo up", "addr add %s/16 dev eth0" % n["ip"], "link set eth0 up"]
                         + flannel.node_lines(cluster, n), "ip"), (n["netns"], flannel.fdb_lines(cluster, n), "bridge")]
        batches += [(p["netns"], flannel.pod_lines(cluster, p), "ip") for p in cluster["pods"]]
        nsutil.run_batches(batches)
        flannel.warm(cluster, nsutil)
        return
    for n in nodes:
        lines = ["link set lo up", "addr add %s/16 dev eth0" % n["ip"], "link set eth0 up"]
        for p in cluster["pods"]:
            if p["node"] == n["name"]:
                lines += ["link set %s up" % p["veth"], "route add %s dev %s scope link" % (p["ip"], p["veth"])]
        lines.append("route add blackhole %s proto bird" % n["block"])
        # proxy ARP answers only for addresses with a unicast route: a real node has its
        # default route; the lab gives 169.254.1.1 one that leads nowhere instead.
        lines.append("route add 169.254.1.1/32 dev lo scope link")
        fdb = []
        if mode == "ipip":
            lines += ["tuntap add dev tunl0 mode tun", "link set tunl0 mtu %d up" % topology.IPIP_MTU,
                      "addr add %s/32 dev tunl0" % n["tunnel_ip"]]
            for o in nodes:
                if o is not n:
                    lines.append("route add %s via %s dev tunl0 proto bird onlink" % (o["block"], o["ip"]))
        elif mode == "vxlan":
            lines += ["link add vxlan.calico address %s mtu %d type vxlan id %d dstport %d local %s dev eth0 nolearning"
                      % (n["vxlan_mac"], topology.VXLAN_MTU, topology.VXLAN_VNI, topology.VXLAN_PORT, n["ip"]),
                      "link set vxlan.calico up", "addr add %s/32 dev vxlan.calico" % n["tunnel_ip"]]
            for o in nodes:
                if o is not n:
                    lines += ["neigh add %s lladdr %s dev vxlan.calico nud permanent" % (o["tunnel_ip"], o["vxlan_mac"]),
                              "route add %s via %s dev vxlan.calico proto bird onlink" % (o["block"], o["tunnel_ip"])]
                    fdb.append("fdb add %s dev vxlan.calico dst %s" % (o["vxlan_mac"], o["ip"]))
        else:
            for o in nodes:
                if o is not n:
                    lines.append("route add %s via %s dev eth0 proto bird" % (o["block"], o["ip"]))
        if v6:
            tail, fdb6 = lab6.node_tail(cluster, n)
            lines = lab6.node_head(cluster, n) + lines + tail
            fdb += fdb6
        batches.append((n["netns"], lines, "ip"))
        if fdb:
            batches.append((n["netns"], fdb, "bridge"))
    for p in cluster["pods"]:
        batches.append((p["netns"], [
            "link set lo up", "addr add %s/32 dev eth0" % p["ip"], "link set eth0 up",
            "route add 169.254.1.1 dev eth0 scope link", "route add default via 169.254.1.1 dev eth0",
        ] + (lab6.pod_lines(p) if v6 else []), "ip"))
    # vxlan links need their node's eth0 configured; batches are per namespace so order holds
    nsutil.run_batches(batches)


def _node_services(cluster, n):
    name = n["name"]
    services = [[SSHD, "-D", "-f", sshd_config(n)]]
    pods = [p for p in cluster["pods"] if p["node"] == name]
    services.append([PY, "-S", os.path.join(HERE, "podserver.py"), "--cert", TLS_CERT, "--key", TLS_KEY,
                     "--node", name, "--ready", os.path.join(RUN, "podserver.%s.ready" % name)]
                    + ["%s/%s=%s=%s%s" % (p["namespace"], p["name"], p["ip"], os.path.join(nsutil.NETNS_DIR, p["netns"]),
                                          "=" + p["ip6"] if p.get("ip6") else "") for p in pods])
    if cluster["mode"] == "ipip":
        services.append(ipipd_argv(cluster, n))
    if cluster["mode"] == "wireguard":
        services.append(wireguard.service_argv(PY, RUN, n))
    return services


def ipipd_argv(cluster, n, daemon=False):
    argv = [PY, "-S", os.path.join(HERE, "ipipd.py"), "--dev", "tunl0", "--ready", os.path.join(RUN, "ipipd.%s.ready" % n["name"])]
    if daemon:
        argv += ["--daemon", "--log", os.path.join(LOGS, "%s.log" % n["name"])]
    return argv + ["%s=%s" % (o["block"], o["ip"]) for o in cluster["nodes"] if o is not n]


def _start_nodes(cluster):
    procs = []
    for n in cluster["nodes"]:
        spec = os.path.join(RUN, "node.%s.json" % n["name"])
        logf = os.path.join(LOGS, "%s.log" % n["name"])
        save_json(spec, {"services": _node_services(cluster, n), "log": logf})
        argv = ["nsenter", "--net=%s" % os.path.join(nsutil.NETNS_DIR, n["netns"]), "--",
                "unshare", "--pid", "--mount", "--uts", "--ipc", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "slave", "--", PY, "-S", os.path.join(HERE, "nodeinit.py"), n["name"], spec]
        with open(logf, "ab") as lf:
            procs.append((n, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, start_new_session=True)))
    for n, p in procs:
        n["holder_pid"] = p.pid
    return procs


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _wait_ready(cluster, timeout=20.0):
    deadline = time.monotonic() + timeout
    pending = {n["name"]: n for n in cluster["nodes"]}
    while pending:
        for name, n in list(pending.items()):
            if not n.get("init_pid"):
                kids = _children(n["holder_pid"])
                if kids:
                    n["init_pid"] = kids[0]
                elif not nsutil.is_alive(n["holder_pid"]):
                    raise RuntimeError("node %s failed to start (see %s)" % (name, os.path.join(LOGS, name + ".log")))
                continue
            files = ["podserver.%s.ready" % name] + (["ipipd.%s.ready" % name] if cluster["mode"] == "ipip" else [])
            if cluster["mode"] == "wireguard":
                files.append(os.path.basename(wireguard.ready_path(RUN, n)))
            if not all(os.path.exists(os.path.join(RUN, f)) for f in files):
                continue
            if not n.get("sshd_ok"):
                s = socket.socket()
                s.settimeout(0.2)
                try:
                    s.connect((n["ip"], 22))
                    n["sshd_ok"] = True
                except OSError:
                    continue
                finally:
                    s.close()
            del pending[name]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("lab nodes not ready after %.0fs: %s (logs in %s)" % (timeout, ", ".join(sorted(pending)), LOGS))
        time.sleep(0.01)
    for n in cluster["nodes"]:
        n.pop("sshd_ok", None)


def up(mode, nodes, pods_per_node=2, ipv6=False):
    t0 = time.monotonic()
    down(quiet=True)
    cluster = topology.plan(mode, nodes, pods_per_node, ipv6=ipv6)
    ensure_assets()
    for f in os.listdir(RUN):
        os.unlink(os.path.join(RUN, f))
    saved = {}
    state = dict(cluster, saved_sysctls=saved, created_privsep=False, started=time.time())
    save_json(STATE, state)       # down() can undo a half-built lab from here on
    if not os.path.isdir(PRIVSEP):
        os.makedirs(PRIVSEP, mode=0o755)
        state["created_privsep"] = True
    nsutil.run_batches([(None, _root_create(cluster), "ip")])
    _sysctls(cluster, saved)
    save_json(STATE, state)
    _configure(cluster)
    if ipv6:
        lab6.greet_peers(nsutil, cluster)
    if mode == "wireguard":
        wireguard.prepare(cluster, RUN)
    _start_nodes(cluster)
    save_json(STATE, state)
    _wait_ready(cluster)
    save_json(STATE, state)
    save_json(FAULTS, [])
    write_client_files(cluster)
    log("lab up: mode %s%s, %d nodes, %d pods in %.2fs" % (mode, " (dual-stack)" if ipv6 else "", nodes, len(cluster["pods"]),
                                                         time.monotonic() - t0))
    return state


# ---------------------------------------------------------------- down
def _lab_netns():
    try:
        return sorted(e for e in os.listdir(nsutil.NETNS_DIR) if e.startswith(NETNS_PREFIXES))
    except OSError:
        return []


def _lab_links():
    names = []
    for e in os.listdir("/sys/class/net"):
        if e == topology.BRIDGE or e.startswith(topology.PREFIX + "node-"):
            names.append(e)
    return names


def _drop_wire_tables():
    """The root namespace's nft tables of wire-drop faults (faults.py) a dead lab left behind."""
    if not shutil.which("nft"):
        return
    out = subprocess.run(["nft", "list", "tables", "bridge"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        if len(words) == 3 and words[2].startswith("hoptrace_wire_"):
            subprocess.run(["nft", "delete", "table", "bridge", words[2]], capture_output=True)


def lab_pids():
    """Every process of the lab: node PID 1s (and so their namespaces) and anything in a lab netns."""
    marker = os.path.join(HERE, "nodeinit.py")
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and marker in nsutil.cmdline(int(entry)):
            pids.add(int(entry))
    inodes = {nsutil.ns_inode(os.path.join(nsutil.NETNS_DIR, e)) for e in _lab_netns()}
    inodes.discard(None)
    if inodes:
        pids.update(nsutil.pids_in_netns(inodes))
    for entry in os.listdir("/proc"):   # controller-side ssh masters of the lab's connections
        if entry.isdigit() and any(CONTROL_DIR + "/" in arg for arg in nsutil.cmdline(int(entry))):
            pids.add(int(entry))
    pids.discard(os.getpid())
    return sorted(pids)


def down(quiet=False):
    t0 = time.monotonic()
    state = load_state() or {}
    if os.path.exists(FAULTS):
        try:
            import faults
            faults.clear(quiet=True)
        except Exception as exc:  # noqa: BLE001 - the namespaces are about to go anyway
            log("lab down: clearing faults: %s" % exc)
    pids = lab_pids()
    nsutil.kill_and_wait(pids, 9, 5.0)
    _drop_wire_tables()
    links = _lab_links()
    if links:
        nsutil.run_batches([(None, ["link del %s" % name for name in links], "ip")], check=False)
    spaces = _lab_netns()
    if spaces:
        nsutil.run_batches([(None, ["netns del %s" % e for e in spaces], "ip")], check=False)
    for key, val in (state.get("saved_sysctls") or {}).items():
        try:
            nsutil.sysctl(key, val)
        except OSError:
            pass
    if state.get("created_privsep") and os.path.isdir(PRIVSEP):
        try:
            os.rmdir(PRIVSEP)
        except OSError:
            pass
    for path in (STATE, FAULTS, INVENTORY, PODS_JSON):
        if os.path.exists(path):
            os.unlink(path)
    for folder in (RUN, CONTROL_DIR):
        if os.path.isdir(folder):
            for f in os.listdir(folder):
                os.unlink(os.path.join(folder, f))
    left = [p for p in lab_pids() if nsutil.is_alive(p)]
    if left or _lab_netns() or _lab_links():
        raise RuntimeError("lab down left things behind: pids %s netns %s links %s" % (left, _lab_netns(), _lab_links()))
    if not quiet or pids or links or spaces:
        log("lab down: %d processes, %d links, %d namespaces removed in %.2fs" % (len(pids), len(links), len(spaces), time.monotonic() - t0))


# ---------------------------------------------------------------- status
def node_processes(init_pid):
    """{sshd: [pids], podserver: [...], ipipd: [...], wireguard-go: [...]} for one node (root-namespace pids)."""
    out = {"sshd": [], "podserver": [], "ipipd": [], "wireguard-go": []}
    for pid in nsutil.pids_in_pidns(init_pid):
        if not nsutil.is_alive(pid):
            continue
        argv = nsutil.cmdline(pid)
        if not argv:
            continue
        if argv[0].endswith("sshd") or argv[0].startswith("sshd:"):   # listener and sessions
            out["sshd"].append(pid)
        elif any(a.endswith("podserver.py") for a in argv[:3]):
            out["podserver"].append(pid)
        elif any(a.endswith("ipipd.py") for a in argv[:3]):
            out["ipipd"].append(pid)
        elif argv[0].endswith("wireguard-go"):
            out["wireguard-go"].append(pid)
    return out


def status():
    state = load_state()
    if not state:
        return {"up": False}
    nodes = []
    for n in state["nodes"]:
        alive = bool(n.get("init_pid")) and nsutil.is_alive(n["init_pid"])
        procs = node_processes(n["init_pid"]) if alive else {}
        nodes.append({"name": n["name"], "ip": n["ip"], "block": n["block"], "alive": alive, "init_pid": n.get("init_pid"),
                      "sshd": bool(procs.get("sshd")), "podserver": bool(procs.get("podserver")),
                      "ipipd": bool(procs.get("ipipd")) if state["mode"] == "ipip" else None,
                      "wireguard_go": bool(procs.get("wireguard-go")) if state["mode"] == "wireguard" else None})
    try:
        with open(FAULTS) as f:
            fl = json.load(f)
    except (OSError, ValueError):
        fl = []
    return {"up": True, "mode": state["mode"], "ipv6": bool(state.get("ipv6")), "nodes": nodes, "pods": state["pods"], "faults": fl,
            "inventory": INVENTORY, "pods_json": PODS_JSON}


def node_by_name(name):
    state = load_state()
    if not state:
        raise RuntimeError("the lab is down")
    for n in state["nodes"]:
        if n["name"] == name:
            return state, n
    raise RuntimeError("no node %s in the lab" % name)


def nsenter_argv(init_pid):
    return ["nsenter", "-t", str(init_pid), "-n", "-m", "-u", "-i", "-p", "--wd=/"]
