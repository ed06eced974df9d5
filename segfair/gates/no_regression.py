"""The ``no_regression`` gate: the gap grows little over the last release's report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from segfair.audit import Audit, Estimate
from segfair.errors import ConfigError
from segfair.gates.base import Baseline, MetricGate, Only, _at_least, _by_text, _make_id, _why
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence, _fu, _look_at, metric_unit
from segfair.gates.result import Status

NO_BASELINE = (
    "no baseline report was given: pass --segfair-baseline PATH to pytest (or --baseline PATH "
    "to segfair audit) with the JSON report of the last release"
)
NOT_IN_BASELINE = (
    "the baseline report has no {gap_id}: it was made with another configuration; regenerate "
    "it from the last release with this gate's metric, attribute, model and ruler"
)


class NoRegressionGate(MetricGate):
    """The gap may not grow beyond the last release's by more than ``max_increase``.

    The last release is a previous JSON report (``--segfair-baseline``); the check is on the
    current run's interval of ``gap - baseline gap`` (the baseline value is taken as known).

    Examples
    --------
    >>> NoRegressionGate(metric="dice", by="age_group", model="candidate", ruler="expert").id
    'no_regression[dice,age_group,candidate,expert]'
    """

    kind: Literal["no_regression"] = "no_regression"
    trusted_field: ClassVar[str | None] = "ruler"
    ruler: str | None = None
    max_increase: float = 0.0

    @model_validator(mode="after")
    def _limits(self) -> NoRegressionGate:
        _at_least(self.max_increase, "max_increase", 0, _why(self.metric))
        return self

    @property
    def id(self) -> str:
        return _make_id("no_regression", self.metric, _by_text(self.by), self.model, self.ruler)

    @property
    def gap_id(self) -> str:
        """The id of the gap this gate compares with the baseline's."""
        return _make_id("gap", self.metric, _by_text(self.by), self.model, self.ruler)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        by_name = _by_text(self.by)
        ruler = self.ruler or audit.scores.trusted_ruler
        r = audit.gap(
            self.metric,
            by=_by_arg(self.by),
            model=self.model,
            ruler=ruler,
            groups=groups,
            confidence=conf,
        )
        subject = (
            f"the growth of the {self.metric} gap across {by_name} for {self.model} on {ruler}"
        )
        before = (
            baseline_gap(baseline, self.gap_id, structure=self.structure)
            if baseline is not None
            else None
        )
        label = f"increase of the {self.metric} gap across {by_name} over the baseline"
        unit = metric_unit(self.metric)
        if before is None:
            why = NO_BASELINE if baseline is None else NOT_IN_BASELINE.format(gap_id=self.gap_id)
            value = Estimate(np.nan, np.nan, np.nan, conf)
            forced: tuple[Status, str] | None = ("inconclusive", why)
            context = f"for {self.model} on {ruler} labels"
        else:
            g = r.gap
            value = Estimate(g.estimate - before, g.lower - before, g.upper - before, g.confidence)
            forced = None
            context = (
                f"for {self.model} on {ruler} labels (baseline gap {_fu(before, unit)}, "
                f"now {g}{' ' + unit if unit else ''})"
            )
        return Outcome(
            checks=[Check(label, value, self.max_increase, "max", unit=unit)],
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{self.model} @ {ruler}"),
            context=context,
            subject=subject,
            next_steps=[
                "compare this report's group estimates with the baseline report's",
                *_look_at(r.min_group, by_name, self.metric),
            ],
            notes=list(r.notes),
            forced=forced,
            forced_reason="no_baseline" if forced is not None else "",
            forced_why=forced[1] if forced is not None else "",
        )


def baseline_gap(
    baseline: Mapping[str, Any], gap_id: str, *, structure: str | None = None
) -> float | None:
    """The estimate of a gap (by its id, e.g. ``gap[dice,age_group,m,expert]``) in a report.

    Looks in the report's ``gaps`` table first, then in its gate results; with ``structure``,
    at that structure's entries (a report of several structures names each entry's).
    """
    if not isinstance(baseline, Mapping):
        raise ConfigError(
            "the baseline is not a segfair JSON report (a JSON object) but a "
            f"{type(baseline).__name__}",
            key="baseline",
        )
    for entry in _entries(baseline, "gaps"):
        if entry.get("id") == gap_id and entry.get("structure") == structure:
            gap = entry.get("gap")
            return _baseline_number(
                gap.get("estimate") if isinstance(gap, Mapping) else gap, gap_id
            )
    gate_id = gap_id if structure is None else f"{gap_id}[{structure}]"
    for entry in _entries(baseline, "gates"):
        if entry.get("id") == gate_id:
            return _baseline_number(entry.get("estimate"), gap_id)
    return None


def _entries(baseline: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    found = baseline.get(key) or []
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def _baseline_number(value: Any, gap_id: str) -> float | None:
    # a baseline is a file from another run (an artifact download): check it, never trust it
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or isinstance(value, bool):
        raise ConfigError(
            f"the baseline report's estimate of {gap_id} is {value!r}, not a number; regenerate "
            "the baseline from the last release",
            key="baseline",
        )
    return number
