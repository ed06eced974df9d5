"""The run: :func:`evaluate` scores a whole cohort (cache look-up, executors) and assembles the
per-case results into a :class:`~segfair.scores.Scores` table."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import (
    Executor,
)
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segfair.cohort import Cohort
from segfair.cohort.config import MAX_WORKERS
from segfair.errors import CohortError, SegfairError
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

__all__ = ["CACHE_MISMATCH", "evaluate"]

CACHE_MISMATCH = (
    "{n} cached value(s) differ from a recomputation (cache_verify):\n  - {cases}\nThe cache "
    "folder {path!r} was altered, or restored from a run of other inputs or another segfair: "
    "delete it and run again, and never restore a cache from a source you do not trust"
)


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
        :data:`segfair.metrics.ALL_METRICS`; the lesion-wise scores,
        :data:`segfair.metrics.LESION_METRICS`, are opt-in).
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
    # never more processes than cases to score (nor than the configuration allows)
    n_workers = max(1, min(workers or cfg.workers or os.cpu_count() or 1, len(tasks), MAX_WORKERS))
    bar = _Progress(len(tasks), enabled=_default_progress() if progress is None else progress)
    results: dict[str, CaseResult] = {}
    hits: dict[str, CaseResult] = {}
    if cache_dir is not None:
        tasks_to_run = []
        for task, hit in _look_up(tasks, cache_dir, n_workers):
            if hit is None:
                tasks_to_run.append(task)
            else:
                hits[task.case_id] = hit
        checked = _to_verify(sorted(hits), cfg.cache_verify, cfg.seed)
        by_id = {t.case_id: t for t in tasks}
        # a checked case is computed afresh (and not written back): the run then compares
        tasks_to_run += [replace(by_id[c], cache_dir=None, cache_key=None) for c in checked]
        for cid in sorted(set(hits) - set(checked)):
            results[cid] = hits[cid]
            bar.update(hits[cid])
    else:
        tasks_to_run = tasks
    results.update(_run(tasks_to_run, executor, n_workers, bar.update))
    if cache_dir is not None:
        _check_against_cache(results, hits, cache_dir)

    problems = [p for cid in sorted(results) for p in results[cid].problems]
    if problems:
        raise CohortError(problems, source=cfg.source)
    chosen = tasks[0].metrics if tasks else list(metrics or [])
    return _assemble(cohort, [results[t.case_id] for t in tasks], chosen)


def _to_verify(case_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The cached cases recomputed in release mode: a seeded random ``fraction`` (at least one
    when the fraction is positive), the same for the same cache and seed."""
    if fraction <= 0 or not case_ids:
        return []
    k = min(len(case_ids), max(1, math.ceil(fraction * len(case_ids))))
    rng = np.random.default_rng([0x5EC0CAC4E, seed & 0xFFFFFFFF])  # its own stream
    return sorted(str(c) for c in rng.choice(np.asarray(case_ids, dtype=object), k, replace=False))


def _check_against_cache(
    results: Mapping[str, CaseResult], hits: Mapping[str, CaseResult], cache_dir: str
) -> None:
    """Refuse the run when a recomputed case differs from its cache entry."""
    wrong = []
    for cid, hit in sorted(hits.items()):
        fresh = results.get(cid)
        if fresh is None or fresh is hit or fresh.problems:
            continue
        for structure, pairs in fresh.scores.items():
            # the one structure of a cohort without [structures] is not named
            what = "" if len(fresh.scores) == 1 else f"{structure}: "
            wrong += _differences(cid, what, pairs, hit.scores.get(structure, {}))
            old = hit.shapes.get(structure, {})
            wrong += _differences(cid, f"{what}shape ", fresh.shapes[structure], old)
    if wrong:
        raise SegfairError(
            CACHE_MISMATCH.format(n=len(wrong), cases="\n  - ".join(wrong[:10]), path=cache_dir)
        )


def _differences(
    case_id: str,
    what: str,
    fresh: Mapping[Any, Mapping[str, float]],
    cached: Mapping[Any, Mapping[str, float]],
) -> list[str]:
    out = []
    for source, values in sorted(fresh.items()):
        for name, value in sorted(values.items()):
            old = cached.get(source, {}).get(name, math.nan)
            if not (old == value or (math.isnan(old) and math.isnan(value))):
                where = " vs ".join(source) if isinstance(source, tuple) else str(source)
                out.append(
                    f"{case_id}: {what}{name} of {where} cached {old!r}, recomputed {value!r}"
                )
    return out


def _assemble(cohort: Cohort, results: Iterable[CaseResult], metrics: Sequence[str]) -> Scores:
    from segfair.metrics import LESION_METRICS, LesionSettings, MetricSettings

    cfg = cohort.config
    trusted = f"ruler:{cfg.trusted_ruler}"
    rows: list[tuple[str, str, str, str, str, float]] = []
    agree: list[tuple[str, str, str, str, str, float]] = []
    morph: list[tuple[str, str, str, str, float]] = []
    for res in results:
        for structure, pairs in res.scores.items():
            for (pred, ref), values in pairs.items():
                pk, pname = pred.split(":", 1)
                rname = ref.split(":", 1)[1]
                for m in metrics:
                    if pk == "model":
                        rows.append((res.case_id, structure, pname, rname, m, values[m]))
                    elif ref == trusted:
                        agree.append((res.case_id, structure, pname, rname, m, values[m]))
        for structure, shapes in res.shapes.items():
            for ref, desc in shapes.items():
                rname = ref.split(":", 1)[1]
                morph.extend((res.case_id, structure, rname, d, v) for d, v in desc.items())

    structures = tuple(cfg.structure_labels)
    order = {
        "structure": {n: i for i, n in enumerate(structures)},
        "model": {n: i for i, n in enumerate(cfg.models)},
        "ruler": {n: i for i, n in enumerate(cfg.rulers)},
        "metric": {n: i for i, n in enumerate(metrics)},
    }
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    table = table.sort_values(
        ["case_id", "structure", "model", "ruler", "metric"],
        key=lambda s: s.map(order[s.name]) if s.name in order else s,
    ).reset_index(drop=True)
    agreement = pd.DataFrame(agree, columns=list(AGREEMENT_COLUMNS))
    agreement = agreement.sort_values(
        ["case_id", "structure", "ruler", "metric"],
        key=lambda s: s.map(order[s.name]) if s.name in order else s,
    ).reset_index(drop=True)
    morphology = pd.DataFrame(morph, columns=list(MORPHOLOGY_COLUMNS))
    morphology = morphology.sort_values(
        ["case_id", "structure", "ruler", "descriptor"],
        key=lambda s: s.map(order["structure"]) if s.name == "structure" else s,
        kind="stable",
    )
    morphology = morphology.reset_index(drop=True)
    exclusions = cohort.exclusions.loc[:, list(EXCLUSION_COLUMNS)].reset_index(drop=True)

    settings: dict[str, Any] = dict(
        MetricSettings(hd95_method=cfg.hd95, nsd_tolerance=cfg.nsd_tolerance).describe()
    )
    settings["metrics"] = list(metrics)
    settings["cap"] = cfg.cap
    if any(m in LESION_METRICS for m in metrics):
        settings["lesions"] = LesionSettings(**cfg.lesion_settings).describe()
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
        structures=structures,
    )
