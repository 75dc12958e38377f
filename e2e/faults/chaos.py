#!/usr/bin/env python3
"""`make chaos`: longer fault runs than `make test` holds. Each run draws a
random schedule of faults (seeded, so a failure can be replayed), checks the
history and writes one row of results; the table goes to --report.

  e2e/faults/chaos.py --runs 5 --faults 12 --report docs/FAULTS.md
"""

import argparse
import datetime
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultrun import FAULTS, FaultCluster, run  # noqa: E402
from netlab import available  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--faults", type=int, default=12, help="faults per run")
    ap.add_argument("--fault-seconds", type=float, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--report", default=None)
    a = ap.parse_args()
    why = available()
    if why:
        sys.exit(f"chaos: {why}")
    seed0 = a.seed if a.seed is not None else random.randrange(1 << 30)
    rows, failed = [], 0
    for i in range(a.runs):
        seed = seed0 + i
        rng = random.Random(seed)
        schedule = [rng.choice(sorted(FAULTS)) for _ in range(a.faults)]
        fc = FaultCluster().start()
        try:
            out = run(fc, schedule, fault_seconds=a.fault_seconds, calm_seconds=4, seed=seed)
        except Exception as e:  # a run that could not finish is a failure with evidence
            print(f"run {i} (seed {seed}) failed: {e}; evidence in {fc.evidence(f'/tmp/skein-chaos-{seed}')}")
            failed += 1
            fc.stop()
            continue
        r = out.report
        print(f"run {i} seed {seed}: {'ok' if r.ok else 'ANOMALIES'}\n" + "\n".join(out.faults) + "\n" + r.summary())
        if not r.ok:
            failed += 1
            print("evidence in", fc.evidence(f"/tmp/skein-chaos-{seed}"))
        rows.append(
            f"| {seed} | {len(out.faults)} | {r.counts.get('acknowledged', 0)} | {r.counts.get('read by the group', 0)} "
            f"| {r.counts.get('final records', 0)} | {sum(len(v) for v in r.anomalies.values())} "
            f"| {r.tolerated.get('acks=1 lost', 0)} | {max(out.metadata_log_end.values(), default=0)} "
            f"| {min((t for t in out.terms_before.values() if t), default=0)}→{max(out.terms_after.values(), default=0)} "
            f"| {max(out.converge_seconds, default=0)} |"
        )
        fc.stop()
    if a.report:
        head = (
            f"\n### {datetime.date.today()}: {a.runs} runs × {a.faults} faults of {a.fault_seconds:g} s\n\n"
            "| seed | faults | acknowledged | read by group | final records | anomalies | acks=1 lost "
            "| metadata log end | quorum term | slowest convergence (s) |\n|---|---|---|---|---|---|---|---|---|---|\n"
        )
        with open(a.report, "a") as f:
            f.write(head + "\n".join(rows) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
