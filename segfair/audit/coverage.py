"""Coverage: how many cases of each group carry a trusted label or a score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segfair.audit.core import AuditCore, ByArg
from segfair.audit.results import CoverageResult
from segfair.stats import wilson_interval

__all__ = ["CoverageEstimands"]


class CoverageEstimands(AuditCore):
    """Coverage of the cohort by each model (a part of :class:`~segfair.audit.Audit`)."""

    def coverage(
        self,
        *,
        by: ByArg,
        model: str | Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> CoverageResult:
        """Cases with a usable prediction over the cases of the cohort, per group, with reasons.

        A case is covered for a model when the score table holds a row for it (against any
        ruler). Every missing case gets a reason: the recorded exclusion
        (``scores.exclusions``), else ``"no scores and no recorded exclusion"``. Coverage is a
        count over the whole cohort; the Wilson interval is given for reading only.

        Examples
        --------
        >>> from segfair.audit import Audit, example_scores
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.coverage(by="age", model="m").by_group["coverage"].tolist()
        [1.0, 1.0]
        """
        conf = self._conf(confidence)
        if model is None:
            models = list(self.scores.models)
        else:
            models = [model] if isinstance(model, str) else list(model)
        g = self.grouping(by)
        ex = self.scores.exclusions
        rows = []
        overall_rows = []
        missing_rows: list[dict[str, str]] = []
        for m in models:
            self._check_model(m)
            covered = np.zeros(len(self.cases), dtype=bool)
            for (mm, _, _), (pos, _) in self._score_index.items():
                if mm == m:
                    covered[pos] = True
            sel = ex[(ex["source"].astype(str) == m) & (ex["kind"].astype(str) != "ruler")]
            reasons = dict(zip(sel["case_id"].astype(str), sel["reason"].astype(str), strict=True))
            for i in np.flatnonzero(~covered):
                cid = str(self.cases[i])
                missing_rows.append(
                    {
                        "case_id": cid,
                        "model": m,
                        "group": g.labels[g.codes[i]],
                        "reason": reasons.get(cid, "no scores and no recorded exclusion"),
                    }
                )
            for k, lab in enumerate(g.labels):
                in_g = g.codes == k
                exp_n = int(in_g.sum())
                cov_n = int((covered & in_g).sum())
                lo, hi = wilson_interval(cov_n, exp_n, conf)
                why: dict[str, int] = {}
                for r in missing_rows:
                    if r["model"] == m and r["group"] == lab:
                        why[r["reason"]] = why.get(r["reason"], 0) + 1
                rows.append(
                    {
                        "model": m,
                        "group": lab,
                        "expected": exp_n,
                        "covered": cov_n,
                        "coverage": cov_n / exp_n if exp_n else np.nan,
                        "lower": lo,
                        "upper": hi,
                        "missing": exp_n - cov_n,
                        "reasons": "; ".join(f"{k_}: {v}" for k_, v in sorted(why.items())),
                    }
                )
            tot = int(covered.sum())
            lo, hi = wilson_interval(tot, len(self.cases), conf)
            overall_rows.append(
                {
                    "model": m,
                    "expected": len(self.cases),
                    "covered": tot,
                    "coverage": tot / len(self.cases) if len(self.cases) else np.nan,
                    "lower": lo,
                    "upper": hi,
                    "missing": len(self.cases) - tot,
                }
            )
        by_group = pd.DataFrame(rows).set_index(["model", "group"])
        by_group.index = by_group.index.set_names(["model", g.name])
        return CoverageResult(
            by=g.key,
            confidence=conf,
            by_group=by_group,
            overall=pd.DataFrame(overall_rows).set_index("model"),
            missing=pd.DataFrame(missing_rows, columns=["case_id", "model", "group", "reason"]),
        )
