"""Atomic writes: readers see a file's old content or its new one, never half of it."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write`` on a temporary name next to ``path``, then rename it into place.

    A reader (another xdist worker, the cache) never sees half a file, and a crash leaves none.
    """
    directory, name = os.path.split(os.path.abspath(path))
    # The temporary name keeps the suffix: nibabel picks gzip from it, numpy would append .npy.
    # mkstemp creates it (O_CREAT | O_EXCL, mode 0600) under an unpredictable name: a symbolic
    # link planted at a predictable name would have made segfair overwrite its target.
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.getpid()}.{threading.get_ident()}.", suffix=f".tmp.{name}"
    )
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # what an ordinary open() would have given the file
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it sets it: once, at import, before any thread
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file (UTF-8, synced) so that readers see the old content or the new, never
    half of it; the folder is created if needed. Used for every cache and index file."""
    path_str = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path_str)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _write_atomically(path_str, write)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """:func:`atomic_write_text` for bytes (a spreadsheet, an archive)."""
    path_str = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path_str)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    _write_atomically(path_str, write)
