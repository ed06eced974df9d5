"""The per-case engine: crop every mask once, share borders and transforms; compute_many."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from segfair.errors import GeometryError
from segfair.metrics import compiled
from segfair.metrics.arrays import (
    BoolArray,
    FloatArray,
    Spacing,
    as_array,
    binary_crop,
    check_spacing,
    find_extent,
    union_box,
)
from segfair.metrics.lesions import LesionSettings, _check_ndim, _LesionCase
from segfair.metrics.overlap import _overlap_value
from segfair.metrics.settings import (
    ALL_METRICS,
    DISTANCE_METRICS,
    LESION_METRICS,
    OVERLAP_METRICS,
    LesionMetricName,
    MetricName,
    MetricSettings,
    _metric_names,
)
from segfair.metrics.surface import _border, _distance_values

#: Crops of up to this many voxels get one exact feature transform per mask (≈110 ns a voxel on
#: one core, shared by every pair: ≈30 ms for a 100k-voxel lesion's 88×88×35 crop). Larger crops
#: come from masks far apart (a stray false positive across the volume makes the union box nearly
#: the whole image, ≈5 s per transform at 512×512×160): there a k-d tree over each mask's border
#: voxels, whose cost follows the surfaces and not the box, finds the same nearest border voxels.
_EDT_MAX_VOXELS: Final = 4_000_000

#: Below that limit the cheaper of the two is chosen per mask, by the work each would do
#: (measured on the organs of benchmarks/bench_structures.py and the lesions of bench_case.py):
#: the transform ≈60 ns per crop voxel; the tree ≈150 ns per border voxel to build, and per
#: border voxel of each mask that asks it, ≈350 ns plus ≈200 ns per voxel of gap between the
#: two surfaces (a query searches a ball that grows with the distance; the gap is estimated,
#: before any distance, as |a △ b| over the mean border size). So a compact organ alone in its
#: box, close to its reference, gets the tree; a lesion asked by two other masks across a gap
#: of several voxels keeps the transform.
_EDT_NS_PER_VOXEL: Final = 60.0
_TREE_BUILD_NS: Final = 150.0
_TREE_QUERY_NS: Final = 350.0
_TREE_GAP_NS: Final = 200.0

#: The default lesion settings, built once (frozen): most calls ask for no lesion metric.
_DEFAULT_LESIONS: Final = LesionSettings()


class _Case:
    """Masks cropped to one common box; counts, borders and EDTs computed lazily, once per mask."""

    def __init__(
        self,
        crops: dict[str, BoolArray],
        spacing: tuple[float, ...],
        pairs: Sequence[tuple[str, str]] = (),
    ):
        self._crops = crops
        # the masks whose border voxels ask for the nearest border voxels of each mask
        self._askers: dict[str, list[str]] = {}
        for a, b in pairs:
            for key, other in ((a, b), (b, a)):
                if other not in self._askers.setdefault(key, []):
                    self._askers[key].append(other)
        self._tree_for: dict[str, bool] = {}
        self._spacing = spacing
        self._size = next(iter(crops.values())).size if crops else 0
        self._trees: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._overlaps: dict[tuple[str, str], int] = {}
        self._borders: dict[str, BoolArray] = {}
        self._points: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = {}
        self._features: dict[str, npt.NDArray[np.int32]] = {}
        self._directed: dict[tuple[str, str], FloatArray] = {}
        # 2-D: each mask's border pixels by column, for the compiled column search (numba)
        self._runs: dict[str, Any] = {}
        # components of each mask, labelled once and shared by every pair (lesion-wise scores)
        self.lesions = _LesionCase(crops, spacing)

    def count(self, key: str) -> int:
        if key not in self._counts:
            self._counts[key] = int(np.count_nonzero(self._crops[key]))
        return self._counts[key]

    def overlap(self, a: str, b: str) -> int:
        pair = (a, b) if a <= b else (b, a)
        if pair not in self._overlaps:
            self._overlaps[pair] = int(np.count_nonzero(self._crops[a] & self._crops[b]))
        return self._overlaps[pair]

    def border(self, key: str) -> BoolArray:
        if key not in self._borders:
            self._borders[key] = _border(self._crops[key])
        return self._borders[key]

    def border_points(self, key: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Flat indices into the crop and coordinates, shape (ndim, n), of the border voxels."""
        if key not in self._points:
            flat = np.flatnonzero(self.border(key))
            coords = np.asarray(np.unravel_index(flat, self.border(key).shape))
            self._points[key] = (flat, coords)
        return self._points[key]

    def nearest_border(self, key: str) -> npt.NDArray[np.int32]:
        """For every voxel of the crop, the coordinates of the nearest border voxel of ``key``.

        This is the feature transform behind ``distance_transform_edt(~border, sampling=spacing)``.
        Keeping it instead of the distance map lets each pair turn into distances only the few
        border voxels it reads, not the whole crop. The crop holds every border voxel of every
        mask and the transform is exact (not a chamfer or path distance), so what is read inside
        the crop equals the full-volume result.
        """
        if key not in self._features:
            features = ndimage.distance_transform_edt(
                ~self.border(key),
                sampling=self._spacing,
                return_distances=False,
                return_indices=True,
            )
            self._features[key] = np.asarray(features).reshape(len(self._spacing), -1)
        return self._features[key]

    def use_tree(self, key: str, asker: str) -> bool:
        """Whether the nearest border voxels of ``key`` come from a k-d tree (not the transform):
        on crops too large for a transform, or where the tree's work would be less (see
        ``_TREE_GAP_NS``). Decided once per mask, for every mask that asks (the pairs), or
        ``asker`` if no pairs were given."""
        if key not in self._tree_for:
            if self._size > _EDT_MAX_VOXELS:
                self._tree_for[key] = True
            else:
                n_key = self.border_points(key)[0].size
                work = _TREE_BUILD_NS * n_key
                for other in self._askers.get(key, [asker]):
                    n_other = self.border_points(other)[0].size
                    apart = self.count(key) + self.count(other) - 2 * self.overlap(key, other)
                    gap = apart / max(1.0, (n_key + n_other) / 2)
                    work += n_other * (_TREE_QUERY_NS + _TREE_GAP_NS * gap)
                self._tree_for[key] = work < _EDT_NS_PER_VOXEL * self._size
        return self._tree_for[key]

    def nearest_border_of_points(self, a: str, b: str) -> npt.NDArray[np.intp]:
        """Coordinates (ndim, n) of the border voxel of ``b`` nearest to each border voxel of ``a``.

        From the feature transform of ``b`` or from a k-d tree over ``b``'s border voxels
        (physical coordinates, exact nearest neighbour), whichever does less work
        (:meth:`use_tree`). The tree is asked only about the border voxels of ``a`` that are not
        border voxels of ``b``: the others are their own nearest, as in the transform.
        """
        flat, coords = self.border_points(a)
        if not self.use_tree(b, a):
            return np.asarray(self.nearest_border(b)[:, flat], dtype=np.intp)
        targets = self.border_points(b)[1]
        if b not in self._trees:
            from scipy.spatial import cKDTree

            points = targets.T * np.asarray(self._spacing)
            self._trees[b] = cKDTree(points, balanced_tree=False, compact_nodes=False)
        nearest = np.array(coords, dtype=np.intp)
        away = ~self.border(b).reshape(-1)[flat]
        if away.any():
            _, index = self._trees[b].query(coords[:, away].T * np.asarray(self._spacing))
            nearest[:, away] = targets[:, index]
        return nearest

    def column_runs(self, key: str) -> Any:
        """2-D: the border pixels of ``key`` (coordinates) and the same grouped by column, for
        the column search of :mod:`segfair.metrics.compiled`, from one compiled pass over the
        crop; ``None`` where it does not apply (3-D, no numba)."""
        if key not in self._runs:
            self._runs[key] = None
            if len(self._spacing) == 2:
                self._runs[key] = compiled.border_runs(self._crops[key])
        return self._runs[key]

    def directed(self, a: str, b: str) -> FloatArray:
        """Distances in mm from each border voxel of ``a`` to the nearest border voxel of ``b``."""
        if (
            (a, b) not in self._directed
            and (runs := self.column_runs(b)) is not None
            and (asked := self.column_runs(a)) is not None
        ):
            squared = compiled.nearest_squared(runs[1], asked[0], self._spacing)
            self._directed[(a, b)] = np.sqrt(squared)
        if (a, b) not in self._directed:
            flat, coords = self.border_points(a)
            nearest = self.nearest_border_of_points(a, b)
            # Same arithmetic, in the same order, as distance_transform_edt: bitwise equal.
            squared = np.zeros(flat.size, dtype=np.float64)
            for axis, step in enumerate(self._spacing):
                delta = (nearest[axis] - coords[axis]).astype(np.float64) * step
                squared += delta * delta
            self._directed[(a, b)] = np.sqrt(squared)
        return self._directed[(a, b)]

    def metrics(
        self,
        pred: str,
        ref: str,
        names: Sequence[MetricName | LesionMetricName],
        settings: MetricSettings,
        lesion_settings: LesionSettings,
    ) -> dict[str, float]:
        n_pred, n_ref = self.count(pred), self.count(ref)
        out: dict[str, float] = {}
        lesion_names = [n for n in LESION_METRICS if n in names]
        lesion = (
            self.lesions.scores(pred, ref, lesion_names, settings, lesion_settings)
            if lesion_names
            else {}
        )
        distances: dict[str, float] = {}
        if n_pred and n_ref and (wanted := [n for n in names if n in DISTANCE_METRICS]):
            d_pr, d_rp = self.directed(pred, ref), self.directed(ref, pred)
            distances = _distance_values(cast(list[MetricName], wanted), d_pr, d_rp, settings)
        for any_name in names:
            if any_name in lesion:
                out[any_name] = lesion[any_name]
                continue
            name = cast(MetricName, any_name)
            if name in OVERLAP_METRICS:
                tp = self.overlap(pred, ref) if n_pred and n_ref else 0
                out[name] = _overlap_value(name, tp, n_pred, n_ref)
            elif n_pred == 0 and n_ref == 0:
                out[name] = 1.0 if name == "nsd" else 0.0
            elif n_pred == 0 or n_ref == 0:
                out[name] = 0.0 if name == "nsd" else math.inf
            else:
                out[name] = distances[name]
        return out


