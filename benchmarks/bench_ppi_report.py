"""What a prediction-powered gate's report table costs: time and peak memory of deciding one
prediction-powered gap gate with and without its ``prediction_powered`` block.

The block asks :meth:`segfair.audit.Audit.prediction_powered` for the labelled-only twin of the
gate's estimates (a second audit, built once) next to the prediction-powered ones. Each
measurement runs in a fresh process (peak RSS is per process): a synthetic partial cohort of
``--n-cases`` cases, ``--frac`` of them with a trusted label, a proxy correlated ``--rho`` with
it, two groups, ``--n-boot`` resamples.

Run: ``nice -n 10 python benchmarks/bench_ppi_report.py --n-cases 5000 50000``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _scores(n: int, frac: float, rho: float, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    from segfair.scores import Scores

    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:07d}" for i in range(n)])
    young = rng.random(n) < 0.5
    t = np.clip(0.8 - 0.05 * young + 0.08 * rng.standard_normal(n), 0, 1)
    a = np.clip(t + 0.03 * young + np.sqrt(1 / rho**2 - 1) * 0.08 * rng.standard_normal(n), 0, 1)
    lab = rng.random(n) < frac
    table = pd.concat(
        [
            pd.DataFrame({"case_id": ids, "model": "m", "ruler": "auto", "metric": "dice"}).assign(
                value=a
            ),
            pd.DataFrame(
                {"case_id": ids[lab], "model": "m", "ruler": "expert", "metric": "dice"}
            ).assign(value=t[lab]),
        ],
        ignore_index=True,
    )
    groups = pd.DataFrame(
        {"age": np.where(young, "young", "old")}, index=pd.Index(ids, name="case_id")
    )
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=("m",),
    )


def _one(n: int, frac: float, rho: float, n_boot: int, block: bool) -> dict[str, float]:
    """In this process: build the cohort and the audit, then decide the gate (timed)."""
    from dataclasses import replace

    import segfair.gates.evaluate as ev
    from segfair.audit import Audit
    from segfair.gates import GapGate, evaluate_gate

    if not block:  # the verdict alone: the estimator named, no table
        ev._with_estimator = lambda result, gate, audit, decided: replace(
            result, estimator=audit.estimator
        )
    scores = _scores(n, frac, rho)
    audit = Audit(scores, n_boot=n_boot, estimator="ppi")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    r = evaluate_gate(audit, GapGate(metric="dice", by="age", model="m", max=0.1))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_mib": peak / 1024,
        "grown_mib": (peak - before) / 1024,
        "upper": r.upper,
        "blocks": len(r.prediction_powered or ()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-cases", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--frac", type=float, default=0.15)
    parser.add_argument("--rho", type=float, default=0.9)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, block = int(args.child[0]), args.child[1] == "1"
        print(json.dumps(_one(n, args.frac, args.rho, args.n_boot, block)))
        return 0
    print("cases  block  seconds  peak MiB  grown MiB  upper")
    for n in args.n_cases:
        for block in (False, True):
            done = subprocess.run(
                [
                    *(sys.executable, __file__, "--frac", str(args.frac), "--rho", str(args.rho)),
                    *("--n-boot", str(args.n_boot), "--child", str(n), "1" if block else "0"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            m = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{n:>6} {'yes' if block else 'no':>5} {m['seconds']:8.2f} {m['peak_mib']:9.0f}"
                f" {m['grown_mib']:10.0f}  {m['upper']:.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
