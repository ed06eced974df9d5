"""The formats behind optional extras: ITK (.mha, .mhd, .nrrd, .seg.nrrd), DICOM-SEG, PNG and TIFF.

Each reads as its NIfTI (or NumPy) copy reads: the same array, spacing and affine, and so the same
scores; broken files, a missing extra and mismatched grids are refused as for NIfTI.
"""

from __future__ import annotations

import io as stdio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from conftest import GAP_GATE, Repo
from dicomseg_files import seg_affine, write_ct_slice, write_labelmap_seg, write_seg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segfair import metrics
from segfair.cli import EXIT_OK, EXIT_USAGE, main
from segfair.cohort import load_cohort
from segfair.errors import CohortError, GeometryError, InputError
from segfair.evaluate import evaluate
from segfair.io import (
    FIX_COLOUR_IMAGE,
    FIX_CROPPED,
    FIX_LABELS_NOT_FOUND,
    FIX_MISSING,
    FIX_NOT_SEG,
    FIX_PROBABILITY,
    FIX_SAVE_IMAGE_GEOMETRY,
    FIX_SEG_GEOMETRY,
    FIX_SEG_OVERLAP,
    FIX_SEGMENTS_NOT_FOUND,
    FIX_TOO_LARGE,
    MSG_4D,
    MSG_COLOUR_IMAGE,
    MSG_GEOMETRY,
    MSG_LABELS_NOT_FOUND,
    MSG_MHD_DATA_FILE,
    MSG_MISSING,
    MSG_MISSING_EXTRA,
    MSG_NOT_SEG,
    MSG_SEG_OVERLAP,
    MSG_SEGMENTS_NOT_FOUND,
    MSG_TOO_LARGE,
    check_geometry,
    content_hash,
    data_files,
    describe_mismatch,
    load_labels,
    load_mask,
    read_geometry,
    read_shape,
    save_mask,
    uncrop_like,
)
from segfair.io.files import _Where
from segfair.io.load import _HEADER_READERS

# float32-exact geometry (NIfTI stores it as float32): the copies must agree to 1e-9
SPACING = (0.5, 0.75, 2.0)
ORIGIN = (-10.5, 20.25, 3.0)
# axes permuted and flipped (LPS): a rotation whose entries are exact
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def label_map(shape: tuple[int, ...] = (9, 8, 7)) -> np.ndarray:
    """Labels 1 (a block), 2 (a smaller block) and 3 (one voxel) on a background of 0."""
    a = np.zeros(shape, np.uint8)
    a[1:6, 2:6, 1:5] = 1
    a[3:5, 3:5, 2:4] = 2
    a[7, 6, 5] = 3
    return a


