"""How long a metadata table of many rows, with few imaged cases, takes to be refused.

Issue 16 measured 245 s for 1,000,000 rows and 40 imaged cases (two ``stat`` calls a file).
The cohort now lists each mask folder once. Prints the time to the CohortError.

Run::

    python benchmarks/bench_big_table.py [--rows 1000000] [--imaged 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import make_repo

from segfair.cohort import load_cohort
from segfair.errors import CohortError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--imaged", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "r", n_cases=args.imaged, shape=(8, 8, 6))
        table = repo.root / "cases.csv"
        rng = np.random.default_rng(0)
        with table.open("a") as fh:
            for i in range(args.rows - args.imaged):
                fh.write(f"X{i:07d},{int(rng.integers(25, 80))},white,A\n")
        start = time.perf_counter()
        try:
            load_cohort(repo.config_path)
        except CohortError as exc:
            kind = f"refused: {len(exc.problems):,} problems"
        else:
            kind = "loaded"
        elapsed = time.perf_counter() - start
    print(f"{args.rows:,} rows, {args.imaged} imaged: {kind} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
