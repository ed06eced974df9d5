"""Group means and medians (optionally weighted) in every bootstrap resample of a design.

Example
-------
>>> import numpy as np
>>> from segfair.stats import build_design
>>> codes = np.repeat([0, 1], [50, 50])
>>> design = build_design(codes, ("a", "b"), key=("g",), n_boot=200, seed=0)
>>> x = np.r_[np.full(50, 0.7), np.full(50, 0.8)]
>>> reps = group_statistic(design, x[:, None], "mean")
>>> np.round(reps.estimate[:, 0], 2).tolist()
[0.7, 0.8]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segfair.stats.design import Design
from segfair.stats.kinds import STATISTICS, Statistic

__all__ = ["Replicates", "group_statistic"]

_BIG = 1e300


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
    se
        ``(G, S)`` standard error of each group mean (linearised, with the small-sample factor
        ``K / (K - 1)`` over its K resampling units), or None for medians.
    se_reps
        ``(B, G, S)`` the same standard error computed in every resample, for studentized
        (bootstrap-t) intervals; None for medians.
    """

    estimate: np.ndarray
    reps: np.ndarray
    n: np.ndarray
    overall: np.ndarray
    overall_reps: np.ndarray
    se: np.ndarray | None = None
    se_reps: np.ndarray | None = None


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
    >>> from segfair.stats import build_design
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
            se = np.full((n_groups, n_series), np.nan)
            se_reps = np.full((n_boot, n_groups, n_series), np.nan)
            sq = _unit_sums(design, xw, vw, vf, plain=cw is None)
            tot_num = np.zeros((n_boot, n_series))
            tot_den = np.zeros((n_boot, n_series))
            both = np.concatenate([xw, vw, *sq], axis=1)
            for g in range(n_groups):
                sl = design.block(g)
                # the whole bootstrap of one group is one matrix product: sums, counts and the
                # unit-level sums of squares its standard error needs
                prod = w[:, sl] @ both[sl]
                num, den = prod[:, :n_series], prod[:, n_series : 2 * n_series]
                tot_num += num
                tot_den += den
                reps[:, g, :] = num / den
                se_reps[:, g, :] = _se(reps[:, g, :], den, prod[:, 2 * n_series :], n_series)
                n[g] = valid[sl].sum(axis=0)
                one = both[sl].sum(axis=0)[None, :]
                est[g] = xw[sl].sum(axis=0) / vw[sl].sum(axis=0)
                se[g] = _se(
                    est[g][None, :],
                    one[:, n_series : 2 * n_series],
                    one[:, 2 * n_series :],
                    n_series,
                )[0]
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
    if statistic != "mean":
        return Replicates(estimate=est, reps=reps, n=n, overall=overall, overall_reps=overall_reps)
    return Replicates(
        estimate=est,
        reps=reps,
        n=n,
        overall=overall,
        overall_reps=overall_reps,
        se=se,
        se_reps=se_reps,
    )


def _unit_sums(
    design: Design, xw: np.ndarray, vw: np.ndarray, vf: np.ndarray, *, plain: bool
) -> list[np.ndarray]:
    """Per-case columns whose resample sums give Σ T², Σ T N, Σ N² and the unit count K.

    ``T`` and ``N`` are a resampling unit's weighted sum of values and of weights (a case, or a
    whole cluster). A unit drawn ``w`` times counts ``w`` times, and all cases of a cluster
    share its count, so a cluster's totals are placed on its first case and zeros elsewhere:
    the same count-matrix product then sums them.
    """
    if design.units is None:
        if plain:
            # T = x, N = v ∈ {0, 1}: T N = x, N² = N = K-indicator = v
            return [xw * xw, xw, vw, vf]
        return [xw * xw, xw * vw, vw * vw, vf]
    units = design.units
    n_units = int(units.max()) + 1 if units.size else 0
    t = np.zeros((n_units, xw.shape[1]))
    m = np.zeros_like(t)
    has = np.zeros_like(t)
    np.add.at(t, units, xw)
    np.add.at(m, units, vw)
    np.add.at(has, units, vf)
    first = np.zeros(len(units), dtype=bool)
    _, idx = np.unique(units, return_index=True)
    first[idx] = True
    cols = [t * t, t * m, m * m, (has > 0).astype(np.float64)]
    return [np.where(first[:, None], c[units], 0.0) for c in cols]


def _se(mean: np.ndarray, den: np.ndarray, sq: np.ndarray, s: int) -> np.ndarray:
    """Linearised standard error of a (Hajek) mean from unit sums (rows = resamples)."""
    q, p, r, k = sq[:, :s], sq[:, s : 2 * s], sq[:, 2 * s : 3 * s], sq[:, 3 * s :]
    resid = np.maximum(q - 2 * mean * p + mean**2 * r, 0.0)
    # the K / (K − 1) factor makes the plug-in variance unbiased for equal weights
    var = resid / den**2 * np.where(k > 1, k / (k - 1), np.nan)
    return np.sqrt(var)


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
