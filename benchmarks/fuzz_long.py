"""The fuzz properties of ``tests/test_fuzz.py`` with many more examples than the suite runs.

Same strategies, same checks; only the number of examples differs. Prints, per property, how many
examples ran and how long it took; exits 1 with Hypothesis' minimal failing example when a
property fails.

Run::

    python benchmarks/fuzz_long.py [--examples 3000] [--only parse_config metrics ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_fuzz


def run(name: str, examples: int, seed_: int) -> tuple[int, float, str | None]:
    check, strategy = test_fuzz.PROPERTIES[name]
    count = 0

    def counted(example: Any) -> None:
        nonlocal count
        count += 1
        check(example)

    test = seed(seed_)(
        settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(counted))
    )
    start = time.perf_counter()
    try:
        test()
    except Exception:
        return count, time.perf_counter() - start, traceback.format_exc()
    return count, time.perf_counter() - start, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="examples per property")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(test_fuzz.PROPERTIES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = args.only or list(test_fuzz.PROPERTIES)
    total, failed = 0, []
    for name in names:
        count, seconds, error = run(name, args.examples, args.seed)
        total += count
        status = "ok" if error is None else "FAILED"
        print(f"{name:<20} {count:>7} examples  {seconds:7.1f} s  {status}", flush=True)
        if error is not None:
            failed.append(name)
            print(error, file=sys.stderr)
    print(f"{'total':<20} {total:>7} examples  ({len(failed)} failed: {', '.join(failed) or '-'})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
