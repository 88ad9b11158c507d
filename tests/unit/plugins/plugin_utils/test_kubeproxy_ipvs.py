"""kube-proxy's IPVS mode (plugin_utils/kubeproxy_ipvs.py) on a real `ipvsadm -L -n` output (source in
the fixture's header), and a trace's Service found through it."""
import os
import subprocess

from test_hosting import INVENTORY, entry
from test_services import SRC, flow

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import kubeproxy_ipvs as ipvs
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.hosting import trace_path

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = open(os.path.join(HERE, "..", "..", "fixtures", "services", "ipvsadm-opsnull-251.txt")).read()


def test_virtual_servers_and_their_real_servers():
    servers = ipvs.parse_ipvsadm(REAL)
    assert [(s["proto"], s["address"], s["port"], s["scheduler"], s["persistent"], len(s["reals"])) for s in servers] == [
        ("tcp", "10.253.102.0", 32429, "rr", None, 4), ("tcp", "10.253.102.0", 32767, "rr", None, 1),
        ("tcp", "10.253.102.1", 32767, "rr", None, 1), ("tcp", "10.254.0.1", 443, "rr", 10800, 2),
        ("tcp", "10.254.0.2", 53, "rr", None, 2), ("tcp", "10.254.9.36", 443, "rr", None, 1),
        ("tcp", "10.254.20.57", 1, "rr", None, 3)]
    assert servers[3]["reals"][0] == {"ip": "172.16.16.81", "port": 6443, "forward": "Masq", "weight": 1, "active": 0, "inactive": 0}


def test_translate_a_clusterip_and_a_nodeport():
    t = ipvs.translate(REAL, "10.254.0.2", 53, "tcp")
    assert (t["mode"], t["kind"], t["service"], t["scheduler"], t["rule"]) == ("ipvs", "clusterip", None, "rr", "TCP  10.254.0.2:53 rr")
    assert [(e["ip"], e["port"], e["chance"]) for e in t["endpoints"]] == [("10.253.7.5", 53, 0.5), ("10.253.35.5", 53, 0.5)]
    assert ipvs.translate(REAL, "10.254.0.1", 443)["rule"] == "TCP  10.254.0.1:443 rr persistent 10800"
    assert ipvs.translate(REAL, "10.253.102.0", 32767, local=True)["kind"] == "nodeport"
    assert ipvs.translate(REAL, "10.254.0.2", 53, "udp") is None
    assert ipvs.translate(REAL, "10.254.0.3", 53) is None


def test_a_trace_finds_the_service_through_ipvs_when_iptables_names_none():
    lab_ipvs = "TCP  10.96.10.20:443 rr\n  -> 172.17.25.239:443            Masq    1      0          0\n"
    # IPVS mode: kube-proxy's iptables chains exist, but match ipsets; the virtual server has the endpoints
    rules = {"source": "iptables-save", "text": "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n", "ipvs": lab_ipvs}
    path = trace_path("worker-a", entry(service_rules=rules), flow("10.96.10.20"), INVENTORY)
    assert (path["service"]["mode"], path["service"]["backend"]["ip"], path["dst"]["host"]) == ("ipvs", "172.17.25.239", "worker-b")
    assert path["src"]["address"] == SRC


HANG = object()   # a tool that does not answer: a real process that sleeps until it is killed


class _Node(object):
    """What route_info's read_service_rules asks of AnsibleModule: tools found, their outputs (HANG: a
    process that sleeps 30 s, handed to the caller's before_communicate_callback as run_command does)."""

    def __init__(self, outputs):
        self.outputs, self.ran = outputs, []

    def get_bin_path(self, name):
        return "/usr/sbin/" + name if name in self.outputs else None

    def run_command(self, argv, environ_update=None, before_communicate_callback=None):
        self.ran.append(argv)
        assert environ_update == {"LC_ALL": "C", "LANG": "C"}
        output = self.outputs[argv[0].rsplit("/", 1)[1]]
        if output is HANG:
            proc = subprocess.Popen(["sleep", "30"])
            before_communicate_callback(proc)
            return proc.wait(), "", ""
        return 0, output, ""


def test_node_side_reads_ipvsadm_only_with_kube_ipvs0():
    from ansible_collections.hoptrace.k8s.plugins.modules.route_info import read_service_rules
    save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
    node = _Node({"iptables-save": save, "ipvsadm": REAL})
    found = read_service_rules(node, [{"ifname": "eth0"}, {"ifname": "kube-ipvs0"}])
    assert (found["source"], found["ipvs"]) == ("iptables-save", REAL)
    assert node.ran == [["/usr/sbin/iptables-save"], ["/usr/sbin/ipvsadm", "-Ln"]]
    node = _Node({"iptables-save": save, "ipvsadm": REAL})
    assert "ipvs" not in read_service_rules(node, [{"ifname": "eth0"}])
    assert node.ran == [["/usr/sbin/iptables-save"]]
