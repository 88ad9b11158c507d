#!/usr/bin/env python3
# #########################################################################################
# #  THIS IS A STAND-IN, NOT KUBECTL.                                                    #
# #  No Kubernetes API server can run on the test machines, so the tests point the       #
# #  hoptrace.k8s.node_debug connection (and pod-name resolution) at this script. It      #
# #  implements ONLY the subcommands and flags hoptrace calls, and rejects anything else  #
# #  (an unknown flag, subcommand or argument fails with rc 1, as a wrong command line    #
# #  must fail the test). The command lines are checked against the real kubectl's flag  #
# #  parsing in tests/unit/plugins/plugin_utils/test_node_debug_kubectl.py.               #
# #########################################################################################
"""Stand-in kubectl over the lab (tests/lab): nodes are the lab's network namespaces.

State: the directory in $HOPTRACE_STANDIN_DIR (required): pods/<namespace>__<name>.json for the
"pods" it created, calls.log (one JSON argv a line), and optionally fixture_pods.json (a list of
pod objects served by `get`, e.g. a Pending pod or a hostNetwork pod) and fixture_services.json
(a list of Service objects). The lab's own pods come
from .lab/pods.json ($HOPTRACE_STANDIN_LAB overrides the .lab directory).

    debug node/N --image=I --profile=P --namespace=NS --attach=false --quiet -- CMD...
        a "pod": CMD runs detached on the controller (it is the pod's bounded command, a sleep);
        the pod is Running while it runs, Succeeded after (its object stays, as in Kubernetes)
    get pod NAME | get pods [--field-selector=...] [--selector=...] [-A] --output=json
    get service NAME | get services [--field-selector=metadata.name=...] [-A] --output=json
        the lab's kube-proxy Services (tests/lab/kubeproxy.py's data) as Service objects, plus
        fixture_services.json in the state directory (e.g. a headless or an ExternalName Service);
        dual-stack (both ClusterIPs) on a lab up with --ipv6
    label pod NAME --namespace=NS [--overwrite] k=v...
    wait --for=condition=Ready pod/NAME --namespace=NS --timeout=Ns
    exec -i POD --namespace=NS -- nsenter -t 1 -m -u -i -n -p -- /bin/sh -c CMD
        runs CMD inside the lab node's namespaces (nsenter -t <node init pid> -n -m -u -i -p)
    delete pod NAME... | delete pods --selector=... [--field-selector=...] --namespace=NS
        [--ignore-not-found] [--wait=false]
Global flags: --kubeconfig=FILE (must exist), --context=NAME, --namespace=NS / -n NS,
--request-timeout=D.
"""
import fcntl
import json
import os
import random
import signal
import string
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))     # also when run through a symlink named kubectl
LAB = os.environ.get("HOPTRACE_STANDIN_LAB") or os.path.join(os.path.dirname(os.path.dirname(HERE)), ".lab")
GLOBAL_FLAGS = ("--kubeconfig", "--context", "--namespace", "--request-timeout")
NSENTER = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"]
PROFILES = ("legacy", "general", "baseline", "netadmin", "restricted", "sysadmin")
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "HOSTNAME": "debugger"}


def fail(message, rc=1):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(rc)


def state_dir():
    path = os.environ.get("HOPTRACE_STANDIN_DIR")
    if not path:
        fail("standin_kubectl: HOPTRACE_STANDIN_DIR is not set (this is a test stand-in, not kubectl)")
    os.makedirs(os.path.join(path, "pods"), exist_ok=True)
    return path


