"""GitHub workflow-command annotations for the gates that fail the build."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segfair.report.locations import annotation_file
from segfair.report.verdict import _gate_ok, _status, _warns, order_gates
from segfair.sinks import for_terminal


def _escape_data(text: str) -> str:
    # CR and LF are the workflow command's own escapes; other control characters (ANSI/OSC
    # sequences from data) are shown as escapes, as on a terminal
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return for_terminal(text)


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(
    doc: Mapping[str, Any],
    *,
    root: str | Path | None = None,
    workspace: str | Path | None = None,
) -> list[str]:
    """One ``::error`` workflow command per gate that fails the build (``error``, ``failed`` or a
    blocking ``inconclusive``) and one ``::warning`` per inconclusive gate let through with a
    warning, escaped per GitHub's rules (``%``, CR, LF everywhere; ``:`` and ``,`` in properties
    too), in the order of every report (:func:`segfair.report.verdict.order_gates`).

    A gate with a ``location`` (its ``[[gates]]`` table, or the line of its assertion) carries
    ``file=`` and ``line=``, so that GitHub attaches it to the pull request's diff: the file is
    made relative to ``workspace`` (default ``GITHUB_WORKSPACE``, else the working directory)
    from ``root``, the folder locations are relative to (the configuration's folder).

    Examples
    --------
    >>> github_annotations({"gates": [{"id": "gap[dice,age]", "status": "failed", "ok": False,
    ...                                "message": "50% over\\nthe limit"}]})
    ['::error title=segfair gate failed%3A gap[dice%2Cage]::50%25 over%0Athe limit']
    >>> github_annotations({"gates": [{"id": "g", "status": "failed", "message": "m",
    ...                                "location": {"file": "a,b.toml", "line": 7}}]},
    ...                    root="/repo", workspace="/repo")
    ['::error file=a%2Cb.toml,line=7,title=segfair gate failed%3A g::m']
    """
    out = []
    for g in order_gates(list(doc.get("gates") or [])):
        status = _status(g)
        if _gate_ok(g):
            if not _warns(g):
                continue
            level, word = "warning", "inconclusive (not blocking)"
        else:
            level = "error"
            word = {"error": "error", "inconclusive": "inconclusive"}.get(status, "failed")
        props = []
        loc = g.get("location") or {}
        file = annotation_file(loc, root=root, workspace=workspace) if loc else None
        if file is not None:
            props.append(f"file={_escape_property(file)}")
            if loc.get("line"):
                props.append(f"line={int(loc['line'])}")
        title = f"segfair gate {word}: {g.get('id', '?')}"
        props.append(f"title={_escape_property(title)}")
        message = str(g.get("message") or g.get("decision_rule") or g.get("status"))
        out.append(f"::{level} {','.join(props)}::{_escape_data(message)}")
    return out


def error_annotation(title: str, message: str) -> str:
    """One ``::error`` workflow command, escaped (a run-level error, e.g. an input error)."""
    return f"::error title={_escape_property(title)}::{_escape_data(message)}"