def compute_many(
    masks: Mapping[str, npt.ArrayLike],
    pairs: Sequence[tuple[str, str]],
    spacing: Spacing = None,
    metrics: Iterable[str] = ALL_METRICS,
    *,
    settings: MetricSettings | None = None,
    lesion_settings: LesionSettings | None = None,
) -> dict[tuple[str, str], dict[str, float]]:
    """Score several (prediction, reference) pairs of one case, sharing all the expensive work.

    All masks are cropped to the bounding box of their union; each mask's border and distance
    transform are computed at most once (and only if a distance metric is requested) and reused for
    every pair it appears in. Surfaces follow :data:`SURFACE_DEFINITION`.

    Parameters
    ----------
    masks
        Name → mask; all of the same shape (2-D or 3-D), boolean or 0/1 valued.
    pairs
        ``(pred_key, ref_key)`` pairs to score.
    spacing
        Voxel size in mm per axis; ``None`` means 1.0 per axis.
    metrics
        Names among :data:`ALL_METRICS` and the opt-in :data:`LESION_METRICS`.
    settings
        HD95 variant and NSD tolerance; defaults to ``MetricSettings()``.
    lesion_settings
        Connectivity, matching rule and volumes of the lesion-wise scores; defaults to
        ``LesionSettings()`` (BraTS 2023). Each mask's components are labelled once per case.

    Returns
    -------
    dict
        ``(pred_key, ref_key)`` → metric name → value, metrics in the order requested.

    Raises
    ------
    InputError
        A mask is not binary, shapes differ (:class:`~segfair.errors.GeometryError`), or the spacing
        is invalid.
    ValueError
        An unknown metric name, or a pair naming a mask that was not given.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((8, 8), bool); ref[2:6, 2:6] = True
    >>> pred = np.roll(ref, 1, axis=0)
    >>> out = compute_many({"model": pred, "expert": ref}, [("model", "expert")],
    ...                    metrics=("dice", "hausdorff"))
    >>> out[("model", "expert")]
    {'dice': 0.75, 'hausdorff': 1.0}
    """
    names = _metric_names(metrics)
    settings = settings if settings is not None else MetricSettings()
    lesion_settings = lesion_settings if lesion_settings is not None else _DEFAULT_LESIONS
    for pred_key, ref_key in pairs:
        for key in (pred_key, ref_key):
            if key not in masks:
                raise ValueError(
                    f"pair {(pred_key, ref_key)!r} names mask {key!r}, which is not among the "
                    f"masks given: {', '.join(map(repr, masks))}."
                )
    arrays = {key: as_array(key, m) for key, m in masks.items()}
    if not arrays:
        return {}
    shapes = {key: a.shape for key, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k!r} {s}" for k, s in shapes.items())
        raise GeometryError(
            f"masks differ in shape: {listed}.",
            fix="resample the prediction onto the reference grid before scoring.",
        )
    ndim = next(iter(arrays.values())).ndim
    voxel = check_spacing(spacing, ndim)
    if any(n in LESION_METRICS for n in names):
        _check_ndim(ndim, lesion_settings)
    box = union_box((find_extent(a) for a in arrays.values()), ndim)
    case = _Case({key: binary_crop(key, a, box) for key, a in arrays.items()}, voxel, pairs)
    return {(p, r): case.metrics(p, r, names, settings, lesion_settings) for p, r in pairs}


