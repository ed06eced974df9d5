"""Reading and writing ITK formats with SimpleITK (extra ``itk``): MetaImage (``.mha``,
``.mhd`` with its ``.raw``/``.zraw``), NRRD (``.nrrd``) and 3D Slicer segmentations
(``.seg.nrrd``).

Geometry follows nibabel's NIfTI convention, so a mask written as ``.mha`` and as ``.nii.gz`` of
the same image reads as the same array, spacing and affine: voxel axis ``i`` of the array is ITK
index ``i`` (``GetArrayFromImage`` returns them reversed, so the array is transposed back, a view
in Fortran order as nibabel gives), and the affine maps to RAS+ world coordinates (ITK's physical
space is LPS: the first two world axes are negated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _READ_ERRORS, _check_data_files, _unreadable, _Where
from segfair.io.header import _LPS_RAS, _Header
from segfair.io.messages import FIX_UNKNOWN_SEGMENTS, MSG_UNKNOWN_SEGMENTS
from segfair.io.optional import _optional
from segfair.io.segments import _Segment, _segment_access

_KINDS: Final = {
    ".mha": "MetaImage (.mha)",
    ".mhd": "MetaImage (.mhd)",
    ".nrrd": "NRRD (.nrrd)",
    ".seg.nrrd": "3D Slicer segmentation (.seg.nrrd)",
}
_SOURCE: Final = "the image header"
_CHECK: Final = "SimpleITK.ReadImage(path)"


def _kind(path: str) -> str:
    lower = path.lower()
    return next(kind for suffix, kind in _KINDS.items() if lower.endswith(suffix))


def _itk_affine(
    spacing: Sequence[float], direction: Sequence[float], origin: Sequence[float]
) -> NDArray[np.float64]:
    """The RAS voxel-to-world affine of an ITK image's LPS geometry (2-D: a unit third axis)."""
    n = len(spacing)
    m = min(n, 3)  # a 4-D image: its spatial part
    lps = np.eye(4)
    rotation = np.asarray(direction, dtype=np.float64).reshape(n, n)[:m, :m]
    lps[:m, :m] = rotation * np.asarray(spacing, dtype=np.float64)[:m]
    lps[:m, 3] = np.asarray(origin, dtype=np.float64)[:m]
    return _LPS_RAS @ lps


def _pixel_dtype(sitk: Any, pixel_id: int) -> np.dtype[Any] | None:
    """The numpy dtype of an ITK pixel type (scalar or vector); None for complex/unknown ones."""
    names = {
        "UInt8": np.uint8,
        "Int8": np.int8,
        "UInt16": np.uint16,
        "Int16": np.int16,
        "UInt32": np.uint32,
        "Int32": np.int32,
        "UInt64": np.uint64,
        "Int64": np.int64,
        "Float32": np.float32,
        "Float64": np.float64,
    }
    for name, dtype in names.items():
        for prefix in ("sitk", "sitkVector"):
            if getattr(sitk, prefix + name, None) == pixel_id:
                return np.dtype(dtype)
    return None


def _itk_reader(sitk: Any, path: str, where: _Where, kind: str) -> Any:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except _READ_ERRORS as error:
        _unreadable(error, kind, _CHECK, where)
    return reader


def _read_voxels(sitk: Any, path: str, where: _Where, kind: str) -> NDArray[Any]:
    """The voxels with axis ``i`` = ITK index ``i`` (components last), in Fortran order."""
    try:
        image = sitk.ReadImage(path)
        data = sitk.GetArrayFromImage(image)  # (z, y, x[, component]), C order
    except _READ_ERRORS as error:
        _unreadable(error, kind, _CHECK, where)
    n = image.GetDimension()
    axes = (*reversed(range(n)), *range(n, data.ndim))
    return np.asarray(data.transpose(axes))


def _itk_header(path: str, where: _Where) -> _Header:
    kind = _kind(path)
    sitk = _optional("SimpleITK", kind, where)
    _check_data_files(path, where)
    reader = _itk_reader(sitk, path, where, kind)
    size = tuple(int(n) for n in reader.GetSize())
    components = int(reader.GetNumberOfComponents())
    # several components per voxel: one more axis, refused by the 2-D/3-D rule as a 4-D mask
    shape = size + ((components,) if components > 1 else ())
    spacing = tuple(float(s) for s in reader.GetSpacing())
    affine = _itk_affine(spacing, reader.GetDirection(), reader.GetOrigin())
    dtype = _pixel_dtype(sitk, int(reader.GetPixelID()))
    if dtype is None:
        dtype = np.dtype(np.complex128)  # complex (or an exotic type): refused as not a mask

    def read() -> NDArray[Any]:
        return _read_voxels(sitk, path, where, kind)

    return _Header(shape, dtype, spacing, _SOURCE, affine, _SOURCE, read)


