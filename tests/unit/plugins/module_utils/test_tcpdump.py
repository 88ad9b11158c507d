"""module_utils/_tcpdump: argv building and parsing of real tcpdump 4.99 stderr."""
import os

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td

LOGS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "tcpdump")


def log(name):
    with open(os.path.join(LOGS, name)) as handle:
        return handle.read()


@pytest.mark.parametrize("name,captured,received,dropped", [
    ("stopped_veth.log", 6, 6, 0),
    ("count_reached.log", 2, 2, 0),
    ("deadline_tun.log", 0, 0, 0),
    ("deadline_any.log", 0, 0, 0),
    ("no_such_device.log", None, None, None),
])
def test_counts_from_real_logs(name, captured, received, dropped):
    counts = td.parse_counts(log(name))
    assert (counts["captured"], counts["received"], counts["dropped"]) == (captured, received, dropped)


def test_counts_other_wordings():
    # older libpcap wording and the interface drop line some drivers add (synthetic text)
    text = "1 packet captured\n5 packets received by filter\n3 packets dropped by kernel\n2 packets dropped by interface\n"
    assert td.parse_counts(text) == {"captured": 1, "received": 5, "dropped": 3, "dropped_by_interface": 2}


@pytest.mark.parametrize("name,iface,link_type", [
    ("stopped_veth.log", "cali41f14107a8d", "EN10MB"),
    ("deadline_tun.log", "tunl0", "RAW"),
    ("deadline_any.log", "any", "LINUX_SLL2"),
])
def test_listening_from_real_logs(name, iface, link_type):
    seen = td.parse_listening(log(name))
    assert seen["interface"] == iface and seen["link_type"] == link_type and seen["snaplen"] == 192


def test_listening_old_wording():
    text = "tcpdump: listening on eth0, link-type EN10MB (Ethernet), capture size 262144 bytes\n"
    assert td.parse_listening(text)["snaplen"] == 262144


def test_not_listening_and_errors():
    assert td.parse_listening(log("no_such_device.log")) is None
    assert td.error_text(log("no_such_device.log")) == "tcpdump: ethX: No such device exists (No such device exists)"
    assert td.error_text(log("bad_filter.log")) == "tcpdump: illegal port number 99999 > 65535"
    assert td.error_text(log("stopped_veth.log")) == ""


def test_argv_has_no_shell_and_filter_last():
    argv = td.capture_argv("/usr/bin/timeout", 120, td.tcpdump_argv(
        "/usr/bin/tcpdump", "eth0", "ip proto 4 and host 10.240.0.9", 192, 1000, "/var/tmp/hoptrace/x.pcap", True))
    assert argv[:4] == ["/usr/bin/timeout", "--signal=INT", "--kill-after=5", "120"]
    assert argv[4] == "/usr/bin/tcpdump"
    for flag in ("--immediate-mode", "-U", "-nn"):
        assert flag in argv
    assert argv[argv.index("-i") + 1] == "eth0"
    assert argv[argv.index("-w") + 1] == "/var/tmp/hoptrace/x.pcap"
    assert argv[argv.index("-Z") + 1] == "root"
    assert argv[-2:] == ["--", "ip proto 4 and host 10.240.0.9"]


def test_argv_without_root_and_filter():
    argv = td.tcpdump_argv("tcpdump", "lo", "", 192, 10, "/d/x.pcap", False)
    assert "-Z" not in argv and argv[-1] == "--"
    assert td.compile_argv("tcpdump", "lo", "icmp") == ["tcpdump", "-d", "-i", "lo", "--", "icmp"]


@pytest.mark.parametrize("count,snaplen,size_mb,expected", [
    (100000, 192, 64, 100000),          # headers only: the packet bound is the smaller one
    (100000, 262144, 64, 255),          # whole packets: the size bound wins
    (10, 262144, 1, 3),
    (5, 192, 1, 5),
])
def test_effective_count(count, snaplen, size_mb, expected):
    got = td.effective_count(count, snaplen, size_mb)
    assert got == expected
    assert 24 + got * (snaplen + 16) <= size_mb * 1024 * 1024 or got == count


def test_ended_by():
    state = {"count": 2, "deadline_at": 100.0}
    assert td.ended_by({"captured": 2}, state, 50.0) == "count"
    assert td.ended_by({"captured": 0}, state, 100.2) == "deadline"
    assert td.ended_by({"captured": None}, state, 50.0) == "exited"


