"""The results cache: one entry per case in the folder's results store (:mod:`.store`), keyed
by the content hash of its inputs and the settings, authenticated by an HMAC under a key kept
outside the repository (a forged or moved entry is recomputed, never believed); looked up and
written in the main process, never in a worker. A per-file cache of an earlier segfair is moved
into the store once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    ThreadPoolExecutor,
)
from pathlib import Path
from typing import Any, Final

from segfair.errors import InputError, SegfairError
from segfair.evaluate.store import MIGRATED, Layout, ResultStore, StoreRow, _note
from segfair.evaluate.tasks import CaseResult, CaseTask
from segfair.io.signing import cache_key, verify_document
from segfair.version import __version__

__all__ = ["CACHE_FORMAT", "CACHE_NOT_WRITABLE", "CACHE_TRACKED"]

#: The per-file cache before the store: ``<cache>/<xx>/<key>.json`` (migrated once).
_OLD_BUCKET = re.compile(r"[0-9a-f]{2}")
_OLD_ENTRY = re.compile(r"[0-9a-f]{64}\.json")


#: Bumped whenever the meaning of a cached case result changes (3: entries carry an HMAC; 4:
#: values per structure). Part of every lookup key; the store's own schema is ``STORE_FORMAT``.
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


def _cache_key(
    task: CaseTask, hashes: Callable[[str], str] | None = None, text: _KeyText | None = None
) -> str:
    """The lookup key of a task: SHA-256 of the canonical JSON (sorted keys) of what its result
    depends on — the content hashes of its files and everything of the task but where the files
    are — built by ``text`` (one per run, remembering the parts its tasks share)."""
    from segfair.io import content_hash

    hash_of: Callable[[str], str] = hashes or content_hash
    files = {k: hash_of(v) for k, v in task.files.items()}
    return hashlib.sha256((text or _KeyText()).of(task, files).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _string(text: str) -> str:
    """``text`` as JSON (what :func:`_canonical` gives): printable ASCII without a quote or a
    backslash — a safe case id, a hex digest — is quoted as it is; the encoder does the rest."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _canonical(text)


@functools.lru_cache(maxsize=1024)
def _name(key: str) -> str:
    """A file's name in the payload (``kind:name``), as JSON text (a run has a handful)."""
    return _canonical(key)


#: The key payload's fields in sorted order (its JSON is ``json.dumps(payload, sort_keys=True,
#: default=str)``): name, the task's attribute it is made from (None: a constant) and how it
#: is made canonical (None: the case id and the content hashes, which differ per case).
_KEY_FIELDS: Final[tuple[tuple[str, str | None, Callable[[CaseTask], Any] | None], ...]] = (
    ("atol", "atol", lambda t: t.atol),
    ("case_id", None, None),
    ("describe", "describe", lambda t: sorted(t.describe)),
    ("files", None, None),
    ("format", None, lambda t: CACHE_FORMAT),
    ("metrics", "metrics", lambda t: list(t.metrics)),
    ("pairs", "pairs", lambda t: sorted(list(p) for p in t.pairs)),
    ("read", "read", lambda t: {k: dict(v) for k, v in sorted(t.read.items())}),
    ("reorient", "reorient", lambda t: t.reorient),
    ("segfair", None, lambda t: __version__),
    ("settings", "settings", lambda t: dict(t.settings)),
    (
        "structures",
        "structures",
        lambda t: None if t.structures is None else {k: list(v) for k, v in t.structures.items()},
    ),
)


class _KeyText:
    """The canonical JSON of tasks' key payloads, ``{"atol": …, "case_id": …, …}``: the text
    around a task's case id and content hashes is made once for every task whose other fields
    are the same objects (the tasks of a run share their read settings, pairs, metrics and
    settings). At 100,000 cases, encoding every payload whole took seconds before any worker
    started."""

    def __init__(self) -> None:
        self._templates: dict[tuple[int, ...], tuple[tuple[object, ...], tuple[str, ...]]] = {}

    def of(self, task: CaseTask, files: Mapping[str, str]) -> str:
        """The payload's JSON for ``task`` with the content hashes ``files`` (name → hash)."""
        sources = tuple(getattr(task, attr) for _, attr, _ in _KEY_FIELDS if attr)
        signature = tuple(map(id, sources))
        found = self._templates.get(signature)
        if found is None or any(a is not b for a, b in zip(found[0], sources, strict=True)):
            # holding the sources keeps their ids from being reused by other objects
            found = self._templates[signature] = (sources, self._template(task))
        head, middle, tail = found[1]
        hashes = ", ".join(f"{_name(k)}: {_string(v)}" for k, v in sorted(files.items()))
        return f"{head}{_string(task.case_id)}{middle}{{{hashes}}}{tail}"

    @staticmethod
    def _template(task: CaseTask) -> tuple[str, str, str]:
        """The payload's text before the case id, between it and the hashes, and after them."""
        # NUL marks the per-case slots: JSON text never holds a raw NUL (it writes \u0000)
        parts = [
            f'"{name}": ' + ("\0" if make is None else _canonical(make(task)))
            for name, _, make in _KEY_FIELDS
        ]
        head, middle, tail = ("{" + ", ".join(parts) + "}").split("\0")
        return head, middle, tail


