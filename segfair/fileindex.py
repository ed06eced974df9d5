"""Old import path, kept for users; the code lives in :mod:`segfair.cohort.fileindex`."""

from __future__ import annotations

from segfair.cohort.fileindex import *  # noqa: F403
from segfair.cohort.fileindex import __all__ as __all__
