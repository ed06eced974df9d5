"""The ``gap`` gate: the gap across groups is small."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit
from segfair.gates.base import (
    GAP_NEEDS_MAX,
    RATIO_NEEDS_MIN,
    Baseline,
    EstimatedGate,
    Only,
    _by_text,
    _fraction,
    _make_id,
    _metric_limit,
)
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence, _fu, _look_at, metric_unit


class GapGate(EstimatedGate):
    """The gap across groups is small: ``max`` for ``gap``/``to_overall``, ``min`` for ``ratio``.

    Examples
    --------
    >>> GapGate(metric="dice", by="age_group", model="candidate", ruler="expert", max=0.05).id
    'gap[dice,age_group,candidate,expert]'
    """

    kind: Literal["gap"] = "gap"
    trusted_field: ClassVar[str | None] = "ruler"
    ruler: str | None = None
    statistic: Literal["gap", "ratio", "to_overall"] = "gap"
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> GapGate:
        if self.statistic == "ratio":
            if self.max is not None or self.min is None:
                raise ValueError(RATIO_NEEDS_MIN)
            _fraction(self.min, "min")
        else:
            if self.min is not None or self.max is None:
                raise ValueError(GAP_NEEDS_MAX.format(statistic=self.statistic))
            _metric_limit(self.max, "max", self.metric)
        return self

    @property
    def id(self) -> str:
        stat = None if self.statistic == "gap" else self.statistic
        return _make_id("gap", self.metric, _by_text(self.by), self.model, self.ruler, stat)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        trusted = audit.scores.trusted_ruler
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        ruler = self.ruler or trusted
        r = audit.gap(
            self.metric, by=by, model=self.model, ruler=ruler, groups=groups, confidence=conf
        )
        value = {"gap": r.gap, "ratio": r.ratio, "to_overall": r.to_overall}[self.statistic]
        what = {
            "gap": "gap",
            "ratio": "ratio of the lowest to the highest group",
            "to_overall": "largest distance of a group from overall",
        }[self.statistic]
        limit = self.min if self.statistic == "ratio" else self.max
        assert limit is not None  # the validator requires the one that applies
        side: Literal["max", "min"] = "min" if self.statistic == "ratio" else "max"
        unit = "" if self.statistic == "ratio" else metric_unit(self.metric)
        finding = ""
        if r.min_group is not None:
            low = _fu(float(r.by_group["estimate"][r.min_group]), metric_unit(self.metric))
            finding = f"the {r.min_group!r} group scores lowest ({low})"
        label = f"{self.metric} {what} across {by_name}"
        return Outcome(
            checks=[Check(label, value, limit, side, unit=unit)],
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{self.model} @ {ruler}"),
            context=f"for {self.model} on {ruler} labels",
            subject=f"the {self.metric} {what} across {by_name} for {self.model} on {ruler} labels",
            next_steps=_look_at(r.min_group, by_name, self.metric),
            finding=finding,
            notes=list(r.notes),
        )
