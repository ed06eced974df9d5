"""Paired comparisons of gaps: ruler distortion (automated labels) and model amplification."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg, Series
from segfair.audit.results import AmplificationResult, DistortionResult, Estimate, _fmt
from segfair.stats import fieller_interval, percentile_interval, selection_level

__all__ = ["DistortionEstimands"]


class DistortionEstimands(AuditCore):
    """Paired comparisons of gaps (a part of :class:`~segfair.audit.Audit`)."""

    @staticmethod
    def _ratio_of_gaps(
        reps: Any, used: np.ndarray, conf: float, *, margin: float = math.inf
    ) -> tuple[float, float]:
        """Interval of ``gap_0 / gap_1 − 1`` (series 0 over series 1): Fieller on the pair
        contrasts that attain each gap, with their paired bootstrap covariance.

        The percentile interval of the replicated ratio of max − min gaps inherits the upward
        bias of both maxima and is pulled toward 1 when the denominator gap is a few standard
        errors (74% coverage at ≈ 2.4 SE); a ratio of two smooth contrasts is not.

        ``margin`` is how far the denominator gap's lower bound clears ``negligible``. The ratio
        is read only when it does (the precondition), and that selects samples whose
        denominator came out large, which pulls the ratio toward 0: with the trusted gap ≈ 2.7
        SE the share's bound erred 6% among the samples where it was defined. Since
        ``P(error | read) ≤ P(error) / P(read)``, the interval is taken at level
        ``1 − α · π`` with ``π = Φ(margin / se − z)`` a lower confidence bound of the chance
        that the precondition holds (:func:`segfair.stats.selection_level`); a well-established
        denominator (π → 1) costs nothing.
        """
        if len(used) < 2:
            return float("nan"), float("nan")
        parts = []
        for s in (0, 1):
            est = reps.estimate[used, s]
            if np.isnan(est).any():
                return float("nan"), float("nan")
            hi_g, lo_g = int(np.argmax(est)), int(np.argmin(est))
            rr = reps.reps[:, used, s]
            parts.append((float(est[hi_g] - est[lo_g]), rr[:, hi_g] - rr[:, lo_g]))
        (na, ra), (nb, rb) = parts
        level = selection_level(conf, margin=margin, se=float(np.nanstd(rb, ddof=1)))
        lo, hi = fieller_interval(na, nb, ra, rb, level)
        return lo - 1.0, hi - 1.0

    def _paired(
        self,
        a: Series,
        b: Series,
        *,
        by: ByArg,
        groups: Sequence[str] | None,
        conf: float,
        names: tuple[str, str],
        negligible: float,
        reading: tuple[str, str, str],
    ) -> tuple[dict[str, Any], list[str]]:
        """Gaps of two series on their common cases, with paired replicates, and whether their
        ratio is ``defined`` (``b``'s gap shown above ``negligible``). ``reading`` names, for
        the note when it is not: ``b``'s gap, the ratio and its metric-unit fallback."""
        notes: list[str] = []
        ppi = a.proxy is not None or b.proxy is not None
        if ppi:
            # prediction-powered: each gap is estimated for the whole cohort (a complete series
            # on all its cases; a trusted one from its proxy on all cases, corrected on the
            # labelled ones), both from the same resamples: no restriction to common cases
            ra, rb, dropped = a, b, 0
        else:
            valid = a.valid & b.valid
            present = a.present & b.present
            ra = a.restrict(valid, present, ("paired", b.key))
            rb = b.restrict(valid, present, ("paired", a.key))
            dropped = int((a.valid ^ b.valid).sum())
        g = self.grouping(by)
        sel = self._select(g, groups)
        reps = self._reps(g, [ra, rb], self.statistic)
        if dropped:
            notes.append(
                f"{dropped} case(s) scored on only one side (or undefined on one) are "
                "left out so that both gaps use the same cases"
            )
        tables = []
        for s, series in enumerate((ra, rb)):
            frame, _, tnotes = self._group_table(g, reps, s, series, conf)
            tables.append(frame.loc[[g.labels[i] for i in sel]])
            notes += [t for t in tnotes if t not in notes]
        gap_a, used, n1 = self._contrast_gap(g, reps, 0, sel, conf, ra)
        gap_b, _, n2 = self._contrast_gap(g, reps, 1, sel, conf, rb)
        notes += [t for t in n1 + n2 if t not in notes]
        pa = self._plugin_gap_reps(reps, 0, used)
        pb = self._plugin_gap_reps(reps, 1, used)
        rel_est = gap_a.estimate / gap_b.estimate - 1 if gap_b.estimate else float("nan")
        ok = not (math.isnan(gap_a.lower) or math.isnan(gap_b.lower))
        lo, hi = self._ratio_of_gaps(reps, used, conf, margin=gap_b.lower - negligible)
        if ok and math.isnan(lo) and len(used) >= 2:
            notes.append(
                "the ratio's interval is unbounded (the denominator gap is within "
                "z standard errors of 0): no interval"
            )
        dlo, dhi = (float(v) for v in percentile_interval(pa - pb, conf))
        if not ok:
            lo = hi = dlo = dhi = float("nan")
        by_group = pd.concat(dict(zip(names, tables, strict=True)), names=["source", g.name])
        defined = bool(gap_b.lower > negligible)
        if not defined:
            denominator, ratio, fallback = reading
            notes.append(
                f"the {denominator} gap is not shown to exceed negligible = {negligible:g} "
                f"(lower bound {_fmt(gap_b.lower)}): {ratio} is undefined, read the "
                f"{fallback} in metric units"
            )
        return {
            "key": g.key,
            "defined": defined,
            "gap_a": gap_a,
            "gap_b": gap_b,
            "rel": Estimate(float(rel_est), float(lo), float(hi), conf),
            "diff": Estimate(gap_a.estimate - gap_b.estimate, float(dlo), float(dhi), conf),
            "by_group": by_group,
        }, notes

    def ruler_distortion(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        automated: str,
        trusted: str | None = None,
        negligible: float | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> DistortionResult:
        """How scoring on an automated ruler changes the gap: shrinkage, inflation, hidden gap.

        Both gaps are computed on the cases scored on both rulers with the *same* resamples, so
        ``distortion = gap(automated) / gap(trusted) − 1`` and ``hidden_gap = gap(trusted) −
        gap(automated)`` have paired percentile intervals (identical rulers give exactly 0).

        Parameters
        ----------
        metric, by, model, confidence
            As in :meth:`gap`.
        automated
            The automated ruler.
        trusted
            The trusted ruler (default: ``scores.trusted_ruler``).
        negligible
            A trusted gap not shown to exceed this (its lower bound ≤ ``negligible``) makes the
            ratios undefined (``defined=False``). Default 0.01 (1 mm for distances).
        groups
            Restrict to these groups.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.ruler_distortion("dice", by="age", model="m", automated="auto")
        >>> round(r.shrinkage.estimate, 2), round(r.hidden_gap.estimate, 3)
        (0.5, 0.05)
        """
        trusted = self.scores.trusted_ruler if trusted is None else trusted
        conf = self._conf(confidence)
        neg = self.negligible_for(metric, negligible)
        t = self.estimand_series(metric, model=model, ruler=trusted)
        a = self.estimand_series(metric, model=model, ruler=automated)
        out, notes = self._paired(
            a,
            t,
            by=by,
            groups=groups,
            conf=conf,
            names=(automated, trusted),
            negligible=neg,
            reading=("trusted", "distortion", "hidden gap"),
        )
        gap_t: Estimate = out["gap_b"]
        defined: bool = out["defined"]
        rel: Estimate = out["rel"]
        diff: Estimate = out["diff"]
        by_group = out["by_group"]
        by_group.index = by_group.index.set_names(["ruler", by_group.index.names[1]])
        return DistortionResult(
            metric=metric,
            by=out["key"],
            model=model,
            automated=automated,
            trusted=trusted,
            confidence=conf,
            negligible=neg,
            defined=defined,
            gap_trusted=gap_t,
            gap_automated=out["gap_a"],
            distortion=rel,
            shrinkage=_negative_side(rel),
            inflation=_positive_side(rel),
            hidden_gap=Estimate(0.0 - diff.estimate, 0.0 - diff.upper, 0.0 - diff.lower, conf),
            by_group=by_group,
            notes=tuple(notes),
        )

    def amplification(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        baseline: str,
        ruler: str | None = None,
        negligible: float | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> AmplificationResult:
        """``gap(model) / gap(baseline) − 1`` on one ruler (default trusted), paired.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.amplification("dice", by="age", model="m2", baseline="m")
        >>> round(r.amplification.estimate, 2)
        0.5
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        neg = self.negligible_for(metric, negligible)
        m = self.estimand_series(metric, model=model, ruler=ruler)
        b = self.estimand_series(metric, model=baseline, ruler=ruler)
        out, notes = self._paired(
            m,
            b,
            by=by,
            groups=groups,
            conf=conf,
            names=(model, baseline),
            negligible=neg,
            reading=("baseline", "amplification", "added gap"),
        )
        gap_b: Estimate = out["gap_b"]
        defined: bool = out["defined"]
        by_group = out["by_group"]
        by_group.index = by_group.index.set_names(["model", by_group.index.names[1]])
        return AmplificationResult(
            metric=metric,
            by=out["key"],
            model=model,
            baseline=baseline,
            ruler=ruler,
            confidence=conf,
            negligible=neg,
            defined=defined,
            gap_model=out["gap_a"],
            gap_baseline=gap_b,
            amplification=out["rel"],
            added_gap=out["diff"],
            by_group=by_group,
            notes=tuple(notes),
        )


def _clip0(x: float) -> float:
    # max(0.0, nan) is 0.0 in Python; an undefined bound must stay undefined
    return x if math.isnan(x) else max(0.0, x)


def _negative_side(e: Estimate) -> Estimate:
    """``max(0, -x)`` of an estimate and its interval (monotone, so the interval maps exactly)."""
    return Estimate(_clip0(-e.estimate), _clip0(-e.upper), _clip0(-e.lower), e.confidence)


def _positive_side(e: Estimate) -> Estimate:
    """``max(0, x)`` of an estimate and its interval."""
    return Estimate(_clip0(e.estimate), _clip0(e.lower), _clip0(e.upper), e.confidence)
