"""Group sizes, group estimates and the gap across groups of one series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg, Series
from segfair.audit.results import Estimate, GapResult, GroupEstimates, _nan_estimate
from segfair.stats import (
    Statistic,
    max_abs_interval,
    percentile_interval,
    ratio_interval,
    studentized_interval,
)

__all__ = ["GapEstimands"]


class GapEstimands(AuditCore):
    """Group sizes, group estimates and gaps (a part of :class:`~segfair.audit.Audit`)."""

    def group_sizes(
        self, *, by: ByArg, model: str | None = None, ruler: str | None = None
    ) -> pd.Series:
        """Number of cases per group: in the cohort, or with a score of ``model`` / on ``ruler``.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
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
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.by_group("dice", by="age", model="m").by_group["n"].tolist()
        [20, 20]
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        series = self.estimand_series(metric, model=model, ruler=ruler)
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
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.gap("dice", by="age", model="m", reference="old")
        >>> round(r.gap.estimate, 3), round(r.ratio.estimate, 3)
        (0.1, 0.875)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        series = self.estimand_series(metric, model=model, ruler=ruler)
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
        gap, used, gnotes = self._contrast_gap(g, reps, 0, sel, conf, series)
        notes += gnotes
        est = reps.estimate[used, 0]
        rr = reps.reps[:, used, 0]
        interval_ok = bool(self._interval_ok(g, reps.n[:, 0])[used].all())
        ratio = _nan_estimate(conf)
        to_overall = _nan_estimate(conf)
        max_group = min_group = None
        if len(used) >= 2:
            r_e, r_lo, r_hi = ratio_interval(
                est,
                rr,
                conf,
                se=None if reps.se is None else reps.se[used, 0],
                se_reps=None if reps.se_reps is None else reps.se_reps[:, used, 0],
            )
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
            every = np.arange(len(g.labels))
            dse, dse_reps = self.contrast_se(reps, 0, every, np.full_like(every, ref))
            dreps = reps.reps[:, :, 0] - reps.reps[:, [ref], 0]
            d = reps.estimate[:, 0] - reps.estimate[ref, 0]
            if dse is None or dse_reps is None:
                lo, hi = percentile_interval(dreps, conf)
            else:
                lo, hi = studentized_interval(d, dse, dreps, dse_reps, conf)
            ok = self._interval_ok(g, reps.n[:, 0]) & self._interval_ok(g, reps.n[:, 0])[ref]
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
                    d[others],
                    dreps[:, others],
                    conf,
                    se=None if dse is None else dse[others],
                    se_reps=None if dse_reps is None else dse_reps[:, others],
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
