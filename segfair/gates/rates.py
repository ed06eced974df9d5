"""The ``dpd`` and ``dir`` gates: success rates (``metric > threshold``) across groups."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit, RateResult
from segfair.gates.base import (
    Baseline,
    MetricGate,
    Only,
    _by_text,
    _fraction,
    _level_limit,
    _make_id,
)
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence, _look_at, metric_unit


class _RateGate(MetricGate):
    """Fields, id and check shared by the two gates on success rates (``metric > threshold``)."""

    trusted_field: ClassVar[str | None] = "ruler"
    ruler: str | None = None
    threshold: float = 0.8

    @property
    def id(self) -> str:
        return _make_id(
            str(getattr(self, "kind", "")),
            f"{self.metric}>{self.threshold:g}",
            _by_text(self.by),
            self.model,
            self.ruler,
        )

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        trusted = audit.scores.trusted_ruler
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        ruler = self.ruler or trusted
        rr = audit.dpd_dir(
            self.metric,
            by=by,
            model=self.model,
            ruler=ruler,
            threshold=self.threshold,
            groups=groups,
            confidence=conf,
        )
        mm = " mm" if metric_unit(self.metric) else ""
        rate = f"rate of {self.metric} > {self.threshold:g}{mm}"
        check = self._rate_check(rr, rate, by_name)
        lowest: str | None = None
        if rr.by_group["estimate"].notna().any():
            lowest = str(rr.by_group["estimate"].idxmin())
        return Outcome(
            checks=[check],
            sizes=rr.by_group["n"],
            evidence=_evidence(
                rr.by_group, f"{self.model} @ {ruler}: P({self.metric} > {self.threshold:g})"
            ),
            context=f"for {self.model} on {ruler} labels",
            subject=f"the {rate} across {by_name} for {self.model} on {ruler} labels",
            next_steps=_look_at(lowest, by_name, self.metric),
            finding=f"the {lowest!r} group has the lowest rate" if lowest else "",
            notes=list(rr.notes),
        )

    def _rate_check(self, rr: RateResult, rate: str, by_name: str) -> Check:
        """The one comparison: of the difference (DPD) or of the ratio (DIR) of the rates."""
        raise NotImplementedError


class DpdGate(_RateGate):
    """The difference of success rates (``metric > threshold``) across groups is at most ``max``.

    Examples
    --------
    >>> DpdGate(metric="dice", by="age_group", model="m", max=0.1).id
    'dpd[dice>0.8,age_group,m]'
    """

    kind: Literal["dpd"] = "dpd"
    max: float

    @model_validator(mode="after")
    def _limits(self) -> DpdGate:
        _level_limit(self.threshold, "threshold", self.metric)
        _fraction(self.max, "max", " (a difference of rates)")
        return self

    def _rate_check(self, rr: RateResult, rate: str, by_name: str) -> Check:
        return Check(f"difference in the {rate} across {by_name} (DPD)", rr.dpd, self.max, "max")


class DirGate(_RateGate):
    """The ratio of success rates (lowest / highest) is at least ``min`` (four-fifths: 0.8).

    Examples
    --------
    >>> DirGate(metric="dice", by="age_group", model="m").id
    'dir[dice>0.8,age_group,m]'
    """

    kind: Literal["dir"] = "dir"
    min: float = 0.8

    @model_validator(mode="after")
    def _limits(self) -> DirGate:
        _level_limit(self.threshold, "threshold", self.metric)
        _fraction(self.min, "min", " (a ratio of rates)")
        return self

    def _rate_check(self, rr: RateResult, rate: str, by_name: str) -> Check:
        return Check(
            f"ratio of the lowest to the highest {rate} across {by_name} (DIR)",
            rr.dir,
            self.min,
            "min",
        )
