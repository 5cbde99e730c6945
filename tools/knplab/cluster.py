"""up / down / status of a lab, and the facts the other commands need (who is where)."""
import json
import os
import shutil
import sys
import time

from . import topology as topo
from .kube import Api, kubectl, write_kubeconfig
from .sys_ns import (LabError, ip, kill_all, netns_list, netns_pids, processes_with_args, run, start,
                     start_time, sysctl)

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.dirname(TOOLS)
WORLD_PORTS = "80,81,90,91,8080"  # what the hub serves as "the outside world" (case endpoints)
DEFAULT_PIPELINE = os.path.join(SOURCE, "tests", "networkpolicy", "pipeline.yaml")
DAEMONSET = os.path.join(SOURCE, "packaging", "kubernetes", "daemonset.yaml")


def daemonset_args():
    """The knpd container's `args:` list in the DaemonSet manifest ([] without one)."""
    try:
        with open(DAEMONSET) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for i, line in enumerate(lines):
        if line.strip() == "args:":
            indent = len(line) - len(line.lstrip())
            out = []
            for item in lines[i + 1:]:
                if len(item) - len(item.lstrip()) <= indent or not item.lstrip().startswith("- "):
                    break
                out.append(item.lstrip()[2:].strip().strip("'\""))
            return out
    return []


