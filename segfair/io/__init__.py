"""Reading and writing masks: NIfTI (``.nii``, ``.nii.gz``) and NumPy (``.npy``, ``.npz``).

Every mask segfair scores goes through :func:`load_mask`, which turns a file into a :class:`Mask`:
a read-only boolean array in the file's own memory order (Fortran order for NIfTI, C order for
NumPy files) with its voxel spacing (mm) and affine. Everything that can go wrong
with an input file (missing, truncated, not gzip, pickled, too large, a probability map, labels
that are not there, a 4-D series) becomes an :class:`~segfair.errors.InputError` that names the
case, the file and the fix; nothing from nibabel, zlib or the OS escapes raw.

Header first: the shape a file promises is checked against ``max_voxels`` (and against the 2-D/3-D
rule) before any voxel data is read, so a corrupt or hostile header cannot make segfair allocate
terabytes.

Speed: reading a mask costs what decompressing it costs. A NIfTI header is parsed from the file's
first bytes (``nibabel.load`` only for unusual files); the voxels are read with one ``read`` and
inflated in one call into a single buffer that becomes the array (nibabel's streaming read copies
each chunk once more); their Fortran order is kept rather than transposed; and the boolean
foreground is one elementwise pass that keeps the memory order, or no new array at all when the
data are bytes holding only 0 and 1 (the usual uint8 mask), which already are a valid boolean
array. The pass that checks this also finds the bounding box, which the metrics then reuse.
See docs/performance.md.

The fixed texts of the errors are the ``MSG_*`` (format strings, the reason) and ``FIX_*``
constants of :mod:`segfair.io.messages`, re-exported here, so tests and callers can match them
exactly.
"""

from __future__ import annotations

from segfair.io.atomic import atomic_write_text
from segfair.io.files import SUPPORTED_SUFFIXES, content_hash
from segfair.io.geometry import check_geometry, describe_mismatch, geometry_fix, reorient_like
from segfair.io.load import load_mask, read_geometry, read_shape
from segfair.io.mask import Geometry, Mask
from segfair.io.messages import (
    FIX_4D,
    FIX_AFFINE_SPACING,
    FIX_BAD_AFFINE,
    FIX_BAD_LABELS,
    FIX_BAD_SPACING,
    FIX_BAD_THRESHOLD,
    FIX_DTYPE,
    FIX_EMPTY_SHAPE,
    FIX_GZIP_NAMED_NII,
    FIX_LABELS_NOT_FOUND,
    FIX_MISSING,
    FIX_NONFINITE,
    FIX_NOT_A_FILE,
    FIX_NOT_GZIP_BUT_NIFTI,
    FIX_NPY_VERSION,
    FIX_NPZ_KEYS,
    FIX_NPZ_NO_MASK,
    FIX_PICKLED,
    FIX_PROBABILITY,
    FIX_REORIENT,
    FIX_RESAMPLE,
    FIX_SAVE_DTYPE,
    FIX_SAVE_NDIM,
    FIX_SAVE_NPY_GEOMETRY,
    FIX_SPACING_LENGTH,
    FIX_SUFFIX,
    FIX_TOO_FEW_DIMS,
    FIX_TOO_LARGE,
    FIX_UNREADABLE,
    MSG_4D,
    MSG_AFFINE_SPACING,
    MSG_BAD_AFFINE,
    MSG_BAD_LABELS,
    MSG_BAD_SPACING,
    MSG_BAD_THRESHOLD,
    MSG_DTYPE,
    MSG_EMPTY_SHAPE,
    MSG_GEOMETRY,
    MSG_GZIP_NAMED_NII,
    MSG_LABELS_NOT_FOUND,
    MSG_MISSING,
    MSG_NONFINITE,
    MSG_NOT_A_FILE,
    MSG_NOT_GZIP,
    MSG_NOT_REORIENTABLE,
    MSG_NPY_VERSION,
    MSG_NPZ_KEYS,
    MSG_NPZ_NO_MASK,
    MSG_PICKLED,
    MSG_PROBABILITY,
    MSG_SAVE_AFFINE_SPACING,
    MSG_SAVE_DTYPE,
    MSG_SAVE_NDIM,
    MSG_SAVE_NPY_GEOMETRY,
    MSG_SPACING_LENGTH,
    MSG_SUFFIX,
    MSG_TOO_FEW_DIMS,
    MSG_TOO_LARGE,
    MSG_UNREADABLE,
)
from segfair.io.save import save_mask

__all__ = [
    "FIX_4D",
    "FIX_AFFINE_SPACING",
    "FIX_BAD_AFFINE",
    "FIX_BAD_LABELS",
    "FIX_BAD_SPACING",
    "FIX_BAD_THRESHOLD",
    "FIX_DTYPE",
    "FIX_EMPTY_SHAPE",
    "FIX_GZIP_NAMED_NII",
    "FIX_LABELS_NOT_FOUND",
    "FIX_MISSING",
    "FIX_NONFINITE",
    "FIX_NOT_A_FILE",
    "FIX_NOT_GZIP_BUT_NIFTI",
    "FIX_NPY_VERSION",
    "FIX_NPZ_KEYS",
    "FIX_NPZ_NO_MASK",
    "FIX_PICKLED",
    "FIX_PROBABILITY",
    "FIX_REORIENT",
    "FIX_RESAMPLE",
    "FIX_SAVE_DTYPE",
    "FIX_SAVE_NDIM",
    "FIX_SAVE_NPY_GEOMETRY",
    "FIX_SPACING_LENGTH",
    "FIX_SUFFIX",
    "FIX_TOO_FEW_DIMS",
    "FIX_TOO_LARGE",
    "FIX_UNREADABLE",
    "MSG_4D",
    "MSG_AFFINE_SPACING",
    "MSG_BAD_AFFINE",
    "MSG_BAD_LABELS",
    "MSG_BAD_SPACING",
    "MSG_BAD_THRESHOLD",
    "MSG_DTYPE",
    "MSG_EMPTY_SHAPE",
    "MSG_GEOMETRY",
    "MSG_GZIP_NAMED_NII",
    "MSG_LABELS_NOT_FOUND",
    "MSG_MISSING",
    "MSG_NONFINITE",
    "MSG_NOT_A_FILE",
    "MSG_NOT_GZIP",
    "MSG_NOT_REORIENTABLE",
    "MSG_NPY_VERSION",
    "MSG_NPZ_KEYS",
    "MSG_NPZ_NO_MASK",
    "MSG_PICKLED",
    "MSG_PROBABILITY",
    "MSG_SAVE_AFFINE_SPACING",
    "MSG_SAVE_DTYPE",
    "MSG_SAVE_NDIM",
    "MSG_SAVE_NPY_GEOMETRY",
    "MSG_SPACING_LENGTH",
    "MSG_SUFFIX",
    "MSG_TOO_FEW_DIMS",
    "MSG_TOO_LARGE",
    "MSG_UNREADABLE",
    "SUPPORTED_SUFFIXES",
    "Geometry",
    "Mask",
    "atomic_write_text",
    "check_geometry",
    "content_hash",
    "describe_mismatch",
    "geometry_fix",
    "load_mask",
    "read_geometry",
    "read_shape",
    "reorient_like",
    "save_mask",
]
