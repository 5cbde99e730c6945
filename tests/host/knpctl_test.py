#!/usr/bin/env python3
"""knpctl end to end: simulate through real plugins, and one-line errors for every bad input.

Usage (meson runs it): knpctl_test.py KNPCTL TEST_PLUGIN_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

KNPCTL = sys.argv[1] if len(sys.argv) > 1 else "build/host/knpctl"
TEST_PLUGINS = sys.argv[2] if len(sys.argv) > 2 else "build/tests/plugins"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def knpctl(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([KNPCTL, *args], capture_output=True, text=True, timeout=60, env=e)


def simulate(*probes, state="state.yaml", pipeline="pipeline.yaml", extra=()):
    args = ["simulate", "--state", os.path.join(DATA, state), "--pipeline", os.path.join(DATA, pipeline),
            "--plugin-dir", TEST_PLUGINS, *extra]
    for p in probes:
        args += ["--probe", p]
    return knpctl(*args)


class OneLineError:
    def assertOneLineError(self, r, *needles):
        self.assertEqual(r.returncode, 1, f"expected exit 1, got {r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}")
        lines = [l for l in r.stderr.splitlines() if l.startswith("knpctl: error:")]
        self.assertEqual(len(lines), 1, r.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]


class Simulate(unittest.TestCase, OneLineError):
    def test_verdicts_and_explanations(self):
        r = simulate("203.0.113.7 prod/client TCP/22",   # blocklist, ingress side (remote = source)
                     "prod/client 203.0.113.7 TCP/22",   # blocklist, egress side (remote = destination)
                     "prod/client 203.0.113.7 TCP/23",   # other port: nothing decides
                     "prod/client prod/web TCP/8080",    # watcher denies ingress to web
                     "prod/web prod/client UDP/53")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(out), 5)
        self.assertEqual([o["verdict"] for o in out], ["deny", "deny", "accept", "deny", "accept"])

        self.assertEqual(out[0]["ingress"]["instance"], "blocklist")
        self.assertEqual(out[0]["ingress"]["rule"], "blocked-range")
        self.assertEqual(out[0]["egress"]["verdict"], "accept")
        # An external source has no egress pipeline: no node hosts it.
        self.assertIn("not evaluated: the source is neither a pod nor a node", out[0]["egress"]["reason"])
        self.assertIn("not evaluated: the destination", out[1]["ingress"]["reason"])
        self.assertEqual(out[1]["egress"]["instance"], "blocklist")
        self.assertIsNone(out[2]["egress"]["instance"])
        self.assertIsNone(out[2]["ingress"]["instance"])

        web = out[3]
        self.assertEqual(web["src_ip"], "10.244.1.20")
        self.assertEqual(web["dst_ip"], "10.244.1.10")
        self.assertEqual(web["protocol"], "TCP")
        self.assertEqual(web["port"], 8080)
        self.assertEqual(web["ingress"]["instance"], "watcher")
        # The state's NetworkPolicy and two Widgets reached the plugin as watch events.
        self.assertEqual(web["ingress"]["reason"], "widgets=2 policies=1")
        self.assertIn("no plugin in the pipeline watches this kind", r.stderr)  # the ConfigMap

    def test_node_sources_get_egress(self):
        # node-a's InternalIP is in the state: the node's own traffic has an egress pipeline.
        r = simulate("192.168.10.1 203.0.113.7 TCP/22")
        self.assertEqual(r.returncode, 0, r.stderr)
        o = json.loads(r.stdout)
        self.assertEqual(o["verdict"], "deny")
        self.assertEqual(o["egress"]["instance"], "blocklist")

    def test_ipv6_follows_the_literal(self):
        r = simulate("fd00::99 prod/client TCP/80")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["dst_ip"], "fd00:10:244:1::20")

    def test_probes_file_and_inline_keep_order(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("# comment\n\nprod/client prod/web TCP/80   # trailing comment\n203.0.113.1 prod/web SCTP/22\n")
        try:
            r = simulate("prod/web prod/client UDP/5353", extra=["--probes", f.name])
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual([(o["dst"], o["protocol"]) for o in out],
                         [("prod/web", "TCP"), ("prod/web", "SCTP"), ("prod/client", "UDP")])

    def test_kind_list_state(self):
        r = simulate("dev/other 10.0.0.1 TCP/80", state="list.yaml")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["src_ip"], "10.244.2.30")
        r = simulate("dev/finished 10.0.0.1 TCP/80", state="list.yaml")
        self.assertOneLineError(r, "unknown pod \"dev/finished\"")

    def test_bad_probes(self):
        for probe, needle in [("prod/client prod/web", "must be 'SRC DST PROTO/PORT'"),
                              ("prod/client prod/web ICMP/1", "protocol \"ICMP\" must be TCP, UDP or SCTP"),
                              ("prod/client prod/web TCP/0", "port \"0\" must be a number in 1..65535"),
                              ("prod/client prod/web TCP", "must be PROTO/PORT"),
                              ("prod/nope prod/web TCP/80", "unknown pod \"prod/nope\""),
                              ("10.0.0.1 fd00::1 TCP/80", "different IP families"),
                              ("not-an-ip prod/web TCP/80", "neither namespace/pod nor an IP")]:
            with self.subTest(probe=probe):
                self.assertOneLineError(simulate(probe), "--probe #1", needle)

    def test_bad_probes_file_names_the_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("prod/client prod/web TCP/80\n\nprod/client prod/web TCP/99999\n")
        try:
            self.assertOneLineError(simulate(extra=["--probes", f.name]), f"{f.name}:3:")
        finally:
            os.unlink(f.name)

    def test_malformed_state_names_the_line(self):
        cases = [
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nstatus: {podIP: 1.2.3}\n", ":1: Pod default/x: status.podIP"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: b}\n", ":5: apiVersion: missing"),
            ("apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\n", ":1: Pod metadata.name: missing"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {a: [1]}}\n", "label values must be strings"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n", "invalid YAML"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
             ":5: duplicate Pod x"),
        ]
        for text, needle in cases:
            with self.subTest(text=text), tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                f.write(text)
                f.close()
                try:
                    self.assertOneLineError(simulate("1.1.1.1 2.2.2.2 TCP/1", state=f.name), f.name, needle)
                finally:
                    os.unlink(f.name)

    def test_no_probes_is_an_error(self):
        self.assertOneLineError(simulate(), "no probes")


class PluginsValidateInspect(unittest.TestCase, OneLineError):
    def test_plugins_lists_the_loaded_pipeline(self):
        r = knpctl("plugins", "--pipeline", os.path.join(DATA, "pipeline.yaml"), "--plugin-dir", TEST_PLUGINS)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("INSTANCE"))
        self.assertTrue(lines[1].startswith("blocklist"))
        self.assertIn("allowlist.so", lines[1])
        self.assertTrue(lines[2].startswith("watcher"))
        r = knpctl("-o", "json", "plugins", "--pipeline", os.path.join(DATA, "pipeline.yaml"), "--plugin-dir",
                   TEST_PLUGINS)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual([x["instance"] for x in rows], ["blocklist", "watcher"])
        self.assertEqual(rows[1]["abi"], "1.1")
        self.assertEqual(rows[1]["capabilities"], "ingress")
        self.assertEqual(len(rows[1]["watches"]), 2)

    def test_validate(self):
        r = knpctl("validate", os.path.join(DATA, "pipeline.yaml"), "--plugin-dir", TEST_PLUGINS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK (2 instances loaded)", r.stdout)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ninstances:\n"
                    "  - name: a\n    library: allowlist\n    config:\n      rules:\n        - cidrs: [10.0.0.0/33]\n")
        try:
            self.assertOneLineError(knpctl("validate", f.name), f"{f.name}:8:", "config/rules/0/cidrs/0")
        finally:
            os.unlink(f.name)

    def test_inspect_good_plugin(self):
        r = knpctl("-o", "json", "inspect", os.path.join(TEST_PLUGINS, "c_plugin.so"))
        self.assertEqual(r.returncode, 0, r.stderr)
        d = json.loads(r.stdout)
        self.assertEqual(d["abi"], "1.1")
        self.assertEqual(d["capabilities"], "ingress")

    def test_every_broken_plugin_is_one_line_and_no_crash(self):
        for name, needle in [("no_entry", "no entry symbol"), ("null_descriptor", "no descriptor"),
                             ("wrong_major", "major mismatch"), ("newer_minor", "newer than this host"),
                             ("short_descriptor", "struct_size"), ("null_function", "update is NULL"),
                             ("missing_eval", "evaluate_ingress is NULL")]:
            with self.subTest(plugin=name):
                path = os.path.join(TEST_PLUGINS, name + ".so")
                self.assertOneLineError(knpctl("inspect", path), name + ".so", needle)
        for name, config in [("init_fails", "{}"), ("throws_raw", "{in: init}"), ("throws_sdk", "{in: init}"),
                             ("allowlist", "{rules: 3}")]:
            with self.subTest(plugin=name), tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                f.write("apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ninstances:\n"
                        f"  - name: x\n    library: {name}\n    config: {config}\n")
                f.close()
                try:
                    self.assertOneLineError(knpctl("validate", f.name, "--plugin-dir", TEST_PLUGINS), f.name,
                                            "instances[0] (\"x\")")
                finally:
                    os.unlink(f.name)
        # Plugins that fail at evaluation time: the run completes, onError decides.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ninstances:\n"
                    "  - name: raw\n    library: throws_raw\n    onError: next\n    config: {in: evaluate}\n"
                    "  - name: odd\n    library: out_of_range\n")
        try:
            r = simulate("prod/client prod/web TCP/80", pipeline=f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
            o = json.loads(r.stdout)
            self.assertEqual(o["verdict"], "deny")
            self.assertEqual(o["ingress"]["instance"], "odd")
            self.assertIn("out-of-range", o["ingress"]["reason"])
        finally:
            os.unlink(f.name)

    def test_bad_usage_exits_nonzero(self):
        r = knpctl("simulate")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--state is required", r.stderr)
        r = knpctl("frobnicate")
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
