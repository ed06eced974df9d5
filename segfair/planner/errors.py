"""The planner's error: a sampling design or plan request that cannot be honoured."""

from __future__ import annotations

from segfair.errors import SegfairError


class PlanError(SegfairError, ValueError):
    """A sampling design or plan request that cannot be honoured."""
