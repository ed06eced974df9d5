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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from segfair import io
from segfair.errors import SegfairError
from segfair.io.signing import sign, verify
from segfair.version import __version__

__all__ = ["ALSO_MAX_BYTES", "SETTLE_NS", "FileIndex", "file_index"]

#: A fact about a file is kept only when the file had not changed for this long (ns).
SETTLE_NS: Final = 2_000_000_000
#: A file this small has its content hash learnt with its header: reading it again (from the
#: page cache) and hashing it cost less than the second ``stat`` and the thread hand-off of
#: learning it later, when the result cache needs it — at 100,000 2-D cases, seconds.
ALSO_MAX_BYTES: Final = 1 << 16
#: 2: the index carries an HMAC; 3: a line of format and tag, then the body; grids by index
_FORMAT: Final = 3
_NAME: Final = "file-index.json"
#: The prefix of a geometry fact's name (its value: an index into :attr:`FileIndex.grids`).
_GEOMETRY: Final = "geometry:"


class FileIndex:
    """Content hashes and header geometries of files, keyed by ``stat`` (see the module)."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None) -> None:
        #: None: an index in memory only (a worker's: see :meth:`learnt`)
        self.path = None if cache_dir is None else Path(cache_dir) / _NAME
        self.entries: dict[str, dict[str, Any]] = {}
        #: the distinct grids of the files (a cohort has a few): a geometry fact is an index
        #: into this list, so that 300,000 files do not write (and read) 300,000 affines
        self.grids: list[dict[str, list[Any]]] = []
        self._grid_ids: dict[tuple[Any, ...], int] = {}
        self._grid_values: dict[int, tuple[tuple[int, ...], tuple[float, ...], Any]] = {}
        self._grid_seen: dict[tuple[Any, ...], int] = {}
        self.added = 0
        self._lock = threading.Lock()
        with contextlib.suppress(
            OSError, ValueError, TypeError, AttributeError, KeyError, SegfairError
        ):
            if self.path is None:
                return
            head, _, body = self.path.read_bytes().partition(b"\n")
            meta = json.loads(head)
            # signed like the result cache (segfair.io.signing): a forged fact (a new file
            # "known" under an old file's hash) would select a stale cached result. The tag
            # covers the body's bytes as written: checking it encodes nothing again
            if meta.get("format") == _FORMAT and verify(body, meta.get("hmac")):
                doc = json.loads(body)
                if doc.get("segfair") == __version__:
                    self.grids = [dict(g) for g in doc["grids"]]
                    self._grid_ids = {self._grid_key(g): i for i, g in enumerate(self.grids)}
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
        return [os.stat(p) for p in io.data_files(path)]

    def _fact(self, path: str, name: str, learn: Any, also: Mapping[str, Any] | None = None) -> Any:
        """The fact ``name`` about ``path``: remembered, or learnt by calling ``learn()``; when
        learnt, the facts of ``also`` (name → learn) are learnt with it if the file is small
        (:data:`ALSO_MAX_BYTES`) and they are not known yet."""
        try:
            stats = self._stats(path)
        except OSError:
            return learn()  # raises the error that names the file
        stamp = self._stamp(stats)
        entry = self.entries.get(path)
        remembered: dict[str, Any] = {}
        if entry is not None and entry.get("stamp") == stamp:
            remembered = entry
        if name in remembered:
            return remembered[name]
        value = learn()
        extra: dict[str, Any] = {}
        if also and sum(st.st_size for st in stats) <= ALSO_MAX_BYTES:
            # an optimisation: a fact that cannot be learnt now is learnt (or refused) later
            with contextlib.suppress(OSError, SegfairError):
                extra = {n: f() for n, f in also.items() if n not in remembered}
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
                    entry.update(extra)
                    self.added += 1
        return value

    def remembered(self, path: str | os.PathLike[str], name: str = "sha256") -> Any:
        """The fact ``name`` about ``path`` if it is remembered and still valid, else None (one
        ``stat``; never reads the file)."""
        p = os.fspath(path)
        entry = self.entries.get(p)
        if entry is None or name not in entry:
            return None
        try:
            return entry[name] if entry.get("stamp") == self._stamp(self._stats(p)) else None
        except OSError:
            return None

    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """:func:`segfair.io.content_hash`, remembered."""
        p = os.fspath(path)
        return str(self._fact(p, "sha256", lambda: io.content_hash(p)))

    def geometry(
        self,
        path: str | os.PathLike[str],
        *,
        case_id: str | None = None,
        max_voxels: int,
        spacing: Sequence[float] | None = None,
    ) -> Any:
        """:func:`segfair.io.read_geometry`, remembered (a bad header is never remembered: it
        raises every time, with the case and the file); a small file's content hash with it."""
        found = self.grid(path, case_id=case_id, max_voxels=max_voxels, spacing=spacing)
        return self.grid_geometry(found, path)

    def grid(
        self,
        path: str | os.PathLike[str],
        *,
        case_id: str | None = None,
        max_voxels: int,
        spacing: Sequence[float] | None = None,
    ) -> int:
        """:meth:`geometry` as the number of its grid in :attr:`grids`: files with the same
        number have the same geometry (shape, spacing, affine)."""
        p = os.fspath(path)
        digest: list[str | None] = [None]

        def learn() -> int:
            g, digest[0] = io.read_geometry_and_hash(
                p, case_id=case_id, max_voxels=max_voxels, spacing=spacing
            )
            # the grid by its bytes first: a cohort's files share a few grids, so building and
            # comparing the JSON form of each one's affine is rarely needed
            seen = (g.shape, g.spacing, g.affine.tobytes())
            found = self._grid_seen.get(seen)
            if found is None:
                found = self._grid_seen[seen] = self._grid_id(
                    {
                        "shape": list(g.shape),
                        "spacing": list(g.spacing),
                        "affine": g.affine.ravel().tolist(),
                    }
                )
            return found

        # a declared spacing (files that hold none) is part of what the fact is about
        name = f"{_GEOMETRY}{max_voxels}" + ("" if spacing is None else f":{list(spacing)}")
        # the result cache's key needs the file's hash: a small file's is learnt now, with
        # its header (from the same read, when that took the whole file)
        also = {"sha256": lambda: digest[0] or io.content_hash(p)}
        grid = self._fact(p, name, learn, also=also)
        if not (isinstance(grid, int) and 0 <= grid < len(self.grids)):
            grid = learn()  # not an index this file wrote: read the header (never trusted)
        return grid

    def grid_geometry(self, grid: int, path: str | os.PathLike[str]) -> Any:
        """The :class:`segfair.io.Geometry` of ``path``, a file of grid ``grid``
        (:meth:`grid`)."""
        shape, voxel, affine = self._grid(grid)
        return io.Geometry(shape, voxel, affine, os.fspath(path))

    @staticmethod
    def _grid_key(grid: dict[str, list[Any]]) -> tuple[Any, ...]:
        return tuple(tuple(grid[k]) for k in ("shape", "spacing", "affine"))

    def _grid_id(self, grid: dict[str, list[Any]]) -> int:
        """The index of ``grid`` in :attr:`grids` (added when new)."""
        key = self._grid_key(grid)
        with self._lock:
            found = self._grid_ids.get(key)
            if found is None:
                found = self._grid_ids[key] = len(self.grids)
                self.grids.append(grid)
            return found

    def _grid(self, grid: int) -> tuple[tuple[int, ...], tuple[float, ...], Any]:
        """Shape, spacing and (read-only, shared) affine of a grid, built once."""
        found = self._grid_values.get(grid)
        if found is None:
            doc = self.grids[grid]
            affine = np.asarray(doc["affine"], dtype=np.float64).reshape(4, 4)
            affine.flags.writeable = False
            found = self._grid_values[grid] = (
                tuple(int(n) for n in doc["shape"]),
                tuple(float(z) for z in doc["spacing"]),
                affine,
            )
        return found

    def learnt(self) -> tuple[list[dict[str, list[Any]]], list[tuple[str, dict[str, Any]]]]:
        """The grids and every entry: what a worker's index hands to the main process's
        (:meth:`absorb`)."""
        return list(self.grids), list(self.entries.items())

    def absorb(
        self, learnt: tuple[Sequence[dict[str, list[Any]]], Sequence[tuple[str, dict[str, Any]]]]
    ) -> None:
        """Take what another index learnt (:meth:`learnt`), checked there exactly as here
        (stamp before and after, settled); an entry of another stamp is replaced."""
        grids, entries = learnt
        mine = [self._grid_id(g) for g in grids]  # its grid indices → this index's
        if mine == list(range(len(mine))):
            with self._lock:
                if self.entries.keys().isdisjoint(path for path, _ in entries):
                    # new files, the same grid numbers (a cold cohort): taken as they are
                    self.entries.update(entries)
                    self.added += len(entries)
                    return
        for path, entry in entries:
            facts = {k: mine[v] if k.startswith(_GEOMETRY) else v for k, v in entry.items()}
            with self._lock:
                found = self.entries.get(path)
                if found is not None and found.get("stamp") == facts["stamp"]:
                    found.update(facts)
                else:
                    self.entries[path] = facts
                self.added += 1

    def save(self) -> None:
        """Write the index if it learnt something (atomically; a full disk costs time only)."""
        with self._lock:
            if not self.added or self.path is None:
                return
            doc: dict[str, Any] = {
                "segfair": __version__,
                "grids": list(self.grids),
                "entries": dict(self.entries),
            }
            self.added = 0
        with contextlib.suppress(OSError, SegfairError):
            # one line of format and tag, then the body the tag is over: encoded once (at
            # 100,000 cases, encoding the index for its tag and again for the file took seconds)
            body = json.dumps(doc, separators=(",", ":")).encode()
            meta = json.dumps({"format": _FORMAT, "hmac": sign(body)}).encode()
            io.atomic_write_bytes(self.path, meta + b"\n" + body)


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
