"""Tests of segfair.morphology: hand-computed shapes, degenerate masks, invariances."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage import measure

from segfair.errors import InputError
from segfair.morphology import DESCRIPTORS, DESCRIPTORS_2D, describe_mask

Array = np.ndarray[Any, Any]


def box(shape: tuple[int, ...], *ranges: tuple[int, int]) -> Array:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(lo, hi) for lo, hi in ranges)] = True
    return mask


def chamfered_box(
    sides: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[float, float]:
    """Area and volume of the marching-cubes surface of a box of voxels, by hand.

    The iso-surface at 0.5 runs half a voxel outside the outer voxel centres, with its edges
    chamfered by a 45° (in voxel units) strip and its corners cut by a triangle.
    """
    length = [(n - 1) * s for n, s in zip(sides, spacing, strict=True)]
    half = [s / 2 for s in spacing]
    area = 2 * (length[0] * length[1] + length[0] * length[2] + length[1] * length[2])
    volume = length[0] * length[1] * length[2]
    for i in range(3):
        j, k = (t for t in range(3) if t != i)
        area += 4 * length[i] * math.hypot(half[j], half[k])  # edge strips
        volume += 2 * length[j] * length[k] * half[i]  # face slabs
        volume += 4 * length[i] * half[j] * half[k] / 2  # edge prisms
    h0, h1, h2 = half
    area += 8 * 0.5 * math.sqrt((h1 * h2) ** 2 + (h0 * h2) ** 2 + (h0 * h1) ** 2)  # corners
    volume += 8 * h0 * h1 * h2 / 6  # corner tetrahedra
    return area, volume


def sphericity(area: float, volume: float) -> float:
    return math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area


def ball(shape: tuple[int, ...], radius: float) -> Array:
    grid = np.indices(shape) - np.array([(n - 1) / 2 for n in shape]).reshape(-1, *[1] * len(shape))
    return np.asarray((grid**2).sum(axis=0) <= radius**2)


# --------------------------------------------------------------------------------------------------
# Hand-computed shapes


def test_a_box_has_the_volume_area_and_sphericity_computed_by_hand() -> None:
    mask = box((14, 12, 9), (2, 10), (3, 9), (2, 7))  # 8 x 6 x 5 voxels
    spacing = (0.7, 1.1, 2.5)
    out = describe_mask(mask, spacing)
    area, volume = chamfered_box((8, 6, 5), spacing)
    assert list(out) == list(DESCRIPTORS)
    assert out["volume_ml"] == pytest.approx(8 * 6 * 5 * 0.7 * 1.1 * 2.5 / 1000)
    assert out["surface_area_mm2"] == pytest.approx(area)
    assert out["sphericity"] == pytest.approx(sphericity(area, volume))
    assert out["components"] == 1.0


def test_a_box_has_the_elongation_and_flatness_of_its_side_lengths() -> None:
    # The variance of n evenly spaced centres is (n² - 1)/12 times the spacing squared.
    out = describe_mask(box((24, 14, 9), (2, 22), (2, 12), (2, 7)))
    assert out["elongation"] == pytest.approx(math.sqrt(99 / 399))
    assert out["flatness"] == pytest.approx(math.sqrt(24 / 399))


def test_elongation_and_flatness_use_physical_not_voxel_coordinates() -> None:
    cube = box((12, 12, 12), (1, 11), (1, 11), (1, 11))
    out = describe_mask(cube, spacing=(2.0, 1.0, 1.0))
    assert out["elongation"] == pytest.approx(0.5)
    assert out["flatness"] == pytest.approx(0.5)
    iso = describe_mask(cube, spacing=(1.0, 1.0, 1.0))
    assert iso["elongation"] == pytest.approx(1.0)
    assert iso["flatness"] == pytest.approx(1.0)


def test_a_line_has_zero_elongation_and_a_plate_zero_flatness() -> None:
    line = describe_mask(box((3, 3, 12), (1, 2), (1, 2), (1, 11)))
    assert line["elongation"] == pytest.approx(0.0, abs=1e-7)
    assert line["flatness"] == pytest.approx(0.0, abs=1e-7)
    plate = describe_mask(box((12, 12, 3), (1, 11), (1, 11), (1, 2)))
    assert plate["elongation"] == pytest.approx(1.0)
    assert plate["flatness"] == pytest.approx(0.0, abs=1e-7)


def test_a_ball_is_rounder_than_a_cube_which_is_rounder_than_a_rod() -> None:
    round_ = describe_mask(ball((21, 21, 21), 9.0))["sphericity"]
    cube = describe_mask(box((12, 12, 12), (1, 11), (1, 11), (1, 11)))["sphericity"]
    rod = describe_mask(box((4, 4, 30), (1, 3), (1, 3), (1, 29)))["sphericity"]
    assert 1.0 >= round_ > 0.9
    assert round_ > cube > rod > 0.0


def test_components_are_counted_with_full_connectivity() -> None:
    corners = np.zeros((5, 5, 5), dtype=bool)
    corners[1, 1, 1] = corners[2, 2, 2] = True  # touching by a corner only: one component
    assert describe_mask(corners)["components"] == 1.0
    corners[4, 4, 4] = True  # one voxel of gap: a second component
    assert describe_mask(corners)["components"] == 2.0
    diagonal = np.eye(6, dtype=bool)
    assert describe_mask(diagonal)["components"] == 1.0


def test_a_single_voxel_has_a_volume_and_sphericity_but_no_elongation_or_flatness() -> None:
    voxel = box((5, 5, 5), (2, 3), (2, 3), (2, 3))
    out = describe_mask(voxel, spacing=(0.5, 0.5, 2.0))
    assert out["volume_ml"] == 0.5 / 1000
    assert out["components"] == 1.0
    assert math.isnan(out["elongation"])
    assert math.isnan(out["flatness"])
    # Marching cubes makes an octahedron of the voxel: volume s0·s1·s2/6, eight corner triangles.
    area, volume = chamfered_box((1, 1, 1), (0.5, 0.5, 2.0))
    assert volume == pytest.approx(0.5 / 6)
    assert out["surface_area_mm2"] == pytest.approx(area)
    assert out["sphericity"] == pytest.approx(sphericity(area, volume))
    iso = describe_mask(voxel)
    assert iso["sphericity"] == pytest.approx(math.pi ** (1 / 3) / math.sqrt(3))


def test_an_empty_mask_has_zero_size_and_undefined_shape() -> None:
    out = describe_mask(np.zeros((6, 7, 8), dtype=np.uint8), spacing=(1.0, 2.0, 3.0))
    assert list(out) == list(DESCRIPTORS)
    assert out["volume_ml"] == out["surface_area_mm2"] == out["components"] == 0.0
    assert all(math.isnan(out[k]) for k in ("sphericity", "elongation", "flatness"))


def test_an_empty_two_dimensional_mask_has_zero_size_and_undefined_shape() -> None:
    out = describe_mask(np.zeros((6, 7), dtype=bool))
    assert list(out) == list(DESCRIPTORS_2D)
    assert out["area_mm2"] == out["perimeter_mm"] == out["components"] == 0.0
    assert math.isnan(out["circularity"])
    assert math.isnan(out["elongation"])


def test_a_two_dimensional_square_has_the_area_and_perimeter_computed_by_hand() -> None:
    n, sx, sy = 6, 0.5, 2.0
    out = describe_mask(box((10, 10), (2, 2 + n), (3, 3 + n)), spacing=(sx, sy))
    assert list(out) == list(DESCRIPTORS_2D)
    assert out["area_mm2"] == n * n * sx * sy
    # The contour runs half a pixel outside the outer pixel centres, corners cut diagonally.
    perimeter = 2 * (n - 1) * (sx + sy) + 4 * math.hypot(sx / 2, sy / 2)
    assert out["perimeter_mm"] == pytest.approx(perimeter)
    enclosed = (n * n - 0.5) * sx * sy
    assert out["circularity"] == pytest.approx(4 * math.pi * enclosed / perimeter**2)
    assert out["components"] == 1.0
    assert out["elongation"] == pytest.approx(sx / sy)


def test_a_hole_lengthens_the_perimeter_and_lowers_the_circularity() -> None:
    disc = ball((31, 31), 12.0)
    ring = disc & ~ball((31, 31), 5.0)
    full, holed = describe_mask(disc), describe_mask(ring)
    assert holed["components"] == full["components"] == 1.0
    assert holed["perimeter_mm"] == pytest.approx(full["perimeter_mm"] + 2 * math.pi * 5, rel=0.05)
    # Marching squares cuts a digital circle's steps at 45°, which lengthens its perimeter by ≈7%.
    assert 0.8 < full["circularity"] <= 1.0
    assert holed["circularity"] < 0.5 * full["circularity"]


def test_a_cavity_adds_its_surface_and_is_subtracted_from_the_enclosed_volume() -> None:
    solid = box((14, 14, 14), (1, 13), (1, 13), (1, 13))
    hollow = solid & ~box((14, 14, 14), (4, 10), (4, 10), (4, 10))
    outer_area, outer_volume = chamfered_box((12, 12, 12), (1.0, 1.0, 1.0))
    # The level 0.5 lies halfway between foreground and background, so the cavity's surface is
    # that of a 6³ box of voxels, seen from outside.
    inner_area, inner_volume = chamfered_box((6, 6, 6), (1.0, 1.0, 1.0))
    out = describe_mask(hollow)
    assert out["volume_ml"] == (12**3 - 6**3) / 1000
    assert out["surface_area_mm2"] == pytest.approx(outer_area + inner_area)
    expected = sphericity(outer_area + inner_area, outer_volume - inner_volume)
    assert out["sphericity"] == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------
# Invariances and inputs


@st.composite
def blobs(draw: st.DrawFn, dims: tuple[int, ...] = (2, 3)) -> tuple[Array, tuple[float, ...]]:
    ndim = draw(st.sampled_from(dims))
    shape = tuple(draw(st.integers(2, 12)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mask = ndimage.gaussian_filter(rng.standard_normal(shape), draw(st.sampled_from((0.7, 1.5))))
    spacing = tuple(draw(st.sampled_from((0.5, 0.8, 1.0, 2.5))) for _ in range(ndim))
    return np.asarray(mask > draw(st.sampled_from((-0.2, 0.0, 0.2)))), spacing


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=40, deadline=None)
@given(blobs(), st.data())
def test_padding_with_zeros_changes_no_descriptor(
    case: tuple[Array, tuple[float, ...]], data: st.DataObject
) -> None:
    mask, spacing = case
    widths = [tuple(data.draw(st.integers(0, 3)) for _ in range(2)) for _ in range(mask.ndim)]
    out = describe_mask(mask, spacing)
    padded = describe_mask(np.pad(mask, widths), spacing)
    assert all(same(out[k], padded[k]) for k in out), (out, padded)


@settings(max_examples=40, deadline=None)
@given(blobs())
def test_shape_ratios_lie_in_the_unit_interval(case: tuple[Array, tuple[float, ...]]) -> None:
    mask, spacing = case
    out = describe_mask(mask, spacing)
    ratios = ("sphericity", "elongation", "flatness") if mask.ndim == 3 else ("circularity",)
    for name in ratios:
        assert math.isnan(out[name]) or 0.0 <= out[name] <= 1.0 + 1e-9, (name, out[name])
    if mask.ndim == 3 and mask.sum() > 1:
        assert out["flatness"] <= out["elongation"] + 1e-12


@settings(max_examples=40, deadline=None)
@given(blobs(dims=(3,)))
def test_surface_area_and_sphericity_are_those_of_the_marching_cubes_mesh(
    case: tuple[Array, tuple[float, ...]],
) -> None:
    mask, spacing = case
    assume(mask.any())
    padded = np.pad(mask, 1).astype(np.float64)
    verts, faces, _, _ = measure.marching_cubes(padded, level=0.5, spacing=spacing)
    area = measure.mesh_surface_area(verts, faces)
    a, b, c = (verts[faces[:, k]] for k in range(3))
    volume = abs(np.einsum("ij,ij->", a, np.cross(b, c))) / 6
    out = describe_mask(mask, spacing)
    # skimage sometimes returns float32 vertices; we sum in float64: agreement to float32 precision.
    assert out["surface_area_mm2"] == pytest.approx(area, rel=1e-6)
    assert out["sphericity"] == pytest.approx(sphericity(area, volume), rel=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_doubling_the_spacing_scales_sizes_and_keeps_shape_ratios(ndim: int) -> None:
    mask = ball((13,) * ndim, 5.0) & ~box((13,) * ndim, *[(0, 6)] * ndim)
    base = (0.6, 1.3, 0.9)[:ndim]
    out = describe_mask(mask, base)
    doubled = describe_mask(mask, tuple(2 * s for s in base))
    if ndim == 3:
        assert doubled["volume_ml"] == pytest.approx(8 * out["volume_ml"])
        assert doubled["surface_area_mm2"] == pytest.approx(4 * out["surface_area_mm2"])
        ratios: tuple[str, ...] = ("sphericity", "components", "elongation", "flatness")
    else:
        assert doubled["area_mm2"] == pytest.approx(4 * out["area_mm2"])
        assert doubled["perimeter_mm"] == pytest.approx(2 * out["perimeter_mm"])
        ratios = ("circularity", "components", "elongation")
    for name in ratios:
        assert doubled[name] == pytest.approx(out[name])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_integer_and_float_masks_of_zeros_and_ones_describe_like_boolean_ones(
    dtype: type,
) -> None:
    mask = ball((11, 11, 11), 4.0)
    assert describe_mask(mask.astype(dtype), (1.0, 1.0, 2.0)) == describe_mask(mask, (1, 1, 2))


def test_a_mask_holding_other_values_than_zero_and_one_is_rejected() -> None:
    labels = box((6, 6, 6), (1, 4), (1, 4), (1, 4)).astype(np.uint8) * 2
    with pytest.raises(InputError, match=r"not binary.*\[2\]"):
        describe_mask(labels)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, math.nan, 1.0)])
def test_invalid_spacing_is_rejected(spacing: tuple[float, ...]) -> None:
    with pytest.raises(InputError, match="spacing"):
        describe_mask(box((6, 6, 6), (1, 4), (1, 4), (1, 4)), spacing)


@pytest.mark.parametrize("shape", [(6,), (2, 6, 6, 6)])
def test_masks_that_are_not_two_or_three_dimensional_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="only 2-D and 3-D"):
        describe_mask(np.ones(shape, dtype=bool))


# --------------------------------------------------------------------------------------------------
# 2-D perimeter and enclosed area from the marching-squares table (no contour tracing)


def traced_length_and_area(mask: Array, spacing: tuple[float, float]) -> tuple[float, float]:
    """The oracle: trace the contours with skimage (as segfair did before the table) and sum
    their lengths and signed shoelace areas (holes wind the other way, so they subtract)."""
    padded = np.pad(mask, 1).astype(np.float32)
    contours = measure.find_contours(
        padded, level=0.5, fully_connected="high", positive_orientation="high"
    )
    length = signed = 0.0
    for contour in contours:
        points = contour * np.asarray(spacing)
        step = np.diff(points, axis=0)
        length += float(np.hypot(step[:, 0], step[:, 1]).sum())
        y, x = points[:, 0], points[:, 1]
        signed += 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))
    return length, abs(signed)


@st.composite
def pixel_masks(draw: st.DrawFn) -> tuple[Array, tuple[float, float]]:
    """Small 2-D masks of every kind: random pixels (saddles, holes, isolated pixels), smooth
    blobs, masks touching the crop's edge; isotropic and anisotropic spacing."""
    shape = (draw(st.integers(1, 14)), draw(st.integers(1, 14)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        mask = rng.random(shape) < draw(st.sampled_from((0.2, 0.5, 0.8)))
    else:
        field = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
        mask = field > draw(st.sampled_from((-0.2, 0.0, 0.2)))
    spacing = (
        draw(st.sampled_from((0.5, 0.7, 1.0, 2.5, 0.33))),
        draw(st.sampled_from((0.5, 0.9, 1.0, 3.0, 0.13))),
    )
    return np.asarray(mask), spacing


@settings(max_examples=300, deadline=None)
@given(pixel_masks())
def test_the_perimeter_and_enclosed_area_table_equals_traced_contours(
    case: tuple[Array, tuple[float, float]],
) -> None:
    mask, spacing = case
    assume(mask.any())
    length, area = traced_length_and_area(mask, spacing)
    out = describe_mask(mask, spacing)
    assert out["perimeter_mm"] == pytest.approx(length, rel=1e-9)
    assert out["circularity"] == pytest.approx(4 * math.pi * area / length**2, rel=1e-9)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0)])
