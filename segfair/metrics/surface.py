"""Surfaces: border voxels and the distance metrics read off their directed distances."""

from __future__ import annotations

import math

import numpy as np

from segfair.metrics.arrays import BoolArray, FloatArray
from segfair.metrics.settings import MetricName, MetricSettings


def _border(mask: BoolArray) -> BoolArray:
    """Foreground voxels with a face-connected background neighbour, the array edge counting as
    background: equal to ``mask & ~ndimage.binary_erosion(mask)`` (default cross structuring
    element, ``border_value=0``), computed with 2·ndim shifted ANDs (≈5x faster than the erosion).

    On the crop this is exact without any zero margin: beyond the crop there is either background
    (the crop holds every foreground voxel of every mask) or the array edge, which the convention
    treats as background too.
    """
    ndim = mask.ndim

    def along(axis: int, part: slice) -> tuple[slice, ...]:
        return tuple(part if a == axis else slice(None) for a in range(ndim))

    interior = mask.copy()
    for axis in range(ndim):
        middle = interior[along(axis, slice(1, -1))]
        middle &= mask[along(axis, slice(None, -2))]
        middle &= mask[along(axis, slice(2, None))]
        # The first and last slice have a neighbour outside the array: background, so border.
        interior[along(axis, slice(0, 1))] = False
        interior[along(axis, slice(-1, None))] = False
    return np.asarray(mask & ~interior)


def _distance_value(
    name: MetricName, d_pr: FloatArray, d_rp: FloatArray, settings: MetricSettings
) -> float:
    if name == "hausdorff":
        return float(max(d_pr.max(), d_rp.max()))
    if name == "hd95":
        if settings.hd95_method == "pooled":
            return _percentile(np.concatenate([d_pr, d_rp]), 95)
        return max(_percentile(d_pr, 95), _percentile(d_rp, 95))
    if name == "assd":
        return float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
    if name == "masd":
        return float((d_pr.mean() + d_rp.mean()) / 2.0)
    # nsd
    tol = settings.nsd_tolerance
    hits = np.count_nonzero(d_pr <= tol) + np.count_nonzero(d_rp <= tol)
    return float(hits / (d_pr.size + d_rp.size))


def _percentile(values: FloatArray, q: int) -> float:
    """``np.percentile(values, q)`` (its default "linear" method) of a non-empty array of finite
    values, bit for bit: the same virtual index ``(n - 1)·q/100``, the same two order statistics
    (one partition) and the same interpolation, without numpy's generic machinery (≈40 µs a call,
    six calls a 2-D case with three pairs; this ≈10 µs). A test checks it against numpy.
    """
    n = values.size
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        return float(values.max())
    below = math.floor(virtual)
    gamma = virtual - below
    ordered = np.partition(values, (below, below + 1))
    low, high = float(ordered[below]), float(ordered[below + 1])
    step = high - low
    # numpy's _lerp: from the nearer end, so that gamma 1 gives `high` exactly
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma
