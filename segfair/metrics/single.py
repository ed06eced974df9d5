"""One metric of one pair: dice, iou, precision, sensitivity, volume_error, hausdorff, hd95, assd,
masd, nsd."""

from __future__ import annotations

import numpy.typing as npt

from segfair.metrics.arrays import Spacing
from segfair.metrics.engine import compute
from segfair.metrics.settings import HD95Method, MetricName, MetricSettings


def _one(
    name: MetricName,
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    spacing: Spacing = None,
    settings: MetricSettings | None = None,
) -> float:
    return compute(pred, ref, spacing, (name,), settings=settings)[name]


def dice(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Dice coefficient 2 TP / (|pred| + |ref|); 1.0 when both masks are empty.

    Examples
    --------
    >>> dice([[1, 1, 0]], [[0, 1, 1]])
    0.5
    """
    return _one("dice", pred, ref)


def iou(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Intersection over union (Jaccard) TP / (TP + FP + FN); 1.0 when both masks are empty.

    Examples
    --------
    >>> iou([[1, 1, 0]], [[0, 1, 1]])
    0.3333333333333333
    """
    return _one("iou", pred, ref)


def precision(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Precision TP / (TP + FP); 0.0 for an empty prediction of a non-empty reference.

    Examples
    --------
    >>> precision([[1, 1, 0, 0]], [[0, 1, 1, 1]])
    0.5
    """
    return _one("precision", pred, ref)


def sensitivity(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Sensitivity (recall) TP / (TP + FN); NaN if the reference is empty and the prediction not.

    Examples
    --------
    >>> sensitivity([[1, 1, 0, 0]], [[0, 1, 1, 1]])
    0.3333333333333333
    """
    return _one("sensitivity", pred, ref)


def volume_error(pred: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """Signed relative volume error (V_pred − V_ref) / V_ref; ``inf`` if only the ref is empty.

    Spacing cancels out, so none is taken.

    Examples
    --------
    >>> volume_error([[1, 1, 1, 0]], [[0, 1, 1, 0]])
    0.5
    """
    return _one("volume_error", pred, ref)


def hausdorff(pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: Spacing = None) -> float:
    """Hausdorff distance in mm: the larger of the two directed maximum surface distances.

    Surfaces are border voxels as defined in :data:`SURFACE_DEFINITION`.

    Examples
    --------
    >>> hausdorff([[1, 0, 0, 0]], [[0, 0, 0, 1]], spacing=(1.0, 0.5))
    1.5
    """
    return _one("hausdorff", pred, ref, spacing)


def hd95(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    spacing: Spacing = None,
    *,
    method: HD95Method = "max_directed",
) -> float:
    """95th-percentile Hausdorff distance in mm.

    ``method="max_directed"`` (default; MONAI, MetricsReloaded) is max(p95(d_AB), p95(d_BA));
    ``method="pooled"`` (medpy) is the p95 of both directions pooled. Percentiles are numpy's
    default linear interpolation; surfaces as in :data:`SURFACE_DEFINITION`.

    Examples
    --------
    >>> pred = [[1, 0, 0, 0, 0, 0, 1]]
    >>> ref = [[1, 0, 0, 0, 0, 0, 0]]
    >>> round(hd95(pred, ref), 6), round(hd95(pred, ref, method="pooled"), 6)
    (5.7, 5.4)
    """
    return _one("hd95", pred, ref, spacing, MetricSettings(hd95_method=method))


def assd(pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: Spacing = None) -> float:
    """Average symmetric surface distance in mm, the pooled mean (Σd_AB + Σd_BA) / (n_A + n_B).

    This is MetricsReloaded's ASSD, MONAI's symmetric surface distance and medpy's ``assd`` since
    medpy 0.5 (before, medpy's ``assd`` was :func:`masd`). Surfaces as in
    :data:`SURFACE_DEFINITION`.

    Examples
    --------
    >>> assd([[1, 0, 0, 0, 0, 0, 1]], [[1, 0, 0, 0, 0, 0, 0]])
    2.0
    """
    return _one("assd", pred, ref, spacing)


def masd(pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: Spacing = None) -> float:
    """Mean average surface distance in mm, (mean d_AB + mean d_BA) / 2.

    This is MetricsReloaded's MASD, and what medpy < 0.5 called ``assd`` (the mean of its two
    directed ``asd``). Surfaces as in :data:`SURFACE_DEFINITION`.

    Examples
    --------
    >>> masd([[1, 0, 0, 0, 0, 0, 1]], [[1, 0, 0, 0, 0, 0, 0]])
    1.5
    """
    return _one("masd", pred, ref, spacing)


def nsd(
    pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: Spacing = None, *, tolerance: float = 2.0
) -> float:
    """Normalised surface Dice at ``tolerance`` mm, counted on border voxels.

    (#{d_AB ≤ τ} + #{d_BA ≤ τ}) / (n_A + n_B), as MetricsReloaded and MONAI (voxel-count variant).
    Surfaces as in :data:`SURFACE_DEFINITION`.

    Examples
    --------
    >>> nsd([[1, 0, 0, 0, 0, 0, 1]], [[1, 0, 0, 0, 0, 0, 0]], tolerance=2.0)
    0.6666666666666666
    """
    return _one("nsd", pred, ref, spacing, MetricSettings(nsd_tolerance=tolerance))
