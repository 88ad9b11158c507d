#!/usr/bin/env python3
"""hoptrace lab cluster: Kubernetes nodes and pods with Calico's (or Flannel's) data path, made of namespaces.

  lab.py up --mode ipip|vxlan|bgp|flannel|wireguard --nodes N [--pods-per-node 2] [--ipv6]   (--ipv6: dual-stack pods)
  lab.py down
  lab.py demo-flow                       print "SRC DST PORT" of the flow `make demo` traces here
  lab.py status [--json]
  lab.py exec NODE -- ARGV...            run in a node's namespaces (net, mount, uts, ipc, pid)
  lab.py pod-exec POD -- ARGV...         run in a pod's netns (POD: ip, name or namespace/name)
  lab.py fault add drop --node N --iface IF --dir in|out [--src IP] [--dst IP] [--proto tcp|udp|icmp|any] [--port P] [--every N]
  lab.py fault add mtu --node N --iface IF --mtu M
  lab.py fault add sshd-down --node N
  lab.py fault add freeze --node N            SIGSTOP the node's sshd (SSH hangs, not refused)
  lab.py fault add ipipd-down --node N
  lab.py fault add wire-drop --node N [--proto tcp|udp|icmp] [--port P]   the underlay drops packets to N
  lab.py fault add calico-deny|reject --node N --src IP --dst IP --port P   (tests/lab/whyfaults.py)
  lab.py fault add pod-route-gone --node N --dst IP | rp-filter --node N --src IP --dst IP --iface TUNNEL
  lab.py fault del ID | fault list [--json] | fault clear
  lab.py services up|down|list [--proxy-mode iptables|nft]   kube-proxy-shaped Services on every node
                                       (iptables: tests/lab/kubeproxy.py; nft: tests/lab/kubeproxy_nft.py;
                                       dual-stack on a lab up with --ipv6: ip6tables / table ip6 kube-proxy too)

Every command holds an exclusive flock on /run/hoptrace-lab.lock. Needs root.
"""
import argparse
import fcntl
import json
import os
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cluster  # noqa: E402
import faults  # noqa: E402
import kubeproxy  # noqa: E402
import kubeproxy_nft  # noqa: E402

LOCK = "/run/hoptrace-lab.lock"


def find_pod(spec):
    state = cluster.load_state()
    if not state:
        raise RuntimeError("the lab is down")
    for p in state["pods"]:
        if spec in (p["ip"], p.get("ip6"), p["name"], "%s/%s" % (p["namespace"], p["name"]), p["netns"]):
            return p
    raise RuntimeError("no pod %s in the lab" % spec)


def print_status(st):
    if not st["up"]:
        print("lab: down")
        return
    print("lab: up  mode %s%s  %d nodes  %d pods  faults %d" % (st["mode"], "  dual-stack" if st.get("ipv6") else "", len(st["nodes"]),
                                                            len(st["pods"]), len(st["faults"])))
    print("%-9s %-15s %-18s %-5s %-5s %-9s %-5s %s" % ("NODE", "IP", "BLOCK", "UP", "SSHD", "PODSERVER", "IPIPD", "WIREGUARD-GO"))
    for n in st["nodes"]:
        def yn(v):
            return "-" if v is None else ("yes" if v else "NO")
        print("%-9s %-15s %-18s %-5s %-5s %-9s %-5s %s" % (n["name"], n["ip"], n["block"], yn(n["alive"]), yn(n["sshd"]), yn(n["podserver"]),
                                                  yn(n["ipipd"]), yn(n.get("wireguard_go"))))
    print()
    print("%-18s %-42s %-15s %-9s %-16s %s" % ("NAMESPACE", "POD", "IP", "NODE", "VETH", "NETNS"))
    for p in st["pods"]:
        ip = p["ip"] + (" " + p["ip6"] if p.get("ip6") else "")      # a dual-stack pod: both addresses
        print("%-18s %-42s %-15s %-9s %-16s %s" % (p["namespace"], p["name"], ip, p["node"], p["veth"], p["netns"]))
    for f in st["faults"]:
        print("fault %s" % json.dumps(f, sort_keys=True))
    print("\ninventory: %s\npods:      %s" % (st["inventory"], st["pods_json"]))


