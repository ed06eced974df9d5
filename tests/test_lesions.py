"""Lesion-wise scores: hand-computed cases, properties, conformance with panoptica and BraTS 2023,
and their way through the configuration, the evaluation, the cache and the gates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Repo, ball, write_nifti
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import segfair.audit
import segfair.report  # noqa: F401  (imported once: pytester's in-process runs reload the rest)
from segfair import metrics as m
from segfair.metrics import LesionSettings, MetricSettings, lesion_scores

pytest_plugins = ["pytester"]

REFERENCE = Path(__file__).parent / "data" / "lesion_conformance.json"
ALL_LESIONS = LesionSettings(min_volume=0)
IOU = LesionSettings(match="iou", min_volume=0)


def cube(shape: tuple[int, ...], *spans: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[tuple(slice(a, b) for a, b in spans)] = True
    return out


# -- hand-computed cases --------------------------------------------------------------------------


def test_two_reference_lesions_one_missed_score_half_dice_and_half_the_penalty() -> None:
    s = (24, 24, 24)
    a, b = cube(s, (2, 6), (2, 6), (2, 6)), cube(s, (16, 20), (16, 20), (16, 20))
    for rule in (ALL_LESIONS, IOU):
        out = lesion_scores(a, a | b, settings=rule)
        assert out == {
            "lesion_dice": 0.5,
            "lesion_hd95": 187.0,
            "lesion_sensitivity": 0.5,
            "lesion_fp": 0.0,
            "lesion_f1": 2 / 3,
            "small_lesions": 2.0,
            "small_lesions_detected": 1.0,
            "lesions": 2.0,
            "lesions_detected": 1.0,
        }


def test_a_split_prediction_is_one_hit_under_brats_and_two_false_lesions_under_iou() -> None:
    s = (12, 10, 10)
    ref = cube(s, (2, 7), (2, 6), (2, 6))  # 80 voxels
    pred = ref.copy()
    pred[4] = False  # two halves of 32 voxels, each IoU 0.4 with the reference
    brats = lesion_scores(pred, ref, settings=ALL_LESIONS)
    assert brats["lesion_dice"] == 2 * 64 / (64 + 80)
    assert (brats["lesion_sensitivity"], brats["lesion_fp"], brats["lesion_f1"]) == (1, 0, 1)
    iou = lesion_scores(pred, ref, settings=IOU)
    assert (iou["lesion_dice"], iou["lesion_hd95"]) == (0.0, 374.0)
    assert (iou["lesion_sensitivity"], iou["lesion_fp"], iou["lesion_f1"]) == (0, 2, 0)


def test_a_merged_prediction_hits_both_lesions_under_brats_and_neither_under_iou() -> None:
    s = (18, 7, 7)
    ref = cube(s, (2, 5), (2, 5), (2, 5)) | cube(s, (12, 15), (2, 5), (2, 5))  # 27 + 27
    pred = cube(s, (2, 15), (2, 5), (2, 5))  # one bar of 117 voxels over both
    brats = lesion_scores(pred, ref, settings=ALL_LESIONS)
    assert brats["lesion_dice"] == 2 * 27 / (117 + 27)
    assert (brats["lesion_sensitivity"], brats["lesion_fp"]) == (1.0, 0.0)
    iou = lesion_scores(pred, ref, settings=IOU)
    assert (iou["lesion_dice"], iou["lesion_sensitivity"], iou["lesion_fp"]) == (0, 0, 1)
    assert iou["lesion_hd95"] == 374.0


def test_reference_lesions_whose_dilations_touch_are_one_lesion_under_brats() -> None:
    s = (20, 7, 7)
    ref = cube(s, (2, 5), (2, 5), (2, 5)) | cube(s, (9, 12), (2, 5), (2, 5))  # 4 voxels apart
    pred = cube(s, (2, 5), (2, 5), (2, 5))
    merged = lesion_scores(pred, ref, settings=ALL_LESIONS)  # dilation 3 joins them
    assert (merged["lesion_sensitivity"], merged["lesion_dice"]) == (1.0, 2 * 27 / (27 + 54))
    apart = lesion_scores(pred, ref, settings=LesionSettings(min_volume=0, dilation=1))
    assert (apart["lesion_sensitivity"], apart["lesion_dice"]) == (0.5, 0.5)


def test_false_positives_only_score_zero_dice_the_penalty_and_an_undefined_sensitivity() -> None:
    pred = cube((10, 10, 10), (2, 5), (2, 5), (2, 5))
    out = lesion_scores(pred, np.zeros_like(pred))
    assert (out["lesion_dice"], out["lesion_hd95"], out["lesion_fp"], out["lesion_f1"]) == (
        0.0,
        374.0,
        1.0,
        0.0,
    )
    assert math.isnan(out["lesion_sensitivity"])


def test_two_empty_masks_score_one_and_zero() -> None:
    empty = np.zeros((6, 6, 6), bool)
    for rule in (LesionSettings(), IOU):
        assert lesion_scores(empty, empty, settings=rule) == {
            "lesion_dice": 1.0,
            "lesion_hd95": 0.0,
            "lesion_sensitivity": 1.0,
            "lesion_fp": 0.0,
            "lesion_f1": 1.0,
            "small_lesions": 0.0,
            "small_lesions_detected": 0.0,
            "lesions": 0.0,
            "lesions_detected": 0.0,
        }


def test_an_empty_prediction_misses_every_lesion() -> None:
    ref = cube((10, 10, 10), (2, 5), (2, 5), (2, 5))
    out = lesion_scores(np.zeros_like(ref), ref, settings=ALL_LESIONS)
    assert (out["lesion_dice"], out["lesion_hd95"], out["lesion_sensitivity"]) == (0, 374, 0)
    assert (out["lesion_fp"], out["lesion_f1"]) == (0, 0)


def test_reference_lesions_at_or_below_the_minimum_volume_are_left_out_in_mm3() -> None:
    s = (20, 20, 20)
    big, tiny = cube(s, (2, 6), (2, 6), (2, 6)), cube(s, (15, 17), (15, 17), (15, 17))  # 64, 8
    pred = big | cube(s, (15, 16), (15, 16), (15, 16))  # finds the tiny one too
    kept = lesion_scores(pred, big | tiny, settings=LesionSettings(min_volume=8))
    # the tiny lesion is neither scored nor does its prediction count as a false positive
    assert (kept["lesion_dice"], kept["lesion_sensitivity"], kept["lesion_fp"]) == (1, 1, 0)
    # 8 voxels of 2 mm³ are 16 mm³: above a threshold of 8 mm³, so scored
    scored = lesion_scores(pred, big | tiny, (1, 1, 2), settings=LesionSettings(min_volume=8))
    assert scored["lesion_dice"] == (1 + 2 / 9) / 2


def test_every_kept_lesion_is_counted_with_those_found_beside_the_small_ones() -> None:
    s = (30, 30, 30)
    big = cube(s, (2, 12), (2, 12), (2, 12))  # 1000 voxels: not small
    small1, small2 = cube(s, (20, 24), (20, 24), (20, 24)), cube(s, (20, 24), (2, 6), (2, 6))
    tiny = cube(s, (26, 27), (26, 27), (26, 27))  # 1 voxel: at or below min_volume, left out
    ref = big | small1 | small2 | tiny
    out = lesion_scores(small1, ref, settings=LesionSettings(min_volume=8, dilation=1))
    assert (out["lesions"], out["lesions_detected"]) == (3.0, 1.0)
    assert (out["small_lesions"], out["small_lesions_detected"]) == (2.0, 1.0)
    assert out["lesion_sensitivity"] == out["lesions_detected"] / out["lesions"]
    iou = lesion_scores(big | small2, ref, settings=LesionSettings(min_volume=8, match="iou"))
    assert (iou["lesions"], iou["lesions_detected"]) == (3.0, 2.0)


def test_small_lesions_are_counted_with_those_found() -> None:
    s = (30, 30, 30)
    big = cube(s, (2, 12), (2, 12), (2, 12))  # 1000 voxels
    small1, small2 = cube(s, (20, 24), (20, 24), (20, 24)), cube(s, (20, 24), (2, 6), (2, 6))
    out = lesion_scores(big | small1, big | small1 | small2, settings=ALL_LESIONS)
    assert (out["small_lesions"], out["small_lesions_detected"]) == (2.0, 1.0)
    tighter = LesionSettings(min_volume=0, small_volume=63)
    assert lesion_scores(big, big | small1, settings=tighter)["small_lesions"] == 0.0


def test_two_dimensional_masks_use_8_or_4_connectivity() -> None:
    ref = cube((12, 12), (2, 5), (2, 5))
    ref[5, 5] = True  # touches the square only at a corner
    pred = cube((12, 12), (2, 5), (2, 5))
    eight = lesion_scores(pred, ref, settings=LesionSettings(min_volume=0, match="iou"))
    assert (eight["lesion_sensitivity"], eight["lesion_dice"]) == (1.0, 2 * 9 / 19)
    four = lesion_scores(
        pred, ref, settings=LesionSettings(min_volume=0, match="iou", connectivity=4)
    )
    assert (four["lesion_sensitivity"], four["lesion_dice"]) == (0.5, 0.5)


def test_three_dimensional_connectivity_6_18_26() -> None:
    ref = np.zeros((6, 6, 6), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True  # corner neighbours: one lesion at 26 only
    ref[1, 4, 1] = ref[2, 5, 1] = True  # edge neighbours: one lesion at 18 and 26
    counts = [m.label_lesions(ref, connectivity=c)[1] for c in (6, 18, 26)]
    assert counts == [4, 3, 2]


def test_a_connectivity_that_does_not_fit_the_masks_is_an_input_error() -> None:
    from segfair.errors import InputError

    with pytest.raises(InputError, match="4, 8"):
        lesion_scores(
            np.ones((4, 4), bool), np.ones((4, 4), bool), settings=LesionSettings(connectivity=26)
        )


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("match", "hungarian", "brats, iou"),
        ("connectivity", 5, "4, 6, 8, 18, 26"),
        ("iou_threshold", 0.0, "(0, 1]"),
        ("dilation", -1, ">= 0"),
        ("dilation", 1.5, "whole number"),
        ("min_volume", math.nan, ">= 0"),
        ("hd95_penalty", math.inf, "> 0"),
    ],
)
def test_bad_lesion_settings_are_refused_naming_the_valid_values(
    field: str, value: Any, text: str
) -> None:
    with pytest.raises(ValueError, match=field) as info:
        LesionSettings(**{field: value})
    assert text in str(info.value)


def test_the_settings_describe_the_definitions_in_force() -> None:
    text = LesionSettings(match="iou", iou_threshold=0.3).describe()
    assert text["match"] == "iou"
    assert "IoU >= 0.3" in str(text["matching"])
    assert LesionSettings().describe()["dilation"] == 3


def test_lesion_metrics_are_opt_in_and_compute_many_shares_components() -> None:
    assert not set(m.LESION_METRICS) & set(m.ALL_METRICS)
    s = (20, 20, 20)
    ref = cube(s, (2, 6), (2, 6), (2, 6)) | cube(s, (12, 16), (12, 16), (12, 16))
    a, b = cube(s, (2, 6), (2, 6), (2, 6)), ref.copy()
    names = ("dice", *m.LESION_METRICS)
    many = m.compute_many(
        {"a": a, "b": b, "ref": ref},
        [("a", "ref"), ("b", "ref"), ("a", "b")],
        metrics=names,
        lesion_settings=ALL_LESIONS,
    )
    for p, r, x, y in (("a", "ref", a, ref), ("b", "ref", b, ref), ("a", "b", a, b)):
        alone = m.compute(x, y, metrics=names)
        alone.update(lesion_scores(x, y, settings=ALL_LESIONS))
        assert many[(p, r)] == alone
    assert list(m.compute(a, ref)) == list(m.ALL_METRICS)


# -- properties -----------------------------------------------------------------------------------

masks_3d = arrays(np.bool_, st.tuples(*[st.integers(3, 9)] * 3))


def _pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    ref = draw(masks_3d)
    pred = draw(arrays(np.bool_, ref.shape))
    return pred, ref


pairs = st.composite(_pair)()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref=masks_3d, rule=st.sampled_from([LesionSettings(), IOU, LesionSettings(connectivity=6)]))
def test_a_perfect_prediction_scores_one_with_no_false_lesions(
    ref: np.ndarray, rule: LesionSettings
) -> None:
    out = lesion_scores(ref, ref, settings=rule)
    assert (out["lesion_dice"], out["lesion_hd95"], out["lesion_sensitivity"]) == (1, 0, 1)
    assert (out["lesion_fp"], out["lesion_f1"]) == (0, 1)
    assert out["small_lesions_detected"] == out["small_lesions"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs, axes=st.permutations([0, 1, 2]), flip=st.booleans())
def test_how_components_are_numbered_does_not_change_the_scores(
    pair: tuple[np.ndarray, np.ndarray], axes: list[int], flip: bool
) -> None:
    # transposing or flipping renumbers the components (labels follow the scan order)
    pred, ref = pair

    def moved(x: np.ndarray) -> np.ndarray:
        y = np.transpose(x, axes)
        return y[::-1] if flip else y

    for rule in (ALL_LESIONS, LesionSettings(connectivity=18, min_volume=2, small_volume=4)):
        assert lesion_scores(pred, ref, settings=rule) == pytest.approx(
            lesion_scores(moved(pred), moved(ref), settings=rule), nan_ok=True
        )
    # the IoU rule too, but for the HD95 of a pair chosen among exact IoU ties
    names = [n for n in m.LESION_METRICS if n != "lesion_hd95"]
    assert lesion_scores(pred, ref, settings=IOU, metrics=names) == pytest.approx(
        lesion_scores(moved(pred), moved(ref), settings=IOU, metrics=names), nan_ok=True
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs, pooled=st.booleans())
def test_under_the_iou_rule_dice_f1_and_hd95_are_symmetric(
    pair: tuple[np.ndarray, np.ndarray], pooled: bool
) -> None:
    pred, ref = pair
    ms = MetricSettings(hd95_method="pooled" if pooled else "max_directed")
    names = ("lesion_dice", "lesion_f1", "lesion_hd95")
    ab = lesion_scores(pred, ref, settings=IOU, metric_settings=ms, metrics=names)
    ba = lesion_scores(ref, pred, settings=IOU, metric_settings=ms, metrics=names)
    assert ab == pytest.approx(ba, rel=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs, rule=st.sampled_from([LesionSettings(), IOU]))
def test_lesion_scores_stay_in_their_ranges(
    pair: tuple[np.ndarray, np.ndarray], rule: LesionSettings
) -> None:
    out = lesion_scores(*pair, settings=rule)
    assert 0 <= out["lesion_dice"] <= 1
    assert 0 <= out["lesion_f1"] <= 1
    assert 0 <= out["lesion_hd95"] <= 374
    assert math.isnan(out["lesion_sensitivity"]) or 0 <= out["lesion_sensitivity"] <= 1
    assert 0 <= out["small_lesions_detected"] <= out["small_lesions"]
    assert out["lesion_fp"] == int(out["lesion_fp"]) >= 0
    # every small lesion is a lesion; a found small one is a found one
    assert out["small_lesions"] <= out["lesions"]
    assert out["lesions_detected"] <= out["lesions"]
    assert out["lesions_detected"] - out["small_lesions_detected"] <= (
        out["lesions"] - out["small_lesions"]
    )
    if out["lesions"]:
        assert out["lesion_sensitivity"] == out["lesions_detected"] / out["lesions"]


def brats_dense(
    pred: np.ndarray, ref: np.ndarray, dilation: int, thresh: float
) -> dict[str, float]:
    """BraTS 2023's algorithm written plainly over the whole array (metrics.py, 26-connectivity,
    18-neighbourhood dilation), segfair's HD95: the reference for segfair's box-wise version."""
    from scipy import ndimage

    full = ndimage.generate_binary_structure(3, 3)
    grow = ndimage.generate_binary_structure(3, 2)
    pred_cc, _ = ndimage.label(pred, structure=full)
    grown = ndimage.binary_dilation(ref, grow, iterations=dilation) if dilation else ref
    combined = np.where(ref, ndimage.label(grown, structure=full)[0], 0)
    dice, hd, hits, found, n = 0.0, 0.0, set(), 0, 0
    for k in np.unique(combined[combined > 0]):
        gt = combined == k
        region = ndimage.binary_dilation(gt, grow, iterations=dilation) if dilation else gt
        near = set(np.unique(pred_cc[region]).tolist()) - {0}
        hits |= near
        if gt.sum() <= thresh:
            continue
        n += 1
        if near:
            found += 1
            p = np.isin(pred_cc, list(near))
            dice += 2 * np.count_nonzero(p & gt) / (p.sum() + gt.sum())
            hd += m.hd95(p, gt)
        else:
            hd += 374.0
    fp = len(set(np.unique(pred_cc).tolist()) - {0} - hits)
    entries = n + fp
    return {
        "lesion_dice": dice / entries if entries else 1.0,
        "lesion_hd95": (hd + 374.0 * fp) / entries if entries else 0.0,
        "lesion_fp": float(fp),
        "found": float(found),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs, dilation=st.integers(0, 3), thresh=st.sampled_from([0.0, 2.0, 5.0]))
def test_the_box_wise_brats_rule_equals_the_rule_written_plainly(
    pair: tuple[np.ndarray, np.ndarray], dilation: int, thresh: float
) -> None:
    pred, ref = pair
    rule = LesionSettings(dilation=dilation, min_volume=thresh)
    out = lesion_scores(pred, ref, settings=rule)
    plain = brats_dense(pred, ref, dilation, thresh)
    for name in ("lesion_dice", "lesion_hd95", "lesion_fp"):
        assert out[name] == pytest.approx(plain[name], rel=1e-12, abs=1e-12), name


sparse_3d = arrays(np.uint8, st.tuples(*[st.integers(6, 26)] * 3), elements=st.integers(0, 9)).map(
    lambda a: a < 2
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=sparse_3d, connectivity=st.sampled_from([6, 18, 26]))
def test_lesions_are_the_connected_components_of_the_whole_mask(
    mask: np.ndarray, connectivity: int
) -> None:
    # every component counts as small: the count is the number of lesions found box by box
    rule = LesionSettings(connectivity=connectivity, dilation=0, min_volume=0, small_volume=1e9)
    out = lesion_scores(mask, mask, settings=rule, metrics=["small_lesions"])
    assert out["small_lesions"] == m.label_lesions(mask, connectivity=connectivity)[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref=sparse_3d, data=st.data())
def test_the_box_wise_brats_rule_equals_the_plain_one_on_larger_sparse_masks(
    ref: np.ndarray, data: st.DataObject
) -> None:
    pred = data.draw(arrays(np.uint8, ref.shape, elements=st.integers(0, 9))) < 2
    out = lesion_scores(pred, ref, settings=LesionSettings(min_volume=1))
    plain = brats_dense(pred, ref, 3, 1)
    for name in ("lesion_dice", "lesion_hd95", "lesion_fp"):
        assert out[name] == pytest.approx(plain[name], rel=1e-12, abs=1e-12), name


@settings(max_examples=40, deadline=None)
@given(mask=sparse_3d, fortran=st.booleans(), step=st.integers(1, 2))
def test_occupied_blocks_are_found_in_either_memory_order_and_on_views(
    mask: np.ndarray, fortran: bool, step: int
) -> None:
    from segfair.metrics.lesions import _BLOCK, _blocks

    arr = (np.asfortranarray(mask) if fortran else mask)[::step]  # a strided view too
    expected = arr.view(np.uint8)
    for axis, n in enumerate(arr.shape):
        expected = np.maximum.reduceat(expected, np.arange(0, n, _BLOCK), axis=axis)
    assert np.array_equal(_blocks(arr).astype(bool), expected.astype(bool))


# -- conformance with the peers' own code ---------------------------------------------------------


def _reference_cases() -> list[dict[str, Any]]:
    return list(json.loads(REFERENCE.read_text())["cases"])


def _arrays(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for key in ("pred", "ref"):
        arr = np.zeros(case["shape"], bool)
        arr.flat[case[key]] = True
        out.append(arr)
    return out[0], out[1]


CASES = _reference_cases()


def test_the_reference_set_is_varied() -> None:
    names = [c["name"] for c in CASES]
    assert sum(n.startswith("panoptica case_") for n in names) == 7  # panoptica's own cases
    assert sum("brats" in c for c in CASES) >= 30
    assert {len(c["shape"]) for c in CASES} == {2, 3}
    assert any(c["panoptica"]["fp"] and c["panoptica"]["fn"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_iou_rule_agrees_with_panoptica_naive_threshold_matching(case: dict[str, Any]) -> None:
    pred, ref = _arrays(case)
    # panoptica labels 3-D masks with cc3d (26) and 2-D ones with scipy.ndimage.label (4)
    rule = LesionSettings(match="iou", min_volume=0, connectivity=26 if pred.ndim == 3 else 4)
    pooled = MetricSettings(hd95_method="pooled")  # panoptica's HD95
    out = lesion_scores(pred, ref, case["spacing"], settings=rule, metric_settings=pooled)
    peer = case["panoptica"]
    tp, fp, fn = peer["tp"], peer["fp"], peer["fn"]
    assert out["lesion_fp"] == fp
    entries = tp + fp + fn
    if tp + fn:
        assert out["lesion_sensitivity"] == pytest.approx(tp / (tp + fn), abs=1e-12)
    if entries:
        # segfair's lesion-wise means from panoptica's means over matched pairs
        assert out["lesion_f1"] == pytest.approx(peer["rq"], abs=1e-12)
        dice = (peer["sq_dsc"] or 0.0) * tp / entries
        assert out["lesion_dice"] == pytest.approx(dice, abs=1e-12)
        hd95 = ((peer["sq_hd95"] or 0.0) * tp + 374.0 * (fp + fn)) / entries
        assert out["lesion_hd95"] == pytest.approx(hd95, abs=1e-9)
    else:  # panoptica: NaN; segfair: both empty scores 1 (docs/metrics.md)
        assert peer["rq"] is None
        assert out["lesion_f1"] == 1.0


BRATS = {"BraTS-GLI": (3, 50.0), "BraTS-MEN": (1, 50.0), "BraTS-MET": (1, 2.0)}
BRATS_CASES = [(c, ch) for c in CASES if "brats" in c for ch in BRATS]


@pytest.mark.parametrize(
    ("case", "challenge"), BRATS_CASES, ids=[f"{c['name']}-{ch}" for c, ch in BRATS_CASES]
)
def test_the_brats_rule_agrees_with_the_brats_2023_evaluation(
    case: dict[str, Any], challenge: str
) -> None:
    pred, ref = _arrays(case)
    dilation, thresh = BRATS[challenge]
    rule = LesionSettings(dilation=dilation, min_volume=thresh)
    out = lesion_scores(pred, ref, case["spacing"], settings=rule)
    peer = case["brats"][challenge]
    assert out["lesion_dice"] == pytest.approx(peer["lesion_dice"], abs=1e-12)
    assert out["lesion_fp"] == peer["fp"]
    if peer["tp"] + peer["fn"]:
        assert out["lesion_sensitivity"] == peer["tp"] / (peer["tp"] + peer["fn"])
    # BraTS measures HD95 between surfels (DeepMind's surface-distance), segfair between border
    # voxels: a documented difference, under one voxel on these cases
    assert out["lesion_hd95"] == pytest.approx(peer["lesion_hd95"], abs=min(case["spacing"]))


def test_the_iou_rule_agrees_with_an_installed_panoptica() -> None:
    panoptica = pytest.importorskip("panoptica")  # the `conformance` extra
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )

    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(),
    )
    assert panoptica is not None
    for case in CASES[:20]:
        pred, ref = _arrays(case)
        r = evaluator.evaluate(pred.astype(np.uint8), ref.astype(np.uint8))["ungrouped"]
        rule = LesionSettings(match="iou", min_volume=0, connectivity=26 if pred.ndim == 3 else 4)
        assert lesion_scores(pred, ref, settings=rule)["lesion_fp"] == r.fp


# -- configuration, evaluation, cache, gates ------------------------------------------------------


def make_multifocal_repo(root: Path, *, n_cases: int = 24, miss_young: float = 1.0) -> Repo:
    """Cases with one large lesion and three small satellites; the model finds the large lesion
    always and a young case's satellites with probability 1 - miss_young (older: always)."""
    rng = np.random.default_rng(5)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"CASE_{i:03d}" for i in range(n_cases)]
    rows = ["case_id,age"]
    shape = (36, 36, 14)
    for i, cid in enumerate(ids):
        young = i % 2 == 0
        rows.append(f"{cid},{30 if young else 70}")
        main = ball(shape, (12, 12, 7), 4.0)
        ref, pred = main.copy(), main.copy()
        for centre in ((30, 6, 7), (30, 30, 7), (6, 30, 7)):
            sat = ball(shape, centre, 1.8)
            ref |= sat
            if not (young and rng.random() < miss_young):
                pred |= sat
        write_nifti(root / "labels" / "expert" / f"{cid}.nii.gz", ref)
        write_nifti(root / "preds" / "candidate" / f"{cid}.nii.gz", pred)
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    config: dict[str, Any] = {
        "cases": "cases.csv",
        "n_boot": 200,
        "min_group_size": 2,
        "cache": False,
        "workers": 1,
        "metrics": ["dice", "lesion_dice", "lesion_hd95", "lesion_sensitivity", "lesion_fp"],
        "lesions": {"min_volume": 5.0, "small_volume": 100.0},
        "rulers": {"expert": "labels/expert/{case_id}.nii.gz"},
        "models": {"candidate": "preds/candidate/{case_id}.nii.gz"},
        "attributes": {"age_group": {"column": "age", "bins": [50], "labels": ["young", "older"]}},
    }
    repo = Repo(root=root, config=config, case_ids=ids)
    repo.write_config()
    return repo


