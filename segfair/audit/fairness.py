"""Rate fairness: demographic parity, equity-scaled scores and the MAMA-MIA fairness score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segfair.audit.core import ByArg, Series
from segfair.audit.gaps import GapEstimands
from segfair.audit.results import (
    EquityResult,
    Estimate,
    GapResult,
    GroupEstimates,
    MamaMiaResult,
    RateResult,
)
from segfair.stats import percentile_interval

__all__ = ["FairnessEstimands"]


class FairnessEstimands(GapEstimands):
    """Rate fairness, equity-scaled scores, MAMA-MIA (a part of :class:`~segfair.audit.Audit`)."""

    def dpd_dir(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        threshold: float = 0.8,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> RateResult:
        """Rate of cases with ``metric > threshold`` per group; DPD (max − min) and DIR (min/max).

        As Parikh et al.: DPD is the demographic-parity difference of the success rates, DIR the
        disparate-impact ratio (flagged under 0.8, the four-fifths rule). Undefined values are
        left out of the rates and counted.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.dpd_dir("dice", by="age", model="m", threshold=0.75)
        >>> r.by_group["estimate"].tolist(), r.dpd.estimate, r.dir.estimate
        ([0.0, 1.0], 1.0, 0.0)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        base = self.series(metric, model=model, ruler=ruler)
        rate = self._derived(
            base,
            ("rate", metric, model, ruler, float(threshold)),
            f"{base.label} ({metric} > {threshold:g})",
            lambda: np.where(base.valid, (base.x > threshold).astype(float), np.nan),
        )
        res = self._gap_of(
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
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> EquityResult:
        """Equity-scaled score ``ES = overall / (1 + Σ_g |mean_g − overall|)`` (FairSeg).

        Uses means whatever the audit's ``statistic`` (the published definition). The interval is
        the percentile interval of the replicates; like any sum of absolute differences, the
        penalty is biased upward when the groups are close (ES biased downward).

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.equity_scaled("dice", by="age", model="m").es.estimate, 4)
        0.6818
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        series = self.estimand_series(metric, model=model, ruler=ruler)
        g = self.grouping(by)
        reps = self._reps(g, [series], "mean")
        frame, overall, notes = self._group_table(g, reps, 0, series, conf)
        has = reps.n[:, 0] > 0
        est = reps.overall[0] / (1 + np.abs(reps.estimate[has, 0] - reps.overall[0]).sum())
        rr = reps.overall_reps[:, 0] / (
            1 + np.abs(reps.reps[:, has, 0] - reps.overall_reps[:, [0]]).sum(axis=1)
        )
        lo_a, hi_a = percentile_interval(rr, conf)
        lo, hi = float(lo_a), float(hi_a)
        if not self._interval_ok(g, reps.n[:, 0])[has].all():
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
        self,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> MamaMiaResult:
        """MAMA-MIA fairness score ``1 − 0.5 (gap(Dice) + gap(NormHD))``.

        NormHD = ``min(HD95 / cap, 1)`` per case (a missed lesion scores 1), gaps are max − min
        of group means. The score's bounds combine each gap's bound at half the error rate
        (Bonferroni), so the lower bound errs with probability at most ``(1 - confidence) / 2``.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.mamamia_fairness(by="age", model="m").score.estimate, 3)
        0.917
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        half = 1 - (1 - conf) / 2
        dice = self.series("dice", model=model, ruler=ruler)
        hd = self.series("hd95", model=model, ruler=ruler)
        norm = self._derived(
            hd,
            ("normhd", model, ruler, self.cap),
            f"{model} @ {ruler} (NormHD)",
            lambda: np.minimum(hd.x / self.cap, 1.0),
        )
        parts = []
        for s, name in ((dice, "dice"), (norm, "normhd")):
            # the gap at the audit's level, then at half the error rate (for the bounds)
            r, r_half = (
                self._gap_of(
                    s,
                    metric=name,
                    by=by,
                    model=model,
                    ruler=ruler,
                    reference=None,
                    groups=None,
                    confidence=level,
                    statistic="mean",
                )
                for level in (conf, half)
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

    def _derived(
        self, base: Series, key: tuple[Any, ...], label: str, values: Callable[[], np.ndarray]
    ) -> Series:
        """A series of ``values()`` on ``base``'s cases (same present, capped, undefined), made
        once and cached under ``key``."""
        derived = self._series_cache.get(key)
        if derived is None:
            derived = Series(
                key=key,
                label=label,
                x=values(),
                present=base.present,
                capped=base.capped,
                undefined=base.undefined,
            )
            self._series_cache[key] = derived
        return derived
