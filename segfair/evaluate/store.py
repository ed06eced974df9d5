"""The results store: every case result of a cache folder in ONE SQLite file, read and written
by the main process only.

Why SQLite (docs/performance.md, "The results store"): results are looked up by content key, one
point query each; a batch of results is one transaction; two segfair runs sharing a cache folder
(two CI jobs, pytest-xdist workers) write at once under WAL and a busy timeout; a process killed
mid-write leaves the last committed transaction. All of it in the standard library.

A case's values are packed float64 in a *layout*: the ordered ``(structure, pred, ref, metric)``
score slots and ``(structure, ref, descriptor)`` shape slots of its result, stored once in the
``layouts`` table under the SHA-256 of its text. Reading many cases is then one
``np.frombuffer(b"".join(payloads))``, not one JSON document per case.

Every entry is authenticated: an HMAC-SHA256 (the key of :mod:`segfair.io.signing`) over its
lookup key, its layout's hash, its case id and its payload. A forged, edited or moved entry fails
it and is recomputed, never believed; a layout whose text does not hash to its id is never used.

Example
-------
>>> import os, tempfile
>>> os.environ["SEGFAIR_CACHE_KEY"] = "an example key of at least 32 characters"
>>> layout = Layout(scores=(("foreground", "model:m", "ruler:e", "dice"),))
>>> with ResultStore(tempfile.mkdtemp()) as store:
...     store.put_many([StoreRow("ab" * 32, "case-1", layout, np.array([0.9]))])
...     got = store.get_many(["ab" * 32, "cd" * 32])
1
>>> got["ab" * 32].case_id, got["ab" * 32].values.tolist(), "cd" * 32 in got
('case-1', [0.9], False)
>>> del os.environ["SEGFAIR_CACHE_KEY"]
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from segfair.errors import SegfairError
from segfair.evaluate.tasks import CaseResult, CaseTask
from segfair.io.signing import cache_key

__all__ = [
    "STORE_FORMAT",
    "STORE_NAME",
    "STORE_NEWER",
    "STORE_REBUILT",
    "Found",
    "Layout",
    "ResultStore",
    "StoreRow",
    "StoredResult",
]

#: The file of the store in the cache folder.
STORE_NAME: Final = "results.sqlite"
#: Bumped whenever the schema or the payload's meaning changes (``PRAGMA user_version``).
STORE_FORMAT: Final = 1
#: ``PRAGMA application_id``: a database of another program in our file's place is not ours.
_APPLICATION_ID: Final = 0x53474652  # "SGFR"
#: At most this many parameters in one statement (SQLite's old default limit is 999).
_CHUNK: Final = 900
#: Rows fetched at once when the whole table is read.
_FETCH: Final = 8192
#: How long a writer waits for another's transaction (ms) before "database is locked".
_BUSY_MS: Final = 30_000
_RETRIES: Final = 5
#: SQLite's page cache per connection (KiB); the default, 2 MiB, thrashes beyond ~100k entries.
_CACHE_KIB: Final = 65_536
_TAG_DOMAIN: Final = b"segfair-results-store-1\x00"

STORE_REBUILT: Final = (
    "segfair: the results store {path!r} {reason}; it was moved to {aside!r} and a new one "
    "started (its cases are computed again)"
)
STORE_NEWER: Final = (
    "segfair: the results store {path!r} was written by a newer segfair (store format {found}; "
    "this one reads {ours}): it is left as it is and this run neither reads nor writes it. Point "
    "`cache` at another folder, or delete the file, to keep results again"
)
STORE_NOT_WRITABLE: Final = (
    "the results store {path!r} cannot be written ({reason}). Fix its permissions, point `cache` "
    "at a writable folder, or turn the cache off (cache = false, or --no-cache)"
)
MIGRATED: Final = (
    "segfair: moved {n} result(s) of the per-file cache in {path!r} into {store!r}; removed "
    "{dropped} entry file(s) that could not be verified or were of an older format"
)

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS layouts (id BLOB PRIMARY KEY, spec TEXT NOT NULL) WITHOUT ROWID",
    # rows appended in the order they come (a run's order, read back in it), found by a unique
    # index of 40-byte entries that stays in the page cache: random content keys then cost
    # 1.6x less CPU to insert than in a table ordered by them (bench_store.py, 1M rows)
    "CREATE TABLE IF NOT EXISTS results (key BLOB NOT NULL UNIQUE, case_id TEXT NOT NULL, "
    "layout BLOB NOT NULL, payload BLOB NOT NULL, tag BLOB NOT NULL)",
)


@dataclass(frozen=True)
class Layout:
    """The ordered value slots of a case result: ``scores`` holds ``(structure, pred, ref,
    metric)`` and ``shapes`` ``(structure, ref, descriptor)``; a payload is their values in this
    order, as float64.

    >>> lay = Layout(scores=(("s", "model:m", "ruler:e", "dice"),), shapes=(("s", "ruler:e", "x"),))
    >>> lay.width, lay.to_result("c", np.array([0.5, 2.0])).scores
    (2, {'s': {('model:m', 'ruler:e'): {'dice': 0.5}}})
    """

    scores: tuple[tuple[str, str, str, str], ...] = ()
    shapes: tuple[tuple[str, str, str], ...] = ()
    id: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", tuple(tuple(map(str, s)) for s in self.scores))
        object.__setattr__(self, "shapes", tuple(tuple(map(str, s)) for s in self.shapes))
        object.__setattr__(self, "id", hashlib.sha256(self.spec.encode()).digest())

    @functools.cached_property
    def spec(self) -> str:
        """The canonical text stored in the ``layouts`` table (its SHA-256 is :attr:`id`);
        encoded once (every batch of stored results names its layouts by it)."""
        return json.dumps({"scores": self.scores, "shapes": self.shapes}, separators=(",", ":"))

    @property
    def width(self) -> int:
        return len(self.scores) + len(self.shapes)

    @classmethod
    def from_spec(cls, spec: str) -> Layout:
        doc = json.loads(spec)
        return cls(
            scores=tuple(tuple(s) for s in doc["scores"]),
            shapes=tuple(tuple(s) for s in doc["shapes"]),
        )

    @classmethod
    def of(cls, result: CaseResult) -> tuple[Layout, npt.NDArray[np.float64]]:
        """The layout of a computed result and its values in that layout."""
        slots: list[tuple[str, str, str, str]] = []
        values: list[float] = []
        for structure, pairs in result.scores.items():
            for (pred, ref), per in pairs.items():
                for metric, v in per.items():
                    slots.append((structure, pred, ref, metric))
                    values.append(v)
        shapes: list[tuple[str, str, str]] = []
        for structure, refs in result.shapes.items():
            for ref, desc in refs.items():
                for name, v in desc.items():
                    shapes.append((structure, ref, name))
                    values.append(v)
        return _layout(tuple(slots), tuple(shapes)), np.asarray(values, dtype=np.float64)

    def to_result(self, case_id: str, values: npt.NDArray[np.float64]) -> CaseResult:
        """The :class:`CaseResult` (``cached=True``) these values stand for."""
        result = CaseResult(case_id=case_id, cached=True)
        row = values.tolist()
        for (structure, pred, ref, metric), v in zip(self.scores, row, strict=False):
            per = result.scores.setdefault(structure, {}).setdefault((pred, ref), {})
            per[metric] = float(v)
            result.shapes.setdefault(structure, {})
        for (structure, ref, name), v in zip(self.shapes, row[len(self.scores) :], strict=True):
            result.shapes.setdefault(structure, {}).setdefault(ref, {})[name] = float(v)
            result.scores.setdefault(structure, {})
        return result

    def fits(self, task: CaseTask) -> bool:
        """Whether a result in this layout answers ``task``: every structure, each with exactly
        the task's pairs and metrics, and its references described (as ``_read_cache`` did)."""
        names = set(task.structure_names)
        pairs: dict[str, dict[tuple[str, str], set[str]]] = {n: {} for n in names}
        for structure, pred, ref, metric in self.scores:
            if structure not in names:
                return False
            pairs[structure].setdefault((pred, ref), set()).add(metric)
        refs: dict[str, set[str]] = {n: set() for n in names}
        for structure, ref, _ in self.shapes:
            if structure not in names:
                return False
            refs[structure].add(ref)
        want, metrics = {tuple(p) for p in task.pairs}, set(task.metrics)
        return (
            all(set(per) == want for per in pairs.values())
            and all(m == metrics for per in pairs.values() for m in per.values())
            and all(r == set(task.describe) for r in refs.values())
        )


