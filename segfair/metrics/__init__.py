"""Segmentation metrics of binary masks: overlap and surface distances, spacing-aware, 2-D and 3-D.

Every function takes a prediction and a reference of the same shape, as boolean arrays or as
integer/float arrays holding only 0 and 1, and an optional voxel ``spacing`` in mm (one positive,
finite value per axis; ``None`` means 1.0 per axis). Distances are in mm.

Surface
-------
The *border* (surface) of a mask is the set of its foreground voxels that have at least one
face-connected background neighbour (6-neighbourhood in 3-D, 4 in 2-D); voxels on the edge of the
array count as border, i.e. ``mask & ~scipy.ndimage.binary_erosion(mask)`` with scipy's default
``border_value=0``. This is the convention of medpy and MONAI. The directed surface distances
``d_AB`` are, for every border voxel of A, the Euclidean distance in mm to the nearest border voxel
of B (``scipy.ndimage.distance_transform_edt(~border_B, sampling=spacing)`` read at A's border).

Definitions (``n_A`` = number of border voxels of A, percentiles are numpy's default linear ones):

- ``hausdorff`` = max(max d_AB, max d_BA).
- ``hd95`` with ``method="max_directed"`` (default; MONAI, MetricsReloaded) =
  max(p95(d_AB), p95(d_BA)); with ``method="pooled"`` (medpy ``hd95``) = p95(d_AB ∪ d_BA).
- ``assd`` = (Σ d_AB + Σ d_BA) / (n_A + n_B), the pooled mean (MetricsReloaded ASSD, MONAI
  ``SurfaceDistanceMetric(symmetric=True)``, medpy ≥ 0.5 ``assd``).
- ``masd`` = (mean d_AB + mean d_BA) / 2 (MetricsReloaded MASD). Beware: medpy < 0.5 computed
  this and called it ``assd`` (changed after loli/medpy#108), so published "ASSD" values may be
  either.
- ``nsd`` = (#{d_AB ≤ τ} + #{d_BA ≤ τ}) / (n_A + n_B), normalised surface Dice counted on border
  voxels (MetricsReloaded, MONAI ``SurfaceDiceMetric``), τ in mm.
- ``dice`` = 2 TP / (2 TP + FP + FN), ``iou`` = TP / (TP + FP + FN), ``precision`` =
  TP / (TP + FP), ``sensitivity`` = TP / (TP + FN), ``volume_error`` = (V_pred − V_ref) / V_ref
  (signed, relative).

Empty masks
-----------
Rules of segfair's own choosing, rule by rule shared with a peer or not (docs/metrics.md says
which: Dice and both-empty distances as MetricsReloaded, infinite distances as MONAI; IoU,
precision, sensitivity and NSD of two empty masks are 1 where MetricsReloaded returns NaN), with
infinite distances (the audit caps them, counted) and no NaN except where a quantity is undefined
and no convention is honest:

=====================  =====  =====  =========  ===========  ============  ==========  =====
case                   dice   iou    precision  sensitivity  volume_error  distances*  nsd
=====================  =====  =====  =========  ===========  ============  ==========  =====
both empty             1.0    1.0    1.0        1.0          0.0           0.0         1.0
pred empty, ref not    0.0    0.0    0.0        0.0          -1.0          inf         0.0
ref empty, pred not    0.0    0.0    0.0        nan          inf           inf         0.0
=====================  =====  =====  =========  ===========  ============  ==========  =====

\\* distances: ``hausdorff``, ``hd95``, ``assd``, ``masd``. ``sensitivity`` is NaN ("undefined":
there is nothing to detect) only when the reference is empty and the prediction is not; every other
value is finite or ``inf``.

Speed
-----
All masks of a case are cropped to the bounding box of their union before anything else (found
with one reduction per mask, no labelling, in whatever memory order the mask is: NIfTI masks stay
Fortran-ordered), overlap counts are taken on the crop, and each mask's border and distance
transform are computed at most once and shared by every pair it takes part in
(:func:`compute_many`). Each pair then turns into distances only its own border voxels. When the
union box is large (masks far apart), or wherever it does less work (a compact organ alone in its
box, close to its reference), a k-d tree over each mask's border voxels replaces the distance
transform: the same exact nearest border voxels, at a cost that follows the surfaces instead of
the box. 2-D masks, with numba installed (``segfair[fast]``), skip both: a compiled column search
finds each border pixel's nearest border pixel of the other mask directly (the same distances;
:mod:`segfair.metrics.compiled`). Boolean or unsigned-integer inputs are the fastest to scan.
"""

from __future__ import annotations

from segfair.metrics.arrays import BoolArray, Extent, FloatArray, Spacing
from segfair.metrics.engine import compute, compute_many
from segfair.metrics.lesions import (
    CONNECTIVITIES,
    LESION_EMPTY_POLICY,
    MATCH_RULES,
    LesionSettings,
    MatchRule,
    label_lesions,
    lesion_scores,
)
from segfair.metrics.settings import (
    ALL_METRICS,
    DISTANCE_METRICS,
    EMPTY_MASK_POLICY,
    HD95_METHODS,
    KNOWN_METRICS,
    LESION_METRICS,
    OVERLAP_METRICS,
    PERCENTILE_METHOD,
    SURFACE_DEFINITION,
    UNKNOWN_METRIC_MESSAGE,
    HD95Method,
    LesionMetricName,
    MetricName,
    MetricSettings,
)
from segfair.metrics.single import (
    assd,
    dice,
    hausdorff,
    hd95,
    iou,
    masd,
    nsd,
    precision,
    sensitivity,
    volume_error,
)

__all__ = [
    "ALL_METRICS",
    "CONNECTIVITIES",
    "DISTANCE_METRICS",
    "EMPTY_MASK_POLICY",
    "HD95_METHODS",
    "KNOWN_METRICS",
    "LESION_EMPTY_POLICY",
    "LESION_METRICS",
    "MATCH_RULES",
    "OVERLAP_METRICS",
    "PERCENTILE_METHOD",
    "SURFACE_DEFINITION",
    "UNKNOWN_METRIC_MESSAGE",
    "BoolArray",
    "Extent",
    "FloatArray",
    "HD95Method",
    "LesionMetricName",
    "LesionSettings",
    "MatchRule",
    "MetricName",
    "MetricSettings",
    "Spacing",
    "assd",
    "compute",
    "compute_many",
    "dice",
    "hausdorff",
    "hd95",
    "iou",
    "label_lesions",
    "lesion_scores",
    "masd",
    "nsd",
    "precision",
    "sensitivity",
    "volume_error",
]
