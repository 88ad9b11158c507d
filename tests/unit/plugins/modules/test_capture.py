"""capture: arguments refused before anything runs; check mode; tcpdump compile errors; files."""
import os
import socket
import subprocess
import time
from unittest import mock

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _capture_procs as pr
from ansible_collections.hoptrace.k8s.plugins.modules import capture

from .helper import load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_capture.yaml"))


@pytest.fixture
def no_process():
    with mock.patch("os.fork", side_effect=AssertionError("a process was started")) as popen:
        yield popen


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_refused_before_anything_runs(case, tmp_path, no_process):
    args = dict(case["input"])
    args.setdefault("directory", str(tmp_path / "cap"))
    result, script = run_module(capture, args, [])
    assert result["failed"]
    assert case["msg"].replace("NODE", socket.gethostname()) in result["msg"]
    assert script.calls == []
    assert not os.path.exists(str(tmp_path / "cap"))


def test_check_mode_compiles_the_filter_and_starts_nothing(tmp_path, no_process):
    directory = str(tmp_path / "cap")
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "icmp"], "out": "(000) ret #0\n"}]
    result, script = run_module(capture, {"id": "c1", "interface": "lo", "filter": "icmp", "directory": directory},
                                commands, check_mode=True)
    assert result["changed"] is True and result["pid"] is None
    assert result["argv"][:4] == ["/testbin/timeout", "--signal=INT", "--kill-after=5", "120"]
    assert result["argv"][-2:] == ["--", "icmp"]
    assert not os.path.exists(directory)


def test_filter_that_does_not_compile(tmp_path, no_process):
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "tcp port 99999"], "rc": 1,
                 "err": "@tcpdump/bad_filter.log"}]
    result, _script = run_module(capture, {"id": "c1", "interface": "lo", "filter": "tcp port 99999",
                                           "directory": str(tmp_path)}, commands)
    assert result["failed"]
    assert result["msg"] == ("filter 'tcp port 99999' does not compile for interface 'lo' on %s: "
                             "tcpdump: illegal port number 99999 > 65535" % socket.gethostname())


def test_tcpdump_missing(tmp_path, no_process):
    result, _script = run_module(capture, {"id": "c1", "interface": "lo", "directory": str(tmp_path)}, [],
                                 bins={"tcpdump": None})
    assert result["failed"]
    assert result["msg"] == "tcpdump is not installed on %s: install the tcpdump package" % socket.gethostname()


def test_payload_snaplen_and_size_bound(tmp_path, no_process):
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}]
    result, _script = run_module(capture, {"id": "c1", "interface": "lo", "payload": True, "max_size_mb": 1,
                                           "directory": str(tmp_path)}, commands, check_mode=True)
    assert result["snaplen"] == 262144 and result["count"] == 3


def test_stop_unknown_and_absent_are_idempotent(tmp_path):
    result, _script = run_module(capture, {"id": "nothing", "state": "stopped", "directory": str(tmp_path)}, [])
    assert not result["failed"] and result["ended_by"] == "unknown" and result["changed"] is False
    result, _script = run_module(capture, {"id": "nothing", "state": "absent", "directory": str(tmp_path)}, [])
    assert not result["failed"] and result["removed"] == [] and result["changed"] is False


def test_stop_reports_counts_of_an_ended_capture(tmp_path):
    base = str(tmp_path / "c2")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "tcpdump", "count_reached.log")) as src:
        log = src.read()
    with open(base + ".log", "w") as handle:
        handle.write(log)
    with open(base + ".pcap", "wb") as handle:
        handle.write(b"\0" * 100)
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
    td.write_state(base + ".state.json", {"id": "c2", "pid": 999999999, "pid_start": 1, "count": 2, "deadline_at": 1e12})
    result, _script = run_module(capture, {"id": "c2", "state": "stopped", "directory": str(tmp_path)}, [])
    assert (result["captured"], result["received"], result["dropped"]) == (2, 2, 0)
    assert result["ended_by"] == "count" and result["size"] == 100 and result["changed"] is False
    result, _script = run_module(capture, {"id": "c2", "state": "absent", "directory": str(tmp_path)}, [])
    assert sorted(os.path.basename(p) for p in result["removed"]) == ["c2.log", "c2.pcap", "c2.state.json"]
    assert os.listdir(str(tmp_path)) == []


