#!/usr/bin/env python3
"""knpd's lifecycle end to end: pipeline reload and shutdown drain, under real traffic.

In the dataplane end-to-end topology (tests/dataplane/e2e_test.py: knpd in a `node` namespace
between a `client` and a `server` namespace, all created and removed here):
- pipeline.yaml rewritten under continuous connections, applied by SIGHUP and by the file
  change alone (in-place write and rename-replace): verdicts change, no connection that should
  pass fails or stalls, a bad file is rejected with file:line and the running pipeline stays;
- SIGTERM while packets wait in the queue (a deliberately slow plugin): every one of them is
  answered (no SYN is lost and retransmitted), exit code 0, within the bound; fail-open and
  fail-closed; a hung plugin cannot keep knpd from exiting.
Against the lab API server (tests/kube/knpd_lab_test.py's Lab, in a namespace of its own): a
reload that needs a watch the running pipeline did not have, by SIGHUP and by a file write; one
whose watches cannot sync stays pending while the running pipeline enforces. A ConfigMap
volume's atomic swap (the `..data` symlink) is seen too.

Usage (meson runs it):
  lifecycle_e2e_test.py KNPD PLUGIN_DIR TEST_PLUGIN_DIR OPS_PLUGIN_DIR KNPCTL DATAPLANE_E2E OPS_E2E
                        [LAB_APISERVER KNPD_LAB_TEST]
Not root: exits 77 (skipped) with the reason; under CI=true it fails instead.
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

OPS_E2E = sys.argv[7] if len(sys.argv) > 7 else "tests/ops/ops_e2e_test.py"
LAB = os.path.abspath(sys.argv[8]) if len(sys.argv) > 8 else ""
LAB_TEST = sys.argv[9] if len(sys.argv) > 9 else ""
CI = os.environ.get("CI") == "true"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ops_e2e_test reads KNPD ... DATAPLANE_E2E from the same argv positions and loads the dataplane
# test itself.
ops = load("knp_ops_e2e", OPS_E2E)
e2e = ops.e2e
run = e2e.run

# Every connection to a local pod is queued and judged (NEXT → accept): both pipelines judge the
# load in userspace, so a packet lost in a swap would show.
EVERYTHING = "  - name: everything\n    library: fixed\n    config: {localPodsInterest: true}\n"
PIPE_OPEN = e2e.LOCAL_PODS
PIPE_BLOCK = e2e.BLOCK_8081 + EVERYTHING
# Line 5 names a library that does not exist.
PIPE_BAD = PIPE_BLOCK.replace("library: allowlist", "library: no-such-plugin")
BAD_LINE = next(i for i, x in enumerate(PIPE_BAD.splitlines(), 1) if "- name: block" in x)

# Connects over and over (one at a time) until STOPFILE exists; prints [[outcome, seconds], ...].
LOAD = textwrap.dedent("""\
    import json, os, socket, sys, time
    host, port, stopfile, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    results = []
    while not os.path.exists(stopfile):
        s = socket.socket(fam); s.settimeout(timeout)
        t = time.monotonic()
        try:
            s.connect((host, port))
            assert s.recv(2) == b"hi"
            results.append(["ok", time.monotonic() - t, time.time()])
        except OSError as e:
            results.append([type(e).__name__, time.monotonic() - t, time.time()])
        finally:
            s.close()
    print(json.dumps(results))
    """)

# Opens COUNT connections, one thread each, started SPACING seconds apart; prints
# [[outcome, seconds], ...].
BURST = textwrap.dedent("""\
    import json, socket, sys, threading, time
    host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    spacing = float(sys.argv[5])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    results = [None] * count
    def one(i):
        s = socket.socket(fam); s.settimeout(timeout)
        t = time.monotonic()
        try:
            s.connect((host, port))
            assert s.recv(2) == b"hi"
            results[i] = ["ok", time.monotonic() - t]
        except OSError as e:
            results[i] = [type(e).__name__, time.monotonic() - t]
        finally:
            s.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
        time.sleep(spacing)
    for t in threads: t.join()
    print(json.dumps(results))
    """)


def metered(delay_us):
    return ("apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ninstances:\n"
            f"  - name: slow\n    library: metered\n    config: {{evaluateDelayUs: {delay_us}}}\n")


class Life(ops.OpsTopology):
    def start_life(self, pipeline, fail_open=True):
        self.port = int(run("ip", "netns", "exec", self.node, sys.executable, "-c",
                            "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
                            "print(s.getsockname()[1])").stdout)
        self.socket = os.path.join(self.tmp, "run", "knpd.sock")
        self.start_knpd(pipeline, fail_open=fail_open,
                        extra=("--plugin-dir", ops.OPS_PLUGINS, "--metrics-bind-address", f"127.0.0.1:{self.port}",
                               "--socket", self.socket))
        self.pipe = os.path.join(self.tmp, "pipeline.yaml")

    def count(self, text):
        return self.log().count(text)

    def wait_log(self, text, before, limit=5.0):
        deadline = time.monotonic() + limit
        while self.count(text) <= before:
            assert time.monotonic() < deadline, f"no {text!r} within {limit}s:\n" + self.log()
            assert self.knpd.poll() is None, "knpd exited:\n" + self.log()
            time.sleep(0.02)

    def rewrite(self, text, how):
        """Replaces pipeline.yaml: in place, or as editors do (a new file renamed over it)."""
        if how == "in-place":
            with open(self.pipe, "w") as f:
                f.write(text)
        else:
            tmp = self.pipe + ".new"
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, self.pipe)

    def plugins(self):
        return [i["instance"] for i in self.knpctl_json("plugins")]

    def wait_queue(self, field, at_least, limit=5.0):
        """Waits until queue 100's `field` (queue_stats) reaches `at_least`."""
        deadline = time.monotonic() + limit
        while (self.queue_stats() or {}).get(field, 0) < at_least:
            assert time.monotonic() < deadline, f"queue {field} stayed below {at_least}"
            time.sleep(0.005)

    def sigterm(self):
        """SIGTERM; knpd's exit code and how long it took to exit."""
        t0 = time.monotonic()
        self.knpd.send_signal(signal.SIGTERM)
        rc = self.knpd.wait(timeout=15)
        return rc, time.monotonic() - t0


