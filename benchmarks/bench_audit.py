"""How long the whole audit takes at MAMA-MIA scale.

1,500 cases × 2 rulers × 2 models × 3 attributes, 2,000 bootstrap resamples: every statistic of
:class:`segfair.audit.Audit` for every attribute, then a set of gates with Holm's procedure.

Run::

    python benchmarks/bench_audit.py [--cases 1500] [--n-boot 2000] [--repeat 3] [--statistic mean]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from segfair.audit import Audit
from segfair.gates import parse_gates
from segfair.planner import evaluate_gates
from segfair.scores import Scores

METRICS = ("dice", "iou", "hd95", "nsd")
ATTRIBUTES = ("age_group", "ethnicity", "site")


def synthetic_scores(n: int, seed: int = 0) -> Scores:
    rng = np.random.default_rng(seed)
    ids = [f"case{i:05d}" for i in range(n)]
    age = rng.integers(22, 85, n)
    age_group = np.where(age <= 40, "≤40", np.where(age <= 55, "40–55", ">55"))
    eth = rng.choice(
        ["white", "black", "asian", "hispanic", "unknown"], n, p=[0.55, 0.15, 0.1, 0.05, 0.15]
    )
    site = rng.choice(["DUKE", "ISPY1", "ISPY2", "NACT"], n)
    young = age_group == "≤40"
    rows = []
    for model, shift in (("trained_on_expert", 0.0), ("trained_on_automated", -0.03)):
        expert = np.clip(rng.beta(7, 3, n) + shift * young, 0, 1)
        automated = np.clip(expert + 0.02 * young + rng.normal(0, 0.03, n), 0, 1)
        for ruler, dice in (("expert", expert), ("automated", automated)):
            hd95 = np.where(dice < 0.05, np.inf, 60 * (1 - dice) + rng.gamma(2, 1, n))
            for metric, values in (
                ("dice", dice),
                ("iou", dice / (2 - dice)),
                ("hd95", hd95),
                ("nsd", np.clip(dice + 0.05, 0, 1)),
            ):
                rows.append(
                    pd.DataFrame(
                        {
                            "case_id": ids,
                            "model": model,
                            "ruler": ruler,
                            "metric": metric,
                            "value": values,
                        }
                    )
                )
    table = pd.concat(rows, ignore_index=True)
    index = pd.Index(ids, name="case_id")
    agreement = pd.concat(
        [
            pd.DataFrame(
                {
                    "case_id": ids,
                    "ruler": "automated",
                    "reference": "expert",
                    "metric": "dice",
                    "value": np.clip(rng.normal(0.85 - 0.07 * young, 0.08), 0, 1),
                }
            ),
            pd.DataFrame(
                {
                    "case_id": ids,
                    "ruler": "automated",
                    "reference": "expert",
                    "metric": "hd95",
                    "value": rng.gamma(2, 3 + 2 * young),
                }
            ),
        ],
        ignore_index=True,
    )
    morphology = pd.concat(
        [
            pd.DataFrame(
                {
                    "case_id": ids,
                    "ruler": "expert",
                    "descriptor": "volume_ml",
                    "value": rng.lognormal(2 + 0.5 * young, 0.8),
                }
            ),
            pd.DataFrame(
                {
                    "case_id": ids,
                    "ruler": "expert",
                    "descriptor": "sphericity",
                    "value": rng.beta(8, 3, n),
                }
            ),
        ],
        ignore_index=True,
    )
    return Scores(
        table=table,
        groups=pd.DataFrame(
            {
                "age_group": pd.Categorical(age_group, ["≤40", "40–55", ">55"]),
                "ethnicity": eth,
                "site": site,
            },
            index=index,
        ),
        trusted_ruler="expert",
        rulers=("expert", "automated"),
        models=("trained_on_expert", "trained_on_automated"),
        agreement=agreement,
        morphology=morphology,
        metadata=pd.DataFrame({"age": age, "dataset": site}, index=index),
        attribute_columns={"age_group": "age", "ethnicity": "ethnicity", "site": "dataset"},
    )


def everything(audit: Audit) -> int:
    """Every statistic for every attribute; returns how many were computed."""
    calls: list[Callable[[], object]] = []
    models = audit.scores.models
    for by in ATTRIBUTES:
        for model in models:
            for ruler in audit.scores.rulers:
                for metric in METRICS:
                    calls.append(
                        lambda m=metric, b=by, mo=model, r=ruler: audit.gap(
                            m, by=b, model=mo, ruler=r
                        )
                    )
                calls.append(
                    lambda b=by, mo=model, r=ruler: audit.dpd_dir("dice", by=b, model=mo, ruler=r)
                )
                calls.append(
                    lambda b=by, mo=model, r=ruler: audit.equity_scaled(
                        "dice", by=b, model=mo, ruler=r
                    )
                )
                calls.append(
                    lambda b=by, mo=model, r=ruler: audit.mamamia_fairness(by=b, model=mo, ruler=r)
                )
            for metric in METRICS:
                calls.append(
                    lambda m=metric, b=by, mo=model: audit.ruler_distortion(
                        m, by=b, model=mo, automated="automated"
                    )
                )
            calls.append(
                lambda b=by, mo=model: audit.controlled_gap(
                    "dice", by=b, model=mo, stratify="volume_ml"
                )
            )
            calls.append(lambda b=by, mo=model: audit.association("dice", attribute=b, model=mo))
        for metric in METRICS:
            calls.append(
                lambda m=metric, b=by: audit.amplification(
                    m, by=b, model=models[1], baseline=models[0]
                )
            )
        calls.append(lambda b=by: audit.label_audit(by=b))
        calls.append(lambda b=by: audit.morphology_shift(by=b))
        calls.append(lambda b=by: audit.coverage(by=b))
    calls.append(lambda: audit.by_group("dice", by=list(ATTRIBUTES[:2]), model=models[1]))
    for call in calls:
        call()
    return len(calls)


GATES = [
    {"kind": "gap", "metric": "dice", "by": by, "model": "trained_on_automated", "max": 0.05}
    for by in ATTRIBUTES
] + [
    {
        "kind": "ruler_shrinkage",
        "metric": "dice",
        "by": "age_group",
        "model": "trained_on_automated",
        "automated": "automated",
        "max": 0.25,
    },
    {
        "kind": "amplification",
        "metric": "dice",
        "by": "age_group",
        "model": "trained_on_automated",
        "baseline": "trained_on_expert",
        "max": 0.25,
    },
    {"kind": "label_agreement", "by": "age_group", "automated": "automated", "min": 0.75},
    {"kind": "dir", "metric": "dice", "by": "age_group", "model": "trained_on_automated"},
    {"kind": "coverage", "by": "age_group", "min": 0.95},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--statistic", choices=("mean", "median"), default="mean")
    args = parser.parse_args(argv)
    scores = synthetic_scores(args.cases)
    print(
        f"{args.cases} cases × {len(scores.rulers)} rulers × {len(scores.models)} models × "
        f"{len(ATTRIBUTES)} attributes × {len(METRICS)} metrics, n_boot = {args.n_boot}, "
        f"statistic = {args.statistic}"
    )
    best = {"audit": np.inf, "gates": np.inf}
    n_calls = 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        audit = Audit(scores, n_boot=args.n_boot, seed=0, statistic=args.statistic)
        n_calls = everything(audit)
        t1 = time.perf_counter()
        fresh = Audit(scores, n_boot=args.n_boot, seed=0, statistic=args.statistic)
        results = evaluate_gates(fresh, parse_gates(GATES, trusted_ruler="expert"), holm=True)
        t2 = time.perf_counter()
        best["audit"] = min(best["audit"], t1 - t0)
        best["gates"] = min(best["gates"], t2 - t1)
    print(
        f"all statistics ({n_calls} calls, fresh audit): {best['audit']:.2f} s "
        f"(best of {args.repeat})"
    )
    print(f"{len(GATES)} gates with Holm's procedure (fresh audit): {best['gates']:.2f} s")
    print("verdicts: " + ", ".join(f"{r.id}={r.status}" for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