def test_captures_list_check_mode_compiles_every_filter(tmp_path, no_process):
    directory = str(tmp_path / "cap")
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "icmp"], "out": "(000) ret #0\n"},
                {"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "tcp"], "out": "(000) ret #0\n"}]
    result, script = run_module(capture, {"captures": [{"id": "c1", "interface": "lo", "filter": "icmp"},
                                                       {"id": "c2", "interface": "lo", "filter": "tcp"}],
                                          "directory": directory, "deadline": 30}, commands, check_mode=True)
    assert not result["failed"] and result["changed"] is True and script.steps == []
    assert [c["id"] for c in result["captures"]] == ["c1", "c2"]
    assert [c["argv"][3] for c in result["captures"]] == ["30", "30"]
    assert [c["failed"] for c in result["captures"]] == [False, False]
    assert not os.path.exists(directory)


def test_captures_list_one_bad_capture_fails_alone(tmp_path, no_process):
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "icmp"], "out": "(000) ret #0\n"}]
    result, _script = run_module(capture, {"captures": [{"id": "c1", "interface": "lo", "filter": "icmp"},
                                                        {"id": "c2", "interface": "lo", "filter": "$(id)"}],
                                           "directory": str(tmp_path)}, commands, check_mode=True)
    assert result["failed"] and result["msg"].startswith("1 of 2 captures failed on ")
    first, second = result["captures"]
    assert first["failed"] is False and first["id"] == "c1"
    assert second["failed"] is True and second["id"] == "c2" and "contains '$'" in second["msg"]


def test_captures_list_and_id_are_exclusive(tmp_path, no_process):
    result, _script = run_module(capture, {"id": "c1", "captures": [{"id": "c2", "interface": "lo"}],
                                           "directory": str(tmp_path)}, [])
    assert result["failed"] and "mutually exclusive" in result["msg"]
    result, _script = run_module(capture, {"directory": str(tmp_path)}, [])
    assert result["failed"] and "one of the following is required" in result["msg"]


def test_captures_list_stop_and_absent(tmp_path):
    base = str(tmp_path / "c2")
    with open(base + ".pcap", "wb") as handle:
        handle.write(b"\0" * 40)
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
    td.write_state(base + ".state.json", {"id": "c2", "pid": 999999999, "pid_start": 1, "count": 2, "deadline_at": 1e12})
    caps = [{"id": "nothing"}, {"id": "c2"}]
    result, _script = run_module(capture, {"captures": caps, "state": "stopped", "directory": str(tmp_path)}, [])
    assert not result["failed"]
    assert [(c["id"], c["ended_by"], c["size"]) for c in result["captures"]] == [("nothing", "unknown", 0), ("c2", "exited", 40)]
    result, _script = run_module(capture, {"captures": caps, "state": "absent", "directory": str(tmp_path)}, [])
    assert not result["failed"] and result["changed"] is True
    assert [len(c["removed"]) for c in result["captures"]] == [0, 2]
    assert os.listdir(str(tmp_path)) == []


def test_stop_returns_small_captures_inline(tmp_path):
    import base64
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
    for cid, size in (("small", 40), ("big", 400)):
        with open(str(tmp_path / (cid + ".pcap")), "wb") as handle:
            handle.write(bytes(range(256)) * 2 if size > 256 else bytes(range(size)))
        state = {"id": cid, "pid": 999999999, "pid_start": 1, "count": 2, "deadline_at": 1e12}
        td.write_state(str(tmp_path / (cid + ".state.json")), state)
    result, _script = run_module(capture, {"captures": [{"id": "small"}, {"id": "big"}], "state": "stopped",
                                           "content_max_size": 100, "directory": str(tmp_path)}, [])
    small, big = result["captures"]
    assert base64.b64decode(small["content"]) == bytes(range(40)) and "content" not in big
    result, _script = run_module(capture, {"id": "small", "state": "stopped", "directory": str(tmp_path)}, [])
    assert "content" not in result and "removed" not in result
    result, _script = run_module(capture, {"captures": [{"id": "small"}, {"id": "big"}], "state": "stopped",
                                           "content_max_size": 100, "remove_returned": True, "directory": str(tmp_path)}, [])
    small, big = result["captures"]
    assert sorted(os.path.basename(p) for p in small["removed"]) == ["small.pcap", "small.state.json"]
    assert "removed" not in big and sorted(os.listdir(str(tmp_path))) == ["big.pcap", "big.state.json"]


