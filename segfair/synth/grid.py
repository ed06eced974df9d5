"""What the ``brats``, ``multifocal`` and ``dermoscopy`` worlds share: a world's description
(:class:`_Kind`), its patients' rows, and shapes drawn and moved on the whole voxel grid.

These worlds are small (a few label maps per case on a 48×48×24 to 96×96×64 grid, or a 2-D
image), so they work on the full grid instead of a crop around the lesion, and every length is in
mm. As in the breast world, a subgroup acts on the expert mask's morphology (or, in the
dermoscopy world, on the image's contrast) and nothing else: the labeller and the models are
functions of the expert masks, with their own generators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from segfair.synth.lesions import BoolArray, FloatArray, _Crop, _smooth_field
from segfair.synth.patients import _stream

__all__: list[str] = []

#: The case table of every world beside the breast one (the breast world writes MAMA-MIA's).
TABLE: Final = "cases.csv"

Geometry = tuple[int, ...]
Spacing = tuple[float, ...]


@dataclass(frozen=True)
class _Case:
    """One patient: its index (which seeds its generators), id and table row after the id."""

    index: int
    patient_id: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class _Kind:
    """A synthetic world other than the breast one: geometry, files, table and configuration."""

    name: str
    ndim: int
    shape: Geometry  # default shape (voxels)
    spacing: Spacing  # default spacing (mm)
    suffix: str  # of every mask file: ".nii.gz" or ".png"
    columns: tuple[str, ...]  # of the case table, the id first
    patients: Callable[[int, int], list[_Case]]  # (seed, n_cases)
    # (seed, case, shape, spacing) -> the four masks by role (uint8, full size)
    simulate: Callable[[int, _Case, Geometry, Spacing], Mapping[str, npt.NDArray[np.uint8]]]
    config: Callable[[int, Spacing], str]  # (seed, spacing) -> segfair.toml


Box = tuple[slice, ...]


def _field(
    rng: np.random.Generator,
    shape: Geometry,
    spacing: Spacing,
    length: float,
    box: Box | None = None,
) -> FloatArray:
    """A smooth unit-variance random field, correlation length ``length`` mm, at the voxels of
    ``box`` (default: the whole grid). The draws do not depend on the box: a box's values are
    those of the whole grid's field there.

    2-D grids are a 3-D grid one voxel thick, so both use the breast world's random field.
    """
    box = box or tuple(slice(0, n) for n in shape)
    dims = [b.stop - b.start for b in box]
    starts = [b.start for b in box]
    if len(shape) == 2:
        dims, starts, spacing = [*dims, 1], [*starts, 0], (*spacing, 1.0)
    coords = [
        (np.arange(a, a + n, dtype=np.float64) + 0.5) * s
        for a, n, s in zip(starts, dims, spacing, strict=True)
    ]
    crop = _Crop(
        (slice(0, dims[0]), slice(0, dims[1]), slice(0, dims[2])),
        (coords[0], coords[1], coords[2]),
        (spacing[0], spacing[1], spacing[2]),
    )
    return _smooth_field(rng, crop, length).reshape([b.stop - b.start for b in box])


def _box(mask: BoolArray, pad: int) -> Box | None:
    """The mask's bounding box grown by ``pad`` voxels (within the grid); None when empty."""
    if not mask.any():
        return None
    out = []
    for ax in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        out.append(slice(max(int(hit[0]) - pad, 0), min(int(hit[-1]) + pad + 1, mask.shape[ax])))
    return tuple(out)


def _positions(shape: Geometry, spacing: Spacing) -> list[npt.NDArray[np.float64]]:
    """Voxel-centre coordinates (mm) along each axis, shaped to broadcast over the grid."""
    out = []
    for ax, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        view = [1] * len(shape)
        view[ax] = n
        out.append((np.arange(n, dtype=np.float64) * s + 0.5 * s).reshape(view))
    return out


def _blob(
    rng: np.random.Generator,
    shape: Geometry,
    spacing: Spacing,
    centre: Sequence[float],
    radius: float,
    *,
    elongation: float = 0.12,
    roughness: float = 0.1,
    length: float = 0.5,
) -> BoolArray:
    """A lumpy ellipsoid (ellipse in 2-D): radius ``radius`` mm, random axis lengths (log-sd
    ``elongation``, product 1) and a boundary moved by a smooth field of relative SD
    ``roughness`` with correlation length ``length`` × radius."""
    axes = np.exp(rng.normal(0, elongation, size=len(shape)))
    axes /= np.prod(axes) ** (1 / len(shape))
    pos = _positions(shape, spacing)
    rho2 = sum(((p - c) / (radius * a)) ** 2 for p, c, a in zip(pos, centre, axes, strict=True))
    bump = _field(rng, shape, spacing, length * radius) if roughness > 0 else np.float32(0)
    return np.asarray(np.sqrt(rho2) <= 1 + roughness * bump)


def _signed_distance(mask: BoolArray, spacing: Spacing) -> FloatArray:
    """Distance (mm) to the mask's boundary, < 0 inside, over the array given.

    Exact in a box around the mask with at least one voxel of background on every side: the
    nearest background voxel of a voxel inside lies in the box (the box is convex and its border
    layer is background), and so does every mask voxel."""
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return np.asarray(outside - inside, dtype=np.float32)


def _depth(mask: BoolArray, spacing: Spacing) -> FloatArray:
    """Distance (mm) from each voxel of the mask to the nearest voxel outside it (0 outside),
    computed in the mask's box."""
    out = np.zeros(mask.shape, dtype=np.float32)
    box = _box(mask, 1)
    if box is not None:
        out[box] = ndimage.distance_transform_edt(mask[box], sampling=spacing)
    return out


def _moved(
    mask: BoolArray,
    spacing: Spacing,
    rng: np.random.Generator,
    *,
    bias: float,
    noise: float,
    length: float,
) -> BoolArray:
    """The mask's boundary moved out by ``bias`` mm plus smooth noise of SD ``noise`` mm
    (correlation length ``length`` mm); < 0 moves it in.

    The shift is capped at ``|bias|`` + 5 SD, so only a box that reach around the mask can
    change: the distances are computed there alone (exact, see :func:`_signed_distance`).
    """
    h = min(spacing)
    pad = math.ceil((abs(bias) + 5 * noise) / h) + 2
    box = _box(mask, pad)
    # the field is drawn whether or not there is a mask, so later draws do not depend on it
    first = tuple(slice(0, 1) for _ in mask.shape)
    field = _field(rng, mask.shape, spacing, length, box or first) if noise > 0 else None
    out = np.zeros(mask.shape, dtype=bool)
    if box is None:
        return out
    shift = bias + noise * field if field is not None else np.float32(bias)
    # below the distance from the mask to anything outside the box: nothing there can join
    shift = np.minimum(shift, (pad - 1) * h)
    out[box] = _signed_distance(mask[box], spacing) <= shift
    return out


def _components(mask: BoolArray) -> tuple[npt.NDArray[np.int32], int]:
    """Connected components under full connectivity (26 in 3-D, 8 in 2-D), as lesion-wise
    scores count them (BraTS 2023)."""
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    return np.asarray(labels, dtype=np.int32), int(n)


def _detected(volume_mm3: float, half_mm3: float, rng: np.random.Generator) -> bool:
    """Whether a labeller or model finds a lesion of this volume: half of those of ``half_mm3``,
    a logistic in log volume (about 90% at twice that volume, 10% at half)."""
    p = 1 / (1 + math.exp(-math.log(volume_mm3 / half_mm3) / 0.3))
    return bool(rng.random() < p)


def _ball(shape: Geometry, spacing: Spacing, centre: Sequence[float], radius: float) -> BoolArray:
    pos = _positions(shape, spacing)
    return np.asarray(sum((p - c) ** 2 for p, c in zip(pos, centre, strict=True)) <= radius**2)


def _age_band(rng: np.random.Generator, young_share: float, bands: Sequence[int]) -> int:
    """An adult's age: uniform in [bands[0], bands[1]) with probability ``young_share``, else in
    [bands[1], bands[2]]."""
    if rng.random() < young_share:
        return int(rng.integers(bands[0], bands[1]))
    return int(rng.integers(bands[1], bands[2] + 1))


_SEXES: Final = ("F", "M")


class _People(NamedTuple):
    """Who a world's patients are: id format, sites with their shares, ages, sexes."""

    id_format: str  # e.g. "MF-{:04d}", formatted with the case index
    sites: Mapping[str, float]  # site -> share of the cases
    young_share: float  # share of ages in [ages[0], ages[1])
    ages: tuple[int, int, int]  # youngest, the first age of the older group, oldest
    male_share: float


def _adults(seed: int, n_cases: int, people: _People) -> list[_Case]:
    """Patients with (site, age, sex), each drawn from its own generator (stream 0)."""
    sites = list(people.sites)
    share = list(people.sites.values())
    out = []
    for i in range(n_cases):
        rng = _stream(seed, i, 0)
        site = sites[int(rng.choice(len(sites), p=share))]
        age = _age_band(rng, people.young_share, people.ages)
        sex = _SEXES[int(rng.random() < people.male_share)]
        out.append(_Case(i, people.id_format.format(i), (site, age, sex)))
    return out


# -- the configuration's parts ------------------------------------------------------------------


def _header(preset: str, seed: int) -> str:
    return f"""\
# A synthetic cohort written by segfair.synth.make_cohort(preset="{preset}"); see
# segfair_synth.json for its recipe.
cases = "{TABLE}"
case_id = "case_id"
trusted_ruler = "expert"
seed = {seed}
"""


def _age_groups(edge: int) -> str:
    # ages are whole years; a value equal to an edge falls in the lower group
    return f"""\
[attributes.age_group]
column = "age"
bins = [{edge - 1}]
labels = ["under_{edge}", "{edge}_and_over"]
"""


def _gap(metric: str, by: str, limit: float, structure: str | None = None) -> str:
    line = f'structure = "{structure}"\n' if structure else ""
    return f"""\
[[gates]]
kind = "gap"
metric = "{metric}"
{line}by = "{by}"
model = "trained_on_expert"
ruler = "expert"
max = {limit}
"""
