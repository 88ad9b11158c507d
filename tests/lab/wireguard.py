"""Lab mode `wireguard`: Calico's WireGuard on top of BGP, with the userspace wireguard-go.

Shape (as calico-node programs it): the main table keeps the BGP block routes (`<block> via
<node> dev eth0 proto bird`); `wireguard.cali` (MTU 1440, listen-port 51820, fwmark 0x100000)
has one peer per other node (endpoint <node ip>:51820, AllowedIPs that node's block and tunnel
address); table 1 routes each remote block `dev wireguard.cali scope link`; and the rule
`not from all fwmark 0x100000/0x100000 lookup 1` (priority 99) sends pod traffic there while
WireGuard's own encrypted UDP (marked) takes the main table to eth0.

The kernel here has no wireguard module, so `wireguard.cali` is a TUN device driven by
wireguard-go (Debian's package): real handshakes and real encrypted UDP on eth0.

Why not plain `ip netns exec NODE wireguard-go wireguard.cali`: wireguard-go listens for its
configuration (UAPI) on /var/run/wireguard/<device>.sock, named after the device only. Every
node calls its device wireguard.cali and /var/run is the host's /run, so the second node finds
the first node's socket answering ("UAPI listen error: unix socket in use"), exits, and its TUN
device goes with it (the "interface missing"); `wg` run for that node would even talk to the
wrong daemon. Here each node gets its own tmpfs on /run/wireguard inside its mount namespace
(nodeinit's), so its daemon, `wg` over its sshd and nothing else see that node's socket.

`serve` runs as a node service (tests/lab/nodeinit.py starts it and it dies with the node):
private /run/wireguard, wireguard-go in the foreground, `wg setconf`, links/routes/rule, ready file.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

DEV = "wireguard.cali"
PORT = 51820
MTU = 1440
FWMARK = 0x100000
TABLE = 1
RULE_PRIORITY = 99
UAPI_DIR = "/run/wireguard"
WIREGUARD_GO = "/usr/bin/wireguard-go"
WG = "/usr/bin/wg"
HERE = os.path.dirname(os.path.abspath(__file__))


def _keypair():
    private = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run([WG, "pubkey"], input=private + "\n", capture_output=True, text=True, check=True).stdout.strip()
    return private, public


def config_text(node, others, private, publics):
    """`wg setconf` text of one node: its key, port and fwmark, one peer per other node."""
    lines = ["[Interface]", "PrivateKey = %s" % private, "ListenPort = %d" % PORT, "FwMark = 0x%x" % FWMARK, ""]
    for o in others:
        lines += ["[Peer]", "PublicKey = %s" % publics[o["name"]], "Endpoint = %s:%d" % (o["ip"], PORT),
                  "AllowedIPs = %s, %s/32" % (o["block"], o["tunnel_ip"]), ""]
    return "\n".join(lines)


def ip_lines(node, others):
    """`ip -batch` lines once the device exists."""
    lines = ["link set %s mtu %d up" % (DEV, MTU), "addr add %s/32 dev %s" % (node["tunnel_ip"], DEV)]
    for o in others:
        lines.append("route add %s dev %s scope link table %d" % (o["block"], DEV, TABLE))
    lines.append("rule add not fwmark 0x%x/0x%x lookup %d priority %d" % (FWMARK, FWMARK, TABLE, RULE_PRIORITY))
    return lines


def prepare(cluster, run_dir):
    """Fresh keys for every node (per lab up) and each node's spec file in run_dir (mode 0600)."""
    nodes = cluster["nodes"]
    keys = {n["name"]: _keypair() for n in nodes}
    publics = {name: pair[1] for name, pair in keys.items()}
    for n in nodes:
        others = [o for o in nodes if o is not n]
        path = spec_path(run_dir, n)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"conf": config_text(n, others, keys[n["name"]][0], publics), "ip": ip_lines(n, others)}, f)
    return publics


def spec_path(run_dir, node):
    return os.path.join(run_dir, "wireguard.%s.json" % node["name"])


def ready_path(run_dir, node):
    return os.path.join(run_dir, "wireguard.%s.ready" % node["name"])


def service_argv(python, run_dir, node):
    return [python, "-S", os.path.abspath(__file__), "serve", "--spec", spec_path(run_dir, node),
            "--ready", ready_path(run_dir, node)]


def _private_uapi_dir():
    """A tmpfs of this node's own on /run/wireguard (the node's mount namespace is private)."""
    sys.path.insert(0, HERE)
    import nodeinit
    os.makedirs(UAPI_DIR, exist_ok=True)
    nodeinit._mount("tmpfs", UAPI_DIR, "tmpfs", 0, "mode=0700,size=1m")


def serve(spec_file, ready):
    with open(spec_file) as f:
        spec = json.load(f)
    _private_uapi_dir()
    env = dict(os.environ, LOG_LEVEL="error", WG_PROCESS_FOREGROUND="1")
    daemon = subprocess.Popen([WIREGUARD_GO, "-f", DEV], env=env, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, lambda *_: (daemon.terminate(), os._exit(0)))
    sock = os.path.join(UAPI_DIR, DEV + ".sock")
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if daemon.poll() is not None or time.monotonic() > deadline:
            sys.exit("wireguard.py: wireguard-go did not create %s (exit %s)" % (sock, daemon.poll()))
        time.sleep(0.01)
    conf = spec_file + ".conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(spec["conf"])
    try:
        subprocess.run([WG, "setconf", DEV, conf], check=True)
    finally:
        os.unlink(conf)
    subprocess.run(["ip", "-batch", "-"], input="\n".join(spec["ip"]) + "\n", text=True, check=True)
    with open(ready, "w") as f:
        f.write("%d\n" % daemon.pid)
    sys.exit(daemon.wait())


def main(argv=None):
    ap = argparse.ArgumentParser(prog="wireguard.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--spec", required=True)
    p.add_argument("--ready", required=True)
    args = ap.parse_args(argv)
    serve(args.spec, args.ready)


if __name__ == "__main__":
    main()