def test_a_configuration_without_lesions_dumps_as_before(repo: Repo) -> None:
    from segfair.cohort.config import load_config

    cfg = load_config(repo.config_path)
    assert cfg.lesions is None
    assert "lesions" not in cfg.model_dump()


def test_lesions_without_a_lesion_metric_is_a_config_error(repo: Repo) -> None:
    from segfair.cohort.config import load_config
    from segfair.errors import ConfigError

    repo.write_config(lesions={"match": "iou"})
    with pytest.raises(ConfigError, match="lesion_dice"):
        load_config(repo.config_path)


def test_a_typo_in_the_lesions_table_names_the_valid_keys(tmp_path: Path) -> None:
    from segfair.cohort.config import load_config
    from segfair.errors import ConfigError

    repo = make_multifocal_repo(tmp_path / "r", n_cases=2)
    repo.write_config(lesions={"dilations": 2})
    with pytest.raises(ConfigError, match="did you mean 'dilation'") as info:
        load_config(repo.config_path)
    assert "hd95_penalty" in str(info.value)
    repo.write_config(lesions={"match": "hungarian"})
    with pytest.raises(ConfigError, match="brats"):
        load_config(repo.config_path)


def test_lesion_scores_flow_into_the_score_table_with_their_settings(tmp_path: Path) -> None:
    from segfair import evaluate, load_cohort

    repo = make_multifocal_repo(tmp_path / "r", n_cases=4)
    scores = evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    young = scores.values("lesion_sensitivity", model="candidate", ruler="expert")
    assert young.tolist() == [1 / 4, 1.0, 1 / 4, 1.0]
    assert scores.values("lesion_fp", model="candidate", ruler="expert").sum() == 0
    assert scores.settings["lesions"]["min_volume_mm3"] == 5.0
    assert list(scores.metrics) == repo.config["metrics"]


