"""Per-case evaluation: every metric of every model against every ruler, in parallel, cached.

Each case is one task: its files are read once, their geometry checked, every pair scored from
shared surfaces and distance maps, and each reference described (morphology). Tasks run on any
:class:`concurrent.futures.Executor`; results are identical whatever the worker count or order.

Example
-------
>>> from segfair import load_cohort, evaluate
>>> scores = evaluate(load_cohort("segfair.toml"), workers=2)  # doctest: +SKIP
>>> scores.table.head()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import pandas as pd

from segfair.cohort import Cohort
from segfair.errors import CohortError, InputError, Problem, SegfairError
from segfair.scores import (
    AGREEMENT_COLUMNS,
    EXCLUSION_COLUMNS,
    MORPHOLOGY_COLUMNS,
    SCORE_COLUMNS,
    Scores,
)
from segfair.version import __version__

__all__ = ["CaseResult", "CaseTask", "evaluate", "evaluate_case"]

#: Bumped whenever the layout of a cached case result changes.
CACHE_FORMAT = 2
WORKER_DIED = (
    "a worker process died (out of memory, or killed) while evaluating {which}; "
    "{lost} case(s) were not evaluated. Give the machine more memory, or use fewer workers "
    "(`workers` in the configuration, or --workers)."
)
CACHE_NOT_WRITABLE = (
    "the cache folder {path!r} cannot be written ({reason}). Fix its permissions, point `cache` "
    "at a writable folder, or turn the cache off (cache = false, or --no-cache)"
)


@dataclass(frozen=True)
class CaseTask:
    """Everything one worker needs to evaluate one case; plain data, cheap to pickle."""

    case_id: str
    files: Mapping[str, str]
    read: Mapping[str, Mapping[str, Any]]
    pairs: Sequence[tuple[str, str]]
    describe: Sequence[str]
    metrics: Sequence[str]
    settings: Mapping[str, Any]
    reorient: bool = False
    atol: float = 1e-3
    cache_dir: str | None = None
    #: set by :func:`evaluate` after its cache lookup, so a worker does not hash the files again
    cache_key: str | None = None


@dataclass
class CaseResult:
    """Scores of one case: ``pairs[(pred, ref)][metric]`` and ``morphology[ref][descriptor]``."""

    case_id: str
    pairs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    morphology: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    cached: bool = False


def _cache_key(task: CaseTask, hashes: Callable[[str], str] | None = None) -> str:
    from segfair.io import content_hash

    hash_of: Callable[[str], str] = hashes or content_hash
    payload = {
        "format": CACHE_FORMAT,
        "segfair": __version__,
        "case_id": task.case_id,
        "files": {k: hash_of(v) for k, v in sorted(task.files.items())},
        "read": {k: dict(v) for k, v in sorted(task.read.items())},
        "pairs": sorted(list(p) for p in task.pairs),
        "describe": sorted(task.describe),
        "metrics": list(task.metrics),
        "settings": dict(task.settings),
        "reorient": task.reorient,
        "atol": task.atol,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cache_path(cache_dir: str, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.json"


def _digest(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path, task: CaseTask) -> CaseResult | None:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != CACHE_FORMAT or doc.get("case_id") != task.case_id:
            return None
        if doc.get("sha256") != _digest(doc):
            return None  # a changed byte (disk error, a hand edit): recompute
        pairs = {
            (p["pred"], p["ref"]): {k: float(v) for k, v in p["values"].items()}
            for p in doc["pairs"]
        }
        morph = {k: {d: float(x) for d, x in v.items()} for k, v in doc["morphology"].items()}
        want = {tuple(p) for p in task.pairs}
        if set(pairs) != want or set(morph) != set(task.describe):
            return None
        if any(set(v) != set(task.metrics) for v in pairs.values()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # a corrupt or foreign entry is recomputed, never trusted
        return None
    return CaseResult(case_id=task.case_id, pairs=pairs, morphology=morph, cached=True)


def _write_cache(path: Path, result: CaseResult) -> None:
    from segfair.io import atomic_write_text

    doc = {
        "format": CACHE_FORMAT,
        "case_id": result.case_id,
        "pairs": [{"pred": p, "ref": r, "values": v} for (p, r), v in sorted(result.pairs.items())],
        "morphology": result.morphology,
    }
    doc["sha256"] = _digest(doc)
    # the cache is an optimisation: a full disk costs a recomputation, never the run
    with contextlib.suppress(OSError):
        atomic_write_text(path, json.dumps(doc, sort_keys=True))


def evaluate_case(task: CaseTask) -> CaseResult:
    """Evaluate one case: read each file once, check geometry, score every pair, describe refs.

    Bad input is returned as problems (not raised) so that a run reports every bad case at once.
    """
    from segfair import io, metrics, morphology

    path = None
    if task.cache_dir is not None:
        try:
            key = task.cache_key or _cache_key(task)
        except InputError as exc:  # a file vanished or became unreadable since validation
            return CaseResult(
                task.case_id, problems=[Problem.from_input_error("unusable masks", exc)]
            )
        path = _cache_path(task.cache_dir, key)
        hit = _read_cache(path, task)
        if hit is not None:
            return hit

    result = CaseResult(case_id=task.case_id)
    masks: dict[str, io.Mask] = {}
    for name, file in task.files.items():
        try:
            masks[name] = io.load_mask(file, case_id=task.case_id, **task.read[name])
        except InputError as exc:
            result.problems.append(Problem.from_input_error("unusable masks", exc))
    if result.problems:
        return result
    # every mask is compared on the grid of the first reference (the trusted one when present)
    anchor_name = next((k for k in task.files if k.startswith("ruler:")), next(iter(masks)))
    anchor = masks[anchor_name]
    for name, mask in list(masks.items()):
        if name == anchor_name:
            continue
        try:
            if task.reorient:
                mask = io.reorient_like(mask, anchor, case_id=task.case_id)
                masks[name] = mask
            io.check_geometry(anchor, mask, case_id=task.case_id, atol=task.atol)
        except InputError as exc:
            result.problems.append(Problem.from_input_error("geometry mismatches", exc))
    if result.problems:
        return result

    settings = metrics.MetricSettings(
        hd95_method=task.settings["hd95_method"], nsd_tolerance=task.settings["nsd_tolerance"]
    )
    arrays = {k: m.array for k, m in masks.items()}
    try:
        result.pairs = metrics.compute_many(
            arrays, list(task.pairs), anchor.spacing, list(task.metrics), settings=settings
        )
        result.morphology = {
            k: morphology.describe_mask(arrays[k], anchor.spacing) for k in task.describe
        }
    except InputError as exc:
        result.problems.append(Problem.from_input_error("unusable masks", exc))
        return result
    if path is not None:
        _write_cache(path, result)
    return result


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


def build_tasks(
    cohort: Cohort,
    *,
    metrics: Sequence[str] | None = None,
    cache_dir: str | None = None,
) -> list[CaseTask]:
    """One task per case, in case-id order."""
    from segfair.metrics import ALL_METRICS

    cfg = cohort.config
    chosen = list(metrics or cfg.metrics or ALL_METRICS)
    unknown = [m for m in chosen if m not in ALL_METRICS]
    if unknown:
        raise SegfairError(
            f"unknown metric(s) {unknown}; valid metrics are {', '.join(ALL_METRICS)}"
        )
    settings = {"hd95_method": cfg.hd95, "nsd_tolerance": cfg.nsd_tolerance}
    trusted = f"ruler:{cfg.trusted_ruler}"
    tasks = []
    for case_id in cohort.case_ids:
        available = cohort.available(case_id)
        # the trusted ruler first: it is the grid the other masks are checked against
        keys = sorted(available, key=lambda s: (s != ("ruler", cfg.trusted_ruler), s[0] == "model"))
        files = {f"{k}:{n}": str(available[(k, n)]) for k, n in keys}
        read = {}
        for key in files:
            kind, name = key.split(":", 1)
            spec = (cfg.models if kind == "model" else cfg.rulers)[name]
            read[key] = {
                "labels": spec.labels if spec.labels is not None else list(cfg.labels),
                "threshold": spec.threshold if spec.threshold is not None else cfg.threshold,
                "max_voxels": cfg.max_voxels,
            }
        pairs = [(f"model:{m}", f"ruler:{r}") for m in cfg.models for r in cfg.rulers]
        pairs += [(f"ruler:{a}", trusted) for a in cfg.automated_rulers]
        pairs = [(p, r) for p, r in pairs if p in files and r in files]
        describe = [f"ruler:{r}" for r in cfg.rulers if f"ruler:{r}" in files]
        tasks.append(
            CaseTask(
                case_id=case_id,
                files=files,
                read=read,
                pairs=pairs,
                describe=describe,
                metrics=chosen,
                settings=settings,
                reorient=cfg.reorient,
                atol=cfg.geometry_tolerance,
                cache_dir=cache_dir,
            )
        )
    return tasks


def _look_up(
    tasks: Sequence[CaseTask], cache_dir: str, workers: int
) -> list[tuple[CaseTask, CaseResult | None]]:
    """Each task with its cached result (None: a miss), looked up here rather than in workers.

    A warm re-run then starts no worker process and sends no task. A miss carries its key on to
    the worker, which does not hash the files again.
    """
    from segfair.fileindex import file_index

    index = file_index(cache_dir)

    def one(task: CaseTask) -> tuple[CaseTask, CaseResult | None]:
        try:
            key = _cache_key(task, index.content_hash)
        except InputError:
            return task, None  # the worker meets the same error and reports it with the case
        return replace(task, cache_key=key), _read_cache(_cache_path(cache_dir, key), task)

    # Hashing a file (reading it, OpenSSL) releases the GIL: threads overlap it. A case whose
    # hashes are all remembered is pure Python (JSON), where threads only contend: serial.
    known = [all(index.knows(f) for f in t.files.values()) for t in tasks]
    found = [one(t) for t, k in zip(tasks, known, strict=True) if k]
    rest = [t for t, k in zip(tasks, known, strict=True) if not k]
    if len(rest) > 1:
        with ThreadPoolExecutor(max_workers=max(2, min(workers, 8))) as pool:
            found += pool.map(one, rest)
    else:
        found += map(one, rest)
    index.save()
    return found


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


def _check_cache_dir(path: str) -> None:
    """Fail before any work when the cache cannot be written (a read-only CI cache, a file)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise SegfairError(
            CACHE_NOT_WRITABLE.format(path=path, reason=exc.strerror or type(exc).__name__)
        ) from None


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
