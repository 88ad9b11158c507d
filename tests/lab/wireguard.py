"""Lab mode `wireguard`: Calico's WireGuard on top of BGP, with the userspace wireguard-go.

Shape (as calico-node programs it): the main table keeps the BGP block routes (`<block> via
<node> dev eth0 proto bird`); `wireguard.cali` (MTU 1440, listen-port 51820, fwmark 0x100000)
has one peer per other node (endpoint <node ip>:51820, AllowedIPs that node's block and tunnel
address); table 1 routes each remote block `dev wireguard.cali scope link`; and the rule
`not from all fwmark 0x100000/0x100000 lookup 1` (priority 99) sends pod traffic there while
WireGuard's own encrypted UDP (marked) takes the main table to eth0.

Dual-stack (`--ipv6`): Calico makes a second device for IPv6, `wg-v6.cali` (its own key pair,
listen-port 51821, MTU 1420, the same fwmark), whose peers have the peer's IPv6 node address as
endpoint and its /122 block and IPv6 tunnel address as AllowedIPs; table 1 of the IPv6 family
routes each remote /122 `dev wg-v6.cali`, and the IPv6 rule (priority 99 as for IPv4) sends pod
traffic there. Each device has its own wireguard-go.

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
private /run/wireguard, one wireguard-go per device in the foreground, `wg setconf`,
links/routes/rules, ready file.
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
DEV6 = "wg-v6.cali"
PORT6 = 51821
MTU6 = 1420
UAPI_DIR = "/run/wireguard"
WIREGUARD_GO = "/usr/bin/wireguard-go"
WG = "/usr/bin/wg"
HERE = os.path.dirname(os.path.abspath(__file__))


def _keypair():
    private = subprocess.run([WG, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run([WG, "pubkey"], input=private + "\n", capture_output=True, text=True, check=True).stdout.strip()
    return private, public


def _family(v6):
    """(device, port, MTU, node keys) of the IPv4 or the IPv6 device."""
    if v6:
        return DEV6, PORT6, MTU6, ("ip6", "block6", "tunnel_ip6", 128)
    return DEV, PORT, MTU, ("ip", "block", "tunnel_ip", 32)


def config_text(node, others, private, publics, v6=False):
    """`wg setconf` text of one node's device: its key, port and fwmark, one peer per other node."""
    _dev, port, _mtu, (ip, block, tunnel, host) = _family(v6)
    lines = ["[Interface]", "PrivateKey = %s" % private, "ListenPort = %d" % port, "FwMark = 0x%x" % FWMARK, ""]
    for o in others:
        endpoint = "[%s]:%d" % (o[ip], port) if v6 else "%s:%d" % (o[ip], port)
        lines += ["[Peer]", "PublicKey = %s" % publics[o["name"]], "Endpoint = %s" % endpoint,
                  "AllowedIPs = %s, %s/%d" % (o[block], o[tunnel], host), ""]
    return "\n".join(lines)


def ip_lines(node, others, v6=False):
    """`ip -batch` lines once the device exists (run with `ip -6` for the IPv6 device)."""
    dev, _port, mtu, (_ip, block, tunnel, host) = _family(v6)
    lines = ["link set %s mtu %d up" % (dev, mtu), "addr add %s/%d dev %s%s" % (node[tunnel], host, dev, " nodad" if v6 else "")]
    for o in others:
        lines.append("route add %s dev %s scope link table %d" % (o[block], dev, TABLE))
    lines.append("rule add not fwmark 0x%x/0x%x lookup %d priority %d" % (FWMARK, FWMARK, TABLE, RULE_PRIORITY))
    return lines


def prepare(cluster, run_dir):
    """Fresh keys for every node and device (per lab up) and each node's spec file in run_dir (mode 0600):
    ``{"devices": [{dev, family, conf, ip}]}``, the IPv6 device too on a dual-stack lab."""
    nodes = cluster["nodes"]
    families = [False, True] if cluster.get("ipv6") else [False]
    keys = {(n["name"], v6): _keypair() for n in nodes for v6 in families}
    for n in nodes:
        others = [o for o in nodes if o is not n]
        devices = []
        for v6 in families:
            publics = {o["name"]: keys[(o["name"], v6)][1] for o in others}
            devices.append({"dev": _family(v6)[0], "family": "-6" if v6 else "-4",
                            "conf": config_text(n, others, keys[(n["name"], v6)][0], publics, v6), "ip": ip_lines(n, others, v6)})
        path = spec_path(run_dir, n)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"devices": devices}, f)
    return {(name, v6): pair[1] for (name, v6), pair in keys.items()}


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


def _start(dev, env):
    """wireguard-go for ``dev`` in the foreground, once its UAPI socket answers."""
    daemon = subprocess.Popen([WIREGUARD_GO, "-f", dev], env=env, stdin=subprocess.DEVNULL)
    sock = os.path.join(UAPI_DIR, dev + ".sock")
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if daemon.poll() is not None or time.monotonic() > deadline:
            sys.exit("wireguard.py: wireguard-go did not create %s (exit %s)" % (sock, daemon.poll()))
        time.sleep(0.01)
    return daemon


def _configure(spec_file, device):
    conf = "%s.%s.conf" % (spec_file, device["dev"])
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(device["conf"])
    try:
        subprocess.run([WG, "setconf", device["dev"], conf], check=True)
    finally:
        os.unlink(conf)
    subprocess.run(["ip", device["family"], "-batch", "-"], input="\n".join(device["ip"]) + "\n", text=True, check=True)


def serve(spec_file, ready):
    with open(spec_file) as f:
        spec = json.load(f)
    _private_uapi_dir()
    env = dict(os.environ, LOG_LEVEL="error", WG_PROCESS_FOREGROUND="1")
    daemons = []

    def stop(*_):
        for d in daemons:
            d.terminate()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    for device in spec["devices"]:
        daemons.append(_start(device["dev"], env))
        _configure(spec_file, device)
    with open(ready, "w") as f:
        f.write("%s\n" % " ".join(str(d.pid) for d in daemons))
    pid, status = os.wait()     # the service ends when any of its daemons does
    for d in daemons:
        if d.pid != pid:
            d.terminate()
    sys.exit(os.waitstatus_to_exitcode(status))


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