# ---------------------------------------------------------------- leftovers of earlier runs
from ansible.module_utils import basic  # noqa: E402

from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td  # noqa: E402

GONE = 999999999                     # a pid no process has (pid_max is at most 4194304)
SUFFIXES = (".pcap", ".log", ".state.json")


def _capture_files(directory, cid, age, state="write", suffixes=SUFFIXES, **fields):
    """The files of capture ``cid`` as the module leaves them, last written ``age`` seconds ago.

    ``state``: "write" (a state file from ``fields``: deadline_at defaults to 5 s after the files),
    "none" (no state file) or any other text (written as the state file's content, e.g. corrupt JSON).
    """
    now = time.time()
    names = []
    for suffix in suffixes:
        if suffix == ".state.json" and state == "none":
            continue
        path = os.path.join(directory, cid + suffix)
        if suffix == ".state.json" and state == "write":
            record = {"id": cid, "pid": GONE, "pid_start": 1, "deadline_at": now - age + 5, "file": path[:-11] + ".pcap"}
            record.update(fields)
            td.write_state(path, record)
        else:
            with open(path, "w") as handle:
                handle.write(state if suffix == ".state.json" else "x")
        os.utime(path, (now - age, now - age))
        names.append(cid + suffix)
    return sorted(names)


def _running():
    """State fields of a process that is certainly running: this test's own."""
    return {"pid": os.getpid(), "pid_start": td.proc_start_time(os.getpid())}


@pytest.fixture
def logged():
    messages = []

    def log(self, msg, log_args=None):
        if not msg.startswith("Invoked with"):           # AnsibleModule logs its own invocation
            messages.append(msg)
    with mock.patch.object(basic.AnsibleModule, "log", log):
        yield messages


