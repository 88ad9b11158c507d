"""capture: arguments refused before anything runs; check mode; tcpdump compile errors; files."""
import os
import socket
from unittest import mock

import pytest

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
