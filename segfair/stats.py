"""The numerical core of the audit: a stratified, paired, vectorised bootstrap and its intervals.

Everything here works on plain arrays. :class:`segfair.audit.Audit` arranges the cases of a
cohort into group blocks once per attribute (a :class:`Design`), draws the bootstrap *count
matrix* of that design once, and reuses it for every model, ruler and metric, so that differences
between rulers or models are paired: each replicate scores the same resampled cases.

Intervals
---------
* A group estimate (a mean or a median) gets the **percentile** interval of its replicates.
* A *gap* (max − min of group estimates) is a non-smooth statistic whose plug-in estimate is
  biased upward when the true gap is small relative to its standard error; percentile intervals of
  its replicates then miss the true gap from below, and BCa/basic intervals move the *upper* bound
  below the truth too often (measured in ``docs/statistics.md``). We therefore bound a gap through
  its pairwise contrasts (:func:`max_abs_interval`): the upper bound is the largest bound of the
  per-pair percentile intervals, valid at level ``1 - alpha/2`` without a multiplicity
  correction because the true gap is attained by one (unknown) pair; the lower bound uses
  Bonferroni-adjusted pair intervals. The interval is conservative in the middle regime and exact
  where it matters for a gate (true gap near the threshold).

Example
-------
>>> import numpy as np
>>> codes = np.repeat([0, 1], [50, 50])
>>> design = build_design(codes, ("a", "b"), key=("g",), n_boot=200, seed=0)
>>> x = np.r_[np.full(50, 0.7), np.full(50, 0.8)]
>>> reps = group_statistic(design, x[:, None], "mean")
>>> np.round(reps.estimate[:, 0], 2).tolist()
[0.7, 0.8]
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

__all__ = [
    "DISTANCE_METRICS",
    "FRACTION_METRICS",
    "Design",
    "Replicates",
    "Statistic",
    "build_design",
    "group_statistic",
    "max_abs_interval",
    "percentile_interval",
    "ratio_interval",
    "stable_hash",
    "wilson_interval",
]

Statistic = Literal["mean", "median"]
#: The valid values of ``statistic``.
STATISTICS: tuple[str, ...] = ("mean", "median")

#: Surface-distance metrics (mm): ``inf`` (a missed lesion) is replaced by the cap and counted.
DISTANCE_METRICS = frozenset({"hausdorff", "hd", "hd95", "hd99", "assd", "asd", "masd"})
#: Overlap metrics bounded in [0, 1]: gap thresholds for them must be fractions.
FRACTION_METRICS = frozenset(
    {
        "dice",
        "iou",
        "jaccard",
        "precision",
        "sensitivity",
        "recall",
        "specificity",
        "nsd",
        "surface_dice",
    }
)

#: Floor applied to positive means before taking logs for ratios (a rate of 0 gives ratio 0).
_LOG_FLOOR = 1e-12
_BIG = 1e300


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process and Python version.

    ``hash()`` of a string is salted per process, so seeding from it would make results depend
    on the run; this is what the bootstrap seeds are derived from.

    Examples
    --------
    >>> stable_hash("age_group") == stable_hash("age_group")
    True
    """
    data = "\x1f".join(repr(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@dataclass(frozen=True, eq=False)
class Design:
    """The cases of a cohort in group blocks, with the bootstrap count matrix of one ``by``.

    Attributes
    ----------
    key
        The attribute name(s) the groups come from.
    labels
        Group labels, in report order.
    order
        Positions (into the case-sorted cohort) of the cases, group after group.
    bounds
        ``bounds[g]:bounds[g + 1]`` is group ``g``'s block in :attr:`order`.
    weights
        ``(n_boot, n_cases)`` multiplicity of each case (block order) in each resample.
    n_clusters
        Number of resampling units per group (cases, or clusters when clustered).
    clustered
        Whether whole clusters were resampled instead of cases.
    """

    key: tuple[str, ...]
    labels: tuple[str, ...]
    order: np.ndarray
    bounds: np.ndarray
    weights: np.ndarray
    n_clusters: np.ndarray
    clustered: bool

    @property
    def n_boot(self) -> int:
        """Number of bootstrap resamples."""
        return int(self.weights.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        """Number of cohort cases per group."""
        return np.diff(self.bounds)

    def block(self, g: int) -> slice:
        """The slice of group ``g`` in block order."""
        return slice(int(self.bounds[g]), int(self.bounds[g + 1]))


def build_design(
    codes: np.ndarray,
    labels: Sequence[str],
    *,
    key: tuple[str, ...],
    n_boot: int,
    seed: int,
    clusters: np.ndarray | None = None,
) -> Design:
    """Arrange cases in group blocks and draw the stratified bootstrap count matrix.

    Parameters
    ----------
    codes
        Group code (``0 .. len(labels) - 1``) of each case, cases sorted by ``case_id``.
    labels
        Group labels.
    key
        Attribute name(s); with ``seed`` it determines the random stream, so the resamples of an
        attribute do not depend on which statistics were asked for before.
    n_boot
        Number of resamples.
    seed
        Audit seed.
    clusters
        Optional cluster code of each case (e.g. the site); whole clusters are then resampled
        within each group.

    Returns
    -------
    Design

    Examples
    --------
    >>> d = build_design(np.array([0, 0, 1]), ("a", "b"), key=("g",), n_boot=4, seed=1)
    >>> d.weights.sum(axis=1).tolist()
    [3.0, 3.0, 3.0, 3.0]
    """
    codes = np.asarray(codes, dtype=np.int64)
    n_groups = len(labels)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_groups)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(np.random.SeedSequence([seed, stable_hash("by", *key)]))
    # column-major: a group's block of cases is then one contiguous piece of memory, which the
    # matrix products of group_statistic read once
    weights = np.zeros((n_boot, len(codes)), dtype=np.float64, order="F")
    n_units = np.zeros(n_groups, dtype=np.int64)
    rows = np.arange(n_boot)[:, None]
    for g in range(n_groups):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi == lo:
            continue
        unit_of_case = None
        if clusters is None:
            m = hi - lo
        else:
            _, unit_of_case = np.unique(np.asarray(clusters)[order[lo:hi]], return_inverse=True)
            m = int(unit_of_case.max()) + 1
        n_units[g] = m
        # one integer matrix per group, no loop over resamples: row b holds the m units drawn
        drawn = rng.integers(0, m, size=(n_boot, m))
        drawn += rows * m
        counts = np.bincount(drawn.ravel(), minlength=n_boot * m).reshape(n_boot, m)
        weights[:, lo:hi] = counts if unit_of_case is None else counts[:, unit_of_case]
    return Design(
        key=key,
        labels=tuple(labels),
        order=order,
        bounds=bounds,
        weights=weights,
        n_clusters=n_units,
        clustered=clusters is not None,
    )


@dataclass(frozen=True, eq=False)
class Replicates:
    """Point estimates and bootstrap replicates of a statistic per group, for S series.

    Attributes
    ----------
    estimate
        ``(G, S)`` group estimates (NaN for a group without values).
    reps
        ``(B, G, S)`` replicates (NaN where a resample holds no value of that group).
    n
        ``(G, S)`` number of values behind each estimate.
    overall
        ``(S,)`` estimate over all cases.
    overall_reps
        ``(B, S)`` replicates of :attr:`overall`.
    """

    estimate: np.ndarray
    reps: np.ndarray
    n: np.ndarray
    overall: np.ndarray
    overall_reps: np.ndarray


def group_statistic(
    design: Design,
    values: np.ndarray,
    statistic: Statistic,
    case_weights: np.ndarray | None = None,
) -> Replicates:
    """Group means or medians of each column of ``values`` in every resample of ``design``.

    Parameters
    ----------
    design
        From :func:`build_design`.
    values
        ``(n_cases, S)`` in case-sorted order; NaN marks a value that is missing or undefined
        and is left out (the audit counts those separately).
    statistic
        ``"mean"`` or ``"median"``.
    case_weights
        Optional design weights (inverse inclusion probabilities), ``(n_cases,)`` or
        ``(n_cases, S)`` in case-sorted order: means become ``Σ w x / Σ w`` (Hajek), medians
        weighted medians, in the point estimate and in every resample.

    Returns
    -------
    Replicates

    Examples
    --------
    >>> d = build_design(np.zeros(4, int), ("a",), key=("g",), n_boot=3, seed=0)
    >>> group_statistic(d, np.array([[1.0], [2.0], [3.0], [np.nan]]), "median").estimate
    array([[2.]])
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}; got {statistic!r}")
    x = np.asarray(values, dtype=np.float64)[design.order]
    valid = ~np.isnan(x)
    xz = np.where(valid, x, 0.0)
    vf = valid.astype(np.float64)
    n_boot, n_groups, n_series = design.n_boot, len(design.labels), x.shape[1]
    # design weights (inverse inclusion probabilities, case-sorted like ``values``): Hajek
    # estimators sum(w x) / sum(w); ``n`` still counts the values (see docs/partial-labels.md)
    cw: np.ndarray | None = None
    if case_weights is not None:
        cw = np.asarray(case_weights, dtype=np.float64)
        cw = np.broadcast_to(cw.reshape(len(cw), -1), x.shape)[design.order]
    xw, vw = (xz, vf) if cw is None else (xz * cw, vf * cw)
    est = np.full((n_groups, n_series), np.nan)
    reps = np.full((n_boot, n_groups, n_series), np.nan)
    n = np.zeros((n_groups, n_series), dtype=np.int64)
    w = design.weights
    with np.errstate(invalid="ignore", divide="ignore"):
        if statistic == "mean":
            tot_num = np.zeros((n_boot, n_series))
            tot_den = np.zeros((n_boot, n_series))
            both = np.concatenate([xw, vw], axis=1)
            for g in range(n_groups):
                sl = design.block(g)
                # the whole bootstrap of one group is one matrix product: sums and counts
                prod = w[:, sl] @ both[sl]
                num, den = prod[:, :n_series], prod[:, n_series:]
                tot_num += num
                tot_den += den
                reps[:, g, :] = num / den
                n[g] = valid[sl].sum(axis=0)
                est[g] = xw[sl].sum(axis=0) / vw[sl].sum(axis=0)
            overall_reps = tot_num / tot_den
            overall = xw.sum(axis=0) / vw.sum(axis=0)
        else:
            overall_reps = np.full((n_boot, n_series), np.nan)
            overall = np.full(n_series, np.nan)
            for s in range(n_series):
                for g in range(n_groups):
                    sl = design.block(g)
                    col = x[sl, s]
                    keep = valid[sl, s]
                    n[g, s] = int(keep.sum())
                    if cw is None:
                        est[g, s], reps[:, g, s] = _weighted_median(col[keep], w[:, sl][:, keep])
                    else:
                        cg = cw[sl, s][keep]
                        est[g, s] = _weighted_median(col[keep], cg[None, :])[1][0]
                        reps[:, g, s] = _weighted_median(col[keep], w[:, sl][:, keep] * cg)[1]
                vs = valid[:, s]
                if cw is None:
                    overall[s], overall_reps[:, s] = _weighted_median(x[vs, s], w[:, vs])
                else:
                    overall[s] = _weighted_median(x[vs, s], cw[vs, s][None, :])[1][0]
                    overall_reps[:, s] = _weighted_median(x[vs, s], w[:, vs] * cw[vs, s])[1]
    est[n == 0] = np.nan
    return Replicates(estimate=est, reps=reps, n=n, overall=overall, overall_reps=overall_reps)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Median of ``values`` and, per row of integer ``weights``, of the resample it encodes."""
    if values.size == 0:
        return float("nan"), np.full(weights.shape[0], np.nan)
    idx = np.argsort(values, kind="stable")
    v = values[idx]
    cum = np.cumsum(weights[:, idx], axis=1)
    total = cum[:, -1]
    # positions (0-based) of the two middle elements of each expanded resample
    lo = np.floor((total - 1) / 2)
    hi = np.floor(total / 2)
    i_lo = (cum > lo[:, None]).argmax(axis=1)
    i_hi = (cum > hi[:, None]).argmax(axis=1)
    med = (v[i_lo] + v[i_hi]) / 2
    med[total == 0] = np.nan
    return float(np.median(values)), med


def _quantiles(reps: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """NaN-ignoring quantiles along axis 0 that tolerate ±inf (shape ``(len(qs), ...)``)."""
    r = np.clip(reps, -_BIG, _BIG)
    has_nan = np.isnan(r).any(axis=0)
    if not np.any(has_nan):
        # np.quantile partitions whole columns at once; nanquantile loops over them
        out = np.quantile(r, list(qs), axis=0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns → NaN, on purpose
            out = np.nanquantile(r, list(qs), axis=0)
    out = np.where(out >= _BIG / 2, np.inf, out)
    return np.where(out <= -_BIG / 2, -np.inf, out)


def percentile_interval(reps: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0, ignoring NaN replicates.

    Examples
    --------
    >>> lo, hi = percentile_interval(np.arange(101.0), 0.9)
    >>> round(float(lo), 6), round(float(hi), 6)
    (5.0, 95.0)
    """
    alpha = 1.0 - confidence
    q = _quantiles(np.asarray(reps, dtype=np.float64), (alpha / 2, 1 - alpha / 2))
    return q[0], q[1]


def max_abs_interval(
    estimates: np.ndarray, reps: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """Estimate and interval of ``max_k |c_k|`` from contrasts ``c_k`` and their replicates.

    The gap across groups is ``max |mean_g - mean_h|`` over pairs; the distance to the overall
    mean is ``max |mean_g - overall|``. The upper bound is the largest absolute end of the
    per-contrast percentile intervals at ``confidence``: the true maximum is attained by one
    contrast, whose interval misses it with probability ``(1 - confidence) / 2`` on that side,
    so no multiplicity correction is needed. The lower bound takes, for each contrast, the
    distance from zero of its Bonferroni-adjusted interval (zero when that interval contains
    zero) and keeps the largest; it errs with probability at most ``(1 - confidence) / 2``.

    Parameters
    ----------
    estimates
        ``(K,)`` contrast estimates.
    reps
        ``(B, K)`` paired replicates of the contrasts.
    confidence
        Two-sided level.

    Returns
    -------
    estimate, lower, upper

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est, lo, hi = max_abs_interval(np.array([0.1]), 0.1 + rng.normal(0, 0.01, (2000, 1)), 0.95)
    >>> bool(lo < est < hi)
    True
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64).reshape(-1, estimates.size)
    if estimates.size == 0 or np.isnan(estimates).any():
        return float("nan"), float("nan"), float("nan")
    est = float(np.abs(estimates).max())
    alpha = 1.0 - confidence
    k = estimates.size
    lo, hi = _quantiles(reps, (alpha / 2, 1 - alpha / 2))
    blo, bhi = _quantiles(reps, (alpha / (2 * k), 1 - alpha / (2 * k)))
    if np.isnan(lo).any() or np.isnan(blo).any():
        return est, float("nan"), float("nan")
    upper = float(np.maximum(np.abs(lo), np.abs(hi)).max())
    away = np.where(blo > 0, blo, np.where(bhi < 0, -bhi, 0.0))
    lower = float(away.max())
    # an interval that excludes its own estimate would only confuse a reader
    return est, min(lower, est), max(upper, est)


def ratio_interval(
    estimates: np.ndarray, reps: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """Estimate and interval of ``min_g m_g / max_g m_g`` for positive group estimates.

    Computed as ``exp(-max |log m_g - log m_h|)`` with :func:`max_abs_interval` on the log
    contrasts, so the ratio inherits the gap's guarantees. Estimates ≤ 0 give NaN.

    Parameters
    ----------
    estimates
        ``(G,)`` group estimates.
    reps
        ``(B, G)`` replicates.
    confidence
        Two-sided level.

    Examples
    --------
    >>> est, lo, hi = ratio_interval(np.array([0.5, 1.0]), np.array([[0.5, 1.0]] * 10), 0.95)
    >>> est
    0.5
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    if estimates.size < 2 or np.isnan(estimates).any() or (estimates < 0).any():
        return float("nan"), float("nan"), float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        le = np.log(np.maximum(estimates, _LOG_FLOOR))
        lr = np.log(np.maximum(np.asarray(reps, dtype=np.float64), _LOG_FLOOR))
    i, j = np.triu_indices(estimates.size, k=1)
    _, lo, hi = max_abs_interval(le[i] - le[j], lr[:, i] - lr[:, j], confidence)
    ratio = float(estimates.min() / estimates.max()) if estimates.max() > 0 else float("nan")
    return ratio, float(np.exp(-hi)), float(np.exp(-lo))


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN for ``n == 0``).

    Examples
    --------
    >>> lo, hi = wilson_interval(95, 100, 0.95)
    >>> round(lo, 3), round(hi, 3)
    (0.888, 0.978)
    """
    if n <= 0:
        return float("nan"), float("nan")
    z = float(sps.norm.ppf(1 - (1 - confidence) / 2))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