def test_changing_a_lesion_setting_changes_the_cache_key(tmp_path: Path) -> None:
    from segfair.cohort import load_cohort
    from segfair.evaluate.cache import _cache_key
    from segfair.evaluate.tasks import build_tasks

    repo = make_multifocal_repo(tmp_path / "r", n_cases=2)
    first = _cache_key(build_tasks(load_cohort(repo.config_path))[0])
    repo.write_config(lesions={"min_volume": 5.0, "small_volume": 100.0, "dilation": 1})
    assert _cache_key(build_tasks(load_cohort(repo.config_path))[0]) != first
    repo.write_config(metrics=["dice"], lesions=None)
    repo.config.pop("lesions")
    repo.write_config()
    plain = build_tasks(load_cohort(repo.config_path))[0]
    assert "lesions" not in plain.settings  # runs without lesion scores keep their old keys


@pytest.mark.parametrize(
    ("metric", "limit", "passes"),
    [
        ("lesion_sensitivity", 0.9, True),
        ("lesion_sensitivity", 0.5, False),
        ("lesion_dice", 0.5, False),
        ("lesion_hd95", 350.0, True),
        ("lesion_hd95", 50.0, False),
        ("lesion_fp", 0.5, True),
    ],
)
def test_gap_gates_on_lesion_scores_run_from_the_cli(
    tmp_path: Path, metric: str, limit: float, passes: bool
) -> None:
    from segfair.cli import EXIT_FAILED, EXIT_OK, main

    repo = make_multifocal_repo(tmp_path / "r")
    gate = {"kind": "gap", "metric": metric, "by": "age_group", "model": "candidate", "max": limit}
    repo.write_config(gates=[{**gate, "min_group_size": 2}])
    code = main(["audit", "--config", str(repo.config_path), "--no-cache"])
    assert code == (EXIT_OK if passes else EXIT_FAILED)


def test_a_min_group_metric_gate_on_false_lesions_takes_max_and_names_the_worst_group(
    tmp_path: Path,
) -> None:
    from segfair.errors import ConfigError
    from segfair.gates import parse_gate

    with pytest.raises(ConfigError, match="count of false lesions"):
        parse_gate(
            {"kind": "min_group_metric", "metric": "lesion_fp", "by": "a", "model": "m", "min": 0}
        )
    with pytest.raises(ConfigError, match="lesion_fp"):
        parse_gate({"kind": "gap", "metric": "lesion_fp", "by": "a", "model": "m", "max": -1})
    with pytest.raises(ConfigError, match="lesion_dice"):
        parse_gate({"kind": "gap", "metric": "lesion_dice", "by": "a", "model": "m", "max": 2})


# -- the small-lesion detection gap ---------------------------------------------------------------


def detection_scores(small: list[list[int]], found: list[list[int]], *, extra: bool = False) -> Any:
    """Scores of one model whose cases, group by group, hold ``small[g][i]`` small lesions of
    which ``found[g][i]`` are detected."""
    import pandas as pd

    from segfair.scores import Scores

    rows, labels = [], {}
    for g, (counts, hits) in enumerate(zip(small, found, strict=True)):
        for i, (n, k) in enumerate(zip(counts, hits, strict=True)):
            cid = f"g{g}c{i:03d}"
            labels[cid] = f"group{g}"
            rows += [
                (cid, "m", "expert", "small_lesions", float(n)),
                (cid, "m", "expert", "small_lesions_detected", float(k)),
            ]
            if extra:
                rows.append((cid, "m", "expert", "dice", 0.8))
    return Scores(
        table=pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"]),
        groups=pd.DataFrame(
            {"grp": list(labels.values())}, index=pd.Index(list(labels), name="case_id")
        ),
        trusted_ruler="expert",
        rulers=("expert",),
        models=("m",),
        settings={"lesions": {"small_volume_mm3": 500.0}},
    )


