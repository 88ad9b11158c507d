"""service_names: the backend pod named from the registered pod lookups, the Service given by name in the
report (its line), and lookups that fail becoming notes, never errors. The reports are lab runs'
(tests/unit/fixtures/services/lab-service-*.json, written by tests/e2e/test_services_lab.py)."""
import copy
import json
import os

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_names import apply, backend_pods

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "services")


def lab_report(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


def pod(namespace, name, ip, node="node-b", host_network=False):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "hostNetwork": host_network},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.240.0.9"}}


def kubectl(ip, *pods, rc=0, stderr=""):
    """A registered loop item of the role's kubectl lookup (ansible.builtin.command)."""
    return {"changed": False, "rc": rc, "stdout": json.dumps({"apiVersion": "v1", "kind": "List", "items": list(pods)}) if rc == 0 else "",
            "stderr": stderr, "trace_backend_ip": ip, "ansible_loop_var": "trace_backend_ip"}


ROUTER = pod("openshift-ingress", "router-default-77949c967-tgth7", "172.17.25.239")
SERVICE = {"ip": "10.96.10.20", "port": 443, "port_name": "https", "protocol": "tcp", "namespace": "openshift-ingress",
           "name": "router-internal-default", "text": "svc/openshift-ingress/router-internal-default", "type": "ClusterIP"}


def test_the_backend_pod_and_the_service_by_name_go_into_the_line():
    before = lab_report("lab-service-clusterip.json")["notes"]
    report = apply(lab_report("lab-service-clusterip.json"), {"service": SERVICE, "via": "kubectl",
                                                              "lookups": [kubectl("172.17.25.239", ROUTER)]})
    svc = report["service"]
    assert svc["backend"] == {"ip": "172.17.25.239", "port": 443, "node": "node-b",
                              "pod": "openshift-ingress/router-default-77949c967-tgth7"}
    assert svc["requested"] == {"name": "svc/openshift-ingress/router-internal-default", "port_name": "https", "via": "kubectl"}
    assert svc["line"] == ("Service 10.96.10.20:443 (openshift-ingress/router-internal-default, by name through kubectl) -> "
                           "backend 172.17.25.239:443 (pod openshift-ingress/router-default-77949c967-tgth7 on node-b), "
                           "chosen by kube-proxy's DNAT on node-a")
    # a pod found adds no note: the run's own notes stay as they were
    assert report["notes"] == before and not [n for n in before if "pod" in n]


def test_a_clusterip_trace_with_names_only_names_the_pod():
    # e.g. src given as namespace/pod and dst as the ClusterIP: the Service line keeps kube-proxy's name
    report = apply(lab_report("lab-service-clusterip.json"), {"service": None, "lookups": [kubectl("172.17.25.239", ROUTER)]})
    assert "requested" not in report["service"]
    assert report["service"]["line"] == (
        "Service 10.96.10.20:443 (openshift-ingress/router-internal-default) -> backend 172.17.25.239:443 "
        "(pod openshift-ingress/router-default-77949c967-tgth7 on node-b), chosen by kube-proxy's DNAT on node-a")


def two_endpoint_lookups(chosen):
    """The lookups of default/web's two endpoints: the chosen one's pod found, the other's read failing."""
    node = {"172.17.25.66": "node-a", "172.17.25.193": "node-b"}
    other = next(ip for ip in node if ip != chosen)
    return [kubectl(chosen, pod("default", "web-1", chosen, node=node[chosen])),
            kubectl(other, rc=1, stderr="Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout\n")], other


def test_the_chosen_candidate_is_named_and_the_others_lookups_do_not_matter():
    # which endpoint kube-proxy picked in the run the fixture was kept from is the fixture's own
    fixture = lab_report("lab-service-two-endpoints.json")
    chosen = fixture["service"]["backend"]
    lookups, other = two_endpoint_lookups(chosen["ip"])
    report = apply(fixture, {"service": None, "lookups": lookups})
    assert report["service"]["backend"]["pod"] == "default/web-1"
    assert not [n for n in report["notes"] if other in n]
    assert "backend %s:443 (pod default/web-1 on %s)" % (chosen["ip"], chosen["node"]) in report["service"]["line"]


def test_the_chosen_candidates_failed_lookup_is_a_note_and_no_pod():
    fixture = lab_report("lab-service-two-endpoints.json")
    chosen = fixture["service"]["backend"]["ip"]
    lookups, other = two_endpoint_lookups(other_of(chosen))
    report = apply(fixture, {"service": None, "lookups": lookups})
    assert report["service"]["backend"]["pod"] is None
    assert ("the pod of backend %s could not be read from the Kubernetes API (Unable to connect to the server: dial tcp "
            "10.0.0.1:6443: i/o timeout)" % chosen) in report["notes"]


def other_of(ip):
    return {"172.17.25.66": "172.17.25.193", "172.17.25.193": "172.17.25.66"}[ip]


def test_k8s_info_results_are_read_too():
    item = {"resources": [ROUTER], "api_found": True, "trace_backend_ip": "172.17.25.239", "ansible_loop_var": "trace_backend_ip"}
    assert backend_pods([item]) == ({"172.17.25.239": "openshift-ingress/router-default-77949c967-tgth7"}, {})


def test_a_lookup_that_fails_is_a_note_and_the_pod_stays_null():
    stderr = ("E1207 13:02:11.000 memcache.go:265] couldn't get current server API group list\n"
              "Unable to connect to the server: dial tcp 127.0.0.1:9: connect: connection refused\n")
    report = apply(lab_report("lab-service-clusterip.json"), {"service": SERVICE, "lookups": [kubectl("172.17.25.239", rc=1, stderr=stderr)]})
    assert report["service"]["backend"]["pod"] is None
    assert report["notes"][-1] == ("the pod of backend 172.17.25.239 could not be read from the Kubernetes API "
                                   "(Unable to connect to the server: dial tcp 127.0.0.1:9: connect: connection refused)")
    assert "(on node-b)" in report["service"]["line"]


def test_no_single_pod_is_a_note():
    agent = pod("kube-system", "agent", "172.17.25.239", host_network=True)
    assert backend_pods([kubectl("172.17.25.239", agent)]) == (
        {}, {"172.17.25.239": "backend 172.17.25.239: no pod has this IP in the Kubernetes API (an endpoint outside the pod network?)"})
    two = [kubectl("172.17.25.239", ROUTER, pod("default", "stale", "172.17.25.239"))]
    assert backend_pods(two)[1]["172.17.25.239"] == (
        "backend 172.17.25.239: 2 pods have this IP (default/stale, openshift-ingress/router-default-77949c967-tgth7), so none is named")
    timed_out = {"failed": True, "msg": "The task timed out after 20 seconds", "trace_backend_ip": "172.17.25.239",
                 "ansible_loop_var": "trace_backend_ip"}
    assert "(The task timed out after 20 seconds)" in backend_pods([timed_out])[1]["172.17.25.239"]
    assert backend_pods([{"skipped": True, "trace_backend_ip": "172.17.25.239", "ansible_loop_var": "trace_backend_ip"}]) == ({}, {})


def test_a_service_name_whose_clusterip_no_rule_translates_says_so():
    report = copy.deepcopy(lab_report("lab-service-clusterip.json"))
    report.pop("service")
    apply(report, {"service": SERVICE, "lookups": []})
    assert report["notes"][-1] == ("dst svc/openshift-ingress/router-internal-default is ClusterIP 10.96.10.20:443 (from the "
                                   "Kubernetes API), but no kube-proxy rule on the source node translates it: it was traced "
                                   "as a plain address")
    assert "service" not in report


def test_no_names_changes_nothing():
    report = lab_report("lab-service-clusterip.json")
    assert apply(copy.deepcopy(report), None) == report


def test_the_summary_never_splits_the_pod_name_at_a_hyphen():
    from ansible_collections.hoptrace.k8s.plugins.plugin_utils.report import render_table
    report = apply(lab_report("lab-service-clusterip.json"), {"service": SERVICE, "lookups": [kubectl("172.17.25.239", ROUTER)]})
    text = "\n".join(render_table(report, width=80, run_dir="/tmp/traces/20261207T133134Z-7ede71"))
    assert "openshift-ingress/router-default-77949c967-tgth7" in text.split()
    assert "  openshift-ingress/router-default-77949c967-tgth7 on node-b), chosen by" in text.splitlines()


def test_the_named_report_validates_against_the_schema():
    from test_report_schema import SCHEMA, validate
    report = apply(lab_report("lab-service-clusterip.json"), {"service": SERVICE, "lookups": [kubectl("172.17.25.239", ROUTER)]})
    assert validate(report, SCHEMA) == []
    assert validate(dict(report, service=dict(report["service"], requested={"name": "x"})), SCHEMA) != []
