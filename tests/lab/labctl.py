"""Python API over the lab for tests (stdlib only). Everything that changes the lab goes
through `lab.py` (so it holds the lab's own lock); reads come from the files in .lab/.

    import labctl                      # or: from lab import labctl
    labctl.up("ipip", 2)               # -> status dict (mode, nodes, pods, faults, inventory)
    labctl.pods()                      # [{namespace, name, ip, node, node_ip, netns, veth}]
    labctl.exec_in_pod("172.17.25.79", ["curl", "-sk", "https://172.17.25.239"])
    labctl.exec_in_node("node-a", ["ip", "route"])
    labctl.fault_add("drop", node="node-b", iface="tunl0", direction="in",
                     src="172.17.25.79", dst="172.17.25.239", proto="tcp", port=443)
    labctl.fault_clear(); labctl.down()
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAB_PY = os.path.join(HERE, "lab.py")
LAB_DIR = os.path.join(ROOT, ".lab")
NETNS_DIR = "/var/run/netns"


class LabError(RuntimeError):
    pass


def _python():
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def lab(*args, timeout=300):
    """Run `lab.py ARGS...`; returns stdout; raises LabError with the output on failure."""
    r = subprocess.run([_python(), LAB_PY] + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise LabError("lab.py %s failed (%d):\n%s%s" % (" ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
    return r.stdout


def status():
    return json.loads(lab("status", "--json"))


def up(mode="ipip", nodes=2, pods_per_node=2, ipv6=False):
    """Bring the lab up (``ipv6``: dual-stack pods, ``lab.py up --ipv6``); returns status()."""
    lab("up", "--mode", mode, "--nodes", nodes, "--pods-per-node", pods_per_node, *(["--ipv6"] if ipv6 else []))
    return status()


def down():
    lab("down")


def demo_flow():
    """(src, dst, port) that `make demo` traces on the running lab (`lab.py demo-flow`)."""
    src, dst, port = lab("demo-flow").split()
    return src, dst, int(port)


def inventory_path():
    return os.path.join(LAB_DIR, "inventory.ini")


def ssh_config_path():
    return os.path.join(LAB_DIR, "ssh_config")


def pods():
    with open(os.path.join(LAB_DIR, "pods.json")) as f:
        return json.load(f)


def pod(spec):
    """A pod by ip, name, namespace/name or netns (or the dict itself)."""
    if isinstance(spec, dict):
        return spec
    for p in pods():
        if spec in (p["ip"], p.get("ip6"), p["name"], "%s/%s" % (p["namespace"], p["name"]), p["netns"]):
            return p
    raise LabError("no pod %s" % spec)


def _state():
    with open(os.path.join(LAB_DIR, "state.json")) as f:
        return json.load(f)


def node(name):
    for n in _state()["nodes"]:
        if n["name"] == name:
            return n
    raise LabError("no node %s" % name)


def node_argv(name, argv):
    """argv run inside the node's namespaces (net, mount, uts, ipc, pid), as a shell on the node."""
    return ["nsenter", "-t", str(node(name)["init_pid"]), "-n", "-m", "-u", "-i", "-p", "--wd=/"] + list(argv)


def pod_argv(spec, argv):
    """argv run in the pod's network namespace (root's filesystem, so paths are the controller's)."""
    return ["ip", "netns", "exec", pod(spec)["netns"]] + list(argv)


def netns_argv(name, argv):
    """argv in a node's network namespace only (filesystem and /tmp of the controller)."""
    return ["ip", "netns", "exec", node(name)["netns"]] + list(argv)


def _run(argv, timeout, check):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def exec_in_node(name, argv, timeout=60, check=False):
    """CompletedProcess (text) of argv run inside node `name`."""
    return _run(node_argv(name, argv), timeout, check)


# Makes the files of captures named PREFIX* in DIRECTORY look SECONDS older: the times their state file
# records (started_at, deadline_at, ended_at) and the files' mtimes, so that a test of the capture
# module's prune rule need not wait its 10 minutes. Runs on the node (python3 there).
_AGE = r"""
import json, os, sys
directory, prefix, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
for name in os.listdir(directory):
    if not name.startswith(prefix):
        continue
    path = os.path.join(directory, name)
    if name.endswith(".state.json"):
        with open(path) as handle:
            state = json.load(handle)
        for key in ("started_at", "deadline_at", "ended_at"):
            if isinstance(state.get(key), (int, float)):
                state[key] -= seconds
        with open(path, "w") as handle:
            json.dump(state, handle)
    st = os.stat(path)
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))
"""


def age_captures(node, directory, prefix, seconds):
    """Make the capture files PREFIX* in DIRECTORY on `node` look `seconds` older (see _AGE)."""
    return exec_in_node(node, ["python3", "-c", _AGE, directory, prefix, str(seconds)], check=True)


def exec_in_pod(spec, argv, timeout=60, check=False):
    """CompletedProcess (text) of argv run inside pod `spec`'s network namespace."""
    return _run(pod_argv(spec, argv), timeout, check)


def fault_add(kind, node, iface=None, direction=None, src=None, dst=None, proto=None, port=None, mtu=None, every=None):
    """Add a fault (kinds: drop, mtu, sshd-down, freeze, ipipd-down); returns its record with `id`."""
    args = ["fault", "add", kind, "--node", node]
    for flag, val in (("--iface", iface), ("--dir", direction), ("--src", src), ("--dst", dst), ("--proto", proto),
                      ("--port", port), ("--mtu", mtu), ("--every", every)):
        if val is not None:
            args += [flag, val]
    return json.loads(lab(*args))


def services_up(proxy_mode="iptables"):
    """kube-proxy-shaped Services on every node (tests/lab/kubeproxy.py, nft: kubeproxy_nft.py); returns their list."""
    return json.loads(lab("services", "up", "--proxy-mode", proxy_mode))


def services_down():
    return json.loads(lab("services", "down"))


def fault_del(fid):
    return json.loads(lab("fault", "del", fid))


def fault_clear():
    lab("fault", "clear")


def faults():
    return json.loads(lab("fault", "list", "--json"))


def wait_for(predicate, timeout, step=0.1):
    """Poll ``predicate`` every ``step`` seconds for up to ``timeout``; True once it held."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
