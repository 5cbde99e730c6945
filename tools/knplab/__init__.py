"""knplab: a local multi-node Kubernetes lab made of network namespaces (tools/lab).

Modules:
  sys_ns   network namespaces, `ip` commands, setns for one thread, detached processes
  topology the lab's names, addresses and its state dir (/run/knplab/LAB)
  cluster  up / down / status: the hub (segment + API server), nodes, agents, knpd
  kube     a small API client (urllib) and kubectl with the lab's kubeconfig
  agent    the lab agent (the kubelet's part): pods bound to a node become namespaces + servers
  server   the process serving a pod's declared TCP/UDP ports
  forward  127.0.0.1 in the machine's namespace -> the API server in the hub (for a person's kubectl)
  probe    connections from inside a namespace; the reachability matrix
  suite    the truth-table cases (tests/*/cases) against the lab, with kubectl
"""
