"""The results of the audit: an Estimate and one small frozen class per estimand."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "AmplificationResult",
    "AssociationResult",
    "ControlledGapResult",
    "CoverageResult",
    "DetectionGapResult",
    "DistortionResult",
    "EquityResult",
    "Estimate",
    "GapResult",
    "GroupEstimates",
    "LabelAuditResult",
    "MamaMiaResult",
    "MorphologyResult",
    "PredictionPoweredResult",
    "RateResult",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-sided interval at ``confidence``.

    Examples
    --------
    >>> e = Estimate(estimate=0.04, lower=0.02, upper=0.06, confidence=0.95)
    >>> e.contains(0.05), round(e.width, 2)
    (True, 0.04)
    """

    estimate: float
    lower: float
    upper: float
    confidence: float

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval."""
        return bool(self.lower <= value <= self.upper)

    def to_dict(self) -> dict[str, float | None]:
        """JSON-able form (NaN → None)."""
        return {k: _num(getattr(self, k)) for k in ("estimate", "lower", "upper", "confidence")}

    def __str__(self) -> str:
        return f"{_fmt(self.estimate)} [{_fmt(self.lower)}, {_fmt(self.upper)}]"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _fmt(x: float) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.0f}"


def _nan_estimate(confidence: float) -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), confidence)


# ----------------------------------------------------------------------------------------------
# result objects
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GroupEstimates:
    """Per-group estimates of one metric for one model on one ruler (:meth:`Audit.by_group`).

    Attributes
    ----------
    by_group
        Index: group; columns ``n, estimate, lower, upper, capped, undefined``.
    overall
        The same fields over all cases.
    notes
        Caveats worth reading (empty groups, groups without an interval, ...).
    """

    metric: str
    by: tuple[str, ...]
    model: str | None
    ruler: str | None
    statistic: str
    confidence: float
    by_group: pd.DataFrame
    overall: pd.Series
    notes: tuple[str, ...] = ()

    def difference(self) -> float:
        """Largest minus smallest group estimate (fairlearn's ``between_groups`` difference)."""
        est = self.by_group["estimate"].dropna()
        return float(est.max() - est.min()) if len(est) else float("nan")

    def ratio(self) -> float:
        """Smallest over largest group estimate (fairlearn's ``ratio()``)."""
        est = self.by_group["estimate"].dropna()
        return float(est.min() / est.max()) if len(est) and est.max() != 0 else float("nan")


@dataclass(frozen=True, eq=False)
class GapResult:
    """The gap across groups and its relatives (:meth:`Audit.gap`).

    Attributes
    ----------
    gap
        ``max - min`` of the group estimates.
    ratio
        ``min / max`` of the group estimates (NaN when an estimate is negative).
    to_overall
        ``max |group - overall|``.
    to_reference
        ``max |group - reference|`` over the other groups (None without a reference).
    differences
        Per group: ``group - reference`` with its interval (None without a reference).
    by_group, overall
        As in :class:`GroupEstimates`.
    max_group, min_group
        Groups with the highest and lowest estimate.
    """

    metric: str
    by: tuple[str, ...]
    model: str | None
    ruler: str | None
    statistic: str
    confidence: float
    gap: Estimate
    ratio: Estimate
    to_overall: Estimate
    by_group: pd.DataFrame
    overall: pd.Series
    max_group: str | None
    min_group: str | None
    reference: str | None = None
    to_reference: Estimate | None = None
    differences: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> pd.DataFrame:
        """One row per measure (``gap, ratio, to_overall[, to_reference]``)."""
        rows = {"gap": self.gap, "ratio": self.ratio, "to_overall": self.to_overall}
        if self.to_reference is not None:
            rows["to_reference"] = self.to_reference
        return _estimates_frame(rows)


@dataclass(frozen=True, eq=False)
class DetectionGapResult:
    """The small-lesion detection rate per group and its gap (:meth:`Audit.detection_gap`).

    Attributes
    ----------
    gap
        ``max - min`` of the group rates, with the interval of the pairwise contrasts.
    by_group
        Per group: ``n`` (cases with both counts), ``cases_with_small``,
        ``cases_without_small``, ``small_lesions``, ``detected``, ``missed`` and the rate
        (``estimate`` = detected / small_lesions, ``lower``, ``upper``).
    overall
        The pooled rate of the whole cohort (no interval).
    small_volume
        The largest volume (mm³) of a small lesion, from the recorded lesion settings.
    max_group, min_group
        Groups with the highest and lowest rate.
    """

    by: tuple[str, ...]
    model: str
    ruler: str
    confidence: float
    small_volume: float | None
    gap: Estimate
    by_group: pd.DataFrame
    overall: pd.DataFrame
    max_group: str | None
    min_group: str | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class RateResult:
    """Rates of ``metric > threshold`` per group, DPD and DIR (:meth:`Audit.dpd_dir`).

    ``by_group["estimate"]`` is the rate; ``dpd`` is ``max - min`` of the rates and ``dir`` is
    ``min / max``. ``flagged`` is True when the DIR estimate is under 0.8 (four-fifths rule).
    """

    metric: str
    by: tuple[str, ...]
    model: str
    ruler: str
    threshold: float
    confidence: float
    by_group: pd.DataFrame
    overall: pd.Series
    dpd: Estimate
    dir: Estimate
    notes: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        """DIR below 0.8 (the four-fifths rule)."""
        return bool(self.dir.estimate < 0.8)


@dataclass(frozen=True, eq=False)
class EquityResult:
    """Equity-scaled score ``ES = overall / (1 + Σ_g |mean_g - overall|)`` (FairSeg/FairMedFM)."""

    metric: str
    by: tuple[str, ...]
    model: str
    ruler: str
    confidence: float
    es: Estimate
    by_group: pd.DataFrame
    overall: pd.Series
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class MamaMiaResult:
    """MAMA-MIA fairness score ``1 - 0.5 (gap(Dice) + gap(NormHD))``, NormHD = min(HD95/cap, 1).

    ``score`` bounds combine the two gaps' bounds (each at half the error rate), so they keep the
    gaps' guarantees.
    """

    by: tuple[str, ...]
    model: str
    ruler: str
    confidence: float
    score: Estimate
    dice_gap: Estimate
    normhd_gap: Estimate
    dice: GroupEstimates
    normhd: GroupEstimates
    notes: tuple[str, ...] = ()

    @property
    def by_group(self) -> pd.DataFrame:
        """Dice and NormHD per group; columns are ``(measure, field)``."""
        return pd.concat({"dice": self.dice.by_group, "normhd": self.normhd.by_group}, axis=1)

    @property
    def overall(self) -> pd.DataFrame:
        """Dice and NormHD over all cases."""
        return pd.DataFrame({"dice": self.dice.overall, "normhd": self.normhd.overall}).T


@dataclass(frozen=True, eq=False)
class DistortionResult:
    """How an automated ruler distorts a gap (:meth:`Audit.ruler_distortion`).

    Attributes
    ----------
    gap_trusted, gap_automated
        The gap measured with each ruler, on the same cases.
    distortion
        ``gap_automated / gap_trusted - 1``.
    shrinkage
        ``max(0, -distortion)``: the fraction of the trusted gap the automated labels hide.
    inflation
        ``max(0, distortion)``: the fraction the automated labels add.
    hidden_gap
        ``gap_trusted - gap_automated`` in metric units (negative: a gap the labels invent).
    defined
        False when the trusted gap is not shown to exceed ``negligible`` (its lower bound is at
        or below it): a ratio to a gap that may be ~0 means nothing, so read ``hidden_gap``.
    by_group
        Rows ``(ruler, group)``, columns as in :class:`GroupEstimates`.
    """

    metric: str
    by: tuple[str, ...]
    model: str
    automated: str
    trusted: str
    confidence: float
    negligible: float
    defined: bool
    gap_trusted: Estimate
    gap_automated: Estimate
    distortion: Estimate
    shrinkage: Estimate
    inflation: Estimate
    hidden_gap: Estimate
    by_group: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> pd.DataFrame:
        """One row per measure."""
        return _estimates_frame(
            {
                "gap_trusted": self.gap_trusted,
                "gap_automated": self.gap_automated,
                "distortion": self.distortion,
                "shrinkage": self.shrinkage,
                "inflation": self.inflation,
                "hidden_gap": self.hidden_gap,
            }
        )


@dataclass(frozen=True, eq=False)
class AmplificationResult:
    """How much larger a model's gap is than a baseline's, both on one ruler.

    ``amplification = gap_model / gap_baseline - 1``; ``added_gap = gap_model - gap_baseline``
    (metric units). ``defined`` is False when the baseline gap is not shown to exceed
    ``negligible``. ``by_group`` rows are ``(model, group)``.
    """

    metric: str
    by: tuple[str, ...]
    model: str
    baseline: str
    ruler: str
    confidence: float
    negligible: float
    defined: bool
    gap_model: Estimate
    gap_baseline: Estimate
    amplification: Estimate
    added_gap: Estimate
    by_group: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> pd.DataFrame:
        """One row per measure."""
        return _estimates_frame(
            {
                "gap_model": self.gap_model,
                "gap_baseline": self.gap_baseline,
                "amplification": self.amplification,
                "added_gap": self.added_gap,
            }
        )


@dataclass(frozen=True, eq=False)
class PredictionPoweredResult:
    """Prediction-powered group means of a partial trusted ruler beside the labelled-only ones
    (:meth:`Audit.prediction_powered`).

    Attributes
    ----------
    proxy
        The automated ruler the estimates lean on (it scores every case).
    by_group
        Index: group; columns ``n`` (labelled cases with a proxy value), ``n_all`` (cases with a
        proxy value), ``lam`` (the power-tuning weight; 0 is the labelled-only mean),
        ``proxy_mean``, ``rectifier`` (mean of trusted − proxy over the labelled cases: how far
        the automated ruler is off there), ``estimate, lower, upper`` (prediction-powered),
        ``labelled_estimate, labelled_lower, labelled_upper`` (labelled cases only),
        ``effective_n`` (``n_labelled × (SE_labelled / SE_ppi)²``, at most ``n_all``: the
        labelled sample the prediction-powered interval is worth) and ``width_ratio``
        (prediction-powered width over labelled-only width; below 1 is a gain).
    overall
        ``n, estimate, lower, upper, capped, undefined`` of the prediction-powered overall mean,
        with ``n_all`` and the labelled-only ``labelled_estimate, labelled_lower,
        labelled_upper``.
    gap, labelled_gap
        The gap (max − min) across groups, prediction-powered and labelled-only.
    """

    metric: str
    by: tuple[str, ...]
    model: str
    ruler: str
    proxy: str
    confidence: float
    by_group: pd.DataFrame
    overall: pd.Series
    gap: Estimate
    labelled_gap: Estimate
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN → None): a gate's ``prediction_powered`` block in the report."""
        counts = ("n", "n_all")
        rows = [
            {
                "group": str(g),
                **{k: int(row[k]) for k in counts},
                **{k: _num(v) for k, v in row.items() if k not in counts},
            }
            for g, row in self.by_group.iterrows()
        ]
        return {
            "metric": self.metric,
            "attribute": " × ".join(self.by),
            "model": self.model,
            "ruler": self.ruler,
            "proxy": self.proxy,
            "confidence": self.confidence,
            "groups": rows,
            # the level is the block's: an estimate here is its point and interval
            "gap": {k: _num(getattr(self.gap, k)) for k in ("estimate", "lower", "upper")},
            "labelled_gap": {
                k: _num(getattr(self.labelled_gap, k)) for k in ("estimate", "lower", "upper")
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True, eq=False)
class LabelAuditResult:
    """Agreement of each automated ruler with the trusted one, per group (:meth:`label_audit`).

    Attributes
    ----------
    by_group
        Rows ``(ruler, metric, group)``, columns as in :class:`GroupEstimates`.
    gaps
        Rows ``(ruler, metric)``: the agreement gap ``estimate, lower, upper`` and the groups
        with the lowest and highest agreement.
    results
        ``(ruler, metric) → GapResult`` with every detail.
    """

    by: tuple[str, ...]
    trusted: str
    confidence: float
    by_group: pd.DataFrame
    gaps: pd.DataFrame
    results: Mapping[tuple[str, str], GapResult]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class ControlledGapResult:
    """The gap with a difficulty covariate held fixed (:meth:`Audit.controlled_gap`).

    Attributes
    ----------
    gap
        Gap of the directly standardised group estimates (weights = overall stratum shares).
    crude_gap
        Gap on the same cases without standardisation.
    by_group
        Per group: ``n, crude, standardised, lower, upper``.
    strata
        Rows ``(stratum, group)``: ``n, estimate``.
    stratum_gaps
        Per stratum: ``n, weight, estimate, lower, upper`` of the within-stratum gap.
    empty_cells
        ``(stratum, group)`` cells without cases; strata holding one are left out of the
        standardisation (common support) and listed in ``excluded_strata``.
    """

    metric: str
    by: tuple[str, ...]
    model: str
    ruler: str
    stratify: str
    confidence: float
    gap: Estimate
    crude_gap: Estimate
    by_group: pd.DataFrame
    strata: pd.DataFrame
    stratum_gaps: pd.DataFrame
    weights: pd.Series
    empty_cells: tuple[tuple[str, str], ...]
    excluded_strata: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def persists(self) -> bool:
        """Whether the standardised gap is still shown to be above zero (its lower bound > 0)."""
        return bool(self.gap.lower > 0)


@dataclass(frozen=True, eq=False)
class MorphologyResult:
    """Morphology of the reference masks per group, against a reference group.

    Attributes
    ----------
    by_group
        Rows ``(descriptor, group)``: ``n, mean, sd, median, q1, q3``, the ratio of means and the
        variance ratio to the reference group with intervals, the Mann–Whitney p-value against the
        reference and the rank-biserial effect size (``P(X > Y) - P(X < Y)``).
    tests
        Per descriptor: Kruskal–Wallis ``h`` and ``p`` across groups.
    reference
        The reference group (default: the largest group of the cohort).
    """

    by: tuple[str, ...]
    ruler: str
    reference: str
    confidence: float
    by_group: pd.DataFrame
    tests: pd.DataFrame
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class CoverageResult:
    """Cases with a usable prediction per group, and why the others are missing.

    Attributes
    ----------
    by_group
        Rows ``(model, group)``: ``expected, covered, coverage, lower, upper`` (Wilson) ,
        ``missing`` and ``reasons`` (``"reason: count; ..."``).
    overall
        Rows ``model``: the same over all cases.
    missing
        One row per missing case: ``case_id, model, group, reason``.
    """

    by: tuple[str, ...]
    confidence: float
    by_group: pd.DataFrame
    overall: pd.DataFrame
    missing: pd.DataFrame
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class AssociationResult:
    """Tests of association between a metric and an attribute (:meth:`Audit.association`).

    Kruskal–Wallis and one-way ANOVA across the attribute's groups; OLS of the metric on the
    numeric metadata column behind the attribute (``slope`` per unit of that column).
    """

    metric: str
    attribute: str
    model: str
    ruler: str
    column: str | None
    n: int
    kruskal_h: float
    kruskal_p: float
    anova_f: float
    anova_p: float
    slope: float
    slope_lower: float
    slope_upper: float
    slope_p: float
    intercept: float
    r: float
    confidence: float
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The tests as a small table (``statistic, p``)."""
        return pd.DataFrame(
            {
                "statistic": [self.kruskal_h, self.anova_f, self.slope],
                "p": [self.kruskal_p, self.anova_p, self.slope_p],
            },
            index=pd.Index(["kruskal_wallis", "anova", "ols_slope"], name="test"),
        )


def _estimates_frame(rows: Mapping[str, Estimate]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "estimate": [e.estimate for e in rows.values()],
            "lower": [e.lower for e in rows.values()],
            "upper": [e.upper for e in rows.values()],
        },
        index=pd.Index(list(rows), name="measure"),
    )
