"""Tests of segfair.metrics: hand-computed cases, properties, and conformance with medpy."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from segfair import metrics as m
from segfair.errors import GeometryError, InputError
from segfair.metrics import arrays as m_arrays
from segfair.metrics import compiled as m_compiled
from segfair.metrics import engine as m_engine
from segfair.metrics import morphology
from segfair.metrics import surface as m_surface

PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SYMMETRIC = ("dice", "iou", "hausdorff", "hd95", "assd", "masd", "nsd")
UNIT_INTERVAL = ("dice", "iou", "precision", "sensitivity", "nsd")
DISTANCES = ("hausdorff", "hd95", "assd", "masd")
Array = np.ndarray[Any, Any]


def same(a: float, b: float) -> bool:
    """Equality that also holds between two NaNs."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def close(a: float, b: float, rel: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-12)


def box(shape: tuple[int, ...], *ranges: tuple[int, int]) -> Array:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(lo, hi) for lo, hi in ranges)] = True
    return mask


def naive(pred: Array, ref: Array, spacing: tuple[float, ...], tol: float) -> dict[str, float]:
    """The definitions applied literally to the whole arrays: no crop, scipy's erosion, full EDT."""
    n_p, n_r = int(pred.sum()), int(ref.sum())
    if n_p == 0 or n_r == 0:
        return m.compute(pred, ref, spacing, m.DISTANCE_METRICS)  # conventions tested elsewhere
    bp = pred & ~ndimage.binary_erosion(pred)
    br = ref & ~ndimage.binary_erosion(ref)
    d_pr = ndimage.distance_transform_edt(~br, sampling=spacing)[bp]
    d_rp = ndimage.distance_transform_edt(~bp, sampling=spacing)[br]
    both = np.concatenate([d_pr, d_rp])
    return {
        "hausdorff": float(both.max()),
        "hd95": float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))),
        "assd": float(both.mean()),
        "masd": float((d_pr.mean() + d_rp.mean()) / 2),
        "nsd": float(np.count_nonzero(both <= tol) / both.size),
    }


# --------------------------------------------------------------------------------------------------
# Hand-computed cases


def test_a_cube_shifted_by_one_voxel_has_hausdorff_equal_to_the_spacing_along_the_shift() -> None:
    ref = box((10, 10, 10), (3, 7), (3, 7), (3, 7))
    pred = np.roll(ref, 1, axis=2)
    out = m.compute(pred, ref, spacing=(0.7, 0.7, 1.5))
    # 4x4x4 cubes overlapping in 4x4x3 = 48 voxels.
    assert out["dice"] == 2 * 48 / 128
    assert out["iou"] == pytest.approx(48 / 80)
    assert out["precision"] == out["sensitivity"] == 0.75
    assert out["volume_error"] == 0.0
    assert out["hausdorff"] == 1.5
    # Of each cube's 56 border voxels: 16 on the exposed face are 1.5 mm from the other border,
    # 4 in the middle of the face buried in the other cube are 0.7 mm from its side faces, 36 are
    # shared border voxels at 0 mm. The 95th percentile falls among the 1.5 mm ones.
    assert out["hd95"] == 1.5
    assert out["assd"] == pytest.approx((16 * 1.5 + 4 * 0.7) / 56)
    assert out["masd"] == pytest.approx((16 * 1.5 + 4 * 0.7) / 56)
    assert out["nsd"] == 1.0
    assert m.nsd(pred, ref, (0.7, 0.7, 1.5), tolerance=1.0) == pytest.approx(40 / 56)
    assert m.nsd(pred, ref, (0.7, 0.7, 1.5), tolerance=0.5) == pytest.approx(36 / 56)


def test_the_two_hd95_variants_differ_as_computed_by_hand_on_a_two_component_mask() -> None:
    pred = np.array([[1, 0, 0, 0, 0, 0, 1]], dtype=bool)
    ref = np.array([[1, 0, 0, 0, 0, 0, 0]], dtype=bool)
    # d(pred→ref) = [0, 6], d(ref→pred) = [0].
    assert m.hd95(pred, ref) == pytest.approx(0.95 * 6)
    assert m.hd95(pred, ref, method="pooled") == pytest.approx(0.9 * 6)  # p95 of [0, 0, 6]
    assert m.hausdorff(pred, ref) == 6.0
    assert m.assd(pred, ref) == pytest.approx(6 / 3)
    assert m.masd(pred, ref) == pytest.approx((3 + 0) / 2)
    assert m.nsd(pred, ref, tolerance=2.0) == pytest.approx(2 / 3)
    assert m.dice(pred, ref) == pytest.approx(2 / 3)
    assert m.volume_error(pred, ref) == 1.0


def test_disjoint_masks_have_zero_overlap_and_the_distance_between_them() -> None:
    pred = box((3, 9), (1, 2), (1, 2))
    ref = box((3, 9), (1, 2), (5, 6))
    out = m.compute(pred, ref, spacing=(1.0, 0.5))
    assert out["dice"] == out["iou"] == out["precision"] == out["sensitivity"] == 0.0
    for name in DISTANCES:
        assert out[name] == 2.0
    assert m.nsd(pred, ref, (1.0, 0.5), tolerance=2.5) == 1.0
    assert m.nsd(pred, ref, (1.0, 0.5), tolerance=1.5) == 0.0


def test_a_single_voxel_against_itself_is_perfect() -> None:
    voxel = box((5, 5, 5), (2, 3), (2, 3), (2, 3))
    out = m.compute(voxel, voxel, spacing=(0.7, 0.7, 1.5))
    assert out == {
        "dice": 1.0,
        "iou": 1.0,
        "precision": 1.0,
        "sensitivity": 1.0,
        "volume_error": 0.0,
        "hausdorff": 0.0,
        "hd95": 0.0,
        "assd": 0.0,
        "masd": 0.0,
        "nsd": 1.0,
    }


