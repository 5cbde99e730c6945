"""Truth-table cases against the lab: the SAME case files the plugins' `knpctl simulate` tests
read (tests/networkpolicy/cases/*.yaml, parsed by tests/networkpolicy/run_cases.py), so the
offline verdict and the real traffic must agree.

For each step of a case the runner turns the case's cluster (namespaces x/y/z, pods a/b/c on
node-1/2/3 with their model addresses, the policies, the step's changes) into objects and makes
the lab match with kubectl: `kubectl delete` for what went (pods first waited out, so an IP can
be reused), one `kubectl apply` for what is new or changed (labels, policies). Pods whose node,
addresses, ports, phase or hostNetwork changed are deleted and created again; the agents start
them. Then every scored cell of every `#! expect` matrix is probed with real connections from
inside the source's namespace, all in parallel, and compared with the case:

  - a changed cell has until --converge seconds (2) after kubectl returned (after the new pods
    ran) to take its expected value: policy and label changes enforced within 2 s;
  - a second full pass, at least 0.5 s after the change, must agree too (no stale pass);
  - denied must be a silent drop: 'X' is a timeout; a refusal counts as reached.

Not probed (counted as skipped): SCTP cells (this kernel has no SCTP sockets), cells naming a
pod that is not running (Succeeded/Failed pods), and `#! log:` lines (knpctl's own log).

A suite is a case directory, the pipeline knpd runs for it, and the cases CI runs; `--all`
runs every case. Adding the policy API cases later is one line in SUITES.
"""
import copy
import importlib.util
import json
import os
import re
import sys
import time

from . import probe as pr
from . import topology as topo
from .cluster import SOURCE
from .sys_ns import LabError, ip, netns_exists, netns_list

TESTS = os.path.join(SOURCE, "tests")

# The NetworkPolicy cases CI runs against the lab (the simulate tests run all 51 on every build).
# One or two per rule family, chosen for what only real traffic can get wrong: default deny in
# each direction (the drop is silent; egress is judged on the source's node), selectors across
# namespaces, numbered and named ports per pod, UDP, ipBlocks with except, traffic from the
# pod's own node, label and policy changes (enforced within 2 s), terminal pods whose IPs are
# reused, IPv6, egress to an address outside the cluster, and hostNetwork pods.
CI_NETWORKPOLICY = [
    "01-default-deny-ingress", "02-default-deny-egress", "04-allow-all-ingress-beats-deny",
    "08-namespace-and-pod-selector-and", "09-namespace-or-pod-selector-or", "18-named-port-ingress",
    "21-named-port-number-per-pod", "22-endport-range", "24-udp-does-not-open-tcp", "26-ipblock-except",
    "28-ipblock-egress", "31-own-node-ingress", "37-pod-label-update", "38-namespace-label-update",
    "39-policy-update-and-delete", "40-terminal-pods-reusing-ips", "42-ipv6-selectors-and-isolation",
    "46-hostnetwork-pods-not-selected", "48-ingress-and-egress-in-one-policy",
]

SUITES = {
    # name: (case directory, its runner (cluster model), the pipeline knpd runs, the cases a run
    # without --all takes (None: all)); a suite whose directory is missing is left out
    "networkpolicy": ("networkpolicy/cases", "networkpolicy/run_cases.py", "networkpolicy/pipeline.yaml",
                      CI_NETWORKPOLICY),
    "labcluster": ("labcluster/cases", "networkpolicy/run_cases.py", "networkpolicy/pipeline.yaml", None),
    "policyapi": ("policyapi/cases", "policyapi/run_cases.py", "policyapi/pipeline.yaml", None),  # ANP/BANP/CNP
}


def load_runner(path):
    """A suite's run_cases.py as a fresh module: its case parser and cluster model. A runner that
    adapts tests/networkpolicy/run_cases.py (it imports it as `base` and replaces the model)
    gets a copy of its own, so suites never see each other's model."""
    sys.modules.pop("run_cases", None)
    sys.path.insert(0, os.path.join(TESTS, "networkpolicy"))
    try:
        spec = importlib.util.spec_from_file_location(f"knplab_runner_{len(_loaded)}", os.path.join(TESTS, path))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
        sys.modules.pop("run_cases", None)
    _loaded.append(mod)
    return getattr(mod, "base", mod)


_loaded = []


# kubectl reads YAML 1.1, where a bare y, n, yes, no, on, off is a boolean: `namespace: y` or
# `{ns: y}` does not decode into a string field. knp's own reader (knpctl simulate) takes them as
# strings. The case files write the e2e model's namespace y bare, so those scalars are quoted
# before kubectl sees them (a real user would have to quote them too).
YAML11_BOOL = re.compile(r"(?:(?<=[:\[,{-] )|(?<=[\[,{]))"  # a value: after "key: ", "- ", "[", "," or "{"
                         r"(y|Y|n|N|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)"
                         r"(?=\s*(?:[,\]}#]|$))", re.M)  # and alone