def _keys(tasks: Sequence[CaseTask], cache_dir: str, workers: int) -> list[str | None]:
    """The lookup key of each task (None: a file cannot be hashed; the worker meets the same
    error and reports it with the case), computed here rather than in workers.

    A warm re-run then starts no worker process and sends no task. A miss carries its key on to
    the worker, which does not hash the files again. The hashes come from the file index
    (:mod:`segfair.cohort.fileindex`: a small file's was learnt with its header, when the
    cohort was loaded); the others are hashed here.
    """
    from segfair.cohort.fileindex import file_index

    index = file_index(cache_dir)
    text = _KeyText()

    def one(task: CaseTask) -> str | None:
        try:
            return _cache_key(task, index.content_hash, text)
        except InputError:
            return None

    keys: list[str | None] = [None] * len(tasks)
    rest = []
    remembered = index.remembered
    for i, task in enumerate(tasks):
        hashes = {}
        for name, file in task.files.items():
            if (found := remembered(file)) is None:
                rest.append(i)  # hashed below
                break
            hashes[name] = found
        else:
            keys[i] = hashlib.sha256(text.of(task, hashes).encode()).hexdigest()
    # Hashing a file (reading it, OpenSSL) releases the GIL: threads overlap it, a chunk of
    # cases a thread (a future a case cost more than a small file's hash)
    if len(rest) > 1:
        chunks = [rest[j : j + _HASH_CHUNK] for j in range(0, len(rest), _HASH_CHUNK)]
        with ThreadPoolExecutor(max_workers=max(2, min(workers, 8))) as pool:
            for chunk, found in zip(
                chunks, pool.map(lambda c: [one(tasks[i]) for i in c], chunks), strict=True
            ):
                for i, key in zip(chunk, found, strict=True):
                    keys[i] = key
    else:
        for i in rest:
            keys[i] = one(tasks[i])
    index.save()
    return keys


#: Cases a hashing thread takes at a time.
_HASH_CHUNK: Final = 64


def _entry_row(doc: Any, key: str) -> StoreRow | None:
    """A per-file cache entry (format 4) as a store row, when it is genuine: for its lookup key
    and signed under our key (else None: it is dropped, never believed)."""
    try:
        if doc.get("format") != CACHE_FORMAT or doc.get("key") != key:
            return None
        if not verify_document(doc):
            return None
        result = CaseResult(case_id=str(doc["case_id"]))
        for p in doc["pairs"]:
            values = {str(k): float(v) for k, v in p["values"].items()}
            per = result.scores.setdefault(str(p["structure"]), {})
            per[(str(p["pred"]), str(p["ref"]))] = values
        for m in doc["morphology"]:
            values = {str(d): float(x) for d, x in m["values"].items()}
            result.shapes.setdefault(str(m["structure"]), {})[str(m["ref"])] = values
        layout, values_ = Layout.of(result)
        bytes.fromhex(key)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return StoreRow(key, result.case_id, layout, values_)


def _migrate(cache_dir: str, store: ResultStore) -> None:
    """Move the per-file cache of segfair before the store (``<cache>/<xx>/<key>.json``) into
    the store, once: each genuine entry is imported, then every entry file is removed (a kept
    file would be scanned on every run and could never be read again), with one line saying so.
    """
    folder = Path(cache_dir)
    if store.db is None:  # no store to move them into (a newer segfair's): leave them
        return
    try:
        subdirs = [
            Path(e.path)
            for e in os.scandir(folder)
            if e.is_dir(follow_symlinks=False) and _OLD_BUCKET.fullmatch(e.name)
        ]
    except OSError:
        return
    moved = dropped = 0
    batch: list[StoreRow] = []
    for sub in sorted(subdirs):
        with contextlib.suppress(OSError):
            for entry in sorted(sub.glob("*.json")):
                if not _OLD_ENTRY.fullmatch(entry.name):
                    continue
                try:
                    row = _entry_row(json.loads(entry.read_text(encoding="utf-8")), entry.stem)
                except (OSError, ValueError):
                    row = None
                if row is None:
                    dropped += 1
                else:
                    batch.append(row)
                if len(batch) >= 1000:
                    moved += _put(store, batch)
                    batch.clear()
            moved += _put(store, batch)
            batch.clear()
            # only once its entries are committed: a run killed here migrates the rest next time
            for entry in sub.glob("*.json"):
                if _OLD_ENTRY.fullmatch(entry.name):
                    entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty: anything else in it is not ours
    if moved or dropped:
        _note(MIGRATED.format(n=moved, path=cache_dir, store=str(store.path), dropped=dropped))


def _put(store: ResultStore, rows: list[StoreRow]) -> int:
    """put_many, or an OSError when it cannot commit (the files of that batch are then kept)."""
    try:
        return store.put_many(rows)
    except sqlite3.Error as exc:
        raise OSError(str(exc)) from None


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