def test_the_detection_rate_is_pooled_over_a_groups_lesions_and_cases_without_any_are_counted() -> (
    None
):
    from segfair.audit import Audit

    scores = detection_scores(
        [[4, 0, 1, 0] * 5, [2, 2, 0, 0] * 5], [[3, 0, 0, 0] * 5, [2, 1, 0, 0] * 5]
    )
    r = Audit(scores, n_boot=200).detection_gap(by="grp", model="m")
    table = r.by_group
    assert table["small_lesions"].tolist() == [25.0, 20.0]
    assert table["detected"].tolist() == [15.0, 15.0]
    assert table["estimate"].tolist() == [15 / 25, 15 / 20]  # not the mean of case rates
    assert table["cases_without_small"].tolist() == [10, 10]
    assert table["n"].tolist() == [20, 20]
    assert r.gap.estimate == pytest.approx(0.75 - 0.6)
    assert r.gap.lower <= r.gap.estimate <= r.gap.upper
    assert (r.min_group, r.max_group, r.small_volume) == ("group0", "group1", 500.0)


def test_a_group_without_small_lesions_has_no_rate_and_is_named_in_a_note() -> None:
    from segfair.audit import Audit

    scores = detection_scores([[2] * 10, [1] * 10, [0] * 10], [[2] * 10, [1] * 10, [0] * 10])
    r = Audit(scores, n_boot=200).detection_gap(by="grp", model="m")
    assert math.isnan(r.by_group.loc["group2", "estimate"])
    assert r.by_group.loc["group2", "cases_without_small"] == 10
    assert any("'group2' has no small lesion" in n for n in r.notes)
    assert r.gap.estimate == 0.0


