"""Reading mask files: :func:`load_mask`, :func:`load_labels`; header only:
:func:`read_geometry` (:func:`read_geometry_and_hash`), :func:`read_shape`."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from segfair.io.dicomseg import _dicom_seg_header
from segfair.io.files import _check_file, _unreadable, _Where
from segfair.io.header import _checked_geometry, _Header, _mask_shape
from segfair.io.images import _png_header, _tiff_header
from segfair.io.itk import _itk_header, _seg_nrrd_header
from segfair.io.labels import _checked_label_map, _normalise_labels, _select_foreground
from segfair.io.mask import Geometry, LabelMap, Mask
from segfair.io.messages import FIX_BAD_THRESHOLD, MSG_BAD_THRESHOLD
from segfair.io.nifti import _nifti_header
from segfair.io.npy import _npy_header, _npz_header

# one reader per suffix of SUPPORTED_SUFFIXES; the formats of the extras import their package
# when a header is read, so a missing extra is refused at validation, naming the fix
_HEADER_READERS: dict[str, Callable[[str, _Where], _Header]] = {
    ".nii.gz": _nifti_header,
    ".nii": _nifti_header,
    ".npy": _npy_header,
    ".npz": _npz_header,
    ".mha": _itk_header,
    ".mhd": _itk_header,
    ".seg.nrrd": _seg_nrrd_header,
    ".nrrd": _itk_header,
    ".dcm": _dicom_seg_header,
    ".png": _png_header,
    ".tif": _tiff_header,
    ".tiff": _tiff_header,
}


def read_geometry(
    path: str | os.PathLike[str],
    *,
    case_id: str | None = None,
    max_voxels: int = 1_000_000_000,
    spacing: Sequence[float] | None = None,
) -> Geometry:
    """The grid a mask file promises (shape, spacing, affine), from its header only.

    Applies the same checks as :func:`load_mask` that need no voxel data (size limit, 2-D/3-D,
    dtype, spacing), so a whole cohort can be validated up front cheaply.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from segfair.io import save_mask
    >>> p = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
    >>> save_mask(p, np.zeros((4, 5, 6), bool), spacing=(0.5, 0.5, 2.0))
    >>> read_geometry(p).shape
    (4, 5, 6)
    """
    return read_geometry_and_hash(path, case_id=case_id, max_voxels=max_voxels, spacing=spacing)[0]


def read_geometry_and_hash(
    path: str | os.PathLike[str],
    *,
    case_id: str | None = None,
    max_voxels: int = 1_000_000_000,
    spacing: Sequence[float] | None = None,
) -> tuple[Geometry, str | None]:
    """:func:`read_geometry`, and the file's :func:`~segfair.io.content_hash` when reading the
    header took the whole file (a small PNG mask): one read for both (else None).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from segfair.io import save_mask
    >>> p = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
    >>> save_mask(p, np.zeros((4, 5, 6), bool))
    >>> geometry, digest = read_geometry_and_hash(p)
    >>> geometry.shape, digest
    ((4, 5, 6), None)
    """
    path_str = os.fspath(path)
    _, header, (shape, mask_spacing, affine) = _checked_header(
        path_str, case_id, max_voxels, spacing
    )
    digest = None if header.whole is None else hashlib.sha256(header.whole).hexdigest()
    return Geometry(shape, mask_spacing, affine, path_str), digest


def load_mask(
    path: str | os.PathLike[str],
    *,
    case_id: str | None = None,
    labels: int | Collection[int] = 1,
    threshold: float | None = None,
    max_voxels: int = 1_000_000_000,
    spacing: Sequence[float] | None = None,
) -> Mask:
    """Read a mask file into a boolean :class:`Mask`.

    Parameters
    ----------
    path
        A ``.nii``, ``.nii.gz``, ``.npy`` or ``.npz`` file. An ``.npz`` holds the mask under the
        key ``mask`` (or as its only array besides the geometry), optionally with ``spacing``
        (one value per axis) and/or ``affine`` (4x4). With the optional extras also ``.mha``,
        ``.mhd``, ``.nrrd``, ``.seg.nrrd`` (``itk``), DICOM-SEG ``.dcm`` (``dicom``), ``.png``,
        ``.tif``/``.tiff`` (``images``): see docs/formats.md.
    case_id
        Named in every error.
    labels
        Integer label(s) that form the foreground of a label map (``np.isin``); in a DICOM-SEG or
        ``.seg.nrrd``, the segments (by number) whose union is the foreground. If the mask holds
        non-zero values but none of these, that is an error, never a silently empty mask; an
        all-zero mask is a legitimate empty mask.
    threshold
        For floating-point data only (and fractional DICOM-SEG, as value / maximum):
        foreground = ``value >= threshold``. Without it, float data
        must hold whole numbers (0/1 or labels); anything else looks like a probability map and
        is refused. Integer and boolean data ignore it (labels are categories, not levels).
    max_voxels
        Refuse, before reading any voxel data, a file whose header promises more voxels.
    spacing
        Voxel size (mm) per axis for files that carry no geometry (NumPy files, a PNG without
        ``pHYs``, a TIFF without resolution; default 1.0 per axis). Geometry stored in the file
        (NIfTI or ITK header, ``.npz`` ``spacing``/``affine``, PNG/TIFF pixel size) wins.

    Returns
    -------
    Mask
        2-D or 3-D; trailing singleton axes beyond the third are dropped.

    Raises
    ------
    InputError
        The file is missing, unsupported, unreadable, too large, not 2-D/3-D, not a mask (NaN,
        probabilities without ``threshold``), or holds none of the selected labels.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from segfair.io import save_mask
    >>> d = tempfile.mkdtemp()
    >>> save_mask(os.path.join(d, "a.nii.gz"), np.ones((2, 2, 2), bool), spacing=(0.5, 0.5, 2.0))
    >>> m = load_mask(os.path.join(d, "a.nii.gz"), case_id="A1")
    >>> int(m.array.sum()), m.spacing
    (8, (0.5, 0.5, 2.0))
    """
    path_str = os.fspath(path)
    where = _Where(case_id, path_str)
    label_tuple = _normalise_labels(labels, where)
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            where.fail(MSG_BAD_THRESHOLD.format(threshold=threshold), FIX_BAD_THRESHOLD)
        if not math.isfinite(threshold):
            where.fail(MSG_BAD_THRESHOLD.format(threshold=threshold), FIX_BAD_THRESHOLD)
    suffix, header, (shape, mask_spacing, affine) = _checked_header(
        path_str, case_id, max_voxels, spacing
    )
    if header.select is not None:
        # segments that may overlap (DICOM-SEG, a layered .seg.nrrd): united per segment, never
        # through one label map
        foreground = header.select(label_tuple, threshold)
    else:
        data = _voxels(header, shape, suffix, where)
        foreground = _select_foreground(data, label_tuple, threshold, where)
    return Mask(foreground, mask_spacing, affine, path_str)


def _checked_header(
    path_str: str, case_id: str | None, max_voxels: int, spacing: Sequence[float] | None
) -> tuple[str, _Header, tuple[tuple[int, ...], tuple[float, ...], NDArray[np.float64]]]:
    """The file's suffix, its header and the geometry it promises, checked (no voxel data)."""
    where = _Where(case_id, path_str)
    suffix = _check_file(path_str, where)
    header = _HEADER_READERS[suffix](path_str, where)
    return suffix, header, _checked_geometry(header, max_voxels, spacing, where)


