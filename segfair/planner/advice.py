"""Verdicts with advice: a gate's result with the label plan of an undecided or partial gate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from segfair.gates import Baseline, Gate, GateResult, OnInconclusive
from segfair.gates import evaluate_gate as _decide
from segfair.gates import evaluate_gates as _decide_all
from segfair.planner.plan import plan

if TYPE_CHECKING:
    from segfair.audit import Audit

__all__ = ["evaluate_gate", "evaluate_gates", "with_label_plan"]


def with_label_plan(audit: Audit, gate: Gate, result: GateResult, confidence: float) -> GateResult:
    """Attach the label plan (:func:`segfair.planner.plan`) of a gate that is undecided or
    measured on a partial trusted ruler; an inconclusive verdict also says, as its
    first next step, how many more trusted labels per group would let it decide. The plan
    never changes the verdict."""
    undecided = result.status == "inconclusive"
    if getattr(gate, "by", None) is None or not (undecided or gate.statistical):
        return result
    try:
        if not undecided and audit.labelled_mask().all():
            return result  # every case has its trusted label: nothing to plan
        p = plan(audit, gate, confidence=confidence)
    except Exception:  # a plan is advice: its failure must never break a verdict
        return result
    result = replace(result, labels_needed=p.to_dict())
    if not undecided or not p.additional:
        return result
    return replace(result, next_steps=(p.sentence(), *result.next_steps))


def evaluate_gate(
    audit: Audit,
    gate: Gate,
    *,
    confidence: float | None = None,
    baseline: Baseline = None,
    on_inconclusive: OnInconclusive = "fail",
) -> GateResult:
    """Decide one gate (:func:`segfair.gates.evaluate_gate`) and attach its label plan
    (:func:`with_label_plan`) at the level the verdict was computed at.

    Examples
    --------
    >>> from segfair.audit import Audit, example_scores
    >>> from segfair.gates import MinGroupMetricGate
    >>> audit = Audit(example_scores(), n_boot=200)
    >>> r = evaluate_gate(audit, MinGroupMetricGate(metric="dice", by="age", model="m", min=0.6,
    ...                                             min_group_size=10))
    >>> r.status, r.ok
    ('passed', True)
    """
    result = _decide(
        audit, gate, confidence=confidence, baseline=baseline, on_inconclusive=on_inconclusive
    )
    return with_label_plan(audit, gate, result, result.confidence)


def evaluate_gates(
    audit: Audit,
    gates: Sequence[Gate],
    *,
    holm: bool = False,
    baseline: Baseline = None,
    on_inconclusive: OnInconclusive = "fail",
    errors: Literal["raise", "record"] = "raise",
) -> list[GateResult]:
    """Decide several gates (:func:`segfair.gates.evaluate_gates`, optionally with Holm's
    procedure) and attach each one's label plan at the level its verdict was computed at (with
    Holm, the Holm level)."""
    results = _decide_all(
        audit, gates, holm=holm, baseline=baseline, on_inconclusive=on_inconclusive, errors=errors
    )
    return [
        r if r.status == "error" else with_label_plan(audit, g, r, r.confidence)
        for g, r in zip(gates, results, strict=True)
    ]