def test_a_single_pixel_has_a_diamond_for_outline(spacing: tuple[float, float]) -> None:
    sy, sx = spacing
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    out = describe_mask(mask, spacing)
    cut = math.hypot(sy / 2, sx / 2)  # from one edge's midpoint to the next
    assert out["perimeter_mm"] == pytest.approx(4 * cut, rel=1e-12)
    assert out["circularity"] == pytest.approx(4 * math.pi * (sy * sx / 2) / (4 * cut) ** 2)
    assert out["area_mm2"] == sy * sx


def test_a_two_by_two_square_has_its_corners_cut() -> None:
    sy, sx = 0.5, 2.0
    out = describe_mask(np.ones((2, 2), bool), (sy, sx))
    cut = math.hypot(sy / 2, sx / 2)
    perimeter = 4 * cut + 2 * sy + 2 * sx
    assert out["perimeter_mm"] == pytest.approx(perimeter, rel=1e-12)
    # four corner triangles of 1/8 cell, four half cells, one whole cell
    enclosed = 3.5 * sy * sx
    assert out["circularity"] == pytest.approx(4 * math.pi * enclosed / perimeter**2, rel=1e-12)


def test_a_diagonal_pair_is_one_outline_through_its_saddle() -> None:
    sy, sx = 1.0, 3.0
    out = describe_mask(np.eye(2, dtype=bool), (sy, sx))
    cut = math.hypot(sy / 2, sx / 2)
    # six cells with one pixel in (a corner cut each) and the saddle cell, whose two background
    # corners are cut off: eight cuts; 6/8 + 3/4 of a cell inside
    assert out["perimeter_mm"] == pytest.approx(8 * cut, rel=1e-12)
    enclosed = 1.5 * sy * sx
    assert out["circularity"] == pytest.approx(4 * math.pi * enclosed / (8 * cut) ** 2, rel=1e-12)
    assert out["components"] == 1.0


