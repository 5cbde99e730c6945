#!/usr/bin/env python3
"""The knp lab end to end: `tools/lab up` a three-node lab, the truth-table suites with real
traffic and kubectl (`tools/lab suite`), the README demo in a second, two-node lab next to it,
`tools/lab down` after a simulated crash, and nothing of either lab left behind (namespaces,
links in the machine's own namespace, processes, files).

Usage (meson runs it): labcluster_test.py TOOLS_LAB BUILD_DIR [SUITE ARGS...]
  KNPLAB_SUITE_ARGS: what `tools/lab suite` gets (default --all: every case of every suite);
  e.g. KNPLAB_SUITE_ARGS="--suite labcluster" meson test -C build labcluster   for a quick run
Not root or no kubectl: exits 77 (skipped) with the reason; under CI=true it fails instead.
"""
import atexit
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unittest

LAB = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "tools/lab"
BUILD = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "build"
CI = os.environ.get("CI") == "true"
NAME = f"t{os.getpid()}"[:12]
DEMO = f"d{os.getpid()}"[:12]
LABS = (NAME, DEMO)


def lab(*args, check=True, timeout=600):
    t0 = time.monotonic()
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    if check and r.returncode != 0:
        raise AssertionError(f"tools/lab {' '.join(args)}: exit {r.returncode} after {took:.0f} s\n"
                             f"{r.stdout[-20000:]}\n{r.stderr[-5000:]}")
    return r, took


def cleanup(*_):
    for name in LABS:
        subprocess.run([LAB, "--name", name, "down"], capture_output=True, timeout=120)


def root_links():
    return sorted(l.split(":")[1].strip().split("@")[0]
                  for l in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines())


def leftovers(name):
    """Anything of lab `name` still on the machine."""
    found = []
    spaces = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
              if n.startswith(f"knplab-{name}-")]
    if spaces:
        found.append(f"namespaces {spaces}")
    if os.path.exists(f"/run/knplab/{name}"):
        found.append(f"/run/knplab/{name}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"--lab {name} " in cmd + " " or f"/run/knplab/{name}/" in cmd:
            found.append(f"process {pid}: {cmd[:200]}")
    return found


class Lab(unittest.TestCase):
    def test_lab(self):
        links_before = root_links()
        r, took = lab("--name", NAME, "up", "--nodes", "3", "--build", BUILD)
        print(f"\n[labcluster] up (3 nodes): {took:.1f} s", file=sys.stderr)
        self.assertIn(f"/run/knplab/{NAME}/kubeconfig", r.stdout)
        r, _ = lab("--name", NAME, "status")
        self.assertNotIn("GONE", r.stdout)

        with self.subTest("a second lab next to the first: the README demo in two nodes"):
            r, took = lab("--name", DEMO, "up", "--nodes", "2", "--build", BUILD)
            r, took2 = lab("--name", DEMO, "demo")
            print(f"[labcluster] demo lab up {took:.1f} s, demo {took2:.1f} s", file=sys.stderr)
            out = r.stdout
            self.assertIn("shop/frontend -> shop/db (10.244.1.", out)
            self.assertIn("timed out: dropped (denied)", out)
            self.assertIn('"deny"' if '"verdict"' in out else "deny", out)
            before, after = out.split("(before any policy)")[1].split("(after)")
            row = lambda text, name: next(l for l in text.splitlines() if l.startswith(name)).split()[1:]
            self.assertEqual(row(before, "shop/frontend"), [".", ".", ".", "."])
            self.assertEqual(row(after, "shop/frontend"), [".", ".", "X", "."])
            self.assertEqual(row(after, "shop/db"), [".", "X", ".", "."])

        with self.subTest("down after a crash: every process killed, the state dir gone"):
            for pid in subprocess.run(["ip", "netns", "pids", f"knplab-{DEMO}-n-node-1"], capture_output=True,
                                      text=True).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            os.unlink(f"/run/knplab/{DEMO}/lab.json")  # as if `up` died before recording anything
            lab("--name", DEMO, "down")
            self.assertEqual(leftovers(DEMO), [])

        with self.subTest("probe over the segment: the API server answers, a closed port refuses"):
            r, _ = lab("--name", NAME, "probe", "node-1", "192.168.1.254", "TCP/6443")
            self.assertIn("connected", r.stdout)
            r, _ = lab("--name", NAME, "probe", "node-3", "node-2", "UDP/9")
            self.assertIn("reached (refused", r.stdout)

        args = shlex.split(os.environ.get("KNPLAB_SUITE_ARGS", "--all"))
        r, took = lab("--name", NAME, "suite", *args, timeout=1200)
        print(r.stdout, file=sys.stderr)
        print(f"[labcluster] suite {' '.join(args)}: {took:.0f} s", file=sys.stderr)

        lab("--name", NAME, "down")
        self.assertEqual(leftovers(NAME), [])
        self.assertEqual(root_links(), links_before, "links in the machine's own namespace changed")


def main():
    why = None
    if os.geteuid() != 0:
        why = "not root (the lab needs network namespaces, nftables and NFQUEUE)"
    elif not (os.environ.get("KUBECTL") or shutil.which("kubectl")):
        why = "kubectl not found (tools/install-deps --test installs it)"
    if why:
        print(f"labcluster test {'FAILED' if CI else 'skipped'}: {why}", file=sys.stderr)
        sys.exit(1 if CI else 77)
    atexit.register(cleanup)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(1))  # unwinds through atexit: the labs go down
    try:
        unittest.main(argv=[sys.argv[0], "-v"])
    finally:
        cleanup()


if __name__ == "__main__":
    main()
