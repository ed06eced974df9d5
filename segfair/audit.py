"""The audit: subgroup estimates with intervals, gaps, ruler distortion and the rest, over Scores.

:class:`Audit` is the statistics over a :class:`~segfair.scores.Scores` table. Every estimate has
a bootstrap interval; every difference between rulers or models is *paired* (the same resampled
cases score both sides). Results are small frozen objects holding pandas tables with
``.by_group`` and ``.overall`` in the spirit of fairlearn's ``MetricFrame``.

Conventions
-----------
* The cohort is ``scores.groups.index`` sorted by ``case_id``; row order of the inputs never
  matters.
* Distances (:data:`~segfair.stats.DISTANCE_METRICS`) that are ``inf`` (a missed lesion) are
  replaced by ``cap`` before averaging and counted per group (``capped``); finite distances are
  kept as they are. A NaN (undefined, e.g. sensitivity with an empty reference) — or an infinite
  value of a non-distance metric — is left out of the statistic and counted (``undefined``).
* ``n`` is the number of values behind an estimate. A group with ``n == 0`` has no estimate and
  is left out of gaps (noted); with ``n == 1`` its interval is NaN (noted).
* Intersectional groups (``by=["age_group", "ethnicity"]``) are labelled ``"young × white"``;
  the index is named ``"age_group × ethnicity"``. Only combinations that occur are listed; a
  single categorical attribute lists all its categories, empty ones with ``n == 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from segfair.errors import SegfairError
from segfair.scores import Scores
from segfair.stats import (
    DISTANCE_METRICS,
    STATISTICS,
    Design,
    Replicates,
    Statistic,
    build_design,
    group_statistic,
    max_abs_interval,
    percentile_interval,
    ratio_interval,
    wilson_interval,
)

__all__ = [
    "AmplificationResult",
    "AssociationResult",
    "Audit",
    "AuditError",
    "ControlledGapResult",
    "CoverageResult",
    "DistortionResult",
    "EquityResult",
    "Estimate",
    "GapResult",
    "GroupEstimates",
    "LabelAuditResult",
    "MamaMiaResult",
    "MorphologyResult",
    "RateResult",
]

UNKNOWN_MODEL = "unknown model {name!r}; valid models: {valid}"
UNKNOWN_RULER = "unknown ruler {name!r}; valid rulers: {valid}"
UNKNOWN_METRIC = (
    "unknown metric {name!r} for model {model!r} on ruler {ruler!r}; valid metrics: {valid}"
)
UNKNOWN_AGREEMENT = (
    "no agreement scores of metric {name!r} for ruler {ruler!r}; valid metrics: {valid}"
)
UNKNOWN_ATTRIBUTE = "unknown attribute {name!r}; valid attributes: {valid}"
UNKNOWN_GROUP = "unknown group {name!r} of {by}; valid groups: {valid}"
UNKNOWN_CLUSTER = "unknown cluster column {name!r}; valid columns: {valid}"
UNKNOWN_COVARIATE = (
    "cannot stratify by {name!r}: it is neither a metadata column nor a morphology descriptor of "
    "ruler {ruler!r}; valid: {valid}"
)
UNKNOWN_DESCRIPTOR = "unknown morphology descriptor {name!r} of ruler {ruler!r}; valid: {valid}"
BAD_STATISTIC = "statistic must be one of {valid}; got {value!r}"
BAD_CONFIDENCE = "confidence must be a number in (0.5, 1); got {value!r}"
BAD_N_BOOT = "n_boot must be an integer ≥ 100; got {value!r}"
BAD_CAP = "cap must be a positive, finite distance in mm; got {value!r}"
BAD_MIN_GROUP_SIZE = "min_group_size must be an integer ≥ 1; got {value!r}"
BAD_BINS = "bins must be an integer ≥ 2; got {value!r}"
BAD_NEGLIGIBLE = "negligible must be a number ≥ 0; got {value!r}"
NOT_IN_COHORT = (
    "{count} scored case(s) are not in the cohort's groups table, e.g. {examples}; every scored "
    "case needs its subgroup labels"
)
DUPLICATE_SCORES = (
    "the {table} table holds {count} duplicate row(s) for one case, e.g. {examples}; keep one "
    "value per case"
)
NO_ATTRIBUTE_COLUMN = (
    "attribute {name!r} has no metadata column behind it (scores.attribute_columns: {valid})"
)

#: Default of ``negligible`` (metric units) for ratio-type comparisons of gaps.
NEGLIGIBLE_GAP = 0.01
#: Default of ``negligible`` for distance metrics (mm).
NEGLIGIBLE_DISTANCE_GAP = 1.0
#: Label of a missing attribute value when the groups table has none of its own.
UNKNOWN_LABEL = "unknown"
#: Separator of intersectional group labels and of the index name.
JOIN = " × "

GROUP_COLUMNS = ("n", "estimate", "lower", "upper", "capped", "undefined")


class AuditError(SegfairError, ValueError):
    """A request the audit cannot answer: an unknown model, ruler, metric, group or setting."""


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


# ----------------------------------------------------------------------------------------------
# internals
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Series:
    """One per-case series in cohort order: values used (NaN = not used) and what was set aside."""

    key: tuple[Any, ...]
    label: str
    x: np.ndarray
    present: np.ndarray
    capped: np.ndarray
    undefined: np.ndarray

    def restrict(self, valid: np.ndarray, present: np.ndarray, tag: tuple[Any, ...]) -> Series:
        return Series(
            key=(*self.key, *tag),
            label=self.label,
            x=np.where(valid, self.x, np.nan),
            present=self.present & present,
            capped=self.capped & valid,
            undefined=self.undefined & present,
        )

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.x)


@dataclass(frozen=True, eq=False)
class Groups:
    """Group labels of every case for one ``by`` and its bootstrap design."""

    key: tuple[str, ...]
    name: str
    labels: tuple[str, ...]
    codes: np.ndarray
    design: Design


ByArg = str | Sequence[str]


class Audit:
    """Subgroup statistics of a :class:`~segfair.scores.Scores` table, with bootstrap intervals.

    Parameters
    ----------
    scores
        The per-case tables.
    seed
        Bootstrap seed. The resamples of an attribute are derived from ``(seed, attribute)``, so
        results do not depend on the order of calls or of the input rows.
    n_boot
        Number of bootstrap resamples (≥ 100; 2,000 is the default).
    confidence
        Two-sided level of every interval, in (0.5, 1).
    statistic
        Group estimate: ``"mean"`` or ``"median"``.
    cap
        Distance (mm) that replaces ``inf`` in distance metrics (MAMA-MIA's 150 mm).
    cluster
        A metadata column (e.g. ``"dataset"``): resample whole clusters within each group instead
        of cases. Needs at least two clusters per group, else that group has no interval.
    min_group_size
        Default smallest group a gate decides on (see :mod:`segfair.gates`).
    design_weights
        Inverse inclusion probabilities of the cases in the trusted ruler's labelled sample
        (index ``case_id``; see :func:`segfair.planner.design_weights`). Every statistic whose
        cases all carry a trusted label (trusted-ruler scores, agreement, paired comparisons)
        is then a Hajek-weighted estimate; complete series are not weighted
        (``docs/partial-labels.md``).

    Examples
    --------
    >>> import pandas as pd
    >>> from segfair.scores import Scores
    >>> ids = [f"c{i}" for i in range(40)]
    >>> table = pd.DataFrame({"case_id": ids, "model": "m", "ruler": "expert", "metric": "dice",
    ...                       "value": [0.7] * 20 + [0.8] * 20})
    >>> groups = pd.DataFrame({"age": ["young"] * 20 + ["old"] * 20},
    ...                       index=pd.Index(ids, name="case_id"))
    >>> scores = Scores(table=table, groups=groups, trusted_ruler="expert",
    ...                 rulers=("expert",), models=("m",))
    >>> audit = Audit(scores, n_boot=200)
    >>> round(audit.gap("dice", by="age", model="m").gap.estimate, 3)
    0.1
    """

    def __init__(
        self,
        scores: Scores,
        *,
        seed: int = 0,
        n_boot: int = 2000,
        confidence: float = 0.95,
        statistic: Statistic = "mean",
        cap: float = 150.0,
        cluster: str | None = None,
        min_group_size: int = 20,
        design_weights: pd.Series | None = None,
    ) -> None:
        if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 100:
            raise AuditError(BAD_N_BOOT.format(value=n_boot))
        _check_confidence(confidence)
        if statistic not in STATISTICS:
            raise AuditError(BAD_STATISTIC.format(valid=", ".join(STATISTICS), value=statistic))
        if not isinstance(cap, int | float) or not math.isfinite(cap) or cap <= 0:
            raise AuditError(BAD_CAP.format(value=cap))
        if (
            isinstance(min_group_size, bool)
            or not isinstance(min_group_size, int | np.integer)
            or min_group_size < 1
        ):
            raise AuditError(BAD_MIN_GROUP_SIZE.format(value=min_group_size))
        self.scores = scores
        self.seed = int(seed)
        self.n_boot = int(n_boot)
        self.confidence = float(confidence)
        self.statistic: Statistic = statistic
        self.cap = float(cap)
        self.cluster = cluster
        self.min_group_size = int(min_group_size)
        self.design_weights = design_weights

        groups = scores.groups.copy()
        groups.index = groups.index.astype(str)
        self._groups_table = groups.sort_index(kind="stable")
        self.cases = pd.Index(self._groups_table.index, name="case_id")
        self._score_index = self._index_rows(scores.table, ("model", "ruler", "metric"), "score")
        agreement = scores.agreement
        if "reference" in agreement.columns and len(agreement):
            agreement = agreement[agreement["reference"].astype(str) == scores.trusted_ruler]
        self._agreement_index = self._index_rows(agreement, ("ruler", "metric"), "agreement")
        self._morph_index = self._index_rows(
            scores.morphology, ("descriptor", "ruler"), "morphology"
        )
        self._cluster_codes = self._cluster(cluster) if cluster is not None else None
        self._groups_cache: dict[tuple[str, ...], Groups] = {}
        self._series_cache: dict[tuple[Any, ...], Series] = {}
        self._reps_cache: dict[tuple[Any, ...], Replicates] = {}

    def __repr__(self) -> str:
        return (
            f"Audit({len(self.cases)} cases, models={list(self.scores.models)}, "
            f"rulers={list(self.scores.rulers)}, seed={self.seed}, n_boot={self.n_boot}, "
            f"confidence={self.confidence}, statistic={self.statistic!r})"
        )

    # -- input plumbing ------------------------------------------------------------------------

    def _index_rows(
        self, frame: pd.DataFrame, keys: tuple[str, ...], name: str
    ) -> dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]:
        """``key → (cohort positions, values)`` for one long table, checked once."""
        if len(frame) == 0:
            return {}
        pos = self.cases.get_indexer(frame["case_id"].astype(str))
        if (pos < 0).any():
            unknown = sorted(set(frame["case_id"].astype(str)[pos < 0]))
            raise AuditError(
                NOT_IN_COHORT.format(count=len(unknown), examples=", ".join(unknown[:5]))
            )
        values = frame["value"].to_numpy(dtype=np.float64)
        key_cols = [frame[k].astype(str).to_numpy(dtype=object) for k in keys]
        out: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        if len(keys) == 1:
            grouped = pd.Series(np.arange(len(frame))).groupby(key_cols[0]).indices
        else:
            grouped = pd.Series(np.arange(len(frame))).groupby(key_cols).indices
        for k, rows in grouped.items():
            kk = (str(k),) if len(keys) == 1 else tuple(str(v) for v in k)
            p = pos[rows]
            if len(np.unique(p)) != len(p):
                dup = pd.Series(p).duplicated(keep=False).to_numpy()
                examples = sorted({self.cases[i] for i in p[dup]})[:3]
                raise AuditError(
                    DUPLICATE_SCORES.format(
                        table=name,
                        count=int(dup.sum()),
                        examples=", ".join(f"{e} {'/'.join(kk)}" for e in examples),
                    )
                )
            out[kk] = (p, values[rows])
        return out

    def _cluster(self, column: str) -> np.ndarray:
        meta = self.scores.metadata
        if meta is not None and column in meta.columns:
            m = meta.copy()
            m.index = m.index.astype(str)
            col = m[column].reindex(self.cases)
        elif column in self._groups_table.columns:
            col = self._groups_table[column]
        else:
            valid = sorted(
                set(meta.columns if meta is not None else []) | set(self._groups_table.columns)
            )
            raise AuditError(UNKNOWN_CLUSTER.format(name=column, valid=", ".join(map(str, valid))))
        labels = col.astype(object).where(col.notna(), UNKNOWN_LABEL).astype(str)
        _, codes = np.unique(labels.to_numpy(dtype=object).astype(str), return_inverse=True)
        return codes.astype(np.int64)

    def grouping(self, by: ByArg) -> Groups:
        key = (by,) if isinstance(by, str) else tuple(by)
        if not key:
            raise AuditError(
                UNKNOWN_ATTRIBUTE.format(name="", valid=", ".join(self.scores.attributes))
            )
        cached = self._groups_cache.get(key)
        if cached is not None:
            return cached
        for a in key:
            if a not in self._groups_table.columns:
                raise AuditError(
                    UNKNOWN_ATTRIBUTE.format(
                        name=a, valid=", ".join(map(str, self._groups_table.columns))
                    )
                )
        levels: list[list[str]] = []
        codes_list: list[np.ndarray] = []
        for a in key:
            labels, codes = _encode(self._groups_table[a])
            levels.append(labels)
            codes_list.append(codes)
        if len(key) == 1:
            labels_t, codes = tuple(levels[0]), codes_list[0]
        else:
            # only combinations that occur, ordered by the levels of each attribute
            stacked = np.stack(codes_list, axis=1)
            combos, codes = np.unique(stacked, axis=0, return_inverse=True)
            labels_t = tuple(JOIN.join(levels[i][c] for i, c in enumerate(row)) for row in combos)
            codes = codes.reshape(-1)
        design = build_design(
            codes,
            labels_t,
            key=key,
            n_boot=self.n_boot,
            seed=self.seed,
            clusters=self._cluster_codes,
        )
        out = Groups(
            key=key,
            name=JOIN.join(key),
            labels=labels_t,
            codes=np.asarray(codes, dtype=np.int64),
            design=design,
        )
        self._groups_cache[key] = out
        return out

    def _check_model(self, model: str) -> None:
        if model not in self.scores.models:
            raise AuditError(UNKNOWN_MODEL.format(name=model, valid=", ".join(self.scores.models)))

    def _check_ruler(self, ruler: str) -> None:
        if ruler not in self.scores.rulers:
            raise AuditError(UNKNOWN_RULER.format(name=ruler, valid=", ".join(self.scores.rulers)))

    def series(self, metric: str, *, model: str, ruler: str) -> Series:
        self._check_model(model)
        self._check_ruler(ruler)
        idx = self._score_index

        def unknown() -> str:
            valid = sorted({k[2] for k in idx if k[0] == model and k[1] == ruler})
            return UNKNOWN_METRIC.format(
                name=metric, model=model, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("score", metric, model, ruler),
            idx.get((model, ruler, metric)),
            unknown,
            f"{model} @ {ruler}",
            metric,
        )

    def agreement_series(self, metric: str, *, ruler: str) -> Series:
        self._check_ruler(ruler)
        idx = self._agreement_index

        def unknown() -> str:
            valid = sorted({k[1] for k in idx if k[0] == ruler})
            return UNKNOWN_AGREEMENT.format(
                name=metric, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("agreement", metric, ruler),
            idx.get((ruler, metric)),
            unknown,
            f"{ruler} vs {self.scores.trusted_ruler}",
            metric,
        )

    def descriptor_series(self, name: str, *, ruler: str) -> Series:
        idx = self._morph_index

        def unknown() -> str:
            valid = sorted({k[0] for k in idx if k[1] == ruler})
            return UNKNOWN_DESCRIPTOR.format(
                name=name, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("descriptor", name, ruler), idx.get((name, ruler)), unknown, f"{name} ({ruler})", name
        )

    def _cached(
        self,
        key: tuple[Any, ...],
        found: tuple[np.ndarray, np.ndarray] | None,
        unknown: Callable[[], str],
        label: str,
        metric: str,
    ) -> Series:
        """One per-case series, prepared once: ``found`` is its (positions, values) in the
        index, None when the index has no such series (``unknown()`` says what it has)."""
        hit = self._series_cache.get(key)
        if hit is not None:
            return hit
        if found is None:
            raise AuditError(unknown())
        s = self._prepare(key, label, metric, *found)
        self._series_cache[key] = s
        return s

    def _prepare(
        self, key: tuple[Any, ...], label: str, metric: str, pos: np.ndarray, values: np.ndarray
    ) -> Series:
        n = len(self.cases)
        raw = np.full(n, np.nan)
        raw[pos] = values
        present = np.zeros(n, dtype=bool)
        present[pos] = True
        capped = np.zeros(n, dtype=bool)
        if metric in DISTANCE_METRICS:
            # a missed lesion has no finite distance; MAMA-MIA scores it at the cap
            capped = present & np.isposinf(raw)
            raw = np.where(capped, self.cap, raw)
        raw = np.where(np.isfinite(raw), raw, np.nan)
        undefined = present & np.isnan(raw)
        return Series(
            key=key, label=label, x=raw, present=present, capped=capped, undefined=undefined
        )

    def _reps(self, g: Groups, series: Sequence[Series], statistic: Statistic) -> Replicates:
        key = (g.key, tuple(s.key for s in series), statistic)
        hit = self._reps_cache.get(key)
        if hit is not None:
            return hit
        x = np.stack([s.x for s in series], axis=1)
        out = group_statistic(g.design, x, statistic, self.case_weights(series))
        self._reps_cache[key] = out
        return out

    def labelled_mask(self) -> np.ndarray:
        """Which cases (in cohort order, :attr:`cases`) carry a score on the trusted ruler.

        Example
        -------
        >>> int(Audit(example_scores(), n_boot=200).labelled_mask().sum())
        40
        """
        mask = np.zeros(len(self.cases), dtype=bool)
        for (_, r, _), (pos, _) in self._score_index.items():
            if r == self.scores.trusted_ruler:
                mask[pos] = True
        return mask

    def case_weights(self, series: Sequence[Series]) -> np.ndarray | None:
        """Design weights per case and series, or None when no series is from the sample.

        A series is weighted when every case it holds is in the trusted ruler's labelled
        sample (and that sample is not the whole cohort); its availability is then set by the
        sampling design. A complete series (an automated ruler) keeps weight 1.
        """
        if self.design_weights is None:
            return None
        cached = getattr(self, "_design_cache", None)
        if cached is None:
            sampled = self.labelled_mask()
            w = pd.to_numeric(self.design_weights, errors="coerce")
            w.index = w.index.astype(str)
            wv = w.reindex(self.cases).to_numpy(dtype=np.float64)
            wv = np.where(np.isfinite(wv) & (wv > 0), wv, 1.0)
            cached = (sampled, wv)
            self._design_cache = cached
        sampled, wv = cached
        if sampled.all():
            return None
        cols = [wv if not (s.present & ~sampled).any() else np.ones_like(wv) for s in series]
        if all(c is not wv for c in cols):
            return None
        return np.stack(cols, axis=1)

    def _conf(self, confidence: float | None) -> float:
        if confidence is None:
            return self.confidence
        _check_confidence(confidence)
        return float(confidence)

    def _select(self, g: Groups, groups: Iterable[str] | None) -> np.ndarray:
        if groups is None:
            return np.arange(len(g.labels))
        wanted = list(groups)
        for w in wanted:
            if w not in g.labels:
                raise AuditError(UNKNOWN_GROUP.format(name=w, by=g.name, valid=", ".join(g.labels)))
        return np.array([i for i, lab in enumerate(g.labels) if lab in set(wanted)], dtype=int)

    def _counts(self, g: Groups, mask: np.ndarray) -> np.ndarray:
        return np.bincount(g.codes[mask], minlength=len(g.labels))

    # -- building blocks -----------------------------------------------------------------------

    def _group_table(
        self, g: Groups, reps: Replicates, s: int, series: Series, conf: float
    ) -> tuple[pd.DataFrame, pd.Series, list[str]]:
        notes: list[str] = []
        n = reps.n[:, s]
        lo, hi = percentile_interval(reps.reps[:, :, s], conf)
        ok = self._interval_ok(g, n)
        lo = np.where(ok, lo, np.nan)
        hi = np.where(ok, hi, np.nan)
        for i, lab in enumerate(g.labels):
            if n[i] == 0:
                notes.append(f"group {lab!r} has no values of {series.label}: no estimate")
            elif n[i] == 1:
                notes.append(f"group {lab!r} has a single value of {series.label}: no interval")
            elif g.design.clustered and g.design.n_clusters[i] < 2:
                notes.append(f"group {lab!r} spans a single cluster: no interval")
        capped = self._counts(g, series.capped)
        undefined = self._counts(g, series.undefined)
        frame = pd.DataFrame(
            {
                "n": n.astype(np.int64),
                "estimate": reps.estimate[:, s],
                "lower": lo,
                "upper": hi,
                "capped": capped.astype(np.int64),
                "undefined": undefined.astype(np.int64),
            },
            index=pd.Index(list(g.labels), name=g.name),
        )
        olo, ohi = percentile_interval(reps.overall_reps[:, s], conf)
        n_all = int(n.sum())
        overall = pd.Series(
            {
                "n": n_all,
                "estimate": float(reps.overall[s]),
                "lower": float(olo) if n_all > 1 else float("nan"),
                "upper": float(ohi) if n_all > 1 else float("nan"),
                "capped": int(capped.sum()),
                "undefined": int(undefined.sum()),
            },
            name="overall",
            dtype=np.float64,
        )
        if int(undefined.sum()):
            notes.append(
                f"{int(undefined.sum())} undefined value(s) of {series.label} left out "
                "(counted per group in 'undefined')"
            )
        return frame, overall, notes

    def _interval_ok(self, g: Groups, n: np.ndarray) -> np.ndarray:
        ok = n >= 2
        if g.design.clustered:
            ok &= g.design.n_clusters >= 2
        return np.asarray(ok)

    def _contrast_gap(
        self, g: Groups, reps: Replicates, s: int, sel: np.ndarray, conf: float
    ) -> tuple[Estimate, np.ndarray, list[str]]:
        """Gap over ``sel`` groups; returns its Estimate, the groups used and notes."""
        notes: list[str] = []
        n = reps.n[sel, s]
        used = sel[n > 0]
        for i in sel[n == 0]:
            notes.append(f"group {g.labels[i]!r} has no values and is left out of the gap")
        if len(used) < 2:
            notes.append("fewer than two groups with values: no gap")
            return _nan_estimate(conf), used, notes
        est = reps.estimate[used, s]
        rr = reps.reps[:, used, s]
        i, j = np.triu_indices(len(used), k=1)
        e, lo, hi = max_abs_interval(est[i] - est[j], rr[:, i] - rr[:, j], conf)
        if not self._interval_ok(g, reps.n[:, s])[used].all():
            lo = hi = float("nan")
            notes.append(
                "a group without an interval (n = 1 or a single cluster) leaves the gap without one"
            )
        dropped = int(np.isnan(rr).any(axis=1).sum())
        if dropped:
            notes.append(
                f"{dropped} of {rr.shape[0]} resamples held no value of some group and "
                "were left out of the intervals"
            )
        return Estimate(e, lo, hi, conf), used, notes

    def _plugin_gap_reps(self, reps: Replicates, s: int, used: np.ndarray) -> np.ndarray:
        rr = reps.reps[:, used, s]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = rr.max(axis=1) - rr.min(axis=1)
        return np.asarray(out)

    # -- public statistics ---------------------------------------------------------------------

    def group_sizes(
        self, *, by: ByArg, model: str | None = None, ruler: str | None = None
    ) -> pd.Series:
        """Number of cases per group: in the cohort, or with a score of ``model`` / on ``ruler``.

        Examples
        --------
        >>> Audit(example_scores(), n_boot=200).group_sizes(by="age", ruler="expert").tolist()
        [20, 20]
        """
        g = self.grouping(by)
        if model is not None:
            self._check_model(model)
        if ruler is not None:
            self._check_ruler(ruler)
        if model is None and ruler is None:
            mask = np.ones(len(self.cases), dtype=bool)
        else:
            mask = np.zeros(len(self.cases), dtype=bool)
            for (m, r, _), (pos, _) in self._score_index.items():
                if (model is None or m == model) and (ruler is None or r == ruler):
                    mask[pos] = True
        return pd.Series(
            self._counts(g, mask), index=pd.Index(list(g.labels), name=g.name), name="n"
        )

    def by_group(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> GroupEstimates:
        """Estimate and interval of ``metric`` per group.

        Parameters
        ----------
        metric
            A metric of the score table (e.g. ``"dice"``).
        by
            An attribute, or a list of attributes for intersectional groups.
        model
            Model name.
        ruler
            Ruler name (default: the trusted ruler).
        confidence
            Override of the audit's level.

        Returns
        -------
        GroupEstimates
            ``.by_group`` (index group; ``n, estimate, lower, upper, capped, undefined``) and
            ``.overall``.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.by_group("dice", by="age", model="m").by_group["n"].tolist()
        [20, 20]
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        series = self.series(metric, model=model, ruler=ruler)
        g = self.grouping(by)
        reps = self._reps(g, [series], self.statistic)
        frame, overall, notes = self._group_table(g, reps, 0, series, conf)
        return GroupEstimates(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            statistic=self.statistic,
            confidence=conf,
            by_group=frame,
            overall=overall,
            notes=tuple(notes),
        )

    def gap(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        reference: str | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> GapResult:
        """The gap (max − min) across groups, the ratio, the distance to overall and to a reference.

        Parameters
        ----------
        metric, by, model, ruler, confidence
            As in :meth:`by_group`.
        reference
            A group to compare every other group with.
        groups
            Restrict the comparison to these groups (default: all with values).

        Returns
        -------
        GapResult

        Notes
        -----
        The interval of the gap comes from the pairwise contrasts of the group estimates
        (:func:`segfair.stats.max_abs_interval`), which keeps the upper bound's error rate at
        ``(1 - confidence) / 2`` even where the plug-in max − min is biased upward.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.gap("dice", by="age", model="m", reference="old")
        >>> round(r.gap.estimate, 3), round(r.ratio.estimate, 3)
        (0.1, 0.875)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        series = self.series(metric, model=model, ruler=ruler)
        return self._gap_of(
            series,
            metric=metric,
            by=by,
            model=model,
            ruler=ruler,
            reference=reference,
            groups=groups,
            confidence=confidence,
            statistic=self.statistic,
        )

    def _gap_of(
        self,
        series: Series,
        *,
        metric: str,
        by: ByArg,
        model: str | None,
        ruler: str | None,
        reference: str | None,
        groups: Sequence[str] | None,
        confidence: float | None,
        statistic: Statistic,
    ) -> GapResult:
        conf = self._conf(confidence)
        g = self.grouping(by)
        sel = self._select(g, groups)
        reps = self._reps(g, [series], statistic)
        frame, overall, notes = self._group_table(g, reps, 0, series, conf)
        gap, used, gnotes = self._contrast_gap(g, reps, 0, sel, conf)
        notes += gnotes
        est = reps.estimate[used, 0]
        rr = reps.reps[:, used, 0]
        interval_ok = bool(self._interval_ok(g, reps.n[:, 0])[used].all())
        ratio = _nan_estimate(conf)
        to_overall = _nan_estimate(conf)
        max_group = min_group = None
        if len(used) >= 2:
            r_e, r_lo, r_hi = ratio_interval(est, rr, conf)
            if np.isnan(r_e):
                notes.append("a group estimate is negative: no ratio")
            ratio = Estimate(
                r_e, r_lo if interval_ok else np.nan, r_hi if interval_ok else np.nan, conf
            )
            o_e, o_lo, o_hi = max_abs_interval(
                est - reps.overall[0], rr - reps.overall_reps[:, [0]], conf
            )
            to_overall = Estimate(
                o_e, o_lo if interval_ok else np.nan, o_hi if interval_ok else np.nan, conf
            )
            max_group = g.labels[used[int(np.argmax(est))]]
            min_group = g.labels[used[int(np.argmin(est))]]
        to_reference = None
        differences = None
        if reference is not None:
            self._select(g, [reference])
            ref = g.labels.index(reference)
            lo, hi = percentile_interval(reps.reps[:, :, 0] - reps.reps[:, [ref], 0], conf)
            ok = self._interval_ok(g, reps.n[:, 0]) & self._interval_ok(g, reps.n[:, 0])[ref]
            d = reps.estimate[:, 0] - reps.estimate[ref, 0]
            differences = pd.DataFrame(
                {
                    "estimate": d,
                    "lower": np.where(ok, lo, np.nan),
                    "upper": np.where(ok, hi, np.nan),
                },
                index=pd.Index(list(g.labels), name=g.name),
            ).loc[[g.labels[i] for i in sel]]
            others = np.array([i for i in used if i != ref], dtype=int)
            if reps.n[ref, 0] > 0 and len(others):
                t_e, t_lo, t_hi = max_abs_interval(
                    d[others], reps.reps[:, others, 0] - reps.reps[:, [ref], 0], conf
                )
                good = interval_ok and bool(ok[ref])
                to_reference = Estimate(
                    t_e, t_lo if good else np.nan, t_hi if good else np.nan, conf
                )
            else:
                to_reference = _nan_estimate(conf)
        return GapResult(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            statistic=statistic,
            confidence=conf,
            gap=gap,
            ratio=ratio,
            to_overall=to_overall,
            by_group=frame.loc[[g.labels[i] for i in sel]],
            overall=overall,
            max_group=max_group,
            min_group=min_group,
            reference=reference,
            to_reference=to_reference,
            differences=differences,
            notes=tuple(notes),
        )

    def dpd_dir(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        threshold: float = 0.8,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> RateResult:
        """Rate of cases with ``metric > threshold`` per group; DPD (max − min) and DIR (min/max).

        As Parikh et al.: DPD is the demographic-parity difference of the success rates, DIR the
        disparate-impact ratio (flagged under 0.8, the four-fifths rule). Undefined values are
        left out of the rates and counted.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.dpd_dir("dice", by="age", model="m", threshold=0.75)
        >>> r.by_group["estimate"].tolist(), r.dpd.estimate, r.dir.estimate
        ([0.0, 1.0], 1.0, 0.0)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        base = self.series(metric, model=model, ruler=ruler)
        key = ("rate", metric, model, ruler, float(threshold))
        rate = self._series_cache.get(key)
        if rate is None:
            ind = np.where(base.valid, (base.x > threshold).astype(float), np.nan)
            rate = Series(
                key=key,
                label=f"{base.label} ({metric} > {threshold:g})",
                x=ind,
                present=base.present,
                capped=base.capped,
                undefined=base.undefined,
            )
            self._series_cache[key] = rate
        res = self._gap_of(
            rate,
            metric=metric,
            by=by,
            model=model,
            ruler=ruler,
            reference=None,
            groups=groups,
            confidence=confidence,
            statistic="mean",
        )
        return RateResult(
            metric=metric,
            by=res.by,
            model=model,
            ruler=ruler,
            threshold=float(threshold),
            confidence=res.confidence,
            by_group=res.by_group,
            overall=res.overall,
            dpd=res.gap,
            dir=res.ratio,
            notes=res.notes,
        )

    def equity_scaled(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> EquityResult:
        """Equity-scaled score ``ES = overall / (1 + Σ_g |mean_g − overall|)`` (FairSeg).

        Uses means whatever the audit's ``statistic`` (the published definition). The interval is
        the percentile interval of the replicates; like any sum of absolute differences, the
        penalty is biased upward when the groups are close (ES biased downward).

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.equity_scaled("dice", by="age", model="m").es.estimate, 4)
        0.6818
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        series = self.series(metric, model=model, ruler=ruler)
        g = self.grouping(by)
        reps = self._reps(g, [series], "mean")
        frame, overall, notes = self._group_table(g, reps, 0, series, conf)
        has = reps.n[:, 0] > 0
        est = reps.overall[0] / (1 + np.abs(reps.estimate[has, 0] - reps.overall[0]).sum())
        rr = reps.overall_reps[:, 0] / (
            1 + np.abs(reps.reps[:, has, 0] - reps.overall_reps[:, [0]]).sum(axis=1)
        )
        lo_a, hi_a = percentile_interval(rr, conf)
        lo, hi = float(lo_a), float(hi_a)
        if not self._interval_ok(g, reps.n[:, 0])[has].all():
            lo = hi = float("nan")
        return EquityResult(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            confidence=conf,
            es=Estimate(float(est), float(lo), float(hi), conf),
            by_group=frame,
            overall=overall,
            notes=tuple(notes),
        )

    def mamamia_fairness(
        self,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> MamaMiaResult:
        """MAMA-MIA fairness score ``1 − 0.5 (gap(Dice) + gap(NormHD))``.

        NormHD = ``min(HD95 / cap, 1)`` per case (a missed lesion scores 1), gaps are max − min
        of group means. The score's bounds combine each gap's bound at half the error rate
        (Bonferroni), so the lower bound errs with probability at most ``(1 - confidence) / 2``.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.mamamia_fairness(by="age", model="m").score.estimate, 3)
        0.917
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        half = 1 - (1 - conf) / 2
        dice = self.series("dice", model=model, ruler=ruler)
        hd = self.series("hd95", model=model, ruler=ruler)
        key = ("normhd", model, ruler, self.cap)
        norm = self._series_cache.get(key)
        if norm is None:
            norm = Series(
                key=key,
                label=f"{model} @ {ruler} (NormHD)",
                x=np.minimum(hd.x / self.cap, 1.0),
                present=hd.present,
                capped=hd.capped,
                undefined=hd.undefined,
            )
            self._series_cache[key] = norm
        parts = []
        for s, name in ((dice, "dice"), (norm, "normhd")):
            r = self._gap_of(
                s,
                metric=name,
                by=by,
                model=model,
                ruler=ruler,
                reference=None,
                groups=None,
                confidence=conf,
                statistic="mean",
            )
            r_half = self._gap_of(
                s,
                metric=name,
                by=by,
                model=model,
                ruler=ruler,
                reference=None,
                groups=None,
                confidence=half,
                statistic="mean",
            )
            parts.append((r, r_half))
        (d, dh), (h, hh) = parts
        score = Estimate(
            1 - 0.5 * (d.gap.estimate + h.gap.estimate),
            1 - 0.5 * (dh.gap.upper + hh.gap.upper),
            1 - 0.5 * (dh.gap.lower + hh.gap.lower),
            conf,
        )

        def mk(r: GapResult) -> GroupEstimates:
            return GroupEstimates(
                metric=r.metric,
                by=r.by,
                model=model,
                ruler=ruler,
                statistic="mean",
                confidence=conf,
                by_group=r.by_group,
                overall=r.overall,
                notes=r.notes,
            )

        return MamaMiaResult(
            by=d.by,
            model=model,
            ruler=ruler,
            confidence=conf,
            score=score,
            dice_gap=d.gap,
            normhd_gap=h.gap,
            dice=mk(d),
            normhd=mk(h),
            notes=d.notes + h.notes,
        )

    def _paired(
        self,
        a: Series,
        b: Series,
        *,
        by: ByArg,
        groups: Sequence[str] | None,
        conf: float,
        names: tuple[str, str],
    ) -> tuple[dict[str, Any], list[str]]:
        """Gaps of two series on their common cases, with paired replicates."""
        valid = a.valid & b.valid
        present = a.present & b.present
        ra = a.restrict(valid, present, ("paired", b.key))
        rb = b.restrict(valid, present, ("paired", a.key))
        g = self.grouping(by)
        sel = self._select(g, groups)
        reps = self._reps(g, [ra, rb], self.statistic)
        notes: list[str] = []
        dropped = int((a.valid ^ b.valid).sum())
        if dropped:
            notes.append(
                f"{dropped} case(s) scored on only one side (or undefined on one) are "
                "left out so that both gaps use the same cases"
            )
        tables = []
        for s, series in enumerate((ra, rb)):
            frame, _, tnotes = self._group_table(g, reps, s, series, conf)
            tables.append(frame.loc[[g.labels[i] for i in sel]])
            notes += [t for t in tnotes if t not in notes]
        gap_a, used, n1 = self._contrast_gap(g, reps, 0, sel, conf)
        gap_b, _, n2 = self._contrast_gap(g, reps, 1, sel, conf)
        notes += [t for t in n1 + n2 if t not in notes]
        pa = self._plugin_gap_reps(reps, 0, used)
        pb = self._plugin_gap_reps(reps, 1, used)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = pa / pb - 1
            rel_est = gap_a.estimate / gap_b.estimate - 1 if gap_b.estimate else float("nan")
        ok = not (math.isnan(gap_a.lower) or math.isnan(gap_b.lower))
        lo, hi = (float(v) for v in percentile_interval(rel, conf))
        dlo, dhi = (float(v) for v in percentile_interval(pa - pb, conf))
        if not ok:
            lo = hi = dlo = dhi = float("nan")
        by_group = pd.concat(dict(zip(names, tables, strict=True)), names=["source", g.name])
        return {
            "key": g.key,
            "gap_a": gap_a,
            "gap_b": gap_b,
            "rel": Estimate(float(rel_est), float(lo), float(hi), conf),
            "diff": Estimate(gap_a.estimate - gap_b.estimate, float(dlo), float(dhi), conf),
            "by_group": by_group,
        }, notes

    def negligible_for(self, metric: str, negligible: float | None) -> float:
        if negligible is None:
            return NEGLIGIBLE_DISTANCE_GAP if metric in DISTANCE_METRICS else NEGLIGIBLE_GAP
        if not isinstance(negligible, int | float) or not negligible >= 0:
            raise AuditError(BAD_NEGLIGIBLE.format(value=negligible))
        return float(negligible)

    def ruler_distortion(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        automated: str,
        trusted: str | None = None,
        negligible: float | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> DistortionResult:
        """How scoring on an automated ruler changes the gap: shrinkage, inflation, hidden gap.

        Both gaps are computed on the cases scored on both rulers with the *same* resamples, so
        ``distortion = gap(automated) / gap(trusted) − 1`` and ``hidden_gap = gap(trusted) −
        gap(automated)`` have paired percentile intervals (identical rulers give exactly 0).

        Parameters
        ----------
        metric, by, model, confidence
            As in :meth:`gap`.
        automated
            The automated ruler.
        trusted
            The trusted ruler (default: ``scores.trusted_ruler``).
        negligible
            A trusted gap not shown to exceed this (its lower bound ≤ ``negligible``) makes the
            ratios undefined (``defined=False``). Default 0.01 (1 mm for distances).
        groups
            Restrict to these groups.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.ruler_distortion("dice", by="age", model="m", automated="auto")
        >>> round(r.shrinkage.estimate, 2), round(r.hidden_gap.estimate, 3)
        (0.5, 0.05)
        """
        trusted = self.scores.trusted_ruler if trusted is None else trusted
        conf = self._conf(confidence)
        neg = self.negligible_for(metric, negligible)
        t = self.series(metric, model=model, ruler=trusted)
        a = self.series(metric, model=model, ruler=automated)
        out, notes = self._paired(a, t, by=by, groups=groups, conf=conf, names=(automated, trusted))
        gap_t: Estimate = out["gap_b"]
        defined = bool(gap_t.lower > neg)
        if not defined:
            notes.append(
                f"the trusted gap is not shown to exceed negligible = {neg:g} (lower "
                f"bound {_fmt(gap_t.lower)}): distortion is undefined, read the hidden "
                "gap in metric units"
            )
        rel: Estimate = out["rel"]
        diff: Estimate = out["diff"]
        by_group = out["by_group"]
        by_group.index = by_group.index.set_names(["ruler", by_group.index.names[1]])
        return DistortionResult(
            metric=metric,
            by=out["key"],
            model=model,
            automated=automated,
            trusted=trusted,
            confidence=conf,
            negligible=neg,
            defined=defined,
            gap_trusted=gap_t,
            gap_automated=out["gap_a"],
            distortion=rel,
            shrinkage=_negative_side(rel),
            inflation=_positive_side(rel),
            hidden_gap=Estimate(0.0 - diff.estimate, 0.0 - diff.upper, 0.0 - diff.lower, conf),
            by_group=by_group,
            notes=tuple(notes),
        )

    def amplification(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        baseline: str,
        ruler: str | None = None,
        negligible: float | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> AmplificationResult:
        """``gap(model) / gap(baseline) − 1`` on one ruler (default trusted), paired.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.amplification("dice", by="age", model="m2", baseline="m")
        >>> round(r.amplification.estimate, 2)
        0.5
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        neg = self.negligible_for(metric, negligible)
        m = self.series(metric, model=model, ruler=ruler)
        b = self.series(metric, model=baseline, ruler=ruler)
        out, notes = self._paired(m, b, by=by, groups=groups, conf=conf, names=(model, baseline))
        gap_b: Estimate = out["gap_b"]
        defined = bool(gap_b.lower > neg)
        if not defined:
            notes.append(
                f"the baseline gap is not shown to exceed negligible = {neg:g} (lower "
                f"bound {_fmt(gap_b.lower)}): amplification is undefined, read the "
                "added gap in metric units"
            )
        by_group = out["by_group"]
        by_group.index = by_group.index.set_names(["model", by_group.index.names[1]])
        return AmplificationResult(
            metric=metric,
            by=out["key"],
            model=model,
            baseline=baseline,
            ruler=ruler,
            confidence=conf,
            negligible=neg,
            defined=defined,
            gap_model=out["gap_a"],
            gap_baseline=gap_b,
            amplification=out["rel"],
            added_gap=out["diff"],
            by_group=by_group,
            notes=tuple(notes),
        )

    def label_audit(
        self,
        *,
        by: ByArg,
        automated: str | Sequence[str] | None = None,
        metrics: Sequence[str] = ("dice", "hd95"),
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> LabelAuditResult:
        """Agreement of each automated ruler with the trusted one, per group, and its gap.

        Metrics absent from ``scores.agreement`` are skipped with a note.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.label_audit(by="age", metrics=("dice",))
        >>> r.gaps["estimate"].round(2).tolist()
        [0.1]
        """
        conf = self._conf(confidence)
        trusted = self.scores.trusted_ruler
        if automated is None:
            rulers = [r for r in self.scores.rulers if r != trusted]
        else:
            rulers = [automated] if isinstance(automated, str) else list(automated)
        results: dict[tuple[str, str], GapResult] = {}
        notes: list[str] = []
        if not rulers:
            notes.append(f"no automated ruler: only the trusted ruler {trusted!r} is configured")
        for r in rulers:
            self._check_ruler(r)
            for metric in metrics:
                if (r, metric) not in self._agreement_index:
                    notes.append(f"no agreement scores of {metric!r} for ruler {r!r}")
                    continue
                s = self.agreement_series(metric, ruler=r)
                results[(r, metric)] = self._gap_of(
                    s,
                    metric=metric,
                    by=by,
                    model=None,
                    ruler=r,
                    reference=None,
                    groups=groups,
                    confidence=conf,
                    statistic=self.statistic,
                )
        g = self.grouping(by)
        if results:
            by_group = pd.concat(
                {k: v.by_group for k, v in results.items()}, names=["ruler", "metric", g.name]
            )
        else:
            by_group = pd.DataFrame(
                columns=list(GROUP_COLUMNS),
                index=pd.MultiIndex.from_tuples([], names=["ruler", "metric", g.name]),
            )
        gaps = pd.DataFrame(
            {
                "estimate": [v.gap.estimate for v in results.values()],
                "lower": [v.gap.lower for v in results.values()],
                "upper": [v.gap.upper for v in results.values()],
                "min_group": [v.min_group for v in results.values()],
                "max_group": [v.max_group for v in results.values()],
            },
            index=pd.MultiIndex.from_tuples(list(results), names=["ruler", "metric"]),
        )
        for v in results.values():
            notes += [n for n in v.notes if n not in notes]
        return LabelAuditResult(
            by=g.key,
            trusted=trusted,
            confidence=conf,
            by_group=by_group,
            gaps=gaps,
            results=results,
            notes=tuple(notes),
        )

    def plan(
        self,
        gate: Any,
        *,
        target_halfwidth: float | None = None,
        power: float = 0.8,
        confidence: float | None = None,
    ) -> Any:
        """How many more trusted labels per group would make ``gate`` conclusive.

        A thin front to :func:`segfair.planner.plan`; returns a
        :class:`~segfair.planner.GatePlan`.
        """
        from segfair.planner import plan

        return plan(
            self, gate, target_halfwidth=target_halfwidth, power=power, confidence=confidence
        )

    def _covariate(self, stratify: str, ruler: str) -> tuple[pd.Series, bool]:
        """Per-case covariate in cohort order and whether it is numeric."""
        meta = self.scores.metadata
        if meta is not None and stratify in meta.columns:
            m = meta.copy()
            m.index = m.index.astype(str)
            col = m[stratify].reindex(self.cases)
            num = pd.to_numeric(col, errors="coerce")
            numeric = bool(num.notna().sum() > 0 and num.notna().sum() == col.notna().sum())
            return (num if numeric else col.astype(object)), numeric
        if (stratify, ruler) in self._morph_index:
            s = self.descriptor_series(stratify, ruler=ruler)
            return pd.Series(s.x, index=self.cases), True
        valid = sorted(
            set(meta.columns.astype(str) if meta is not None else [])
            | {k[0] for k in self._morph_index if k[1] == ruler}
        )
        raise AuditError(
            UNKNOWN_COVARIATE.format(name=stratify, ruler=ruler, valid=", ".join(valid) or "(none)")
        )

    def controlled_gap(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        stratify: str,
        bins: int = 3,
        ruler: str | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> ControlledGapResult:
        """The gap with a difficulty covariate held fixed, by direct standardisation.

        ``stratify`` is a metadata column or a morphology descriptor of the trusted ruler's masks
        (e.g. ``"volume_ml"``). Numeric covariates are cut at their quantiles into ``bins``
        strata (over all cases); others use their values. Cases without the covariate form a
        stratum ``"missing"``. Each group's standardised estimate is the mean of its
        within-stratum means weighted by the overall stratum shares; strata where some group has
        no case are outside the common support and left out (listed, weights renormalised). The
        gap of the standardised means gets the same pairwise-contrast interval as :meth:`gap`,
        with the same resamples (weights held fixed).

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.controlled_gap("dice", by="age", model="m", stratify="volume_ml", bins=2)
        >>> round(r.gap.estimate, 2), round(r.crude_gap.estimate, 2)
        (0.1, 0.1)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise AuditError(BAD_BINS.format(value=bins))
        series = self.series(metric, model=model, ruler=ruler)
        cov, numeric = self._covariate(stratify, self.scores.trusted_ruler)
        if numeric:
            cut = pd.qcut(cov, q=bins, duplicates="drop")
            labels = [f"Q{i + 1} {iv}" for i, iv in enumerate(cut.cat.categories)]
            strata = pd.Series(cut.cat.codes.to_numpy(), index=self.cases)
            s_labels = list(labels)
        else:
            values = cov.astype(str)
            s_labels = sorted(set(values[cov.notna()]))
            strata = pd.Series(
                [
                    s_labels.index(v) if ok else -1
                    for v, ok in zip(values, cov.notna(), strict=True)
                ],
                index=self.cases,
            )
        codes = strata.to_numpy().astype(np.int64)
        if (codes < 0).any():
            s_labels.append("missing")
            codes = np.where(codes < 0, len(s_labels) - 1, codes)
        g = self.grouping(by)
        sel = self._select(g, groups)
        notes: list[str] = []
        # one series per stratum on the same design: the replicates stay paired across strata
        parts = []
        for k in range(len(s_labels)):
            mask = codes == k
            parts.append(
                series.restrict(
                    series.valid & mask, series.present & mask, ("stratum", stratify, bins, k)
                )
            )
        reps = self._reps(g, parts, self.statistic)
        cell_n = reps.n[sel, :]  # (G_sel, S)
        empty = [
            (s_labels[k], g.labels[sel[i]])
            for i in range(len(sel))
            for k in range(len(s_labels))
            if cell_n[i, k] == 0
        ]
        active = [i for i in range(len(sel)) if cell_n[i].sum() > 0]
        for i in range(len(sel)):
            if i not in active:
                notes.append(f"group {g.labels[sel[i]]!r} has no values and is left out")
        use = np.array([sel[i] for i in active], dtype=int)
        support = np.array(
            [k for k in range(len(s_labels)) if len(active) and (reps.n[use, k] > 0).all()],
            dtype=int,
        )
        excluded = tuple(s_labels[k] for k in range(len(s_labels)) if k not in set(support))
        if excluded:
            notes.append(
                f"strata {list(excluded)} hold an empty cell and are left out of the "
                "standardisation (common support)"
            )
        totals = reps.n[use][:, support].sum(axis=0).astype(float)
        weights = totals / totals.sum() if totals.sum() > 0 else totals
        std_est = (
            (reps.estimate[use][:, support] * weights).sum(axis=1)
            if len(support)
            else np.full(len(use), np.nan)
        )
        std_reps = (
            (reps.reps[:, use][:, :, support] * weights).sum(axis=2)
            if len(support)
            else np.full((g.design.n_boot, len(use)), np.nan)
        )
        if len(support) and np.isnan(reps.reps[:, use][:, :, support]).any():
            bad = np.isnan(reps.reps[:, use][:, :, support]).any(axis=(1, 2))
            std_reps[bad] = np.nan
            notes.append(
                f"{int(bad.sum())} of {g.design.n_boot} resamples emptied a cell and "
                "were left out of the intervals"
            )
        ok = self._interval_ok(
            g, reps.n[:, support].sum(axis=1) if len(support) else np.zeros(len(g.labels), int)
        )[use]
        if len(use) >= 2 and len(support):
            pi, pj = np.triu_indices(len(use), k=1)
            e, lo, hi = max_abs_interval(
                std_est[pi] - std_est[pj], std_reps[:, pi] - std_reps[:, pj], conf
            )
            if not ok.all():
                lo = hi = float("nan")
            gap = Estimate(e, lo, hi, conf)
        else:
            gap = _nan_estimate(conf)
        # the crude gap on the same cases (those in the common-support strata)
        in_support = np.isin(codes, support)
        crude_series = series.restrict(
            series.valid & in_support, series.present & in_support, ("support", stratify, bins)
        )
        crude = self._gap_of(
            crude_series,
            metric=metric,
            by=by,
            model=model,
            ruler=ruler,
            reference=None,
            groups=[g.labels[i] for i in use] or None,
            confidence=conf,
            statistic=self.statistic,
        )
        g_lo, g_hi = percentile_interval(std_reps, conf) if len(use) else (np.array([]),) * 2
        by_group = pd.DataFrame(
            {
                "n": [int(crude.by_group.loc[g.labels[i], "n"]) for i in use],
                "crude": [float(crude.by_group.loc[g.labels[i], "estimate"]) for i in use],
                "standardised": std_est,
                "lower": np.where(ok, g_lo, np.nan),
                "upper": np.where(ok, g_hi, np.nan),
            },
            index=pd.Index([g.labels[i] for i in use], name=g.name),
        )
        strata_frame = pd.DataFrame(
            {
                "n": reps.n[sel, :].T.reshape(-1).astype(np.int64),
                "estimate": reps.estimate[sel, :].T.reshape(-1),
            },
            index=pd.MultiIndex.from_product(
                [s_labels, [g.labels[i] for i in sel]], names=["stratum", g.name]
            ),
        )
        rows = []
        for k in range(len(s_labels)):
            have = use[reps.n[use, k] > 0] if len(use) else use
            if len(have) >= 2:
                est = reps.estimate[have, k]
                rr = reps.reps[:, have, k]
                pi, pj = np.triu_indices(len(have), k=1)
                e, lo, hi = max_abs_interval(est[pi] - est[pj], rr[:, pi] - rr[:, pj], conf)
                if not self._interval_ok(g, reps.n[:, k])[have].all():
                    lo = hi = float("nan")
            else:
                e = lo = hi = float("nan")
            w = float(weights[list(support).index(k)]) if k in set(support) else 0.0
            rows.append(
                {
                    "n": int(reps.n[sel, k].sum()),
                    "weight": w,
                    "estimate": e,
                    "lower": lo,
                    "upper": hi,
                }
            )
        stratum_gaps = pd.DataFrame(rows, index=pd.Index(s_labels, name="stratum"))
        return ControlledGapResult(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            stratify=stratify,
            confidence=conf,
            gap=gap,
            crude_gap=crude.gap,
            by_group=by_group,
            strata=strata_frame,
            stratum_gaps=stratum_gaps,
            weights=pd.Series(
                weights,
                index=pd.Index([s_labels[k] for k in support], name="stratum"),
                name="weight",
            ),
            empty_cells=tuple(empty),
            excluded_strata=excluded,
            notes=tuple(notes),
        )

    def morphology_shift(
        self,
        *,
        by: ByArg,
        ruler: str | None = None,
        reference: str | None = None,
        descriptors: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> MorphologyResult:
        """Per-group distributions of each morphology descriptor of the reference masks.

        Per group: ``n, mean, sd, median, q1, q3``; against the reference group (default: the
        largest group of the cohort, ties to the first): ratio of means and variance ratio with
        paired bootstrap intervals, the Mann–Whitney p-value and the rank-biserial effect size.
        Across groups: the Kruskal–Wallis test.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.morphology_shift(by="age", reference="old")
        >>> round(float(r.by_group.loc[("volume_ml", "young"), "mean_ratio"]), 3)
        1.5
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        self._check_ruler(ruler)
        conf = self._conf(confidence)
        g = self.grouping(by)
        if reference is None:
            reference = g.labels[int(np.argmax(g.design.sizes))]
        else:
            self._select(g, [reference])
        ref = g.labels.index(reference)
        names = (
            list(descriptors)
            if descriptors is not None
            else sorted({k[0] for k in self._morph_index if k[1] == ruler})
        )
        frames = {}
        tests = []
        notes: list[str] = []
        for name in names:
            s = self.descriptor_series(name, ruler=ruler)
            sq = Series(
                key=(*s.key, "squared"),
                label=s.label,
                x=s.x**2,
                present=s.present,
                capped=s.capped,
                undefined=s.undefined,
            )
            reps = self._reps(g, [s, sq], "mean")
            n = reps.n[:, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                var = np.maximum(reps.reps[:, :, 1] - reps.reps[:, :, 0] ** 2, 0)
                nn = reps.n[:, 0].astype(float)
                var_est = np.maximum(reps.estimate[:, 1] - reps.estimate[:, 0] ** 2, 0)
                # sample variance (n - 1) for the point estimates; the ratio's replicates share
                # the same correction so it cancels when group sizes match
                var_est = var_est * nn / np.maximum(nn - 1, 1)
                mean_ratio = reps.estimate[:, 0] / reps.estimate[ref, 0]
                mr_lo, mr_hi = percentile_interval(
                    reps.reps[:, :, 0] / reps.reps[:, [ref], 0], conf
                )
                var_ratio = var_est / var_est[ref]
                vr_lo, vr_hi = percentile_interval(var / var[:, [ref]], conf)
            ok = self._interval_ok(g, n) & bool(self._interval_ok(g, n)[ref])
            vals = [s.x[(g.codes == i) & s.valid] for i in range(len(g.labels))]
            mw_p = np.full(len(g.labels), np.nan)
            rb = np.full(len(g.labels), np.nan)
            for i in range(len(g.labels)):
                if i != ref and len(vals[i]) and len(vals[ref]):
                    res = sps.mannwhitneyu(vals[i], vals[ref], alternative="two-sided")
                    mw_p[i] = float(res.pvalue)
                    rb[i] = 2 * float(res.statistic) / (len(vals[i]) * len(vals[ref])) - 1
            frames[name] = pd.DataFrame(
                {
                    "n": n.astype(np.int64),
                    "mean": reps.estimate[:, 0],
                    "sd": np.sqrt(var_est),
                    "median": [float(np.median(v)) if len(v) else np.nan for v in vals],
                    "q1": [float(np.quantile(v, 0.25)) if len(v) else np.nan for v in vals],
                    "q3": [float(np.quantile(v, 0.75)) if len(v) else np.nan for v in vals],
                    "mean_ratio": mean_ratio,
                    "mean_ratio_lower": np.where(ok, mr_lo, np.nan),
                    "mean_ratio_upper": np.where(ok, mr_hi, np.nan),
                    "var_ratio": var_ratio,
                    "var_ratio_lower": np.where(ok, vr_lo, np.nan),
                    "var_ratio_upper": np.where(ok, vr_hi, np.nan),
                    "mannwhitney_p": mw_p,
                    "rank_biserial": rb,
                },
                index=pd.Index(list(g.labels), name=g.name),
            )
            nonempty = [v for v in vals if len(v)]
            if len(nonempty) >= 2 and len(np.unique(np.concatenate(nonempty))) > 1:
                kw = sps.kruskal(*nonempty)
                tests.append(
                    {
                        "descriptor": name,
                        "kruskal_h": float(kw.statistic),
                        "kruskal_p": float(kw.pvalue),
                        "groups": len(nonempty),
                    }
                )
            else:
                tests.append(
                    {
                        "descriptor": name,
                        "kruskal_h": np.nan,
                        "kruskal_p": np.nan,
                        "groups": len(nonempty),
                    }
                )
                notes.append(f"{name}: fewer than two groups with distinct values, no test")
        if frames:
            by_group = pd.concat(frames, names=["descriptor", g.name])
        else:
            by_group = pd.DataFrame(
                index=pd.MultiIndex.from_tuples([], names=["descriptor", g.name])
            )
            notes.append(f"ruler {ruler!r} has no morphology descriptors")
        test_frame = pd.DataFrame(
            tests, columns=["descriptor", "kruskal_h", "kruskal_p", "groups"]
        ).set_index("descriptor")
        return MorphologyResult(
            by=g.key,
            ruler=ruler,
            reference=reference,
            confidence=conf,
            by_group=by_group,
            tests=test_frame,
            notes=tuple(notes),
        )

    def coverage(
        self,
        *,
        by: ByArg,
        model: str | Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> CoverageResult:
        """Cases with a usable prediction over the cases of the cohort, per group, with reasons.

        A case is covered for a model when the score table holds a row for it (against any
        ruler). Every missing case gets a reason: the recorded exclusion
        (``scores.exclusions``), else ``"no scores and no recorded exclusion"``. Coverage is a
        count over the whole cohort; the Wilson interval is given for reading only.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.coverage(by="age", model="m").by_group["coverage"].tolist()
        [1.0, 1.0]
        """
        conf = self._conf(confidence)
        if model is None:
            models = list(self.scores.models)
        else:
            models = [model] if isinstance(model, str) else list(model)
        g = self.grouping(by)
        ex = self.scores.exclusions
        rows = []
        overall_rows = []
        missing_rows: list[dict[str, str]] = []
        for m in models:
            self._check_model(m)
            covered = np.zeros(len(self.cases), dtype=bool)
            for (mm, _, _), (pos, _) in self._score_index.items():
                if mm == m:
                    covered[pos] = True
            sel = ex[(ex["source"].astype(str) == m) & (ex["kind"].astype(str) != "ruler")]
            reasons = dict(zip(sel["case_id"].astype(str), sel["reason"].astype(str), strict=True))
            for i in np.flatnonzero(~covered):
                cid = str(self.cases[i])
                missing_rows.append(
                    {
                        "case_id": cid,
                        "model": m,
                        "group": g.labels[g.codes[i]],
                        "reason": reasons.get(cid, "no scores and no recorded exclusion"),
                    }
                )
            for k, lab in enumerate(g.labels):
                in_g = g.codes == k
                exp_n = int(in_g.sum())
                cov_n = int((covered & in_g).sum())
                lo, hi = wilson_interval(cov_n, exp_n, conf)
                why: dict[str, int] = {}
                for r in missing_rows:
                    if r["model"] == m and r["group"] == lab:
                        why[r["reason"]] = why.get(r["reason"], 0) + 1
                rows.append(
                    {
                        "model": m,
                        "group": lab,
                        "expected": exp_n,
                        "covered": cov_n,
                        "coverage": cov_n / exp_n if exp_n else np.nan,
                        "lower": lo,
                        "upper": hi,
                        "missing": exp_n - cov_n,
                        "reasons": "; ".join(f"{k_}: {v}" for k_, v in sorted(why.items())),
                    }
                )
            tot = int(covered.sum())
            lo, hi = wilson_interval(tot, len(self.cases), conf)
            overall_rows.append(
                {
                    "model": m,
                    "expected": len(self.cases),
                    "covered": tot,
                    "coverage": tot / len(self.cases) if len(self.cases) else np.nan,
                    "lower": lo,
                    "upper": hi,
                    "missing": len(self.cases) - tot,
                }
            )
        by_group = pd.DataFrame(rows).set_index(["model", "group"])
        by_group.index = by_group.index.set_names(["model", g.name])
        return CoverageResult(
            by=g.key,
            confidence=conf,
            by_group=by_group,
            overall=pd.DataFrame(overall_rows).set_index("model"),
            missing=pd.DataFrame(missing_rows, columns=["case_id", "model", "group", "reason"]),
        )

    def association(
        self,
        metric: str,
        *,
        attribute: str,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> AssociationResult:
        """Kruskal–Wallis and ANOVA across an attribute's groups; OLS slope on its numeric column.

        The slope is per unit of ``scores.attribute_columns[attribute]`` in the metadata (e.g.
        Dice per year of age), with a t-based interval and p-value (``scipy.stats.linregress``).
        Distances are capped first; undefined values are left out.

        Examples
        --------
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.association("dice", attribute="age", model="m")
        >>> r.kruskal_p < 0.001, round(r.slope, 4)
        (True, 0.0033)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        s = self.series(metric, model=model, ruler=ruler)
        g = self.grouping(attribute)
        notes: list[str] = []
        vals = [s.x[(g.codes == i) & s.valid] for i in range(len(g.labels))]
        nonempty = [v for v in vals if len(v)]
        kh = kp = af = ap = float("nan")
        if len(nonempty) >= 2 and len(np.unique(np.concatenate(nonempty))) > 1:
            kw = sps.kruskal(*nonempty)
            kh, kp = float(kw.statistic), float(kw.pvalue)
            if all(len(v) >= 2 for v in nonempty):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # constant groups warn; the NaN says enough
                    an = sps.f_oneway(*nonempty)
                af, ap = float(an.statistic), float(an.pvalue)
        else:
            notes.append("fewer than two groups with distinct values: no group tests")
        column = self.scores.attribute_columns.get(attribute)
        slope = lo = hi = sp = icpt = r = float("nan")
        n_ols = 0
        meta = self.scores.metadata
        if column is None or meta is None or column not in meta.columns:
            notes.append(
                NO_ATTRIBUTE_COLUMN.format(
                    name=attribute, valid=dict(self.scores.attribute_columns)
                )
            )
        else:
            m = meta.copy()
            m.index = m.index.astype(str)
            xcol = pd.to_numeric(m[column].reindex(self.cases), errors="coerce").to_numpy(
                dtype=np.float64
            )
            both = s.valid & ~np.isnan(xcol)
            n_ols = int(both.sum())
            if n_ols >= 3 and np.ptp(xcol[both]) > 0:
                lr = sps.linregress(xcol[both], s.x[both])
                slope, icpt, r, sp = (
                    float(lr.slope),
                    float(lr.intercept),
                    float(lr.rvalue),
                    float(lr.pvalue),
                )
                t = float(sps.t.ppf(1 - (1 - conf) / 2, n_ols - 2))
                lo, hi = slope - t * float(lr.stderr), slope + t * float(lr.stderr)
            else:
                notes.append(f"column {column!r} is not numeric with ≥ 3 varying values: no slope")
        return AssociationResult(
            metric=metric,
            attribute=attribute,
            model=model,
            ruler=ruler,
            column=column,
            n=int(s.valid.sum()),
            kruskal_h=kh,
            kruskal_p=kp,
            anova_f=af,
            anova_p=ap,
            slope=slope,
            slope_lower=lo,
            slope_upper=hi,
            slope_p=sp,
            intercept=icpt,
            r=r,
            confidence=conf,
            notes=tuple(notes + ([f"OLS on {n_ols} cases"] if n_ols else [])),
        )


def _check_confidence(confidence: Any) -> None:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.5 < confidence < 1
    ):
        raise AuditError(BAD_CONFIDENCE.format(value=confidence))


def _encode(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """Group labels (report order) and per-case codes of one attribute column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        labels = [str(c) for c in column.cat.categories]
        codes = column.cat.codes.to_numpy().astype(np.int64)
        if (codes < 0).any():
            # a missing value is a group of its own, never dropped
            if UNKNOWN_LABEL not in labels:
                labels.append(UNKNOWN_LABEL)
            codes = np.where(codes < 0, labels.index(UNKNOWN_LABEL), codes)
        return labels, codes
    values = column.astype(object).where(column.notna(), UNKNOWN_LABEL).map(str)
    present = set(values)
    labels = sorted(present - {UNKNOWN_LABEL}) + (
        [UNKNOWN_LABEL] if UNKNOWN_LABEL in present else []
    )
    lookup = {lab: i for i, lab in enumerate(labels)}
    return labels, np.array([lookup[v] for v in values], dtype=np.int64)


def _clip0(x: float) -> float:
    # max(0.0, nan) is 0.0 in Python; an undefined bound must stay undefined
    return x if math.isnan(x) else max(0.0, x)


def _negative_side(e: Estimate) -> Estimate:
    """``max(0, -x)`` of an estimate and its interval (monotone, so the interval maps exactly)."""
    return Estimate(_clip0(-e.estimate), _clip0(-e.upper), _clip0(-e.lower), e.confidence)


def _positive_side(e: Estimate) -> Estimate:
    """``max(0, x)`` of an estimate and its interval."""
    return Estimate(_clip0(e.estimate), _clip0(e.lower), _clip0(e.upper), e.confidence)


def example_scores() -> Scores:
    """A tiny deterministic cohort for the docstring examples."""
    ids = [f"c{i:02d}" for i in range(40)]
    young = np.arange(40) < 20
    spread = np.tile(np.linspace(-0.02, 0.02, 20), 2)
    rows = []
    for i, cid in enumerate(ids):
        d = (0.70 if young[i] else 0.80) + spread[i]
        rows += [
            (cid, "m", "expert", "dice", d),
            (cid, "m", "auto", "dice", d + (0.05 if young[i] else 0.0)),
            (cid, "m", "expert", "hd95", 20.0 if young[i] else 10.0),
            (cid, "m2", "expert", "dice", d - (0.05 if young[i] else 0.0)),
            (cid, "m2", "expert", "hd95", 20.0 if young[i] else 10.0),
        ]
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    agreement = pd.DataFrame(
        [(cid, "auto", "expert", "dice", 0.8 if young[i] else 0.9) for i, cid in enumerate(ids)],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    morphology = pd.DataFrame(
        [
            (cid, "expert", "volume_ml", (15.0 if young[i] else 10.0) + 250 * spread[(i * 7) % 40])
            for i, cid in enumerate(ids)
        ],
        columns=["case_id", "ruler", "descriptor", "value"],
    )
    index = pd.Index(ids, name="case_id")
    groups = pd.DataFrame(
        {"age": pd.Categorical(np.where(young, "young", "old"), categories=["young", "old"])},
        index=index,
    )
    metadata = pd.DataFrame({"age": np.where(young, 35, 65) + np.arange(40) % 7}, index=index)
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=("m", "m2"),
        agreement=agreement,
        morphology=morphology,
        metadata=metadata,
        attribute_columns={"age": "age"},
    )