@pytest.fixture
def capdir(tmp_path):
    """A capture directory as the module makes it (0700), with an old finished run and a mix of others."""
    directory = tmp_path / "cap"
    directory.mkdir(mode=0o700)
    d = str(directory)
    made = {
        # a run killed long ago: its deadline passed 700 s ago and its tcpdump is gone
        "old": _capture_files(d, "ht-run0-node-a-eth0", 705) + _capture_files(d, "ht-run0-node-a-tunl0", 705),
        # an old state file's deadline says it all, whatever the files' times
        "old_deadline": _capture_files(d, "ht-run0-node-a-lo", 30, deadline_at=time.time() - 3000),
        # a recent run: ended 5 minutes ago
        "recent": _capture_files(d, "ht-run1-node-a-eth0", 305),
        # deadline long gone but its process is still there (it may still be writing): never touched
        "running": _capture_files(d, "ht-run2-node-a-eth0", 5000, **_running()),
        # stopped with remove_returned=false: kept on purpose
        "kept": _capture_files(d, "ht-run3-node-a-eth0", 5000, keep=True),
        # no state file: the mtime rule (3600 + 600 s)
        "nostate_old": _capture_files(d, "ht-run4-node-a-eth0", 4300, state="none"),
        "nostate_recent": _capture_files(d, "ht-run5-node-a-eth0", 3000, state="none"),
        # a state file that is not JSON, or names another capture: the mtime rule
        "corrupt_old": _capture_files(d, "ht-run6-node-a-eth0", 4300, state="{not json"),
        "corrupt_recent": _capture_files(d, "ht-run7-node-a-eth0", 3000, state="{not json"),
        "other_id_old": _capture_files(d, "ht-run8-node-a-eth0", 4300, id="somebody-else"),
        # a half-written state file left by a crash, with the capture's pcap
        "tmp_old": _capture_files(d, "ht-run9-node-a-eth0", 4300, state="none", suffixes=(".pcap", ".state.json.tmp")),
    }
    old = time.time() - 100000
    outside = tmp_path / "outside"
    outside.mkdir()
    foreign = []
    for name in ("notes.txt", "old.log", "-dash.pcap", "bad name.pcap", "x.pcap.gz", ".pcap", "README"):
        (directory / name).write_text("not ours")
        foreign.append(name)
    (outside / "victim.pcap").write_text("keep me")
    (outside / "victim.state.json").write_text('{"id": "ht-link-eth0", "pid": %d, "deadline_at": 1}' % GONE)
    os.symlink(str(outside / "victim.pcap"), str(directory / "ht-link-eth0.pcap"))
    os.symlink(str(outside / "victim.state.json"), str(directory / "ht-link-eth0.state.json"))
    os.symlink(str(outside), str(directory / "ht-linkdir.pcap"))
    foreign += ["ht-link-eth0.pcap", "ht-link-eth0.state.json", "ht-linkdir.pcap"]
    (directory / "sub.pcap").mkdir()
    (directory / "sub").mkdir()
    _capture_files(str(directory / "sub"), "ht-deep-node-a-eth0", 100000)
    foreign += ["sub.pcap", "sub"]
    (directory / "nobody.pcap").write_text("another user's")
    os.chown(str(directory / "nobody.pcap"), 65534, 65534)
    foreign.append("nobody.pcap")
    for name in foreign + ["sub/" + n for n in os.listdir(str(directory / "sub"))]:
        os.utime(str(directory / name), (old, old), follow_symlinks=False)
    for path in (outside / "victim.pcap", outside / "victim.state.json"):
        os.utime(str(path), (old, old))
    made["foreign"] = foreign
    return directory, made


PRUNED = ("old", "old_deadline", "nostate_old", "corrupt_old", "other_id_old", "tmp_old")
KEPT = ("recent", "running", "kept", "nostate_recent", "corrupt_recent")


def _start_running(directory):
    """Arguments that make state=started find its capture already running: nothing is started."""
    _capture_files(str(directory), "ht-now-node-a-lo", 1, **_running())
    return {"id": "ht-now-node-a-lo", "interface": "lo", "directory": str(directory)}


def test_start_prunes_old_finished_runs_only(capdir, no_process, logged):
    directory, made = capdir
    result, _script = run_module(capture, _start_running(directory), [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}])
    assert not result["failed"], result
    assert "already running" in result["msg"]
    assert result["pruned"] == sorted(sum((made[k] for k in PRUNED), []))
    assert result["changed"] is True
    left = set(os.listdir(str(directory)))
    assert left == set(sum((made[k] for k in KEPT), [])) | set(made["foreign"]) | {
        "ht-now-node-a-lo.pcap", "ht-now-node-a-lo.log", "ht-now-node-a-lo.state.json"}
    # nothing below the directory or behind a symlink was touched
    assert len(os.listdir(str(directory / "sub"))) == 3
    assert (directory.parent / "outside" / "victim.pcap").read_text() == "keep me"
    assert (directory.parent / "outside" / "victim.state.json").exists()
    # every removal is logged on the node, with the reason per capture
    assert len(logged) == 1
    assert logged[0].startswith("hoptrace.k8s.capture removed %d files of 7 old captures in %s (" % (len(result["pruned"]), directory))
    assert "ht-run0-node-a-eth0: its deadline passed 700 s ago" in logged[0]
    assert "ht-run4-node-a-eth0: no readable state file and its files are 4300 s old" in logged[0]
    # once pruned, a second start finds nothing more to prune
    result, _script = run_module(capture, _start_running(directory), [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}])
    assert result["pruned"] == [] and result["changed"] is False


