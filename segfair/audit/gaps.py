"""Group sizes, group estimates and the gap across groups of one series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg, Series
from segfair.audit.results import Estimate, GapResult, GroupEstimates, _nan_estimate
from segfair.stats import Statistic, max_abs_interval, percentile_interval, ratio_interval

__all__ = ["by_group", "gap", "group_sizes"]


def group_sizes(
    audit: AuditCore, *, by: ByArg, model: str | None = None, ruler: str | None = None
) -> pd.Series:
    """The work of :meth:`segfair.audit.Audit.group_sizes`, which documents it."""
    g = audit.grouping(by)
    if model is not None:
        audit._check_model(model)
    if ruler is not None:
        audit._check_ruler(ruler)
    if model is None and ruler is None:
        mask = np.ones(len(audit.cases), dtype=bool)
    else:
        mask = np.zeros(len(audit.cases), dtype=bool)
        for (m, r, _), (pos, _) in audit._score_index.items():
            if (model is None or m == model) and (ruler is None or r == ruler):
                mask[pos] = True
    return pd.Series(audit._counts(g, mask), index=pd.Index(list(g.labels), name=g.name), name="n")


def by_group(
    audit: AuditCore,
    metric: str,
    *,
    by: ByArg,
    model: str,
    ruler: str | None = None,
    confidence: float | None = None,
) -> GroupEstimates:
    """The work of :meth:`segfair.audit.Audit.by_group`, which documents it."""
    ruler = audit.scores.trusted_ruler if ruler is None else ruler
    conf = audit._conf(confidence)
    series = audit.series(metric, model=model, ruler=ruler)
    g = audit.grouping(by)
    reps = audit._reps(g, [series], audit.statistic)
    frame, overall, notes = audit._group_table(g, reps, 0, series, conf)
    return GroupEstimates(
        metric=metric,
        by=g.key,
        model=model,
        ruler=ruler,
        statistic=audit.statistic,
        confidence=conf,
        by_group=frame,
        overall=overall,
        notes=tuple(notes),
    )


def gap(
    audit: AuditCore,
    metric: str,
    *,
    by: ByArg,
    model: str,
    ruler: str | None = None,
    reference: str | None = None,
    groups: Sequence[str] | None = None,
    confidence: float | None = None,
) -> GapResult:
    """The work of :meth:`segfair.audit.Audit.gap`, which documents it."""
    ruler = audit.scores.trusted_ruler if ruler is None else ruler
    series = audit.series(metric, model=model, ruler=ruler)
    return _gap_of(
        audit,
        series,
        metric=metric,
        by=by,
        model=model,
        ruler=ruler,
        reference=reference,
        groups=groups,
        confidence=confidence,
        statistic=audit.statistic,
    )


def _gap_of(
    audit: AuditCore,
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
    conf = audit._conf(confidence)
    g = audit.grouping(by)
    sel = audit._select(g, groups)
    reps = audit._reps(g, [series], statistic)
    frame, overall, notes = audit._group_table(g, reps, 0, series, conf)
    gap, used, gnotes = audit._contrast_gap(g, reps, 0, sel, conf)
    notes += gnotes
    est = reps.estimate[used, 0]
    rr = reps.reps[:, used, 0]
    interval_ok = bool(audit._interval_ok(g, reps.n[:, 0])[used].all())
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
        audit._select(g, [reference])
        ref = g.labels.index(reference)
        lo, hi = percentile_interval(reps.reps[:, :, 0] - reps.reps[:, [ref], 0], conf)
        ok = audit._interval_ok(g, reps.n[:, 0]) & audit._interval_ok(g, reps.n[:, 0])[ref]
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
            to_reference = Estimate(t_e, t_lo if good else np.nan, t_hi if good else np.nan, conf)
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
