#!/usr/bin/env python3
"""knpd's operational surface end to end, in network namespaces this test creates and removes.

The topology is the dataplane end-to-end test's (tests/dataplane/e2e_test.py, imported as it is:
a `node` namespace routing between a `client` and a `server` namespace, knpd in the node
namespace). knpd serves /metrics on 127.0.0.1 inside the node namespace and its control socket
in the test's temporary directory; the test drives traffic, scrapes (ip netns exec + urllib),
lints the scrape with promtool, and asks knpctl explain/status/plugins over the socket.

Usage (meson runs it):
  ops_e2e_test.py KNPD PLUGIN_DIR TEST_PLUGIN_DIR OPS_PLUGIN_DIR KNPCTL DATAPLANE_E2E_TEST
Not root: exits 77 (skipped) with the reason; under CI=true it fails instead.
"""
import importlib.util
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import unittest

OPS_PLUGINS = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else "build/tests/ops"
KNPCTL = os.path.abspath(sys.argv[5]) if len(sys.argv) > 5 else "build/host/knpctl"
DATAPLANE_E2E = sys.argv[6] if len(sys.argv) > 6 else "tests/dataplane/e2e_test.py"
CI = os.environ.get("CI") == "true"

# The dataplane test reads KNPD, PLUGIN_DIR and TEST_PLUGIN_DIR from the same argv positions.
_spec = importlib.util.spec_from_file_location("knp_dataplane_e2e", DATAPLANE_E2E)
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
run = e2e.run

# The dataplane test's `block` (denies TCP/8081 into the pods from the client's networks), then
# `metered` (ingress only): queues every new connection, says NEXT, counts in a metric of its own.
PIPELINE = e2e.BLOCK_8081 + "  - name: metered\n    library: metered\n"

FETCH = textwrap.dedent("""\
    import json, sys, urllib.error, urllib.request
    try:
        r = urllib.request.urlopen(sys.argv[1], timeout=10)
        print(json.dumps([r.status, r.read().decode()]))
    except urllib.error.HTTPError as e:
        print(json.dumps([e.code, e.read().decode()]))
    """)

