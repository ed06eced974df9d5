""":class:`Audit`: the public face of the audit, one method per estimand, each in its own module.

:class:`Audit` is the statistics over a :class:`~segfair.scores.Scores` table. Every estimate has
a bootstrap interval; every difference between rulers or models is *paired* (the same resampled
cases score both sides). Results are small frozen objects holding pandas tables with
``.by_group`` and ``.overall`` in the spirit of fairlearn's ``MetricFrame``.

Conventions
-----------
* The cohort is ``scores.groups.index`` sorted by ``case_id``; row order of the inputs never
  matters.
* Distances (:data:`~segfair.stats.DISTANCE_METRICS`) that are ``inf`` (a missed lesion) are
  replaced by ``cap`` before averaging and counted per group (``capped``); finite distances are
  kept as they are. A NaN (undefined, e.g. sensitivity with an empty reference) — or an infinite
  value of a non-distance metric — is left out of the statistic and counted (``undefined``).
* ``n`` is the number of values behind an estimate. A group with ``n == 0`` has no estimate and
  is left out of gaps (noted); with ``n == 1`` its interval is NaN (noted).
* Intersectional groups (``by=["age_group", "ethnicity"]``) are labelled ``"young × white"``;
  the index is named ``"age_group × ethnicity"``. Only combinations that occur are listed; a
  single categorical attribute lists all its categories, empty ones with ``n == 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from segfair.audit import (
    association,
    controlled,
    coverage,
    distortion,
    fairness,
    gaps,
    labels,
    morphology,
)
from segfair.audit.core import AuditCore, ByArg
from segfair.audit.example import example_scores  # noqa: F401  (the docstring examples use it)
from segfair.audit.results import (
    AmplificationResult,
    AssociationResult,
    ControlledGapResult,
    CoverageResult,
    DistortionResult,
    EquityResult,
    GapResult,
    GroupEstimates,
    LabelAuditResult,
    MamaMiaResult,
    MorphologyResult,
    RateResult,
)

__all__ = ["Audit"]


class Audit(AuditCore):
    """Subgroup statistics of a :class:`~segfair.scores.Scores` table, with bootstrap intervals.

    Parameters
    ----------
    scores
        The per-case tables.
    seed
        Bootstrap seed. The resamples of an attribute are derived from ``(seed, attribute)``, so
        results do not depend on the order of calls or of the input rows.
    n_boot
        Number of bootstrap resamples (≥ 100; 2,000 is the default).
    confidence
        Two-sided level of every interval, in (0.5, 1).
    statistic
        Group estimate: ``"mean"`` or ``"median"``.
    cap
        Distance (mm) that replaces ``inf`` in distance metrics (MAMA-MIA's 150 mm).
    cluster
        A metadata column (e.g. ``"dataset"``): resample whole clusters within each group instead
        of cases. Needs at least two clusters per group, else that group has no interval.
    min_group_size
        Default smallest group a gate decides on (see :mod:`segfair.gates`).
    design_weights
        Inverse inclusion probabilities of the cases in the trusted ruler's labelled sample
        (index ``case_id``; see :func:`segfair.planner.design_weights`). Every statistic whose
        cases all carry a trusted label (trusted-ruler scores, agreement, paired comparisons)
        is then a Hajek-weighted estimate; complete series are not weighted
        (``docs/partial-labels.md``).

    Examples
    --------
    >>> import pandas as pd
    >>> from segfair.scores import Scores
    >>> ids = [f"c{i}" for i in range(40)]
    >>> table = pd.DataFrame({"case_id": ids, "model": "m", "ruler": "expert", "metric": "dice",
    ...                       "value": [0.7] * 20 + [0.8] * 20})
    >>> groups = pd.DataFrame({"age": ["young"] * 20 + ["old"] * 20},
    ...                       index=pd.Index(ids, name="case_id"))
    >>> scores = Scores(table=table, groups=groups, trusted_ruler="expert",
    ...                 rulers=("expert",), models=("m",))
    >>> audit = Audit(scores, n_boot=200)
    >>> round(audit.gap("dice", by="age", model="m").gap.estimate, 3)
    0.1
    """

    def group_sizes(
        self, *, by: ByArg, model: str | None = None, ruler: str | None = None
    ) -> pd.Series:
        """Number of cases per group: in the cohort, or with a score of ``model`` / on ``ruler``.

        Examples
        --------
        >>> Audit(example_scores(), n_boot=200).group_sizes(by="age", ruler="expert").tolist()
        [20, 20]
        """
        return gaps.group_sizes(self, by=by, model=model, ruler=ruler)

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.by_group("dice", by="age", model="m").by_group["n"].tolist()
        [20, 20]
        """
        return gaps.by_group(self, metric, by=by, model=model, ruler=ruler, confidence=confidence)

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.gap("dice", by="age", model="m", reference="old")
        >>> round(r.gap.estimate, 3), round(r.ratio.estimate, 3)
        (0.1, 0.875)
        """
        return gaps.gap(
            self,
            metric,
            by=by,
            model=model,
            ruler=ruler,
            reference=reference,
            groups=groups,
            confidence=confidence,
        )

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.dpd_dir("dice", by="age", model="m", threshold=0.75)
        >>> r.by_group["estimate"].tolist(), r.dpd.estimate, r.dir.estimate
        ([0.0, 1.0], 1.0, 0.0)
        """
        return fairness.dpd_dir(
            self,
            metric,
            by=by,
            model=model,
            ruler=ruler,
            threshold=threshold,
            groups=groups,
            confidence=confidence,
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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.equity_scaled("dice", by="age", model="m").es.estimate, 4)
        0.6818
        """
        return fairness.equity_scaled(
            self, metric, by=by, model=model, ruler=ruler, confidence=confidence
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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> round(audit.mamamia_fairness(by="age", model="m").score.estimate, 3)
        0.917
        """
        return fairness.mamamia_fairness(
            self, by=by, model=model, ruler=ruler, confidence=confidence
        )

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.ruler_distortion("dice", by="age", model="m", automated="auto")
        >>> round(r.shrinkage.estimate, 2), round(r.hidden_gap.estimate, 3)
        (0.5, 0.05)
        """
        return distortion.ruler_distortion(
            self,
            metric,
            by=by,
            model=model,
            automated=automated,
            trusted=trusted,
            negligible=negligible,
            groups=groups,
            confidence=confidence,
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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.amplification("dice", by="age", model="m2", baseline="m")
        >>> round(r.amplification.estimate, 2)
        0.5
        """
        return distortion.amplification(
            self,
            metric,
            by=by,
            model=model,
            baseline=baseline,
            ruler=ruler,
            negligible=negligible,
            groups=groups,
            confidence=confidence,
        )

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.label_audit(by="age", metrics=("dice",))
        >>> r.gaps["estimate"].round(2).tolist()
        [0.1]
        """
        return labels.label_audit(
            self, by=by, automated=automated, metrics=metrics, groups=groups, confidence=confidence
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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.controlled_gap("dice", by="age", model="m", stratify="volume_ml", bins=2)
        >>> round(r.gap.estimate, 2), round(r.crude_gap.estimate, 2)
        (0.1, 0.1)
        """
        return controlled.controlled_gap(
            self,
            metric,
            by=by,
            model=model,
            stratify=stratify,
            bins=bins,
            ruler=ruler,
            groups=groups,
            confidence=confidence,
        )

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.morphology_shift(by="age", reference="old")
        >>> round(float(r.by_group.loc[("volume_ml", "young"), "mean_ratio"]), 3)
        1.5
        """
        return morphology.morphology_shift(
            self,
            by=by,
            ruler=ruler,
            reference=reference,
            descriptors=descriptors,
            confidence=confidence,
        )

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> audit.coverage(by="age", model="m").by_group["coverage"].tolist()
        [1.0, 1.0]
        """
        return coverage.coverage(self, by=by, model=model, confidence=confidence)

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
        >>> audit = Audit(example_scores(), n_boot=200)
        >>> r = audit.association("dice", attribute="age", model="m")
        >>> r.kruskal_p < 0.001, round(r.slope, 4)
        (True, 0.0033)
        """
        return association.association(
            self, metric, attribute=attribute, model=model, ruler=ruler, confidence=confidence
        )
