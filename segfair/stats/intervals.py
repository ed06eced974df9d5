"""Bootstrap intervals: percentile, max-abs contrast (gaps), ratio, and the Wilson interval.

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
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from segfair.stats.bootstrap import _quantiles

__all__ = ["max_abs_interval", "percentile_interval", "ratio_interval", "wilson_interval"]

#: Floor applied to positive means before taking logs for ratios (a rate of 0 gives ratio 0).
_LOG_FLOOR = 1e-12


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
