"""The ruler shrinkage/inflation share, linearised over the groups for planning."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from segfair.gates import RulerShrinkageGate
from segfair.planner.allocation import (
    _UNDECIDABLE,
    _allocate,
    _group_stats,
    _pair_variance,
    _ppi_mean_stats,
    _scale,
    _Stats,
    _target_se,
)

if TYPE_CHECKING:
    from segfair.audit import Audit


@dataclass(frozen=True)
class _Share:
    """A shrinkage/inflation gate's share ``1 − r`` or ``r − 1``, ``r = gap_a / gap_t``."""

    y: np.ndarray  # per case: its term of the share's linearisation (see _share_parts)
    estimate: float
    passing: bool
    pairs: tuple[tuple[int, int], ...]  # the trusted ruler's extreme groups, then the automated
    trusted: _Stats  # trusted values on the cases scored on both rulers (or prediction-powered)
    # prediction-powered: the share's term over every case (y is then its labelled term)
    u: np.ndarray | None = None


def _share_parts(audit: Audit, gate: Any, by: Any) -> _Share | None:
    """The share a ruler gate decides on, linearised over the groups (None: no trusted gap).

    Both gaps are taken on the cases scored on both rulers, each between its own ruler's
    extreme groups: ``gap_t = t̄_hi − t̄_lo`` and ``gap_a = ā_ha − ā_la``. By the delta
    method ``Var(r) ≈ Σ_g Var(α_g·a − r·τ_g·t)_g / (n_g · gap_t²)`` (``τ_g``, ``α_g`` = +1, −1
    or 0 as ``g`` is the high, low or neither group of each ruler): one term per group, so the
    per-case series ``y = (α_g·a − r·τ_g·t) / gap_t`` has the group standard deviations the
    Neyman allocation needs — the middle groups included when they are the automated extremes,
    and the trusted noise, which the two gaps share, cancelled where it cancels.
    """
    t = audit.estimand_series(
        gate.metric, model=gate.model, ruler=gate.trusted or audit.scores.trusted_ruler
    )
    a = audit.series(gate.metric, model=gate.model, ruler=gate.automated)
    lam = None
    if t.proxy is not None:
        # prediction-powered (the audit's form): the automated gap on all its cases, the
        # trusted one from the proxy on all cases corrected on the labelled ones
        both = a.valid
        st_t, lam = _ppi_mean_stats(audit, t, by)
        st_a = _group_stats(audit, a.x, by)
    else:
        both = t.valid & a.valid
        st_t = _group_stats(audit, np.where(both, t.x, np.nan), by)
        st_a = _group_stats(audit, np.where(both, a.x, np.nan), by)
    idx = np.where(np.isfinite(st_t.mean))[0]
    if len(idx) < 2:
        return None
    hi, lo = (int(idx[f(st_t.mean[idx])]) for f in (np.argmax, np.argmin))
    ha, la = (int(idx[f(st_a.mean[idx])]) for f in (np.argmax, np.argmin))
    gap_t = float(st_t.mean[hi] - st_t.mean[lo])
    if not gap_t > 0:
        return None
    r = float(st_a.mean[ha] - st_a.mean[la]) / gap_t
    tau, alpha = np.zeros(len(st_t.labels)), np.zeros(len(st_t.labels))
    tau[hi], tau[lo] = 1.0, -1.0
    alpha[ha] += 1.0
    alpha[la] -= 1.0
    codes = audit.grouping(by).codes
    estimate = 1.0 - r if isinstance(gate, RulerShrinkageGate) else r - 1.0
    pairs = ((hi, lo), (ha, la))
    if lam is not None:
        # gap_a − r·gap_t = Σ_g (α_g·ā_g − r·τ_g·λ_g·p̄_g) − r·Σ_g τ_g·(mean_L of t − λ_g·p):
        # a term over every case (u) and one over the labelled cases (y), as _ppi_stats wants
        assert t.proxy is not None
        lam_c, p = lam[np.maximum(codes, 0)], t.proxy.x
        u = np.where(both, (alpha[codes] * a.x - r * tau[codes] * lam_c * p) / gap_t, np.nan)
        y = -r * tau[codes] * (t.x - lam_c * p) / gap_t
        return _Share(y, estimate, estimate <= gate.max, pairs, st_t, u=u)
    y = np.where(both, (alpha[codes] * a.x - r * tau[codes] * t.x) / gap_t, np.nan)
    return _Share(y, estimate, estimate <= gate.max, pairs, st_t)


def _defined_labels(
    audit: Audit,
    gate: Any,
    st: _Stats,
    pair: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    z: float,
    power: float,
    decidable: bool,
) -> tuple[np.ndarray | None, list[str]]:
    """Labels for the two groups of ``pair`` that show the trusted gap above ``negligible``.

    A share of a gap is defined only when the trusted gap's lower bound exceeds ``negligible``
    (else the gate is ``insufficient_evidence`` whatever the share): a one-sided check of that
    gap, planned like a failing gap and calibrated to its bootstrap interval. None: no number
    of labels is likely to get there.
    """
    neg = audit.negligible_for(gate.metric, gate.negligible)
    hi, lo = int(pair[0]), int(pair[1])
    gap_t = float(st.mean[hi] - st.mean[lo])
    v0 = _pair_variance(st, hi, lo)
    notes: list[str] = []
    if decidable:
        d = audit.ruler_distortion(
            gate.metric,
            by=gate.by if isinstance(gate.by, str) else list(gate.by),
            model=gate.model,
            automated=gate.automated,
            trusted=gate.trusted,
            negligible=gate.negligible,
        )
        half = d.gap_trusted.estimate - d.gap_trusted.lower
        kappa = _scale(half / z if math.isfinite(half) and half > 0 else None, v0)
        v0 *= kappa**2
        floor = None if st.floor is None else st.floor * kappa**2
        st = replace(st, sd=st.sd * kappa, floor=floor)
    se = _target_se(gap_t - neg, v0, z, power)
    if se <= 0:
        notes.append(
            f"the share is defined only once the trusted gap ({gap_t:.3g}) is shown to exceed "
            f"negligible = {neg:g}: "
            + _UNDECIDABLE.format(margin=gap_t - neg, se=math.sqrt(v0), power=power)
        )
        return None, notes
    n, ok, floor_note = _allocate(st, pair, bounds[0], bounds[1], se**2)
    if floor_note is not None:
        notes.append(floor_note)
    if not ok:
        notes.append(
            f"the share is defined only once the trusted gap ({gap_t:.3g}) is shown to exceed "
            f"negligible = {neg:g}, and the cohort holds too few cases to show it with "
            f"{power:.0%} probability"
        )
        return None, notes
    return n, notes
