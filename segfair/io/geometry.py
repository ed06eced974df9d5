"""Comparing voxel grids: :func:`check_geometry`, :func:`describe_mismatch`, :func:`geometry_fix`,
and the exact axis reordering :func:`reorient_like`."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np
from nibabel import orientations as nib_ornt
from numpy.typing import NDArray

from segfair.errors import GeometryError
from segfair.io.mask import Geometry, LabelMap, Mask, _describe
from segfair.io.messages import (
    FIX_CROPPED,
    FIX_REORIENT,
    FIX_RESAMPLE,
    MSG_GEOMETRY,
    MSG_NOT_REORIENTABLE,
)

_Grid = TypeVar("_Grid", bound=Mask | LabelMap)


def describe_mismatch(
    a: Mask | LabelMap | Geometry,
    b: Mask | LabelMap | Geometry,
    *,
    atol: float = 1e-3,
    allow_reorient: bool = False,
) -> str | None:
    """Why two grids differ (with both geometries), or None when they agree.

    With ``allow_reorient``, grids that differ only by axis order and flips agree.
    """
    difference = _difference(a.shape, a.affine, b.shape, b.affine, atol)
    if difference is None:
        return None
    if allow_reorient and _reorientable(b, a, atol):
        return None
    if _cropped(b, a, atol):
        return None  # a cropped segmentation file: evaluated padded onto a's grid (uncrop_like)
    return f"{difference}: {_describe(a)}; {_describe(b)}"


def _reorientable(
    mask: Mask | LabelMap | Geometry, target: Mask | LabelMap | Geometry, atol: float
) -> bool:
    plan = _reorientation(mask, target)
    return (
        plan is not None
        and _difference(plan[1], plan[2], _target_shape3(target), target.affine, atol) is None
    )


def geometry_fix(
    a: Mask | LabelMap | Geometry, b: Mask | LabelMap | Geometry, *, atol: float = 1e-3
) -> str:
    """The fix for two grids that differ: reorient (axis order/flips only), export on the full
    grid (one is a crop of the other), or resample."""
    if _reorientable(b, a, atol):
        return FIX_REORIENT
    return FIX_CROPPED if _cropped(b, a, atol) or _cropped(a, b, atol) else FIX_RESAMPLE


# the formats whose writers commonly crop a mask to its segments
_CROPPING_SUFFIXES = (".dcm", ".seg.nrrd")


def _cropped(
    mask: Mask | LabelMap | Geometry, target: Mask | LabelMap | Geometry, atol: float
) -> bool:
    """Whether ``mask`` is a segmentation file whose grid is a block of ``target``'s: the same
    voxel axes, its first voxel on a voxel of ``target``, and all of it inside (what a SEG
    without its empty frames is)."""
    if mask.path is None or not mask.path.lower().endswith(_CROPPING_SUFFIXES):
        return False
    if len(mask.shape) != len(target.shape) or mask.shape == target.shape:
        return False
    if not np.allclose(mask.affine[:3, :3], target.affine[:3, :3], rtol=0, atol=atol):
        return False
    try:
        start = np.linalg.solve(target.affine, mask.affine[:, 3])[: len(mask.shape)]
    except np.linalg.LinAlgError:
        return False
    whole = np.round(start)
    return bool(
        np.allclose(start, whole, rtol=0, atol=1e-3)
        and np.all(whole >= 0)
        and np.all(whole + np.asarray(mask.shape) <= np.asarray(target.shape))
    )


def _difference(
    a_shape: tuple[int, ...],
    a_aff: NDArray[np.float64],
    b_shape: tuple[int, ...],
    b_aff: NDArray[np.float64],
    atol: float,
) -> str | None:
    """Why two grids differ, or None when they agree within ``atol`` (mm)."""
    reasons = []
    if a_shape != b_shape:
        reasons.append(f"shapes {a_shape} and {b_shape} differ")
    worst = float(np.max(np.abs(a_aff - b_aff)))
    if not worst <= atol:
        reasons.append(f"affines differ by up to {worst:.4g} mm, tolerance {atol:g} mm")
    return "; ".join(reasons) or None


def _reorientation(
    mask: Mask | LabelMap | Geometry, target: Mask | LabelMap | Geometry
) -> tuple[NDArray[np.float64], tuple[int, ...], NDArray[np.float64]] | None:
    """The axis permutation/flips taking ``mask`` towards ``target``'s voxel order.

    Returns the orientation transform, the resulting (3-D) shape and affine, or None when the
    affines have no axis-aligned correspondence (degenerate axes). Whether the result actually
    lands on the target grid is for the caller to check.
    """
    if len(mask.shape) != len(target.shape):
        return None
    shape3 = mask.shape + (1,) * (3 - len(mask.shape))  # 2-D masks get their implicit 3rd axis
    try:
        transform = nib_ornt.ornt_transform(
            nib_ornt.io_orientation(mask.affine), nib_ornt.io_orientation(target.affine)
        )
        affine = mask.affine @ nib_ornt.inv_ornt_aff(transform, shape3)
    except ValueError:
        return None
    new_shape = [0, 0, 0]
    for axis, (new_axis, _) in enumerate(transform):
        new_shape[int(new_axis)] = shape3[axis]
    return transform, tuple(new_shape), affine


def _target_shape3(mask: Mask | LabelMap | Geometry) -> tuple[int, ...]:
    return mask.shape + (1,) * (3 - len(mask.shape))


def uncrop_like(
    mask: _Grid, target: Mask | LabelMap | Geometry, *, atol: float = 1e-3
) -> _Grid | None:
    """``mask`` (a mask or a label map) padded with background onto ``target``'s grid, when it
    is a segmentation file (DICOM-SEG, ``.seg.nrrd``) whose grid is a block of ``target``'s; None
    otherwise.

    Exact, no interpolation: a DICOM-SEG may omit frames with no segmented pixel (highdicom and
    dcmqi do by default), and 3D Slicer may save a segmentation cropped to its segments, so what
    lies outside the block is background by the format's own rule. The block must share
    ``target``'s voxel axes and spacing (within ``atol`` mm) and start on one of its voxels.

    Examples
    --------
    >>> import numpy as np
    >>> crop = Mask(np.ones((2, 2, 1), bool), (1.0, 1.0, 1.0), np.eye(4), "seg.dcm")
    >>> full = Mask(np.zeros((2, 2, 3), bool), (1.0, 1.0, 1.0), np.eye(4))
    >>> uncrop_like(crop, full).array.sum(axis=(0, 1)).tolist()
    [4, 0, 0]
    """
    if not _cropped(mask, target, atol):
        return None
    start = np.round(np.linalg.solve(target.affine, mask.affine[:, 3])[: len(mask.shape)])
    block = tuple(slice(int(s), int(s) + n) for s, n in zip(start, mask.shape, strict=True))
    fortran = mask.array.ndim > 1 and mask.array.flags.f_contiguous
    array = np.zeros(target.shape, dtype=mask.array.dtype, order="F" if fortran else "C")
    array[block] = mask.array
    return type(mask)(array, mask.spacing, target.affine, mask.path)


def check_geometry(
    pred: Mask | LabelMap, ref: Mask | LabelMap, *, case_id: str | None = None, atol: float = 1e-3
) -> None:
    """Refuse a prediction and a reference that are not on the same voxel grid.

    Same grid means equal shapes and affines equal elementwise within ``atol`` (absolute, mm):
    a relative tolerance would loosen with the distance of the origin from the scanner centre.

    Raises
    ------
    GeometryError
        Naming the case and both files and showing both geometries (shape, spacing, orientation
        codes, origin). When the prediction can be reordered onto the reference grid by axis
        permutations and flips alone, the fix is ``reorient = true``; otherwise resampling.

    Examples
    --------
    >>> import numpy as np
    >>> a = Mask(np.zeros((2, 2, 2), bool), (1.0, 1.0, 1.0), np.eye(4))
    >>> check_geometry(a, a, case_id="A1")  # same grid: nothing happens
    """
    difference = _difference(pred.shape, pred.affine, ref.shape, ref.affine, atol)
    if difference is None:
        return
    raise GeometryError(
        MSG_GEOMETRY.format(difference=difference, pred=_describe(pred), ref=_describe(ref)),
        case_id=case_id,
        path=pred.path,
        fix=geometry_fix(ref, pred, atol=atol),
    )


def reorient_like(
    mask: _Grid, target: Mask | LabelMap, *, case_id: str | None = None, atol: float = 1e-3
) -> _Grid:
    """Reorder ``mask``'s voxels onto ``target``'s grid by axis permutations and flips only.

    Exact (no interpolation): each voxel moves to where the same world position sits in the
    target's voxel order. The result has the target's affine and the mask's spacing permuted to
    the new axis order.

    Raises
    ------
    GeometryError
        When permutations and flips are not enough (a different spacing, origin, shape or a
        rotation): segfair does not resample.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((2, 3, 4), bool); a[0, 1, 2] = True
    >>> ref = Mask(a, (1.0, 1.0, 1.0), np.eye(4))
    >>> flipped = np.diag([-1.0, 1.0, 1.0, 1.0]); flipped[0, 3] = 1.0  # x reversed, same world
    >>> pred = Mask(a[::-1], (1.0, 1.0, 1.0), flipped)
    >>> bool((reorient_like(pred, ref).array == a).all())
    True
    """
    if _difference(mask.shape, mask.affine, target.shape, target.affine, atol) is None:
        return mask
    plan = _reorientation(mask, target)
    difference = "the axes have no axis-aligned correspondence"
    if plan is not None:
        transform, shape3, affine = plan
        difference = _difference(shape3, affine, _target_shape3(target), target.affine, atol) or ""
        if not difference:
            ndim = mask.array.ndim
            array3 = mask.array.reshape(_target_shape3(mask))
            moved = np.asarray(nib_ornt.apply_orientation(array3, transform)).reshape(target.shape)
            # Flips and permutations are strided views; copy in the order closest to their memory
            # layout (a flipped Fortran array stays Fortran: no transposing copy).
            strides = [abs(s) for s in moved.strides]
            fortran = moved.ndim > 1 and strides[0] < strides[-1]
            array = np.array(moved, order="F" if fortran else "C")
            spacing = [1.0] * ndim
            for axis in range(ndim):
                spacing[int(transform[axis, 0])] = mask.spacing[axis]
            # a Mask stays a Mask, a LabelMap a LabelMap (same fields)
            return replace(mask, array=array, spacing=tuple(spacing), affine=target.affine)
    raise GeometryError(
        MSG_NOT_REORIENTABLE.format(
            difference=difference, mask=_describe(mask), target=_describe(target)
        ),
        case_id=case_id,
        path=mask.path,
        fix=FIX_RESAMPLE,
    )
