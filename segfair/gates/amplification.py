"""The ``amplification`` gate: the model's gap exceeds the baseline model's by little."""

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
    _make_id,
)
from segfair.gates.outcome import (
    Check,
    Outcome,
    _by_arg,
    _fu,
    _paired_evidence,
    _ratio_undefined,
    metric_unit,
)


class AmplificationGate(EstimatedGate):
    """The model's gap exceeds the baseline's by at most ``max`` (a fraction ≥ -1).

    Examples
    --------
    >>> AmplificationGate(metric="dice", by="age_group", model="m", baseline="b", max=0.1).id
    'amplification[dice,age_group,m,b]'
    """

    kind: Literal["amplification"] = "amplification"
    trusted_field: ClassVar[str | None] = "ruler"
    baseline: str
    ruler: str | None = None
    max: float
    negligible: float | None = Field(default=None, ge=0)
    max_difference: float | None = Field(
        default=None,
        ge=0,
        description="when the share is undefined (its denominator gap not shown above "
        "negligible), decide on the difference of gaps, in metric units, against this limit",
    )

    @model_validator(mode="after")
    def _limits(self) -> AmplificationGate:
        _at_least(self.max, "max", -1, " (a fraction: 0.1 allows a 10% larger gap)")
        return self

    @property
    def id(self) -> str:
        return _make_id(
            self.kind, self.metric, _by_text(self.by), self.model, self.baseline, self.ruler
        )

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        trusted = audit.scores.trusted_ruler
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        ruler = self.ruler or trusted
        a = audit.amplification(
            self.metric,
            by=by,
            model=self.model,
            baseline=self.baseline,
            ruler=ruler,
            negligible=self.negligible,
            groups=groups,
            confidence=conf,
        )
        ev = _paired_evidence(
            a.by_group, {src: f"{src} @ {ruler}" for src in (self.model, self.baseline)}
        )
        label = f"amplification of the {self.metric} gap across {by_name}"
        unit = metric_unit(self.metric)
        mm = f" {unit}" if unit else ""
        out = Outcome(
            checks=[Check(label, a.amplification, self.max, "max")],
            sizes=a.by_group.loc[self.model]["n"],
            evidence=ev,
            context=f"from {self.baseline} ({a.gap_baseline}{mm}) to {self.model} "
            f"({a.gap_model}{mm}) on {ruler} labels",
            subject=f"the {label} from {self.baseline} to {self.model}",
            next_steps=[
                f"compare the group estimates of {self.model} and {self.baseline}; if "
                f"{self.model} learnt from automated labels, read the label audit "
                f"(audit.label_audit(by={by_name!r}))"
            ],
            notes=list(a.notes),
        )
        if not a.defined:
            label = (
                f"{self.metric} gap across {by_name} added by {self.model} over "
                f"{self.baseline} ({self.metric} units)"
            )
            if self.max_difference is not None:
                out.context = f"on {ruler} labels"
            why = (
                f"the {self.baseline} gap ({a.gap_baseline}{mm}) is not shown to exceed "
                f"negligible = {_fu(a.negligible, unit)}, so the amplification is undefined"
            )
            _ratio_undefined(
                out,
                share=out.checks[0],
                diff=a.added_gap,
                diff_label=label,
                max_difference=self.max_difference,
                decide_on=self.decide_on,
                conf=conf,
                why=why,
                unit=unit,
            )
        return out
