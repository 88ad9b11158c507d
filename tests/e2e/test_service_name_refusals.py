"""A Service given by name (dst=svc/namespace/name) that cannot be traced is refused on the controller,
before any node is contacted: real ansible-playbook and ssh against an inventory of "nodes" that are a
loopback listener counting every connection (tests/lab/biginv.py), the Service read from the stand-in
kubectl (tests/lab/standin_kubectl.py, on PATH as `kubectl`) or the real kubectl client without a
cluster. No lab needed. The last case resolves a good name and shows the listener then counts the
entry node's contact, so the zeros above are not a deaf listener's.
"""
import json
import os
import subprocess

import pytest
from test_refusals import PLAYBOOK, _inventory
from test_trace import BIN, ROOT, SRC, _env

from lab import biginv

# Service objects in the shape of `kubectl get svc -o json` (tests/unit/fixtures/services/kubectl-get-services.json)
FIXTURE_SERVICES = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
     "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5432}],
              "selector": {"app": "db"}, "type": "ClusterIP"}, "status": {"loadBalancer": {}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-service", "namespace": "prod"},
     "spec": {"externalName": "my.database.example.com", "type": "ExternalName"}, "status": {"loadBalancer": {}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginxsvc", "namespace": "default"},
     "spec": {"clusterIP": "10.96.10.60", "clusterIPs": ["10.96.10.60"], "type": "NodePort",
              "ports": [{"name": "http", "nodePort": 31237, "port": 80, "protocol": "TCP", "targetPort": 80},
                        {"name": "https", "nodePort": 32133, "port": 443, "protocol": "TCP", "targetPort": 443}]},
     "status": {"loadBalancer": {}}},
]


@pytest.fixture
def standin(standin_kubectl):
    env, state = standin_kubectl
    (state / "fixture_services.json").write_text(json.dumps(FIXTURE_SERVICES))
    return env, state


def _run(tmp_path, env, extra):
    out_dir = tmp_path / "out"
    with biginv.ConnectionCounter() as counter:
        inventory = _inventory(tmp_path / "inventory.ini", counter.port, hosts=3)
        settings = {"src": SRC, "output_dir": str(out_dir), "entry_tries": 1}
        settings.update(extra)
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings)]
        proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        contacts = counter.count
    return proc.returncode, " ".join(proc.stdout.split()), contacts, out_dir


@pytest.mark.parametrize("extra, message", [
    ({"dst": "svc/shop/db"},
     "dst svc/shop/db is headless (clusterIP: None): kube-proxy does not translate it, clients connect to its pods directly; "
     "trace one of them as -e dst=shop/POD"),
    ({"dst": "svc/prod/my-service"},
     "dst svc/prod/my-service is an ExternalName Service (a DNS alias for my.database.example.com): it has no ClusterIP"),
    ({"dst": "svc/default/nope"}, "dst svc/default/nope: no such Service in namespace default (kubectl get services -n default lists them)"),
    ({"dst": "svc/default/nginxsvc"},
     "dst svc/default/nginxsvc has 2 tcp ports (http 80/TCP, https 443/TCP): say which with -e port=NAME or -e port=NUMBER"),
    ({"dst": "svc/default/nginxsvc", "port": "grpc"}, "dst svc/default/nginxsvc has no tcp port grpc (its ports: http 80/TCP, https 443/TCP)"),
    ({"dst": "svc/default/web", "proto": "icmp"}, "dst svc/default/web: a Service is traced on one of its ports with proto tcp or udp"),
    ({"dst": "svc/default/web", "node_access_cli": "/nonexistent/kubectl"},
     "dst svc/default/web is a Service name: resolving it needs cluster access (kubectl and a kubeconfig on the controller), and that failed"),
])
def test_a_service_that_cannot_be_traced_is_refused_before_any_node(tmp_path, standin, extra, message):
    env, state = standin
    rc, out, contacts, out_dir = _run(tmp_path, env, extra)
    assert rc != 0, out[-3000:]
    assert message in out, out[-3000:]
    assert contacts == 0, "a refused Service still contacted %d node(s):\n%s" % (contacts, out[-3000:])
    assert not out_dir.exists()


def test_the_real_kubectl_without_a_cluster_is_refused_saying_what_to_do(tmp_path):
    if not os.access("/usr/bin/kubectl", os.X_OK):
        pytest.skip("the real kubectl client is not installed")
    env = _env(KUBECONFIG=str(tmp_path / "no-such-kubeconfig"))
    rc, out, contacts, _out_dir = _run(tmp_path, env, {"dst": "svc/default/web", "node_access_cli": "/usr/bin/kubectl"})
    assert rc != 0 and contacts == 0, out[-3000:]
    assert "dst svc/default/web is a Service name: resolving it needs cluster access" in out, out[-3000:]
    assert "Install kubectl and set KUBECONFIG, or give the Service's ClusterIP and port instead" in out


def test_a_good_name_resolves_and_then_the_entry_node_is_contacted(tmp_path, standin):
    env, state = standin
    rc, out, contacts, _out_dir = _run(tmp_path, env, {"dst": "svc/default/nginxsvc", "port": "https"})
    assert rc != 0               # the "nodes" are the listener: the entry node cannot be read
    assert contacts >= 1, out[-3000:]
    calls = [json.loads(line) for line in (state / "calls.log").read_text().splitlines()]
    assert calls == [["--request-timeout=10s", "get", "services", "--namespace=default",
                      "--field-selector=metadata.name=nginxsvc", "--output=json"]]
