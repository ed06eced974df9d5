"""Benchmark of :func:`segfair.synth.make_cohort`, and the measurement behind its presets.

Timing (the default): wall time to write 200 cases at 128×128×64 and 20 cases at 512×512×160
with 1 and 2 worker processes::

    python benchmarks/bench_synth.py
    python benchmarks/bench_synth.py --sizes 200x128x128x64 --workers 1 2 4

Measurement: write cohorts of every preset and report, from the files on disk and with
``segfair.metrics.dice``, the mean Dice per age group of each model against each ruler, the gaps
(max − min of the group means), the ruler shrinkage and the amplification — the numbers the
presets' docstrings promise::

    python benchmarks/bench_synth.py --measure --n-cases 3000 --shape 96 96 48 --seeds 1 2 3

Each preset's promises (``segfair.synth.PRESETS[name].promises``) stated for the measured size
are checked and listed as ``ok`` or ``MISS``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segfair.io import load_mask
from segfair.metrics import dice
from segfair.synth import PRESETS, make_cohort

GROUPS = ("young", "middle", "older")
PAIRS = (
    ("trained_on_expert", "expert"),
    ("trained_on_expert", "automated"),
    ("trained_on_automated", "expert"),
    ("trained_on_automated", "automated"),
    ("automated", "expert"),  # the label audit: automated labels scored against expert ones
)
FOLDERS = {
    "expert": "segmentations/expert",
    "automated": "segmentations/automatic",
    "trained_on_expert": "predictions/trained_on_expert",
    "trained_on_automated": "predictions/trained_on_automated",
}


def _size(text: str) -> tuple[int, tuple[int, int, int]]:
    n, *dims = (int(v) for v in text.lower().split("x"))
    if len(dims) != 3:
        raise argparse.ArgumentTypeError(f"expected N_CASESxXxYxZ, e.g. 200x128x128x64: {text!r}")
    return n, (dims[0], dims[1], dims[2])


def _case_dice(args: tuple[str, str]) -> list[float]:
    root, case_id = args
    masks = {
        role: load_mask(Path(root) / folder / f"{case_id}.nii.gz").array
        for role, folder in FOLDERS.items()
    }
    return [dice(masks[a], masks[b]) for a, b in PAIRS]


def measure(root: Path, workers: int = 1) -> pd.DataFrame:
    """Per-case Dice of every pair in :data:`PAIRS` of a cohort written by ``make_cohort``."""
    table = pd.read_csv(root / "clinical_and_imaging_info.csv")
    ids = table["patient_id"].astype(str).tolist()
    jobs = [(str(root), i) for i in ids]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            values = list(pool.map(_case_dice, jobs, chunksize=32))
    else:
        values = [_case_dice(j) for j in jobs]
    out = pd.DataFrame(values, columns=[f"{a}|{b}" for a, b in PAIRS])
    out["age_group"] = pd.cut(
        table["age"], [-np.inf, 40, 55, np.inf], labels=list(GROUPS), right=True
    ).astype(str)
    return out


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """Group means, gaps and the derived ratios, keyed like ``segfair.synth.Promise.quantity``."""
    out: dict[str, float] = {}
    for col in scores.columns.drop("age_group"):
        means = scores.groupby("age_group")[col].mean().reindex(list(GROUPS))
        model = col.split("|")[0]
        for group, value in means.items():
            key = f"label({group})" if model == "automated" else f"mean({col}|{group})"
            out[key] = float(value)
        gap = float(means.max() - means.min())
        out["gap(label)" if model == "automated" else f"gap({col})"] = gap
        if model != "automated":
            out[f"sd({col})"] = float(scores[col].std())
    te = out["gap(trained_on_expert|expert)"]
    ta = out["gap(trained_on_automated|expert)"]
    out["shrinkage"] = 1 - out["gap(trained_on_automated|automated)"] / ta if ta else float("nan")
    out["distortion(trained_on_expert)"] = (
        out["gap(trained_on_expert|automated)"] / te - 1 if te else float("nan")
    )
    out["amplification"] = ta / te - 1 if te else float("nan")
    return out


def run_measure(args: argparse.Namespace) -> int:
    rows = []
    for preset in args.presets:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                start = time.perf_counter()
                make_cohort(
                    Path(tmp) / "c",
                    n_cases=args.n_cases,
                    shape=tuple(args.shape),
                    preset=preset,
                    seed=seed,
                    workers=args.workers,
                )
                scores = measure(Path(tmp) / "c", workers=args.workers)
                took = time.perf_counter() - start
            summary = summarise(scores)
            rows.append({"preset": preset, "seed": seed, **summary})
            print(
                f"\n== preset {preset!r}, seed {seed}, n={args.n_cases}, "
                f"shape {'x'.join(map(str, args.shape))} ({took:.1f} s)"
            )
            print(
                f"{'model|ruler':34s} {'young':>7s} {'middle':>7s} {'older':>7s} "
                f"{'gap':>7s} {'sd':>6s}"
            )
            for a, b in PAIRS:
                col = f"{a}|{b}"
                if a == "automated":
                    means = [summary[f"label({g})"] for g in GROUPS]
                    gap, sd = summary["gap(label)"], float(scores[col].std())
                else:
                    means = [summary[f"mean({col}|{g})"] for g in GROUPS]
                    gap, sd = summary[f"gap({col})"], summary[f"sd({col})"]
                print(
                    f"{col:34s} " + " ".join(f"{m:7.3f}" for m in means) + f" {gap:7.3f} {sd:6.3f}"
                )
            print(
                f"shrinkage of trained_on_automated's gap on automated labels: "
                f"{summary['shrinkage']:+.0%}; ruler distortion for trained_on_expert: "
                f"{summary['distortion(trained_on_expert)']:+.0%}; amplification: "
                f"{summary['amplification']:+.0%}"
            )
            for promise in PRESETS[preset].promises:
                if promise.n_cases <= args.n_cases and tuple(promise.shape) == tuple(args.shape):
                    value = summary[promise.quantity]
                    verdict = "ok  " if promise.low <= value <= promise.high else "MISS"
                    print(
                        f"  {verdict} {promise.quantity:45s} {value:7.3f} in "
                        f"[{promise.low:g}, {promise.high:g}] (promised at n ≥ "
                        f"{promise.n_cases})"
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if len(args.seeds) > 1:
        frame = pd.DataFrame(rows)
        keys = [c for c in frame.columns if c.startswith(("gap(", "shrink", "ampl", "distortion"))]
        print("\n== across seeds: min / mean / max")
        for preset, sub in frame.groupby("preset", sort=False):
            for key in keys:
                v = sub[key]
                print(f"{preset:7s} {key:45s} {v.min():7.3f} {v.mean():7.3f} {v.max():7.3f}")
    return 0


def run_timing(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    print(
        f"{'cases':>6s} {'shape':>12s} {'workers':>8s} {'seconds':>9s} {'ms/case':>9s} "
        f"{'MB written':>11s}"
    )
    for n, shape in args.sizes:
        for workers in args.workers:
            tmp = Path(tempfile.mkdtemp(dir=args.tmp))
            try:
                start = time.perf_counter()
                make_cohort(tmp / "c", n_cases=n, shape=shape, preset=args.preset, workers=workers)
                took = time.perf_counter() - start
                size = sum(p.stat().st_size for p in (tmp / "c").rglob("*") if p.is_file())
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            results.append({"n_cases": n, "shape": shape, "workers": workers, "seconds": took})
            print(
                f"{n:6d} {'x'.join(map(str, shape)):>12s} {workers:8d} {took:9.2f} "
                f"{1000 * took / n:9.1f} {size / 1e6:11.1f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true", help="measure the presets' Dice")
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=_size,
        default=[_size("200x128x128x64"), _size("20x512x512x160")],
        help="timing: cohorts as N_CASESxXxYxZ",
    )
    parser.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[1, 2],
        help="timing: worker counts to compare; measure: the first is used",
    )
    parser.add_argument("--preset", default="hidden", choices=sorted(PRESETS))
    parser.add_argument(
        "--presets",
        nargs="+",
        default=list(PRESETS),
        choices=list(PRESETS),
        help="measure: presets to measure",
    )
    parser.add_argument("--n-cases", type=int, default=2000, help="measure: cases per cohort")
    parser.add_argument(
        "--shape", nargs=3, type=int, default=[48, 48, 24], help="measure: volume shape"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="measure: seeds")
    parser.add_argument("--tmp", default=None, help="directory for the temporary cohorts")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.measure:
        args.workers = args.workers[0]
        return run_measure(args)
    return run_timing(args)


if __name__ == "__main__":
    sys.exit(main())
