"""Association of a score with a covariate: across groups, or a slope for a numeric one."""

from __future__ import annotations

import warnings

import numpy as np

from segfair.audit.core import AuditCore
from segfair.audit.messages import NO_ATTRIBUTE_COLUMN
from segfair.audit.results import AssociationResult

__all__ = ["AssociationEstimands"]


class AssociationEstimands(AuditCore):
    """Association of a score with an attribute (a part of :class:`~segfair.audit.Audit`)."""

    def association(
        self,
        metric: str,
        *,
        attribute: str,
        model: str,
        ruler: str | None = None,
        confidence: float | None = None,
    ) -> AssociationResult:
        """Kruskal–Wallis and ANOVA across an attribute's groups; OLS slope on its numeric column.

        The slope is per unit of ``scores.attribute_columns[attribute]`` in the metadata (e.g.
        Dice per year of age), with a t-based interval and p-value (``scipy.stats.linregress``).
        Distances are capped first; undefined values are left out.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.association("dice", attribute="age", model="m")
        >>> r.kruskal_p < 0.001, round(r.slope, 4)
        (True, 0.0033)
        """
        # scipy.stats takes ~0.3 s to import: only the report's sections need it, not a gate
        from scipy import stats as sps

        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        s = self.series(metric, model=model, ruler=ruler)
        g = self.grouping(attribute)
        notes: list[str] = []
        vals = [s.x[(g.codes == i) & s.valid] for i in range(len(g.labels))]
        nonempty = [v for v in vals if len(v)]
        kh = kp = af = ap = float("nan")
        if len(nonempty) >= 2 and len(np.unique(np.concatenate(nonempty))) > 1:
            kw = sps.kruskal(*nonempty)
            kh, kp = float(kw.statistic), float(kw.pvalue)
            if all(len(v) >= 2 for v in nonempty):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # constant groups warn; the NaN says enough
                    an = sps.f_oneway(*nonempty)
                af, ap = float(an.statistic), float(an.pvalue)
        else:
            notes.append("fewer than two groups with distinct values: no group tests")
        column = self.scores.attribute_columns.get(attribute)
        slope = lo = hi = sp = icpt = r = float("nan")
        n_ols = 0
        aligned = None if column is None else self.metadata_column(column)
        if aligned is None:
            notes.append(
                NO_ATTRIBUTE_COLUMN.format(
                    name=attribute, valid=dict(self.scores.attribute_columns)
                )
            )
        else:
            numeric = self.numeric_metadata(str(column))
            assert numeric is not None  # the column is there (aligned above)
            xcol = numeric.to_numpy(dtype=np.float64)
            both = s.valid & ~np.isnan(xcol)
            n_ols = int(both.sum())
            if n_ols >= 3 and np.ptp(xcol[both]) > 0:
                lr = sps.linregress(xcol[both], s.x[both])
                slope, icpt, r, sp = (
                    float(lr.slope),
                    float(lr.intercept),
                    float(lr.rvalue),
                    float(lr.pvalue),
                )
                t = float(sps.t.ppf(1 - (1 - conf) / 2, n_ols - 2))
                lo, hi = slope - t * float(lr.stderr), slope + t * float(lr.stderr)
            else:
                notes.append(f"column {column!r} is not numeric with ≥ 3 varying values: no slope")
        return AssociationResult(
            metric=metric,
            attribute=attribute,
            model=model,
            ruler=ruler,
            column=column,
            n=int(s.valid.sum()),
            kruskal_h=kh,
            kruskal_p=kp,
            anova_f=af,
            anova_p=ap,
            slope=slope,
            slope_lower=lo,
            slope_upper=hi,
            slope_p=sp,
            intercept=icpt,
            r=r,
            confidence=conf,
            notes=tuple(notes + ([f"OLS on {n_ols} cases"] if n_ols else [])),
        )
