"""Time and size of the audit report for a MAMA-MIA-sized cohort (1,500 cases by default).

The score table is synthesised directly (no masks are written or read), so this measures the
report alone: the audit statistics behind it (``build_report``) and the three renderings. The
worst-case images need mask files and are left out (the section says why); each of them adds a
few kilobytes.

Usage::

    python benchmarks/bench_report.py [--cases 1500] [--n-boot 2000] [--out DIR]

Exits 1 when a report exceeds ``--max-mb`` (5 MB by default).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from segfair.audit import Audit
from segfair.cohort.config import parse_config
from segfair.gates import parse_gates
from segfair.metrics.morphology import DESCRIPTORS
from segfair.planner import evaluate_gates
from segfair.report import build_report, render_html, render_json, render_markdown
from segfair.scores import Scores

MODELS = ("trained_on_expert", "trained_on_automated")
RULERS = ("expert", "automated")
METRICS = ("dice", "iou", "precision", "sensitivity", "hd95", "assd", "nsd")
SITES = ("DUKE", "ISPY1", "ISPY2", "NACT")
ETHNICITIES = ("white", "african american", "asian", "hispanic", None)


def synthetic_scores(n_cases: int, seed: int) -> Scores:
    """A cohort whose younger patients get worse Dice on expert labels, hidden by the automated
    labels (the "biased ruler"), with a few missing predictions."""
    rng = np.random.default_rng(seed)
    ids = [f"{SITES[i % 4]}_{i:05d}" for i in range(n_cases)]
    age = rng.normal(50, 11, n_cases).clip(22, 85)
    youth = np.clip((55 - age) / 15, 0, 1)
    ethnicity = rng.choice(len(ETHNICITIES), n_cases, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    site = np.array([SITES[i % 4] for i in range(n_cases)])
    volume = np.exp(rng.normal(0.0, 0.6, n_cases) + 0.5 * youth)
    rows: list[tuple[str, str, str, str, float]] = []
    missing = set(rng.choice(n_cases, size=max(n_cases // 30, 1), replace=False).tolist())
    for i, cid in enumerate(ids):
        truth = float(np.clip(rng.normal(0.80 - 0.07 * youth[i], 0.08), 0, 1))
        label_bias = 0.05 * youth[i]  # the automated labels share the model's error on the young
        for m, model in enumerate(MODELS):
            if m == 1 and i in missing:
                continue
            dice_t = float(np.clip(truth - 0.02 * m * youth[i] + rng.normal(0, 0.02), 0, 1))
            dice_a = float(np.clip(dice_t + label_bias + rng.normal(0, 0.02), 0, 1))
            for ruler, d in zip(RULERS, (dice_t, dice_a), strict=True):
                for metric in METRICS:
                    if metric == "hd95":
                        v = float("inf") if d < 0.05 else 2.0 + 30 * (1 - d) ** 2
                    elif metric == "assd":
                        v = 0.5 + 8 * (1 - d) ** 2
                    else:
                        v = float(np.clip(d + rng.normal(0, 0.03), 0, 1))
                    rows.append((cid, model, ruler, metric, v))
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    agreement = pd.DataFrame(
        [
            (
                cid,
                "automated",
                "expert",
                metric,
                float(np.clip(0.93 - 0.03 * youth[i] + rng.normal(0, 0.02), 0, 1))
                if metric != "hd95"
                else 1.0 + 2 * youth[i],
            )
            for i, cid in enumerate(ids)
            for metric in ("dice", "hd95")
        ],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    morph = []
    for i, cid in enumerate(ids):
        for ruler in RULERS:
            values = {
                "volume_ml": volume[i],
                "surface_area_mm2": 480 * volume[i] ** (2 / 3),
                "sphericity": float(np.clip(rng.normal(0.85 - 0.08 * youth[i], 0.05), 0, 1)),
                "components": float(1 + rng.poisson(0.3 * youth[i])),
                "elongation": float(np.clip(rng.normal(0.8, 0.1), 0, 1)),
                "flatness": float(np.clip(rng.normal(0.7, 0.1), 0, 1)),
            }
            morph += [(cid, ruler, name, float(values[name])) for name in DESCRIPTORS]
    morphology = pd.DataFrame(morph, columns=["case_id", "ruler", "descriptor", "value"])
    index = pd.Index(ids, name="case_id")
    age_group = pd.cut(age, [-np.inf, 40, 55, np.inf], labels=["young", "middle", "older"])
    groups = pd.DataFrame(
        {
            "age_group": pd.Categorical(age_group, categories=["young", "middle", "older"]),
            "ethnicity": pd.Categorical(
                [ETHNICITIES[e] for e in ethnicity], categories=[e for e in ETHNICITIES if e]
            ),
            "site": pd.Categorical(site, categories=list(SITES)),
        },
        index=index,
    )
    metadata = pd.DataFrame({"age": age, "dataset": site}, index=index)
    exclusions = pd.DataFrame(
        [(ids[i], "model", MODELS[1], "prediction file missing") for i in sorted(missing)],
        columns=["case_id", "kind", "source", "reason"],
    )
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=RULERS,
        models=MODELS,
        agreement=agreement,
        morphology=morphology,
        metadata=metadata,
        attribute_columns={"age_group": "age", "ethnicity": "ethnicity", "site": "dataset"},
        exclusions=exclusions,
        settings={"hd95_method": "max_directed", "cap": 150.0, "metrics": list(METRICS)},
    )


GATES = [
    {
        "kind": "gap",
        "metric": "dice",
        "by": "age_group",
        "model": "trained_on_automated",
        "ruler": "expert",
        "max": 0.05,
    },
    {
        "kind": "ruler_shrinkage",
        "metric": "dice",
        "by": "age_group",
        "model": "trained_on_automated",
        "automated": "automated",
        "trusted": "expert",
        "max": 0.25,
    },
    {
        "kind": "amplification",
        "metric": "dice",
        "by": "age_group",
        "model": "trained_on_automated",
        "baseline": "trained_on_expert",
        "ruler": "expert",
        "max": 0.25,
    },
    {"kind": "coverage", "by": "age_group", "min": 0.95},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-mb", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None, help="keep the reports here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    scores = synthetic_scores(args.cases, args.seed)
    t_scores = time.perf_counter() - t0
    out = args.out or Path(tempfile.mkdtemp(prefix="segfair-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.csv").write_text("case_id\n")
    config = parse_config(
        {
            "cases": "cases.csv",
            "rulers": {r: f"{r}/{{case_id}}.nii.gz" for r in RULERS},
            "models": {m: f"{m}/{{case_id}}.nii.gz" for m in MODELS},
            "n_boot": args.n_boot,
        },
        root=out,
    )
    audit = Audit(scores, seed=args.seed, n_boot=args.n_boot)
    t0 = time.perf_counter()
    results = evaluate_gates(audit, parse_gates(GATES))
    t_gates = time.perf_counter() - t0
    t0 = time.perf_counter()
    doc = build_report(audit, results, config=config, seed=args.seed)
    t_build = time.perf_counter() - t0
    timings = {}
    sizes = {}
    for name, render in (("html", render_html), ("json", render_json), ("md", render_markdown)):
        t0 = time.perf_counter()
        text = render(doc)
        timings[name] = time.perf_counter() - t0
        path = out / f"report.{name}"
        path.write_text(text, encoding="utf-8")
        sizes[name] = path.stat().st_size
    print(
        f"cohort: {args.cases} cases, {len(scores.table):,} score rows, n_boot {args.n_boot}, "
        f"{len(scores.attributes)} attributes, {len(MODELS)} models, {len(RULERS)} rulers"
    )
    print(f"synthesise scores   {t_scores:7.2f} s")
    print(f"decide {len(results)} gates      {t_gates:7.2f} s")
    print(f"build_report        {t_build:7.2f} s")
    for name in timings:
        print(f"render_{name:<5}        {timings[name]:7.2f} s   {sizes[name] / 1e6:6.3f} MB")
    print(f"reports in {out}")
    too_big = [n for n, s in sizes.items() if s > args.max_mb * 1e6]
    if too_big:
        print(f"FAIL: {', '.join(too_big)} over {args.max_mb} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
