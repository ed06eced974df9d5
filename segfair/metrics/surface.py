"""Surfaces: border voxels and the distance metrics read off their directed distances."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segfair.metrics import compiled
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


def _distance_values(
    names: Sequence[MetricName], d_pr: FloatArray, d_rp: FloatArray, settings: MetricSettings
) -> dict[str, float]:
    """:func:`_distance_value` of each of ``names`` for one pair, bit for bit, reading each
    direction once or twice instead of once per metric: its sum for ASSD and MASD (a mean is
    numpy's sum over the count: the same float), and with numba its largest value, its count
    within the NSD tolerance and its 95th percentile's two order statistics in one compiled
    pass (:func:`segfair.metrics.compiled.distance_summary`; exact, as numpy's)."""
    out: dict[str, float] = {}
    sums: tuple[float, float] | None = None
    summaries: list[tuple[float, int, float]] | None = None
    for name in names:
        if name in ("assd", "masd"):
            if sums is None:
                sums = (float(d_pr.sum()), float(d_rp.sum()))
            if name == "assd":
                out[name] = (sums[0] + sums[1]) / (d_pr.size + d_rp.size)
            else:
                out[name] = (sums[0] / d_pr.size + sums[1] / d_rp.size) / 2.0
            continue
        if name == "hd95" and settings.hd95_method == "pooled":  # of both directions at once
            out[name] = _distance_value(name, d_pr, d_rp, settings)
            continue
        if summaries is None:
            summaries = _summaries((d_pr, d_rp), settings.nsd_tolerance)
        if not summaries:  # pragma: no cover - without numba
            out[name] = _distance_value(name, d_pr, d_rp, settings)
        elif name == "hausdorff":
            out[name] = max(summaries[0][0], summaries[1][0])
        elif name == "hd95":
            out[name] = max(summaries[0][2], summaries[1][2])
        else:  # nsd
            out[name] = (summaries[0][1] + summaries[1][1]) / (d_pr.size + d_rp.size)
    return out


def _summaries(
    directions: tuple[FloatArray, FloatArray], tolerance: float
) -> list[tuple[float, int, float]]:
    """Per direction, with numba: the largest distance, the count within ``tolerance`` and the
    95th percentile (as :func:`_percentile`); empty without numba."""
    out = []
    for distances in directions:
        position = _position(distances.size, 95)
        rank = distances.size - 1 if position is None else position[0]
        found = compiled.distance_summary(distances, tolerance, rank)
        if found is None:  # pragma: no cover - depends on the environment
            return []
        largest, within, low, high = found
        value = largest if position is None else _lerp(low, high, position[1])
        out.append((largest, within, value))
    return out


def _percentile(values: FloatArray, q: int) -> float:
    """``np.percentile(values, q)`` (its default "linear" method) of a non-empty array of finite
    values, bit for bit: the same virtual index ``(n - 1)·q/100``, the same two order statistics
    (one partition) and the same interpolation, without numpy's generic machinery (≈40 µs a call,
    six calls a 2-D case with three pairs; this ≈10 µs). A test checks it against numpy.
    """
    position = _position(values.size, q)
    if position is None:
        return float(values.max())
    below, gamma = position
    ordered = np.partition(values, (below, below + 1))
    return _lerp(float(ordered[below]), float(ordered[below + 1]), gamma)


def _position(n: int, q: int) -> tuple[int, float] | None:
    """The order statistic below numpy's virtual index ``(n - 1)·q/100`` and the fraction of
    the way to the next one; ``None`` when the index is the last (the percentile is the max)."""
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        return None
    below = math.floor(virtual)
    return below, virtual - below


def _lerp(low: float, high: float, gamma: float) -> float:
    """numpy's _lerp: from the nearer end, so that gamma 1 gives ``high`` exactly."""
    step = high - low
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma
