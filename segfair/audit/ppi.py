"""Prediction-powered group means set beside their labelled-only twins (what the gain is)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import ByArg, Series
from segfair.audit.gaps import GapEstimands
from segfair.audit.messages import AuditError
from segfair.audit.results import GapResult, PredictionPoweredResult
from segfair.stats import Replicates

__all__ = ["NOT_PARTIAL", "NOT_TRUSTED", "PredictionPoweredEstimands"]

NOT_TRUSTED = (
    "prediction-powered estimates are of the trusted ruler {trusted!r}; got ruler {ruler!r}. "
    "Leave ruler out or set it to {trusted!r}"
)
NOT_PARTIAL = (
    "prediction-powered estimates need a partial trusted ruler, but every case has a "
    "{trusted!r} label: the labelled estimate is exact there (use by_group or gap)"
)


class PredictionPoweredEstimands(GapEstimands):
    """The prediction-powered estimate of a trusted-ruler mean, beside the labelled-only one
    (a part of :class:`~segfair.audit.Audit`)."""

    def prediction_powered(
        self,
        metric: str,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> PredictionPoweredResult:
        """The prediction-powered group means of ``model``'s ``metric`` on the partial trusted
        ruler, what they rest on (``λ``, the proxy mean, the rectifier) and what they gain over
        the labelled-only means, whatever this audit's own estimator.

        Parameters
        ----------
        metric, by, model, confidence
            As in :meth:`by_group`.
        ruler
            The trusted ruler (the default; any other is refused).
        groups
            Take the gaps over these groups only (default: all with values), e.g. those a gate
            decides on; the table lists every group.

        Returns
        -------
        PredictionPoweredResult

        Raises
        ------
        AuditError
            The ruler is not the trusted one, every case is labelled, there is no proxy ruler
            (:meth:`proxy_ruler`), or the audit's statistic is not the mean.

        Examples
        --------
        >>> from dataclasses import replace
        >>> from segfair.audit import Audit, example_scores
        >>> s = example_scores()
        >>> t = s.table
        >>> even = [f"c{i:02d}" for i in range(0, 40, 2)]   # half the cases keep an expert label
        >>> half = (t["ruler"] != "expert") | t["case_id"].isin(even)
        >>> audit = Audit(replace(s, table=t[half]), n_boot=200)
        >>> r = audit.prediction_powered("dice", by="age", model="m")
        >>> r.proxy, r.by_group["n"].tolist(), r.by_group["n_all"].tolist()
        ('auto', [10, 10], [20, 20])
        >>> r.by_group["rectifier"].round(3).tolist()   # the automated ruler reads young high
        [-0.05, 0.0]
        >>> round(r.gap.estimate, 3), bool(r.gap.width < r.labelled_gap.width)
        (0.1, True)
        """
        trusted = self.scores.trusted_ruler
        ruler = trusted if ruler is None else ruler
        self._check_ruler(ruler)
        if ruler != trusted:
            raise AuditError(NOT_TRUSTED.format(trusted=trusted, ruler=ruler))
        if bool(self.labelled_mask().all()):
            raise AuditError(NOT_PARTIAL.format(trusted=trusted))
        conf = self._conf(confidence)
        # both estimates on one audit, the prediction-powered one: the labelled-only mean is
        # the plain series on the same resamples (a second audit would hold a second design)
        ppi = self.with_estimator("ppi")
        series = ppi.estimand_series(metric, model=model, ruler=ruler)
        plain = ppi.series(metric, model=model, ruler=ruler)
        proxy = ppi.proxy_ruler()
        g = ppi.grouping(by)

        def gap_of(s: Series, only: Sequence[str] | None) -> GapResult:
            return ppi._gap_of(
                s,
                metric=metric,
                by=by,
                model=model,
                ruler=ruler,
                reference=None,
                groups=only,
                confidence=conf,
                statistic="mean",
            )

        powered, labelled = gap_of(series, None), gap_of(plain, None)
        p_reps = ppi._reps(g, [series], "mean")
        l_reps = ppi._reps(g, [plain], "mean")
        detail = ppi.ppi_detail(g, series)
        p_se, l_se = _standard_errors(p_reps), _standard_errors(l_reps)
        lt = labelled.by_group
        pt = powered.by_group
        index = pt.index
        n_lab = lt["n"].reindex(index).to_numpy(dtype=np.float64)
        pos = [g.labels.index(str(i)) for i in index]
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = (l_se[pos] / p_se[pos]) ** 2
            ratio = (pt["upper"] - pt["lower"]).to_numpy() / (lt["upper"] - lt["lower"]).reindex(
                index
            ).to_numpy()
        frame = pd.DataFrame(
            {
                "n": pt["n"].to_numpy(dtype=np.int64),
                "n_all": detail.n_all[pos, 0].astype(np.int64),
                "lam": detail.lam[pos, 0],
                "proxy_mean": detail.proxy_mean[pos, 0],
                "rectifier": detail.rectifier[pos, 0],
                "estimate": pt["estimate"].to_numpy(),
                "lower": pt["lower"].to_numpy(),
                "upper": pt["upper"].to_numpy(),
                "labelled_estimate": lt["estimate"].reindex(index).to_numpy(),
                "labelled_lower": lt["lower"].reindex(index).to_numpy(),
                "labelled_upper": lt["upper"].reindex(index).to_numpy(),
                # at most the cases the proxy covers (its population bound): beyond it is the
                # noise of the two estimated standard errors
                "effective_n": np.where(
                    np.isfinite(gain), np.minimum(n_lab * gain, detail.n_all[pos, 0]), np.nan
                ),
                "width_ratio": ratio,
            },
            index=index,
        )
        overall = powered.overall.copy()
        overall["n_all"] = float(detail.n_all[:, 0].sum())
        for k in ("estimate", "lower", "upper"):
            overall[f"labelled_{k}"] = float(labelled.overall[k])
        gap, labelled_gap = powered.gap, labelled.gap
        notes = list(dict.fromkeys(powered.notes))
        if groups is not None:
            gap, labelled_gap = gap_of(series, groups).gap, gap_of(plain, groups).gap
            notes.append(f"the gaps are taken over the groups {', '.join(map(repr, groups))} only")
        return PredictionPoweredResult(
            metric=metric,
            by=g.key,
            model=model,
            ruler=ruler,
            proxy=proxy,
            confidence=conf,
            by_group=frame,
            overall=overall,
            gap=gap,
            labelled_gap=labelled_gap,
            notes=tuple(notes),
        )


def _standard_errors(reps: Replicates) -> np.ndarray:
    """Per group: the linearised standard error of series 0, else its bootstrap spread."""
    if reps.se is not None:
        return np.asarray(reps.se[:, 0], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.nanstd(reps.reps[:, :, 0], axis=0, ddof=1), dtype=np.float64)
