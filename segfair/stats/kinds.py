"""The valid statistics and the metric kinds (distance, fraction) the bootstrap core knows."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "COUNT_METRICS",
    "DISTANCE_METRICS",
    "ESTIMATORS",
    "FRACTION_METRICS",
    "LOWER_IS_BETTER",
    "STATISTICS",
    "Estimator",
    "Statistic",
]

Statistic = Literal["mean", "median"]
#: The valid values of ``statistic``.
STATISTICS: tuple[str, ...] = ("mean", "median")

#: How a statistic of a partial trusted ruler is estimated: from its labelled cases alone, or
#: prediction-powered (the automated ruler over every case, corrected on the labelled ones).
Estimator = Literal["labelled", "ppi"]
#: The valid values of ``estimator``.
ESTIMATORS: tuple[str, ...] = ("labelled", "ppi")

#: Surface-distance metrics (mm): ``inf`` (a missed lesion) is replaced by the cap and counted.
#: ``lesion_hd95`` is never ``inf``: a missed or false lesion scores its own finite penalty.
DISTANCE_METRICS = frozenset(
    {"hausdorff", "hd", "hd95", "hd99", "assd", "asd", "masd", "lesion_hd95"}
)
#: Overlap metrics bounded in [0, 1]: gap thresholds for them must be fractions.
FRACTION_METRICS = frozenset(
    {
        "dice",
        "iou",
        "jaccard",
        "precision",
        "sensitivity",
        "recall",
        "specificity",
        "nsd",
        "surface_dice",
        "lesion_dice",
        "lesion_sensitivity",
        "lesion_f1",
    }
)
#: Counts per case (≥ 0, not bounded by 1): limits on them are ≥ 0, in lesions.
COUNT_METRICS = frozenset(
    {"lesion_fp", "small_lesions", "small_lesions_detected", "lesions", "lesions_detected"}
)
#: Metrics whose worse value is the higher one: a group's worst is its largest.
LOWER_IS_BETTER = DISTANCE_METRICS | frozenset({"lesion_fp"})
