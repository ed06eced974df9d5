"""What a gate's check finds: its comparisons (:class:`Check`) and their :class:`Outcome`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
import pandas as pd

from segfair.audit import Estimate
from segfair.gates.result import EVIDENCE_COLUMNS, Status, _fu, _pct
from segfair.stats import DISTANCE_METRICS


def metric_unit(metric: str) -> str:
    """The unit of a quantity in ``metric``'s units: ``"mm"`` for surface distances (HD95,
    ASSD, …), ``""`` for unitless scores (Dice, IoU, NSD, rates, ratios).

    Examples
    --------
    >>> metric_unit("hd95"), metric_unit("dice")
    ('mm', '')
    """
    return "mm" if metric in DISTANCE_METRICS else ""


@dataclass(frozen=True)
class Check:
    """One comparison of a quantity with a limit."""

    label: str  # e.g. "dice gap across age_group", "dice of group 'young'"
    value: Estimate
    limit: float
    side: Literal["max", "min"]
    group: str | None = None
    unit: str = ""  # of the value and the limit: "mm" for distances, "" for unitless scores

    def decisive(self, decide_on: str) -> float:
        """The value compared with the limit: the estimate, the deciding bound (``"bound"``) or
        the far bound (``"far"``: the one that shows harm when it too is beyond the limit)."""
        if decide_on == "estimate":
            return self.value.estimate
        if decide_on == "far":
            return self.value.lower if self.side == "max" else self.value.upper
        return self.value.upper if self.side == "max" else self.value.lower

    def margin(self, decide_on: str) -> float:
        """Positive: within the limit; negative: beyond it; NaN: undecidable."""
        v = self.decisive(decide_on)
        return self.limit - v if self.side == "max" else v - self.limit

    def rule(self, decide_on: str, confidence: float) -> str:
        op = "≤" if self.side == "max" else "≥"
        limit = _fu(self.limit, self.unit)
        if decide_on == "estimate":
            return f"estimate of the {self.label} {op} {limit}"
        end = "upper" if self.side == "max" else "lower"
        return f"{end} {_pct(confidence)} bound of the {self.label} {op} {limit}"


@dataclass
class Outcome:
    """What an evaluator found: the checks, the group sizes and the words around them."""

    checks: list[Check]
    sizes: pd.Series
    evidence: pd.DataFrame
    context: str  # appended to a check's label: "for candidate on expert labels"
    subject: str  # what the gate is about, for "cannot decide ..." sentences
    # what to do next, never a repeat of the message (the message says what was found)
    next_steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # who is harmed, appended to a failed verdict's message (e.g. "the 'young' group scores
    # lowest (0.68)")
    finding: str = ""
    # a verdict that does not come from the checks (a ratio gate whose precondition does not
    # hold, a no_regression gate without a baseline), with its rule, its reason and, for an
    # inconclusive one, why the declared rule could not be applied
    forced: tuple[Status, str] | None = None
    forced_reason: str = ""
    forced_why: str = ""
    deterministic: bool = False


def _evidence(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = frame.reset_index()
    out = out.rename(columns={out.columns[0]: "group"})
    out.insert(0, "source", source)
    for c in EVIDENCE_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    out = out.loc[:, list(EVIDENCE_COLUMNS)]
    out["group"] = out["group"].astype(str)
    return out


def _paired_evidence(by_group: pd.DataFrame, sources: Mapping[str, str]) -> pd.DataFrame:
    """The evidence of a paired comparison: each source's groups (``by_group``'s outer level),
    labelled ``sources[key]``, stacked in the order given."""
    return pd.concat(
        [_evidence(cast(pd.DataFrame, by_group.loc[key]), label) for key, label in sources.items()],
        ignore_index=True,
    )


def _look_at(group: str | None, by: str, metric: str) -> list[str]:
    if group is None:
        return []
    return [
        f"look at the label audit for the {group!r} group "
        f"(audit.label_audit(by={by!r})) and its morphology shift "
        f"(audit.morphology_shift(by={by!r}))",
        f"check whether the gap persists with lesion size held fixed "
        f"(audit.controlled_gap({metric!r}, by={by!r}, ..., stratify='volume_ml'))",
    ]


def _by_arg(by: str | tuple[str, ...]) -> str | list[str]:
    return by if isinstance(by, str) else list(by)


def _neg(e: Estimate) -> Estimate:
    return Estimate(-e.estimate, -e.upper, -e.lower, e.confidence)


def _group_checks(
    frame: pd.DataFrame, what: str, low: float | None, high: float | None, unit: str = ""
) -> list[Check]:
    out = []
    for g, row in frame.iterrows():
        if row["n"] == 0:
            continue
        value = Estimate(float(row["estimate"]), float(row["lower"]), float(row["upper"]), 0.0)
        if low is not None:
            out.append(Check(f"{what} of group {g!r}", value, low, "min", str(g), unit))
        if high is not None:
            out.append(Check(f"{what} of group {g!r}", value, high, "max", str(g), unit))
    return out


def _fallback(
    diff: Estimate,
    limit: float,
    decide_on: str,
    conf: float,
    label: str,
    why: str,
    unit: str = "",
) -> tuple[Status, str, str]:
    """Verdict, rule and reason on a difference of gaps (metric units) against the declared
    ``max_difference`` when the ratio is undefined."""
    if decide_on == "estimate":
        status: Status = "passed" if diff.estimate <= limit else "failed"
        reason = "limit_cleared" if status == "passed" else "beyond_limit"
        return (
            status,
            f"{why}: estimate of the {label} ≤ {_fu(limit, unit)} (max_difference)",
            reason,
        )
    if diff.upper <= limit:
        status, reason = "passed", "limit_cleared"
    elif diff.lower > limit:
        status, reason = "failed", "evidence_of_harm"
    else:
        status, reason = "inconclusive", "interval_straddles_limit"
    return (
        status,
        f"{why}: passed if the upper {_pct(conf)} bound of the {label} ≤ {_fu(limit, unit)} "
        f"(max_difference), failed if its lower bound > {_fu(limit, unit)}",
        reason,
    )


def _ratio_undefined(
    out: Outcome,
    *,
    share: Check,
    diff: Estimate,
    diff_label: str,
    max_difference: float | None,
    decide_on: str,
    conf: float,
    why: str,
    unit: str = "",
) -> None:
    """A ratio gate whose denominator gap is not established: inconclusive under its declared
    rule, or decided on the declared ``max_difference`` (metric units) when one is given."""
    if max_difference is None:
        # the share is undefined: no number stands for it, the declared limit and rule stay
        nan = Estimate(np.nan, np.nan, np.nan, conf)
        out.checks = [Check(share.label, nan, share.limit, share.side, share.group)]
        out.forced = (
            "inconclusive",
            f"{share.rule(decide_on, conf)} (not applicable: {why})",
        )
        out.forced_reason = "precondition_not_met"
        out.forced_why = (
            f"{why}; the declared rule ({share.rule(decide_on, conf)}) cannot be applied. "
            "Add cases to establish that gap, or declare max_difference (a limit on the "
            "difference of gaps in metric units) to decide on when the share is undefined"
        )
        return
    out.checks = [Check(diff_label, diff, max_difference, "max", unit=unit)]
    status, rule, reason = _fallback(diff, max_difference, decide_on, conf, diff_label, why, unit)
    out.forced, out.forced_reason = (status, rule), reason
    out.notes.append(f"{why}: decided on the declared max_difference = {_fu(max_difference, unit)}")
