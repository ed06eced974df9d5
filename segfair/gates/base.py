"""The fields, validators and id helpers every gate kind shares; the :class:`BaseGate` contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from segfair.audit import Audit
from segfair.gates.outcome import Outcome
from segfair.gates.result import OnInconclusive
from segfair.stats import (
    COUNT_METRICS,
    DISTANCE_METRICS,
    FRACTION_METRICS,
    LOWER_IS_BETTER,
    Estimator,
)

DecideOn = Literal["bound", "estimate"]
#: The groups a check is restricted to (None: all).
Only: TypeAlias = list[str] | None
#: A previous JSON report, read by ``no_regression`` gates.
Baseline: TypeAlias = Mapping[str, Any] | None

FRACTION_RANGE = "{field} must be a fraction in [0, 1]{why}; got {value}"
AT_LEAST = "{field} must be ≥ {low}{why}; got {value}"
CONFIDENCE_RANGE = "confidence must be in (0.5, 1); got {value}"
GAP_NEEDS_MAX = "statistic {statistic!r} is limited from above: give max (≥ 0), not min"
RATIO_NEEDS_MIN = (
    "statistic 'ratio' is limited from below: give min (a fraction in [0, 1]), not max"
)
DISTANCE_NEEDS_MAX = (
    "{metric!r} is a distance (lower is better): give max (≥ 0) for every group, not min"
)
COUNT_NEEDS_MAX = (
    "{metric!r} is a count of false lesions per case (lower is better): give max (≥ 0) for "
    "every group, not min"
)
SCORE_NEEDS_MIN = (
    "{metric!r} is an overlap score (higher is better): give min for every group, not max "
    "(max is for distances, {distances}, and for signed metrics such as volume_error)"
)
ONE_OF = "give {options} for a {kind} gate"
EMPTY_BY = "by must name an attribute or a non-empty list of attributes"


def _why(metric: str) -> str:
    return f" for {metric!r}" if metric else ""


def _fraction(value: float | None, field_: str, why: str = "") -> None:
    if value is not None and not 0 <= value <= 1:
        raise ValueError(FRACTION_RANGE.format(field=field_, why=why, value=value))


def _at_least(value: float | None, field_: str, low: float, why: str = "") -> None:
    if value is not None and not value >= low:
        raise ValueError(AT_LEAST.format(field=field_, low=f"{low:g}", why=why, value=value))


def _metric_limit(value: float | None, field_: str, metric: str) -> None:
    """A limit on a gap in metric units: a fraction for overlap scores, ≥ 0 otherwise."""
    if metric in FRACTION_METRICS:
        _fraction(value, field_, _why(metric))
    else:
        _at_least(value, field_, 0, _why(metric))


def _level_limit(value: float | None, field_: str, metric: str) -> None:
    """A limit on a group's level: a fraction for overlap scores, ≥ 0 for distances, any
    number for signed metrics such as volume_error."""
    if metric in FRACTION_METRICS:
        _fraction(value, field_, _why(metric))
    elif metric in DISTANCE_METRICS or metric in COUNT_METRICS:
        _at_least(value, field_, 0, _why(metric))


class BaseGate(BaseModel):
    """Fields every gate has, and what a gate kind provides: its ``id`` and its :meth:`check`.

    A new gate kind is a subclass with a ``kind`` literal, its fields and validators, an ``id``
    and a :meth:`check` that measures it on an audit; it is registered in
    :mod:`segfair.gates.kinds`.
    """

    #: How many large-enough groups the gate needs to say anything.
    needed_groups: ClassVar[int] = 2
    #: The field that defaults to the trusted ruler (written in by ``parse_gate``), if any.
    trusted_field: ClassVar[str | None] = None
    #: A count over the whole cohort, not an estimate from a sample (decided on the observed
    #: values; no interval, so no part in Holm's procedure).
    census: ClassVar[bool] = False

    # a NaN or infinite threshold would make a gate that can never fail: refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str | None = Field(default=None, description="readable name shown with the id")
    decide_on: DecideOn = Field(default="bound", description="'bound' (default) or 'estimate'")
    min_group_size: int | None = Field(
        default=None, ge=1, description="smallest group decided on (default: the audit's, 20)"
    )
    allow_insufficient: bool = Field(
        default=False,
        description="legacy: an inconclusive verdict for lack of data (groups below "
        "min_group_size, nothing decidable, no baseline) does not fail the build",
    )
    on_inconclusive: OnInconclusive | None = Field(
        default=None,
        description="'fail' (block), 'warn' or 'pass' on an inconclusive verdict "
        "(default: the run's, itself 'fail' by default)",
    )
    confidence: float | None = Field(default=None, description="interval level (default: audit)")
    structure: str | None = Field(
        default=None,
        description="the named structure the gate is decided on (may be omitted with one; "
        "without it, a gate of a cohort of several structures applies to each)",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Every kind's id names its structure the same way, `gap[dice,sex,m,expert][enhancing]`,
        # so a kind's own `id` is wrapped here rather than each kind remembering to add it.
        super().__pydantic_init_subclass__(**kwargs)
        own = cls.__dict__.get("id")
        if isinstance(own, property) and own.fget is not None:
            base = own.fget

            def with_structure(self: BaseGate) -> str:
                text = base(self)
                if getattr(self, "estimator", None) == "ppi":
                    # a prediction-powered gate is another gate than its labelled-only twin
                    text = f"{text[:-1]},ppi]"
                return text if self.structure is None else f"{text}[{self.structure}]"

            with_structure.__doc__ = own.__doc__
            cls.id = property(with_structure)  # type: ignore[method-assign,assignment]

    @field_validator("by", mode="before", check_fields=False)
    @classmethod
    def _by_names(cls, value: Any) -> Any:
        return _check_by(value)

    @field_validator("confidence")
    @classmethod
    def _confidence_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.5 < value < 1:
            raise ValueError(CONFIDENCE_RANGE.format(value=value))
        return value

    @property
    def id(self) -> str:
        """A stable, readable identifier, e.g. ``gap[dice,age_group,candidate,expert]``."""
        raise NotImplementedError

    @property
    def statistical(self) -> bool:
        """Whether the verdict rests on an interval (and so takes part in Holm's procedure)."""
        return not self.census

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        """The checks of this gate on ``audit`` at level ``conf`` (on ``groups`` only, if given),
        with the group sizes, evidence and words around them."""
        raise NotImplementedError


#: The old private name of :class:`BaseGate`.
_Gate = BaseGate


class MetricGate(BaseGate):
    """Fields of a gate on one model's metric across the groups of an attribute."""

    metric: str
    by: str | tuple[str, ...]
    model: str


class EstimatedGate(MetricGate):
    """A metric gate whose group means on a partial trusted ruler may be prediction-powered."""

    estimator: Estimator | None = Field(
        default=None,
        description="how statistics of a partial trusted ruler are estimated: 'labelled' (its "
        "labelled cases) or 'ppi' (prediction-powered: the proxy ruler on every case, "
        "corrected on the labelled ones); default: the run's",
    )


def _by_text(by: str | tuple[str, ...]) -> str:
    return by if isinstance(by, str) else "×".join(by)


def _make_id(kind: str, *parts: str | None) -> str:
    return f"{kind}[{','.join(p for p in parts if p)}]"


def _check_by(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            raise ValueError(EMPTY_BY)
        return value
    # a list or tuple of names; anything else (a number, a table, true) is refused, not iterated
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(EMPTY_BY)
    if any(not isinstance(v, str) or not v for v in value):
        raise ValueError(EMPTY_BY)
    return tuple(value) if len(value) > 1 else value[0]


def _check_direction(metric: str, low: float | None, high: float | None) -> None:
    # distances must stay low and overlap scores high; a signed or unknown metric (volume_error)
    # may be limited either way
    if metric in DISTANCE_METRICS and low is not None:
        raise ValueError(DISTANCE_NEEDS_MAX.format(metric=metric))
    if metric in LOWER_IS_BETTER and metric in COUNT_METRICS and low is not None:
        raise ValueError(COUNT_NEEDS_MAX.format(metric=metric))
    if metric in FRACTION_METRICS and high is not None:
        raise ValueError(
            SCORE_NEEDS_MIN.format(metric=metric, distances=", ".join(sorted(DISTANCE_METRICS)))
        )
