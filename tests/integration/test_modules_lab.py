"""The node modules over real SSH with Ansible against the lab cluster (root only).

Per mode (ipip, vxlan, bgp): route_info finds the pod veth and the tunnel next hop; captures on
every hop of both nodes see the SYN of a probe from 172.17.25.79 to 172.17.25.239:443; port 444
is refused. Once: a capture nobody stops is gone after its deadline; the next start prunes an old
leftover (and not a capture kept on purpose, which older_than removes); injection attempts in every
string argument are refused and nothing runs; an unknown interface gets a clear error.
"""
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from lab import labctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "tests", "lab", "lab.py")
INVENTORY = os.path.join(ROOT, ".lab", "inventory.ini")
PY = os.path.join(ROOT, ".venv", "bin", "python")
BIN = os.path.join(ROOT, ".venv", "bin")
SRC, DST = "172.17.25.79", "172.17.25.239"
NODE_A, NODE_B = "10.240.128.12", "10.240.0.9"
DIR = "/var/tmp/hoptrace-it"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    pytest.mark.skipif(not os.path.exists(LAB), reason="tests/lab/lab.py is not there"),
]

# interfaces per mode: (node, interface, filter) — request-path hops in order
TUNNEL = {"ipip": "tunl0", "vxlan": "vxlan.calico", "bgp": None}
UNDERLAY_FILTER = {
    "ipip": "ip proto 4 and host {peer}",
    "vxlan": "udp port 4789 and host {peer}",
    "bgp": "host %s and host %s and tcp port 443" % (SRC, DST),
}
POD_FILTER = "host %s and host %s and tcp port 443" % (SRC, DST)


pytest_plugins = ["lab.fixtures"]


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_TIMEOUT="10",
                ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_DEPRECATION_WARNINGS="0",
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def adhoc(host, module, args, check=False):
    """One module on one host over SSH (``check``: in check mode); returns its result dict."""
    out = subprocess.run([os.path.join(BIN, "ansible"), "-i", INVENTORY, host, "-m", module, "-a", json.dumps(args)]
                         + (["--check"] if check else []), cwd=ROOT, env=env(), capture_output=True, text=True,
                         timeout=60).stdout
    match = re.search(r"^%s \| (\S+)(?: \| rc=\d+)? => " % re.escape(host), out, re.M)
    assert match, out
    return json.JSONDecoder().raw_decode(out[match.end():])[0]


def playbook(tmp_path, plays):
    """Run plays; they write what they register to tmp_path/out.json through the `save` var."""
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", INVENTORY, str(path),
                           "-e", "out=%s" % (tmp_path / "out.json")], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(str(tmp_path / "out.json")) as handle:
        return json.load(handle)


def save(expr):
    return {"name": "save results", "delegate_to": "localhost", "run_once": True,
            "ansible.builtin.copy": {"content": "{{ %s | to_json }}" % expr, "dest": "{{ out }}", "mode": "0600"}}


@pytest.fixture(scope="module", params=["ipip", "vxlan", "bgp"])
def lab(request, lab_factory):
    lab_factory(request.param, 2)
    return request.param