@functools.lru_cache(maxsize=256)
def _layout(
    scores: tuple[tuple[str, str, str, str], ...], shapes: tuple[tuple[str, str, str], ...]
) -> Layout:
    """One :class:`Layout` per distinct slot list: a run's cases mostly share one, and building
    it (its canonical text and SHA-256) cost ≈0.1 ms of the main process a stored result."""
    return Layout(scores, shapes)


class StoreRow(NamedTuple):
    """One result to store: its lookup key (64 hex digits), case, layout and values."""

    key: str
    case_id: str
    layout: Layout
    values: npt.NDArray[np.float64]


class Found(NamedTuple):
    """Verified entries of one layout from one chunk of :meth:`ResultStore.scan`."""

    layout: Layout
    #: where each entry's key is in the keys asked for
    positions: npt.NDArray[np.intp]
    case_ids: list[str]
    #: one row per entry, one column per slot of the layout
    values: npt.NDArray[np.float64]


def _wanted(keys: Sequence[str | None]) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """The keys as sorted 32-byte strings, and each one's position in ``keys`` (a key that is
    None or not 64 hex digits is left out: never found)."""
    if keys and set(map(type, keys)) == {str} and {len(k or "") for k in keys} == {64}:
        with contextlib.suppress(ValueError):  # the usual case: one conversion for all
            raw = np.frombuffer(bytes.fromhex("".join(keys)), dtype="S32")  # type: ignore[arg-type]
            order = np.argsort(raw, kind="stable")
            return raw[order], order.astype(np.intp)
    pairs = []
    for i, key in enumerate(keys):
        with contextlib.suppress(ValueError, TypeError):
            b = bytes.fromhex(key)  # type: ignore[arg-type]
            if len(b) == 32:
                pairs.append((b, i))
    pairs.sort()
    return (
        np.array([b for b, _ in pairs], dtype="S32"),
        np.array([i for _, i in pairs], dtype=np.intp),
    )


