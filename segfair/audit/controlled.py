"""A gap controlled for a covariate (stratified on it), next to the crude gap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import ByArg
from segfair.audit.gaps import GapEstimands
from segfair.audit.messages import BAD_BINS, UNKNOWN_COVARIATE, AuditError
from segfair.audit.results import ControlledGapResult, Estimate, _nan_estimate
from segfair.stats import max_abs_interval, percentile_interval

__all__ = ["ControlledEstimands"]


class ControlledEstimands(GapEstimands):
    """The gap controlled for a covariate (a part of :class:`~segfair.audit.Audit`)."""

    def _covariate(self, stratify: str, ruler: str) -> tuple[pd.Series, bool]:
        """Per-case covariate in cohort order and whether it is numeric."""
        meta = self.scores.metadata
        col = self.metadata_column(stratify)
        if col is not None:
            num = self.numeric_metadata(stratify)
            assert num is not None  # the column is there (read above)
            numeric = bool(num.notna().sum() > 0 and num.notna().sum() == col.notna().sum())
            return (num if numeric else col.astype(object)), numeric
        if (stratify, ruler) in self._morph_index:
            s = self.descriptor_series(stratify, ruler=ruler)
            return pd.Series(s.x, index=self.cases), True
        valid = sorted(
            set(meta.columns.astype(str) if meta is not None else [])
            | {k[0] for k in self._morph_index if k[1] == ruler}
        )
        raise AuditError(
            UNKNOWN_COVARIATE.format(name=stratify, ruler=ruler, valid=", ".join(valid) or "(none)")
        )

    def controlled_gap(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        stratify: str,
        bins: int = 3,
        ruler: str | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> ControlledGapResult:
        """The gap with a difficulty covariate held fixed, by direct standardisation.

        ``stratify`` is a metadata column or a morphology descriptor of the trusted ruler's masks
        (e.g. ``"volume_ml"``). Numeric covariates are cut at their quantiles into ``bins``
        strata (over all cases); others use their values. Cases without the covariate form a
        stratum ``"missing"``. Each group's standardised estimate is the mean of its
        within-stratum means weighted by the overall stratum shares; strata where some group has
        no case are outside the common support and left out (listed, weights renormalised). The
        gap of the standardised means gets the same pairwise-contrast interval as :meth:`gap`,
        with the same resamples (weights held fixed).

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.controlled_gap("dice", by="age", model="m", stratify="volume_ml", bins=2)
        >>> round(r.gap.estimate, 2), round(r.crude_gap.estimate, 2)
        (0.1, 0.1)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise AuditError(BAD_BINS.format(value=bins))
        series = self.series(metric, model=model, ruler=ruler)
        cov, numeric = self._covariate(stratify, self.scores.trusted_ruler)
        if numeric:
            cut = pd.qcut(cov, q=bins, duplicates="drop")
            labels = [f"Q{i + 1} {iv}" for i, iv in enumerate(cut.cat.categories)]
            strata = pd.Series(cut.cat.codes.to_numpy(), index=self.cases)
            s_labels = list(labels)
        else:
            values = cov.astype(str)
            s_labels = sorted(set(values[cov.notna()]))
            strata = pd.Series(
                [
                    s_labels.index(v) if ok else -1
                    for v, ok in zip(values, cov.notna(), strict=True)
                ],
                index=self.cases,
            )
        codes = strata.to_numpy().astype(np.int64)
        if (codes < 0).any():
            s_labels.append("missing")
            codes = np.where(codes < 0, len(s_labels) - 1, codes)
        g = self.grouping(by)
        sel = self._select(g, groups)
        notes: list[str] = []
        # one series per stratum on the same design: the replicates stay paired across strata
        parts = []
        for k in range(len(s_labels)):
            mask = codes == k
            parts.append(
                series.restrict(
                    series.valid & mask, series.present & mask, ("stratum", stratify, bins, k)
                )
            )
        reps = self._reps(g, parts, self.statistic)
        cell_n = reps.n[sel, :]  # (G_sel, S)
        empty = [
            (s_labels[k], g.labels[sel[i]])
            for i in range(len(sel))
            for k in range(len(s_labels))
            if cell_n[i, k] == 0
        ]
        active = [i for i in range(len(sel)) if cell_n[i].sum() > 0]
        for i in range(len(sel)):
            if i not in active:
                notes.append(f"group {g.labels[sel[i]]!r} has no values and is left out")
        use = np.array([sel[i] for i in active], dtype=int)
        support = np.array(
            [k for k in range(len(s_labels)) if len(active) and (reps.n[use, k] > 0).all()],
            dtype=int,
        )
        excluded = tuple(s_labels[k] for k in range(len(s_labels)) if k not in set(support))
        if excluded:
            notes.append(
                f"strata {list(excluded)} hold an empty cell and are left out of the "
                "standardisation (common support)"
            )
        totals = reps.n[use][:, support].sum(axis=0).astype(float)
        weights = totals / totals.sum() if totals.sum() > 0 else totals
        std_est = (
            (reps.estimate[use][:, support] * weights).sum(axis=1)
            if len(support)
            else np.full(len(use), np.nan)
        )
        std_reps = (
            (reps.reps[:, use][:, :, support] * weights).sum(axis=2)
            if len(support)
            else np.full((g.design.n_boot, len(use)), np.nan)
        )
        if len(support) and np.isnan(reps.reps[:, use][:, :, support]).any():
            bad = np.isnan(reps.reps[:, use][:, :, support]).any(axis=(1, 2))
            std_reps[bad] = np.nan
            notes.append(
                f"{int(bad.sum())} of {g.design.n_boot} resamples emptied a cell and "
                "were left out of the intervals"
            )
        ok = self._interval_ok(
            g, reps.n[:, support].sum(axis=1) if len(support) else np.zeros(len(g.labels), int)
        )[use]
        if len(use) >= 2 and len(support):
            pi, pj = np.triu_indices(len(use), k=1)
            e, lo, hi = max_abs_interval(
                std_est[pi] - std_est[pj], std_reps[:, pi] - std_reps[:, pj], conf
            )
            if not ok.all():
                lo = hi = float("nan")
            gap = Estimate(e, lo, hi, conf)
        else:
            gap = _nan_estimate(conf)
        # the crude gap on the same cases (those in the common-support strata)
        in_support = np.isin(codes, support)
        crude_series = series.restrict(
            series.valid & in_support, series.present & in_support, ("support", stratify, bins)
        )
        crude = self._gap_of(
            crude_series,
            metric=metric,
            by=by,
            model=model,
            ruler=ruler,
            reference=None,
            groups=[g.labels[i] for i in use] or None,
            confidence=conf,
            statistic=self.statistic,
        )
        g_lo, g_hi = percentile_interval(std_reps, conf) if len(use) else (np.array([]),) * 2
        by_group = pd.DataFrame(
            {
                "n": [int(crude.by_group.loc[g.labels[i], "n"]) for i in use],
                "crude": [float(crude.by_group.loc[g.labels[i], "estimate"]) for i in use],
                "standardised": std_est,
                "lower": np.where(ok, g_lo, np.nan),
                "upper": np.where(ok, g_hi, np.nan),
            },
            index=pd.Index([g.labels[i] for i in use], name=g.name),
        )
        strata_frame = pd.DataFrame(
            {
                "n": reps.n[sel, :].T.reshape(-1).astype(np.int64),
                "estimate": reps.estimate[sel, :].T.reshape(-1),
            },
            index=pd.MultiIndex.from_product(
                [s_labels, [g.labels[i] for i in sel]], names=["stratum", g.name]
            ),
        )
        rows = []
        for k in range(len(s_labels)):
            have = use[reps.n[use, k] > 0] if len(use) else use
            if len(have) >= 2:
                est = reps.estimate[have, k]
                rr = reps.reps[:, have, k]
                pi, pj = np.triu_indices(len(have), k=1)
                e, lo, hi = max_abs_interval(est[pi] - est[pj], rr[:, pi] - rr[:, pj], conf)
                if not self._interval_ok(g, reps.n[:, k])[have].all():
                    lo = hi = float("nan")
            else:
                e = lo = hi = float("nan")
            w = float(weights[list(support).index(k)]) if k in set(support) else 0.0
            rows.append(
                {
                    "n": int(reps.n[sel, k].sum()),
                    "weight": w,
                    "estimate": e,
                    "lower": lo,
                    "upper": hi,
                }
            )
        stratum_gaps = pd.DataFrame(rows, index=pd.Index(s_labels, name="stratum"))
        return ControlledGapResult(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            stratify=stratify,
            confidence=conf,
            gap=gap,
            crude_gap=crude.gap,
            by_group=by_group,
            strata=strata_frame,
            stratum_gaps=stratum_gaps,
            weights=pd.Series(
                weights,
                index=pd.Index([s_labels[k] for k in support], name="stratum"),
                name="weight",
            ),
            empty_cells=tuple(empty),
            excluded_strata=excluded,
            notes=tuple(notes),
        )