@settings(max_examples=200, deadline=None)
@given(pixel_masks())
def test_the_compiled_pass_describes_a_2d_mask_exactly_as_numpy_does(
    case: tuple[Array, tuple[float, float]],
) -> None:
    pytest.importorskip("numba")
    from segfair.metrics import compiled

    mask, spacing = case
    assert compiled.planar_counts(np.ascontiguousarray(mask)) is not None  # numba's pass
    out = describe_mask(mask, spacing)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled, "planar_counts", lambda crop: None)  # as without numba
        expected = describe_mask(mask, spacing)
    assert all(same(out[k], expected[k]) for k in out), (out, expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.booleans())
def test_the_compiled_counts_are_numpys_sums_histogram_and_components(
    rows: int, cols: int, seed: int, smooth: bool
) -> None:
    """Rows wider than one 8-byte word and with many runs (noise) or a few (blobs)."""
    pytest.importorskip("numba")
    from segfair.metrics import compiled, morphology

    rng = np.random.default_rng(seed)
    if smooth:
        mask = ndimage.gaussian_filter(rng.standard_normal((rows, cols)), 2.0) > 0.0
    else:
        mask = rng.random((rows, cols)) < rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
    framed = np.zeros((rows + 2, cols + 3), bool)
    framed[1:-1, 2:-1] = mask
    found = compiled.planar_counts(framed[1:-1, 2:-1])  # a view, as describe_mask passes
    assert found is not None
    counts, components = found
    i, j = (index.astype(np.int64) for index in np.nonzero(mask))
    sums = [i.size, i.sum(), j.sum(), (i * i).sum(), (j * j).sum(), (i * j).sum()]
    assert counts[:6].tolist() == [int(s) for s in sums]
    assert counts[6:].tolist() == morphology._square_histogram(mask).tolist()
    assert components == ndimage.label(mask, structure=np.ones((3, 3)))[1]


