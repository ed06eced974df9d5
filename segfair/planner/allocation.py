"""Group statistics, Neyman allocation, target standard errors, calibration to a gate's interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special as spc

from segfair.gates import Check, gate_checks

if TYPE_CHECKING:
    from segfair.audit import Audit


@dataclass
class _Stats:
    labels: tuple[str, ...]
    n: np.ndarray  # labelled values per group
    avail: np.ndarray  # cases of the group without a trusted label
    mean: np.ndarray
    sd: np.ndarray  # per-label sd: Var(mean) ≈ sd² / n (+ floor)
    # prediction-powered: the part of Var(mean) no number of labels removes (c_g, from the
    # proxy over all the group's cases); None: labelled-only, Var(mean) ≈ sd² / n
    floor: np.ndarray | None = None

    def floors(self) -> np.ndarray:
        """``c_g`` per group (0 for a labelled-only estimate)."""
        return np.zeros(len(self.labels)) if self.floor is None else self.floor


def _group_stats(audit: Audit, x: np.ndarray, by: Any) -> _Stats:
    g = audit.grouping(by)
    weights = audit.case_weights([_series_like(x)])
    w = np.ones(len(x)) if weights is None else weights[:, 0]
    labelled = audit.labelled_mask()
    k = len(g.labels)
    n, avail = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    mean, sd = np.full(k, np.nan), np.full(k, np.nan)
    for i in range(k):
        in_g = g.codes == i
        ok = in_g & ~np.isnan(x)
        n[i] = int(ok.sum())
        avail[i] = int((in_g & ~labelled).sum())
        if n[i] == 0:
            continue
        xi, wi = x[ok], w[ok]
        m = float(np.sum(wi * xi) / np.sum(wi))
        mean[i] = m
        if n[i] >= 2:
            # linearised variance of the Hajek mean, times n: the design effect is included
            var_mean = float(np.sum(wi**2 * (xi - m) ** 2) / np.sum(wi) ** 2) * n[i] / (n[i] - 1)
            sd[i] = math.sqrt(var_mean * n[i])
    # a group with fewer than two values borrows the largest sd seen (cautious)
    fallback = float(np.nanmax(sd)) if np.isfinite(sd).any() else float("nan")
    sd = np.where(np.isfinite(sd), sd, fallback)
    return _Stats(g.labels, n, avail, mean, sd)


def _ppi_stats(audit: Audit, by: Any, u: np.ndarray, v: np.ndarray) -> _Stats:
    """Group statistics of a prediction-powered estimate ``ū_N + v̄_n``.

    ``u`` is the term taken over every case with a proxy value (NaN elsewhere), ``v`` the one
    over the labelled cases (NaN elsewhere): for a group mean ``u = λA`` and ``v = T − λA``
    (the tuned rectifier). With the labelled cases a sample of the group's ``N``,
    ``Var(ū_N + v̄_n) = Var(v)/n + (Var(u) + 2 Cov(u, v))/N``: ``Cov(ū_N, v̄_n)`` sums
    ``Cov(u_j, v_j)/(N n)`` over the ``n`` labelled cases, the only ones in both means. The
    first term is the planner's ``sd²/n`` (``sd`` from ``v``, design effect included, as for a
    labelled-only mean); the second is the floor ``c_g`` that labels cannot lower. At ``n = N``
    the sum is ``Var(u + v)/N``: for a mean ``Var(T)/N``, every label, the labelled-only mean.
    ``c_g`` of a tuned mean is ``λ²Var(A)/N ≥ 0``; a share's may be negative (see the loop).
    """
    st = _group_stats(audit, v, by)
    codes = audit.grouping(by).codes
    weights = audit.case_weights([_series_like(v)])
    w = np.ones(len(v)) if weights is None else weights[:, 0]
    floor = np.zeros(len(st.labels))
    mean = np.full(len(st.labels), np.nan)
    for i in range(len(st.labels)):
        in_g = codes == i
        all_i, ok = in_g & ~np.isnan(u), in_g & ~np.isnan(v)
        big_n, n = int(all_i.sum()), int(ok.sum())
        if n >= 1 and big_n >= 1:
            mean[i] = float(np.mean(u[all_i])) + float(st.mean[i])
        if big_n < 2 or n < 2:
            continue
        ui, vi, wi = u[ok], v[ok], w[ok]
        mu, mv = (float(np.sum(wi * x) / np.sum(wi)) for x in (ui, vi))
        cov = float(np.sum(wi * (ui - mu) * (vi - mv)) / np.sum(wi)) * n / (n - 1)
        # negative where the all-case term covaries against the labelled one (a share's
        # automated gap against its trusted gap): the labels then cost less, never less than
        # with every case labelled, where the total is Var(u + v)/N ≥ 0
        c = (float(np.var(u[all_i], ddof=1)) + 2.0 * cov) / big_n
        floor[i] = max(c, -(float(st.sd[i]) ** 2) / big_n) if np.isfinite(st.sd[i]) else c
    return replace(st, mean=mean, floor=floor)


def _ppi_mean_stats(audit: Audit, series: Any, by: Any) -> tuple[_Stats, np.ndarray]:
    """Group statistics of the prediction-powered means of ``series`` (a trusted series with
    its ``proxy``), and ``λ`` per group: the audit's own (:meth:`Audit.ppi_detail`), so the
    plan tunes exactly as the estimate it plans for."""
    g = audit.grouping(by)
    lam = audit.ppi_detail(g, series).lam[:, 0]
    lam_case = np.where(g.codes >= 0, lam[np.maximum(g.codes, 0)], np.nan)
    a = series.proxy.x
    u = lam_case * a
    return _ppi_stats(audit, by, u, series.x - u), lam


@dataclass(frozen=True)
class _FakeSeries:
    present: np.ndarray


def _series_like(x: np.ndarray) -> Any:
    return _FakeSeries(present=~np.isnan(x))


_SCALED = "standard deviations scaled by {kappa:.2f} to match the gate's bootstrap interval"
_UNDECIDABLE = (
    "the margin to the threshold ({margin:.3g}) is within the noise of the current labels "
    "(standard error {se:.3g}): even labelling every case of an unlimited cohort would decide "
    "it with less than {power:.0%} probability, so no number is planned. Check whether the "
    "threshold is the one intended, or label a batch and plan again"
)


def _gate_checks(audit: Audit, gate: Any, conf: float) -> list[Check]:
    """The checks (estimate and bootstrap interval against a limit) the gate decides on."""
    try:
        return gate_checks(audit, gate, conf)
    except Exception:  # advice only: without them the plan stays on the normal approximation
        return []


def _bootstrap_se(
    checks: Sequence[Any], limit: float, group: str | None, z: float, up: bool
) -> float | None:
    """The standard error the gate's own bootstrap interval implies on its decisive side.

    The closed form is a normal approximation; per-case Dice is skewed (a tail of failures),
    and the percentile bootstrap that decides the gate then reaches further on one side than
    ``z·SE``. Scaling the plan's standard deviations to the interval the gate actually uses
    keeps "already conclusive" and "conclusive after the plan" the gate's own notions.
    """
    for c in checks:
        if c.group == group and math.isclose(c.limit, limit, rel_tol=1e-9, abs_tol=1e-12):
            v = c.value
            half = (v.upper - v.estimate) if up else (v.estimate - v.lower)
            return float(half / z) if math.isfinite(half) and half > 0 else None
    return None


def _scale(se_boot: float | None, v_normal: float) -> float:
    """Bootstrap-to-normal ratio of standard errors, kept within [0.5, 3] (a guard against a
    degenerate interval, e.g. from very few resamples)."""
    if se_boot is None or not (v_normal > 0 and math.isfinite(v_normal)):
        return 1.0
    return min(max(se_boot / math.sqrt(v_normal), 0.5), 3.0)


def _pair_variance(st: _Stats, a: int, b: int) -> float:
    """Variance of the difference of two group means with the labels there now."""
    if st.n[a] <= 0 or st.n[b] <= 0:
        return float("inf")
    fl = st.floors()
    return float(st.sd[a] ** 2 / st.n[a] + st.sd[b] ** 2 / st.n[b] + fl[a] + fl[b])


_FLOOR = (
    "the standard error aimed at ({se:.3g}) is below {floor:.3g}, what the prediction-powered "
    "estimate keeps from the proxy ruler on every case (its floor): no number of labels "
    "reaches it"
)


def _allocate(
    st: _Stats, idx: np.ndarray, lower: np.ndarray, upper: np.ndarray, var_target: float
) -> tuple[np.ndarray, bool, str | None]:
    """:func:`_neyman` on the groups ``idx`` for a variance ``Σ sd²/n + Σ floor ≤ var_target``:
    the labels share what the floors leave (False and a note when they leave nothing)."""
    floor = float(np.sum(st.floors()[idx]))
    if st.floor is None:
        return (*_neyman(st.sd[idx], lower[idx], upper[idx], var_target), None)
    if var_target <= floor:
        note = _FLOOR.format(se=math.sqrt(max(var_target, 0.0)), floor=math.sqrt(floor))
        return upper[idx].astype(np.int64), False, note
    return (*_neyman(st.sd[idx], lower[idx], upper[idx], var_target - floor), None)


def _neyman(
    sd: np.ndarray, lower: np.ndarray, upper: np.ndarray, var_target: float
) -> tuple[np.ndarray, bool]:
    """Smallest total ``n`` with ``Σ sd²/n ≤ var_target`` and ``lower ≤ n ≤ upper``.

    Neyman allocation ``n_g ∝ sd_g`` on the groups not held at a bound; groups whose optimum
    falls outside their bounds are held there and the rest re-solved.
    """
    k = len(sd)
    sd = np.nan_to_num(np.asarray(sd, dtype=float), nan=0.0)  # no values: nothing to allocate
    n = np.asarray(lower, dtype=float).copy()
    held = np.zeros(k, dtype=bool)
    for _ in range(2 * k + 1):
        free = ~held
        rest = var_target - float(np.sum(sd[held] ** 2 / np.maximum(n[held], 1e-12)))
        if not free.any():
            break
        if rest <= 0:
            n[free] = upper[free]
            break
        cand = sd[free] * float(np.sum(sd[free])) / rest
        n_free = np.where(free)[0]
        low_hit = cand < lower[free]
        high_hit = cand > upper[free]
        if not low_hit.any() and not high_hit.any():
            n[free] = cand
            break
        if low_hit.any():
            idx = n_free[low_hit]
            n[idx] = lower[idx]
            held[idx] = True
        else:
            idx = n_free[high_hit]
            n[idx] = upper[idx]
            held[idx] = True
    n = np.clip(np.ceil(n - 1e-9), lower, upper)
    ok = float(np.sum(sd**2 / np.maximum(n, 1e-12))) <= var_target * (1 + 1e-9)
    return n.astype(np.int64), bool(ok)


def _z(q: float) -> float:
    return float(spc.ndtri(q))


def _target_se(margin: float, v0: float, z: float, power: float) -> float:
    """Largest final standard error at which the decision is conclusive with predictive
    probability ``power``, given the labels already there; 0 when no number of labels gets there.

    With pilot labels the final estimate of a contrast (or group mean) is the pilot estimate
    ``e`` plus what the new labels add: given the pilot it is ``N(e, v0 − v)``, where ``v0`` is
    the pilot's variance and ``v`` the final one (flat prior on the truth: the *predictive
    power* of Spiegelhalter, Freedman & Blackburn 1986). It ends clear of the threshold — at
    ``margin = |e − limit|`` — with probability ``Φ((margin − z√v) / √(v0 − v))``. Planning on
    it instead of on ``Φ(margin/√v − z)`` (the current estimate taken as the truth) accounts for
    the pilot's own error: the power promised is the power a team can expect, and a margin the
    pilot cannot tell from zero (``Φ(margin/√v0) < power``) is reported as not plannable
    instead of producing a number that fails half the time. Solving ``Φ(·) = power`` for
    ``u = √v`` is a quadratic:
    ``u = (margin·z − z_p·√((z² + z_p²)·v0 − margin²)) / (z² + z_p²)``.
    """
    if not (margin > 0 and v0 > 0 and math.isfinite(v0)):
        return 0.0
    if margin >= z * math.sqrt(v0):
        return math.sqrt(v0)  # already conclusive: no label needed
    z_p = _z(power)
    if margin < z_p * math.sqrt(v0):
        return 0.0  # not even every label of an infinite cohort would make it likely
    a = z * z + z_p * z_p
    return max(0.0, (margin * z - z_p * math.sqrt(max(a * v0 - margin * margin, 0.0))) / a)


def _sum_variance(st: _Stats) -> float:
    """Variance of a sum of independent group terms, ``Σ sd_g² / n_g``, with the labels there."""
    on = st.sd > 0
    if (st.n[on] <= 0).any():
        return float("inf")
    return float(np.sum(st.sd[on] ** 2 / st.n[on]) + np.sum(st.floors()))
