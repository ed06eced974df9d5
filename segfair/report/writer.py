"""Rendering and atomically writing the requested reports."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from segfair.report.html import render_html
from segfair.report.jsonfile import render_json
from segfair.report.markdown import render_markdown


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from a CI artifact reader
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    ``doc["gates"]``.
    """
    jobs: list[tuple[Path, Callable[[Mapping[str, Any]], str]]] = []
    if html is not None:
        jobs.append((Path(html), render_html))
    if json_path is not None:
        jobs.append((Path(json_path), render_json))
    if md is not None:
        jobs.append((Path(md), render_markdown))
    rendered = [(path, render(doc)) for path, render in jobs]
    for path, text in rendered:
        _atomic_write(path, text)
    return [path for path, _ in rendered]