def test_state_roundtrip_is_private(tmp_path):
    paths = td.paths(str(tmp_path), "cap1")
    assert paths["file"].endswith("/cap1.pcap")
    td.write_state(paths["state"], {"id": "cap1", "pid": 1})
    assert td.read_state(paths["state"]) == {"id": "cap1", "pid": 1}
    assert oct(os.stat(paths["state"]).st_mode & 0o777) == "0o600"
    assert td.read_state(str(tmp_path / "missing.json")) is None


def test_is_running_checks_pid_reuse():
    me = os.getpid()
    start = td.proc_start_time(me)
    assert td.is_running({"pid": me, "pid_start": start})
    assert not td.is_running({"pid": me, "pid_start": start + 1})
    assert not td.is_running({"pid": None})
    assert not td.is_running(None)


# ---------------------------------------------------------------- leftovers
from ansible_collections.hoptrace.k8s.plugins.module_utils._validate import is_id  # noqa: E402


@pytest.mark.parametrize("name,expected", [
    ("ht-r-node-a-eth0.pcap", ("ht-r-node-a-eth0", ".pcap")),
    ("ht-r-node-a-eth0.state.json", ("ht-r-node-a-eth0", ".state.json")),
    ("ht-r-node-a-eth0.state.json.tmp", ("ht-r-node-a-eth0", ".state.json.tmp")),
    ("ht-r-node-a-vxlan.calico.log", ("ht-r-node-a-vxlan.calico", ".log")),
    ("x.state.state.json", ("x.state", ".state.json")),      # an id may hold dots
    ("x.pcap.gz", None), ("notes.txt", None), (".pcap", None), ("-w.pcap", None), ("a b.pcap", None),
    ("..pcap", None), ("%s.pcap" % ("a" * 65), None), ("%s.pcap" % ("a" * 64), ("a" * 64, ".pcap")),
])
def test_split_name(name, expected):
    assert td.split_name(name, is_id) == expected


def test_may_be_running():
    me = {"pid": os.getpid(), "pid_start": td.proc_start_time(os.getpid())}
    assert td.may_be_running(me) is True
    assert td.may_be_running(dict(me, pid_start=None)) is True          # no start time recorded: assume it is ours
    assert td.may_be_running(dict(me, pid_start=me["pid_start"] + 1)) is False   # the pid was reused
    assert td.may_be_running({"pid": 999999999, "pid_start": 1}) is False
    assert td.may_be_running({"pid": "garbage"}) is False and td.may_be_running(None) is False


@pytest.mark.parametrize("mtimes,state,older_than,named,expected", [
    ({".pcap": 0, ".log": 0, ".state.json": 0}, {"id": "c", "deadline_at": 5.0}, None, False, "its deadline passed 9995 s ago"),
    ({".pcap": 0, ".log": 0, ".state.json": 0}, {"id": "c", "deadline_at": 9500.0}, None, False, None),  # 500 s: too recent
    ({".pcap": 9990}, {"id": "c", "deadline_at": 9300.0}, None, False, "its deadline passed 700 s ago"),  # the deadline decides
    ({".pcap": 0}, {"id": "c", "deadline_at": 5.0, "keep": True}, None, False, None),
    ({".pcap": 0}, {"id": "c", "deadline_at": 5.0, "keep": True}, 60, False, "its files are 10000 s old (older_than 60)"),
    # no state file: the newest file against 3600 + 600 s
    ({".pcap": 5799}, None, None, False, "no readable state file and its files are 4201 s old"),
    ({".pcap": 5801}, None, None, False, None),
    ({".pcap": 5000, ".log": 5000}, None, None, False, "no readable state file and its files are 5000 s old"),
    ({".pcap": 5000, ".log": 9000}, None, None, False, None),                     # the newest file counts
    ({".log": 0}, None, None, False, None),                                       # a lone log: not provably ours
    ({".log": 0}, None, 60, False, None),
    ({".log": 0}, None, 60, True, "its files are 10000 s old (older_than 60)"),   # ... unless the operator named it
    ({".pcap": 0}, {"id": "other", "deadline_at": 9999.0}, None, False, "no readable state file and its files are 10000 s old"),
    ({".pcap": 0}, {"id": "c", "deadline_at": True}, None, False, "no readable state file and its files are 10000 s old"),
    ({}, None, 0, True, None),
])
def test_leftover_reason(mtimes, state, older_than, named, expected):
    assert td.leftover_reason("c", mtimes, state, 10000.0, older_than=older_than, named=named) == expected
