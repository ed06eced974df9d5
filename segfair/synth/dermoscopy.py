"""The ``dermoscopy`` world: 2-D skin-lesion masks written as PNG, with a skin-tone effect.

Each case is one lumpy, somewhat elongated blob (radius 35–60% of half the field of view) on a
2-D grid, axes (row, column), written as an 8-bit greyscale PNG holding 0 (background) and 1
(lesion) with its pixel size as the PNG's pHYs. The patient's skin tone (Fitzpatrick groups
``I-II``, ``III-IV``, ``V-VI``, 45/35/20%) sets one property of the *image*: the lesion-to-skin
contrast (uniform in 0.65–1.0, 0.45–0.85 and 0.25–0.55), lower on darker skin, the usual reason
dermoscopy models do worse there.

The labeller and the models see the expert mask and that contrast, never the skin tone: each
moves the lesion's boundary inward by 0.3 × (1 − contrast) of its radius (a faint border is taken
for skin), plus a case bias and smooth noise whose SD grows as 1 / contrast;
trained_on_automated starts from the automated mask, so its errors add to the labeller's. Hence
a Dice gap across skin tone, out of the images' contrast alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from segfair.synth.files import _sources
from segfair.synth.grid import (
    Geometry,
    Spacing,
    _adults,
    _age_groups,
    _blob,
    _Case,
    _gap,
    _header,
    _Kind,
    _moved,
    _People,
)
from segfair.synth.lesions import BoolArray
from segfair.synth.patients import _S_AUTO_MODEL, _S_EXPERT_MODEL, _S_LABEL, _S_LESION, _stream

__all__: list[str] = []

_TONES: Final = ("I-II", "III-IV", "V-VI")
_TONE_P: Final = (0.45, 0.35, 0.2)
_CONTRAST: Final = ((0.65, 1.0), (0.45, 0.85), (0.25, 0.55))
_PEOPLE: Final = _People(
    "DERM-{:05d}",
    {"clinic_a": 0.6, "clinic_b": 0.4},
    young_share=0.4,
    ages=(18, 50, 90),
    male_share=0.5,
)
_S_TONE: Final = 5  # after the five streams of segfair.synth.patients
_BORDER_LOSS: Final = 0.3  # inward boundary shift per unit of missing contrast, × radius
_NOISE: Final = 0.03  # boundary noise SD at full contrast, × radius
_BIAS: Final = 0.02  # SD across cases of the boundary bias, × radius


def _patients(seed: int, n_cases: int) -> list[_Case]:
    out = []
    for case in _adults(seed, n_cases, _PEOPLE):
        # the skin tone from a generator of its own (the patient's stream holds the rest)
        rng = _stream(seed, case.index, _S_TONE)
        tone = _TONES[int(rng.choice(len(_TONES), p=_TONE_P))]
        out.append(_Case(case.index, case.patient_id, (*case.values, tone)))
    return out


def _lesion(rng: np.random.Generator, shape: Geometry, spacing: Spacing) -> BoolArray:
    fov = np.array(shape) * np.array(spacing)
    radius = float(fov.min()) / 2 * rng.uniform(0.35, 0.6)
    centre = fov / 2 + rng.normal(0, 0.04, size=2) * fov
    return _blob(rng, shape, spacing, centre, radius, elongation=0.2, roughness=0.15)


def _segment(
    truth: BoolArray, contrast: float, spacing: Spacing, rng: np.random.Generator
) -> BoolArray:
    """A labeller's or model's mask, from a mask and its image's contrast."""
    n = int(truth.sum())
    radius = math.sqrt(n * float(np.prod(spacing)) / math.pi) if n else max(spacing)
    bias = (-_BORDER_LOSS * (1 - contrast) + rng.normal(0, _BIAS)) * radius
    noise = _NOISE / contrast * radius
    return _moved(truth, spacing, rng, bias=bias, noise=noise, length=0.4 * radius)


def _simulate(
    seed: int, case: _Case, shape: Geometry, spacing: Spacing
) -> Mapping[str, npt.NDArray[np.uint8]]:
    rng = _stream(seed, case.index, _S_LESION)
    truth = _lesion(rng, shape, spacing)
    contrast = rng.uniform(*_CONTRAST[_TONES.index(case.values[3])])
    # From here on only the mask and the image's contrast are used, not the skin tone.
    label = _segment(truth, contrast, spacing, _stream(seed, case.index, _S_LABEL))
    te = _segment(truth, contrast, spacing, _stream(seed, case.index, _S_EXPERT_MODEL))
    ta = _segment(label, contrast, spacing, _stream(seed, case.index, _S_AUTO_MODEL))
    masks = {
        "expert": truth,
        "automated": label,
        "trained_on_expert": te,
        "trained_on_automated": ta,
    }
    return {role: mask.astype(np.uint8) for role, mask in masks.items()}


def _config(seed: int, spacing: Spacing) -> str:
    pixel = ", ".join(f"{s:g}" for s in spacing)
    return "\n".join(
        [
            _header("dermoscopy", seed)
            + "labels = [1]  # the PNGs hold 0 and 1\n"
            + f"spacing = [{pixel}]  # mm per pixel (row, column), also in each PNG's pHYs\n",
            _sources(".png"),
            '[attributes.skin_tone]\ncolumn = "skin_tone"\norder = ["I-II", "III-IV", "V-VI"]\n',
            _age_groups(50),
            '[attributes.sex]\ncolumn = "sex"\n',
            '[attributes.site]\ncolumn = "site"\n',
            "# Expected to fail: lower contrast on darker skin moves the predicted border in.",
            _gap("dice", "skin_tone", 0.05),
        ]
    )


KIND: Final = _Kind(
    name="dermoscopy",
    ndim=2,
    shape=(128, 128),
    spacing=(0.1, 0.1),
    suffix=".png",
    columns=("case_id", "site", "age", "sex", "skin_tone"),
    patients=_patients,
    simulate=_simulate,
    config=_config,
)
