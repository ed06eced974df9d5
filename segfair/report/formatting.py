"""Text formatting of numbers, intervals and gate statuses shared by the renderers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from segfair.report.verdict import STATUS_WORDS, _gate_ok, _status, _warns


def fmt(x: Any, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, ``n/a`` for missing values, and a
    tiny non-zero number as ``<0.0001`` (a bound at zero up to rounding, not ``1.60e-12``).

    Examples
    --------
    >>> fmt(0.123456), fmt(1.6e-12), fmt(None), fmt(12345.6)
    ('0.123', '<0.0001', 'n/a', '12346')
    """
    if x is None or isinstance(x, bool):
        return "n/a" if x is None else str(x)
    if isinstance(x, str):
        return x  # "inf" as GateResult.to_dict writes it
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 10 ** -(digits + 1):
        tiny = f"{10 ** -(digits + 1):.{digits + 1}f}"
        return f"<{tiny}" if v > 0 else f">-{tiny}"
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"


def fmt_interval(e: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``estimate [lower, upper]`` with one number of decimals for all three (``digits``
    significant digits of the largest), and the unit when ``e`` has one (a gate's ``"mm"``);
    the bracket is left out when there is no interval.

    Examples
    --------
    >>> fmt_interval({"estimate": 0.62, "lower": 1.6e-12, "upper": 1.0})
    '0.62 [0.00, 1.00]'
    >>> fmt_interval({"estimate": 0.101, "lower": 0.06, "upper": 0.133})
    '0.101 [0.060, 0.133]'
    >>> fmt_interval({"estimate": 4.2, "lower": 2.95, "upper": 6.1, "unit": "mm"})
    '4.20 [2.95, 6.10] mm'
    """
    if not e:
        return "n/a"
    unit = str(e.get("unit") or "")
    est, lo, hi = e.get("estimate"), e.get("lower"), e.get("upper")
    if lo is None and hi is None:
        text = fmt(est, digits)
    else:
        places = _decimals((est, lo, hi), digits)
        if places is None:
            text = f"{fmt(est, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"
        else:
            text = f"{_fixed(est, places)} [{_fixed(lo, places)}, {_fixed(hi, places)}]"
    return f"{text} {unit}" if unit and text != "n/a" else text


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool | str):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decimals(values: tuple[Any, ...], digits: int) -> int | None:
    """Decimals that give the largest of ``values`` ``digits`` significant digits (0 to 6);
    None when no value is a finite non-zero number."""
    sizes = [abs(v) for v in map(_finite, values) if v is not None and v != 0]
    if not sizes:
        return None
    return min(max(digits - 1 - math.floor(math.log10(max(sizes))), 0), 6)


def _fixed(x: Any, places: int) -> str:
    v = _finite(x)
    if v is None:
        return fmt(x)  # n/a, inf
    text = f"{v:.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_pct(x: Any) -> str:
    if x is None or isinstance(x, str):
        return "n/a" if x is None else x
    v = float(x)
    if not math.isfinite(v):
        return "n/a"
    return f"{v * 100:.0f}%"


def fmt_p(x: Any) -> str:
    if x is None:
        return "n/a"
    v = float(x)
    return "< 0.001" if v < 0.001 else f"{v:.2g}"


STATUS_LABELS: Final = dict(STATUS_WORDS)


def _status_label(gate: Mapping[str, Any]) -> str:
    status = _status(gate)
    label = STATUS_LABELS.get(status, status.upper() or "?")
    if status == "inconclusive" and _gate_ok(gate):
        label += " (warning)" if _warns(gate) else " (not blocking)"
    return label


def _distortion_sentence(d: Mapping[str, Any]) -> str:
    """What an automated ruler does to the gap, in words (shrinkage or inflation)."""
    metric, auto, trusted = d["metric"], d["automated"], d["trusted"]
    gt, ga = d["gap_trusted"], d["gap_automated"]
    hidden = d["hidden_gap"]
    base = (
        f"gap {fmt(gt['estimate'])} on {trusted} labels vs {fmt(ga['estimate'])} on {auto} labels"
    )
    if not d.get("defined"):
        return (
            f"{base}: the trusted gap is not shown to exceed {fmt(d.get('negligible'))}, so "
            f"read the hidden gap: {fmt_interval(hidden)} {metric}"
        )
    dist = d["distortion"]["estimate"]
    if dist is None:
        return base
    if dist < 0:
        s = d["shrinkage"]
        return (
            f"{base}: {auto} labels hide {fmt_pct(s['estimate'])} "
            f"[{fmt_pct(s['lower'])}, {fmt_pct(s['upper'])}] of the gap"
        )
    s = d["inflation"]
    return (
        f"{base}: {auto} labels inflate the gap by {fmt_pct(s['estimate'])} "
        f"[{fmt_pct(s['lower'])}, {fmt_pct(s['upper'])}]"
    )