def itk_image(array: np.ndarray) -> sitk.Image:
    """``array`` (axis i = ITK index i) as a SimpleITK image with the test geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.T))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def same_mask(a: object, b: object) -> None:
    assert np.array_equal(a.array, b.array)  # type: ignore[attr-defined]
    assert a.spacing == pytest.approx(b.spacing, abs=1e-9)  # type: ignore[attr-defined]
    assert np.allclose(a.affine, b.affine, rtol=0, atol=1e-9)  # type: ignore[attr-defined]


def same_scores(pred: object, ref: object, pred2: object, ref2: object) -> None:
    one = metrics.compute(pred.array, ref.array, pred.spacing)  # type: ignore[attr-defined]
    two = metrics.compute(pred2.array, ref2.array, pred2.spacing)  # type: ignore[attr-defined]
    assert one.keys() == two.keys()
    for name in one:
        assert one[name] == pytest.approx(two[name], abs=1e-9, nan_ok=True), name


# --- ITK: .mha, .mhd, .nrrd ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
def test_an_itk_file_reads_as_the_nifti_copy_simpleitk_writes_of_the_same_image(
    tmp_path: Path, suffix: str
) -> None:
    image = itk_image(label_map())
    sitk.WriteImage(image, str(tmp_path / "copy.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / f"mask{suffix}"))

    for labels in (1, [1, 2], 3):
        nifti = load_mask(tmp_path / "copy.nii.gz", labels=labels)
        itk = load_mask(tmp_path / f"mask{suffix}", labels=labels)
        same_mask(itk, nifti)
    g_itk, g_nifti = (
        read_geometry(tmp_path / f"mask{suffix}"),
        read_geometry(tmp_path / "copy.nii.gz"),
    )
    assert g_itk.shape == g_nifti.shape == (9, 8, 7)
    assert np.allclose(g_itk.affine, g_nifti.affine, rtol=0, atol=1e-9)
    assert read_shape(tmp_path / f"mask{suffix}") == (9, 8, 7)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.tuples(*[st.integers(2, 6)] * 3),
    axes=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.sampled_from([0.5, 0.75, 1.0, 2.5])] * 3),
    origin=st.tuples(*[st.integers(-50, 50)] * 3),
    seed=st.integers(0, 2**16),
)
def test_any_axis_aligned_itk_geometry_reads_as_nibabel_reads_its_nifti_copy(
    tmp_path: Path,
    shape: tuple[int, int, int],
    axes: list[int],
    signs: tuple[float, float, float],
    spacing: tuple[float, float, float],
    origin: tuple[int, int, int],
    seed: int,
) -> None:
    labels = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.uint8)
    direction = np.zeros((3, 3))
    for column, (row, sign) in enumerate(zip(axes, signs, strict=True)):
        direction[row, column] = sign
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.T))
    image.SetSpacing(spacing)
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(image, str(tmp_path / "p.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "p.mha"))

    for selected in ([1], [1, 2]):
        same_mask(
            load_mask(tmp_path / "p.mha", labels=selected),
            load_mask(tmp_path / "p.nii.gz", labels=selected),
        )


def test_an_mha_prediction_scores_as_its_nifti_copy_to_1e_9(tmp_path: Path) -> None:
    ref_labels = label_map()
    pred_labels = np.roll(ref_labels, 1, axis=0)
    sitk.WriteImage(itk_image(ref_labels), str(tmp_path / "ref.nii.gz"))
    sitk.WriteImage(itk_image(ref_labels), str(tmp_path / "ref.mha"))
    sitk.WriteImage(itk_image(pred_labels), str(tmp_path / "pred.nii.gz"))
    sitk.WriteImage(itk_image(pred_labels), str(tmp_path / "pred.mha"))

    pred, ref = load_mask(tmp_path / "pred.mha"), load_mask(tmp_path / "ref.nii.gz")
    check_geometry(pred, ref)  # an .mha against a .nii.gz of the same grid passes
    same_scores(pred, ref, load_mask(tmp_path / "pred.nii.gz"), ref)
    same_scores(pred, load_mask(tmp_path / "ref.mha"), pred, ref)


def test_an_oblique_itk_image_gets_the_affine_nibabel_gives_its_nifti_copy(
    tmp_path: Path,
) -> None:
    image = itk_image(label_map())
    c, s = 0.6, 0.8
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "copy.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "mask.nrrd"))

    itk, nifti = load_mask(tmp_path / "mask.nrrd"), load_mask(tmp_path / "copy.nii.gz")
    assert np.array_equal(itk.array, nifti.array)
    # NIfTI stores the oblique cosines as float32: equal to float32 precision
    assert np.allclose(itk.affine, nifti.affine, rtol=0, atol=1e-6)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_save_mask_writes_an_itk_file_that_reads_back_as_its_nifti_copy(
    tmp_path: Path, suffix: str
) -> None:
    affine = np.array(
        [[0.0, -0.75, 0.0, 3.0], [0.5, 0.0, 0.0, -2.0], [0, 0, 2.0, 1.0], [0, 0, 0, 1]]
    )
    save_mask(tmp_path / "a.nii.gz", label_map(), affine)
    save_mask(tmp_path / f"a{suffix}", label_map(), affine)

    same_mask(
        load_mask(tmp_path / f"a{suffix}", labels=[1, 2]),
        load_mask(tmp_path / "a.nii.gz", labels=[1, 2]),
    )
    assert np.allclose(load_mask(tmp_path / f"a{suffix}").affine, affine, rtol=0, atol=1e-12)


def test_a_2d_mha_keeps_itk_axis_order_x_then_y(tmp_path: Path) -> None:
    picture = np.zeros((5, 3), np.uint8)  # (x, y)
    picture[4, 0] = 1
    save_mask(tmp_path / "a.mha", picture, spacing=(0.5, 2.0))

    mask = load_mask(tmp_path / "a.mha")
    assert mask.shape == (5, 3)
    assert mask.spacing == (0.5, 2.0)
    assert np.argwhere(mask.array).tolist() == [[4, 0]]


def test_a_mhd_is_read_with_its_data_file_which_the_content_hash_covers(tmp_path: Path) -> None:
    sitk.WriteImage(itk_image(label_map()), str(tmp_path / "a.mhd"))
    raw = next(p for p in tmp_path.iterdir() if p.suffix in (".raw", ".zraw"))
    assert data_files(tmp_path / "a.mhd") == (str(tmp_path / "a.mhd"), str(raw))

    before = content_hash(tmp_path / "a.mhd")
    sitk.WriteImage(itk_image(np.roll(label_map(), 1, axis=0)), str(tmp_path / "a.mhd"))
    assert content_hash(tmp_path / "a.mhd") != before  # the header alone did not change

    raw.unlink()
    with pytest.raises(InputError) as caught:
        read_geometry(tmp_path / "a.mhd", case_id="C1")
    assert caught.value.reason == MSG_MISSING
    assert caught.value.fix == FIX_MISSING
    assert caught.value.path == str(raw)

    header = (tmp_path / "a.mhd").read_text()
    listed = re.sub(r"ElementDataFile = .*", "ElementDataFile = slice%03d.raw 0 4 1", header)
    (tmp_path / "a.mhd").write_text(listed)
    with pytest.raises(InputError) as caught:
        read_geometry(tmp_path / "a.mhd", case_id="C1")
    assert caught.value.reason == MSG_MHD_DATA_FILE.format(value="slice%03d.raw 0 4 1")


def test_the_file_index_notices_a_changed_mhd_data_file(tmp_path: Path) -> None:
    from segfair.cohort.fileindex import FileIndex

    sitk.WriteImage(itk_image(label_map()), str(tmp_path / "a.mhd"))
    raw = next(p for p in tmp_path.iterdir() if p.suffix in (".raw", ".zraw"))
    index = FileIndex(tmp_path / "cache")
    stamp = index._stamp(index._stats(str(tmp_path / "a.mhd")))
    assert len(stamp) == 8  # the header's stat and the data file's
    raw.write_bytes(raw.read_bytes() + b"\0")
    assert index._stamp(index._stats(str(tmp_path / "a.mhd"))) != stamp


# --- 3D Slicer .seg.nrrd ---------------------------------------------------------------------


def write_seg_nrrd(
    path: Path, layers: np.ndarray, segments: list[dict[str, object]], origin: str = "(10,20,30)"
) -> Path:
    """A .seg.nrrd as 3D Slicer writes it: ``layers`` is (x, y, z) or (layer, x, y, z)."""
    four_d = layers.ndim == 4
    sizes = " ".join(str(n) for n in layers.shape)
    lines = [
        "NRRD0004",
        "type: unsigned char",
        f"dimension: {layers.ndim}",
        "space: right-anterior-superior",
        f"sizes: {sizes}",
        "space directions: " + ("none " if four_d else "") + "(0.5,0,0) (0,0.75,0) (0,0,2)",
        "kinds: " + ("list " if four_d else "") + "domain domain domain",
        "encoding: raw",
        f"space origin: {origin}",
    ]
    for i, seg in enumerate(segments):
        lines += [f"Segment{i}_{key}:={value}" for key, value in seg.items()]
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + layers.tobytes(order="F"))
    return path


def test_a_single_layer_seg_nrrd_selects_segments_by_their_label_value(tmp_path: Path) -> None:
    labels = label_map()
    segs = [
        {"ID": "s1", "Name": "kidney", "LabelValue": 1, "Layer": 0},
        {"ID": "s2", "Name": "tumour", "LabelValue": 2, "Layer": 0},
        {"ID": "s3", "Name": "cyst", "LabelValue": 3, "Layer": 0},
    ]
    path = write_seg_nrrd(tmp_path / "a.seg.nrrd", labels, segs)
    plain = write_seg_nrrd(tmp_path / "a.nrrd", labels, [])

    for selected in ([2], [1, 3], [1, 2, 3]):
        mask = load_mask(path, labels=selected)
        assert np.array_equal(mask.array, np.isin(labels, selected))
        same_mask(mask, load_mask(plain, labels=selected))
    # RAS in the file → LPS in ITK → RAS again: the origin the file states
    assert load_mask(path).affine[:3, 3].tolist() == [10.0, 20.0, 30.0]
    assert np.array_equal(
        _HEADER_READERS[".seg.nrrd"](str(path), _Where(None, None)).read(), labels
    )


def test_a_seg_nrrd_refuses_labels_that_are_none_of_its_segments_listing_them(
    tmp_path: Path,
) -> None:
    segs = [{"ID": "s1", "Name": "kidney", "LabelValue": 1, "Layer": 0}]
    path = write_seg_nrrd(tmp_path / "a.seg.nrrd", (label_map() == 1).astype(np.uint8), segs)

    with pytest.raises(InputError) as caught:
        load_mask(path, labels=[4])
    assert caught.value.reason == MSG_SEGMENTS_NOT_FOUND.format(selected=[4])
    assert caught.value.fix == FIX_SEGMENTS_NOT_FOUND.format(segments="1 (kidney)")


def test_overlapping_segments_of_a_layered_seg_nrrd_unite_exactly(tmp_path: Path) -> None:
    kidney = np.zeros((6, 5, 4), bool)
    kidney[1:4, 1:4, 1:3] = True
    tumour = np.zeros((6, 5, 4), bool)
    tumour[3:5, 2:4, 2:4] = True  # overlaps the kidney
    layers = np.stack([kidney, tumour]).astype(np.uint8)
    segs = [
        {"ID": "a", "Name": "kidney", "LabelValue": 1, "Layer": 0},
        {"ID": "b", "Name": "tumour", "LabelValue": 2, "Layer": 1},
    ]
    layers[1] *= 2
    path = write_seg_nrrd(tmp_path / "a.seg.nrrd", layers, segs)

    assert read_shape(path) == (6, 5, 4)
    assert np.array_equal(load_mask(path, labels=[2]).array, tumour)
    both = load_mask(path, labels=[1, 2]).array
    assert np.array_equal(both, kidney | tumour)
    assert int(both.sum()) == int(kidney.sum() + tumour.sum() - (kidney & tumour).sum())
    with pytest.raises(InputError) as caught:  # one label map cannot hold both
        _HEADER_READERS[".seg.nrrd"](str(path), _Where(None, str(path))).read()
    assert caught.value.reason == MSG_SEG_OVERLAP.format(
        first="1 (kidney)", second="2 (tumour)", voxels=int((kidney & tumour).sum())
    )
    assert caught.value.fix == FIX_SEG_OVERLAP


def test_a_one_hot_seg_nrrd_numbers_its_segments_by_position(tmp_path: Path) -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    a[0, 0, 0] = 1
    b = np.zeros_like(a)
    b[0, 0, 0] = b[3, 3, 2] = 1
    segs = [{"ID": "a", "Name": "liver"}, {"ID": "b", "Name": "lesion"}]  # before Slicer 4.11
    path = write_seg_nrrd(tmp_path / "a.seg.nrrd", np.stack([a, b]), segs)

    assert np.argwhere(load_mask(path, labels=2).array).tolist() == [[0, 0, 0], [3, 3, 2]]
    assert np.argwhere(load_mask(path, labels=1).array).tolist() == [[0, 0, 0]]


def test_a_multi_component_nrrd_is_refused_as_a_4d_mask(tmp_path: Path) -> None:
    path = write_seg_nrrd(tmp_path / "a.nrrd", np.zeros((2, 4, 4, 3), np.uint8), [])
    with pytest.raises(InputError) as caught:
        load_mask(path)
    assert caught.value.reason == MSG_4D.format(ndim=4, volumes=2, shape=(4, 4, 3, 2))


# --- DICOM-SEG -------------------------------------------------------------------------------


def two_segments() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((6, 5, 4), bool)
    a[1:3, 1:4, 1] = True
    a[2, 2, 3] = True
    b = np.zeros((6, 5, 4), bool)
    b[2:5, 2:4, 0:3] = True  # overlaps a in two voxels
    return a, b


def test_a_dicom_seg_reads_as_its_nifti_copy_segment_by_segment(tmp_path: Path) -> None:
    a, b = two_segments()
    origin = (-10.0, 20.0, 5.0)
    seg = write_seg(
        tmp_path / "s.dcm", {1: a, 2: b}, spacing=SPACING, origin=origin, omit_empty=False
    )
    affine = seg_affine(SPACING, origin)
    save_mask(tmp_path / "a.nii.gz", a, affine)
    save_mask(tmp_path / "b.nii.gz", b, affine)
    save_mask(tmp_path / "ab.nii.gz", a | b, affine)

    same_mask(load_mask(seg, labels=1), load_mask(tmp_path / "a.nii.gz"))
    same_mask(load_mask(seg, labels=[2]), load_mask(tmp_path / "b.nii.gz"))
    union = load_mask(seg, labels=[1, 2])
    same_mask(union, load_mask(tmp_path / "ab.nii.gz"))
    assert int(union.array.sum()) == int(a.sum() + b.sum() - (a & b).sum())  # overlap kept once
    same_scores(
        load_mask(seg, labels=1),
        load_mask(seg, labels=2),
        load_mask(tmp_path / "a.nii.gz"),
        load_mask(tmp_path / "b.nii.gz"),
    )
    geometry = read_geometry(seg)
    assert geometry.shape == (6, 5, 4)
    assert geometry.spacing == SPACING


def test_an_oblique_dicom_seg_places_its_voxels_where_dicom_says(tmp_path: Path) -> None:
    a, _ = two_segments()
    orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal planes
    seg = write_seg(tmp_path / "s.dcm", {1: a}, orientation=orientation, omit_empty=False)
    mask = load_mask(seg)
    ijk = np.argwhere(a)[0]
    lps = (
        np.array([-10.0, 20.0, 5.0])
        + ijk[0] * 0.5 * np.array(orientation[:3])
        + ijk[1] * 0.75 * np.array(orientation[3:])
        + ijk[2] * 2.0 * np.cross(orientation[:3], orientation[3:])
    )
    ras = mask.affine @ np.array([*ijk, 1.0])
    assert np.allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_frames_a_dicom_seg_omits_inside_its_span_are_empty_slices(tmp_path: Path) -> None:
    c = np.zeros((6, 5, 4), bool)
    c[1, 1, 0] = c[2, 2, 3] = True  # planes 1 and 2 are empty: the SEG has no frame for them
    seg = write_seg(tmp_path / "s.dcm", {3: c})
    assert np.array_equal(load_mask(seg, labels=3).array, c)


def test_a_dicom_seg_without_its_empty_end_frames_is_refused_as_a_crop_with_the_fix(
    tmp_path: Path,
) -> None:
    a, _ = two_segments()  # planes 1 to 3: plane 0 is empty and omitted
    seg = write_seg(tmp_path / "s.dcm", {1: a})
    save_mask(tmp_path / "ref.nii.gz", a, seg_affine(SPACING, (-10.0, 20.0, 5.0)))

    pred, ref = load_mask(seg), load_mask(tmp_path / "ref.nii.gz")
    assert pred.shape == (6, 5, 3)
    with pytest.raises(GeometryError) as caught:
        check_geometry(pred, ref, case_id="C1")
    assert caught.value.fix == FIX_CROPPED
    # what an evaluation does with it: pad it onto the reference grid, exactly
    same_mask(uncrop_like(pred, ref), ref)
    assert describe_mismatch(ref, pred) is None
    assert describe_mismatch(pred, ref) is not None  # the reference must span the whole grid


def test_a_nifti_mask_on_a_smaller_grid_is_not_padded(tmp_path: Path) -> None:
    a, _ = two_segments()
    save_mask(tmp_path / "crop.nii.gz", a[:, :, 1:], seg_affine(SPACING, (-10.0, 20.0, 7.0)))
    save_mask(tmp_path / "ref.nii.gz", a, seg_affine(SPACING, (-10.0, 20.0, 5.0)))
    crop, ref = load_mask(tmp_path / "crop.nii.gz"), load_mask(tmp_path / "ref.nii.gz")
    assert uncrop_like(crop, ref) is None
    assert describe_mismatch(ref, crop) is not None


def test_a_fractional_dicom_seg_needs_a_threshold_unless_it_is_binary(tmp_path: Path) -> None:
    a, _ = two_segments()
    levels = (a * 200).astype(np.uint8)
    levels[0, 0, 0] = 100
    seg = write_seg(tmp_path / "f.dcm", {1: levels}, fractional=True, omit_empty=False)

    with pytest.raises(InputError) as caught:
        load_mask(seg)
    assert caught.value.fix == FIX_PROBABILITY
    # value / MaximumFractionalValue ≥ threshold
    assert np.array_equal(load_mask(seg, threshold=0.5).array, levels >= 128)
    assert int(load_mask(seg, threshold=0.3).array.sum()) == int(a.sum()) + 1
    binary = write_seg(
        tmp_path / "b.dcm", {1: (a * 255).astype(np.uint8)}, fractional=True, omit_empty=False
    )
    assert np.array_equal(load_mask(binary).array, a)


def test_a_dicom_seg_refuses_labels_that_are_none_of_its_segments(tmp_path: Path) -> None:
    a, b = two_segments()
    seg = write_seg(tmp_path / "s.dcm", {1: a, 2: b}, names={1: "liver", 2: "tumour"})
    with pytest.raises(InputError) as caught:
        load_mask(seg, labels=[5])
    assert caught.value.reason == MSG_SEGMENTS_NOT_FOUND.format(selected=[5])
    assert caught.value.fix == FIX_SEGMENTS_NOT_FOUND.format(segments="1 (liver), 2 (tumour)")


def test_a_labelmap_dicom_seg_reads_its_pixel_values_as_segment_numbers(tmp_path: Path) -> None:
    labels = label_map()
    seg = write_labelmap_seg(tmp_path / "l.dcm", labels)
    for selected in ([1], [2, 3], [1, 2, 3]):
        assert np.array_equal(load_mask(seg, labels=selected).array, np.isin(labels, selected))
    header = _HEADER_READERS[".dcm"](str(seg), _Where(None, str(seg)))
    assert np.array_equal(header.read(), labels)  # no overlap: the label map itself


def test_a_dicom_image_that_is_not_a_seg_is_refused_naming_what_it_is(tmp_path: Path) -> None:
    path = write_ct_slice(tmp_path / "ct.dcm")
    with pytest.raises(InputError) as caught:
        read_geometry(path, case_id="C1")
    assert caught.value.reason == MSG_NOT_SEG.format(what="CT CT Image Storage")
    assert caught.value.fix == FIX_NOT_SEG


# --- PNG and TIFF ----------------------------------------------------------------------------


def test_a_0_255_png_reads_as_its_numpy_and_nifti_copies_with_labels_255(tmp_path: Path) -> None:
    picture = np.zeros((7, 9), np.uint8)  # (row, column)
    picture[2:5, 1:7] = 255
    picture[6, 8] = 255
    Image.fromarray(picture).save(tmp_path / "m.png", dpi=(2000 * 0.0254, 4000 * 0.0254))
    np.save(tmp_path / "m.npy", picture)
    save_mask(tmp_path / "m.nii.gz", picture == 255, spacing=(0.25, 0.5))

    png = load_mask(tmp_path / "m.png", labels=[255])
    assert png.spacing == (0.25, 0.5)  # pHYs: 4000 px/m down the rows, 2000 across
    same_mask(png, load_mask(tmp_path / "m.npy", labels=255, spacing=(0.25, 0.5)))
    same_mask(png, load_mask(tmp_path / "m.nii.gz"))

    with pytest.raises(InputError) as caught:  # labels = [1] on a 0/255 mask
        load_mask(tmp_path / "m.png")
    assert caught.value.reason == MSG_LABELS_NOT_FOUND.format(selected=[1], found="[255]")
    assert caught.value.fix == FIX_LABELS_NOT_FOUND.format(suggestion=[255])


def test_a_png_without_phys_takes_the_spacing_argument_or_1(tmp_path: Path) -> None:
    Image.fromarray(np.eye(4, dtype=np.uint8)).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").spacing == (1.0, 1.0)
    assert load_mask(tmp_path / "m.png", spacing=(0.3, 0.7)).spacing == (0.3, 0.7)
    assert read_geometry(tmp_path / "m.png", spacing=(0.3, 0.7)).spacing == (0.3, 0.7)


@pytest.mark.parametrize("mode", ["1", "P", "I;16"])
def test_png_modes_that_hold_one_value_per_pixel_are_label_maps(tmp_path: Path, mode: str) -> None:
    labels = np.zeros((5, 6), np.uint16)
    labels[1:3, 2:5] = 1
    image = Image.fromarray(labels.astype(np.uint8) * (1 if mode == "P" else 255)).convert(mode)
    image.save(tmp_path / "m.png")
    selected = 1 if mode in ("1", "P") else 255
    assert np.array_equal(load_mask(tmp_path / "m.png", labels=selected).array, labels == 1)


def _adam7_png(picture: np.ndarray) -> bytes:
    """An 8-bit greyscale Adam7-interlaced PNG (Pillow reads them but does not write them)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2)]
    raw = b""
    for y0, x0, dy, dx in [*passes, (1, 0, 2, 1)]:
        sub = picture[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)  # filter 0 on every row
    height, width = picture.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _png_variants(folder: Path) -> dict[str, Path]:
    """PNGs the fast header reader takes and PNGs it leaves to Pillow, same picture."""
    from PIL import PngImagePlugin

    picture = np.zeros((37, 23), np.uint8)
    picture[5:30, 3:20] = 255
    picture[0, 0] = 255
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "a scanner")
    out: dict[str, Path] = {}

    def save(name: str, image: Any, **options: Any) -> None:
        out[name] = folder / f"{name}.png"
        image.save(out[name], **options)

    grey = Image.fromarray(picture)
    save("grey", grey)
    save("grey_phys", grey, dpi=(2000 * 0.0254, 4000 * 0.0254))
    save("grey_text", grey, pnginfo=text)
    out["grey_interlaced"] = folder / "grey_interlaced.png"
    out["grey_interlaced"].write_bytes(_adam7_png(picture))
    save("bilevel", grey.convert("1"))
    save("palette", Image.fromarray(picture // 255).convert("P"))
    save("grey16", Image.fromarray(picture.astype(np.uint16) * 257))  # Pillow: I;16
    save("grey_alpha", grey.convert("LA"))
    save("transparent", grey, transparency=0)  # a tRNS chunk
    save("animated", grey, save_all=True, append_images=[grey])  # acTL
    return out


def test_the_png_header_read_from_its_chunks_is_what_pillow_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segfair.io import images

    variants = _png_variants(tmp_path)
    fast = {n: images._png_fast_header(str(p), None) for n, p in variants.items()}
    taken = {n for n, f in fast.items() if f is not None}
    assert taken == {"grey", "grey_phys", "grey_text", "grey_interlaced", "bilevel", "palette"}
    assert fast["grey"] is not None
    assert fast["grey"][:4] == (37, 23, "L", None)
    assert fast["grey_phys"] is not None
    assert fast["grey_phys"][3] == (2000, 4000)

    def read(path: Path) -> Any:
        try:
            mask = load_labels(path)
        except InputError as error:
            return error.reason
        return mask.array.tolist(), mask.array.dtype, mask.spacing, read_geometry(path).shape

    with_fast = {n: read(p) for n, p in variants.items()}
    assert with_fast["grey_interlaced"][0] == with_fast["grey"][0]  # the same picture
    monkeypatch.setattr(images, "_png_fast_header", lambda path, max_pixels: None)
    assert with_fast == {n: read(p) for n, p in variants.items()}  # Pillow alone: the same


def test_a_png_whose_chunks_do_not_check_out_is_refused_as_pillow_refuses_it(
    tmp_path: Path,
) -> None:
    from segfair.io import images

    Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save(tmp_path / "m.png")
    data = bytearray((tmp_path / "m.png").read_bytes())
    data[20] ^= 0x01  # a bit of the IHDR (the height): its CRC no longer matches
    (tmp_path / "bad.png").write_bytes(bytes(data))
    (tmp_path / "short.png").write_bytes(bytes(data[:30]))
    for name in ("bad.png", "short.png"):
        assert images._png_fast_header(str(tmp_path / name), None) is None
        with pytest.raises(InputError) as caught:
            read_geometry(tmp_path / name)
        assert caught.value.path == str(tmp_path / name)


def test_a_png_larger_than_pillow_allows_is_left_to_pillow_s_decompression_bomb_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segfair.io import images

    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "m.png")
    assert images._png_fast_header(str(tmp_path / "m.png"), 1200) is not None
    assert images._png_fast_header(str(tmp_path / "m.png"), 1199) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,200 pixels: over twice the limit
    with pytest.raises(InputError):
        read_geometry(tmp_path / "m.png")


def test_a_colour_png_is_refused_saying_how_to_save_a_mask(tmp_path: Path) -> None:
    Image.new("RGB", (4, 3)).save(tmp_path / "m.png")
    with pytest.raises(InputError) as caught:
        read_geometry(tmp_path / "m.png")
    assert caught.value.reason == MSG_COLOUR_IMAGE.format(mode="RGB", bands=3)
    assert caught.value.fix == FIX_COLOUR_IMAGE


def test_save_mask_writes_a_png_that_reads_back_with_its_spacing(tmp_path: Path) -> None:
    picture = np.zeros((4, 6), bool)
    picture[1, 2:5] = True
    save_mask(tmp_path / "m.png", picture, spacing=(0.5, 0.125))
    mask = load_mask(tmp_path / "m.png")
    assert np.array_equal(mask.array, picture)
    assert mask.spacing == (0.5, 0.125)

    with pytest.raises(InputError) as caught:  # 1000 / 0.3 px per metre is not whole
        save_mask(tmp_path / "n.png", picture, spacing=(0.3, 0.3))
    assert caught.value.fix == FIX_SAVE_IMAGE_GEOMETRY
    with pytest.raises(InputError):  # an image holds no orientation
        save_mask(tmp_path / "n.png", picture, np.diag([-0.5, 0.5, 1.0, 1.0]))


def test_a_tiff_reads_its_resolution_tags_and_a_stack_its_plane_spacing(tmp_path: Path) -> None:
    picture = np.zeros((5, 6), np.uint16)
    picture[1:3, 2:4] = 300  # a 16-bit label
    tifffile.imwrite(
        tmp_path / "m.tif", picture, resolution=(10 / 0.25, 10 / 0.5), resolutionunit="CENTIMETER"
    )
    mask = load_mask(tmp_path / "m.tif", labels=300)
    assert mask.spacing == pytest.approx((0.5, 0.25), abs=1e-12)  # (row, column)
    assert np.array_equal(mask.array, picture == 300)

    stack = label_map()
    save_mask(tmp_path / "s.tif", stack, spacing=(2.0, 0.75, 0.5))
    save_mask(tmp_path / "s.nii.gz", stack, spacing=(2.0, 0.75, 0.5))
    same_mask(
        load_mask(tmp_path / "s.tif", labels=[1, 2]),
        load_mask(tmp_path / "s.nii.gz", labels=[1, 2]),
    )


def test_an_imagej_tiff_gives_its_spacing_in_its_unit(tmp_path: Path) -> None:
    stack = label_map().transpose(2, 0, 1)  # (plane, row, column)
    tifffile.imwrite(
        tmp_path / "m.tif",
        stack,
        imagej=True,
        resolution=(1 / 250.0, 1 / 500.0),  # pixels per micron
        metadata={"spacing": 2000.0, "unit": "micron", "axes": "ZYX"},
    )
    mask = load_mask(tmp_path / "m.tif", labels=[1, 2])
    assert mask.spacing == pytest.approx((2.0, 0.5, 0.25), abs=1e-12)
    assert np.array_equal(mask.array, np.isin(stack, [1, 2]))


def test_an_rgb_tiff_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((4, 5, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError) as caught:
        read_geometry(tmp_path / "m.tif")
    assert caught.value.fix == FIX_COLOUR_IMAGE


# --- what every format shares with NIfTI -----------------------------------------------------


def write_every_format(folder: Path) -> dict[str, Path]:
    a, _b = two_segments()
    sitk.WriteImage(itk_image(label_map()), str(folder / "m.mha"))
    sitk.WriteImage(itk_image(label_map()), str(folder / "m.nrrd"))
    Image.fromarray(np.eye(4, dtype=np.uint8)).save(folder / "m.png")
    tifffile.imwrite(folder / "m.tif", np.eye(4, dtype=np.uint8))
    write_seg(folder / "m.dcm", {1: a})
    return {p.suffix: p for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("module", "suffix", "extra", "kind"),
    [
        ("SimpleITK", ".mha", "itk", "MetaImage (.mha)"),
        ("SimpleITK", ".nrrd", "itk", "NRRD (.nrrd)"),
        ("pydicom", ".dcm", "dicom", "DICOM-SEG (.dcm)"),
        ("PIL", ".png", "images", "PNG (.png)"),
        ("tifffile", ".tif", "images", "TIFF (.tif, .tiff)"),
    ],
)
def test_a_format_whose_extra_is_missing_is_refused_at_the_header_naming_the_install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    suffix: str,
    extra: str,
    kind: str,
) -> None:
    path = write_every_format(tmp_path)[suffix]
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    if module == "PIL":
        monkeypatch.setitem(sys.modules, "PIL.Image", None)

    package = {"PIL": "Pillow"}.get(module, module)
    for read in (read_geometry, load_mask):
        with pytest.raises(InputError) as caught:
            read(path, case_id="C1")
        assert caught.value.path == str(path)
        assert caught.value.case_id == "C1"
        assert caught.value.reason == MSG_MISSING_EXTRA.format(format=kind, package=package)
        assert caught.value.fix == f"install it with: pip install 'segfair[{extra}]'"


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".png", ".tif", ".dcm"])
def test_a_truncated_file_of_each_format_is_refused_as_unreadable(
    tmp_path: Path, suffix: str
) -> None:
    path = write_every_format(tmp_path)[suffix]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="C1", labels=[1, 2, 3])
    assert "truncated or corrupt" in caught.value.reason
    assert caught.value.path == str(path)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".png", ".tif", ".dcm"])