@pytest.mark.parametrize(("axis", "expected"), [(0, 0.7), (1, 0.7), (2, 1.5)])
def test_a_single_voxel_against_its_neighbour_is_one_spacing_away(
    axis: int, expected: float
) -> None:
    voxel = box((5, 5, 5), (2, 3), (2, 3), (2, 3))
    neighbour = np.roll(voxel, 1, axis=axis)
    out = m.compute(voxel, neighbour, spacing=(0.7, 0.7, 1.5))
    assert out["dice"] == 0.0
    for name in DISTANCES:
        assert out[name] == pytest.approx(expected)
    assert m.nsd(voxel, neighbour, (0.7, 0.7, 1.5), tolerance=expected / 2) == 0.0
    assert m.nsd(voxel, neighbour, (0.7, 0.7, 1.5), tolerance=2.0) == 1.0


def test_voxels_on_the_array_edge_count_as_border() -> None:
    # A full 3x3 image has no background pixel at all: its 8 outer pixels are border only because
    # the array edge counts as background.
    full = np.ones((3, 3), dtype=bool)
    centre = box((3, 3), (1, 2), (1, 2))
    assert m.hausdorff(full, centre) == pytest.approx(math.sqrt(2))
    from_full = (4 * 1 + 4 * math.sqrt(2)) / 8
    assert m.masd(full, centre) == pytest.approx((from_full + 1.0) / 2)
    assert m.assd(full, centre) == pytest.approx((4 + 4 * math.sqrt(2) + 1) / 9)


def test_a_mask_filling_the_array_and_one_missing_its_last_slice_differ_by_that_slice() -> None:
    full = np.ones((4, 4, 4), dtype=bool)
    short = full.copy()
    short[:, :, 3] = False
    out = m.compute(full, short, spacing=(1.0, 1.0, 3.0))
    # The 16 voxels of the removed slice are 3 mm from the new top face; the 4 centre voxels of
    # that face are interior in `full`, 1 mm from its side faces.
    assert out["hausdorff"] == 3.0
    assert out["masd"] == pytest.approx((16 * 3.0 / 56 + 4 * 1.0 / 44) / 2)
    assert out["dice"] == pytest.approx(2 * 48 / 112)
    assert out["volume_error"] == pytest.approx(64 / 48 - 1)


def test_a_two_component_prediction_is_scored_against_both_components() -> None:
    ref = box((12, 12, 12), (2, 5), (2, 5), (2, 5))
    second = box((12, 12, 12), (2, 5), (2, 5), (8, 11))
    pred = ref | second
    out = m.compute(pred, ref)
    assert out["dice"] == pytest.approx(2 * 27 / (54 + 27))
    assert out["precision"] == 0.5
    assert out["sensitivity"] == 1.0
    assert out["volume_error"] == 1.0
    # The far face of the second cube (z = 10) is 6 voxels from the first cube's face at z = 4.
    assert out["hausdorff"] == 6.0


def test_two_dimensional_squares_give_the_hand_computed_overlap() -> None:
    ref = box((8, 8), (2, 6), (2, 6))
    pred = box((8, 8), (3, 7), (2, 6))
    out = m.compute(pred, ref, spacing=(2.0, 0.5))
    assert out["dice"] == 0.75
    assert out["iou"] == pytest.approx(0.6)
    assert out["hausdorff"] == 2.0


EMPTY_TABLE: dict[str, dict[str, float]] = {
    # case: the values documented in the module docstring, exactly.
    "both empty": {
        "dice": 1.0,
        "iou": 1.0,
        "precision": 1.0,
        "sensitivity": 1.0,
        "volume_error": 0.0,
        "hausdorff": 0.0,
        "hd95": 0.0,
        "assd": 0.0,
        "masd": 0.0,
        "nsd": 1.0,
    },
    "pred empty, ref not": {
        "dice": 0.0,
        "iou": 0.0,
        "precision": 0.0,
        "sensitivity": 0.0,
        "volume_error": -1.0,
        "hausdorff": math.inf,
        "hd95": math.inf,
        "assd": math.inf,
        "masd": math.inf,
        "nsd": 0.0,
    },
    "ref empty, pred not": {
        "dice": 0.0,
        "iou": 0.0,
        "precision": 0.0,
        "sensitivity": math.nan,
        "volume_error": math.inf,
        "hausdorff": math.inf,
        "hd95": math.inf,
        "assd": math.inf,
        "masd": math.inf,
        "nsd": 0.0,
    },
}


@pytest.mark.parametrize("case", list(EMPTY_TABLE))
@pytest.mark.parametrize("ndim", [2, 3])
def test_empty_masks_follow_the_documented_table(case: str, ndim: int) -> None:
    blob = box((6,) * ndim, *[(1, 4)] * ndim)
    empty = np.zeros((6,) * ndim, dtype=bool)
    pred, ref = {
        "both empty": (empty, empty),
        "pred empty, ref not": (empty, blob),
        "ref empty, pred not": (blob, empty),
    }[case]
    for method in m.HD95_METHODS:
        out = m.compute(pred, ref, settings=m.MetricSettings(hd95_method=method))
        assert list(out) == list(m.ALL_METRICS)
        for name, expected in EMPTY_TABLE[case].items():
            assert same(out[name], expected), (name, out[name], expected)


def test_the_empty_mask_table_in_the_docstring_matches_the_tested_table() -> None:
    lines = (m.__doc__ or "").splitlines()
    header = next(line.split() for line in lines if line.startswith("case "))
    assert header == ["case", *m.OVERLAP_METRICS, "distances*", "nsd"]
    for case, values in EMPTY_TABLE.items():
        (row,) = [line for line in lines if line.startswith(case + " ")]
        documented = [float(v) for v in row[len(case) :].split()]
        tested = [values[n] for n in m.OVERLAP_METRICS] + [values["hausdorff"], values["nsd"]]
        assert all(same(a, b) for a, b in zip(documented, tested, strict=True)), case
        assert all(same(values[n], values["hausdorff"]) for n in DISTANCES)