# promtool's findings on upstream's names, which stay as they are for existing dashboards.
UPSTREAM_LINT = {
    'kube_network_policies_nfqueue_queue_total non-counter metrics should not have "_total" suffix',
    'kube_network_policies_packet_process_duration_microseconds use base unit "seconds" instead of "microseconds"',
    'kube_network_policies_packet_count counter metrics should have "_total" suffix',
    'kube_network_policies_packet_count non-histogram and non-summary metrics should not have "_count" suffix',
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not an exposition line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


class OpsTopology(e2e.Topology):
    """The dataplane topology, with knpd's metrics endpoint and control socket."""

    def start(self, pipeline=PIPELINE, extra=()):
        self.port = int(run("ip", "netns", "exec", self.node, sys.executable, "-c",
                            "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
                            "print(s.getsockname()[1])").stdout)
        self.socket = os.path.join(self.tmp, "run", "knpd.sock")
        self.pipeline = self.write("ops-pipeline.yaml", pipeline)
        self.start_knpd(pipeline, extra=("--plugin-dir", OPS_PLUGINS, "--metrics-bind-address",
                                         f"127.0.0.1:{self.port}", "--socket", self.socket, *extra))

    def http(self, path):
        r = run("ip", "netns", "exec", self.node, sys.executable, "-c", FETCH, f"http://127.0.0.1:{self.port}{path}")
        return json.loads(r.stdout)

    def metrics(self):
        status, body = self.http("/metrics")
        assert status == 200, (status, body)
        return body

    def knpctl(self, *args, check=True):
        return run(KNPCTL, *args, check=check)

    def knpctl_json(self, *args):
        return json.loads(self.knpctl(*args, "--socket", self.socket, "-o", "json").stdout)

    def simulate(self, probe):
        r = self.knpctl("simulate", "--state", self.state, "--pipeline", self.pipeline, "--plugin-dir", e2e.PLUGINS,
                        "--plugin-dir", e2e.TEST_PLUGINS, "--plugin-dir", OPS_PLUGINS, "--probe", probe)
        return json.loads(r.stdout)


def promtool_findings(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    return [x for x in lines if x not in UPSTREAM_LINT]


def without_live_fields(explained):
    """An explain answer reduced to what simulate prints."""
    out = dict(explained)
    del out["node"]
    for d in ("egress", "ingress"):
        out[d] = {k: v for k, v in out[d].items() if k != "enforced_here"}
    return out


class Operating(unittest.TestCase):
    def test_metrics_health_explain_status(self):
        with OpsTopology() as t:
            t.start()
            mode = os.stat(t.socket).st_mode
            self.assertTrue(stat.S_ISSOCK(mode))
            self.assertEqual(stat.S_IMODE(mode), 0o600)

            status, body = t.http("/readyz?verbose")
            self.assertEqual(status, 200, body)
            for check in ("[+]cluster-state ok", "[+]plugin-snapshots ok", "[+]dataplane ok"):
                self.assertIn(check, body)
            self.assertTrue(body.rstrip().endswith("readyz check passed"), body)
            self.assertEqual(t.http("/healthz"), [200, "ok\n"])
            status, body = t.http("/livez?verbose")
            self.assertEqual(status, 200)
            self.assertIn("[+]control-loop ok", body)
            self.assertEqual(t.http("/nope")[0], 404)

            before = parse_metrics(t.metrics())
            for server, family in ((e2e.SERVER4, "IPv4"), (e2e.SERVER6, "IPv6")):
                self.assertEqual([x[0] for x in t.connect(server, 8080, count=3)], ["ok"] * 3)
                self.assertEqual(t.connect(server, 8081, timeout=1.5)[0][0], "timeout")
            text = t.metrics()
            after = parse_metrics(text)

            def delta(name, **labels):
                return value(after, name, **labels) - value(before, name, **labels)

            pc = "kube_network_policies_packet_count"
            for family in ("IPv4", "IPv6"):
                with self.subTest(family=family):
                    accepted = delta(pc, protocol="TCP", family=family, verdict="accept")
                    dropped = delta(pc, protocol="TCP", family=family, verdict="drop")
                    self.assertGreaterEqual(accepted, 3)
                    self.assertGreaterEqual(dropped, 1)  # the SYN (and its retransmits)
                    self.assertEqual(value(after, "kube_network_policies_packet_process_time_count", protocol="TCP",
                                           family=family),
                                     value(after, pc, protocol="TCP", family=family, verdict="accept") +
                                     value(after, pc, protocol="TCP", family=family, verdict="drop"))
            # Collectors run in order (packets, then queues), so later counts can only be larger.
            total = sum(v for (n, _), v in after.items() if n == pc)
            tcp = sum(v for (n, labels), v in after.items() if n == pc and ("protocol", "TCP") in labels)
            self.assertGreaterEqual(value(after, "kube_network_policies_packet_process_duration_microseconds_count"),
                                    tcp)
            self.assertGreater(value(after, "kube_network_policies_packet_process_duration_microseconds",
                                     quantile="0.5"), 0)
            self.assertGreaterEqual(value(after, "knp_queue_packets_total", queue="100"), total)
            self.assertGreaterEqual(value(after, "kube_network_policies_nfqueue_packet_id", queue="100"), total)
            self.assertEqual(value(after, "kube_network_policies_nfqueue_queue_dropped", queue="100"), 0)
            iv = "knp_instance_verdicts_total"
            self.assertGreaterEqual(delta(iv, instance="block", plugin="allowlist", direction="ingress",
                                          verdict="deny"), 2)
            self.assertGreaterEqual(delta(iv, instance="metered", plugin="metered", direction="ingress",
                                          verdict="next"), 6)  # the 6 connections to 8080
            self.assertGreaterEqual(delta("knp_plugin_evaluations_total", instance="metered", plugin="metered"), 6)
            self.assertGreaterEqual(value(after, "knp_instance_evaluation_duration_seconds_count", instance="block",
                                          plugin="allowlist", direction="ingress"), 8)
            self.assertGreaterEqual(value(after, "knp_ruleset_transactions_total"), 1)
            self.assertEqual(value(after, "knp_ready"), 1)
            self.assertEqual(value(after, "knp_readiness_check", check="plugin-snapshots"), 1)

            if subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True).returncode == 0:
                self.assertEqual(promtool_findings(text), [])
            elif CI:
                self.fail("promtool is not installed (tools/install-deps --test installs package prometheus)")
            else:
                print("promtool is not installed: /metrics not linted (tools/install-deps --test)", file=sys.stderr)

            # explain: the answer simulate gives offline, with each instance in pipeline order.
            for probe in ("prod/client prod/web TCP/8081", "prod/client prod/web TCP/8080",
                          "fd00:1::2 fd00:2::2 TCP/8081", "prod/client prod/ghost TCP/8081"):
                with self.subTest(probe=probe):
                    live = t.knpctl_json("explain", *probe.split())
                    self.assertEqual(live["node"], "node-a")
                    self.assertEqual(without_live_fields(live), t.simulate(probe))
            live = t.knpctl_json("explain", "prod/client", "prod/web", "TCP/8081")
            self.assertEqual(live["verdict"], "deny")
            ingress = live["ingress"]
            self.assertEqual((ingress["instance"], ingress["rule"], ingress["enforced_here"]), ("block", "no-8081", True))
            self.assertEqual([(s["instance"], s["verdict"], s["decided"], s["reached"]) for s in ingress["trace"]],
                             [("block", "deny", True, True), ("metered", "next", False, False)])
            self.assertEqual([s["instance"] for s in live["egress"]["trace"]], ["block"])  # metered: ingress only
            # The ghost pod lives on node-b: its ingress is not this node's to enforce.
            ghost = t.knpctl_json("explain", "prod/client", "prod/ghost", "TCP/8081")
            self.assertFalse(ghost["ingress"]["enforced_here"])
            text_out = t.knpctl("explain", "prod/client", "prod/web", "TCP/8081", "--socket", t.socket).stdout
            self.assertIn("<- decided", text_out)
            self.assertIn("(not reached)", text_out)
            bad = t.knpctl("explain", "prod/client", "prod/nope", "TCP/80", "--socket", t.socket, check=False)
            self.assertEqual(bad.returncode, 1)
            self.assertEqual(bad.stderr, 'knpctl: error: probe: unknown pod "prod/nope" (not in the cluster, or Succeeded/Failed)\n')

            # explain reads the view knpd publishes: after a reload the ghost is local.
            applies = value(after, "knp_ruleset_apply_duration_seconds_count")
            t.reload("allow", ghost="node-a")
            self.assertTrue(t.knpctl_json("explain", "prod/client", "prod/ghost", "TCP/8081")["ingress"]["enforced_here"])
            # Every publish brings the kernel in line (here a no-op: no plugin keys on local pods).
            self.assertGreater(value(parse_metrics(t.metrics()), "knp_ruleset_apply_duration_seconds_count"), applies)

            st = t.knpctl_json("status")
            self.assertEqual((st["node"], st["ready"]), ("node-a", True))
            self.assertEqual([q["queue"] for q in st["dataplane"]["queues"]], [100])
            self.assertGreaterEqual(st["dataplane"]["queues"][0]["packets"], total)
            self.assertGreaterEqual(st["dataplane"]["queues"][0]["kernel"]["id_sequence"], total)
            self.assertEqual([(i["instance"], i["snapshot"]) for i in st["instances"]],
                             [("block", True), ("metered", True)])
            self.assertGreaterEqual(st["instances"][0]["evaluations"]["ingress"]["deny"], 2)
            self.assertEqual(st["cluster"]["pods"], 3)
            status_text = t.knpctl("status", "--socket", t.socket).stdout
            self.assertIn("ready:      yes", status_text)
            self.assertIn("queue method", status_text)

            offline = json.loads(t.knpctl("-o", "json", "plugins", "--pipeline", t.pipeline, "--plugin-dir",
                                          e2e.PLUGINS, "--plugin-dir", e2e.TEST_PLUGINS, "--plugin-dir",
                                          OPS_PLUGINS).stdout)
            self.assertEqual(t.knpctl_json("plugins"), offline)

            self.assertEqual(t.stop_knpd(), 0)
            self.assertFalse(os.path.exists(t.socket))
            lines = t.log().splitlines()
            first = next(i for i, x in enumerate(lines) if "knpd: enforcing" in x)
            last = next(i for i, x in enumerate(lines) if "knpd: stopped" in x)
            # -v=2 is quiet in steady state: nothing between start-up and shutdown but the reload.
            self.assertEqual([x for x in lines[first + 1:last] if "knpd: reloaded" not in x], [], lines)

    def test_json_logs_and_rate_limited_packet_decisions(self):
        with OpsTopology() as t:
            t.start(extra=("--logging-format", "json", "-v", "5"))
            start = time.monotonic()
            results = t.connect(e2e.SERVER4, 8080, count=200, timeout=3)
            self.assertEqual([x[0] for x in results].count("ok"), 200)
            judged = value(parse_metrics(t.metrics()), "knp_queue_packets_total", queue="100")
            self.assertEqual(t.stop_knpd(signal.SIGTERM), 0)
            elapsed = time.monotonic() - start
            records = [json.loads(line) for line in t.log().splitlines() if line.strip()]
            for r in records:
                self.assertTrue({"ts", "level", "v", "pid", "msg"} <= r.keys(), r)
            decisions = [r for r in records if r["msg"] == "packet decision"]
            ours = [r for r in decisions if r["dst"] == "10.100.2.2:8080"]
            self.assertGreater(len(ours), 0)
            d = ours[0]
            self.assertEqual((d["level"], d["v"], d["protocol"], d["verdict"]), ("trace", 5, "TCP", "accept"))
            self.assertTrue(d["src"].startswith("10.100.1.2:"), d)
            self.assertEqual((d["egress"], d["ingress"], d["instance"]), ("accept", "accept", "-"))
            print(f"packet decisions: {len(decisions)} lines for {judged:.0f} packets judged in {elapsed:.2f}s",
                  file=sys.stderr)
            # A burst of 50, then 50 a second per reader: never one line per packet under load.
            self.assertLessEqual(len(decisions), 50 + 50 * elapsed + 5)
            if judged > 50 + 50 * elapsed + 5:
                self.assertLess(len(decisions), judged)
            logged_or_counted = len(decisions) + sum(int(r["suppressed"]) for r in decisions)
            self.assertLessEqual(logged_or_counted, judged + 5)  # + what arrived after the scrape


if __name__ == "__main__":
    # The dataplane test's entry point: skips (77) or, under CI=true, fails when not root or a
    # tool is missing; otherwise runs this module's tests.
    e2e.main()
