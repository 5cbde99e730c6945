#!/usr/bin/env python3
"""The lab API server (tools/lab-apiserver) against real kubectl, and over HTTPS directly.

Usage (meson runs it): lab_apiserver_test.py KNP_LAB_APISERVER [unittest args]

kubectl is $KUBECTL, else `kubectl` on PATH. Without one the kubectl tests skip, saying so;
under CI=true they fail instead (tools/install-deps --test installs kubectl). Every server a
test starts is killed in a finally/tearDown, also when the test fails.
"""
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SERVER = sys.argv[1] if len(sys.argv) > 1 else "build-lab/tools/lab-apiserver/knp-lab-apiserver"
CI = os.environ.get("CI", "").lower() == "true"


def find_kubectl():
    for c in (os.environ.get("KUBECTL"), shutil.which("kubectl")):
        if c and os.access(c, os.X_OK):
            return c
    return None


KUBECTL = find_kubectl()

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {node-role.kubernetes.io/worker: ""}}
status:
  addresses: [{type: InternalIP, address: 192.168.0.10}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web, tier: front}}
spec:
  nodeName: node-a
  containers:
  - name: c
    image: nginx
    ports: [{containerPort: 8080}]
status: {phase: Running, podIP: 10.244.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec:
  nodeName: node-b
  containers: [{name: c, image: postgres}]
status: {phase: Pending}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}]}]
  egress: [{}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: anp-prod}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress: [{name: deny-all, action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp-admin}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: prod}
spec: {size: 3}
"""


class LabServer:
    """One knp-lab-apiserver process on 127.0.0.1:0 with a temp dir; close() kills it."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="knp-lab-")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--dir", self.dir, *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        try:
            line = self._first_line()
            if not line.startswith("listening https://"):
                raise RuntimeError(f"unexpected first line {line!r}: {self.logtext()}")
            self.url = line.split()[1]
            u = urllib.parse.urlsplit(self.url)
            self.host, self.port = u.hostname, u.port
            self.kubeconfig = os.path.join(self.dir, "kubeconfig")
            self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        except BaseException:
            self.close()
            raise

    def _first_line(self):
        out = queue.Queue()
        threading.Thread(target=lambda: out.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            return out.get(timeout=10).strip()
        except queue.Empty:
            raise RuntimeError(f"the server printed nothing in 10 s: {self.logtext()}")

    @property
    def token(self):
        with open(os.path.join(self.dir, "token")) as f:
            return f.read().strip()

    def logtext(self):
        self.log.flush()
        with open(os.path.join(self.dir, "server.log")) as f:
            return f.read()[-3000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, timeout=10):
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return self.ctx.wrap_socket(sock, server_hostname=self.host)

    def request(self, method, path, body=None, token=None, ctype="application/json", accept="application/json",
                headers=None):
        """(status, headers, body bytes); `token` None → the current token, "" → none."""
        import http.client
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=20)
        h = {"Accept": accept}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h["Content-Type"] = ctype
        h.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, expect=200, **kw):
        status, _, data = self.request(method, path, body, **kw)
        if status != expect:
            raise AssertionError(f"{method} {path}: {status} (want {expect}): {data[:500]!r}")
        return json.loads(data) if data else None

    def admin(self, path, body=None, method="POST"):
        return self.json(method, path, body, token=self.token)

    def fault(self, **spec):
        return self.admin("/lab/faults", spec)

    def status(self):
        return self.json("GET", "/lab/status")

    def wait_watches(self, n, resource=None, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ws = [w for w in self.status()["watches"] if resource is None or w["resource"] == resource]
            if len(ws) >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"fewer than {n} watches open: {self.status()['watches']}")


class Cut(Exception):
    """The stream ended inside a chunk: `announced` bytes promised, `got` arrived."""

    def __init__(self, announced, got):
        super().__init__(f"stream cut: chunk of {announced} bytes, {got} received")
        self.announced, self.got = announced, got


