"""The provenance section: hashes of the inputs and the configuration, versions, git commit."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segfair.report.values import _jsonable, _num
from segfair.version import __version__

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.cohort.config import SegfairConfig


def _sha256_text(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _sha256_file(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def _frame_hash(frame: pd.DataFrame, keys: Sequence[str]) -> str:
    """sha256 of a long table in a canonical order (row order of the input never matters).

    The text hashed is one line per row, ``key<TAB>…<TAB>repr(value)``, the rows sorted by their
    keys' text: each distinct key turned to text and ranked once, the rows ordered by ranks and
    the lines hashed a chunk at a time, so a table of tens of millions of rows (a million cases)
    is never held as text.
    """
    cols = [c for c in keys if c in frame.columns]
    if len(frame) == 0:
        return _sha256_text(["\t".join(cols)])
    texts: list[np.ndarray] = []
    ranks: list[np.ndarray] = []
    codes_of: list[np.ndarray] = []
    for c in cols:
        codes, uniques = pd.factorize(frame[c], use_na_sentinel=False)
        text = np.asarray([str(u) for u in uniques], dtype=object)
        rank = np.empty(len(text), dtype=np.int64)
        by_text = np.argsort(text, kind="stable")
        # equal texts (1 and "1") share a rank, as they sorted together before
        sorted_text = text[by_text]
        new = np.ones(len(text), dtype=bool)
        new[1:] = sorted_text[1:] != sorted_text[:-1]
        rank[by_text] = np.cumsum(new) - 1
        texts.append(text)
        ranks.append(rank[codes])
        codes_of.append(codes)
    order = np.lexsort(ranks[::-1]) if ranks else np.arange(len(frame))
    values = frame["value"].to_numpy(dtype=np.float64)
    h = hashlib.sha256()
    h.update(("\t".join([*cols, "value"]) + "\n").encode("utf-8"))
    step = 1 << 16
    for start in range(0, len(order), step):
        rows = order[start : start + step]
        key_cols = [t[c[rows]].tolist() for t, c in zip(texts, codes_of, strict=True)]
        shown = [repr(v) for v in values[rows].tolist()]
        lines = "\n".join(map("\t".join, zip(*key_cols, shown, strict=True)))
        h.update((("\n" if start else "") + lines).encode("utf-8"))
    h.update(b"\n")
    return h.hexdigest()


def _metadata_hash(metadata: pd.DataFrame | None, table: Path) -> str | None:
    """sha256 of the metadata table's content, rows by case id and columns by name: shuffling
    the rows of the file changes no number in the audit, so it changes nothing in the report."""
    if metadata is None:
        return _sha256_file(table)
    frame = metadata.sort_index(kind="stable")
    cols = sorted(map(str, frame.columns))
    frame.columns = pd.Index(map(str, frame.columns))
    # the text of json.dumps([case_id, *cells], ensure_ascii=False) per row, built column by
    # column (a million rows: seconds instead of a minute)
    quote = json.encoder.encode_basestring  # what json.dumps uses with ensure_ascii=False
    parts = [[quote(str(c)) for c in frame.index]]
    for c in cols:
        col = frame[c]
        missing = pd.isna(col).to_numpy(dtype=bool)
        parts.append(
            ["null" if m else quote(str(v)) for v, m in zip(col.tolist(), missing, strict=True)]
        )
    lines = ("[" + ", ".join(row) + "]" for row in zip(*parts, strict=True))
    return _sha256_text([json.dumps(["case_id", *cols], ensure_ascii=False), *lines])


def _git(root: Path) -> dict[str, Any]:
    """The commit of the repository holding the configuration, if any (never fails)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # a read must not refresh the index

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                env=env,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "scipy", "nibabel", "jinja2"):
        try:
            out[name] = _package_version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def _provenance(audit: Audit, config: SegfairConfig, seed: int) -> dict[str, Any]:
    scores = audit.scores
    dumped = _jsonable(config.model_dump(mode="json", by_alias=True))
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    source = Path(config.source) if config.source else None
    table = config.resolve(config.cases)
    settings = _jsonable(dict(scores.settings))
    # the structure is part of a row's key when there are several (one: the digests of before)
    by = ("case_id", "structure") if len(scores.structures) > 1 else ("case_id",)
    return {
        "segfair_version": __version__,
        "versions": _versions(),
        "seed": int(seed),
        "n_boot": audit.n_boot,
        "confidence": audit.confidence,
        "statistic": audit.statistic,
        "cap": _num(audit.cap),
        "min_group_size": audit.min_group_size,
        "cluster": audit.cluster,
        "holm": bool(getattr(config, "holm", False)),
        "config": dumped,
        "config_sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        # paths relative to the configuration's folder: the same repository checked out
        # elsewhere (CI clones into a fresh folder) must give the same document
        "config_file": _relative(source, config.root) if source is not None else None,
        "config_file_sha256": _sha256_file(source) if source is not None else None,
        "metric_definitions": settings,
        "inputs": {
            "scores_sha256": _frame_hash(scores.table, (*by, "model", "ruler", "metric")),
            "scores_rows": len(scores.table),
            "agreement_sha256": _frame_hash(
                scores.agreement, (*by, "ruler", "reference", "metric")
            ),
            "morphology_sha256": _frame_hash(scores.morphology, (*by, "ruler", "descriptor")),
            "metadata_file": _relative(table, config.root),
            "metadata_sha256": _metadata_hash(scores.metadata, table),
        },
        "git": _git(config.root),
    }
