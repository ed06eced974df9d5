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

from segfair.audit.association import AssociationEstimands
from segfair.audit.controlled import ControlledEstimands
from segfair.audit.coverage import CoverageEstimands
from segfair.audit.detection import DetectionEstimands
from segfair.audit.distortion import DistortionEstimands
from segfair.audit.fairness import FairnessEstimands
from segfair.audit.gaps import GapEstimands
from segfair.audit.labels import LabelEstimands
from segfair.audit.morphology import MorphologyEstimands
from segfair.audit.ppi import PredictionPoweredEstimands

__all__ = ["Audit"]


class Audit(
    FairnessEstimands,
    LabelEstimands,
    ControlledEstimands,
    PredictionPoweredEstimands,
    GapEstimands,
    DistortionEstimands,
    MorphologyEstimands,
    CoverageEstimands,
    AssociationEstimands,
    DetectionEstimands,
):
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
