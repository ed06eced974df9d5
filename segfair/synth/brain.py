"""The ``brats`` world: adult glioma-like brain tumours as nested label maps (BraTS labels).

Each expert label map holds 2 = oedema around 3 = an enhancing rim around 1 = a necrotic core, so
``whole_tumor = [1, 2, 3]``, ``tumor_core = [1, 3]`` and ``enhancing = 3`` are nested. The only
place a patient's attributes enter is the **thickness of the enhancing rim**: patients under 50
mostly (80%) have a thin rim (1.2–2.0 voxels), patients of 50 and over mostly (85%) a thick one
(2.6–4 voxels, at most 45% of the core's radius so that a core is left). Younger adults' gliomas
are more often of lower grade, with thin or patchy enhancement; here that is the whole story.

The automated labeller and both models see the expert label map (the trained-on-automated model:
the automated one) and nothing else. Each moves the whole-tumour, core and necrosis boundaries by
a case bias and smooth noise (the same for everyone), and sees enhancement only where the rim,
blurred at the model's resolution (σ = 0.9 voxel for the models, 1.1 for the labeller), reaches
half its full contrast near that spot: a thick rim comes out whole, a thin one partly or not at
all (its voxels become necrotic core). Hence a large enhancing-tumour Dice gap between the age
groups and a small whole-tumour one, out of morphology alone.
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
    _blob,
    _box,
    _Case,
    _depth,
    _field,
    _gap,
    _header,
    _Kind,
    _moved,
    _People,
)
from segfair.synth.lesions import BoolArray
from segfair.synth.patients import _S_AUTO_MODEL, _S_EXPERT_MODEL, _S_LABEL, _S_LESION, _stream

__all__: list[str] = []

_AGE_EDGE: Final = 50  # the age groups of the configuration, and the rim's age link
_PEOPLE: Final = _People(
    "BraTS-SYN-{:05d}",
    {"site_a": 0.4, "site_b": 0.3, "site_c": 0.2, "site_d": 0.1},
    young_share=0.4,
    ages=(18, _AGE_EDGE, 85),
    male_share=0.58,  # gliomas are more common in men
)

NECROSIS, OEDEMA, ENHANCING = 1, 2, 3
_P_THIN: Final = (0.8, 0.15)  # chance of a thin rim under 50, at 50 and over
_THIN: Final = (1.0, 1.8)  # rim thickness, voxels
_THICK: Final = (2.6, 4.0)
_LABELLER_RESOLUTION: Final = 1.2  # blur sigma in voxels at which enhancement is seen
_MODEL_RESOLUTION: Final = 1.0
_BOUNDARY_BIAS: Final = 0.03  # SD across cases of a boundary's shift, × the tumour's radius
_BOUNDARY_NOISE: Final = 0.05  # SD of the smooth boundary noise, × the tumour's radius


def _tumour(
    rng: np.random.Generator, age: int, shape: Geometry, spacing: Spacing
) -> npt.NDArray[np.uint8]:
    h = max(spacing)
    fov = np.array(shape) * np.array(spacing)
    radius = float(fov.min()) / 2 * rng.uniform(0.55, 0.75)
    room = np.maximum(fov / 2 - 1.15 * radius, 0.0)
    centre = fov / 2 + rng.uniform(-1, 1, size=len(shape)) * room
    whole = _blob(rng, shape, spacing, centre, radius, roughness=0.12, length=0.6)
    ratio = rng.uniform(0.5, 0.65)
    offset = rng.normal(0, 0.08 * radius, size=len(shape))
    core = _blob(rng, shape, spacing, centre + offset, ratio * radius, roughness=0.1)
    # nested: at least a voxel of oedema wraps the core everywhere
    core &= _depth(whole, spacing) > 1.5 * h
    thin = rng.random() < _P_THIN[0 if age < _AGE_EDGE else 1]
    rim = rng.uniform(*(_THIN if thin else _THICK)) * h
    rim = min(rim, 0.45 * ratio * radius)
    out = np.zeros(shape, dtype=np.uint8)
    out[whole] = OEDEMA
    box = _box(core, 1)
    # The rim's thickness varies a little along it (a rim is never uniform).
    local = rim * (1 + 0.15 * _field(rng, shape, spacing, 0.5 * radius, box))
    if box is not None:
        inner = core[box] & (_depth(core, spacing)[box] > np.maximum(local, h))
        out[box][core[box]] = ENHANCING
        out[box][inner] = NECROSIS
    return out


def _segment(
    labels: npt.NDArray[np.uint8],
    spacing: Spacing,
    rng: np.random.Generator,
    resolution: float,
) -> npt.NDArray[np.uint8]:
    """A labeller's or model's label map, from a label map alone."""
    h = max(spacing)
    whole = labels > 0
    core = (labels == NECROSIS) | (labels == ENHANCING)
    n = int(whole.sum())
    radius = (3 * n * float(np.prod(spacing)) / (4 * math.pi)) ** (1 / len(spacing)) if n else h

    def moved(mask: BoolArray) -> BoolArray:
        bias = rng.normal(0, _BOUNDARY_BIAS * radius)
        noise = _BOUNDARY_NOISE * radius
        return _moved(mask, spacing, rng, bias=bias, noise=noise, length=radius / 2)

    whole_p = moved(whole)
    core_p = moved(core) & whole_p
    necrosis_p = moved(labels == NECROSIS) & core_p
    # Enhancement is seen where the rim, blurred at the model's resolution, reaches about half
    # its contrast somewhere within two voxels: a thin rim's blur never does.
    sigma = [resolution * h / s for s in spacing]
    blurred = ndimage.gaussian_filter((labels == ENHANCING).astype(np.float32), sigma)
    visible = ndimage.maximum_filter(blurred, size=5) >= 0.5 + rng.normal(0, 0.03)
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[whole_p] = OEDEMA
    out[core_p] = NECROSIS
    out[core_p & ~necrosis_p & visible] = ENHANCING
    return out


def _simulate(
    seed: int, case: _Case, shape: Geometry, spacing: Spacing
) -> Mapping[str, npt.NDArray[np.uint8]]:
    age = int(case.values[1])
    truth = _tumour(_stream(seed, case.index, _S_LESION), age, shape, spacing)
    # From here on only label maps are used: no age, no generator parameters.
    label = _segment(truth, spacing, _stream(seed, case.index, _S_LABEL), _LABELLER_RESOLUTION)
    rng = _stream(seed, case.index, _S_EXPERT_MODEL)
    te = _segment(truth, spacing, rng, _MODEL_RESOLUTION)
    ta = _segment(label, spacing, _stream(seed, case.index, _S_AUTO_MODEL), _MODEL_RESOLUTION)
    return {
        "expert": truth,
        "automated": label,
        "trained_on_expert": te,
        "trained_on_automated": ta,
    }


def _config(seed: int, spacing: Spacing) -> str:
    return "\n".join(
        [
            _header("brats", seed),
            _sources(".nii.gz"),
            "[structures]\nwhole_tumor = [1, 2, 3]\ntumor_core = [1, 3]\nenhancing = 3\n",
            _age_groups(_AGE_EDGE),
            '[attributes.sex]\ncolumn = "sex"\n',
            '[attributes.site]\ncolumn = "site"\n',
            "# Expected to fail: thin enhancing rims (mostly under 50) are under-segmented.",
            _gap("dice", "age_group", 0.1, "enhancing"),
            "# Expected to pass: the whole tumour is segmented alike in both groups.",
            _gap("dice", "age_group", 0.05, "whole_tumor"),
        ]
    )


KIND: Final = _Kind(
    name="brats",
    ndim=3,
    shape=(96, 96, 64),
    spacing=(1.0, 1.0, 1.0),
    suffix=".nii.gz",
    columns=("case_id", "site", "age", "sex"),
    patients=partial(_adults, people=_PEOPLE),
    simulate=_simulate,
    config=_config,
)
