"""Reading DICOM Segmentation objects (``.dcm``, Modality SEG) with pydicom (extra ``dicom``).

Segment number ``k`` is label ``k``: ``labels = [2]`` selects segment 2, ``labels = [1, 3]`` the
union of segments 1 and 3, united frame by frame so that voxels in overlapping segments are kept.

The grid: array axis 0 runs along the columns of a frame (ImageOrientationPatient's row
direction), axis 1 along its rows, axis 2 along the planes in the order of the slice normal
(row direction × column direction), as ITK (and so dcmqi and SimpleITK) index the volume. The
affine is RAS+ (DICOM's patient space is LPS: the first two world axes are negated), built from
the planes' positions, orientation and pixel spacing. Planes the SEG omits (empty frames) inside
the span of its planes are empty slices; the grid spans the first to the last plane it holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _READ_ERRORS, _unreadable, _Where
from segfair.io.header import _LPS_RAS, _Header
from segfair.io.messages import (
    FIX_NOT_SEG,
    FIX_PROBABILITY,
    FIX_SEG_GEOMETRY,
    MSG_NOT_SEG,
    MSG_PROBABILITY,
    MSG_SEG_GEOMETRY,
)
from segfair.io.optional import _optional
from segfair.io.segments import _Segment, _segment_access

_KIND: Final = "DICOM-SEG (.dcm)"
_CHECK: Final = "pydicom.dcmread(path).pixel_array"
_SEG_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.66.4"
_SOURCE: Final = "the DICOM-SEG pixel measures"
# how far (mm) two plane positions may differ and still be one plane (DICOM decimal strings)
_PLANE_TOL: Final = 1e-3
# pydicom's errors for a damaged data set, beside the usual read errors
_STRUCTURE_ERRORS: Final = (AttributeError, KeyError, IndexError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each frame of a SEG lies in the volume."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: NDArray[np.float64]
    slices: tuple[int, ...]  # the plane of each frame
    segments: tuple[int, ...]  # the segment number of each frame (0 for a LABELMAP SEG)


def _item(groups: Any, shared: Any, name: str) -> Any:
    """A functional group's first item, per frame or else shared (the standard allows both)."""
    for source in (groups, shared):
        if source is not None and name in source:
            return source[name].value[0]
    raise KeyError(f"no {name} for a frame")