def test_route_info_finds_pod_veth_and_next_hop(lab):
    a = adhoc("node-a", "hoptrace.k8s.route_info", {"ip": DST})
    assert a["changed"] is False and a["hostname"] == "node-a"
    assert {"ip": SRC, "dev": "cali41f14107a8d"} in a["workloads"]
    assert "172.17.25.64/26" in a["local_blocks"] or lab == "bgp"
    block = [b for b in a["remote_blocks"] if b["dst"] == "172.17.25.192/26"]
    assert len(block) == 1, a["remote_blocks"]
    block = block[0]
    if lab == "ipip":
        assert (block["via"], block["dev"], block["encap"], block["node_ip"]) == (NODE_B, "tunl0", "ipip", NODE_B)
        assert [r for r in a["routes"] if r["dst"] == "172.17.25.192/26"][0]["flags"] == ["onlink"]
        assert [k for k in a["links"] if k["ifname"] == "tunl0"][0]["kind"] == "ipip"
    elif lab == "vxlan":
        assert (block["dev"], block["encap"], block["node_ip"]) == ("vxlan.calico", "vxlan", NODE_B)
        vx = [k for k in a["links"] if k["ifname"] == "vxlan.calico"][0]
        assert vx["vxlan"]["id"] == 4096 and vx["vxlan"]["port"] == 4789
    else:
        assert (block["via"], block["dev"], block["encap"]) == (NODE_B, "eth0", "none")
    assert {"node_ip": NODE_B, "dev": "eth0", "src": NODE_A} == dict(
        (k, [p for p in a["peers"] if p["node_ip"] == NODE_B][0][k]) for k in ("node_ip", "dev", "src"))
    assert a["node_ips"] == [NODE_A]
    assert a["route_get"]["dst"] == DST


def hops(mode):
    tunnel = TUNNEL[mode]
    a = [("node-a", "cali41f14107a8d", POD_FILTER)]
    b = []
    if tunnel:
        a.append(("node-a", tunnel, POD_FILTER))
        b.append(("node-b", tunnel, POD_FILTER))
    a.append(("node-a", "eth0", UNDERLAY_FILTER[mode].format(peer=NODE_B)))
    b.insert(0, ("node-b", "eth0", UNDERLAY_FILTER[mode].format(peer=NODE_A)))
    b.append(("node-b", "calic25e805a467", POD_FILTER))
    return a + b


def test_captures_on_every_hop_see_the_syn(lab, tmp_path):
    caps = [{"node": n, "id": "htmod-%s-%s-%s" % (lab, n, i.replace(".", "_")), "interface": i, "filter": f}
            for n, i, f in hops(lab)]
    plays = [
        {"hosts": "nodes", "gather_facts": False, "tasks": [
            {"name": "start", "hoptrace.k8s.capture": {"id": "{{ item.id }}", "interface": "{{ item.interface }}",
                                                         "filter": "{{ item.filter }}", "deadline": 60, "directory": DIR},
             "loop": "{{ caps | selectattr('node', 'equalto', inventory_hostname) | list }}", "register": "started"}],
         "vars": {"caps": caps}},
        {"hosts": "node-a", "gather_facts": False, "tasks": [
            {"name": "probe 443", "hoptrace.k8s.probe": {"src": SRC, "dst": DST, "port": 443}, "register": "p443"},
            {"name": "probe 444", "hoptrace.k8s.probe": {"src": SRC, "dst": DST, "port": 444}, "register": "p444"}]},
        {"hosts": "nodes", "gather_facts": False, "vars": {"caps": caps}, "tasks": [
            {"name": "stop", "hoptrace.k8s.capture": {"id": "{{ item.id }}", "state": "stopped", "directory": DIR},
             "loop": "{{ caps | selectattr('node', 'equalto', inventory_hostname) | list }}", "register": "stopped"},
            {"name": "read", "ansible.builtin.command": {"argv": ["tcpdump", "-nn", "-r", "{{ item.file }}"]},
             "loop": "{{ stopped.results }}", "register": "read", "changed_when": False},
            {"name": "remove", "hoptrace.k8s.capture": {"id": "{{ item.id }}", "state": "absent", "directory": DIR},
             "loop": "{{ caps | selectattr('node', 'equalto', inventory_hostname) | list }}", "register": "removed"},
            save("{%s, 'p443': hostvars['node-a'].p443, 'p444': hostvars['node-a'].p444}" % ", ".join(
                "'%s': [hostvars['%s'].started, hostvars['%s'].stopped, hostvars['%s'].read, hostvars['%s'].removed]"
                % ((n,) * 5) for n in ("node-a", "node-b")))]},
    ]
    out = playbook(tmp_path, plays)
    assert out["p443"]["ok"] is True and out["p443"]["status"] == "connected", out["p443"]
    assert out["p444"]["status"] == "refused" and out["p444"]["ok"] is False
    seen = 0
    for node in ("node-a", "node-b"):
        started, stopped, read, removed = out[node]
        for s in started["results"]:
            assert s["changed"] and s["pid"] and s["started_at"] < s["deadline_at"]
        for st, rd in zip(stopped["results"], read["results"]):
            assert st["ended_by"] == "stopped" and st["captured"] >= 1 and st["dropped"] == 0, st
            assert st["received"] >= st["captured"] and st["size"] > 24
            assert re.search(r"%s\.\d+ > %s\.443: Flags \[S\]" % (re.escape(SRC), re.escape(DST)), rd["stdout"]), \
                (st["id"], rd["stdout"])
            seen += 1
        assert all(r["changed"] for r in removed["results"])
    assert seen == len(hops(lab))


