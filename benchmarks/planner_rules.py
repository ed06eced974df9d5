"""How far can a plan made from a pilot sample be trusted? A normal-model study of planning rules.

A planner sees a pilot estimate ``m̂`` of the margin between a gate's quantity and its threshold
(standard error ``SE0`` = 1 in these units) and asks for enough labels that the final interval
clears the threshold. The final estimate includes the pilot's labels: given the truth ``m`` and
the pilot, it is ``N(m + (SE²/SE0²)(m̂ − m), SE² − SE⁴/SE0²)``. This script draws pilots for a
fixed true margin, applies each rule, keeps the plans that are feasible (at most ``--max-ratio``
times the pilot's labels: the cohort is finite) and reports how often the planned sample then
decides — the frequentist rate a team experiences at that truth.

Rules:

* ``estimate``: the pilot estimate taken as the truth, ``m̂ = (z + z_p)·SE``.
* ``predictive``: segfair's rule, predictive power under a flat prior
  (``segfair.planner.allocation._target_se``).
* ``lower-bound c``: the predictive rule on ``m̂ − c`` (a deliberately pessimistic margin).

Run: ``python benchmarks/planner_rules.py``. The point it makes: below a true margin of about
1.5 pilot standard errors no rule reaches 80% among the plans it makes, because a pilot that
looks decidable overstates the margin (the winner's curse); above it the predictive rule does.
Planning again after the batch (``segfair plan`` on the enlarged sample) is the remedy.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segfair.planner.allocation import _target_se


def rule_se(rule: str, m_hat: float, z: float, power: float) -> float:
    """Target final SE (pilot SE = 1) of a rule; 0 = no plan."""
    if rule == "estimate":
        return m_hat / (z + norm.ppf(power)) if m_hat > 0 else 0.0
    if rule == "predictive":
        return _target_se(m_hat, 1.0, z, power)
    c = float(rule.split()[-1])  # "lower-bound c"
    return _target_se(m_hat - c, 1.0, z, power) if m_hat > c else 0.0


def study(
    rule: str, m: float, *, z: float, power: float, max_ratio: float, n: int, seed: int
) -> tuple[float, float, float]:
    """(share of pilots with a feasible plan, share of those that decide, median n/n0)."""
    rng = np.random.default_rng(seed)
    feasible = decided = 0
    ratios = []
    for m_hat in m + rng.normal(size=n):
        if m_hat > z:
            continue  # already decided: nothing to plan
        se = rule_se(rule, float(m_hat), z, power)
        if se <= 0 or 1 / se**2 > max_ratio:
            continue
        feasible += 1
        v = se**2
        final = m + v * (m_hat - m) + math.sqrt(max(v - v * v, 0.0)) * rng.normal()
        decided += final > z * se
        ratios.append(1 / v)
    return feasible / n, decided / max(feasible, 1), float(np.median(ratios)) if ratios else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--z", type=float, default=1.96, help="z of the decisive bound")
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--max-ratio", type=float, default=6.0, help="cohort / pilot labels")
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    margins = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    rules = ("estimate", "predictive", "lower-bound 0.5")
    print(
        f"z = {args.z}, power {args.power}, at most {args.max_ratio}× the pilot's labels, "
        f"{args.n} pilots per cell; cells: feasible plans / decided among them"
    )
    print()
    print("| true margin (pilot SEs) | " + " | ".join(rules) + " |")
    print("|---:|" + "---:|" * len(rules))
    for m in margins:
        cells = []
        for i, rule in enumerate(rules):
            f, d, _ = study(
                rule, m, z=args.z, power=args.power, max_ratio=args.max_ratio, n=args.n, seed=i
            )
            cells.append(f"{f:.0%} / {d:.0%}")
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
