"""The verdict of one gate (:class:`GateResult`) and its JSON and text forms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

Status = Literal["passed", "failed", "inconclusive", "error"]
#: Every status, in the order the reports list them.
STATUSES: tuple[Status, ...] = get_args(Status)
#: What an inconclusive verdict does to the build: ``"fail"`` (block, the default), ``"warn"``
#: (do not block, say so as a warning) or ``"pass"`` (do not block).
OnInconclusive = Literal["fail", "warn", "pass"]
ON_INCONCLUSIVE: tuple[OnInconclusive, ...] = get_args(OnInconclusive)
BAD_ON_INCONCLUSIVE = "on_inconclusive must be one of {valid}; got {value!r}"
#: Why a verdict is what it is (``GateResult.reason``).
Reason = Literal[
    "limit_cleared",
    "evidence_of_harm",
    "beyond_limit",
    "interval_straddles_limit",
    "groups_below_min_size",
    "no_decidable_group",
    "precondition_not_met",
    "no_baseline",
    "error",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
#: The reasons of an inconclusive verdict *for lack of data*: the ones the legacy
#: ``allow_insufficient = true`` lets through.
LACK_OF_DATA: frozenset[str] = frozenset(
    {"groups_below_min_size", "no_decidable_group", "no_baseline"}
)


def check_on_inconclusive(value: str) -> OnInconclusive:
    """``value`` if it is a valid ``on_inconclusive`` policy, else a ``ValueError`` that lists
    the valid ones.

    Examples
    --------
    >>> check_on_inconclusive("warn")
    'warn'
    """
    if value not in ON_INCONCLUSIVE:
        raise ValueError(
            BAD_ON_INCONCLUSIVE.format(valid=", ".join(map(repr, ON_INCONCLUSIVE)), value=value)
        )
    return value


def lets_through(
    status: str, reason: str, *, on_inconclusive: str, allow_insufficient: bool
) -> bool:
    """Whether an inconclusive verdict does not block the build under the release policy
    (``error`` and ``failed`` always block, ``passed`` never does).

    Examples
    --------
    >>> lets_through("inconclusive", "interval_straddles_limit", on_inconclusive="warn",
    ...              allow_insufficient=False)
    True
    >>> lets_through("inconclusive", "interval_straddles_limit", on_inconclusive="fail",
    ...              allow_insufficient=True)
    False
    """
    if status != "inconclusive":
        return False
    return on_inconclusive != "fail" or (allow_insufficient and reason in LACK_OF_DATA)


EVIDENCE_COLUMNS = ("source", "group", "n", "estimate", "lower", "upper")


@dataclass(frozen=True, eq=False)
class GateResult:
    """The verdict of one gate.

    Attributes
    ----------
    id, kind, name
        The gate's identity.
    status
        ``"passed"`` (the deciding bound clears the limit), ``"failed"`` (the whole interval lies
        beyond it: evidence of harm; the estimate, for ``decide_on = "estimate"`` and counts),
        ``"inconclusive"`` (the interval straddles the limit, groups are too small, nothing is
        decidable or a precondition does not hold) or ``"error"`` (the gate could not be
        evaluated).
    reason
        Why, in one machine-readable word (see :data:`REASONS`).
    estimate, lower, upper
        The decisive quantity and its interval at ``confidence`` (for per-group gates, the group
        closest to failing).
    threshold
        The limit it was compared with.
    decision_rule
        The rule in words, e.g. ``"upper 95% bound of the gap ≤ 0.05"``.
    evidence
        ``source, group, n, estimate, lower, upper`` for every ruler/model involved.
    message
        One sentence to act on.
    allowed
        An inconclusive verdict that the release policy lets through (``on_inconclusive`` of
        ``"warn"``/``"pass"``, or ``allow_insufficient`` for lack of data).
    on_inconclusive
        The release policy the verdict was judged under.
    decidable_limit
        The smallest limit (the largest, for a lower limit) this cohort could pass with 80%
        power given its spread; NaN when not estimable.
    cases_needed
        For an inconclusive gate whose interval straddles the limit: about how many cases in
        all (the current count scaled) would likely decide it; None otherwise.
    holm
        With Holm's procedure: ``family_size``, ``step`` and the ``confidence`` used.
    unit
        The unit of the estimate, interval and threshold: ``"mm"`` for surface distances
        (HD95, ASSD, …), ``""`` for unitless quantities (Dice, rates, ratios, shares).
    location
        Where the gate is declared, for annotations on a pull request: ``file`` (relative to
        the configuration's folder, ``/``-separated), ``line`` (1-based) and ``origin``
        (``"configuration"`` for a ``[[gates]]`` entry, ``"test"`` for an assertion); None
        when unknown (the Python API).
    """

    id: str
    kind: str
    status: Status
    estimate: float
    lower: float
    upper: float
    threshold: float
    decision_rule: str
    evidence: pd.DataFrame
    message: str
    allowed: bool = False
    name: str | None = None
    confidence: float = 0.95
    decide_on: str = "bound"
    measure: str = ""
    notes: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    holm: Mapping[str, Any] | None = None
    labels_needed: Mapping[str, Any] | None = None
    reason: str = ""
    on_inconclusive: str = "fail"
    decidable_limit: float = float("nan")
    cases_needed: int | None = None
    unit: str = ""
    location: Mapping[str, Any] | None = None
    #: the named structure it was decided on (None: the cohort's only one)
    structure: str | None = None
    #: how the trusted ruler's statistics were estimated ("labelled" or "ppi"; None: a kind
    #: without the choice)
    estimator: str | None = None
    #: a gate decided prediction-powered on a partial trusted ruler: per model, the
    #: :meth:`~segfair.audit.Audit.prediction_powered` table (``PredictionPoweredResult.to_dict``)
    prediction_powered: tuple[Mapping[str, Any], ...] | None = None

    @property
    def ok(self) -> bool:
        """Passed, or inconclusive and let through by the release policy."""
        return self.status == "passed" or (self.status == "inconclusive" and self.allowed)

    @property
    def blocking(self) -> bool:
        """Whether this verdict blocks the release (``not ok``)."""
        return not self.ok

    @classmethod
    def error(cls, *, id: str, kind: str, message: str, name: str | None = None) -> GateResult:
        """The verdict of a gate that could not be evaluated: it always blocks.

        Examples
        --------
        >>> r = GateResult.error(id="gap[dice_score,age]", kind="gap", message="unknown metric")
        >>> r.status, r.reason, r.ok
        ('error', 'error', False)
        """
        nan = float("nan")
        return cls(
            id=id,
            kind=kind,
            name=name,
            status="error",
            reason="error",
            estimate=nan,
            lower=nan,
            upper=nan,
            threshold=nan,
            decision_rule="(not evaluated)",
            evidence=pd.DataFrame(columns=list(EVIDENCE_COLUMNS)),
            # one line: it heads a terminal summary line and a GitHub annotation
            message=f"Could not evaluate the gate: {' '.join(message.split())}",
            next_steps=("fix the gate or its input, then re-run",),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN → None)."""
        ev = self.evidence.astype(object).where(self.evidence.notna(), None)
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "ok": self.ok,
            "blocking": self.blocking,
            "allowed": self.allowed,
            "on_inconclusive": self.on_inconclusive,
            "estimate": _clean(self.estimate),
            "lower": _clean(self.lower),
            "upper": _clean(self.upper),
            "threshold": _clean(self.threshold),
            "confidence": self.confidence,
            "decide_on": self.decide_on,
            "measure": self.measure,
            "decision_rule": self.decision_rule,
            "message": self.message,
            "notes": list(self.notes),
            "next_steps": list(self.next_steps),
            "holm": dict(self.holm) if self.holm is not None else None,
            "labels_needed": dict(self.labels_needed) if self.labels_needed else None,
            "decidable_limit": _clean(self.decidable_limit),
            "cases_needed": self.cases_needed,
            "unit": self.unit,
            "location": dict(self.location) if self.location is not None else None,
            "evidence": [
                {k: _clean(v) for k, v in row.items()} for row in ev.to_dict(orient="records")
            ],
            # named only in a cohort of several structures: one-structure reports read as before
            **({"structure": self.structure} if self.structure is not None else {}),
            "estimator": self.estimator,
            # only where the gate was decided prediction-powered: other reports read as before
            **(
                {"prediction_powered": [dict(p) for p in self.prediction_powered]}
                if self.prediction_powered is not None
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Rebuild a result from :meth:`to_dict` (e.g. after it crossed a process boundary).

        Examples
        --------
        >>> r = GateResult(id="g", kind="gap", status="passed", estimate=0.01, lower=0.0,
        ...                upper=0.02, threshold=0.05, decision_rule="rule",
        ...                evidence=pd.DataFrame(columns=list(EVIDENCE_COLUMNS)), message="ok",
        ...                reason="limit_cleared")
        >>> GateResult.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        ev = pd.DataFrame(list(data.get("evidence") or []), columns=list(EVIDENCE_COLUMNS))
        for c in ("n", "estimate", "lower", "upper"):
            ev[c] = pd.to_numeric(ev[c], errors="coerce")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            status=_status(data),
            estimate=_unclean(data.get("estimate")),
            lower=_unclean(data.get("lower")),
            upper=_unclean(data.get("upper")),
            threshold=_unclean(data.get("threshold")),
            decision_rule=str(data.get("decision_rule", "")),
            evidence=ev,
            message=str(data.get("message", "")),
            allowed=bool(data.get("allowed", False)),
            name=data.get("name"),
            confidence=float(data.get("confidence", 0.95)),
            decide_on=str(data.get("decide_on", "bound")),
            measure=str(data.get("measure", "")),
            notes=tuple(data.get("notes") or ()),
            next_steps=tuple(data.get("next_steps") or ()),
            holm=dict(data["holm"]) if data.get("holm") else None,
            labels_needed=dict(data["labels_needed"]) if data.get("labels_needed") else None,
            reason=str(data.get("reason") or _legacy_reason(data)),
            on_inconclusive=str(data.get("on_inconclusive") or "fail"),
            decidable_limit=_unclean(data.get("decidable_limit")),
            cases_needed=(
                int(data["cases_needed"]) if data.get("cases_needed") is not None else None
            ),
            unit=str(data.get("unit") or ""),
            location=dict(data["location"]) if data.get("location") else None,
            structure=str(data["structure"]) if data.get("structure") else None,
            estimator=str(data["estimator"]) if data.get("estimator") else None,
            prediction_powered=(
                tuple(dict(p) for p in data["prediction_powered"])
                if data.get("prediction_powered") is not None
                else None
            ),
        )

    def __str__(self) -> str:
        return f"{self.id}: {self.status.upper()} — {self.message}"

    def explain(self) -> str:
        """A readable multi-line account: verdict, rule, evidence per source, what to do next."""
        pct = _pct(self.confidence)
        lines = [
            f"{self.id}{f' ({self.name})' if self.name else ''}: "
            f"{self.status.upper()}{_allowed_text(self)}",
            f"  {self.message}",
            f"  reason:        {self.reason}",
            f"  measure:       {self.measure} = {_fu(self.estimate, self.unit)} "
            f"({pct} interval {_f(self.lower)} to {_fu(self.upper, self.unit)})",
            f"  threshold:     {_fu(self.threshold, self.unit)}",
            f"  decision rule: {self.decision_rule}",
        ]
        if not math.isnan(self.decidable_limit):
            lines.append(
                f"  decidable:     {_fu(self.decidable_limit, self.unit)} (the tightest limit "
                "this cohort "
                "could pass with 80% power, given its spread)"
            )
        if self.cases_needed is not None:
            lines.append(
                f"  to decide:     about {self.cases_needed} cases in all would likely decide it"
            )
        for b in self.prediction_powered or ():
            # what the prediction-powered verdict gained over the labelled cases alone
            est, lo, hi = (_unclean((b.get("labelled_gap") or {}).get(k)) for k in _BOUNDS)
            rows = b.get("groups") or []
            n = sum(int(r.get("n") or 0) for r in rows)
            worth = sum(r["effective_n"] for r in rows if r.get("effective_n") is not None)
            lines.append(
                f"  estimator:     ppi ({b.get('model')}, proxy {b.get('proxy')}): the labelled "
                f"cases alone give a gap of {_fu(est, self.unit)} ({_f(lo)} to "
                f"{_fu(hi, self.unit)}); {n} labelled cases worth about {round(worth)}"
            )
        if self.holm is not None:
            lines.append(
                f"  holm:          step {self.holm['step']} of a family of "
                f"{self.holm['family_size']}, {_pct(self.holm['confidence'])} interval"
            )
        if len(self.evidence):
            lines.append(f"  evidence ({pct} intervals):")
            for source, part in self.evidence.groupby("source", sort=False):
                lines.append(f"    {source}")
                table = part.drop(columns="source").set_index("group")
                text = table.to_string(float_format=lambda v: f"{v:.4g}", na_rep="n/a")
                lines.extend("      " + t for t in text.splitlines())
        if self.notes:
            lines.append("  notes:")
            lines.extend(f"    - {n}" for n in self.notes)
        if self.next_steps:
            lines.append("  next:")
            lines.extend(f"    - {n}" for n in self.next_steps)
        return "\n".join(lines)


def _allowed_text(result: GateResult) -> str:
    if not result.allowed:
        return ""
    if result.on_inconclusive != "fail":
        return f" (not blocking: on_inconclusive = {result.on_inconclusive!r})"
    return " (allowed)"


def _status(data: Mapping[str, Any]) -> Status:
    # a report written before schema 2 said "insufficient_evidence" for inconclusive
    status = str(data["status"])
    return "inconclusive" if status == "insufficient_evidence" else status  # type: ignore[return-value]


def _legacy_reason(data: Mapping[str, Any]) -> str:
    status = str(data.get("status"))
    return {
        "passed": "limit_cleared",
        "failed": "evidence_of_harm",
        "insufficient_evidence": "no_decidable_group",
        "error": "error",
    }.get(status, "")


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return (
            None
            if math.isnan(float(v))
            else float(v)
            if math.isfinite(float(v))
            else ("inf" if v > 0 else "-inf")
        )
    if isinstance(v, np.integer):
        return int(v)
    return v


_BOUNDS = ("estimate", "lower", "upper")


def _unclean(v: Any) -> float:
    if v is None:
        return float("nan")
    return float(v)  # float("inf") / float("-inf") parse the strings _clean wrote


#: Below this (in absolute value) a non-zero number is shown as ``<0.0001``, not ``1.6e-12``:
#: such a number is a bound at zero up to rounding, not a value anyone reads digits of.
_TINY = 1e-4


def _f(x: float) -> str:
    """A number in a message: 4 significant digits, ``<0.0001`` for a tiny non-zero one.

    Examples
    --------
    >>> _f(0.0123456), _f(1.6e-12), _f(-3e-9), _f(float("nan"))
    ('0.01235', '<0.0001', '>-0.0001', 'n/a')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and abs(x) < _TINY:
        return f"<{_TINY:g}" if x > 0 else f">-{_TINY:g}"
    return f"{x:.4g}"


def _fu(x: float, unit: str) -> str:
    """:func:`_f` with its unit, if any (``"3.2 mm"``; a unitless ``"0.05"``)."""
    text = _f(x)
    return f"{text} {unit}" if unit and text != "n/a" else text


def _pct(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
