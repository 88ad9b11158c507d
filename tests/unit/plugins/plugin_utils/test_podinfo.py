"""podinfo: a trace endpoint's IP and node from the API's answer, the command line that reads it, node_access."""
import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import inputs
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podinfo import lookup_argv, pod_endpoint
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

NAME = {"ip": None, "namespace": "default", "name": "web-0"}
IP = {"ip": "172.17.25.239", "namespace": None, "name": None}


def pod(name="web-0", phase="Running", ip="172.17.25.239", node="node-b", host_network=False, namespace="default"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node, "hostNetwork": host_network},
            "status": {"phase": phase, "podIP": ip, "hostIP": "10.240.0.9"}}


def test_a_running_pod_gives_its_ip_and_node():
    assert pod_endpoint(pod(), "dst", NAME) == {"ip": "172.17.25.239", "node": "node-b", "host_ip": "10.240.0.9",
                                                "namespace": "default", "name": "web-0"}
    assert pod_endpoint({"items": [pod()]}, "dst", IP)["node"] == "node-b"
    assert pod_endpoint([pod()], "dst", IP)["node"] == "node-b"           # k8s_info's resources


def test_an_ip_shared_with_a_host_network_pod_names_the_pod_network_one():
    answer = {"items": [pod("agent", ip="172.17.25.239", host_network=True), pod()]}
    assert pod_endpoint(answer, "dst", IP)["name"] == "web-0"


@pytest.mark.parametrize("answer, ref, message", [
    ({"items": []}, NAME, "dst default/web-0: no such pod in namespace default"),
    ({"items": []}, IP, "dst 172.17.25.239: no pod has this IP (kubectl get pods -A -o wide lists the pod IPs); give a pod's IP "
                        "or namespace/pod; a Service's ClusterIP is given by name as svc/NAMESPACE/NAME"),
    (pod(phase="Pending", ip=None), NAME, "dst default/web-0 (default/web-0) is not running (phase Pending): trace it once it runs"),
    (pod(phase="Succeeded"), NAME, "is not running (phase Succeeded)"),
    (pod(ip=None), NAME, "dst default/web-0 (default/web-0) has no IP yet"),
    (pod(node=None), NAME, "is not scheduled on a node yet"),
    (pod(host_network=True), NAME, "uses the host's network (hostNetwork: true)"),
    ({"items": [pod(), pod("web-1")]}, IP, "dst 172.17.25.239: 2 pods have this IP (default/web-0, default/web-1); give one as namespace/pod"),
    (pod(name="other"), NAME, "no such pod in namespace default"),
])
def test_pods_that_cannot_be_traced_say_why(answer, ref, message):
    with pytest.raises(ValidationError) as err:
        pod_endpoint(answer, "dst", ref)
    assert message in str(err.value)


def test_lookup_argv():
    access = {"cli": "oc", "kubeconfig": "/k/config", "context": "prod"}
    assert lookup_argv(NAME, access) == ["oc", "--kubeconfig=/k/config", "--context=prod", "get", "pod", "web-0",
                                         "--namespace=default", "--output=json"]
    expected = ["kubectl", "get", "pods", "--all-namespaces", "--field-selector=status.podIP=172.17.25.239", "--output=json"]
    assert lookup_argv(IP, {"cli": "kubectl"}) == expected


SETTINGS = {"src": "172.17.25.79", "dst": "default/web-0", "proto": "tcp", "port": 443, "mode": "probe", "deadline": 60,
            "duration": 10, "snaplen": 192, "probe_timeout": 3, "entry_tries": 3, "nodes": "", "via": ""}


def test_node_access_kubectl_needs_no_inventory_and_looks_up_both_pods():
    checked = inputs.check_inputs(dict(SETTINGS, node_access="kubectl", dst="172.17.25.239"), {"all": [], "ungrouped": []})
    assert checked["cluster"] == {"name": "hoptrace_api_nodes", "hosts": [], "how": "the nodes hosting the pods, from the Kubernetes API"}
    assert [u["what"] for u in checked["unresolved"]] == ["src", "dst"] and checked["flow"] is None
    assert checked["access"] == {"node_access": "kubectl", "cli": "kubectl", "kubeconfig": "", "context": ""}


def test_node_access_ssh_is_the_default_and_keeps_the_inventory():
    checked = inputs.check_inputs(SETTINGS, {"all": ["node-a"], "nodes": ["node-a"]})
    assert checked["access"]["node_access"] == "ssh" and checked["cluster"]["hosts"] == ["node-a"]
    assert [u["what"] for u in checked["unresolved"]] == ["dst"]


@pytest.mark.parametrize("change, message", [
    ({"node_access": "telnet"}, "node_access 'telnet' is not supported; use one of ssh, kubectl, oc"),
    ({"node_access": "kubectl", "cli": "kubectl; id"}, "node_access_cli 'kubectl; id' must be a command name or path"),
    ({"node_access": "kubectl", "kubeconfig": "$(id)"}, "kubeconfig '$(id)' has a character a path should not have"),
    ({"node_access": "kubectl", "context": "a b"}, "context 'a b' is not a kubeconfig context name"),
    ({"node_access": "oc", "via": "node-a"}, "via node-a: with node_access=oc the entry node is the source pod's node"),
])
def test_bad_node_access_settings(change, message):
    with pytest.raises(ValidationError) as err:
        inputs.check_inputs(dict(SETTINGS, **change), {"all": ["node-a"], "nodes": ["node-a"]})
    assert message in str(err.value)
