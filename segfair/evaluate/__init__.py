"""Per-case evaluation: every metric of every model against every ruler, in parallel, cached.

Each case is one task: its files are read once, their geometry checked, every pair scored from
shared surfaces and distance maps, and each reference described (morphology). Tasks run on any
:class:`concurrent.futures.Executor`; results are identical whatever the worker count or order.

The package: ``tasks`` (what a case needs) → ``store`` (the results store, one SQLite file per
cache folder) → ``cache`` (lookup keys, the cache folder's checks, migrating the per-file cache
of before) → ``case`` (one case) → ``executors`` (running them) → ``run`` (:func:`evaluate`,
storing results as they arrive and assembling the scores; :func:`load_scores`).

Example
-------
>>> from segfair import load_cohort, evaluate
>>> scores = evaluate(load_cohort("segfair.toml"), workers=2)  # doctest: +SKIP
>>> scores.table.head()  # doctest: +SKIP
"""

from __future__ import annotations

from segfair.evaluate.cache import CACHE_FORMAT, CACHE_NOT_WRITABLE
from segfair.evaluate.case import evaluate_case
from segfair.evaluate.executors import WORKER_DIED, dask_executor
from segfair.evaluate.run import CACHE_MISMATCH, evaluate, load_scores
from segfair.evaluate.store import Layout, ResultStore, StoreRow
from segfair.evaluate.tasks import CaseResult, CaseTask, build_tasks

# The worker's entry point keeps its public home: pickled by reference (a process pool, Dask) as
# ``segfair.evaluate.evaluate_case``, the path users' own executors have always seen.
evaluate_case.__module__ = __name__

__all__ = [
    "CACHE_FORMAT",
    "CACHE_MISMATCH",
    "CACHE_NOT_WRITABLE",
    "WORKER_DIED",
    "CaseResult",
    "CaseTask",
    "Layout",
    "ResultStore",
    "StoreRow",
    "build_tasks",
    "dask_executor",
    "evaluate",
    "evaluate_case",
    "load_scores",
]
