"""What segfair has learnt about input files, remembered by what ``stat`` says about them.

A warm re-run of an audit reads no voxels, but without this it would still hash every mask (the
result cache's key) and parse every header (the cohort's geometry check): at MAMA-MIA scale,
6,000 files and a few seconds, as much as everything else of a warm run together. Both facts are
functions of the file's bytes, so they are kept in ``file-index.json`` in the cache folder and
reused while the file is provably unchanged.

*Unchanged* means size, inode, modification time and change time (``st_ctime_ns``, which no user
call can set back) all equal what they were when the fact was learnt — git's index uses the same
test. A fact learnt less than :data:`SETTLE_NS` after the file's last change is not kept: a
second write within the file system's timestamp granularity could otherwise leave every stat
field as recorded. A fresh checkout (new inodes and change times) simply learns everything once
more. Losing or corrupting the index costs time, never a result.

Example
-------
>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> p = os.path.join(folder, "a.bin")
>>> _ = open(p, "wb").write(b"abc")
>>> FileIndex(os.path.join(folder, "cache")).content_hash(p)[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from segfair.errors import SegfairError
from segfair.io.signing import sign_document, verify_document
from segfair.version import __version__

__all__ = ["SETTLE_NS", "FileIndex", "file_index"]

#: A fact about a file is kept only when the file had not changed for this long (ns).
SETTLE_NS: Final = 2_000_000_000
_FORMAT: Final = 2  # 2: the index carries an HMAC
_NAME: Final = "file-index.json"


class FileIndex:
    """Content hashes and header geometries of files, keyed by ``stat`` (see the module)."""

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.path = Path(cache_dir) / _NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.added = 0
        self._lock = threading.Lock()
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            # signed like the result cache (segfair.io.signing): a forged fact (a new file
            # "known" under an old file's hash) would select a stale cached result
            if (
                doc.get("format") == _FORMAT
                and doc.get("segfair") == __version__
                and verify_document(doc)
            ):
                self.entries = {
                    str(k): v
                    for k, v in doc["entries"].items()
                    if isinstance(v, dict) and isinstance(v.get("stamp"), list)
                }

    @staticmethod
    def _stamp(stats: list[os.stat_result]) -> list[int]:
        return [n for st in stats for n in (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)]

    @staticmethod
    def _stats(path: str) -> list[os.stat_result]:
        """``stat`` of the file and of the data file its header names (a .mhd's .raw): a fact
        about a .mhd is about its voxels too."""
        from segfair.io import data_files

        return [os.stat(p) for p in data_files(path)]

    def _fact(self, path: str, name: str, learn: Any) -> Any:
        """The fact ``name`` about ``path``: remembered, or learnt by calling ``learn()``."""
        try:
            stats = self._stats(path)
        except OSError:
            return learn()  # raises the error that names the file
        stamp = self._stamp(stats)
        entry = self.entries.get(path)
        if entry is not None and entry.get("stamp") == stamp and name in entry:
            return entry[name]
        value = learn()
        changed = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats)
        settled = time.time_ns() - changed > SETTLE_NS
        with contextlib.suppress(OSError):
            # and the file must not have changed while it was read
            if settled and self._stamp(self._stats(path)) == stamp:
                with self._lock:
                    entry = self.entries.get(path)
                    if entry is None or entry.get("stamp") != stamp:
                        entry = self.entries[path] = {"stamp": stamp}
                    entry[name] = value
                    self.added += 1
        return value

    def knows(self, path: str | os.PathLike[str], name: str = "sha256") -> bool:
        """Whether the fact ``name`` about ``path`` is remembered and still valid."""
        p = os.fspath(path)
        entry = self.entries.get(p)
        if entry is None or name not in entry:
            return False
        try:
            return bool(entry.get("stamp") == self._stamp(self._stats(p)))
        except OSError:
            return False

    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """:func:`segfair.io.content_hash`, remembered."""
        from segfair.io import content_hash

        p = os.fspath(path)
        return str(self._fact(p, "sha256", lambda: content_hash(p)))

    def geometry(
        self,
        path: str | os.PathLike[str],
        *,
        case_id: str | None = None,
        max_voxels: int,
        spacing: Sequence[float] | None = None,
    ) -> Any:
        """:func:`segfair.io.read_geometry`, remembered (a bad header is never remembered: it
        raises every time, with the case and the file)."""
        from segfair import io

        p = os.fspath(path)

        def learn() -> dict[str, Any]:
            g = io.read_geometry(p, case_id=case_id, max_voxels=max_voxels, spacing=spacing)
            return {
                "shape": list(g.shape),
                "spacing": list(g.spacing),
                "affine": g.affine.ravel().tolist(),
            }

        # a declared spacing (files that hold none) is part of what the fact is about
        name = f"geometry:{max_voxels}" + ("" if spacing is None else f":{list(spacing)}")
        doc = self._fact(p, name, learn)
        return io.Geometry(
            tuple(int(n) for n in doc["shape"]),
            tuple(float(z) for z in doc["spacing"]),
            np.asarray(doc["affine"], dtype=np.float64).reshape(4, 4),
            p,
        )

    def save(self) -> None:
        """Write the index if it learnt something (atomically; a full disk costs time only)."""
        from segfair.io import atomic_write_text

        with self._lock:
            if not self.added:
                return
            doc: dict[str, Any] = {
                "format": _FORMAT,
                "segfair": __version__,
                "entries": dict(self.entries),
            }
            self.added = 0
        with contextlib.suppress(OSError, SegfairError):
            atomic_write_text(self.path, json.dumps(sign_document(doc), sort_keys=True))


@functools.lru_cache(maxsize=8)
def file_index(cache_dir: str) -> FileIndex:
    """The index of a cache folder, one per process (every fact is re-checked against ``stat``
    when used, so keeping it between runs is safe): the cohort's checks and the cache's
    lookups of one run read ``file-index.json`` once."""
    key = os.path.abspath(cache_dir)
    found = _INDEXES.get(key)
    if found is None:
        found = _INDEXES[key] = FileIndex(cache_dir)
    return found


_INDEXES: dict[str, FileIndex] = {}