def test_the_empty_mask_policy_recorded_with_results_names_every_convention() -> None:
    text = m.MetricSettings().describe()["empty_masks"]
    assert isinstance(text, str)
    assert "sensitivity = nan" in text
    assert "volume_error = inf" in text
    assert "distances = inf" in text


# --------------------------------------------------------------------------------------------------
# Inputs


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32, np.float64])
def test_integer_and_float_masks_of_zeros_and_ones_score_like_boolean_ones(dtype: type) -> None:
    ref = box((9, 9, 9), (2, 6), (2, 7), (3, 6))
    pred = np.roll(ref, (1, -1), axis=(0, 2))
    expected = m.compute(pred, ref, (0.7, 0.8, 2.0))
    assert m.compute(pred.astype(dtype), ref.astype(dtype), (0.7, 0.8, 2.0)) == expected


def test_fortran_ordered_and_strided_views_score_like_contiguous_arrays() -> None:
    ref = box((9, 10, 11), (2, 6), (2, 7), (3, 6))
    pred = np.roll(ref, 2, axis=1)
    expected = m.compute(pred, ref, (0.7, 0.8, 2.0))
    assert m.compute(np.asfortranarray(pred), np.asfortranarray(ref), (0.7, 0.8, 2.0)) == expected
    flipped = m.compute(pred[::-1, :, ::-1], ref[::-1, :, ::-1], (0.7, 0.8, 2.0))
    assert all(close(flipped[k], v) for k, v in expected.items())


def test_masks_of_different_shapes_raise_a_geometry_error_naming_both_shapes() -> None:
    with pytest.raises(GeometryError, match=r"\(4, 4\).*\(4, 5\)") as info:
        m.dice(np.zeros((4, 4)), np.zeros((4, 5)))
    assert isinstance(info.value, InputError)
    assert "resample" in str(info.value)


@pytest.mark.parametrize(
    "bad", [2, 0.5, -1, math.nan, math.inf], ids=["two", "half", "minus-one", "nan", "inf"]
)
def test_a_mask_holding_values_other_than_zero_and_one_is_rejected(bad: float) -> None:
    ref = box((5, 5), (1, 3), (1, 3)).astype(float)
    pred = ref.copy()
    pred[4, 4] = bad  # outside the other mask's box: must still be seen
    with pytest.raises(InputError, match="'pred' is not binary") as info:
        m.compute(pred, ref)
    assert "threshold" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 3), dtype=complex), np.array([["a", "b"]]), np.zeros((2, 2), dtype=object)],
    ids=["complex", "str", "object"],
)
def test_a_mask_of_a_non_numeric_dtype_is_rejected(bad: Array) -> None:
    with pytest.raises(InputError, match="dtype"):
        m.dice(bad, bad)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5), (0, 4)])
def test_masks_that_are_not_two_or_three_dimensional_images_are_rejected(
    shape: tuple[int, ...],
) -> None:
    with pytest.raises(InputError, match="mask 'pred'"):
        m.dice(np.zeros(shape, bool), np.zeros(shape, bool))


@pytest.mark.parametrize(
    ("spacing", "what"),
    [
        ((1.0, 1.0), "has 2 value"),
        ((1.0, 1.0, 1.0, 1.0), "has 4 value"),
        (1.0, "has 1 value"),
        ((1.0, 0.0, 1.0), "finite number > 0"),
        ((1.0, -0.5, 1.0), "finite number > 0"),
        ((1.0, math.inf, 1.0), "finite number > 0"),
        ((1.0, math.nan, 1.0), "finite number > 0"),
        (("a", "b", "c"), "not a sequence of numbers"),
    ],
)
def test_invalid_spacing_is_rejected_with_the_reason(spacing: Any, what: str) -> None:
    cube = box((4, 4, 4), (1, 3), (1, 3), (1, 3))
    with pytest.raises(InputError, match=what):
        m.hausdorff(cube, cube, spacing)


def test_an_unknown_metric_name_raises_a_value_error_listing_the_valid_names() -> None:
    cube = box((4, 4, 4), (1, 3), (1, 3), (1, 3))
    with pytest.raises(ValueError, match="'hd99'") as info:
        m.compute(cube, cube, metrics=("dice", "hd99"))
    assert str(info.value) == m.UNKNOWN_METRIC_MESSAGE.format(
        name="hd99", valid=", ".join(m.KNOWN_METRICS)
    )
    for name in m.KNOWN_METRICS:
        assert name in str(info.value)


def test_compute_returns_the_requested_metrics_in_order_without_duplicates() -> None:
    cube = box((4, 4, 4), (1, 3), (1, 3), (1, 3))
    assert list(m.compute(cube, cube, metrics=("nsd", "dice", "nsd"))) == ["nsd", "dice"]
    assert m.compute(cube, cube, metrics="hd95") == {"hd95": 0.0}


def test_compute_many_rejects_a_pair_naming_an_unknown_mask() -> None:
    cube = box((4, 4, 4), (1, 3), (1, 3), (1, 3))
    with pytest.raises(ValueError, match=r"'ruler:expert'.*not among"):
        m.compute_many({"model": cube}, [("model", "ruler:expert")])
    assert m.compute_many({"model": cube}, []) == {}


def test_compute_many_names_the_offending_mask() -> None:
    good = box((4, 4), (1, 3), (1, 3))
    with pytest.raises(InputError, match="'ruler:automated'"):
        m.compute_many({"model": good, "ruler:automated": good * 3}, [("model", "model")])


