"""The models' predictions (functions of the expert mask only), and one case's four masks drawn
end to end."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from segfair.synth.effects import _World
from segfair.synth.labels import (
    _atypicality,
    _automated_label,
    _blur,
    _describe,
    _level_set,
    _Shape,
    _shift,
    _sigma,
    _systematic_label,
)
from segfair.synth.lesions import BoolArray, FloatArray, _Crop, _lesion, _world_scale, _youth
from segfair.synth.patients import _S_AUTO_MODEL, _S_EXPERT_MODEL, _S_LABEL, _S_LESION, _stream

__all__: list[str] = []


def _fail(
    pred: BoolArray, phi: FloatArray, shape: _Shape, crop: _Crop, rng: np.random.Generator
) -> BoolArray:
    """A failure: the lesion missed entirely, partly missed, or leaking into its surroundings."""
    kind = rng.random()
    if kind < 0.2:
        return np.zeros_like(pred)
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    x, y, z = crop.coords
    side = (
        normal[0] * x[:, None, None] + normal[1] * y[None, :, None] + normal[2] * z[None, None, :]
    )
    if kind < 0.65:
        # part of the lesion on one side of a plane is missed
        return np.asarray(pred & (side > rng.uniform(-0.6, 0.4) * shape.radius))
    # enhancing tissue next to the lesion is taken for tumour on one side
    leak = phi <= rng.uniform(0.15, 0.4) * shape.radius
    return np.asarray(pred | (leak & (side > rng.uniform(-0.2, 0.5) * shape.radius)))


def _model(
    phi: FloatArray,
    shape: _Shape,
    crop: _Crop,
    w: _World,
    rng: np.random.Generator,
    gain: float,
    atypicality: float,
    scale: float = 1.0,
) -> BoolArray:
    """A model's prediction: the level set ``phi`` moved by a bias and smooth boundary noise, and
    now and then a failure; both the noise and the failure rate grow by ``1 + gain·atypicality``.
    """
    growth = scale * (1 + gain * atypicality)
    sd = w.model_noise * growth * math.exp(rng.normal(0, w.model_noise_case_sd))
    bias = rng.normal(0, w.model_bias_sd)
    pred = _shift(phi, shape, crop, rng, bias, sd, w)
    p_fail = w.model_failure_rate * growth
    if rng.random() < p_fail:
        pred = _fail(pred, phi, shape, crop, rng)
    return pred


@dataclass(frozen=True)
class _CaseMasks:
    crop: _Crop
    expert: BoolArray
    automated: BoolArray
    trained_on_expert: BoolArray
    trained_on_automated: BoolArray


def _simulate(
    seed: int,
    index: int,
    age: float,
    w: _World,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> _CaseMasks:
    scale = _world_scale(shape, spacing, w)
    crop, truth = _lesion(_stream(seed, index, _S_LESION), _youth(age, w), w, scale, shape, spacing)
    # From here on only the expert mask is used: no age, no youth, no generator parameters.
    desc = _describe(truth, spacing)
    atyp = _atypicality(desc, w, typical_volume_mm3=w.volume_ml * 1000 * scale**3)
    systematic = _systematic_label(truth, desc, w, spacing)
    label = _automated_label(truth, desc, crop, w, _stream(seed, index, _S_LABEL), systematic)

    sigma = _sigma(w.model_resolution, desc.radius, spacing)
    phi_truth = _level_set(_blur(truth, sigma, spacing), sigma, desc)
    rng = _stream(seed, index, _S_EXPERT_MODEL)
    te = _model(phi_truth, desc, crop, w, rng, w.model_atypical_gain, atyp)
    if w.automated_inherit != 1.0:
        systematic = _systematic_label(truth, desc, w, spacing, inherit=w.automated_inherit)
    rng = _stream(seed, index, _S_AUTO_MODEL)
    ta = _model(systematic, desc, crop, w, rng, w.automated_atypical_gain, atyp, w.automated_noise)
    return _CaseMasks(crop, truth, label, te, ta)