def kubectl_yaml(doc):
    return YAML11_BOOL.sub(r'"\1"', doc)


def add_arguments(p):
    p.add_argument("--suite", action="append", choices=sorted(SUITES),
                   help="which suites (repeatable; default: every suite whose directory exists)")
    p.add_argument("--all", action="store_true", help="every case, not only CI's selection")
    p.add_argument("--converge", type=float, default=2.0, help="seconds a change may take to be enforced")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds a probe waits (a drop is a timeout)")
    p.add_argument("cases", nargs="*", help="case files (default: the suites' cases)")


class Runner:
    """Drives one lab through cases. Thread-bound (the command's thread)."""

    def __init__(self, cluster, rc, converge, timeout):
        self.c, self.rc = cluster, rc
        self.converge, self.timeout = converge, timeout
        self.applied = {}  # (kind, ns/name) -> (what kubectl applied, its recreate key)
        self.endpoints = set()
        self.rejected = []  # objects the API server refused as invalid

    # --- the case's cluster as objects -------------------------------------------------
    def desired(self, state):
        objs = {}
        for text in self.rc.state_yaml(state).strip().split("\n---\n"):
            if text.lstrip().startswith("{"):
                o = json.loads(text)
                if o["kind"] == "Node":
                    continue  # the lab's own
                if o["kind"] == "Pod":
                    st = o.pop("status")
                    ips = [x["ip"] for x in st.get("podIPs", [])]
                    if ips and not o["spec"].get("hostNetwork"):
                        o["metadata"]["annotations"] = {topo.IPS_ANNOTATION: ",".join(ips)}
                    if st["phase"] in ("Succeeded", "Failed"):
                        o["status"] = st  # kept on create: a finished pod, never started
                kind, key = o["kind"], f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}"
            else:
                o = kubectl_yaml(text)  # a policy, as the case wrote it
                kind, key = self.rc.object_id(text)
            recreate = None  # a pod whose anything-but-labels changed is deleted and created again
            if kind == "Pod":
                rest = copy.deepcopy(o)
                rest["metadata"].pop("labels", None)
                recreate = json.dumps(rest, sort_keys=True)
            objs[(kind, key)] = (o, recreate)
        return objs

    def sync(self, state):
        """Makes the lab hold exactly the case's objects; returns when every pod runs."""
        want = self.desired(state)
        gone = [k for k in self.applied if k not in want]
        redo = [k for k in self.applied if k in want and k[0] == "Pod" and self.applied[k][1] != want[k][1]]
        docs = [self.applied[k][0] for k in gone if k[0] not in ("Pod", "Namespace")]
        if docs:
            self.c.kubectl("delete", "--ignore-not-found", "-f", "-", stdin="\n---\n".join(docs))
        pods = [k for k in gone + redo if k[0] == "Pod"]
        for ns in sorted({k[1].split("/")[0] for k in pods}):
            names = [k[1].split("/")[1] for k in pods if k[1].split("/")[0] == ns]
            self.c.kubectl("delete", "pod", "-n", ns, "--ignore-not-found", "--wait=false", *names)
        deadline = time.monotonic() + 20
        while any(netns_exists(self.c.lab.pod_ns(*k[1].split("/"))) for k in pods):
            if time.monotonic() > deadline:
                raise LabError(f"pods {[k[1] for k in pods]} still have namespaces 20 s after their deletion")
            time.sleep(0.02)
        for k in gone + redo:
            del self.applied[k]
        order = {"Namespace": 0, "Pod": 1}
        changed = sorted((k for k in want if k not in self.applied or self.applied[k][0] != want[k][0]),
                         key=lambda k: order.get(k[0], 2))
        if changed:
            try:
                self.c.apply([want[k][0] for k in changed])
            except LabError as e:
                if "is invalid" not in str(e):
                    raise
                # The API server refuses an invalid object, as a real one does: it never exists,
                # which is what a case about ignoring invalid policies expects. The rest is
                # applied one by one.
                for k in changed:
                    try:
                        self.c.apply([want[k][0]])
                    except LabError as e:
                        if "is invalid" not in str(e):
                            raise
                        self.rejected.append(k[1])
        for k in changed:
            self.applied[k] = want[k]
        self.wait_pods(state)

    def wait_pods(self, state):
        _, pods, _, _ = state
        deadline = time.monotonic() + 30
        while True:
            items = self.c.api().get("/api/v1/pods").get("items", [])
            have = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in items}
            missing = []
            for key, p in pods.items():
                if p["phase"] in ("Succeeded", "Failed"):
                    continue
                st = have.get(key, {}).get("status", {})
                ips = [x["ip"] for x in st.get("podIPs", [])]
                if st.get("phase") != "Running" or (p["ips"] and ips != p["ips"]):
                    missing.append(key)
            if not missing:
                self.where = self.c.endpoints()
                return
            if time.monotonic() > deadline:
                raise LabError(f"pods not running after 30 s: {missing}")
            time.sleep(0.05)

    # --- probing -----------------------------------------------------------------------
    def source(self, state, name, ipv6):
        """(namespace, bind address) a probe from matrix name `name` starts in."""
        endpoints = state[3]
        if name in self.where:
            return self.where[name][0], None
        if name in endpoints:
            return self.c.lab.hub, self.endpoint(endpoints[name], ipv6)
        return None, None

    def dest(self, state, name, ipv6):
        endpoints = state[3]
        if name in self.where:
            fam = [a for a in self.where[name][1] if (":" in a) == ipv6]
            return fam[0] if fam else None
        if name in endpoints:
            return self.endpoint(endpoints[name], ipv6)
        return None

    def endpoint(self, addrs, ipv6):
        """An address outside the cluster lives on the hub's loopback (the nodes' default route)."""
        a = addrs[1 if ipv6 else 0]
        if a and a not in self.endpoints:
            ip("addr", "replace", a + ("/128" if ipv6 else "/32"), "dev", "lo", ns=self.c.lab.hub)
            self.endpoints.add(a)
        return a

    def node_of(self, state, name):
        pods = state[1]
        if name in pods:
            return pods[name]["node"]
        return name if topo.node_index(name) else None

    def check(self, path, rule, n, step, state):
        """Probes one step's matrices; returns (failures, stats)."""
        probes, cells, stats = [], [], {"cells": 0, "cross": 0, "same": 0, "skipped": 0, "converged": 0.0}
        for m in step["expects"]:
            for r, row in m["rows"].items():
                for col in m["cols"]:
                    if r == col or row[col] == "-":
                        continue
                    src, bind = self.source(state, r, m["ipv6"])
                    dst = self.dest(state, col, m["ipv6"])
                    if (m["proto"] == "SCTP" and not pr.HAVE_SCTP) or src is None or dst is None:
                        stats["skipped"] += 1
                        continue
                    probes.append((src, dst, m["proto"], m["port"], bind))
                    cells.append((m, r, col))
                    a, b = self.node_of(state, r), self.node_of(state, col)
                    if a and b:
                        stats["same" if a == b else "cross"] += 1
        stats["cells"] = len(cells)
        t0 = time.monotonic()
        pending = list(range(len(cells)))
        got = {}
        confirmed = False
        rounds = 0
        while True:
            rounds += 1
            res = pr.probe_many([probes[i] for i in pending], self.timeout)
            for i, (outcome, _) in zip(pending, res):
                got[i] = outcome
            wrong = [i for i in pending if pr.cell(got[i]) != cells[i][0]["rows"][cells[i][1]][cells[i][2]]]
            now = time.monotonic()
            if not wrong and not confirmed:
                # 0: enforced before the first probe; else when the last changed cell turned
                stats["converged"] = 0.0 if rounds == 1 else now - t0
                # the full matrix again, late enough that knpd has long seen the change
                time.sleep(max(0.0, t0 + 0.5 - now))
                pending, confirmed = list(range(len(cells))), True
                continue
            if not wrong or confirmed or now - t0 > self.converge:
                break
            pending = wrong
        label = f"{os.path.basename(path)} step {n} ({step['title']})"
        failures = []
        by_matrix = {}
        for i, (m, r, col) in enumerate(cells):
            by_matrix.setdefault(id(m), (m, {}, []))
            entry = by_matrix[id(m)]
            entry[1][(r, col)] = pr.cell(got[i])
            if pr.cell(got[i]) != m["rows"][r][col]:
                entry[2].append(f"{r} -> {col} ({probes[i][1]}): {got[i]}")
        for m, seen, wrong in by_matrix.values():
            if wrong:
                failures.append("\n".join([
                    f"{label}: {m['proto']}/{m['port']}{' ipv6' if m['ipv6'] else ''}: {len(wrong)} of "
                    f"{len(seen)} cells differ {'on the confirming pass' if confirmed else f'after {self.converge} s'}"
                    f" ({m['where']})", f"  rule: {rule}",
                    "  real traffic (a wrong cell shows what the lab gave, marked *):", self.rc.render(m, seen),
                    "  expected (what knpctl simulate agrees with):", self.rc.render(m),
                    *("  " + w for w in wrong[:8])]))
        return failures, stats

    def run_case(self, path):
        rule, steps = self.rc.parse_case(path)
        self.rejected = []
        namespaces, pods = self.rc.base_cluster()
        state = (namespaces, pods, {}, {})
        failures, total = [], {"cells": 0, "cross": 0, "same": 0, "skipped": 0, "converged": 0.0, "logs": 0}
        for n, step in enumerate(steps, 1):
            self.rc.apply_ops(state, step["ops"])
            total["logs"] += len(step["logs"])
            if not step["expects"]:
                continue
            self.sync(state)
            f, s = self.check(path, rule, n, step, state)
            failures += f
            for k in ("cells", "cross", "same", "skipped"):
                total[k] += s[k]
            total["converged"] = max(total["converged"], s["converged"])
        total["rejected"] = len(set(self.rejected))
        return failures, total

    def clean(self):
        """Removes every object the cases may have made, whatever the runner believes it applied
        (after a failure it may be wrong): cluster-scoped policies, then the namespaces, which
        take their pods and policies along; returns when the pods' namespaces are gone."""
        self.c.kubectl("delete", "--ignore-not-found", "--all", ",".join(CLUSTER_SCOPED), check=False)
        spaces = [n["metadata"]["name"] for n in self.c.api().get("/api/v1/namespaces")["items"]]
        spaces = [n for n in spaces if n not in SYSTEM_NAMESPACES]
        if spaces:
            self.c.kubectl("delete", "namespace", "--ignore-not-found", "--wait=false", *spaces)
        deadline = time.monotonic() + 30
        while any(n.startswith(self.c.lab.prefix + "p-") for n in netns_list()):
            if time.monotonic() > deadline:
                raise LabError("pod namespaces remain 30 s after their namespaces were deleted")
            time.sleep(0.05)
        self.applied = {}


