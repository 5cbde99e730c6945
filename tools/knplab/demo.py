"""`tools/lab demo`: config/examples/lab-demo in a running lab, the way tools/demo shows it:
the pods (kubectl apply), the TCP/80 matrix, the policies (kubectl apply), the matrix again,
`knpctl explain` for one denied connection, and what to try next."""
import os
import subprocess
import time

from .cluster import SOURCE
from .sys_ns import LabError

EXAMPLE = os.path.join(SOURCE, "config", "examples", "lab-demo")
DENIED = ("shop/frontend", "shop/db", "TCP/80")


def wait_running(c, namespaces, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        pods = [p for p in c.api().get("/api/v1/pods")["items"] if p["metadata"]["namespace"] in namespaces]
        if pods and all(p.get("status", {}).get("phase") == "Running" for p in pods):
            return pods
        if time.monotonic() > deadline:
            raise LabError("the demo pods are not running after 30 s: tools/lab status")
        time.sleep(0.1)


def main(c, a, say=print):
    from .cli import main as lab  # the same commands a person types

    name = c.lab.name
    k = f"kubectl --kubeconfig {c.lab.kubeconfig}"
    say(f"== {k} apply -f config/examples/lab-demo/cluster.yaml")
    say(c.kubectl("apply", "-f", os.path.join(EXAMPLE, "cluster.yaml")).rstrip())
    pods = wait_running(c, ("shop", "monitoring"))
    say(c.kubectl("get", "pods", "-A", "-o", "wide").rstrip())
    say(f"\n== tools/lab --name {name} matrix TCP/80     (before any policy)")
    lab(["--name", name, "matrix", "TCP/80"])
    say(f"\n== {k} apply -f config/examples/lab-demo/policies.yaml")
    say(c.kubectl("apply", "-f", os.path.join(EXAMPLE, "policies.yaml")).rstrip())
    time.sleep(1.0)  # knpd takes milliseconds; the pause is for the reader
    say(f"\n== tools/lab --name {name} matrix TCP/80     (after)")
    lab(["--name", name, "matrix", "TCP/80"])
    say(f"\n== tools/lab --name {name} probe {' '.join(DENIED)}")
    lab(["--name", name, "probe", *DENIED])
    node = next(p["spec"]["nodeName"] for p in pods if p["metadata"]["name"] == DENIED[1].split("/")[1])
    knpctl = c.info["paths"]["knpctl"]
    sock = c.lab.socket(node)
    say(f"\n== knpctl explain {' '.join(DENIED)} --socket {sock}     (knpd on {node}, where shop/db runs)")
    r = subprocess.run([knpctl, "explain", " ".join(DENIED), "--socket", sock], capture_output=True, text=True)
    say((r.stdout + r.stderr).rstrip())
    if r.returncode != 0:
        raise LabError("knpctl explain failed")
    say(f"""
== your turn
  export KUBECONFIG={c.lab.kubeconfig}
  kubectl get pods -A -o wide
  kubectl apply -f my-policy.yaml               # any NetworkPolicy; enforced within a second
  tools/lab --name {name} matrix TCP/80           # every pod pair, real connections
  tools/lab --name {name} probe shop/backend shop/db TCP/5432
  knpctl=$PWD/{os.path.relpath(knpctl, SOURCE)}; $knpctl explain 'shop/backend shop/db TCP/5432' --socket {sock}
  tools/lab --name {name} status
  tools/lab --name {name} down                    # removes every namespace, process and file of the lab""")
    return 0