def test_garbage_named_as_each_format_is_refused_as_unreadable(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"not an image at all" * 10)
    with pytest.raises(InputError) as caught:
        read_geometry(path)
    assert "truncated or corrupt" in caught.value.reason


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".png", ".tif", ".dcm"])
def test_the_size_limit_is_checked_from_the_header_of_each_format(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_every_format(tmp_path)[suffix]
    shape = read_geometry(path).shape
    reader = _HEADER_READERS[suffix]

    def no_voxels(p: str, where: _Where) -> object:
        header = reader(p, where)
        header.read = header.select = None  # type: ignore[assignment]
        return header

    monkeypatch.setitem(_HEADER_READERS, suffix, no_voxels)
    with pytest.raises(InputError) as caught:
        load_mask(path, max_voxels=3)
    voxels = int(np.prod(shape))
    assert caught.value.reason == MSG_TOO_LARGE.format(voxels=voxels, shape=shape, limit=3)
    assert caught.value.fix == FIX_TOO_LARGE


def test_a_float_mha_probability_map_needs_a_threshold(tmp_path: Path) -> None:
    probabilities = np.linspace(0, 1, 9 * 8 * 7, dtype=np.float32).reshape(9, 8, 7)
    sitk.WriteImage(itk_image(probabilities), str(tmp_path / "p.mha"))
    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "p.mha")
    assert caught.value.fix == FIX_PROBABILITY
    assert np.array_equal(load_mask(tmp_path / "p.mha", threshold=0.5).array, probabilities >= 0.5)


