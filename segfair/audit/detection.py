"""Small-lesion detection: the share of small reference lesions found, per group, and its gap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg
from segfair.audit.messages import AuditError
from segfair.audit.results import DetectionGapResult, Estimate, _nan_estimate
from segfair.stats import group_statistic, max_abs_interval, percentile_interval

__all__ = ["DETECTION_NEEDS", "DetectionEstimands"]

#: The score-table metrics the estimand reads (per case counts, segfair.metrics.lesions).
DETECTION_METRICS: Final = ("small_lesions", "small_lesions_detected")
DETECTION_NEEDS: Final = (
    "the small-lesion detection gap needs the per-case counts {needed} of {model} on {ruler}; "
    'add them to metrics (metrics = [..., "small_lesions", "small_lesions_detected"])'
)


class DetectionEstimands(AuditCore):
    """Small-lesion detection rates and their gap (a part of :class:`~segfair.audit.Audit`)."""

    def detection_gap(
        self,
        *,
        by: ByArg,
        model: str,
        ruler: str | None = None,
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> DetectionGapResult:
        """The detection rate of small reference lesions per group, and its gap (max − min).

        A group's rate is pooled over its cases: Σ ``small_lesions_detected`` / Σ
        ``small_lesions`` (a ratio estimator; each case weighs by its number of small lesions).
        The interval of each rate and of the gap come from the same stratified case bootstrap
        as every other estimand (the ratio of the resampled sums); the gap's from the pairwise
        contrasts (:func:`segfair.stats.max_abs_interval`). Cases without a small lesion add
        nothing to a rate and are counted per group (``cases_without_small``); a group with no
        small lesion at all has no rate and is left out of the gap, with a note.

        Examples
        --------
        >>> import pandas as pd
        >>> from segfair.audit import Audit
        >>> from segfair.scores import Scores
        >>> ids = [f"c{i}" for i in range(40)]
        >>> rows = [(c, "m", "expert", name, value) for i, c in enumerate(ids)
        ...         for name, value in (("small_lesions", 2.0),
        ...                             ("small_lesions_detected", 2.0 if i < 20 else 1.0))]
        >>> scores = Scores(
        ...     table=pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"]),
        ...     groups=pd.DataFrame({"age": ["young"] * 20 + ["old"] * 20},
        ...                         index=pd.Index(ids, name="case_id")),
        ...     trusted_ruler="expert", rulers=("expert",), models=("m",))
        >>> r = Audit(scores, n_boot=200).detection_gap(by="age", model="m")
        >>> r.by_group["estimate"].tolist(), r.gap.estimate
        ([0.5, 1.0], 0.5)
        """
        ruler = self.scores.trusted_ruler if ruler is None else ruler
        conf = self._conf(confidence)
        self._check_model(model)
        self._check_ruler(ruler)
        missing = [m for m in DETECTION_METRICS if (model, ruler, m) not in self._score_index]
        if missing:
            raise AuditError(
                DETECTION_NEEDS.format(needed=", ".join(missing), model=model, ruler=ruler)
            )
        small = self.series("small_lesions", model=model, ruler=ruler)
        found = self.series("small_lesions_detected", model=model, ruler=ruler)
        g = self.grouping(by)
        sel = self._select(g, groups)
        # both counts of a case, or neither: a case is in the rate with all its small lesions
        both = small.valid & found.valid
        x = np.stack([np.where(both, found.x, np.nan), np.where(both, small.x, np.nan)], axis=1)
        reps = group_statistic(g.design, x, "mean")
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = reps.estimate[:, 0] / reps.estimate[:, 1]
            rate_reps = reps.reps[:, :, 0] / reps.reps[:, :, 1]
        lower, upper = percentile_interval(rate_reps, conf)
        rows: list[dict[str, Any]] = []
        for k, label in enumerate(g.labels):
            in_g = g.codes == k
            n_small = float(np.nansum(np.where(in_g & both, small.x, 0.0)))
            n_found = float(np.nansum(np.where(in_g & both, found.x, 0.0)))
            with_small = int(np.count_nonzero(in_g & both & (small.x > 0)))
            cases = int(np.count_nonzero(in_g & both))
            ok = n_small > 0 and bool(self._interval_ok(g, reps.n[:, 1])[k])
            rows.append(
                {
                    "group": label,
                    "n": cases,
                    "cases_with_small": with_small,
                    "cases_without_small": cases - with_small,
                    "small_lesions": n_small,
                    "detected": n_found,
                    "missed": n_small - n_found,
                    "estimate": rate[k] if n_small > 0 else np.nan,
                    "lower": lower[k] if ok else np.nan,
                    "upper": upper[k] if ok else np.nan,
                }
            )
        frame = pd.DataFrame(rows).set_index("group")
        frame.index.name = g.name
        notes: list[str] = []
        has_rate = np.array([frame["small_lesions"].iloc[i] > 0 for i in range(len(g.labels))])
        used = np.array([i for i in sel if has_rate[i]], dtype=int)
        for i in sel:
            if not has_rate[i]:
                notes.append(
                    f"group {g.labels[i]!r} has no small lesion ({int(frame['n'].iloc[i])} cases, "
                    "none with a small lesion) and is left out of the gap"
                )
        gap = _nan_estimate(conf)
        max_group = min_group = None
        if len(used) >= 2:
            i, j = np.triu_indices(len(used), k=1)
            est = rate[used]
            rr = rate_reps[:, used]
            e, lo, hi = max_abs_interval(est[i] - est[j], rr[:, i] - rr[:, j], conf)
            if not self._interval_ok(g, reps.n[:, 1])[used].all():
                lo = hi = float("nan")
                notes.append("a group without an interval (n = 1) leaves the gap without one")
            gap = Estimate(e, lo, min(hi, 1.0) if not np.isnan(hi) else hi, conf)
            max_group = g.labels[used[int(np.argmax(est))]]
            min_group = g.labels[used[int(np.argmin(est))]]
            dropped = int(np.isnan(rr).any(axis=1).sum())
            if dropped:
                notes.append(
                    f"{dropped} of {rr.shape[0]} resamples drew no small lesion in some group "
                    "and were left out of the intervals"
                )
        else:
            notes.append("fewer than two groups with small lesions: no gap")
        total_small = float(frame["small_lesions"].sum())
        overall = pd.DataFrame(
            {
                "n": [int(frame["n"].sum())],
                "small_lesions": [total_small],
                "detected": [float(frame["detected"].sum())],
                "estimate": [
                    float(frame["detected"].sum()) / total_small if total_small else np.nan
                ],
            }
        )
        settings = self.scores.settings.get("lesions")
        small_volume = settings.get("small_volume_mm3") if isinstance(settings, dict) else None
        return DetectionGapResult(
            by=g.key,
            model=model,
            ruler=ruler,
            confidence=conf,
            small_volume=None if small_volume is None else float(small_volume),
            gap=gap,
            by_group=frame.loc[[g.labels[i] for i in sel]],
            overall=overall,
            max_group=max_group,
            min_group=min_group,
            notes=tuple(notes),
        )