def load_worker(t, host, stopfile):
    results = []

    def work():
        r = run("ip", "netns", "exec", t.client, sys.executable, "-c", LOAD, host, "8080", stopfile, "3",
                timeout=600)
        results.extend(json.loads(r.stdout))

    th = threading.Thread(target=work)
    th.start()
    return th, results


class Reload(unittest.TestCase):
    def test_pipeline_changes_under_traffic(self):
        # Fail-closed: a packet the kernel could not hand to knpd would be lost, not waved
        # through.
        with Life() as t:
            t.start_life(PIPE_OPEN, fail_open=False)
            self.assertEqual(t.connect(e2e.SERVER4, 8081)[0][0], "ok")
            # The first IPv6 connection in this topology takes 1-2 s with or without knpd
            # (neighbour discovery): not part of what is measured.
            self.assertEqual(t.connect(e2e.SERVER6, 8080, timeout=5)[0][0], "ok")
            self.assertEqual(t.plugins(), ["everything"])
            stopfile = os.path.join(t.tmp, "stop-load")
            workers = [load_worker(t, host, stopfile) for host in (e2e.SERVER4, e2e.SERVER6)]
            time.sleep(0.5)
            R = "knpd: reloaded pipeline"

            # A deny rule added: SIGHUP.
            n = t.count(R)
            t.rewrite(PIPE_BLOCK, "in-place")
            t.knpd.send_signal(signal.SIGHUP)
            t.wait_log(R, n)
            self.assertEqual(t.connect(e2e.SERVER4, 8081, timeout=1.5)[0][0], "timeout")
            self.assertEqual(t.plugins(), ["block", "everything"])

            # Removed again by the file change alone, as an editor saves it (rename-replace).
            n = t.count(R)
            t.rewrite(PIPE_OPEN, "rename")
            t.wait_log(R, n)
            self.assertEqual(t.connect(e2e.SERVER4, 8081)[0][0], "ok")
            self.assertEqual(t.plugins(), ["everything"])

            # And added by an in-place write, no signal.
            n = t.count(R)
            t.rewrite(PIPE_BLOCK, "in-place")
            t.wait_log(R, n)
            self.assertEqual(t.connect(e2e.SERVER6, 8081, timeout=1.5)[0][0], "timeout")

            # A bad file: rejected with file:line, by the file change and by SIGHUP; the running
            # pipeline keeps enforcing.
            REJ = "knpd: pipeline reload rejected"
            n = t.count(REJ)
            t.rewrite(PIPE_BAD, "rename")
            t.wait_log(REJ, n)
            t.knpd.send_signal(signal.SIGHUP)
            t.wait_log(REJ, n + 1)
            rejected = [x for x in t.log().splitlines() if REJ in x]
            self.assertIn(f"{t.pipe}:{BAD_LINE}:", rejected[-1])
            self.assertIn("no-such-plugin", rejected[-1])
            self.assertEqual(t.connect(e2e.SERVER4, 8081, timeout=1.5)[0][0], "timeout")
            self.assertEqual(t.plugins(), ["block", "everything"])

            # Unchanged: nothing happens (SIGHUP in state-file mode still re-reads the state).
            U = "unchanged"
            n = t.count(U)
            t.rewrite(PIPE_BLOCK, "rename")
            t.wait_log(U, n)
            t.knpd.send_signal(signal.SIGHUP)
            t.wait_log("(pipeline unchanged)", 0)

            with open(stopfile, "w"):
                pass
            for th, _ in workers:
                th.join()
            for (_, results), host in zip(workers, (e2e.SERVER4, e2e.SERVER6)):
                with self.subTest(host=host):
                    outcomes = [x[0] for x in results]
                    self.assertGreater(len(outcomes), 20)
                    self.assertEqual(outcomes.count("ok"), len(outcomes), [x for x in results if x[0] != "ok"])
                    slow = [x for x in results if x[1] >= 0.9]
                    self.assertEqual(slow, [], t.log())  # no 1 s SYN retransmit
            q = t.queue_stats()
            self.assertEqual(q["queue_dropped"] + q["user_dropped"], 0, q)

            text = t.metrics()
            m = ops.parse_metrics(text)
            self.assertEqual(ops.value(m, "knp_pipeline_reloads_total", result="applied"), 3)
            self.assertEqual(ops.value(m, "knp_pipeline_reloads_total", result="rejected"), 2)
            self.assertEqual(ops.value(m, "knp_pipeline_reloads_total", result="unchanged"), 2)
            self.assertEqual(ops.value(m, "knp_pipeline_last_reload_successful"), 0)
            self.assertGreater(ops.value(m, "knp_pipeline_last_reload_success_timestamp_seconds"), 0)
            self.assertEqual(ops.value(m, "knp_instance_snapshot_ready", instance="block", plugin="allowlist"), 1)
            if shutil.which("promtool"):
                self.assertEqual(ops.promtool_findings(text), [])
            self.assertEqual(t.stop_knpd(), 0)


    def test_configmap_volume_swap(self):
        # A ConfigMap volume: pipeline.yaml -> ..data/pipeline.yaml, ..data -> ..<timestamp>; an
        # update writes a new timestamped directory and renames a new ..data link over the old
        # one, so pipeline.yaml itself never sees an event.
        with Life() as t:
            t.start_life(PIPE_OPEN)
            d = t.tmp

            def version(name, text):
                os.mkdir(os.path.join(d, name))
                with open(os.path.join(d, name, "pipeline.yaml"), "w") as f:
                    f.write(text)
                os.symlink(name, os.path.join(d, "..data_tmp"))
                os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))

            n = t.count("unchanged")
            version("..2026_11_26_v1", PIPE_OPEN)
            os.symlink("..data/pipeline.yaml", t.pipe + ".tmp")
            os.rename(t.pipe + ".tmp", t.pipe)
            t.wait_log("unchanged", n)
            n = t.count("knpd: reloaded pipeline")
            version("..2026_11_26_v2", PIPE_BLOCK)
            t.wait_log("knpd: reloaded pipeline", n)
            self.assertEqual(t.connect(e2e.SERVER4, 8081, timeout=1.5)[0][0], "timeout")
            self.assertEqual(t.plugins(), ["block", "everything"])
            self.assertEqual(t.stop_knpd(), 0)


