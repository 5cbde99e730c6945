#!/usr/bin/env python3
"""packaging/kubernetes: the DaemonSet manifests, checked without a cluster.

- yamllint (packaging/kubernetes/.yamllint);
- `kubectl apply --dry-run=client --validate=false`: every object maps to a served kind and has
  well-formed metadata — against a discovery-only stand-in API server this test serves on
  127.0.0.1 (the lab API server does not serve apps/v1, rbac or ConfigMaps; without a server's
  OpenAPI, kubectl does not check field types: the assertions below check the fields knpd
  depends on); `kubectl kustomize` builds the kustomization;
- what knpd needs: the ClusterRole grants exactly list and watch on pods, namespaces, nodes and
  every kind the shipped pipeline's plugins watch (`knpctl plugins` on the ConfigMap's
  pipeline.yaml); the DaemonSet runs on the host network with NET_ADMIN, on every node, with
  system-node-critical priority, probes /livez and /readyz on the metrics port, mounts the
  ConfigMap as a directory (so reloads see changes) and passes only flags knpd has.

Usage (meson runs it): packaging_test.py KNPD KNPCTL PLUGIN_DIR PACKAGING_DIR
Missing kubectl or yamllint: that part is skipped with the reason (under CI=true it fails).
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import yaml

KNPD, KNPCTL, PLUGINS, PACKAGING = (os.path.abspath(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (
    "build/host/knpd", "build/host/knpctl", "build/plugins", "packaging")
K8S = os.path.join(PACKAGING, "kubernetes")
CI = os.environ.get("CI") == "true"
FILES = sorted(os.path.join(K8S, f) for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml")

# What the stand-in API server advertises: the kinds the manifests use.
RESOURCES = {
    "/api/v1": [("namespaces", "Namespace", False), ("serviceaccounts", "ServiceAccount", True),
                ("configmaps", "ConfigMap", True)],
    "/apis/apps/v1": [("daemonsets", "DaemonSet", True)],
    "/apis/rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                           ("clusterrolebindings", "ClusterRoleBinding", False)],
}


class Discovery(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = []
            for p in RESOURCES:
                if p.startswith("/apis/"):
                    g, v = p.split("/")[2:4]
                    gv = {"groupVersion": f"{g}/{v}", "version": v}
                    groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path in RESOURCES:
            gv = "v1" if path == "/api/v1" else path[len("/apis/"):]
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": n, "singularName": "", "namespaced": ns, "kind": k,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for n, k, ns in RESOURCES[path]]})
        # Nothing exists: apply then only creates (dry run).
        return self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                "code": 404, "message": "not found"})


def documents():
    docs = []
    for f in FILES:
        with open(f) as fh:
            docs += [(f, d) for d in yaml.safe_load_all(fh) if d]
    return docs


def one(kind):
    found = [d for _, d in documents() if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def missing(tool):
    if shutil.which(tool):
        return False
    if CI:
        raise AssertionError(f"{tool} is not installed (tools/install-deps --test)")
    return True


class Manifests(unittest.TestCase):
    def test_yamllint(self):
        if missing("yamllint"):
            self.skipTest("yamllint is not installed (tools/install-deps --test)")
        r = subprocess.run(["yamllint", "-s", "-c", os.path.join(K8S, ".yamllint"), K8S], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_kubectl_client_dry_run(self):
        if missing("kubectl"):
            self.skipTest("kubectl is not installed (tools/install-deps --test)")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tmp = tempfile.mkdtemp(prefix="knp-packaging-")
        try:
            base = ["kubectl", "--server", f"http://127.0.0.1:{server.server_address[1]}", "--kubeconfig",
                    os.devnull, "--cache-dir", os.path.join(tmp, "cache")]
            r = subprocess.run(base + ["apply", "--dry-run=client", "--validate=false", "-o", "name"] +
                               [a for f in FILES for a in ("-f", f)],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sorted(r.stdout.split()), sorted([
                "namespace/knp-system", "serviceaccount/knpd", "clusterrole.rbac.authorization.k8s.io/knpd",
                "clusterrolebinding.rbac.authorization.k8s.io/knpd", "configmap/knpd-config",
                "daemonset.apps/knpd"]))
            r = subprocess.run(["kubectl", "kustomize", K8S], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len([d for d in yaml.safe_load_all(r.stdout) if d]), len(documents()))
        finally:
            server.shutdown()
            server.server_close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_cluster_role_is_exactly_what_knpd_watches(self):
        cm = one("ConfigMap")
        with tempfile.TemporaryDirectory() as tmp:
            pipe = os.path.join(tmp, "pipeline.yaml")
            with open(pipe, "w") as f:
                f.write(cm["data"]["pipeline.yaml"])
            r = subprocess.run([KNPCTL, "-o", "json", "plugins", "--pipeline", pipe, "--plugin-dir", PLUGINS],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        wanted = {("", "pods"), ("", "namespaces"), ("", "nodes")}  # the host's own pod index
        for inst in json.loads(r.stdout):
            for w in inst["watches"]:  # "group/version resource" or "version resource"
                gv, resource = w.split()[:2]
                wanted.add((gv.rsplit("/", 1)[0] if "/" in gv else "", resource))
        granted = set()
        for rule in one("ClusterRole")["rules"]:
            self.assertEqual(sorted(rule["verbs"]), ["list", "watch"], rule)
            self.assertNotIn("resourceNames", rule)
            for g in rule["apiGroups"]:
                for res in rule["resources"]:
                    granted.add((g, res))
        self.assertEqual(granted, wanted)

    def test_daemonset_runs_knpd_as_it_needs(self):
        ds = one("DaemonSet")
        ns = one("Namespace")["metadata"]["name"]
        sa = one("ServiceAccount")
        binding = one("ClusterRoleBinding")
        for _, d in documents():
            if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                self.assertEqual(d["metadata"]["namespace"], ns, d["kind"])
        self.assertEqual(binding["roleRef"]["name"], one("ClusterRole")["metadata"]["name"])
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                                "namespace": ns}])

        spec = ds["spec"]
        self.assertEqual(spec["updateStrategy"]["type"], "RollingUpdate")
        pod = spec["template"]["spec"]
        self.assertEqual(spec["selector"]["matchLabels"].items() - spec["template"]["metadata"]["labels"].items(),
                         set())
        self.assertEqual(pod["serviceAccountName"], sa["metadata"]["name"])
        self.assertIs(pod["hostNetwork"], True)
        self.assertEqual(pod["dnsPolicy"], "ClusterFirstWithHostNet")
        self.assertEqual(pod["priorityClassName"], "system-node-critical")
        self.assertIn({"operator": "Exists"}, pod["tolerations"])  # every node, whatever its taints
        # SIGTERM: drain (2 s) and exit (5 s) fit in the grace period.
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], 6)
        (c,) = pod["containers"]
        self.assertIn("NET_ADMIN", c["securityContext"]["capabilities"]["add"])

        # Every flag is one knpd has; the probes use the metrics port.
        help_text = subprocess.run([KNPD, "--help"], capture_output=True, text=True).stdout
        flags = {}
        for a in c["args"]:
            name, _, value = a.partition("=")
            self.assertIn(name, help_text, a)
            flags[name] = value
        port = int(flags["--metrics-bind-address"].rsplit(":", 1)[1])
        self.assertEqual((c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]),
                         ("/livez", port))
        self.assertEqual((c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]),
                         ("/readyz", port))
        self.assertEqual(flags["--hostname-override"], "$(NODE_NAME)")
        self.assertIn({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}, c["env"])

        # pipeline.yaml comes from the ConfigMap, mounted as a directory (a subPath mount would
        # never see an update, and knpd reloads on updates).
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        pipe_dir, pipe_name = os.path.split(flags["--pipeline"])
        self.assertNotIn("subPath", mounts[pipe_dir])
        self.assertEqual(volumes[mounts[pipe_dir]["name"]]["configMap"]["name"], one("ConfigMap")["metadata"]["name"])
        self.assertIn(pipe_name, one("ConfigMap")["data"])
        # The control socket's directory (knpd's default /run/knp/knpd.sock) is writable.
        self.assertIn("/run/knp", mounts)
        self.assertFalse(mounts["/run/knp"].get("readOnly", False))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