class Args:
    """argv split into global flags, the subcommand's flags (checked against `allowed`), its
    positional words and what follows `--`."""

    def __init__(self, argv):
        self.globals, self.flags, self.words, self.rest = {}, {}, [], None
        i = 0
        while i < len(argv):
            word = argv[i]
            if word == "--":
                self.rest = argv[i + 1:]
                break
            if word in ("-n", "-o", "-l", "-A", "-i"):
                if word in ("-A", "-i"):
                    self.flags[{"-A": "--all-namespaces", "-i": "--stdin"}[word]] = "true"
                    i += 1
                    continue
                if i + 1 >= len(argv):
                    fail("error: flag needs an argument: %r in %s" % (word, word))
                name = {"-n": "--namespace", "-o": "--output", "-l": "--selector"}[word]
                self._put(name, argv[i + 1])
                i += 2
                continue
            if word.startswith("--"):
                name, sep, value = word.partition("=")
                self._put(name, value if sep else "true")
            elif word.startswith("-"):
                fail("error: unknown shorthand flag: %r in %s" % (word[1:2], word))
            else:
                self.words.append(word)
            i += 1

    def _put(self, name, value):
        if name in GLOBAL_FLAGS:
            self.globals[name] = value
        else:
            self.flags[name] = value

    def check(self, allowed):
        for name in self.flags:
            if name not in allowed:
                fail("error: unknown flag: %s (the stand-in implements only what hoptrace uses)" % name)


def lab_nodes():
    with open(os.path.join(LAB, "state.json")) as handle:
        return {n["name"]: n for n in json.load(handle)["nodes"]}


def lab_pods():
    try:
        with open(os.path.join(LAB, "pods.json")) as handle:
            pods = json.load(handle)
    except OSError:
        pods = []
    out = [{"metadata": {"name": p["name"], "namespace": p["namespace"], "labels": service_labels(p)},
            "spec": {"nodeName": p["node"], "hostNetwork": False, "containers": [{"name": "main", "image": "lab"}]},
            "status": {"phase": "Running", "podIP": p["ip"], "podIPs": [{"ip": p["ip"]}], "hostIP": p["node_ip"]}}
           for p in pods]
    fixture = os.path.join(state_dir(), "fixture_pods.json")
    if os.path.exists(fixture):
        with open(fixture) as handle:
            out += json.load(handle)
    return out


def selector_of(namespace, name):
    """The lab Service's pod selector: one label per Service (a pod may back several)."""
    return {"lab.hoptrace/%s" % name: "backend"}


def service_labels(pod):
    """The labels of a lab pod: the selector of every lab Service of its namespace it is an endpoint of."""
    import kubeproxy        # tests/lab, next to this script
    labels = {}
    for svc in kubeproxy.services():
        namespace, name = svc["name"].split("/")
        if namespace == pod["namespace"] and any(e.rpartition(":")[0] == pod["ip"] for e in svc["endpoints"]):
            labels.update(selector_of(namespace, name))
    return labels


def _record_path(namespace, name):
    return os.path.join(state_dir(), "pods", "%s__%s.json" % (namespace, name))


def _alive(pid, started):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == started


