"""The Dask path at scale: the cohort of ``bench_2d.py`` evaluated on a ``distributed.LocalCluster``
against the same number of workers in segfair's own process pool.

Uses (and, if missing, writes) the 2-D PNG cohort of ``benchmarks/bench_2d.py`` under ``--root``
(100,000 cases by default; ``--cases`` for fewer). In one process: the cohort is loaded once
(``load_cohort``, no cache), then ``evaluate`` runs, without the cache, (1) on a process pool of
``--workers`` processes and (2) through ``Client(LocalCluster(n_workers=W, threads_per_worker=1))
.get_executor()`` — what ``segfair audit --scheduler tcp://…`` does with a running scheduler. Both
score tables must be identical. Needs the ``dask`` extra (``pip install 'segfair[dask]'``).

    python benchmarks/bench_dask.py [--cases 100000] [--workers 2] [--root /tmp/segfair-2d]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_2d import write_config, write_masks


def _warm(_: object = None) -> int:
    """Import what a worker evaluating cases imports (untimed, on every worker of both)."""
    import segfair.evaluate
    import segfair.io
    import segfair.metrics  # noqa: F401

    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "segfair-2d"))
    args = parser.parse_args()

    import pandas as pd
    from distributed import Client, LocalCluster

    from segfair import evaluate, load_cohort

    root = Path(args.root)
    write_masks(root, args.cases)
    config = write_config(root, args.cases)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    cohort = load_cohort(config, cache=False)
    loaded = time.perf_counter() - start
    print(f"{args.cases:,} cases (3 PNG masks each), {args.workers} workers; cohort {loaded:.1f} s")

    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(_warm, range(2 * args.workers)))  # started and imported
        start = time.perf_counter()
        local = evaluate(cohort, executor=pool, workers=args.workers, cache=False, progress=False)
        pool_s = time.perf_counter() - start

    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(args.workers)
        client.run(_warm)  # as the pool's workers
        start = time.perf_counter()
        remote = evaluate(
            cohort,
            executor=client.get_executor(),
            workers=args.workers,
            cache=False,
            progress=False,
        )
        dask_s = time.perf_counter() - start
    pd.testing.assert_frame_equal(local.table, remote.table)
    pd.testing.assert_frame_equal(local.morphology, remote.morphology)

    print(f"load average {load:.1f} → {os.getloadavg()[0]:.1f}")
    print()
    print("| executor | s | ms a case | × process pool |")
    print("|---|---:|---:|---:|")
    for name, s in (("process pool (segfair's own)", pool_s), ("Dask LocalCluster", dask_s)):
        print(f"| {name} | {s:.1f} | {1000 * s / args.cases:.2f} | {s / pool_s:.2f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nidentical score tables ({len(local.table):,} rows); main peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
