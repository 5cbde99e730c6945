#!/usr/bin/env python3
"""Data-driven NetworkPolicy truth tables, run end to end through `knpctl simulate`.

Modelled on the Kubernetes e2e netpol suite (test/e2e/network/netpol): namespaces x, y, z
(labelled ns=<name>), pods a, b, c in each (labelled pod=<name>) with one container per port
80/81 x TCP/UDP/SCTP whose port is named serve-<port>-<proto>; pod a on node-1, b on node-2,
c on node-3; every pod dual-stack. A case file adds policies and changes to that cluster and
states the full reachability matrix (rows: source, columns: destination) for each protocol/port
it probes; the runner writes the state file and the probes, runs knpctl once per step, and
compares every cell.

A case file is YAML: documents (NetworkPolicies, as written for kubectl) go verbatim into the
state file; lines starting with `#!` are directives for this runner:

  #! rule: TEXT                    the rule the case checks (required; printed with failures)
  #! step: TEXT                    starts the next step; steps are cumulative
  #! label pod|namespace NS[/NAME] k=v k2- ...   set (or with a trailing '-', remove) labels
  #! pod NS/NAME [node=N] [ip=A,B] [labels=k=v,k2=v2] [phase=P] [hostNetwork=true]
  #!        [ports=name:port/PROTO,...|none]     add a pod, or change an existing one
  #! delete KIND NS/NAME             drop an object (a policy, or `pod`) from this step on
  #! endpoint NAME IPV4 [IPV6]       a matrix name for a non-pod address (node-1..3 exist)
  #! log: TEXT                       knpctl's log (-v) must contain TEXT in this step
  #! expect PROTO/PORT [ipv6]        a matrix follows on `#!` lines: a header of destination
  #!                                 names, then one row per source: '.' allowed, 'X' denied,
  #!                                 '-' not scored (the diagonal is never scored)

Usage: run_cases.py --knpctl KNPCTL --plugin-dir DIR CASE.yaml...
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

NAMESPACES = ["x", "y", "z"]
PODS = ["a", "b", "c"]
NODES = {"node-1": ("192.168.1.1", "fd00:192:168:1::1"),
         "node-2": ("192.168.1.2", "fd00:192:168:1::2"),
         "node-3": ("192.168.1.3", "fd00:192:168:1::3")}
DEFAULT_PORTS = [(f"serve-{port}-{proto.lower()}", port, proto)
                 for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")]


class CaseError(Exception):
    pass


def base_cluster():
    """The e2e model: namespaces, nodes and pods as plain dicts the directives edit."""
    namespaces = {ns: {"ns": ns} for ns in NAMESPACES}
    pods = {}
    for ni, ns in enumerate(NAMESPACES, 1):
        for pi, name in enumerate(PODS, 1):
            pods[f"{ns}/{name}"] = {
                "node": f"node-{pi}",
                "ips": [f"10.244.{pi}.{ni}0", f"fd00:10:244:{pi}::{ni}0"],
                "labels": {"pod": name},
                "phase": "Running",
                "hostNetwork": False,
                "ports": list(DEFAULT_PORTS),
            }
    return namespaces, pods


def object_id(doc):
    """(kind, namespace/name) of a verbatim YAML document, read without a YAML parser: the
    cases write `kind:` at the top level and `name:`/`namespace:` inside `metadata:` (block or
    flow style)."""
    kind = re.search(r"^kind:\s*(\S+)", doc, re.M)
    meta = re.search(r"^metadata:(.*(?:\n[ \t]+.*)*)", doc, re.M)
    if not kind or not meta:
        raise CaseError(f"a document needs top-level kind: and metadata:\n{doc}")
    name = re.search(r"(?:^|[{,\s])name:\s*([\w.-]+)", meta.group(1))
    ns = re.search(r"(?:^|[{,\s])namespace:\s*([\w.-]+)", meta.group(1))
    if not name:
        raise CaseError(f"a document needs metadata.name\n{doc}")
    return kind.group(1), f"{ns.group(1) if ns else 'default'}/{name.group(1)}"


def parse_matrix(lines, where):
    if not lines:
        raise CaseError(f"{where}: expect without a matrix")
    cols = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(cols) + 1:
            raise CaseError(f"{where}: row {cells[0] if cells else '?'} has {len(cells) - 1} cells for {len(cols)} columns")
        for c in cells[1:]:
            if c not in (".", "X", "-"):
                raise CaseError(f"{where}: cell {c!r} must be '.', 'X' or '-'")
        rows[cells[0]] = dict(zip(cols, cells[1:]))
    return {"cols": cols, "rows": rows}


def parse_case(path):
    """The steps of a case: each a list of directives and documents, in file order."""
    with open(path) as f:
        text = f.read()
    steps = [{"title": "initial", "ops": [], "expects": [], "logs": []}]
    rule = None
    lines = text.split("\n")
    i = 0
    doc_lines = []

    def flush_doc():
        doc = "\n".join(doc_lines).strip()
        doc_lines.clear()
        body = "\n".join(l for l in doc.split("\n") if not l.lstrip().startswith("#")).strip()
        if body:
            steps[-1]["ops"].append(("doc", doc))

    while i < len(lines):
        line = lines[i]
        where = f"{path}:{i + 1}"
        if line.strip() == "---":
            flush_doc()
            i += 1
            continue
        if not line.startswith("#!"):
            doc_lines.append(line)
            i += 1
            continue
        d = line[2:].strip()
        i += 1
        if d.startswith("rule:"):
            rule = d[5:].strip()
        elif d.startswith("step:"):
            flush_doc()
            steps.append({"title": d[5:].strip(), "ops": [], "expects": [], "logs": []})
        elif d.startswith("log:"):
            steps[-1]["logs"].append(d[4:].strip())
        elif d.startswith("expect "):
            words = d.split()
            m = re.fullmatch(r"(TCP|UDP|SCTP)/(\d+)", words[1]) if len(words) > 1 else None
            if not m or len(words) > 3 or (len(words) == 3 and words[2] != "ipv6"):
                raise CaseError(f"{where}: expect PROTO/PORT [ipv6]")
            mlines = []
            while i < len(lines) and lines[i].startswith("#!") and not re.match(
                    r"#!\s*(rule:|step:|log:|expect |label |pod |delete |endpoint )", lines[i]):
                if lines[i][2:].strip():
                    mlines.append(lines[i][2:].strip())
                i += 1
            matrix = parse_matrix(mlines, where)
            matrix.update(proto=m.group(1), port=int(m.group(2)), ipv6=len(words) == 3, where=where)
            steps[-1]["expects"].append(matrix)
        elif re.match(r"(label|pod|delete|endpoint)\s", d):
            steps[-1]["ops"].append((d.split()[0], d.split()[1:], where))
        else:
            raise CaseError(f"{where}: unknown directive {d!r}")
    flush_doc()
    if not rule:
        raise CaseError(f"{path}: no '#! rule:' line naming the rule the case checks")
    if not any(s["expects"] for s in steps):
        raise CaseError(f"{path}: no '#! expect' matrix")
    return rule, steps


def apply_ops(state, ops):
    namespaces, pods, docs, endpoints = state
    for op in ops:
        kind = op[0]
        if kind == "doc":
            docs[object_id(op[1])] = op[1]
            continue
        args, where = op[1], op[2]
        if kind == "label":
            if len(args) < 2 or args[0] not in ("pod", "namespace"):
                raise CaseError(f"{where}: label pod|namespace NAME k=v ...")
            target = pods.get(args[1], {}).get("labels") if args[0] == "pod" else namespaces.get(args[1])
            if target is None:
                raise CaseError(f"{where}: no {args[0]} {args[1]}")
            for kv in args[2:]:
                if kv.endswith("-"):
                    target.pop(kv[:-1], None)
                else:
                    k, _, v = kv.partition("=")
                    target[k] = v
        elif kind == "pod":
            name = args[0]
            ns = name.split("/")[0]
            pod = pods.setdefault(name, {"node": "node-1", "ips": [], "labels": {}, "phase": "Running",
                                         "hostNetwork": False, "ports": list(DEFAULT_PORTS)})
            namespaces.setdefault(ns, {"ns": ns})
            for kv in args[1:]:
                k, _, v = kv.partition("=")
                if k == "node":
                    pod["node"] = v
                elif k == "ip":
                    pod["ips"] = v.split(",")
                elif k == "labels":
                    pod["labels"] = dict(x.split("=", 1) for x in v.split(",") if x)
                elif k == "phase":
                    pod["phase"] = v
                elif k == "hostNetwork":
                    pod["hostNetwork"] = v == "true"
                elif k == "ports":
                    pod["ports"] = [] if v == "none" else [
                        (n, int(p.split("/")[0]), p.split("/")[1]) for n, p in (x.split(":") for x in v.split(","))]
                else:
                    raise CaseError(f"{where}: unknown pod option {k!r}")
        elif kind == "delete":
            if len(args) != 2:
                raise CaseError(f"{where}: delete KIND NS/NAME")
            if args[0] == "pod":
                if pods.pop(args[1], None) is None:
                    raise CaseError(f"{where}: no pod {args[1]}")
            elif docs.pop((args[0], args[1]), None) is None:
                raise CaseError(f"{where}: no {args[0]} {args[1]} to delete")
        elif kind == "endpoint":
            if len(args) not in (2, 3):
                raise CaseError(f"{where}: endpoint NAME IPV4 [IPV6]")
            endpoints[args[0]] = (args[1], args[2] if len(args) == 3 else None)


def state_yaml(state):
    namespaces, pods, docs, _ = state
    out = []
    for ns, labels in namespaces.items():
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
    for node, (v4, v6) in NODES.items():
        out.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                    "status": {"addresses": [{"type": "InternalIP", "address": v4},
                                             {"type": "InternalIP", "address": v6}]}})
    for key, p in pods.items():
        ns, name = key.split("/")
        containers = [{"name": f"cont-{port}-{proto.lower()}", "image": "agnhost",
                       "ports": [{"name": pname, "containerPort": port, "protocol": proto}]}
                      for pname, port, proto in p["ports"]] or [{"name": "main", "image": "agnhost"}]
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": ns, "labels": p["labels"]},
                    "spec": {"nodeName": p["node"], "hostNetwork": p["hostNetwork"], "containers": containers},
                    "status": {"phase": p["phase"], "podIPs": [{"ip": ip} for ip in p["ips"]]}})
    # JSON is YAML: the generated objects need no YAML emitter; the policies stay as written.
    return "\n---\n".join([json.dumps(o) for o in out] + list(docs.values())) + "\n"


def address(state, name, ipv6):
    _, pods, _, endpoints = state
    if name in pods:
        ips = [ip for ip in pods[name]["ips"] if (":" in ip) == ipv6]
        if not ipv6 and pods[name]["phase"] == "Running" and not pods[name]["hostNetwork"]:
            return name  # knpctl resolves namespace/pod to its first (IPv4) address
        if not ips:
            raise CaseError(f"pod {name} has no IPv{6 if ipv6 else 4} address")
        return ips[0]
    if name in NODES:
        return NODES[name][1 if ipv6 else 0]
    if name in endpoints:
        ip = endpoints[name][1 if ipv6 else 0]
        if ip is None:
            raise CaseError(f"endpoint {name} has no IPv6 address")
        return ip
    raise CaseError(f"unknown matrix name {name!r} (a pod ns/name, node-1..3, or an #! endpoint)")


def render(matrix, got=None):
    cols = matrix["cols"]
    width = max(len(c) for c in cols + list(matrix["rows"])) + 1
    lines = [" " * width + "".join(c.rjust(width) for c in cols)]
    for r, row in matrix["rows"].items():
        cells = []
        for c in cols:
            want = row[c]
            have = got.get((r, c)) if got else None
            if have is not None and have != want:
                cells.append((have + "*").rjust(width))
            else:
                cells.append(want.rjust(width))
        lines.append(r.ljust(width) + "".join(cells))
    return "\n".join("    " + l for l in lines)


def run_step(args, path, rule, n, step, state, workdir):
    probes, cells = [], []
    for m in step["expects"]:
        for r, row in m["rows"].items():
            for c in m["cols"]:
                if r == c or row[c] == "-":
                    continue
                probes.append(f"{address(state, r, m['ipv6'])} {address(state, c, m['ipv6'])} {m['proto']}/{m['port']}")
                cells.append((m, r, c))
    state_path = os.path.join(workdir, f"state-{n}.yaml")
    probes_path = os.path.join(workdir, f"probes-{n}.txt")
    with open(state_path, "w") as f:
        f.write(state_yaml(state))
    with open(probes_path, "w") as f:
        f.write("\n".join(probes) + "\n")
    cmd = [args.knpctl, "-v", "simulate", "--plugin-dir", args.plugin_dir, "--state", state_path,
           "--pipeline", args.pipeline, "--probes", probes_path]
    run = subprocess.run(cmd, capture_output=True, text=True)
    label = f"{os.path.basename(path)} step {n} ({step['title']})"
    if run.returncode != 0:
        return [f"{label}: knpctl failed ({run.returncode}):\n{run.stderr}\n  state: {state_path}"]
    results = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    if len(results) != len(probes):
        return [f"{label}: {len(results)} results for {len(probes)} probes"]
    failures = []
    for text in step["logs"]:
        if text not in run.stderr:
            failures.append(f"{label}: the log does not contain {text!r}; it was:\n{run.stderr}")
    by_matrix = {}
    for (m, r, c), res, probe in zip(cells, results, probes):
        got = "." if res["verdict"] == "accept" else "X"
        entry = by_matrix.setdefault(id(m), (m, {}, []))
        entry[1][(r, c)] = got
        if got != m["rows"][r][c]:
            entry[2].append((probe, res))
    for m, got, wrong in by_matrix.values():
        if not wrong:
            continue
        fam = " ipv6" if m["ipv6"] else ""
        lines = [f"{label}: {m['proto']}/{m['port']}{fam}: {len(wrong)} of {len(got)} cells differ ({m['where']})",
                 f"  rule: {rule}",
                 "  got (a wrong cell shows what knpctl gave, marked *):", render(m, got),
                 "  expected:", render(m)]
        for probe, res in wrong[:6]:
            lines.append(f"  {probe}: {res['verdict']}; egress: {res['egress'].get('reason')}; "
                         f"ingress: {res['ingress'].get('reason')}")
        failures.append("\n".join(lines))
    return failures


def run_case(args, path):
    rule, steps = parse_case(path)
    namespaces, pods = base_cluster()
    state = (namespaces, pods, {}, {})
    failures = []
    scored = 0
    with tempfile.TemporaryDirectory(prefix="np-case-") as workdir:
        for n, step in enumerate(steps, 1):
            apply_ops(state, step["ops"])
            if not step["expects"] and not step["logs"]:
                continue
            failures += run_step(args, path, rule, n, step, state, workdir)
            scored += sum(1 for m in step["expects"] for r, row in m["rows"].items()
                          for c in m["cols"] if r != c and row[c] != "-")
        if failures and args.keep:
            shutil.copytree(workdir, os.path.join(args.keep, os.path.basename(path)), dirs_exist_ok=True)
    return failures, scored


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--knpctl", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--pipeline", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline.yaml"))
    ap.add_argument("--keep", help="copy the generated files of a failing case here")
    ap.add_argument("cases", nargs="+")
    args = ap.parse_args()
    failed = 0
    for path in args.cases:
        try:
            failures, scored = run_case(args, path)
        except CaseError as e:
            print(f"FAIL {path}: {e}")
            failed += 1
            continue
        if failures:
            failed += 1
            print(f"FAIL {path}")
            for f in failures:
                print(f)
        else:
            print(f"ok   {os.path.basename(path)}: {scored} cells")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
