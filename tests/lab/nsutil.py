"""Low-level namespace helpers for the lab (stdlib + ctypes): setns, sysctls, ethtool, ip batches."""
import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import subprocess
import time
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def setns(fd, nstype):
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def netns(name):
    """Run the body with this thread in netns `name` (a /var/run/netns entry or a path)."""
    path = name if name.startswith("/") else os.path.join(NETNS_DIR, name)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def sysctl(key, value):
    """Write a sysctl of the current netns; `key` like net/ipv4/ip_forward."""
    with open("/proc/sys/" + key, "w") as f:
        f.write(str(value))


def read_sysctl(key):
    try:
        with open("/proc/sys/" + key) as f:
            return f.read().strip()
    except OSError:
        return None


def tx_csum_off(ifname):
    """`ethtool -K ifname tx off` through the ioctl (current netns)."""
    ev = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(ev))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    finally:
        s.close()


def ip_batch(lines, ns=None, tool="ip", force=False):
    """Start `ip [-n ns] [-force] -batch -` fed with `lines`; returns the Popen (call finish())."""
    argv = [tool]
    if ns:
        argv += ["-n", ns]
    if force:
        argv.append("-force")
    argv += ["-batch", "-"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.lines = lines
    return p


def finish(procs, check=True):
    """Feed and wait for batches started by ip_batch; raise with their errors if any failed."""
    errors = []
    for p in procs:
        out, err = p.communicate("\n".join(p.lines) + "\n")
        if p.returncode != 0 and check:
            errors.append("%s: %s" % (" ".join(p.args), err.strip() or out.strip()))
    if errors:
        raise RuntimeError("\n".join(errors))


def run_batches(batches, check=True):
    """batches: [(ns, lines, tool)]; run them concurrently."""
    finish([ip_batch(lines, ns=ns, tool=tool, force=not check) for ns, lines, tool in batches if lines], check=check)


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in_netns(inodes):
    """Processes whose network namespace inode is in `inodes`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ino = os.stat("/proc/%s/ns/net" % entry).st_ino
        except OSError:
            continue
        if ino in inodes:
            found.append(int(entry))
    return found


def pids_in_pidns(init_pid):
    """Processes (root-namespace pids) sharing the pid namespace of `init_pid`."""
    try:
        target = os.stat("/proc/%d/ns/pid" % init_pid).st_ino
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/pid" % entry).st_ino == target:
                found.append(int(entry))
        except OSError:
            continue
    return found


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_alive(pid):
    """True unless the process is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def kill_and_wait(pids, sig=15, seconds=3.0):
    """Send ``sig`` to every pid, then wait (bounded) until none is alive."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + seconds
    while any(is_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
