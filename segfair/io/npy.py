"""Reading NumPy mask files (``.npy``, ``.npz``): headers first, never unpickling."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _READ_ERRORS, _unreadable, _Where
from segfair.io.header import _Header, _valid_affine
from segfair.io.messages import (
    FIX_BAD_AFFINE,
    FIX_BAD_SPACING,
    FIX_NPY_VERSION,
    FIX_NPZ_KEYS,
    FIX_NPZ_NO_MASK,
    FIX_PICKLED,
    MSG_BAD_AFFINE,
    MSG_BAD_SPACING,
    MSG_NPY_VERSION,
    MSG_NPZ_KEYS,
    MSG_NPZ_NO_MASK,
    MSG_PICKLED,
)

_NPZ_GEOMETRY_KEYS = ("spacing", "affine")


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


def _some(names: Iterable[str], n: int = 10) -> str:
    """The names, sorted, as a list; past ``n`` of them, the first ``n`` and how many more: a
    hostile archive with 20,000 members must not turn one error into a 200 KB message."""
    ordered = sorted(names)
    if len(ordered) <= n:
        return repr(ordered)
    return repr(ordered[:n])[:-1] + f", …] and {len(ordered) - n:,} more"


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
                    where.fail(MSG_NPZ_NO_MASK.format(keys=_some(members)), FIX_NPZ_NO_MASK)
                if len(candidates) > 1:
                    where.fail(MSG_NPZ_KEYS.format(keys=_some(members)), FIX_NPZ_KEYS)
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
