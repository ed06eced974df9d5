"""Turning a gate's checks into a verdict: status, decision rule, message and next steps."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from segfair.audit import Estimate
from segfair.gates.kinds import Gate
from segfair.gates.outcome import Check, Outcome
from segfair.gates.result import GateResult, Status, _f, _fu, _pct, lets_through


def _verdict(
    gate: Gate,
    out: Outcome,
    conf: float,
    decide_on: str,
    small: list[str],
    min_n: int,
    on_inconclusive: str = "fail",
) -> GateResult:
    status: Status
    reason: str
    sizes = ", ".join(f"{g!r} (n = {int(out.sizes[g])})" for g in small)
    small_text = (
        f"group{'s' if len(small) > 1 else ''} {sizes} "
        f"{'are' if len(small) > 1 else 'is'} below min_group_size = {min_n}"
    )
    fix_small = (
        f"add cases (or trusted labels) to {', '.join(repr(g) for g in small)}, or set "
        "on_inconclusive = 'warn' to let an undecided gate through"
    )
    policy = gate.on_inconclusive or on_inconclusive
    if not out.checks:
        why = small_text if small else "no group has values to decide on"
        message = f"Cannot decide {out.subject}: {why}."
        nothing = Check(
            "(nothing to decide)", Estimate(np.nan, np.nan, np.nan, conf), np.nan, "max"
        )
        return _result(
            gate,
            out,
            "inconclusive",
            "groups_below_min_size" if small else "no_decidable_group",
            nothing,
            "no decidable group",
            message,
            conf,
            decide_on,
            small,
            fix_small,
            policy,
        )
    if out.forced is not None:
        status, rule = out.forced
        reason = out.forced_reason or _reason_of(status)
        check = out.checks[0]
        if status == "passed" and small:
            status, reason = "inconclusive", "groups_below_min_size"
    else:
        margins = [c.margin(decide_on) for c in out.checks]
        undecidable = [c for c, m in zip(out.checks, margins, strict=True) if math.isnan(m)]
        # evidence of harm: the whole interval (the estimate, when deciding on it) is beyond
        harm = [
            (c.margin("estimate" if decide_on == "estimate" else "far"), c)
            for c, m in zip(out.checks, margins, strict=True)
            if m < 0 and c.margin("estimate" if decide_on == "estimate" else "far") < 0
        ]
        straddling = [(m, c) for c, m in zip(out.checks, margins, strict=True) if m < 0]
        if harm:
            status, check = "failed", min(harm, key=_first)[1]
            # a bound-based failure is evidence of harm; an estimate or a count is only beyond
            reason = (
                "beyond_limit"
                if decide_on == "estimate" or out.deterministic
                else "evidence_of_harm"
            )
        elif straddling:
            status, reason = "inconclusive", "interval_straddles_limit"
            check = min(straddling, key=_first)[1]
        elif undecidable:
            status, reason, check = "inconclusive", "no_decidable_group", undecidable[0]
        else:
            status, reason = (
                ("inconclusive", "groups_below_min_size") if small else ("passed", "limit_cleared")
            )
            check = min(zip(margins, out.checks, strict=True), key=_first)[1]
        rule = _rule_text(out.checks, decide_on, conf)
    v = check.value
    unit = check.unit
    limit = _fu(check.limit, unit)
    if out.deterministic:
        said = f"the {check.label} {out.context} is {_fu(v.estimate, unit)}"
    else:
        said = (
            f"the {check.label} {out.context} is {_fu(v.estimate, unit)} ({_pct(conf)} interval "
            f"{_f(v.lower)} to {_fu(v.upper, unit)})"
        )
    if status == "passed":
        if check.group is not None and len(out.checks) > 1:
            message = f"Every group is within the limit {limit}; the closest: {said}."
        else:
            message = f"{_cap(said)}, within the limit {limit}."
    elif status == "failed":
        op = "above" if check.side == "max" else "below"
        which = (
            "it is"
            if out.deterministic
            else "its estimate is"
            if decide_on == "estimate"
            else "its whole interval is"
        )
        # the message says who is harmed; what to do about it is the next step, not repeated
        hint = f": {out.finding}" if out.finding else ""
        shown = "" if out.deterministic or decide_on == "estimate" else " (evidence of harm)"
        message = f"{_cap(said)}; {which} {op} the limit {limit}{shown}{hint}."
    elif out.forced_why:
        message = f"Cannot decide {out.subject}: {out.forced_why}."
    elif reason == "interval_straddles_limit":
        message = (
            f"{_cap(said)}; the interval straddles the limit {limit}: neither harm nor "
            "its absence is shown."
        )
    elif small:
        message = f"Cannot decide {out.subject}: {small_text} (on the other groups, {said})."
    else:
        message = (
            f"Cannot decide {out.subject}: the interval ({_f(v.lower)} to {_fu(v.upper, unit)}) "
            f"is missing or reaches past the limit {limit} on both counts."
        )
    return _result(
        gate, out, status, reason, check, rule, message, conf, decide_on, small, fix_small, policy
    )


def _first(t: tuple[float, Check]) -> float:
    return t[0]


def _reason_of(status: str) -> str:
    return {
        "passed": "limit_cleared",
        "failed": "evidence_of_harm",
        "inconclusive": "interval_straddles_limit",
    }.get(status, "error")


_Z_POWER = NormalDist().inv_cdf(0.8)


def _power(
    check: Check, out: Outcome, conf: float, decide_on: str, reason: str
) -> tuple[float, int | None]:
    """The decidable limit (80% power) and, for a straddling interval, the cases that would
    likely decide it, from the check's own interval half-width."""
    v = check.value
    if out.deterministic or not all(map(math.isfinite, (v.estimate, v.lower, v.upper))):
        return float("nan"), None
    z_a = NormalDist().inv_cdf(1 - (1 - conf) / 2)
    se = (v.upper - v.lower) / (2 * z_a)
    k = _Z_POWER if decide_on == "estimate" else z_a + _Z_POWER
    sign = 1 if check.side == "max" else -1
    decidable = float(v.estimate + sign * k * se)
    if reason == "precondition_not_met":
        return float("nan"), None  # the declared quantity is undefined: no limit is decidable
    if reason != "interval_straddles_limit" or se <= 0:
        return decidable, None
    n_now = int(sum(int(n) for n in out.sizes if n > 0))
    margin = abs(v.estimate - check.limit)
    # the estimate on the limit: no sample size decides it; say nothing rather than infinity
    if n_now == 0 or margin <= 0 or (k * se / margin) ** 2 > _MAX_SCALE:
        return decidable, None
    return decidable, max(math.ceil(n_now * (k * se / margin) ** 2), n_now + 1)