def build_paths(build):
    build = os.path.abspath(build)
    paths = {"build": build, "knpd": os.path.join(build, "host", "knpd"),
             "knpctl": os.path.join(build, "host", "knpctl"),
             "apiserver": os.path.join(build, "tools", "lab-apiserver", "knp-lab-apiserver"),
             "plugins": os.path.join(build, "plugins")}
    for k in ("knpd", "knpctl", "apiserver"):
        if not os.access(paths[k], os.X_OK):
            raise LabError(f"{paths[k]} is missing: build first (ninja -C {build})")
    return paths


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = TOOLS + (":" + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e


def wait_log(path, text, proc, what, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        try:
            with open(path) as f:
                body = f.read()
        except FileNotFoundError:
            body = ""
        if text in body:
            return body
        if proc.poll() is not None:
            raise LabError(f"{what} exited ({proc.returncode}):\n{body[-2000:]}")
        if time.monotonic() > deadline:
            raise LabError(f"{what}: no {text!r} after {limit:.0f} s; its log {path}:\n{body[-2000:]}")
        time.sleep(0.05)


class Cluster:
    """A lab that is up (or being brought up). Not thread-safe; one command at a time."""

    def __init__(self, name):
        self.lab = topo.Lab(name)

    # --- facts -----------------------------------------------------------------------------
    @property
    def info(self):
        info = self.lab.info()
        if info is None:
            raise LabError(f"lab {self.lab.name!r} is not up (tools/lab up --name {self.lab.name})")
        return info

    def api(self):
        return Api(f"https://127.0.0.1:{self.info['forwardPort']}", self.lab.path("apiserver", "ca.crt"),
                   self.lab.path("apiserver", "token"))

    def kubectl(self, *args, stdin=None, check=True):
        return kubectl(self.lab.kubeconfig, self.lab.path("kubecache"), *args, stdin=stdin, check=check)

    def apply(self, docs):
        """kubectl apply of objects (dicts or YAML text) as one multi-document stream (the lab
        API server's validation rejects a kind: List)."""
        text = "# knplab\n" + "\n---\n".join(d if isinstance(d, str) else json.dumps(d) for d in docs)  # YAML, not JSON
        return self.kubectl("apply", "-f", "-", stdin=text)

    def _remember(self, role, proc):
        info = self.info
        info.setdefault("processes", {})[role] = [proc.pid, start_time(proc.pid)]
        self.lab.save(info)

    # --- up --------------------------------------------------------------------------------
    def up(self, nodes=2, build="build", pipeline=None, say=print):
        lab = self.lab
        if not 1 <= nodes <= 9:
            raise LabError("--nodes: 1 to 9")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, nftables, NFQUEUE)")
        if lab.info() is not None or any(n.startswith(lab.prefix) for n in netns_list()):
            raise LabError(f"lab {lab.name!r} exists: tools/lab down --name {lab.name} first")
        paths = build_paths(build)
        os.makedirs(lab.dir, mode=0o700, exist_ok=True)
        lab.save({"name": lab.name, "nodes": nodes, "created": time.time(), "paths": paths, "processes": {}})
        try:
            t0 = time.monotonic()
            self._network(nodes)
            say(f"lab {lab.name}: hub and {nodes} nodes wired ({time.monotonic() - t0:.1f} s)")
            self._apiserver(paths)
            self._nodes(nodes)
            with open(pipeline or DEFAULT_PIPELINE) as f:
                self._write_pipeline(f.read())
            for i in range(1, nodes + 1):
                self._start_agent(topo.node_name(i))
            self._start_knpds()
            say(f"lab {lab.name}: up in {time.monotonic() - t0:.1f} s")
        except BaseException:
            if not os.environ.get("KNPLAB_KEEP"):  # for debugging a failed up
                self.down(quiet=True)
            raise

    def _network(self, nodes):
        lab = self.lab
        hub = lab.hub
        ip("netns", "add", hub)
        sysctl(hub, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.accept_dad=0",
               "net.ipv6.conf.default.accept_dad=0", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
        cmds = ["link set lo up", "link add br0 type bridge", "link set br0 up",
                f"addr add {topo.HUB4}/24 dev br0", f"addr add {topo.HUB6}/64 dev br0 nodad"]
        for i in range(1, nodes + 1):
            n4, n6 = topo.node_ips(i)
            c4, c6 = topo.pod_cidrs(i)
            cmds += [f"route add {c4} via {n4}", f"route add {c6} via {n6}"]
        for i in range(1, nodes + 1):
            node = lab.node_ns(topo.node_name(i))
            ip("netns", "add", node)
            sysctl(node, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.accept_dad=0",
                   "net.ipv6.conf.default.accept_dad=0", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
            # Both ends are born in the lab's namespaces: nothing appears in the machine's own.
            ip("link", "add", "seg", "netns", node, "type", "veth", "peer", "name", f"n{i}", "netns", hub)
            n4, n6 = topo.node_ips(i)
            ncmds = ["link set lo up", "link set seg up", f"addr add {n4}/24 dev seg",
                     f"addr add {n6}/64 dev seg nodad"]
            for j in range(1, nodes + 1):
                if j != i:
                    c4, c6 = topo.pod_cidrs(j)
                    o4, o6 = topo.node_ips(j)
                    ncmds += [f"route add {c4} via {o4}", f"route add {c6} via {o6}"]
            ncmds += [f"route add default via {topo.HUB4}", f"route add default via {topo.HUB6}"]
            run("ip", "-n", node, "-batch", "-", input="\n".join(ncmds) + "\n")
            cmds.insert(3, f"link set n{i} master br0 up")
        run("ip", "-n", hub, "-batch", "-", input="\n".join(cmds) + "\n")

    def _apiserver(self, paths):
        lab = self.lab
        log = lab.path("apiserver.log")
        p = start([paths["apiserver"], "--dir", lab.path("apiserver"), "--listen", f"{topo.HUB4}:{topo.API_PORT}",
                   "--san", topo.HUB4, "--san", topo.HUB6], log, ns=lab.hub)
        self._remember("apiserver", p)
        wait_log(log, "listening", p, "the lab API server")
        p = start([sys.executable, "-m", "knplab.forward", "--lab", lab.name], lab.path("forward.log"), env=env())
        self._remember("forward", p)
        deadline = time.monotonic() + 10
        while not os.path.exists(lab.path("forward.port")):
            if p.poll() is not None or time.monotonic() > deadline:
                raise LabError("the API forwarder did not start: " + open(lab.path("forward.log")).read())
            time.sleep(0.02)
        info = self.info
        with open(lab.path("forward.port")) as f:
            info["forwardPort"] = int(f.read())
        lab.save(info)
        with open(lab.path("apiserver", "token")) as f:
            token = f.read().strip()
        write_kubeconfig(lab.kubeconfig, f"https://127.0.0.1:{info['forwardPort']}",
                         lab.path("apiserver", "ca.crt"), token)
        self.api().get("/version")

    def _nodes(self, nodes):
        docs = []
        for i in range(1, nodes + 1):
            name = topo.node_name(i)
            n4, n6 = topo.node_ips(i)
            docs.append({"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                               "kubernetes.io/os": "linux"}},
                         "spec": {"podCIDR": topo.pod_cidrs(i)[0], "podCIDRs": list(topo.pod_cidrs(i))},
                         "status": {"addresses": [{"type": "InternalIP", "address": n4},
                                                  {"type": "InternalIP", "address": n6},
                                                  {"type": "Hostname", "address": name}],
                                    "conditions": [{"type": "Ready", "status": "True"}]}})
        self.apply(docs)
        # "the outside world": case endpoints get addresses on the hub's lo
        p = start([sys.executable, "-m", "knplab.server", "--tcp", WORLD_PORTS, "--udp", WORLD_PORTS],
                  self.lab.path("world.log"), ns=self.lab.hub, env=env())
        self._remember("world", p)

    def _start_agent(self, node):
        lab = self.lab
        os.makedirs(lab.path(node), exist_ok=True)
        p = start([sys.executable, "-m", "knplab.agent", "--lab", lab.name, "--node", node],
                  lab.path(node, "agent.log"), ns=lab.node_ns(node), nsenter=True, env=env())
        self._remember(f"agent/{node}", p)

    def _write_pipeline(self, text):
        with open(self.lab.path("pipeline.yaml"), "w") as f:
            f.write(text)

    def knpd_command(self, node):
        """knpd as the DaemonSet runs it (its container args, read from DAEMONSET), with what
        only the lab needs: the lab's kubeconfig instead of the in-cluster account, the lab's
        pipeline, the build tree's plugins, and a control socket per node (a file path is
        shared by every namespace)."""
        paths = self.info["paths"]
        # Verbatim: knpd takes Go-style flags (`-v=2`) as the manifest writes them.
        args = [a.replace("$(NODE_NAME)", node) for a in daemonset_args()
                if not a.startswith(("--pipeline", "--kubeconfig", "--plugin-dir", "--socket"))]
        if not any(a.startswith("--hostname-override") for a in args):
            args.insert(0, f"--hostname-override={node}")
        return [paths["knpd"], *args, f"--kubeconfig={self.lab.node_kubeconfig}",
                f"--pipeline={self.lab.path('pipeline.yaml')}", f"--plugin-dir={paths['plugins']}",
                f"--socket={self.lab.socket(node)}"]

    def knpd_status(self, node):
        """knpd's own account (`knpctl -o json status`), or None while it does not answer."""
        r = run(self.info["paths"]["knpctl"], "-o", "json", "status", "--socket", self.lab.socket(node), check=False)
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None

    def _start_knpds(self):
        started = []
        for node in self.lab.nodes():
            p = start(self.knpd_command(node), self.lab.path(node, "knpd.log"), ns=self.lab.node_ns(node))
            self._remember(f"knpd/{node}", p)
            started.append((node, p))
        for node, p in started:
            deadline = time.monotonic() + 30
            while True:
                st = self.knpd_status(node) if p.poll() is None else None
                if st and st.get("ready") and st.get("pid") == p.pid:
                    break
                if p.poll() is not None or time.monotonic() > deadline:
                    with open(self.lab.path(node, "knpd.log")) as f:
                        log = f.read()[-2000:]
                    raise LabError(f"knpd on {node} is not ready ({st and st.get('readiness')}); "
                                   f"its log {self.lab.path(node, 'knpd.log')}:\n{log}")
                time.sleep(0.1)

    def set_pipeline(self, text):
        """Restarts every knpd with another pipeline (a suite's); a no-op when it is the same."""
        current = open(self.lab.path("pipeline.yaml")).read()
        if current == text:
            return False
        procs = self.info.get("processes", {})
        kill_all([tuple(procs[k]) for k in procs if k.startswith("knpd/")], grace=5.0)
        self._write_pipeline(text)
        self._start_knpds()
        return True

    # --- down ------------------------------------------------------------------------------
    def down(self, quiet=False):
        """Removes every namespace, process and file of this lab; works from any partial state
        (a crash, an interrupted up) since it looks for the lab's prefix, not only its records."""
        lab = self.lab
        info = lab.info() or {}
        recorded = [tuple(v) for v in info.get("processes", {}).values()]
        removed = 0
        for _ in range(3):
            spaces = [n for n in netns_list() if n.startswith(lab.prefix)]
            pids = {p for n in spaces for p in netns_pids(n)}
            # the forwarder lives in the machine's namespace: found by its arguments when the
            # record of it is lost
            pids |= set(processes_with_args(["-m", "knplab.forward", "--lab", lab.name]))
            kill_all(recorded + [(p, None) for p in pids])
            recorded = []
            # pods first, the hub last (nothing depends on a pod namespace)
            for n in sorted(spaces, key=lambda n: (n == lab.hub, n.startswith(lab.prefix + "n-"))):
                if ip("netns", "del", n, check=False).returncode == 0:
                    removed += 1
            if not any(n.startswith(lab.prefix) for n in netns_list()):
                break
        shutil.rmtree(lab.dir, ignore_errors=True)
        left = [n for n in netns_list() if n.startswith(lab.prefix)]
        if left:
            raise LabError(f"lab {lab.name}: could not remove namespaces {left}")
        if not quiet:
            print(f"lab {lab.name}: down ({removed} namespaces removed)")

    # --- status ----------------------------------------------------------------------------
    def status(self):
        info = self.info
        out = [f"lab {self.lab.name}: {info['nodes']} nodes, up since "
               f"{time.strftime('%H:%M:%S', time.localtime(info['created']))}",
               f"  kubeconfig: {self.lab.kubeconfig}   (export KUBECONFIG={self.lab.kubeconfig})",
               f"  state dir:  {self.lab.dir}"]
        for role, (pid, st) in sorted(info.get("processes", {}).items()):
            alive = start_time(pid) == st
            out.append(f"  {role:<16} pid {pid:<8} {'running' if alive else 'GONE'}")
        spaces = [n for n in netns_list() if n.startswith(self.lab.prefix)]
        out.append(f"  namespaces: {len(spaces)} ({sum(1 for n in spaces if '-p-' in n)} pods)")
        return "\n".join(out)

    # --- who is where ----------------------------------------------------------------------
    def endpoints(self):
        """name -> (netns, [ips]) for every running pod and every node."""
        lab = self.lab
        where = {}
        for i, node in enumerate(lab.nodes(), 1):
            where[node] = (lab.node_ns(node), list(topo.node_ips(i)))
        for pod in self.api().get("/api/v1/pods").get("items", []):
            meta, spec, st = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
            if st.get("phase") != "Running" or not st.get("podIPs"):
                continue
            if spec.get("hostNetwork"):
                ns = lab.node_ns(spec["nodeName"])
            else:
                ns = lab.pod_ns(meta["namespace"], meta["name"])
            where[f"{meta['namespace']}/{meta['name']}"] = (ns, [x["ip"] for x in st["podIPs"]])
        return where
