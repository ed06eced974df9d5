"""GitHub workflow-command annotations for the gates that fail the build."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segfair.report.verdict import _gate_ok, _status, _warns
from segfair.sinks import for_terminal


def _escape_data(text: str) -> str:
    # CR and LF are the workflow command's own escapes; other control characters (ANSI/OSC
    # sequences from data) are shown as escapes, as on a terminal
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return for_terminal(text)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(doc: Mapping[str, Any]) -> list[str]:
    """One ``::error`` workflow command per gate that fails the build (``error``, ``failed`` or a
    blocking ``inconclusive``) and one ``::warning`` per inconclusive gate let through with a
    warning, escaped per GitHub's rules (``%``, CR, LF everywhere; ``:`` and ``,`` in properties
    too).

    Examples
    --------
    >>> github_annotations({"gates": [{"id": "gap[dice,age]", "status": "failed", "ok": False,
    ...                                "message": "50% over\\nthe limit"}]})
    ['::error title=segfair gate failed%3A gap[dice%2Cage]::50%25 over%0Athe limit']
    """
    out = []
    for g in doc.get("gates") or []:
        status = _status(g)
        if _gate_ok(g):
            if not _warns(g):
                continue
            level, word = "warning", "inconclusive (not blocking)"
        else:
            level = "error"
            word = {"error": "error", "inconclusive": "inconclusive"}.get(status, "failed")
        title = _escape_property(f"segfair gate {word}: {g.get('id', '?')}")
        message = str(g.get("message") or g.get("decision_rule") or g.get("status"))
        out.append(f"::{level} title={title}::{_escape_data(message)}")
    return out


def error_annotation(title: str, message: str) -> str:
    """One ``::error`` workflow command, escaped (a run-level error, e.g. an input error)."""
    return f"::error title={_escape_property(title)}::{_escape_data(message)}"
