#!/usr/bin/env python3
"""Runs config/examples/allowlist-demo through `knpctl simulate` and checks every probe's verdict
against the expectation its comment in probes.txt states ("# accept: ..." or "# deny: ..."), so
the demo cannot silently drift from what it claims.

Usage: check_demo.py KNPCTL PLUGIN_DIR DEMO_DIR
"""
import json
import subprocess
import sys


def main() -> int:
    knpctl, plugin_dir, demo = sys.argv[1:4]
    probes = f"{demo}/probes.txt"
    expected = []
    with open(probes) as f:
        for n, line in enumerate(f, 1):
            probe, _, comment = line.partition("#")
            if not probe.strip():
                continue
            verdict = comment.strip().split(":", 1)[0]
            if verdict not in ("accept", "deny"):
                sys.exit(f"{probes}:{n}: the comment must start with 'accept:' or 'deny:'")
            expected.append((probe.strip(), verdict))

    run = subprocess.run(
        [knpctl, "simulate", "--plugin-dir", plugin_dir, "--state", f"{demo}/state.yaml",
         "--pipeline", f"{demo}/pipeline.yaml", "--probes", probes],
        capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"knpctl simulate failed ({run.returncode}):\n{run.stderr}")
    results = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
    if len(results) != len(expected):
        sys.exit(f"{len(results)} results for {len(expected)} probes:\n{run.stdout}")

    wrong = [f"  {probe}: got {r['verdict']}, want {want}\n    {json.dumps(r)}"
             for (probe, want), r in zip(expected, results) if r["verdict"] != want]
    if wrong:
        sys.exit("the demo does not give the verdicts probes.txt states:\n" + "\n".join(wrong))
    print(f"{len(expected)} probes give the verdicts probes.txt states")
    return 0


if __name__ == "__main__":
    sys.exit(main())
