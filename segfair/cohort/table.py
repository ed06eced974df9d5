"""The metadata table: reading it, case ids, and the subgroup labels derived from its columns.

Numeric columns are binned (:func:`bin_labels`), text columns kept as written; a missing value
is the attribute's ``missing_label`` group, never dropped.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from segfair.cohort.config import AttributeSpec
from segfair.errors import ConfigError, Problem

__all__ = [
    "DEFAULT_AGE_RANGE",
    "DUPLICATE_COLUMN",
    "MISSING_MARKERS",
    "NON_FINITE",
    "NON_NUMERIC",
    "OUT_OF_RANGE",
    "SUPPORTED_TABLES",
    "UNCOMPUTED_FORMULA",
    "bin_labels",
    "read_table",
    "safe_case_id",
]

NON_NUMERIC = "attribute {attr!r}: column {column!r} holds non-numeric value {value!r}"
OUT_OF_RANGE = (
    "attribute {attr!r}: column {column!r} holds {value!r}, outside the valid range {lo}–{hi}"
)
NON_FINITE = "attribute {attr!r}: column {column!r} holds {value!r}, which is not a finite number"
SUPPORTED_TABLES = (".csv", ".tsv", ".parquet", ".pq", ".xlsx", ".xlsm")
#: The range an ``age`` column is checked against when its attribute sets no ``valid_range``:
#: a negative or implausible age is a data-entry error, not a subgroup.
DEFAULT_AGE_RANGE = (0.0, 130.0)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$")


#: Longer ids are refused: with a template's folder and suffix, a file name has 255 bytes.
MAX_ID_LENGTH = 128


def safe_case_id(case_id: str) -> bool:
    """Whether a case id can be substituted into a path template without escaping its folder."""
    return (
        bool(_SAFE_ID.match(case_id))
        and ".." not in case_id
        and case_id == case_id.strip()
        and len(case_id) <= MAX_ID_LENGTH
    )


def read_table(path: Path, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a metadata table (CSV, TSV, Parquet or XLSX) with every column as read, ids as text.

    Only an empty cell is a missing value: ``NA`` (Namibia), ``None`` or ``null`` written in a
    cell are categories as written (a binned attribute still reads them as missing, see
    :data:`MISSING_MARKERS`). A header that names a column twice, and an XLSX formula cell whose
    value was never computed, are refused rather than read as something else.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"cases: metadata table {str(path)!r} does not exist", key="cases")
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            header = pd.read_csv(path, sep=sep, dtype=object, header=None, nrows=1)
            _check_header([str(v) for v in header.iloc[0].tolist()] if len(header) else [], path)
            return pd.read_csv(path, sep=sep, dtype=object, keep_default_na=False, na_values=[""])
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ConfigError(
                    "reading Parquet needs pyarrow: pip install 'segfair[parquet]'", key="cases"
                ) from None
        if suffix in (".xlsx", ".xlsm"):
            name = 0 if sheet is None else sheet
            frame = pd.read_excel(
                path, sheet_name=name, dtype=object, keep_default_na=False, na_values=[""]
            )
            _check_workbook(path, name)
            return frame
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


DUPLICATE_COLUMN = (
    "the metadata table {path!r} names column {name!r} {count} times (columns {where}); pandas "
    "would silently read the first and rename the others: give every column its own name"
)
UNCOMPUTED_FORMULA = (
    "the metadata table {path!r} holds {n} formula cell(s) whose value was never computed "
    "(e.g. {cells}): the program that wrote it does not evaluate formulas, so segfair would read "
    "them as missing. Open and save the file in a spreadsheet program, or store values instead "
    "of formulas"
)
#: Written in a numeric (binned) column, these mean "no value" (case-insensitive); in a text
#: column they are categories as written.
MISSING_MARKERS = frozenset({"na", "n/a", "nan", "none", "null", "-"})


def _check_header(names: list[str], path: Path) -> None:
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names, start=1):
        seen.setdefault(n, []).append(i)
    for name, where in seen.items():
        if len(where) > 1 and name != "nan":
            raise ConfigError(
                DUPLICATE_COLUMN.format(
                    path=str(path), name=name, count=len(where), where=", ".join(map(str, where))
                ),
                key="cases",
            )


def _check_workbook(path: Path, sheet: str | int) -> None:
    """Refuse a header that names a column twice, and formula cells without a cached value
    (openpyxl, like pandas, reads those as None: a silent ``unknown``)."""
    import openpyxl

    wb_formulas = openpyxl.load_workbook(path, read_only=True, data_only=False)
    wb_values = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        title = wb_formulas.sheetnames[sheet] if isinstance(sheet, int) else sheet
        missing: list[str] = []
        rows = zip(wb_formulas[title].iter_rows(), wb_values[title].iter_rows(), strict=False)
        for i, (row_f, row_v) in enumerate(rows):
            if i == 0:
                _check_header([str(c.value) for c in row_v if c.value is not None], path)
            missing += [
                f.coordinate
                for f, v in zip(row_f, row_v, strict=False)
                if isinstance(f.value, str) and f.value.startswith("=") and v.value is None
            ]
    finally:
        wb_formulas.close()
        wb_values.close()
    if missing:
        raise ConfigError(
            UNCOMPUTED_FORMULA.format(path=str(path), n=len(missing), cells=", ".join(missing[:5])),
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
        missing |= raw.map(lambda v: isinstance(v, str) and v.strip().lower() in MISSING_MARKERS)
        # a spreadsheet TRUE is not age 1: booleans are not numbers here
        boolean = raw.map(lambda v: isinstance(v, bool | np.bool_))
        numbers = pd.to_numeric(raw.where(~missing & ~boolean), errors="coerce").astype(float)
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
