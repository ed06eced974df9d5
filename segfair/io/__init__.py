"""Reading and writing masks: NIfTI (``.nii``, ``.nii.gz``) and NumPy (``.npy``, ``.npz``); with
the optional extras also ITK (``.mha``, ``.mhd``, ``.nrrd``, ``.seg.nrrd``), DICOM-SEG (``.dcm``)
and images (``.png``, ``.tif``): see docs/formats.md.

Every binary mask segfair scores goes through :func:`load_mask` (label maps of several named
structures: :func:`load_labels`, :func:`select_structures`), which turns a file into a
:class:`Mask`: a read-only boolean array in the file's own memory order (Fortran order for
NIfTI, C order for NumPy files) with its voxel spacing (mm) and affine. Everything that can go wrong
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

from segfair.io import messages
from segfair.io.atomic import atomic_write_bytes, atomic_write_text
from segfair.io.files import SUPPORTED_SUFFIXES, content_hash, data_files, read_regular_text
from segfair.io.geometry import (
    check_geometry,
    describe_mismatch,
    geometry_fix,
    reorient_like,
    uncrop_like,
)
from segfair.io.load import (
    load_labels,
    load_mask,
    read_geometry,
    read_geometry_and_hash,
    read_shape,
)
from segfair.io.mask import Geometry, LabelMap, Mask
from segfair.io.messages import *  # noqa: F403  (the MSG_*/FIX_* texts: messages.__all__)
from segfair.io.save import save_mask
from segfair.io.structures import select_structures

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Geometry",
    "LabelMap",
    "Mask",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_geometry",
    "content_hash",
    "data_files",
    "describe_mismatch",
    "geometry_fix",
    "load_labels",
    "load_mask",
    "read_geometry",
    "read_geometry_and_hash",
    "read_regular_text",
    "read_shape",
    "reorient_like",
    "save_mask",
    "select_structures",
    "uncrop_like",
]
__all__ += messages.__all__