def _layout(ds: Any, where: _Where) -> _Layout:
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    per_frame = list(getattr(ds, "PerFrameFunctionalGroupsSequence", []))
    shared_seq = getattr(ds, "SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    if len(per_frame) != frames:  # pydicom reads a cut file up to where it ends
        _unreadable(
            ValueError(f"{frames} frames but {len(per_frame)} per-frame functional groups"),
            _KIND,
            _CHECK,
            where,
        )
    labelmap = str(getattr(ds, "SegmentationType", "BINARY")) == "LABELMAP"
    orientations, pixel_spacings, positions, segments = [], [], [], []
    between: float | None = None
    thickness: float | None = None
    for groups in per_frame:
        orientations.append(
            [
                float(v)
                for v in _item(groups, shared, "PlaneOrientationSequence").ImageOrientationPatient
            ]
        )
        measures = _item(groups, shared, "PixelMeasuresSequence")
        pixel_spacings.append([float(v) for v in measures.PixelSpacing])
        if "SpacingBetweenSlices" in measures:
            between = float(measures.SpacingBetweenSlices)
        if "SliceThickness" in measures:
            thickness = float(measures.SliceThickness)
        positions.append(
            [float(v) for v in _item(groups, None, "PlanePositionSequence").ImagePositionPatient]
        )
        segments.append(
            0
            if labelmap
            else int(_item(groups, None, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        )
    orientation = np.asarray(orientations, dtype=np.float64)
    pixel = np.asarray(pixel_spacings, dtype=np.float64)
    where_pos = np.asarray(positions, dtype=np.float64)

    def refuse(reason: str) -> None:
        where.fail(MSG_SEG_GEOMETRY.format(reason=reason), FIX_SEG_GEOMETRY)

    if not frames:
        refuse("it holds no frames")
    if orientation.shape[1] != 6 or np.ptp(orientation, axis=0).max() > 1e-4:
        refuse("the frames differ in orientation")
    if pixel.shape[1] != 2 or np.ptp(pixel, axis=0).max() > 1e-6:
        refuse("the frames differ in pixel spacing")
    row_dir, col_dir = orientation[0, :3], orientation[0, 3:]
    normal = np.cross(row_dir, col_dir)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        refuse("ImageOrientationPatient is not two orthogonal unit vectors")
    depth = where_pos @ normal
    order = np.argsort(depth, kind="stable")
    first = where_pos[order[0]]
    # every position on the line through the first along the normal (no in-plane shift)
    offsets = where_pos - first - np.outer(depth - depth[order[0]], normal)
    if np.abs(offsets).max() > _PLANE_TOL:
        refuse("the planes are shifted within their plane, not stacked along the normal")
    steps = np.diff(np.unique(np.round(depth - depth[order[0]], 6)))
    steps = steps[steps > _PLANE_TOL]
    if between is not None and between > 0:
        slice_spacing = between
    elif steps.size:
        slice_spacing = float(steps.min())
    else:
        slice_spacing = thickness if thickness is not None and thickness > 0 else 1.0
    index = (depth - depth[order[0]]) / slice_spacing
    slices = np.round(index)
    if steps.size and np.abs(index - slices).max() * slice_spacing > _PLANE_TOL:
        refuse(f"the planes are not a whole number of slice spacings ({slice_spacing:g} mm) apart")
    row_spacing, column_spacing = float(pixel[0, 0]), float(pixel[0, 1])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * column_spacing  # axis 0: along a row, one column to the next
    lps[:3, 1] = col_dir * row_spacing  # axis 1: down a column, one row to the next
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = first
    return _Layout(
        shape=(columns, rows, int(slices.max()) + 1),
        spacing=(column_spacing, row_spacing, slice_spacing),
        affine=_LPS_RAS @ lps,
        slices=tuple(int(k) for k in slices),
        segments=tuple(segments),
    )


def _seg_segments(ds: Any) -> list[_Segment]:
    return [
        _Segment(int(item.SegmentNumber), str(getattr(item, "SegmentLabel", "")))
        for item in ds.SegmentSequence
    ]


def _dicom_seg_header(path: str, where: _Where) -> _Header:
    pydicom = _optional("pydicom", _KIND, where)
    errors = (*_READ_ERRORS, pydicom.errors.InvalidDicomError)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except errors as error:
        _unreadable(error, _KIND, _CHECK, where)
    if str(getattr(ds, "SOPClassUID", "")) != _SEG_SOP_CLASS:
        modality = str(getattr(ds, "Modality", "")) or "object"
        what = getattr(getattr(ds, "SOPClassUID", None), "name", "") or "non-SEG object"
        where.fail(MSG_NOT_SEG.format(what=f"{modality} {what}".strip()), FIX_NOT_SEG)
    try:
        layout = _layout(ds, where)
        segments = _seg_segments(ds)
        kind = str(getattr(ds, "SegmentationType", "BINARY"))
        highest = int(getattr(ds, "MaximumFractionalValue", 255) or 255)
        bits = int(ds.BitsAllocated)
    except _STRUCTURE_ERRORS as error:
        _unreadable(error, _KIND, _CHECK, where)
    if kind not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        _unreadable(ValueError(f"SegmentationType {kind!r}"), _KIND, _CHECK, where)
    cache: list[NDArray[Any]] = []

    def frames() -> NDArray[Any]:
        """The pixel data, one (rows, columns) array per frame."""
        if not cache:
            try:
                data = np.asarray(pydicom.dcmread(path).pixel_array)
            except (*errors, *_STRUCTURE_ERRORS) as error:
                _unreadable(error, _KIND, _CHECK, where)
            if data.ndim == 2:
                data = data[np.newaxis]
            if data.shape != (len(layout.slices), layout.shape[1], layout.shape[0]):
                _unreadable(
                    ValueError(f"pixel data of shape {data.shape} for {len(layout.slices)} frames"),
                    _KIND,
                    _CHECK,
                    where,
                )
            cache.append(data)
        return cache[0]

    by_segment: dict[int, list[int]] = defaultdict(list)
    for f, number in enumerate(layout.segments):
        by_segment[number].append(f)

    def mask_of(segment: _Segment, threshold: float | None) -> NDArray[np.bool_]:
        data = frames()
        out = np.zeros(layout.shape, dtype=np.bool_, order="F")
        wanted = by_segment[0] if kind == "LABELMAP" else by_segment.get(segment.label, [])
        for f in wanted:
            frame = data[f]
            if kind == "LABELMAP":
                voxels = frame == segment.label
            elif kind == "BINARY":
                voxels = frame != 0
            else:
                voxels = _fractional(frame, highest, threshold, segment, where)
            out[:, :, layout.slices[f]] |= voxels.T
        return out

    select, read = _segment_access(segments, layout.shape, mask_of, cache.clear, where)

    dtype = np.dtype(np.uint16 if bits > 8 else np.uint8)
    return _Header(
        layout.shape, dtype, layout.spacing, _SOURCE, layout.affine, _SOURCE, read, select=select
    )


def _fractional(
    frame: NDArray[Any],
    highest: int,
    threshold: float | None,
    segment: _Segment,
    where: _Where,
) -> NDArray[np.bool_]:
    """A FRACTIONAL frame's voxels: value / MaximumFractionalValue ≥ threshold. Without a
    threshold only 0 and the maximum (a binary segment stored as fractional) are accepted,
    as a probability map in any other format is refused."""
    if threshold is not None:
        return np.asarray(frame / highest >= threshold)
    if np.isin(frame, (0, highest), invert=True).any():
        values: Sequence[float] = (float(frame.min()) / highest, float(frame.max()) / highest)
        where.fail(
            MSG_PROBABILITY.format(min=values[0], max=values[1])
            + f" (segment {segment.label}, a FRACTIONAL SEG)",
            FIX_PROBABILITY,
        )
    return np.asarray(frame == highest)
