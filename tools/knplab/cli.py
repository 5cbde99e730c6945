"""tools/lab: a local multi-node cluster of network-namespace pods, with the real knpd on every
node, the lab API server, and real kubectl.

  tools/lab up     [--nodes 2|3] [--build DIR] [--pipeline FILE]
  tools/lab down   [--name N]             everything of the lab goes, also after a crash
  tools/lab status [--name N]
  tools/lab probe  SRC DST PROTO/PORT [--ipv6] [--timeout S]
  tools/lab matrix [PROTO/PORT] [--ipv6] [--namespaces x,y] [--timeout S]
  tools/lab suite  [--all] [--suite NAME] [CASE.yaml...]
  tools/lab demo                          config/examples/lab-demo, as tools/demo shows it
  tools/lab kubectl ARGS...               kubectl with the lab's kubeconfig

SRC/DST: namespace/pod, node-N, or (DST only) an IP. Every command takes --name N (before or
after the command; default $KNPLAB_NAME or "lab"): labs of different names never meet.
"""
import argparse
import os
import sys

from . import probe as pr
from .cluster import Cluster
from .kube import kubectl_binary
from .sys_ns import LabError


def resolve(where, name, ipv6):
    if name in where:
        ns, ips = where[name]
        fam = [ip for ip in ips if (":" in ip) == ipv6]
        if not fam:
            raise LabError(f"{name} has no IPv{6 if ipv6 else 4} address")
        return ns, fam[0]
    if "/" not in name and (":" in name or name.replace(".", "").isdigit()):
        return None, name
    raise LabError(f"{name!r}: no running pod or node of that name")


def parse_port(text):
    proto, _, port = text.upper().partition("/")
    if proto not in ("TCP", "UDP", "SCTP") or not port.isdigit():
        raise LabError(f"{text!r}: PROTO/PORT, e.g. TCP/80")
    return proto, int(port)


def cmd_probe(c, a):
    where = c.endpoints()
    proto, port = parse_port(a.port)
    sns, _ = resolve(where, a.src, a.ipv6)
    if sns is None:
        raise LabError("SRC must be a pod or a node")
    _, dip = resolve(where, a.dst, a.ipv6)
    outcome, took = pr.probe(sns, dip, proto, port, a.timeout)
    verdict = {"ok": "connected", "refused": "reached (refused: nothing serves that port)",
               "timeout": "timed out: dropped (denied)"}.get(outcome, outcome)
    print(f"{a.src} -> {a.dst} ({dip}) {proto}/{port}: {verdict} after {took * 1000:.0f} ms")
    return 0 if outcome in pr.REACHED else 1


def cmd_matrix(c, a):
    where = c.endpoints()
    proto, port = parse_port(a.port)
    if proto == "SCTP" and not pr.HAVE_SCTP:
        raise LabError("this kernel has no SCTP sockets")
    only = set(a.namespaces.split(",")) if a.namespaces else None
    pods = sorted(n for n in where if "/" in n and (only is None or n.split("/")[0] in only))
    probes, keys = [], []
    for s in pods:
        for d in pods:
            sns, _ = resolve(where, s, a.ipv6)
            _, dip = resolve(where, d, a.ipv6)
            probes.append((sns, dip, proto, port, None))
            keys.append((s, d))
    results = pr.probe_many(probes, a.timeout)
    cells = {k: pr.cell(o) for k, (o, _) in zip(keys, results)}
    print(f"reachability {proto}/{port}{' IPv6' if a.ipv6 else ''} (rows: from, columns: to; "
          f"'.' reachable, 'X' dropped)")
    print(pr.render(pods, pods, cells))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tools/lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default=os.environ.get("KNPLAB_NAME", "lab"), help="the lab (a-z0-9, up to 12)")
    named = argparse.ArgumentParser(add_help=False)  # --name also after the command
    named.add_argument("--name", default=argparse.SUPPRESS, help="the lab (a-z0-9, up to 12)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def command(name, help):
        return sub.add_parser(name, parents=[named], help=help)

    up = command("up", "start a lab")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--build", default=os.environ.get("KNP_BUILDDIR", "build"), help="the build tree (knpd, plugins)")
    up.add_argument("--pipeline", help="knpd's pipeline.yaml (default: the NetworkPolicy plugin alone)")
    command("down", "remove everything of the lab")
    command("status", "what runs")
    p = command("probe", "one connection from a pod or node")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("port")
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--timeout", type=float, default=2.0)
    m = command("matrix", "every pod pair, one protocol/port: the truth table")
    m.add_argument("port", nargs="?", default="TCP/80")
    m.add_argument("--ipv6", action="store_true")
    m.add_argument("--namespaces", help="only pods of these namespaces (comma-separated)")
    m.add_argument("--timeout", type=float, default=1.5)
    s = command("suite", "truth-table cases against the lab (see tools/knplab/suite.py)")
    from . import suite
    suite.add_arguments(s)
    command("demo", "config/examples/lab-demo: pods, matrix, policies, matrix, knpctl explain")
    k = command("kubectl", "kubectl with the lab's kubeconfig")
    k.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        c = Cluster(a.name)
        if a.cmd == "up":
            c.up(a.nodes, a.build, a.pipeline)
            print(c.status())
            return 0
        if a.cmd == "down":
            c.down()
            return 0
        if a.cmd == "status":
            print(c.status())
            return 0
        if a.cmd == "probe":
            return cmd_probe(c, a)
        if a.cmd == "matrix":
            return cmd_matrix(c, a)
        if a.cmd == "suite":
            return suite.main(c, a)
        if a.cmd == "demo":
            from . import demo
            return demo.main(c, a)
        if a.cmd == "kubectl":
            c.info  # noqa: B018 (fails when the lab is not up)
            os.execvp(kubectl_binary(), ["kubectl", "--kubeconfig", c.lab.kubeconfig, *a.args])
    except (LabError, ValueError) as e:
        print(f"tools/lab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
