#!/usr/bin/env python3
"""Run hoptrace's benchmarks on the lab and write BENCHMARKS.md (`make bench`).

1. end-to-end trace time (2 nodes, IPIP) beside the floor of the same work done by a plain
   parallel ssh + tcpdump script, alternating, with a per-step breakdown of the trace;
2. scale: the same trace with 2, 8 and 32 lab nodes (only two on the path), forks 5 and 32;
3. analysis throughput (benchmarks/bench_analysis.py, 1M-packet IPIP and VXLAN captures);
4. capture fidelity: N consecutive traces, probe packets missed at any armed hop;
5. inventory size: the 2-node lab traced with its own inventory (2 hosts) and with a generated
   500-host one (off-path hosts point at a loopback listener counting connection attempts), alternating.

The lab is shared: every stretch that uses or changes it holds the exclusive flock on
/run/hoptrace-lab-tests.lock, leaves the lab in ipip/2 nodes and releases it.

    .venv/bin/python benchmarks/run.py            # full run (about 15 minutes)
    .venv/bin/python benchmarks/run.py --quick    # 1 trace each, 2 and 8 nodes, 20k packets, 3 fidelity traces
    .venv/bin/python benchmarks/run.py --quick --only inventory --output /tmp/bench.md   # one section
"""
import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if os.path.join(ROOT, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
from lab import biginv, labctl  # noqa: E402

LOCK = "/run/hoptrace-lab-tests.lock"
SRC, DST = "172.17.25.79", "172.17.25.239"
PY = os.path.join(ROOT, ".venv", "bin", "python")
PLAYBOOK_BIN = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
INVENTORY = os.path.join(ROOT, ".lab", "inventory.ini")
SSH_CONFIG = os.path.join(ROOT, ".lab", "ssh_config")
STEPS = ["startup", "validate", "discover", "plan", "arm", "probe", "collect", "analyze", "exit"]
FLOOR_DIR = "/var/tmp/hoptrace-floor"
SECTIONS = ["e2e", "scale", "analysis", "fidelity", "inventory", "snapshots"]
PLAY_ROOT = [ROOT]   # --root: run the trace from another checkout (a before/after comparison)


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def _lock_held_here():
    """True when this process already holds the lab lock (run from a test under lab.fixtures)."""
    try:
        ino = os.stat(LOCK).st_ino
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[4] == str(os.getpid()) and parts[5].endswith(":%d" % ino):
                    return True
    except OSError:
        pass
    return False


def lab_spec(text):
    """A fidelity lab ``MODE`` or ``MODE:6`` (the mode's IPv6 flow) -> (mode, ipv6)."""
    mode, _, six = text.partition(":")
    if mode not in labctl_modes() or six not in ("", "6"):
        raise argparse.ArgumentTypeError("%r: want MODE or MODE:6 with MODE one of %s" % (text, ", ".join(labctl_modes())))
    return mode, six == "6"


def labctl_modes():
    from lab import topology
    return topology.MODES


@contextlib.contextmanager
def lab_lock(mode="ipip", nodes=2, ipv6=False):
    """Hold the shared lab's lock, with the lab up in ``mode``/``nodes``; leave it ipip/2.

    When this process holds it already (the lab fixture of benchmarks/test_bench_run.py), the
    lab is used under that hold."""
    held = _lock_held_here()
    with open(LOCK, "a") as handle:
        if not held:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            ensure_lab(mode, nodes, ipv6)
            yield
        finally:
            try:
                ensure_lab("ipip", 2)
            finally:
                if not held:
                    fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_lab(mode, nodes, ipv6=False):
    st = labctl.status()
    healthy = (st.get("up") and st.get("mode") == mode and len(st.get("nodes") or []) == nodes
               and bool(st.get("ipv6")) == ipv6
               and all(n["alive"] and n["sshd"] and n["podserver"] for n in st["nodes"]))
    if healthy and st.get("faults"):
        labctl.fault_clear()
    if not healthy:
        log("lab up --mode %s --nodes %d%s" % (mode, nodes, " --ipv6" if ipv6 else ""))
        if ipv6:
            labctl.up(mode, nodes, ipv6=True)
        else:
            labctl.up(mode, nodes)


def fmt(values, unit="s", digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return ("%.*f %s" % (digits, values[0], unit)).strip()
    return ("%.*f (%.*f–%.*f) %s" % (digits, statistics.median(values), digits, min(values), digits, max(values), unit)).strip()


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- the trace, timed per step

def _step(task):
    path = task["file"]
    if path in ("trace_flow.yml", "validate.yml", "resolve.yml", "on_path.yml"):
        return "validate"
    # discover: path.yml reads the entry node and finds the path, read.yml the other path node
    # (discover.yml: the one-play role before, for --root on an older checkout)
    return {"discover.yml": "discover", "path.yml": "discover", "read.yml": "discover", "plan.yml": "plan",
            "arm.yml": "arm", "probe.yml": "probe", "collect.yml": "collect", "analyze.yml": "analyze"}.get(path, "validate")


def run_trace(out_dir, cold=True, forks=None, inventory=None, extra=(), flow=(SRC, DST)):
    """One `ansible-playbook playbooks/trace_flow.yml` (with the lab's inventory unless
    ``inventory`` names another); wall time, per-step seconds, report."""
    timing = tempfile.mktemp(prefix="hoptrace-timing-", suffix=".json")
    control = tempfile.mkdtemp(prefix="htcp-") if cold else None
    root = PLAY_ROOT[0]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"),
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="hoptrace.k8s.trace_report,hoptrace_timing",
               HOPTRACE_TIMING_FILE=timing)
    if forks:
        env["ANSIBLE_FORKS"] = str(forks)
    argv = [PLAYBOOK_BIN, "-i", inventory or INVENTORY, os.path.join(root, "playbooks", "trace_flow.yml"),
            "-e", "src=%s" % flow[0], "-e", "dst=%s" % flow[1], "-e", "output_dir=%s" % out_dir] + list(extra)
    if control:
        # a fresh ssh ControlPath: every connection is opened by this run, as for a user's first trace
        argv += ["-e", "ansible_control_path_dir=%s" % control]
    t0 = time.time()
    proc = subprocess.run(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t1 = time.time()
    if control:
        for sock in os.listdir(control):
            subprocess.run(["ssh", "-o", "ControlPath=%s" % os.path.join(control, sock), "-O", "exit", "x"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(control, ignore_errors=True)
    steps = dict.fromkeys(STEPS, 0.0)
    try:
        with open(timing) as f:
            tim = json.load(f)
        os.unlink(timing)
        tasks = tim["tasks"]
        steps["startup"] = tasks[0]["start"] - t0
        steps["exit"] = t1 - tasks[-1]["end"]
        for task in tasks:
            steps[_step(task)] += task["end"] - task["start"]
    except (OSError, ValueError, IndexError, KeyError):
        tasks = []
    match = re.search(r"^files: (\S+)", proc.stdout, re.M)
    report = None
    if match and os.path.exists(os.path.join(match.group(1), "report.json")):
        with open(os.path.join(match.group(1), "report.json")) as f:
            report = json.load(f)
    return {"wall": t1 - t0, "rc": proc.returncode, "steps": steps, "report": report,
            "healthy": bool(report and report.get("healthy")), "output": proc.stdout if proc.returncode else ""}


# ---------------------------------------------------------------- the floor: ssh + tcpdump

def get_plan(tmp):
    path = os.path.join(tmp, "plan.json")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="hoptrace.k8s.trace_report")
    subprocess.run([PLAYBOOK_BIN, "-i", INVENTORY, os.path.join(HERE, "plan_only.yml"), "-e", "src=%s" % SRC,
                    "-e", "dst=%s" % DST, "-e", "plan_file=%s" % path], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def _read_until(procs, word, timeout):
    """Read each process' stderr (raw, unbuffered) until it contains ``word``; returns the text per process."""
    texts = {p: "" for p in procs}
    waiting = set(procs)
    limit = time.time() + timeout
    while waiting and time.time() < limit:
        ready, _, _ = select.select([p.stderr for p in waiting], [], [], 0.5)
        for p in list(waiting):
            if p.stderr in ready:
                chunk = os.read(p.stderr.fileno(), 65536).decode("utf-8", "replace")
                texts[p] += chunk
                if word in texts[p] or not chunk:
                    waiting.discard(p)
    if waiting:
        raise RuntimeError("floor: no %r from %d ssh sessions: %r" % (word, len(waiting), [texts[p] for p in waiting]))
    return texts


def run_floor(plan, out_dir, snaplen=192):
    """The same captures with plain parallel ssh + tcpdump: arm, probe, SIGINT, scp back, remove."""
    caps = [c for c in plan["captures"] if c.get("interface")]
    src_pod = labctl.pod(plan["run"]["src"])
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    procs = []
    for i, c in enumerate(caps):
        f = "%s/%d-%s.pcap" % (FLOOR_DIR, i, re.sub(r"[^A-Za-z0-9_.-]", "_", c["interface"]))
        script = ("set -m; mkdir -p {d}; tcpdump --immediate-mode -U -nn -i {i} -s {s} -Z root -w {f} -- {flt} & p=$!; "
                  "read x; kill -INT $p; wait $p; echo stopped >&2; read y; rm -f {f}").format(
            d=FLOOR_DIR, i=shlex.quote(c["interface"]), s=snaplen, f=f, flt=shlex.quote(c["filter"]))
        p = subprocess.Popen(["ssh", "-F", SSH_CONFIG, c["node"], script], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0)
        p.capture, p.remote = c, f
        procs.append(p)
    _read_until(procs, "listening on", 20)
    t_armed = time.time()
    subprocess.run(labctl.pod_argv(src_pod, ["curl", "-sk", "--max-time", "3", "-o", "/dev/null",
                                             "https://%s:%d/" % (plan["run"]["dst"], plan["run"]["port"])]))
    t_probed = time.time()
    for p in procs:
        p.stdin.write(b"\n")
    texts = _read_until(procs, "stopped", 20)
    t_stopped = time.time()
    by_node = {}
    for p in procs:
        by_node.setdefault(p.capture["node"], []).append(p)
    scps = []
    for node, ps in by_node.items():
        dest = os.path.join(out_dir, node)
        os.makedirs(dest, exist_ok=True)
        scps.append(subprocess.Popen(["scp", "-q", "-F", SSH_CONFIG] + ["%s:%s" % (node, p.remote) for p in ps] + [dest + "/"]))
    for s in scps:
        s.wait()
    t_fetched = time.time()
    for p in procs:
        p.stdin.write(b"\n")
        p.stdin.close()
    for p in procs:
        p.wait()
    t1 = time.time()
    captured = []
    for p in procs:
        m = re.search(r"(\d+) packets? captured", texts[p])
        captured.append(int(m.group(1)) if m else None)
    return {"wall": t1 - t0, "arm": t_armed - t0, "probe": t_probed - t_armed, "stop": t_stopped - t_probed,
            "fetch": t_fetched - t_stopped, "remove": t1 - t_fetched, "captured": captured}


# ---------------------------------------------------------------- sections

def section_e2e(args, tmp):
    traces, warm, floors = [], [], []
    with lab_lock("ipip", 2):
        plan = get_plan(tmp)
        for i in range(args.repeat):
            log("e2e %d/%d: trace (cold)" % (i + 1, args.repeat))
            traces.append(run_trace(os.path.join(tmp, "traces")))
            log("e2e %d/%d: floor" % (i + 1, args.repeat))
            floors.append(run_floor(plan, os.path.join(tmp, "floor", str(i))))
            log("e2e %d/%d: trace (warm ssh connections)" % (i + 1, args.repeat))
            warm.append(run_trace(os.path.join(tmp, "traces"), cold=False))
    return {"traces": traces, "warm": warm, "floors": floors, "captures": len(plan["captures"])}


def section_scale(args, tmp):
    rows = []
    for n in args.nodes:
        variants = [None] + ([5, 32] if n == max(args.nodes) and n > 5 else [])
        with lab_lock("ipip", n):
            # the forks variants of one lab size alternate run by run (a lab size is one lab up)
            runs = {forks: [] for forks in variants}
            for i in range(args.scale_repeat):
                for forks in variants:
                    log("scale: %d nodes, forks %s, trace %d/%d" % (n, forks or "cfg", i + 1, args.scale_repeat))
                    runs[forks].append(run_trace(os.path.join(tmp, "traces"), forks=forks))
            rows += [{"nodes": n, "forks": forks, "runs": runs[forks]} for forks in variants]
    return rows


def section_analysis(args, tmp):
    raw = os.path.join(tmp, "analysis.json")
    argv = [PY, os.path.join(HERE, "bench_analysis.py"), "--packets", str(args.packets), "--repeat", str(args.analysis_repeat),
            "--json", raw]
    log("analysis: %d packets" % args.packets)
    out = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True).stdout
    with open(raw) as f:
        return {"table": out.strip(), "raw": json.load(f)}


def fidelity_of(report):
    """(hops armed, hops not seen, packets missed) of one report: a hop that is not seen misses
    every packet of its direction's first hop; a seen hop misses what it has fewer than it."""
    if not report:
        return None
    armed = not_seen = missed = 0
    for direction in ("request", "response"):
        hops = [h for h in report["hops"] if h["direction"] == direction]
        if not hops:
            continue
        first = hops[0].get("packets") or 0
        for h in hops:
            armed += 1
            if h.get("status") != "seen":
                not_seen += 1
                missed += first
            else:
                missed += max(0, first - (h.get("packets") or 0))
    return armed, not_seen, missed


def section_fidelity(args, tmp):
    """{"MODE" or "MODE:6": [run, ...]} for each lab of --fidelity-labs, the demo's flow there."""
    out = {}
    for mode, ipv6 in args.fidelity_labs:
        runs = out.setdefault(mode + (":6" if ipv6 else ""), [])
        batch = 25
        done = 0
        while done < args.traces:
            with lab_lock(mode, 2, ipv6):
                src, dst, port = labctl.demo_flow()
                for _ in range(min(batch, args.traces - done)):
                    done += 1
                    log("fidelity %s%s trace %d/%d" % (mode, " IPv6" if ipv6 else "", done, args.traces))
                    r = run_trace(os.path.join(tmp, "traces"), cold=False, flow=(src, dst), extra=("-e", "port=%d" % port))
                    runs.append({"rc": r["rc"], "wall": r["wall"], "fid": fidelity_of(r["report"]),
                                 "first": [h["packets"] for h in (r["report"] or {}).get("hops", []) if h["index"] == 1]})
                    if r["report"] is None:
                        log("trace failed:\n" + r["output"][-2000:])
    return out


def section_inventory(args, tmp):
    """The 2-node lab traced with its own inventory and with a generated big one, alternating
    run by run; every connection attempt to an off-path host is counted (it must be none)."""
    big = os.path.join(tmp, "inventory-%d.ini" % args.inventory_hosts)
    variants = [("lab", None), ("big", big)]
    rows = {name: {"runs": [], "connections": []} for name, _ in variants}
    with lab_lock("ipip", 2), biginv.ConnectionCounter() as counter:
        off = biginv.write_inventory(big, total=args.inventory_hosts, port=counter.port)
        rows["lab"]["hosts"] = len(biginv.lab_hosts())
        rows["big"]["hosts"] = len(biginv.lab_hosts()) + len(off)
        for i in range(args.inventory_repeat):
            for name, inventory in variants:
                log("inventory: %d hosts, trace %d/%d" % (rows[name]["hosts"], i + 1, args.inventory_repeat))
                before = counter.count
                r = run_trace(os.path.join(tmp, "traces"), inventory=inventory)
                time.sleep(0.3)          # the counter's accept loop polls every 0.2 s
                rows[name]["runs"].append(r)
                rows[name]["connections"].append(counter.count - before)
                if r["report"] is None:
                    log("trace failed:\n" + r["output"][-2000:])
    return rows


def section_snapshots(args, tmp):
    """The 2-node trace with the nodes' counter snapshots (the default) and without
    (-e snapshot=false), alternating run by run: what issue 12's why costs the healthy path."""
    rows = {"on": [], "off": []}
    with lab_lock("ipip", 2):
        for i in range(args.repeat):
            for name, extra in (("on", ()), ("off", ("-e", "snapshot=false"))):
                log("snapshots %s: trace %d/%d" % (name, i + 1, args.repeat))
                r = run_trace(os.path.join(tmp, "traces"), extra=extra)
                rows[name].append(r)
                if r["report"] is None:
                    log("trace failed:\n" + r["output"][-2000:])
    return rows


# ---------------------------------------------------------------- report

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1048576.0
    ansible = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible"), "--version"], stdout=subprocess.PIPE,
                             text=True).stdout.splitlines()[0]
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "ansible": ansible,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def step_table(columns):
    """Markdown per-step table: columns is [(title, [run, ...])]."""
    lines = ["| step | " + " | ".join(t for t, _ in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for step in STEPS + ["total"]:
        cells = []
        for _t, runs in columns:
            vals = [r["wall"] if step == "total" else r["steps"][step] for r in runs]
            cells.append(fmt(vals))
        lines.append("| %s | %s |" % (step, " | ".join(cells)))
    return lines


def render(args, m, e2e, scale, analysis, fidelity, inventory=None, snapshots=None):
    out = ["# hoptrace benchmarks", "",
           "Written by `benchmarks/run.py` (`make bench`)%s. Figures are medians with (min–max) over the runs." % (
               " in **--quick** mode (tiny, not for quoting)" if args.quick else ""),
           "",
           "Machine: %d CPUs (`nproc`), %s, %.1f GiB memory, kernel %s, Python %s, %s; %s." % (
               m["nproc"], m["cpu"], m["mem_gib"], m["kernel"], m["python"], m["ansible"], m["date"]), ""]
    headline = []
    if e2e:
        tr, wr, fl = e2e["traces"], e2e["warm"], e2e["floors"]
        ratio = med([r["wall"] for r in tr]) / med([f["wall"] for f in fl])
        ratio_w = med([r["wall"] for r in wr]) / med([f["wall"] for f in fl])
        headline.append("end-to-end trace %.1f s, %.1f× the ssh + tcpdump floor (%.2f s); %.1f s with warm ssh connections" % (
            med([r["wall"] for r in tr]), ratio, med([f["wall"] for f in fl]), med([r["wall"] for r in wr])))
        out += ["## 1. End-to-end trace time (lab, 2 nodes, IPIP, %d captures)" % e2e["captures"], "",
                "`ansible-playbook -i .lab/inventory.ini playbooks/trace_flow.yml -e src=%s -e dst=%s`, discover to report, "
                "%d runs of each, alternating. *Cold*: a fresh ssh ControlPath per run (a user's first trace); *warm*: the "
                "lab's ControlPersist connections from the previous run are reused. The *floor* does the same work with a "
                "plain script: one `ssh -F .lab/ssh_config NODE` per capture in parallel running tcpdump with the plan's "
                "filters, wait for `listening on`, `curl -sk` from inside the source pod, SIGINT, `scp` the files back "
                "(one scp per node, in parallel), remove them." % (SRC, DST, len(tr)), "",
                "| what | seconds | ratio to the floor | healthy runs |", "| --- | ---: | ---: | ---: |",
                "| trace, cold | %s | **%.1f×** | %d/%d |" % (fmt([r["wall"] for r in tr]), ratio, sum(r["healthy"] for r in tr), len(tr)),
                "| trace, warm ssh connections | %s | %.1f× | %d/%d |" % (fmt([r["wall"] for r in wr]), ratio_w,
                                                                     sum(r["healthy"] for r in wr), len(wr)),
                "| floor: parallel ssh + tcpdump + scp | %s | 1.0× | captured %s |" % (
                    fmt([f["wall"] for f in fl]), "/".join(str(c) for c in fl[-1]["captured"])),
                "", "Target: ≤ 2.8× the floor (aim 2×) — %s." % ("met" if ratio <= 2.8 else "**missed**"), "",
                "Where the time goes (the trace, per step; a step lasts from its first task's start to the next "
                "step's, as profile_tasks counts; *startup* is process start to the first task, *exit* the last task "
                "to process exit):", ""]
        out += step_table([("trace, cold", tr), ("trace, warm", wr)])
        out += ["", "The floor's own steps: arm %s, probe %s, stop %s, scp %s, remove %s." % (
            fmt([f["arm"] for f in fl]), fmt([f["probe"] for f in fl]), fmt([f["stop"] for f in fl]),
            fmt([f["fetch"] for f in fl]), fmt([f["remove"] for f in fl])), ""]
    if scale:
        base = med([r["wall"] for r in scale[0]["runs"]])
        out += ["## 2. Scale: 2 to %d lab nodes, two on the path (IPIP, cold)" % max(args.nodes), "",
                "| nodes | forks | seconds | vs 2 nodes | healthy |", "| ---: | ---: | ---: | ---: | ---: |"]
        for row in scale:
            w = [r["wall"] for r in row["runs"]]
            out.append("| %d | %s | %s | %.2f× | %d/%d |" % (row["nodes"], row["forks"] or "ansible.cfg", fmt(w), med(w) / base,
                                                          sum(r["healthy"] for r in row["runs"]), len(w)))
        top = [row for row in scale if row["nodes"] == max(args.nodes) and row["forks"] is None][0]
        ratio = med([r["wall"] for r in top["runs"]]) / base
        headline.append("%d nodes %.2f× the 2-node time" % (top["nodes"], ratio))
        out += ["", "Target: %d reachable lab nodes ≤ 1.3× the 2-node time — %s (figures of the same run)." % (
            top["nodes"], "met" if ratio <= 1.3 else "**missed**"),
                "", "Per step:", ""]
        out += step_table([("%d nodes%s" % (row["nodes"], ", forks %d" % row["forks"] if row["forks"] else ""), row["runs"])
                           for row in scale])
        out.append("")
    if analysis:
        raw = analysis["raw"]
        walls = {k: med([r["wall"] for r in v["hoptrace"]]) for k, v in raw.items()}
        rss = {k: max(r["rss_mib"] for r in v["hoptrace"]) for k, v in raw.items()}
        ok = all(w <= 1.5 for w in walls.values()) and all(r <= 64 for r in rss.values())
        headline.append("analysis of %s packets: %s" % (
            "/".join("{:,}".format(v["packets"]) for v in raw.values()),
            ", ".join("%s %.2f s %.0f MiB" % (k, walls[k], rss[k]) for k in raw)))
        out += ["## 3. Analysis throughput (`benchmarks/bench_analysis.py --packets %d`)" % args.packets, "",
                "Generated six-capture traces (one TCP bulk transfer seen on every hop), hoptrace's analysis in a "
                "fresh child process beside `tcpdump -nn -r` and `tshark -r` over the same six files.", "",
                analysis["table"], "",
                "Target: ≤ 1.5 s and ≤ 64 MiB (child process wall, peak RSS) — %s." % ("met" if ok else "**missed**"), ""]
    if fidelity is not None:
        out += ["## 4. Capture fidelity (%d consecutive traces per lab, 2 nodes)" % args.traces, "",
                "From each run's `report.json`: a hop that is not `seen` misses every packet its direction's first hop "
                "saw; a seen hop misses what it has fewer than the first hop. The flow is `make demo`'s on that lab.", "",
                "| lab | traces | without a report | hops armed | hops not seen | probe packets missed | packets at the first hops per trace |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        all_ok = True
        for name, runs in fidelity.items():
            fids = [r["fid"] for r in runs if r["fid"]]
            armed = sum(f[0] for f in fids)
            not_seen = sum(f[1] for f in fids)
            missed = sum(f[2] for f in fids)
            failed = len(runs) - len(fids)
            all_ok = all_ok and missed == 0 and failed == 0
            first = [sum(r["first"]) for r in runs if r["first"]]
            label = name.replace(":6", " IPv6")
            headline.append("%s: %d consecutive traces, %d probe packets missed" % (label, len(runs), missed))
            out.append("| %s | %d | %d | %d | %d | **%d** | %s |" % (label, len(runs), failed, armed, not_seen, missed, fmt(first, "", 0)))
        out += ["", "Target: 0 — %s." % ("met" if all_ok else "**missed**"), ""]
    if inventory:
        small, big = inventory["lab"], inventory["big"]
        ws, wb = [r["wall"] for r in small["runs"]], [r["wall"] for r in big["runs"]]
        ratio = med(wb) / med(ws)
        conns = sum(big["connections"]) + sum(small["connections"])
        healthy = all(r["healthy"] for r in small["runs"] + big["runs"])
        headline.append("%d-host inventory %.2f× the %d-host time, %d off-path connections" % (
            big["hosts"], ratio, small["hosts"], conns))
        out += ["## 5. Inventory size: %d vs %d hosts (lab, 2 nodes, IPIP, cold)" % (small["hosts"], big["hosts"]), "",
                "The same trace with the lab's own `.lab/inventory.ini` and with a generated inventory of %d hosts "
                "(`tests/lab/biginv.py`): the lab's nodes first, then %d off-path hosts whose `ansible_host` is 127.0.0.1 "
                "and `ansible_port` a loopback listener that counts every connection attempt. %d runs of each, "
                "alternating run by run." % (big["hosts"], big["hosts"] - small["hosts"], len(ws)), "",
                "| inventory | hosts | seconds | vs %d hosts | off-path connections | healthy |" % small["hosts"],
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for title, row, w in (("`.lab/inventory.ini`", small, ws), ("generated (`biginv.write_inventory`)", big, wb)):
            out.append("| %s | %d | %s | %.2f× | %d | %d/%d |" % (
                title, row["hosts"], fmt(w), med(w) / med(ws), sum(row["connections"]),
                sum(r["healthy"] for r in row["runs"]), len(w)))
        out += ["", "Target: %d hosts ≤ 1.15× the %d-host time, 0 connections to off-path hosts — %s." % (
            big["hosts"], small["hosts"], "met" if ratio <= 1.15 and conns == 0 and healthy else "**missed**"),
            "", "Per step:", ""]
        out += step_table([("%d hosts" % small["hosts"], small["runs"]), ("%d hosts" % big["hosts"], big["runs"])])
        out.append("")
    if snapshots:
        won, woff = [r["wall"] for r in snapshots["on"]], [r["wall"] for r in snapshots["off"]]
        delta = med(won) - med(woff)
        healthy = all(r["healthy"] for r in snapshots["on"] + snapshots["off"])
        headline.append("counter snapshots +%.2f s on the healthy trace" % delta)
        out += ["## 6. Counter snapshots: the cost of the why (lab, 2 nodes, IPIP, cold)", "",
                "The capture module reads each path node's counters (netfilter rules, kernel drop counters, conntrack, "
                "interfaces, routes) when it starts and when it stops the captures. The same trace with them (the "
                "default) and with `-e snapshot=false`, %d runs of each, alternating run by run." % len(won), "",
                "| snapshots | seconds | difference | healthy |", "| --- | ---: | ---: | ---: |",
                "| on (default) | %s | %+.2f s | %d/%d |" % (fmt(won), delta, sum(r["healthy"] for r in snapshots["on"]), len(won)),
                "| off | %s | — | %d/%d |" % (fmt(woff), sum(r["healthy"] for r in snapshots["off"]), len(woff)), "",
                "Target: at most +0.5 s on the healthy path — %s." % ("met" if delta <= 0.5 and healthy else "**missed**"),
                "", "Per step:", ""]
        out += step_table([("on", snapshots["on"]), ("off", snapshots["off"])])
        out.append("")
    out[6:6] = ["Headline: " + "; ".join(headline) + ".", ""] if headline else []
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 trace each, 2 and 8 nodes, 20k packets, 3 fidelity traces")
    ap.add_argument("--repeat", type=int, help="traces per figure (default 5, quick 1)")
    ap.add_argument("--scale-repeat", type=int, help="traces per scale figure (default 3, quick 1)")
    ap.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")], help="node counts (default 2,8,32; quick 2,8)")
    ap.add_argument("--packets", type=int, help="analysis packets (default 1000000; quick 20000)")
    ap.add_argument("--analysis-repeat", type=int, help="default 3, quick 1")
    ap.add_argument("--traces", type=int, help="fidelity traces per lab (default 100; quick 3)")
    ap.add_argument("--fidelity-labs", type=lambda s: [lab_spec(x) for x in s.split(",")], default=[("ipip", False)],
                    help="labs of the fidelity section, MODE or MODE:6 (IPv6 flow), comma-separated (default ipip)")
    ap.add_argument("--inventory-repeat", type=int, help="traces per inventory size (default 5, quick 1)")
    ap.add_argument("--inventory-hosts", type=int, default=500, help="hosts of the generated inventory (default 500)")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="default: all")
    ap.add_argument("--root", help="run the trace from this checkout instead (e.g. a git worktree of an older commit)")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--reuse", help="raw figures (--json) of an earlier run: its sections fill those not run now, "
                                    "and its fidelity labs stay beside the ones run now; the page says which run")
    args = ap.parse_args(argv)
    q = args.quick
    if args.root:
        PLAY_ROOT[0] = os.path.abspath(args.root)
    args.repeat = args.repeat or (1 if q else 5)
    args.scale_repeat = args.scale_repeat or (1 if q else 3)
    args.nodes = args.nodes or ([2, 8] if q else [2, 8, 32])
    args.packets = args.packets or (20000 if q else 1000000)
    args.analysis_repeat = args.analysis_repeat or (1 if q else 3)
    args.traces = args.traces if args.traces is not None else (3 if q else 100)
    args.inventory_repeat = args.inventory_repeat or (1 if q else 5)
    only = set(args.only or SECTIONS)
    tmp = tempfile.mkdtemp(prefix="hoptrace-bench-")
    try:
        e2e = section_e2e(args, tmp) if "e2e" in only else None
        scale = section_scale(args, tmp) if "scale" in only else None
        analysis = section_analysis(args, tmp) if "analysis" in only else None
        fidelity = section_fidelity(args, tmp) if "fidelity" in only else None
        inventory = section_inventory(args, tmp) if "inventory" in only else None
        snapshots = section_snapshots(args, tmp) if "snapshots" in only else None
        m = machine()
        if args.reuse:
            with open(args.reuse) as f:
                old = json.load(f)
            e2e, scale, analysis, inventory, snapshots = (
                new if new is not None else old.get(name)
                for name, new in (("e2e", e2e), ("scale", scale), ("analysis", analysis), ("inventory", inventory),
                                  ("snapshots", snapshots)))
            if old.get("fidelity") is not None:
                fidelity = dict(old["fidelity"], **(fidelity or {}))
            m["date"] += "; sections %s are from the run of %s" % (
                ", ".join(sorted(set(SECTIONS) - only)) or "none", (old.get("machine") or {}).get("date", "?"))
        text = render(args, m, e2e, scale, analysis, fidelity, inventory, snapshots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.output, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"e2e": e2e, "scale": scale, "analysis": analysis, "fidelity": fidelity, "inventory": inventory,
                       "snapshots": snapshots, "machine": m},
                      f, indent=1, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
