"""Old import path, kept for users; the code lives in :mod:`segfair.cohort.fileindex`."""

from __future__ import annotations

from segfair.cohort.fileindex import (
    SETTLE_NS,
    FileIndex,
    file_index,
)

__all__ = [
    "SETTLE_NS",
    "FileIndex",
    "file_index",
]