def test_save_mask_refuses_the_formats_it_only_reads(tmp_path: Path) -> None:
    for name in ("a.dcm", "a.seg.nrrd", "a.mhd"):
        with pytest.raises(InputError):
            save_mask(tmp_path / name, np.zeros((3, 3, 3), bool))


# --- a cohort in the new formats -------------------------------------------------------------


def convert_model(repo: Repo, suffix: str, write: Callable[[Path, Path], None]) -> None:
    """Rewrite the candidate's predictions in ``suffix`` and point the configuration at them."""
    for cid in repo.case_ids:
        nifti = repo.mask_path("model", "candidate", cid)
        write(nifti, nifti.with_name(f"{cid}{suffix}"))
    repo.config["models"]["candidate"] = f"preds/candidate/{{case_id}}{suffix}"
    repo.write_config()


def to_mha(nifti: Path, out: Path) -> None:
    mask = load_mask(nifti)
    save_mask(out, mask.array, mask.affine)


def scores_of_both(nifti: Repo, other: Repo) -> tuple[np.ndarray, np.ndarray]:
    one = evaluate(load_cohort(nifti.config_path), workers=1, cache=False).table
    two = evaluate(load_cohort(other.config_path), workers=1, cache=False).table
    return one["value"].to_numpy(), two["value"].to_numpy()