def _well_formed(row: Sequence[Any]) -> bool:
    key, case_id, layout_id, payload, tag = row
    return (
        isinstance(key, bytes)
        and len(key) == 32
        and isinstance(case_id, str)
        and all(isinstance(v, bytes) for v in (layout_id, payload, tag))
    )


def _uniform(keys: list[Any], cases: list[Any], *blobs: list[Any]) -> bool:
    """Whether every row has the types a genuine one has (checked per column, in C)."""
    return (
        set(map(type, keys)) == {bytes}
        and set(map(len, keys)) == {32}
        and set(map(type, cases)) == {str}
        and all(set(map(type, b)) == {bytes} for b in blobs)
    )


class StoredResult(NamedTuple):
    """One verified result read back."""

    case_id: str
    layout: Layout
    values: npt.NDArray[np.float64]


def _tag(secret: bytes, key: bytes, layout: bytes, case_id: str, payload: bytes) -> bytes:
    message = b"".join((_TAG_DOMAIN, key, layout, case_id.encode("utf-8"), b"\x00", payload))
    return hmac.digest(secret, message, "sha256")


def _note(text: str) -> None:
    """A one-line note on standard error (the store never stops a run)."""
    print(text, file=sys.stderr)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class ResultStore:
    """The results store of one cache folder (see the module).

    Open it in the main process; workers never see it (a Dask worker on another machine could
    not). ``with ResultStore(folder) as store: ...`` closes it. A store that cannot be used (not
    a database, a newer format) never stops a run: it is set aside with a note, and results are
    computed.
    """

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(cache_dir)
        self.path = self.folder / STORE_NAME
        self._secret = cache_key()
        self._layouts: dict[bytes, Layout | None] = {}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SegfairError(
                STORE_NOT_WRITABLE.format(path=str(self.path), reason=reason)
            ) from None
        self.db: sqlite3.Connection | None = self._open()

    # -- opening ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL under WAL: a power cut may lose the last transactions, never corrupt the file
            db.execute("PRAGMA synchronous = NORMAL")
            # the B-tree's inner pages of a million entries stay in memory: lookups and inserts
            # of random keys then read one leaf page each
            db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection | None:
        for attempt in range(_RETRIES):
            try:
                db = self._connect()
            except sqlite3.OperationalError as exc:
                if _locked(exc) and attempt + 1 < _RETRIES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if "readonly" in str(exc).lower() or "unable to open" in str(exc).lower():
                    raise SegfairError(
                        STORE_NOT_WRITABLE.format(path=str(self.path), reason=str(exc))
                    ) from None
                return self._set_aside(f"cannot be opened ({exc})")
            except sqlite3.DatabaseError as exc:  # garbage in our file's place
                return self._set_aside(f"is not a database ({exc})")
            try:
                usable = self._prepare(db)
            except sqlite3.OperationalError as exc:
                db.close()
                if _locked(exc) and attempt + 1 < _RETRIES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if "readonly" in str(exc).lower():
                    raise SegfairError(
                        STORE_NOT_WRITABLE.format(path=str(self.path), reason=str(exc))
                    ) from None
                return self._set_aside(f"cannot be used ({exc})")
            except sqlite3.DatabaseError as exc:
                db.close()
                return self._set_aside(f"is not a database ({exc})")
            if usable is not True:
                db.close()
                return self._set_aside(usable) if usable else None
            return db
        return None  # pragma: no cover - the loop returns

    def _prepare(self, db: sqlite3.Connection) -> bool | str:
        """Create the schema in a new file; True when the store is ours and usable, "" for a
        newer format (left alone), else why it is not ours."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            app = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if version == 0 and app == 0 and not tables:  # a new, empty database
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {STORE_FORMAT}")
                version, app = STORE_FORMAT, _APPLICATION_ID
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if app != _APPLICATION_ID:
            return "is a database of another program"
        if version > STORE_FORMAT:
            _note(STORE_NEWER.format(path=str(self.path), found=version, ours=STORE_FORMAT))
            return ""
        if version != STORE_FORMAT:
            return f"is of an older format ({version})"
        return True

    def _set_aside(self, reason: str) -> sqlite3.Connection | None:
        """Move an unusable file (and its WAL) aside and start a new store."""
        aside = self.path.with_name(f"{STORE_NAME}.unusable-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        except OSError:
            return None  # cannot fix it: run without the store
        _note(STORE_REBUILT.format(path=str(self.path), reason=reason, aside=str(aside)))
        try:
            db = self._connect()
            if self._prepare(db) is True:
                return db
            db.close()
        except sqlite3.Error:
            pass
        return None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def put_many(self, rows: Iterable[StoreRow]) -> int:
        """Store results in ONE transaction (retried while another writer holds the lock); an
        entry already there under the same key is replaced (same key ⇒ same content, or a bad
        entry being repaired). Returns how many were written."""
        if self.db is None:
            return 0
        layouts: dict[bytes, str] = {}
        records = []
        for key, case_id, layout, values in rows:
            k = bytes.fromhex(key)
            payload = np.ascontiguousarray(values, dtype="<f8").tobytes()
            if len(payload) != 8 * layout.width:
                raise ValueError(
                    f"case {case_id!r}: {len(payload) // 8} values for a layout of {layout.width}"
                )
            layouts[layout.id] = layout.spec
            records.append(
                (k, case_id, layout.id, payload, _tag(self._secret, k, layout.id, case_id, payload))
            )
        if not records:
            return 0
        self._transaction(
            [
                ("INSERT OR IGNORE INTO layouts (id, spec) VALUES (?, ?)", list(layouts.items())),
                (
                    "INSERT OR REPLACE INTO results (key, case_id, layout, payload, tag) "
                    "VALUES (?, ?, ?, ?, ?)",
                    records,
                ),
            ]
        )
        return len(records)

    def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        assert self.db is not None
        for attempt in range(_RETRIES):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self.db.executemany(sql, params)
                    self.db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                    raise
                return
            except sqlite3.OperationalError as exc:
                if _locked(exc) and attempt + 1 < _RETRIES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise

    # -- reading ---------------------------------------------------------------------------
    def layout(self, layout_id: bytes) -> Layout | None:
        """The layout of that id, when its stored text hashes to it (else None: not used)."""
        if layout_id not in self._layouts:
            found = None
            if self.db is not None:
                row = self.db.execute(
                    "SELECT spec FROM layouts WHERE id = ?", (layout_id,)
                ).fetchone()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    if row is not None:
                        candidate = Layout.from_spec(row[0])
                        found = candidate if candidate.id == layout_id else None
            self._layouts[layout_id] = found
        return self._layouts[layout_id]

    def scan(self, keys: Sequence[str | None]) -> Iterator[Found]:
        """The verified entries of ``keys`` (None: no key), in chunks of one layout each.
        Missing, forged, moved or malformed entries are left out: a miss.

        Looking up most of the table reads it once, in the order it was written (a million point
        queries cost several times more); a few keys are looked up, at most :data:`_CHUNK` per
        statement.
        """
        if self.db is None:
            return
        wanted, where = _wanted(keys)
        if not len(wanted):
            return
        columns = "SELECT key, case_id, layout, payload, tag FROM results"
        try:
            total = int(self.db.execute("SELECT count(*) FROM results").fetchone()[0])
            if 4 * len(wanted) >= total:
                cursor = self.db.execute(columns)
                while rows := cursor.fetchmany(_FETCH):
                    yield from self._verified(rows, wanted, where)
                return
            for start in range(0, len(wanted), _CHUNK):
                chunk = [bytes(k) for k in wanted[start : start + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(f"{columns} WHERE key IN ({marks})", chunk).fetchall()
                yield from self._verified(rows, wanted, where)
        except sqlite3.DatabaseError:
            return  # a store damaged under us: everything left is a miss

    def _verified(
        self, rows: list[Any], wanted: npt.NDArray[Any], where: npt.NDArray[np.intp]
    ) -> Iterator[Found]:
        """The rows that are genuine and wanted, by layout. Column by column: a million rows
        are a million HMACs, not a million Python loops."""
        if not rows:
            return
        keys, cases, layout_ids, payloads, tags = (list(c) for c in zip(*rows, strict=True))
        if not _uniform(keys, cases, layout_ids, payloads, tags):
            kept = [r for r in rows if _well_formed(r)]  # an edited row of the wrong type
            if not kept:
                return
            keys, cases, layout_ids, payloads, tags = (list(c) for c in zip(*kept, strict=True))
        found = np.array(keys, dtype="S32")
        at = np.minimum(np.searchsorted(wanted, found), len(wanted) - 1)
        match = wanted[at] == found
        if not match.all():  # a whole-table read: only the wanted rows are checked
            sel = np.flatnonzero(match).tolist()
            keys, cases, layout_ids, payloads, tags = (
                [column[i] for i in sel] for column in (keys, cases, layout_ids, payloads, tags)
            )
            at = at[match]
            if not sel:
                return
        messages = map(
            b"".join,
            zip(
                repeat(_TAG_DOMAIN),
                keys,
                layout_ids,
                map(str.encode, cases),
                repeat(b"\x00"),
                payloads,
                strict=False,
            ),
        )
        computed = map(hmac.digest, repeat(self._secret), messages, repeat("sha256"))
        good = np.fromiter(map(hmac.compare_digest, computed, tags), dtype=bool, count=len(tags))
        by_layout = (
            {layout_ids[0]: good}
            if len(set(layout_ids)) == 1
            else {
                lid: good & (np.array(layout_ids, dtype=object) == lid) for lid in set(layout_ids)
            }
        )
        for layout_id, mask in by_layout.items():
            layout = self.layout(layout_id)
            if layout is None:
                continue
            size = 8 * layout.width
            mask &= np.fromiter(map(len, payloads), dtype=np.intp, count=len(payloads)) == size
            if mask.all():  # the usual chunk: every row genuine, one layout
                kept_cases, kept_payloads, kept_at = cases, payloads, at
            else:
                rows_ = np.flatnonzero(mask).tolist()
                if not rows_:
                    continue
                kept_cases = [cases[i] for i in rows_]
                kept_payloads = [payloads[i] for i in rows_]
                kept_at = at[rows_]
            values = np.frombuffer(b"".join(kept_payloads), dtype="<f8")
            yield Found(
                layout,
                where[kept_at],
                kept_cases,
                values.reshape(len(kept_cases), layout.width),
            )

    def get_many(self, keys: Sequence[str]) -> dict[str, StoredResult]:
        """The verified results of those keys (a key not in the answer is a miss).

        For a few thousand keys; :meth:`scan` streams any number without a dict of results.
        """
        out: dict[str, StoredResult] = {}
        for found in self.scan(keys):
            for i, case_id, row in zip(
                found.positions.tolist(), found.case_ids, found.values, strict=True
            ):
                out[keys[i]] = StoredResult(case_id, found.layout, row)
        return out

    def __len__(self) -> int:
        if self.db is None:
            return 0
        return int(self.db.execute("SELECT count(*) FROM results").fetchone()[0])
