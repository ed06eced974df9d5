"""The ``min_group_metric`` gate: every group's level is good enough."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit
from segfair.gates.base import (
    ONE_OF,
    Baseline,
    EstimatedGate,
    Only,
    _by_text,
    _check_direction,
    _level_limit,
    _make_id,
)
from segfair.gates.outcome import (
    Outcome,
    _by_arg,
    _evidence,
    _group_checks,
    _look_at,
    metric_unit,
)
from segfair.stats import LOWER_IS_BETTER


class MinGroupMetricGate(EstimatedGate):
    """Every group's estimate is at least ``min`` (or, for a distance, at most ``max``).

    Examples
    --------
    >>> MinGroupMetricGate(metric="dice", by="age_group", model="m", min=0.7).id
    'min_group_metric[dice,age_group,m]'
    """

    kind: Literal["min_group_metric"] = "min_group_metric"
    needed_groups: ClassVar[int] = 1
    trusted_field: ClassVar[str | None] = "ruler"
    ruler: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> MinGroupMetricGate:
        if (self.min is None) == (self.max is None):
            raise ValueError(ONE_OF.format(options="exactly one of min or max", kind=self.kind))
        _check_direction(self.metric, self.min, self.max)
        _level_limit(self.min, "min", self.metric)
        _level_limit(self.max, "max", self.metric)
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, self.metric, _by_text(self.by), self.model, self.ruler)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        trusted = audit.scores.trusted_ruler
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        ruler = self.ruler or trusted
        ge = audit.by_group(self.metric, by=by, model=self.model, ruler=ruler, confidence=conf)
        frame = ge.by_group if groups is None else ge.by_group.loc[groups]
        worst = None
        if frame["estimate"].notna().any():
            worst = str(
                frame["estimate"].idxmax()
                if self.metric in LOWER_IS_BETTER
                else frame["estimate"].idxmin()
            )
        return Outcome(
            checks=_group_checks(frame, self.metric, self.min, self.max, metric_unit(self.metric)),
            sizes=ge.by_group["n"],
            evidence=_evidence(ge.by_group, f"{self.model} @ {ruler}"),
            context=f"for {self.model} on {ruler} labels",
            subject=f"the {self.metric} of every {by_name} group for {self.model} on {ruler} "
            "labels",
            next_steps=_look_at(worst, by_name, self.metric),
            notes=list(ge.notes),
        )
