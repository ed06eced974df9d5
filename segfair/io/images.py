"""Reading and writing image masks (extra ``images``): PNG with Pillow, TIFF with tifffile.

Axis order is NumPy's: a 2-D mask is (row, column) = (y, x), a TIFF stack (plane, row, column),
exactly as ``np.asarray(PIL.Image.open(path))`` or ``tifffile.imread(path)`` give it, so a PNG and
a NumPy copy of it read as the same array. Values are labels: a 0/255 binary mask's foreground is
label 255 (``labels = [255]``); leaving ``labels = [1]`` is refused with the values the image holds.

Spacing (mm) comes from the file where the format holds it (PNG ``pHYs`` in pixels per metre;
TIFF ``XResolution``/``YResolution`` in pixels per inch or centimetre, or in ImageJ's ``unit``,
and a stack's plane spacing from ImageJ's or tifffile's ``spacing``), else from the configured
``spacing``, else 1.0 per axis. The affine is ``diag(spacing)`` (an image holds no orientation or
origin), as for NumPy files.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from io import BytesIO
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from segfair.io.files import _READ_ERRORS, _unreadable, _Where
from segfair.io.header import _Header
from segfair.io.messages import (
    FIX_COLOUR_IMAGE,
    FIX_SAVE_IMAGE_GEOMETRY,
    MSG_COLOUR_IMAGE,
    MSG_SAVE_IMAGE_GEOMETRY,
)
from segfair.io.optional import _optional

_PNG: Final = "PNG (.png)"
_TIFF: Final = "TIFF (.tif, .tiff)"
_PNG_SOURCE: Final = "the PNG pHYs chunk"
_TIFF_SOURCE: Final = "the TIFF resolution tags"
# Pillow modes that hold one value per pixel, and the dtype numpy gives them
_MODES: Final = {
    "1": np.bool_,
    "L": np.uint8,
    "P": np.uint8,  # palette indices: the usual way to store a label map with colours
    "I;16": np.uint16,
    "I;16L": np.uint16,
    "I;16B": np.uint16,
    "I": np.int32,
    "F": np.float32,
}
# millimetres per unit: TIFF ResolutionUnit 2 (inch), 3 (centimetre), and ImageJ's unit names
_TIFF_UNITS: Final = {2: 25.4, 3: 10.0}
_IMAGEJ_UNITS: Final = {
    "mm": 1.0,
    "millimeter": 1.0,
    "millimetre": 1.0,
    "cm": 10.0,
    "m": 1000.0,
    "micron": 1e-3,
    "um": 1e-3,
    "\u00b5m": 1e-3,
    "nm": 1e-6,
    "inch": 25.4,
}


def _pillow(where: _Where) -> Any:
    _optional("PIL", _PNG, where)
    import PIL.Image

    return PIL.Image


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: Bytes of a PNG read at once: a whole small mask (a 512×512 0/255 mask is a few kB), which the
#: decoder then takes from memory; the header of a larger file.
_PNG_HEAD: Final = 1 << 16
#: (colour type, bit depth) → Pillow's mode, for the PNGs :func:`_png_fast_header` reads itself
_PNG_FAST_MODES: Final = {(0, 8): "L", (0, 1): "1", (3, 8): "P"}
#: Chunks before the image data that change nothing a mask's header says (anything else, such
#: as an animation's acTL, transparency or a compressed profile, goes through Pillow).
_PNG_PLAIN_CHUNKS: Final = frozenset(
    {b"PLTE", b"pHYs", b"gAMA", b"cHRM", b"sRGB", b"tEXt", b"tIME", b"bKGD", b"sBIT"}
)


def _png_fast_header(
    path: str, max_pixels: int | None
) -> tuple[int, int, str, tuple[int, int] | None, bytes | None] | None:
    """(height, width, Pillow's mode, pHYs pixels per metre (x, y) or None, the whole file if it
    was read whole) of a plain greyscale or palette PNG, read from its chunks with one ``read``;
    None for anything else (other modes, interlacing is fine; any chunk it does not know, a bad
    CRC, a short file, a file it cannot open): Pillow reads those, with its checks and errors.

    Pillow's ``open`` costs ≈0.15 ms a file (several reads, a parser object per chunk): at a
    hundred thousand 2-D cases, validating their headers took longer than the statistics."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_PNG_HEAD)
    except OSError:
        return None
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33:
        return None
    pos, mode, height, width, phys = 8, None, 0, 0, None
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            return None
        body = data[pos + 8 : end]
        if zlib.crc32(kind + body) != int.from_bytes(data[end : end + 4], "big"):
            return None
        if pos == 8:  # the first chunk is the IHDR
            if kind != b"IHDR" or length != 13 or body[10:12] != b"\0\0" or body[12] > 1:
                return None
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            mode = _PNG_FAST_MODES.get((body[9], body[8]))
            too_many = max_pixels is not None and width * height > max_pixels  # Pillow's bomb
            if mode is None or not width or not height or too_many:
                return None
        elif kind == b"IDAT":
            whole = data if len(data) < _PNG_HEAD else None
            return None if mode is None else (height, width, mode, phys, whole)
        elif kind == b"pHYs" and length == 9:
            # like Pillow: only a metre unit (1) is a pixel size; unit 0 is an aspect ratio
            if body[8] == 1:
                phys = (int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"))
        elif kind == b"pHYs" or kind not in _PNG_PLAIN_CHUNKS:  # a short pHYs: Pillow says so
            return None
        pos = end + 4
    return None


def _png_header(path: str, where: _Where) -> _Header:
    image_module = _pillow(where)
    errors = (*_READ_ERRORS, image_module.DecompressionBombError)
    fast = _png_fast_header(path, image_module.MAX_IMAGE_PIXELS)
    if fast is not None:
        height, width, mode, phys, whole = fast
        per_metre = None if phys is None else list(phys)
        bands = 1
        frames = 1
    else:
        try:
            with image_module.open(path) as image:
                if image.format != "PNG":
                    raise ValueError(f"it is a {image.format} image, not a PNG")
                width, height = image.size
                mode = image.mode
                frames = int(getattr(image, "n_frames", 1))
                dpi = image.info.get("dpi")
                bands = len(image.getbands())
        except errors as error:
            _unreadable(error, _PNG, "PIL.Image.open(path).load()", where)
        # Pillow gives pixels per metre × 0.0254; PNG stores whole pixels per metre (x, y)
        per_metre = None if dpi is None else [round(float(d) / 0.0254) for d in dpi]
        whole = None
    if mode not in _MODES:
        where.fail(MSG_COLOUR_IMAGE.format(mode=mode, bands=bands), FIX_COLOUR_IMAGE)
    if frames != 1:
        _unreadable(ValueError(f"an animated PNG of {frames} frames"), _PNG, "Pillow", where)
    spacing: tuple[float, ...] | None = None
    if per_metre is not None:
        spacing = tuple(1000.0 / p if p > 0 else 0.0 for p in reversed(per_metre))

    def read() -> NDArray[Any]:
        try:
            # a small file read whole with its header is decoded from memory: no second open
            with image_module.open(path if whole is None else BytesIO(whole)) as image:
                image.load()
                return np.asarray(image)
        except errors as error:
            _unreadable(error, _PNG, "PIL.Image.open(path).load()", where)

    return _Header(
        (height, width), np.dtype(_MODES[mode]), spacing, _PNG_SOURCE, None, "", read, whole=whole
    )


def _tiff_spacing(tif: Any, ndim: int) -> tuple[float, ...] | None:
    """(z,) y, x spacing in mm from the resolution tags and ImageJ/tifffile metadata, or None."""
    page = tif.pages[0]
    tags = page.tags
    x_res, y_res, unit_tag = (tags.get(n) for n in ("XResolution", "YResolution", "ResolutionUnit"))
    meta = tif.imagej_metadata or (tif.shaped_metadata or [None])[0] or {}
    unit_name = str(meta.get("unit", "")).strip().lower()
    unit = _TIFF_UNITS.get(int(unit_tag.value) if unit_tag is not None else 1)
    if unit is None:
        unit = _IMAGEJ_UNITS.get(unit_name)
    if unit is None or x_res is None or y_res is None:
        return None
    in_plane = []
    for tag in (y_res, x_res):
        numerator, denominator = tag.value
        in_plane.append(unit * denominator / numerator if numerator else 0.0)
    if ndim == 2:
        return tuple(in_plane)
    depth = meta.get("spacing")
    depth_unit = _IMAGEJ_UNITS.get(unit_name)
    if ndim != 3 or depth is None or depth_unit is None:
        return None
    return (float(depth) * depth_unit, *in_plane)


def _tiff_header(path: str, where: _Where) -> _Header:
    tifffile = _optional("tifffile", _TIFF, where)
    check = "tifffile.imread(path)"
    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.series) != 1:
                raise ValueError(f"it holds {len(tif.series)} image series, a mask holds one")
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape)
            axes = str(series.axes)
            dtype = np.dtype(series.dtype)
            spacing = _tiff_spacing(tif, len(shape))
    except _READ_ERRORS as error:
        _unreadable(error, _TIFF, check, where)
    if "S" in axes:  # samples per pixel: RGB(A)
        where.fail(
            MSG_COLOUR_IMAGE.format(mode="RGB", bands=shape[axes.index("S")]), FIX_COLOUR_IMAGE
        )

    def read() -> NDArray[Any]:
        try:
            return np.asarray(tifffile.imread(path, series=0))
        except _READ_ERRORS as error:
            _unreadable(error, _TIFF, check, where)

    return _Header(shape, dtype, spacing, _TIFF_SOURCE, None, "", read)