def debug_pods():
    out = []
    directory = os.path.join(state_dir(), "pods")
    for name in sorted(os.listdir(directory)):
        try:
            with open(os.path.join(directory, name)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        pod = record["object"]
        pod["status"]["phase"] = "Running" if _alive(record["pid"], record["started"]) else "Succeeded"
        pod["_record"] = record
        out.append(pod)
    return out


def all_pods():
    return debug_pods() + lab_pods()


def _field(pod, key):
    return {"spec.nodeName": pod["spec"].get("nodeName"), "status.podIP": pod["status"].get("podIP"),
            "status.phase": pod["status"].get("phase"), "metadata.name": pod["metadata"]["name"]}[key]


def select(pods, args):
    namespace = args.globals.get("--namespace", "default")
    if args.flags.get("--all-namespaces") != "true":
        pods = [p for p in pods if p["metadata"]["namespace"] == namespace]
    for term in filter(None, args.flags.get("--field-selector", "").split(",")):
        negate = "!=" in term
        key, _sep, value = term.partition("!=" if negate else "=")
        if key not in ("spec.nodeName", "status.podIP", "status.phase", "metadata.name"):
            fail('Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match label selector "", '
                 'field selector "%s": field label not supported: %s' % (args.flags["--field-selector"], key))
        pods = [p for p in pods if (_field(p, key) == value) != negate]
    for term in filter(None, args.flags.get("--selector", "").split(",")):
        key, _sep, value = term.partition("=")
        pods = [p for p in pods if p["metadata"].get("labels", {}).get(key) == value]
    return pods


def public(pod):
    return {k: v for k, v in pod.items() if not k.startswith("_")}


def find(args, name):
    namespace = args.globals.get("--namespace", "default")
    for pod in all_pods():
        if pod["metadata"]["name"] == name and pod["metadata"]["namespace"] == namespace:
            return pod
    fail('Error from server (NotFound): pods "%s" not found' % name)


def cmd_debug(args):
    args.check({"--image", "--profile", "--attach", "--quiet"})
    if len(args.words) != 1 or not args.words[0].startswith("node/"):
        fail("standin_kubectl: debug supports only node/NAME")
    node = args.words[0][len("node/"):]
    nodes = lab_nodes()
    if node not in nodes:
        fail('Error from server (NotFound): nodes "%s" not found' % node)
    if args.flags.get("--attach") != "false":
        fail("standin_kubectl: debug node needs --attach=false here (it cannot attach)")
    if args.flags.get("--profile", "legacy") not in PROFILES:
        fail("error: unknown profile: %s" % args.flags["--profile"])
    if not args.flags.get("--image"):
        fail("error: --image is required for node debugging")
    if not args.rest:
        fail("standin_kubectl: debug needs a command after --")
    namespace = args.globals.get("--namespace", "default")
    name = "node-debugger-%s-%s" % (node, "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5)))
    proc = subprocess.Popen(args.rest, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    with open("/proc/%d/stat" % proc.pid) as handle:
        started = handle.read().rpartition(")")[2].split()[19]
    obj = {"metadata": {"name": name, "namespace": namespace, "labels": {}},
           "spec": {"nodeName": node, "hostPID": True, "hostNetwork": True, "restartPolicy": "Never",
                    "containers": [{"name": "debugger", "image": args.flags["--image"], "command": list(args.rest)}]},
           "status": {"phase": "Running", "podIP": nodes[node]["ip"], "hostIP": nodes[node]["ip"]}}
    with open(_record_path(namespace, name), "w") as handle:
        json.dump({"object": obj, "pid": proc.pid, "started": started, "profile": args.flags.get("--profile", "legacy"),
                   "created": time.time()}, handle)
    if args.flags.get("--quiet") != "true":
        sys.stderr.write("Creating debugging pod %s with container debugger on node %s.\n" % (name, node))


def _dual_stack():
    try:
        with open(os.path.join(LAB, "state.json")) as handle:
            return bool(json.load(handle).get("ipv6"))
    except (OSError, ValueError):
        return False


def lab_services():
    """The lab's Services as the API shows them (kubectl get svc -o json of a kube-proxy cluster); on a
    dual-stack lab (up --ipv6) PreferDualStack ones with both ClusterIPs, as `services up` writes them."""
    import kubeproxy        # tests/lab, next to this script
    dual = _dual_stack()
    out = []
    for svc in kubeproxy.services():
        namespace, name = svc["name"].split("/")
        port = {"name": svc["port_name"].rpartition(":")[2], "port": svc["port"], "protocol": "TCP",
                "targetPort": int(svc["endpoints"][0].rpartition(":")[2]) if svc["endpoints"] else svc["port"]}
        if svc.get("node_port"):
            port["nodePort"] = svc["node_port"]
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": namespace, "labels": {}},
                    "spec": {"clusterIP": svc["cluster_ip"],
                             "clusterIPs": [svc["cluster_ip"]] + ([kubeproxy.cluster_ip6(svc["cluster_ip"])] if dual else []),
                             "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4", "IPv6"] if dual else ["IPv4"],
                             "ipFamilyPolicy": "PreferDualStack" if dual else "SingleStack", "ports": [port],
                             "selector": selector_of(namespace, name), "sessionAffinity": "None",
                             "type": "NodePort" if svc.get("node_port") else "ClusterIP"},
                    "status": {"loadBalancer": {}}})
    fixture = os.path.join(state_dir(), "fixture_services.json")
    if os.path.exists(fixture):
        with open(fixture) as handle:
            out += json.load(handle)
    return out


