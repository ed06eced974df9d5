"""Text formatting of numbers, intervals and gate statuses shared by the renderers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from segfair.report.verdict import STATUS_WORDS, _gate_ok, _status, _warns


def fmt(x: Any, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, ``n/a`` for missing values."""
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
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"


def fmt_interval(e: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``estimate [lower, upper]``; the bracket is left out when there is no interval."""
    if not e:
        return "n/a"
    est = fmt(e.get("estimate"), digits)
    lo, hi = e.get("lower"), e.get("upper")
    if lo is None and hi is None:
        return est
    return f"{est} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


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