class RawStream:
    """A watch read at the HTTP chunk level, to see chunk boundaries and a cut mid-chunk."""

    def __init__(self, server, path, token=None, accept="application/json", timeout=10):
        self.s = server.connect(timeout)
        tok = server.token if token is None else token
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
                        f"Authorization: Bearer {tok}\r\nAccept: {accept}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        self.pending = b""
        self.chunks = []
        self.ended = False

    def close(self):
        self.s.close()

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def next_chunk(self):
        """The next chunk's bytes; b"" for the last chunk; Cut when it ends inside one."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        while len(self.buf) < size + 2:
            try:
                self._fill()
            except EOFError:
                raise Cut(size, len(self.buf))
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        if size == 0:
            self.ended = True
        self.chunks.append(data)
        return data

    def event(self):
        """The next newline-framed event, whatever the chunking; None at the end of the stream."""
        while b"\n" not in self.pending:
            c = self.next_chunk()
            if c == b"":
                return None
            self.pending += c
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def events_until(self, pred, limit=1000):
        out = []
        for _ in range(limit):
            e = self.event()
            if e is None:
                break
            out.append(e)
            if pred(e):
                break
        return out


def pod(name, ns="prod", labels=None, node="node-a", ip=None, ports=None):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports or []}]},
         "status": {"phase": "Running"}}
    if ip:
        p["status"]["podIP"] = ip
    return p


def require_kubectl(test):
    if KUBECTL:
        return
    msg = "kubectl not found ($KUBECTL or PATH); tools/install-deps --test installs it"
    if CI:
        test.fail(msg + " (CI=true: failing instead of skipping)")
    test.skipTest(msg)


class KubectlTest(unittest.TestCase):
    """Real kubectl, its default validation and a fresh --cache-dir per test."""

    def setUp(self):
        require_kubectl(self)
        self.server = LabServer("--crd", "example.com/v1/widgets/Widget")
        self.addCleanup(self.server.close)
        self.cache = tempfile.mkdtemp(prefix="knp-lab-kubectl-cache-")
        self.addCleanup(shutil.rmtree, self.cache, True)
        self.work = tempfile.mkdtemp(prefix="knp-lab-manifests-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def argv(self, *args):
        return [KUBECTL, "--kubeconfig", self.server.kubeconfig, "--cache-dir", self.cache, "--request-timeout=20s",
                *args]

    def kubectl(self, *args, ok=True, stdin=None):
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=60, input=stdin)
        if ok and r.returncode != 0:
            self.fail(f"kubectl {' '.join(args)}: exit {r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}\n"
                      f"server log:\n{self.server.logtext()}")
        return r

    def file(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def getj(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ensure_manifest(self):
        status, _, _ = self.server.request("GET", "/api/v1/namespaces/prod")
        if status == 404:
            self.kubectl("create", "-f", self.file("all.yaml", MANIFEST))

    def test_create_and_get_json_yaml(self):
        r = self.kubectl("create", "-f", self.file("all.yaml", MANIFEST))
        for line in ("namespace/prod created", "pod/web created", "networkpolicy.networking.k8s.io/web-in created",
                     "adminnetworkpolicy.policy.networking.k8s.io/anp-prod created",
                     "baselineadminnetworkpolicy.policy.networking.k8s.io/default created",
                     "clusternetworkpolicy.policy.networking.k8s.io/cnp-admin created", "widget.example.com/w1 created"):
            self.assertIn(line, r.stdout)
        ns = self.getj("namespace", "prod")
        self.assertEqual(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "prod")
        self.assertEqual(ns["status"]["phase"], "Active")
        p = self.getj("pod", "web", "-n", "prod")
        self.assertEqual(p["spec"]["containers"][0]["ports"][0], {"containerPort": 8080, "protocol": "TCP"})
        self.assertEqual(p["status"]["podIP"], "10.244.1.10")
        for f in ("uid", "creationTimestamp", "resourceVersion"):
            self.assertTrue(p["metadata"][f])
        self.assertNotIn("managedFields", p["metadata"])  # kubectl hides them; the server keeps them
        np = self.getj("networkpolicy", "web-in", "-n", "prod")
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress", "Egress"])
        self.assertEqual(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP")
        self.assertEqual(np["metadata"]["generation"], 1)
        y = self.kubectl("get", "anp", "anp-prod", "-o", "yaml").stdout
        self.assertIn("kind: AdminNetworkPolicy", y)
        self.assertIn("priority: 10", y)
        self.assertEqual(self.getj("banp", "default")["kind"], "BaselineAdminNetworkPolicy")
        self.assertEqual(self.getj("cnp", "cnp-admin")["spec"]["tier"], "Admin")
        self.assertEqual(self.getj("widgets", "w1", "-n", "prod")["spec"], {"size": 3})
        # Short names and the table columns of `kubectl get`.
        t = self.kubectl("get", "netpol", "-n", "prod").stdout
        self.assertIn("POD-SELECTOR", t)
        self.assertIn("app=web", t)
        t = self.kubectl("get", "no").stdout
        self.assertRegex(t, r"node-a\s+Ready\s+worker")
        t = self.kubectl("get", "po", "-n", "prod", "-o", "wide").stdout
        self.assertRegex(t, r"web\s+0/1\s+Running\s+0\s+\S+\s+10\.244\.1\.10\s+node-a")
        # Creating again: AlreadyExists, as a Status kubectl prints.
        r = self.kubectl("create", "-f", self.file("again.yaml", MANIFEST), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('namespaces "prod" already exists', r.stderr)
        # A namespaced object in a namespace that does not exist: NotFound for the namespace.
        r = self.kubectl("create", "-f", self.file("orphan.yaml", MANIFEST.split("---\n")[2].replace("prod", "nowhere")),
                         ok=False)
        self.assertIn('namespaces "nowhere" not found', r.stderr)

    def test_create_namespace_typed_client(self):
        # `kubectl create namespace` sends protobuf, unlike `create -f`.
        self.assertIn("namespace/typed created", self.kubectl("create", "namespace", "typed").stdout)
        self.assertEqual(self.getj("ns", "typed")["metadata"]["labels"], {"kubernetes.io/metadata.name": "typed"})

    def test_apply_new_and_changed_labels(self):
        base = MANIFEST
        r = self.kubectl("apply", "-f", self.file("a.yaml", base))
        self.assertIn("pod/web created", r.stdout)
        self.assertIn("adminnetworkpolicy.policy.networking.k8s.io/anp-prod created", r.stdout)
        r = self.kubectl("apply", "-f", self.file("a.yaml", base))
        self.assertIn("pod/web unchanged", r.stdout)
        self.assertIn("namespace/prod unchanged", r.stdout)
        rv = self.getj("pod", "web", "-n", "prod")["metadata"]["resourceVersion"]
        changed = base.replace("{app: web, tier: front}", "{app: web, tier: back, v: '2'}").replace(
            "{matchLabels: {env: prod}}", "{matchLabels: {env: other}}")
        r = self.kubectl("apply", "-f", self.file("b.yaml", changed))
        self.assertIn("pod/web configured", r.stdout)
        self.assertIn("adminnetworkpolicy.policy.networking.k8s.io/anp-prod configured", r.stdout)
        p = self.getj("pod", "web", "-n", "prod")
        self.assertEqual(p["metadata"]["labels"], {"app": "web", "tier": "back", "v": "2"})
        self.assertGreater(int(p["metadata"]["resourceVersion"]), int(rv))
        self.assertEqual(len(p["spec"]["containers"]), 1)  # strategic merge kept the list
        anp = self.getj("anp", "anp-prod")
        self.assertEqual(anp["spec"]["subject"]["namespaces"]["matchLabels"], {"env": "other"})
        self.assertEqual(anp["metadata"]["generation"], 2)

    def test_apply_server_side(self):
        doc = ("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
               "metadata: {name: ssa, labels: {a: b}}\nspec: {tier: Baseline, priority: 1, subject: {namespaces: {}}}\n")
        r = self.kubectl("apply", "--server-side", "-f", self.file("ssa.yaml", doc))
        self.assertIn("clusternetworkpolicy.policy.networking.k8s.io/ssa serverside-applied", r.stdout)
        r = self.kubectl("apply", "--server-side", "-f",
                         self.file("ssa2.yaml", doc.replace("{a: b}", "{a: c}").replace("priority: 1", "priority: 2")))
        self.assertIn("serverside-applied", r.stdout)
        o = json.loads(self.kubectl("get", "cnp", "ssa", "-o", "json", "--show-managed-fields").stdout)
        self.assertEqual(o["metadata"]["labels"], {"a": "c"})
        self.assertEqual(o["spec"]["priority"], 2)
        mf = o["metadata"]["managedFields"]
        self.assertTrue(any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in mf), mf)
        # Server-side apply of a core kind merges keyed lists.
        self.kubectl("create", "namespace", "ssa-ns")
        podyaml = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ssa-ns}\n"
                   "spec: {containers: [{name: a, image: one}, {name: b, image: two}]}\n")
        self.kubectl("apply", "--server-side", "-f", self.file("p.yaml", podyaml))
        self.kubectl("apply", "--server-side", "-f", self.file("p2.yaml", podyaml.replace("image: two", "image: three")))
        cs = self.getj("pod", "p", "-n", "ssa-ns")["spec"]["containers"]
        self.assertEqual([(c["name"], c["image"]) for c in cs], [("a", "one"), ("b", "three")])

    def test_label_and_selectors(self):
        self.ensure_manifest()
        self.assertIn("pod/db labeled", self.kubectl("label", "pod", "db", "-n", "prod", "tier=back").stdout)
        names = lambda *sel: sorted(self.kubectl("get", "pods", "-n", "prod", "-o", "name", *sel).stdout.split())
        self.assertEqual(names("-l", "app=web"), ["pod/web"])
        self.assertEqual(names("-l", "tier in (front,back)"), ["pod/db", "pod/web"])
        self.assertEqual(names("-l", "tier notin (front)"), ["pod/db"])
        self.assertEqual(names("-l", "app!=web"), ["pod/db"])
        self.assertEqual(names("-l", "!tier"), [])
        self.assertEqual(names("-l", "app,tier=back"), ["pod/db"])
        self.assertEqual(names("--field-selector", "spec.nodeName=node-a"), ["pod/web"])
        self.assertEqual(names("--field-selector", "status.phase!=Running"), ["pod/db"])
        self.kubectl("label", "pod", "db", "-n", "prod", "tier-")
        self.assertEqual(names("-l", "tier"), ["pod/web"])
        self.assertIn("env=prod", self.kubectl("get", "ns", "prod", "--show-labels").stdout)

    def test_get_watch(self):
        self.ensure_manifest()
        proc = subprocess.Popen(self.argv("get", "networkpolicies", "-n", "prod", "-w"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = queue.Queue()
            threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()

            def wait_for(pred, what):
                deadline = time.time() + 20
                while time.time() < deadline:
                    try:
                        l = lines.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if pred(l):
                        return l
                self.fail(f"kubectl get -w printed no {what}")

            wait_for(lambda l: l.startswith("web-in"), "initial row")
            self.server.wait_watches(1, "networkpolicies.networking.k8s.io")
            doc = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: watched, namespace: prod}\n"
                   "spec: {podSelector: {matchLabels: {app: db}}}\n")
            self.kubectl("create", "-f", self.file("np.yaml", doc))
            line = wait_for(lambda l: l.startswith("watched"), "event line")
            self.assertIn("app=db", line)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def test_delete(self):
        self.kubectl("create", "namespace", "del-ns")
        doc = ("apiVersion: v1\nkind: Pod\nmetadata: {name: gone, namespace: del-ns}\n"
               "spec: {containers: [{name: c, image: x}]}\n")
        self.kubectl("create", "-f", self.file("p.yaml", doc))
        self.assertIn('pod "gone" deleted', self.kubectl("delete", "pod", "gone", "-n", "del-ns").stdout)
        r = self.kubectl("get", "pod", "gone", "-n", "del-ns", ok=False)
        self.assertIn('pods "gone" not found', r.stderr)
        self.kubectl("create", "-f", self.file("p.yaml", doc))
        self.kubectl("delete", "-f", self.file("p.yaml", doc))
        self.assertIn('namespace "del-ns" deleted', self.kubectl("delete", "ns", "del-ns").stdout)
        self.assertEqual(self.kubectl("get", "ns", "del-ns", ok=False).returncode, 1)

    def test_api_resources(self):
        out = self.kubectl("api-resources").stdout
        for row in (r"networkpolicies\s+netpol\s+networking.k8s.io/v1\s+true\s+NetworkPolicy",
                    r"adminnetworkpolicies\s+anp\s+policy.networking.k8s.io/v1alpha1\s+false\s+AdminNetworkPolicy",
                    r"baselineadminnetworkpolicies\s+banp", r"clusternetworkpolicies\s+cnp\s+policy.networking.k8s.io/v1alpha2",
                    r"pods\s+po\s+v1\s+true\s+Pod", r"nodes\s+no\s+v1\s+false", r"namespaces\s+ns\s+v1\s+false",
                    r"widgets\s+example.com/v1\s+true\s+Widget"):
            self.assertRegex(out, row)


class HttpsTest(unittest.TestCase):
    """Protocol details and faults, through HTTPS with the generated CA."""

    def setUp(self):
        self.server = LabServer("--bookmark-interval", "1", "--history", "1000")
        self.addCleanup(self.server.close)
        self.server.json("POST", "/api/v1/namespaces", {"metadata": {"name": "prod"}}, expect=201)

    def create_pod(self, name, **kw):
        return self.server.json("POST", "/api/v1/namespaces/prod/pods", pod(name, **kw), expect=201)

    def stream(self, path, **kw):
        s = RawStream(self.server, path, **kw)
        self.addCleanup(s.close)
        return s

    def test_credentials_and_kubeconfig(self):
        with open(self.server.kubeconfig) as f:
            kc = f.read()
        self.assertIn(f"server: {self.server.url}", kc)
        self.assertIn("certificate-authority-data:", kc)
        self.assertIn(f"token: {self.server.token}", kc)
        self.assertIn("current-context: knp-lab", kc)
        self.assertEqual(os.stat(self.server.kubeconfig).st_mode & 0o077, 0)

    def test_unauthorized(self):
        for tok in ("", "wrong"):
            status, _, body = self.server.request("GET", "/api/v1/pods", token=tok)
            self.assertEqual(status, 401)
            st = json.loads(body)
            self.assertEqual((st["kind"], st["reason"], st["code"]), ("Status", "Unauthorized", 401))
        self.assertEqual(self.server.request("GET", "/livez", token="")[0], 200)
        self.assertEqual(self.server.request("GET", "/readyz", token="")[0], 200)
        self.assertEqual(self.server.request("GET", "/readyz", token="wrong")[0], 401)

    def test_discovery_and_openapi(self):
        v = self.server.json("GET", "/version")
        self.assertEqual(v["major"], "1")
        api = self.server.json("GET", "/api")
        self.assertEqual(api["versions"], ["v1"])
        groups = {g["name"]: g for g in self.server.json("GET", "/apis")["groups"]}
        self.assertEqual(groups["policy.networking.k8s.io"]["preferredVersion"]["version"], "v1alpha2")
        rl = self.server.json("GET", "/api/v1")
        pods = next(r for r in rl["resources"] if r["name"] == "pods")
        self.assertEqual((pods["kind"], pods["namespaced"], pods["shortNames"]), ("Pod", True, ["po"]))
        self.assertIn("watch", pods["verbs"])
        agg_accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        status, h, body = self.server.request("GET", "/apis", accept=agg_accept)
        self.assertEqual(h["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        agg = json.loads(body)
        anp = [r for g in agg["items"] for ver in g["versions"] for r in ver["resources"]
               if r["resource"] == "adminnetworkpolicies"][0]
        self.assertEqual((anp["scope"], anp["shortNames"]), ("Cluster", ["anp"]))
        idx = self.server.json("GET", "/openapi/v3")["paths"]
        self.assertIn("apis/networking.k8s.io/v1", idx)
        doc = self.server.json("GET", idx["apis/networking.k8s.io/v1"]["serverRelativeURL"])
        patch = doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"]["patch"]
        self.assertEqual(patch["x-kubernetes-group-version-kind"]["kind"], "NetworkPolicy")
        self.assertIn("fieldValidation", [p["name"] for p in patch["parameters"]])
        self.assertNotIn("application/strategic-merge-patch+json", patch["requestBody"]["content"])

    def test_object_metadata_and_errors(self):
        p = self.create_pod("a", ports=[{"containerPort": 80}])
        self.assertEqual(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP")
        rv = int(p["metadata"]["resourceVersion"])
        g = self.server.json("POST", "/api/v1/namespaces/prod/pods",
                             {"metadata": {"generateName": "gen-"}, "spec": {"containers": []}}, expect=201)
        self.assertRegex(g["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        self.assertEqual(int(g["metadata"]["resourceVersion"]), rv + 1)  # one RV sequence for all kinds
        e = self.server.json("POST", "/api/v1/namespaces/prod/pods", pod("a"), expect=409)
        self.assertEqual((e["reason"], e["code"]), ("AlreadyExists", 409))
        e = self.server.json("POST", "/api/v1/namespaces/nope/pods", pod("a"), expect=404)
        self.assertEqual(e["details"], {"name": "nope", "kind": "namespaces"})
        e = self.server.json("POST", "/api/v1/namespaces/prod/pods", pod("Bad_Name"), expect=422)
        self.assertEqual(e["reason"], "Invalid")
        e = self.server.json("GET", "/api/v1/namespaces/prod/pods/none", expect=404)
        self.assertEqual(e["message"], 'pods "none" not found')
        # Optimistic concurrency.
        stale = dict(p)
        self.server.json("PATCH", "/api/v1/namespaces/prod/pods/a", {"metadata": {"labels": {"x": "1"}}},
                         ctype="application/merge-patch+json")
        e = self.server.json("PUT", "/api/v1/namespaces/prod/pods/a", stale, expect=409)
        self.assertEqual(e["reason"], "Conflict")
        cur = self.server.json("GET", "/api/v1/namespaces/prod/pods/a")
        cur["metadata"]["labels"]["y"] = "2"
        upd = self.server.json("PUT", "/api/v1/namespaces/prod/pods/a", cur)
        self.assertEqual(upd["metadata"]["labels"], {"x": "1", "y": "2"})
        # NetworkPolicy generation moves with the spec only.
        np = {"metadata": {"name": "n"}, "spec": {"podSelector": {}}}
        np = self.server.json("POST", "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies", np, expect=201)
        self.assertEqual(np["spec"]["policyTypes"], ["Ingress"])
        path = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/n"
        np = self.server.json("PATCH", path, {"metadata": {"labels": {"a": "b"}}}, ctype="application/merge-patch+json")
        self.assertEqual(np["metadata"]["generation"], 1)
        np = self.server.json("PATCH", path, [{"op": "add", "path": "/spec/egress", "value": [{}]}],
                              ctype="application/json-patch+json")
        self.assertEqual(np["metadata"]["generation"], 2)
        d = self.server.json("DELETE", path)
        self.assertEqual(d["metadata"]["name"], "n")
        self.assertGreater(int(d["metadata"]["resourceVersion"]), int(np["metadata"]["resourceVersion"]))
        self.assertEqual(self.server.request("PATCH", path, "{}", ctype="text/plain")[0], 415)

    def test_strategic_merge_and_apply(self):
        self.create_pod("s", ports=[{"containerPort": 80}])
        path = "/api/v1/namespaces/prod/pods/s"
        smp = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
                        "containers": [{"name": "d", "image": "new"}]}}
        o = self.server.json("PATCH", path, smp, ctype="application/strategic-merge-patch+json")
        self.assertEqual([c["name"] for c in o["spec"]["containers"]], ["c", "d"])
        self.assertNotIn("$setElementOrder/containers", o["spec"])
        applied = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: s\n  labels: {applied: 'yes'}\n"
        self.assertEqual(self.server.request("PATCH", path, applied, ctype="application/apply-patch+yaml")[0], 400)
        o = self.server.json("PATCH", path + "?fieldManager=test", applied, ctype="application/apply-patch+yaml")
        self.assertEqual(o["metadata"]["labels"], {"applied": "yes"})
        o = self.server.json("PATCH", "/api/v1/namespaces/prod/pods/new?fieldManager=test",
                             applied.replace("name: s", "name: new"), ctype="application/apply-patch+yaml", expect=201)
        self.assertEqual(o["metadata"]["managedFields"][0]["operation"], "Apply")

    def test_pagination(self):
        for i in range(7):
            self.create_pod(f"p{i}")
        first = self.server.json("GET", "/api/v1/namespaces/prod/pods?limit=3")
        rv = first["metadata"]["resourceVersion"]
        self.assertEqual(first["metadata"]["remainingItemCount"], 4)
        names = [p["metadata"]["name"] for p in first["items"]]
        token = first["metadata"]["continue"]
        self.create_pod("p0a")  # after the first page: not in this list, which is one snapshot
        self.server.json("DELETE", "/api/v1/namespaces/prod/pods/p6")
        while token:
            page = self.server.json("GET", "/api/v1/namespaces/prod/pods?limit=3&continue=" + urllib.parse.quote(token))
            self.assertEqual(page["metadata"]["resourceVersion"], rv)
            names += [p["metadata"]["name"] for p in page["items"]]
            token = page["metadata"].get("continue")
        self.assertEqual(names, [f"p{i}" for i in range(7)])
        # Exact reads of an old version, and the limits of the history.
        old = self.server.json("GET", f"/api/v1/namespaces/prod/pods?resourceVersion={rv}&resourceVersionMatch=Exact")
        self.assertEqual(len(old["items"]), 7)
        now = self.server.json("GET", "/api/v1/namespaces/prod/pods?resourceVersion=0")
        self.assertEqual(len(now["items"]), 7)  # p0a in, p6 out
        e = self.server.json("GET", "/api/v1/pods?resourceVersion=999999&resourceVersionMatch=NotOlderThan", expect=504)
        self.assertEqual(e["reason"], "Timeout")
        self.server.json("GET", "/api/v1/pods?resourceVersionMatch=Exact", expect=400)
        self.server.fault(type="expireHistory")
        e = self.server.json("GET", f"/api/v1/pods?resourceVersion={rv}&resourceVersionMatch=Exact", expect=410)
        self.assertEqual((e["reason"], e["code"]), ("Expired", 410))
        self.server.json("GET", "/api/v1/namespaces/prod/pods?limit=3&continue=" + urllib.parse.quote(
            first["metadata"]["continue"]), expect=410)

    def test_watch_from_resource_version(self):
        rv = self.server.json("GET", "/api/v1/namespaces/prod/pods")["metadata"]["resourceVersion"]
        self.create_pod("w", labels={"app": "web"})
        self.server.json("PATCH", "/api/v1/namespaces/prod/pods/w", {"metadata": {"labels": {"app": "db"}}},
                         ctype="application/merge-patch+json")
        self.server.json("DELETE", "/api/v1/namespaces/prod/pods/w")
        s = self.stream(f"/api/v1/namespaces/prod/pods?watch=1&resourceVersion={rv}&timeoutSeconds=2")
        self.assertEqual(s.status, 200)
        evs = s.events_until(lambda e: e["type"] == "DELETED")
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED"])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))
        self.assertIsNone(s.event())  # timeoutSeconds ends the stream cleanly (no bookmarks asked)
        self.assertTrue(s.ended)
        # A label selector turns leaving the selection into DELETED.
        sel = self.stream(f"/api/v1/namespaces/prod/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb"
                          "&timeoutSeconds=2")
        self.assertEqual([e["type"] for e in sel.events_until(lambda e: e["type"] == "DELETED")], ["ADDED", "DELETED"])
        # No resourceVersion: the current state first, then changes.
        self.create_pod("x")
        live = self.stream("/api/v1/namespaces/prod/pods?watch=1&timeoutSeconds=5")
        self.assertEqual(live.event()["type"], "ADDED")
        self.server.wait_watches(1, "pods")
        self.server.json("DELETE", "/api/v1/namespaces/prod/pods/x")
        e = live.event()
        self.assertEqual((e["type"], e["object"]["metadata"]["name"]), ("DELETED", "x"))

    def test_bookmarks(self):
        s = self.stream("/api/v1/namespaces?watch=1&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=3")
        evs = s.events_until(lambda e: False)
        types = [e["type"] for e in evs]
        self.assertIn("BOOKMARK", types)
        bm = [e for e in evs if e["type"] == "BOOKMARK"][-1]
        self.assertEqual(bm["object"]["kind"], "Namespace")
        self.assertEqual(bm["object"]["metadata"]["resourceVersion"], self.server.status()["resourceVersion"])
        plain = self.stream("/api/v1/namespaces?watch=1&resourceVersion=1&timeoutSeconds=2")
        self.assertNotIn("BOOKMARK", [e["type"] for e in plain.events_until(lambda e: False)])
        # sendInitialEvents: the state, then a bookmark marking its end.
        wl = self.stream("/api/v1/namespaces?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                         "&allowWatchBookmarks=true&timeoutSeconds=2")
        evs = wl.events_until(lambda e: e["type"] == "BOOKMARK")
        self.assertEqual(evs[-1]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        self.assertEqual(len(evs) - 1, 5)  # default, kube-system, kube-public, kube-node-lease, prod

    def test_gone_after_history_expiry(self):
        rv = self.server.json("GET", "/api/v1/pods")["metadata"]["resourceVersion"]
        self.create_pod("g")
        self.server.fault(type="expireHistory")
        s = self.stream(f"/api/v1/pods?watch=1&resourceVersion={rv}")
        evs = s.events_until(lambda e: False)
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "ERROR")
        self.assertEqual((evs[0]["object"]["code"], evs[0]["object"]["reason"]), (410, "Expired"))
        self.assertTrue(s.ended)
        cur = self.server.status()["resourceVersion"]
        ok = self.stream(f"/api/v1/pods?watch=1&resourceVersion={cur}&timeoutSeconds=1")
        self.assertEqual(ok.events_until(lambda e: False), [])
        self.server.fault(type="expireHistory", goneAs="status")
        status, _, body = self.server.request("GET", f"/api/v1/pods?watch=1&resourceVersion={rv}")
        self.assertEqual((status, json.loads(body)["code"]), (410, 410))

    def test_token_rotation(self):
        old = self.server.token
        self.server.fault(type="rejectToken")
        self.assertEqual(self.server.request("GET", "/api/v1/pods", token=old)[0], 401)
        self.assertTrue(self.server.status()["tokenRejected"])  # the admin API still takes it
        new = self.server.admin("/lab/token", {"token": "rotated-token-1"})["token"]
        self.assertEqual(new, "rotated-token-1")
        self.assertEqual(self.server.token, new)  # DIR/token rewritten
        with open(self.server.kubeconfig) as f:
            self.assertIn("token: rotated-token-1", f.read())
        self.assertEqual(self.server.request("GET", "/api/v1/pods", token=new)[0], 200)
        self.assertEqual(self.server.request("GET", "/api/v1/pods", token=old)[0], 401)

    def test_too_many_requests_and_errors(self):
        self.server.fault(type="error", resource="pods", code=429, retryAfter=2, count=2, verbs=["list"])
        for _ in range(2):
            status, h, body = self.server.request("GET", "/api/v1/namespaces/prod/pods")
            self.assertEqual((status, h.get("retry-after")), (429, "2"))
            st = json.loads(body)
            self.assertEqual((st["reason"], st["details"]["retryAfterSeconds"]), ("TooManyRequests", 2))
        self.assertEqual(self.server.request("GET", "/api/v1/namespaces/prod/pods")[0], 200)
        self.server.fault(type="error", resource="networkpolicies.networking.k8s.io", code=500)
        self.assertEqual(self.server.request("GET", "/api/v1/namespaces/prod/pods")[0], 200)  # another kind
        status, _, body = self.server.request("GET", "/apis/networking.k8s.io/v1/networkpolicies")
        self.assertEqual((status, json.loads(body)["reason"]), (500, "InternalError"))
        self.assertEqual(self.server.request("GET", "/apis/networking.k8s.io/v1/networkpolicies")[0], 200)

    def test_hidden_resource(self):
        res = "adminnetworkpolicies.policy.networking.k8s.io"
        base = "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"
        w = self.stream(base + "?watch=1")
        self.server.wait_watches(1, res)
        self.server.fault(type="hide", resource=res)
        self.assertIsNone(w.event())  # its watches end, as when a CRD is deleted
        self.assertEqual(self.server.request("GET", base)[0], 404)
        self.assertEqual(self.server.request("GET", base + "?watch=1")[0], 404)
        names = [r["name"] for r in self.server.json("GET", "/apis/policy.networking.k8s.io/v1alpha1")["resources"]]
        self.assertNotIn("adminnetworkpolicies", names)
        self.assertIn("baselineadminnetworkpolicies", names)
        self.server.fault(type="reveal", resource=res)
        self.assertEqual(self.server.request("GET", base)[0], 200)
        # A whole group-version hidden: 404 for its discovery document too.
        self.server.fault(type="hide", resource="clusternetworkpolicies")
        self.assertEqual(self.server.request("GET", "/apis/policy.networking.k8s.io/v1alpha2")[0], 404)
        self.assertNotIn("apis/policy.networking.k8s.io/v1alpha2", self.server.json("GET", "/openapi/v3")["paths"])

    def test_stream_cut_mid_chunk(self):
        s = self.stream("/api/v1/namespaces/prod/pods?watch=1")
        self.server.wait_watches(1, "pods")
        self.assertEqual(self.server.fault(type="cut", resource="pods")["streams"], 1)
        with self.assertRaises(Cut) as cm:
            s.next_chunk()
        self.assertLess(cm.exception.got, cm.exception.announced)
        # With no stream open, the next watch is cut instead.
        self.server.fault(type="cut", resource="pods")
        self.create_pod("c1")
        armed = self.stream("/api/v1/namespaces/prod/pods?watch=1")
        with self.assertRaises(Cut):
            armed.next_chunk()
        self.assertEqual(self.server.status()["watches"], [])

    def test_stall_and_split_chunks(self):
        s = self.stream("/api/v1/namespaces/prod/pods?watch=1&timeoutSeconds=2&allowWatchBookmarks=true", timeout=4)
        self.server.wait_watches(1, "pods")
        self.server.fault(type="stall", resource="pods")
        self.create_pod("st")
        with self.assertRaises(socket.timeout):  # nothing at all, not even the end at timeoutSeconds
            s.next_chunk()
        self.server.fault(type="splitChunks")
        self.create_pod("sp")
        w = self.stream("/api/v1/namespaces/prod/pods?watch=1&timeoutSeconds=1")
        evs = w.events_until(lambda e: False)
        self.assertEqual(sorted(e["object"]["metadata"]["name"] for e in evs), ["sp", "st"])
        self.assertGreaterEqual(len([c for c in w.chunks if c]), 4)  # every event in two chunks
        self.assertFalse(any(c.endswith(b"\n") for c in w.chunks[0::2] if c))

    def test_table_and_load(self):
        objs = {"kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "loaded"}},
            dict(pod("l1", ns="loaded"), metadata={"name": "l1", "namespace": "loaded"})]}
        self.assertEqual(self.server.admin("/lab/load", objs)["loaded"], 2)
        t = self.server.json("GET", "/api/v1/namespaces/loaded/pods",
                             accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
        self.assertEqual(t["kind"], "Table")
        self.assertEqual([c["name"] for c in t["columnDefinitions"]][:3], ["Name", "Ready", "Status"])
        self.assertEqual(t["rows"][0]["cells"][0], "l1")
        self.assertEqual(t["rows"][0]["object"]["kind"], "PartialObjectMetadata")

    def test_body_limit(self):
        # Refused from the headers alone: the body is never buffered.
        s = self.server.connect()
        try:
            s.sendall((f"POST /api/v1/namespaces/prod/pods HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {self.server.token}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {4 * 1024 * 1024}\r\n\r\n").encode())
            head = s.recv(4096).decode()
            self.assertTrue(head.startswith("HTTP/1.1 413"), head)
            self.assertIn("RequestEntityTooLarge", head + s.recv(4096).decode())
        finally:
            s.close()

    def test_clean_shutdown(self):
        s = LabServer()
        try:
            w = RawStream(s, "/api/v1/pods?watch=1")
            s.wait_watches(1)
            t0 = time.time()
            s.proc.send_signal(signal.SIGTERM)
            self.assertEqual(s.proc.wait(timeout=5), 0)
            self.assertLess(time.time() - t0, 3)
            w.close()
        finally:
            s.close()


class WatcherLimitTest(unittest.TestCase):
    def test_max_watchers(self):
        s = LabServer("--max-watchers", "2")
        try:
            streams = [RawStream(s, "/api/v1/pods?watch=1") for _ in range(2)]
            s.wait_watches(2)
            status, h, _ = s.request("GET", "/api/v1/pods?watch=1")
            self.assertEqual((status, h.get("retry-after")), (429, "1"))
            for st in streams:
                st.close()
        finally:
            s.close()


if __name__ == "__main__":
    if not os.access(SERVER, os.X_OK):
        sys.exit(f"lab_apiserver_test.py: {SERVER} is not an executable (build it first)")
    print(f"server: {SERVER}\nkubectl: {KUBECTL or 'not found'}", flush=True)
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]])
