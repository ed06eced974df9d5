"""Loading a cohort: case metadata joined with the mask sources, validated up front.

Every problem found (missing files, duplicate or unsafe case ids, missing columns, geometry
mismatches) is collected and reported at once in a :class:`~segfair.errors.CohortError`.

Example
-------
>>> cohort = load_cohort("examples/model-repo")  # doctest: +SKIP
>>> cohort.groups["age_group"].value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import functools
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from segfair.cohort.cohort import Cohort
from segfair.cohort.config import MAX_WORKERS, SegfairConfig, load_config
from segfair.cohort.sites import cluster_warnings
from segfair.cohort.table import _as_id, _derive_groups, read_table, safe_case_id
from segfair.errors import CohortError, InputError, Problem

if TYPE_CHECKING:
    from segfair.cohort.fileindex import FileIndex

__all__ = [
    "CASE_ONLY_IDS",
    "DUPLICATE_ID",
    "MISSING_COLUMN",
    "MISSING_FILE",
    "NOT_A_FILE",
    "UNSAFE_ID",
    "cache_folder",
    "load_cohort",
]

UNSAFE_ID = (
    "case id {case_id!r} is not safe in a file path (only letters, digits, '_', '-', '.' and "
    "spaces, at most 128 characters; no '/', '\\', '..' or leading '.')"
)
DUPLICATE_ID = "case id {case_id!r} appears {count} times in the metadata table"
CASE_ONLY_IDS = (
    "case ids {ids} differ only in letter case: on macOS and Windows they name the same file"
)
MISSING_COLUMN = "column {column!r} ({role}) is not in the metadata table{hint}. Columns: {cols}"
MISSING_FILE = "{kind} {name!r}: no file at {path}"
NOT_A_FILE = "{kind} {name!r}: {path} exists but is not a regular file (a folder?)"


def _closest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


FileKind = Literal["file", "other", "missing"]


def _folder_listings() -> Callable[[str], FileKind]:
    """Whether a path is a regular file, something else, or missing — from one listing of each
    folder instead of two ``stat`` calls a file: a metadata table of a million rows with a few
    imaged cases is refused in seconds, not minutes."""
    listings: dict[str, tuple[dict[str, FileKind], set[str]] | None] = {}

    def what_is(path: str) -> FileKind:
        parent, filename = os.path.split(path)
        if parent not in listings:
            try:
                with os.scandir(parent or ".") as entries:
                    names: dict[str, FileKind] = {
                        e.name: ("file" if e.is_file() else "other") for e in entries
                    }
                listings[parent] = (names, {n.casefold() for n in names})
            except OSError:
                listings[parent] = None  # no such folder (or unlistable): every file missing
        listing = listings[parent]
        if listing is not None:
            names, folded = listing
            if filename in names:
                return names[filename]
            if filename.casefold() not in folded:
                return "missing"
        # a case-insensitive file system, or a folder segfair cannot list: ask the file itself
        if os.path.isfile(path):
            return "file"
        return "other" if os.path.exists(path) else "missing"

    return what_is


def cache_folder(config: SegfairConfig, cache: bool | str | Path | None) -> str | None:
    """The run's cache folder: ``None``/``True`` the configuration's, ``False`` none (off), a
    path that folder."""
    if cache is None or cache is True:
        return str(config.resolve(config.cache)) if config.cache else None
    if cache is False:
        return None
    return str(Path(cache))


def load_cohort(
    path: str | Path | SegfairConfig = ".",
    *,
    check_geometry: bool = True,
    cache: bool | str | Path | None = None,
    workers: int | None = None,
) -> Cohort:
    """Load and validate the cohort of a configuration (a file, a folder holding one, or a
    :class:`~segfair.cohort.config.SegfairConfig`).

    Every problem is collected and raised together as a :class:`~segfair.errors.CohortError`.
    Headers already read from unchanged files are remembered in the cache folder
    (:mod:`segfair.cohort.fileindex`; ``cache``: as for :func:`segfair.evaluate.evaluate`);
    when thousands are new, ``workers`` processes (default: the configuration's ``workers``,
    else the CPU count) read them.

    Example
    -------
    >>> cohort = load_cohort("path/to/segfair.toml")  # doctest: +SKIP
    >>> len(cohort), cohort.models, cohort.rulers  # doctest: +SKIP
    """
    config = path if isinstance(path, SegfairConfig) else load_config(path)
    source = config.source
    cache_dir = cache_folder(config, cache)
    index = None
    if check_geometry and cache_dir is not None:
        from segfair.cohort.fileindex import file_index

        index = file_index(cache_dir)
    table = read_table(config.resolve(config.cases), sheet=config.sheet)
    problems: list[Problem] = []

    cols = [str(c) for c in table.columns]
    table.columns = pd.Index(cols)
    needed = [(config.case_id, "case_id")]
    needed += [(spec.column, f"attribute {name!r}") for name, spec in config.attributes.items()]
    if config.cluster is not None:
        needed.append((config.cluster, "cluster"))
    needed += [(c, "site column") for c in config.site_columns or ()]
    absent = [(c, role) for c, role in needed if c not in table.columns]
    if absent:
        raise CohortError(
            [
                Problem(
                    "missing columns",
                    MISSING_COLUMN.format(
                        column=c, role=role, hint=_closest(c, cols), cols=", ".join(cols)
                    ),
                    path=str(config.resolve(config.cases)),
                    fix="rename the column in the table or the key in the configuration",
                )
                for c, role in absent
            ],
            source=source,
        )

    ids = table[config.case_id]
    empty_ids = ids.isna() | ids.map(lambda v: str(v).strip() == "")
    for row in np.flatnonzero(empty_ids.to_numpy()):
        problems.append(
            Problem(
                "missing case ids",
                f"row {row + 2} of the metadata table has no {config.case_id!r}",
                path=str(config.resolve(config.cases)),
                fix="fill in the id or delete the row",
            )
        )
    table = table.loc[~empty_ids].copy()
    table[config.case_id] = table[config.case_id].map(_as_id)
    counts = table[config.case_id].value_counts()
    for case_id, count in counts[counts > 1].sort_index().items():
        problems.append(
            Problem(
                "duplicate case ids",
                DUPLICATE_ID.format(case_id=case_id, count=int(count)),
                case_id=str(case_id),
                fix="keep one row per case",
            )
        )
    # ids that differ only in letter case name one file on macOS and Windows: one case, twice
    unique_ids = pd.Series(sorted(set(table[config.case_id])), dtype=object)
    folded = unique_ids.str.casefold()
    # only the ids that share their folded form are grouped (a group per id of 100,000 cost
    # a third of a second)
    clash = folded.duplicated(keep=False).to_numpy()
    for _, same in unique_ids[clash].groupby(folded[clash].to_numpy(), sort=True):
        if len(same) > 1:
            problems.append(
                Problem(
                    "duplicate case ids",
                    CASE_ONLY_IDS.format(ids=", ".join(repr(i) for i in same)),
                    case_id=str(same.iloc[0]),
                    fix="keep one row per case; ids must differ by more than letter case",
                )
            )
    for case_id in sorted(set(table[config.case_id])):
        if not safe_case_id(case_id):
            problems.append(
                Problem(
                    "unsafe case ids",
                    UNSAFE_ID.format(case_id=case_id),
                    case_id=case_id,
                    fix="rename the case",
                )
            )
    if len(table) == 0 and not problems:
        problems.append(
            Problem(
                "empty cohort",
                "the metadata table has no cases",
                path=str(config.resolve(config.cases)),
                fix="point 'cases' at the table of your cohort",
            )
        )
    if problems:
        raise CohortError(problems, source=source)

    metadata = table.set_index(config.case_id).sort_index()
    metadata.index = metadata.index.astype(str)
    metadata.index.name = "case_id"
    groups = pd.DataFrame(
        {
            name: _derive_groups(name, spec, metadata[spec.column], problems)
            for name, spec in config.attributes.items()
        },
        index=metadata.index,
    )

    exclusions: list[dict[str, str]] = []
    # the trusted ruler first: it defines the grid every other mask of the case must share
    sources = sorted(
        Cohort(config, metadata, groups).sources(),
        key=lambda s: (s != ("ruler", config.trusted_ruler), s[0] == "model"),
    )
    # each source's template resolved once: a case id (letters, digits, '_', '-', '.', spaces)
    # cannot change what resolving does, so substituting it into the resolved text is the same
    templates = {
        (kind, name): str(
            config.resolve((config.models if kind == "model" else config.rulers)[name].path)
        )
        for kind, name in sources
    }
    spacings = {}
    for kind, name in sources:
        declared = (config.models if kind == "model" else config.rulers)[name].spacing
        spacings[kind, name] = declared if declared is not None else config.spacing
    plan = _Checks(config, tuple(sources), templates, spacings, check_geometry)
    chunks = _parallel_chunks(plan, metadata.index, workers, index) if check_geometry else None
    checked = None if chunks is None else _check_in_parallel(plan, index, *chunks)
    if checked is None:
        checked = plan.run(metadata.index, _folder_listings(), index)
    problems += checked[0]
    exclusions += checked[1]
    if index is not None:
        index.save()  # what was learnt stays learnt, whatever the verdict
    if problems:
        raise CohortError(problems, source=source)
    ex = pd.DataFrame(exclusions, columns=["case_id", "kind", "source", "reason"])
    return Cohort(
        config=config,
        metadata=metadata,
        groups=groups,
        exclusions=ex,
        cache_dir=cache_dir,
        warnings=tuple(cluster_warnings(config, metadata, groups)),
    )


@dataclass(frozen=True)
class _Checks:
    """The checks of a cohort's cases, run in this process or by worker processes (picklable):
    each mask source's file exists (or counts as an exclusion) and, with ``check_geometry``,
    its header is readable and on the grid of the case's first mask."""

    config: SegfairConfig
    sources: tuple[tuple[Any, str], ...]
    templates: Mapping[tuple[Any, str], str]
    spacings: Mapping[tuple[Any, str], Sequence[float] | None]
    check_geometry: bool

    def run(
        self,
        case_ids: Iterable[str],
        what_is: Callable[[str], FileKind],
        index: FileIndex | None,
    ) -> tuple[list[Problem], list[dict[str, str]]]:
        """The problems and exclusions of these cases, in their order (``index``: headers
        remembered, else read)."""
        from segfair import io

        config = self.config
        problems: list[Problem] = []
        exclusions: list[dict[str, str]] = []
        agreeing: set[tuple[Any, Any]] = set()
        for case_id in case_ids:
            first: tuple[str, int | io.Geometry] | None = None
            for kind, name in self.sources:
                table_ = config.models if kind == "model" else config.rulers
                where = self.templates[kind, name].replace("{case_id}", case_id)
                found = what_is(where)
                if found == "other":
                    problems.append(
                        Problem(
                            "unreadable files",
                            NOT_A_FILE.format(kind=kind, name=name, path=where),
                            case_id=case_id,
                            path=where,
                            fix="point the mask source at a file, not a folder",
                        )
                    )
                    continue
                if found == "missing":
                    reason = None
                    if kind == "ruler" and table_[name].partial:
                        reason = "no label from this (partial) ruler"
                    elif kind == "model" and config.missing_predictions == "exclude":
                        reason = "prediction file missing"
                    if reason is not None:
                        exclusions.append(
                            {"case_id": case_id, "kind": kind, "source": name, "reason": reason}
                        )
                        continue
                    fix = (
                        "declare the ruler partial"
                        if kind == "ruler"
                        else 'write the prediction, or set missing_predictions = "exclude" to '
                        "count it as an exclusion"
                    )
                    problems.append(
                        Problem(
                            "missing files",
                            MISSING_FILE.format(kind=kind, name=name, path=where),
                            case_id=case_id,
                            path=where,
                            fix=fix,
                        )
                    )
                    continue
                file = where  # a str: a Path a file cost more than its header at 100,000 cases
                if not self.check_geometry:
                    continue
                spacing = self.spacings[kind, name]
                try:
                    # with the file index, a grid number: files of one grid share it
                    grid: int | io.Geometry = (
                        index.grid(
                            file, case_id=case_id, max_voxels=config.max_voxels, spacing=spacing
                        )
                        if index is not None
                        else io.read_geometry(
                            file, case_id=case_id, max_voxels=config.max_voxels, spacing=spacing
                        )
                    )
                except InputError as exc:
                    problems.append(Problem.from_input_error("unreadable files", exc))
                    continue
                if first is None:
                    first = (file, grid)
                    continue
                # two grids found to agree agree again: at 100,000 cases of one grid, comparing
                # every file's geometry cost more than the file index saved
                pair = (first[1], grid)
                if index is not None and (grid == first[1] or pair in agreeing):
                    continue
                before, this = _geometry(index, *first), _geometry(index, file, grid)
                mismatch = io.describe_mismatch(
                    before, this, atol=config.geometry_tolerance, allow_reorient=config.reorient
                )
                if mismatch is None and index is not None:
                    agreeing.add(pair)
                if mismatch is not None:
                    problems.append(
                        Problem(
                            "geometry mismatches",
                            f"not on the grid of {first[0]}: {mismatch}",
                            case_id=case_id,
                            path=file,
                            fix=io.geometry_fix(before, this),
                        )
                    )
        return problems, exclusions


