"""Expert lesions: morphology is where age acts, and the only place."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from segfair.synth.effects import _World

__all__ = ["BoolArray", "FloatArray"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]


_N_DIRS: Final = 400


def _fibonacci_sphere(n: int) -> npt.NDArray[np.float64]:
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = math.pi * (1 + 5**0.5) * k
    rho = np.sqrt(1 - z**2)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


_DIRS: Final = _fibonacci_sphere(_N_DIRS)


def _youth(age: float, w: _World) -> float:
    return min(max((w.youth_age_old - age) / (w.youth_age_old - w.youth_age_young), 0.0), 1.0)


def _log_volume(youth: float, w: _World) -> tuple[float, float]:
    """Mean and SD of ln(volume in ml) at a given youth.

    The mean and the variance of the volume move linearly with youth to the published ratios at
    youth 1 (a log-normal is then fixed by its first two moments).
    """
    s0 = w.volume_log_sd
    mean0 = w.volume_ml * math.exp(s0**2 / 2)
    var0 = mean0**2 * math.expm1(s0**2)
    mean = mean0 * (1 + (w.young_volume_ratio - 1) * youth)
    var = var0 * (1 + (w.young_volume_var_ratio - 1) * youth)
    s2 = math.log1p(var / mean**2) if mean > 0 else 0.0
    return math.log(mean) - s2 / 2, math.sqrt(s2)


def _radius_mm(volume_ml: float) -> float:
    return float((3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3))


def _world_scale(shape: Sequence[int], spacing: Sequence[float], w: _World) -> float:
    """One factor for all lengths of the world so that large lesions fit the field of view."""
    half_fov = min(n * s for n, s in zip(shape, spacing, strict=True)) / 2
    big = max(mu + 1.96 * sd for mu, sd in (_log_volume(y, w) for y in (0.0, 1.0)))
    # How far a strongly lobulated, elongated body reaches, in radii (lobes peak near 2.5 SD).
    lobes = 1 + 2.5 * max(w.lobulation, w.lobulation + w.young_lobulation)
    body = lobes * math.exp(2 * w.elongation)
    # The body of a 97.5th-percentile lesion spans 95% of the half field of view.
    return min(1.0, 0.95 * half_fov / (body * _radius_mm(math.exp(big))))


@dataclass(frozen=True)
class _Crop:
    """A box of the volume around one lesion, with the mm coordinates of its voxels."""

    slices: tuple[slice, slice, slice]
    coords: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    spacing: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.coords[0]), len(self.coords[1]), len(self.coords[2]))


def _smooth_field(
    rng: np.random.Generator, crop: _Crop, length: float, n_modes: int = 24
) -> FloatArray:
    """A stationary, unit-variance Gaussian-like random field with correlation length ``length``.

    Random Fourier features: a sum of plane waves with Gaussian frequencies has (approximately)
    a Gaussian covariance exp(-d²/2ℓ²). Each wave factorises over the axes,
    cos(a + b + c) = Re(e^{ia} e^{ib} e^{ic}), so the sum is two small real matrix products
    instead of a 3-D filter.
    """
    omega = rng.normal(scale=1 / max(length, 1e-6), size=(n_modes, 3))
    phase = rng.uniform(0, 2 * math.pi, size=n_modes)
    x, y, z = crop.coords
    ex = np.exp(1j * (omega[:, :1] * x[None, :] + phase[:, None]))
    ey = np.exp(1j * (omega[:, 1:2] * y[None, :]))
    ez = np.exp(1j * (omega[:, 2:3] * z[None, :]))
    xy = (ex[:, :, None] * ey[:, None, :]).reshape(n_modes, -1)
    real = xy.real.astype(np.float32).T @ ez.real.astype(np.float32)
    real -= xy.imag.astype(np.float32).T @ ez.imag.astype(np.float32)
    real *= np.float32(math.sqrt(2 / n_modes))
    return real.reshape(crop.shape)


def _lesion(
    rng: np.random.Generator,
    youth: float,
    w: _World,
    scale: float,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> tuple[_Crop, BoolArray]:
    """Draw one expert lesion; returns its crop and mask (the crop leaves room for errors)."""
    mu, sd = _log_volume(youth, w)
    radius = _radius_mm(math.exp(rng.normal(mu, sd))) * scale

    # Lobulation: a smooth random function on the sphere, low angular frequency, unit SD.
    n_lobe = 8
    k = rng.normal(size=(n_lobe, 3))
    k *= (w.lobulation_order * rng.uniform(0.7, 1.3, size=n_lobe) / np.linalg.norm(k, axis=1))[
        :, None
    ]
    lobe_phase = rng.uniform(0, 2 * math.pi, size=n_lobe)
    lobe_weight = rng.normal(size=n_lobe)
    amp = (w.lobulation + w.young_lobulation * youth) * math.exp(rng.normal(0, 0.3))

    def lobes(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(np.cos(u @ k.T + lobe_phase) @ lobe_weight)

    ref = lobes(_DIRS)
    lobe_mean, lobe_sd = float(ref.mean()), float(ref.std()) or 1.0

    # Spicules: narrow bumps of the radius that taper to a point along random directions.
    n_spic = int(rng.poisson(w.spicules + w.young_spicules * youth))
    spic_dir = rng.normal(size=(n_spic, 3))
    spic_dir /= np.linalg.norm(spic_dir, axis=1, keepdims=True)
    spic_len = w.spicule_length * rng.uniform(0.5, 1.5, size=n_spic)
    spic_width = rng.uniform(0.004, 0.012, size=n_spic)  # in 1 − cos(angle)

    def radial(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        r = 1 + amp * (lobes(u) - lobe_mean) / lobe_sd
        if n_spic:
            r = r + np.exp(-(1 - u @ spic_dir.T) / spic_width) @ spic_len
        return np.maximum(r, 0.25)

    # Elongation: a random rotation and axis lengths with product 1 (volume kept).
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    axes = np.exp(rng.normal(0, w.elongation, size=3))
    axes /= np.prod(axes) ** (1 / 3)

    # Satellites: small nodules just outside the main body.
    n_sat = int(rng.poisson(w.satellites + w.young_satellites * youth))
    sat_dir = rng.normal(size=(n_sat, 3))
    sat_dir /= np.linalg.norm(sat_dir, axis=1, keepdims=True)
    sat_r = rng.uniform(0.12, 0.3, size=n_sat)
    sat_gap = rng.uniform(0.1, 0.5, size=n_sat)
    sat_dist = radial(sat_dir) * axes.max() + sat_r + sat_gap if n_sat else np.zeros(0)

    # Bounds of the radius over directions: sampled, plus the exact spicule tips, plus slack for
    # lobe maxima between samples. Voxels outside the bounds need no evaluation.
    on_dirs = radial(_DIRS)
    # Lobes and spicules add volume (E[r³] > 1); rescale so the body has the volume drawn above
    # and youth changes volume only through the volume effects.
    radius /= float(np.mean(on_dirs**3)) ** (1 / 3)
    lobe_hi = 1 + amp * (float(ref.max()) - lobe_mean) / lobe_sd + 0.1 * amp
    r_hi = max(float(on_dirs.max()), float(radial(spic_dir).max()) if n_spic else 0.0)
    r_hi = max(r_hi + 0.1 * amp, lobe_hi)
    r_lo = max(float(on_dirs.min()) - 0.1 * amp, 0.0) * axes.min()
    outer = r_hi * axes.max()
    if n_sat:
        outer = max(outer, float((sat_dist + sat_r).max()))

    # Keep the lesion's body inside the volume (shrink this one lesion if it does not fit);
    # spicule tips and satellites beyond the edge of the volume are cut, as a scan's would be.
    fov = np.array(shape) * np.array(spacing)
    body_reach = lobe_hi * float(axes.max())
    radius = min(radius, 0.95 * float(fov.min()) / 2 / body_reach)
    reach = outer * radius
    centre = rng.uniform(body_reach * radius, fov - body_reach * radius)
    box = []
    for ax in range(3):
        a = max(math.floor((centre[ax] - reach) / spacing[ax]), 0)
        b = min(math.ceil((centre[ax] + reach) / spacing[ax]) + 1, shape[ax])
        box.append(np.arange(a, b))
    # voxel centres sit at (index + 0.5) * spacing in this frame
    coords = [(idx + 0.5) * spacing[ax] - centre[ax] for ax, idx in enumerate(box)]
    # Voxel positions in the lesion's own frame (rotated, axes divided out, in radii), where the
    # body is star-shaped; built by broadcasting the three 1-D coordinate vectors.
    frame = (rot / axes[None, :] / radius).astype(np.float32)
    cx, cy, cz = (c.astype(np.float32) for c in coords)
    body = [
        cx[:, None, None] * frame[0, j]
        + cy[None, :, None] * frame[1, j]
        + cz[None, None, :] * frame[2, j]
        for j in range(3)
    ]
    rho = np.sqrt(body[0] ** 2 + body[1] ** 2 + body[2] ** 2).ravel()
    inside = rho <= r_lo
    # Only the shell between the bounds needs the radius, and beyond the lobes' reach only the
    # directions a spicule points to: evaluate the cheap spicule term first, the lobes last.
    shell = np.flatnonzero(~inside & (rho <= r_hi))
    u = np.stack([b.ravel()[shell] for b in body], axis=1) / np.maximum(rho[shell], 1e-9)[:, None]
    spike = (
        np.exp(-(1 - u @ spic_dir.T) / spic_width) @ spic_len if n_spic else np.zeros(len(shell))
    )
    near = rho[shell] <= lobe_hi + spike
    idx = shell[near]
    r = 1 + amp * (lobes(u[near]) - lobe_mean) / lobe_sd + spike[near]
    inside[idx] = rho[idx] <= np.maximum(r, 0.25)
    mask = inside.reshape(len(box[0]), len(box[1]), len(box[2]))
    if not mask.any():
        # A lesion smaller than a voxel still marks the voxel it sits in.
        mask[tuple(int(np.argmin(np.abs(c))) for c in coords)] = True

    # Tight crop: the mask's bounding box plus room for a model to over-segment. Blurs use zero
    # padding, which is exact here because the mask is zero outside the crop.
    slices = []
    crop_coords = []
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        pad = math.ceil(0.45 * radius / spacing[ax]) + 1
        a = max(int(box[ax][hit[0]]) - pad, 0)
        b = min(int(box[ax][hit[-1]]) + pad + 1, shape[ax])
        slices.append(slice(a, b))
        crop_coords.append((np.arange(a, b) + 0.5) * spacing[ax] - centre[ax])
    # Copy the evaluated mask into the crop where the two boxes (both in volume indices) overlap.
    out = np.zeros([s.stop - s.start for s in slices], dtype=bool)
    into, take = [], []
    for ax, s in enumerate(slices):
        first = int(box[ax][0])
        lo, hi = max(s.start, first), min(s.stop, first + mask.shape[ax])
        into.append(slice(lo - s.start, hi - s.start))
        take.append(slice(lo - first, hi - first))
    out[tuple(into)] = mask[tuple(take)]
    crop = _Crop(
        (slices[0], slices[1], slices[2]),
        (crop_coords[0], crop_coords[1], crop_coords[2]),
        spacing,
    )
    return crop, out
