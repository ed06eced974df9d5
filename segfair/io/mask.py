"""Records of a voxel grid: :class:`Mask` (voxels and geometry), :class:`Geometry` (header only)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray


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
        _freeze(self, array, "Mask")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return tuple(self.array.shape)

    def __repr__(self) -> str:
        return f"Mask({_describe(self)})"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class LabelMap:
    """An integer label map on its voxel grid: what named structures select from.

    Like :class:`Mask` (read-only array in the file's memory order, spacing, affine, path), but
    the array holds the file's values as read (integers, booleans, or floats holding whole
    numbers) instead of one boolean foreground; :func:`segfair.io.select_structures` turns it
    into one boolean crop per structure.

    Examples
    --------
    >>> import numpy as np
    >>> LabelMap(np.array([[0, 3], [1, 0]], np.uint8), (1.0, 1.0), np.eye(4)).shape
    (2, 2)
    """

    array: NDArray[Any]
    spacing: tuple[float, ...]
    affine: NDArray[np.float64]
    path: str | None = None

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"LabelMap.array must hold numbers, not {array.dtype}")
        _freeze(self, array, "LabelMap")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return tuple(self.array.shape)

    def __repr__(self) -> str:
        return f"LabelMap({_describe(self)})"


def _freeze(grid: Mask | LabelMap, array: NDArray[Any], what: str) -> None:
    """Check and normalise the fields of a frozen grid record: spacing (one positive value per
    axis), a 4x4 affine (a copy: the caller keeps theirs), a contiguous read-only array."""
    if array.ndim not in (2, 3):
        raise ValueError(f"{what}.array must be 2-D or 3-D, not of shape {array.shape}")
    spacing = tuple(float(s) for s in grid.spacing)
    if len(spacing) != array.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"{what}.spacing {spacing} must be one positive value per array axis")
    affine = np.array(grid.affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"{what}.affine must be 4x4, not of shape {affine.shape}")
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)  # a strided view: one copy, to C order
    if array.flags.writeable:
        # A view, so a mask built from a caller's array does not freeze the caller's array.
        array = array.view()
        array.flags.writeable = False
    affine.flags.writeable = False
    # frozen dataclass: normalising in __post_init__ needs object.__setattr__.
    object.__setattr__(grid, "array", array)
    object.__setattr__(grid, "spacing", spacing)
    object.__setattr__(grid, "affine", affine)
    if grid.path is not None:
        object.__setattr__(grid, "path", os.fspath(grid.path))


@dataclass(frozen=True, eq=False)
class Geometry:
    """The voxel grid of a mask file, read from its header alone (no voxel data)."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: NDArray[np.float64]
    path: str | None = None


def _axcodes(affine: NDArray[np.float64], ndim: int) -> str:
    try:
        codes = nib.aff2axcodes(affine)
    except ValueError:
        return "?" * ndim
    return "".join(c if c is not None else "?" for c in codes[:ndim])


def _describe(mask: Mask | LabelMap | Geometry) -> str:
    origin = ", ".join(f"{v:.4g}" for v in mask.affine[:3, 3])
    spacing = ", ".join(f"{v:.6g}" for v in mask.spacing)
    name = repr(mask.path) if mask.path is not None else "(in memory)"
    return (
        f"{name}: shape {mask.shape}, spacing ({spacing}) mm, "
        f"orientation {_axcodes(mask.affine, len(mask.shape))}, origin ({origin}) mm"
    )