def test_start_check_mode_reports_what_it_would_prune_and_removes_nothing(capdir, no_process, logged):
    directory, made = capdir
    before = sorted(os.listdir(str(directory)))
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--", "icmp"], "out": "(000) ret #0\n"}]
    result, _script = run_module(capture, {"captures": [{"id": "ht-new-node-a-lo", "interface": "lo", "filter": "icmp"}],
                                           "directory": str(directory)}, commands, check_mode=True)
    assert not result["failed"] and result["changed"] is True
    assert result["pruned"] == sorted(sum((made[k] for k in PRUNED), []))
    assert sorted(os.listdir(str(directory))) == before and logged == []


def test_start_never_prunes_the_captures_it_is_given(tmp_path, no_process):
    directory = tmp_path / "cap"
    directory.mkdir(mode=0o700)
    mine = _capture_files(str(directory), "ht-run0-node-a-lo", 5000)
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}]
    result, _script = run_module(capture, {"captures": [{"id": "ht-run0-node-a-lo", "interface": "lo"}],
                                           "directory": str(directory)}, commands, check_mode=True)
    assert result["pruned"] == [] and sorted(os.listdir(str(directory))) == mine


def test_start_prunes_nothing_in_a_shared_directory(tmp_path, no_process):
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(str(directory), 0o1777)
    old = _capture_files(str(directory), "ht-run0-node-a-lo", 5000)
    commands = [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}]
    result, _script = run_module(capture, {"id": "ht-new-node-a-lo", "interface": "lo", "directory": str(directory)}, commands)
    # refused before anything starts (making it 0700 would break /tmp or /var/tmp for everybody), and nothing pruned
    assert result["failed"] and "is a shared directory (mode 1777): give a directory of its own" in result["msg"]
    assert result["pruned"] == [] and sorted(os.listdir(str(directory))) == old
    assert stat_mode(directory) == 0o1777


def stat_mode(path):
    return os.stat(str(path)).st_mode & 0o7777


def test_stop_marks_kept_files_and_the_next_start_leaves_them(tmp_path, no_process):
    """stop without remove_returned keeps the files on purpose: not pruned; with it, a leftover is."""
    directory = tmp_path / "cap"
    directory.mkdir(mode=0o700)
    kept = _capture_files(str(directory), "ht-run0-node-a-lo", 5000)
    gone = _capture_files(str(directory), "ht-run0-node-a-eth0", 5000)
    result, _script = run_module(capture, {"id": "ht-run0-node-a-lo", "state": "stopped", "directory": str(directory)}, [])
    assert result["ended_by"] == "deadline" and td.read_state(str(directory / "ht-run0-node-a-lo.state.json"))["keep"] is True
    result, _script = run_module(capture, {"id": "ht-run0-node-a-eth0", "state": "stopped", "remove_returned": True,
                                           "directory": str(directory)}, [])
    assert td.read_state(str(directory / "ht-run0-node-a-eth0.state.json"))["keep"] is False
    for name in kept + gone:                   # the stop rewrote the state files: age them again
        os.utime(str(directory / name), (time.time() - 5000,) * 2)
    result, _script = run_module(capture, _start_running(directory), [{"command": ["/testbin/tcpdump", "-d", "-i", "lo", "--"]}])
    assert result["pruned"] == gone
    assert set(kept) <= set(os.listdir(str(directory)))


def test_absent_older_than_cleans_the_directory(capdir, no_process, logged):
    directory, made = capdir
    args = {"state": "absent", "older_than": 1000, "directory": str(directory)}
    before = sorted(os.listdir(str(directory)))
    result, _script = run_module(capture, args, [], check_mode=True)
    # files older than 1000 s and not running: not the run killed 705 s ago nor the deadline-only one (its
    # files are 30 s old); the kept one is (an operator's clean-up removes kept files too); the running one never
    expected = sorted(sum((made[k] for k in ("kept", "nostate_old", "nostate_recent", "corrupt_old",
                                             "corrupt_recent", "other_id_old", "tmp_old")), []))
    assert not result["failed"] and result["changed"] is True
    assert result["removed"] == [os.path.join(str(directory), n) for n in expected]
    assert sorted(os.listdir(str(directory))) == before and logged == []
    result, _script = run_module(capture, args, [])
    assert result["removed"] == [os.path.join(str(directory), n) for n in expected] and result["changed"] is True
    assert set(os.listdir(str(directory))) == set(sum((made[k] for k in ("old", "old_deadline", "recent", "running")), [])) | set(
        made["foreign"])
    assert len(logged) == 1 and "ht-run3-node-a-eth0: its files are 5000 s old (older_than 1000)" in logged[0]
    result, _script = run_module(capture, args, [])
    assert result["removed"] == [] and result["changed"] is False
    # older_than 0: everything of ours that is not running
    result, _script = run_module(capture, dict(args, older_than=0), [])
    assert set(os.listdir(str(directory))) == set(made["running"]) | set(made["foreign"])


