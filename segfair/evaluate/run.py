"""The run: :func:`evaluate` scores a whole cohort (store look-up, executors, results stored as
they arrive) and assembles the per-case results into a :class:`~segfair.scores.Scores` table,
column by column from per-layout matrices; :func:`load_scores` does the same for results already
in a store."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import (
    Executor,
)
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from segfair.cohort import Cohort
from segfair.cohort.config import MAX_WORKERS
from segfair.errors import CohortError, SegfairError
from segfair.evaluate.cache import _check_cache_dir, _keys, _migrate
from segfair.evaluate.executors import _default_progress, _Progress, _run
from segfair.evaluate.store import Found, Layout, ResultStore, StoreRow
from segfair.evaluate.tasks import CaseResult, CaseTask, build_tasks
from segfair.scores import (
    AGREEMENT_COLUMNS,
    EXCLUSION_COLUMNS,
    MORPHOLOGY_COLUMNS,
    SCORE_COLUMNS,
    Scores,
)

__all__ = ["CACHE_MISMATCH", "NOT_STORED", "evaluate", "load_scores"]

CACHE_MISMATCH = (
    "{n} cached value(s) differ from a recomputation (cache_verify):\n  - {cases}\nThe cache "
    "folder {path!r} was altered, or restored from a run of other inputs or another segfair: "
    "delete it and run again, and never restore a cache from a source you do not trust"
)
NOT_STORED = (
    "{n} case(s) have no verified result in the results store {path!r}: {cases}. Evaluate "
    "them first (segfair.evaluate.evaluate with this cache folder), or pass their keys"
)
NO_STORE = (
    "load_scores needs a cache folder: give cache=<folder> or set `cache` in the configuration"
)
KEYS_LENGTH = "load_scores got {n} key(s) for the {m} case(s) of the cohort: give one per case"
UNKNOWN_SOURCE = (
    "a stored result names {kind} {name!r}, which the configuration does not declare ({valid}): "
    "the store holds results of another configuration"
)
#: Results are written to the store in batches of this many, or after this long (seconds).
WRITE_EVERY, WRITE_AFTER = 1000, 1.0


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
        Results are kept in the folder's results store (``results.sqlite``), keyed by the content
        hash of the inputs and the metric settings, looked up and written by this process only.
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
    chosen = tasks[0].metrics if tasks else list(metrics or [])
    columns = _Columns(len(tasks))
    if cache_dir is None:
        results = _run(tasks, executor, n_workers, bar.update)
        columns.add_results(results, {t.case_id: i for i, t in enumerate(tasks)})
        _raise_problems(results, cfg.source)
        return _assemble_columns(cohort, [t.case_id for t in tasks], columns, chosen)

    position = {t.case_id: i for i, t in enumerate(tasks)}
    with ResultStore(cache_dir) as store:
        _migrate(cache_dir, store)
        keys = _keys(tasks, cache_dir, n_workers)
        ids = [t.case_id for t in tasks]
        found = columns.add_stored(store.scan(keys), tasks, ids)
        hit = np.zeros(len(tasks), dtype=bool)
        hit[found] = True
        # the sample is drawn from the hits in case-id order (the same cache and seed, the same
        # cases), whatever order the store gave them in
        hit_ids = sorted(ids[i] for i in found.tolist()) if cfg.cache_verify > 0 else []
        checked = set(_to_verify(hit_ids, cfg.cache_verify, cfg.seed))
        taken = columns.take(i for i in found.tolist() if ids[i] in checked)
        hits = {ids[i]: result for i, result in taken.items()}
        if len(found) > len(hits):  # every hit at once: one line of progress, not one per case
            bar.done += len(found) - len(hits) - 1
            bar.cached += len(found) - len(hits) - 1
            bar.update(CaseResult(case_id="", cached=True))
        # workers get no cache folder (they never open the store; a Dask worker elsewhere could
        # not): a miss carries its key, a checked case is computed afresh and not written back
        to_run = [
            replace(tasks[i], cache_dir=None, cache_key=keys[i])
            for i in np.flatnonzero(~hit).tolist()
        ]
        to_run += [replace(tasks[i], cache_dir=None, cache_key=None) for i in sorted(taken)]
        to_run.sort(key=lambda t: position[t.case_id])
        writer = _Writer(store, {t.case_id: t.cache_key for t in to_run if t.cache_key})
        rows: dict[str, tuple[Layout, Matrix]] = {}

        def on_result(result: CaseResult) -> None:
            if not result.problems:  # its layout found once, for the store and the columns
                rows[result.case_id] = row = Layout.of(result)
                writer.add(result.case_id, *row)
            bar.update(result)

        try:
            results = _run(to_run, executor, n_workers, on_result)
        finally:
            writer.flush()
    columns.add_results(results, position, rows)
    _check_against_cache(results, hits, cache_dir)
    _raise_problems(results, cfg.source)
    return _assemble_columns(cohort, [t.case_id for t in tasks], columns, chosen)


def load_scores(
    cohort: Cohort,
    keys: Sequence[str],
    *,
    cache: bool | str | Path | None = None,
    metrics: Sequence[str] | None = None,
) -> Scores:
    """The :class:`~segfair.scores.Scores` of results already in a results store, without
    reading a mask: ``keys[i]`` is the stored key of ``cohort.case_ids[i]``.

    For precomputed scores at scale (a million cases load in seconds; the benchmark
    ``benchmarks/bench_store.py``). Every entry is verified as :func:`evaluate` verifies it.

    Raises
    ------
    SegfairError
        A case without a verified result (listed), or results of another configuration.

    Example
    -------
    >>> scores = load_scores(cohort, keys, cache="/data/segfair-cache")  # doctest: +SKIP
    """
    from segfair.cohort import cache_folder
    from segfair.metrics import ALL_METRICS

    cfg = cohort.config
    cache_dir = cache_folder(cfg, cache)
    if cache_dir is None:
        raise SegfairError(NO_STORE)
    case_ids = [str(c) for c in cohort.metadata.index.tolist()]  # cohort.case_ids, at C speed
    if len(keys) != len(case_ids):
        raise SegfairError(KEYS_LENGTH.format(n=len(keys), m=len(case_ids)))
    columns = _Columns(len(case_ids))
    with ResultStore(cache_dir) as store:
        found = columns.add_stored(store.scan(keys), None, case_ids)
    if len(found) < len(case_ids):
        hit = np.zeros(len(case_ids), dtype=bool)
        hit[found] = True
        missing = [case_ids[i] for i in np.flatnonzero(~hit).tolist()]
        shown = ", ".join(map(repr, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise SegfairError(NOT_STORED.format(n=len(missing), path=cache_dir, cases=shown))
    chosen = list(metrics or cfg.metrics or [])
    if not chosen:
        seen = dict.fromkeys(m for lay in columns.layouts() for *_, m in lay.scores)
        chosen = [m for m in ALL_METRICS if m in seen] + [m for m in seen if m not in ALL_METRICS]
    return _assemble_columns(cohort, case_ids, columns, chosen)


class _Writer:
    """Results stored as they arrive, in the main process: one transaction every
    :data:`WRITE_EVERY` results or :data:`WRITE_AFTER` seconds (a run killed between two loses
    at most that much)."""

    def __init__(self, store: ResultStore, keys: Mapping[str, str]) -> None:
        self.store, self.keys = store, keys
        self.rows: list[StoreRow] = []
        self.last = time.monotonic()

    def add(self, case_id: str, layout: Layout, values: Matrix) -> None:
        """Store a computed result (of a case the run looked up: one with a key)."""
        key = self.keys.get(case_id)
        if key is None:
            return
        self.rows.append(StoreRow(key, case_id, layout, values))
        if len(self.rows) >= WRITE_EVERY or time.monotonic() - self.last >= WRITE_AFTER:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.last = time.monotonic()
        # the cache is an optimisation: a full disk costs a recomputation, never the run
        with contextlib.suppress(OSError, sqlite3.Error):
            self.store.put_many(rows)


def _raise_problems(results: Mapping[str, CaseResult], source: Any) -> None:
    problems = [p for cid in sorted(results) for p in results[cid].problems]
    if problems:
        raise CohortError(problems, source=source)


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


class _Columns:
    """The case results of a run as values in their layouts: per layout, chunks of positions
    (a case's index in the run) and of matrices (a row per case, a column per slot). A million
    stored results stay a few arrays, never a million objects."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: dict[bytes, tuple[Layout, list[Positions], list[Matrix]]] = {}
        #: the first layout met (a run's usual one) in one matrix of a row per case, filled in
        #: place: no chunks to join at the end, so a million rows are never held twice
        self.dense: tuple[Layout, Matrix, npt.NDArray[np.bool_]] | None = None

    def _add(self, layout: Layout, positions: Positions, matrix: Matrix) -> None:
        if self.dense is None and layout.id not in self.parts:
            full = np.empty((self.n, layout.width), dtype=np.float64)
            self.dense = (layout, full, np.zeros(self.n, dtype=bool))
        if self.dense is not None and self.dense[0].id == layout.id:
            _, full, filled = self.dense
            full[positions] = matrix
            filled[positions] = True
            return
        _, pos, mats = self.parts.setdefault(layout.id, (layout, [], []))
        pos.append(positions)
        mats.append(matrix)

    def layouts(self) -> list[Layout]:
        first = [] if self.dense is None else [self.dense[0]]
        return first + [layout for layout, _, _ in self.parts.values()]

    def add_stored(
        self, chunks: Iterable[Found], tasks: Sequence[CaseTask] | None, case_ids: Sequence[str]
    ) -> Positions:
        """Add verified entries (:meth:`ResultStore.scan`) that answer their case: its case id
        and, given ``tasks``, a layout that fits the task. Returns the positions added."""
        ids = np.asarray(case_ids, dtype=object)
        fits: dict[tuple[Any, ...], bool] = {}
        added = []
        for found in chunks:
            keep = np.asarray(found.case_ids, dtype=object) == ids[found.positions]
            if tasks is not None:  # a task's pairs depend on which of its masks exist
                layout = found.layout
                for j, i in enumerate(found.positions.tolist()):
                    task = tasks[i]
                    sig = (tuple(task.pairs), tuple(task.describe), *task.metrics)
                    ok = fits.get(sig)
                    if ok is None:
                        ok = fits[sig] = layout.fits(task)
                    keep[j] &= ok
                fits.clear()  # the signatures are per layout
            if keep.all():
                self._add(found.layout, found.positions, found.values)
            elif keep.any():
                self._add(found.layout, found.positions[keep], found.values[keep])
            added.append(found.positions[keep])
        return np.concatenate(added) if added else np.empty(0, dtype=np.intp)

    def add_results(
        self,
        results: Mapping[str, CaseResult],
        position: Mapping[str, int],
        found_rows: Mapping[str, tuple[Layout, Matrix]] | None = None,
    ) -> None:
        """Add computed results (those with problems are reported, not scored); ``found_rows``:
        the layout and values of results already found (:meth:`Layout.of`)."""
        groups: dict[bytes, tuple[Layout, list[int], list[Matrix]]] = {}
        for cid, result in results.items():
            if result.problems:
                continue
            found = found_rows.get(cid) if found_rows is not None else None
            layout, values = found if found is not None else Layout.of(result)
            _, pos, rows = groups.setdefault(layout.id, (layout, [], []))
            pos.append(position[cid])
            rows.append(values)
        for layout, pos, rows in groups.values():
            matrix = np.vstack(rows).reshape(len(rows), layout.width)
            self._add(layout, np.asarray(pos, dtype=np.intp), matrix)

    def take(self, wanted: Iterable[int]) -> dict[int, CaseResult]:
        """Remove the rows at these positions and give them back as results (the few cases
        ``cache_verify`` recomputes)."""
        want = np.fromiter(wanted, dtype=np.intp)
        out: dict[int, CaseResult] = {}
        if not len(want):
            return out
        if self.dense is not None:
            layout, full, filled = self.dense
            for i in want[filled[want]].tolist():
                out[i] = layout.to_result("", full[i])
                filled[i] = False
        for layout, pos, mats in self.parts.values():
            for n, (p, m) in enumerate(zip(pos, mats, strict=True)):
                hit = np.isin(p, want)
                if hit.any():
                    for i, row in zip(p[hit].tolist(), m[hit], strict=True):
                        out[i] = layout.to_result("", row)
                    pos[n], mats[n] = p[~hit], m[~hit]
        return out

    def finish(self) -> Iterator[tuple[Layout, Positions, Matrix]]:
        """Each layout's positions in ascending order and its matrix in that order; the chunks
        are let go as they are joined."""
        if self.dense is not None:
            layout, full, filled = self.dense
            self.dense = None
            positions = np.flatnonzero(filled)
            if len(positions):
                yield layout, positions, full if len(positions) == self.n else full[positions]
            del full, filled
        for layout_id in list(self.parts):
            layout, pos, mats = self.parts.pop(layout_id)
            positions = np.concatenate(pos)
            matrix = np.concatenate(mats) if len(mats) > 1 else mats[0]
            del pos[:], mats[:]
            if len(positions) > 1 and not bool(np.all(positions[1:] > positions[:-1])):
                order = np.argsort(positions, kind="stable")
                positions, matrix = positions[order], matrix[order]
            yield layout, positions, matrix


#: Positions of cases in a run, and their values (a row per case, a column per layout slot).
Positions = npt.NDArray[np.intp]
Matrix = npt.NDArray[np.float64]


def _assemble_columns(
    cohort: Cohort, case_ids: Sequence[str], columns: _Columns, metrics: Sequence[str]
) -> Scores:
    """The :class:`Scores` of per-layout matrices, built column by column (``np.repeat`` of
    the cases, ``np.tile`` of the slots, Categorical text columns), rows in today's order:
    case id (as text), structure (declared), model, ruler and metric (configured order);
    morphology by case id, structure, then ruler and descriptor as text."""
    cfg = cohort.config
    trusted = f"ruler:{cfg.trusted_ruler}"
    structures = tuple(cfg.structure_labels)
    declared = {
        "structure": {n: i for i, n in enumerate(structures)},
        "model": {n: i for i, n in enumerate(cfg.models)},
        "ruler": {n: i for i, n in enumerate(cfg.rulers)},
        "reference": {n: 0 for n in cfg.rulers},
        "metric": {n: i for i, n in enumerate(metrics)},
    }
    chosen = set(metrics)
    cases = _CaseOrder(case_ids)
    table, agreement, morphology = _Frame(cases), _Frame(cases), _Frame(cases)
    for layout, pos, matrix in columns.finish():
        model_slots, agree_slots = [], []
        for j, (structure, pred, ref, metric) in enumerate(layout.scores):
            kind, name = pred.split(":", 1)
            if metric not in chosen:
                continue
            if kind == "model":
                model_slots.append((j, (structure, name, ref.split(":", 1)[1], metric)))
            elif ref == trusted:
                agree_slots.append((j, (structure, name, ref.split(":", 1)[1], metric)))
        shape_slots = [
            (len(layout.scores) + j, (structure, ref.split(":", 1)[1], name))
            for j, (structure, ref, name) in enumerate(layout.shapes)
        ]
        table.add(pos, matrix, model_slots)
        agreement.add(pos, matrix, agree_slots)
        morphology.add(pos, matrix, shape_slots)
        del matrix
    by_text: dict[str, int] = {}  # empty: text order
    scores_order = [declared[c] for c in ("structure", "model", "ruler", "metric")]
    agree_order = [declared[c] for c in ("structure", "ruler", "reference", "metric")]
    shape_order = [declared["structure"], by_text, by_text]
    return _scores(
        cohort,
        table.frame(SCORE_COLUMNS, scores_order),
        agreement.frame(AGREEMENT_COLUMNS, agree_order),
        morphology.frame(MORPHOLOGY_COLUMNS, shape_order),
        metrics,
    )


class _CaseOrder:
    """Case ids as categories in text order, and each position's rank in it."""

    def __init__(self, case_ids: Sequence[str]) -> None:
        ids = list(case_ids)
        if all(a < b for a, b in itertools.pairwise(ids)):
            self.rank: Positions | None = None  # in order already (the cohort's own order)
            self.categories = pd.Index(ids, dtype=object)
        else:
            order = sorted(range(len(ids)), key=ids.__getitem__)
            self.rank = np.empty(len(ids), dtype=np.intp)
            self.rank[order] = np.arange(len(ids))
            self.categories = pd.Index([ids[i] for i in order], dtype=object)

    def of(self, positions: Positions) -> Positions:
        return positions if self.rank is None else self.rank[positions]


class _Frame:
    """One long table built from the slots of each layout."""

    def __init__(self, cases: _CaseOrder) -> None:
        self.cases = cases
        self.pieces: list[tuple[Positions, Matrix, list[tuple[str, ...]]]] = []

    def add(
        self, pos: Positions, matrix: Matrix, slots: Sequence[tuple[int, tuple[str, ...]]]
    ) -> None:
        if not slots or not len(pos):
            return
        cols = [j for j, _ in slots]
        self.pieces.append((pos, matrix[:, cols], [labels for _, labels in slots]))

    def frame(self, names: Sequence[str], ranks: Sequence[Mapping[str, int]]) -> pd.DataFrame:
        """Columns ``names`` (case id, the slot labels, value), rows sorted by case then by
        each label's rank (its declared place; text order where ``ranks`` is empty)."""
        keys = names[1:-1]
        labels = [
            sorted({s[c] for *_, slots in self.pieces for s in slots}) for c in range(len(keys))
        ]
        rank_of: list[Mapping[str, int]] = []
        for c, vocab in enumerate(labels):
            r = ranks[c] if ranks[c] else {v: i for i, v in enumerate(vocab)}
            unknown = [v for v in vocab if v not in r]
            if unknown:
                raise SegfairError(
                    UNKNOWN_SOURCE.format(kind=keys[c], name=unknown[0], valid=", ".join(r))
                )
            rank_of.append(r)
        spans = [max(r.values(), default=0) + 1 for r in rank_of]
        case_codes: list[npt.NDArray[np.integer[Any]]] = []
        codes: list[list[npt.NDArray[np.integer[Any]]]] = [[] for _ in keys]
        values: list[Matrix] = []
        slot_keys: list[npt.NDArray[np.int64]] = []
        in_order = len(self.pieces) <= 1
        for pos, vals, slots in self.pieces:
            slot_key = np.zeros(len(slots), dtype=np.int64)
            for c, span in enumerate(spans):
                ranks_c = np.array([rank_of[c][s[c]] for s in slots], dtype=np.int64)
                slot_key = slot_key * span + ranks_c
                index = {v: i for i, v in enumerate(labels[c])}
                one = np.array([index[s[c]] for s in slots], dtype=_code_type(len(labels[c])))
                codes[c].append(np.tile(one, len(pos)))
            ranked = self.cases.of(pos)
            in_order = in_order and _rising(ranked) and _rising(slot_key)
            case_codes.append(
                np.repeat(ranked.astype(_code_type(len(self.cases.categories))), len(slots))
            )
            slot_keys.append(slot_key)
            values.append(vals.reshape(-1))
        case_code = _joined(case_codes, np.int32)
        value = _joined(values, np.float64)
        key_codes = [_joined(c, np.int8) for c in codes]
        del case_codes, values, codes
        # in order already when the cases come in order with one layout (the usual run): no
        # sort key of 8 bytes a row, no permutation
        if not in_order:
            per_case = int(np.prod(spans))
            sort_key = np.concatenate(
                [
                    np.repeat(self.cases.of(pos).astype(np.int64) * per_case, len(key))
                    + np.tile(key, len(pos))
                    for (pos, _, _), key in zip(self.pieces, slot_keys, strict=True)
                ]
            )
            perm = np.argsort(sort_key, kind="stable")
            del sort_key
            case_code, value = case_code[perm], value[perm]
            key_codes = [k[perm] for k in key_codes]
        self.pieces.clear()
        data: dict[str, Any] = {names[0]: _categorical(case_code, self.cases.categories)}
        for name, k, vocab in zip(keys, key_codes, labels, strict=True):
            data[name] = _categorical(k, pd.Index(vocab, dtype=object))
        data[names[-1]] = value
        return pd.DataFrame(data, copy=False)


def _rising(values: npt.NDArray[Any]) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] > values[:-1]))


def _code_type(n: int) -> type[np.integer[Any]]:
    """The smallest integer type pandas keeps for the codes of ``n`` categories."""
    return np.int8 if n < 127 else np.int16 if n < 32_767 else np.int32


def _joined(parts: Sequence[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """One array of the parts (the part itself when there is one: no copy)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _categorical(codes: npt.NDArray[np.integer[Any]], categories: pd.Index) -> Any:
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))


def _scores(
    cohort: Cohort,
    table: pd.DataFrame,
    agreement: pd.DataFrame,
    morphology: pd.DataFrame,
    metrics: Sequence[str],
) -> Scores:
    from segfair.metrics import LESION_METRICS, LesionSettings, MetricSettings

    cfg = cohort.config
    structures = tuple(cfg.structure_labels)
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
