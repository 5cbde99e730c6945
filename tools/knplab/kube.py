"""A small Kubernetes API client over HTTPS (stdlib only), and kubectl with the lab's kubeconfig."""
import base64
import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

from .sys_ns import LabError


class Api:
    """Requests with the lab's CA and bearer token (re-read each time: the lab may rotate it).
    Thread-safe: nothing is shared between requests."""

    def __init__(self, server, ca_file, token_file):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.token_file = token_file

    def _open(self, method, path, body=None, ctype="application/json", timeout=30):
        with open(self.token_file) as f:
            token = f.read().strip()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token, "Accept": "application/json",
                                              "Content-Type": ctype})
        return urllib.request.urlopen(req, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, ctype="application/json", timeout=30):
        try:
            with self._open(method, path, body, ctype, timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise LabError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from None

    def get(self, path):
        return self.request("GET", path)

    def watch(self, path, timeout=300):
        """Yields watch events (dicts) until the stream ends; raises on errors."""
        with self._open("GET", path, timeout=timeout) as r:
            while True:
                line = r.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)


def write_kubeconfig(path, server, ca_file, token):
    """A kubeconfig for `server` (JSON is YAML; kubectl reads it)."""
    with open(ca_file, "rb") as f:
        ca = base64.b64encode(f.read()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "knp-lab",
           "clusters": [{"name": "knp-lab", "cluster": {"server": server, "certificate-authority-data": ca}}],
           "users": [{"name": "knp-lab", "user": {"token": token}}],
           "contexts": [{"name": "knp-lab", "context": {"cluster": "knp-lab", "user": "knp-lab",
                                                         "namespace": "default"}}]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def kubectl_binary():
    k = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not k:
        raise LabError("kubectl not found (tools/install-deps --test installs it)")
    return k


def kubectl(kubeconfig, cache_dir, *args, stdin=None, check=True, timeout=60):
    r = subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "--cache-dir", cache_dir, *args],
                       input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout
