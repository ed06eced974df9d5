"""Reading NIfTI headers and voxels (``.nii``, ``.nii.gz``): a quick path, nibabel for the rest."""

from __future__ import annotations

import functools
import io as _stdio
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from numpy.typing import NDArray

from segfair.io.files import _READ_ERRORS, _unreadable, _Where
from segfair.io.header import _NIFTI, _Header
from segfair.io.inflate import _GZIP_MAGIC, _gzip_inflater, _inflate_at_once


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where and how a NIfTI file stores its voxels."""

    shape: tuple[int, ...]
    dtype: Any
    offset: int
    slope: float | None
    inter: float | None


def _nifti_header(path: str, where: _Where) -> _Header:
    check = "nibabel.load(path).get_fdata()"
    quick = _quick_nifti_header(path)
    layout: _Layout | None
    raw_pixdim: tuple[float, ...] | None = None
    if quick is not None:
        header, layout, raw_pixdim = quick
        shape_of: Callable[[], Any] = header.get_data_shape
        affine_of: Callable[[], Any] = header.get_best_affine  # = image.affine of a loaded file
    else:
        try:
            # mmap=False: the whole volume is read anyway, and a memory map of a truncated file
            # fails later (or with SIGBUS), outside the error handling here.
            img = nib.load(path, mmap=False)
        except _READ_ERRORS as error:
            _unreadable(error, "NIfTI", check, where)
        if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
            _unreadable(
                TypeError(f"nibabel read it as {type(img).__name__}"), "NIfTI", check, where
            )
        header = img.header
        # The image's header is a copy that nibabel updates; its data proxy keeps the file's own
        # vox_offset (which extensions move), dtype and scaling.
        proxy = img.dataobj
        layout = (
            _Layout(proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
            if isinstance(proxy, ArrayProxy)
            else None
        )
        shape_of, affine_of = (lambda: img.shape), (lambda: img.affine)
        raw_pixdim = _raw_pixdim(path, type(header))
    try:
        shape = tuple(int(n) for n in shape_of())
        zooms = tuple(float(z) for z in header.get_zooms())
        affine = np.asarray(affine_of(), dtype=np.float64)
    except _READ_ERRORS as error:
        _unreadable(error, "NIfTI", check, where)

    def read() -> NDArray[Any]:
        try:
            data = None if layout is None else _read_nifti_voxels(path, layout)
            if data is not None:
                return data
            # asanyarray(dataobj), not get_fdata(): keeps the on-disk dtype (uint8 stays uint8)
            # instead of a float64 copy 8x the size. Scaled data (scl_slope) comes back as float.
            full = nib.load(path, mmap=False)
            if not isinstance(full, nib.Nifti1Image):  # the file changed since its header was read
                raise ImageFileError(f"nibabel read it as {type(full).__name__}")
            return np.asanyarray(full.dataobj)
        except _READ_ERRORS as error:
            _unreadable(error, "NIfTI", check, where)

    form = _affine_form(header)
    return _Header(shape, None, zooms, _NIFTI, affine, _NIFTI, read, raw_pixdim, form)


def _affine_form(header: Any) -> str:
    """Which part of the header the affine comes from (nibabel's get_best_affine order)."""
    try:
        if int(header["sform_code"]) > 0:
            return "sform"
        if int(header["qform_code"]) > 0:
            return "qform"
    except (KeyError, TypeError, ValueError):
        pass
    return "default affine"


def _raw_pixdim(path: str, klass: type[nib.Nifti1Header]) -> tuple[float, ...] | None:
    """pixdim[1:] as the file stores it (nibabel.load has already repaired its copy)."""
    try:
        with nib.openers.ImageOpener(path) as f:
            raw = klass.from_fileobj(f, check=False)
        return tuple(float(v) for v in raw["pixdim"][1:])
    except Exception:  # the full load already succeeded: its repaired values stand
        return None


# The first bytes of a single-file NIfTI: sizeof_hdr (348 for NIfTI-1, 540 for NIfTI-2, in the
# file's byte order), and the size of the header with its 4-byte extension flag.
_NIFTI_SIZES: Final = {
    (348).to_bytes(4, "little"): (nib.Nifti1Header, 352),
    (348).to_bytes(4, "big"): (nib.Nifti1Header, 352),
    (540).to_bytes(4, "little"): (nib.Nifti2Header, 544),
    (540).to_bytes(4, "big"): (nib.Nifti2Header, 544),
}


def _quick_nifti_header(
    path: str,
) -> tuple[nib.Nifti1Header, _Layout, tuple[float, ...]] | None:
    """The header of a plain single-file NIfTI, parsed from its first bytes; None: ask nibabel.

    ``nibabel.load`` sniffs the file type by opening the file more than once and builds a whole
    image around the header: ≈1.7 ms a file, 10 s to validate MAMA-MIA's 6,000 masks up front.
    Here at most 64 KiB are read, the header (and its extension flag) inflated alone, and parsed
    by nibabel's own header class with its checks (≈0.25 ms). Anything unusual (extensions, a
    header/image pair, a damaged or foreign file) returns None: ``nibabel.load`` then reads the
    file and reports what is wrong exactly as before.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 16)
        compressed = raw[:2] == _GZIP_MAGIC
        if compressed != path.lower().endswith(".gz"):
            return None  # misnamed: nibabel goes by the suffix, and the error explains it
        head = _gzip_inflater().decompress(raw, 544) if compressed else raw[:544]
        if head[:4] not in _NIFTI_SIZES:
            return None
        klass, size = _NIFTI_SIZES[head[:4]]
        if len(head) < size or head[size - 4 : size - 3] != b"\x00":
            return None  # truncated, or extensions follow: nibabel reads those
        return _parse_nifti_header(klass, bytes(head[:size]))
    except Exception:  # any doubt: nibabel's full load decides, and explains what is wrong
        return None


@functools.lru_cache(maxsize=256)
def _parse_nifti_header(
    klass: type[nib.Nifti1Header], block: bytes
) -> tuple[nib.Nifti1Header, _Layout, tuple[float, ...]] | None:
    """Parse (and check) a header block once: a case's masks usually share their header byte for
    byte (one grid, one dtype), and nibabel's checks are most of the parsing time. The header is
    shared between callers, who only read it. Also returns pixdim[1:] as stored: nibabel's
    check repairs a zero or negative voxel size, which segfair refuses instead."""
    raw_pixdim = tuple(
        float(v) for v in klass.from_fileobj(_stdio.BytesIO(block), check=False)["pixdim"][1:]
    )
    # the repair's log lines would only precede segfair's own refusal of such a header
    with nib.imageglobals.LoggingOutputSuppressor():
        header = klass.from_fileobj(_stdio.BytesIO(block), check=True)
    if header.single_magic not in bytes(header["magic"]):
        return None  # a .hdr/.img pair, or no NIfTI magic at all
    layout = _Layout(
        header.get_data_shape(),
        header.get_data_dtype(),
        header.get_data_offset(),
        *header.get_slope_inter(),
    )
    return header, layout, raw_pixdim


# How much uncompressed data past the promised voxels is read to reach the gzip trailer.
_MAX_TRAILING: Final = 64 << 20


def _read_nifti_voxels(path: str, layout: _Layout) -> NDArray[Any] | None:
    """The voxels of a single-file NIfTI: one read, one inflate, no copy; None: ask nibabel.

    nibabel streams a ``.nii.gz`` through ``GzipFile``, which inflates it chunk by chunk and copies
    every chunk into the array once more (≈2x the cost of inflating alone on a 512×512×160
    mask). Here the compressed bytes are read at once and inflated in one call into one buffer of
    the promised size (:func:`_inflate_at_once`), which the array then wraps (read-only, in the
    file's memory order); by ISA-L when the optional ``isal`` package is installed, else by zlib.
    Otherwise a streaming inflate capped at the size the header promises (already checked against
    ``max_voxels``) reads it, so a gzip bomb cannot allocate more; the gzip trailer (CRC and
    length) is verified when the data end the stream.

    Returns None (nibabel then reads the file as usual) for what this path does not handle:
    scaled data (``scl_slope``/``scl_inter``), a multi-member gzip file, or a file much larger than
    its data. Damaged files raise one of ``_READ_ERRORS``.
    """
    if layout.slope not in (None, 1.0) or layout.inter not in (None, 0.0):
        return None
    shape = tuple(int(n) for n in layout.shape)
    dtype, offset = np.dtype(layout.dtype), int(layout.offset)
    end = offset + math.prod(shape) * dtype.itemsize
    with open(path, "rb") as f:
        # Deflate expands incompressible data by well under 1%: a file much larger than the data
        # it promises holds something else (trailing junk, other members); nibabel streams it.
        if os.fstat(f.fileno()).st_size > end + end // 64 + (1 << 16):
            return None
        raw = f.read()
    if path.lower().endswith(".gz"):  # as nibabel: the suffix says (the header check agreed)
        at_once = _inflate_at_once(raw, end)
        if at_once is not None:
            return np.ndarray(shape, dtype=dtype, buffer=at_once, offset=offset, order="F")
        inflater = _gzip_inflater()  # gzip wrapper only
        buffer = inflater.decompress(raw, end)
        del raw
        if len(buffer) < end:
            if inflater.eof and inflater.unused_data:
                return None  # a multi-member gzip file: nibabel reads across members
            raise EOFError(f"the data end after {len(buffer):,} of {end:,} bytes")
        # Read on to the end of the stream: its trailer holds the CRC-32 and length of the data
        # (zlib.error on a mismatch). Data beyond the promised size are ignored, as nibabel does
        # (within a bound); a stream cut before its trailer is a truncated file.
        extra = 0
        while not inflater.eof:
            tail = inflater.unconsumed_tail
            if not tail:
                raise EOFError(
                    "the gzip stream ends without its trailer (CRC-32 and length): the file is "
                    "truncated"
                )
            extra += len(inflater.decompress(tail, 1 << 20))
            if extra > _MAX_TRAILING:
                raise ValueError(
                    f"the gzip stream holds more than {_MAX_TRAILING >> 20} MiB beyond the "
                    f"{end:,} bytes its header promises"
                )
    else:
        buffer = raw
        if len(buffer) < end:
            raise EOFError(f"the file ends after {len(buffer):,} of {end:,} bytes")
    # NIfTI voxels are in Fortran order (nibabel's ArrayProxy order for every NIfTI image).
    return np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset, order="F")
