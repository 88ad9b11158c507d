"""A Service given by name (svc/namespace/name): the syntax, the ClusterIP and port chosen from the API's
answer (real `kubectl get svc -o json` output, sources in the fixture's _sources), and every refusal."""
import json
import os

import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import inputs
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.podref import pod_ref, service_ref
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.svcinfo import lookup_argv, service_target
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "..", "fixtures", "services", "kubectl-get-services.json")) as _f:
    REAL = json.load(_f)


def ref(text):
    return service_ref(text, "dst")


@pytest.mark.parametrize("text, expected", [
    ("svc/default/redis-follower", {"namespace": "default", "name": "redis-follower", "text": "svc/default/redis-follower"}),
    ("service/shop/db", {"namespace": "shop", "name": "db", "text": "svc/shop/db"}),
    ("default/redis-follower", None),          # namespace/name stays a pod, as always
    ("10.96.0.10", None),
])
def test_the_service_syntax(text, expected):
    assert service_ref(text, "dst") == expected


@pytest.mark.parametrize("text, what, message", [
    ("svc/default", "dst", "dst 'svc/default' is not svc/namespace/service"),
    ("svc/default/Web", "dst", "dst 'svc/default/Web' is not svc/namespace/service"),
    ("svc/default/9web", "dst", "starting with a letter"),
    ("svc/default/web;id", "dst", "is not svc/namespace/service"),
    ("svc/default/web", "src", "src 'svc/default/web' is a Service: a trace starts inside a pod"),
])
def test_bad_service_names_are_refused(text, what, message):
    with pytest.raises(ValidationError) as err:
        service_ref(text, what)
    assert message in str(err.value)


def test_a_bad_dst_says_a_service_is_svc_slash():
    with pytest.raises(ValidationError) as err:
        pod_ref("a/b/c", "dst")
    assert str(err.value).endswith("or a Service as svc/namespace/service (svc/default/web)")


def test_the_real_one_port_service_defaults_to_its_port():
    got = service_target(REAL["guestbook-redis-follower"], ref("svc/default/redis-follower"))
    assert got == {"ip": "10.105.1.89", "port": 6379, "port_name": None, "protocol": "tcp", "namespace": "default",
                   "name": "redis-follower", "text": "svc/default/redis-follower", "type": "ClusterIP",
                   "selector": {"app": "redis", "role": "follower", "tier": "backend"}}
    # by number too, and one Service object (kubectl get svc NAME -o json) or k8s_info's resources
    assert service_target(REAL["guestbook-redis-follower"]["items"][0], ref("svc/default/redis-follower"), "6379")["port"] == 6379
    assert service_target(REAL["guestbook-redis-follower"]["items"], ref("svc/default/redis-follower"))["ip"] == "10.105.1.89"


@pytest.mark.parametrize("port, expected", [("https", (443, "https")), ("80", (80, "http")), (443, (443, "https"))])
def test_several_ports_by_name_or_number(port, expected):
    got = service_target(REAL["nginxsvc-two-ports"], ref("svc/default/nginxsvc"), port)
    assert (got["port"], got["port_name"], got["ip"], got["type"]) == expected + ("10.0.0.171", "NodePort")


@pytest.mark.parametrize("case, text, port, proto, message", [
    ("nginxsvc-two-ports", "svc/default/nginxsvc", "", "tcp",
     "dst svc/default/nginxsvc has 2 tcp ports (http 80/TCP, https 443/TCP): say which with -e port=NAME or -e port=NUMBER"),
    ("nginxsvc-two-ports", "svc/default/nginxsvc", "8443", "tcp",
     "dst svc/default/nginxsvc has no tcp port 8443 (its ports: http 80/TCP, https 443/TCP)"),
    ("nginxsvc-two-ports", "svc/default/nginxsvc", "grpc", "tcp", "has no tcp port grpc (its ports: http 80/TCP, https 443/TCP)"),
    ("nginxsvc-two-ports", "svc/default/nginxsvc", "", "udp",
     "dst svc/default/nginxsvc has no udp port (its ports: http 80/TCP, https 443/TCP); give the matching proto"),
    ("none", "svc/default/nginxsvc", "", "tcp",
     "dst svc/default/nginxsvc: no such Service in namespace default (kubectl get services -n default lists them)"),
    ("guestbook-redis-follower", "svc/other/redis-follower", "", "tcp", "no such Service in namespace other"),
    ("headless", "svc/shop/db", "", "tcp",
     "dst svc/shop/db is headless (clusterIP: None): kube-proxy does not translate it, clients connect to its pods directly; "
     "trace one of them as -e dst=shop/POD (kubectl get endpointslices -n shop -l kubernetes.io/service-name=db lists them)"),
    ("externalname", "svc/prod/my-service", "", "tcp",
     "dst svc/prod/my-service is an ExternalName Service (a DNS alias for my.database.example.com): it has no ClusterIP"),
])
def test_what_cannot_be_traced_is_refused_with_what_to_do(case, text, port, proto, message):
    with pytest.raises(ValidationError) as err:
        service_target(REAL[case], ref(text), port, proto)
    assert message in str(err.value)


