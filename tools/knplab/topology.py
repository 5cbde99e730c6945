"""The lab's names and addresses, and its state dir.

Addresses follow the truth-table model of tests/networkpolicy/run_cases.py (so its case files
run unchanged): node-N is 192.168.1.N / fd00:192:168:1::N on the shared segment and routes its
pods' CIDR 10.244.N.0/24 / fd00:10:244:N::/64; the hub (the segment's bridge, the API server and
"the outside world") is 192.168.1.254 / fd00:192:168:1::fe. Every lab has its own namespaces,
so two labs reuse the same addresses without ever meeting.
"""
import json
import os
import re

ROOT = "/run/knplab"
NETNS_PREFIX = "knplab-"
HUB4, HUB6 = "192.168.1.254", "fd00:192:168:1::fe"
API_PORT = 6443
GW6 = "fe80::1"  # the node side of every pod veth (IPv6 gateway)
IPS_ANNOTATION = "lab.knp.dev/ips"  # "A[,B]": the pod's addresses (else the agent picks)
NAME_RE = re.compile(r"[a-z0-9]{1,12}")


def node_name(i):
    return f"node-{i}"


def node_index(name):
    m = re.fullmatch(r"node-(\d+)", name)
    return int(m.group(1)) if m else None


def node_ips(i):
    return f"192.168.1.{i}", f"fd00:192:168:1::{i}"


def pod_cidrs(i):
    return f"10.244.{i}.0/24", f"fd00:10:244:{i}::/64"


class Lab:
    """One lab's names and paths. Every namespace of lab L starts with knplab-L- and L has
    no dash, so a prefix match never reaches another lab's."""

    def __init__(self, name):
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"lab name {name!r}: 1-12 characters, a-z and 0-9")
        self.name = name
        self.prefix = f"{NETNS_PREFIX}{name}-"
        self.dir = os.path.join(ROOT, name)
        self.hub = self.prefix + "hub"

    def node_ns(self, node):
        return f"{self.prefix}n-{node}"

    def pod_ns(self, namespace, pod):
        # A namespace name has no '.', so NS.POD names one pod (NS-POD would not: a-b/c, a/b-c).
        return f"{self.prefix}p-{namespace}.{pod}"

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def kubeconfig(self):
        """For people and tools in the machine's own namespace (through the forwarder)."""
        return self.path("kubeconfig")

    @property
    def node_kubeconfig(self):
        """For knpd and the agents in the node namespaces (the API server's segment address)."""
        return self.path("apiserver", "kubeconfig")

    def socket(self, node):
        return self.path(node, "knpd.sock")

    def info(self):
        try:
            with open(self.path("lab.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, info):
        tmp = self.path("lab.json.tmp")
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, self.path("lab.json"))

    def nodes(self):
        info = self.info() or {}
        return [node_name(i) for i in range(1, info.get("nodes", 0) + 1)]
