"""End to end at MAMA-MIA scale: ``segfair audit`` on 1,500 synthetic cases, and worker memory.

Writes (once; kept under ``--root`` for re-runs) a synthetic cohort of ``--cases`` cases and one of
``--small`` cases (the same first cases: synth case ``i`` does not depend on the cohort size), in
the MAMA-MIA layout with 2 models and 2 rulers (4 masks a case; the ``parikh`` preset), and
measures, in one run:

1. ``segfair audit`` as a user runs it (a fresh process: ``segfair audit --config ... --workers N
   --json --html --md``, the configuration's 2,000 bootstrap resamples): cold without the cache on
   1 and 2 workers, cold filling an empty cache on 2 workers, and warm (every case a cache hit).
   Targets: 2 workers ≥ 1.7× faster than 1; warm ≤ 5% of cold.
2. Where the time of a cold 2-worker run goes (the same pipeline in a fresh process, timed by
   phase): cohort validation, evaluation, statistics and gates, reports. Target: statistics and
   reports < 5% of the total.
3. Peak RSS of each evaluation worker (``getrusage(RUSAGE_SELF).ru_maxrss`` read inside every worker
   of the pool after the run), for ``--small`` and ``--cases`` cases, against the RSS of a worker
   that has only imported segfair. Target: bounded by a small multiple of one case's volumes and
   independent of the number of cases.

    python benchmarks/bench_scale.py [--cases 1500] [--small 200] [--shape 256x256x80]
        [--root /tmp/segfair-scale]

512×512×160 × 1,500 cases (6,000 masks, ≈45 min to write on 2 cores) is out of reach on a shared
2-core machine for one benchmark run, so the default is 256×256×80 (5.2 M voxels a mask, 1/8 of
MAMA-MIA's); ``--shape 512x512x160`` runs the full size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _probe(pause: float) -> tuple[int, int]:
    """(pid, peak RSS in KiB) of the worker that runs it; the pause spreads probes over workers."""
    time.sleep(pause)
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _imported_probe(pause: float) -> tuple[int, int]:
    """Like :func:`_probe`, after importing what an evaluation worker imports."""
    import segfair.evaluate
    import segfair.io
    import segfair.metrics
    import segfair.morphology  # noqa: F401

    return _probe(pause)


def _worker_peaks(pool: ProcessPoolExecutor, workers: int, probe: Any) -> dict[int, int]:
    peaks: dict[int, int] = {}
    for _ in range(5):  # until every worker answered at least once
        for pid, kib in pool.map(probe, [0.3] * (2 * workers)):
            peaks[pid] = max(peaks.get(pid, 0), kib)
        if len(peaks) >= workers:
            break
    return peaks


def in_process(config: str, workers: int, out: str, cache: bool = False) -> None:
    """One audit in this fresh process, timed by phase; prints JSON. Cold (no cache) unless
    ``cache``: then the configuration's cache, warm when a run has filled it."""
    from segfair.session import SegfairSession

    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        baseline = _worker_peaks(pool, workers, _imported_probe)
        session = SegfairSession.from_path(
            config, workers=workers, executor=pool, progress=False, cache=None if cache else False
        )
        t0 = time.perf_counter()
        cohort = session.cohort
        t1 = time.perf_counter()
        scores = session.scores
        t2 = time.perf_counter()
        session.check_config_gates()
        t3 = time.perf_counter()
        session.write_reports(
            html=Path(out) / "audit.html", json_path=Path(out) / "audit.json", md=Path(out) / "a.md"
        )
        t4 = time.perf_counter()
        peaks = _worker_peaks(pool, workers, _probe)
    print(
        json.dumps(
            {
                "cases": len(cohort.case_ids),
                "rows": len(scores.table),
                "n_boot": session.config.n_boot,
                "setup_s": t0 - start,
                "cohort_s": t1 - t0,
                "evaluate_s": t2 - t1,
                "statistics_and_gates_s": t3 - t2,
                "reports_s": t4 - t3,
                "worker_baseline_kib": sorted(baseline.values()),
                "worker_peak_kib": sorted(peaks.values()),
                "main_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def _cohort(root: Path, n_cases: int, shape: tuple[int, ...]) -> Path:
    from segfair.synth import make_cohort

    folder = root / f"c{n_cases}_{'x'.join(map(str, shape))}"
    config = folder / "segfair.toml"
    recipe = folder / "segfair_synth.json"
    if config.exists() and recipe.exists():
        return config
    start = time.perf_counter()
    config = make_cohort(
        folder, n_cases=n_cases, shape=shape, preset="parikh", seed=0, workers=2, overwrite=True
    )
    print(f"wrote {n_cases} cases of {shape} in {time.perf_counter() - start:.0f} s to {folder}")
    return config


def _cli(config: Path, workers: int, out: Path, *extra: str) -> float:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "segfair.cli", "audit", "--config", str(config), "-q"]
    command += ["--workers", str(workers), "--json", str(out / "a.json")]
    command += ["--html", str(out / "a.html"), "--md", str(out / "a.md"), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CI": ""})
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"segfair audit failed ({done.returncode}): {done.stderr}")
    return elapsed


def _in_process(config: Path, workers: int, out: Path, cache: bool = False) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--in-process", str(config), "--workers", str(workers)]
    command += ["--cache"] if cache else []
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _print_phases(phases: dict[str, Any], which: str) -> None:
    total = sum(phases[k] for k in ("setup_s", "cohort_s", "evaluate_s"))
    total += phases["statistics_and_gates_s"] + phases["reports_s"]
    print()
    print(f"| phase of {which} 2-worker audit (one process) | s | share |")
    print("|---|---:|---:|")
    for key, name in (
        ("setup_s", "start the pool, import in the workers"),
        ("cohort_s", "load and validate the cohort"),
        ("evaluate_s", "evaluate (read, metrics, morphology) or look up the cache"),
        ("statistics_and_gates_s", "statistics (bootstrap) and gates"),
        ("reports_s", "reports (HTML, JSON, Markdown)"),
    ):
        print(f"| {name} | {phases[key]:.1f} | {phases[key] / total:.1%} |")
    print(f"| total | {total:.1f} | |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--shape", default="256x256x80")
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "segfair-scale"))
    parser.add_argument(
        "--warm-only",
        action="store_true",
        help="only the cache pair: a cold run filling an empty cache, then warm re-runs",
    )
    parser.add_argument("--in-process", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process, args.workers, args.out, args.cache)
        return

    shape = tuple(int(x) for x in args.shape.split("x"))
    root = Path(args.root)
    big = _cohort(root, args.cases, shape)
    small = _cohort(root, args.small, shape)
    work = root / "runs"
    shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()

    if args.warm_only:
        shutil.rmtree(big.parent / ".segfair_cache", ignore_errors=True)
        filling = _cli(big, 2, work / "fill")
        warms = [_cli(big, 2, work / "warm") for _ in range(5)]
        warm = statistics.median(warms)
        load_after = os.getloadavg()
        print(
            f"{args.cases} cases of {'×'.join(map(str, shape))} (4 masks a case); load average "
            f"before {load[0]:.1f}, after {load_after[0]:.1f} (2 cores)"
        )
        print("| `segfair audit` run | wall s | ratio |")
        print("|---|---:|---:|")
        print(f"| cold, filling the cache, 2 workers | {filling:.1f} | |")
        print(
            f"| warm (every case cached), 2 workers, median of 5 | {warm:.1f} | "
            f"{warm / filling:.1%} of cold |"
        )
        print("warm runs:", ", ".join(f"{w:.2f}" for w in warms))
        _print_phases(_in_process(big, 2, work / "phases_warm", cache=True), "a warm")
        return
    cold1 = _cli(big, 1, work / "cold1", "--no-cache")
    cold2 = _cli(big, 2, work / "cold2", "--no-cache")
    shutil.rmtree(big.parent / ".segfair_cache", ignore_errors=True)
    filling = _cli(big, 2, work / "fill")
    warm = statistics.median(_cli(big, 2, work / "warm") for _ in range(5))
    phases = _in_process(big, 2, work / "phases")
    small_phases = _in_process(small, 2, work / "phases_small")
    load_after = os.getloadavg()

    print(
        f"{args.cases} cases of {'×'.join(map(str, shape))} (4 masks a case), "
        f"{phases['n_boot']} resamples; load average before {load[0]:.1f}, after "
        f"{load_after[0]:.1f} (2 cores)"
    )
    print()
    print("| `segfair audit` run | wall s | ratio |")
    print("|---|---:|---:|")
    print(f"| cold, no cache, 1 worker | {cold1:.1f} | |")
    print(f"| cold, no cache, 2 workers | {cold2:.1f} | {cold1 / cold2:.2f}× faster than 1 |")
    print(f"| cold, filling the cache, 2 workers | {filling:.1f} | |")
    print(
        f"| warm (every case cached), 2 workers, median of 5 | {warm:.1f} | "
        f"{warm / filling:.1%} of cold |"
    )
    print()
    _print_phases(phases, "a cold")
    case_mib = 4 * shape[0] * shape[1] * shape[2] / 2**20
    print(f"one case's volumes: 4 masks × {case_mib / 4:.1f} MiB = {case_mib:.1f} MiB (uint8)")
    print("| cases | worker RSS after imports MiB | worker peak RSS MiB | peak − imports |")
    print("|---:|---:|---:|---:|")
    for result in (small_phases, phases):
        base = statistics.median(result["worker_baseline_kib"]) / 1024
        peak = max(result["worker_peak_kib"]) / 1024
        print(
            f"| {result['cases']} | {base:.0f} | {peak:.0f} | {peak - base:.0f} MiB = "
            f"{(peak - base) / case_mib:.1f}× one case |"
        )
    print(
        f"main process peak RSS: {small_phases['main_peak_kib'] / 1024:.0f} MiB "
        f"({small_phases['cases']} cases), {phases['main_peak_kib'] / 1024:.0f} MiB "
        f"({phases['cases']} cases)"
    )


if __name__ == "__main__":
    main()