@pytest.mark.parametrize("inline_max", [8 * 1024 * 1024, 1], ids=["inline", "slurped"])
def test_stop_brings_every_capture_to_the_controller(lab, tmp_path, inline_max):
    """One run arms, one stops all of a node's captures; `dest` writes them on the controller
    (from the stop's result, or slurped when larger than content_max_size) and the node keeps none."""
    if lab != "ipip":
        pytest.skip("once is enough")
    caps = [{"id": "htmod-batch-%s" % i.replace(".", "_"), "interface": i, "filter": f}
            for n, i, f in hops(lab) if n == "node-a"]
    dest = tmp_path / "run" / "node-a"
    plays = [{"hosts": "node-a", "gather_facts": False, "tasks": [
        {"name": "start", "hoptrace.k8s.capture": {"captures": caps, "deadline": 60, "directory": DIR}, "register": "started"},
        {"name": "probe", "hoptrace.k8s.probe": {"src": SRC, "dst": DST, "port": 443}},
        {"name": "stop", "hoptrace.k8s.capture": {"captures": [{"id": c["id"]} for c in caps], "state": "stopped",
                                                   "dest": str(dest), "remove_returned": True, "content_max_size": inline_max,
                                                   "directory": DIR}, "register": "stopped"},
        {"name": "left", "ansible.builtin.command": {"argv": ["ls", "-A", DIR]}, "register": "left", "changed_when": False},
        save("{'started': started, 'stopped': stopped, 'left': left.stdout_lines}")]}]
    out = playbook(tmp_path, plays)
    assert [c["interface"] for c in out["started"]["captures"]] == [c["interface"] for c in caps]
    for cap, result in zip(caps, out["stopped"]["captures"]):
        path = dest / ("%s.pcap" % cap["interface"])
        assert result["dest"] == str(path) and "content" not in result
        assert path.stat().st_size == result["size"] > 24
        text = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"%s\.\d+ > %s\.443: Flags \[S\]" % (re.escape(SRC), re.escape(DST)), text), (cap, text)
    assert out["left"] == []


def _tcpdumps(marker):
    proc = subprocess.run(["pgrep", "-f", marker], stdout=subprocess.PIPE, text=True)
    return proc.stdout.split()


