"""The ``ruler_shrinkage`` and ``ruler_inflation`` gates: how an automated ruler distorts a gap."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from segfair.audit import Audit
from segfair.gates.base import (
    Baseline,
    EstimatedGate,
    Only,
    _at_least,
    _by_text,
    _fraction,
    _make_id,
)
from segfair.gates.outcome import (
    Check,
    Outcome,
    _by_arg,
    _fu,
    _neg,
    _paired_evidence,
    _ratio_undefined,
    metric_unit,
)


class _RulerGate(EstimatedGate):
    """Fields and id shared by the two gates on how an automated ruler distorts a gap."""

    automated: str
    trusted: str | None = None
    max: float
    negligible: float | None = Field(default=None, ge=0)
    max_difference: float | None = Field(
        default=None,
        ge=0,
        description="when the share is undefined (its denominator gap not shown above "
        "negligible), decide on the difference of gaps, in metric units, against this limit",
    )

    trusted_field: ClassVar[str | None] = "trusted"

    @property
    def id(self) -> str:
        kind = str(getattr(self, "kind", ""))
        return _make_id(
            kind, self.metric, _by_text(self.by), self.model, self.automated, self.trusted
        )

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        d = audit.ruler_distortion(
            self.metric,
            by=by,
            model=self.model,
            automated=self.automated,
            trusted=self.trusted,
            negligible=self.negligible,
            groups=groups,
            confidence=conf,
        )
        shrink = isinstance(self, RulerShrinkageGate)
        ev = _paired_evidence(
            d.by_group, {src: f"{self.model} @ {src}" for src in (d.trusted, d.automated)}
        )
        label = f"share of the {self.metric} gap across {by_name} that {d.automated} labels " + (
            "hide" if shrink else "add"
        )
        out = Outcome(
            checks=[Check(label, d.shrinkage if shrink else d.inflation, self.max, "max")],
            sizes=d.by_group.loc[d.trusted]["n"],
            evidence=ev,
            context=f"for {self.model} (gap {d.gap_trusted} on {d.trusted}, "
            f"{d.gap_automated} on {d.automated} labels)",
            subject=f"the {label} for {self.model}",
            next_steps=[
                f"compare the group estimates on {d.trusted} and {d.automated} labels, "
                f"then read the label audit (audit.label_audit(by={by_name!r}, "
                f"automated={d.automated!r}))"
            ],
            notes=list(d.notes),
        )
        if not d.defined:
            diff = d.hidden_gap if shrink else _neg(d.hidden_gap)
            label = (
                f"{self.metric} gap across {by_name} "
                f"{'hidden' if shrink else 'added'} by {d.automated} labels "
                f"({self.metric} units)"
            )
            if self.max_difference is not None:
                out.context = f"for {self.model}"
            unit = metric_unit(self.metric)
            mm = f" {unit}" if unit else ""
            why = (
                f"the {d.trusted} gap ({d.gap_trusted}{mm}) is not shown to exceed negligible = "
                f"{_fu(d.negligible, unit)}, so the share is undefined"
            )
            _ratio_undefined(
                out,
                share=out.checks[0],
                diff=diff,
                diff_label=label,
                max_difference=self.max_difference,
                decide_on=self.decide_on,
                conf=conf,
                why=why,
                unit=unit,
            )
        return out


class RulerShrinkageGate(_RulerGate):
    """The automated ruler hides at most ``max`` (a fraction) of the trusted gap.

    Examples
    --------
    >>> RulerShrinkageGate(metric="dice", by="age_group", model="m", automated="auto",
    ...                    max=0.25).id
    'ruler_shrinkage[dice,age_group,m,auto]'
    """

    kind: Literal["ruler_shrinkage"] = "ruler_shrinkage"

    @model_validator(mode="after")
    def _limits(self) -> RulerShrinkageGate:
        _fraction(self.max, "max", " (the fraction of the trusted gap hidden)")
        return self


class RulerInflationGate(_RulerGate):
    """The automated ruler adds at most ``max`` (a fraction, ≥ 0) to the trusted gap.

    Examples
    --------
    >>> RulerInflationGate(metric="dice", by="age_group", model="m", automated="auto",
    ...                    max=0.5).id
    'ruler_inflation[dice,age_group,m,auto]'
    """

    kind: Literal["ruler_inflation"] = "ruler_inflation"

    @model_validator(mode="after")
    def _limits(self) -> RulerInflationGate:
        _at_least(self.max, "max", 0, " (a fraction: 0.5 allows the gap to look 50% larger)")
        return self