def test_evaluate_scores_an_mha_model_against_nifti_rulers_as_its_nifti_copy(
    repo_factory: Callable[..., Repo],
) -> None:
    nifti = repo_factory(n_cases=6)
    as_mha = repo_factory(n_cases=6)
    convert_model(as_mha, ".mha", to_mha)

    one, two = scores_of_both(nifti, as_mha)
    assert np.allclose(one, two, rtol=0, atol=1e-9, equal_nan=True)


def test_an_mha_prediction_on_another_grid_fails_cohort_validation_as_nifti_does(
    repo: Repo,
) -> None:
    cid = repo.case_ids[0]
    mask = load_mask(repo.mask_path("model", "candidate", cid))
    save_mask(
        repo.mask_path("model", "candidate", cid).with_name(f"{cid}.mha"),
        mask.array,
        spacing=(1.0, 1.0, 1.0),
    )
    for other in repo.case_ids[1:]:
        to_mha(
            repo.mask_path("model", "candidate", other),
            repo.mask_path("model", "candidate", other).with_name(f"{other}.mha"),
        )
    repo.config["models"]["candidate"] = "preds/candidate/{case_id}.mha"
    repo.write_config()

    with pytest.raises(CohortError) as caught:
        load_cohort(repo.config_path)
    text = str(caught.value)
    assert "geometry mismatches" in text
    assert cid in text
    assert "affines differ" in text
    with pytest.raises(GeometryError) as direct:
        check_geometry(
            load_mask(repo.mask_path("model", "candidate", cid).with_name(f"{cid}.mha")),
            load_mask(repo.mask_path("ruler", "expert", cid)),
        )
    assert direct.value.reason.startswith(MSG_GEOMETRY.split("{")[0])


