"""The lab agent: the kubelet's part for one node. Runs inside the node's namespace (started by
`tools/lab up` with nsenter, so `ip netns` names still resolve), lists and watches the pods
bound to its node, and for each pod that should run:

  - creates its namespace knplab-LAB-p-NS.POD with eth0 = one end of a veth whose other end is
    in the node (kindnet/Calico style: the pod has IP/32 and IP/128 and a default route via
    169.254.1.1 (proxy ARP on the node side) and fe80::1; the node routes IP/32 and IP/128 to
    the veth with its own segment address as source), no bridge;
  - starts the pod's server on every declared TCP, UDP and SCTP port (SCTP where the kernel
    has SCTP sockets; this one does not, and the server says so in its log);
  - writes status (phase Running, podIP(s), hostIP(s), a ready container) back;
  - deletes all of it when the pod goes (deleted, or a terminal phase).

hostNetwork pods get no namespace: their server runs in the node's namespace, their IPs are
the node's. Pods in phase Succeeded/Failed are never started (their IPs may be reused).
A pod's addresses are the annotation lab.knp.dev/ips ("A,B") when it has one, else the next
free host numbers (from .100) in the node's pod CIDRs. What the agent made is recorded under
/run/knplab/LAB/NODE/pods/, so a restarted agent adopts it and `tools/lab down` removes it.

Usage: python3 -m knplab.agent --lab NAME --node NODE
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import time
import urllib.parse
from datetime import datetime, timezone

from . import topology as topo
from .kube import Api
from .sys_ns import LabError, kill_all, run, start, start_time

TERMINAL = ("Succeeded", "Failed")


def log(msg):
    print(f"{datetime.now(timezone.utc).strftime('%H:%M:%S.%f')[:-3]} agent: {msg}", flush=True)


class Agent:
    def __init__(self, lab, node):
        self.lab, self.node = lab, node
        self.index = topo.node_index(node)
        self.node4, self.node6 = topo.node_ips(self.index)
        self.dir = lab.path(node, "pods")
        os.makedirs(self.dir, exist_ok=True)
        self.api = Api(f"https://{topo.HUB4}:{topo.API_PORT}", lab.path("apiserver", "ca.crt"),
                       lab.path("apiserver", "token"))
        self.records = {}
        for path in glob.glob(os.path.join(self.dir, "*.json")):
            with open(path) as f:
                r = json.load(f)
            self.records[r["key"]] = r

    # --- records ---------------------------------------------------------------------------
    def record_path(self, key):
        return os.path.join(self.dir, key.replace("/", ".") + ".json")

    def save(self, r):
        with open(self.record_path(r["key"]) + ".tmp", "w") as f:
            json.dump(r, f)
        os.replace(self.record_path(r["key"]) + ".tmp", self.record_path(r["key"]))
        self.records[r["key"]] = r

    # --- pods ------------------------------------------------------------------------------
    def addresses(self, pod, key):
        ann = pod["metadata"].get("annotations", {}).get(topo.IPS_ANNOTATION)
        if ann:
            return [a.strip() for a in ann.split(",") if a.strip()]
        used = {ip for r in self.records.values() for ip in r["ips"]}
        for host in range(100, 251):
            v4, v6 = f"10.244.{self.index}.{host}", f"fd00:10:244:{self.index}::{host}"
            if v4 not in used and v6 not in used:
                return [v4, v6]
        raise LabError(f"pod {key}: node {self.node} has no free address")

    def ensure(self, pod):
        meta, spec = pod["metadata"], pod.get("spec", {})
        key = f"{meta['namespace']}/{meta['name']}"
        phase = pod.get("status", {}).get("phase")
        r = self.records.get(key)
        if phase in TERMINAL or meta.get("deletionTimestamp"):
            if r:
                self.teardown(key)
            return
        if r and r["uid"] == meta["uid"]:
            return
        if r:
            self.teardown(key)  # the same name, another pod
        ports = [p for c in spec.get("containers", []) for p in c.get("ports", [])]
        tcp = sorted({p["containerPort"] for p in ports if p.get("protocol", "TCP") == "TCP"})
        udp = sorted({p["containerPort"] for p in ports if p.get("protocol") == "UDP"})
        sctp = sorted({p["containerPort"] for p in ports if p.get("protocol") == "SCTP"})
        server = [sys.executable, "-m", "knplab.server", "--tcp", ",".join(map(str, tcp)),
                  "--udp", ",".join(map(str, udp)), "--sctp", ",".join(map(str, sctp))]
        t0 = time.monotonic()
        if spec.get("hostNetwork"):
            ips, ns, veth = [self.node4, self.node6], None, None
        else:
            ips = self.addresses(pod, key)
            ns = self.lab.pod_ns(meta["namespace"], meta["name"])
            veth = "lxc" + hashlib.sha1(f"{key}/{meta['uid']}".encode()).hexdigest()[:10]
        r = {"key": key, "uid": meta["uid"], "ips": ips, "netns": ns, "veth": veth, "pid": None, "start": None}
        self.save(r)  # before anything exists: `down` finds the namespace by its prefix anyway
        logfile = os.path.join(self.dir, key.replace("/", ".") + ".log")
        try:
            if ns:
                self.plumb(ns, veth, ips)
            p = start(server, logfile, ns=ns, env=dict(os.environ))
        except BaseException:
            self.teardown(key)  # half a pod is no pod: the next list tries again from nothing
            raise
        r["pid"], r["start"] = p.pid, start_time(p.pid)
        self.save(r)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            with open(logfile) as f:
                if "serving" in f.read():
                    break
            time.sleep(0.02)
        if p.poll() is not None:
            log(f"pod {key}: server exited ({p.returncode}); see {logfile}")
        self.report(pod, ips)
        log(f"pod {key} running: {','.join(ips)} tcp={tcp} udp={udp} sctp={sctp} "
            f"({(time.monotonic() - t0) * 1000:.0f} ms)")

    def plumb(self, ns, veth, ips):
        run("ip", "netns", "add", ns)
        run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
        run("ip", "-batch", "-", input=f"link add {veth} type veth peer name eth0 netns {ns}\n"
                                        f"addr add {topo.GW6}/64 dev {veth} nodad\nlink set {veth} up\n")
        # The node answers ARP for the pods' IPv4 gateway 169.254.1.1 on this veth (Calico's way).
        with open(f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp", "w") as f:
            f.write("1")
        pod, node = ["link set lo up", "link set eth0 up"], []
        for ip in ips:
            v6 = ":" in ip
            pod.append(f"addr add {ip}/{128 if v6 else 32} dev eth0" + (" nodad" if v6 else ""))
            node.append(f"route add {ip}/{128 if v6 else 32} dev {veth} src {self.node6 if v6 else self.node4}")
        pod += ["route add 169.254.1.1 dev eth0 scope link", "route add default via 169.254.1.1 dev eth0"]
        run("ip", "-n", ns, "-batch", "-", input="\n".join(pod) + "\n")
        run("ip", "-n", ns, "-6", "route", "add", "default", "via", topo.GW6, "dev", "eth0")
        run("ip", "-batch", "-", input="\n".join(node) + "\n")

    def report(self, pod, ips):
        meta = pod["metadata"]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        status = {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips],
                  "hostIP": self.node4, "hostIPs": [{"ip": self.node4}, {"ip": self.node6}], "startTime": now,
                  "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                 for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                  "containerStatuses": [{"name": c, "ready": True, "started": True, "restartCount": 0,
                                         "image": "knplab/server", "imageID": "",
                                         "state": {"running": {"startedAt": now}}} for c in containers]}
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        try:
            self.api.request("PATCH", path, {"status": status}, ctype="application/merge-patch+json")
        except LabError as e:
            log(f"pod {meta['namespace']}/{meta['name']}: status not written: {e}")

    def teardown(self, key):
        r = self.records.pop(key)
        if r.get("pid"):
            kill_all([(r["pid"], r.get("start"))], grace=1.0)
        if r.get("netns"):
            run("ip", "netns", "del", r["netns"], check=False)
        try:
            os.unlink(self.record_path(key))
        except FileNotFoundError:
            pass
        log(f"pod {key} removed")

    # --- list / watch ----------------------------------------------------------------------
    def loop(self):
        sel = urllib.parse.quote(f"spec.nodeName={self.node}")
        while True:
            try:
                lst = self.api.get(f"/api/v1/pods?fieldSelector={sel}")
                seen = set()
                for pod in lst.get("items", []):
                    seen.add(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
                    self.ensure(pod)
                for key in [k for k in self.records if k not in seen]:
                    self.teardown(key)
                rv = lst["metadata"]["resourceVersion"]
                log(f"listed {len(seen)} pods at resourceVersion {rv}; watching")
                while True:
                    path = (f"/api/v1/pods?watch=1&fieldSelector={sel}&resourceVersion={rv}"
                            "&allowWatchBookmarks=true&timeoutSeconds=240")
                    for ev in self.api.watch(path, timeout=300):
                        obj = ev.get("object", {})
                        if ev["type"] == "ERROR":
                            raise LabError(f"watch error: {obj.get('message')}")
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev["type"] in ("ADDED", "MODIFIED"):
                            self.ensure(obj)
                        elif ev["type"] == "DELETED":
                            key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                            if key in self.records and self.records[key]["uid"] == obj["metadata"]["uid"]:
                                self.teardown(key)
            except (LabError, OSError, ValueError, KeyError) as e:
                log(f"list/watch: {e}; again in 1 s")
                time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True)
    ap.add_argument("--node", required=True)
    a = ap.parse_args()
    agent = Agent(topo.Lab(a.lab), a.node)
    log(f"node {a.node}: {len(agent.records)} pods adopted")
    agent.loop()


if __name__ == "__main__":
    main()
