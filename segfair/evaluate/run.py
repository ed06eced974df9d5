"""The run: :func:`evaluate` scores a whole cohort (cache look-up, executors) and assembles the
per-case results into a :class:`~segfair.scores.Scores` table."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import (
    Executor,
)
from pathlib import Path
from typing import Any

import pandas as pd

from segfair.cohort import Cohort
from segfair.errors import CohortError
from segfair.evaluate.cache import _check_cache_dir, _look_up
from segfair.evaluate.executors import _default_progress, _Progress, _run
from segfair.evaluate.tasks import CaseResult, build_tasks
from segfair.scores import (
    AGREEMENT_COLUMNS,
    EXCLUSION_COLUMNS,
    MORPHOLOGY_COLUMNS,
    SCORE_COLUMNS,
    Scores,
)

__all__ = ["evaluate"]


def evaluate(
    cohort: Cohort,
    *,
    metrics: Sequence[str] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    cache: bool | str | Path | None = None,
    progress: bool | None = None,
) -> Scores:
    """Score every model against every ruler for every case of a cohort.

    Parameters
    ----------
    cohort
        A validated cohort (:func:`segfair.load_cohort`).
    metrics
        Metric names (default: the configuration's, else
        :data:`segfair.metrics.ALL_METRICS`).
    executor
        Any :class:`concurrent.futures.Executor` (e.g. a Dask ``Client.get_executor()``);
        default: a process pool of ``workers`` processes.
    workers
        Size of the default pool (default: the configuration's ``workers``, else the CPU count).
    cache
        ``True``/``None``: the configuration's cache folder; a path: that folder; ``False``: off.
        Entries are keyed by the content hash of the inputs and the metric settings.
    progress
        Show progress (default: on a terminal or in CI).

    Raises
    ------
    CohortError
        Listing every case whose masks are unusable (after trying all of them).

    Example
    -------
    >>> scores = evaluate(cohort, workers=1, cache=False)  # doctest: +SKIP
    """
    from segfair.cohort import cache_folder

    cfg = cohort.config
    cache_dir = cache_folder(cfg, cache)
    if cache_dir is not None:
        _check_cache_dir(cache_dir)
    tasks = build_tasks(cohort, metrics=metrics, cache_dir=cache_dir)
    n_workers = workers or cfg.workers or os.cpu_count() or 1
    bar = _Progress(len(tasks), enabled=_default_progress() if progress is None else progress)
    results: dict[str, CaseResult] = {}
    if cache_dir is not None:
        tasks_to_run = []
        for task, hit in _look_up(tasks, cache_dir, n_workers):
            if hit is None:
                tasks_to_run.append(task)
            else:
                results[task.case_id] = hit
                bar.update(hit)
    else:
        tasks_to_run = tasks
    results.update(_run(tasks_to_run, executor, n_workers, bar.update))

    problems = [p for cid in sorted(results) for p in results[cid].problems]
    if problems:
        raise CohortError(problems, source=cfg.source)
    chosen = tasks[0].metrics if tasks else list(metrics or [])
    return _assemble(cohort, [results[t.case_id] for t in tasks], chosen)


def _assemble(cohort: Cohort, results: Iterable[CaseResult], metrics: Sequence[str]) -> Scores:
    from segfair.metrics import MetricSettings

    cfg = cohort.config
    trusted = f"ruler:{cfg.trusted_ruler}"
    rows: list[tuple[str, str, str, str, float]] = []
    agree: list[tuple[str, str, str, str, float]] = []
    morph: list[tuple[str, str, str, float]] = []
    for res in results:
        for (pred, ref), values in res.pairs.items():
            pk, pname = pred.split(":", 1)
            rname = ref.split(":", 1)[1]
            for m in metrics:
                if pk == "model":
                    rows.append((res.case_id, pname, rname, m, values[m]))
                elif ref == trusted:
                    agree.append((res.case_id, pname, rname, m, values[m]))
        for ref, desc in res.morphology.items():
            morph.extend((res.case_id, ref.split(":", 1)[1], d, v) for d, v in desc.items())

    order = {
        "model": {n: i for i, n in enumerate(cfg.models)},
        "ruler": {n: i for i, n in enumerate(cfg.rulers)},
        "metric": {n: i for i, n in enumerate(metrics)},
    }
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    table = table.sort_values(
        ["case_id", "model", "ruler", "metric"],
        key=lambda s: s.map(order[s.name]) if s.name in order else s,
    ).reset_index(drop=True)
    agreement = pd.DataFrame(agree, columns=list(AGREEMENT_COLUMNS))
    agreement = agreement.sort_values(
        ["case_id", "ruler", "metric"],
        key=lambda s: (
            s.map(order["ruler" if s.name == "ruler" else "metric"])
            if s.name in ("ruler", "metric")
            else s
        ),
    ).reset_index(drop=True)
    morphology = pd.DataFrame(morph, columns=list(MORPHOLOGY_COLUMNS))
    morphology = morphology.sort_values(["case_id", "ruler", "descriptor"], kind="stable")
    morphology = morphology.reset_index(drop=True)
    exclusions = cohort.exclusions.loc[:, list(EXCLUSION_COLUMNS)].reset_index(drop=True)

    settings: dict[str, Any] = dict(
        MetricSettings(hd95_method=cfg.hd95, nsd_tolerance=cfg.nsd_tolerance).describe()
    )
    settings["metrics"] = list(metrics)
    settings["cap"] = cfg.cap
    return Scores(
        table=table,
        groups=cohort.groups,
        trusted_ruler=cfg.trusted_ruler,
        rulers=tuple(cfg.rulers),
        models=tuple(cfg.models),
        agreement=agreement,
        morphology=morphology,
        metadata=cohort.metadata,
        attribute_columns={n: s.column for n, s in cfg.attributes.items()},
        exclusions=exclusions,
        settings=settings,
    )
