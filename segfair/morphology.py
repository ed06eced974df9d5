"""Old import path, kept for users; the code lives in :mod:`segfair.metrics.morphology`."""

from __future__ import annotations

from segfair.metrics.morphology import DESCRIPTORS, DESCRIPTORS_2D, describe_mask

__all__ = ["DESCRIPTORS", "DESCRIPTORS_2D", "describe_mask"]