def test_deadline_ends_a_forgotten_capture(lab):
    if lab != "ipip":
        pytest.skip("once is enough")
    cid = "htmod-deadline"
    # the deadline leaves room for the second ad-hoc call on a loaded machine (each takes 1-3 s): the
    # capture must still be running when it asks again
    deadline = 8
    started = adhoc("node-a", "hoptrace.k8s.capture", {"id": cid, "interface": "eth0", "filter": "tcp port 9",
                                                        "deadline": deadline, "directory": DIR})
    assert started["changed"] and started["listen_ms"] < 2000
    assert round(started["deadline_at"] - started["started_at"]) == deadline
    again = adhoc("node-a", "hoptrace.k8s.capture", {"id": cid, "interface": "eth0", "filter": "tcp port 9",
                                                      "deadline": deadline, "directory": DIR})
    assert time.time() < started["deadline_at"], "the second call came after the deadline: the machine is too slow for this test"
    assert again["changed"] is False and again["pid"] == started["pid"]
    assert _tcpdumps("%s/%s.pcap" % (DIR, cid))
    time.sleep(max(0.0, started["deadline_at"] - time.time()) + 1.0)
    # the node's own timer ends it: give a loaded machine a few seconds more, not forever
    assert labctl.wait_for(lambda: _tcpdumps("%s/%s.pcap" % (DIR, cid)) == [], 5, step=0.25)
    stopped = adhoc("node-a", "hoptrace.k8s.capture", {"id": cid, "state": "stopped", "directory": DIR})
    assert stopped["ended_by"] == "deadline" and stopped["captured"] == 0 and stopped["changed"] is False
    adhoc("node-a", "hoptrace.k8s.capture", {"id": cid, "state": "absent", "directory": DIR})


def listing(node, directory):
    return labctl.exec_in_node(node, ["sh", "-c", "ls -A %s 2>/dev/null; true" % directory]).stdout.split()


def test_the_next_start_prunes_old_leftovers(lab):
    """A capture nobody stopped (its controller went away) is pruned by the next start once its deadline is
    more than 10 minutes past; one stopped with its files kept is not, and older_than removes it. The
    files are aged by rewriting the times in their state file and their mtimes, not by waiting 10 minutes."""
    if lab != "ipip":
        pytest.skip("once is enough")
    directory = DIR + "-prune"
    labctl.exec_in_node("node-a", ["rm", "-rf", directory])
    base = {"interface": "eth0", "filter": "tcp port 9", "deadline": 1, "directory": directory}
    assert adhoc("node-a", "hoptrace.k8s.capture", dict(base, id="htmod-old-eth0"))["changed"]
    assert adhoc("node-a", "hoptrace.k8s.capture", dict(base, id="htmod-kept-eth0"))["changed"]
    time.sleep(2.0)
    kept = adhoc("node-a", "hoptrace.k8s.capture", {"id": "htmod-kept-eth0", "state": "stopped", "directory": directory})
    assert kept["ended_by"] == "deadline"
    old = ["htmod-old-eth0.log", "htmod-old-eth0.pcap", "htmod-old-eth0.state.json"]
    kept = ["htmod-kept-eth0.log", "htmod-kept-eth0.pcap", "htmod-kept-eth0.state.json"]
    assert sorted(listing("node-a", directory)) == sorted(old + kept)
    labctl.age_captures("node-a", directory, "htmod-", 700)
    new = dict(base, id="htmod-new-eth0", deadline=30)
    # check mode says what it would prune and removes nothing
    dry = adhoc("node-a", "hoptrace.k8s.capture", new, check=True)
    assert dry["pruned"] == old and dry["changed"] is True and dry["pid"] is None
    assert sorted(listing("node-a", directory)) == sorted(old + kept)
    started = adhoc("node-a", "hoptrace.k8s.capture", new)
    assert started["pruned"] == old and started["pid"]
    assert sorted(listing("node-a", directory)) == sorted(kept + ["htmod-new-eth0.log", "htmod-new-eth0.pcap",
                                                                  "htmod-new-eth0.state.json"])
    # the runbook clean-up: every capture file older than 600 s, not the running capture
    dry = adhoc("node-a", "hoptrace.k8s.capture", {"state": "absent", "older_than": 600, "directory": directory}, check=True)
    assert dry["removed"] == ["%s/%s" % (directory, n) for n in kept] and len(listing("node-a", directory)) == 6
    cleaned = adhoc("node-a", "hoptrace.k8s.capture", {"state": "absent", "older_than": 600, "directory": directory})
    assert cleaned["removed"] == ["%s/%s" % (directory, n) for n in kept] and cleaned["changed"] is True
    running = adhoc("node-a", "hoptrace.k8s.capture", {"state": "absent", "older_than": 0, "directory": directory})
    assert running["removed"] == [] and running["changed"] is False       # its tcpdump is still running
    assert _tcpdumps("%s/htmod-new-eth0.pcap" % directory)
    adhoc("node-a", "hoptrace.k8s.capture", {"id": "htmod-new-eth0", "state": "absent", "directory": directory})
    assert listing("node-a", directory) == [] and _tcpdumps("%s/htmod-new-eth0.pcap" % directory) == []


