"""The plan of one gate (:class:`GatePlan`): labels to add per group, and its text forms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    from segfair.gates import GateResult

#: Columns of :attr:`GatePlan.groups`.
PLAN_COLUMNS = ("labelled", "unlabelled", "estimate", "sd", "needed", "additional")


@dataclass(frozen=True, eq=False)
class GatePlan:
    """How many more trusted labels per group a gate needs (:func:`plan`).

    Attributes
    ----------
    gate_id, kind
        The gate.
    method
        ``"normal"`` (closed form, Neyman allocation) or ``"min_group_size"`` (this kind of gate
        has no closed form: the plan only brings every group to ``min_group_size``).
    by
        The attribute whose groups are planned.
    groups
        Per group: ``labelled`` (trusted labels now), ``unlabelled`` (cases that could still
        be labelled), ``estimate`` and ``sd`` (per-label standard deviation, design effect
        included; prediction-powered, that of the tuned rectifier ``T − λA``), ``needed``
        (labelled cases wanted) and ``additional`` (= needed − labelled).
    estimate, threshold
        The decisive quantity now and its limit.
    target_se
        The standard error the plan aims for.
    feasible
        False when even labelling every remaining case would not make the gate conclusive.
    simulated_power
        Share of bootstrap simulations at the planned sizes where the decision was conclusive
        (:func:`simulate_plan`); NaN when not run.
    estimator
        What the gate is decided with, so what the plan is for: ``"labelled"`` (its labelled
        cases) or ``"ppi"`` (prediction-powered: the proxy ruler on every case, corrected on
        the labelled ones; ``sd`` is then the rectifier's and ``floor`` is set).
    floor
        Prediction-powered: per group, the variance ``c_g`` of its estimate that no number of
        labels removes (calibrated like ``sd``); empty for a labelled-only plan.
    prediction_powered
        With ``plan(..., compare=True)``, for a gate planned labelled-only on a partial ruler:
        the plan of the same gate prediction-powered (None: not asked, or it has no such twin).
    """

    gate_id: str
    kind: str
    method: str
    by: tuple[str, ...]
    model: str | None
    groups: pd.DataFrame
    estimate: float
    threshold: float
    target_se: float
    confidence: float
    power: float
    feasible: bool
    notes: tuple[str, ...] = ()
    simulated_power: float = float("nan")
    contrasts: tuple[tuple[str, ...], ...] = field(default=(), repr=False)
    #: the named structure the gate is decided on (None: the cohort's only one)
    structure: str | None = None
    estimator: Literal["labelled", "ppi"] = "labelled"
    floor: tuple[float, ...] = field(default=(), repr=False)
    prediction_powered: GatePlan | None = field(default=None, repr=False)

    @property
    def total_additional(self) -> int:
        """Trusted labels to add over all groups."""
        return int(self.groups["additional"].sum())

    @property
    def additional(self) -> dict[str, int]:
        """Group → labels to add (groups needing none left out)."""
        a = self.groups["additional"]
        return {str(g): int(v) for g, v in a.items() if v > 0}

    def verdict_sentence(self, result: GateResult | Mapping[str, Any]) -> str:
        """One line that agrees with the gate's verdict (``result``: a :class:`GateResult` or its
        dict): passed → no more labels are needed; failed → more labels will not make it pass;
        inconclusive → how many labels would likely decide it; error → fix the gate first.

        Examples
        --------
        >>> p = GatePlan(gate_id="g", kind="gap", method="normal", by=("age",), model="m",
        ...              groups=pd.DataFrame({"additional": [0, 0]}), estimate=0.1,
        ...              threshold=0.05, target_se=0.01, confidence=0.95, power=0.8,
        ...              feasible=False)
        >>> p.verdict_sentence({"status": "failed", "reason": "evidence_of_harm"}).split(";")[0]
        'FAILED (evidence of harm): more trusted labels will not make it pass'
        """
        data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        status, reason = str(data.get("status")), str(data.get("reason") or "")
        if status == "error":
            return "ERROR: the gate could not be evaluated; fix it (see the audit), then plan"
        if status == "passed":
            return (
                "PASSED with the trusted labels there now: no more labels are needed to decide it"
            )
        if status == "failed":
            why = "evidence of harm" if reason == "evidence_of_harm" else "beyond the limit"
            return (
                f"FAILED ({why}): more trusted labels will not make it pass; look at the group "
                "it harms (the audit's next step) and fix the model or its training data"
            )
        cases = data.get("cases_needed")
        more_cases = f"; about {int(cases)} cases in all would likely decide it" if cases else ""
        if self.additional:
            return f"INCONCLUSIVE: {self.sentence()}"
        if reason == "precondition_not_met":
            return (
                "INCONCLUSIVE: its precondition does not hold on these cases (see the audit's "
                f"message); labelling them will not settle it: add cases{more_cases}"
            )
        return (
            "INCONCLUSIVE: every case that could help is labelled or the plan finds the labels "
            f"there now near enough, yet the interval does not decide it: add cases{more_cases}"
        )

    def sentence(self) -> str:
        """One line for a gate's next steps (whatever its verdict: see
        :meth:`verdict_sentence`)."""
        if not self.additional:
            if not self.feasible:
                return (
                    "no more labels can be planned: with the cases available this gate may "
                    "stay inconclusive"
                )
            return "the current trusted labels should suffice"
        parts = ", ".join(f"{v} in {g!r}" for g, v in self.additional.items())
        goal = (
            f"to make this gate conclusive with power {self.power:.0%}"
            if self.feasible
            else "— even then the gate may stay open (see the plan's notes)"
        )
        ppi = "; planned for its prediction-powered estimate" if self.estimator == "ppi" else ""
        return (
            f"label about {self.total_additional} more cases with the trusted ruler ({parts}) "
            f"{goal}{ppi}; 'segfair plan' lists which{self._twin_clause()}"
        )

    def _twin_clause(self) -> str:
        """What the same gate would need prediction-powered ('' when not planned)."""
        twin = self.prediction_powered
        if twin is None:
            return ""
        if not twin.feasible:
            return "; prediction-powered (estimator 'ppi') even every label may not decide it"
        return f"; prediction-powered (estimator 'ppi') it would need about {twin.total_additional}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""

        def num(x: float) -> float | None:
            return None if x is None or not math.isfinite(float(x)) else float(x)

        return {
            "gate": self.gate_id,
            "kind": self.kind,
            "method": self.method,
            "by": list(self.by),
            "estimate": num(self.estimate),
            "threshold": num(self.threshold),
            "target_se": num(self.target_se),
            "power": self.power,
            "feasible": self.feasible,
            "total_additional": self.total_additional,
            "simulated_power": num(self.simulated_power),
            "groups": [
                {
                    "group": str(g),
                    **{k: (num(v) if k in ("estimate", "sd") else int(v)) for k, v in row.items()},
                }
                for g, row in self.groups.iterrows()
            ],
            "notes": list(self.notes),
            # named only in a cohort of several structures: one-structure plans read as before
            **({"structure": self.structure} if self.structure is not None else {}),
            # named only when not labelled-only: labelled-only plans read as before
            **({"estimator": self.estimator} if self.estimator != "labelled" else {}),
            **(
                {"prediction_powered": self.prediction_powered.to_dict()}
                if self.prediction_powered is not None
                else {}
            ),
        }
