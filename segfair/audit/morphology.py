"""Morphology shift: whether lesion descriptors differ across groups."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg, Series
from segfair.audit.results import MorphologyResult
from segfair.stats import percentile_interval

__all__ = ["MorphologyEstimands"]


class MorphologyEstimands(AuditCore):
    """Morphology shift across groups (a part of :class:`~segfair.audit.Audit`)."""

    def morphology_shift(
        self,
        *,
        by: ByArg,
        ruler: str | None = None,
        reference: str | None = None,
        descriptors: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> MorphologyResult:
        """Per-group distributions of each morphology descriptor of the reference masks.

        Per group: ``n, mean, sd, median, q1, q3``; against the reference group (default: the
        largest group of the cohort, ties to the first): ratio of means and variance ratio with
        paired bootstrap intervals, the Mann–Whitney p-value and the rank-biserial effect size.
        Across groups: the Kruskal–Wallis test.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.morphology_shift(by="age", reference="old")
        >>> round(float(r.by_group.loc[("volume_ml", "young"), "mean_ratio"]), 3)
        1.5
        """
        # scipy.stats takes ~0.3 s to import: only the report's sections need it, not a gate
        from scipy import stats as sps

        ruler = self.scores.trusted_ruler if ruler is None else ruler
        self._check_ruler(ruler)
        conf = self._conf(confidence)
        g = self.grouping(by)
        if reference is None:
            reference = g.labels[int(np.argmax(g.design.sizes))]
        else:
            self._select(g, [reference])
        ref = g.labels.index(reference)
        names = (
            list(descriptors)
            if descriptors is not None
            else sorted({k[0] for k in self._morph_index if k[1] == ruler})
        )
        frames = {}
        tests = []
        notes: list[str] = []
        for name in names:
            s = self.descriptor_series(name, ruler=ruler)
            sq = Series(
                key=(*s.key, "squared"),
                label=s.label,
                x=s.x**2,
                present=s.present,
                capped=s.capped,
                undefined=s.undefined,
            )
            reps = self._reps(g, [s, sq], "mean")
            n = reps.n[:, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                var = np.maximum(reps.reps[:, :, 1] - reps.reps[:, :, 0] ** 2, 0)
                nn = reps.n[:, 0].astype(float)
                var_est = np.maximum(reps.estimate[:, 1] - reps.estimate[:, 0] ** 2, 0)
                # sample variance (n - 1) for the point estimates; the ratio's replicates share
                # the same correction so it cancels when group sizes match
                var_est = var_est * nn / np.maximum(nn - 1, 1)
                mean_ratio = reps.estimate[:, 0] / reps.estimate[ref, 0]
                mr_lo, mr_hi = percentile_interval(
                    reps.reps[:, :, 0] / reps.reps[:, [ref], 0], conf
                )
                var_ratio = var_est / var_est[ref]
                vr_lo, vr_hi = percentile_interval(var / var[:, [ref]], conf)
            ok = self._interval_ok(g, n) & bool(self._interval_ok(g, n)[ref])
            if self.learning:  # only the replicates were wanted: skip the rank tests
                continue
            vals = [s.x[(g.codes == i) & s.valid] for i in range(len(g.labels))]
            mw_p = np.full(len(g.labels), np.nan)
            rb = np.full(len(g.labels), np.nan)
            for i in range(len(g.labels)):
                if i != ref and len(vals[i]) and len(vals[ref]):
                    res = sps.mannwhitneyu(vals[i], vals[ref], alternative="two-sided")
                    mw_p[i] = float(res.pvalue)
                    rb[i] = 2 * float(res.statistic) / (len(vals[i]) * len(vals[ref])) - 1
            frames[name] = pd.DataFrame(
                {
                    "n": n.astype(np.int64),
                    "mean": reps.estimate[:, 0],
                    "sd": np.sqrt(var_est),
                    "median": [float(np.median(v)) if len(v) else np.nan for v in vals],
                    "q1": [float(np.quantile(v, 0.25)) if len(v) else np.nan for v in vals],
                    "q3": [float(np.quantile(v, 0.75)) if len(v) else np.nan for v in vals],
                    "mean_ratio": mean_ratio,
                    "mean_ratio_lower": np.where(ok, mr_lo, np.nan),
                    "mean_ratio_upper": np.where(ok, mr_hi, np.nan),
                    "var_ratio": var_ratio,
                    "var_ratio_lower": np.where(ok, vr_lo, np.nan),
                    "var_ratio_upper": np.where(ok, vr_hi, np.nan),
                    "mannwhitney_p": mw_p,
                    "rank_biserial": rb,
                },
                index=pd.Index(list(g.labels), name=g.name),
            )
            nonempty = [v for v in vals if len(v)]
            if len(nonempty) >= 2 and len(np.unique(np.concatenate(nonempty))) > 1:
                kw = sps.kruskal(*nonempty)
                tests.append(
                    {
                        "descriptor": name,
                        "kruskal_h": float(kw.statistic),
                        "kruskal_p": float(kw.pvalue),
                        "groups": len(nonempty),
                    }
                )
            else:
                tests.append(
                    {
                        "descriptor": name,
                        "kruskal_h": np.nan,
                        "kruskal_p": np.nan,
                        "groups": len(nonempty),
                    }
                )
                notes.append(f"{name}: fewer than two groups with distinct values, no test")
        if frames:
            by_group = pd.concat(frames, names=["descriptor", g.name])
        else:
            by_group = pd.DataFrame(
                index=pd.MultiIndex.from_tuples([], names=["descriptor", g.name])
            )
            notes.append(f"ruler {ruler!r} has no morphology descriptors")
        test_frame = pd.DataFrame(
            tests, columns=["descriptor", "kruskal_h", "kruskal_p", "groups"]
        ).set_index("descriptor")
        return MorphologyResult(
            by=g.key,
            ruler=ruler,
            reference=reference,
            confidence=conf,
            by_group=by_group,
            tests=test_frame,
            notes=tuple(notes),
        )
