"""The ``detection_gap`` gate: small lesions are found alike across groups."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from segfair.audit import Audit
from segfair.gates.base import BaseGate, Baseline, Only, _by_text, _fraction, _make_id
from segfair.gates.outcome import Check, Outcome, _by_arg, _evidence


class DetectionGapGate(BaseGate):
    """The gap across groups in the share of small reference lesions found is at most ``max``.

    A group's share is Σ ``small_lesions_detected`` / Σ ``small_lesions`` over its cases
    (:meth:`segfair.audit.Audit.detection_gap`); "small" is ``small_volume`` of
    ``[tool.segfair.lesions]``. Needs both counts in ``metrics``.

    Examples
    --------
    >>> DetectionGapGate(by="age_group", model="candidate", ruler="expert", max=0.1).id
    'detection_gap[age_group,candidate,expert]'
    """

    kind: Literal["detection_gap"] = "detection_gap"
    trusted_field: ClassVar[str | None] = "ruler"
    #: The score-table metrics this gate reads (checked against the configured ones).
    needs_metrics: ClassVar[tuple[str, ...]] = ("small_lesions", "small_lesions_detected")
    by: str | tuple[str, ...]
    model: str
    ruler: str | None = None
    max: float

    @model_validator(mode="after")
    def _limits(self) -> DetectionGapGate:
        _fraction(self.max, "max", " (a gap between shares of lesions found)")
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, _by_text(self.by), self.model, self.ruler)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        by_name = _by_text(self.by)
        ruler = self.ruler or audit.scores.trusted_ruler
        r = audit.detection_gap(
            by=_by_arg(self.by), model=self.model, ruler=ruler, groups=groups, confidence=conf
        )
        small = f" (≤ {r.small_volume:g} mm³)" if r.small_volume is not None else ""
        label = f"gap in the share of small lesions{small} found across {by_name}"
        finding = ""
        steps: list[str] = []
        if r.min_group is not None:
            found = float(r.by_group["detected"].to_dict()[r.min_group])
            small_n = float(r.by_group["small_lesions"].to_dict()[r.min_group])
            finding = (
                f"the {r.min_group!r} group's small lesions are found least "
                f"({found:.0f} of {small_n:.0f})"
            )
            steps = [
                f"look at the missed small lesions of the {r.min_group!r} group "
                f"(audit.detection_gap(by={by_name!r}, model={self.model!r}).by_group) and "
                "whether the ruler draws them alike in every group "
                f"(audit.label_audit(by={by_name!r}))"
            ]
        return Outcome(
            checks=[Check(label, r.gap, self.max, "max")],
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{self.model} @ {ruler} small-lesion detection"),
            context=f"for {self.model} on {ruler} labels",
            subject=f"the small-lesion detection gap across {by_name} for {self.model} on "
            f"{ruler} labels",
            next_steps=steps,
            finding=finding,
            notes=list(r.notes),
        )