def test_absent_older_than_with_ids_removes_only_those_that_are_old(tmp_path, no_process):
    directory = tmp_path / "cap"
    directory.mkdir(mode=0o700)
    old = _capture_files(str(directory), "c-old", 5000)
    new = _capture_files(str(directory), "c-new", 10)
    other = _capture_files(str(directory), "c-other", 5000)
    result, _script = run_module(capture, {"captures": [{"id": "c-old"}, {"id": "c-new"}, {"id": "c-none"}], "state": "absent",
                                           "older_than": 3600, "directory": str(directory)}, [])
    assert not result["failed"] and result["changed"] is True
    first, second, third = result["captures"]
    assert first["removed"] == [os.path.join(str(directory), n) for n in old]
    assert second["removed"] == [] and second["msg"] == (
        "kept capture c-new: it may still be running, or its files are not older than 3600 s")
    assert third["removed"] == [] and "msg" not in third
    assert sorted(os.listdir(str(directory))) == sorted(new + other)


@pytest.mark.parametrize("args,message", [
    ({"state": "started", "id": "c1", "interface": "lo", "older_than": 10}, "older_than is only used with state=absent"),
    ({"state": "stopped", "older_than": 10}, "older_than is only used with state=absent"),
    ({"state": "absent", "older_than": -1}, "older_than -1 is out of range"),
    ({"state": "absent"}, "one of the following is required: id, captures (or older_than with state=absent)"),
    ({"state": "absent", "older_than": 10, "directory": "/tmp/$(id)"}, "shell or control characters"),
])
def test_older_than_refused(tmp_path, no_process, args, message):
    args.setdefault("directory", str(tmp_path))
    result, script = run_module(capture, args, [])
    assert result["failed"] and message in result["msg"] and script.calls == []


def test_absent_older_than_refuses_a_shared_directory(tmp_path, no_process):
    os.chmod(str(tmp_path), 0o1777)
    old = _capture_files(str(tmp_path), "c-old", 5000)
    result, _script = run_module(capture, {"state": "absent", "older_than": 0, "directory": str(tmp_path)}, [])
    assert result["failed"] and result["msg"] == "nothing pruned in %s: it is shared (mode 1777)" % tmp_path
    assert sorted(os.listdir(str(tmp_path))) == old


def test_absent_older_than_missing_directory_is_nothing_to_do(tmp_path, no_process):
    result, _script = run_module(capture, {"state": "absent", "older_than": 0, "directory": str(tmp_path / "nope")}, [])
    assert not result["failed"] and result["removed"] == [] and result["changed"] is False
    assert not os.path.exists(str(tmp_path / "nope"))


def test_absent_older_than_with_ids_in_a_shared_directory_fails(tmp_path, no_process):
    os.chmod(str(tmp_path), 0o1777)
    old = _capture_files(str(tmp_path), "c-old", 5000)
    result, _script = run_module(capture, {"id": "c-old", "state": "absent", "older_than": 0, "directory": str(tmp_path)}, [])
    assert result["failed"] and result["msg"] == "nothing pruned in %s: it is shared (mode 1777)" % tmp_path
    assert sorted(os.listdir(str(tmp_path))) == old