def _seg_nrrd_segments(meta: dict[str, str], layers: int, where: _Where) -> list[_Segment]:
    """The segments a 3D Slicer ``.seg.nrrd`` declares (``Segment<N>_*`` header fields)."""
    count = 0
    while f"Segment{count}_ID" in meta:
        count += 1
    found: list[tuple[str, int, int]] = []
    try:
        for i in range(count):
            name = meta.get(f"Segment{i}_Name", meta[f"Segment{i}_ID"])
            # Slicer before 4.11 wrote one segment per layer, each with value 1, and no fields
            layer = int(meta.get(f"Segment{i}_Layer", i if layers > 1 else 0))
            value = int(meta.get(f"Segment{i}_LabelValue", 1))
            if not 0 <= layer < layers:
                raise ValueError(f"segment {i} is in layer {layer}, the file has {layers}")
            if value <= 0:
                raise ValueError(f"segment {i} has label value {value}")
            found.append((name, layer, value))
    except ValueError as error:
        where.fail(MSG_UNKNOWN_SEGMENTS.format(reason=str(error)), FIX_UNKNOWN_SEGMENTS)
    places = [(layer, value) for _, layer, value in found]
    if len(set(places)) != len(places):
        where.fail(
            MSG_UNKNOWN_SEGMENTS.format(reason="two segments share a layer and a label value"),
            FIX_UNKNOWN_SEGMENTS,
        )
    values = [value for _, _, value in found]
    # The label of a segment is its label value, as in the label map Slicer exports; when values
    # repeat across layers (one-hot stacks), its position: Segment0 is label 1.
    distinct = len(set(values)) == len(values)
    return [
        _Segment(value if distinct else i + 1, name, layer, value)
        for i, (name, layer, value) in enumerate(found)
    ]


def _seg_nrrd_header(path: str, where: _Where) -> _Header:
    kind = _KINDS[".seg.nrrd"]
    sitk = _optional("SimpleITK", kind, where)
    reader = _itk_reader(sitk, path, where, kind)
    meta = {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}
    layers = int(reader.GetNumberOfComponents())
    if "Segment0_ID" not in meta and layers == 1:
        return _itk_header(path, where)  # no segment fields: a plain label map
    header = _itk_header(path, where)
    segments = _seg_nrrd_segments(meta, layers, where)
    shape = header.shape[: len(header.shape) - (layers > 1)]
    cache: list[NDArray[Any]] = []
    voxels = header.read

    def layered() -> NDArray[Any]:
        if not cache:
            data = voxels()
            if data.shape[: len(shape)] != shape:  # the file changed since its header was read
                _unreadable(ValueError(f"data shape {data.shape} != header"), kind, _CHECK, where)
            cache.append(data if layers > 1 else data[..., np.newaxis])
        return cache[0]

    def mask_of(segment: _Segment, threshold: float | None) -> NDArray[np.bool_]:
        return np.asarray(layered()[..., segment.layer] == segment.value)

    def plain() -> NDArray[Any]:
        return layered()[..., 0]

    # one layer whose values are the labels: the file's own array is the label map
    stored = layers == 1 and all(s.label == s.value for s in segments)
    select, read = _segment_access(
        segments, shape, mask_of, cache.clear, where, plain if stored else None
    )

    header.shape = shape
    header.read = read
    header.select = select
    return header


def _write_itk(path: str, voxels: NDArray[Any], affine: NDArray[np.float64], where: _Where) -> None:
    """Write ``voxels`` (axis ``i`` = ITK index ``i``) with the RAS ``affine``, compressed."""
    sitk = _optional("SimpleITK", _kind(path), where)
    n = voxels.ndim
    lps = _LPS_RAS @ affine
    spacing = [float(v) for v in np.linalg.norm(lps[:n, :n], axis=0)]
    direction = (lps[:n, :n] / np.asarray(spacing)).ravel()
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels.T))
    image.SetSpacing(spacing)
    image.SetDirection([float(v) for v in direction])
    image.SetOrigin([float(v) for v in lps[:n, 3]])
    sitk.WriteImage(image, path, True)
