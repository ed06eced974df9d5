"""Prediction-powered gap intervals against known populations, and on the synthetic presets.

**Simulation** (the default). Each replication draws a finite cohort of ``--n-cases`` cases from
a known superpopulation: three groups of unequal size (55% / 30% / 15%), trusted Dice scores
skewed and capped like real ones (a Beta near 0.8 per group, 3% misses scored 0), and an
automated ruler that is a biased, group-dependent function of the trusted score plus noise
tuned so that the two correlate at ``ρ`` (a miss scores 0 on both). The true gap is the
superpopulation's ``max − min`` of the group means (known in closed form). A sample of the
cases keeps its trusted score: uniform (a simple random sample of ``f·N`` cases) or stratified
(the smallest group at ``3f``, the others filling ``f·N``; design weights passed to the Audit).
Per scenario (ρ × f × sample) the table gives, for the prediction-powered gap (estimator
``"ppi"``) and the labelled-only gap, the coverage of the 95% interval, how often each bound
errs (upper bound below the truth: a gap gate would wrongly pass; lower bound above it), the
mean width, and how many times narrower the prediction-powered interval is. Monte-Carlo error
of a 95% coverage over R replications: ``sqrt(.95·.05/R)`` (0.7% at R = 1,000).

**Presets** (``--presets``). The ``hidden`` and ``parikh`` presets are scored once with every
expert label; each draw keeps 15% of the expert labels (uniform); the table gives how often the
prediction-powered gap interval contains the all-labels gap, and the widths.

Run (the numbers in docs/statistics.md)::

    nice -n 10 python benchmarks/bench_ppi.py --reps 1000 --n-boot 1000 --workers 2
    nice -n 10 python benchmarks/bench_ppi.py --presets --draws 200 --n-boot 1000 --workers 2

A quick look: ``--reps 50 --rho 0.8 --frac 0.1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segfair.audit import Audit
from segfair.scores import Scores

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("a", "b", "c")
SHARES = np.array([0.55, 0.30, 0.15])
#: per group: the mean Dice of a hit, the Beta's concentration, the automated ruler's offset
#: and slope (a biased, group-dependent ruler: it flatters group "c", squeezes "a")
HIT_MEAN = np.array([0.84, 0.80, 0.76])
CONCENTRATION = 20.0
OFFSET = np.array([0.03, 0.00, 0.06])
SLOPE = np.array([0.75, 0.70, 0.85])
MISS = 0.03
RHOS = (0.5, 0.65, 0.8, 0.95)
FRACS = (0.05, 0.10, 0.20)
SAMPLES = ("uniform", "stratified")
MODEL, BY = "m", "group"


def true_means() -> np.ndarray:
    """The superpopulation's trusted group means (a miss scores 0)."""
    return (1 - MISS) * HIT_MEAN