@pytest.mark.parametrize("tolerance", [0.0, -1.0, math.inf, math.nan, "2"])
def test_settings_reject_a_tolerance_outside_its_valid_range(tolerance: Any) -> None:
    with pytest.raises(ValueError, match="0 < nsd_tolerance < inf"):
        m.MetricSettings(nsd_tolerance=tolerance)


def test_settings_reject_an_unknown_hd95_method_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="max_directed, pooled"):
        m.MetricSettings(hd95_method="mean")  # type: ignore[arg-type]


def test_settings_describe_themselves_as_json() -> None:
    record = m.MetricSettings(hd95_method="pooled", nsd_tolerance=1.5).describe()
    assert json.loads(json.dumps(record)) == record
    assert record["hd95_method"] == "pooled"
    assert "medpy" in str(record["hd95"])
    assert record["nsd_tolerance_mm"] == 1.5
    assert record["surface"] == m.SURFACE_DEFINITION
    assert "face-connected" in m.SURFACE_DEFINITION
    assert record["percentile"] == m.PERCENTILE_METHOD


# --------------------------------------------------------------------------------------------------
# Properties


@st.composite
def masks_and_spacing(draw: st.DrawFn, count: int = 2) -> tuple[list[Array], tuple[float, ...]]:
    """``count`` masks of one small shape (≤ 12 per axis), and a spacing."""
    ndim = draw(st.sampled_from((2, 3)))
    shape = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for _ in range(count):
        kind = draw(st.sampled_from(("noise", "blob", "blob", "box", "empty")))
        if kind == "empty":
            mask = np.zeros(shape, dtype=bool)
        elif kind == "noise":
            mask = rng.random(shape) < draw(st.sampled_from((0.1, 0.4, 0.8)))
        elif kind == "blob":
            mask = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0) > 0.1
        else:
            ranges = [sorted(rng.integers(0, n + 1, size=2)) for n in shape]
            mask = box(shape, *[(lo, hi + 1) for lo, hi in ranges])
        out.append(mask)
    spacing = tuple(draw(st.sampled_from((0.5, 0.7, 1.0, 1.5, 3.0))) for _ in range(ndim))
    return out, spacing


@PROPERTY_SETTINGS
@given(masks_and_spacing())
def test_symmetric_metrics_do_not_depend_on_which_mask_is_the_prediction(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a, b), spacing = case
    for method in m.HD95_METHODS:
        s = m.MetricSettings(hd95_method=method, nsd_tolerance=1.3)
        ab = m.compute(a, b, spacing, SYMMETRIC, settings=s)
        ba = m.compute(b, a, spacing, SYMMETRIC, settings=s)
        assert all(close(ab[k], ba[k]) for k in SYMMETRIC), (ab, ba)


@PROPERTY_SETTINGS
@given(masks_and_spacing())
def test_ratios_lie_in_the_unit_interval_and_distances_are_not_negative(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a, b), spacing = case
    out = m.compute(a, b, spacing)
    for name in UNIT_INTERVAL:
        assert math.isnan(out[name]) or 0.0 <= out[name] <= 1.0, (name, out[name])
    for name in DISTANCES:
        assert out[name] >= 0.0
    assert out["volume_error"] >= -1.0
    assert math.isnan(out["sensitivity"]) == (not b.any() and a.any())
    assert not any(math.isnan(v) for k, v in out.items() if k != "sensitivity")


@PROPERTY_SETTINGS
@given(masks_and_spacing(count=1))
def test_a_mask_against_itself_scores_perfectly(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a,), spacing = case
    out = m.compute(a, a, spacing)
    assert out == EMPTY_TABLE["both empty"]


@PROPERTY_SETTINGS
@given(masks_and_spacing(), st.data())
def test_padding_with_zeros_on_any_side_changes_nothing(
    case: tuple[list[Array], tuple[float, ...]], data: st.DataObject
) -> None:
    (a, b), spacing = case
    widths = [tuple(data.draw(st.integers(0, 3)) for _ in range(2)) for _ in range(a.ndim)]
    out = m.compute(a, b, spacing)
    padded = m.compute(np.pad(a, widths), np.pad(b, widths), spacing)
    assert all(same(out[k], padded[k]) for k in m.ALL_METRICS), (out, padded)


@PROPERTY_SETTINGS
@given(masks_and_spacing())
def test_the_cropped_computation_equals_the_definitions_applied_to_the_whole_arrays(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a, b), spacing = case
    out = m.compute(a, b, spacing, m.DISTANCE_METRICS, settings=m.MetricSettings(nsd_tolerance=1.3))
    expected = naive(a, b, spacing, 1.3)
    assert all(close(out[k], expected[k]) for k in m.DISTANCE_METRICS), (out, expected)


@PROPERTY_SETTINGS
@given(masks_and_spacing(), st.sampled_from((0.25, 0.5, 2.0, 4.0)))
def test_distances_scale_linearly_with_a_uniform_spacing_factor(
    case: tuple[list[Array], tuple[float, ...]], factor: float
) -> None:
    (a, b), spacing = case
    scaled = tuple(s * factor for s in spacing)
    base = m.compute(a, b, spacing, settings=m.MetricSettings(nsd_tolerance=1.3))
    out = m.compute(a, b, scaled, settings=m.MetricSettings(nsd_tolerance=1.3 * factor))
    for name in DISTANCES:
        assert close(out[name], base[name] * factor), name
    # Powers of two scale floats exactly, so not even a tie at the tolerance can move.
    for name in (*m.OVERLAP_METRICS, "nsd"):
        assert same(out[name], base[name]), name


