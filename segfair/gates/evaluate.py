"""Deciding gates on an audit: :func:`evaluate_gate`, and :func:`evaluate_gates` with Holm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from segfair.audit import Audit
from segfair.gates.base import EstimatedGate
from segfair.gates.kinds import Gate
from segfair.gates.outcome import Check
from segfair.gates.result import GateResult, OnInconclusive, check_on_inconclusive
from segfair.gates.verdict import _verdict


def evaluate_gate(
    audit: Audit,
    gate: Gate,
    *,
    confidence: float | None = None,
    baseline: Mapping[str, Any] | None = None,
    on_inconclusive: OnInconclusive = "fail",
) -> GateResult:
    """Decide one gate on an audit.

    Parameters
    ----------
    audit
        The audit of the scores.
    gate
        A gate model (see :func:`parse_gate`).
    confidence
        Interval level; default: the gate's own, else the audit's.
    baseline
        A previous JSON report (the release to compare with), read by ``no_regression`` gates.
    on_inconclusive
        The run's release policy for an inconclusive verdict (``"fail"``, ``"warn"``,
        ``"pass"``); the gate's own ``on_inconclusive`` wins.

    Returns
    -------
    GateResult

    Examples
    --------
    >>> from segfair.audit import example_scores
    >>> from segfair.gates import MinGroupMetricGate
    >>> audit = Audit(example_scores(), n_boot=200)
    >>> r = evaluate_gate(audit, MinGroupMetricGate(metric="dice", by="age", model="m", min=0.6,
    ...                                             min_group_size=10))
    >>> r.status, r.ok
    ('passed', True)
    """
    audit = _audit_of(audit, gate)
    conf = (
        confidence
        if confidence is not None
        else (gate.confidence if gate.confidence is not None else audit.confidence)
    )
    min_n = gate.min_group_size if gate.min_group_size is not None else audit.min_group_size
    full = gate.check(audit, conf, None, baseline)
    decide_on = "estimate" if full.deterministic else gate.decide_on
    small = [str(g) for g, n in full.sizes.items() if n < min_n]
    outcome = full
    decided: list[str] | None = None  # None: every group
    if small and not full.deterministic:
        keep = [str(g) for g, n in full.sizes.items() if n >= min_n]
        if len(keep) >= gate.needed_groups:
            decided = keep
            # decide on the groups that are large enough; a failure there is a failure
            part = gate.check(audit, conf, keep, baseline)
            outcome = replace(
                part,
                evidence=full.evidence,
                sizes=full.sizes,
                notes=full.notes + [n for n in part.notes if n not in full.notes],
            )
        else:
            outcome = replace(full, checks=[], forced=None)
    result = _verdict(
        gate, outcome, conf, decide_on, small, min_n, check_on_inconclusive(on_inconclusive)
    )
    return _with_estimator(result, gate, audit, decided)


def gate_checks(audit: Audit, gate: Gate, confidence: float) -> list[Check]:
    """The checks (estimate and interval at ``confidence`` against a limit) a gate decides on,
    on every group: what the label planner calibrates its normal approximation to."""
    return list(gate.check(_audit_of(audit, gate), confidence, None).checks)


def decision_audit(audit: Audit, gate: Gate) -> Audit:
    """The audit ``gate`` is decided on: its structure's, with the gate's estimator when it
    names one (what the label planner plans on).

    Example
    -------
    >>> from segfair.audit import example_scores
    >>> from segfair.gates import GapGate
    >>> a = Audit(example_scores(), n_boot=200)
    >>> decision_audit(a, GapGate(metric="dice", by="age", model="m", max=0.1,
    ...                           estimator="ppi")).estimator
    'ppi'
    """
    return _audit_of(audit, gate)


def _audit_of(audit: Audit, gate: Gate) -> Audit:
    """The audit a gate is decided on: its structure's (every estimand is per structure), with
    the gate's estimator when it names one."""
    on = audit if gate.structure is None else audit.for_structure(gate.structure)
    return on.with_estimator(getattr(gate, "estimator", None))