def _geometry(index: FileIndex | None, file: str, grid: Any) -> Any:
    """The geometry of a file checked by :meth:`_Checks.run`: read (no index), or its grid's."""
    return grid if index is None else index.grid_geometry(grid, file)


def _check_in_parallel(
    plan: _Checks, index: FileIndex | None, n_workers: int, parts: Sequence[Sequence[str]]
) -> tuple[list[Problem], list[dict[str, str]]] | None:
    """The checks of thousands of cases on worker processes (a cold 100,000-case cohort: the
    main process alone took as long as two workers decoding a fifth of the masks). The chunks
    come back in order, so problems and exclusions are listed as one process would list them;
    the headers the workers read go into ``index``. None if a worker died (killed, out of
    memory): the caller checks the cases itself."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    problems: list[Problem] = []
    exclusions: list[dict[str, str]] = []
    learn = index is not None
    try:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for found, excluded, learnt in pool.map(
                functools.partial(_check_chunk, plan, learn), parts
            ):
                problems += found
                exclusions += excluded
                if index is not None:
                    index.absorb(learnt)
    except BrokenProcessPool:
        return None
    return problems, exclusions


def _file_kind(path: str) -> FileKind:
    """:func:`_folder_listings`' answer from the file itself (a worker checks a slice of the
    cases: one ``stat`` a file costs less than listing whole folders)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other" if os.path.lexists(path) else "missing"
    return "file" if stat.S_ISREG(mode) else "other"