def _numpy_ratios(
    n: int, first: list[int], second: list[list[int]], spacing: tuple[float, ...]
) -> list[float]:
    """The axis ratios as numpy computed them before (outer product, sort, clip)."""
    ndim = len(first)
    centred = [[n * second[a][b] - first[a] * first[b] for b in range(ndim)] for a in range(ndim)]
    step = np.asarray(spacing, dtype=np.float64)
    cov = np.array(centred, dtype=np.float64) * np.outer(step, step) / (n * (n - 1))
    eigen = np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 0.0, None)
    if eigen[0] <= 0.0:
        return [math.nan] * (ndim - 1)
    return [float(math.sqrt(e / eigen[0])) for e in eigen[1:]]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 3),
    st.integers(0, 2**32 - 1),
    st.sampled_from(("scattered", "line", "flat")),
    st.integers(1, 10**6),
)
def test_the_axis_ratios_in_python_floats_equal_numpys_bit_for_bit(
    ndim: int, seed: int, shape: str, repeat: int
) -> None:
    from segfair.metrics import morphology

    rng = np.random.default_rng(seed)
    points = rng.integers(0, int(rng.choice([2, 7, 600])), (int(rng.integers(2, 40)), ndim))
    if shape == "line":
        points[:, 1] = points[:, 0]  # a zero eigenvalue, slightly negative after round-off
    elif shape == "flat":
        points[:, 0] = 3
    n = len(points) * repeat  # each point `repeat` times: counts beyond 2**53 in n·Σab
    first = [int(points[:, a].sum()) * repeat for a in range(ndim)]
    second = [
        [int((points[:, a] * points[:, b]).sum()) * repeat for b in range(ndim)]
        for a in range(ndim)
    ]
    spacing = tuple(float(s) for s in rng.choice([0.1, 0.3125, 0.5, 0.7, 1.0, 2.5], ndim))
    ours = morphology._ratios(n, first, second, spacing)
    theirs = _numpy_ratios(n, first, second, spacing)
    assert [math.copysign(1.0, x) for x in ours] == [math.copysign(1.0, x) for x in theirs]
    assert all(same(x, y) for x, y in zip(ours, theirs, strict=True)), (ours, theirs)