def compute(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    spacing: Spacing = None,
    metrics: Iterable[str] = ALL_METRICS,
    *,
    settings: MetricSettings | None = None,
) -> dict[str, float]:
    """Compute the requested metrics of one prediction against one reference.

    Borders and distance transforms are computed once for all distance metrics. See the module
    docstring for definitions, :data:`SURFACE_DEFINITION` and the empty-mask table.

    Parameters
    ----------
    pred, ref
        Masks of the same shape (2-D or 3-D), boolean or 0/1 valued.
    spacing
        Voxel size in mm per axis; ``None`` means 1.0 per axis.
    metrics
        Names among :data:`ALL_METRICS` (default: all).
    settings
        HD95 variant and NSD tolerance; defaults to ``MetricSettings()``.

    Returns
    -------
    dict
        Metric name → value, in the order requested.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((6, 6, 6), bool); ref[1:5, 1:5, 1:5] = True
    >>> pred = np.roll(ref, 1, axis=2)
    >>> compute(pred, ref, spacing=(0.7, 0.7, 1.5), metrics=("iou", "hausdorff"))
    {'iou': 0.6, 'hausdorff': 1.5}
    """
    return compute_many(
        {"pred": pred, "ref": ref}, [("pred", "ref")], spacing, metrics, settings=settings
    )[("pred", "ref")]