def to_seg(nifti: Path, out: Path) -> None:
    """A DICOM-SEG of a conftest NIfTI mask (AFFINE = diag(-0.8, -0.8, 1.5): LPS spacing 0.8,
    0.8, 1.5 at the origin), without its empty frames as highdicom writes by default."""
    write_seg(out, {1: load_mask(nifti).array}, spacing=(0.8, 0.8, 1.5), origin=(0.0, 0.0, 0.0))


def test_evaluate_scores_cropped_dicom_seg_predictions_as_their_nifti_copies(
    repo_factory: Callable[..., Repo],
) -> None:
    nifti = repo_factory(n_cases=6)
    as_seg = repo_factory(n_cases=6)
    convert_model(as_seg, ".dcm", to_seg)
    shapes = {read_shape(as_seg.mask_path("model", "candidate", c)) for c in as_seg.case_ids}
    assert shapes != {(16, 16, 10)}  # the SEGs omit empty frames: cropped grids

    one, two = scores_of_both(nifti, as_seg)
    assert np.allclose(one, two, rtol=0, atol=1e-9, equal_nan=True)


def test_a_cropped_dicom_seg_as_the_trusted_ruler_is_refused_with_the_fix(
    repo_factory: Callable[..., Repo],
) -> None:
    repo = repo_factory(n_cases=4, rulers=("expert",))
    for cid in repo.case_ids:
        path = repo.mask_path("ruler", "expert", cid)
        to_seg(path, path.with_name(f"{cid}.dcm"))
    repo.config["rulers"]["expert"] = "labels/expert/{case_id}.dcm"
    repo.write_config()
    with pytest.raises(CohortError) as caught:
        load_cohort(repo.config_path)
    assert FIX_CROPPED in str(caught.value)


