"""PID 1 of a lab node: hostname, private /tmp, /var/tmp and /root, start the node's services, reap.

Run as: unshare --pid --mount --uts --fork --mount-proc ... python3 nodeinit.py NODE SPEC.json
SPEC.json: {"services": [argv, ...]}. Exiting (SIGTERM) kills everything in the node's
PID namespace, which is how `lab.py down` stops a node.
"""
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import sys


LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MS_BIND, MS_REC = 4096, 16384
PRIVATE = (("/tmp", "1777"), ("/var/tmp", "1777"), ("/root", "0700"))
# the checkout (lab scripts, .lab/ with the sshd config and keys) must stay visible in the node
# even when it lives under one of the private folders (a CI clone in /tmp, say)
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mount(source, target, fstype, flags, data):
    if LIBC.mount(source.encode(), target.encode(), fstype and fstype.encode(), flags, data and data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount %s on %s: %s" % (source, target, os.strerror(err)))


def mount_private_folders():
    """tmpfs on /tmp, /var/tmp and /root; the checkout bound back in where one of them hid it."""
    hidden = any(CHECKOUT == d or CHECKOUT.startswith(d + "/") for d, _mode in PRIVATE)
    keep = os.open(CHECKOUT, os.O_PATH | os.O_DIRECTORY) if hidden else None
    for target, mode in PRIVATE:
        os.makedirs(target, exist_ok=True)
        _mount("tmpfs", target, "tmpfs", 0, "mode=%s,size=256m" % mode)
    if keep is not None:
        os.makedirs(CHECKOUT, exist_ok=True)
        _mount("/proc/self/fd/%d" % keep, CHECKOUT, None, MS_BIND | MS_REC, None)
        os.close(keep)


def main():
    node, spec_path = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    signal.signal(signal.SIGCHLD, lambda *_: None)   # wake pause() for adopted orphans
    socket.sethostname(node)
    # a node's own /tmp, /var/tmp and root's home (~/.ansible/tmp; and no controller dotfiles
    # running at every SSH login)
    mount_private_folders()
    with open(spec_path) as f:
        spec = json.load(f)
    devnull = os.open(os.devnull, os.O_RDWR)
    for argv in spec.get("services", []):
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.dup2(devnull, 0)
                log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()
        except InterruptedError:
            pass


if __name__ == "__main__":
    main()
