"""The results store at scale: put, get and load of 10k, 100k and 1M cases, against the per-file
JSON cache it replaced.

Every case holds 2 models × 2 rulers × 3 metrics (dice, hd95, nsd) plus the automated ruler
against the trusted one × 3 metrics: 15 float64 in one layout. Each phase runs in a fresh
process, so its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- ``put``: every result written with ``ResultStore.put_many`` in transactions of 1,000 (what a
  run does as results arrive);
- ``get``: every key looked up and verified (HMAC), streamed with ``ResultStore.scan``;
- ``load``: ``segfair.evaluate.load_scores`` of an in-memory cohort (no mask on disk) into a
  :class:`~segfair.scores.Scores`; the cohort and its keys are built first and measured apart;
- ``json put`` / ``json get`` (10k and 100k only): the per-file cache of before (one signed JSON
  document per case, written atomically; read, verified and decoded).

    nice -n 10 python benchmarks/bench_store.py [--sizes 10000 100000 1000000]
        [--json-sizes 10000 100000] [--root /tmp/segfair-store-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS, RULERS, METRICS = ("a", "b"), ("expert", "auto"), ("dice", "hd95", "nsd")


def _layout() -> Any:
    from segfair.evaluate import Layout

    slots = [
        ("foreground", f"model:{m}", f"ruler:{r}", metric)
        for m in MODELS
        for r in RULERS
        for metric in METRICS
    ]
    slots += [("foreground", "ruler:auto", "ruler:expert", metric) for metric in METRICS]
    return Layout(scores=tuple(slots))


def _key(i: int) -> str:
    return hashlib.sha256(b"case %d" % i).hexdigest()


def _case(i: int) -> str:
    return f"case-{i:07d}"


def _values(n: int, start: int = 0) -> Any:
    import numpy as np

    rng = np.random.default_rng(start)
    return rng.random((n, _layout().width))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def phase_put(n: int, folder: Path) -> dict[str, Any]:
    from segfair.evaluate import ResultStore, StoreRow

    layout = _layout()
    start = time.perf_counter()
    with ResultStore(folder) as store:
        for lo in range(0, n, 1000):
            hi = min(n, lo + 1000)
            values = _values(hi - lo, lo)
            store.put_many(
                StoreRow(_key(i), _case(i), layout, values[i - lo]) for i in range(lo, hi)
            )
    return {"seconds": time.perf_counter() - start, "size_mib": _size_mib(folder)}


def phase_get(n: int, folder: Path) -> dict[str, Any]:
    from segfair.evaluate import ResultStore

    keys = [_key(i) for i in range(n)]
    start = time.perf_counter()
    found = 0
    with ResultStore(folder) as store:
        for chunk in store.scan(keys):
            found += len(chunk.positions)
    assert found == n, (found, n)
    return {"seconds": time.perf_counter() - start}


def _cohort(n: int, folder: Path) -> Any:
    import numpy as np
    import pandas as pd

    from segfair.cohort import Cohort
    from segfair.cohort.config import parse_config

    config = parse_config(
        {
            "cases": "cases.csv",
            "models": {m: f"{m}/{{case_id}}.nii.gz" for m in MODELS},
            "rulers": {r: f"{r}/{{case_id}}.nii.gz" for r in RULERS},
            "trusted_ruler": "expert",
            "metrics": list(METRICS),
            "cache": str(folder),
        }
    )
    index = pd.Index([_case(i) for i in range(n)], name="case_id")
    sex = np.where(np.arange(n) % 2 == 0, "F", "M")
    return Cohort(
        config=config,
        metadata=pd.DataFrame({"sex": sex}, index=index),
        groups=pd.DataFrame({"sex": pd.Categorical(sex)}, index=index),
    )


def phase_load(n: int, folder: Path) -> dict[str, Any]:
    from segfair.evaluate import load_scores

    start = time.perf_counter()
    cohort = _cohort(n, folder)
    keys = [_key(i) for i in range(n)]
    prepared = time.perf_counter() - start
    before = _peak_mib()
    start, cpu = time.perf_counter(), time.process_time()
    scores = load_scores(cohort, keys, cache=folder)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = len(scores.table) + len(scores.agreement)
    assert len(scores.table) == n * 12, len(scores.table)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cohort_and_keys_seconds": prepared,
        "peak_before_load_mib": before,
        "rows": rows,
        "frames_mib": sum(
            f.memory_usage(deep=False).sum() for f in (scores.table, scores.agreement)
        )
        / 2**20,
    }


def _old_doc(key: str, case_id: str, values: Any) -> dict[str, Any]:
    layout = _layout()
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for (_, pred, ref, metric), v in zip(layout.scores, values.tolist(), strict=True):
        pairs.setdefault((pred, ref), {})[metric] = v
    return {
        "format": 4,
        "key": key,
        "case_id": case_id,
        "pairs": [
            {"structure": "foreground", "pred": p, "ref": r, "values": v}
            for (p, r), v in sorted(pairs.items())
        ],
        "morphology": [],
    }


def phase_json_put(n: int, folder: Path) -> dict[str, Any]:
    """The per-file cache of before, written the way its ``_write_cache`` did."""
    from segfair.io import atomic_write_text
    from segfair.io.signing import sign_document

    start = time.perf_counter()
    for lo in range(0, n, 1000):
        hi = min(n, lo + 1000)
        values = _values(hi - lo, lo)
        for i in range(lo, hi):
            key = _key(i)
            doc = sign_document(_old_doc(key, _case(i), values[i - lo]))
            atomic_write_text(folder / key[:2] / f"{key}.json", json.dumps(doc, sort_keys=True))
    return {"seconds": time.perf_counter() - start, "size_mib": _size_mib(folder)}


def phase_json_get(n: int, folder: Path) -> dict[str, Any]:
    """Read back, verified and decoded into nested dicts as its ``_read_cache`` did."""
    from segfair.io.signing import verify_document

    start = time.perf_counter()
    found = 0
    for i in range(n):
        key = _key(i)
        doc = json.loads((folder / key[:2] / f"{key}.json").read_text())
        if doc.get("key") != key or not verify_document(doc):
            continue
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for p in doc["pairs"]:
            scores[(p["pred"], p["ref"])] = {k: float(v) for k, v in p["values"].items()}
        found += 1
    assert found == n
    return {"seconds": time.perf_counter() - start}


PHASES = {
    "put": phase_put,
    "get": phase_get,
    "load": phase_load,
    "json-put": phase_json_put,
    "json-get": phase_json_get,
}


def _child(phase: str, n: int, folder: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--n", str(n), "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SEGFAIR_CACHE_KEY": "bench" * 8},
    )
    if done.returncode:
        raise SystemExit(f"{phase} {n}: {done.stderr}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--json-sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--root", type=Path, default=Path("/tmp/segfair-store-bench"))
    ap.add_argument("--phase", choices=sorted(PHASES))
    ap.add_argument("--n", type=int)
    ap.add_argument("--folder", type=Path)
    args = ap.parse_args()
    if args.phase:
        cpu = time.process_time()
        result = PHASES[args.phase](args.n, args.folder)
        result["cpu_seconds_whole_process"] = time.process_time() - cpu
        result["peak_rss_mib"] = _peak_mib()
        print(json.dumps(result))
        return

    rows = []
    for n in args.sizes:
        folder = args.root / f"store-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for phase in ("put", "get", "load"):
            rows.append({"store": "sqlite", "phase": phase, "n": n, **_child(phase, n, folder)})
            print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    for n in args.json_sizes:
        folder = args.root / f"json-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for phase in ("json-put", "json-get"):
            rows.append({"store": "json", "phase": phase, "n": n, **_child(phase, n, folder)})
            print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print("| store | phase | cases | wall s | CPU s (process) | peak RSS (MiB) | on disk (MiB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        size = f"{r['size_mib']:.0f}" if "size_mib" in r else ""
        print(
            f"| {r['store']} | {r['phase']} | {r['n']:,} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds_whole_process']:.2f} | {r['peak_rss_mib']:.0f} | {size} |"
        )


if __name__ == "__main__":
    main()
