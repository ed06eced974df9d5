"""What a file's header promises before any voxel data is read, checked: shape, spacing, affine."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _Where
from segfair.io.messages import (
    FIX_4D,
    FIX_AFFINE_SPACING,
    FIX_BAD_AFFINE,
    FIX_BAD_SPACING,
    FIX_DTYPE,
    FIX_EMPTY_SHAPE,
    FIX_NIFTI_SPACING,
    FIX_SPACING_LENGTH,
    FIX_TOO_FEW_DIMS,
    FIX_TOO_LARGE,
    MSG_4D,
    MSG_AFFINE_SPACING,
    MSG_BAD_AFFINE,
    MSG_BAD_SPACING,
    MSG_DTYPE,
    MSG_EMPTY_SHAPE,
    MSG_NIFTI_SPACING,
    MSG_SPACING_LENGTH,
    MSG_TOO_FEW_DIMS,
    MSG_TOO_LARGE,
)

_NIFTI = "the NIfTI header"
# ITK's and DICOM's world is LPS, nibabel's NIfTI affine RAS: negate the first two world axes
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_LPS_RAS.flags.writeable = False


@dataclass(slots=True)
class _Header:
    """What a file promises before any voxel data is read."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any] | None  # None when only reading the data tells (NIfTI scaling)
    spacing: tuple[float, ...] | None  # None: the file holds no spacing
    spacing_source: str
    affine: NDArray[np.float64] | None  # None: the file holds no affine
    affine_source: str
    read: Callable[[], NDArray[Any]]  # the voxel data, in the file's memory order
    # NIfTI: pixdim as stored, before nibabel repairs it (a 0 becomes 1 mm, a negative its
    # absolute value) and which form (sform, qform) the affine came from
    raw_spacing: tuple[float, ...] | None = None
    affine_form: str = "affine"
    # Formats whose labels are segments that may overlap (DICOM-SEG, a layered .seg.nrrd): the
    # foreground of the selected labels (and threshold), united segment by segment, so that no
    # overlapping voxel is lost; ``read`` then gives a label map only when no segments overlap.
    select: Callable[[tuple[int, ...], float | None], NDArray[np.bool_]] | None = None
    # the file's bytes, when reading the header took all of them (a small PNG)
    whole: bytes | None = None


def _mask_shape(shape: tuple[int, ...], where: _Where) -> tuple[int, ...]:
    """The 2-D or 3-D shape of the mask: trailing singleton axes beyond the third dropped."""
    if len(shape) < 2:
        where.fail(MSG_TOO_FEW_DIMS.format(ndim=len(shape), shape=shape), FIX_TOO_FEW_DIMS)
    if len(shape) > 3:
        volumes = math.prod(shape[3:])
        if volumes != 1:
            where.fail(MSG_4D.format(ndim=len(shape), volumes=volumes, shape=shape), FIX_4D)
        shape = shape[:3]
    if min(shape) <= 0:
        where.fail(MSG_EMPTY_SHAPE.format(shape=shape), FIX_EMPTY_SHAPE)
    return shape


def _valid_spacing(
    spacing: Sequence[float], ndim: int, source: str, where: _Where
) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        where.fail(MSG_BAD_SPACING.format(spacing=spacing, source=source), FIX_BAD_SPACING[source])
    if len(values) != ndim:
        where.fail(
            MSG_SPACING_LENGTH.format(spacing=values, source=source, n=len(values), ndim=ndim),
            FIX_SPACING_LENGTH,
        )
    if not all(math.isfinite(s) and s > 0 for s in values):
        where.fail(MSG_BAD_SPACING.format(spacing=values, source=source), FIX_BAD_SPACING[source])
    return values


def _valid_affine(affine: NDArray[Any], source: str, where: _Where) -> NDArray[np.float64]:
    ok = (
        affine.shape == (4, 4)
        and affine.dtype.kind in "iuf"
        and bool(np.all(np.isfinite(affine)))
        and np.array_equal(affine[3], [0, 0, 0, 1])
    )
    if not ok:
        where.fail(MSG_BAD_AFFINE.format(source=source), FIX_BAD_AFFINE)
    return np.asarray(affine, dtype=np.float64)


def _diag_affine(spacing: Sequence[float]) -> NDArray[np.float64]:
    # A 2-D mask gets a unit third axis so that the affine stays invertible.
    return np.diag([*spacing, *([1.0] * (3 - len(spacing))), 1.0]).astype(np.float64)


def _geometry(
    header: _Header, ndim: int, spacing_arg: Sequence[float] | None, where: _Where
) -> tuple[tuple[float, ...], NDArray[np.float64]]:
    if header.spacing is not None:
        # The file's own geometry wins over the argument: it travels with the voxels.
        zooms = header.spacing
        if header.spacing_source == _NIFTI:
            zooms = zooms[:ndim]  # zooms also cover squeezed trailing axes (and time)
            if header.raw_spacing is not None:
                # refuse what the library silently repaired (0 → 1 mm, −0.7 → 0.7 mm)
                _valid_spacing(header.raw_spacing[:ndim], ndim, _NIFTI, where)
        elif len(zooms) > ndim and all(z == 1 for z in zooms[ndim:]):
            zooms = zooms[:ndim]
        spacing = _valid_spacing(zooms, ndim, header.spacing_source, where)
    elif spacing_arg is not None:
        spacing = _valid_spacing(spacing_arg, ndim, "the spacing argument", where)
    else:
        spacing = (1.0,) * ndim
    if header.affine is not None:
        affine = _valid_affine(header.affine, header.affine_source, where)
        if header.spacing_source == _NIFTI:
            # one source of truth: the voxel sizes pixdim states must be the ones the affine
            # (sform or qform) places the voxels at; float32 storage rounds at ~1e-7
            implied = np.linalg.norm(affine[:3, :ndim], axis=0)
            if not np.allclose(implied, spacing, rtol=1e-3, atol=1e-4):
                where.fail(
                    MSG_NIFTI_SPACING.format(
                        spacing=tuple(round(float(v), 6) for v in spacing),
                        form=header.affine_form,
                        implied=tuple(round(float(v), 6) for v in implied),
                    ),
                    FIX_NIFTI_SPACING,
                )
        if header.spacing_source == "the `spacing` array":
            implied = np.linalg.norm(affine[:3, :ndim], axis=0)
            if not np.allclose(implied, spacing, rtol=1e-5, atol=1e-6):
                where.fail(
                    MSG_AFFINE_SPACING.format(
                        implied=tuple(round(float(v), 6) for v in implied), spacing=spacing
                    ),
                    FIX_AFFINE_SPACING,
                )
    else:
        affine = _diag_affine(spacing)
    return spacing, affine


def _checked_geometry(
    header: _Header, max_voxels: int, spacing: Sequence[float] | None, where: _Where
) -> tuple[tuple[int, ...], tuple[float, ...], NDArray[np.float64]]:
    """Shape, spacing and affine a header promises, refused when too large or not a mask."""
    shape = _mask_shape(header.shape, where)
    voxels = math.prod(header.shape)  # Python ints: no overflow for a hostile header
    if voxels > max_voxels:
        where.fail(
            MSG_TOO_LARGE.format(voxels=voxels, shape=header.shape, limit=max_voxels),
            FIX_TOO_LARGE,
        )
    if header.dtype is not None and header.dtype.kind not in "biuf":
        where.fail(MSG_DTYPE.format(dtype=header.dtype), FIX_DTYPE)
    mask_spacing, affine = _geometry(header, len(shape), spacing, where)
    return shape, mask_spacing, affine