def get_services(args):
    namespace = args.globals.get("--namespace", "default")
    found = lab_services()
    if args.flags.get("--all-namespaces") != "true":
        found = [s for s in found if s["metadata"]["namespace"] == namespace]
    if "--selector" in args.flags:
        fail("standin_kubectl: get services does not implement --selector")
    for term in filter(None, args.flags.get("--field-selector", "").split(",")):
        key, _sep, value = term.partition("=")
        if key not in ("metadata.name", "metadata.namespace") or "!" in key:
            fail('Error from server (BadRequest): Unable to find "/v1, Resource=services" that match label selector "", '
                 'field selector "%s": "%s" is not a known field selector: only "metadata.name", "metadata.namespace"'
                 % (args.flags["--field-selector"], key))
        found = [s for s in found if s["metadata"][key.partition(".")[2]] == value]
    if len(args.words) == 2:
        match = [s for s in found if s["metadata"]["name"] == args.words[1]]
        if not match:
            fail('Error from server (NotFound): services "%s" not found' % args.words[1])
        print(json.dumps(match[0]))
    elif len(args.words) == 1:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": found, "metadata": {"resourceVersion": ""}}))
    else:
        fail("standin_kubectl: get service takes one name at most")


def cmd_get(args):
    args.check({"--output", "--field-selector", "--selector", "--all-namespaces"})
    if args.flags.get("--output") != "json":
        fail("standin_kubectl: get supports only --output=json")
    if args.words and args.words[0] in ("svc", "service", "services"):
        return get_services(args)
    if not args.words or args.words[0] not in ("pod", "pods"):
        fail("standin_kubectl: get supports only pods and services")
    if len(args.words) == 2:
        print(json.dumps(public(find(args, args.words[1]))))
    elif len(args.words) == 1:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [public(p) for p in select(all_pods(), args)]}))
    else:
        fail("standin_kubectl: get pod takes one name at most")


def cmd_label(args):
    args.check({"--overwrite"})
    if len(args.words) < 3 or args.words[0] != "pod":
        fail("standin_kubectl: label supports only `label pod NAME k=v...`")
    pod = find(args, args.words[1])
    if "_record" not in pod:
        fail("standin_kubectl: only the stand-in's debug pods can be labelled")
    for pair in args.words[2:]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail("error: invalid label spec: %s" % pair)
        if key in pod["metadata"]["labels"] and args.flags.get("--overwrite") != "true":
            fail("error: '%s' already has a value (%s), and --overwrite is false" % (key, pod["metadata"]["labels"][key]))
        pod["metadata"]["labels"][key] = value
    record = pod["_record"]
    record["object"] = public(pod)
    with open(_record_path(pod["metadata"]["namespace"], pod["metadata"]["name"]), "w") as handle:
        json.dump(record, handle)
    print("pod/%s labeled" % pod["metadata"]["name"])


def cmd_wait(args):
    args.check({"--for", "--timeout"})
    if args.flags.get("--for") != "condition=Ready" or len(args.words) != 1 or not args.words[0].startswith("pod/"):
        fail("standin_kubectl: wait supports only --for=condition=Ready pod/NAME")
    timeout = args.flags.get("--timeout", "30s")
    if not timeout.endswith("s") or not timeout[:-1].isdigit():
        fail('error: invalid argument "%s" for "--timeout" flag' % timeout)
    end = time.monotonic() + int(timeout[:-1])
    name = args.words[0][len("pod/"):]
    while True:
        if find(args, name)["status"]["phase"] == "Running":
            print("pod/%s condition met" % name)
            return
        if time.monotonic() > end:
            fail("error: timed out waiting for the condition on pods/%s" % name)
        time.sleep(0.1)


