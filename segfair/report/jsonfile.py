"""The report document as strict, byte-stable JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from segfair.report.caselists import CASE_ROWS
from segfair.report.values import _jsonable
from segfair.report.verdict import verdict


def _with_verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != CASE_ROWS}  # the sidecar's, never the JSON's
    out["verdict"] = verdict(list(doc.get("gates") or []))
    return out


def render_json(doc: Mapping[str, Any]) -> str:
    """The document as strict JSON: sorted keys, indent 2, NaN/±inf as null, a final newline.

    The verdict is recomputed from ``doc["gates"]`` first. Every row of a summarised report's
    per-case lists (``doc["case_rows"]``) is left out: :func:`write_reports` writes them to the
    sidecar.
    """
    return (
        json.dumps(
            _jsonable(_with_verdict(doc)),
            sort_keys=True,
            indent=2,
            ensure_ascii=False,
            allow_nan=False,
        )
        + "\n"
    )
