"""The verdict of a set of gate results, always derived from ``doc["gates"]`` at render time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The four words every front uses for a gate, in upper case.
STATUS_WORDS = {
    "passed": "PASSED",
    "failed": "FAILED",
    "inconclusive": "INCONCLUSIVE",
    "error": "ERROR",
}


def _status(gate: Mapping[str, Any]) -> str:
    status = str(gate.get("status", ""))
    # a report written before schema 2
    return "inconclusive" if status == "insufficient_evidence" else status


def _gate_ok(gate: Mapping[str, Any]) -> bool:
    status = _status(gate)
    if status == "error":
        return False  # an error never reads as a pass, whatever a document says
    ok = gate.get("ok")
    if isinstance(ok, bool):
        return ok
    return status == "passed" or (status == "inconclusive" and bool(gate.get("allowed")))


def _warns(gate: Mapping[str, Any]) -> bool:
    """An inconclusive gate let through with ``on_inconclusive = "warn"`` (or the legacy
    ``allow_insufficient``): shown as a warning, not a failure."""
    return (
        _status(gate) == "inconclusive"
        and _gate_ok(gate)
        and gate.get("on_inconclusive", "fail") != "pass"
    )


def _severity(gate: Mapping[str, Any]) -> int:
    status = _status(gate)
    if status == "inconclusive":
        return 2 if not _gate_ok(gate) else 3 if _warns(gate) else 4
    return {"error": 0, "failed": 1, "passed": 5}.get(status, 0)


_ORIGINS = {"configuration": 0, "test": 1}


def gate_order_key(gate: Mapping[str, Any]) -> tuple[int, int, str, int, str]:
    """The sort key of :func:`order_gates`."""
    loc = gate.get("location") or {}
    return (
        _severity(gate),
        _ORIGINS.get(str(loc.get("origin")), 2),
        str(loc.get("file") or ""),
        int(loc.get("line") or 0),
        str(gate.get("id", "")),
    )


def order_gates(gates: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The one order every front lists gates in (terminal, Markdown, HTML, JSON, annotations):
    by severity — errors, failed, inconclusive that block, inconclusive let through with a
    warning, the other inconclusive ones let through, passed — then where they are declared:
    configuration gates in the order of the configuration, then assertions by test file and
    line, then gates of unknown origin (the Python API) by id. It depends on the results alone,
    not on the order tests ran in (xdist workers finish in any order).

    Examples
    --------
    >>> [g["id"] for g in order_gates([
    ...     {"id": "t", "status": "failed", "location": {"origin": "test", "file": "t.py",
    ...                                                  "line": 9}},
    ...     {"id": "p", "status": "passed"},
    ...     {"id": "c", "status": "failed", "location": {"origin": "configuration",
    ...                                                  "file": "segfair.toml", "line": 30}},
    ...     {"id": "e", "status": "error"}])]
    ['e', 'c', 't', 'p']
    """
    return sorted(gates, key=gate_order_key)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def verdict(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict of a set of gate results (dicts as :meth:`GateResult.to_dict` writes them).

    Returns
    -------
    dict
        ``status`` (``"error"`` if a gate could not be evaluated, else ``"failed"`` if a gate
        shows harm, else ``"inconclusive"`` if an undecided gate blocks, else ``"passed"``; or
        ``"no_gates"``), ``ok``, ``counts`` (``total, passed, failed, inconclusive, error,
        allowed``), ``blocking`` (the ids of the gates that fail the build, in order),
        ``warnings`` (inconclusive gates let through with a warning) and ``line`` (the one-line
        verdict).

    Examples
    --------
    >>> verdict([{"id": "gap[dice,age,m]", "status": "failed", "ok": False}])["line"]
    'segfair: FAILED — 1 of 1 gate does not hold: gap[dice,age,m]'
    >>> verdict([{"id": "a", "status": "passed", "ok": True},
    ...          {"id": "b", "status": "error", "ok": False}])["line"]
    'segfair: ERROR — 1 of 2 gates could not be evaluated: b'
    """
    counts = {
        "total": len(gates),
        "passed": 0,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
        "allowed": 0,
    }
    blocking: list[str] = []
    warnings: list[str] = []
    for g in gates:
        status = _status(g)
        if status in STATUS_WORDS:
            counts[status] += 1
        if status == "inconclusive" and _gate_ok(g):
            counts["allowed"] += 1
        if _warns(g):
            warnings.append(str(g.get("id", "?")))
        if not _gate_ok(g):
            blocking.append(str(g.get("id", "?")))
    n = len(gates)
    if n == 0:
        status = "no_gates"
        line = (
            "segfair: NO GATES — nothing was checked; declare [[gates]] in the configuration "
            "or assert them in tests"
        )
    elif counts["error"]:
        errors = [str(g.get("id", "?")) for g in gates if _status(g) == "error"]
        status = "error"
        verb = "could not be evaluated"
        line = f"segfair: ERROR — {len(errors)} of {_plural(n, 'gate')} {verb}: {_shown(errors)}"
        others = [b for b in blocking if b not in errors]
        if others:
            line += f"; {len(others)} more block{'s' if len(others) == 1 else ''}"
    elif blocking:
        verb = "does not hold" if len(blocking) == 1 else "do not hold"
        if counts["failed"]:
            status, word = "failed", "FAILED"
        else:
            status, word = "inconclusive", "INCONCLUSIVE"
            verb = "is undecided" if len(blocking) == 1 else "are undecided"
        line = f"segfair: {word} — {len(blocking)} of {_plural(n, 'gate')} {verb}: "
        line += _shown(blocking)
    else:
        status = "passed"
        passed = _plural(counts["passed"], "gate") + " passed"
        if counts["allowed"]:
            passed = (
                f"{passed}, {counts['allowed']} inconclusive (not blocking)"
                if counts["passed"]
                else f"{_plural(counts['allowed'], 'gate')} inconclusive (not blocking)"
            )
        line = f"segfair: PASSED — {passed}"
    return {
        "status": status,
        "ok": not blocking,
        "counts": counts,
        "blocking": blocking,
        "warnings": warnings,
        "line": line,
    }


def _shown(ids: Sequence[str]) -> str:
    return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
