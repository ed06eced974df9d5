"""Rate fairness: demographic parity, equity-scaled scores and the MAMA-MIA fairness score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segfair.audit.core import AuditCore, ByArg, Series
from segfair.audit.gaps import _gap_of
from segfair.audit.results import (
    EquityResult,
    Estimate,
    GapResult,
    GroupEstimates,
    MamaMiaResult,
    RateResult,
)
from segfair.stats import percentile_interval

__all__ = ["dpd_dir", "equity_scaled", "mamamia_fairness"]


def dpd_dir(
    audit: AuditCore,
    metric: str,
    *,
    by: ByArg,
    model: str,
    ruler: str | None = None,
    threshold: float = 0.8,
    groups: Sequence[str] | None = None,
    confidence: float | None = None,
) -> RateResult:
    """The work of :meth:`segfair.audit.Audit.dpd_dir`, which documents it."""
    ruler = audit.scores.trusted_ruler if ruler is None else ruler
    base = audit.series(metric, model=model, ruler=ruler)
    key = ("rate", metric, model, ruler, float(threshold))
    rate = audit._series_cache.get(key)
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
        audit._series_cache[key] = rate
    res = _gap_of(
        audit,
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
    audit: AuditCore,
    metric: str,
    *,
    by: ByArg,
    model: str,
    ruler: str | None = None,
    confidence: float | None = None,
) -> EquityResult:
    """The work of :meth:`segfair.audit.Audit.equity_scaled`, which documents it."""
    ruler = audit.scores.trusted_ruler if ruler is None else ruler
    conf = audit._conf(confidence)
    series = audit.series(metric, model=model, ruler=ruler)
    g = audit.grouping(by)
    reps = audit._reps(g, [series], "mean")
    frame, overall, notes = audit._group_table(g, reps, 0, series, conf)
    has = reps.n[:, 0] > 0
    est = reps.overall[0] / (1 + np.abs(reps.estimate[has, 0] - reps.overall[0]).sum())
    rr = reps.overall_reps[:, 0] / (
        1 + np.abs(reps.reps[:, has, 0] - reps.overall_reps[:, [0]]).sum(axis=1)
    )
    lo_a, hi_a = percentile_interval(rr, conf)
    lo, hi = float(lo_a), float(hi_a)
    if not audit._interval_ok(g, reps.n[:, 0])[has].all():
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
    audit: AuditCore,
    *,
    by: ByArg,
    model: str,
    ruler: str | None = None,
    confidence: float | None = None,
) -> MamaMiaResult:
    """The work of :meth:`segfair.audit.Audit.mamamia_fairness`, which documents it."""
    ruler = audit.scores.trusted_ruler if ruler is None else ruler
    conf = audit._conf(confidence)
    half = 1 - (1 - conf) / 2
    dice = audit.series("dice", model=model, ruler=ruler)
    hd = audit.series("hd95", model=model, ruler=ruler)
    key = ("normhd", model, ruler, audit.cap)
    norm = audit._series_cache.get(key)
    if norm is None:
        norm = Series(
            key=key,
            label=f"{model} @ {ruler} (NormHD)",
            x=np.minimum(hd.x / audit.cap, 1.0),
            present=hd.present,
            capped=hd.capped,
            undefined=hd.undefined,
        )
        audit._series_cache[key] = norm
    parts = []
    for s, name in ((dice, "dice"), (norm, "normhd")):
        r = _gap_of(
            audit,
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
        r_half = _gap_of(
            audit,
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