#: Past this many times the current cohort, "cases that would decide it" is not advice.
_MAX_SCALE = 100.0


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
            parts.append(f"every group's {generic} (estimate) {op} {_fu(g0.limit, g0.unit)}")
        else:
            end = "upper" if g0.side == "max" else "lower"
            parts.append(
                f"every group's {end} {_pct(conf)} bound of the {generic} {op} "
                f"{_fu(g0.limit, g0.unit)}"
            )
    parts += [c.rule(decide_on, conf) for c in rest]
    return " and ".join(parts)


def _result(
    gate: Gate,
    out: Outcome,
    status: Status,
    reason: str,
    check: Check,
    rule: str,
    message: str,
    conf: float,
    decide_on: str,
    small: list[str],
    fix_small: str,
    policy: str,
) -> GateResult:
    decidable, cases = _power(check, out, conf, decide_on, reason)
    if cases is not None:
        n_now = int(sum(int(n) for n in out.sizes if n > 0))
        message += f" About {cases} cases in all (now {n_now}) would likely decide it."
    steps = _next_steps(gate, out, status, reason, message, fix_small if small else "")
    if gate.structure is not None:  # several structures: say which one the numbers are of
        message = f"Structure {gate.structure!r}: {message}"
    return GateResult(
        id=gate.id,
        kind=gate.kind,
        name=gate.name,
        status=status,
        reason=reason,
        estimate=float(check.value.estimate),
        lower=float(check.value.lower),
        upper=float(check.value.upper),
        threshold=float(check.limit),
        decision_rule=rule,
        evidence=out.evidence,
        message=message,
        allowed=lets_through(
            status, reason, on_inconclusive=policy, allow_insufficient=gate.allow_insufficient
        ),
        on_inconclusive=policy,
        confidence=conf,
        decide_on=decide_on,
        measure=f"{check.label} ({check.unit})" if check.unit else check.label,
        notes=tuple(out.notes),
        next_steps=tuple(steps),
        decidable_limit=decidable,
        cases_needed=cases,
        unit=check.unit,
        structure=gate.structure,
    )


def _next_steps(
    gate: Gate, out: Outcome, status: Status, reason: str, message: str, fix_small: str
) -> tuple[str, ...]:
    """What to look at next: the gate kind's own steps, led by a step for the verdict's reason,
    never a sentence the message already says (a passed gate has none)."""
    if status == "passed":
        return ()
    lead = {
        "groups_below_min_size": fix_small,
        "no_decidable_group": "check that every group has scores for this metric and trusted "
        "labels (audit.scores)",
        "interval_straddles_limit": "`segfair plan` lists the trusted labels that would "
        "likely decide it",
        "no_baseline": "keep each release's JSON report to compare the next run with",
        "precondition_not_met": "read both gaps, group by group, in this gate's evidence",
    }.get(reason, "")
    steps = [lead] if lead else []
    steps += out.next_steps
    if status == "failed" and not steps:
        steps.append("read its evidence, group by group, in the report's Gates section")
    said = " ".join(message.lower().split())
    unique: list[str] = []
    for s in steps:
        text = " ".join(s.lower().rstrip(".").split())
        if s and text not in said and s not in unique:
            unique.append(s)
    return tuple(unique)
