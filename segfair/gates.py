"""Gates: declared checks with thresholds, decided on the audit's confidence bounds.

A gate comes from a ``[[gates]]`` entry of the configuration (or is built in Python) and is
decided by :func:`evaluate_gate` into a :class:`GateResult`: ``passed``, ``failed`` or
``insufficient_evidence``, with the estimate, its interval, the evidence table and a message a
person can act on.

Decision rules
--------------
* By default a gate decides on the **bound** of the two-sided interval at ``confidence``: an
  upper limit (``max``) passes when the *upper* bound is within it, a lower limit (``min``) when
  the *lower* bound is. "No evidence of harm" is not "evidence of no harm"; a bound-based verdict
  passes a harmful model with probability at most ``(1 - confidence) / 2``.
  ``decide_on = "estimate"`` compares the point estimate instead.
* Groups smaller than ``min_group_size`` are set aside and the gate is decided on the others; if
  it fails there it fails, otherwise it is ``insufficient_evidence`` (fails the build unless
  ``allow_insufficient``). A small group can explain why a gate cannot pass, never rescue one.
* ``coverage`` and ``min_group_size`` gates are counts over the whole cohort, not estimates from a
  sample: they decide on the observed values and ignore ``decide_on``.
* Ratio gates (``ruler_shrinkage``, ``ruler_inflation``, ``amplification``) need a denominator
  gap shown to exceed ``negligible``. Otherwise they decide on the difference of the gaps in
  metric units: passed when its bound is within ``negligible``, failed when its lower bound
  exceeds it, else ``insufficient_evidence``.

Example
-------
>>> from segfair.audit import Audit, example_scores
>>> gate = parse_gate({"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.05,
...                    "min_group_size": 10})
>>> result = evaluate_gate(Audit(example_scores(), n_boot=200), gate)
>>> result.id, result.status
('gap[dice,age,m]', 'failed')
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from segfair.audit import Audit, Estimate
from segfair.errors import ConfigError
from segfair.stats import DISTANCE_METRICS, FRACTION_METRICS

__all__ = [
    "GATE_KINDS",
    "AmplificationGate",
    "CoverageGate",
    "DirGate",
    "DpdGate",
    "GapGate",
    "Gate",
    "GateResult",
    "LabelAgreementGate",
    "MinGroupMetricGate",
    "MinGroupSizeGate",
    "NoRegressionGate",
    "RulerInflationGate",
    "RulerShrinkageGate",
    "evaluate_gate",
    "evaluate_gates",
    "parse_gate",
    "parse_gates",
]

Status = Literal["passed", "failed", "insufficient_evidence"]
DecideOn = Literal["bound", "estimate"]

#: The valid values of ``kind``.
GATE_KINDS = (
    "gap",
    "ruler_shrinkage",
    "ruler_inflation",
    "amplification",
    "label_agreement",
    "min_group_metric",
    "dpd",
    "dir",
    "coverage",
    "min_group_size",
    "no_regression",
)

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
SCORE_NEEDS_MIN = (
    "{metric!r} is an overlap score (higher is better): give min for every group, not max "
    "(max is for distances, {distances}, and for signed metrics such as volume_error)"
)
ONE_OF = "give {options} for a {kind} gate"
NO_BASELINE = (
    "no baseline report was given: pass --segfair-baseline PATH to pytest (or --baseline PATH "
    "to segfair audit) with the JSON report of the last release"
)
NOT_IN_BASELINE = (
    "the baseline report has no {gap_id}: it was made with another configuration; regenerate "
    "it from the last release with this gate's metric, attribute, model and ruler"
)
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
    elif metric in DISTANCE_METRICS:
        _at_least(value, field_, 0, _why(metric))


class _Gate(BaseModel):
    """Fields every gate has."""

    # a NaN or infinite threshold would make a gate that can never fail: refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str | None = Field(default=None, description="readable name shown with the id")
    decide_on: DecideOn = Field(default="bound", description="'bound' (default) or 'estimate'")
    min_group_size: int | None = Field(
        default=None, ge=1, description="smallest group decided on (default: the audit's, 20)"
    )
    allow_insufficient: bool = Field(
        default=False, description="an insufficient_evidence verdict does not fail the build"
    )
    confidence: float | None = Field(default=None, description="interval level (default: audit)")

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
        return True


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


class GapGate(_Gate):
    """The gap across groups is small: ``max`` for ``gap``/``to_overall``, ``min`` for ``ratio``.

    Examples
    --------
    >>> GapGate(metric="dice", by="age_group", model="candidate", ruler="expert", max=0.05).id
    'gap[dice,age_group,candidate,expert]'
    """

    kind: Literal["gap"] = "gap"
    metric: str
    by: str | tuple[str, ...]
    model: str
    ruler: str | None = None
    statistic: Literal["gap", "ratio", "to_overall"] = "gap"
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> GapGate:
        if self.statistic == "ratio":
            if self.max is not None or self.min is None:
                raise ValueError(RATIO_NEEDS_MIN)
            _fraction(self.min, "min")
        else:
            if self.min is not None or self.max is None:
                raise ValueError(GAP_NEEDS_MAX.format(statistic=self.statistic))
            _metric_limit(self.max, "max", self.metric)
        return self

    @property
    def id(self) -> str:
        stat = None if self.statistic == "gap" else self.statistic
        return _make_id("gap", self.metric, _by_text(self.by), self.model, self.ruler, stat)


class _RulerGate(_Gate):
    """Fields and id shared by the two gates on how an automated ruler distorts a gap."""

    metric: str
    by: str | tuple[str, ...]
    model: str
    automated: str
    trusted: str | None = None
    max: float
    negligible: float | None = Field(default=None, ge=0)

    @property
    def id(self) -> str:
        kind = str(getattr(self, "kind", ""))
        return _make_id(
            kind, self.metric, _by_text(self.by), self.model, self.automated, self.trusted
        )


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


class AmplificationGate(_Gate):
    """The model's gap exceeds the baseline's by at most ``max`` (a fraction ≥ -1).

    Examples
    --------
    >>> AmplificationGate(metric="dice", by="age_group", model="m", baseline="b", max=0.1).id
    'amplification[dice,age_group,m,b]'
    """

    kind: Literal["amplification"] = "amplification"
    metric: str
    by: str | tuple[str, ...]
    model: str
    baseline: str
    ruler: str | None = None
    max: float
    negligible: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _limits(self) -> AmplificationGate:
        _at_least(self.max, "max", -1, " (a fraction: 0.1 allows a 10% larger gap)")
        return self

    @property
    def id(self) -> str:
        return _make_id(
            self.kind, self.metric, _by_text(self.by), self.model, self.baseline, self.ruler
        )


class LabelAgreementGate(_Gate):
    """Every group's agreement of the automated ruler with the trusted one is good enough.

    ``min`` (overlap metrics) or ``max`` (distances) per group, and/or ``max_gap`` across groups.

    Examples
    --------
    >>> LabelAgreementGate(by="age_group", automated="auto", min=0.8).id
    'label_agreement[dice,age_group,auto]'
    """

    kind: Literal["label_agreement"] = "label_agreement"
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


class MinGroupMetricGate(_Gate):
    """Every group's estimate is at least ``min`` (or, for a distance, at most ``max``).

    Examples
    --------
    >>> MinGroupMetricGate(metric="dice", by="age_group", model="m", min=0.7).id
    'min_group_metric[dice,age_group,m]'
    """

    kind: Literal["min_group_metric"] = "min_group_metric"
    metric: str
    by: str | tuple[str, ...]
    model: str
    ruler: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _limits(self) -> MinGroupMetricGate:
        if (self.min is None) == (self.max is None):
            raise ValueError(ONE_OF.format(options="exactly one of min or max", kind=self.kind))
        _check_direction(self.metric, self.min, self.max)
        _level_limit(self.min, "min", self.metric)
        _level_limit(self.max, "max", self.metric)
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, self.metric, _by_text(self.by), self.model, self.ruler)


class DpdGate(_Gate):
    """The difference of success rates (``metric > threshold``) across groups is at most ``max``.

    Examples
    --------
    >>> DpdGate(metric="dice", by="age_group", model="m", max=0.1).id
    'dpd[dice>0.8,age_group,m]'
    """

    kind: Literal["dpd"] = "dpd"
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


class DirGate(_Gate):
    """The ratio of success rates (lowest / highest) is at least ``min`` (four-fifths: 0.8).

    Examples
    --------
    >>> DirGate(metric="dice", by="age_group", model="m").id
    'dir[dice>0.8,age_group,m]'
    """

    kind: Literal["dir"] = "dir"
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


class CoverageGate(_Gate):
    """Every group has a usable prediction for at least ``min`` of its cases (all models if none).

    Examples
    --------
    >>> CoverageGate(by="age_group", min=0.95).id
    'coverage[age_group]'
    """

    kind: Literal["coverage"] = "coverage"
    by: str | tuple[str, ...]
    model: str | None = None
    min: float

    @model_validator(mode="after")
    def _limits(self) -> CoverageGate:
        _fraction(self.min, "min", " (the share of cases with a usable prediction)")
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, _by_text(self.by), self.model)

    @property
    def statistical(self) -> bool:
        return False


class MinGroupSizeGate(_Gate):
    """Every group has at least ``min`` cases (with labels of ``ruler`` when given).

    Examples
    --------
    >>> MinGroupSizeGate(by="age_group", ruler="expert", min=30).id
    'min_group_size[age_group,expert]'
    """

    kind: Literal["min_group_size"] = "min_group_size"
    by: str | tuple[str, ...]
    ruler: str | None = None
    min: int = Field(ge=1)

    @property
    def id(self) -> str:
        return _make_id(self.kind, _by_text(self.by), self.ruler)

    @property
    def statistical(self) -> bool:
        return False


class NoRegressionGate(_Gate):
    """The gap may not grow beyond the last release's by more than ``max_increase``.

    The last release is a previous JSON report (``--segfair-baseline``); the check is on the
    current run's interval of ``gap - baseline gap`` (the baseline value is taken as known).

    Examples
    --------
    >>> NoRegressionGate(metric="dice", by="age_group", model="candidate", ruler="expert").id
    'no_regression[dice,age_group,candidate,expert]'
    """

    kind: Literal["no_regression"] = "no_regression"
    metric: str
    by: str | tuple[str, ...]
    model: str
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


def _check_direction(metric: str, low: float | None, high: float | None) -> None:
    # distances must stay low and overlap scores high; a signed or unknown metric (volume_error)
    # may be limited either way
    if metric in DISTANCE_METRICS and low is not None:
        raise ValueError(DISTANCE_NEEDS_MAX.format(metric=metric))
    if metric in FRACTION_METRICS and high is not None:
        raise ValueError(
            SCORE_NEEDS_MIN.format(metric=metric, distances=", ".join(sorted(DISTANCE_METRICS)))
        )


Gate = Annotated[
    GapGate
    | RulerShrinkageGate
    | RulerInflationGate
    | AmplificationGate
    | LabelAgreementGate
    | MinGroupMetricGate
    | DpdGate
    | DirGate
    | CoverageGate
    | MinGroupSizeGate
    | NoRegressionGate,
    Field(discriminator="kind"),
]

_GATE: TypeAdapter[Any] = TypeAdapter(Gate)
_GATES: TypeAdapter[Any] = TypeAdapter(list[Gate])
_KIND_MODELS: dict[str, type[_Gate]] = {
    "gap": GapGate,
    "ruler_shrinkage": RulerShrinkageGate,
    "ruler_inflation": RulerInflationGate,
    "amplification": AmplificationGate,
    "label_agreement": LabelAgreementGate,
    "min_group_metric": MinGroupMetricGate,
    "dpd": DpdGate,
    "dir": DirGate,
    "no_regression": NoRegressionGate,
    "coverage": CoverageGate,
    "min_group_size": MinGroupSizeGate,
}

UNKNOWN_KIND = "unknown gate kind {kind!r}{hint}; valid kinds: {valid}"
MISSING_KIND = "every gate needs a kind; valid kinds: {valid}"
UNKNOWN_GATE_KEY = "unknown key {key!r}{hint} for a {kind} gate; valid keys: {valid}"
MISSING_GATE_KEY = "required key {key!r} is missing for a {kind} gate"


def parse_gate(
    raw: Mapping[str, Any],
    *,
    source: str | Path | None = None,
    trusted_ruler: str | None = None,
) -> Gate:
    """Validate one ``[[gates]]`` entry.

    Parameters
    ----------
    raw
        The entry as read from TOML (or keywords).
    source
        The configuration file, named in error messages.
    trusted_ruler
        When given, a gate that defaults to the trusted ruler gets it written in, so that its
        id names the ruler it is decided on.

    Raises
    ------
    segfair.errors.ConfigError
        Listing every problem with its key and the valid values.

    Examples
    --------
    >>> parse_gate({"kind": "coverage", "by": "age_group", "min": 0.95}).kind
    'coverage'
    >>> parse_gate({"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.05},
    ...            trusted_ruler="expert").id
    'gap[dice,age,m,expert]'
    """
    return parse_gates([raw], source=source, trusted_ruler=trusted_ruler, prefix="gate")[0]


def parse_gates(
    raw: Sequence[Mapping[str, Any]],
    *,
    source: str | Path | None = None,
    trusted_ruler: str | None = None,
    prefix: str = "gates",
) -> list[Gate]:
    """Validate a ``[[gates]]`` array; see :func:`parse_gate`.

    Examples
    --------
    >>> [g.id for g in parse_gates([{"kind": "dir", "metric": "dice", "by": "age",
    ...                              "model": "m"}])]
    ['dir[dice>0.8,age,m]']
    """
    items = [dict(r) for r in raw]
    try:
        gates: list[Gate] = _GATES.validate_python(items)
    except ValidationError as exc:
        problems = _friendly(exc, items, prefix)
        first = exc.errors()[0]["loc"]
        key = f"{prefix}[{first[0]}]" if prefix == "gates" and first else prefix
        raise ConfigError(
            "invalid gate" + ("s" if len(items) > 1 else "") + ":\n  - " + "\n  - ".join(problems),
            key=key,
            source=source,
        ) from None
    if trusted_ruler is not None:
        gates = [_with_trusted(g, trusted_ruler) for g in gates]
    return gates


def _with_trusted(gate: Gate, trusted: str) -> Gate:
    # min_group_size's and coverage's optional fields mean "any", not "the trusted ruler"
    if (
        isinstance(
            gate,
            GapGate | AmplificationGate | MinGroupMetricGate | DpdGate | DirGate | NoRegressionGate,
        )
        and gate.ruler is None
    ):
        return gate.model_copy(update={"ruler": trusted})
    if isinstance(gate, RulerShrinkageGate | RulerInflationGate) and gate.trusted is None:
        return gate.model_copy(update={"trusted": trusted})
    return gate


def _friendly(error: ValidationError, items: list[dict[str, Any]], prefix: str) -> list[str]:
    out = []
    for err in error.errors():
        loc = list(err["loc"])
        index = loc.pop(0) if loc and isinstance(loc[0], int) else 0
        where = f"{prefix}[{index}]" if prefix == "gates" else prefix
        item = items[index] if isinstance(index, int) and index < len(items) else {}
        kind = str(item.get("kind", ""))
        if err["type"] == "union_tag_not_found":
            out.append(f"{where}: " + MISSING_KIND.format(valid=", ".join(GATE_KINDS)))
            continue
        if err["type"] == "union_tag_invalid":
            close = difflib.get_close_matches(kind, GATE_KINDS, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                f"{where}.kind: "
                + UNKNOWN_KIND.format(kind=kind, hint=hint, valid=", ".join(GATE_KINDS))
            )
            continue
        if loc and loc[0] == kind:
            loc.pop(0)
        model = _KIND_MODELS.get(kind)
        valid = sorted(model.model_fields) if model is not None else []
        dotted = ".".join([where, *(str(p) for p in loc)])
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                f"{dotted}: "
                + UNKNOWN_GATE_KEY.format(key=key, hint=hint, kind=kind, valid=", ".join(valid))
            )
        elif err["type"] == "missing":
            out.append(f"{dotted}: " + MISSING_GATE_KEY.format(key=str(loc[-1]), kind=kind))
        else:
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            out.append(f"{dotted}: {msg}" if loc else f"{where} ({kind}): {msg}")
    return out


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------

EVIDENCE_COLUMNS = ("source", "group", "n", "estimate", "lower", "upper")


@dataclass(frozen=True, eq=False)
class GateResult:
    """The verdict of one gate.

    Attributes
    ----------
    id, kind, name
        The gate's identity.
    status
        ``"passed"``, ``"failed"`` or ``"insufficient_evidence"``.
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
        Insufficient evidence that the gate accepts (``allow_insufficient``).
    holm
        With Holm's procedure: ``family_size``, ``step`` and the ``confidence`` used.
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

    @property
    def ok(self) -> bool:
        """Passed, or insufficient evidence that the gate allows."""
        return self.status == "passed" or (self.status == "insufficient_evidence" and self.allowed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN → None)."""
        ev = self.evidence.astype(object).where(self.evidence.notna(), None)
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "ok": self.ok,
            "allowed": self.allowed,
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
            "evidence": [
                {k: _clean(v) for k, v in row.items()} for row in ev.to_dict(orient="records")
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Rebuild a result from :meth:`to_dict` (e.g. after it crossed a process boundary).

        Examples
        --------
        >>> r = GateResult(id="g", kind="gap", status="passed", estimate=0.01, lower=0.0,
        ...                upper=0.02, threshold=0.05, decision_rule="rule",
        ...                evidence=pd.DataFrame(columns=list(EVIDENCE_COLUMNS)), message="ok")
        >>> GateResult.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        ev = pd.DataFrame(list(data.get("evidence") or []), columns=list(EVIDENCE_COLUMNS))
        for c in ("n", "estimate", "lower", "upper"):
            ev[c] = pd.to_numeric(ev[c], errors="coerce")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            status=data["status"],
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
        )

    def __str__(self) -> str:
        return f"{self.id}: {self.status.upper()} — {self.message}"

    def explain(self) -> str:
        """A readable multi-line account: verdict, rule, evidence per source, what to do next."""
        pct = _pct(self.confidence)
        lines = [
            f"{self.id}{f' ({self.name})' if self.name else ''}: "
            f"{self.status.replace('_', ' ').upper()}"
            f"{' (allowed)' if self.allowed else ''}",
            f"  {self.message}",
            f"  measure:       {self.measure} = {_f(self.estimate)} "
            f"({pct} interval {_f(self.lower)} to {_f(self.upper)})",
            f"  threshold:     {_f(self.threshold)}",
            f"  decision rule: {self.decision_rule}",
        ]
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


def _unclean(v: Any) -> float:
    if v is None:
        return float("nan")
    return float(v)  # float("inf") / float("-inf") parse the strings _clean wrote


def _f(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _pct(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One comparison of a quantity with a limit."""

    label: str  # e.g. "dice gap across age_group", "dice of group 'young'"
    value: Estimate
    limit: float
    side: Literal["max", "min"]
    group: str | None = None

    def decisive(self, decide_on: str) -> float:
        if decide_on == "estimate":
            return self.value.estimate
        return self.value.upper if self.side == "max" else self.value.lower

    def margin(self, decide_on: str) -> float:
        """Positive: within the limit; negative: beyond it; NaN: undecidable."""
        v = self.decisive(decide_on)
        return self.limit - v if self.side == "max" else v - self.limit

    def rule(self, decide_on: str, confidence: float) -> str:
        op = "≤" if self.side == "max" else "≥"
        if decide_on == "estimate":
            return f"estimate of the {self.label} {op} {_f(self.limit)}"
        end = "upper" if self.side == "max" else "lower"
        return f"{end} {_pct(confidence)} bound of the {self.label} {op} {_f(self.limit)}"


@dataclass
class _Outcome:
    """What an evaluator found: the checks, the group sizes and the words around them."""

    checks: list[_Check]
    sizes: pd.Series
    evidence: pd.DataFrame
    context: str  # appended to a check's label: "for candidate on expert labels"
    subject: str  # what the gate is about, for "cannot decide ..." sentences
    next_steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # a verdict that does not come from the checks (the fallback of ratio gates), with its rule
    forced: tuple[Status, str] | None = None
    deterministic: bool = False


def _evidence(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = frame.reset_index()
    out = out.rename(columns={out.columns[0]: "group"})
    out.insert(0, "source", source)
    for c in EVIDENCE_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    out = out.loc[:, list(EVIDENCE_COLUMNS)]
    out["group"] = out["group"].astype(str)
    return out


def _look_at(group: str | None, by: str, metric: str) -> list[str]:
    if group is None:
        return []
    return [
        f"look at the label audit for the {group!r} group "
        f"(audit.label_audit(by={by!r})) and its morphology shift "
        f"(audit.morphology_shift(by={by!r}))",
        f"check whether the gap persists with lesion size held fixed "
        f"(audit.controlled_gap({metric!r}, by={by!r}, ..., stratify='volume_ml'))",
    ]


def _by_arg(by: str | tuple[str, ...]) -> str | list[str]:
    return by if isinstance(by, str) else list(by)


def _eval(
    audit: Audit,
    gate: Gate,
    conf: float,
    groups: list[str] | None,
    baseline: Mapping[str, Any] | None = None,
) -> _Outcome:
    trusted = audit.scores.trusted_ruler
    by = _by_arg(gate.by)
    by_name = _by_text(gate.by)
    if isinstance(gate, NoRegressionGate):
        return _eval_no_regression(audit, gate, conf, groups, baseline)
    if isinstance(gate, GapGate):
        ruler = gate.ruler or trusted
        r = audit.gap(
            gate.metric, by=by, model=gate.model, ruler=ruler, groups=groups, confidence=conf
        )
        value = {"gap": r.gap, "ratio": r.ratio, "to_overall": r.to_overall}[gate.statistic]
        what = {
            "gap": "gap",
            "ratio": "ratio of the lowest to the highest group",
            "to_overall": "largest distance of a group from overall",
        }[gate.statistic]
        limit = gate.min if gate.statistic == "ratio" else gate.max
        assert limit is not None  # the validator requires the one that applies
        side: Literal["max", "min"] = "min" if gate.statistic == "ratio" else "max"
        steps = []
        if r.min_group is not None:
            low = _f(float(r.by_group.loc[r.min_group, "estimate"]))
            steps = [
                f"the {r.min_group!r} group scores lowest ({low})",
                *_look_at(r.min_group, by_name, gate.metric),
            ]
        return _Outcome(
            checks=[_Check(f"{gate.metric} {what} across {by_name}", value, limit, side)],
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{gate.model} @ {ruler}"),
            context=f"for {gate.model} on {ruler} labels",
            subject=f"the {gate.metric} {what} across {by_name} for {gate.model} on {ruler} labels",
            next_steps=steps,
            notes=list(r.notes),
        )
    if isinstance(gate, RulerShrinkageGate | RulerInflationGate):
        d = audit.ruler_distortion(
            gate.metric,
            by=by,
            model=gate.model,
            automated=gate.automated,
            trusted=gate.trusted,
            negligible=gate.negligible,
            groups=groups,
            confidence=conf,
        )
        shrink = isinstance(gate, RulerShrinkageGate)
        ev = pd.concat(
            [
                _evidence(d.by_group.loc[src], f"{gate.model} @ {src}")
                for src in dict.fromkeys((d.trusted, d.automated))
            ],
            ignore_index=True,
        )
        label = f"share of the {gate.metric} gap across {by_name} that {d.automated} labels " + (
            "hide" if shrink else "add"
        )
        out = _Outcome(
            checks=[_Check(label, d.shrinkage if shrink else d.inflation, gate.max, "max")],
            sizes=d.by_group.loc[d.trusted]["n"],
            evidence=ev,
            context=f"for {gate.model} (gap {d.gap_trusted} on {d.trusted}, "
            f"{d.gap_automated} on {d.automated} labels)",
            subject=f"the {label} for {gate.model}",
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
                f"{gate.metric} gap across {by_name} "
                f"{'hidden' if shrink else 'added'} by {d.automated} labels "
                f"({gate.metric} units)"
            )
            out.context = f"for {gate.model}"
            why = (
                f"the {d.trusted} gap ({d.gap_trusted}) is not shown to exceed negligible = "
                f"{_f(d.negligible)}, so the share is undefined"
            )
            out.checks = [_Check(label, diff, d.negligible, "max")]
            out.forced = _fallback(diff, d.negligible, gate.decide_on, conf, label, why)
        return out
    if isinstance(gate, AmplificationGate):
        ruler = gate.ruler or trusted
        a = audit.amplification(
            gate.metric,
            by=by,
            model=gate.model,
            baseline=gate.baseline,
            ruler=ruler,
            negligible=gate.negligible,
            groups=groups,
            confidence=conf,
        )
        ev = pd.concat(
            [
                _evidence(a.by_group.loc[src], f"{src} @ {ruler}")
                for src in dict.fromkeys((gate.model, gate.baseline))
            ],
            ignore_index=True,
        )
        label = f"amplification of the {gate.metric} gap across {by_name}"
        out = _Outcome(
            checks=[_Check(label, a.amplification, gate.max, "max")],
            sizes=a.by_group.loc[gate.model]["n"],
            evidence=ev,
            context=f"from {gate.baseline} ({a.gap_baseline}) to {gate.model} ({a.gap_model}) "
            f"on {ruler} labels",
            subject=f"the {label} from {gate.baseline} to {gate.model}",
            next_steps=[
                f"compare the group estimates of {gate.model} and {gate.baseline}; if "
                f"{gate.model} learnt from automated labels, read the label audit "
                f"(audit.label_audit(by={by_name!r}))"
            ],
            notes=list(a.notes),
        )
        if not a.defined:
            label = (
                f"{gate.metric} gap across {by_name} added by {gate.model} over "
                f"{gate.baseline} ({gate.metric} units)"
            )
            out.context = f"on {ruler} labels"
            why = (
                f"the {gate.baseline} gap ({a.gap_baseline}) is not shown to exceed "
                f"negligible = {_f(a.negligible)}, so the amplification is undefined"
            )
            out.checks = [_Check(label, a.added_gap, a.negligible, "max")]
            out.forced = _fallback(a.added_gap, a.negligible, gate.decide_on, conf, label, why)
        return out
    if isinstance(gate, LabelAgreementGate):
        la = audit.label_audit(
            by=by, automated=gate.automated, metrics=(gate.metric,), groups=groups, confidence=conf
        )
        if (gate.automated, gate.metric) not in la.results:
            # the audit's own error lists the agreement metrics it has
            audit.agreement_series(gate.metric, ruler=gate.automated)
        r = la.results[(gate.automated, gate.metric)]
        checks = _group_checks(r.by_group, f"{gate.metric} agreement", gate.min, gate.max)
        if gate.max_gap is not None:
            checks.append(
                _Check(
                    f"gap in {gate.metric} agreement across {by_name}", r.gap, gate.max_gap, "max"
                )
            )
        worst = r.max_group if gate.metric in DISTANCE_METRICS else r.min_group
        return _Outcome(
            checks=checks,
            sizes=r.by_group["n"],
            evidence=_evidence(r.by_group, f"{gate.automated} vs {trusted} ({gate.metric})"),
            context=f"of {gate.automated} labels with {trusted} labels",
            subject=f"the {gate.metric} agreement of {gate.automated} labels with {trusted} "
            f"labels across {by_name}",
            next_steps=[
                f"review the {gate.automated} labels of the {worst!r} group against "
                f"{trusted} labels; audit.morphology_shift(by={by_name!r}) shows "
                "whether its lesions differ"
            ]
            if worst is not None
            else [],
            notes=list(r.notes),
        )
    if isinstance(gate, MinGroupMetricGate):
        ruler = gate.ruler or trusted
        ge = audit.by_group(gate.metric, by=by, model=gate.model, ruler=ruler, confidence=conf)
        frame = ge.by_group if groups is None else ge.by_group.loc[groups]
        worst = None
        if frame["estimate"].notna().any():
            worst = str(
                frame["estimate"].idxmax()
                if gate.metric in DISTANCE_METRICS
                else frame["estimate"].idxmin()
            )
        return _Outcome(
            checks=_group_checks(frame, gate.metric, gate.min, gate.max),
            sizes=ge.by_group["n"],
            evidence=_evidence(ge.by_group, f"{gate.model} @ {ruler}"),
            context=f"for {gate.model} on {ruler} labels",
            subject=f"the {gate.metric} of every {by_name} group for {gate.model} on {ruler} "
            "labels",
            next_steps=_look_at(worst, by_name, gate.metric),
            notes=list(ge.notes),
        )
    if isinstance(gate, DpdGate | DirGate):
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
            check = _Check(
                f"difference in the {rate} across {by_name} (DPD)", rr.dpd, gate.max, "max"
            )
        else:
            check = _Check(
                f"ratio of the lowest to the highest {rate} across {by_name} (DIR)",
                rr.dir,
                gate.min,
                "min",
            )
        lowest: str | None = None
        if rr.by_group["estimate"].notna().any():
            lowest = str(rr.by_group["estimate"].idxmin())
        return _Outcome(
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
    if isinstance(gate, CoverageGate):
        cov = audit.coverage(by=by, model=gate.model, confidence=conf)
        table = cov.by_group[cov.by_group["expected"] > 0]
        checks = [
            _Check(
                f"coverage of {m} in group {g!r}",
                Estimate(float(row["coverage"]), float(row["lower"]), float(row["upper"]), conf),
                gate.min,
                "min",
                group=str(g),
            )
            for (m, g), row in table.iterrows()
        ]
        ev = pd.DataFrame(
            {
                "source": [f"{m} coverage" for m, _ in table.index],
                "group": [str(g) for _, g in table.index],
                "n": table["expected"].to_numpy(),
                "estimate": table["coverage"].to_numpy(),
                "lower": table["lower"].to_numpy(),
                "upper": table["upper"].to_numpy(),
            }
        )
        short = table[table["coverage"] < gate.min]
        steps = [
            f"{m} misses {int(row['missing'])} case(s) of {g!r} ({row['reasons']}); "
            "predict them or record why they are excluded"
            for (m, g), row in short.iterrows()
        ]
        return _Outcome(
            checks=checks,
            sizes=pd.Series(dtype=float),
            evidence=ev,
            context="(cases with a usable prediction)",
            subject=f"the coverage of every {by_name} group",
            next_steps=steps,
            deterministic=True,
        )
    if isinstance(gate, MinGroupSizeGate):
        sizes = audit.group_sizes(by=by, ruler=gate.ruler)
        need = gate.min
        with_ruler = f" with {gate.ruler} labels" if gate.ruler else ""
        checks = [
            _Check(
                f"size of group {g!r}",
                Estimate(float(n), float(n), float(n), conf),
                float(need),
                "min",
                group=str(g),
            )
            for g, n in sizes.items()
        ]
        ev = pd.DataFrame(
            {
                "source": f"cases{with_ruler}",
                "group": [str(g) for g in sizes.index],
                "n": sizes.to_numpy(),
                "estimate": np.nan,
                "lower": np.nan,
                "upper": np.nan,
            }
        )
        steps = [
            f"add {need - int(n)} case(s){with_ruler} to group {str(g)!r}"
            for g, n in sizes.items()
            if n < need
        ]
        return _Outcome(
            checks=checks,
            sizes=pd.Series(dtype=float),
            evidence=ev,
            context=f"(cases{with_ruler})",
            subject=f"the number of cases{with_ruler} in every {by_name} group",
            next_steps=steps,
            deterministic=True,
        )
    raise TypeError(f"not a gate: {gate!r}")  # pragma: no cover - the union is exhaustive


def baseline_gap(baseline: Mapping[str, Any], gap_id: str) -> float | None:
    """The estimate of a gap (by its id, e.g. ``gap[dice,age_group,m,expert]``) in a report.

    Looks in the report's ``gaps`` table first, then in its gate results.
    """
    if not isinstance(baseline, Mapping):
        raise ConfigError(
            "the baseline is not a segfair JSON report (a JSON object) but a "
            f"{type(baseline).__name__}",
            key="baseline",
        )
    for entry in _entries(baseline, "gaps"):
        if entry.get("id") == gap_id:
            gap = entry.get("gap")
            return _baseline_number(
                gap.get("estimate") if isinstance(gap, Mapping) else gap, gap_id
            )
    for entry in _entries(baseline, "gates"):
        if entry.get("id") == gap_id:
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


def _eval_no_regression(
    audit: Audit,
    gate: NoRegressionGate,
    conf: float,
    groups: list[str] | None,
    baseline: Mapping[str, Any] | None,
) -> _Outcome:
    by_name = _by_text(gate.by)
    ruler = gate.ruler or audit.scores.trusted_ruler
    r = audit.gap(
        gate.metric,
        by=_by_arg(gate.by),
        model=gate.model,
        ruler=ruler,
        groups=groups,
        confidence=conf,
    )
    subject = f"the growth of the {gate.metric} gap across {by_name} for {gate.model} on {ruler}"
    before = baseline_gap(baseline, gate.gap_id) if baseline is not None else None
    label = f"increase of the {gate.metric} gap across {by_name} over the baseline"
    if before is None:
        why = NO_BASELINE if baseline is None else NOT_IN_BASELINE.format(gap_id=gate.gap_id)
        value = Estimate(np.nan, np.nan, np.nan, conf)
        forced: tuple[Status, str] | None = ("insufficient_evidence", why)
        context = f"for {gate.model} on {ruler} labels"
    else:
        g = r.gap
        value = Estimate(g.estimate - before, g.lower - before, g.upper - before, g.confidence)
        forced = None
        context = f"for {gate.model} on {ruler} labels (baseline gap {_f(before)}, now {g})"
    return _Outcome(
        checks=[_Check(label, value, gate.max_increase, "max")],
        sizes=r.by_group["n"],
        evidence=_evidence(r.by_group, f"{gate.model} @ {ruler}"),
        context=context,
        subject=subject,
        next_steps=[
            "compare this report's group estimates with the baseline report's",
            *_look_at(r.min_group, by_name, gate.metric),
        ],
        notes=list(r.notes),
        forced=forced,
    )


def _neg(e: Estimate) -> Estimate:
    return Estimate(-e.estimate, -e.upper, -e.lower, e.confidence)


def _group_checks(
    frame: pd.DataFrame, what: str, low: float | None, high: float | None
) -> list[_Check]:
    out = []
    for g, row in frame.iterrows():
        if row["n"] == 0:
            continue
        value = Estimate(float(row["estimate"]), float(row["lower"]), float(row["upper"]), 0.0)
        if low is not None:
            out.append(_Check(f"{what} of group {g!r}", value, low, "min", group=str(g)))
        if high is not None:
            out.append(_Check(f"{what} of group {g!r}", value, high, "max", group=str(g)))
    return out


def _fallback(
    diff: Estimate, negligible: float, decide_on: str, conf: float, label: str, why: str
) -> tuple[Status, str]:
    """Verdict on a difference of gaps (metric units) when the ratio is undefined."""
    if decide_on == "estimate":
        status: Status = "passed" if diff.estimate <= negligible else "failed"
        return status, f"{why}: estimate of the {label} ≤ {_f(negligible)}"
    if diff.upper <= negligible:
        status = "passed"
    elif diff.lower > negligible:
        status = "failed"
    else:
        status = "insufficient_evidence"
    return status, (
        f"{why}: passed if the upper {_pct(conf)} bound of the {label} ≤ "
        f"{_f(negligible)}, failed if its lower bound > {_f(negligible)}"
    )


def evaluate_gate(
    audit: Audit,
    gate: Gate,
    *,
    confidence: float | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> GateResult:
    """Decide one gate on an audit.

    Parameters
    ----------
    audit
        The audit of the scores.
    gate
        A gate model (see :func:`parse_gate`).
    confidence
        Interval level; default: the gate's own, else the audit's.
    baseline
        A previous JSON report (the release to compare with), read by ``no_regression`` gates.

    Returns
    -------
    GateResult

    Examples
    --------
    >>> from segfair.audit import example_scores
    >>> audit = Audit(example_scores(), n_boot=200)
    >>> r = evaluate_gate(audit, MinGroupMetricGate(metric="dice", by="age", model="m", min=0.6,
    ...                                             min_group_size=10))
    >>> r.status, r.ok
    ('passed', True)
    """
    conf = (
        confidence
        if confidence is not None
        else (gate.confidence if gate.confidence is not None else audit.confidence)
    )
    min_n = gate.min_group_size if gate.min_group_size is not None else audit.min_group_size
    full = _eval(audit, gate, conf, None, baseline)
    decide_on = "estimate" if full.deterministic else gate.decide_on
    small = [str(g) for g, n in full.sizes.items() if n < min_n]
    outcome = full
    if small and not full.deterministic:
        keep = [str(g) for g, n in full.sizes.items() if n >= min_n]
        if len(keep) >= _needed(gate):
            # decide on the groups that are large enough; a failure there is a failure
            part = _eval(audit, gate, conf, keep, baseline)
            outcome = replace(
                part,
                evidence=full.evidence,
                sizes=full.sizes,
                notes=full.notes + [n for n in part.notes if n not in full.notes],
            )
        else:
            outcome = replace(full, checks=[], forced=None)
    result = _verdict(gate, outcome, conf, decide_on, small, min_n)
    return _with_label_plan(audit, gate, result, conf)


def _with_label_plan(audit: Audit, gate: Gate, result: GateResult, conf: float) -> GateResult:
    """Attach the label plan (:func:`segfair.planner.plan`) of a gate that is undecided or
    measured on a partial trusted ruler; an insufficient_evidence verdict also says, as its
    first next step, how many more trusted labels per group would let it decide. The plan
    never changes the verdict."""
    undecided = result.status == "insufficient_evidence"
    if getattr(gate, "by", None) is None or not (undecided or gate.statistical):
        return result
    try:
        from segfair.planner import plan

        if not undecided and audit.labelled_mask().all():
            return result  # every case has its trusted label: nothing to plan
        p = plan(audit, gate, confidence=conf)
    except Exception:  # a plan is advice: its failure must never break a verdict
        return result
    result = replace(result, labels_needed=p.to_dict())
    if not undecided or not p.additional:
        return result
    return replace(result, next_steps=(p.sentence(), *result.next_steps))


def _needed(gate: Gate) -> int:
    """How many large-enough groups a gate needs to say anything."""
    return 1 if isinstance(gate, MinGroupMetricGate | LabelAgreementGate) else 2


def _verdict(
    gate: Gate, out: _Outcome, conf: float, decide_on: str, small: list[str], min_n: int
) -> GateResult:
    status: Status
    sizes = ", ".join(f"{g!r} (n = {int(out.sizes[g])})" for g in small)
    small_text = (
        f"group{'s' if len(small) > 1 else ''} {sizes} "
        f"{'are' if len(small) > 1 else 'is'} below min_group_size = {min_n}"
    )
    fix_small = (
        f"add cases (or trusted labels) to {', '.join(repr(g) for g in small)}, or set "
        "allow_insufficient = true"
    )
    if not out.checks:
        why = small_text if small else "no group has values to decide on"
        message = (
            f"Cannot decide {out.subject}: {why}; "
            f"{fix_small if small else 'check that the scores hold this metric'}."
        )
        nothing = _Check(
            "(nothing to decide)", Estimate(np.nan, np.nan, np.nan, conf), np.nan, "max"
        )
        return _result(
            gate,
            out,
            "insufficient_evidence",
            nothing,
            "no decidable group",
            message,
            conf,
            decide_on,
            small,
            fix_small,
        )
    if out.forced is not None:
        status, rule = out.forced
        check = out.checks[0]
        if status == "passed" and small:
            status = "insufficient_evidence"
    else:
        margins = [c.margin(decide_on) for c in out.checks]
        undecidable = [c for c, m in zip(out.checks, margins, strict=True) if math.isnan(m)]
        failing = [(m, c) for c, m in zip(out.checks, margins, strict=True) if m < 0]
        if failing:
            status, check = "failed", min(failing, key=lambda t: t[0])[1]
        elif undecidable:
            status, check = "insufficient_evidence", undecidable[0]
        else:
            status = "insufficient_evidence" if small else "passed"
            check = min(zip(margins, out.checks, strict=True), key=lambda t: t[0])[1]
        rule = _rule_text(out.checks, decide_on, conf)
    v = check.value
    if out.deterministic:
        said = f"the {check.label} {out.context} is {_f(v.estimate)}"
    else:
        said = (
            f"the {check.label} {out.context} is {_f(v.estimate)} ({_pct(conf)} interval "
            f"{_f(v.lower)} to {_f(v.upper)})"
        )
    if status == "passed":
        if check.group is not None and len(out.checks) > 1:
            message = f"Every group is within the limit {_f(check.limit)}; the closest: {said}."
        else:
            message = f"{_cap(said)}, within the limit {_f(check.limit)}."
    elif status == "failed":
        op = "above" if check.side == "max" else "below"
        which = (
            "it is"
            if out.deterministic
            else "its estimate is"
            if decide_on == "estimate"
            else "its upper bound is"
            if check.side == "max"
            else "its lower bound is"
        )
        hint = f": {out.next_steps[0]}" if out.next_steps else ""
        message = f"{_cap(said)}; {which} {op} the limit {_f(check.limit)}{hint}."
    elif small:
        message = (
            f"Cannot decide {out.subject}: {small_text} (on the other groups, {said}); {fix_small}."
        )
    else:
        message = (
            f"Cannot decide {out.subject}: the interval ({_f(v.lower)} to {_f(v.upper)}) "
            f"is missing or reaches past the limit {_f(check.limit)} on both counts; add "
            "cases or trusted labels."
        )
    return _result(gate, out, status, check, rule, message, conf, decide_on, small, fix_small)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _rule_text(checks: list[_Check], decide_on: str, conf: float) -> str:
    if len(checks) == 1:
        return checks[0].rule(decide_on, conf)
    per_group = [c for c in checks if c.group is not None]
    rest = [c for c in checks if c.group is None]
    parts = []
    if per_group:
        g0 = per_group[0]
        generic = g0.label.split(" of group ")[0].split(" in group ")[0]
        op = "≤" if g0.side == "max" else "≥"
        if decide_on == "estimate":
            parts.append(f"every group's {generic} (estimate) {op} {_f(g0.limit)}")
        else:
            end = "upper" if g0.side == "max" else "lower"
            parts.append(
                f"every group's {end} {_pct(conf)} bound of the {generic} {op} {_f(g0.limit)}"
            )
    parts += [c.rule(decide_on, conf) for c in rest]
    return " and ".join(parts)


def _result(
    gate: Gate,
    out: _Outcome,
    status: Status,
    check: _Check,
    rule: str,
    message: str,
    conf: float,
    decide_on: str,
    small: list[str],
    fix_small: str,
) -> GateResult:
    steps = list(out.next_steps) if status != "passed" else []
    if status == "insufficient_evidence" and small:
        steps.insert(0, fix_small)
    return GateResult(
        id=gate.id,
        kind=gate.kind,
        name=gate.name,
        status=status,
        estimate=float(check.value.estimate),
        lower=float(check.value.lower),
        upper=float(check.value.upper),
        threshold=float(check.limit),
        decision_rule=rule,
        evidence=out.evidence,
        message=message,
        allowed=status == "insufficient_evidence" and gate.allow_insufficient,
        confidence=conf,
        decide_on=decide_on,
        measure=check.label,
        notes=tuple(out.notes),
        next_steps=tuple(steps),
    )


def evaluate_gates(
    audit: Audit,
    gates: Sequence[Gate],
    *,
    holm: bool = False,
    baseline: Mapping[str, Any] | None = None,
) -> list[GateResult]:
    """Decide several gates, optionally with Holm's step-down procedure across them.

    With ``holm=True`` the family is every gate whose verdict rests on an interval bound
    (``decide_on = "bound"``, not ``coverage``/``min_group_size``, and not insufficient at its own
    level). Holm's procedure controls the chance that *any* harmful gate passes at ``1 -
    confidence``: with ``r`` gates still undecided, each is evaluated with its interval at level
    ``1 - (1 - confidence) / r``; those that pass are accepted and leave the family; this repeats
    until no remaining gate passes, and those are reported failed at the last (strictest) level.
    Each result states its step, the family size and the level its interval was computed at.

    Examples
    --------
    >>> from segfair.audit import example_scores
    >>> audit = Audit(example_scores(), n_boot=200, min_group_size=10)
    >>> gates = parse_gates([
    ...     {"kind": "min_group_metric", "metric": "dice", "by": "age", "model": "m", "min": 0.6},
    ...     {"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.2}])
    >>> [(r.status, r.holm["step"]) for r in evaluate_gates(audit, gates, holm=True)]
    [('passed', 1), ('passed', 1)]
    """
    results = [evaluate_gate(audit, g, baseline=baseline) for g in gates]
    if not holm:
        return results
    family = [
        i
        for i, (g, r) in enumerate(zip(gates, results, strict=True))
        if g.statistical and g.decide_on == "bound" and r.status != "insufficient_evidence"
    ]
    m = len(family)
    remaining = list(family)
    step = 0
    while remaining:
        step += 1
        r_left = len(remaining)
        trial = {}
        for i in remaining:
            own = gates[i].confidence
            base = own if own is not None else audit.confidence
            level = 1 - (1 - base) / r_left
            trial[i] = (
                level,
                evaluate_gate(audit, gates[i], confidence=level, baseline=baseline),
            )
        accepted = [i for i in remaining if trial[i][1].status == "passed"]
        finals = accepted if accepted else list(remaining)
        for i in finals:
            level, res = trial[i]
            results[i] = replace(
                res,
                holm={"family_size": m, "step": step, "confidence": level},
                decision_rule=f"{res.decision_rule} (Holm step {step} of {m})",
            )
        if not accepted:
            break
        remaining = [i for i in remaining if i not in accepted]
    return results