def cmd_exec(args):
    args.check({"--stdin"})
    if len(args.words) != 1 or args.rest is None:
        fail("standin_kubectl: exec supports only `exec [-i] POD -- COMMAND...`")
    pod = find(args, args.words[0])
    if "_record" not in pod:
        fail("standin_kubectl: exec is implemented only into the stand-in's debug pods")
    if pod["status"]["phase"] != "Running":
        fail("error: cannot exec into a container in a completed pod; current phase is %s" % pod["status"]["phase"])
    if args.rest[:len(NSENTER)] != NSENTER or len(args.rest) != len(NSENTER) + 3 or args.rest[len(NSENTER):][:2] != ["/bin/sh", "-c"]:
        fail("standin_kubectl: exec runs only `%s /bin/sh -c CMD` (got %s)" % (" ".join(NSENTER), args.rest))
    node = lab_nodes()[pod["spec"]["nodeName"]]
    argv = ["nsenter", "-t", str(node["init_pid"]), "-n", "-m", "-u", "-i", "-p", "--wd=/", "/bin/sh", "-c", args.rest[-1]]
    if args.flags.get("--stdin") != "true":
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
    os.execvpe("nsenter", argv, NODE_ENV)


def cmd_delete(args):
    args.check({"--selector", "--field-selector", "--ignore-not-found", "--wait"})
    if not args.words or args.words[0] not in ("pod", "pods"):
        fail("standin_kubectl: delete supports only pods")
    names = args.words[1:]
    if names and ("--selector" in args.flags or "--field-selector" in args.flags):
        fail("error: name cannot be provided when a selector is specified")
    if not names and "--selector" not in args.flags:
        fail("error: resource(s) were provided, but no name was specified")
    pods = select(debug_pods(), args) if not names else []
    for name in names:
        match = [p for p in debug_pods() if p["metadata"]["name"] == name
                 and p["metadata"]["namespace"] == args.globals.get("--namespace", "default")]
        if not match and args.flags.get("--ignore-not-found") != "true":
            fail('Error from server (NotFound): pods "%s" not found' % name)
        pods += match
    for pod in pods:
        record = pod["_record"]
        if _alive(record["pid"], record["started"]):
            try:
                os.killpg(record["pid"], signal.SIGKILL)
            except OSError:
                pass
        try:
            os.unlink(_record_path(pod["metadata"]["namespace"], pod["metadata"]["name"]))
        except OSError:
            pass
        print('pod "%s" deleted' % pod["metadata"]["name"])


COMMANDS = {"debug": cmd_debug, "get": cmd_get, "label": cmd_label, "wait": cmd_wait, "exec": cmd_exec, "delete": cmd_delete}


def main(argv):
    directory = state_dir()
    with open(os.path.join(directory, "calls.log"), "a") as log:
        log.write(json.dumps(argv) + "\n")
    # global flags may come before the subcommand, as kubectl takes them (--kubeconfig=F get pods)
    lead = 0
    while lead < len(argv) and argv[lead].partition("=")[0] in GLOBAL_FLAGS and "=" in argv[lead]:
        lead += 1
    words = argv[lead:]
    if not words or words[0] not in COMMANDS:
        fail('error: unknown command "%s" for "kubectl" (stand-in: only %s)' % (words[0] if words else "", ", ".join(COMMANDS)))
    args = Args(argv[:lead] + words[1:])
    argv = words
    kubeconfig = args.globals.get("--kubeconfig")
    if kubeconfig and not os.path.isfile(kubeconfig):
        fail("error: stat %s: no such file or directory" % kubeconfig)
    if argv[0] == "exec":
        return cmd_exec(args)
    with open(os.path.join(directory, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if argv[0] == "wait":
            fcntl.flock(lock, fcntl.LOCK_UN)
        COMMANDS[argv[0]](args)


if __name__ == "__main__":
    main(sys.argv[1:])
