"""Named structures from label maps in one pass: :func:`select_structures`.

A structure is a label or the union of several (BraTS: whole tumour = {1, 2, 3}). Each label map
of a case is scanned once for every label's box: SIMD maxima along its axes split the labelled
voxels into small blocks, and ``scipy.ndimage.find_objects`` runs inside those only (not voxel by
voxel over the whole volume, which costs more than reading it). A structure's box is the union
of its labels' boxes across the case's maps, and its voxels are selected (``np.isin``) inside
that box only: no structure scans the whole volume again.
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
    if crop.dtype.kind == "b":
        crop = crop.view(np.uint8)
    # compared in the map's own memory order, then copied to C order (the metrics want it): a
    # contiguous result transposes ≈5× faster than the strided crop of a Fortran-ordered map
    if len(labels) <= 4:
        inside = crop == labels[0]
        for label in labels[1:]:
            inside |= crop == label
    else:
        inside = np.isin(crop, np.asarray(labels))
    return np.ascontiguousarray(inside)


def _label_boxes(m: LabelMap, wanted: Sequence[int], case_id: str | None) -> dict[int, _Box]:
    """The box of every wanted label present in ``m`` (see :func:`_find_boxes`); refuses a
    nonempty map that holds none of them."""
    data = m.array
    extent = find_extent(data)  # known from the read: no scan
    if extent is None:
        return {}  # all background: every structure is legitimately empty here
    crop = data[tuple(slice(lo, hi) for lo, hi in extent)]
    if data.dtype.kind == "f":  # whole numbers (checked on load), converted on the crop only
        scan, offset = crop.astype(np.int64), [lo for lo, _ in extent]
    elif 2 * crop.size < data.size:  # labels in one region (a tumour): its crop only
        scan, offset = crop, [lo for lo, _ in extent]
    else:  # labels all over: the whole volume, whose projections read contiguous memory
        scan, offset = data, [0] * data.ndim
    if scan.dtype.kind == "b":
        scan = scan.view(np.uint8)
    top = max(wanted)
    if scan.dtype.kind == "u" and scan.dtype.itemsize <= 2 and top > np.iinfo(scan.dtype).max:
        top = int(np.iinfo(scan.dtype).max)
    # a Fortran-ordered volume (NIfTI) is handed over as its transpose, which is C-ordered in
    # memory (find_objects walks its input in C order: ≈10× faster), and the boxes transposed back
    fortran = data.ndim > 1 and data.flags.f_contiguous and not data.flags.c_contiguous
    view = scan.T if fortran else scan
    if top < 1:
        found: dict[int, _Box] = {}
    elif view.size <= _SMALL_VOXELS:  # one walk is cheaper than the projections
        found = {i + 1: b for i, b in enumerate(_objects(view, top)) if b is not None}
    else:
        found = _find_boxes(view, top)
    out: dict[int, _Box] = {}
    for label in wanted:
        b = found.get(label)
        if b is not None:
            b = b[::-1] if fortran else b
            out[label] = tuple(
                slice(s.start + o, s.stop + o) for s, o in zip(b, offset, strict=True)
            )
    if not out:
        shown = [
            v
            for v in _found_labels(crop.view(np.uint8) if crop.dtype.kind == "b" else crop)
            if v != 0
        ]
        where = _Where(case_id, m.path)
        where.fail(
            MSG_LABELS_NOT_FOUND.format(selected=list(wanted), found=shown[:20]),
            FIX_STRUCTURE_LABELS_NOT_FOUND.format(
                suggestion=", ".join(f"s{v} = {v}" for v in shown[:3])
            ),
        )
    return out


#: Up to this many voxels, one ``find_objects`` over the labels' region (≈1 ms a million
#: voxels) beats projecting it: a tumour's crop.
_SMALL_VOXELS = 2_000_000

#: Above this many blocks in one projection, one ``find_objects`` over the box is cheaper than
#: one per block (each call costs tens of microseconds of Python).
_MAX_BLOCKS = 64


def _find_boxes(data: NDArray[Any], top: int) -> dict[int, _Box]:
    """The box of every label 1..``top`` present in ``data``, as ``find_objects`` finds them,
    without walking every voxel.

    ``find_objects`` visits every voxel one by one (≈1 ns each: ≈50 ms for a 512×512×160 map
    whose organs spread over the whole volume), while a SIMD maximum over an axis costs a few ms.
    So the box is split into blocks: the projection of the labelled voxels along one axis (the
    one of largest stride first), its groups of touching pixels, each group's box extended along the
    axis to the labelled extent there; then each block along the next axis, and so on.
    ``find_objects`` runs only inside the final blocks, which together hold every labelled voxel;
    a label's box is the union of its boxes in the blocks: the same box.
    """
    out: dict[int, _Box] = {}
    # the axis of the largest stride first: its projection is a maximum of contiguous slabs
    axes = sorted(range(data.ndim), key=lambda a: -abs(data.strides[a]))
    _split(data, (0,) * data.ndim, top, axes, out)
    return out


def _split(
    data: NDArray[Any], offset: tuple[int, ...], top: int, axes: list[int], out: dict[int, _Box]
) -> None:
    """Add to ``out`` the boxes (shifted by ``offset``) of the labels in ``data``, splitting it
    into blocks along ``axes`` in turn (see :func:`_find_boxes`)."""
    if not axes or data.ndim < 2 or data.size == 0:
        _merge(out, _objects(data, top), offset)
        return
    axis, rest = axes[0], axes[1:]
    blocks, n = ndimage.label(data.max(axis=axis) > 0)
    if n > _MAX_BLOCKS:
        _merge(out, _objects(data, top), offset)
        return
    others = tuple(a for a in range(data.ndim) if a != axis)
    for block in ndimage.find_objects(blocks):
        full = list(block)
        full.insert(axis, slice(0, data.shape[axis]))
        sub = data[tuple(full)]
        along = np.flatnonzero(sub.max(axis=others) > 0)
        full[axis] = slice(int(along[0]), int(along[-1]) + 1)
        sub = data[tuple(full)]
        start = tuple(o + int(f.start) for o, f in zip(offset, full, strict=True))
        _split(sub, start, top, rest, out)


def _objects(data: NDArray[Any], top: int) -> list[_Box | None]:
    """``find_objects`` of ``data``, copied to C order first: on a strided block it is several
    times slower than the copy."""
    return list(ndimage.find_objects(np.ascontiguousarray(data), max_label=top))


def _merge(out: dict[int, _Box], found: Sequence[_Box | None], offset: tuple[int, ...]) -> None:
    """Widen ``out``'s box of every label found (``find_objects`` order) by its box there."""
    for i, b in enumerate(found):
        if b is None:
            continue
        box = tuple(slice(s.start + o, s.stop + o) for s, o in zip(b, offset, strict=True))
        seen = out.get(i + 1)
        out[i + 1] = (
            box
            if seen is None
            else tuple(
                slice(min(s.start, t.start), max(s.stop, t.stop))
                for s, t in zip(seen, box, strict=True)
            )
        )
