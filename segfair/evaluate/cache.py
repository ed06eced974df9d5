"""The results cache: one JSON entry per case, keyed by the content hash of its inputs and the
settings, authenticated by an HMAC under a key kept outside the repository (a forged or moved
entry is recomputed, never believed); looked up in the main process before any worker starts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import (
    ThreadPoolExecutor,
)
from dataclasses import replace
from pathlib import Path

from segfair.errors import InputError, SegfairError
from segfair.evaluate.tasks import CaseResult, CaseTask
from segfair.io.signing import cache_key, sign_document, verify_document
from segfair.version import __version__

__all__ = ["CACHE_FORMAT", "CACHE_NOT_WRITABLE", "CACHE_TRACKED"]


#: Bumped whenever the layout of a cached case result changes (3: entries carry an HMAC; 4:
#: values per structure).
CACHE_FORMAT = 4
CACHE_TRACKED = (
    "the cache folder {path!r} holds files tracked by git ({example!r}, …): anyone who can "
    "open a pull request could feed it. Remove it from git (git rm -r --cached <folder>) and "
    "ignore it (.gitignore), or point `cache` at a folder outside the repository"
)
CACHE_NOT_WRITABLE = (
    "the cache folder {path!r} cannot be written ({reason}). Fix its permissions, point `cache` "
    "at a writable folder, or turn the cache off (cache = false, or --no-cache)"
)


def _cache_key(task: CaseTask, hashes: Callable[[str], str] | None = None) -> str:
    from segfair.io import content_hash

    hash_of: Callable[[str], str] = hashes or content_hash
    payload = {
        "format": CACHE_FORMAT,
        "segfair": __version__,
        "case_id": task.case_id,
        "files": {k: hash_of(v) for k, v in sorted(task.files.items())},
        "read": {k: dict(v) for k, v in sorted(task.read.items())},
        "pairs": sorted(list(p) for p in task.pairs),
        "describe": sorted(task.describe),
        "metrics": list(task.metrics),
        "settings": dict(task.settings),
        "reorient": task.reorient,
        "atol": task.atol,
        "structures": None
        if task.structures is None
        else {k: list(v) for k, v in task.structures.items()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cache_path(cache_dir: str, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.json"


def _read_cache(path: Path, task: CaseTask) -> CaseResult | None:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != CACHE_FORMAT or doc.get("case_id") != task.case_id:
            return None
        # the entry must be for this lookup key (a genuine entry of another version of the case,
        # moved here, is refused) and signed under our key (an edited one is refused)
        if doc.get("key") != path.stem or not verify_document(doc):
            return None
        names = list(task.structure_names)
        scores: dict[str, dict[tuple[str, str], dict[str, float]]] = {n: {} for n in names}
        shapes: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
        for p in doc["pairs"]:
            values = {k: float(v) for k, v in p["values"].items()}
            scores[str(p["structure"])][(p["pred"], p["ref"])] = values  # KeyError: foreign
        for m in doc["morphology"]:
            values = {d: float(x) for d, x in m["values"].items()}
            shapes[str(m["structure"])][str(m["ref"])] = values
        want = {tuple(p) for p in task.pairs}
        if any(set(v) != want for v in scores.values()):
            return None
        if any(set(v) != set(task.describe) for v in shapes.values()):
            return None
        if any(set(v) != set(task.metrics) for per in scores.values() for v in per.values()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # a corrupt or foreign entry is recomputed, never trusted
        return None
    return CaseResult(case_id=task.case_id, scores=scores, shapes=shapes, cached=True)


def _write_cache(path: Path, result: CaseResult) -> None:
    from segfair.io import atomic_write_text

    doc = {
        "format": CACHE_FORMAT,
        "key": path.stem,
        "case_id": result.case_id,
        # in the structures' order (reading the entry back keeps it), pairs sorted within
        "pairs": [
            {"structure": s, "pred": p, "ref": r, "values": v}
            for s, per in result.scores.items()
            for (p, r), v in sorted(per.items())
        ],
        "morphology": [
            {"structure": s, "ref": r, "values": v}
            for s, per in result.shapes.items()
            for r, v in sorted(per.items())
        ],
    }
    # the cache is an optimisation: a full disk costs a recomputation, never the run
    with contextlib.suppress(OSError):
        atomic_write_text(path, json.dumps(sign_document(doc), sort_keys=True))


def _look_up(
    tasks: Sequence[CaseTask], cache_dir: str, workers: int
) -> list[tuple[CaseTask, CaseResult | None]]:
    """Each task with its cached result (None: a miss), looked up here rather than in workers.

    A warm re-run then starts no worker process and sends no task. A miss carries its key on to
    the worker, which does not hash the files again.
    """
    from segfair.cohort.fileindex import file_index

    index = file_index(cache_dir)

    def one(task: CaseTask) -> tuple[CaseTask, CaseResult | None]:
        try:
            key = _cache_key(task, index.content_hash)
        except InputError:
            return task, None  # the worker meets the same error and reports it with the case
        return replace(task, cache_key=key), _read_cache(_cache_path(cache_dir, key), task)

    # Hashing a file (reading it, OpenSSL) releases the GIL: threads overlap it. A case whose
    # hashes are all remembered is pure Python (JSON), where threads only contend: serial.
    known = [all(index.knows(f) for f in t.files.values()) for t in tasks]
    found = [one(t) for t, k in zip(tasks, known, strict=True) if k]
    rest = [t for t, k in zip(tasks, known, strict=True) if not k]
    if len(rest) > 1:
        with ThreadPoolExecutor(max_workers=max(2, min(workers, 8))) as pool:
            found += pool.map(one, rest)
    else:
        found += map(one, rest)
    index.save()
    return found


def _check_cache_dir(path: str) -> None:
    """Fail before any work when the cache cannot be used safely: it cannot be written (a
    read-only CI cache, a file), git tracks files in it (anyone who opens a pull request could
    feed it), or there is no key to authenticate its entries."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise SegfairError(
            CACHE_NOT_WRITABLE.format(path=path, reason=exc.strerror or type(exc).__name__)
        ) from None
    tracked = _tracked_by_git(path)
    if tracked:
        raise SegfairError(CACHE_TRACKED.format(path=path, example=tracked))
    cache_key()  # raises with the fix when no key can be had


def _tracked_by_git(path: str) -> str | None:
    """One file under ``path`` that git tracks, or None (also when git is not there)."""
    try:
        done = subprocess.run(
            ["git", "-C", path, "ls-files", "--full-name", "--", "."],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = done.stdout.splitlines()[:1] if done.returncode == 0 else []
    return first[0] if first else None
