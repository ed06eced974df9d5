"""The audit's per-group frames as rows of the report document, and the group label of each case."""

from __future__ import annotations

from typing import Any

import pandas as pd

from segfair.report.values import _int, _num


def _labels(column: pd.Series) -> pd.Series:
    """Group label of every case, as the audit names them (missing → ``"unknown"``)."""
    from segfair.audit import UNKNOWN_LABEL

    out = column.astype(object).where(column.notna(), UNKNOWN_LABEL).map(str)
    out.index = out.index.astype(str)
    return out


def _group_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for group, row in frame.iterrows():
        rows.append(
            {
                "group": str(group),
                "n": _int(row.get("n", 0)),
                "estimate": _num(row.get("estimate")),
                "lower": _num(row.get("lower")),
                "upper": _num(row.get("upper")),
                "capped": _int(row.get("capped", 0)),
                "undefined": _int(row.get("undefined", 0)),
            }
        )
    return rows


def _overall(series: pd.Series) -> dict[str, Any]:
    return {
        "n": _int(series.get("n", 0)),
        "estimate": _num(series.get("estimate")),
        "lower": _num(series.get("lower")),
        "upper": _num(series.get("upper")),
        "capped": _int(series.get("capped", 0)),
        "undefined": _int(series.get("undefined", 0)),
    }
