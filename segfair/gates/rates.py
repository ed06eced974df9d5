"""The ``dpd`` and ``dir`` gates: success rates (``metric > threshold``) across groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit
from segfair.gates.base import BaseGate, _by_text, _fraction, _level_limit, _make_id
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence, _look_at


class DpdGate(BaseGate):
    """The difference of success rates (``metric > threshold``) across groups is at most ``max``.

    Examples
    --------
    >>> DpdGate(metric="dice", by="age_group", model="m", max=0.1).id
    'dpd[dice>0.8,age_group,m]'
    """

    kind: Literal["dpd"] = "dpd"
    trusted_field: ClassVar[str | None] = "ruler"
    metric: str
    by: str | tuple[str, ...]
    model: str
    ruler: str | None = None
    threshold: float = 0.8
    max: float

    @model_validator(mode="after")
    def _limits(self) -> DpdGate:
        _level_limit(self.threshold, "threshold", self.metric)
        _fraction(self.max, "max", " (a difference of rates)")
        return self

    @property
    def id(self) -> str:
        return _make_id(
            self.kind,
            f"{self.metric}>{self.threshold:g}",
            _by_text(self.by),
            self.model,
            self.ruler,
        )

    def check(
        self,
        audit: Audit,
        conf: float,
        groups: list[str] | None,
        baseline: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """The checks of this gate on ``audit`` at level ``conf`` (on ``groups`` only, if given)."""
        return _rates(audit, self, conf, groups)


class DirGate(BaseGate):
    """The ratio of success rates (lowest / highest) is at least ``min`` (four-fifths: 0.8).

    Examples
    --------
    >>> DirGate(metric="dice", by="age_group", model="m").id
    'dir[dice>0.8,age_group,m]'
    """

    kind: Literal["dir"] = "dir"
    trusted_field: ClassVar[str | None] = "ruler"
    metric: str
    by: str | tuple[str, ...]
    model: str
    ruler: str | None = None
    threshold: float = 0.8
    min: float = 0.8

    @model_validator(mode="after")
    def _limits(self) -> DirGate:
        _level_limit(self.threshold, "threshold", self.metric)
        _fraction(self.min, "min", " (a ratio of rates)")
        return self

    @property
    def id(self) -> str:
        return _make_id(
            self.kind,
            f"{self.metric}>{self.threshold:g}",
            _by_text(self.by),
            self.model,
            self.ruler,
        )

    def check(
        self,
        audit: Audit,
        conf: float,
        groups: list[str] | None,
        baseline: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """The checks of this gate on ``audit`` at level ``conf`` (on ``groups`` only, if given)."""
        return _rates(audit, self, conf, groups)


def _rates(audit: Audit, gate: DpdGate | DirGate, conf: float, groups: list[str] | None) -> Outcome:
    """The one check of a ``dpd`` or ``dir`` gate: both read the same success rates."""
    trusted = audit.scores.trusted_ruler
    by = _by_arg(gate.by)
    by_name = _by_text(gate.by)
    ruler = gate.ruler or trusted
    rr = audit.dpd_dir(
        gate.metric,
        by=by,
        model=gate.model,
        ruler=ruler,
        threshold=gate.threshold,
        groups=groups,
        confidence=conf,
    )
    rate = f"rate of {gate.metric} > {gate.threshold:g}"
    if isinstance(gate, DpdGate):
        check = Check(f"difference in the {rate} across {by_name} (DPD)", rr.dpd, gate.max, "max")
    else:
        check = Check(
            f"ratio of the lowest to the highest {rate} across {by_name} (DIR)",
            rr.dir,
            gate.min,
            "min",
        )
    lowest: str | None = None
    if rr.by_group["estimate"].notna().any():
        lowest = str(rr.by_group["estimate"].idxmin())
    return Outcome(
        checks=[check],
        sizes=rr.by_group["n"],
        evidence=_evidence(
            rr.by_group, f"{gate.model} @ {ruler}: P({gate.metric} > {gate.threshold:g})"
        ),
        context=f"for {gate.model} on {ruler} labels",
        subject=f"the {rate} across {by_name} for {gate.model} on {ruler} labels",
        next_steps=([f"the {lowest!r} group has the lowest rate"] if lowest else [])
        + _look_at(lowest, by_name, gate.metric),
        notes=list(rr.notes),
    )
