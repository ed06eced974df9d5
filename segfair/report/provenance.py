"""The provenance section: hashes of the inputs and the configuration, versions, git commit."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

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


#: Rows hashed per step: the text of a million-case table is never held at once.
_HASH_CHUNK: Final = 200_000


def _sorted_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's position among the column's distinct texts (``str`` of the value) sorted by
    code point, and those texts: sorting by the codes sorts by the texts."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    texts = [str(u) for u in uniques.tolist()]
    distinct = sorted(set(texts))
    rank = {t: i for i, t in enumerate(distinct)}
    # int32 codes: a table of tens of millions of rows holds one array per key column
    remap = np.array(
        [rank[t] for t in texts], dtype=np.int32 if len(distinct) < 2**31 else np.int64
    )
    return remap[codes], distinct


#: The trailing key columns (structure, model, ruler, metric) are written as one text per
#: combination when they have at most this many combinations.
_MAX_COMBINATIONS: Final = 100_000


def _frame_hash(frame: pd.DataFrame, keys: Sequence[str]) -> str:
    """sha256 of a long table in a canonical order (row order of the input never matters).

    The text hashed is a header line, then one line per row (its keys as text, then ``repr`` of
    its value) sorted by the keys; it is built and hashed a chunk of rows at a time, from the
    keys' integer codes, so a table of millions of rows needs no text column.
    """
    cols = [c for c in keys if c in frame.columns]
    if len(frame) == 0:
        return _sha256_text(["\t".join(cols)])
    # the columns after the first as one column: a code per combination, in the order of the
    # combinations' texts (the last column varies fastest, as in a sort by every column); made
    # column by column, so one array of codes at a time is held beside the first column's
    head = _sorted_codes(frame[cols[0]]) if cols else None
    sizes = [int(frame[c].nunique(dropna=False)) for c in cols[1:]]
    coded: list[tuple[np.ndarray, list[str]]] = [] if head is None else [head]
    if len(cols) > 1 and math.prod(sizes) <= _MAX_COMBINATIONS:
        combo = np.zeros(len(frame), dtype=np.int32)
        distincts: list[list[str]] = []
        for c in cols[1:]:
            codes, distinct = _sorted_codes(frame[c])
            combo = combo * np.int32(len(distinct)) + codes.astype(np.int32)
            distincts.append(distinct)
        tails = ["\t".join(t) for t in itertools.product(*distincts)]
        coded.append((combo, tails))
    else:
        coded += [_sorted_codes(frame[c]) for c in cols[1:]]
    # stable: rows with the same keys keep their order, as a stable sort of the texts would
    order = np.lexsort([codes for codes, _ in reversed(coded)]) if cols else np.arange(len(frame))
    value = frame["value"].to_numpy(dtype=np.float64)
    names = [np.asarray(distinct, dtype=object) for _, distinct in coded]
    h = hashlib.sha256()
    h.update(("\t".join([*cols, "value"]) + "\n").encode("utf-8"))
    for start in range(0, len(order), _HASH_CHUNK):
        rows = order[start : start + _HASH_CHUNK]
        texts = [n[codes[rows]].tolist() for n, (codes, _) in zip(names, coded, strict=True)]
        values = list(map(repr, value[rows].tolist()))  # float repr, as the digest always had
        lines = map("\t".join, zip(*texts, values, strict=True))
        h.update(("\n".join(lines) + "\n").encode("utf-8"))
    return h.hexdigest()


def _metadata_hash(metadata: pd.DataFrame | None, table: Path) -> str | None:
    """sha256 of the metadata table's content, rows by case id and columns by name: shuffling
    the rows of the file changes no number in the audit, so it changes nothing in the report.

    Each row is hashed as the JSON array ``[case_id, *cells]`` (cells as text, missing as
    null), built column by column.
    """
    if metadata is None:
        return _sha256_file(table)
    frame = metadata.sort_index(kind="stable")
    cols = sorted(map(str, frame.columns))
    frame.columns = pd.Index(map(str, frame.columns))
    h = hashlib.sha256()
    h.update((json.dumps(["case_id", *cols], ensure_ascii=False) + "\n").encode("utf-8"))
    quoted = [_json_cells(pd.Series(frame.index, dtype=object), missing=False)]
    quoted += [_json_cells(frame[c]) for c in cols]
    for start in range(0, len(frame), _HASH_CHUNK):
        part = [q[start : start + _HASH_CHUNK] for q in quoted]
        lines = "".join(f"[{', '.join(row)}]\n" for row in zip(*part, strict=True))
        h.update(lines.encode("utf-8"))
    return h.hexdigest()


def _json_cells(column: pd.Series, *, missing: bool = True) -> list[str]:
    """Every cell of a column as JSON: its text quoted, or ``null`` where it is missing."""
    # json.dumps of a str with ensure_ascii=False is exactly this C function
    quoted = list(map(encode_basestring, map(str, column.tolist())))
    if not missing:
        return quoted
    isna = column.isna().to_numpy(dtype=bool)
    return ["null" if na else q for q, na in zip(quoted, isna, strict=True)]


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


def _proxy(audit: Audit) -> str | None:
    """The proxy ruler of a prediction-powered run on a partial trusted ruler, else None."""
    if audit.estimator != "ppi" or bool(audit.labelled_mask().all()):
        return None
    from segfair.audit import AuditError

    try:
        return audit.proxy_ruler()
    except AuditError:  # no proxy: each prediction-powered gate is an error that says why
        return None


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
        "estimator": audit.estimator,
        "proxy": _proxy(audit),
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
