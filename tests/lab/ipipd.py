"""Userspace IPIP for a lab node (the kernel here has no ipip module).

Attaches to the TUN device `tunl0` (IFF_TUN|IFF_NO_PI: tcpdump shows link-type RAW, as on
a Calico node) and moves packets both ways:
  tunl0 -> inner packet -> owner node of the inner destination's block -> raw IP protocol 4
           socket on the underlay (the kernel adds the outer header: node ip > peer ip, proto 4)
  underlay protocol-4 packet -> strip the outer header -> written into tunl0 (decapsulated)

Usage: ipipd.py --dev tunl0 [--ready FILE] [--daemon] BLOCK=NODE_IP ...
"""
import argparse
import fcntl
import ipaddress
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
BURST = 256


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    return fd


class Routes:
    """Inner destination -> peer node address, longest prefix first, cached per address."""

    def __init__(self, specs):
        self.table = []
        for spec in specs:
            block, peer = spec.split("=")
            net = ipaddress.ip_network(block)
            self.table.append((int(net.network_address), int(net.netmask), net.prefixlen, peer))
        self.table.sort(key=lambda r: -r[2])
        self.cache = {}

    def lookup(self, dst4):
        peer = self.cache.get(dst4)
        if peer is None:
            addr = int.from_bytes(dst4, "big")
            peer = ""
            for net, mask, _, p in self.table:
                if addr & mask == net:
                    peer = p
                    break
            self.cache[dst4] = peer
        return peer or None


def run(args):
    routes = Routes(args.routes)
    tun = open_tun(args.dev)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    for opt, size in ((SO_RCVBUFFORCE, 8 << 20), (SO_SNDBUFFORCE, 8 << 20)):
        try:
            raw.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:
            pass
    raw.setblocking(False)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("%d\n" % os.getpid())
    rfd = raw.fileno()
    poller = select.poll()
    poller.register(tun, select.POLLIN)
    poller.register(rfd, select.POLLIN)
    buf = bytearray(65536)
    mv = memoryview(buf)
    readv, write, recv_into, sendto = os.readv, os.write, raw.recv_into, raw.sendto
    bufs = [buf]
    lookup = routes.lookup
    while True:
        for fd, _ in poller.poll():
            if fd == tun:                      # encapsulate
                for _ in range(BURST):
                    try:
                        n = readv(tun, bufs)
                    except BlockingIOError:
                        break
                    if n < 20 or buf[0] >> 4 != 4:
                        continue
                    peer = lookup(bytes(mv[16:20]))
                    if peer is None:
                        continue
                    try:
                        sendto(mv[:n], (peer, 0))
                    except OSError:            # EPERM (netfilter drop), EMSGSIZE, ENOBUFS...: lost, as on a wire
                        pass
            else:                              # decapsulate
                for _ in range(BURST):
                    try:
                        n = recv_into(buf)
                    except BlockingIOError:
                        break
                    ihl = (buf[0] & 0x0F) * 4
                    if n - ihl < 20 or buf[ihl] >> 4 != 4:
                        continue
                    try:
                        write(tun, mv[ihl:n])
                    except OSError:
                        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", default="tunl0")
    ap.add_argument("--ready")
    ap.add_argument("--daemon", action="store_true", help="fork into the background (when started by nsenter)")
    ap.add_argument("--log", help="stdout/stderr of the daemon (with --daemon)")
    ap.add_argument("routes", nargs="*", metavar="BLOCK=NODE_IP")
    args = ap.parse_args()
    if args.daemon:
        if os.fork():
            os._exit(0)
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if args.log else null
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
    try:
        run(args)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
