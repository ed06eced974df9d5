"""Shape descriptors of one reference mask, to compare lesion morphology across subgroups.

A disparity in Dice between groups may come from the lesions rather than the model: small,
fragmented or flat lesions are harder to segment for anyone. These descriptors let the audit show
such differences and stratify by them.

3-D masks (:data:`DESCRIPTORS`):

- ``volume_ml``: voxel count × voxel volume / 1000.
- ``surface_area_mm2``: area of the ``skimage.measure.marching_cubes`` mesh (Lewiner, level 0.5,
  physical spacing) of the zero-padded mask, summed from a per-cell table of that mesh rather than
  by building it (same numbers, a quarter of the time).
- ``sphericity``: π^(1/3)·(6V)^(2/3)/A with A the mesh area and V the volume *enclosed by the
  same mesh* (as pyradiomics does), so that it is ≤ 1 for every shape; a voxel count would make a
  single voxel 2.8 "times rounder than a sphere".
- ``components``: connected components with full connectivity (26 in 3-D, 8 in 2-D).
- ``elongation`` = sqrt(λ2/λ1) and ``flatness`` = sqrt(λ3/λ1) with λ1 ≥ λ2 ≥ λ3 the eigenvalues of
  the covariance of the physical coordinates of the voxel centres (pyradiomics definitions): 1 for
  a ball, towards 0 for a rod (elongation) or a plate (flatness).

2-D masks (:data:`DESCRIPTORS_2D`) get only what is meaningful in a plane: ``area_mm2`` (pixel count
× pixel area), ``perimeter_mm`` (length of the ``skimage.measure.find_contours`` contours at level
0.5 of the zero-padded mask, ``fully_connected="high"``, in mm), ``circularity`` = 4π·A/P² (A the
area enclosed by those contours, holes subtracted, so ≤ 1), ``components`` and ``elongation``; no
flatness. Perimeter and enclosed area are summed from a per-configuration table of the 2×2 cells
(marching squares), not traced: the same numbers (to ≈1e-15) without assembling contours. With
numba installed the counts behind the 2-D descriptors (pixel sums, cell histogram, components)
come from one compiled pass over the crop, the same integers as numpy's and scipy's.

Degenerate masks:

=================  ======  ====  ========================  ==========  ==========  ========
mask               volume  area  sphericity / circularity  components  elongation  flatness
=================  ======  ====  ========================  ==========  ==========  ========
empty              0.0     0.0   nan                       0.0         nan         nan
single voxel       voxel   mesh  mesh value                1.0         nan         nan
=================  ======  ====  ========================  ==========  ==========  ========

A single voxel has a degenerate covariance (all eigenvalues 0): it has no orientation, so
elongation and flatness are NaN ("undefined"), as for an empty mask. A one-voxel-thick line or
plate is not degenerate in this sense: its elongation or flatness is 0. The audit skips NaN
descriptors and counts them.

The mask is cropped to its bounding box before anything else, so a lesion in a large volume costs
what the lesion costs, not what the volume costs.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage import measure

from segfair.metrics import compiled
from segfair.metrics.arrays import (
    BoolArray,
    FloatArray,
    Spacing,
    as_array,
    binary_crop,
    check_spacing,
    find_extent,
)

__all__ = ["DESCRIPTORS", "DESCRIPTORS_2D", "describe_mask"]

#: Descriptors of a 3-D mask, in the order :func:`describe_mask` returns them.
DESCRIPTORS: Final[tuple[str, ...]] = (
    "volume_ml",
    "surface_area_mm2",
    "sphericity",
    "components",
    "elongation",
    "flatness",
)
#: Descriptors of a 2-D mask, in the order :func:`describe_mask` returns them.
DESCRIPTORS_2D: Final[tuple[str, ...]] = (
    "area_mm2",
    "perimeter_mm",
    "circularity",
    "components",
    "elongation",
)


def describe_mask(mask: npt.ArrayLike, spacing: Spacing = None) -> dict[str, float]:
    """Shape descriptors of one binary mask, in physical units.

    Parameters
    ----------
    mask
        2-D or 3-D mask, boolean or 0/1 valued.
    spacing
        Voxel size in mm per axis; ``None`` means 1.0 per axis.

    Returns
    -------
    dict
        :data:`DESCRIPTORS` for a 3-D mask, :data:`DESCRIPTORS_2D` for a 2-D one (see the module
        docstring for definitions and for empty and single-voxel masks).

    Raises
    ------
    InputError
        The mask is not binary, not 2-D or 3-D, or the spacing is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> box = np.zeros((30, 30, 30), bool); box[5:25, 10:20, 12:17] = True
    >>> d = describe_mask(box, spacing=(1.0, 1.0, 2.0))
    >>> d["volume_ml"], d["components"], round(d["elongation"], 3), round(d["flatness"], 3)
    (2.0, 1.0, 0.498, 0.491)
    """
    arr = as_array("mask", mask)
    voxel = check_spacing(spacing, arr.ndim)
    extent = find_extent(arr)
    if extent is None:
        nan = math.nan
        if arr.ndim == 2:
            return dict(zip(DESCRIPTORS_2D, (0.0, 0.0, nan, 0.0, nan), strict=True))
        return dict(zip(DESCRIPTORS, (0.0, 0.0, nan, 0.0, nan, nan), strict=True))
    box = tuple(slice(lo, hi) for lo, hi in extent)
    # a 2-D boolean mask needs neither a check nor a C-ordered copy (the compiled pass copies
    # its view into a padded array; numpy's functions read views)
    crop = arr[box] if arr.ndim == 2 and arr.dtype.kind == "b" else binary_crop("mask", arr, box)

    if crop.ndim == 2 and (found := compiled.planar_counts(crop)) is not None:
        # numba: the same integers (sums, cell histogram, components) in one pass over the crop
        sums, labelled = found
        n, first = int(sums[0]), [int(sums[1]), int(sums[2])]
        second = [[int(sums[3]), int(sums[5])], [int(sums[5]), int(sums[4])]]
        ratios = _ratios(n, first, second, voxel)
        perimeter, enclosed = _length_and_area(sums[6:], voxel)
        return _planar(n * math.prod(voxel), perimeter, enclosed, float(labelled), ratios[0])
    size = float(np.count_nonzero(crop)) * math.prod(voxel)
    structure = ndimage.generate_binary_structure(crop.ndim, crop.ndim)
    components = float(ndimage.label(crop, structure=structure)[1])
    ratios = _axis_ratios(crop, voxel)
    if crop.ndim == 3:
        area, enclosed = _mesh_area_and_volume(crop, voxel)
        sphericity = math.pi ** (1 / 3) * (6 * enclosed) ** (2 / 3) / area
        return dict(
            zip(
                DESCRIPTORS,
                (size / 1000.0, area, sphericity, components, ratios[0], ratios[1]),
                strict=True,
            )
        )
    perimeter, enclosed = _length_and_area(_square_histogram(crop), voxel)
    return _planar(size, perimeter, enclosed, components, ratios[0])


def _planar(
    size: float, perimeter: float, enclosed: float, components: float, elongation: float
) -> dict[str, float]:
    circularity = 4 * math.pi * enclosed / perimeter**2
    return dict(
        zip(DESCRIPTORS_2D, (size, perimeter, circularity, components, elongation), strict=True)
    )


def _axis_ratios(crop: BoolArray, spacing: tuple[float, ...]) -> list[float]:
    """sqrt(λ_k/λ_1) for k = 2..ndim of the covariance of physical voxel-centre coordinates.

    The covariance comes from exact integer moments of the voxel indices, read off the 2-D
    projections of the crop (one sum over the third axis per pair of axes), not from a list of
    every voxel's coordinates: a few small sums instead of ``nonzero`` + ``cov`` over 100k points,
    and no round-off (a line's or a plate's zero eigenvalue comes out exactly 0).
    """
    ndim = crop.ndim
    n = int(np.count_nonzero(crop))
    if n < 2:
        return [math.nan] * (ndim - 1)
    index = [np.arange(size, dtype=np.int64) for size in crop.shape]
    first = [0] * ndim  # Σ i_a
    second = [[0] * ndim for _ in range(ndim)]  # Σ i_a i_b
    for a, b in itertools.combinations(range(ndim), 2):
        others = tuple(k for k in range(ndim) if k not in (a, b))
        joint = crop.sum(axis=others, dtype=np.int64) if others else crop.astype(np.int64)
        second[a][b] = second[b][a] = int(index[a] @ joint @ index[b])
        for axis, marginal in ((a, joint.sum(axis=1)), (b, joint.sum(axis=0))):
            first[axis] = int(index[axis] @ marginal)
            second[axis][axis] = int((index[axis] * index[axis]) @ marginal)
    return _ratios(n, first, second, spacing)


def _ratios(
    n: int, first: list[int], second: list[list[int]], spacing: tuple[float, ...]
) -> list[float]:
    """The axis ratios from the pixel count, ``Σ i_a`` and ``Σ i_a i_b`` of the voxel indices."""
    ndim = len(first)
    if n < 2:
        return [math.nan] * (ndim - 1)
    # Python integers: n·Σab − Σa·Σb is exact whatever the mask's size. The covariance is
    # float(n·Σab − Σa·Σb)·(s_a·s_b)/(n(n − 1)) in Python floats: the same IEEE operations, in
    # the same order, as numpy's elementwise product with the outer product of the spacing (a
    # few numpy calls fewer: they dominate a 2-D mask's descriptors).
    scale = n * (n - 1)
    cov = [
        [
            float(n * second[a][b] - first[a] * first[b]) * (spacing[a] * spacing[b]) / scale
            for b in range(ndim)
        ]
        for a in range(ndim)
    ]
    found = np.linalg.eigvalsh(np.array(cov, dtype=np.float64)).tolist()
    # Largest first; round-off in the eigensolver can leave a zero eigenvalue slightly negative
    # (clipped to +0.0, NaN kept, as np.clip does).
    eigen = [e if e > 0.0 or e != e else 0.0 for e in sorted(found, reverse=True)]
    if eigen[0] <= 0.0:  # pragma: no cover - two distinct voxels always spread along one axis
        return [math.nan] * (ndim - 1)
    return [math.sqrt(e / eigen[0]) for e in eigen[1:]]


@functools.cache
def _cell_triangles() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """The marching-cubes triangles of each of the 256 configurations of one 2×2×2 cell.

    Returns the triangles' vertices in unit-cell coordinates, shape (t, 3, 3), and the
    configuration each belongs to: bit ``4i + 2j + k`` of a configuration is the voxel at offset
    ``(i, j, k)`` of the cell. Built once per process (≈20 ms) from skimage itself.
    """
    triangles, owners = [], []
    for config in range(1, 255):  # 0 and 255 (all out, all in) have no surface
        bits = [(config >> b) & 1 for b in range(8)]
        cell = np.asarray(bits, dtype=np.float32).reshape(2, 2, 2)
        verts, faces, _, _ = measure.marching_cubes(cell, level=0.5)
        triangles.append(np.asarray(verts, dtype=np.float64)[faces])
        owners.append(np.full(len(faces), config, dtype=np.intp))
    return np.concatenate(triangles), np.concatenate(owners)


@functools.lru_cache(maxsize=64)
def _configuration_tables(
    spacing: tuple[float, ...],
) -> tuple[FloatArray, FloatArray, list[FloatArray]]:
    """Per configuration: area, a·n summed over its triangles, and n per axis, at ``spacing``.

    Kept per spacing (a case's structures, and a cohort's cases, mostly share one): building
    them costs about as much as the histogram of a 100k-voxel organ's cells.
    """
    triangles, owners = _cell_triangles()
    tri = triangles * np.asarray(spacing, dtype=np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # |n|/2 is a triangle's area; a·n = a·(b×c) is six times the signed volume of the tetrahedron
    # (origin, a, b, c), whose sum over a closed, consistently oriented mesh is the enclosed volume
    # (divergence theorem), cavities subtracted.
    area_of = np.bincount(owners, 0.5 * np.linalg.norm(normal, axis=1), minlength=256)
    local_of = np.bincount(owners, np.einsum("ij,ij->i", tri[:, 0], normal), minlength=256)
    normal_of = [np.bincount(owners, normal[:, a], minlength=256) for a in range(3)]
    tables = [np.asarray(t, dtype=np.float64) for t in (area_of, local_of, *normal_of)]
    for table in tables:
        table.flags.writeable = False  # shared by every later call
    return tables[0], tables[1], tables[2:]


def _mesh_area_and_volume(crop: BoolArray, spacing: tuple[float, ...]) -> tuple[float, float]:
    """Area and enclosed volume of ``skimage.measure.marching_cubes(padded, 0.5, spacing=...)``.

    On a binary mask every vertex sits at an edge midpoint and the triangles inside a cell depend
    only on which of its 8 voxels are set (Lewiner's ambiguity tests read only the cell), so the
    mesh is the union of 256 per-configuration patterns. Summing a per-configuration table over a
    histogram of configurations gives the same numbers as meshing (the tests check this against
    marching_cubes) at a quarter of the cost, without building the mesh.
    """
    step = np.asarray(spacing, dtype=np.float64)
    area_of, local_of, normal_of = _configuration_tables(tuple(float(x) for x in spacing))
    # One voxel of background on every side closes the surface where the mask touches the crop.
    padded = np.pad(crop, 1).view(np.uint8)
    cells = tuple(n - 1 for n in padded.shape)
    config = np.zeros(cells, dtype=np.uint8)
    for i, j, k in itertools.product((0, 1), repeat=3):
        config |= padded[i : cells[0] + i, j : cells[1] + j, k : cells[2] + k] << (
            4 * i + 2 * j + k
        )
    counts = np.bincount(config.reshape(-1), minlength=256)
    area = float(counts @ area_of)
    # A cell at index o contributes (o·spacing)·N_c + L_c: sum o per configuration, per axis.
    where = np.nonzero((config != 0) & (config != 255))
    surface_configs = config[where]
    six_volume = float(counts @ local_of)
    for axis in range(3):
        offsets = np.bincount(surface_configs, where[axis].astype(np.float64), minlength=256)
        six_volume += float(step[axis] * (offsets @ normal_of[axis]))
    return area, abs(six_volume) / 6.0


@functools.lru_cache(maxsize=64)
def _square_tables(spacing: tuple[float, ...]) -> tuple[FloatArray, FloatArray]:
    """Per marching-squares configuration (bit ``2i + j`` is the pixel at offset ``(i, j)`` of a
    2×2 cell): the length of its contour segments and the area of its part inside them, in mm
    and mm² at ``spacing``.

    At level 0.5 on a 0/1 image every contour vertex is an edge midpoint, so a cell's segments and
    its inside part depend only on its configuration: one corner in (or out) is a corner cut, a
    diagonal of half a cell; two pixels side by side, a segment across the cell; the two saddles
    cut off the two background corners (``fully_connected="high"``: diagonal foreground pixels
    are one outline, as for the 8-connected ``components``).
    """
    step_y, step_x = spacing
    cut = math.hypot(step_y / 2, step_x / 2)  # from one edge's midpoint to the next edge's
    length = np.zeros(16)
    inside = np.zeros(16)  # in cells
    for config in range(16):
        corners = [(config >> bit) & 1 for bit in range(4)]  # (0,0), (0,1), (1,0), (1,1)
        n_in = sum(corners)
        if n_in in (1, 3):
            length[config], inside[config] = cut, (1 / 8 if n_in == 1 else 7 / 8)
        elif config in (0b1001, 0b0110):  # a saddle: two background corners cut off
            length[config], inside[config] = 2 * cut, 3 / 4
        elif config in (0b0011, 0b1100):  # one row in: a segment along the row axis
            length[config], inside[config] = step_x, 1 / 2
        elif config in (0b0101, 0b1010):  # one column in: a segment along the column axis
            length[config], inside[config] = step_y, 1 / 2
        elif n_in == 4:
            inside[config] = 1.0
    area = inside * (step_y * step_x)
    for table in (length, area):
        table.flags.writeable = False  # shared by every later call
    return length, area


def _square_histogram(crop: BoolArray) -> npt.NDArray[np.int64]:
    """How many 2×2 cells of the zero-padded crop have each marching-squares configuration."""
    # One pixel of background on every side closes the contours where the mask touches the crop.
    padded = np.pad(crop, 1).view(np.uint8)
    rows, cols = padded.shape[0] - 1, padded.shape[1] - 1
    config = padded[:rows, :cols] | (padded[:rows, 1:] << 1)
    config |= padded[1:, :cols] << 2
    config |= padded[1:, 1:] << 3
    return np.bincount(config.reshape(-1), minlength=16).astype(np.int64)


def _length_and_area(
    counts: npt.NDArray[np.int64], spacing: tuple[float, ...]
) -> tuple[float, float]:
    """Length and enclosed area of the ``skimage.measure.find_contours(padded, 0.5,
    fully_connected="high")`` contours of the zero-padded mask, in mm and mm², from the
    histogram of its cells' configurations (:func:`_square_histogram`).

    Summed from a per-configuration table (:func:`_square_tables`), without tracing or
    assembling contours: the contours are the union of the cells' segments, and the area they
    enclose (holes subtracted) is the union of the cells' inside parts. The tests check both
    against ``find_contours``.
    """
    length_of, area_of = _square_tables(tuple(float(x) for x in spacing))
    return float(counts @ length_of), float(counts @ area_of)
