"""Atomic writes: readers see a file's old content or its new one, never half of it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write`` on a temporary name next to ``path``, then rename it into place.

    A reader (another xdist worker, the cache) never sees half a file, and a crash leaves none.
    """
    directory, name = os.path.split(os.path.abspath(path))
    # The temporary name keeps the suffix: nibabel picks gzip from it, numpy would append .npy.
    tmp = os.path.join(directory, f".{os.getpid()}.{threading.get_ident()}.tmp.{name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
