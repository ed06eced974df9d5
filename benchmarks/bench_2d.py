"""Throughput where cases are small: 100,000 2-D 512×512 PNG cases, evaluated against decoding.

Writes once (kept under ``--root``; case ``i`` does not depend on ``--cases``, so a smaller run
reuses the first cases of a larger one) ``--cases`` 2-D cases as 8-bit greyscale 0/255 PNG masks
(the form 2-D segmentation sets ship in, e.g. chest X-ray lung masks or ISIC lesion masks): one
model and two rulers (expert, automated), 3 files a case, and a cases table with a ``sex``
attribute. Then measures, in one run, each step in a fresh process:

(a) decode only: two worker processes (a process pool, tasks in batches as segfair sends them)
    only reading every file with ``segfair.io.load_mask`` (header, decode, the binary mask; the
    same call the evaluation makes) — the floor;
(b) cold, no cache: ``load_cohort`` (checking every file exists) + ``evaluate`` (default metrics,
    the morphology of both rulers) on 2 workers;
(c) cold, filling an empty cache (``load_cohort`` reads every header once, for the file index);
(d) warm: the same again, every case a cache hit.

Prints the table (wall seconds, and the CPU seconds of the main process and every worker, which
a machine shared with other jobs inflates far less than wall time) and the ratios (b)/(a) and
(c)/(a) (target ≤ 1.5) and (d)/(c) (target ≤ 5%).

    python benchmarks/bench_2d.py [--cases 100000] [--root /tmp/segfair-2d] [--write-only]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 512
SPACING = (0.5, 0.5)
SOURCES = {"expert": "ruler", "automated": "ruler", "candidate": "model"}
_CHUNK = 500  # cases a writing task writes


def _case_id(i: int) -> str:
    return f"c{i:06d}"


def _blob(rng: np.random.Generator, centre: Any, radii: Any, wobble: float) -> np.ndarray:
    """A 512×512 0/255 mask: an ellipse whose radius wobbles with the angle (a lobulated blob)."""
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    cy, cx = centre
    ry, rx = radii
    reach = 1.0 + wobble
    y0, y1 = max(0, int(cy - ry * reach) - 1), min(SIZE, int(cy + ry * reach) + 2)
    x0, x1 = max(0, int(cx - rx * reach) - 1), min(SIZE, int(cx + rx * reach) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    angle = np.arctan2(dy, dx)
    k = int(rng.integers(3, 7))
    phase = float(rng.uniform(0, 2 * np.pi))
    edge = 1.0 + wobble * np.sin(k * angle + phase)
    out[y0:y1, x0:x1] = np.where(dy * dy + dx * dx <= edge * edge, 255, 0).astype(np.uint8)
    return out


def _write_chunk(folder: str, start: int, stop: int) -> int:
    from PIL import Image

    for i in range(start, stop):
        case = _case_id(i)
        rng = np.random.default_rng([2026, i])
        female = i % 2 == 0
        centre = rng.uniform(150, 362, size=2)
        radii = rng.uniform(30, 140, size=2)
        expert = _blob(rng, centre, radii, float(rng.uniform(0.0, 0.15)))
        automated = _blob(rng, centre + rng.normal(0, 2, 2), radii * rng.normal(1, 0.04), 0.05)
        # the model is a little worse on one group: a larger shift of the boundary
        shift = rng.normal(0, 6 if female else 3, 2)
        model = _blob(rng, centre + shift, radii * rng.normal(1, 0.06), float(rng.uniform(0, 0.1)))
        for name, mask in (("expert", expert), ("automated", automated), ("candidate", model)):
            Image.fromarray(mask, mode="L").save(os.path.join(folder, name, f"{case}.png"))
    return stop - start


def write_masks(root: Path, n_cases: int, workers: int = 2) -> None:
    """Write the masks of cases ``0 … n_cases-1`` that are not written yet (in parallel)."""
    masks = root / "masks"
    for name in SOURCES:
        (masks / name).mkdir(parents=True, exist_ok=True)
    done_file = root / "written.json"
    done = json.loads(done_file.read_text())["cases"] if done_file.exists() else 0
    if done >= n_cases:
        return
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        spans = [(s, min(s + _CHUNK, n_cases)) for s in range(done, n_cases, _CHUNK)]
        futures = [pool.submit(_write_chunk, str(masks), a, b) for a, b in spans]
        for n, fut in enumerate(futures, 1):
            fut.result()
            if n % 20 == 0:
                print(f"  wrote {spans[n - 1][1]:,} cases", flush=True)
    done_file.write_text(json.dumps({"cases": n_cases}))
    took = time.perf_counter() - start
    print(f"wrote {n_cases - done:,} cases ({3 * (n_cases - done):,} PNGs) in {took:.0f} s")


def write_config(root: Path, n_cases: int) -> Path:
    """A cases table of the first ``n_cases`` cases and a ``segfair.toml`` reading them."""
    folder = root / f"n{n_cases}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "cases.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "sex"])
        writer.writerows((_case_id(i), "F" if i % 2 == 0 else "M") for i in range(n_cases))
    masks = (root / "masks").resolve()
    rulers = "\n".join(
        f'{n} = {{ path = "{masks}/{n}/{{case_id}}.png", labels = [255] }}'
        for n, k in SOURCES.items()
        if k == "ruler"
    )
    models = "\n".join(
        f'{n} = {{ path = "{masks}/{n}/{{case_id}}.png", labels = [255] }}'
        for n, k in SOURCES.items()
        if k == "model"
    )
    config = folder / "segfair.toml"
    config.write_text(
        f"""[tool.segfair]
cases = "cases.csv"
case_id = "case_id"
trusted_ruler = "expert"
spacing = [{SPACING[0]}, {SPACING[1]}]
cache = ".segfair_cache"
seed = 0

[tool.segfair.rulers]
{rulers}

[tool.segfair.models]
{models}

[tool.segfair.attributes.sex]
column = "sex"
"""
    )
    return config


def _decode_batch(files: Sequence[str]) -> int:
    """Decode-only worker call: read every file as the evaluation reads it (``load_mask``)."""
    from segfair.io import load_mask

    for f in files:
        load_mask(f, labels=[255], spacing=SPACING)
    return len(files)


def phase_decode(config: str, workers: int) -> dict[str, Any]:
    """(a) the floor: the workers only decode the cohort's files (50 cases, 150 files a call:
    what a batch of segfair's carries for cases of a few ms)."""
    from segfair import load_cohort

    cohort = load_cohort(config, check_geometry=False, cache=False)
    files = [str(p) for c in cohort.case_ids for p in cohort.available(c).values()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode_batch, [files[:3]] * workers))  # imports, not timed
        cpu = _workers_cpu(pool, workers)
        start = time.perf_counter()
        n = sum(pool.map(_decode_batch, [files[i : i + 150] for i in range(0, len(files), 150)]))
        took = time.perf_counter() - start
        cpu = _workers_cpu(pool, workers) - cpu
    return {"files": n, "seconds": took, "workers_cpu_s": cpu}


def _own_cpu(_: int) -> tuple[int, float]:
    """A worker's pid and the CPU seconds it has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return os.getpid(), usage.ru_utime + usage.ru_stime


def _workers_cpu(pool: ProcessPoolExecutor, workers: int) -> float:
    """CPU seconds the pool's workers have used so far (asked until every worker answered: the
    numbers survive a machine that other jobs share, where wall times do not)."""
    seen: dict[int, float] = {}
    for _ in range(50):
        for pid, cpu in pool.map(_own_cpu, range(4 * workers)):
            seen[pid] = cpu
        if len(seen) >= workers:
            break
        time.sleep(0.05)  # a worker busy elsewhere: ask again
    return sum(seen.values())


def phase_evaluate(config: str, workers: int, cache: bool) -> dict[str, Any]:
    """(b), (c), (d): ``load_cohort`` + ``evaluate`` on ``workers`` processes, timed by step."""
    from segfair import evaluate, load_cohort

    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode_batch, [[]] * workers))  # start the pool, as (a) does
        cpu = _workers_cpu(pool, workers)
        main_cpu = time.process_time()
        start = time.perf_counter()
        cohort = load_cohort(config, cache=None if cache else False, workers=workers)
        loaded = time.perf_counter()
        scores = evaluate(cohort, executor=pool, workers=workers, cache=None if cache else False)
        done = time.perf_counter()
        main_cpu = time.process_time() - main_cpu
        cpu = _workers_cpu(pool, workers) - cpu
        # ended children so far: load_cohort's header workers (the pool's are still alive)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "main_cpu_s": main_cpu,
        "workers_cpu_s": cpu,
        "header_workers_cpu_s": children.ru_utime + children.ru_stime,
        "cases": len(cohort.case_ids),
        "rows": len(scores.table),
        "cohort_s": loaded - start,
        "evaluate_s": done - loaded,
        "seconds": done - start,
        "main_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def phase_case(config: str, cases: int) -> dict[str, Any]:
    """In one process, CPU time a case of ``evaluate_case`` (decode, metrics, morphology) and of
    decoding alone (``load_mask`` of its files), over the first ``cases`` cases."""
    from segfair import load_cohort
    from segfair.evaluate import build_tasks, evaluate_case
    from segfair.io import load_mask

    cohort = load_cohort(config, check_geometry=False, cache=False)
    tasks = build_tasks(cohort)[:cases]
    evaluate_case(tasks[0])  # imports and compiled kernels, not timed
    start = time.process_time()
    for task in tasks:
        evaluate_case(task)
    case_s = time.process_time() - start
    start = time.process_time()
    for task in tasks:
        for name, file in task.files.items():
            load_mask(file, **task.read[name])
    decode_s = time.process_time() - start
    return {
        "cases": len(tasks),
        "case_ms": 1000 * case_s / len(tasks),
        "decode_ms": 1000 * decode_s / len(tasks),
        "ratio": case_s / decode_s,
    }


def _free_metrics() -> None:
    """The floor: metrics and descriptors replaced by constants (the workers are forked and
    inherit it); everything else — headers, keys, decoding, the store — runs as usual."""
    import segfair.metrics
    from segfair.metrics import morphology

    def scores(arrays: Any, pairs: Any, spacing: Any, names: Any, **_: Any) -> Any:
        return {(p, r): dict.fromkeys(names, 0.5) for p, r in pairs}

    def shape(mask: Any, spacing: Any = None) -> dict[str, float]:
        return dict.fromkeys(morphology.DESCRIPTORS_2D, 1.0)

    segfair.metrics.compute_many = scores  # type: ignore[assignment]
    morphology.describe_mask = shape


def _fresh(phase: str, config: Path, workers: int, *extra: str) -> dict[str, Any]:
    """Run one phase in a fresh process (cold imports, its own memory peak); its JSON."""
    command = [sys.executable, __file__, "--phase", phase, "--config", str(config)]
    command += ["--workers", str(workers), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "segfair-2d"))
    parser.add_argument("--write-only", action="store_true", help="write the cohort and stop")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--free-metrics",
        action="store_true",
        help="with --phase evaluate: metrics and descriptors replaced by constants (the floor)",
    )
    args = parser.parse_args()
    if args.phase == "case":  # in one process: --cases of the cohort at --config
        print(json.dumps(phase_case(args.config, args.cases)))
        return
    if args.phase == "decode":
        print(json.dumps(phase_decode(args.config, args.workers)))
        return
    if args.phase == "evaluate":
        if args.free_metrics:
            _free_metrics()
        print(json.dumps(phase_evaluate(args.config, args.workers, args.cache)))
        return

    root = Path(args.root)
    write_masks(root, args.cases)
    config = write_config(root, args.cases)
    if args.write_only:
        return
    shutil.rmtree(config.parent / ".segfair_cache", ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"{args.cases:,} cases × 3 PNG masks of {SIZE}×{SIZE}, {args.workers} workers")
    print()
    print(
        "| step | s | cohort s | evaluate s | ms a case | CPU s (main + workers) | main peak MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    rows = []
    for name, phase, extra in (
        ("(a) decode only (load_mask of every file)", "decode", ()),
        ("(b) cold, no cache", "evaluate", ()),
        ("(c) cold, filling an empty cache", "evaluate", ("--cache",)),
        ("(d) warm (every case cached)", "evaluate", ("--cache",)),
    ):
        r = _fresh(phase, config, args.workers, *extra)
        rows.append((name, r))
        split = f"{r['cohort_s']:.1f} | {r['evaluate_s']:.1f}" if "cohort_s" in r else "— | —"
        peak = f"{r['main_peak_mib']:.0f}" if "main_peak_mib" in r else "—"
        per_case = 1000 * r["seconds"] / args.cases
        cpu = r.get("main_cpu_s", 0.0) + r["workers_cpu_s"] + r.get("header_workers_cpu_s", 0.0)
        print(
            f"| {name} | {r['seconds']:.1f} | {split} | {per_case:.2f} | {cpu:.1f} | {peak} |",
            flush=True,
        )
    print(f"\nload average {load:.1f} → {os.getloadavg()[0]:.1f}")
    a, b, c, d = (r["seconds"] for _, r in rows)
    print()
    print(f"(b)/(a) cold / decode only: {b / a:.2f}  (target ≤ 1.5)")
    print(f"(c)/(a) cold, filling the cache / decode only: {c / a:.2f}")
    print(f"(d)/(c) warm / cold:        {d / c:.1%}  (target ≤ 5%)")


if __name__ == "__main__":
    main()
