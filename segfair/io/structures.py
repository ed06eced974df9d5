"""Named structures from label maps in one pass: :func:`select_structures`.

A structure is a label or the union of several (BraTS: whole tumour = {1, 2, 3}). Each label map
of a case is scanned once: the bounding box of its nonzero voxels (one reduction, the same as for a
binary mask), then ``scipy.ndimage.find_objects`` on that box only gives every label's box. A
structure's box is the union of its labels' boxes across the case's maps, and its voxels are
selected (``np.isin``) inside that box only: no structure scans the whole volume again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from segfair.io.files import _Where
from segfair.io.labels import _found_labels
from segfair.io.mask import LabelMap
from segfair.io.messages import FIX_STRUCTURE_LABELS_NOT_FOUND, MSG_LABELS_NOT_FOUND
from segfair.metrics.arrays import find_extent

__all__ = ["select_structures"]

_Box = tuple[slice, ...]


def select_structures(
    maps: Mapping[str, LabelMap],
    structures: Mapping[str, Sequence[int]],
    *,
    case_id: str | None = None,
) -> dict[str, dict[str, NDArray[np.bool_]]]:
    """Each structure of each label map as a boolean crop: ``structure → map name → crop``.

    All crops of one structure share one box: the union of that structure's voxels across the
    maps, so they are aligned and hold every voxel of the structure in any map (the metrics of
    the crops are those of the full-size masks, see :func:`segfair.metrics.compute_many`). A
    structure absent from every map is a 1-voxel all-background crop: an empty mask, scored by
    the empty-mask rules. The maps must share one grid (checked before, by the caller).

    Raises
    ------
    InputError
        A map holds nonzero values but none of the labels of any structure (the classic silent
        failure: a 0/255 mask read as label 1), naming the case, the file and the labels found.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((4, 6), np.uint8); lab[1, 1:3] = 1; lab[2, 2] = 3
    >>> m = LabelMap(lab, (1.0, 1.0), np.eye(4))
    >>> out = select_structures({"ref": m}, {"core": [1, 3], "enhancing": [3]})
    >>> out["core"]["ref"].astype(int).tolist(), out["enhancing"]["ref"].tolist()
    ([[1, 1], [0, 1]], [[True]])
    """
    wanted = sorted({int(x) for labels in structures.values() for x in labels})
    boxes = {k: _label_boxes(m, wanted, case_id) for k, m in maps.items()}
    ndim = next(iter(maps.values())).array.ndim if maps else 3
    out: dict[str, dict[str, NDArray[np.bool_]]] = {}
    for name, labels in structures.items():
        found = [b for per in boxes.values() for x in labels if (b := per.get(int(x))) is not None]
        if not found:
            empty = np.zeros((1,) * ndim, dtype=np.bool_)
            out[name] = {k: empty for k in maps}
            continue
        box = tuple(
            slice(min(b[a].start for b in found), max(b[a].stop for b in found))
            for a in range(ndim)
        )
        out[name] = {k: _select(m.array[box], labels) for k, m in maps.items()}
    return out


def _select(crop: NDArray[Any], labels: Sequence[int]) -> NDArray[np.bool_]:
    """The voxels of ``crop`` whose value is one of ``labels``, as a C-ordered bool array."""
    crop = np.ascontiguousarray(crop)  # small; the metrics want C order
    if crop.dtype.kind == "b":
        crop = crop.view(np.uint8)
    if len(labels) == 1:
        return np.asarray(crop == labels[0])
    return np.isin(crop, np.asarray(labels))


def _label_boxes(m: LabelMap, wanted: Sequence[int], case_id: str | None) -> dict[int, _Box]:
    """The box of every wanted label present in ``m`` (one scan of the volume, then the crop
    of its nonzero voxels only); refuses a nonempty map that holds none of them."""
    data = m.array
    extent = find_extent(data)
    if extent is None:
        return {}  # all background: every structure is legitimately empty here
    offset = [lo for lo, _ in extent]
    crop = data[tuple(slice(lo, hi) for lo, hi in extent)]
    if crop.dtype.kind == "b":
        crop = crop.view(np.uint8)
    elif crop.dtype.kind == "f":
        crop = crop.astype(np.int64)  # whole numbers (checked on load)
    top = max(wanted)
    if crop.dtype.kind == "u" and crop.dtype.itemsize <= 2 and top > np.iinfo(crop.dtype).max:
        top = int(np.iinfo(crop.dtype).max)
    # find_objects walks its input in C order: a Fortran-ordered volume (NIfTI) is handed over
    # as its transpose, which is C-ordered in memory (≈10× faster), and the boxes transposed back
    fortran = data.ndim > 1 and data.flags.f_contiguous and not data.flags.c_contiguous
    found = ndimage.find_objects(crop.T if fortran else crop, max_label=top) if top >= 1 else []
    if fortran:
        found = [None if b is None else b[::-1] for b in found]
    out: dict[int, _Box] = {}
    for label in wanted:
        b = found[label - 1] if 1 <= label <= len(found) else None
        if b is not None:
            out[label] = tuple(
                slice(s.start + o, s.stop + o) for s, o in zip(b, offset, strict=True)
            )
    if not out:
        shown = [v for v in _found_labels(crop) if v != 0]
        where = _Where(case_id, m.path)
        where.fail(
            MSG_LABELS_NOT_FOUND.format(selected=list(wanted), found=shown[:20]),
            FIX_STRUCTURE_LABELS_NOT_FOUND.format(
                suggestion=", ".join(f"s{v} = {v}" for v in shown[:3])
            ),
        )
    return out
