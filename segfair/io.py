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

The fixed texts of the errors are the module-level ``MSG_*`` (format strings, the reason) and
``FIX_*`` constants, so tests and callers can match them exactly.
"""

from __future__ import annotations

import functools
import hashlib
import io as _stdio
import math
import numbers
import os
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final, NoReturn

import nibabel as nib
import numpy as np
from nibabel import orientations as nib_ornt
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from numpy.typing import NDArray

from segfair.errors import GeometryError, InputError

__all__ = [
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

#: File suffixes :func:`load_mask` reads (matched case-insensitively).
SUPPORTED_SUFFIXES = (".nii.gz", ".nii", ".npy", ".npz")

# --- error texts -------------------------------------------------------------------------------
# The reason (``MSG_*``) and the fix (``FIX_*``) of each error; InputError adds case and file.

MSG_MISSING = "file not found"
FIX_MISSING = "check that the file exists and that the path template and case id point to it"
MSG_NOT_A_FILE = "is not a regular file"
FIX_NOT_A_FILE = "point the mask source at a file, not a directory"
MSG_SUFFIX = "unsupported file type {suffix!r}; segfair reads {supported}"
FIX_SUFFIX = "convert the mask to NIfTI (.nii.gz) or NumPy (.npy / .npz)"
MSG_UNREADABLE = "cannot read this {kind} file; it is truncated or corrupt ({reason})"
FIX_UNREADABLE = (
    "re-export or re-copy the file (an interrupted copy or download truncates files); "
    "it must open with {check}"
)
MSG_NOT_GZIP = "the file is named .nii.gz but is not gzip-compressed"
FIX_NOT_GZIP_BUT_NIFTI = "it is an uncompressed NIfTI file: rename it to .nii (or gzip it)"
MSG_GZIP_NAMED_NII = "the file is named .nii but is gzip-compressed"
FIX_GZIP_NAMED_NII = "rename it to .nii.gz"
MSG_NPY_VERSION = "uses .npy format version {version}, which segfair does not read"
FIX_NPY_VERSION = "re-save the mask with np.save"
MSG_PICKLED = "holds a pickled object array (dtype {dtype}); segfair never unpickles input files"
FIX_PICKLED = "save the mask as a numeric array, e.g. np.save(path, mask.astype(np.uint8))"
MSG_DTYPE = "has data type {dtype}, which cannot hold a mask"
FIX_DTYPE = "store the mask as integer labels (uint8) or booleans"
MSG_TOO_LARGE = (
    "the header promises {voxels:,} voxels (shape {shape}), more than the limit of {limit:,}; "
    "no voxel data was read"
)
FIX_TOO_LARGE = (
    "if the file is genuine, raise `max_voxels` in the segfair config (or pass max_voxels= to "
    "load_mask); otherwise the header is corrupt and the file must be re-exported"
)
MSG_TOO_FEW_DIMS = "has {ndim} dimension(s) (shape {shape}); a mask must be 2-D or 3-D"
FIX_TOO_FEW_DIMS = "save the mask with its image grid shape (2-D or 3-D)"
MSG_4D = (
    "{ndim}-D mask with {volumes} volumes (shape {shape}); segfair scores one 3-D mask per case"
)
FIX_4D = "split the volumes or select one, so that each case has one 3-D mask"
MSG_EMPTY_SHAPE = "has shape {shape} with a zero-length axis; there are no voxels to score"
FIX_EMPTY_SHAPE = "re-export the mask on its image grid"
MSG_BAD_SPACING = "voxel spacing {spacing} from {source} is not finite and positive"
FIX_BAD_SPACING = {
    "the NIfTI header": "fix the header's pixdim (e.g. nibabel: img.header.set_zooms(...)) "
    "or re-export the mask from its image",
    "the `spacing` array": "store one positive spacing per axis in the `spacing` array",
    "the `affine` array": "store a non-degenerate 4x4 `affine` (voxel axes of non-zero length)",
    "the spacing argument": "pass one positive, finite spacing (mm) per array axis",
}
MSG_SPACING_LENGTH = "spacing {spacing} from {source} has {n} value(s) but the mask is {ndim}-D"
FIX_SPACING_LENGTH = "give exactly one spacing (mm) per array axis"
MSG_BAD_AFFINE = "the affine from {source} is not a finite 4x4 matrix with last row [0, 0, 0, 1]"
FIX_BAD_AFFINE = "store a valid 4x4 voxel-to-world affine (mm), as save_mask does"
MSG_AFFINE_SPACING = (
    "the `affine` array implies voxel sizes {implied} mm but the `spacing` array says {spacing}"
)
FIX_AFFINE_SPACING = (
    "store consistent geometry: spacing = column lengths of affine[:3, :ndim] (save_mask does this)"
)
MSG_SAVE_AFFINE_SPACING = (
    "the affine argument implies voxel sizes {implied} mm but the spacing argument says {spacing}"
)
MSG_NPZ_KEYS = "holds arrays {keys} and none is named 'mask'"
FIX_NPZ_KEYS = "name the mask array 'mask', e.g. np.savez(path, mask=mask, spacing=spacing)"
MSG_NPZ_NO_MASK = "holds no mask array (arrays: {keys})"
FIX_NPZ_NO_MASK = "store the mask under the key 'mask'"
MSG_NONFINITE = "{nan:,} voxel(s) are NaN and {inf:,} infinite; a mask must hold finite values"
FIX_NONFINITE = (
    "re-export the mask; NaN usually means that the model or a resampling step failed on this case"
)
MSG_PROBABILITY = (
    "holds non-integer values from {min:.6g} to {max:.6g}: it looks like a probability map "
    "(or logits), not a mask"
)
FIX_PROBABILITY = (
    "set `threshold` (e.g. 0.5) for this mask source to binarise it as value >= threshold, "
    "or export a label mask"
)
MSG_LABELS_NOT_FOUND = (
    "none of the selected labels {selected} occur in the mask; it holds labels {found}"
)
FIX_LABELS_NOT_FOUND = "select the foreground with `labels = {suggestion}` for this mask source"
MSG_BAD_LABELS = "labels must be one integer or a non-empty collection of integers, not {labels!r}"
FIX_BAD_LABELS = "set `labels` to e.g. 1 or [1, 2]"
MSG_BAD_THRESHOLD = "threshold must be a finite number, not {threshold!r}"
FIX_BAD_THRESHOLD = "set `threshold` to e.g. 0.5"
MSG_GEOMETRY = (
    "prediction and reference are not on the same voxel grid ({difference}): "
    "prediction {pred}; reference {ref}"
)
FIX_REORIENT = (
    "they differ only in axis order and/or flips: set `reorient = true` in the segfair config to "
    "reorder the prediction onto the reference grid (exact, no interpolation)"
)
FIX_RESAMPLE = (
    "resample the prediction onto the reference grid with nearest-neighbour interpolation before "
    "scoring (e.g. nibabel.processing.resample_from_to(pred_img, ref_img, order=0)); "
    "segfair does not resample"
)
MSG_NOT_REORIENTABLE = (
    "cannot bring the mask onto the target grid by reordering or flipping axes ({difference}); "
    "segfair does not resample: mask {mask}; target {target}"
)
MSG_SAVE_NDIM = "save_mask writes 2-D or 3-D masks, not an array of shape {shape}"
FIX_SAVE_NDIM = "pass one 2-D or 3-D mask per file"
MSG_SAVE_DTYPE = "a NIfTI mask is written as uint8, which cannot hold {what}"
FIX_SAVE_DTYPE = "pass a boolean mask or integer labels in 0..255"
MSG_SAVE_NPY_GEOMETRY = "a .npy file stores no geometry, so the given affine/spacing would be lost"
FIX_SAVE_NPY_GEOMETRY = (
    "save as .npz or .nii.gz, or save without geometry and pass spacing= to load_mask"
)

# Exceptions that mean "this file cannot be read": nibabel's own, the OS, gzip (BadGzipFile is an
# OSError), zlib, zipfile (BadZipFile; NotImplementedError for exotic compression; RuntimeError
# for a member flagged as encrypted), and numpy's .npy header parser (ValueError, SyntaxError and
# TokenError for a garbled header) and reader (ValueError for a short read). Found by fuzzing
# truncated and bit-flipped files.
_READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    zipfile.BadZipFile,
    ImageFileError,
    HeaderDataError,
)

_inflate_lib: Any  # zlib, or ISA-L's drop-in isal_zlib
try:  # optional (segfair[fast]): ISA-L inflates the same gzip stream ≈1.3x faster than zlib
    from isal import isal_zlib as _inflate_lib

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (_inflate_lib.error,)
except ImportError:  # pragma: no cover - depends on the environment
    _inflate_lib = zlib
    _INFLATE_ERRORS = ()
_READ_ERRORS += _INFLATE_ERRORS
_INFLATE_FAILURES: tuple[type[Exception], ...] = (zlib.error, *_INFLATE_ERRORS)

_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI = "the NIfTI header"
_NPZ_GEOMETRY_KEYS = ("spacing", "affine")
_HASH_CHUNK = 1 << 20


# --- the Mask --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Mask:
    """A binary mask on its voxel grid.

    Equality is identity (``eq=False``): comparing arrays elementwise belongs to the metrics, and
    a dataclass ``==`` over arrays would raise. The array and the affine are read-only, so a mask
    can be shared between metrics, caches and threads without copies.

    The array keeps the memory order it was given (C or Fortran contiguous), since reordering a
    512×512×160 volume costs more than reading it; only a non-contiguous view is copied (to C
    order). Consumers must not assume either order (segfair's own are layout-agnostic); call
    ``np.ascontiguousarray`` on a crop if a C-ordered buffer is needed.

    Attributes
    ----------
    array
        Boolean foreground, 2-D or 3-D, read-only, C- or Fortran-contiguous (the file's order:
        Fortran for NIfTI). Axis ``i`` is voxel axis ``i`` of the file (no reorientation happens
        on load).
    spacing
        Voxel size in mm along each array axis.
    affine
        4x4 float64 voxel-to-world (mm) matrix. For NumPy files without one, ``diag(spacing)``
        with a unit third axis for 2-D masks and a zero origin.
    path
        The file it was read from, or None for a mask built in memory.

    Examples
    --------
    >>> import numpy as np
    >>> m = Mask(np.zeros((2, 3, 4), dtype=bool), (1.0, 1.0, 2.5), np.diag([1.0, 1.0, 2.5, 1.0]))
    >>> m.shape, m.spacing
    ((2, 3, 4), (1.0, 1.0, 2.5))
    """

    array: NDArray[np.bool_]
    spacing: tuple[float, ...]
    affine: NDArray[np.float64]
    path: str | None = None

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.dtype != np.bool_:
            raise TypeError(f"Mask.array must be boolean, not {array.dtype}")
        if array.ndim not in (2, 3):
            raise ValueError(f"Mask.array must be 2-D or 3-D, not of shape {array.shape}")
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != array.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"Mask.spacing {spacing} must be one positive value per array axis")
        affine = np.array(self.affine, dtype=np.float64)  # a copy: the caller keeps theirs
        if affine.shape != (4, 4):
            raise ValueError(f"Mask.affine must be 4x4, not of shape {affine.shape}")
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            array = np.ascontiguousarray(array)  # a strided view: one copy, to C order
        if array.flags.writeable:
            # A view, so a mask built from a caller's array does not freeze the caller's array.
            array = array.view()
            array.flags.writeable = False
        affine.flags.writeable = False
        # frozen dataclass: normalising in __post_init__ needs object.__setattr__.
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "affine", affine)
        if self.path is not None:
            object.__setattr__(self, "path", os.fspath(self.path))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return tuple(self.array.shape)

    def __repr__(self) -> str:
        return f"Mask({_describe(self)})"


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """The case and file an error is about."""

    case_id: str | None
    path: str | None

    def fail(self, message: str, fix: str, cls: type[InputError] = InputError) -> NoReturn:
        raise cls(message, case_id=self.case_id, path=self.path, fix=fix)


# --- reading headers ---------------------------------------------------------------------------


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


def _suffix(path: str) -> str | None:
    lower = path.lower()
    for suffix in SUPPORTED_SUFFIXES:  # ".nii.gz" before ".nii": the order matters
        if lower.endswith(suffix):
            return suffix
    return None


def _check_file(path: str, where: _Where) -> str:
    """Return the supported suffix of an existing regular file, or raise."""
    suffix = _suffix(path)
    if suffix is None:
        name = os.path.basename(path)
        shown = name[name.find(".") :] if "." in name else name
        where.fail(
            MSG_SUFFIX.format(suffix=shown, supported=", ".join(SUPPORTED_SUFFIXES)), FIX_SUFFIX
        )
    if not os.path.exists(path):
        where.fail(MSG_MISSING, FIX_MISSING)
    if not os.path.isfile(path):
        where.fail(MSG_NOT_A_FILE, FIX_NOT_A_FILE)
    return suffix


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())  # nibabel puts newlines in some messages
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unreadable(error: BaseException, kind: str, check: str, where: _Where) -> NoReturn:
    # A wrong suffix is a common cause and cheap to tell apart: sniff the first bytes.
    if where.path is not None:
        try:
            with open(where.path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        lower = where.path.lower()
        if lower.endswith(".nii.gz") and not head.startswith(_GZIP_MAGIC):
            looks_nifti = head[:4] in (
                (348).to_bytes(4, "little"),
                (348).to_bytes(4, "big"),
                (540).to_bytes(4, "little"),
                (540).to_bytes(4, "big"),
            )
            fix = FIX_NOT_GZIP_BUT_NIFTI if looks_nifti else FIX_UNREADABLE.format(check=check)
            raise InputError(MSG_NOT_GZIP, case_id=where.case_id, path=where.path, fix=fix) from (
                error
            )
        if lower.endswith(".nii") and head.startswith(_GZIP_MAGIC):
            raise InputError(
                MSG_GZIP_NAMED_NII, case_id=where.case_id, path=where.path, fix=FIX_GZIP_NAMED_NII
            ) from error
    raise InputError(
        MSG_UNREADABLE.format(kind=kind, reason=_reason(error)),
        case_id=where.case_id,
        path=where.path,
        fix=FIX_UNREADABLE.format(check=check),
    ) from error


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
    if quick is not None:
        header, layout = quick
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

    return _Header(shape, None, zooms, _NIFTI, affine, _NIFTI, read)


# The first bytes of a single-file NIfTI: sizeof_hdr (348 for NIfTI-1, 540 for NIfTI-2, in the
# file's byte order), and the size of the header with its 4-byte extension flag.
_NIFTI_SIZES: Final = {
    (348).to_bytes(4, "little"): (nib.Nifti1Header, 352),
    (348).to_bytes(4, "big"): (nib.Nifti1Header, 352),
    (540).to_bytes(4, "little"): (nib.Nifti2Header, 544),
    (540).to_bytes(4, "big"): (nib.Nifti2Header, 544),
}


def _quick_nifti_header(path: str) -> tuple[nib.Nifti1Header, _Layout] | None:
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
        if compressed:
            head = _inflate_lib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(raw, 544)
        else:
            head = raw[:544]
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
) -> tuple[nib.Nifti1Header, _Layout] | None:
    """Parse (and check) a header block once: a case's masks usually share their header byte for
    byte (one grid, one dtype), and nibabel's checks are most of the parsing time. The header is
    shared between callers, who only read it."""
    header = klass.from_fileobj(_stdio.BytesIO(block), check=True)
    if header.single_magic not in bytes(header["magic"]):
        return None  # a .hdr/.img pair, or no NIfTI magic at all
    layout = _Layout(
        header.get_data_shape(),
        header.get_data_dtype(),
        header.get_data_offset(),
        *header.get_slope_inter(),
    )
    return header, layout


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
        inflater = _inflate_lib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip wrapper only
        buffer = inflater.decompress(raw, end)
        del raw
        if len(buffer) < end:
            if inflater.eof and inflater.unused_data:
                return None  # a multi-member gzip file: nibabel reads across members
            raise EOFError(f"the data end after {len(buffer):,} of {end:,} bytes")
        # One more byte at most: with no more data this reads the gzip trailer and checks its CRC
        # (zlib.error on a mismatch); data beyond the promised size are ignored, as nibabel does.
        inflater.decompress(inflater.unconsumed_tail, 1)
    else:
        buffer = raw
        if len(buffer) < end:
            raise EOFError(f"the file ends after {len(buffer):,} of {end:,} bytes")
    # NIfTI voxels are in Fortran order (nibabel's ArrayProxy order for every NIfTI image).
    return np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset, order="F")


# Deflate cannot expand its input more than 1032-fold (a run of 258 bytes costs at least 2 bits).
_DEFLATE_MAX_RATIO: Final = 1032


def _inflate_at_once(raw: bytes, size: int) -> bytes | None:
    """A whole single-member gzip stream inflated in one call into one ``size``-byte buffer.

    The fast path: CPython's streaming decompressor grows its output in blocks and joins them at
    the end, which costs as much as inflating (≈80 ms instead of ≈40 ms for a 42 MB mask with
    zlib); the one-shot call told the size writes straight into one buffer. It has no output cap,
    so it is used only when the gzip trailer promises exactly ``size`` bytes and the input is
    too short to expand beyond ``8 * size + 64 MiB`` whatever it holds: memory stays bounded by
    the header's promise. Anything else (trailing data, several members, a damaged stream)
    returns None and goes through the capped streaming path, which also explains the damage.
    """
    if len(raw) < 18 or len(raw) * _DEFLATE_MAX_RATIO > 8 * size + (64 << 20):
        return None
    if int.from_bytes(raw[-4:], "little") != size % (1 << 32):  # ISIZE of the (last) member
        return None
    try:
        out: bytes = _inflate_lib.decompress(raw, 16 + zlib.MAX_WBITS, size)
    except _INFLATE_FAILURES:
        return None
    return out if len(out) == size else None


def _npy_array_header(
    fp: IO[bytes], where: _Where, kind: str
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Read the magic and header of a .npy stream: shape and dtype, not the data."""
    check = "np.load(path, allow_pickle=False)"
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            where.fail(
                MSG_NPY_VERSION.format(version=f"{version[0]}.{version[1]}"), FIX_NPY_VERSION
            )
    except _READ_ERRORS as error:
        _unreadable(error, kind, check, where)
    if dtype.hasobject:
        where.fail(MSG_PICKLED.format(dtype=dtype), FIX_PICKLED)
    return tuple(int(n) for n in shape), dtype


def _npy_header(path: str, where: _Where) -> _Header:
    check = "np.load(path, allow_pickle=False)"
    try:
        with open(path, "rb") as fp:
            shape, dtype = _npy_array_header(fp, where, ".npy")
    except OSError as error:
        _unreadable(error, ".npy", check, where)

    def read() -> NDArray[Any]:
        try:
            with open(path, "rb") as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except _READ_ERRORS as error:
            _unreadable(error, ".npy", check, where)

    return _Header(shape, dtype, None, "", None, "", read)


def _npz_header(path: str, where: _Where) -> _Header:
    check = "np.load(path, allow_pickle=False)"
    try:
        with zipfile.ZipFile(path) as zf:
            members = {
                (name[:-4] if name.endswith(".npy") else name): name for name in zf.namelist()
            }
            if "mask" in members:
                key = "mask"
            else:
                candidates = [k for k in members if k not in _NPZ_GEOMETRY_KEYS]
                if not candidates:
                    where.fail(MSG_NPZ_NO_MASK.format(keys=sorted(members)), FIX_NPZ_NO_MASK)
                if len(candidates) > 1:
                    where.fail(MSG_NPZ_KEYS.format(keys=sorted(members)), FIX_NPZ_KEYS)
                key = candidates[0]
            # Only the member's header is decompressed here; the voxel data waits for read().
            with zf.open(members[key]) as fp:
                shape, dtype = _npy_array_header(fp, where, ".npz")
            spacing_array = _npz_small_array(zf, members.get("spacing"), where)
            affine_array = _npz_small_array(zf, members.get("affine"), where)
    except _READ_ERRORS as error:
        _unreadable(error, ".npz", check, where)

    spacing: tuple[float, ...] | None = None
    source = ""
    affine: NDArray[np.float64] | None = None
    if affine_array is not None:
        affine = _valid_affine(affine_array, "the `affine` array", where)
    if spacing_array is not None:
        if spacing_array.ndim != 1 or spacing_array.dtype.kind not in "iuf":
            where.fail(
                MSG_BAD_SPACING.format(
                    spacing=spacing_array.tolist(), source="the `spacing` array"
                ),
                FIX_BAD_SPACING["the `spacing` array"],
            )
        spacing = tuple(float(s) for s in spacing_array)
        source = "the `spacing` array"
    elif affine is not None:
        # Voxel sizes are the column lengths of the affine, as nibabel derives NIfTI zooms.
        ndim = min(len(shape), 3)
        spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :ndim], axis=0))
        source = "the `affine` array"

    def read() -> NDArray[Any]:
        try:
            with zipfile.ZipFile(path) as zf, zf.open(members[key]) as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except _READ_ERRORS as error:
            _unreadable(error, ".npz", check, where)

    return _Header(shape, dtype, spacing, source, affine, "the `affine` array", read)


def _npz_small_array(zf: zipfile.ZipFile, member: str | None, where: _Where) -> NDArray[Any] | None:
    """Read a geometry array (spacing, affine) of an .npz, refusing anything larger than 4x4."""
    if member is None:
        return None
    with zf.open(member) as fp:
        shape, _ = _npy_array_header(fp, where, ".npz")
    if math.prod(shape) > 16:  # a hostile "spacing" must not allocate either
        what = member[:-4] if member.endswith(".npy") else member
        where.fail(MSG_BAD_AFFINE.format(source=f"the `{what}` array"), FIX_BAD_AFFINE)
    with zf.open(member) as fp:
        return np.lib.format.read_array(fp, allow_pickle=False)


_HEADER_READERS: dict[str, Callable[[str, _Where], _Header]] = {
    ".nii.gz": _nifti_header,
    ".nii": _nifti_header,
    ".npy": _npy_header,
    ".npz": _npz_header,
}


# --- shape and geometry checks -----------------------------------------------------------------


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
        elif len(zooms) > ndim and all(z == 1 for z in zooms[ndim:]):
            zooms = zooms[:ndim]
        spacing = _valid_spacing(zooms, ndim, header.spacing_source, where)
    elif spacing_arg is not None:
        spacing = _valid_spacing(spacing_arg, ndim, "the spacing argument", where)
    else:
        spacing = (1.0,) * ndim
    if header.affine is not None:
        affine = _valid_affine(header.affine, header.affine_source, where)
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


