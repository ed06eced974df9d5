"""Writing masks: :func:`save_mask` (NIfTI, ``.npz``, ``.npy``), atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from segfair.io.atomic import _write_atomically
from segfair.io.files import _supported_suffix, _Where
from segfair.io.header import _diag_affine, _valid_affine, _valid_spacing
from segfair.io.images import _write_image
from segfair.io.itk import _write_itk
from segfair.io.messages import (
    FIX_AFFINE_SPACING,
    FIX_SAVE_DTYPE,
    FIX_SAVE_FORMAT,
    FIX_SAVE_NDIM,
    FIX_SAVE_NPY_GEOMETRY,
    MSG_SAVE_AFFINE_SPACING,
    MSG_SAVE_DTYPE,
    MSG_SAVE_FORMAT,
    MSG_SAVE_NDIM,
    MSG_SAVE_NPY_GEOMETRY,
)

# the suffixes save_mask writes (the others are read only)
_WRITTEN = (".nii.gz", ".nii", ".npz", ".npy", ".mha", ".nrrd", ".png", ".tif", ".tiff")


def save_mask(
    path: str | os.PathLike[str],
    array: NDArray[Any],
    affine: NDArray[Any] | None = None,
    *,
    spacing: Sequence[float] | None = None,
) -> None:
    """Write a 2-D or 3-D mask; the format follows the suffix.

    ``.mha`` and ``.nrrd`` (extra ``itk``) are written as compressed uint8 with the affine's
    geometry (ITK's LPS space), so they read back as the same array, spacing and affine.
    ``.png`` (2-D) and ``.tif`` (extra ``images``) are written as uint8 greyscale, with the
    spacing as the pixel size when one is given (no orientation or origin: a non-diagonal
    affine is refused). See docs/formats.md.

    NIfTI (``.nii``, ``.nii.gz``) is written as uint8 with the affine (or ``diag(spacing)``) as
    both qform and sform, code 1 (scanner), and units mm, so any NIfTI reader agrees on the
    geometry. NIfTI stores the affine and voxel sizes as float32, so they read back at float32
    precision. ``.npz`` stores ``mask`` (dtype kept), ``spacing`` and ``affine`` (float64, exact),
    compressed. ``.npy`` stores the array alone and therefore refuses an affine or spacing.
    The file is written to a temporary name and renamed, so a reader never sees half a file.

    Given only ``affine``, the spacing is its column lengths; given only ``spacing``, the affine is
    ``diag(spacing)``; given both, they must agree.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from segfair.io import load_mask
    >>> p = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
    >>> save_mask(p, np.ones((2, 2, 2), bool), np.diag([-0.5, 0.5, 2.0, 1.0]))
    >>> load_mask(p).spacing
    (0.5, 0.5, 2.0)
    """
    path_str = os.fspath(path)
    where = _Where(None, path_str)
    data = np.asarray(array)
    if data.ndim not in (2, 3):
        where.fail(MSG_SAVE_NDIM.format(shape=data.shape), FIX_SAVE_NDIM)
    suffix = _supported_suffix(path_str, where)
    if suffix not in _WRITTEN:
        where.fail(MSG_SAVE_FORMAT.format(suffix=suffix), FIX_SAVE_FORMAT)
    if suffix == ".npy":
        if affine is not None or spacing is not None:
            where.fail(MSG_SAVE_NPY_GEOMETRY, FIX_SAVE_NPY_GEOMETRY)
        _write_atomically(path_str, lambda tmp: np.save(tmp, data, allow_pickle=False))
        return

    ndim = data.ndim
    if affine is not None:
        aff = _valid_affine(np.asarray(affine), "the affine argument", where)
        implied = tuple(float(v) for v in np.linalg.norm(aff[:3, :ndim], axis=0))
        if spacing is not None:
            given = _valid_spacing(spacing, ndim, "the spacing argument", where)
            if not np.allclose(implied, given, rtol=1e-5, atol=1e-6):
                where.fail(
                    MSG_SAVE_AFFINE_SPACING.format(implied=implied, spacing=given),
                    FIX_AFFINE_SPACING,
                )
        voxel_sizes = _valid_spacing(implied, ndim, "the `affine` array", where)
    else:
        voxel_sizes = (
            _valid_spacing(spacing, ndim, "the spacing argument", where)
            if spacing is not None
            else (1.0,) * ndim
        )
        aff = _diag_affine(voxel_sizes)

    if suffix == ".npz":

        def write_npz(tmp: str) -> None:
            np.savez_compressed(
                tmp, mask=data, spacing=np.asarray(voxel_sizes, dtype=np.float64), affine=aff
            )

        _write_atomically(path_str, write_npz)
        return

    if data.dtype.kind == "b":
        voxels = data.astype(np.uint8)
    elif data.dtype.kind in "iu":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo < 0 or hi > 255:
            where.fail(MSG_SAVE_DTYPE.format(what=f"labels from {lo} to {hi}"), FIX_SAVE_DTYPE)
        voxels = data.astype(np.uint8)
    else:
        where.fail(MSG_SAVE_DTYPE.format(what=f"{data.dtype} values"), FIX_SAVE_DTYPE)
    if suffix in (".mha", ".nrrd"):
        _write_atomically(path_str, lambda tmp: _write_itk(tmp, voxels, aff, where))
        return
    if suffix in (".png", ".tif", ".tiff"):
        pixel: tuple[float, ...] | None = (
            None if affine is None and spacing is None else voxel_sizes
        )
        _write_atomically(path_str, lambda tmp: _write_image(tmp, voxels, aff, pixel, where))
        return
    img = nib.Nifti1Image(voxels, aff, dtype=np.uint8)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    img.header.set_xyzt_units("mm")
    _write_atomically(path_str, lambda tmp: nib.save(img, tmp))