class Drain(unittest.TestCase):
    def drain_under_burst(self, fail_open):
        # Connections keep arriving (one every 2 ms for 0.5 s) while each evaluation takes 4 ms,
        # so packets wait in the queue and more arrive through the whole shutdown: those queued
        # must get their verdict, the later ones must find either a reader or no queue at all.
        with Life() as t:
            t.start_life(metered(4000), fail_open=fail_open)
            self.assertEqual(t.connect(e2e.SERVER4, 8080)[0][0], "ok")  # neighbours resolved
            retrans = t.syn_retransmits()
            results = []
            th = threading.Thread(target=lambda: results.extend(json.loads(run(
                "ip", "netns", "exec", t.client, sys.executable, "-c", BURST, e2e.SERVER4, "8080", "250", "5",
                "0.002", timeout=60).stdout)))
            th.start()
            t.wait_queue("waiting", 20)
            waiting = t.queue_stats()["waiting"]
            rc, took = t.sigterm()
            th.join()
            self.assertEqual(rc, 0, t.log())
            self.assertLess(took, 3.0)  # the 2 s drain bound, and the rest is quick
            outcomes = [x[0] for x in results]
            self.assertEqual(outcomes.count("ok"), 250, [x for x in results if x[0] != "ok"])
            # Every queued SYN got its verdict: none was dropped and sent again a second later.
            self.assertEqual(t.syn_retransmits() - retrans, 0)
            self.assertLess(max(x[1] for x in results), 0.9)
            stopped = [x for x in t.log().splitlines() if "knpd: stopped" in x]
            self.assertEqual(len(stopped), 1, t.log())
            answered = int(stopped[0].split("; ")[1].split()[0])
            self.assertIsNone(t.queue_stats())  # the queue is unbound
            if fail_open:
                self.assertIn(t.table, t.tables())
            else:
                self.assertNotIn(t.table, t.tables())
            print(f"drain ({'fail-open' if fail_open else 'fail-closed'}): {waiting} waiting at SIGTERM, exit after "
                  f"{took:.2f}s, {answered} answered after the kernel stopped queueing", file=sys.stderr)

    def test_sigterm_answers_every_queued_packet_fail_closed(self):
        self.drain_under_burst(fail_open=False)

    def test_sigterm_answers_every_queued_packet_fail_open(self):
        self.drain_under_burst(fail_open=True)

    def test_exit_is_bounded_when_a_plugin_hangs(self):
        with Life() as t:
            t.start_life(metered(30000000), fail_open=True)  # 30 s per evaluation: hung
            th = threading.Thread(target=lambda: t.connect(e2e.SERVER4, 8080, timeout=8))
            th.start()
            t.wait_queue("id_sequence", 1)
            time.sleep(0.1)  # the reader is inside the plugin now
            rc, took = t.sigterm()
            th.join()
            self.assertLess(took, 6.5, t.log())
            self.assertEqual(rc, 1, t.log())
            self.assertIn("exiting now", t.log())
            self.assertIn(t.table, t.tables())  # fail-open: rules stay, the queue is bypassed
            self.assertEqual(t.connect(e2e.SERVER4, 8080)[0][0], "ok")


