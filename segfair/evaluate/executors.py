"""Running the case tasks: in this process, on a process pool or on any executor (Dask), with
progress, and naming the cases a dead worker took with it."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from typing import IO, Final

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


#: The work (seconds) a batch of cases is sized to take: sending a batch costs ≈0.2–1 ms on a
#: process pool (pickling, a queue round trip, waking the main process) and a few ms on Dask, so
#: at a quarter of a second that is noise, while the progress bar still moves and the last
#: batches end close together.
_BATCH_SECONDS: Final = 0.25
#: The most cases one batch carries (a 2-D case of a few ms: ≈50 a batch; this caps cheap ones).
_MAX_BATCH: Final = 256
#: Batches in flight on an executor of unknown size (Dask): enough to keep a cluster of a few
#: dozen workers busy; a pool of ours holds two a worker (one running, one waiting).
_FOREIGN_WINDOW: Final = 64
#: The weight of the latest batch in the estimate of a case's cost (the first cases of a worker
#: also pay its imports: the estimate must forget them within a few batches).
_LEARN: Final = 0.5

_NOTE: Final = "segfair: while evaluating case "
#: What a cluster raises when the workers running a batch kept dying (Dask's scheduler gives up
#: after ``distributed.scheduler.allowed-failures`` of them); matched by name, so that this
#: module does not import Dask.
_WORKER_LOST: Final = frozenset({"KilledWorker"})


def _evaluate_batch(tasks: Sequence[CaseTask]) -> tuple[list[CaseResult], float]:
    """Evaluate a batch of cases in one worker call: their results, and the seconds it took
    (which size the next batches). An exception names the case it was raised on.

    >>> _evaluate_batch([])
    ([], 0.0)
    """
    if not tasks:
        return [], 0.0
    start = time.perf_counter()
    results = []
    for task in tasks:
        try:
            results.append(evaluate_case(task))
        except Exception as exc:
            exc.add_note(f"{_NOTE}{task.case_id!r}")
            raise
    return results, time.perf_counter() - start


class _Batches:
    """The tasks cut into batches in order, each sized from what a case has cost so far: one
    case until a first batch is back (a large 3-D case stays alone: it costs more than
    :data:`_BATCH_SECONDS`), then :data:`_BATCH_SECONDS` of work, at most :data:`_MAX_BATCH`
    cases, and never more than would leave fewer than two batches a slot of the window (the end
    stays balanced between workers)."""

    def __init__(self, tasks: Sequence[CaseTask], window: int) -> None:
        self.tasks, self.window = tasks, window
        self.next = 0
        self.per_case: float | None = None

    def __bool__(self) -> bool:
        return self.next < len(self.tasks)

    def take(self) -> list[CaseTask]:
        size = 1
        if self.per_case is not None:
            left = len(self.tasks) - self.next
            size = int(_BATCH_SECONDS / max(self.per_case, 1e-6))
            size = max(1, min(size, _MAX_BATCH, -(-left // (2 * self.window))))
        batch = list(self.tasks[self.next : self.next + size])
        self.next += len(batch)
        return batch

    def learn(self, cases: int, seconds: float) -> None:
        if cases:
            cost = seconds / cases
            old = self.per_case
            self.per_case = cost if old is None else _LEARN * cost + (1 - _LEARN) * old


def _run(
    tasks: Sequence[CaseTask],
    executor: Executor | None,
    workers: int,
    on_result: Callable[[CaseResult], None],
) -> dict[str, CaseResult]:
    """Evaluate the tasks: in this process (one worker, or one task), else in batches on the
    executor (default: a process pool of ``workers``), every result passed to ``on_result`` as
    its batch comes back."""
    results: dict[str, CaseResult] = {}
    if executor is None and (workers <= 1 or len(tasks) <= 1):
        for task in tasks:
            results[task.case_id] = r = evaluate_case(task)
            on_result(r)
        return results
    own = executor is None
    pool: Executor = executor if executor is not None else ProcessPoolExecutor(max_workers=workers)
    # a bounded window of batches in flight: each new batch is sized by the ones back, and a
    # dead worker's cases are among the few batches out
    batches = _Batches(tasks, 2 * workers if own else max(2 * workers, _FOREIGN_WINDOW))
    out: dict[Future[tuple[list[CaseResult], float]], list[CaseTask]] = {}
    try:
        while batches or out:
            while batches and len(out) < batches.window:
                batch = batches.take()
                out[pool.submit(_evaluate_batch, batch)] = batch
            done, _ = wait(out, return_when=FIRST_COMPLETED)
            for fut in done:
                batch = out[fut]
                try:
                    batch_results, seconds = fut.result()
                except BrokenProcessPool:
                    raise SegfairError(_worker_died(tasks, results, out)) from None
                except Exception as exc:
                    if type(exc).__name__ in _WORKER_LOST:  # Dask gave up on a batch
                        lost = {fut: batch}
                        raise SegfairError(_worker_died(tasks, results, lost)) from None
                    if not any(n.startswith(_NOTE) for n in getattr(exc, "__notes__", ())):
                        # lost on the way (a Dask worker gone, a task that did not pickle)
                        exc.add_note(_note_for(batch))
                    raise
                del out[fut]
                batches.learn(len(batch_results), seconds)
                for r in batch_results:
                    results[r.case_id] = r
                    on_result(r)
    finally:
        for fut in out:
            fut.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _note_for(batch: Sequence[CaseTask]) -> str:
    if len(batch) == 1:
        return f"{_NOTE}{batch[0].case_id!r}"
    return f"segfair: while evaluating one of the cases {_shown([t.case_id for t in batch])}"


def _shown(case_ids: Sequence[str]) -> str:
    return ", ".join(map(repr, case_ids[:10])) + (" …" if len(case_ids) > 10 else "")


def _worker_died(
    tasks: Sequence[CaseTask],
    results: Mapping[str, CaseResult],
    out: Mapping[Future[tuple[list[CaseResult], float]], Sequence[CaseTask]],
) -> str:
    """Name the cases a dead worker may have taken: those of the batches in flight that did not
    come back (the pool fails them all; the dead worker's batch is among them)."""
    lost = [t.case_id for t in tasks if t.case_id not in results]
    came_back = {
        t.case_id
        for fut, batch in out.items()
        if fut.done() and not fut.cancelled() and fut.exception() is None
        for t in batch
    }
    out_ids = {t.case_id for batch in out.values() for t in batch} - came_back
    suspects = [c for c in lost if c in out_ids] or lost
    shown = _shown(suspects)
    which = f"case {shown}" if len(suspects) == 1 else f"one of the cases {shown}"
    return WORKER_DIED.format(which=which, lost=len(lost))