def _with_estimator(
    result: GateResult, gate: Gate, audit: Audit, decided: list[str] | None
) -> GateResult:
    """The result naming the estimator it was decided with, and, where that was
    prediction-powered on a partial trusted ruler, what the estimates rest on and gain (per
    model: :meth:`~segfair.audit.Audit.prediction_powered`, its gaps over the ``decided``
    groups)."""
    if not isinstance(gate, EstimatedGate):
        return result
    block = None
    field = type(gate).trusted_field
    ruler = getattr(gate, field, None) if field else None
    trusted = audit.scores.trusted_ruler
    if (
        audit.estimator == "ppi"
        and (ruler is None or ruler == trusted)
        and not bool(audit.labelled_mask().all())
    ):
        baseline = getattr(gate, "baseline", None)
        models = [gate.model, *([baseline] if isinstance(baseline, str) else [])]
        block = tuple(
            audit.prediction_powered(
                gate.metric, by=gate.by, model=m, groups=decided, confidence=result.confidence
            ).to_dict()
            for m in models
        )
    return replace(result, estimator=audit.estimator, prediction_powered=block)


def evaluate_gates(
    audit: Audit,
    gates: Sequence[Gate],
    *,
    holm: bool = False,
    baseline: Mapping[str, Any] | None = None,
    on_inconclusive: OnInconclusive = "fail",
    errors: Literal["raise", "record"] = "raise",
) -> list[GateResult]:
    """Decide several gates, optionally with Holm's step-down procedure across them.

    With ``holm=True`` the family is every gate whose verdict rests on an interval bound
    (``decide_on = "bound"``, not ``coverage``/``min_group_size``, and not inconclusive for lack
    of data or a precondition at its own level). With ``errors="record"`` a gate that raises is
    an ``error`` result (which always blocks) instead of stopping the others. Holm's procedure
    controls the chance that *any* harmful gate passes at ``1 - confidence``: with ``r`` gates
    still undecided, each is evaluated with its interval at level ``1 - (1 - confidence) / r``;
    those that pass are accepted and leave the family; this repeats until no remaining gate
    passes, and those are reported (failed or inconclusive) at the last, strictest level.
    Each result states its step, the family size and the level its interval was computed at.

    Examples
    --------
    >>> from segfair.audit import example_scores
    >>> from segfair.gates import parse_gates
    >>> audit = Audit(example_scores(), n_boot=200, min_group_size=10)
    >>> gates = parse_gates([
    ...     {"kind": "min_group_metric", "metric": "dice", "by": "age", "model": "m", "min": 0.6},
    ...     {"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.2}])
    >>> [(r.status, r.holm["step"]) for r in evaluate_gates(audit, gates, holm=True)]
    [('passed', 1), ('passed', 1)]
    """

    def decide(gate: Gate, level: float | None = None) -> GateResult:
        try:
            return evaluate_gate(
                audit, gate, confidence=level, baseline=baseline, on_inconclusive=on_inconclusive
            )
        except Exception as exc:
            if errors == "raise":
                raise
            return GateResult.error(
                id=gate.id, kind=gate.kind, name=gate.name, message=f"{type(exc).__name__}: {exc}"
            )

    results = [decide(g) for g in gates]
    if not holm:
        return results
    family = [
        i
        for i, (g, r) in enumerate(zip(gates, results, strict=True))
        if g.statistical
        and g.decide_on == "bound"
        and r.status in ("passed", "failed", "inconclusive")
        and r.reason in ("limit_cleared", "evidence_of_harm", "interval_straddles_limit")
    ]
    m = len(family)
    remaining = list(family)
    step = 0
    while remaining:
        step += 1
        r_left = len(remaining)
        trial = {}
        for i in remaining:
            own = gates[i].confidence
            base = own if own is not None else audit.confidence
            level = 1 - (1 - base) / r_left
            trial[i] = (level, decide(gates[i], level))
        accepted = [i for i in remaining if trial[i][1].status == "passed"]
        finals = accepted if accepted else list(remaining)
        for i in finals:
            level, res = trial[i]
            results[i] = replace(
                res,
                holm={"family_size": m, "step": step, "confidence": level},
                decision_rule=f"{res.decision_rule} (Holm step {step} of {m})",
            )
        if not accepted:
            break
        remaining = [i for i in remaining if i not in accepted]
    return results