def test_a_dual_stack_service_gives_the_sources_family():
    answer, svc = REAL["dual-stack"], ref("svc/default/my-service")
    assert service_target(answer, svc, family=None)["ip"] == "10.0.197.123"
    assert service_target(answer, svc, family=4)["ip"] == "10.0.197.123"
    assert service_target(answer, svc, family=6)["ip"] == "fd00::5118"
    single = REAL["guestbook-redis-follower"]
    with pytest.raises(ValidationError) as err:
        service_target(single, ref("svc/default/redis-follower"), family=6)
    assert "has only IPv4 ClusterIPs (10.105.1.89) and the source is IPv6" in str(err.value)


def test_the_command_line_lists_the_service_by_name():
    access = {"cli": "kubectl", "kubeconfig": "/etc/k.conf", "context": "prod"}
    assert lookup_argv(ref("svc/default/web"), access) == [
        "kubectl", "--kubeconfig=/etc/k.conf", "--context=prod", "--request-timeout=10s", "get", "services",
        "--namespace=default", "--field-selector=metadata.name=web", "--output=json"]


SETTINGS = {"src": "172.17.25.79", "dst": "svc/default/web", "proto": "tcp", "port": "", "mode": "probe", "deadline": 60,
            "duration": 10, "snaplen": 192, "probe_timeout": 3, "entry_tries": 3, "nodes": "", "via": ""}
GROUPS = {"all": ["node-a", "node-b"], "nodes": ["node-a", "node-b"]}


def test_inputs_keep_the_service_for_the_controller_to_resolve():
    got = inputs.check_inputs(SETTINGS, GROUPS)
    assert got["service"] == {"namespace": "default", "name": "web", "text": "svc/default/web", "port": ""}
    assert (got["unresolved"], got["flow"], got["names"]) == ([], None, True)
    assert inputs.check_inputs(dict(SETTINGS, port="https"), GROUPS)["service"]["port"] == "https"


def test_a_left_out_port_is_443_for_pods_and_ips():
    got = inputs.check_inputs(dict(SETTINGS, dst="172.17.25.239"), GROUPS)
    assert (got["service"], got["port"], got["flow"]["port"], got["names"]) == (None, 443, 443, False)
    assert inputs.check_inputs(dict(SETTINGS, dst="default/web-0"), GROUPS)["port"] == 443
    assert inputs.check_inputs(dict(SETTINGS, dst="default/web-0", port="8443"), GROUPS)["port"] == "8443"


@pytest.mark.parametrize("extra, message", [
    ({"proto": "icmp"}, "dst svc/default/web: a Service is traced on one of its ports with proto tcp or udp"),
    ({"port": "HTTPS"}, "port 'HTTPS' is neither a port number (1-65535) nor a Service port name such as https"),
    ({"port": "70000"}, "port '70000' is neither a port number"),
    ({"port": "443; id"}, "port '443; id' is neither a port number"),
    ({"src": "svc/default/web"}, "src 'svc/default/web' is a Service"),
])
def test_inputs_refuse_what_a_service_trace_cannot_do(extra, message):
    with pytest.raises(ValidationError) as err:
        inputs.check_inputs(dict(SETTINGS, **extra), GROUPS)
    assert message in str(err.value)


def test_a_service_by_name_through_debug_pods_resolves_the_source_pod_and_the_service():
    got = inputs.check_inputs(dict(SETTINGS, src="172.17.25.79", node_access="kubectl"), GROUPS)
    assert [u["what"] for u in got["unresolved"]] == ["src"]
    assert (got["service"]["text"], got["cluster"]["hosts"], got["names"]) == ("svc/default/web", [], True)