def _check_diagonal(affine: NDArray[np.float64], ndim: int, kind: str, where: _Where) -> None:
    """An image file holds a pixel size only: refuse an affine it would lose."""
    spacing = np.abs(np.diag(affine)[:ndim])
    if not np.allclose(affine, np.diag([*spacing, *([1.0] * (3 - ndim)), 1.0])):
        where.fail(MSG_SAVE_IMAGE_GEOMETRY.format(kind=kind), FIX_SAVE_IMAGE_GEOMETRY)


def _write_image(
    path: str,
    voxels: NDArray[Any],
    affine: NDArray[np.float64],
    spacing: Sequence[float] | None,
    where: _Where,
) -> None:
    """A uint8 mask as a greyscale PNG (2-D) or TIFF (2-D or a stack), the format by suffix.

    The spacing, when given, is the pixel size: a PNG's pHYs in whole pixels per metre (1000 /
    spacing must be a whole number), a TIFF's resolution in centimetres and a stack's plane
    spacing as tifffile's ``spacing`` in mm. An image holds no orientation or origin, so any
    other affine is refused."""
    png = path.lower().endswith(".png")
    kind = _PNG if png else _TIFF
    _check_diagonal(affine, voxels.ndim, kind, where)
    if png:
        _write_png(path, voxels, spacing, where)
        return
    tifffile = _optional("tifffile", kind, where)
    options: dict[str, Any] = {"photometric": "minisblack"}
    if spacing is not None:
        options["resolution"] = (10.0 / spacing[-1], 10.0 / spacing[-2])
        options["resolutionunit"] = "CENTIMETER"
        options["metadata"] = {"unit": "mm"}
        if voxels.ndim == 3:
            options["metadata"]["spacing"] = float(spacing[0])
    tifffile.imwrite(path, voxels, **options)


def _write_png(
    path: str, voxels: NDArray[Any], spacing: Sequence[float] | None, where: _Where
) -> None:
    image_module = _pillow(where)
    if voxels.ndim != 2:
        where.fail(
            MSG_SAVE_IMAGE_GEOMETRY.format(kind=_PNG + " of a 3-D mask"), FIX_SAVE_IMAGE_GEOMETRY
        )
    image = image_module.fromarray(np.ascontiguousarray(voxels, dtype=np.uint8))
    options: dict[str, Any] = {}
    if spacing is not None:
        per_metre = [1000.0 / s for s in reversed(spacing)]  # pHYs is (x, y)
        if not all(math.isclose(p, round(p), rel_tol=0, abs_tol=1e-6) for p in per_metre):
            where.fail(
                MSG_SAVE_IMAGE_GEOMETRY.format(kind=f"PNG with spacing {tuple(spacing)} mm"),
                FIX_SAVE_IMAGE_GEOMETRY,
            )
        options["dpi"] = tuple(round(p) * 0.0254 for p in per_metre)
    image.save(path, format="PNG", **options)
