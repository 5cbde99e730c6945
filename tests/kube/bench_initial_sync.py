#!/usr/bin/env python3
"""Benchmark (not a timed test): the watch client's initial sync of a large cluster.

Usage: bench_initial_sync.py KNP_LAB_APISERVER KNP_KUBE_WATCH [--pods N] [--policies N] [--runs N]
                             [--page-size N]... [--retain full|metadata]...

Loads N pods (realistic size: labels, owner, two containers, status with conditions and
container statuses; the lab server adds managedFields as a real one does) and N
NetworkPolicies into the lab API server, then runs knp-kube-watch --exit-after-sync over pods,
namespaces, nodes and networkpolicies and reports the time from start to every SYNCED having
been consumed, and the client's peak RSS. Results go in tests/kube/README.md.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab_client_test  # noqa: E402  (the same server harness as the tests)

MAX_REQUEST = 2_500_000  # the lab server takes 3 MiB per request


def pod(i, namespaces, nodes):
    ns = f"ns-{i % namespaces}"
    app = f"app-{i % 500}"
    ip = f"10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{app}-{i:06d}-x7k2p", "namespace": ns,
            "labels": {"app": app, "tier": ["web", "api", "db"][i % 3], "pod-template-hash": "5d8f9c7b6",
                       "team": f"team-{i % 40}"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-5d8f9c7b6",
                                 "uid": f"6f1c2a3b-0000-4000-8000-{i:012d}", "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "nodeName": f"node-{i % nodes}", "serviceAccountName": "default", "restartPolicy": "Always",
            "containers": [
                {"name": "main", "image": f"registry.example.com/{app}:1.4.2",
                 "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                 "env": [{"name": "MODE", "value": "production"}, {"name": "LOG_LEVEL", "value": "info"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/"
                                                                         "serviceaccount", "readOnly": True}]},
                {"name": "sidecar", "image": "registry.example.com/proxy:2.0.1",
                 "ports": [{"containerPort": 15001}]},
            ],
        },
        "status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": f"192.168.{i % nodes // 256}."
                                                                              f"{i % nodes % 256}",
            "startTime": "2024-05-01T10:00:05Z", "qosClass": "Burstable",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2024-05-01T10:00:09Z"}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": c, "ready": True, "restartCount": 0, "image": "img", "imageID": "sha256:" +
                                   "ab" * 32, "containerID": "containerd://" + "cd" * 32,
                                   "state": {"running": {"startedAt": "2024-05-01T10:00:08Z"}}}
                                  for c in ("main", "sidecar")],
        },
    }


def policy(i, namespaces):
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"np-{i:05d}", "namespace": f"ns-{i % namespaces}"},
        "spec": {
            "podSelector": {"matchLabels": {"app": f"app-{i % 500}"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": f"team-{i % 40}"}}},
                                  {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                                                          "values": ["web", "api"]}]}}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}],
        },
    }


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(lab, objects):
    batch, size = [], 0
    for o in objects:
        s = len(json.dumps(o))
        if batch and size + s > MAX_REQUEST:
            lab.load(batch)
            batch, size = [], 0
        batch.append(o)
        size += s
    if batch:
        lab.load(batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("watch")
    ap.add_argument("--pods", type=int, default=100_000)
    ap.add_argument("--policies", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--page-size", type=int, action="append", help="LIST limit (repeatable; default 500)")
    ap.add_argument("--retain", action="append", choices=["full", "metadata"], help="(repeatable; default full)")
    args = ap.parse_args()
    lab_client_test.SERVER = args.server
    for p in (args.server, args.watch):
        if not os.access(p, os.X_OK):
            print(f"bench: not built: {p}", file=sys.stderr)
            return 77
    tmp = tempfile.mkdtemp(prefix="knp-kube-bench-")
    lab = None
    try:
        lab = lab_client_test.Lab(tmp, extra=["--history", "1000"])
        t0 = time.monotonic()
        load(lab, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i}"}}
                   for i in range(args.namespaces)])
        load(lab, [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"}} for i in range(args.nodes)])
        load(lab, (pod(i, args.namespaces, args.nodes) for i in range(args.pods)))
        load(lab, (policy(i, args.namespaces) for i in range(args.policies)))
        sample = lab.request("GET", "/api/v1/pods?limit=1")["items"][0]
        print(f"loaded {args.pods} pods, {args.policies} policies in {time.monotonic() - t0:.1f}s; one pod is "
              f"{len(json.dumps(sample))} bytes as served ({len(json.dumps(sample['metadata'].get('managedFields')))} "
              f"of them managedFields)", flush=True)
        cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                             text=True).stdout.strip()
        print(f"machine: nproc={os.cpu_count()} cpu={cpu!r} kernel={platform.release()}", flush=True)
        for page in args.page_size or [500]:
            for retain in args.retain or ["full"]:
                for run in range(args.runs):
                    t = time.monotonic()
                    server_cpu = cpu_seconds(lab.proc.pid)
                    out = subprocess.run([args.watch, "--kubeconfig", os.path.join(lab.dir, "kubeconfig"), "-o", "none",
                                          "--exit-after-sync", "--page-size", str(page), "--retain", retain,
                                          "--resource", "v1/pods", "--resource", "v1/namespaces", "--resource",
                                          "v1/nodes", "--resource", "networking.k8s.io/v1/networkpolicies"],
                                         capture_output=True, text=True, timeout=300)
                    wall = time.monotonic() - t
                    server_cpu = cpu_seconds(lab.proc.pid) - server_cpu
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        return 1
                    s = json.loads(out.stdout.strip().splitlines()[-1])
                    objs = sum(h["objects"] for h in s["health"])
                    print(f"page {page} retain {retain} run {run + 1}: synced in {s['syncSeconds']:.2f}s "
                          f"(process {wall:.2f}s), peak RSS {s['maxRssKiB'] / 1024:.0f} MiB, client CPU "
                          f"{s['cpuSeconds']:.2f}s, lab server CPU {server_cpu:.2f}s, events {s['eventsSeen']}, objects {objs}", flush=True)
    finally:
        if lab:
            lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