def _run(argv, environ_update):
    # what AnsibleModule.run_command does with the arguments the module gives it
    proc = subprocess.run(argv, env=dict(os.environ, **environ_update), capture_output=True, text=True, timeout=30,
                          check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_filters_are_compiled_at_once_and_answered_in_order(tmp_path):
    # each command creates its own mark and waits (at most 5 s) for the other's: both exit 0 only when
    # they run at the same time; run one after the other, the first gives up with 9
    wait = 'touch %s; for i in $(seq 50); do [ -e %s ] && { echo "$0"; echo "err $0" >&2; exit 0; }; sleep 0.1; done; exit 9'
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    module = mock.Mock()
    module.run_command.side_effect = _run
    got = pr.run_at_once(module, [["sh", "-c", wait % (a, b), "first"], ["sh", "-c", wait % (b, a), "second"],
                                  ["sh", "-c", "echo $LC_ALL; exit 3"]])
    assert got == [(0, "first\n", "err first\n"), (0, "second\n", "err second\n"), (3, "C\n", "")]
    assert module.run_command.call_count == 3


def _fake_tool(tmp_path, name, text):
    path = tmp_path / name
    path.write_text("#!/bin/sh\ncat <<'OUT'\n%sOUT\n" % text)
    path.chmod(0o755)
    return str(path)


NO_COUNTER_TOOLS = {name: None for name in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save",
                                            "ip6tables-nft-save", "iptables-save", "ip6tables-save", "nft", "ip", "conntrack")}


def test_the_stop_returns_the_counters_deltas_since_the_start(tmp_path):
    """The start keeps its snapshot in the state file (as _counters.keep_before does); the stop diffs it."""
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _counters as ctr
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _netfilter as nf
    from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
    after = ("*filter\n:FORWARD ACCEPT [9:540]\n"
             '[5:300] -A FORWARD -d 172.17.25.239/32 -p tcp -m comment --comment "cali:Zk6CbRlMMcKBWZg9" -j DROP\n'
             "[7:420] -A FORWARD -j ACCEPT\nCOMMIT\n")
    before = after.replace("[5:300]", "[2:120]").replace("[7:420]", "[1:60]")
    counters, _rules = nf.parse_save(before, "iptables-nft")
    snap = {"t": 100.0, "counters": counters, "kernel": {}, "conntrack": {}, "links": {}, "notes": []}
    base = str(tmp_path / "c3")
    td.write_state(base + ".state.json", {"id": "c3", "pid": 999999999, "pid_start": 1, "count": 2, "deadline_at": 1e12,
                                          "interface": "lo", "counters_before": ctr.compact(snap)})
    bins = dict(NO_COUNTER_TOOLS, **{"iptables-nft-save": _fake_tool(tmp_path, "iptables-nft-save", after)})
    args = {"id": "c3", "state": "stopped", "directory": str(tmp_path), "snapshot_routes": ["172.17.25.239"]}
    result, _script = run_module(capture, args, [], bins=bins)
    got = result["counters"]
    assert [(r["chain"], r["number"], r["target"], r["packets"], r["bytes"]) for r in got["rules"]] == [("FORWARD", 1, "DROP", 3, 180)]
    assert got["notes"][:2] == ["could not read ip6tables rules: ip6tables-save is not installed",
                                "could not read the interfaces, neighbours and routes: ip (iproute2) is not installed"]
    assert got["routes"] == {} and got["seconds"] > 0
    # snapshot: false - nothing read, no counters in the result
    td.write_state(base + ".state.json", {"id": "c3", "pid": 999999999, "pid_start": 1, "count": 2, "deadline_at": 1e12})
    result, _script = run_module(capture, dict(args, snapshot=False), [], bins=bins)
    assert "counters" not in result and not result["failed"]


def test_snapshot_routes_must_be_addresses(tmp_path, no_process):
    result, script = run_module(capture, {"id": "c4", "state": "stopped", "directory": str(tmp_path),
                                          "snapshot_routes": ["172.17.25.239; reboot"]}, [])
    assert result["failed"] and result["msg"] == "snapshot_routes must hold IP addresses; '172.17.25.239; reboot' is not one"
    assert script.calls == []
