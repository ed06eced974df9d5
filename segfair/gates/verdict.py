"""Turning a gate's checks into a verdict: status, decision rule, message and next steps."""

from __future__ import annotations

import math

import numpy as np

from segfair.audit import Estimate
from segfair.gates.kinds import Gate
from segfair.gates.outcome import Check, Outcome
from segfair.gates.result import GateResult, Status, _f, _pct


def _verdict(
    gate: Gate, out: Outcome, conf: float, decide_on: str, small: list[str], min_n: int
) -> GateResult:
    status: Status
    sizes = ", ".join(f"{g!r} (n = {int(out.sizes[g])})" for g in small)
    small_text = (
        f"group{'s' if len(small) > 1 else ''} {sizes} "
        f"{'are' if len(small) > 1 else 'is'} below min_group_size = {min_n}"
    )
    fix_small = (
        f"add cases (or trusted labels) to {', '.join(repr(g) for g in small)}, or set "
        "allow_insufficient = true"
    )
    if not out.checks:
        why = small_text if small else "no group has values to decide on"
        message = (
            f"Cannot decide {out.subject}: {why}; "
            f"{fix_small if small else 'check that the scores hold this metric'}."
        )
        nothing = Check(
            "(nothing to decide)", Estimate(np.nan, np.nan, np.nan, conf), np.nan, "max"
        )
        return _result(
            gate,
            out,
            "insufficient_evidence",
            nothing,
            "no decidable group",
            message,
            conf,
            decide_on,
            small,
            fix_small,
        )
    if out.forced is not None:
        status, rule = out.forced
        check = out.checks[0]
        if status == "passed" and small:
            status = "insufficient_evidence"
    else:
        margins = [c.margin(decide_on) for c in out.checks]
        undecidable = [c for c, m in zip(out.checks, margins, strict=True) if math.isnan(m)]
        failing = [(m, c) for c, m in zip(out.checks, margins, strict=True) if m < 0]
        if failing:
            status, check = "failed", min(failing, key=lambda t: t[0])[1]
        elif undecidable:
            status, check = "insufficient_evidence", undecidable[0]
        else:
            status = "insufficient_evidence" if small else "passed"
            check = min(zip(margins, out.checks, strict=True), key=lambda t: t[0])[1]
        rule = _rule_text(out.checks, decide_on, conf)
    v = check.value
    if out.deterministic:
        said = f"the {check.label} {out.context} is {_f(v.estimate)}"
    else:
        said = (
            f"the {check.label} {out.context} is {_f(v.estimate)} ({_pct(conf)} interval "
            f"{_f(v.lower)} to {_f(v.upper)})"
        )
    if status == "passed":
        if check.group is not None and len(out.checks) > 1:
            message = f"Every group is within the limit {_f(check.limit)}; the closest: {said}."
        else:
            message = f"{_cap(said)}, within the limit {_f(check.limit)}."
    elif status == "failed":
        op = "above" if check.side == "max" else "below"
        which = (
            "it is"
            if out.deterministic
            else "its estimate is"
            if decide_on == "estimate"
            else "its upper bound is"
            if check.side == "max"
            else "its lower bound is"
        )
        hint = f": {out.next_steps[0]}" if out.next_steps else ""
        message = f"{_cap(said)}; {which} {op} the limit {_f(check.limit)}{hint}."
    elif small:
        message = (
            f"Cannot decide {out.subject}: {small_text} (on the other groups, {said}); {fix_small}."
        )
    else:
        message = (
            f"Cannot decide {out.subject}: the interval ({_f(v.lower)} to {_f(v.upper)}) "
            f"is missing or reaches past the limit {_f(check.limit)} on both counts; add "
            "cases or trusted labels."
        )
    return _result(gate, out, status, check, rule, message, conf, decide_on, small, fix_small)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _rule_text(checks: list[Check], decide_on: str, conf: float) -> str:
    if len(checks) == 1:
        return checks[0].rule(decide_on, conf)
    per_group = [c for c in checks if c.group is not None]
    rest = [c for c in checks if c.group is None]
    parts = []
    if per_group:
        g0 = per_group[0]
        generic = g0.label.split(" of group ")[0].split(" in group ")[0]
        op = "≤" if g0.side == "max" else "≥"
        if decide_on == "estimate":
            parts.append(f"every group's {generic} (estimate) {op} {_f(g0.limit)}")
        else:
            end = "upper" if g0.side == "max" else "lower"
            parts.append(
                f"every group's {end} {_pct(conf)} bound of the {generic} {op} {_f(g0.limit)}"
            )
    parts += [c.rule(decide_on, conf) for c in rest]
    return " and ".join(parts)


def _result(
    gate: Gate,
    out: Outcome,
    status: Status,
    check: Check,
    rule: str,
    message: str,
    conf: float,
    decide_on: str,
    small: list[str],
    fix_small: str,
) -> GateResult:
    steps = list(out.next_steps) if status != "passed" else []
    if status == "insufficient_evidence" and small:
        steps.insert(0, fix_small)
    return GateResult(
        id=gate.id,
        kind=gate.kind,
        name=gate.name,
        status=status,
        estimate=float(check.value.estimate),
        lower=float(check.value.lower),
        upper=float(check.value.upper),
        threshold=float(check.limit),
        decision_rule=rule,
        evidence=out.evidence,
        message=message,
        allowed=status == "insufficient_evidence" and gate.allow_insufficient,
        confidence=conf,
        decide_on=decide_on,
        measure=check.label,
        notes=tuple(out.notes),
        next_steps=tuple(steps),
    )