# --- label selection ---------------------------------------------------------------------------


def _normalise_labels(labels: int | Collection[int], where: _Where) -> tuple[int, ...]:
    items: list[Any] = [labels] if isinstance(labels, numbers.Integral) else []
    if not items:
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Collection):
            where.fail(MSG_BAD_LABELS.format(labels=labels), FIX_BAD_LABELS)
        items = list(labels)
    valid = bool(items) and all(
        isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)) for x in items
    )
    if not valid:
        where.fail(MSG_BAD_LABELS.format(labels=labels), FIX_BAD_LABELS)
    return tuple(sorted({int(x) for x in items}))


_Select = Callable[[NDArray[Any]], NDArray[np.bool_]]


def _apply(data: NDArray[Any], select: _Select) -> NDArray[np.bool_]:
    """Evaluate the elementwise ``select`` into a new boolean array in ``data``'s memory order.

    A Fortran-ordered volume (NIfTI) is handed over as its transpose, which is C-contiguous: every
    numpy function then walks it in memory order and returns C order, whose transpose is the
    Fortran-ordered result. No voxel is moved between orders (a 42 MB reorder used to cost more
    than reading the file), and functions that flatten their input (``np.isin``) flatten a view.
    """
    if data.ndim > 1 and data.flags.f_contiguous and not data.flags.c_contiguous:
        return np.asarray(select(data.T)).T
    return np.asarray(select(data))