# --- API-server mode: a reload that needs a watch the running pipeline does not have -------------

ALLOW_ONLY = textwrap.dedent("""\
    apiVersion: knp.dev/v1alpha1
    kind: Pipeline
    instances:
      - name: quiet
        library: allowlist
        config:
          rules:
            - {name: none, cidrs: [192.0.2.0/32], direction: ingress}
    """)


class ApiServerReload(unittest.TestCase):
    def test_reload_adds_a_watch_and_gets_the_whole_cluster(self):
        if not (LAB and os.path.exists(LAB) and LAB_TEST and shutil.which("kubectl")):
            self.skipTest("no lab API server or kubectl")
        lab_mod = load("knp_lab_test", LAB_TEST)
        lab_mod.KNPD, lab_mod.KNPCTL, lab_mod.LAB, lab_mod.PLUGINS = e2e.KNPD, ops.KNPCTL, LAB, e2e.PLUGINS
        lab_mod.KUBECTL = shutil.which("kubectl")
        with lab_mod.Lab() as lab:
            lab.kubectl("apply", "-f", "-", stdin=lab_mod.CLUSTER)
            lab.kubectl("apply", "-f", "-", stdin=lab_mod.DENY_WEB)
            pipe = os.path.join(lab.tmp, "pipeline.yaml")
            with open(pipe, "w") as f:
                f.write(ALLOW_ONLY)
            lab.socket = os.path.join(lab.tmp, "knpd.sock")
            logpath = os.path.join(lab.tmp, "knpd.log")
            with open(logpath, "w") as log:
                lab.knpd = subprocess.Popen(
                    ["ip", "netns", "exec", lab.ns, e2e.KNPD, "--kubeconfig", lab.kubeconfig, "--pipeline", pipe,
                     "--plugin-dir", e2e.PLUGINS, "--hostname-override", "node-a", "--table-name", "knp-lab",
                     "--socket", lab.socket, "--metrics-bind-address", "127.0.0.1:19080", "-v", "2"],
                    stdout=log, stderr=log)
            lab.procs.append(lab.knpd)
            deadline = time.monotonic() + 20
            while "knpd: enforcing" not in lab.log():
                self.assertIsNone(lab.knpd.poll(), lab.log())
                self.assertLess(time.monotonic(), deadline, lab.log())
                time.sleep(0.05)
            self.assertEqual(lab.ingress(), ("accept", None))  # the policy exists, nobody reads it

            def metrics():
                r = run("ip", "netns", "exec", lab.ns, sys.executable, "-c", ops.FETCH,
                        "http://127.0.0.1:19080/metrics")
                status, body = json.loads(r.stdout)
                self.assertEqual(status, 200)
                return body

            watched = [labels for (name, labels) in ops.parse_metrics(metrics()) if name == "knp_watch_synced"]
            self.assertEqual(len(watched), 3, watched)  # pods, namespaces, nodes

            # While the new pipeline's watches cannot sync (the server fails its list), the running
            # pipeline stays, and a file that goes back to it drops the pending reload.
            lab.fault({"type": "error", "resource": "networkpolicies", "code": 500, "count": 1000,
                       "verbs": ["list", "watch"]})
            with open(pipe, "w") as f:
                f.write(lab_mod.PIPELINE)
            lab.knpd.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while ops.value(ops.parse_metrics(metrics()), "knp_pipeline_reload_pending") != 1:
                self.assertLess(time.monotonic(), deadline, lab.log())
                time.sleep(0.05)
            time.sleep(1)
            self.assertEqual(lab.ingress(), ("accept", None))
            with open(pipe, "w") as f:
                f.write(ALLOW_ONLY)
            while "pending reload dropped" not in lab.log():
                self.assertLess(time.monotonic(), deadline, lab.log())
                time.sleep(0.05)
            self.assertEqual(ops.value(ops.parse_metrics(metrics()), "knp_pipeline_reload_pending"), 0)
            lab.fault({"type": "clear"})

            # networkpolicy needs a watch the running WatchManager lacks: the new pipeline gets
            # the policy that already exists (the whole cluster), then replaces the old one.
            with open(pipe, "w") as f:
                f.write(lab_mod.PIPELINE)
            lab.knpd.send_signal(signal.SIGHUP)
            lab.wait_for("deny", 10.0)
            self.assertEqual(lab.ingress()[1], "networkpolicy")
            text = metrics()
            m = ops.parse_metrics(text)
            np = [dict(labels)["watch"] for (name, labels) in m if name == "knp_watch_synced"]
            self.assertIn("networking.k8s.io/v1/networkpolicies", np)
            self.assertEqual(ops.value(m, "knp_watch_synced", watch="networking.k8s.io/v1/networkpolicies"), 1)
            self.assertEqual(ops.value(m, "knp_pipeline_reloads_total", result="applied"), 1)
            self.assertEqual(ops.value(m, "knp_pipeline_reload_pending"), 0)
            if shutil.which("promtool"):
                self.assertEqual(ops.promtool_findings(text), [])

            # Back, by the file change alone.
            tmp = pipe + ".new"
            with open(tmp, "w") as f:
                f.write(ALLOW_ONLY)
            os.rename(tmp, pipe)
            lab.wait_for("accept", 10.0)
            self.assertIn("knpd: reloaded pipeline", lab.log())

            lab.knpd.send_signal(signal.SIGTERM)
            self.assertEqual(lab.knpd.wait(timeout=10), 0, lab.log())


if __name__ == "__main__":
    e2e.main()