BAD = ["eth0; touch /tmp/htmod-pwned", "$(touch /tmp/htmod-pwned)", "-w /tmp/htmod-pwned.pcap", "eth0\ntouch /tmp/htmod-pwned"]


def test_injection_is_refused_and_nothing_runs(lab, tmp_path):
    if lab != "ipip":
        pytest.skip("once is enough")
    cases = []
    for bad in BAD:
        cases.append({"id": bad, "interface": "eth0", "filter": "icmp", "directory": DIR})
        cases.append({"id": "htmod-inj", "interface": bad, "filter": "icmp", "directory": DIR})
        cases.append({"id": "htmod-inj", "interface": "eth0", "filter": bad, "directory": DIR})
        cases.append({"id": "htmod-inj", "interface": "eth0", "filter": "icmp", "directory": "/var/tmp/" + bad})
    # BPF operators pass the character check (the filter is an argv element); tcpdump -d refuses these
    cases.append({"id": "htmod-inj", "interface": "eth0", "filter": "icmp | tee /tmp/htmod-pwned", "directory": DIR})
    cases.append({"id": "htmod-inj", "interface": "eth0", "filter": "icmp > /tmp/htmod-pwned", "directory": DIR})
    probes = [{"src": bad, "dst": DST, "port": 443} for bad in BAD] + [{"src": SRC, "dst": bad, "port": 443} for bad in BAD]
    before = set(_tcpdumps("tcpdump"))
    plays = [{"hosts": "node-a", "gather_facts": False, "tasks": [
        {"name": "bad capture", "hoptrace.k8s.capture": {k: "{{ item.%s }}" % k for k in ("id", "interface", "filter", "directory")},
         "loop": cases, "register": "caps",
         "ignore_errors": True},
        {"name": "bad probe", "hoptrace.k8s.probe": {k: "{{ item.%s }}" % k for k in ("src", "dst", "port")}, "loop": probes, "register": "probes",
         "ignore_errors": True},
        {"name": "unknown interface", "hoptrace.k8s.capture": {"id": "htmod-inj", "interface": "ethX", "directory": DIR},
         "register": "unknown", "ignore_errors": True},
        save("{'caps': caps, 'probes': probes, 'unknown': unknown}")]}]
    out = playbook(tmp_path, plays)
    for result in out["caps"]["results"] + out["probes"]["results"]:
        assert result["failed"] and "pid" not in result, result
        assert any(w in result["msg"] for w in ("is not allowed", "is not a valid interface name", "contains",
                                                "looks like a tcpdump option", "is not an IP address",
                                                "shell or control characters", "has a component",
                                                "does not compile")), result["msg"]
    assert out["unknown"]["failed"]
    assert re.match(r"interface 'ethX' does not exist on node-a: pick one of .*\beth0\b", out["unknown"]["msg"])
    assert not os.path.exists("/tmp/htmod-pwned") and not os.path.exists("/tmp/htmod-pwned.pcap")
    check = labctl.exec_in_node("node-a", ["sh", "-c", "ls /tmp/htmod-pwned* %s/htmod-inj* 2>/dev/null; true" % DIR])
    assert check.stdout.strip() == "", check.stdout
    assert set(_tcpdumps("tcpdump")) - before == set()