@PROPERTY_SETTINGS
@given(masks_and_spacing())
def test_compute_equals_the_individual_functions(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a, b), spacing = case
    for method in m.HD95_METHODS:
        s = m.MetricSettings(hd95_method=method, nsd_tolerance=0.9)
        out = m.compute(a, b, spacing, settings=s)
        single: dict[str, Callable[[], float]] = {
            "dice": lambda: m.dice(a, b),
            "iou": lambda: m.iou(a, b),
            "precision": lambda: m.precision(a, b),
            "sensitivity": lambda: m.sensitivity(a, b),
            "volume_error": lambda: m.volume_error(a, b),
            "hausdorff": lambda: m.hausdorff(a, b, spacing),
            "hd95": lambda: m.hd95(a, b, spacing, method=method),  # noqa: B023
            "assd": lambda: m.assd(a, b, spacing),
            "masd": lambda: m.masd(a, b, spacing),
            "nsd": lambda: m.nsd(a, b, spacing, tolerance=0.9),
        }
        assert all(same(out[k], f()) for k, f in single.items())


@PROPERTY_SETTINGS
@given(masks_and_spacing(count=3))
def test_compute_many_equals_compute_for_every_pair(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    masks, spacing = case
    named = dict(zip(("model:candidate", "ruler:expert", "ruler:automated"), masks, strict=True))
    pairs = [(p, r) for p in named for r in named]
    out = m.compute_many(named, pairs, spacing)
    assert list(out) == pairs
    for p, r in pairs:
        alone = m.compute(named[p], named[r], spacing)
        assert all(same(out[(p, r)][k], alone[k]) for k in m.ALL_METRICS), (p, r)


# --------------------------------------------------------------------------------------------------
# Conformance with medpy (same surface definition, so equal up to float round-off)


def _blob(shape: tuple[int, ...], seed: int, sigma: float, level: float) -> Array:
    noise = np.random.default_rng(seed).standard_normal(shape)
    return np.asarray(ndimage.gaussian_filter(noise, sigma) > level)


def _conformance_cases() -> dict[str, tuple[Array, Array, tuple[float, ...]]]:
    shape3 = (20, 22, 14)
    ref = _blob(shape3, 1, 2.0, 0.05)
    pred = _blob(shape3, 2, 2.0, 0.05) | (ref & _blob(shape3, 3, 1.5, -0.05))
    fragments = _blob(shape3, 4, 1.0, 0.25)
    shifted = np.roll(ref, (2, -1, 1), axis=(0, 1, 2))
    big = _blob(shape3, 5, 3.0, -0.04)  # touches every face of the array
    ref2 = _blob((40, 36), 6, 2.5, 0.03)
    pred2 = _blob((40, 36), 7, 2.5, 0.0)
    return {
        "blobs-isotropic": (pred, ref, (1.0, 1.0, 1.0)),
        "blobs-anisotropic": (pred, ref, (0.7, 0.8, 2.5)),
        "shifted-anisotropic": (shifted, ref, (0.6, 0.6, 3.0)),
        "multi-component": (fragments, ref, (0.9, 0.9, 1.2)),
        "multi-component-both": (fragments, _blob(shape3, 8, 1.0, 0.25), (1.0, 0.5, 2.0)),
        "border-touching": (big, ref, (1.0, 1.0, 1.5)),
        "border-touching-both": (big, np.roll(big, 1, axis=2), (0.8, 0.8, 0.8)),
        "flipped": (pred[::-1, :, ::-1], ref[::-1, :, ::-1], (0.7, 0.8, 2.5)),
        "transposed-fortran": (np.asfortranarray(pred.T), np.asfortranarray(ref.T), (2.5, 1, 1)),
        "2d": (pred2, ref2, (0.5, 0.9)),
        "2d-disjoint-corners": (
            box((10, 10), (0, 2), (0, 2)),
            box((10, 10), (8, 10), (7, 10)),
            (1.0, 2.0),
        ),
    }


CONFORMANCE = _conformance_cases()


@pytest.fixture(scope="module")
def medpy_binary() -> Any:
    return pytest.importorskip("medpy.metric.binary")


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_overlap_metrics_equal_medpy(case: str, medpy_binary: Any) -> None:
    pred, ref, spacing = CONFORMANCE[case]
    assert pred.any()  # medpy raises on empty masks
    assert ref.any()
    out = m.compute(pred, ref, spacing)
    assert out["dice"] == pytest.approx(medpy_binary.dc(pred, ref), abs=1e-6)
    assert out["iou"] == pytest.approx(medpy_binary.jc(pred, ref), abs=1e-6)
    assert out["precision"] == pytest.approx(medpy_binary.precision(pred, ref), abs=1e-6)
    assert out["sensitivity"] == pytest.approx(medpy_binary.recall(pred, ref), abs=1e-6)


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_surface_distances_equal_medpy(case: str, medpy_binary: Any) -> None:
    pred, ref, spacing = CONFORMANCE[case]
    pooled = m.MetricSettings(hd95_method="pooled")
    out = m.compute(pred, ref, spacing, settings=pooled)
    assert out["hausdorff"] == pytest.approx(medpy_binary.hd(pred, ref, spacing), abs=1e-6)
    assert out["hd95"] == pytest.approx(medpy_binary.hd95(pred, ref, spacing), abs=1e-6)
    # medpy >= 0.5 pools both directions in "assd" (loli/medpy#108); before, it was our masd.
    assert out["assd"] == pytest.approx(medpy_binary.assd(pred, ref, spacing), abs=1e-6)
    directed_means = medpy_binary.asd(pred, ref, spacing), medpy_binary.asd(ref, pred, spacing)
    assert out["masd"] == pytest.approx(np.mean(directed_means), abs=1e-6)


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_pooled_assd_max_directed_hd95_and_nsd_equal_a_computation_from_medpy_distances(
    case: str, medpy_binary: Any
) -> None:
    pred, ref, spacing = CONFORMANCE[case]
    directed = medpy_binary.__dict__["__surface_distances"]  # name-mangled private helper
    d_pr = directed(pred, ref, spacing)
    d_rp = directed(ref, pred, spacing)
    out = m.compute(pred, ref, spacing, settings=m.MetricSettings(nsd_tolerance=1.7))
    assert out["assd"] == pytest.approx((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
    hd95 = max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))
    assert out["hd95"] == pytest.approx(hd95, abs=1e-6)
    hits = np.count_nonzero(d_pr <= 1.7) + np.count_nonzero(d_rp <= 1.7)
    assert out["nsd"] == pytest.approx(hits / (d_pr.size + d_rp.size))


# --------------------------------------------------------------------------------------------------
# Large crops (k-d tree instead of the feature transform) and remembered extents


@PROPERTY_SETTINGS
@given(masks_and_spacing())
def test_the_k_d_tree_used_on_large_crops_gives_the_feature_transforms_distances(
    case: tuple[list[Array], tuple[float, ...]],
) -> None:
    (a, b), spacing = case
    settings_ = m.MetricSettings(nsd_tolerance=1.3)
    expected = m.compute(a, b, spacing, settings=settings_)
    limit = m_engine._EDT_MAX_VOXELS
    try:
        m_engine._EDT_MAX_VOXELS = 0  # type: ignore[misc]  # every crop counts as large
        out = m.compute(a, b, spacing, settings=settings_)
    finally:
        m_engine._EDT_MAX_VOXELS = limit  # type: ignore[misc]
    assert all(close(out[k], expected[k]) for k in m.ALL_METRICS), (out, expected)


def test_a_compact_organ_gets_the_k_d_tree_and_a_thin_structure_the_transform() -> None:
    # the choice follows the work: crop voxels per border voxel
    shape = (40, 40, 30)
    grid = np.indices(shape, dtype=float)
    organ = (
        sum(((g - c) / r) ** 2 for g, c, r in zip(grid, (20, 20, 15), (18, 16, 13), strict=True))
        <= 1
    )
    moved = np.roll(organ, 2, axis=0)
    spacing = (0.7, 0.7, 1.5)
    box_ = m_arrays.union_box((m_arrays.find_extent(a) for a in (organ, moved)), 3)
    case = m_engine._Case(
        {k: m_arrays.binary_crop(k, a, box_) for k, a in (("a", organ), ("b", moved))}, spacing
    )
    assert case.use_tree("b", "a")
    # ...and finds the transform's distances bit for bit (the other border's voxels included)
    tree = case.directed("a", "b")
    flat, coords = case.border_points("a")
    nearest = case.nearest_border("b")[:, flat]  # the feature transform, as on a small crop
    squared = np.zeros(flat.size)
    for axis, step in enumerate(spacing):
        delta = (nearest[axis] - coords[axis]).astype(np.float64) * step
        squared += delta * delta
    transform = np.sqrt(squared)
    assert 0 < np.count_nonzero(transform == 0) < transform.size
    assert np.array_equal(tree, transform)
    plate = box(shape, (5, 35), (5, 35), (14, 16))
    thin = m_engine._Case({"p": plate[5:35, 5:35, 14:16].copy()}, spacing)
    assert not thin.use_tree("p", "p")


def test_masks_far_apart_are_scored_exactly_without_a_transform_of_the_whole_box() -> None:
    # A stray false positive across the volume makes the union box huge: the k-d tree path.
    shape = (260, 130, 130)  # union box 4.4M voxels > the transform's limit
    ref = box(shape, (2, 12), (2, 12), (2, 12))
    pred = ref.copy()
    pred[250:254, 120:124, 120:124] = True
    spacing = (0.7, 0.8, 1.5)
    out = m.compute(pred, ref, spacing)
    expected = naive(pred, ref, spacing, 2.0)
    assert all(close(out[k], expected[k]) for k in m.DISTANCE_METRICS), (out, expected)


def test_extents_are_remembered_only_for_arrays_nothing_can_change() -> None:
    data = box((6, 7, 8), (1, 3), (2, 5), (3, 4)).astype(np.uint8)
    frozen = np.frombuffer(data.tobytes(order="F"), np.uint8).reshape((6, 7, 8), order="F")
    mask = frozen.view(np.bool_)
    assert m_arrays._immutable(mask)
    assert m_arrays.find_extent(mask) == [(1, 3), (2, 5), (3, 4)]
    assert id(mask) in m_arrays._KNOWN_EXTENTS
    writable = box((6, 7, 8), (1, 3), (2, 5), (3, 4))
    assert not m_arrays._immutable(writable)
    read_only = writable.view()
    read_only.flags.writeable = False
    assert m_arrays.find_extent(read_only) == [(1, 3), (2, 5), (3, 4)]
    assert id(read_only) not in m_arrays._KNOWN_EXTENTS
    writable[5, 6, 7] = True  # the owner changes it: a fresh scan sees the change
    assert m_arrays.find_extent(read_only) == [(1, 6), (2, 7), (3, 8)]
    key = id(mask)
    del mask, frozen
    assert key not in m_arrays._KNOWN_EXTENTS  # forgotten with the array


def test_extent_and_peak_agree_with_a_direct_computation() -> None:
    rng = np.random.default_rng(5)
    data = np.zeros((20, 30, 10), np.uint8, order="F")
    data[3:9, 11:12, 4:8] = rng.integers(0, 4, size=(6, 1, 4))
    data[5, 11, 5] = 3
    extent, peak = m_arrays.extent_and_peak(data)
    nz = np.nonzero(data)
    assert extent == [(int(i.min()), int(i.max()) + 1) for i in nz]
    assert peak == 3
    assert m_arrays.extent_and_peak(np.zeros((4, 5), np.uint8)) == (None, 0)


# --------------------------------------------------------------------------------------------------
# 2-D: the compiled column search, and the percentile without numpy's machinery


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.one_of(st.sampled_from((0.0, 0.5, 1.0, 2.0)), st.floats(0, 1e3)), min_size=1, max_size=60
    ),
    st.sampled_from((0, 5, 50, 95, 99, 100)),
)
def test_the_percentile_equals_numpys_bit_for_bit(values: list[float], q: int) -> None:
    array = np.asarray(values)
    assert m_surface._percentile(array.copy(), q) == float(np.percentile(array, q))


