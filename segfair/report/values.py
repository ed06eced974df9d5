"""Plain JSON values of the report document: numbers rounded to :data:`DIGITS` significant
digits, NaN and ±inf as null, numpy scalars unwrapped."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

#: Significant digits kept for the audit's numbers: enough for any decision, and it keeps the
#: document byte-stable across platforms whose last float bits may differ.
DIGITS: Final = 6


def _num(value: Any) -> float | None:
    """A finite float rounded to :data:`DIGITS` significant digits, else None (NaN, inf)."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return float(f"{x:.{DIGITS}g}")


def _int(value: Any) -> int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0
    return int(x) if math.isfinite(x) else 0


def _est(e: Any) -> dict[str, float | None]:
    """An :class:`~segfair.audit.Estimate` as ``{estimate, lower, upper}``."""
    return {"estimate": _num(e.estimate), "lower": _num(e.lower), "upper": _num(e.upper)}


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, tuples as lists, NaN and ±inf as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)
