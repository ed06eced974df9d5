"""The valid statistics and the metric kinds (distance, fraction) the bootstrap core knows."""

from __future__ import annotations

from typing import Literal

__all__ = ["DISTANCE_METRICS", "FRACTION_METRICS", "STATISTICS", "Statistic"]

Statistic = Literal["mean", "median"]
#: The valid values of ``statistic``.
STATISTICS: tuple[str, ...] = ("mean", "median")

#: Surface-distance metrics (mm): ``inf`` (a missed lesion) is replaced by the cap and counted.
DISTANCE_METRICS = frozenset({"hausdorff", "hd", "hd95", "hd99", "assd", "asd", "masd"})
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
    }
)
