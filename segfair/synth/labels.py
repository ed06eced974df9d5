"""What a labeller sees: the expert mask, nothing else; the automated labeller's blur, level
sets and boundary shifts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy import ndimage

from segfair.synth.effects import _World
from segfair.synth.lesions import BoolArray, FloatArray, _Crop, _radius_mm, _smooth_field

__all__: list[str] = []

_DETAIL_SCALE: Final = 0.3  # smoothing scale (× radius) below which shape counts as detail
_DETAIL_REF: Final = 0.10  # detail of a typical, gently lobulated lesion
_TRUNCATE: Final = 3.5  # Gaussian kernels stop at 3.5 sigma: beyond, a blurred mask is 0 or 1
_REACH: Final = 4.5  # distances recovered from a blur are trusted up to 4.5 sigma
_MAX_SHIFT: Final = 1.2  # largest boundary displacement, × radius (within the far field's reach)


@dataclass(frozen=True)
class _Shape:
    """What the labeller and the models know of a case: its expert mask, summarised."""

    volume_mm3: float
    radius: float  # equivalent-sphere radius, mm
    detail: float  # share of the volume in features finer than _DETAIL_SCALE × radius
    far: FloatArray  # the mask blurred at far_sigma (distances far from the edge)
    far_sigma: float


def _sigma(relative: float, radius: float, spacing: Sequence[float]) -> float:
    # A blur finer than about half a voxel leaves a mask binary and its edge profile unreadable,
    # so no scale goes below that; at coarse resolutions fine detail is lost, as in real images.
    return max(relative * radius, 0.6 * max(spacing))


def _blur(mask: BoolArray, sigma_mm: float, spacing: Sequence[float]) -> FloatArray:
    sigma = [sigma_mm / s for s in spacing]
    return np.asarray(
        ndimage.gaussian_filter(mask.astype(np.float32), sigma, mode="constant", truncate=_TRUNCATE)
    )


def _describe(mask: BoolArray, spacing: Sequence[float]) -> _Shape:
    n = int(mask.sum())
    volume = n * float(np.prod(spacing))
    radius = _radius_mm(volume / 1000)
    far_sigma = _sigma(_DETAIL_SCALE, radius, spacing)
    far = _blur(mask, far_sigma, spacing)
    flat = far.ravel()
    # Threshold the blurred mask at the level that keeps its volume, so a smooth blob has no
    # detail whatever its size, and lobes and spicules show up as the symmetric difference.
    level = np.partition(flat, flat.size - n)[flat.size - n]
    detail = int(np.count_nonzero((flat >= level) != mask.ravel())) / n
    return _Shape(volume, radius, detail, far, far_sigma)


def _atypicality(shape: _Shape, w: _World, typical_volume_mm3: float) -> float:
    """How far a lesion is from what models see most: fine detail and unusual size."""
    detail = max(shape.detail - _DETAIL_REF, 0.0) / _DETAIL_REF
    size = abs(math.log(shape.volume_mm3 / typical_volume_mm3))
    return detail + w.size_atypicality * size


def _logit(b: FloatArray | float) -> Any:
    b = np.clip(b, np.float32(1e-6), np.float32(1 - 1e-6))
    return np.log((1 - b) / b)


def _distance(blurred: FloatArray, sigma_mm: float, level: float = 0.5) -> FloatArray:
    # Near a flat edge a Gaussian-blurred mask is Φ(−d/σ), so inverting the profile recovers the
    # signed distance d (mm, < 0 inside) to the ``level`` set without an exact distance
    # transform. Φ is replaced by the logistic 1/(1 + exp(−1.702 x)) (error < 0.01), whose
    # inverse is one logarithm.
    d = (_logit(blurred) - np.float32(_logit(level))) * np.float32(sigma_mm / 1.702)
    return np.asarray(d, dtype=np.float32)


def _level_set(
    blurred: FloatArray, sigma_mm: float, shape: _Shape, level: float = 0.5
) -> FloatArray:
    """Signed distance (mm, < 0 inside) to the ``level`` set of ``blurred``, over the whole crop.

    Within ``_TRUNCATE`` sigma of that level the blur itself gives the distance; farther out it
    saturates, so the distance comes from the coarser blur in ``shape.far``, which reaches about
    ``_MAX_SHIFT`` radii.
    """
    near = _distance(blurred, sigma_mm, level)
    # Beyond this the blur has (nearly) saturated at 0 or 1 and the near distance means nothing.
    reach = np.float32(_REACH * sigma_mm)
    out_of_reach = np.abs(near) >= reach
    far = _distance(shape.far[out_of_reach], shape.far_sigma)
    near[out_of_reach] = np.sign(near[out_of_reach]) * np.maximum(np.abs(far), reach)
    return near


def _drop_small(mask: BoolArray, min_fraction: float) -> BoolArray:
    if min_fraction <= 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= min_fraction * sizes.sum()
    keep[1 + int(np.argmax(sizes))] = True
    return np.asarray(keep[labels])


def _systematic_label(
    truth: BoolArray, shape: _Shape, w: _World, spacing: Sequence[float], inherit: float = 1.0
) -> FloatArray:
    """The labeller's deterministic errors as a level set: blur, threshold, missed components,
    boundary bias (the level set is shifted so that its zero level is the biased boundary).

    The blurred mask is cut at the level that keeps the lesion's volume: a smooth blob comes out
    as it went in, while lobes are rounded off, clefts filled, spicules and satellites lost; the
    error is the lesion's irregularity, not its size.
    """
    sigma = _sigma(inherit * w.label_smoothing, shape.radius, spacing)
    smooth = _blur(truth, sigma, spacing)
    flat = smooth.ravel()
    n = int(truth.sum())
    level = min(max(float(np.partition(flat, flat.size - n)[flat.size - n]), 1e-3), 1 - 1e-3)
    labelled = smooth >= level
    kept = _drop_small(labelled, w.label_min_component)
    phi = _level_set(smooth, sigma, shape, level) - np.float32(w.label_bias * shape.radius)
    # Dropped components stay dropped whatever the noise does to the level set.
    phi[labelled & ~kept] = np.float32(np.inf)
    return phi


def _shift(
    phi: FloatArray,
    shape: _Shape,
    crop: _Crop,
    rng: np.random.Generator,
    bias: float,
    sd: float,
    w: _World,
) -> BoolArray:
    """Move the zero level of ``phi`` out by ``bias`` plus smooth noise of SD ``sd`` (× radius)."""
    noise = _smooth_field(rng, crop, w.noise_length * shape.radius)
    limit = _MAX_SHIFT * shape.radius
    shift = np.clip(shape.radius * (bias + sd * noise), -limit, limit)
    return np.asarray(phi <= shift)


def _automated_label(
    truth: BoolArray,
    shape: _Shape,
    crop: _Crop,
    w: _World,
    rng: np.random.Generator,
    systematic: FloatArray,
) -> BoolArray:
    """An automated pipeline's label: smoothed, satellites missed, biased, with its own noise."""
    label = _shift(systematic, shape, crop, rng, 0.0, w.label_noise, w)
    # A pipeline that returns nothing for a visible lesion is caught at spot-check: keep its
    # systematic output then (or, for a lesion too small to survive it, the expert mask).
    for candidate in (label, np.asarray(systematic <= 0)):
        if candidate.any():
            return candidate
    return truth.copy()
