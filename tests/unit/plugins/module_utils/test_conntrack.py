"""The flow's conntrack entries (module_utils/_conntrack.py) on real listings.

The fixtures (tests/unit/fixtures/conntrack/README.md) are public conntrack -L outputs from
kubernetes, aks-engine and CNI plugins issues, an IPv6 entry in /proc/net/nf_conntrack's format from
a netfilter-devel mail, and this machine's own conntrack -L, -o extended and /proc/net/nf_conntrack
in a scratch netns with a DNAT, an SNAT and accounting.
"""
import os
import time

import pytest

from ansible_collections.hoptrace.k8s.plugins.module_utils import _conntrack as ct
from ansible_collections.hoptrace.k8s.plugins.module_utils import _counters as ctr

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "conntrack")


def fixture(name):
    with open(os.path.join(FIX, name)) as handle:
        return handle.read()


def flow(src, dst, port, proto="tcp", sports=()):
    return ct.check_flow({"src": src, "dst": dst, "port": port, "proto": proto, "sports": list(sports)})


def test_plain_listing_every_line_with_its_tuples_flags_and_mark():
    entries = ct.parse(fixture("k8s-38802-conntrack-L.txt"))
    assert len(entries) == 7
    assert entries[0] == {
        "family": "ipv4", "proto": "tcp", "timeout": 3069, "state": "CLOSE_WAIT",
        "orig": {"src": "10.10.12.0", "dst": "10.10.28.7", "sport": 59973, "dport": 5222},
        "reply": {"src": "10.10.28.7", "dst": "10.10.12.0", "sport": 5222, "dport": 59973},
        "flags": ["ASSURED"], "mark": 0, "zone": None}
    # the SNAT'd one: its reply goes to another address than the original source
    snat = entries[6]
    assert (snat["orig"]["src"], snat["reply"]["dst"], snat["state"]) == ("10.10.28.7", "10.28.65.112", "ESTABLISHED")


def test_clusterip_dnat_entries_of_one_flow_and_a_clipped_paste():
    text = fixture("aks-engine-1912-clusterip.txt")
    # "cp      6 ..." lost its first letter in the paste: the protocol number still says tcp;
    # conntrack's summary line ("onntrack v1.4.3 ...") is no entry
    assert len(ct.parse(text)) == 5
    mongo = flow("10.244.2.6", "10.0.223.224", 27017)
    entries = ct.parse(text, mongo)
    assert [(e["orig"]["sport"], e["reply"]["src"], e["reply"]["sport"], e["timeout"]) for e in entries] == [
        (33041, "10.244.1.7", 27017, 86205), (34659, "10.244.1.7", 27017, 299),
        (33041, "10.244.1.7", 27017, 86108), (34659, "10.244.1.7", 27017, 291)]
    assert [e["orig"]["sport"] for e in ct.parse(text, flow("10.244.2.6", "10.0.223.224", 27017, sports=[34659]))] == [34659, 34659]
    assert ct.parse(text, flow("10.244.2.6", "10.0.223.224", 27017, proto="udp")) == []


def test_udp_entries_unreplied_without_a_state_and_a_target_port():
    hostport = ct.parse(fixture("cni-plugins-123-udp-hostport.txt"), flow("10.8.0.19", "10.128.0.71", 10001, "udp"))
    assert hostport == [{
        "family": "ipv4", "proto": "udp", "timeout": 29, "state": None,
        "orig": {"src": "10.8.0.19", "dst": "10.128.0.71", "sport": 33371, "dport": 10001},
        "reply": {"src": "10.8.0.24", "dst": "10.128.0.71", "sport": 10001, "dport": 33371},
        "flags": ["UNREPLIED"], "mark": 0, "zone": None}]
    dns = ct.parse(fixture("k8s-126130-udp-clusterip.txt"), flow("10.11.4.5", "10.12.201.0", 8125, "udp"))
    assert [(e["reply"]["src"], e["flags"]) for e in dns] == [("10.11.4.22", ["UNREPLIED"])]
    target = ct.parse(fixture("k8s-127318-udp-target-port.txt"), flow("10.244.2.3", "10.96.227.14", 3000, "udp"))
    assert [(e["reply"]["src"], e["reply"]["sport"], e["flags"]) for e in target] == [("10.244.1.3", 5000, [])]


def test_ipv6_in_the_proc_format_is_compared_in_canonical_form():
    text = fixture("netfilter-devel-20250416-ipv6-extended.txt")
    entries = ct.parse(text, flow("2001:db8:ffff:21::2", "2001:db8:ffff:22::1", 10001))
    assert entries == [{
        "family": "ipv6", "proto": "tcp", "timeout": 86392, "state": "ESTABLISHED",
        "orig": {"src": "2001:db8:ffff:21::2", "dst": "2001:db8:ffff:22::1", "sport": 59488, "dport": 10001},
        "reply": {"src": "2001:db8:ffff:22::1", "dst": "2001:db8:ffff:21::2", "sport": 10001, "dport": 59488},
        "flags": ["ASSURED"], "mark": 0, "zone": 0}]


def test_this_machines_filtered_listing_extended_and_proc_agree():
    dnat = flow("10.99.1.1", "10.96.99.1", 443)
    want = {"family": "ipv4", "proto": "tcp", "timeout": 111, "state": "TIME_WAIT",
            "orig": {"src": "10.99.1.1", "dst": "10.96.99.1", "sport": 45436, "dport": 443, "packets": 4, "bytes": 216},
            "reply": {"src": "10.99.1.1", "dst": "10.99.1.1", "sport": 8443, "dport": 40000, "packets": 4, "bytes": 218},
            "flags": ["ASSURED"], "mark": 0, "zone": None}
    assert ct.parse(fixture("machine-conntrack-L-dnat-snat.txt"), dnat) == [want]
    assert ct.parse(fixture("machine-conntrack-L-o-extended.txt"), dnat) == [want]
    assert ct.parse(fixture("machine-proc-net-nf_conntrack.txt"), dnat) == [dict(want, zone=0)]
    udp6 = flow("fd00:99::1", "fd00:96::1", 53, "udp", sports=[48535])
    (extended,) = ct.parse(fixture("machine-conntrack-L-o-extended.txt"), udp6)
    (proc,) = ct.parse(fixture("machine-proc-net-nf_conntrack.txt"), udp6)
    assert extended == dict(proc, zone=None)
    assert (proc["reply"]["src"], proc["reply"]["sport"], proc["flags"], proc["family"]) == ("fd00:99::1", 5353, ["UNREPLIED"], "ipv6")


def test_argv_filters_the_original_tuple_and_the_family():
    assert ct.argv("/usr/sbin/conntrack", flow("172.17.25.79", "10.96.10.30", 443)) == [
        "/usr/sbin/conntrack", "-L", "-p", "tcp", "--orig-src", "172.17.25.79", "--orig-dst", "10.96.10.30", "--dport", "443"]
    assert ct.argv("conntrack", flow("fd00:10:244::5", "fd00:10:96::a", 53, "udp"))[:4] == ["conntrack", "-L", "-f", "ipv6"]


@pytest.mark.parametrize("value, message", [
    ({"src": "172.17.25.79", "dst": "10.96.10.30"}, "snapshot_conntrack.port must hold port numbers (1 to 65535); None is not one"),
    ({"src": "pod-a", "dst": "10.96.10.30", "port": 443}, "snapshot_conntrack.src must be an IP address; 'pod-a' is not one"),
    ({"src": "172.17.25.79", "dst": "fd00::1", "port": 443}, "snapshot_conntrack.src 172.17.25.79 and dst fd00::1 are not of one address family"),
    ({"src": "172.17.25.79", "dst": "10.96.10.30", "port": 443, "proto": "icmp"},
     "snapshot_conntrack.proto must be tcp, udp or sctp (a Service port); got 'icmp'"),
    ({"src": "172.17.25.79", "dst": "10.96.10.30", "port": 443, "sports": [0]},
     "snapshot_conntrack.sports must hold port numbers (1 to 65535); 0 is not one"),
])
def test_bad_flows_say_what_to_fix(value, message):
    with pytest.raises(ValueError) as err:
        ct.check_flow(value)
    assert str(err.value) == message


def test_read_proc_keeps_the_flows_entries_and_bounds_them(tmp_path):
    line = fixture("machine-proc-net-nf_conntrack.txt").splitlines()[-1]
    path = tmp_path / "nf_conntrack"
    path.write_text("\n".join([line] * 20 + ["garbage dport=443 "]) + "\n")
    got = ct.read_proc(flow("10.99.1.1", "10.96.99.1", 443), time.time() + 5, str(path))
    assert (got["by"], len(got["entries"]), got["more"], got["note"]) == (str(path), ct.ENTRIES_MAX, 4, None)
    late = ct.read_proc(flow("10.99.1.1", "10.96.99.1", 443), time.time() - 1, str(path))
    assert (late["entries"], late["note"]) == ([], "stopped reading %s at the time limit after 0 lines" % path)
    gone = ct.read_proc(flow("10.99.1.1", "10.96.99.1", 443), time.time() + 5, str(tmp_path / "none"))
    assert gone == {"by": None, "entries": [], "more": 0, "note": "could not read %s: No such file or directory" % (tmp_path / "none")}


def test_snapshot_without_conntrack_tool_nor_proc_is_a_note(monkeypatch):
    monkeypatch.setattr(ct, "PROC", "/nonexistent/nf_conntrack")
    snap = ctr.Snapshot(lambda tool: None, [], final=True, flow=flow("172.17.25.79", "10.96.10.30", 443))
    got = snap.collect()["flow_conntrack"]
    assert got == {"by": None, "entries": [], "more": 0,
                   "note": "conntrack is not installed and there is no /nonexistent/nf_conntrack"}
    # only the second snapshot reads it, and the delta passes it on
    assert "flow_conntrack" not in ctr.Snapshot(lambda tool: None, [], flow=flow("172.17.25.79", "10.96.10.30", 443)).collect()
    assert ctr.delta(None, snap.collect())["flow_conntrack"]["note"].startswith("conntrack is not installed")
