"""Metric names, the definitions recorded with results, and :class:`MetricSettings`."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

MetricName: TypeAlias = Literal[
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "volume_error",
    "hausdorff",
    "hd95",
    "assd",
    "masd",
    "nsd",
]
HD95Method: TypeAlias = Literal["max_directed", "pooled"]
LesionMetricName: TypeAlias = Literal[
    "lesion_dice",
    "lesion_hd95",
    "lesion_sensitivity",
    "lesion_fp",
    "lesion_f1",
    "small_lesions",
    "small_lesions_detected",
    "lesions",
    "lesions_detected",
]

#: Metrics that need only voxel counts.
OVERLAP_METRICS: Final[tuple[MetricName, ...]] = (
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "volume_error",
)
#: Metrics that need surface distances (border voxels and distance transforms).
DISTANCE_METRICS: Final[tuple[MetricName, ...]] = ("hausdorff", "hd95", "assd", "masd", "nsd")
#: Every metric, in the order results are reported.
ALL_METRICS: Final[tuple[MetricName, ...]] = OVERLAP_METRICS + DISTANCE_METRICS
#: Lesion-wise scores (segfair.metrics.lesions): opt-in, never in the default set.
LESION_METRICS: Final[tuple[LesionMetricName, ...]] = get_args(LesionMetricName)
#: Every metric name that can be asked for: the default set, then the opt-in lesion-wise ones.
KNOWN_METRICS: Final[tuple[MetricName | LesionMetricName, ...]] = ALL_METRICS + LESION_METRICS
#: The two HD95 variants in common use.
HD95_METHODS: Final[tuple[HD95Method, ...]] = ("max_directed", "pooled")

#: Message of the ValueError raised for a metric name that does not exist.
UNKNOWN_METRIC_MESSAGE: Final = "unknown metric {name!r}; valid metric names are: {valid}."

SURFACE_DEFINITION: Final = (
    "border voxels = foreground voxels with at least one face-connected background neighbour "
    "(6-neighbourhood in 3-D, 4 in 2-D), voxels on the array edge counting as border "
    "(mask & ~scipy.ndimage.binary_erosion(mask), border_value=0; medpy and MONAI convention); "
    "directed distances from each border voxel of A to the nearest border voxel of B by "
    "scipy.ndimage.distance_transform_edt(~border_B, sampling=spacing), in mm"
)
EMPTY_MASK_POLICY: Final = (
    "segfair's rules (per rule, the peer it follows: docs/metrics.md). Both empty: "
    "dice, iou, precision, sensitivity, nsd = 1, "
    "volume_error = 0, hausdorff/hd95/assd/masd = 0. Prediction empty, reference not: "
    "dice, iou, precision, sensitivity, nsd = 0, volume_error = -1, distances = inf. "
    "Reference empty, prediction not: dice, iou, precision, nsd = 0, sensitivity = nan "
    "(undefined), volume_error = inf, distances = inf."
)
PERCENTILE_METHOD: Final = "numpy.percentile default (method='linear', Hyndman-Fan type 7)"

_HD95_TEXT: Final[dict[HD95Method, str]] = {
    "max_directed": "max(p95(d_AB), p95(d_BA)) (MONAI, MetricsReloaded)",
    "pooled": "p95 of the pooled directed distances d_AB ∪ d_BA (medpy hd95)",
}
_ASSD_TEXT: Final = (
    "(sum d_AB + sum d_BA) / (n_A + n_B), pooled mean "
    "(MetricsReloaded ASSD, MONAI, medpy>=0.5 assd)"
)
_MASD_TEXT: Final = "(mean d_AB + mean d_BA) / 2 (MetricsReloaded MASD; medpy<0.5 called it assd)"
_NSD_TEXT: Final = "(#{d_AB <= tol} + #{d_BA <= tol}) / (n_A + n_B), counted on border voxels"


@dataclass(frozen=True, slots=True)
class MetricSettings:
    """How the metrics that libraries define differently are computed; recorded with results.

    Parameters
    ----------
    hd95_method
        ``"max_directed"`` (default): max of the two directed 95th percentiles (MONAI,
        MetricsReloaded); ``"pooled"``: 95th percentile of both directions pooled (medpy).
    nsd_tolerance
        Tolerance τ of the normalised surface Dice in mm; finite and > 0.

    Examples
    --------
    >>> s = MetricSettings(hd95_method="pooled", nsd_tolerance=1.0)
    >>> s.describe()["nsd_tolerance_mm"]
    1.0
    """

    hd95_method: HD95Method = "max_directed"
    nsd_tolerance: float = 2.0

    def __post_init__(self) -> None:
        if self.hd95_method not in HD95_METHODS:
            raise ValueError(
                f"unknown hd95_method {self.hd95_method!r}; valid methods are: "
                f"{', '.join(HD95_METHODS)}."
            )
        tol = self.nsd_tolerance
        # A string from a config file is not silently converted: the config layer types it.
        is_number = isinstance(tol, numbers.Real) and not isinstance(tol, bool)
        if not is_number or not 0 < float(tol) < math.inf:  # also rejects NaN
            raise ValueError(
                "nsd_tolerance must be a distance in mm with 0 < nsd_tolerance < inf; got "
                f"{self.nsd_tolerance!r}."
            )

    def describe(self) -> dict[str, str | float]:
        """Return a JSON-able record of the metric definitions in force.

        Examples
        --------
        >>> sorted(MetricSettings().describe())  # doctest: +NORMALIZE_WHITESPACE
        ['assd', 'empty_masks', 'hd95', 'hd95_method', 'masd', 'nsd', 'nsd_tolerance_mm',
         'percentile', 'surface']
        """
        return {
            "surface": SURFACE_DEFINITION,
            "hd95_method": self.hd95_method,
            "hd95": _HD95_TEXT[self.hd95_method],
            "assd": _ASSD_TEXT,
            "masd": _MASD_TEXT,
            "nsd": _NSD_TEXT,
            "nsd_tolerance_mm": float(self.nsd_tolerance),
            "empty_masks": EMPTY_MASK_POLICY,
            "percentile": PERCENTILE_METHOD,
        }


def _metric_names(metrics: Iterable[str]) -> tuple[MetricName | LesionMetricName, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    names: list[MetricName | LesionMetricName] = []
    for name in metrics:
        for valid in KNOWN_METRICS:
            if name == valid:
                if valid not in names:
                    names.append(valid)
                break
        else:
            raise ValueError(
                UNKNOWN_METRIC_MESSAGE.format(name=name, valid=", ".join(KNOWN_METRICS))
            )
    return tuple(names)
