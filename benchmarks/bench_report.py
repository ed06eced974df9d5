"""Time, size and memory of the audit report, from a MAMA-MIA-sized cohort to a million cases.

The score table is synthesised directly (no masks are written or read), so this measures the
report alone: the audit statistics behind it (``build_report``) and the three renderings. The
worst-case images need mask files and are left out (the section says why); each of them adds a
few kilobytes.

Two cohorts: ``mamamia`` (the default: 7 metrics, built row by row, for 1,500 cases) and
``large`` (:func:`large_scores`: vectorised, the shape of issue 18 — 2 models, 2 rulers, 3
metrics, the example repository's 3 attributes, capped and undefined values, missing
predictions and, with ``--expert-fraction`` below 1, a partial expert ruler).

Usage::

    python benchmarks/bench_report.py [--cases 1500] [--n-boot 2000] [--out DIR]
    python benchmarks/bench_report.py --cohort large --cases 100000 --n-boot 200

Prints the sizes, the build and render times, the peak RSS, and the HTML's element count (a
proxy for the time a browser takes to open it). Exits 1 when a report exceeds ``--max-mb`` (5 MB
by default).
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segfair.audit import Audit
from segfair.cohort.config import parse_config
from segfair.gates import parse_gates
from segfair.metrics.morphology import DESCRIPTORS
from segfair.planner import evaluate_gates
from segfair.report import build_report, write_reports
from segfair.scores import Scores

MODELS = ("trained_on_expert", "trained_on_automated")
RULERS = ("expert", "automated")
METRICS = ("dice", "iou", "precision", "sensitivity", "hd95", "assd", "nsd")
SITES = ("DUKE", "ISPY1", "ISPY2", "NACT")
ETHNICITIES = ("white", "african american", "asian", "hispanic", None)
#: What both cohorts share: the rulers and where the attributes come from.
COHORT: dict[str, Any] = {
    "trusted_ruler": "expert",
    "rulers": RULERS,
    "attribute_columns": {"age_group": "age", "ethnicity": "ethnicity", "site": "dataset"},
}


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
        models=MODELS,
        agreement=agreement,
        morphology=morphology,
        metadata=metadata,
        exclusions=exclusions,
        settings={"hd95_method": "max_directed", "cap": 150.0, "metrics": list(METRICS)},
        **COHORT,
    )


LARGE_MODELS = ("candidate", "previous_release")
LARGE_METRICS = ("dice", "hd95", "nsd")
LARGE_DESCRIPTORS = ("volume_ml", "sphericity", "components")


def _column(values: Sequence[str], codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=list(values))


def large_scores(n_cases: int, *, seed: int = 0, expert_fraction: float = 1.0) -> Scores:
    """A cohort of ``n_cases`` shaped like the example repository at scale, built with numpy
    alone (a million cases in seconds): models ``candidate`` and ``previous_release``, rulers
    ``expert`` (trusted; on ``expert_fraction`` of the cases, the rest recorded as exclusions of
    a partial ruler) and ``automated``, metrics dice, hd95 and nsd, attributes ``age_group``,
    ``ethnicity`` and ``site``, agreement of the automated labels and three descriptors.

    The younger patients get worse Dice on expert labels, which the automated labels hide; about
    0.5% of the (case, model, ruler) scores are a missed lesion (Dice 0, hd95 inf: capped), 0.3%
    an empty reference (hd95 and nsd NaN: undefined), and 3% of ``previous_release``'s
    predictions are missing (exclusions). Low-cardinality columns are categorical, as a store
    reading a million cases would give them.
    """
    rng = np.random.default_rng(seed)
    n = n_cases
    ids = np.array([f"case_{i:07d}" for i in range(n)], dtype=object)
    age = rng.normal(50, 11, n).clip(22, 85)
    youth = np.clip((55 - age) / 15, 0, 1)
    ethnicity = rng.choice(len(ETHNICITIES), n, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    site = np.arange(n) % len(SITES)
    truth = np.clip(rng.normal(0.80 - 0.07 * youth, 0.08), 0, 1)
    labelled = rng.random(n) < expert_fraction
    missing = rng.random(n) < 0.03
    empty = rng.random(n) < 0.003  # an empty reference: hd95 and nsd undefined
    blocks: list[tuple[np.ndarray, int, int, int, np.ndarray]] = []
    for m in range(len(LARGE_MODELS)):
        dice_t = np.clip(truth - 0.02 * m * youth + rng.normal(0, 0.02, n), 0, 1)
        dice_a = np.clip(dice_t + 0.05 * youth + rng.normal(0, 0.02, n), 0, 1)
        has = ~missing if m == 1 else np.ones(n, dtype=bool)
        for r, dice in enumerate((dice_t, dice_a)):
            missed = rng.random(n) < 0.005
            dice = np.where(missed, 0.0, dice)
            hd95 = np.where(missed, np.inf, 2.0 + 30 * (1 - dice) ** 2)
            nsd = np.clip(dice + rng.normal(0, 0.03, n), 0, 1)
            hd95[empty] = np.nan
            nsd[empty] = np.nan
            rows = has & (labelled if RULERS[r] == "expert" else True)
            for k, v in enumerate((dice, hd95, nsd)):
                blocks.append((np.flatnonzero(rows), m, r, k, v[rows]))
    case = np.concatenate([b[0] for b in blocks])
    size = [len(b[0]) for b in blocks]
    table = pd.DataFrame(
        {
            "case_id": ids[case],
            "model": _column(LARGE_MODELS, np.repeat([b[1] for b in blocks], size)),
            "ruler": _column(RULERS, np.repeat([b[2] for b in blocks], size)),
            "metric": _column(LARGE_METRICS, np.repeat([b[3] for b in blocks], size)),
            "value": np.concatenate([b[4] for b in blocks]),
        }
    )
    # the automated labels scored against the expert ones, where both exist
    both = np.flatnonzero(labelled)
    agree_dice = np.clip(0.93 - 0.03 * youth[both] + rng.normal(0, 0.02, len(both)), 0, 1)
    agree = (agree_dice, 1.0 + 2 * youth[both], np.clip(agree_dice + 0.03, 0, 1))
    agreement = pd.DataFrame(
        {
            "case_id": np.tile(ids[both], 3),
            "ruler": _column(RULERS, np.full(3 * len(both), 1)),
            "reference": _column(RULERS, np.zeros(3 * len(both), dtype=int)),
            "metric": _column(LARGE_METRICS, np.repeat(np.arange(3), len(both))),
            "value": np.concatenate(agree),
        }
    )
    volume = np.exp(rng.normal(0.0, 0.6, n) + 0.5 * youth)
    shapes = (
        volume,
        np.clip(rng.normal(0.85 - 0.08 * youth, 0.05), 0, 1),
        1.0 + rng.poisson(0.3 * youth),
    )
    morph_cases = [np.flatnonzero(labelled), np.arange(n)]  # expert masks, automated masks
    parts = [
        (cases, r, d, shape[cases])
        for r, cases in enumerate(morph_cases)
        for d, shape in enumerate(shapes)
    ]
    msize = [len(p[0]) for p in parts]
    morphology = pd.DataFrame(
        {
            "case_id": ids[np.concatenate([p[0] for p in parts])],
            "ruler": _column(RULERS, np.repeat([p[1] for p in parts], msize)),
            "descriptor": _column(LARGE_DESCRIPTORS, np.repeat([p[2] for p in parts], msize)),
            "value": np.concatenate([p[3] for p in parts]),
        }
    )
    index = pd.Index(ids, name="case_id")
    age_group = pd.cut(age, [-np.inf, 40, 55, np.inf], labels=["young", "middle", "older"])
    groups = pd.DataFrame(
        {
            "age_group": pd.Categorical(age_group, categories=["young", "middle", "older"]),
            "ethnicity": pd.Categorical.from_codes(
                np.where(ethnicity == len(ETHNICITIES) - 1, -1, ethnicity),
                categories=[e for e in ETHNICITIES if e],
            ),
            "site": _column(SITES, site),
        },
        index=index,
    )
    metadata = pd.DataFrame(
        {
            "age": age,
            "ethnicity": groups["ethnicity"].astype(object),
            "dataset": groups["site"].astype(object),
        },
        index=index,
    )
    left_out = [
        (np.flatnonzero(missing), "model", LARGE_MODELS[1], "prediction file missing"),
        (np.flatnonzero(~labelled), "ruler", "expert", "no label from this (partial) ruler"),
    ]
    exclusions = pd.DataFrame(
        {
            "case_id": np.concatenate([ids[c] for c, *_ in left_out]),
            "kind": np.repeat([k for _, k, _, _ in left_out], [len(c) for c, *_ in left_out]),
            "source": np.repeat([s for _, _, s, _ in left_out], [len(c) for c, *_ in left_out]),
            "reason": np.repeat([r for *_, r in left_out], [len(c) for c, *_ in left_out]),
        }
    )
    return Scores(
        table=table,
        groups=groups,
        models=LARGE_MODELS,
        agreement=agreement,
        morphology=morphology,
        metadata=metadata,
        exclusions=exclusions,
        **COHORT,
        settings={
            "hd95_method": "max_directed",
            "nsd_tolerance": 2.0,
            "cap": 150.0,
            "metrics": list(LARGE_METRICS),
        },
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


#: The example repository's gates (examples/model-repo/pyproject.toml) and a gap gate.
LARGE_GATES = [
    {"kind": "coverage", "by": "age_group", "min": 0.95},
    {
        "kind": "amplification",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "baseline": "previous_release",
        "max": 0.5,
        "on_inconclusive": "warn",
    },
    {
        "kind": "label_agreement",
        "by": "age_group",
        "automated": "automated",
        "metric": "dice",
        "min": 0.6,
    },
    {
        "kind": "gap",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "ruler": "expert",
        "max": 0.05,
    },
]


def html_elements(text: str) -> tuple[int, int]:
    """(elements, of which inside an SVG) of an HTML page: a proxy for the time to open it."""
    total = svg = 0
    depth = 0
    for m in re.finditer(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)", text):
        closing, tag = m.group(1), m.group(2).lower()
        if tag == "svg":
            depth += -1 if closing else 1
            if not closing:
                total += 1
                svg += 1
            continue
        if not closing:
            total += 1
            svg += depth > 0
    return total, svg


#: Appended to a copy of the page: at the load event, a forced layout (reading offsetHeight
#: computes every style and box), then the time since navigation start goes into the DOM that
#: ``--dump-dom`` prints.
_TIMER = (
    "<script>addEventListener('load',()=>{void document.body.offsetHeight;"
    "document.body.setAttribute('data-open-ms',String(performance.now()))})</script>"
)


CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


def chromium_open_seconds(page: Path, *, runs: int = 3) -> float | None:
    """The median time Chromium (headless) takes from navigation to the page parsed and laid
    out, or None without a ``chromium`` on the PATH. The page's CSP forbids scripts, so a
    copy without it, with a timer appended, is opened."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    text = re.sub(
        r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", page.read_text("utf-8")
    )
    copy = page.with_name(f".timed-{page.name}")
    copy.write_text(text.replace("</body>", _TIMER + "</body>"), encoding="utf-8")
    times = []
    try:
        for _ in range(runs):
            out = subprocess.run(
                [exe, *CHROMIUM_FLAGS, "--dump-dom", copy.resolve().as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            found = re.search(r'data-open-ms="([0-9.]+)"', out.stdout)
            if found:
                times.append(float(found.group(1)) / 1000)
    finally:
        copy.unlink()
    return statistics.median(times) if times else None


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=("mamamia", "large"), default="mamamia")
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--expert-fraction",
        type=float,
        default=1.0,
        help="large cohort: the share of cases with an expert label (a partial ruler below 1)",
    )
    parser.add_argument("--max-mb", type=float, default=5.0)
    parser.add_argument(
        "--chromium", action="store_true", help="time opening the HTML in headless Chromium"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the reports here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.cohort == "large":
        scores = large_scores(args.cases, seed=args.seed, expert_fraction=args.expert_fraction)
        gates, models = LARGE_GATES, LARGE_MODELS
    else:
        scores = synthetic_scores(args.cases, args.seed)
        gates, models = GATES, MODELS
    t_scores = time.perf_counter() - t0
    rss_scores = _peak_rss_mb()
    out = args.out or Path(tempfile.mkdtemp(prefix="segfair-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.csv").write_text("case_id\n")
    config = parse_config(
        {
            "cases": "cases.csv",
            "rulers": {r: f"{r}/{{case_id}}.nii.gz" for r in RULERS},
            "models": {m: f"{m}/{{case_id}}.nii.gz" for m in models},
            "n_boot": args.n_boot,
        },
        root=out,
    )
    audit = Audit(scores, seed=args.seed, n_boot=args.n_boot)
    t0 = time.perf_counter()
    results = evaluate_gates(audit, parse_gates(gates))
    t_gates = time.perf_counter() - t0
    rss_gates = _peak_rss_mb()
    t0 = time.perf_counter()
    doc = build_report(audit, results, config=config, seed=args.seed)
    t_build = time.perf_counter() - t0
    rss_build = _peak_rss_mb()
    t0 = time.perf_counter()
    written = write_reports(
        doc, html=out / "report.html", json_path=out / "report.json", md=out / "report.md"
    )
    t_write = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in written}
    elements, in_svg = html_elements((out / "report.html").read_text("utf-8"))
    print(
        f"cohort {args.cohort}: {args.cases:,} cases, {len(scores.table):,} score rows, "
        f"{len(scores.exclusions):,} exclusions, n_boot {args.n_boot}, "
        f"{len(scores.attributes)} attributes, {len(models)} models, {len(RULERS)} rulers"
    )
    print(f"synthesise scores   {t_scores:7.2f} s   peak RSS {rss_scores:7.0f} MiB")
    print(f"decide {len(results)} gates      {t_gates:7.2f} s   peak RSS {rss_gates:7.0f} MiB")
    print(f"build_report        {t_build:7.2f} s   peak RSS {rss_build:7.0f} MiB")
    print(f"write_reports       {t_write:7.2f} s   peak RSS {_peak_rss_mb():7.0f} MiB")
    for name, size in sizes.items():
        print(f"  {name:<28} {size / 1e6:8.3f} MB")
    print(f"HTML elements       {elements:,} ({in_svg:,} inside SVG)")
    if args.chromium:
        opened = chromium_open_seconds(out / "report.html")
        print(
            "Chromium: not found"
            if opened is None
            else f"Chromium opens the page in {opened:.2f} s (median of 3, headless)"
        )
    print(f"reports in {out}")
    too_big = [n for n, s in sizes.items() if s > args.max_mb * 1e6]
    if too_big:
        print(f"FAIL: {', '.join(too_big)} over {args.max_mb} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