def to_png(nifti: Path, out: Path) -> None:
    mask = load_mask(nifti)
    Image.fromarray(mask.array[:, :, mask.shape[2] // 2].astype(np.uint8) * 255).save(out)


def test_the_cohort_spacing_reaches_pngs_that_hold_none(repo_factory: Callable[..., Repo]) -> None:
    repo = repo_factory(n_cases=4, rulers=("expert",))
    for kind, name in (("ruler", "expert"), ("model", "candidate")):
        for cid in repo.case_ids:
            path = repo.mask_path(kind, name, cid)
            to_png(path, path.with_name(f"{cid}.png"))
        table = "models" if kind == "model" else "rulers"
        repo.config[table][name] = {
            "path": f"{path.parent.relative_to(repo.root)}/{{case_id}}.png",
            "labels": [255],
        }
    repo.write_config(spacing=[0.5, 0.25])

    scores = evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    hd = scores.values("hd95", model="candidate", ruler="expert")
    cid = repo.case_ids[0]
    pred = load_mask(repo.mask_path("model", "candidate", cid), labels=255, spacing=(0.5, 0.25))
    ref = load_mask(repo.mask_path("ruler", "expert", cid), labels=255, spacing=(0.5, 0.25))
    assert hd[cid] == pytest.approx(metrics.compute(pred.array, ref.array, (0.5, 0.25))["hd95"])
    assert load_cohort(repo.config_path).config.spacing == [0.5, 0.25]


def run_cli(*argv: str) -> tuple[int, str]:
    out = stdio.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


def audited_gates(repo: Repo, folder: Path) -> list[tuple[str, float]]:
    """``segfair audit`` of ``repo`` (which must exit 0): each gate's status and estimate."""
    report = folder / f"{repo.root.name}.json"
    code, _ = run_cli("audit", "--config", str(repo.config_path), "--quiet", "--json", str(report))
    assert code == EXIT_OK
    gates = json.loads(report.read_text())["gates"]
    assert gates
    return [(g["status"], round(g["estimate"], 9)) for g in gates]


def test_segfair_audit_on_an_mha_cohort_exits_and_reports_as_its_nifti_copy(
    repo_factory: Callable[..., Repo], tmp_path: Path
) -> None:
    nifti = repo_factory()
    as_mha = repo_factory()
    convert_model(as_mha, ".mha", to_mha)
    for repo in (nifti, as_mha):
        repo.write_config(gates=[GAP_GATE])
    assert audited_gates(nifti, tmp_path) == audited_gates(as_mha, tmp_path)


def test_segfair_audit_exits_2_naming_the_extra_when_it_is_missing(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    convert_model(repo, ".mha", to_mha)
    repo.write_config(gates=[GAP_GATE])
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    code, _ = run_cli("audit", "--config", str(repo.config_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "pip install 'segfair[itk]'" in err
    assert "Traceback" not in err


def test_segfair_audit_on_a_png_cohort_exits_and_reports_as_its_2d_nifti_copy(
    repo_factory: Callable[..., Repo], tmp_path: Path
) -> None:
    """A 2-D cohort: the middle slice of every mask as a 0/255 PNG without pHYs (spacing and
    labels from the configuration) and as a 2-D NIfTI copy (0/1, spacing in its header)."""
    pngs, niftis = repo_factory(), repo_factory()
    for repo, suffix in ((pngs, ".png"), (niftis, ".nii")):
        for table in ("rulers", "models"):
            for name, template in list(repo.config[table].items()):
                kind = "model" if table == "models" else "ruler"
                for cid in repo.case_ids:
                    path = repo.mask_path(kind, name, cid)
                    middle = load_mask(path).array[:, :, 5]
                    out = path.with_name(f"{cid}{suffix}")
                    if suffix == ".png":
                        Image.fromarray(middle.astype(np.uint8) * 255).save(out)
                    else:
                        save_mask(out, middle, spacing=(0.8, 0.8))
                repo.config[table][name] = template.replace(".nii.gz", suffix)
    pngs.write_config(gates=[GAP_GATE], labels=[255], spacing=[0.8, 0.8])
    niftis.write_config(gates=[GAP_GATE])
    assert audited_gates(pngs, tmp_path) == audited_gates(niftis, tmp_path)


def test_segfair_init_finds_mask_folders_in_the_new_formats(tmp_path: Path) -> None:
    from segfair.scaffold import detect_layout

    root = tmp_path / "repo"
    (root / "labels" / "expert").mkdir(parents=True)
    (root / "predictions" / "slicer").mkdir(parents=True)
    save_mask(root / "labels" / "expert" / "A1.mha", np.zeros((3, 3, 3), bool))
    (root / "predictions" / "slicer" / "A1.seg.nrrd").write_bytes(b"")
    (root / "cases.csv").write_text("case_id,age\nA1,40\n")
    layout = detect_layout(root)
    assert layout.rulers == {"expert": "labels/expert/{case_id}.mha"}
    assert layout.models == {"slicer": "predictions/slicer/{case_id}.seg.nrrd"}


@pytest.mark.parametrize("fault", ["orientation", "shifted"])
def test_a_dicom_seg_whose_frames_are_not_one_grid_is_refused(tmp_path: Path, fault: str) -> None:
    import pydicom

    a, _ = two_segments()
    path = write_seg(tmp_path / "s.dcm", {1: a}, omit_empty=False)
    ds = pydicom.dcmread(path)
    frame = ds.PerFrameFunctionalGroupsSequence[1]
    if fault == "orientation":
        tilted = pydicom.Dataset()
        tilted.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
        frame.PlaneOrientationSequence = pydicom.Sequence([tilted])
    else:
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        frame.PlanePositionSequence[0].ImagePositionPatient = [position[0] + 1, *position[1:]]
    ds.save_as(path)
    with pytest.raises(InputError) as caught:
        read_geometry(path, case_id="C1")
    assert caught.value.reason.startswith("its frames do not form a regular 3-D grid")
    assert caught.value.fix == FIX_SEG_GEOMETRY


def test_a_header_read_that_took_the_whole_file_gives_its_content_hash(tmp_path: Path) -> None:
    from segfair.io import content_hash, read_geometry_and_hash

    for name, path in _png_variants(tmp_path).items():
        if name in {"grey_alpha", "animated"}:
            continue  # refused: not masks
        geometry, digest = read_geometry_and_hash(path)
        assert geometry.shape == read_geometry(path).shape
        if name in {"grey", "grey_phys", "grey_text", "grey_interlaced", "bilevel", "palette"}:
            assert digest == content_hash(path), name  # read whole by the fast header reader
        else:
            assert digest is None, name  # Pillow read it: no bytes to hash
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (400, 400), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 1 << 16
    assert read_geometry_and_hash(big)[1] is None  # the header read took only its start
