"""Rendering and atomically writing the requested reports."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from segfair.errors import SegfairError
from segfair.report.caselists import CASE_ROWS, case_lists_path, render_case_lists
from segfair.report.html import render_html
from segfair.report.jsonfile import render_json
from segfair.report.markdown import render_markdown
from segfair.report.verdict import order_gates


def _stage(path: Path, text: str | bytes) -> str:
    """Write ``text`` (UTF-8) or bytes to a new hidden file next to ``path``; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from a CI artifact reader
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


CANNOT_WRITE = (
    "cannot write the report {path!r} ({reason}); no report of this run was written, the "
    "earlier ones are as they were"
)


def write_reports(
    doc: Mapping[str, Any],
    *,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    md: str | Path | None = None,
) -> list[Path]:
    """Render and write the requested reports atomically; returns the paths written.

    Everything is rendered before anything is written, so a rendering error leaves no report
    from this run next to reports of an earlier one. The verdict of each comes from
    ``doc["gates"]``. A summarised report (a large cohort, ``docs/report-schema.md``) also
    writes its per-case lists to the sidecar :func:`case_lists_path` of the JSON report (of the
    HTML report without one, else of the Markdown), returned last.
    """
    # one order of the gates in every report, whatever order the caller recorded them in
    doc = dict(doc, gates=[dict(g) for g in order_gates(doc.get("gates") or [])])
    rows = doc.pop(CASE_ROWS, None)
    first = next((p for p in (json_path, html, md) if p is not None), None)
    sidecar = case_lists_path(first) if rows is not None and first is not None else None
    if sidecar is not None:
        # the reports name the sidecar (its name only: it lies next to the JSON report)
        lists = dict((doc.get("coverage") or {}).get("case_lists") or {}, file=sidecar.name)
        doc["coverage"] = dict(doc.get("coverage") or {}, case_lists=lists)
    jobs: list[tuple[Path, Callable[[Mapping[str, Any]], str | bytes]]] = []
    if html is not None:
        jobs.append((Path(html), render_html))
    if json_path is not None:
        jobs.append((Path(json_path), render_json))
    if md is not None:
        jobs.append((Path(md), render_markdown))
    rendered: list[tuple[Path, str | bytes]] = [(path, render(doc)) for path, render in jobs]
    if sidecar is not None and rows is not None:
        rendered.append((sidecar, render_case_lists(rows)))
    # every report is staged before any is replaced: a report that cannot be written leaves the
    # earlier set whole, not a mix of this run's and the last run's
    staged: list[tuple[Path, str]] = []
    try:
        for path, text in rendered:
            try:
                staged.append((path, _stage(path, text)))
            except OSError as exc:
                raise SegfairError(
                    CANNOT_WRITE.format(path=str(path), reason=exc.strerror or str(exc))
                ) from None
        for path, tmp in staged:
            os.replace(tmp, path)
        if sidecar is None and first is not None:
            # a sidecar of an earlier, larger run would sit next to reports that do not name it
            with contextlib.suppress(OSError):
                case_lists_path(first).unlink()
    finally:
        for _, tmp in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return [path for path, _ in rendered]
