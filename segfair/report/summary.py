"""The terminal summary of a run's gates: one line per gate, the counts and the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfair.report.formatting import _status_label, fmt_interval
from segfair.report.verdict import _plural, order_gates, verdict

if TYPE_CHECKING:
    from segfair.gates import GateResult


def summary_lines(
    results: Sequence[GateResult],
    written: Sequence[Path],
    *,
    rerun_hint: str = "re-run with --html PATH to get the audit report",
) -> list[str]:
    """The terminal summary of :class:`GateResult` s (the CLI's); see
    :func:`summary_lines_from_dicts`."""
    return summary_lines_from_dicts([r.to_dict() for r in results], written, rerun_hint=rerun_hint)


def summary_lines_from_dicts(
    results: Sequence[Mapping[str, Any]],
    written: Sequence[Path],
    *,
    rerun_hint: str = "re-run with --segfair-html PATH to get the audit report",
) -> list[str]:
    """The terminal summary: one line per gate, the counts, the reports, the next step, and the
    one-line verdict **last** (``--quiet`` prints only that line).

    Examples
    --------
    >>> lines = summary_lines_from_dicts(
    ...     [{"id": "gap[dice,age,m,expert]", "status": "failed", "ok": False, "estimate": 0.083,
    ...       "lower": 0.051, "upper": 0.112,
    ...       "decision_rule": "upper 95% bound of the gap of dice ≤ 0.05"}], [])
    >>> print(lines[0])
    FAILED gap[dice,age,m,expert]: 0.083 [0.051, 0.112], rule: upper 95% bound of the gap of ...
    >>> lines[1], lines[-1]
    ('1 gate failed', 'segfair: FAILED — 1 of 1 gate does not hold: gap[dice,age,m,expert]')
    """
    lines = []
    results = order_gates(results)  # the order of every report (see order_gates)
    for g in results:
        head = f"{_status_label(g)} {g.get('id', '?')}"
        if g.get("estimate") is None:
            lines.append(f"{head}: {g.get('message') or g.get('decision_rule', '')}")
        else:
            lines.append(f"{head}: {fmt_interval(g)}, rule: {g.get('decision_rule', '')}")
    v = verdict(list(results))
    c = v["counts"]
    parts = [
        (c["error"], "error" if c["error"] == 1 else "errors"),
        (c["failed"], "failed"),
        (c["passed"], "passed"),
        (c["inconclusive"] - c["allowed"], "inconclusive"),
        (c["allowed"], "inconclusive (not blocking)"),
    ]
    shown = [(n, w) for n, w in parts if n]
    if shown:
        n0, w0 = shown[0]
        first = f"{n0} gate {w0}" if w0 in ("error", "errors") else f"{_plural(n0, 'gate')} {w0}"
        lines.append(", ".join([first, *(f"{n} {w}" for n, w in shown[1:])]))
    paths = [Path(p) for p in written]
    lines.append("reports: " + (", ".join(str(p) for p in paths) if paths else "none written"))
    html = next((p for p in paths if p.suffix.lower() in (".html", ".htm")), None)
    if html is not None:
        lines.append(
            f"open {html} for the evidence"
            if not v["ok"]
            else f"the evidence behind every gate is in {html}"
        )
    elif results:
        lines.append(rerun_hint)
    lines.append(v["line"])
    return lines
