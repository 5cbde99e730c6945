#!/usr/bin/env python3
"""AdminNetworkPolicy / BaselineAdminNetworkPolicy / ClusterNetworkPolicy truth tables, run end to
end through `knpctl simulate`.

The case format, the directives and the runner are tests/networkpolicy/run_cases.py's, imported
from there (its docstring lists the directives); only the cluster differs. This one is the
network-policy-api conformance fixture (policy-semantics.md §4.1, §4.4 "house" model):

  namespaces gryffindor, slytherin, hufflepuff, ravenclaw (labelled conformance-house=<house>),
  two pods each, labelled conformance-house=<house> and app=<name>:
    gryffindor/harry-0, -1   slytherin/draco-0, -1   hufflepuff/cedric-0, -1   ravenclaw/luna-0, -1
  pod -0 on node-1, pod -1 on node-2; each serves TCP 80 (named web) and 8080, UDP 53 (named
  dns) and 5353, SCTP 9003 and 9005;
  namespace forbidden-forrest with the hostNetwork pods centaur-0 (node-1) and centaur-1
  (node-2) on their nodes' addresses;
  nodes node-1 and node-2 labelled kubernetes.io/os=linux and kubernetes.io/hostname=<name>.

Cluster-scoped objects have no namespace: delete them as `#! delete KIND default/NAME`.

Usage: run_cases.py --knpctl KNPCTL --plugin-dir DIR [--pipeline FILE] CASE.yaml...
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "networkpolicy"))
import run_cases as base  # noqa: E402  (tests/networkpolicy/run_cases.py)

HOUSES = {"gryffindor": "harry", "slytherin": "draco", "hufflepuff": "cedric", "ravenclaw": "luna"}
NODE_LABELS = {node: {"kubernetes.io/os": "linux", "kubernetes.io/hostname": node} for node in ("node-1", "node-2")}
HOUSE_PORTS = [("web", 80, "TCP"), ("", 8080, "TCP"), ("dns", 53, "UDP"), ("", 5353, "UDP"),
               ("", 9003, "SCTP"), ("", 9005, "SCTP")]
CENTAUR_PORTS = [("", 34345, "TCP"), ("", 34346, "UDP"), ("", 34347, "SCTP")]


def house_cluster():
    namespaces = {ns: {"conformance-house": ns} for ns in list(HOUSES) + ["forbidden-forrest"]}
    pods = {}
    for hi, (ns, who) in enumerate(HOUSES.items(), 1):
        for i in (0, 1):
            pods[f"{ns}/{who}-{i}"] = {
                "node": f"node-{i + 1}",
                "ips": [f"10.244.{i + 1}.{hi}0", f"fd00:10:244:{i + 1}::{hi}0"],
                "labels": {"conformance-house": ns, "app": who},
                "phase": "Running",
                "hostNetwork": False,
                "ports": list(HOUSE_PORTS),
            }
    for i in (0, 1):
        node = f"node-{i + 1}"
        pods[f"forbidden-forrest/centaur-{i}"] = {
            "node": node, "ips": list(base.NODES[node]), "labels": {"conformance-house": "forbidden-forrest"},
            "phase": "Running", "hostNetwork": True, "ports": list(CENTAUR_PORTS)}
    return namespaces, pods


def state_yaml(state):
    """The base runner's state, with the nodes labelled (node peers select them by label)."""
    docs = []
    for doc in base_state_yaml(state).split("\n---\n"):
        try:
            obj = json.loads(doc)
        except ValueError:
            docs.append(doc)  # a policy as the case wrote it
            continue
        if obj.get("kind") == "Node":
            obj["metadata"]["labels"] = NODE_LABELS[obj["metadata"]["name"]]
        docs.append(json.dumps(obj))
    return "\n---\n".join(docs).rstrip("\n") + "\n"


base_state_yaml = base.state_yaml
base.NODES = {"node-1": ("192.168.1.1", "fd00:192:168:1::1"), "node-2": ("192.168.1.2", "fd00:192:168:1::2")}
base.DEFAULT_PORTS = HOUSE_PORTS
base.base_cluster = house_cluster
base.state_yaml = state_yaml

if __name__ == "__main__":
    if not any(a == "--pipeline" or a.startswith("--pipeline=") for a in sys.argv[1:]):
        sys.argv[1:1] = ["--pipeline", os.path.join(HERE, "pipeline.yaml")]
    sys.exit(base.main())
