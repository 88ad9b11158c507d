"""The nodes to reach for a Service traced through debug pods (node_access kubectl/oc, no inventory):
the ready pods of its selector (plugin_utils/service_pods.py). The pods are written in the shape of
`kubectl get pods -o json` (metadata, spec.nodeName, status.phase/podIP/hostIP/conditions)."""
import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_pods import lookup_argv, selector_text, service_pods
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

TARGET = {"ip": "10.96.10.30", "port": 443, "namespace": "default", "name": "web", "text": "svc/default/web",
          "type": "ClusterIP", "selector": {"app": "web", "tier": "front"}}


def pod(name, ip, node, host_ip, phase="Running", ready="True", deleting=False):
    meta = {"name": name, "namespace": "default", "labels": {"app": "web", "tier": "front"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T23:50:00Z"
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": phase, "podIP": ip, "hostIP": host_ip,
                       "conditions": [{"type": "Ready", "status": ready}, {"type": "PodScheduled", "status": "True"}]}}


def test_the_command_lists_the_selectors_pods_in_the_services_namespace():
    assert lookup_argv(TARGET, {"cli": "kubectl", "context": "prod"}) == [
        "kubectl", "--context=prod", "--request-timeout=10s", "get", "pods", "--namespace=default",
        "--selector=app=web,tier=front", "--output=json"]
    assert selector_text(TARGET) == "app=web,tier=front"


def test_ready_pods_give_their_nodes_once_each_in_pod_order():
    answer = {"kind": "List", "items": [
        pod("web-1", "172.17.25.193", "node-b", "10.240.0.9"), pod("web-2", "172.17.25.66", "node-a", "10.240.128.12"),
        pod("web-3", "172.17.25.194", "node-b", "10.240.0.9"),
        pod("web-4", "172.17.25.195", "node-c", "10.240.0.10", ready="False"),     # not an endpoint kube-proxy writes
        pod("web-5", "172.17.25.196", "node-d", "10.240.0.11", deleting=True),     # terminating
        pod("web-6", "", "node-e", "10.240.0.12", phase="Pending")]}
    got = service_pods(answer, TARGET)
    assert [(p["name"], p["ip"], p["node"]) for p in got["pods"]] == [
        ("web-1", "172.17.25.193", "node-b"), ("web-2", "172.17.25.66", "node-a"), ("web-3", "172.17.25.194", "node-b")]
    assert got["nodes"] == [{"node": "node-b", "host_ip": "10.240.0.9"}, {"node": "node-a", "host_ip": "10.240.128.12"}]
    # k8s_info's resources: a plain list
    assert service_pods(answer["items"][:1], TARGET)["nodes"] == [{"node": "node-b", "host_ip": "10.240.0.9"}]


def test_no_ready_pod_is_no_node_to_add():
    assert service_pods({"items": []}, TARGET) == {"pods": [], "nodes": []}


def test_a_service_without_selector_and_one_with_too_many_pods_are_refused():
    with pytest.raises(ValidationError) as err:
        lookup_argv(dict(TARGET, selector=None), {"cli": "kubectl"})
    assert str(err.value).startswith("dst svc/default/web has no pod selector: its endpoints are kept by hand")
    many = [pod("web-%d" % i, "172.17.25.%d" % (200 + i), "node-%d" % i, "10.240.0.%d" % (20 + i)) for i in range(5)]
    with pytest.raises(ValidationError) as err:
        service_pods(many, TARGET)
    assert str(err.value) == (
        "dst svc/default/web has 5 ready pods (default/web-0, default/web-1, default/web-2, default/web-3 ...) and a trace "
        "captures on the nodes of at most 4 candidates: trace one of them with -e dst=NAMESPACE/POD")
