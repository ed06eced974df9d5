"""Files whose labels are declared segments (DICOM-SEG, 3D Slicer ``.seg.nrrd``): selection by
segment, exact where segments overlap, and the label map when they do not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _Where
from segfair.io.messages import (
    FIX_SEG_OVERLAP,
    FIX_SEGMENTS_NOT_FOUND,
    MSG_SEG_OVERLAP,
    MSG_SEGMENTS_NOT_FOUND,
)


@dataclass(frozen=True, slots=True)
class _Segment:
    """A declared segment: the label that selects it, its name, and where its voxels are."""

    label: int
    name: str
    layer: int = 0  # .seg.nrrd: the layer (component) that holds it
    value: int = 1  # .seg.nrrd: its value in that layer


# the voxels of one segment (given the threshold, for fractional DICOM-SEG)
_MaskOf = Callable[[_Segment, float | None], NDArray[np.bool_]]


def _listing(segments: Sequence[_Segment]) -> str:
    return ", ".join(f"{s.label} ({s.name})" if s.name else str(s.label) for s in segments)


def _chosen(segments: Sequence[_Segment], labels: tuple[int, ...], where: _Where) -> list[_Segment]:
    """The segments ``labels`` select; none at all is an error listing the file's segments.

    A selected segment that is declared but empty is a legitimately empty mask (a segment is
    declared, so an empty one is not the silent 0/255 mistake of a label map)."""
    chosen = [s for s in segments if s.label in labels]
    if not chosen:
        where.fail(
            MSG_SEGMENTS_NOT_FOUND.format(selected=list(labels)),
            FIX_SEGMENTS_NOT_FOUND.format(segments=_listing(segments) or "none"),
        )
    return chosen


def _union(
    segments: Sequence[_Segment],
    labels: tuple[int, ...],
    threshold: float | None,
    mask_of: _MaskOf,
    where: _Where,
) -> NDArray[np.bool_]:
    """The voxels of every selected segment, united (a voxel in two segments counts once).

    The first segment's (fresh) array is the result, so it keeps the memory order the reader
    gave it: an ``|=`` between a C- and a Fortran-ordered volume is a strided walk, 10x slower.
    """
    first, *others = _chosen(segments, labels, where)
    out = mask_of(first, threshold)
    for segment in others:
        out |= mask_of(segment, threshold)
    return out


def _label_map(
    segments: Sequence[_Segment],
    shape: tuple[int, ...],
    mask_of: _MaskOf,
    where: _Where,
) -> NDArray[np.integer]:
    """One label map (segment label per voxel), refused when two segments overlap."""
    top = max((s.label for s in segments), default=0)
    out = np.zeros(shape, dtype=np.uint8 if top <= 255 else np.uint16)
    owner: dict[int, _Segment] = {}
    for segment in segments:
        voxels = mask_of(segment, None)
        taken = out[voxels]
        if taken.any():
            first = owner[int(taken[taken != 0][0])]
            where.fail(
                MSG_SEG_OVERLAP.format(
                    first=_listing([first]),
                    second=_listing([segment]),
                    voxels=int(np.count_nonzero(taken)),
                ),
                FIX_SEG_OVERLAP,
            )
        out[voxels] = segment.label
        owner[segment.label] = segment
    return out


_Select = Callable[[tuple[int, ...], float | None], NDArray[np.bool_]]


def _segment_access(
    segments: Sequence[_Segment],
    shape: tuple[int, ...],
    mask_of: _MaskOf,
    release: Callable[[], None],
    where: _Where,
    plain: Callable[[], NDArray[np.integer]] | None = None,
) -> tuple[_Select, Callable[[], NDArray[np.integer]]]:
    """A header's ``select`` (the exact union of the selected segments) and ``read`` (the label
    map: ``plain()`` when the file already stores one, else built, refused on overlap); both
    ``release`` the voxels the reader cached once done."""

    def select(labels: tuple[int, ...], threshold: float | None) -> NDArray[np.bool_]:
        try:
            return _union(segments, labels, threshold, mask_of, where)
        finally:
            release()

    def read() -> NDArray[np.integer]:
        try:
            return plain() if plain is not None else _label_map(segments, shape, mask_of, where)
        finally:
            release()

    return select, read
