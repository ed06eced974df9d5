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

import math

import numpy as np
from scipy import special as spc

from segfair.stats.bootstrap import _quantiles

__all__ = [
    "fieller_interval",
    "max_abs_interval",
    "percentile_interval",
    "rare_extreme_bound",
    "ratio_interval",
    "studentized_interval",
    "wilson_interval",
]

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


def studentized_interval(
    estimate: np.ndarray,
    se: np.ndarray,
    reps: np.ndarray,
    se_reps: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Studentized (bootstrap-t) interval along axis 0, ignoring NaN replicates.

    The quantiles of ``t* = (θ* − θ̂) / se*`` replace those of ``θ*``: ``[θ̂ − t*_{1−α/2} se,
    θ̂ − t*_{α/2} se]``. For a skewed statistic (a mean of zero-inflated Dice, of capped
    distances) each tail then holds its one-sided rate, where the percentile interval misses on
    the long-tail side. ``se*`` is floored at ``SE_FLOOR · se`` so that a resample of a few tied
    values cannot give a near-infinite ``t*``; an
    estimate with ``se = 0`` gets the zero-width interval ``[θ̂, θ̂]``.

    Examples
    --------
    >>> reps = np.array([[0.9], [1.0], [1.1]] * 40)
    >>> lo, hi = studentized_interval(np.array([1.0]), np.array([0.1]), reps, 0.1 + 0 * reps, 0.9)
    >>> round(float(lo[0]), 6), round(float(hi[0]), 6)
    (0.9, 1.1)
    """
    alpha = 1.0 - confidence
    t = _t_reps(estimate, reps, se_reps, se)
    q = _quantiles(t, (alpha / 2, 1 - alpha / 2))
    return _t_bounds(np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64), q)


#: The smallest chance of a precondition that :func:`selection_level` divides by: a ratio read
#: on a denominator that barely cleared its precondition gets its interval at level
#: ``1 − α / 100`` at most (z ≈ 3.5), wide but finite.
SELECTION_FLOOR = 0.01


def selection_level(confidence: float, *, margin: float, se: float) -> float:
    """Two-sided level for an interval that is read only when a precondition holds.

    The precondition is "a bound cleared a threshold by ``margin``" (``se`` that bound's
    standard error). Reading the interval only then is a selection: ``P(error | read) ≤
    P(error) / P(read)``. ``P(read)`` is bounded below by ``π = Φ(margin / se − z_{1−α/2})``
    (the chance of clearing again, at the lower confidence bound of the quantity), floored at
    :data:`SELECTION_FLOOR`, and the interval is taken at ``1 − α · π``: each side then errs at
    most ``α/2`` among the samples in which it is read. A margin of many standard errors costs
    nothing; a margin that is not positive or not finite returns ``confidence``.

    Examples
    --------
    >>> selection_level(0.95, margin=0.10, se=0.01)  # a denominator of 12 SE: no change
    0.95
    >>> round(selection_level(0.95, margin=0.01, se=0.01), 4)  # barely cleared
    0.9916
    """
    if not (math.isfinite(margin) and margin > 0 and math.isfinite(se) and se > 0):
        return confidence
    alpha = 1.0 - confidence
    z = float(spc.ndtri(1 - alpha / 2))
    pi = max(float(spc.ndtr(margin / se - z)), SELECTION_FLOOR)
    return 1.0 - alpha * pi if pi < 1.0 else confidence


def cluster_df(clusters: np.ndarray) -> float:
    """Effective degrees of freedom of a mean over the clusters of ``clusters`` (codes).

    ``(Σ a²)² / Σ a⁴ − 1`` with ``a_k`` a cluster's share of the values: ``K − 1`` for ``K``
    equal clusters, fewer when one site holds most of the group (its mean is then mostly that
    site's). Floored at 1; NaN below two clusters.

    Examples
    --------
    >>> cluster_df(np.repeat([0, 1, 2, 3], 10))
    3.0
    >>> round(cluster_df(np.repeat([0, 1, 2, 3], [40, 30, 20, 10])), 2)
    1.54
    """
    counts = np.bincount(np.asarray(clusters, dtype=np.int64))
    counts = counts[counts > 0]
    if counts.size < 2:
        return float("nan")
    a = counts / counts.sum()
    return float(max(float(a @ a) ** 2 / float(np.sum(a**4)) - 1.0, 1.0))


def few_clusters_interval(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """``estimate ± t_{df, 1−α/2} · se`` per group (NaN where ``df`` is NaN).

    A cluster bootstrap over a handful of sites sees only a few distinct resamples, and its
    t quantiles are those of a normal: with four sites a group bound erred 5.4% against 2.5%
    (docs/statistics.md). The t distribution with the clusters' effective degrees of freedom
    (:func:`cluster_df`; ``K − 1`` for equal clusters, the small-sample reference of a mean of
    ``K`` cluster totals) is the cluster-robust rule; callers keep the wider of this and the
    bootstrap interval.

    Examples
    --------
    >>> lo, hi = few_clusters_interval(np.array([0.7]), np.array([0.01]), np.array([3.0]), 0.95)
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.6682, 0.7318)
    """
    d = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        q = spc.stdtrit(d, 1 - (1 - confidence) / 2)
    half = q * np.asarray(se, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    return est - half, est + half


#: A resample's standard error is floored at this share of the sample's in ``t*``: a resample
#: that drew a handful of tied values (a tiny group, many capped distances) has ``se* ≈ 0`` and
#: a near-infinite ``t*``, the classic way a bootstrap-t interval explodes.
SE_FLOOR = 0.5


def _t_reps(
    estimate: np.ndarray, reps: np.ndarray, se_reps: np.ndarray, se: np.ndarray
) -> np.ndarray:
    diff = np.asarray(reps, dtype=np.float64) - np.asarray(estimate, dtype=np.float64)
    floor = SE_FLOOR * np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.fmax(np.asarray(se_reps, dtype=np.float64), floor)
    # a resample that reproduces the estimate exactly is a t of 0, whatever its spread
    return np.asarray(np.where(diff == 0, 0.0, t))


def _t_bounds(estimate: np.ndarray, se: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        lo = np.where(se == 0, estimate, estimate - q[1] * se)
        hi = np.where(se == 0, estimate, estimate - q[0] * se)
    return lo, hi


def max_abs_interval(
    estimates: np.ndarray,
    reps: np.ndarray,
    confidence: float,
    *,
    se: np.ndarray | None = None,
    se_reps: np.ndarray | None = None,
    away_limit: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Estimate and interval of ``max_k |c_k|`` from contrasts ``c_k`` and their replicates.

    The gap across groups is ``max |mean_g - mean_h|`` over pairs; the distance to the overall
    mean is ``max |mean_g - overall|``. The upper bound is the largest absolute end of the
    per-contrast percentile intervals at ``confidence``: the true maximum is attained by one
    contrast, whose interval misses it with probability ``(1 - confidence) / 2`` on that side,
    so no multiplicity correction is needed. The lower bound takes, for each contrast, the
    distance from zero of its Bonferroni-adjusted two-sided interval at level
    ``1 - (1 - confidence) / (2K)`` (zero when that interval contains zero) and keeps the
    largest: it exceeds the true maximum only if some contrast's adjusted interval misses its
    true value, on either side, so it errs with probability at most ``(1 - confidence) / 2``.

    With ``se`` and ``se_reps`` (the contrasts' standard errors, point and per resample) the
    per-contrast intervals are studentized (:func:`studentized_interval`), else percentile.

    Parameters
    ----------
    estimates
        ``(K,)`` contrast estimates.
    reps
        ``(B, K)`` paired replicates of the contrasts.
    confidence
        Two-sided level.
    se, se_reps
        Optional ``(K,)`` and ``(B, K)`` standard errors of the contrasts.
    away_limit
        Optional ``(K,)`` ceilings on each contrast's distance from zero in the lower bound
        (NaN: none), from another bound at the same level, e.g. the rare-miss guard.

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
    # α/2 per side for the upper bound; α/(4K) per side (α/(2K) two-sided per contrast, α/2 over
    # the K contrasts) for the lower bound
    qs = (alpha / 2, 1 - alpha / 2, alpha / (4 * k), 1 - alpha / (4 * k))
    if se is None or se_reps is None:
        lo, hi, blo, bhi = _quantiles(reps, qs)
    else:
        s_e = np.asarray(se, dtype=np.float64).reshape(estimates.shape)
        t = _t_reps(estimates, reps, np.asarray(se_reps, dtype=np.float64).reshape(reps.shape), s_e)
        q = _quantiles(t, qs)
        # the far Bonferroni quantiles rest on a handful of resamples; their noise would make
        # the lower bound err more often than α/2, so they are never narrower than normal ones
        z = float(spc.ndtri(1 - alpha / (4 * k)))
        lo, hi = _t_bounds(estimates, s_e, q[:2])
        blo, bhi = _t_bounds(estimates, s_e, np.stack([np.fmin(q[2], -z), np.fmax(q[3], z)]))
    if np.isnan(lo).any() or np.isnan(blo).any():
        return est, float("nan"), float("nan")
    upper = float(np.maximum(np.abs(lo), np.abs(hi)).max())
    away = np.where(blo > 0, blo, np.where(bhi < 0, -bhi, 0.0))
    if away_limit is not None:
        away = np.fmin(away, np.maximum(np.asarray(away_limit, dtype=np.float64), 0.0))
    lower = float(away.max())
    # an interval that excludes its own estimate would only confuse a reader
    return est, min(lower, est), max(upper, est)


def ratio_interval(
    estimates: np.ndarray,
    reps: np.ndarray,
    confidence: float,
    *,
    se: np.ndarray | None = None,
    se_reps: np.ndarray | None = None,
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
    if se is None or se_reps is None:
        _, lo, hi = max_abs_interval(le[i] - le[j], lr[:, i] - lr[:, j], confidence)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ls = np.asarray(se, dtype=np.float64) / np.maximum(estimates, _LOG_FLOOR)
            lsr = np.asarray(se_reps, dtype=np.float64) / np.maximum(
                np.asarray(reps, dtype=np.float64), _LOG_FLOOR
            )
        _, lo, hi = max_abs_interval(
            le[i] - le[j],
            lr[:, i] - lr[:, j],
            confidence,
            se=np.hypot(ls[i], ls[j]),
            se_reps=np.hypot(lsr[:, i], lsr[:, j]),
        )
    ratio = float(estimates.min() / estimates.max()) if estimates.max() > 0 else float("nan")
    return ratio, float(np.exp(-hi)), float(np.exp(-lo))


def fieller_interval(
    numerator: float,
    denominator: float,
    num_reps: np.ndarray,
    den_reps: np.ndarray,
    confidence: float,
) -> tuple[float, float]:
    """Fieller interval of ``numerator / denominator`` with the paired bootstrap covariance.

    The set of ratios ``ρ`` for which ``numerator − ρ · denominator`` is within ``z`` of its
    standard error (``z`` the normal quantile at ``1 − α/2``; variances and covariance from the
    paired replicates). Unlike the percentile interval of the replicated ratio it holds its
    level when the denominator is only a few standard errors from 0; when the denominator is
    not itself distinguishable from 0 the set is unbounded and both ends are NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = 0.10 + rng.normal(0, 0.01, 4000)
    >>> lo, hi = fieller_interval(0.05, 0.10, 0.5 * t + rng.normal(0, 0.005, 4000), t, 0.95)
    >>> bool(lo < 0.5 < hi)
    True
    """
    a = np.asarray(num_reps, dtype=np.float64).reshape(-1)
    b = np.asarray(den_reps, dtype=np.float64).reshape(-1)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or not (math.isfinite(numerator) and math.isfinite(denominator)):
        return float("nan"), float("nan")
    cov = np.cov(a[keep], b[keep])
    z2 = float(spc.ndtri(1 - (1 - confidence) / 2)) ** 2
    qa = denominator**2 - z2 * cov[1, 1]
    qb = numerator * denominator - z2 * cov[0, 1]
    qc = numerator**2 - z2 * cov[0, 0]
    disc = qb**2 - qa * qc
    if qa <= 0 or disc < 0:
        return float("nan"), float("nan")
    root = math.sqrt(disc)
    return float((qb - root) / qa), float((qb + root) / qa)


#: Up to this many values at the extreme (zero-Dice misses, capped distances) a group's misses
#: are "unseen": the bootstrap cannot see misses a small sample happened not to draw. With one
#: miss or more drawn, the studentized interval already sees the skew (measured).
RARE_EXTREMES = 0


def rare_extreme_bound(
    values: np.ndarray,
    *,
    extreme: float,
    confidence: float,
    se: float,
) -> float:
    """A one-sided bound of a mean that allows for misses the sample did not draw, or NaN.

    ``extreme`` is the value of a miss: 0 for an overlap score (the bound is a lower bound) or
    the cap of a distance (an upper bound). The mean is ``(1 − p) μ_f + p · extreme`` with
    ``p`` the miss rate and ``μ_f`` the mean of the other values; the bound is
    ``(1 − p_up) μ̂_f + p_up · extreme`` with ``p_up`` the one-sided Clopper–Pearson limit of
    the miss rate at ``(1 − confidence) / 2``: a sample of ``n`` cases draws no miss with
    probability above ``α/2`` only when ``p ≤ p_up``. It is returned (not NaN) only when the
    sample drew no miss (at most :data:`RARE_EXTREMES`) and the misses it may have missed could
    move the mean by more than ``z · se`` (``se`` the mean's standard error): elsewhere the
    studentized interval sees the misses and this bound would only cost power. Callers take the
    more conservative of this and their own bound; the pair errs at about ``α/2`` (measured in
    docs/statistics.md).

    Examples
    --------
    >>> x = np.full(25, 0.8)  # no miss in a group of 25
    >>> round(rare_extreme_bound(x, extreme=0.0, confidence=0.95, se=0.02), 3)
    0.69
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n < 2:
        return float("nan")
    alpha = 1.0 - confidence
    at = np.isclose(x, extreme, rtol=0.0, atol=1e-12)
    c = int(at.sum())
    if c > RARE_EXTREMES:
        return float("nan")
    finite = x[~at]
    mu_f = float(finite.mean()) if finite.size else float(extreme)
    p_reach = float(spc.betaincinv(c + 1, n - c, 1 - alpha / 2))
    z = float(spc.ndtri(1 - alpha / 2))
    if not p_reach * abs(mu_f - extreme) > z * se:
        return float("nan")
    # the miss rate at its Clopper–Pearson limit; the other values at their mean (their own
    # noise is the studentized interval's business: the caller keeps the wider of the two)
    p_up = p_reach
    bound_f = mu_f
    return float((1 - p_up) * bound_f + p_up * extreme)


def rare_proxy_bound(
    trusted: np.ndarray,
    proxy: np.ndarray,
    *,
    estimate: float,
    lam: float,
    extreme: float,
    confidence: float,
    se: float,
    discordance: bool,
) -> float:
    """The rare-miss bound of a prediction-powered mean (one group), or NaN.

    ``proxy`` holds the group's proxy scores, ``trusted`` its trusted scores (NaN where a case
    has no trusted label); ``estimate = λ · mean(proxy) + mean_L(trusted − λ · proxy)``. Two
    kinds of extremes can sit where the bootstrap does not see them:

    * **Misses on the proxy ruler** (a model's miss scores as one on every ruler) are counted
      over all ``N`` cases. When the labelled cases hold none of them, ``λ`` was fitted without
      them and the estimate imputes ``estimate − λ · (mean(proxy) − extreme)`` for each, where
      the truth may be the extreme: the bound moves the estimate by that difference times the
      one-sided Clopper–Pearson limit of their rate (``m`` of ``N``).
    * **Discordances** — a case at the extreme on the trusted ruler only (a model repeating the
      automated labels' error) — show only among the ``n`` labelled cases. With ``discordance``
      (the caller's evidence that they occur, or a distance, where one weighs ~25 typical
      values) and none drawn, their rate is taken at its Clopper–Pearson limit from ``n``, as
      :func:`rare_extreme_bound` takes a labelled-only group's misses.

    The two shifts add up; the bound is returned when they move the estimate by more than
    ``z · se`` (else the studentized interval is the bound).

    Examples
    --------
    >>> a = np.r_[np.zeros(6), np.full(194, 0.9)]  # 6 proxy misses, none labelled
    >>> t = np.where(np.arange(200) >= 160, 0.85, np.nan)  # 40 labelled hits
    >>> round(rare_proxy_bound(t, a, estimate=0.8, lam=0.5, extreme=0.0, confidence=0.95,
    ...                        se=0.004, discordance=False), 3)
    0.777
    """
    a = np.asarray(proxy, dtype=np.float64)
    t = np.asarray(trusted, dtype=np.float64)
    has_a = ~np.isnan(a)
    a, t = a[has_a], t[has_a]
    lab = ~np.isnan(t)
    n_all, n = int(a.size), int(lab.sum())
    if n < 2 or math.isnan(estimate) or math.isnan(lam):
        return float("nan")
    q = 1 - (1.0 - confidence) / 2
    a_ext = np.isclose(a, extreme, rtol=0.0, atol=1e-12)
    t_ext = np.isclose(t[lab], extreme, rtol=0.0, atol=1e-12)
    shift = 0.0
    if int(a_ext[lab].sum()) <= RARE_EXTREMES:
        m = int(a_ext.sum())
        rate = float(spc.betaincinv(m + 1, n_all - m, q)) if m < n_all else 1.0
        imputed = estimate - lam * (float(a.mean()) - extreme)
        shift += rate * abs(imputed - extreme)
    discord = int((t_ext & ~a_ext[lab]).sum())
    if discordance and discord <= RARE_EXTREMES:
        rate = float(spc.betaincinv(discord + 1, n - discord, q))
        shift += rate * abs(estimate - extreme)
    z = float(spc.ndtri(q))
    if not shift > z * se:
        return float("nan")
    return float(estimate - shift if extreme < estimate else estimate + shift)


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
    z = float(spc.ndtri(1 - (1 - confidence) / 2))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