@st.composite
def planar_masks(draw: st.DrawFn) -> tuple[list[Array], tuple[float, float]]:
    """Two 2-D masks of one shape (up to 40 per axis, so the column search walks many columns):
    noise, blobs, a few pixels far apart; isotropic and anisotropic spacing."""
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for _ in range(2):
        kind = draw(st.sampled_from(("noise", "blob", "sparse")))
        if kind == "noise":
            mask = rng.random(shape) < draw(st.sampled_from((0.1, 0.5, 0.9)))
        elif kind == "blob":
            field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
            mask = field > draw(st.sampled_from((-0.1, 0.0, 0.1)))
        else:
            mask = rng.random(shape) < 0.01
        out.append(np.asarray(mask))
    spacing = (
        draw(st.sampled_from((0.5, 0.7, 1.0, 3.0))),
        draw(st.sampled_from((0.5, 0.3, 1.0, 1.1))),
    )
    return out, spacing


@PROPERTY_SETTINGS
@given(planar_masks())
def test_the_column_search_gives_the_feature_transforms_distances(
    case: tuple[list[Array], tuple[float, float]],
) -> None:
    pytest.importorskip("numba")
    (a, b), spacing = case
    assume(a.any() and b.any())
    box_ = m_arrays.union_box((m_arrays.find_extent(x) for x in (a, b)), 2)
    crops = {k: m_arrays.binary_crop(k, x, box_) for k, x in (("a", a), ("b", b))}
    searched = m_engine._Case(crops, spacing)
    assert searched.column_runs("b") is not None  # the column search
    transformed = m_engine._Case(crops, spacing)
    transformed._runs = {"a": None, "b": None}  # the transform or the tree, as without numba
    for x, y in (("a", "b"), ("b", "a")):
        expected = transformed.directed(x, y)
        # Bit for bit but where two border pixels are exactly equally far and their float
        # distances differ in the last bit (3 × 0.7 and 7 × 0.3): the search keeps the lesser,
        # the transform either.
        assert np.allclose(searched.directed(x, y), expected, rtol=1e-15, atol=0)


