"""Partial trusted labels: recovery, interval coverage and the planner's hit rate.

A synthetic cohort is scored once with every expert label; each repeat then keeps the expert
label of a sample of cases (uniform 15%, or oversampling the young: 30% / 10% / 10%) and

* checks whether the intervals of the gap and of the hidden gap (ruler distortion) on the
  partial labels contain the full-label values (coverage of the cohort value);
* plans the extra labels for the gap gate (``plan(..., power=0.8)``, with its simulation
  check), adds exactly those labels (drawn uniformly within each group from the full ground
  truth) and evaluates the gate again: the share of plans after which the gate is conclusive
  (passed or failed, not ``insufficient_evidence``) is the planner's hit rate (target ≥ 80%).

Run: ``python benchmarks/partial_labels.py --n-cases 1500 --repeats 100``
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segfair.audit import Audit
from segfair.gates import GapGate, evaluate_gate
from segfair.planner import design_weights, plan, select_cases
from segfair.scores import Scores
from segfair.session import SegfairSession
from segfair.synth import make_cohort

MODEL, BY = "trained_on_automated", "age_group"


def keep_expert(scores: Scores, keep: set[str]) -> Scores:
    t = scores.table
    table = t[(t["ruler"] != scores.trusted_ruler) | t["case_id"].isin(keep)]
    agreement = scores.agreement[scores.agreement["case_id"].isin(keep)]
    return dataclasses.replace(scores, table=table, agreement=agreement)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cases", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--max-gap", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--out", default="/tmp/segfair_partial_bench")
    args = ap.parse_args()
    root = Path(args.out)
    t0 = time.perf_counter()
    make_cohort(
        root, n_cases=args.n_cases, shape=(24, 24, 12), preset="hidden", seed=0, overwrite=True
    )
    scores = SegfairSession.from_path(root / "segfair.toml").scores
    print(f"cohort of {args.n_cases} scored in {time.perf_counter() - t0:.1f}s")
    full = Audit(scores, n_boot=args.n_boot)
    g_full = full.gap("dice", by=BY, model=MODEL).gap
    h_full = full.ruler_distortion("dice", by=BY, model=MODEL, automated="automated").hidden_gap
    print(f"full labels: gap {g_full}, hidden gap {h_full}")
    gate = GapGate(metric="dice", by=BY, model=MODEL, ruler="expert", max=args.max_gap)
    print(f"with every expert label the gate is {evaluate_gate(full, gate).status}")
    ages = scores.groups[BY].astype(str)
    ids = np.array(ages.index.astype(str))
    designs = {
        "uniform 15%": {"young": 0.15, "middle": 0.15, "older": 0.15},
        "young oversampled": {"young": 0.3, "middle": 0.1, "older": 0.1},
    }
    for name, fr in designs.items():
        w = design_weights({"by": BY, "fractions": fr}, scores.groups)
        cover_g = cover_h = cover_o = conclusive = planned = already = 0
        extra: list[int] = []
        sim: list[float] = []
        for r in range(args.repeats):
            rng = np.random.default_rng([r, 99])
            p_keep = ages.map(fr).to_numpy()
            keep = set(ids[rng.random(len(ids)) < p_keep])
            audit = Audit(keep_expert(scores, keep), n_boot=args.n_boot, seed=r, design_weights=w)
            g = audit.gap("dice", by=BY, model=MODEL)
            cover_g += g.gap.contains(g_full.estimate)
            h = audit.ruler_distortion("dice", by=BY, model=MODEL, automated="automated")
            cover_h += h.hidden_gap.contains(h_full.estimate)
            o = audit.by_group("dice", by=BY, model=MODEL).overall
            fo = full.by_group("dice", by=BY, model=MODEL).overall["estimate"]
            cover_o += bool(o["lower"] <= fo <= o["upper"])
            if evaluate_gate(audit, gate).status in ("passed", "failed"):
                already += 1
                continue
            p = plan(audit, gate, power=args.power, simulate=200, seed=r)
            if not p.feasible:
                continue
            sim.append(p.simulated_power)
            planned += 1
            extra.append(p.total_additional)
            add = select_cases(audit, [p], within="random", seed=r)
            keep2 = keep | set(add["case_id"])
            # the new labels are uniform within each age group: the design stays stratified by
            # age, with the realised fractions as inclusion probabilities
            frac2 = {a: sum(1 for c in keep2 if ages[c] == a) / int((ages == a).sum()) for a in fr}
            w2 = design_weights({"by": BY, "fractions": frac2}, scores.groups)
            a2 = Audit(keep_expert(scores, keep2), n_boot=args.n_boot, seed=r, design_weights=w2)
            conclusive += evaluate_gate(a2, gate).status in ("passed", "failed")
        n = args.repeats
        print(
            f"{name}: coverage gap {cover_g / n:.2f}, hidden gap {cover_h / n:.2f}, overall mean "
            f"{cover_o / n:.2f}; conclusive before any new label {already}/{n}; plan "
            f"feasible in {planned}/{n - already}, median extra labels "
            f"{int(np.median(extra)) if extra else 0}, simulated power "
            f"{np.mean(sim) if sim else float('nan'):.2f}, conclusive after adding them "
            f"{conclusive}/{planned} ({conclusive / max(planned, 1):.0%})"
        )
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