def draw_trusted(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Group codes and trusted scores of ``n`` cases drawn from the superpopulation."""
    g = rng.choice(len(GROUPS), size=n, p=SHARES)
    m = HIT_MEAN[g]
    t = rng.beta(m * CONCENTRATION, (1 - m) * CONCENTRATION)
    t = np.where(rng.random(n) < MISS, 0.0, t)
    return g, t


def automated(t: np.ndarray, g: np.ndarray, sigma: float, eps: np.ndarray) -> np.ndarray:
    """The automated ruler's score: biased per group, noisy, capped to [0, 1]; 0 on a miss."""
    a = OFFSET[g] + SLOPE[g] * t + (1 - SLOPE[g]) * 0.8 + sigma * eps
    return np.where(t == 0.0, 0.0, np.clip(a, 0.0, 1.0))


def tune_sigma(rho: float) -> float:
    """The noise level at which trusted and automated scores correlate at ``rho`` (bisection
    on a large draw with a fixed seed)."""
    rng = np.random.default_rng(12345)
    g, t = draw_trusted(rng, 400_000)
    eps = rng.standard_normal(len(t))
    lo, hi = 0.0, 2.0
    for _ in range(50):
        mid = (lo + hi) / 2
        r = np.corrcoef(t, automated(t, g, mid, eps))[0, 1]
        lo, hi = (mid, hi) if r > rho else (lo, mid)
    return (lo + hi) / 2


def sample(
    rng: np.random.Generator, g: np.ndarray, frac: float, kind: str
) -> tuple[np.ndarray, pd.Series | None]:
    """Which cases keep their trusted label, and the design weights (stratified only)."""
    n_cases = len(g)
    if kind == "uniform":
        keep = np.zeros(n_cases, dtype=bool)
        keep[rng.choice(n_cases, size=round(frac * n_cases), replace=False)] = True
        return keep, None
    small = len(GROUPS) - 1
    n_small = int((g == small).sum())
    take_small = min(n_small, round(3 * frac * n_small))
    rest = round(frac * n_cases) - take_small
    take = {small: take_small}
    others = [k for k in range(len(GROUPS)) if k != small]
    n_others = sum(int((g == k).sum()) for k in others)
    for k in others:
        take[k] = round(rest * int((g == k).sum()) / n_others)
    keep = np.zeros(n_cases, dtype=bool)
    weights = np.ones(n_cases)
    for k, m in take.items():
        idx = np.flatnonzero(g == k)
        keep[rng.choice(idx, size=m, replace=False)] = True
        weights[idx] = len(idx) / max(m, 1)
    return keep, pd.Series(weights, index=case_ids(n_cases))


def case_ids(n: int) -> list[str]:
    return [f"c{i:05d}" for i in range(n)]


def partial_scores(g: np.ndarray, t: np.ndarray, a: np.ndarray, keep: np.ndarray) -> Scores:
    """Scores with the automated ruler on every case and the expert ruler on ``keep``."""
    ids = np.array(case_ids(len(g)))
    rows = [
        pd.DataFrame({"case_id": ids, "ruler": "auto", "value": a}),
        pd.DataFrame({"case_id": ids[keep], "ruler": "expert", "value": t[keep]}),
    ]
    groups = pd.DataFrame({BY: np.array(GROUPS)[g]}, index=pd.Index(ids, name="case_id"))
    return Scores(
        table=pd.concat(rows, ignore_index=True).assign(model=MODEL, metric="dice"),
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=(MODEL,),
    )


def _interval(e: Any) -> tuple[float, float, float]:
    return float(e.estimate), float(e.lower), float(e.upper)


def replication(job: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One cohort, every scenario of the run on it (the cohort is shared, the samples and the
    automated noise are drawn per scenario)."""
    r, cfg = job
    rng = np.random.default_rng([r, 2026])
    g, t = draw_trusted(rng, cfg["n_cases"])
    out = []
    for rho, frac, kind in itertools.product(cfg["rhos"], cfg["fracs"], cfg["samples"]):
        srng = np.random.default_rng([r, 2026, round(rho * 100), round(frac * 100), len(kind)])
        a = automated(t, g, cfg["sigma"][str(rho)], srng.standard_normal(len(t)))
        keep, w = sample(srng, g, frac, kind)
        audit = Audit(partial_scores(g, t, a, keep), n_boot=cfg["n_boot"], seed=r, design_weights=w)
        row: dict[str, Any] = {"rho": rho, "frac": frac, "sample": kind, "rep": r}
        for est in ("labelled", "ppi"):
            gap = audit.with_estimator(est).gap("dice", by=BY, model=MODEL).gap
            row[est] = _interval(gap)
        out.append(row)
    return out


def summarise(rows: list[dict[str, Any]], truth: float) -> list[dict[str, Any]]:
    table = []
    key = lambda x: (x["rho"], x["frac"], x["sample"])  # noqa: E731
    for (rho, frac, kind), grp in itertools.groupby(sorted(rows, key=key), key=key):
        grp = list(grp)
        entry: dict[str, Any] = {"rho": rho, "frac": frac, "sample": kind, "reps": len(grp)}
        for est in ("labelled", "ppi"):
            v = np.array([x[est] for x in grp], dtype=float)
            e, lo, hi = v[:, 0], v[:, 1], v[:, 2]
            ok = np.isfinite(lo) & np.isfinite(hi)
            entry[est] = {
                "no_interval": int((~ok).sum()),
                "coverage": float(np.mean((lo[ok] <= truth) & (truth <= hi[ok]))),
                "upper_below": float(np.mean(hi[ok] < truth)),
                "lower_above": float(np.mean(lo[ok] > truth)),
                "width": float(np.mean(hi[ok] - lo[ok])),
                "bias": float(np.mean(e) - truth),
            }
        both = np.array(
            [
                (x["ppi"][2] - x["ppi"][1]) / (x["labelled"][2] - x["labelled"][1])
                for x in grp
                if all(math.isfinite(v) for v in (*x["ppi"][1:], *x["labelled"][1:]))
            ]
        )
        entry["narrower"] = entry["labelled"]["width"] / entry["ppi"]["width"]
        # a replication's PPI interval wider than its labelled-only one by more than 10%
        entry["ppi_wider_10pct"] = float(np.mean(both > 1.1)) if len(both) else math.nan
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    print(
        "| ρ | labelled | sample | PPI covers | upper < truth | lower > truth | PPI width | "
        "labelled covers | upper < truth | lower > truth | labelled width | narrower | "
        "PPI >10% wider |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in table:
        p, lab = e["ppi"], e["labelled"]
        print(
            f"| {e['rho']} | {e['frac']:.0%} | {e['sample']} | {p['coverage']:.1%} | "
            f"{p['upper_below']:.1%} | {p['lower_above']:.1%} | {p['width']:.4f} | "
            f"{lab['coverage']:.1%} | {lab['upper_below']:.1%} | {lab['lower_above']:.1%} | "
            f"{lab['width']:.4f} | {e['narrower']:.2f}× | {e['ppi_wider_10pct']:.1%} |"
        )


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    global MISS  # the workers are forked after this: they see it
    MISS = args.miss
    truth_means = true_means()
    truth = float(truth_means.max() - truth_means.min())
    sigma = {str(rho): tune_sigma(rho) for rho in args.rho}
    cfg = {
        "n_cases": args.n_cases,
        "n_boot": args.n_boot,
        "rhos": args.rho,
        "fracs": args.frac,
        "samples": args.sample,
        "sigma": sigma,
        "miss": MISS,
    }
    print(
        f"true gap {truth:.4f}; noise per ρ: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in sigma.items())
    )
    jobs = [(r, cfg) for r in range(args.reps)]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        for k, part in enumerate(pool.imap_unordered(replication, jobs, chunksize=4)):
            rows += part
            if (k + 1) % max(1, args.reps // 10) == 0:
                print(
                    f"  {k + 1}/{args.reps} replications, {time.perf_counter() - t0:.0f}s",
                    flush=True,
                )
    table = summarise(rows, truth)
    print_table(table)
    return {"truth": truth, "config": {**cfg, "reps": args.reps}, "scenarios": table}


# -- presets ---------------------------------------------------------------------------------


def keep_expert(scores: Scores, keep: set[str]) -> Scores:
    t = scores.table
    table = t[(t["ruler"] != scores.trusted_ruler) | t["case_id"].isin(keep)]
    agreement = scores.agreement[scores.agreement["case_id"].isin(keep)]
    return dataclasses.replace(scores, table=table, agreement=agreement)


_PRESET: dict[str, Any] = {}


def preset_draw(job: tuple[int, str, float, int]) -> dict[str, Any]:
    r, name, frac, n_boot = job
    scores, by, model, ids = _PRESET[name]
    rng = np.random.default_rng([r, 15])
    keep = set(ids[rng.choice(len(ids), size=round(frac * len(ids)), replace=False)])
    audit = Audit(keep_expert(scores, keep), n_boot=n_boot, seed=r, proxy="automated")
    row: dict[str, Any] = {"preset": name, "draw": r}
    for est in ("labelled", "ppi"):
        row[est] = _interval(audit.with_estimator(est).gap("dice", by=by, model=model).gap)
    return row


def presets(args: argparse.Namespace) -> dict[str, Any]:
    from segfair.session import SegfairSession
    from segfair.synth import make_cohort

    out: dict[str, Any] = {"config": vars(args) | {"frac": 0.15}, "presets": []}
    for name in ("hidden", "parikh"):
        root = Path(args.out) / name
        make_cohort(
            root, n_cases=args.n_cases, shape=(24, 24, 12), preset=name, seed=0, overwrite=True
        )
        session = SegfairSession.from_path(root / "segfair.toml")
        scores = session.scores
        by = next(a for a in scores.groups.columns if a in ("age_group", "sex", "site"))
        model = next((m for m in scores.models if m == "trained_on_automated"), scores.models[0])
        full = Audit(scores, n_boot=args.n_boot).gap("dice", by=by, model=model).gap
        ids = np.array(scores.groups.index.astype(str))
        _PRESET[name] = (scores, by, model, ids)
        jobs = [(r, name, 0.15, args.n_boot) for r in range(args.draws)]
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            rows = pool.map(preset_draw, jobs, chunksize=4)
        entry: dict[str, Any] = {
            "preset": name,
            "n_cases": args.n_cases,
            "by": by,
            "model": model,
            "all_labels_gap": _interval(full),
            "draws": len(rows),
        }
        for est in ("labelled", "ppi"):
            v = np.array([x[est] for x in rows], dtype=float)
            ok = np.isfinite(v[:, 1]) & np.isfinite(v[:, 2])
            entry[est] = {
                "no_interval": int((~ok).sum()),
                "contains_all_labels_gap": float(
                    np.mean((v[ok, 1] <= full.estimate) & (full.estimate <= v[ok, 2]))
                ),
                "width": float(np.mean(v[ok, 2] - v[ok, 1])),
            }
        entry["narrower"] = entry["labelled"]["width"] / entry["ppi"]["width"]
        out["presets"].append(entry)
    print(
        "| preset | by | all-labels gap | PPI contains it | PPI width | labelled contains it | "
        "labelled width | narrower |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for e in out["presets"]:
        g = e["all_labels_gap"]
        print(
            f"| {e['preset']} | {e['by']} | {g[0]:.4f} [{g[1]:.4f}, {g[2]:.4f}] | "
            f"{e['ppi']['contains_all_labels_gap']:.1%} | {e['ppi']['width']:.4f} | "
            f"{e['labelled']['contains_all_labels_gap']:.1%} | {e['labelled']['width']:.4f} | "
            f"{e['narrower']:.2f}× |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", action="store_true", help="the hidden and parikh presets")
    ap.add_argument("--reps", type=int, default=1000, help="replications a scenario")
    ap.add_argument("--draws", type=int, default=200, help="label draws a preset (--presets)")
    ap.add_argument("--n-cases", type=int, default=None, help="cases (1200; presets: 600)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rho", type=float, nargs="+", default=list(RHOS))
    ap.add_argument("--frac", type=float, nargs="+", default=list(FRACS))
    ap.add_argument("--sample", nargs="+", choices=SAMPLES, default=list(SAMPLES))
    ap.add_argument("--miss", type=float, default=MISS, help="share of misses (0 on both rulers)")
    ap.add_argument("--out", default="/tmp/segfair_bench_ppi", help="preset cohorts go here")
    ap.add_argument("--save", default=None, help="JSON file (default: benchmarks/results/)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.presets:
        args.n_cases = args.n_cases or 600
        result = presets(args)
        name = "ppi_presets.json"
    else:
        args.n_cases = args.n_cases or 1200
        result = simulate(args)
        name = "ppi_simulation.json"
    seconds = time.perf_counter() - t0
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    result["seconds"] = round(seconds, 1)
    result["peak_rss_mib"] = round(rss / 1024, 1)
    print(f"total {seconds:.0f}s, peak RSS of one process {rss / 1024:.0f} MiB")
    target = Path(args.save) if args.save else (RESULTS / name if RESULTS.is_dir() else None)
    if target is not None:
        target.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"saved {target}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
