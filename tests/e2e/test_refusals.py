"""Every refused input is refused on the controller: no node is contacted (issue 16).

The inventory's hosts are all "unreachable" nodes whose ansible_host/ansible_port point at a
loopback listener that counts every connection attempt (tests/lab/biginv.py), so any contact
with a node is counted. Real ansible-playbook and real ssh; no lab needed, no traffic leaves
loopback. A last case runs a valid trace against the same inventory to show that the listener
does count the entry node's connection: the zero above cannot come from a deaf listener.
"""
import json
import os
import subprocess

import pytest
from test_trace import DST, SRC, _env

from lab import biginv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
PLAYBOOK = os.path.join(ROOT, "playbooks", "trace_flow.yml")


def _inventory(path, port, hosts=12):
    lines = ["[nodes]"] + ["worker-%02d ansible_host=127.0.0.1 ansible_port=%d" % (i, port) for i in range(1, hosts + 1)]
    lines += ["", "[empty]", "", "[nodes:vars]", "ansible_user=root",
              "ansible_ssh_common_args=-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ConnectTimeout=3"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(tmp_path, extra):
    out_dir = tmp_path / "out"
    with biginv.ConnectionCounter() as counter:
        inventory = _inventory(tmp_path / "inventory.ini", counter.port)
        settings = {"src": SRC, "dst": DST, "output_dir": str(out_dir)}
        settings.update(extra)
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings)]
        proc = subprocess.run(argv, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
        contacts = counter.count
    return proc.returncode, proc.stdout, contacts, out_dir


@pytest.mark.parametrize("extra, message", [
    ({"duration": -1}, "duration -1 is out of range: give an integer 1-3600"),
    ({"snaplen": 0}, "snaplen 0 is out of range: give an integer 64-262144"),
    ({"deadline": 0}, "deadline 0 is out of range: give an integer 5-3600"),
    ({"deadline": 4000}, "deadline 4000 is out of range: give an integer 5-3600"),
    ({"probe_timeout": 0}, "probe_timeout 0 is out of range: give an integer 1-300"),
    ({"entry_tries": 0}, "entry_tries 0 is out of range: give an integer 1-20"),
    ({"count": 0}, "count 0 is out of range: give an integer 1-1000"),
    ({"count": 100000}, "count 100000 is out of range: give an integer 1-1000"),
    ({"count": "20; reboot"}, "count 20; reboot is out of range: give an integer 1-1000"),
    ({"interval": -1}, "interval -1 is out of range: give a number 0-60 (fractions such as 0.2 are fine)"),
    ({"interval": "0.2$(reboot)"}, "interval 0.2$(reboot) is out of range: give a number 0-60"),
    ({"max_loss": 101}, "max_loss 101 is out of range: give a number 0-100 (fractions such as 0.2 are fine)"),
    ({"count": 1000, "interval": 0.5}, "count 1000 x interval 0.5 s + probe_timeout 3 s takes up to 503 s, longer than deadline 60 s"),
    ({"dport": 0}, "port 0 is out of range; give an integer 1-65535"),
    ({"dport": "443; reboot"}, "port '443; reboot' is not a port number; give an integer 1-65535"),
    ({"src": "10.0.0.1`reboot`"}, "src '10.0.0.1`reboot`' is neither an IP address nor namespace/pod"),
    ({"dst": "10.0.0.256"}, "dst '10.0.0.256' is neither an IP address nor namespace/pod"),
    ({"mode": "passive; reboot"}, "mode 'passive; reboot' is not supported; use one of probe, passive"),
    ({"keep_captures": "maybe"}, "keep_captures 'maybe' is not a yes/no value: give true or false"),
    ({"nodes": "empty"}, "empty"),
    ({"nodes": "no-such-group"}, "no-such-group"),
    ({"via": "worker-99"}, "via worker-99 is not a host of this inventory; name a node of the cluster (one of worker-01"),
    ({"junit": "/no/such/dir/junit.xml"},
     "junit /no/such/dir/junit.xml: directory /no/such/dir does not exist on the controller; create it or give another path"),
    ({"junit": "ci.xml; reboot"}, "junit 'ci.xml; reboot' has a character a path should not have"),
])
def test_refused_before_any_node_is_contacted(tmp_path, extra, message):
    rc, out, contacts, out_dir = _run(tmp_path, extra)
    assert rc != 0, out[-3000:]
    assert message in out, out[-3000:]
    assert contacts == 0, "a refused input still contacted %d node(s):\n%s" % (contacts, out[-3000:])
    assert not out_dir.exists(), "a refused input created the run folder"


def test_the_listener_counts_a_real_contact(tmp_path):
    rc, out, contacts, out_dir = _run(tmp_path, {"entry_tries": 2})
    assert rc != 0  # every entry candidate refuses the ssh connection
    assert contacts >= 2, out[-3000:]
