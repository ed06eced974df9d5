"""Prediction-powered group means: a complete, biased ruler corrected by a labelled sample.

A group's mean on the trusted ruler, ``θ``, is estimated from the proxy ``A`` (the same model and
metric scored on an automated ruler, known for every case) and the trusted score ``T`` (known on
the labelled sample ``L``)::

    θ̂ = λ · mean_all(A) + mean_L(T − λ A)          (the second term is the "rectifier")

with ``mean_L`` the Hajek mean ``Σ w (T − λA) / Σ w`` under design weights ``w`` (1 for a
uniform sample). Any fixed ``λ`` gives an unbiased estimate; ``λ = 0`` is the labelled-only
mean. The power-tuning weight (PPI++, Angelopoulos, Duchi & Zrnic 2023) is the regression slope
of ``T`` on ``A`` over the labelled cases (design-weighted)::

    λ = cov_L(T, A) / var_L(A),   clipped to [0, N / (N − n)],

which minimises the variance: with ``N`` cases, ``n`` labelled and correlation ``ρ`` it is
``σ_T² (1 − ρ² (1 − n/N)) / n`` against ``σ_T² / n`` labelled-only. Written over the
*unlabelled* cases (``ppi-python``'s form), this is ``λ_u · mean_U(A) + mean_L(T − λ_u A)`` with
``λ_u = λ (N − n) / N`` in [0, 1]: ``ppi_py.ppi_mean_pointestimate(..., lam=λ_u)`` exactly
(tested). ppi-python's own tuning divides by the proxy's variance over *all* cases, which is the
same in the limit; in a sample, a rare extreme (a miss scoring 0 on both rulers) is always in
that denominator but in the numerator only when the labelled sample drew one, so its λ moves
with that draw and biases small groups (docs/statistics.md, "Prediction-powered estimates:
validation"); the slope over the labelled cases keeps numerator and denominator on the same
cases. ``λ`` is re-estimated in every bootstrap resample (labelled and unlabelled cases
resampled together, within groups), so its own noise is in the interval. The standard error is
linearised (``λ`` held fixed) from per-unit sums, like the labelled-only means: the studentized
intervals use it.

Example
-------
>>> import numpy as np
>>> from segfair.stats import build_design
>>> rng = np.random.default_rng(0)
>>> a = rng.uniform(0.6, 0.9, 400)
>>> t = np.where(np.arange(400) % 5 == 0, a + 0.05, np.nan)   # every 5th case labelled
>>> d = build_design(np.zeros(400, int), ("all",), key=("g",), n_boot=200, seed=0)
>>> reps, detail = ppi_means(d, [t], [a])
>>> round(float(reps.estimate[0, 0] - a.mean()), 3), round(float(detail.rectifier[0, 0]), 3)
(0.05, 0.05)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segfair.stats.bootstrap import Replicates
from segfair.stats.design import Design

__all__ = ["PPIDetail", "ppi_means"]

# the unit-level sums every estimate needs: of the proxy over all cases (count, Σ A, Σ A²), of
# the labelled cases (count, Σ w, Σ w T, Σ w A, Σ w A², Σ w T A)
_A0, _A1, _A2, _LC, _L0, _LT, _LA, _LAA, _LTA = range(9)
_LINEAR = 9
# the influence of a unit is c · (Σ A, count, Σ w T, Σ w A, Σ w): its square needs their products
_PSI = (_A1, _A0, _LT, _LA, _L0)
_PAIRS = [(i, j) for i in range(len(_PSI)) for j in range(i, len(_PSI))]


@dataclass(frozen=True, eq=False)
class PPIDetail:
    """What the prediction-powered estimate of each group is made of (``(G, S)`` arrays).

    Attributes
    ----------
    lam
        The power-tuning weight ``λ`` (0: the labelled-only mean).
    n_all
        Cases with a proxy value (the population the proxy mean is taken over).
    proxy_mean
        Mean of the proxy over them.
    rectifier
        (Weighted) mean of ``trusted − proxy`` over the labelled cases: how far the automated
        ruler is off in the group (before tuning).
    """

    lam: np.ndarray
    n_all: np.ndarray
    proxy_mean: np.ndarray
    rectifier: np.ndarray


def ppi_means(
    design: Design,
    trusted: Sequence[np.ndarray],
    proxy: Sequence[np.ndarray],
    case_weights: Sequence[np.ndarray | None] | None = None,
) -> tuple[Replicates, PPIDetail]:
    """Prediction-powered group means of each trusted series, in every resample of ``design``.

    Parameters
    ----------
    design
        From :func:`build_design` (stored or streamed).
    trusted
        S per-case columns (case-sorted order) of the trusted score; NaN where a case has no
        trusted label (or its score is undefined).
    proxy
        The matching S columns of the proxy score (the automated ruler); NaN where undefined. A
        case with a trusted value but no proxy value is left out of both terms.
    case_weights
        Per series, the design weights of the labelled cases (inverse inclusion
        probabilities), or None for a uniform sample.

    Returns
    -------
    (Replicates, PPIDetail)
        ``n`` counts the labelled cases behind each estimate; ``se``/``se_reps`` are the
        linearised standard errors (for studentized intervals).
    """
    if len(trusted) != len(proxy):
        raise ValueError("trusted and proxy need the same number of series")
    weights = list(case_weights) if case_weights is not None else [None] * len(trusted)
    parts = [_one(design, t, a, w) for t, a, w in zip(trusted, proxy, weights, strict=True)]
    reps = Replicates.stack([p[0] for p in parts])
    detail = PPIDetail(
        *(
            np.concatenate([getattr(p[1], f) for p in parts], axis=1)
            for f in PPIDetail.__annotations__
        )
    )
    return reps, detail


def _one(
    design: Design, trusted: np.ndarray, proxy: np.ndarray, w: np.ndarray | None
) -> tuple[Replicates, PPIDetail]:
    t_all = np.asarray(trusted, dtype=np.float64)
    a_all = np.asarray(proxy, dtype=np.float64)
    has_a = ~np.isnan(a_all)
    # shifting both rulers by one constant shifts the estimate by it and changes nothing else:
    # centred, the moments below lose no digits to cancellation
    centre = float(a_all[has_a].mean()) if has_a.any() else 0.0
    n_boot, n_groups = design.n_boot, len(design.labels)
    est = np.full(n_groups, np.nan)
    se = np.full(n_groups, np.nan)
    reps = np.full((n_boot, n_groups), np.nan)
    se_reps = np.full((n_boot, n_groups), np.nan)
    n = np.zeros(n_groups, dtype=np.int64)
    lam = np.zeros(n_groups)
    n_all = np.zeros(n_groups, dtype=np.int64)
    proxy_mean = np.full(n_groups, np.nan)
    rectifier = np.full(n_groups, np.nan)
    tot = np.zeros((n_boot, _LINEAR))
    tot_one = np.zeros(_LINEAR)
    for g in range(n_groups):
        m = int(design.n_clusters[g])
        if m == 0:
            continue
        rows = design.order[design.block(g)]
        cols = _unit_columns(
            t_all[rows] - centre,
            a_all[rows] - centre,
            None if w is None else np.asarray(w, dtype=np.float64)[rows],
            design.local_units(g) if design.units is not None else None,
            m,
        )
        one = cols.sum(axis=0)[None, :]
        acc = np.zeros((n_boot, cols.shape[1]))
        for lo, hi, counts in design.unit_counts(g):
            acc += np.asarray(counts, dtype=np.float64) @ cols[lo:hi]
        e1, s1, l1 = _estimate(one)
        er, sr, _ = _estimate(acc)
        est[g], se[g], lam[g] = e1[0] + centre, s1[0], l1[0]
        reps[:, g], se_reps[:, g] = er + centre, sr
        n[g] = round(float(one[0, _LC]))
        n_all[g] = round(float(one[0, _A0]))
        with np.errstate(invalid="ignore", divide="ignore"):
            proxy_mean[g] = one[0, _A1] / one[0, _A0] + centre
            rectifier[g] = (one[0, _LT] - one[0, _LA]) / one[0, _L0]
        tot += acc[:, :_LINEAR]
        tot_one += one[0, :_LINEAR]
    est[n == 0] = np.nan
    overall = _estimate(tot_one[None, :], se_too=False)[0] + centre
    overall_reps = _estimate(tot, se_too=False)[0] + centre
    out = Replicates(
        estimate=est[:, None],
        reps=reps[:, :, None],
        n=n[:, None],
        overall=overall,
        overall_reps=overall_reps[:, None],
        se=se[:, None],
        se_reps=se_reps[:, :, None],
    )
    return out, PPIDetail(lam[:, None], n_all[:, None], proxy_mean[:, None], rectifier[:, None])


def _unit_columns(
    t: np.ndarray, a: np.ndarray, w: np.ndarray | None, units: np.ndarray | None, m: int
) -> np.ndarray:
    """Per resampling unit of a group: the linear sums, the products of the influence terms
    and whether the unit holds a proxy value (its count in the small-sample factor)."""
    has_a = ~np.isnan(a)
    lab = has_a & ~np.isnan(t)
    az = np.where(has_a, a, 0.0)
    tz = np.where(lab, t, 0.0)
    wl = np.where(lab, 1.0 if w is None else w, 0.0)
    lin = np.stack(
        [
            has_a.astype(np.float64),
            az,
            az * az,
            lab.astype(np.float64),
            wl,
            wl * tz,
            wl * az,
            wl * az * az,
            wl * tz * az,
        ],
        axis=1,
    )
    if units is not None:
        summed = np.zeros((m, _LINEAR))
        np.add.at(summed, units, lin)
        lin = summed
    psi = lin[:, list(_PSI)]
    quad = np.stack([psi[:, i] * psi[:, j] for i, j in _PAIRS], axis=1)
    has = (lin[:, _A0] > 0).astype(np.float64)[:, None]
    return np.concatenate([lin, quad, has], axis=1)


def _estimate(s: np.ndarray, *, se_too: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, linearised standard error and ``λ`` from accumulated unit sums (rows =
    resamples)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        a0, a1, a2 = s[:, _A0], s[:, _A1], s[:, _A2]
        lc, l0, lt, la = s[:, _LC], s[:, _L0], s[:, _LT], s[:, _LA]
        mean_a = a1 / a0
        var_a = (a2 - a0 * mean_a**2) / (a0 - 1)
        # the slope of T on A over the labelled cases (numerator and denominator on the same
        # cases): over all cases, the denominator always holds the proxy's rare extremes (a
        # miss scores 0 on both rulers) while the numerator holds them only when the sample
        # drew one, so λ — and with it the estimate — moved with that draw (measured: the
        # small group's mean biased by ~0.45 sd, the gap's upper bound erring 6.9%)
        cov = s[:, _LTA] / l0 - (lt / l0) * (la / l0)
        var_l = s[:, _LAA] / l0 - (la / l0) ** 2
        lam = cov / var_l
        unlabelled = a0 - lc
        top = np.where(unlabelled > 0.5, a0 / np.where(unlabelled > 0.5, unlabelled, 1.0), np.inf)
        # fewer than two labelled cases, or a constant proxy: nothing to tune on, λ = 0
        # (a proxy constant over the labelled cases leaves rounding, not a variance)
        flat = var_l <= 1e-9 * (s[:, _LAA] / l0)
        usable = (lc >= 2) & (var_a > 0) & ~flat & np.isfinite(lam)
        lam = np.where(usable, np.clip(lam, 0.0, top), 0.0)
        rect = (lt - lam * la) / l0
        theta = lam * mean_a + rect
        if not se_too:
            return theta, theta, lam
        c = np.stack([lam / a0, -lam * mean_a / a0, 1 / l0, -lam / l0, -rect / l0], axis=1)
        quad = s[:, _LINEAR : _LINEAR + len(_PAIRS)]
        total = np.zeros(len(s))
        scale = np.zeros(len(s))
        for k, (i, j) in enumerate(_PAIRS):
            term = (1.0 if i == j else 2.0) * c[:, i] * c[:, j] * quad[:, k]
            total += term
            scale += np.abs(term)
        # the sum of squares comes from cancelling terms: what is left of a zero is rounding
        total = np.where(total > 1e-12 * scale, total, 0.0)
        k_units = s[:, -1]
        var = total * np.where(k_units > 1, k_units / (k_units - 1), np.nan)
    return theta, np.sqrt(var), lam
