"""A million cases of precomputed scores: gates, statistics and reports in bounded time and memory.

Issue 18's target: 1,000,000 cases × 2 models × 2 rulers × 3 metrics of precomputed per-case
scores — loaded, every gate of the example configuration (``examples/model-repo``) decided, the
statistics and the reports (HTML, JSON, Markdown) built — in ≤ 3 minutes and ≤ 2 GiB peak
memory on 2 cores; 100,000 cases in ≤ 20 s.

The scores are synthetic (:func:`million_scores`: the example's models, rulers, attributes and
metrics; a younger group scored worse, some missed lesions with infinite HD95, some undefined
values and some cases without an automated mask). Each size runs in a fresh process so that peak
memory (``ru_maxrss``) is its own. Phases are timed: scores, gates, report.

    python benchmarks/bench_million.py [--cases 100000 1000000] [--n-boot 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segfair.scores import Scores

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "model-repo"
MODELS = ("candidate", "previous_release")
RULERS = ("expert", "automated")
METRICS = ("dice", "hd95", "nsd")
DESCRIPTORS = ("volume_ml", "surface_mm2", "sphericity", "components", "elongation", "flatness")


def _long(ids: pd.Categorical, columns: dict[str, Any], values: np.ndarray) -> pd.DataFrame:
    """One long table of ``len(ids) × k`` rows: the case ids repeated per block of ``values``."""
    k = len(values) // len(ids)
    frame = {"case_id": pd.Categorical.from_codes(np.tile(ids.codes, k), ids.categories)}
    for name, per_block in columns.items():
        cats = list(dict.fromkeys(per_block))
        codes = np.repeat([cats.index(v) for v in per_block], len(ids)).astype(np.int8)
        frame[name] = pd.Categorical.from_codes(codes, cats)
    frame["value"] = values
    return pd.DataFrame(frame)


def million_scores(n: int, seed: int = 0) -> Scores:
    """Synthetic per-case scores of ``n`` cases named and grouped like the example repository."""
    rng = np.random.default_rng(seed)
    ids = pd.Categorical([f"case{i:07d}" for i in range(n)])
    age = rng.integers(22, 85, n)
    young = age < 40
    ethnicity = rng.choice(
        ["white", "black", "asian", "hispanic", "unknown"], n, p=[0.55, 0.15, 0.1, 0.05, 0.15]
    )
    site = rng.choice(["DUKE", "ISPY1", "ISPY2", "NACT"], n)
    blocks: list[tuple[str, str, str]] = []
    values: list[np.ndarray] = []
    for model, shift in zip(MODELS, (-0.03, 0.0), strict=True):
        expert = np.clip(rng.beta(7, 3, n) + shift * young, 0, 1)
        automated = np.clip(expert + 0.02 * young + rng.normal(0, 0.03, n), 0, 1)
        for ruler, dice in zip(RULERS, (expert, automated), strict=True):
            hd95 = np.where(dice < 0.05, np.inf, 60 * (1 - dice) + rng.gamma(2, 1, n))
            nsd = np.clip(dice + 0.05, 0, 1)
            nsd[rng.random(n) < 0.001] = np.nan  # an empty pair: undefined
            for metric, v in zip(METRICS, (dice, hd95, nsd), strict=True):
                blocks.append((model, ruler, metric))
                values.append(v)
    table = _long(
        ids,
        {
            "structure": ["foreground"] * len(blocks),
            "model": [b[0] for b in blocks],
            "ruler": [b[1] for b in blocks],
            "metric": [b[2] for b in blocks],
        },
        np.concatenate(values),
    )
    no_auto = rng.random(n) < 0.002  # cases without an automated mask: excluded, counted
    keep = ~(np.asarray(table["ruler"]) == "automated") | ~np.tile(no_auto, len(blocks))
    table = table[keep].reset_index(drop=True)
    agree = [np.clip(rng.normal(0.85 - 0.07 * young, 0.08), 0, 1), rng.gamma(2, 3 + 2 * young)]
    agree.append(np.clip(agree[0] + 0.05, 0, 1))
    agreement = _long(
        ids,
        {
            "structure": ["foreground"] * 3,
            "ruler": ["automated"] * 3,
            "reference": ["expert"] * 3,
            "metric": list(METRICS),
        },
        np.concatenate(agree),
    )
    agreement = agreement[~np.tile(no_auto, 3)].reset_index(drop=True)
    shapes = [
        rng.lognormal(2 + 0.5 * young, 0.8),
        rng.lognormal(5, 0.5, n),
        rng.beta(8, 3, n),
        rng.integers(1, 4, n).astype(float),
        rng.beta(3, 3, n),
        rng.beta(3, 3, n),
    ]
    morphology = _long(
        ids,
        {
            "structure": ["foreground"] * len(DESCRIPTORS),
            "ruler": ["expert"] * len(DESCRIPTORS),
            "descriptor": list(DESCRIPTORS),
        },
        np.concatenate(shapes),
    )
    index = pd.Index(np.asarray(ids), name="case_id")
    bins = pd.cut(age, [-np.inf, 40, 55, np.inf], right=False, labels=["young", "middle", "older"])
    excluded = np.flatnonzero(no_auto)
    exclusions = pd.DataFrame(
        {
            "case_id": np.asarray(ids)[excluded],
            "kind": "ruler",
            "source": "automated",
            "reason": "missing file",
        }
    )
    return Scores(
        table=table,
        groups=pd.DataFrame(
            {"age_group": bins, "ethnicity": ethnicity, "site": site}, index=index
        ),
        trusted_ruler="expert",
        rulers=RULERS,
        models=MODELS,
        agreement=agreement,
        morphology=morphology,
        metadata=pd.DataFrame({"age": age, "ethnicity": ethnicity, "dataset": site}, index=index),
        attribute_columns={"age_group": "age", "ethnicity": "ethnicity", "site": "dataset"},
        exclusions=exclusions,
        settings={"metrics": list(METRICS), "cap": 150.0},
        structures=("foreground",),
    )


def run_one(n: int, n_boot: int, out: Path) -> dict[str, Any]:
    """Scores → audit → the example's gates → reports, timed by phase, in this process."""
    from segfair.audit import Audit
    from segfair.cohort import load_config
    from segfair.gates import parse_gates
    from segfair.planner import evaluate_gates
    from segfair.report import build_report, write_reports

    config = load_config(EXAMPLE).model_copy(update={"n_boot": n_boot})
    t0 = time.perf_counter()
    scores = million_scores(n)
    t1 = time.perf_counter()
    audit = Audit(
        scores,
        seed=config.seed,
        n_boot=config.n_boot,
        confidence=config.confidence,
        cap=config.cap,
        min_group_size=config.min_group_size,
    )
    gates = parse_gates(config.gates, source=config.source, trusted_ruler=config.trusted_ruler)
    results = evaluate_gates(audit, gates, holm=config.holm, on_inconclusive="fail")
    t2 = time.perf_counter()
    doc = build_report(audit, results, config=config, seed=config.seed)
    paths = write_reports(
        doc, html=out / "report.html", json_path=out / "report.json", md=out / "report.md"
    )
    t3 = time.perf_counter()
    return {
        "cases": n,
        "n_boot": n_boot,
        "scores_s": round(t1 - t0, 2),
        "gates_s": round(t2 - t1, 2),
        "report_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "sizes_kib": {p.name: p.stat().st_size // 1024 for p in paths},
        "verdicts": {r.id: r.status for r in results},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="where to keep the reports")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="segfair-million-"))
    if args.one:
        print(json.dumps(run_one(args.cases[0], args.n_boot, out)))
        return 0
    for n in args.cases:
        where = out / str(n)
        where.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--one", "--cases", str(n), "--n-boot", str(args.n_boot)]
        done = subprocess.run([*cmd, "--out", str(where)], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{n:>9,} cases, n_boot {r['n_boot']}: scores {r['scores_s']} s, gates "
            f"{r['gates_s']} s, reports {r['report_s']} s — total {r['total_s']} s, peak "
            f"{r['peak_mib']} MiB; reports {r['sizes_kib']} KiB"
        )
        print("  verdicts: " + ", ".join(f"{k}={v}" for k, v in r["verdicts"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
