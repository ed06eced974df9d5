"""The label audit: how far each ruler agrees with the trusted one, per group."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from segfair.audit.core import ByArg
from segfair.audit.gaps import GapEstimands
from segfair.audit.messages import GROUP_COLUMNS
from segfair.audit.results import GapResult, LabelAuditResult

__all__ = ["LabelEstimands"]


class LabelEstimands(GapEstimands):
    """The label audit (a part of :class:`~segfair.audit.Audit`)."""

    def label_audit(
        self,
        *,
        by: ByArg,
        automated: str | Sequence[str] | None = None,
        metrics: Sequence[str] = ("dice", "hd95"),
        groups: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> LabelAuditResult:
        """Agreement of each automated ruler with the trusted one, per group, and its gap.

        Metrics absent from ``scores.agreement`` are skipped with a note.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.label_audit(by="age", metrics=("dice",))
        >>> r.gaps["estimate"].round(2).tolist()
        [0.1]
        """
        conf = self._conf(confidence)
        trusted = self.scores.trusted_ruler
        if automated is None:
            rulers = [r for r in self.scores.rulers if r != trusted]
        else:
            rulers = [automated] if isinstance(automated, str) else list(automated)
        results: dict[tuple[str, str], GapResult] = {}
        notes: list[str] = []
        if not rulers:
            notes.append(f"no automated ruler: only the trusted ruler {trusted!r} is configured")
        for r in rulers:
            self._check_ruler(r)
            for metric in metrics:
                if (r, metric) not in self._agreement_index:
                    notes.append(f"no agreement scores of {metric!r} for ruler {r!r}")
                    continue
                s = self.agreement_series(metric, ruler=r)
                results[(r, metric)] = self._gap_of(
                    s,
                    metric=metric,
                    by=by,
                    model=None,
                    ruler=r,
                    reference=None,
                    groups=groups,
                    confidence=conf,
                    statistic=self.statistic,
                )
        g = self.grouping(by)
        if results:
            by_group = pd.concat(
                {k: v.by_group for k, v in results.items()}, names=["ruler", "metric", g.name]
            )
        else:
            by_group = pd.DataFrame(
                columns=list(GROUP_COLUMNS),
                index=pd.MultiIndex.from_tuples([], names=["ruler", "metric", g.name]),
            )
        gaps = pd.DataFrame(
            {
                "estimate": [v.gap.estimate for v in results.values()],
                "lower": [v.gap.lower for v in results.values()],
                "upper": [v.gap.upper for v in results.values()],
                "min_group": [v.min_group for v in results.values()],
                "max_group": [v.max_group for v in results.values()],
            },
            index=pd.MultiIndex.from_tuples(list(results), names=["ruler", "metric"]),
        )
        for v in results.values():
            notes += [n for n in v.notes if n not in notes]
        return LabelAuditResult(
            by=g.key,
            trusted=trusted,
            confidence=conf,
            by_group=by_group,
            gaps=gaps,
            results=results,
            notes=tuple(notes),
        )
