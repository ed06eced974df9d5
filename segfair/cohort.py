"""The cohort: case metadata joined with the mask sources, validated up front.

Every problem found (missing files, duplicate or unsafe case ids, missing columns, geometry
mismatches) is collected and reported at once in a :class:`~segfair.errors.CohortError`.

Example
-------
>>> cohort = load_cohort("examples/model-repo")  # doctest: +SKIP
>>> cohort.groups["age_group"].value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from segfair.config import AttributeSpec, SegfairConfig, load_config
from segfair.errors import CohortError, ConfigError, InputError, Problem

__all__ = ["Cohort", "SourceKind", "bin_labels", "load_cohort", "read_table", "safe_case_id"]

SourceKind = Literal["model", "ruler"]

UNSAFE_ID = (
    "case id {case_id!r} is not safe in a file path (only letters, digits, '_', '-', '.' and "
    "spaces; no '/', '\\', '..' or leading '.')"
)
DUPLICATE_ID = "case id {case_id!r} appears {count} times in the metadata table"
MISSING_COLUMN = "column {column!r} ({role}) is not in the metadata table{hint}. Columns: {cols}"
MISSING_FILE = "{kind} {name!r}: no file at {path}"
NON_NUMERIC = "attribute {attr!r}: column {column!r} holds non-numeric value {value!r}"
OUT_OF_RANGE = (
    "attribute {attr!r}: column {column!r} holds {value!r}, outside the valid range {lo}–{hi}"
)
NON_FINITE = "attribute {attr!r}: column {column!r} holds {value!r}, which is not a finite number"
NOT_A_FILE = "{kind} {name!r}: {path} exists but is not a regular file (a folder?)"
SUPPORTED_TABLES = (".csv", ".tsv", ".parquet", ".pq", ".xlsx", ".xlsm")
#: The range an ``age`` column is checked against when its attribute sets no ``valid_range``:
#: a negative or implausible age is a data-entry error, not a subgroup.
DEFAULT_AGE_RANGE = (0.0, 130.0)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$")


def safe_case_id(case_id: str) -> bool:
    """Whether a case id can be substituted into a path template without escaping its folder."""
    return bool(_SAFE_ID.match(case_id)) and ".." not in case_id and case_id == case_id.strip()


def read_table(path: Path, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a metadata table (CSV, TSV, Parquet or XLSX) with every column as read, ids as text."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"cases: metadata table {str(path)!r} does not exist", key="cases")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=object, keep_default_na=True)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", dtype=object, keep_default_na=True)
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ConfigError(
                    "reading Parquet needs pyarrow: pip install 'segfair[parquet]'", key="cases"
                ) from None
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
    except ConfigError:
        raise
    except ValueError as exc:
        # pandas reports a missing sheet as ValueError("Worksheet named 'x' not found")
        raise ConfigError(f"cannot read {str(path)!r}: {exc}", key="sheet") from None
    except Exception as exc:
        raise ConfigError(
            f"cannot read metadata table {str(path)!r}: {type(exc).__name__}: {exc}", key="cases"
        ) from None
    raise ConfigError(
        f"cases: {str(path)!r} has an unsupported suffix; use one of {', '.join(SUPPORTED_TABLES)}",
        key="cases",
    )


def _as_id(value: object) -> str:
    # spreadsheets turn 101 into 101.0; an id is text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bin_labels(edges: list[float]) -> list[str]:
    """Default labels for numeric bins: ``[40, 55]`` → ``['≤40', '40–55', '>55']``."""

    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    labels = [f"≤{fmt(edges[0])}"]
    labels += [f"{fmt(a)}–{fmt(b)}" for a, b in itertools.pairwise(edges)]
    labels.append(f">{fmt(edges[-1])}")
    return labels


def _derive_groups(
    name: str, spec: AttributeSpec, column: pd.Series, problems: list[Problem]
) -> pd.Series:
    raw = column.astype(object)
    missing = raw.isna() | raw.map(lambda v: isinstance(v, str) and v.strip() == "")
    if spec.bins is not None:
        numbers = pd.to_numeric(raw.where(~missing), errors="coerce").astype(float)
        bad = numbers.isna() & ~missing
        infinite = np.isinf(numbers)
        flagged = (bad | infinite).to_numpy()
        for case_id, value, inf in zip(
            raw.index[flagged], raw[flagged], infinite[flagged], strict=True
        ):
            template = NON_FINITE if inf else NON_NUMERIC
            problems.append(
                Problem(
                    "non-numeric attribute values",
                    template.format(attr=name, column=spec.column, value=value),
                    case_id=str(case_id),
                    fix=f"correct the value, or leave it empty to put the case in "
                    f"{spec.missing_label!r}",
                )
            )
        numbers = numbers.where(~infinite)
        valid_range = spec.valid_range
        default_range = valid_range is None and spec.column.strip().lower() == "age"
        if default_range:
            valid_range = DEFAULT_AGE_RANGE
        if valid_range is not None:
            lo, hi = valid_range
            outside = numbers.notna() & ((numbers < lo) | (numbers > hi))
            for case_id, value in raw[outside].items():
                problems.append(
                    Problem(
                        "attribute values out of range",
                        OUT_OF_RANGE.format(
                            attr=name, column=spec.column, value=value, lo=f"{lo:g}", hi=f"{hi:g}"
                        ),
                        case_id=str(case_id),
                        fix="correct the value, or set valid_range = [low, high] for attribute "
                        f"{name!r}"
                        + (
                            " (an 'age' column is checked against [0, 130] by default)"
                            if default_range
                            else ""
                        ),
                    )
                )
        labels = spec.labels or bin_labels(spec.bins)
        edges = [-np.inf, *spec.bins, np.inf]
        binned = pd.cut(numbers, bins=edges, labels=labels, right=True)
        values = binned.astype(object).where(numbers.notna(), spec.missing_label)
        categories = list(labels)
    else:
        values = raw.map(lambda v: str(v).strip() if not pd.isna(v) else v)
        values = values.where(~missing, spec.missing_label)
        present = [str(v) for v in pd.unique(values) if v != spec.missing_label]
        if spec.order is not None:
            extra = sorted(set(present) - set(spec.order))
            categories = list(spec.order) + extra
        else:
            categories = sorted(present)
    if (values == spec.missing_label).any() and spec.missing_label not in categories:
        categories.append(spec.missing_label)
    return pd.Series(
        pd.Categorical(values.astype(str), categories=categories, ordered=True),
        index=column.index,
        name=name,
    )


@dataclass(frozen=True, eq=False)
class Cohort:
    """A validated cohort: cases, their subgroup labels and where each mask lives.

    Attributes
    ----------
    config
        The configuration it was built from.
    metadata
        The metadata table, index ``case_id`` (text), sorted by case id.
    groups
        One column per attribute with the subgroup label of each case (``"unknown"`` for missing).
    exclusions
        ``case_id, kind, source, reason``: masks a case lacks by declaration (a partial ruler,
        or a missing prediction with ``missing_predictions = "exclude"``).
    cache_dir
        The cache folder of the run that loaded it (None: the cache is off), where what is
        learnt about its files is kept (:mod:`segfair.fileindex`, the report's drawings).
    """

    config: SegfairConfig
    metadata: pd.DataFrame
    groups: pd.DataFrame
    exclusions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["case_id", "kind", "source", "reason"])
    )
    cache_dir: str | None = None

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.metadata.index)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.config.models)

    @property
    def rulers(self) -> tuple[str, ...]:
        return tuple(self.config.rulers)

    @property
    def trusted_ruler(self) -> str:
        return self.config.trusted_ruler

    def __len__(self) -> int:
        return len(self.metadata)

    def path(self, kind: SourceKind, name: str, case_id: str) -> Path:
        """The file of one case's mask from one source."""
        table = self.config.models if kind == "model" else self.config.rulers
        template = table[name].path
        return self.config.resolve(template.replace("{case_id}", case_id))

    def sources(self) -> Iterator[tuple[SourceKind, str]]:
        for name in self.config.models:
            yield "model", name
        for name in self.config.rulers:
            yield "ruler", name

    @cached_property
    def _excluded(self) -> dict[str, set[tuple[str, str]]]:
        # one pass over the exclusions, not a table filter per case (quadratic in cohort size)
        out: dict[str, set[tuple[str, str]]] = {}
        for cid, kind, source in zip(
            self.exclusions["case_id"],
            self.exclusions["kind"],
            self.exclusions["source"],
            strict=True,
        ):
            out.setdefault(str(cid), set()).add((str(kind), str(source)))
        return out

    def available(self, case_id: str) -> dict[tuple[SourceKind, str], Path]:
        """The masks this case has (declared exclusions left out)."""
        missing = self._excluded.get(case_id, set())
        return {
            (k, n): self.path(k, n, case_id) for k, n in self.sources() if (k, n) not in missing
        }


def _closest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
) -> Cohort:
    """Load and validate the cohort of a configuration (a file, a folder holding one, or a
    :class:`~segfair.config.SegfairConfig`).

    Every problem is collected and raised together as a :class:`~segfair.errors.CohortError`.
    Headers already read from unchanged files are remembered in the cache folder
    (:mod:`segfair.fileindex`; ``cache``: as for :func:`segfair.evaluate.evaluate`).

    Example
    -------
    >>> cohort = load_cohort("path/to/segfair.toml")  # doctest: +SKIP
    >>> len(cohort), cohort.models, cohort.rulers  # doctest: +SKIP
    """
    from segfair import io

    config = path if isinstance(path, SegfairConfig) else load_config(path)
    source = config.source
    cache_dir = cache_folder(config, cache)
    index = None
    if check_geometry and cache_dir is not None:
        from segfair.fileindex import file_index

        index = file_index(cache_dir)
    table = read_table(config.resolve(config.cases), sheet=config.sheet)
    problems: list[Problem] = []

    cols = [str(c) for c in table.columns]
    table.columns = pd.Index(cols)
    needed = [(config.case_id, "case_id")]
    needed += [(spec.column, f"attribute {name!r}") for name, spec in config.attributes.items()]
    if config.cluster is not None:
        needed.append((config.cluster, "cluster"))
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
    for case_id in metadata.index:
        first: tuple[str, io.Geometry] | None = None
        for kind, name in sources:
            table_ = config.models if kind == "model" else config.rulers
            file = config.resolve(table_[name].path.replace("{case_id}", case_id))
            if file.exists() and not file.is_file():
                problems.append(
                    Problem(
                        "unreadable files",
                        NOT_A_FILE.format(kind=kind, name=name, path=file),
                        case_id=case_id,
                        path=str(file),
                        fix="point the mask source at a file, not a folder",
                    )
                )
                continue
            if not file.is_file():
                if kind == "ruler" and table_[name].partial:
                    exclusions.append(
                        {
                            "case_id": case_id,
                            "kind": kind,
                            "source": name,
                            "reason": "no label from this (partial) ruler",
                        }
                    )
                    continue
                if kind == "model" and config.missing_predictions == "exclude":
                    exclusions.append(
                        {
                            "case_id": case_id,
                            "kind": kind,
                            "source": name,
                            "reason": "prediction file missing",
                        }
                    )
                    continue
                fix = (
                    "declare the ruler partial"
                    if kind == "ruler"
                    else 'write the prediction, or set missing_predictions = "exclude" to count '
                    "it as an exclusion"
                )
                problems.append(
                    Problem(
                        "missing files",
                        MISSING_FILE.format(kind=kind, name=name, path=file),
                        case_id=case_id,
                        path=str(file),
                        fix=fix,
                    )
                )
                continue
            if not check_geometry:
                continue
            try:
                if index is not None:
                    geom = index.geometry(file, case_id=case_id, max_voxels=config.max_voxels)
                else:
                    geom = io.read_geometry(file, case_id=case_id, max_voxels=config.max_voxels)
            except InputError as exc:
                problems.append(Problem.from_input_error("unreadable files", exc))
                continue
            if first is None:
                first = (str(file), geom)
                continue
            mismatch = io.describe_mismatch(
                first[1], geom, atol=config.geometry_tolerance, allow_reorient=config.reorient
            )
            if mismatch is not None:
                problems.append(
                    Problem(
                        "geometry mismatches",
                        f"not on the grid of {first[0]}: {mismatch}",
                        case_id=case_id,
                        path=str(file),
                        fix=io.geometry_fix(first[1], geom),
                    )
                )
    if index is not None:
        index.save()  # what was learnt stays learnt, whatever the verdict
    if problems:
        raise CohortError(problems, source=source)
    ex = pd.DataFrame(exclusions, columns=["case_id", "kind", "source", "reason"])
    return Cohort(
        config=config, metadata=metadata, groups=groups, exclusions=ex, cache_dir=cache_dir
    )
