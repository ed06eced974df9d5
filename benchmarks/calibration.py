"""Calibration study: are segfair's intervals and gate verdicts right at the stated rate?

Simulates per-case Dice tables with known group means, runs the real :class:`segfair.audit.Audit`
and gates on them, and reports (as Markdown):

* coverage of the gap interval (segfair's pairwise-contrast interval and, for comparison, the
  naive percentile interval of the replicated max − min), and of the group-mean intervals;
* coverage of the paired distortion / hidden-gap / amplification intervals;
* the fail rate of a ``gap`` gate below, at and above its threshold (bound and estimate
  decisions), and of a ``ruler_shrinkage`` gate.

Data: three groups (sizes like MAMA-MIA's 349/754/400, or small 30/60/40). Trusted Dice
``T ~ Beta`` with sd 0.2 and group means ``0.65, 0.65 + 0.3 δ, 0.65 + δ`` (true gap δ). A paired
series (automated ruler, or a second model) is ``A = 0.7 T + 0.3 V`` with ``V ~ Beta`` (sd 0.15)
whose means make A's group means ``c + s (μ_g − c)`` (``c`` the lowest group's mean when s < 1,
the highest's when s > 1): A's gap is exactly ``s δ``, so the true distortion/amplification is
``s − 1`` and the true hidden gap ``(1 − s) δ``.

Run::

    python benchmarks/calibration.py                 # 1,000 simulations per row, ~10 min on 2 cores
    python benchmarks/calibration.py --reps 200      # a quick look
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segfair.audit import Audit
from segfair.gates import GapGate, RulerShrinkageGate, evaluate_gate
from segfair.scores import Scores

SIZES = {"MAMA-MIA 349/754/400": (349, 754, 400), "small 30/60/40": (30, 60, 40)}
BASE = 0.65
SD_T = 0.2
SD_V = 0.15
LAMBDA = 0.3


@dataclass(frozen=True)
class Scenario:
    """One row of the study."""

    kind: str  # "gap" or "paired"
    sizes: str
    delta: float
    scale: float = 1.0  # s: the paired series' gap is s * delta
    threshold: float = 0.05  # gap gate limit (gap scenarios)


def beta(rng: np.random.Generator, mean: np.ndarray, sd: float) -> np.ndarray:
    sd_ok = np.minimum(sd, 0.9 * np.sqrt(mean * (1 - mean)))  # a Beta needs sd² < μ(1 − μ)
    k = mean * (1 - mean) / sd_ok**2 - 1
    return rng.beta(mean * k, (1 - mean) * k)


def simulate(sc: Scenario, rng: np.random.Generator) -> Scores:
    sizes = SIZES[sc.sizes]
    labels = ["low", "mid", "high"]
    g = np.repeat(np.arange(3), sizes)
    mu = BASE + np.array([0.0, 0.3, 1.0])[g] * sc.delta
    t = beta(rng, mu, SD_T)
    # a larger gap lowers the lower groups (as a model trained on automated labels gets worse for
    # the young); a smaller one lifts them: either way every mean stays inside (0, 1)
    anchor = BASE + sc.delta if sc.scale > 1 else BASE
    mu_a = anchor + sc.scale * (mu - anchor)
    nu = (mu_a - (1 - LAMBDA) * mu) / LAMBDA
    a = (1 - LAMBDA) * t + LAMBDA * beta(rng, nu, SD_V)
    ids = np.array([f"c{i:05d}" for i in range(len(g))])
    table = pd.DataFrame(
        {
            "case_id": np.concatenate([ids, ids, ids]),
            "model": ["m"] * (2 * len(ids)) + ["m2"] * len(ids),
            "ruler": ["expert"] * len(ids) + ["automated"] * len(ids) + ["expert"] * len(ids),
            "metric": "dice",
            "value": np.concatenate([t, a, a]),
        }
    )
    groups = pd.DataFrame(
        {"group": pd.Categorical(np.array(labels)[g], categories=labels)},
        index=pd.Index(ids, name="case_id"),
    )
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "automated"),
        models=("m", "m2"),
    )


def run_one(sc: Scenario, seed: int, n_boot: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    scores = simulate(sc, rng)
    audit = Audit(scores, seed=seed, n_boot=n_boot, min_group_size=20)
    mu = BASE + np.array([0.0, 0.3, 1.0]) * sc.delta
    out: dict[str, float] = {}
    if sc.kind == "gap":
        r = audit.gap("dice", by="group", model="m")
        out["cover"] = r.gap.contains(sc.delta)
        out["miss_low"] = sc.delta < r.gap.lower
        out["miss_high"] = sc.delta > r.gap.upper
        out["width"] = r.gap.width
        out["bias"] = r.gap.estimate - sc.delta
        # the naive alternative: percentile interval of the replicated max - min
        g = audit.grouping("group")
        reps = audit._reps(g, [audit.series("dice", model="m", ruler="expert")], "mean")
        plug = audit._plugin_gap_reps(reps, 0, np.arange(3))
        lo, hi = np.quantile(plug, [0.025, 0.975])
        out["naive_cover"] = lo <= sc.delta <= hi
        bg = r.by_group
        out["group_cover"] = float(np.mean((bg["lower"] <= mu) & (mu <= bg["upper"])))
        gate = GapGate(metric="dice", by="group", model="m", max=sc.threshold)
        out["fail_bound"] = evaluate_gate(audit, gate).status == "failed"
        gate_e = GapGate(
            metric="dice", by="group", model="m", max=sc.threshold, decide_on="estimate"
        )
        out["fail_estimate"] = evaluate_gate(audit, gate_e).status == "failed"
    else:
        d = audit.ruler_distortion("dice", by="group", model="m", automated="automated")
        a = audit.amplification("dice", by="group", model="m2", baseline="m")
        truth = sc.scale - 1
        out["defined"] = d.defined
        out["dist_cover"] = d.distortion.contains(truth) if d.defined else math.nan
        out["dist_miss_low"] = truth < d.distortion.lower if d.defined else math.nan
        out["dist_miss_high"] = truth > d.distortion.upper if d.defined else math.nan
        out["hidden_cover"] = d.hidden_gap.contains((1 - sc.scale) * sc.delta)
        out["amp_cover"] = a.amplification.contains(truth) if a.defined else math.nan
        gate = RulerShrinkageGate(
            metric="dice", by="group", model="m", automated="automated", max=0.25
        )
        out["shrink_fail"] = evaluate_gate(audit, gate).status == "failed"
        out["shrink_pass"] = evaluate_gate(audit, gate).status == "passed"
    return out


def run_chunk(args: tuple[Scenario, list[int], int]) -> list[dict[str, float]]:
    sc, seeds, n_boot = args
    return [run_one(sc, s, n_boot) for s in seeds]


def scenarios() -> list[Scenario]:
    out = [
        Scenario("gap", "MAMA-MIA 349/754/400", d, threshold=0.05) for d in (0.0, 0.02, 0.05, 0.08)
    ]
    out += [Scenario("gap", "small 30/60/40", d, threshold=0.15) for d in (0.0, 0.05, 0.15, 0.25)]
    out += [Scenario("paired", "MAMA-MIA 349/754/400", 0.08, s) for s in (0.6, 1.0, 1.66)]
    out += [Scenario("paired", "MAMA-MIA 349/754/400", 0.04, 0.6)]
    out += [Scenario("paired", "small 30/60/40", 0.25, s) for s in (0.6, 1.66)]
    return out


def pct(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def summarise(rows: Iterable[tuple[Scenario, pd.DataFrame]]) -> str:
    gap_lines = [
        "| groups | true gap δ | SE of a pair diff | segfair coverage | misses below / above "
        "| naive percentile coverage | group-mean coverage | mean bias of estimate "
        "| gap gate limit | fail rate (bound) | fail rate (estimate) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    paired_lines = [
        "| groups | trusted gap δ | s (true distortion s−1) | defined | distortion coverage "
        "| misses below / above | hidden-gap coverage | amplification coverage "
        "| shrinkage gate (max 0.25): failed / passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sc, df in rows:
        n = SIZES[sc.sizes]
        se = SD_T * math.sqrt(1 / n[0] + 1 / n[2])
        if sc.kind == "gap":
            gap_lines.append(
                f"| {sc.sizes} | {sc.delta:g} | {se:.3f} | {pct(df['cover'].mean())} | "
                f"{pct(df['miss_low'].mean())} / {pct(df['miss_high'].mean())} | "
                f"{pct(df['naive_cover'].mean())} | {pct(df['group_cover'].mean())} | "
                f"{df['bias'].mean():+.4f} | {sc.threshold:g} | {pct(df['fail_bound'].mean())} | "
                f"{pct(df['fail_estimate'].mean())} |"
            )
        else:
            paired_lines.append(
                f"| {sc.sizes} | {sc.delta:g} | {sc.scale:g} ({sc.scale - 1:+.2f}) | "
                f"{pct(df['defined'].mean())} | {pct(df['dist_cover'].mean())} | "
                f"{pct(df['dist_miss_low'].mean())} / {pct(df['dist_miss_high'].mean())} | "
                f"{pct(df['hidden_cover'].mean())} | {pct(df['amp_cover'].mean())} | "
                f"{pct(df['shrink_fail'].mean())} / {pct(df['shrink_pass'].mean())} |"
            )
    return "\n".join(gap_lines) + "\n\n" + "\n".join(paired_lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulations per scenario")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--seed", type=int, default=20251101)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    all_sc = scenarios()
    seeds = np.random.SeedSequence(args.seed).generate_state(args.reps * len(all_sc))
    tasks = []
    for k, sc in enumerate(all_sc):
        mine = [int(s) for s in seeds[k * args.reps : (k + 1) * args.reps]]
        tasks += [(sc, mine[i : i + 50], args.n_boot) for i in range(0, len(mine), 50)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        chunks = list(pool.map(run_chunk, tasks))
    results: dict[Scenario, list[dict[str, float]]] = {sc: [] for sc in all_sc}
    for (sc, _, _), chunk in zip(tasks, chunks, strict=True):
        results[sc].extend(chunk)
    rows = [(sc, pd.DataFrame(results[sc]).astype(float)) for sc in all_sc]
    print(
        f"<!-- {args.reps} simulations per row, n_boot = {args.n_boot}, confidence 0.95, "
        f"seed {args.seed}, {time.perf_counter() - started:.0f} s -->\n"
    )
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