def test_the_column_search_finds_a_border_pixel_many_columns_away() -> None:
    pytest.importorskip("numba")
    a = np.zeros((3, 30), bool)
    b = np.zeros((3, 30), bool)
    a[0, 0] = True
    b[2, 29] = True
    b[0, 20] = True  # nearer, but farther than a pixel in a column nearer to a
    spacing = (5.0, 1.0)
    out = m.compute(a, b, spacing, metrics=("hausdorff", "assd"))
    # a's pixel (0, 0): b's (0, 20) is 20 mm away, (2, 29) is hypot(10, 29); b's pixels: 20 and
    # hypot(10, 29) from a's only pixel
    far = math.hypot(10.0, 29.0)
    assert out["hausdorff"] == far
    assert out["assd"] == pytest.approx((20.0 + 20.0 + far) / 3)


# --------------------------------------------------------------------------------------------------
# 2-D: the compiled extent, the crops handed on, the border runs and the per-direction summary

BYTE_DTYPES = (np.bool_, np.uint8, np.int8)


@st.composite
def planar_layouts(draw: st.DrawFn) -> Array:
    """2-D arrays of every dtype, in C or Fortran order or as a view (offset, every other row,
    reversed, transposed), rows of any length (not only multiples of 8), sparse, full or empty."""
    rows, cols = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    dtype = draw(st.sampled_from((*BYTE_DTYPES, np.int16, np.float32, np.float64)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from((0.0, 0.001, 0.05, 0.5, 1.0)))
    values = rng.random((rows + 3, cols + 5)) < density
    data = (values * rng.integers(1, 100, values.shape)).astype(dtype)
    if dtype is np.float64 and draw(st.booleans()):
        data[rng.integers(0, rows + 3), rng.integers(0, cols + 5)] = np.nan  # nonzero, as numpy
    layout = draw(st.sampled_from(("C", "F", "view", "every other", "reversed", "transposed")))
    if layout == "F":
        return np.asfortranarray(data[:rows, :cols])
    if layout == "view":
        return data[draw(st.integers(0, 3)) :, draw(st.integers(0, 5)) :]
    if layout == "every other":
        return data[::2]
    if layout == "reversed":
        return data[:, ::-1]
    if layout == "transposed":
        return data[1:, 2:].T
    return np.ascontiguousarray(data[:rows, :cols])


@PROPERTY_SETTINGS
@given(planar_layouts())
def test_the_compiled_extent_equals_the_numpy_scan_on_every_layout(arr: Array) -> None:
    expected, _ = m_arrays._scan(arr, peak=False)
    assert m_arrays.find_extent(arr) == expected
    found = m_compiled.planar_extent(arr)
    rows_or_columns = 1 in (arr.strides[1], arr.strides[0]) or 1 in arr.shape
    if arr.dtype.itemsize == 1 and rows_or_columns and arr.strides[0] >= 0 <= arr.strides[1]:
        pytest.importorskip("numba")
        assert found is not None  # the compiled pass
    if found is not None:
        r0, r1, c0, c1 = found
        assert (None if r0 == r1 else [(r0, r1), (c0, c1)]) == expected


def test_the_compiled_extent_leaves_other_arrays_to_numpy() -> None:
    mask = np.zeros((4, 9), bool)
    mask[1, 2] = mask[2, 7] = True
    assert m_compiled.planar_extent(mask.astype(np.int16)) is None  # not bytes
    assert m_compiled.planar_extent(mask[::2, ::2]) is None  # neither rows nor columns contiguous
    assert m_compiled.planar_extent(np.zeros((2, 3, 4), bool)) is None  # 3-D
    mask[2, 6] = True
    assert m_arrays.find_extent(mask[::2, ::2]) == [(1, 2), (3, 4)]  # numpy's scan


def test_crops_to_the_union_are_immutable_and_their_extents_known() -> None:
    a = np.zeros((9, 11), bool)
    b = np.zeros((9, 11), bool)
    a[2, 3] = a[4, 4] = True
    b[5, 8] = True
    empty = np.zeros((9, 11), bool)
    crops = m_arrays.crop_to_union({"a": a, "b": b, "empty": empty})
    assert [c.shape for c in crops.values()] == [(4, 6)] * 3
    assert np.array_equal(crops["a"], a[2:6, 3:9])
    assert np.array_equal(crops["b"], b[2:6, 3:9])
    assert all(c.flags.c_contiguous and m_arrays._immutable(c) for c in crops.values())
    # the metrics and the morphology of the crops: those of the full masks
    pairs = [("a", "b"), ("empty", "b")]
    full = m.compute_many({"a": a, "b": b, "empty": empty}, pairs, (0.5, 0.7))
    shape = morphology.describe_mask(a, (0.5, 0.7))
    with pytest.MonkeyPatch.context() as patch:  # known, not scanned again
        patch.setattr(m_arrays, "_scan", lambda *_, **__: pytest.fail("scanned"))
        patch.setattr(m_arrays.compiled, "planar_extent", lambda _: pytest.fail("scanned"))
        assert m_arrays.find_extent(crops["a"]) == [(0, 3), (0, 2)]
        assert m_arrays.find_extent(crops["b"]) == [(3, 4), (5, 6)]
        assert m_arrays.find_extent(crops["empty"]) is None
        assert m.compute_many(crops, pairs, (0.5, 0.7)) == full
        assert morphology.describe_mask(crops["a"], (0.5, 0.7)) == shape
    nothing = m_arrays.crop_to_union({"x": empty, "y": empty})
    assert nothing["x"] is empty  # all zero: the full arrays
    assert nothing["y"] is empty


@PROPERTY_SETTINGS
@given(planar_masks())
def test_the_border_runs_are_the_numpy_border_grouped_by_column(
    case: tuple[list[Array], tuple[float, float]],
) -> None:
    pytest.importorskip("numba")
    (mask, _), _ = case
    found = m_compiled.border_runs(mask)
    assert found is not None
    coords, (start, runs) = found
    border = m_surface._border(mask)
    assert np.array_equal(coords, np.asarray(np.nonzero(border)))
    columns, rows = np.nonzero(border.T)  # column-major: each column's rows ascending
    assert np.array_equal(runs, rows)
    assert np.array_equal(np.diff(start), np.bincount(columns, minlength=mask.shape[1]))


@PROPERTY_SETTINGS
@given(planar_masks(), st.booleans())
def test_the_column_search_equals_the_least_sum_over_every_border_pixel_bit_for_bit(
    case: tuple[list[Array], tuple[float, float]], shuffled: bool
) -> None:
    pytest.importorskip("numba")
    (a, b), spacing = case
    assume(a.any() and b.any())
    asked, _ = m_compiled.border_runs(a)  # type: ignore[misc]
    targets, runs = m_compiled.border_runs(b)  # type: ignore[misc]
    if shuffled:  # rows out of order: the cursors start again from the top
        asked = asked[:, np.random.default_rng(0).permutation(asked.shape[1])]
    found = m_compiled.nearest_squared(runs, asked, spacing)
    dy = (targets[0][None, :] - asked[0][:, None]).astype(np.float64) * spacing[0]
    dx = (targets[1][None, :] - asked[1][:, None]).astype(np.float64) * spacing[1]
    assert np.array_equal(found, (dy * dy + dx * dx).min(axis=1))


distances_arrays = st.lists(
    st.one_of(st.sampled_from((0.0, 0.5, 1.0, 2.0, 2.5)), st.floats(0, 1e3)),
    min_size=1,
    max_size=120,
).map(np.asarray)


@PROPERTY_SETTINGS
@given(distances_arrays, st.sampled_from((0.5, 1.0, 2.0)))
def test_the_distance_summary_equals_numpys_max_count_and_order_statistics(
    values: Array, tolerance: float
) -> None:
    pytest.importorskip("numba")
    ordered = np.sort(values)
    for rank in {0, values.size // 2, max(0, values.size - 2), values.size - 1}:
        found = m_compiled.distance_summary(values, tolerance, rank)
        high = ordered[min(rank + 1, values.size - 1)]
        low = ordered[rank] if rank + 1 < values.size else high
        assert found == (values.max(), np.count_nonzero(values <= tolerance), low, high)


@PROPERTY_SETTINGS
@given(
    distances_arrays,
    distances_arrays,
    st.sampled_from(("max_directed", "pooled")),
    st.sampled_from((0.5, 1.0, 2.0)),
)
def test_the_distance_metrics_of_a_pair_at_once_equal_each_alone_bit_for_bit(
    d_pr: Array, d_rp: Array, method: Any, tolerance: float
) -> None:
    settings_ = m.MetricSettings(hd95_method=method, nsd_tolerance=tolerance)
    names: list[Any] = ["nsd", "masd", "hd95", "hausdorff", "assd"]
    together = m_surface._distance_values(names, d_pr, d_rp, settings_)
    alone = {n: m_surface._distance_value(n, d_pr, d_rp, settings_) for n in names}
    assert list(together) == names
    assert all(together[n] == alone[n] and type(together[n]) is float for n in names)