def parser():
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n")[1])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--mode", choices=cluster.topology.MODES, default="ipip")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--pods-per-node", type=int, default=2)
    p.add_argument("--ipv6", action="store_true", help="dual-stack pods: IPv6 from /122 blocks as Calico wires them (tests/lab/ipv6.py)")
    sub.add_parser("down")
    sub.add_parser("demo-flow")
    p = sub.add_parser("status")
    p.add_argument("--json", action="store_true")
    for name in ("exec", "pod-exec"):
        p = sub.add_parser(name)
        p.add_argument("target")
        p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("fault")
    fsub = p.add_subparsers(dest="fcmd", required=True)
    a = fsub.add_parser("add")
    a.add_argument("kind", choices=faults.KINDS)
    a.add_argument("--node", required=True)
    a.add_argument("--iface")
    a.add_argument("--dir", choices=("in", "out"))
    a.add_argument("--src")
    a.add_argument("--dst")
    a.add_argument("--proto", choices=("tcp", "udp", "icmp", "any"))
    a.add_argument("--port", type=int)
    a.add_argument("--mtu", type=int)
    a.add_argument("--every", type=int, help="drop only every Nth matching packet (intermittent loss)")
    d = fsub.add_parser("del")
    d.add_argument("id")
    ls = fsub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    fsub.add_parser("clear")
    p = sub.add_parser("services")
    p.add_argument("action", choices=("up", "down", "list"))
    p.add_argument("--proxy-mode", choices=("iptables", "nft"), default="iptables",
                   help="the rules kube-proxy's proxier of that mode writes (down removes both)")
    return ap


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)      # `lab.py status | head` ends quietly
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("lab.py: needs root")
    if args.cmd in ("exec", "pod-exec"):
        cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not cmd:
            sys.exit("lab.py %s: nothing to run" % args.cmd)
        if args.cmd == "exec":
            _, node = cluster.node_by_name(args.target)
            full = cluster.nsenter_argv(node["init_pid"]) + cmd
        else:
            full = ["ip", "netns", "exec", find_pod(args.target)["netns"]] + cmd
        os.execvp(full[0], full)
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if args.cmd == "up":
                cluster.up(args.mode, args.nodes, args.pods_per_node, ipv6=args.ipv6)
            elif args.cmd == "down":
                cluster.down()
            elif args.cmd == "demo-flow":
                state = cluster.load_state()
                if not state:
                    raise RuntimeError("the lab is down")
                print("%s %s %s" % cluster.topology.demo_flow(state))
            elif args.cmd == "status":
                st = cluster.status()
                if args.json:
                    print(json.dumps(st, indent=1))
                else:
                    print_status(st)
            elif args.cmd == "services":
                state = cluster.load_state()
                if not state:
                    raise RuntimeError("the lab is down")
                # a dual-stack lab's Services are dual-stack: an IPv6 ruleset too, its endpoints the pods' IPv6 addresses
                ip6_of = {p["ip"]: p["ip6"] for p in state["pods"] if p.get("ip6")} if state.get("ipv6") else None
                for n in state["nodes"]:
                    if args.action == "up":
                        # one mode at a time, as on a real node: the other mode's rules go first
                        other, mine = (kubeproxy, kubeproxy_nft) if args.proxy_mode == "nft" else (kubeproxy_nft, kubeproxy)
                        other.remove(n["netns"])
                        mine.install(n["netns"], ip6_of)
                    elif args.action == "down":
                        kubeproxy_nft.remove(n["netns"])
                        kubeproxy.remove(n["netns"])
                print(json.dumps(kubeproxy.services(ip6_of), indent=1))
            elif args.fcmd == "add":
                f = faults.add(args.kind, args.node, iface=args.iface, direction=args.dir, src=args.src, dst=args.dst,
                               proto=args.proto, port=args.port, mtu=args.mtu, every=args.every)
                print(json.dumps(f, sort_keys=True))
            elif args.fcmd == "del":
                print(json.dumps(faults.delete(args.id), sort_keys=True))
            elif args.fcmd == "list":
                fl = faults.listing()
                if args.json:
                    print(json.dumps(fl, indent=1))
                else:
                    for f in fl:
                        print(json.dumps(f, sort_keys=True))
            elif args.fcmd == "clear":
                n = len(faults.clear())
                print("cleared %d faults" % n)
        except (RuntimeError, ValueError) as exc:
            sys.exit("lab.py %s: %s" % (args.cmd, exc))


if __name__ == "__main__":
    main()
