"""A million cases of precomputed scores: gates, statistics and reports in bounded time and memory.

Issue 18's target: 1,000,000 cases × 2 models × 2 rulers × 3 metrics of precomputed per-case
scores — loaded, every gate of the example configuration (``examples/model-repo``) decided, the
statistics and the reports (HTML, JSON, Markdown) built — in ≤ 3 minutes and ≤ 2 GiB peak
memory on 2 cores; 100,000 cases in ≤ 20 s.

The scores are synthetic (:func:`million_scores`: the example's models, rulers, attributes and
metrics; a younger group scored worse, some missed lesions with infinite HD95, some undefined
values and some cases without an automated mask, excluded from it and counted). They are written
once into a results store under ``--root`` (as ``segfair audit`` would have stored them, keyed
by case; a million cases take a few minutes to write, kept for re-runs), then each size runs in a
fresh process, so that its peak memory (``ru_maxrss``) is its own, and times the run as the CLI
does it: ``load_scores`` from the store, every configured gate (``SegfairSession``: prefetch,
Holm, label plans), then the HTML, JSON and Markdown reports.

    python benchmarks/bench_million.py [--cases 100000 1000000] [--n-boot 2000]
        [--root /tmp/segfair-million] [--in-memory]

``--in-memory`` skips the store (the scores are made in the process) to separate its cost.
"""

from __future__ import annotations

import argparse
import hashlib
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