def _label_select(labels: tuple[int, ...], dtype: np.dtype[Any]) -> _Select | None:
    """The selection "value in labels"; None when no label is representable in ``dtype``."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        labels = tuple(x for x in labels if info.min <= x <= info.max)
    if not labels:
        return None
    if len(labels) == 1:
        label = labels[0]
        return lambda src: np.equal(src, label)
    wanted = np.asarray(labels)
    return lambda src: np.isin(src, wanted)


def _binary_bytes(data: NDArray[Any], labels: tuple[int, ...]) -> NDArray[np.bool_] | None:
    """``data`` itself, viewed as booleans, when it is bytes holding only 0 and 1 and label 1 is
    selected (the usual uint8 mask): its bytes already are a valid boolean array.

    One pass of SIMD ``max`` over the bytes (≈4 ms on 512×512×160) replaces a comparison that
    writes a new 42 MB array (≈17 ms, mostly page faults), a later ``any`` over the result, and
    the bounding-box scans of the metrics and the morphology.
    """
    if 1 not in labels or data.dtype.kind not in "iu" or data.dtype.itemsize != 1:
        return None
    if not (data.flags.c_contiguous or data.flags.f_contiguous):
        return None
    from segfair.metrics.arrays import extent_and_peak, remember_extent

    # The same pass finds the bounding box, which the metrics and the morphology then reuse
    # instead of scanning the volume again (the mask is immutable: bytes-backed, read-only).
    extent, peak = extent_and_peak(data.view(np.uint8))
    if peak > 1:  # int8 -1 reads as 255: not binary
        return None
    foreground = data.view(np.bool_)
    remember_extent(foreground, extent)
    return foreground


def _all_whole(data: NDArray[Any]) -> bool:
    """Whether every value is a whole number, checked slice by slice along the slowest axis.

    Slices keep the temporaries of ``trunc`` small (a float volume can be gigabytes).
    """
    fortran = data.flags.f_contiguous and not data.flags.c_contiguous
    slices = np.moveaxis(data, -1, 0) if fortran else data
    return all(bool(np.all(np.trunc(block) == block)) for block in slices)


def _found_labels(data: NDArray[Any]) -> list[int]:
    values = np.unique(data)
    return [int(v) for v in values]


def _select_foreground(
    data: NDArray[Any], labels: tuple[int, ...], threshold: float | None, where: _Where
) -> NDArray[np.bool_]:
    kind = data.dtype.kind
    if kind == "b":
        if data.flags.c_contiguous or data.flags.f_contiguous:
            return data  # freshly read from the file and owned by nobody else: no copy needed
        return np.ascontiguousarray(data)
    binary = _binary_bytes(data, labels)
    if binary is not None:
        return binary  # 0/1 bytes: all background (a legitimate empty mask) or label 1 present
    if kind == "f":
        lo, hi = float(np.min(data)), float(np.max(data))  # NaN propagates through min/max
        if not (math.isfinite(lo) and math.isfinite(hi)):
            nan = int(np.count_nonzero(np.isnan(data)))
            inf = int(np.count_nonzero(np.isinf(data)))
            where.fail(MSG_NONFINITE.format(nan=nan, inf=inf), FIX_NONFINITE)
        if threshold is not None:
            t = threshold
            return _apply(data, lambda src: np.greater_equal(src, t))
        if not _all_whole(data):
            where.fail(MSG_PROBABILITY.format(min=lo, max=hi), FIX_PROBABILITY)
        # Whole numbers in a float array: a label map stored as float (many tools export
        # float32); 0/1 is the binary special case. Labels select from it as from integers.
    elif kind not in "iu":
        where.fail(MSG_DTYPE.format(dtype=data.dtype), FIX_DTYPE)

    select = _label_select(labels, data.dtype)
    foreground = np.zeros(data.shape, dtype=np.bool_) if select is None else _apply(data, select)
    # An absent label is the classic silent failure (a 0/255 mask read with label 1 is "empty"
    # and scores Dice 0 everywhere): refuse unless the mask is genuinely all background.
    if not foreground.any() and data.any():
        found = [v for v in _found_labels(data) if v != 0]
        shown = ", ".join(str(v) for v in found[:20]) + (
            f", ... ({len(found)} labels)" if len(found) > 20 else ""
        )
        where.fail(
            MSG_LABELS_NOT_FOUND.format(selected=list(labels), found=f"[{shown}]"),
            FIX_LABELS_NOT_FOUND.format(suggestion=found[:20]),
        )
    return foreground


# --- public API --------------------------------------------------------------------------------


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


@dataclass(frozen=True, eq=False)
class Geometry:
    """The voxel grid of a mask file, read from its header alone (no voxel data)."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: NDArray[np.float64]
    path: str | None = None


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
    >>> p = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
    >>> save_mask(p, np.zeros((4, 5, 6), bool), spacing=(0.5, 0.5, 2.0))
    >>> read_geometry(p).shape
    (4, 5, 6)
    """
    path_str = os.fspath(path)
    where = _Where(case_id, path_str)
    suffix = _check_file(path_str, where)
    header = _HEADER_READERS[suffix](path_str, where)
    shape, mask_spacing, affine = _checked_geometry(header, max_voxels, spacing, where)
    return Geometry(shape, mask_spacing, affine, path_str)


def describe_mismatch(
    a: Mask | Geometry, b: Mask | Geometry, *, atol: float = 1e-3, allow_reorient: bool = False
) -> str | None:
    """Why two grids differ (with both geometries), or None when they agree.

    With ``allow_reorient``, grids that differ only by axis order and flips agree.
    """
    difference = _difference(a.shape, a.affine, b.shape, b.affine, atol)
    if difference is None:
        return None
    if allow_reorient and _reorientable(b, a, atol):
        return None
    return f"{difference}: {_describe(a)}; {_describe(b)}"


def _reorientable(mask: Mask | Geometry, target: Mask | Geometry, atol: float) -> bool:
    plan = _reorientation(mask, target)
    return (
        plan is not None
        and _difference(plan[1], plan[2], _target_shape3(target), target.affine, atol) is None
    )


def geometry_fix(a: Mask | Geometry, b: Mask | Geometry, *, atol: float = 1e-3) -> str:
    """The fix for two grids that differ: reorient (axis order/flips only) or resample."""
    return FIX_REORIENT if _reorientable(b, a, atol) else FIX_RESAMPLE


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
        (one value per axis) and/or ``affine`` (4x4).
    case_id
        Named in every error.
    labels
        Integer label(s) that form the foreground of a label map (``np.isin``). If the mask holds
        non-zero values but none of these, that is an error, never a silently empty mask; an
        all-zero mask is a legitimate empty mask.
    threshold
        For floating-point data only: foreground = ``value >= threshold``. Without it, float data
        must hold whole numbers (0/1 or labels); anything else looks like a probability map and
        is refused. Integer and boolean data ignore it (labels are categories, not levels).
    max_voxels
        Refuse, before reading any voxel data, a file whose header promises more voxels.
    spacing
        Voxel size (mm) per axis for NumPy files that carry no geometry (default 1.0 per axis).
        Geometry stored in the file (NIfTI header, ``.npz`` ``spacing``/``affine``) wins.

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
    suffix = _check_file(path_str, where)
    header = _HEADER_READERS[suffix](path_str, where)
    shape, mask_spacing, affine = _checked_geometry(header, max_voxels, spacing, where)

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
    data = data[squeeze]
    foreground = _select_foreground(data, label_tuple, threshold, where)
    return Mask(foreground, mask_spacing, affine, path_str)


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


def _axcodes(affine: NDArray[np.float64], ndim: int) -> str:
    try:
        codes = nib.aff2axcodes(affine)
    except ValueError:
        return "?" * ndim
    return "".join(c if c is not None else "?" for c in codes[:ndim])


def _describe(mask: Mask | Geometry) -> str:
    origin = ", ".join(f"{v:.4g}" for v in mask.affine[:3, 3])
    spacing = ", ".join(f"{v:.6g}" for v in mask.spacing)
    name = repr(mask.path) if mask.path is not None else "(in memory)"
    return (
        f"{name}: shape {mask.shape}, spacing ({spacing}) mm, "
        f"orientation {_axcodes(mask.affine, len(mask.shape))}, origin ({origin}) mm"
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
    mask: Mask | Geometry, target: Mask | Geometry
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


def _target_shape3(mask: Mask | Geometry) -> tuple[int, ...]:
    return mask.shape + (1,) * (3 - len(mask.shape))


def check_geometry(
    pred: Mask, ref: Mask, *, case_id: str | None = None, atol: float = 1e-3
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
        fix=FIX_REORIENT if _reorientable(pred, ref, atol) else FIX_RESAMPLE,
    )


def reorient_like(
    mask: Mask, target: Mask, *, case_id: str | None = None, atol: float = 1e-3
) -> Mask:
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
            return Mask(array, tuple(spacing), target.affine, mask.path)
    raise GeometryError(
        MSG_NOT_REORIENTABLE.format(
            difference=difference, mask=_describe(mask), target=_describe(target)
        ),
        case_id=case_id,
        path=mask.path,
        fix=FIX_RESAMPLE,
    )


def save_mask(
    path: str | os.PathLike[str],
    array: NDArray[Any],
    affine: NDArray[Any] | None = None,
    *,
    spacing: Sequence[float] | None = None,
) -> None:
    """Write a 2-D or 3-D mask; the format follows the suffix.

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
    suffix = _suffix(path_str)
    if suffix is None:
        name = os.path.basename(path_str)
        shown = name[name.find(".") :] if "." in name else name
        where.fail(
            MSG_SUFFIX.format(suffix=shown, supported=", ".join(SUPPORTED_SUFFIXES)), FIX_SUFFIX
        )
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
    img = nib.Nifti1Image(voxels, aff, dtype=np.uint8)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    img.header.set_xyzt_units("mm")
    _write_atomically(path_str, lambda tmp: nib.save(img, tmp))


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write`` on a temporary name next to ``path``, then rename it into place.

    A reader (another xdist worker, the cache) never sees half a file, and a crash leaves none.
    """
    directory, name = os.path.split(os.path.abspath(path))
    # The temporary name keeps the suffix: nibabel picks gzip from it, numpy would append .npy.
    tmp = os.path.join(directory, f".{os.getpid()}.{threading.get_ident()}.tmp.{name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file (UTF-8, synced) so that readers see the old content or the new, never
    half of it; the folder is created if needed. Used for every cache and index file."""
    path_str = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path_str)), exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _write_atomically(path_str, write)


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, streamed in 1 MiB chunks; the key of the result cache.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> open(p, "wb").write(b"abc")
    3
    >>> content_hash(p)[:16]
    'ba7816bf8f01cfea'
    """
    path_str = os.fspath(path)
    where = _Where(None, path_str)
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    try:
        with open(path_str, "rb", buffering=0) as f:
            # readinto a reused buffer: no allocation per chunk, memory bounded whatever the size.
            while n := f.readinto(buffer):
                digest.update(view[:n])
    except FileNotFoundError:
        where.fail(MSG_MISSING, FIX_MISSING)
    except IsADirectoryError:
        where.fail(MSG_NOT_A_FILE, FIX_NOT_A_FILE)
    except OSError as error:
        _unreadable(error, "input", "a plain read (check its permissions)", where)
    return digest.hexdigest()
