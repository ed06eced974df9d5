"""The verdict of a set of gate results, always derived from ``doc["gates"]`` at render time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _gate_ok(gate: Mapping[str, Any]) -> bool:
    ok = gate.get("ok")
    if isinstance(ok, bool):
        return ok
    status = gate.get("status")
    return status == "passed" or (status == "insufficient_evidence" and bool(gate.get("allowed")))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def verdict(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict of a set of gate results (dicts as :meth:`GateResult.to_dict` writes them).

    Returns
    -------
    dict
        ``status`` (``"passed"``, ``"failed"`` or ``"no_gates"``), ``ok``, ``counts``
        (``total, passed, failed, insufficient_evidence, allowed``), ``blocking`` (the ids of the
        gates that fail the build, in order) and ``line`` (the one-line verdict).

    Examples
    --------
    >>> verdict([{"id": "gap[dice,age,m]", "status": "failed", "ok": False}])["line"]
    'segfair: FAILED — 1 of 1 gate does not hold: gap[dice,age,m]'
    """
    counts = {
        "total": len(gates),
        "passed": 0,
        "failed": 0,
        "insufficient_evidence": 0,
        "allowed": 0,
    }
    blocking: list[str] = []
    for g in gates:
        status = str(g.get("status", ""))
        if status in ("passed", "failed", "insufficient_evidence"):
            counts[status] += 1
        if status == "insufficient_evidence" and _gate_ok(g):
            counts["allowed"] += 1
        if not _gate_ok(g):
            blocking.append(str(g.get("id", "?")))
    n = len(gates)
    if n == 0:
        status = "no_gates"
        line = (
            "segfair: NO GATES — nothing was checked; declare [[gates]] in the configuration "
            "or assert them in tests"
        )
    elif blocking:
        shown = ", ".join(blocking[:3]) + (
            f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
        )
        verb = "does not hold" if len(blocking) == 1 else "do not hold"
        status = "failed"
        line = f"segfair: FAILED — {len(blocking)} of {_plural(n, 'gate')} {verb}: {shown}"
    else:
        status = "passed"
        passed = _plural(counts["passed"], "gate") + " passed"
        if counts["allowed"]:
            passed = (
                f"{passed}, {counts['allowed']} with insufficient evidence (allowed)"
                if counts["passed"]
                else f"{_plural(counts['allowed'], 'gate')} with insufficient evidence (allowed)"
            )
        line = f"segfair: PASSED — {passed}"
    return {
        "status": status,
        "ok": not blocking,
        "counts": counts,
        "blocking": blocking,
        "line": line,
    }
