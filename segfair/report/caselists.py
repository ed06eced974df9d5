"""Per-case lists of a report (exclusions, capped and undefined values) and, for a large cohort,
the sidecar file that holds them in full so the HTML and JSON reports stay small.

A report is *summarised* when one of its per-case lists has more than :data:`MAX_LISTED` rows
(a few hundred cases of a cohort of thousands). Then the JSON report keeps the first
:data:`MAX_LISTED` exclusions and counts them per group (``coverage.excluded_counts``), the page
shows the counts instead of case ids, and every row of every list is written to the sidecar
``<report>.cases.jsonl.gz`` next to the JSON report (``coverage.case_lists`` names it). Below the
threshold nothing changes: no sidecar, the reports of before.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Mapping, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from segfair.report.rows import _labels

if TYPE_CHECKING:
    from segfair.audit import Audit

#: Per-case lists (exclusions, missing cases) are cut here so the document stays small; a list
#: longer than this makes the report summarised (its rows go to the sidecar).
MAX_LISTED: Final = 500
#: The capped/undefined table of the page shows totals per metric, model and ruler (the rows per
#: group stay in the JSON report) when it has more rows than this.
MAX_TABLE_ROWS: Final = 200
#: The sidecar's name: the report's name without its last suffix, then this.
CASES_SUFFIX: Final = ".cases.jsonl.gz"
#: The key of the document in memory that holds every row of a summarised report's lists; the
#: JSON report leaves it out, :func:`~segfair.report.write_reports` writes it to the sidecar.
CASE_ROWS: Final = "case_rows"
#: Columns of the exclusions list and of the list of capped and undefined values.
EXCLUDED_COLUMNS: Final = ("case_id", "kind", "source", "reason")
VALUE_COLUMNS: Final = ("case_id", "structure", "model", "ruler", "metric", "value")
_KEY: Final = ["case_id", "kind", "source"]


def _excluded(missing: Sequence[pd.DataFrame], exclusions: pd.DataFrame) -> pd.DataFrame:
    """Every (case, kind, source) left out, once, with its reason, in (case, kind, source) order.

    ``missing``: the cases without a prediction found by the coverage (``case_id, model,
    reason``), which win over a recorded exclusion of the same case and model; the first of
    several recorded exclusions of a (case, kind, source) wins.
    """
    parts = [
        pd.DataFrame(
            {
                "case_id": m["case_id"].astype(str).to_numpy(dtype=object),
                "kind": "model",
                "source": m["model"].astype(str).to_numpy(dtype=object),
                "reason": m["reason"].astype(str).to_numpy(dtype=object),
            }
        )
        for m in missing
    ]
    parts.append(
        pd.DataFrame(
            {c: exclusions[c].astype(str).to_numpy(dtype=object) for c in EXCLUDED_COLUMNS}
        )
    )
    frame = pd.concat(parts, ignore_index=True).drop_duplicates(_KEY, keep="first")
    # sorted as Python sorts the (case, kind, source) tuples: by code point, column by column
    order = np.arange(len(frame))
    for col in reversed(_KEY):
        values = frame[col].to_numpy(dtype=object)[order]
        order = order[np.argsort(values, kind="stable")]
    return frame.iloc[order].reset_index(drop=True)


def _rows(frame: pd.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` rows of ``frame`` as dicts (column order kept)."""
    part = frame if limit is None else frame.iloc[:limit]
    cols = [part[c].tolist() for c in part.columns]
    return [dict(zip(part.columns, row, strict=True)) for row in zip(*cols, strict=True)]


def _excluded_counts(
    frame: pd.DataFrame, audit: Audit, attributes: Sequence[str]
) -> list[dict[str, Any]]:
    """Exclusions counted per attribute, group, kind, source and reason (groups in the audit's
    order, then kind, source and reason in code-point order)."""
    scores = audit.scores
    out: list[dict[str, Any]] = []
    for attr in attributes:
        labels = _labels(scores.groups[attr])
        order = {str(g): i for i, g in enumerate(audit.group_sizes(by=attr).index)}
        group = frame["case_id"].map(labels).fillna("unknown").astype(str)
        counts = (
            frame.assign(group=group)
            .groupby(["group", "kind", "source", "reason"], sort=False)
            .size()
            .reset_index(name="n")
        )
        keys = [
            (order.get(g, len(order)), g, k, s, r, int(n))
            for g, k, s, r, n in counts.itertuples(index=False)
        ]
        for _, g, k, s, r, n in sorted(keys):
            out.append({"attribute": attr, "group": g, "kind": k, "source": s, "reason": r, "n": n})
    return out


def _value_cases(audit: Audit, distances: Sequence[str]) -> pd.DataFrame:
    """Every non-finite value of the score table: ``capped`` (an infinite distance, replaced by
    the cap) or ``undefined`` (left out), in (case, structure, model, ruler, metric) order."""
    table = audit.scores.table
    values = table["value"].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if not bad.any():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in VALUE_COLUMNS})
    sel = table.loc[bad]
    capped = np.isposinf(values[bad]) & sel["metric"].isin(list(distances)).to_numpy()
    frame = pd.DataFrame(
        {c: sel[c].astype(str).to_numpy(dtype=object) for c in VALUE_COLUMNS[:-1]}
        | {"value": np.where(capped, "capped", "undefined").astype(object)}
    )
    order = np.arange(len(frame))
    for col in reversed(VALUE_COLUMNS[:-1]):
        order = order[np.argsort(frame[col].to_numpy(dtype=object)[order], kind="stable")]
    return frame.iloc[order].reset_index(drop=True)


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {str(c): frame[c].tolist() for c in frame.columns}


def case_lists_path(report: str | Path) -> Path:
    """The sidecar of a report: its name without the last suffix, then :data:`CASES_SUFFIX`.

    Examples
    --------
    >>> case_lists_path("reports/fairness.json").as_posix()
    'reports/fairness.cases.jsonl.gz'
    """
    path = Path(report)
    return path.with_name(path.stem + CASES_SUFFIX)


#: Rows turned into text at a time when the sidecar is written.
_CHUNK: Final = 10_000


def _lines(rows: Mapping[str, Mapping[str, Sequence[Any]]]) -> Iterator[str]:
    """Blocks of JSON lines, one object per row with the list it belongs to: ``{"list":
    "excluded", …}`` for every exclusion, then ``{"list": "values", …}`` for every capped or
    undefined value.

    Every value is text, so each line is what ``json.dumps(row, sort_keys=True,
    ensure_ascii=False, separators=(",", ":"))`` writes, built column by column.
    """
    for name in ("excluded", "values"):
        cols = dict(rows.get(name) or {})
        size = len(next(iter(cols.values()), []))
        cols["list"] = [name] * size
        keys = sorted(cols)
        heads = [f"{encode_basestring(k)}:" for k in keys]
        for start in range(0, size, _CHUNK):
            quoted = [
                [
                    head + q
                    for q in map(encode_basestring, map(str, cols[k][start : start + _CHUNK]))
                ]
                for head, k in zip(heads, keys, strict=True)
            ]
            yield "".join("{" + ",".join(parts) + "}\n" for parts in zip(*quoted, strict=True))


def render_case_lists(rows: Mapping[str, Mapping[str, Sequence[Any]]]) -> bytes:
    """The sidecar's bytes: JSON lines, gzip-compressed without a file name or a time in the
    header, so they depend on the rows alone (the same inputs give the same bytes)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        for block in _lines(rows):
            gz.write(block.encode("utf-8"))
    return buf.getvalue()
