"""Old import path, kept for users; the code lives in :mod:`segfair.cohort.config`."""

from __future__ import annotations

from segfair.cohort.config import *  # noqa: F403
from segfair.cohort.config import __all__ as __all__