CLUSTER_SCOPED = ["adminnetworkpolicies.policy.networking.k8s.io",
                  "baselineadminnetworkpolicies.policy.networking.k8s.io",
                  "clusternetworkpolicies.policy.networking.k8s.io"]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def selected(a):
    """[(suite, runner, pipeline, [case paths])] for the command line."""
    names = a.suite or [n for n, v in SUITES.items() if os.path.isdir(os.path.join(TESTS, v[0]))]
    out = []
    for name in names:
        cdir, runner, pipeline, ci = SUITES[name]
        cdir = os.path.join(TESTS, cdir)
        if a.cases:
            cases = [os.path.abspath(c) for c in a.cases if os.path.dirname(os.path.abspath(c)) == cdir]
        elif a.all or ci is None:
            cases = sorted(os.path.join(cdir, f) for f in os.listdir(cdir) if f.endswith(".yaml"))
        else:
            cases = [os.path.join(cdir, c + ".yaml") for c in ci]
        if cases:
            out.append((name, runner, os.path.join(TESTS, pipeline), cases))
    if a.cases and sum(len(x[3]) for x in out) != len(a.cases):
        raise LabError("a case file is outside every suite's directory: " + ", ".join(SUITES))
    return out


def main(cluster, a):
    failed = ran = 0
    t_all = time.monotonic()
    for name, runner_path, pipeline, cases in selected(a):
        rc = load_runner(runner_path)
        if cluster.info["nodes"] < len(rc.NODES):
            raise LabError(f"suite {name}: its model has {len(rc.NODES)} nodes: tools/lab up --nodes {len(rc.NODES)}")
        runner = Runner(cluster, rc, a.converge, a.timeout)
        with open(pipeline) as f:
            if cluster.set_pipeline(f.read()):
                print(f"== knpd restarted with {os.path.relpath(pipeline, SOURCE)}", flush=True)
        print(f"== suite {name}: {len(cases)} cases", flush=True)
        try:
            for path in cases:
                t0 = time.monotonic()
                try:
                    failures, s = runner.run_case(path)
                except (LabError, rc.CaseError) as e:
                    failures, s = [f"{os.path.basename(path)}: {e}"], None
                ran += 1
                if failures:
                    runner.clean()  # the next case starts from nothing, not from a broken state
                    failed += 1
                    print(f"FAIL {path}")
                    for f in failures:
                        print(f)
                else:
                    extra = f", {s['skipped']} skipped" if s["skipped"] else ""
                    extra += f", {s['logs']} log checks left to simulate" if s["logs"] else ""
                    extra += f", {s['rejected']} objects refused as invalid by the API server" if s["rejected"] else ""
                    late = (f"a change took {s['converged'] * 1000:.0f} ms to show" if s["converged"]
                            else "every change enforced before the first probe")
                    print(f"ok   {os.path.basename(path)}: {s['cells']} cells ({s['cross']} cross-node, "
                          f"{s['same']} same-node{extra}); {late}; {time.monotonic() - t0:.1f} s", flush=True)
        finally:
            runner.clean()
    print(f"lab suite: {ran - failed} of {ran} cases passed in {time.monotonic() - t_all:.0f} s")
    return 1 if failed or not ran else 0