def _check_chunk(
    plan: _Checks, learn: bool, case_ids: Sequence[str]
) -> tuple[list[Problem], list[dict[str, str]], Any]:
    """A worker's share of :meth:`_Checks.run`, with the headers it read (``learn``: for the
    main process's file index)."""
    from segfair.cohort.fileindex import FileIndex

    index = FileIndex(None) if learn else None
    problems, exclusions = plan.run(case_ids, _file_kind, index)
    return problems, exclusions, None if index is None else index.learnt()


#: Files (cases × sources) from which a cohort's checks run on worker processes.
PARALLEL_CHECKS: Final = 4000
#: Cases a worker's call checks (tens of ms: dispatch is noise, the pool stays balanced).
_CHECK_CHUNK: Final = 500


def _parallel_chunks(
    plan: _Checks, case_ids: pd.Index, workers: int | None, index: FileIndex | None
) -> tuple[int, list[list[str]]] | None:
    """The worker processes and the chunks of case ids they check, or None to check here: one
    worker, or fewer than :data:`PARALLEL_CHECKS` files whose headers must be read (the file
    index knows the others: checking them here reads no header)."""
    n_workers = min(workers or plan.config.workers or os.cpu_count() or 1, MAX_WORKERS)
    ids = [str(c) for c in case_ids]
    if n_workers < 2 or len(ids) * len(plan.sources) < PARALLEL_CHECKS:
        return None
    if index is not None:
        # how many are new, from a thousand cases spread over the cohort (a warm run's
        # hundreds of thousands of files are not looked at twice for a choice of speed)
        sample = ids[:: max(1, len(ids) // 1000)]
        new = sum(
            template.replace("{case_id}", case_id) not in index.entries
            for case_id in sample
            for template in plan.templates.values()
        )
        if new * len(ids) < PARALLEL_CHECKS * len(sample):
            return None
    size = max(1, min(_CHECK_CHUNK, -(-len(ids) // (4 * n_workers))))
    return n_workers, [ids[i : i + size] for i in range(0, len(ids), size)]
