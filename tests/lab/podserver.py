"""HTTPS servers for the pods of one lab node.

Started inside the node's namespaces; forks one process per pod that enters the pod's
network namespace (so on the node, /proc/<pid>/ns/net of that process is the pod's netns,
like a pause container) and serves HTTPS on 443:
  GET /          -> "pod <namespace>/<name> <ip> on <node>\n"
  GET /bytes/N   -> N bytes (N <= 64 MiB), for MTU and throughput checks

Usage: podserver.py --cert C --key K --ready FILE --node NODE POD_SPEC...
POD_SPEC: namespace/name=ip=netns_path[=ip6]   (a dual-stack pod also serves on its IPv6 address)
"""
import argparse
import ctypes
import ctypes.util
import os
import signal
import socket
import ssl
import sys
import threading

CLONE_NEWNET = 0x40000000
CHUNK = b"x" * 65536


def enter_netns(path):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns %s: %s" % (path, os.strerror(err)))
    os.close(fd)


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1").split()
    return line[1] if len(line) >= 2 else "/"


def handle(ctx, raw, banner):
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(30)
        conn = ctx.wrap_socket(raw, server_side=True)
        path = read_request(conn)
        if path is None:
            return
        size = None
        if path.startswith("/bytes/"):
            try:
                size = min(int(path[len("/bytes/"):]), 64 << 20)
            except ValueError:
                size = None
        if size is None:
            body = banner
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            left = size
            while left > 0:
                n = min(left, len(CHUNK))
                conn.sendall(CHUNK[:n])
                left -= n
        try:
            conn.unwrap()
        except (OSError, ssl.SSLError):
            pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()


def serve(pod, ip, netns_path, node, cert, key, ready_w, ip6=None):
    enter_netns(netns_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if ip6:        # one dual-stack socket: IPv4 clients arrive as ::ffff:a.b.c.d
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", 443))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 443))
    s.listen(128)
    os.write(ready_w, b"1")
    os.close(ready_w)
    banner = ("pod %s %s on %s\n" % (pod, ip, node)).encode()
    while True:
        raw, _ = s.accept()
        threading.Thread(target=handle, args=(ctx, raw, banner), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("pods", nargs="+")
    args = ap.parse_args()
    children = []
    ready_r, ready_w = os.pipe()
    for spec in args.pods:
        pod, ip, rest = spec.split("=", 2)
        path, _, ip6 = rest.partition("=")
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            try:
                serve(pod, ip, path, args.node, args.cert, args.key, ready_w, ip6 or None)
            except BaseException as exc:  # noqa: B036 - report and die, the parent notices
                sys.stderr.write("podserver %s: %s\n" % (pod, exc))
            os._exit(1)
        children.append(pid)
    os.close(ready_w)
    got = 0
    while got < len(children):
        b = os.read(ready_r, 64)
        if not b:
            sys.exit("podserver: a pod server failed to start")
        got += len(b)
    with open(args.ready, "w") as f:
        f.write("%d\n" % os.getpid())

    def stop(*_):
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except OSError:
                pass
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    while children:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)


if __name__ == "__main__":
    main()