def _voxels(header: _Header, shape: tuple[int, ...], suffix: str, where: _Where) -> NDArray[Any]:
    """The voxel data a checked header promises (2-D or 3-D, the file's memory order)."""
    data = header.read()
    if data.shape != header.shape:  # a header that lies about its own data
        _unreadable(
            ValueError(f"data shape {data.shape} != header {header.shape}"),
            suffix,
            "its original writer",
            where,
        )
    # Drop the trailing singleton axes by indexing: always a view, whatever the memory order.
    squeeze: tuple[Any, ...] = (Ellipsis, *([0] * (data.ndim - len(shape))))
    return data[squeeze]


def load_labels(
    path: str | os.PathLike[str],
    *,
    case_id: str | None = None,
    max_voxels: int = 1_000_000_000,
    spacing: Sequence[float] | None = None,
) -> LabelMap:
    """Read a label map file into a :class:`LabelMap` (its values as read, with geometry).

    The same files, header checks and refusals as :func:`load_mask` (missing, unreadable, too
    large, not 2-D/3-D, NaN or infinite values, a dtype that is not numeric), and one more: a
    float map must hold whole numbers (a probability map has no labels; threshold it into one
    structure with :func:`load_mask` instead). Which labels it holds is checked when structures
    are selected from it (:func:`segfair.io.select_structures`), which knows the labels wanted.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(p, np.array([[0, 1], [2, 3]], np.uint8))
    >>> m = load_labels(p, case_id="A1")
    >>> m.array.tolist(), m.spacing
    ([[0, 1], [2, 3]], (1.0, 1.0))
    """
    path_str = os.fspath(path)
    where = _Where(case_id, path_str)
    suffix, header, (shape, map_spacing, affine) = _checked_header(
        path_str, case_id, max_voxels, spacing
    )
    data = _voxels(header, shape, suffix, where)
    return LabelMap(_checked_label_map(data, where), map_spacing, affine, path_str)


def read_shape(path: str | os.PathLike[str], *, case_id: str | None = None) -> tuple[int, ...]:
    """Shape of the mask in a file, from its header only (no voxel data is read).

    The shape is the one :func:`load_mask` returns (trailing singleton axes beyond the third
    dropped), and the same dimension rules apply, so a cohort can be validated up front cheaply.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(p, np.zeros((4, 5, 6, 1), np.uint8))
    >>> read_shape(p)
    (4, 5, 6)
    """
    path_str = os.fspath(path)
    where = _Where(case_id, path_str)
    suffix = _check_file(path_str, where)
    return _mask_shape(_HEADER_READERS[suffix](path_str, where).shape, where)
