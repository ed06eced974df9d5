"""The ``label_agreement`` gate: the automated ruler agrees with the trusted one in every group."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit
from segfair.gates.base import (
    ONE_OF,
    BaseGate,
    Baseline,
    Only,
    _by_text,
    _check_direction,
    _level_limit,
    _make_id,
    _metric_limit,
)
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence, _group_checks, metric_unit
from segfair.stats import LOWER_IS_BETTER


class LabelAgreementGate(BaseGate):
    """Every group's agreement of the automated ruler with the trusted one is good enough.

    ``min`` (overlap metrics) or ``max`` (distances) per group, and/or ``max_gap`` across groups.

    Examples
    --------
    >>> LabelAgreementGate(by="age_group", automated="auto", min=0.8).id
    'label_agreement[dice,age_group,auto]'
    """

    kind: Literal["label_agreement"] = "label_agreement"
    needed_groups: ClassVar[int] = 1
    by: str | tuple[str, ...]
    automated: str
    metric: str = "dice"
    min: float | None = None
    max: float | None = None
    max_gap: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> LabelAgreementGate:
        if self.min is None and self.max is None and self.max_gap is None:
            raise ValueError(
                ONE_OF.format(options="min (or max for a distance) and/or max_gap", kind=self.kind)
            )
        _check_direction(self.metric, self.min, self.max)
        _level_limit(self.min, "min", self.metric)
        _level_limit(self.max, "max", self.metric)
        _metric_limit(self.max_gap, "max_gap", self.metric)
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, self.metric, _by_text(self.by), self.automated)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        trusted = audit.scores.trusted_ruler
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        la = audit.label_audit(
            by=by, automated=self.automated, metrics=(self.metric,), groups=groups, confidence=conf
        )
        if (self.automated, self.metric) not in la.results:
            # the audit's own error lists the agreement metrics it has
            audit.agreement_series(self.metric, ruler=self.automated)
        r = la.results[(self.automated, self.metric)]
        unit = metric_unit(self.metric)
        checks = _group_checks(r.by_group, f"{self.metric} agreement", self.min, self.max, unit)
        if self.max_gap is not None:
            checks.append(
                Check(
                    f"gap in {self.metric} agreement across {by_name}",
                    r.gap,
                    self.max_gap,
                    "max",
                    unit=unit,
                )
            )
        worst = r.max_group if self.metric in LOWER_IS_BETTER else r.min_group
        return Outcome(
            checks=checks,
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{self.automated} vs {trusted} ({self.metric})"),
            context=f"of {self.automated} labels with {trusted} labels",
            subject=f"the {self.metric} agreement of {self.automated} labels with {trusted} "
            f"labels across {by_name}",
            next_steps=[
                f"review the {self.automated} labels of the {worst!r} group against "
                f"{trusted} labels; audit.morphology_shift(by={by_name!r}) shows "
                "whether its lesions differ"
            ]
            if worst is not None
            else [],
            finding=f"the {worst!r} group agrees least" if worst is not None else "",
            notes=list(r.notes),
        )
