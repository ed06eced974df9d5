"""The verdict of one gate (:class:`GateResult`) and its JSON and text forms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Status = Literal["passed", "failed", "insufficient_evidence"]

EVIDENCE_COLUMNS = ("source", "group", "n", "estimate", "lower", "upper")


@dataclass(frozen=True, eq=False)
class GateResult:
    """The verdict of one gate.

    Attributes
    ----------
    id, kind, name
        The gate's identity.
    status
        ``"passed"``, ``"failed"`` or ``"insufficient_evidence"``.
    estimate, lower, upper
        The decisive quantity and its interval at ``confidence`` (for per-group gates, the group
        closest to failing).
    threshold
        The limit it was compared with.
    decision_rule
        The rule in words, e.g. ``"upper 95% bound of the gap ≤ 0.05"``.
    evidence
        ``source, group, n, estimate, lower, upper`` for every ruler/model involved.
    message
        One sentence to act on.
    allowed
        Insufficient evidence that the gate accepts (``allow_insufficient``).
    holm
        With Holm's procedure: ``family_size``, ``step`` and the ``confidence`` used.
    """

    id: str
    kind: str
    status: Status
    estimate: float
    lower: float
    upper: float
    threshold: float
    decision_rule: str
    evidence: pd.DataFrame
    message: str
    allowed: bool = False
    name: str | None = None
    confidence: float = 0.95
    decide_on: str = "bound"
    measure: str = ""
    notes: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    holm: Mapping[str, Any] | None = None
    labels_needed: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Passed, or insufficient evidence that the gate allows."""
        return self.status == "passed" or (self.status == "insufficient_evidence" and self.allowed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN → None)."""
        ev = self.evidence.astype(object).where(self.evidence.notna(), None)
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "ok": self.ok,
            "allowed": self.allowed,
            "estimate": _clean(self.estimate),
            "lower": _clean(self.lower),
            "upper": _clean(self.upper),
            "threshold": _clean(self.threshold),
            "confidence": self.confidence,
            "decide_on": self.decide_on,
            "measure": self.measure,
            "decision_rule": self.decision_rule,
            "message": self.message,
            "notes": list(self.notes),
            "next_steps": list(self.next_steps),
            "holm": dict(self.holm) if self.holm is not None else None,
            "labels_needed": dict(self.labels_needed) if self.labels_needed else None,
            "evidence": [
                {k: _clean(v) for k, v in row.items()} for row in ev.to_dict(orient="records")
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Rebuild a result from :meth:`to_dict` (e.g. after it crossed a process boundary).

        Examples
        --------
        >>> r = GateResult(id="g", kind="gap", status="passed", estimate=0.01, lower=0.0,
        ...                upper=0.02, threshold=0.05, decision_rule="rule",
        ...                evidence=pd.DataFrame(columns=list(EVIDENCE_COLUMNS)), message="ok")
        >>> GateResult.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        ev = pd.DataFrame(list(data.get("evidence") or []), columns=list(EVIDENCE_COLUMNS))
        for c in ("n", "estimate", "lower", "upper"):
            ev[c] = pd.to_numeric(ev[c], errors="coerce")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            status=data["status"],
            estimate=_unclean(data.get("estimate")),
            lower=_unclean(data.get("lower")),
            upper=_unclean(data.get("upper")),
            threshold=_unclean(data.get("threshold")),
            decision_rule=str(data.get("decision_rule", "")),
            evidence=ev,
            message=str(data.get("message", "")),
            allowed=bool(data.get("allowed", False)),
            name=data.get("name"),
            confidence=float(data.get("confidence", 0.95)),
            decide_on=str(data.get("decide_on", "bound")),
            measure=str(data.get("measure", "")),
            notes=tuple(data.get("notes") or ()),
            next_steps=tuple(data.get("next_steps") or ()),
            holm=dict(data["holm"]) if data.get("holm") else None,
            labels_needed=dict(data["labels_needed"]) if data.get("labels_needed") else None,
        )

    def __str__(self) -> str:
        return f"{self.id}: {self.status.upper()} — {self.message}"

    def explain(self) -> str:
        """A readable multi-line account: verdict, rule, evidence per source, what to do next."""
        pct = _pct(self.confidence)
        lines = [
            f"{self.id}{f' ({self.name})' if self.name else ''}: "
            f"{self.status.replace('_', ' ').upper()}"
            f"{' (allowed)' if self.allowed else ''}",
            f"  {self.message}",
            f"  measure:       {self.measure} = {_f(self.estimate)} "
            f"({pct} interval {_f(self.lower)} to {_f(self.upper)})",
            f"  threshold:     {_f(self.threshold)}",
            f"  decision rule: {self.decision_rule}",
        ]
        if self.holm is not None:
            lines.append(
                f"  holm:          step {self.holm['step']} of a family of "
                f"{self.holm['family_size']}, {_pct(self.holm['confidence'])} interval"
            )
        if len(self.evidence):
            lines.append(f"  evidence ({pct} intervals):")
            for source, part in self.evidence.groupby("source", sort=False):
                lines.append(f"    {source}")
                table = part.drop(columns="source").set_index("group")
                text = table.to_string(float_format=lambda v: f"{v:.4g}", na_rep="n/a")
                lines.extend("      " + t for t in text.splitlines())
        if self.notes:
            lines.append("  notes:")
            lines.extend(f"    - {n}" for n in self.notes)
        if self.next_steps:
            lines.append("  next:")
            lines.extend(f"    - {n}" for n in self.next_steps)
        return "\n".join(lines)


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return (
            None
            if math.isnan(float(v))
            else float(v)
            if math.isfinite(float(v))
            else ("inf" if v > 0 else "-inf")
        )
    if isinstance(v, np.integer):
        return int(v)
    return v


def _unclean(v: Any) -> float:
    if v is None:
        return float("nan")
    return float(v)  # float("inf") / float("-inf") parse the strings _clean wrote


def _f(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _pct(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