def test_the_detection_gap_names_the_metrics_it_needs() -> None:
    from dataclasses import replace

    from segfair.audit import Audit, AuditError

    scores = detection_scores([[1] * 3], [[1] * 3], extra=True)
    scores = replace(scores, table=scores.table[scores.table["metric"] != "small_lesions"])
    with pytest.raises(AuditError, match="small_lesions"):
        Audit(scores, n_boot=200).detection_gap(by="grp", model="m")


def simulated(rng: np.random.Generator, rates: tuple[float, float], n: int = 60) -> Any:
    small = [rng.poisson(2.0, n).tolist() for _ in rates]
    found = [rng.binomial(s, p).tolist() for s, p in zip(small, rates, strict=True)]
    return detection_scores(small, found)


def test_a_known_detection_disparity_fails_its_gate_and_an_equal_one_passes() -> None:
    from segfair.audit import Audit
    from segfair.gates import evaluate_gate, parse_gate

    gate = parse_gate({"kind": "detection_gap", "by": "grp", "model": "m", "max": 0.2})
    rng = np.random.default_rng(17)
    unfair = [
        evaluate_gate(Audit(simulated(rng, (0.9, 0.4)), n_boot=300), gate).status for _ in range(10)
    ]
    fair = [
        evaluate_gate(Audit(simulated(rng, (0.8, 0.8)), n_boot=300), gate).status for _ in range(10)
    ]
    assert unfair.count("failed") >= 9
    assert fair.count("passed") >= 7


