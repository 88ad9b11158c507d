"""Large generated inventories for tests and benchmarks (stdlib only).

    with ConnectionCounter() as counter:                  # a loopback listener that counts attempts
        biginv.write_inventory(path, total=500, port=counter.port)
        ... trace with -i path ...
        assert counter.count == 0                          # no off-path host was contacted

The inventory holds the lab's nodes first (as the lab's own inventory.ini has them), then
off-path hosts `off-NNN` up to `total`, whose `ansible_host` is 127.0.0.1 and `ansible_port`
the counter's port: an Ansible connection to any of them is one counted (and refused) attempt.
Traffic stays on loopback.
"""
import os
import socket
import threading

try:
    from . import labctl
except ImportError:                       # loaded as a top-level module
    import labctl


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that accepts, counts and closes every connection."""

    def __init__(self):
        self.count = 0
        self.peers = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            self.peers.append(peer)
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def lab_hosts():
    """[(name, ansible_host)] of the lab's nodes, from its inventory.ini."""
    hosts = []
    with open(labctl.inventory_path()) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                if hosts:
                    break
                continue
            if line and "ansible_host=" in line:
                name, _sep, rest = line.partition(" ")
                hosts.append((name, rest.split("ansible_host=", 1)[1].split()[0]))
    return hosts


def lab_vars():
    """The lab's [nodes:vars] lines (ssh user, key, ssh_config, interpreter, control path)."""
    out, on = [], False
    with open(labctl.inventory_path()) as f:
        for line in f:
            if line.startswith("[nodes:vars]"):
                on = True
                continue
            if on and line.startswith("["):
                break
            if on and line.strip():
                out.append(line.rstrip("\n"))
    return out


def write_inventory(path, total, port, group="nodes", lab_first=True):
    """An INI inventory of ``total`` hosts in ``group``: the lab's nodes plus off-path hosts
    pointing at ``port`` on 127.0.0.1. Returns the names of the off-path hosts."""
    lab = lab_hosts()
    off = ["off-%03d" % i for i in range(max(0, total - len(lab)))]
    lines = ["[%s]" % group]
    lab_lines = ["%s ansible_host=%s" % item for item in lab]
    off_lines = ["%s ansible_host=127.0.0.1 ansible_port=%d" % (name, port) for name in off]
    lines += (lab_lines + off_lines) if lab_first else (off_lines + lab_lines)
    lines += ["", "[%s:vars]" % group] + lab_vars()
    # the off-path hosts would connect to 127.0.0.1 directly (no ssh_config alias), and give up fast
    lines += ["ansible_ssh_timeout=5"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return off
