"""Partial trusted labels: recovery, interval coverage and the planner's hit rate.

A synthetic cohort is scored once with every expert label; each repeat then keeps the expert
label of a sample of cases (uniform 15%, or oversampling the young: 30% / 10% / 10%) and

* checks whether the intervals of the gap and of the hidden gap (ruler distortion) on the
  partial labels contain the full-label values (coverage of the cohort value);
* plans the extra labels for the gap gate, or with ``--gate shrinkage`` for the share of the gap
  the automated labels hide (``plan(..., power=0.8)``, with its simulation check for the gap),
  adds exactly those labels (drawn uniformly within each group from the full ground truth)
  and evaluates the gate again: the share of plans after which the gate is conclusive (its
  interval clear of the threshold, on either side: see :func:`side`) is the planner's hit
  rate (target ≥ 80%); thresholds are chosen where every expert label decides the gate.

Run: ``python benchmarks/partial_labels.py --n-cases 1500 --repeats 100 [--gate shrinkage]``
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segfair.audit import Audit
from segfair.gates import GapGate, GateResult, RulerShrinkageGate, evaluate_gate
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


def side(result: GateResult, limit: float) -> str:
    """Where the gap's interval lies: wholly below the limit, wholly above, or across it.

    A gap gate decides on its upper bound, so it *fails* whenever the interval reaches above
    the limit — also when the data cannot tell the two sides apart. Conclusive, for the
    planner, is the interval clear of the limit: "below" (the gate passes) or "above" (it fails
    and would fail with any number of labels).
    """
    if result.status == "insufficient_evidence":
        return "open"
    if result.upper <= limit:
        return "below"
    if result.lower > limit:
        return "above"
    return "open"


def add_labels(
    audit: Audit,
    p: Any,
    keep: set[str],
    ages: pd.Series,
    fractions: dict[str, float],
    scores: Scores,
    n_boot: int,
    seed: int,
) -> tuple[set[str], Audit]:
    """Label the plan's cases (uniform within each group) from the full ground truth."""
    add = select_cases(audit, [p], within="random", seed=seed)
    keep2 = keep | set(add["case_id"])
    # uniform within each age group: the design stays stratified by age, with the realised
    # fractions as inclusion probabilities
    frac2 = {a: sum(1 for c in keep2 if ages[c] == a) / int((ages == a).sum()) for a in fractions}
    w2 = design_weights({"by": BY, "fractions": frac2}, scores.groups)
    return keep2, Audit(keep_expert(scores, keep2), n_boot=n_boot, seed=seed, design_weights=w2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cases", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument(
        "--gate",
        choices=["gap", "shrinkage"],
        default="gap",
        help="the gate planned: the gap, or the share of it the automated labels hide",
    )
    ap.add_argument(
        "--max",
        type=float,
        nargs="+",
        help="thresholds (default: gap 0.04 0.05 0.12 0.13 0.15; shrinkage 0.25 0.3 0.7 0.8)",
    )
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
    d_full = full.ruler_distortion("dice", by=BY, model=MODEL, automated="automated")
    h_full, h_full_share = d_full.hidden_gap, d_full.shrinkage
    print(f"full labels: gap {g_full}, hidden gap {h_full}")
    print(f"full labels: share hidden {h_full_share}")
    if args.gate == "gap":
        limits = args.max or [0.04, 0.05, 0.12, 0.13, 0.15]
        gates: dict[float, Any] = {
            m: GapGate(metric="dice", by=BY, model=MODEL, ruler="expert", max=m) for m in limits
        }
    else:
        limits = args.max or [0.25, 0.3, 0.7, 0.8]
        gates = {
            m: RulerShrinkageGate(
                metric="dice", by=BY, model=MODEL, automated="automated", trusted="expert", max=m
            )
            for m in limits
        }
    truth = {m: side(evaluate_gate(full, g), m) for m, g in gates.items()}
    print("with every expert label: " + ", ".join(f"max {m}: {v}" for m, v in truth.items()))
    ages = scores.groups[BY].astype(str)
    ids = np.array(ages.index.astype(str))
    designs = {
        "uniform 15%": {"young": 0.15, "middle": 0.15, "older": 0.15},
        "young oversampled": {"young": 0.3, "middle": 0.1, "older": 0.1},
    }
    fo = full.by_group("dice", by=BY, model=MODEL).overall["estimate"]
    print()
    print(
        f"| design | max {args.gate} | conclusive with 15% | plans (feasible / needed) | "
        "median extra labels | simulated power | conclusive after adding them | "
        "same verdict as all labels | conclusive after one re-plan |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    coverage_rows = []
    for name, fr in designs.items():
        w = design_weights({"by": BY, "fractions": fr}, scores.groups)
        cover_g = cover_h = cover_o = 0
        tally = {
            m: {"already": 0, "needed": 0, "planned": 0, "hit": 0, "right": 0, "hit2": 0}
            for m in gates
        }
        extra2: dict[float, list[int]] = {m: [] for m in gates}
        extra: dict[float, list[int]] = {m: [] for m in gates}
        sim: dict[float, list[float]] = {m: [] for m in gates}
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
            cover_o += bool(o["lower"] <= fo <= o["upper"])
            for m, gate in gates.items():
                t = tally[m]
                if side(evaluate_gate(audit, gate), m) != "open":
                    t["already"] += 1
                    continue
                t["needed"] += 1
                p = plan(audit, gate, power=args.power, simulate=200, seed=r)
                if not p.feasible:
                    continue
                t["planned"] += 1
                sim[m].append(p.simulated_power)
                extra[m].append(p.total_additional)
                keep2, a2 = add_labels(audit, p, keep, ages, fr, scores, args.n_boot, r)
                status = side(evaluate_gate(a2, gate), m)
                t["hit"] += status != "open"
                t["right"] += status == truth[m]
                # the workflow segfair plan is made for: label the batch, then plan again
                if status == "open":
                    p2 = plan(a2, gate, power=args.power, seed=r)
                    if p2.feasible and p2.total_additional > 0:
                        extra2[m].append(p2.total_additional)
                        _, a3 = add_labels(a2, p2, keep2, ages, fr, scores, args.n_boot, r + 1)
                        status = side(evaluate_gate(a3, gate), m)
                t["hit2"] += status != "open"
        n = args.repeats
        coverage_rows.append((name, cover_g / n, cover_h / n, cover_o / n))
        for m, t in tally.items():
            k = max(t["planned"], 1)
            print(
                f"| {name} | {m} | {t['already']}/{n} | {t['planned']}/{t['needed']} | "
                f"{int(np.median(extra[m])) if extra[m] else '–'} | "
                f"{np.mean(sim[m]) if sim[m] else float('nan'):.2f} | "
                f"{t['hit']}/{t['planned']} ({t['hit'] / k:.0%}) | "
                f"{t['right']}/{t['planned']} | "
                f"{t['hit2']}/{t['planned']} ({t['hit2'] / k:.0%}), "
                f"{len(extra2[m])} re-plans, median "
                f"{int(np.median(extra2[m])) if extra2[m] else 0} |"
            )
    print()
    print("| design | gap interval covers the full-label gap | hidden gap | overall mean |")
    print("|---|---:|---:|---:|")
    for name, cg, ch, co in coverage_rows:
        print(f"| {name} | {cg:.2f} | {ch:.2f} | {co:.2f} |")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