def test_a_detection_gap_at_its_limit_passes_no_more_often_than_the_stated_rate() -> None:
    # true gap 0.2 = the limit: a bound-based verdict passes with probability ≤ 2.5 %
    from segfair.audit import Audit
    from segfair.gates import evaluate_gate, parse_gate

    gate = parse_gate({"kind": "detection_gap", "by": "grp", "model": "m", "max": 0.2})
    rng = np.random.default_rng(3)
    passes = sum(
        evaluate_gate(Audit(simulated(rng, (0.9, 0.7), n=80), n_boot=300), gate).status == "passed"
        for _ in range(40)
    )
    assert passes <= 4  # 2.5 % of 40 is 1; 4 leaves room for the bootstrap's own error


def test_the_detection_gap_gate_runs_from_the_cli_on_written_files(tmp_path: Path) -> None:
    from segfair.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

    repo = make_multifocal_repo(tmp_path / "r", miss_young=0.8)
    gate = {"kind": "detection_gap", "by": "age_group", "model": "candidate", "min_group_size": 2}
    repo.write_config(gates=[{**gate, "max": 0.3}])
    # the counts are not among the metrics: refused, naming them
    assert main(["audit", "--config", str(repo.config_path), "--no-cache"]) == EXIT_USAGE
    metrics = [*repo.config["metrics"], "small_lesions", "small_lesions_detected"]
    repo.write_config(metrics=metrics)
    assert main(["audit", "--config", str(repo.config_path), "--no-cache"]) == EXIT_FAILED
    repo.write_config(gates=[{**gate, "max": 0.99}])
    assert main(["audit", "--config", str(repo.config_path), "--no-cache"]) == EXIT_OK


PLUGIN_TEST = """
def test_small_lesions_are_found_alike(segfair_audit):
    segfair_audit.assert_detection_gap(by="age_group", model="candidate", max={max},
                                       min_group_size=2)
"""


def test_the_plugin_asserts_the_detection_gap(pytester: pytest.Pytester) -> None:
    repo = make_multifocal_repo(pytester.path, miss_young=0.8)
    repo.write_config(metrics=[*repo.config["metrics"], "small_lesions", "small_lesions_detected"])
    pytester.makepyfile(test_fair=PLUGIN_TEST.format(max=0.99))
    pytester.makepyfile(test_unfair=PLUGIN_TEST.format(max=0.3))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*small lesions*found least*"])
