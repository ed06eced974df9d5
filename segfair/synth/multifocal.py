"""The ``multifocal`` world: a main lesion with small satellite lesions, one label (1).

Every case has one main lesion (radius 9–12 mm, about 3–7 ml, never "small"). The only place a
patient's attributes enter is the **satellites**: patients under 50 have more of them
(Poisson mean 4 against 1.5) and smaller ones (log-uniform 70–220 mm³ against 150–480 mm³). All
satellites lie at least 10 voxels from every other lesion, so each is one lesion whatever the
matching (BraTS 2023 merges lesions closer than its 3 dilations) and within the BraTS 2023 sizes
of a counted (> 50 mm³) *small* (≤ 500 mm³) lesion. A satellite that finds no room in the field
of view after 40 tries is left out (at small sizes some are).

The automated labeller and both models see the expert mask and nothing else: they find a lesion
with a probability that is a logistic function of its volume (half of those of 160 mm³ for the
labeller, 130 mm³ for the models; trained_on_automated works from the automated mask, so it also
loses what the labeller lost), keep every lesion they find as it is except the main one, whose
boundary they move by a case bias and smooth noise, and now and then (10%) add a small false
lesion. So the younger group's small lesions are mostly missed and the older group's mostly
found — a large small-lesion detection gap — while the satellites weigh little in a case's Dice
next to the main lesion — a small Dice gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from segfair.synth.files import _sources
from segfair.synth.grid import (
    Geometry,
    Spacing,
    _adults,
    _age_groups,
    _ball,
    _blob,
    _Case,
    _components,
    _detected,
    _gap,
    _header,
    _Kind,
    _moved,
    _People,
)
from segfair.synth.lesions import BoolArray
from segfair.synth.patients import _S_AUTO_MODEL, _S_EXPERT_MODEL, _S_LABEL, _S_LESION, _stream

__all__: list[str] = []

_AGE_EDGE: Final = 50
_PEOPLE: Final = _People(
    "MF-{:04d}",
    {"site_a": 0.5, "site_b": 0.3, "site_c": 0.2},
    young_share=0.45,
    ages=(20, _AGE_EDGE, 85),
    male_share=0.5,
)

_SATELLITES: Final = (4.0, 1.5)  # mean number under 50, at 50 and over
_SATELLITE_MM3: Final = ((70.0, 220.0), (150.0, 480.0))  # log-uniform volume ranges
_GAP_VOXELS: Final = 10  # free voxels between lesions: 2 × 3 BraTS dilations reach 8.5
_LABELLER_HALF_MM3: Final = 160.0  # volume of a lesion found half the time
_MODEL_HALF_MM3: Final = 130.0
_FALSE_LESION: Final = 0.1  # chance of a small false-positive lesion per mask


def _place(
    rng: np.random.Generator,
    mask: BoolArray,
    spacing: Spacing,
    radius: float,
    tries: int = 40,
) -> BoolArray | None:
    """A ball of ``radius`` mm at a random spot at least _GAP_VOXELS from ``mask``, or None."""
    fov = np.array(mask.shape) * np.array(spacing)
    h = max(spacing)
    margin = radius + h
    if np.any(fov <= 2 * margin):
        return None
    free = ndimage.distance_transform_edt(~mask, sampling=spacing)
    for _ in range(tries):
        centre = rng.uniform(margin, fov - margin)
        voxel = tuple(int(c / s) for c, s in zip(centre, spacing, strict=True))
        if free[voxel] > radius + _GAP_VOXELS * h:
            return _ball(mask.shape, spacing, centre, radius)
    return None


def _lesions(rng: np.random.Generator, age: int, shape: Geometry, spacing: Spacing) -> BoolArray:
    fov = np.array(shape) * np.array(spacing)
    radius = min(rng.uniform(9.0, 12.0), 0.3 * float(fov.min()))
    centre = fov / 2 + rng.normal(0, 0.05, size=len(shape)) * fov
    mask = _blob(rng, shape, spacing, centre, radius, roughness=0.1)
    group = 0 if age < _AGE_EDGE else 1
    low, high = _SATELLITE_MM3[group]
    for _ in range(int(rng.poisson(_SATELLITES[group]))):
        volume = math.exp(rng.uniform(math.log(low), math.log(high)))
        ball = _place(rng, mask, spacing, (3 * volume / (4 * math.pi)) ** (1 / 3))
        if ball is not None:
            mask |= ball
    return mask


def _segment(
    truth: BoolArray, spacing: Spacing, rng: np.random.Generator, half_mm3: float
) -> npt.NDArray[np.uint8]:
    """A labeller's or model's mask, from a mask alone."""
    labels, n = _components(truth)
    out = np.zeros(truth.shape, dtype=bool)
    if n:
        sizes = np.bincount(labels.ravel())[1:] * float(np.prod(spacing))
        main = int(np.argmax(sizes)) + 1
        keep = [k for k in range(1, n + 1) if k != main and _detected(sizes[k - 1], half_mm3, rng)]
        radius = (3 * sizes[main - 1] / (4 * math.pi)) ** (1 / 3)
        bias = rng.normal(0, 0.05 * radius)
        noise = 0.08 * radius
        out = _moved(labels == main, spacing, rng, bias=bias, noise=noise, length=radius / 2)
        out |= np.isin(labels, keep)
    if rng.random() < _FALSE_LESION:
        ball = _place(rng, truth | out, spacing, rng.uniform(2.5, 3.5))
        if ball is not None:
            out |= ball
    return out.astype(np.uint8)


def _simulate(
    seed: int, case: _Case, shape: Geometry, spacing: Spacing
) -> Mapping[str, npt.NDArray[np.uint8]]:
    age = int(case.values[1])
    truth = _lesions(_stream(seed, case.index, _S_LESION), age, shape, spacing)
    # From here on only masks are used: no age, no generator parameters.
    label = _segment(truth, spacing, _stream(seed, case.index, _S_LABEL), _LABELLER_HALF_MM3)
    te = _segment(truth, spacing, _stream(seed, case.index, _S_EXPERT_MODEL), _MODEL_HALF_MM3)
    rng = _stream(seed, case.index, _S_AUTO_MODEL)
    ta = _segment(label.astype(bool), spacing, rng, _MODEL_HALF_MM3)
    return {
        "expert": truth.astype(np.uint8),
        "automated": label,
        "trained_on_expert": te,
        "trained_on_automated": ta,
    }


_METRICS: Final = (
    "dice",
    "lesion_dice",
    "lesion_sensitivity",
    "lesion_f1",
    "lesion_fp",
    "small_lesions",
    "small_lesions_detected",
)


def _config(seed: int, spacing: Spacing) -> str:
    metrics = ", ".join(f'"{m}"' for m in _METRICS)
    return "\n".join(
        [
            _header("multifocal", seed) + f"metrics = [{metrics}]\n",
            _sources(".nii.gz"),
            "# BraTS 2023's sizes: lesions of at most 50 mm³ are not counted, of at most 500 are",
            "# small (the defaults, written out).",
            "[lesions]\nmin_volume = 50.0\nsmall_volume = 500.0\n",
            _age_groups(_AGE_EDGE),
            '[attributes.sex]\ncolumn = "sex"\n',
            '[attributes.site]\ncolumn = "site"\n',
            "# Expected to pass: missed satellites weigh little in a case's Dice.",
            _gap("dice", "age_group", 0.05),
            "# Expected to fail: the younger group's small satellites are mostly missed.",
            """\
[[gates]]
kind = "detection_gap"
by = "age_group"
model = "trained_on_expert"
max = 0.1
""",
            _gap("lesion_sensitivity", "age_group", 0.1),
        ]
    )


KIND: Final = _Kind(
    name="multifocal",
    ndim=3,
    shape=(64, 64, 40),
    spacing=(1.5, 1.5, 1.5),
    suffix=".nii.gz",
    columns=("case_id", "site", "age", "sex"),
    patients=partial(_adults, people=_PEOPLE),
    simulate=_simulate,
    config=_config,
)
