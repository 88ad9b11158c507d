"""The lab behaves like a Calico cluster: HTTPS between all pods in every mode, tcpdump on the
underlay sees the encapsulated SYN with the inner pod addresses, Ansible reaches the nodes over
SSH, faults break and restore the flow, and `down` leaves nothing behind. Root only.
"""
import os
import re
import socket
import struct
import subprocess

import pytest

from lab import labctl

pytest_plugins = ["lab.fixtures"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

SRC, DST, SAME = "172.17.25.79", "172.17.25.239", "172.17.25.66"
NODE_A, NODE_B = "10.240.128.12", "10.240.0.9"


def ip_hex(ip):
    return "0x%08x" % struct.unpack("!I", socket.inet_aton(ip))[0]


def curl(src, dst, timeout=5, path="/"):
    return labctl.exec_in_pod(src, ["curl", "-sk", "--max-time", str(timeout), "https://%s%s" % (dst, path)], timeout=timeout + 10)


def assert_all_pairs(pods):
    for a in pods:
        for b in pods:
            if a is b:
                continue
            r = curl(a["ip"], b["ip"])
            assert r.returncode == 0, "curl %s -> %s: rc %d %s" % (a["ip"], b["ip"], r.returncode, r.stderr)
            assert r.stdout.strip() == "pod %s/%s %s on %s" % (b["namespace"], b["name"], b["ip"], b["node"]), r.stdout


def capture_syn(node, iface, bpf, tmp_path, src=SRC, dst=DST):
    """tcpdump in the node's netns while src curls dst; returns (pcap bytes, `tcpdump -r` text, listen line)."""
    pcap = str(tmp_path / ("%s-%s.pcap" % (node, iface)))
    argv = labctl.netns_argv(node, ["tcpdump", "-i", iface, "-nn", "-U", "--immediate-mode", "-c", "1", "-w", pcap, bpf])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listening = proc.stderr.readline()          # "listening on IFACE, link-type ..." once armed
        assert "listening on" in listening, listening + proc.stderr.read()
        r = curl(src, dst)
        assert r.returncode == 0, r.stderr
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = subprocess.run(["tcpdump", "-r", pcap, "-nn", "-v"], capture_output=True, text=True).stdout
    with open(pcap, "rb") as f:
        return f.read(), text, listening


def first_packet(pcap):
    """The first record's bytes of a classic pcap file."""
    caplen = struct.unpack("<I", pcap[24 + 8:24 + 12])[0]
    return pcap[24 + 16:24 + 16 + caplen]


def assert_inner_syn(ip_bytes):
    """ip_bytes: an IPv4 packet carrying TCP from SRC to DST:443 with only SYN set."""
    assert ip_bytes[0] >> 4 == 4 and ip_bytes[9] == 6
    assert socket.inet_ntoa(ip_bytes[12:16]) == SRC and socket.inet_ntoa(ip_bytes[16:20]) == DST
    tcp = ip_bytes[(ip_bytes[0] & 0x0F) * 4:]
    assert struct.unpack("!H", tcp[2:4])[0] == 443
    assert tcp[13] & 0x3F == 0x02, "flags 0x%02x" % tcp[13]


# ---------------------------------------------------------------- ipip
def test_ipip_routes_veths_and_tunnel(lab_factory):
    lab = lab_factory("ipip", 2)
    src = [p for p in lab["pods"] if p["ip"] == SRC][0]
    dst = [p for p in lab["pods"] if p["ip"] == DST][0]
    assert (src["namespace"], src["name"], src["node"], src["node_ip"], src["veth"]) == (
        "openshift-ingress", "router-default-77949c967-4t8f7", "node-a", NODE_A, "cali41f14107a8d")
    assert (dst["name"], dst["node"], dst["node_ip"], dst["veth"]) == ("router-default-77949c967-tgth7", "node-b", NODE_B, "calic25e805a467")
    routes = labctl.exec_in_node("node-a", ["ip", "route"], check=True).stdout
    assert "172.17.25.192/26 via 10.240.0.9 dev tunl0 proto bird onlink" in routes
    assert "172.17.25.79 dev cali41f14107a8d scope link" in routes
    assert "blackhole 172.17.25.64/26 proto bird" in routes
    assert labctl.exec_in_node("node-a", ["hostname"], check=True).stdout.strip() == "node-a"
    link = labctl.exec_in_node("node-b", ["ip", "-d", "link", "show", "tunl0"], check=True).stdout
    assert "mtu 1480" in link and "tun type tun pi off" in link
    # the node's process list is its own and shows the pod server in the pod's netns (like a pause process)
    ps = labctl.exec_in_node("node-b", ["ps", "-eo", "pid,args"], check=True).stdout
    assert re.search(r"^\s*1 .*nodeinit\.py node-b", ps, re.M), ps
    pod_ino = os.stat("/var/run/netns/%s" % dst["netns"]).st_ino
    found = labctl.exec_in_node("node-b", ["sh", "-c", "for p in /proc/[0-9]*; do readlink $p/ns/net; done"]).stdout
    assert "net:[%d]" % pod_ino in found


def test_ipip_all_pods_reach_each_other(lab_factory):
    lab = lab_factory("ipip", 2)
    assert_all_pairs(lab["pods"])


def test_ipip_underlay_capture_sees_inner_syn(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    assert ip_hex(DST) == "0xac1119ef" and ip_hex(SRC) == "0xac11194f"
    pcap, text, _ = capture_syn("node-a", "eth0", "ip proto 4 and ip[36:4]==0xac1119ef", tmp_path)
    frame = first_packet(pcap)
    outer = frame[14:]
    assert outer[9] == 4 and socket.inet_ntoa(outer[12:16]) == NODE_A and socket.inet_ntoa(outer[16:20]) == NODE_B
    assert_inner_syn(outer[20:])
    assert re.search(r"10\.240\.128\.12 > 10\.240\.0\.9: .*\n?.*172\.17\.25\.79\.\d+ > 172\.17\.25\.239\.443: Flags \[S\]", text), text


def test_ipip_tunl0_is_raw(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    pcap, text, listening = capture_syn("node-b", "tunl0", "host %s and host %s" % (SRC, DST), tmp_path)
    assert "link-type RAW" in listening
    assert struct.unpack("<I", pcap[20:24])[0] in (101, 12, 14)        # LINKTYPE_RAW (DLT_RAW values)
    assert_inner_syn(first_packet(pcap))


def test_same_node_is_veth_to_veth(lab_factory, tmp_path):
    lab_factory("ipip", 2)
    got = labctl.exec_in_node("node-a", ["ip", "route", "get", SAME], check=True).stdout
    assert "dev cali2a1ec19d610" in got and "tunl0" not in got
    pcap, _, _ = capture_syn("node-a", "cali2a1ec19d610", "tcp and host %s" % SRC, tmp_path, dst=SAME)
    ip_bytes = first_packet(pcap)[14:]
    assert socket.inet_ntoa(ip_bytes[12:16]) == SRC and socket.inet_ntoa(ip_bytes[16:20]) == SAME


def test_ansible_reaches_nodes_over_ssh(lab_factory):
    lab = lab_factory("ipip", 2)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(labctl.ROOT, "ansible.cfg"))
    ansible = os.path.join(labctl.ROOT, ".venv", "bin", "ansible")
    r = subprocess.run([ansible, "nodes", "-i", lab["inventory"], "-m", "ping", "-vvv"], cwd=labctl.ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"^node-a \| SUCCESS", r.stdout, re.M) and re.search(r"^node-b \| SUCCESS", r.stdout, re.M), r.stdout
    assert "ESTABLISH SSH CONNECTION FOR USER: root" in r.stdout
    assert "10.240.128.12" in r.stdout and "10.240.0.9" in r.stdout
    r = subprocess.run([ansible, "node-b", "-i", lab["inventory"], "-m", "command", "-a", "hostname"], cwd=labctl.ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^node-b \| CHANGED \| rc=0 >>\nnode-b$", r.stdout, re.M), r.stdout


def test_faults_break_and_restore(lab_factory):
    lab_factory("ipip", 2)
    flow = dict(src=SRC, dst=DST, proto="tcp", port=443)
    for node, iface, direction in (("node-b", "tunl0", "in"), ("node-a", "eth0", "out")):
        f = labctl.fault_add("drop", node=node, iface=iface, direction=direction, **flow)
        assert [x["id"] for x in labctl.faults()] == [f["id"]]
        assert curl(SRC, DST, timeout=1).returncode != 0, (node, iface, direction)
        assert curl(SAME, DST, timeout=5).returncode == 0                 # only that flow is dropped
        labctl.fault_clear()
        assert curl(SRC, DST).returncode == 0, (node, iface, direction)
    labctl.fault_add("ipipd-down", node="node-b")
    assert curl(SRC, DST, timeout=1).returncode != 0
    labctl.fault_add("sshd-down", node="node-b")
    with pytest.raises(OSError):
        socket.create_connection((NODE_B, 22), timeout=2).close()
    st = labctl.status()
    assert [(n["name"], n["sshd"], n["ipipd"]) for n in st["nodes"]] == [("node-a", True, True), ("node-b", False, False)]
    labctl.fault_clear()
    socket.create_connection((NODE_B, 22), timeout=2).close()
    assert curl(SRC, DST).returncode == 0
    assert labctl.faults() == []


def ssh_true(node, timeout=6):
    """`ssh node true` over the lab's ssh_config; a hang past `timeout` seconds counts as failure."""
    try:
        r = subprocess.run(["ssh", "-F", labctl.ssh_config_path(), "-o", "ConnectTimeout=3", "-o", "BatchMode=yes", node, "true"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def test_freeze_fault_hangs_ssh(lab_factory):
    lab_factory("ipip", 2)
    assert ssh_true("node-b")
    f = labctl.fault_add("freeze", node="node-b")
    assert f["pids"], f
    assert not ssh_true("node-b")                                            # hangs (or times out), not answered
    assert ssh_true("node-a")
    st = labctl.status()
    assert [(n["name"], n["podserver"], n["ipipd"]) for n in st["nodes"]] == [("node-a", True, True), ("node-b", True, True)]
    assert curl(SRC, DST).returncode == 0                                    # only sshd is stopped
    labctl.fault_clear()
    assert ssh_true("node-b")
    assert labctl.faults() == []


# ---------------------------------------------------------------- vxlan, bgp
def test_vxlan(lab_factory, tmp_path):
    lab = lab_factory("vxlan", 2)
    assert_all_pairs(lab["pods"])
    routes = labctl.exec_in_node("node-a", ["ip", "route"], check=True).stdout
    assert "172.17.25.192/26 via 172.17.25.192 dev vxlan.calico proto bird onlink" in routes
    link = labctl.exec_in_node("node-a", ["ip", "-d", "link", "show", "vxlan.calico"], check=True).stdout
    assert "vxlan id 4096" in link and "dstport 4789" in link and "mtu 1450" in link
    # inner destination at 20 (IP) + 8 (UDP) + 8 (VXLAN) + 14 (Ethernet) + 16 = 66
    pcap, text, _ = capture_syn("node-a", "eth0", "udp port 4789 and ip[66:4]==%s" % ip_hex(DST), tmp_path)
    outer = first_packet(pcap)[14:]
    assert socket.inet_ntoa(outer[12:16]) == NODE_A and socket.inet_ntoa(outer[16:20]) == NODE_B
    assert struct.unpack("!H", outer[22:24])[0] == 4789
    assert struct.unpack("!I", outer[32:36])[0] >> 8 == 4096                 # VNI
    assert_inner_syn(outer[50:])
    assert "VXLAN" in text and "172.17.25.79" in text
    f = labctl.fault_add("drop", node="node-a", iface="eth0", direction="out", src=SRC, dst=DST, proto="tcp", port=443)
    assert curl(SRC, DST, timeout=1).returncode != 0
    labctl.fault_del(f["id"])
    assert curl(SRC, DST).returncode == 0


def test_flannel(lab_factory, tmp_path):
    lab = lab_factory("flannel", 2)
    assert_all_pairs(lab["pods"])
    src, dst = "10.244.0.2", "10.244.1.2"
    routes = labctl.exec_in_node("node-a", ["ip", "route"], check=True).stdout
    assert "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink" in routes
    assert "10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1" in routes and "cali" not in routes
    link = labctl.exec_in_node("node-a", ["ip", "-d", "link", "show", "flannel.1"], check=True).stdout
    assert "vxlan id 1 " in link and "dstport 8472" in link and "nolearning" in link and "mtu 1450" in link
    assert "6e:66:6c:00:00:01 dst 10.240.0.9 self permanent" in labctl.exec_in_node(
        "node-a", ["bridge", "fdb", "show", "dev", "flannel.1"], check=True).stdout
    assert "10.244.1.0 lladdr 6e:66:6c:00:00:01 PERMANENT" in labctl.exec_in_node(
        "node-a", ["ip", "neigh", "show", "dev", "flannel.1"], check=True).stdout
    ports = labctl.exec_in_node("node-a", ["ip", "-o", "link", "show", "master", "cni0"], check=True).stdout
    assert re.findall(r"\d+: (veth[0-9a-f]{8})@", ports) == ["veth7d27950a", "veth5002c6d0"]
    # the node knows its pods behind cni0 (neighbour IP -> MAC, bridge fdb MAC -> veth)
    neigh = labctl.exec_in_node("node-a", ["ip", "neigh", "show", "dev", "cni0"], check=True).stdout
    mac = re.search(r"^10\.244\.0\.2 lladdr (\S+)", neigh, re.M).group(1)
    assert "%s dev veth7d27950a master cni0" % mac in labctl.exec_in_node(
        "node-a", ["bridge", "fdb", "show", "br", "cni0"], check=True).stdout
    pcap, text, _ = capture_syn("node-a", "eth0", "udp port 8472 and ip[66:4]==%s" % ip_hex(dst), tmp_path, src, dst)
    outer = first_packet(pcap)[14:]
    assert socket.inet_ntoa(outer[12:16]) == NODE_A and socket.inet_ntoa(outer[16:20]) == NODE_B
    assert struct.unpack("!H", outer[22:24])[0] == 8472
    assert struct.unpack("!I", outer[32:36])[0] >> 8 == 1                    # VNI
    inner = outer[50:]
    assert (socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20]), inner[9]) == (src, dst, 6)
    f = labctl.fault_add("drop", node="node-a", iface="eth0", direction="out", src=src, dst=dst, proto="tcp", port=443)
    assert curl(src, dst, timeout=1).returncode != 0
    labctl.fault_del(f["id"])
    assert curl(src, dst).returncode == 0


def test_bgp(lab_factory, tmp_path):
    lab = lab_factory("bgp", 2)
    assert_all_pairs(lab["pods"])
    routes = labctl.exec_in_node("node-a", ["ip", "route"], check=True).stdout
    assert "172.17.25.192/26 via 10.240.0.9 dev eth0 proto bird" in routes and "tunl0" not in routes
    pcap, _, _ = capture_syn("node-a", "eth0", "host %s" % DST, tmp_path)
    assert_inner_syn(first_packet(pcap)[14:])


# ---------------------------------------------------------------- teardown
def lab_leftovers():
    netns = [n for n in os.listdir("/var/run/netns") if n.startswith(("ht-node-", "ht-pod-"))] if os.path.isdir("/var/run/netns") else []
    links = [n for n in os.listdir("/sys/class/net") if n == "htbr0" or n.startswith("ht-node-")]
    with open("/proc/mounts") as f:
        mounts = [line for line in f if "/netns/ht-node-" in line or "/netns/ht-pod-" in line]
    procs = subprocess.run(["pgrep", "-f", r"tests/lab/(nodeinit|podserver|ipipd)\.py|sshd_config\.node-"], capture_output=True, text=True).stdout.split()
    procs = [p for p in procs if int(p) != os.getpid()]
    return netns, links, mounts, procs


def test_down_leaves_nothing(lab_factory):
    lab_factory("ipip", 2)
    labctl.fault_add("freeze", node="node-b")                                # stopped sshd must not block down
    labctl.down()
    assert lab_leftovers() == ([], [], [], [])
    labctl.down()                                                            # idempotent
    assert "ht-node-a" not in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    assert "htbr0" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    assert not os.path.exists(labctl.inventory_path())
