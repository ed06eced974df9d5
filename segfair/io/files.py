"""Input files: supported suffixes, existence checks, unreadable-file errors, content hashes."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from typing import NoReturn

from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from segfair.errors import InputError
from segfair.io.inflate import _GZIP_MAGIC, _INFLATE_ERRORS
from segfair.io.messages import (
    FIX_CANNOT_OPEN,
    FIX_GZIP_NAMED_NII,
    FIX_MHD_DATA_FILE,
    FIX_MISSING,
    FIX_NOT_A_FILE,
    FIX_NOT_GZIP_BUT_NIFTI,
    FIX_SUFFIX,
    FIX_UNREADABLE,
    MSG_CANNOT_OPEN,
    MSG_GZIP_NAMED_NII,
    MSG_MHD_DATA_FILE,
    MSG_MISSING,
    MSG_NOT_A_FILE,
    MSG_NOT_GZIP,
    MSG_SUFFIX,
    MSG_UNREADABLE,
)

#: File suffixes :func:`load_mask` reads (matched case-insensitively, in this order: a longer
#: suffix before its tail). NIfTI and NumPy always; the others with their extra (docs/formats.md).
SUPPORTED_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".npy",
    ".npz",
    ".mha",
    ".mhd",
    ".seg.nrrd",
    ".nrrd",
    ".dcm",
    ".png",
    ".tif",
    ".tiff",
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
_READ_ERRORS += _INFLATE_ERRORS
_HASH_CHUNK = 1 << 20
_HASH_HEAD = 1 << 16  # the first read of a file hashed


@dataclass(frozen=True, slots=True)
class _Where:
    """The case and file an error is about."""

    case_id: str | None
    path: str | None

    def fail(self, message: str, fix: str, cls: type[InputError] = InputError) -> NoReturn:
        raise cls(message, case_id=self.case_id, path=self.path, fix=fix)


def _suffix(path: str) -> str | None:
    lower = path.lower()
    for suffix in SUPPORTED_SUFFIXES:  # ".nii.gz" before ".nii": the order matters
        if lower.endswith(suffix):
            return suffix
    return None


def _supported_suffix(path: str, where: _Where) -> str:
    """Return the supported suffix of ``path``, or raise naming the unsupported one."""
    suffix = _suffix(path)
    if suffix is None:
        name = os.path.basename(path)
        shown = name[name.find(".") :] if "." in name else name
        where.fail(
            MSG_SUFFIX.format(suffix=shown, supported=", ".join(SUPPORTED_SUFFIXES)), FIX_SUFFIX
        )
    return suffix


def _check_file(path: str, where: _Where) -> str:
    """Return the supported suffix of an existing regular file, or raise."""
    suffix = _supported_suffix(path, where)
    try:
        mode = os.stat(path).st_mode  # one stat, not exists() then isfile()
    except (OSError, ValueError):
        where.fail(MSG_MISSING, FIX_MISSING)
    if not stat.S_ISREG(mode):
        where.fail(MSG_NOT_A_FILE, FIX_NOT_A_FILE)
    return suffix


_ELEMENT_DATA_FILE = re.compile(rb"^[ \t]*ElementDataFile[ \t]*=[ \t]*(.*?)[ \t\r]*$", re.MULTILINE)


def _metaimage_data_file(path: str) -> str | None:
    """The data file a MetaImage header names (``ElementDataFile``), None when the data follow
    the header (``LOCAL``); ValueError for a list or a pattern of files."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # the header is text before the data, at most a few KiB
    match = _ELEMENT_DATA_FILE.search(head)
    value = "" if match is None else match.group(1).decode("utf-8", "replace")
    if value == "LOCAL" or (match is None and path.lower().endswith(".mha")):
        return None
    if not value or value.startswith("LIST") or "%" in value or " " in value:
        raise ValueError(value)
    return os.path.join(os.path.dirname(path), value)


def data_files(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The files a mask file's voxels are read from: itself, and the data file a MetaImage
    header names (the ``.raw`` or ``.zraw`` of a ``.mhd``). The content hash covers them all.

    Examples
    --------
    >>> data_files("a.nii.gz")
    ('a.nii.gz',)
    """
    path_str = os.fspath(path)
    if not path_str.lower().endswith((".mhd", ".mha")):
        return (path_str,)
    try:
        extra = _metaimage_data_file(path_str)
    except (OSError, ValueError):
        return (path_str,)  # the header reader refuses it, naming the file
    return (path_str,) if extra is None else (path_str, extra)


def _check_data_files(path: str, where: _Where) -> None:
    """Refuse a MetaImage whose data file is missing or is not one file."""
    if not path.lower().endswith((".mhd", ".mha")):
        return
    try:
        extra = _metaimage_data_file(path)
    except OSError as error:
        _unreadable(error, "MetaImage", "SimpleITK.ReadImage(path)", where)
    except ValueError as error:
        where.fail(MSG_MHD_DATA_FILE.format(value=str(error)), FIX_MHD_DATA_FILE)
    if extra is not None and not os.path.isfile(extra):
        _Where(where.case_id, extra).fail(MSG_MISSING, FIX_MISSING)


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())  # nibabel puts newlines in some messages
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unreadable(error: BaseException, kind: str, check: str, where: _Where) -> NoReturn:
    # A wrong suffix is a common cause and cheap to tell apart: sniff the first bytes.
    if where.path is not None:
        try:
            with open(where.path, "rb") as f:
                head = f.read(4)
        except OSError as cannot:
            # no permission (or gone since): say so, not "not gzip-compressed"
            raise InputError(
                MSG_CANNOT_OPEN.format(reason=_reason(cannot)),
                case_id=where.case_id,
                path=where.path,
                fix=FIX_CANNOT_OPEN,
            ) from error
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
    digest = hashlib.sha256()
    # allocated for a large file only: zeroing 1 MiB cost more than hashing a 4 kB mask
    buffer: bytearray | None = None
    # a .mhd and its .raw are hashed as one stream: a changed data file changes the hash
    for path_str in data_files(path):
        where = _Where(None, path_str)
        try:
            with open(path_str, "rb", buffering=0) as f:
                head = f.read(_HASH_HEAD)  # a small file (a 2-D mask) whole, in one read
                digest.update(head)
                if len(head) == _HASH_HEAD:
                    # the rest through one reused buffer: no allocation per chunk, memory
                    # bounded whatever the size
                    buffer = buffer or bytearray(_HASH_CHUNK)
                    view = memoryview(buffer)
                    while n := f.readinto(buffer):
                        digest.update(view[:n])
                else:  # at the end (a read may also come back short before it: read on)
                    while chunk := f.read(_HASH_HEAD):
                        digest.update(chunk)
        except FileNotFoundError:
            where.fail(MSG_MISSING, FIX_MISSING)
        except IsADirectoryError:
            where.fail(MSG_NOT_A_FILE, FIX_NOT_A_FILE)
        except OSError as error:
            _unreadable(error, "input", "a plain read (check its permissions)", where)
    return digest.hexdigest()


def read_regular_text(path: str | os.PathLike[str], *, limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes, else :class:`OSError` saying why.

    A FIFO would block a run forever and ``/dev/zero`` would be read until memory runs out: a
    file segfair is pointed at from outside (a baseline report) is opened without blocking,
    checked to be a regular file, and read no further than ``limit``.
    """
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError("it is not a regular file (a pipe, a device or a folder)")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"it is larger than {limit:,} bytes")
    return data.decode("utf-8")