def million_cohort(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cases table of :func:`million_scores` alone: metadata, groups and exclusions (what
    a run reads from its cases file), from a stream of its own."""
    rng = np.random.default_rng([seed, 0])
    age = rng.integers(22, 85, n)
    ethnicity = rng.choice(
        ["white", "black", "asian", "hispanic", "unknown"], n, p=[0.55, 0.15, 0.1, 0.05, 0.15]
    )
    site = rng.choice(["DUKE", "ISPY1", "ISPY2", "NACT"], n)
    no_auto = rng.random(n) < 0.002  # cases without an automated mask: excluded, counted
    index = pd.Index([f"case{i:07d}" for i in range(n)], name="case_id")
    bins = pd.cut(age, [-np.inf, 40, 55, np.inf], right=False, labels=["young", "middle", "older"])
    metadata = pd.DataFrame({"age": age, "ethnicity": ethnicity, "dataset": site}, index=index)
    groups = pd.DataFrame({"age_group": bins, "ethnicity": ethnicity, "site": site}, index=index)
    exclusions = pd.DataFrame(
        {
            "case_id": index[no_auto].to_numpy(dtype=object),
            "kind": "ruler",
            "source": "automated",
            "reason": "missing file",
        }
    )
    return metadata, groups, exclusions


def million_scores(n: int, seed: int = 0) -> Scores:
    """Synthetic per-case scores of ``n`` cases named and grouped like the example repository."""
    metadata, groups, exclusions = million_cohort(n, seed)
    rng = np.random.default_rng([seed, 1])
    ids = pd.Categorical(metadata.index)
    young = metadata["age"].to_numpy() < 40
    no_auto = np.isin(np.asarray(metadata.index), exclusions["case_id"].to_numpy())
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
        settings={"metrics": list(METRICS), "cap": 150.0},
        structures=("foreground",),
    )


def _cohort(n: int, folder: Path) -> Any:
    """The example's configuration with its cache in ``folder``, and an in-memory cohort of the
    synthetic cases (no mask on disk)."""
    from segfair.cohort import Cohort, load_config

    metadata, groups, exclusions = million_cohort(n)
    config = load_config(EXAMPLE).model_copy(update={"cache": str(folder)})
    return Cohort(
        config=config,
        metadata=metadata,
        groups=groups,
        exclusions=exclusions,
        cache_dir=str(folder),
    )


def _key(case_id: str) -> str:
    return hashlib.sha256(f"million {case_id}".encode()).hexdigest()


def _layouts() -> tuple[Any, Any]:
    """The layout of a case with both rulers, and of one without the automated ruler."""
    from segfair.evaluate import Layout

    def slots(rulers: tuple[str, ...]) -> Any:
        scores = [
            ("foreground", f"model:{m}", f"ruler:{r}", metric)
            for m in MODELS
            for r in rulers
            for metric in METRICS
        ]
        if "automated" in rulers:
            scores += [("foreground", "ruler:automated", "ruler:expert", m) for m in METRICS]
        shapes = [("foreground", "ruler:expert", d) for d in DESCRIPTORS]
        return Layout(scores=tuple(scores), shapes=tuple(shapes))

    return slots(RULERS), slots(("expert",))


def write_store(n: int, folder: Path) -> None:
    """Store the synthetic scores of ``n`` cases in ``folder`` (once; a marker says it is done)."""
    from segfair.evaluate import ResultStore, StoreRow

    done = folder / f"million-{n}.done"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    scores = million_scores(n)
    full, expert_only = _layouts()
    ids = [str(c) for c in scores.groups.index]
    pos = {c: i for i, c in enumerate(ids)}

    def matrix(frame: pd.DataFrame, keys: list[str], slots: list[tuple[str, ...]]) -> np.ndarray:
        out = np.full((n, len(slots)), np.nan)
        rows = frame["case_id"].astype(str).map(pos).to_numpy()
        combo = list(zip(*(frame[k].astype(str) for k in keys), strict=True))
        where = {s: j for j, s in enumerate(slots)}
        cols = np.array([where[c] for c in combo])
        out[rows, cols] = frame["value"].to_numpy(dtype=np.float64)
        return out

    table = pd.DataFrame(
        {
            "case_id": scores.table["case_id"].astype(str),
            "pred": "model:" + scores.table["model"].astype(str),
            "ref": "ruler:" + scores.table["ruler"].astype(str),
            "metric": scores.table["metric"].astype(str),
            "value": scores.table["value"],
        }
    )
    agree = pd.DataFrame(
        {
            "case_id": scores.agreement["case_id"].astype(str),
            "pred": "ruler:" + scores.agreement["ruler"].astype(str),
            "ref": "ruler:expert",
            "metric": scores.agreement["metric"].astype(str),
            "value": scores.agreement["value"],
        }
    )
    values = matrix(
        pd.concat([table, agree]), ["pred", "ref", "metric"], [s[1:] for s in full.scores]
    )
    morph = scores.morphology.assign(ref="ruler:expert")
    shapes = matrix(morph, ["ref", "descriptor"], [s[1:] for s in full.shapes])
    no_auto = set(scores.exclusions["case_id"].astype(str))
    keep = [j for j, s in enumerate(full.scores) if s in set(expert_only.scores)]
    with ResultStore(folder) as store:
        for lo in range(0, n, 10_000):
            rows = []
            for i in range(lo, min(n, lo + 10_000)):
                if ids[i] in no_auto:
                    row = np.concatenate([values[i, keep], shapes[i]])
                    rows.append(StoreRow(_key(ids[i]), ids[i], expert_only, row))
                else:
                    row = np.concatenate([values[i], shapes[i]])
                    rows.append(StoreRow(_key(ids[i]), ids[i], full, row))
            store.put_many(rows)
    done.touch()


def _peak_mib() -> int:
    """This process's peak resident memory. ``VmHWM`` where there is /proc: ``ru_maxrss``
    keeps the peak of the process that forked it across ``exec`` (the parent's)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def run_one(n: int, n_boot: int, out: Path, root: Path | None) -> dict[str, Any]:
    """Load → the example's gates → reports, as the CLI runs them, timed by phase."""
    from segfair.evaluate import load_scores
    from segfair.session import SegfairSession

    t0 = time.perf_counter()
    if root is None:
        scores = million_scores(n)
        cohort = _cohort(n, out / "cache")
    else:
        cohort = _cohort(n, root)  # its cases table, read from a file in a real run: not timed
        keys = [_key(str(c)) for c in cohort.metadata.index]
        t0 = time.perf_counter()
        scores = load_scores(cohort, keys, cache=root)
        del keys  # a real run finds its keys case by case: they are not held
    t1 = time.perf_counter()
    config = cohort.config.model_copy(update={"n_boot": n_boot})
    session = SegfairSession(config, cache=root is not None)
    session.__dict__["cohort"] = cohort
    session.__dict__["scores"] = scores
    results = session.check_config_gates()
    t2 = time.perf_counter()
    paths = session.write_reports(
        html=out / "report.html", json_path=out / "report.json", md=out / "report.md"
    )
    t3 = time.perf_counter()
    return {
        "cases": n,
        "n_boot": n_boot,
        "store": root is not None,
        "scores_s": round(t1 - t0, 2),
        "gates_s": round(t2 - t1, 2),
        "report_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "peak_mib": _peak_mib(),
        "sizes_kib": {p.name: p.stat().st_size // 1024 for p in paths},
        "verdicts": {r.id: r.status for r in results},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument(
        "--root", type=Path, default=Path(tempfile.gettempdir()) / "segfair-million"
    )
    parser.add_argument("--in-memory", action="store_true", help="no store: scores made in memory")
    parser.add_argument("--out", type=Path, default=None, help="where to keep the reports")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="segfair-million-"))
    if args.write:
        write_store(args.cases[0], args.root)
        return 0
    if args.one:
        root = None if args.in_memory else args.root
        print(json.dumps(run_one(args.cases[0], args.n_boot, out, root)))
        return 0
    for n in args.cases:
        where = out / str(n)
        where.mkdir(parents=True, exist_ok=True)
        store = args.root / str(n)
        if not args.in_memory and not (store / f"million-{n}.done").exists():
            start = time.perf_counter()
            # in a process of its own: the parent stays small for the measured children
            writer = [sys.executable, __file__, "--write", "--cases", str(n), "--root", str(store)]
            subprocess.run(writer, check=True)
            print(f"{n:>9,} cases in the store {store} ({time.perf_counter() - start:.0f} s)")
        cmd = [sys.executable, __file__, "--one", "--cases", str(n), "--n-boot", str(args.n_boot)]
        cmd += ["--in-memory"] if args.in_memory else ["--root", str(store)]
        done = subprocess.run([*cmd, "--out", str(where)], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{n:>9,} cases, n_boot {r['n_boot']}: {'load' if r['store'] else 'make'} scores "
            f"{r['scores_s']} s, gates {r['gates_s']} s, reports {r['report_s']} s — total "
            f"{r['total_s']} s, peak {r['peak_mib']} MiB; reports {r['sizes_kib']} KiB"
        )
        print("  verdicts: " + ", ".join(f"{k}={v}" for k, v in r["verdicts"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
