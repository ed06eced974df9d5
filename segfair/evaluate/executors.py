"""Running the case tasks: in this process, on a process pool or on any executor (Dask), with
progress, and naming the cases a dead worker took with it."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    as_completed,
)
from concurrent.futures.process import BrokenProcessPool
from typing import IO

from segfair.errors import SegfairError
from segfair.evaluate.case import evaluate_case
from segfair.evaluate.tasks import CaseResult, CaseTask

__all__ = ["WORKER_DIED", "dask_executor"]

WORKER_DIED = (
    "a worker process died (out of memory, or killed) while evaluating {which}; "
    "{lost} case(s) were not evaluated. Give the machine more memory, or use fewer workers "
    "(`workers` in the configuration, or --workers)."
)


class _Progress:
    """A bar on a terminal; sparse lines (every 10%) in CI logs; nothing when disabled."""

    def __init__(self, total: int, *, enabled: bool, stream: IO[str] | None = None):
        self.total, self.done, self.cached = total, 0, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and self.stream.isatty()
        self.start = time.perf_counter()
        self._next_line = 0.1

    def update(self, result: CaseResult) -> None:
        self.done += 1
        self.cached += result.cached
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.start
        text = f"segfair: {self.done}/{self.total} cases ({self.cached} cached), {elapsed:.1f} s"
        if self.tty:
            width = 24
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            self.stream.write(f"\r[{bar}] {text}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif frac >= self._next_line or self.done == self.total:
            self.stream.write(text + "\n")
            self.stream.flush()
            while self._next_line <= frac:
                self._next_line += 0.1


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """An executor on a running Dask scheduler, closed on exit (needs ``segfair[dask]``).

    >>> with dask_executor("tcp://10.0.0.5:8786") as pool:  # doctest: +SKIP
    ...     scores = evaluate(cohort, executor=pool)
    """
    try:
        from distributed import Client
    except ImportError:
        raise SegfairError(
            f"scheduler {address!r} needs Dask's distributed: pip install 'segfair[dask]'"
        ) from None
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise SegfairError(
            f"cannot reach the Dask scheduler at {address!r}: {exc}; start one with "
            "`dask scheduler` or fix --scheduler / the `scheduler` key"
        ) from None
    with client:
        yield client.get_executor()


def _default_progress() -> bool:
    return sys.stderr.isatty() or os.environ.get("CI", "").lower() in ("1", "true")


def _run(
    tasks: Sequence[CaseTask],
    executor: Executor | None,
    workers: int,
    on_result: Callable[[CaseResult], None],
) -> dict[str, CaseResult]:
    results: dict[str, CaseResult] = {}
    if executor is None and (workers <= 1 or len(tasks) <= 1):
        for task in tasks:
            results[task.case_id] = r = evaluate_case(task)
            on_result(r)
        return results
    own = executor is None
    pool: Executor = executor if executor is not None else ProcessPoolExecutor(max_workers=workers)
    try:
        futures: dict[Future[CaseResult], str] = {
            pool.submit(evaluate_case, t): t.case_id for t in tasks
        }
        # as_completed waits on all futures at once: O(cases) in all, where a wait() per result
        # re-scans every pending future (O(cases²): seconds of the main process's CPU at 1,500
        # cases, taken from the workers on a 2-core machine).
        for fut in as_completed(futures):
            try:
                r = fut.result()
            except BrokenProcessPool:
                raise SegfairError(_worker_died(tasks, results, workers, own)) from None
            except Exception as exc:
                exc.add_note(f"segfair: while evaluating case {futures[fut]!r}")
                raise
            results[r.case_id] = r
            on_result(r)
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _worker_died(
    tasks: Sequence[CaseTask], results: Mapping[str, CaseResult], workers: int, own: bool
) -> str:
    """Name the case a dead worker was on: a pool of ours hands out tasks in submission order,
    so it is among the first ``2 * workers + 1`` unfinished ones (one running per worker, and
    ``workers + 1`` queued)."""
    lost = [t.case_id for t in tasks if t.case_id not in results]
    suspects = lost[: 2 * workers + 1] if own else lost
    shown = ", ".join(map(repr, suspects[:10])) + (" …" if len(suspects) > 10 else "")
    which = f"case {shown}" if len(suspects) == 1 else f"one of the cases {shown}"
    return WORKER_DIED.format(which=which, lost=len(lost))
