"""Tests of segfair.io: reading, checking, reorienting and writing masks."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segfair.errors import GeometryError, InputError
from segfair.io import (
    FIX_4D,
    FIX_LABELS_NOT_FOUND,
    FIX_MISSING,
    FIX_NOT_GZIP_BUT_NIFTI,
    FIX_PICKLED,
    FIX_PROBABILITY,
    FIX_REORIENT,
    FIX_RESAMPLE,
    FIX_SAVE_NPY_GEOMETRY,
    FIX_SUFFIX,
    FIX_TOO_LARGE,
    FIX_UNREADABLE,
    MSG_4D,
    MSG_AFFINE_SPACING,
    MSG_BAD_LABELS,
    MSG_BAD_THRESHOLD,
    MSG_GZIP_NAMED_NII,
    MSG_LABELS_NOT_FOUND,
    MSG_MISSING,
    MSG_NONFINITE,
    MSG_NOT_A_FILE,
    MSG_NOT_GZIP,
    MSG_NPZ_KEYS,
    MSG_PICKLED,
    MSG_PROBABILITY,
    MSG_SAVE_DTYPE,
    MSG_SAVE_NPY_GEOMETRY,
    MSG_SUFFIX,
    MSG_TOO_FEW_DIMS,
    MSG_TOO_LARGE,
    SUPPORTED_SUFFIXES,
    Mask,
    check_geometry,
    content_hash,
    load_mask,
    read_geometry,
    read_shape,
    reorient_like,
    save_mask,
)

NIFTI = (".nii", ".nii.gz")
ALL_FORMATS = (".nii", ".nii.gz", ".npy", ".npz")

#: A left-right flipped, anisotropic affine with an origin far from zero, as scanners write them.
FLIPPED = np.array(
    [
        [-0.7, 0.0, 0.0, 120.5],
        [0.0, 0.8, 0.0, -95.25],
        [0.0, 0.0, 2.5, 40.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture(autouse=True)
def _quiet_nibabel() -> Iterator[None]:
    # nibabel logs its header repairs of the corrupt files made here; they are expected noise.
    logger = logging.getLogger("nibabel")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def blob(shape: tuple[int, ...] = (9, 10, 11), seed: int = 0) -> np.ndarray:
    """A random boolean mask with some structure, never empty."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) > 0.6
    mask[(0,) * len(shape)] = True
    return mask


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write arbitrary voxel data (floats, 4-D, ...) the way other tools do, bypassing save_mask."""
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine, dtype=data.dtype)
    nib.save(img, path)
    return path


def nifti(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def f32(values: Any) -> tuple[float, ...]:
    """What NIfTI's float32 header fields give back for ``values``."""
    return tuple(float(np.float32(v)) for v in values)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", NIFTI)
def test_a_nifti_mask_round_trips_array_spacing_and_a_flipped_anisotropic_affine(
    tmp_path: Path, suffix: str
) -> None:
    mask = blob()
    path = tmp_path / f"case{suffix}"
    save_mask(path, mask, FLIPPED)

    loaded = load_mask(path, case_id="A1")

    np.testing.assert_array_equal(loaded.array, mask)
    # NIfTI stores voxel sizes and the affine as float32: exact at that precision.
    assert loaded.spacing == f32([0.7, 0.8, 2.5])
    np.testing.assert_array_equal(loaded.affine, FLIPPED.astype(np.float32).astype(np.float64))
    assert loaded.path == str(path)


@pytest.mark.parametrize("suffix", NIFTI)
def test_nibabel_opens_our_nifti_as_uint8_with_scanner_qform_and_sform(
    tmp_path: Path, suffix: str
) -> None:
    mask = blob()
    path = tmp_path / f"case{suffix}"
    save_mask(path, mask, FLIPPED)

    img = nifti(path)

    assert img.get_data_dtype() == np.uint8
    assert int(img.header["qform_code"]) == 1
    assert int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), FLIPPED, atol=1e-5)
    np.testing.assert_array_equal(img.get_fdata(), mask.astype(float))
    assert path.read_bytes().startswith(b"\x1f\x8b") == (suffix == ".nii.gz")


def test_an_npz_mask_round_trips_spacing_and_affine_exactly(tmp_path: Path) -> None:
    mask = blob()
    affine = FLIPPED.copy()
    affine[0, 0] = -0.7123456789  # beyond float32: .npz keeps float64
    save_mask(tmp_path / "case.npz", mask, affine)

    loaded = load_mask(tmp_path / "case.npz")

    np.testing.assert_array_equal(loaded.array, mask)
    assert loaded.spacing == (0.7123456789, 0.8, 2.5)
    np.testing.assert_array_equal(loaded.affine, affine)


def test_an_npy_mask_takes_its_spacing_from_the_argument_and_defaults_to_one(
    tmp_path: Path,
) -> None:
    mask = blob()
    save_mask(tmp_path / "case.npy", mask)

    default = load_mask(tmp_path / "case.npy")
    given_spacing = load_mask(tmp_path / "case.npy", spacing=(0.5, 0.6, 3.0))

    np.testing.assert_array_equal(default.array, mask)
    assert default.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(default.affine, np.eye(4))
    assert given_spacing.spacing == (0.5, 0.6, 3.0)
    np.testing.assert_array_equal(given_spacing.affine, np.diag([0.5, 0.6, 3.0, 1.0]))


def test_the_nifti_header_spacing_wins_over_the_spacing_argument(tmp_path: Path) -> None:
    save_mask(tmp_path / "case.nii.gz", blob(), spacing=(0.5, 0.5, 2.0))

    loaded = load_mask(tmp_path / "case.nii.gz", spacing=(9.0, 9.0, 9.0))

    assert loaded.spacing == (0.5, 0.5, 2.0)


@pytest.mark.parametrize("suffix", ALL_FORMATS)
def test_a_2d_mask_round_trips_in_every_format(tmp_path: Path, suffix: str) -> None:
    mask = blob((12, 7))
    path = tmp_path / f"slice{suffix}"
    geometry: dict[str, Any] = {} if suffix == ".npy" else {"spacing": (0.5, 2.0)}
    save_mask(path, mask, **geometry)

    loaded = load_mask(path, spacing=(0.5, 2.0) if suffix == ".npy" else None)

    np.testing.assert_array_equal(loaded.array, mask)
    assert loaded.spacing == (0.5, 2.0)
    np.testing.assert_array_equal(loaded.affine, np.diag([0.5, 2.0, 1.0, 1.0]))
    assert read_shape(path) == (12, 7)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("labels", [1, [1, 3], 3])
def test_a_nifti_label_map_is_read_in_nibabel_voxel_order_keeping_its_fortran_layout(
    tmp_path: Path, suffix: str, labels: int | list[int]
) -> None:
    # NIfTI data is Fortran-ordered on disk: the mask keeps that order (no 42 MB reorder) and
    # every voxel where nibabel puts it, for a non-cubic shape.
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4, size=(13, 17, 5)).astype(np.uint8)
    path = write_nifti(tmp_path / f"labels{suffix}", data)
    on_disk = np.asanyarray(nifti(path).dataobj)

    loaded = load_mask(path, labels=labels)

    np.testing.assert_array_equal(loaded.array, np.isin(on_disk, labels))
    assert loaded.array.dtype == np.bool_
    assert loaded.array.flags.f_contiguous
    assert not loaded.array.flags.writeable


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_a_binary_uint8_nifti_reads_like_nibabel_into_a_read_only_fortran_mask(
    tmp_path: Path, suffix: str
) -> None:
    mask = blob((14, 11, 6))
    path = write_nifti(tmp_path / f"case{suffix}", mask.astype(np.uint8))

    loaded = load_mask(path)

    np.testing.assert_array_equal(loaded.array, np.asanyarray(nifti(path).dataobj) == 1)
    np.testing.assert_array_equal(loaded.array, mask)
    assert loaded.array.dtype == np.bool_
    assert loaded.array.flags.f_contiguous
    assert not loaded.array.flags.writeable


def test_a_scaled_nifti_is_read_through_nibabel_with_its_scaling(tmp_path: Path) -> None:
    # scl_slope/scl_inter: the direct read leaves such files to nibabel, which applies them.
    img = nib.Nifti1Image(blob((9, 8, 7)).astype(np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, 0.0)
    nib.save(img, tmp_path / "scaled.nii.gz")

    loaded = load_mask(tmp_path / "scaled.nii.gz", threshold=0.25)

    np.testing.assert_array_equal(loaded.array, blob((9, 8, 7)))


def test_a_multi_member_gzip_nifti_is_read_across_its_members(tmp_path: Path) -> None:
    # gzip files may be concatenated members (pigz, split writes); nibabel reads them whole.
    mask = blob((12, 10, 8))
    save_mask(tmp_path / "plain.nii", mask)
    raw = (tmp_path / "plain.nii").read_bytes()
    half = len(raw) // 2
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))

    np.testing.assert_array_equal(load_mask(tmp_path / "members.nii.gz").array, mask)


def test_a_corrupted_gzip_checksum_is_refused_with_input_error(tmp_path: Path) -> None:
    save_mask(tmp_path / "good.nii.gz", blob((12, 10, 8)))
    data = bytearray((tmp_path / "good.nii.gz").read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the gzip trailer
    (tmp_path / "bad.nii.gz").write_bytes(bytes(data))

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "bad.nii.gz", case_id="A1")

    assert caught.value.reason.startswith("cannot read this NIfTI file; it is truncated or corrupt")


def test_a_gzip_bomb_behind_a_small_header_allocates_no_more_than_the_header_promises(
    tmp_path: Path,
) -> None:
    # A valid header for 8x8x8 voxels followed by 64 MB of zeros: read as 512 voxels, not 64 MB.
    save_mask(tmp_path / "small.nii", np.zeros((8, 8, 8), bool))
    raw = (tmp_path / "small.nii").read_bytes()
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(raw + bytes(64 << 20)))

    loaded = load_mask(tmp_path / "bomb.nii.gz")

    assert loaded.shape == (8, 8, 8)
    assert not loaded.array.any()


def test_a_loaded_mask_is_read_only(tmp_path: Path) -> None:
    save_mask(tmp_path / "case.nii", blob())
    loaded = load_mask(tmp_path / "case.nii")

    with pytest.raises(ValueError, match="read-only"):
        loaded.array[0, 0, 0] = False
    with pytest.raises(ValueError, match="read-only"):
        loaded.affine[0, 0] = 2.0


def test_the_npz_mask_may_be_its_single_unnamed_array(tmp_path: Path) -> None:
    mask = blob()
    np.savez(tmp_path / "case.npz", seg=mask, spacing=np.array([0.5, 0.5, 1.0]))

    loaded = load_mask(tmp_path / "case.npz")

    np.testing.assert_array_equal(loaded.array, mask)
    assert loaded.spacing == (0.5, 0.5, 1.0)


def test_an_npz_with_several_unnamed_arrays_is_refused_with_the_key_to_use(
    tmp_path: Path,
) -> None:
    np.savez(tmp_path / "case.npz", a=blob(), b=blob())

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npz", case_id="A1")

    assert caught.value.reason == MSG_NPZ_KEYS.format(keys=["a", "b"])
    assert "mask" in (caught.value.fix or "")


def test_an_npz_affine_alone_gives_the_spacing_as_its_column_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "case.npz", mask=blob(), affine=FLIPPED)

    loaded = load_mask(tmp_path / "case.npz", spacing=(9.0, 9.0, 9.0))

    np.testing.assert_allclose(loaded.spacing, (0.7, 0.8, 2.5), rtol=1e-12)
    np.testing.assert_array_equal(loaded.affine, FLIPPED)


def test_an_npz_whose_spacing_contradicts_its_affine_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "case.npz", mask=blob(), affine=FLIPPED, spacing=np.array([1.0, 1, 1]))

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npz")

    assert caught.value.reason == MSG_AFFINE_SPACING.format(
        implied=(0.7, 0.8, 2.5), spacing=(1.0, 1.0, 1.0)
    )


# --- label selection -------------------------------------------------------------------------


def test_a_set_of_labels_selects_their_union(tmp_path: Path) -> None:
    labels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) % 4
    path = write_nifti(tmp_path / "labels.nii.gz", labels)

    union = load_mask(path, labels={2, 3})
    single = load_mask(path, labels=2)
    default = load_mask(path)

    np.testing.assert_array_equal(union.array, (labels == 2) | (labels == 3))
    np.testing.assert_array_equal(single.array, labels == 2)
    np.testing.assert_array_equal(default.array, labels == 1)


def test_a_mask_of_zeros_and_twos_with_the_default_label_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    data = np.zeros((4, 5, 6), np.uint8)
    data[1:3, 1:3, 1:3] = 2
    path = write_nifti(tmp_path / "twos.nii.gz", data)

    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="A1")

    reason = MSG_LABELS_NOT_FOUND.format(selected=[1], found="[2]")
    fix = FIX_LABELS_NOT_FOUND.format(suggestion=[2])
    assert str(caught.value) == f"case 'A1', file '{path}': {reason}. Fix: {fix}"
    assert "labels = [2]" in fix


def test_a_0_255_mask_is_refused_with_label_255_as_the_fix(tmp_path: Path) -> None:
    np.save(tmp_path / "case.npy", blob().astype(np.uint8) * 255)

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npy")

    assert caught.value.fix == FIX_LABELS_NOT_FOUND.format(suggestion=[255])
    np.testing.assert_array_equal(load_mask(tmp_path / "case.npy", labels=255).array, blob())


def test_an_all_zero_mask_is_a_legitimate_empty_mask(tmp_path: Path) -> None:
    save_mask(tmp_path / "empty.nii.gz", np.zeros((4, 5, 6), bool))

    loaded = load_mask(tmp_path / "empty.nii.gz", labels=[1, 2])

    assert loaded.array.shape == (4, 5, 6)
    assert not loaded.array.any()


def test_a_boolean_array_is_used_as_is_whatever_the_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "case.npy", blob())

    loaded = load_mask(tmp_path / "case.npy", labels=7)

    np.testing.assert_array_equal(loaded.array, blob())


@pytest.mark.parametrize("labels", [[], "1", 1.5, True, [1, None]])
def test_labels_that_are_not_integers_are_refused(tmp_path: Path, labels: Any) -> None:
    save_mask(tmp_path / "case.npy", blob())

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npy", labels=labels)

    assert caught.value.reason == MSG_BAD_LABELS.format(labels=labels)


# --- float masks -------------------------------------------------------------------------------


def test_a_float_mask_of_zeros_and_ones_is_accepted_as_binary(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "float.nii.gz", blob().astype(np.float32))

    np.testing.assert_array_equal(load_mask(path).array, blob())


def test_a_float_label_map_of_whole_numbers_selects_labels(tmp_path: Path) -> None:
    labels = (np.arange(60).reshape(3, 4, 5) % 3).astype(np.float32)
    path = write_nifti(tmp_path / "float_labels.nii.gz", labels)

    np.testing.assert_array_equal(load_mask(path, labels=2).array, labels == 2)


def test_a_probability_mask_without_threshold_is_refused_with_the_fix(tmp_path: Path) -> None:
    probabilities = np.linspace(0.0, 0.9, 60, dtype=np.float32).reshape(3, 4, 5)
    path = write_nifti(tmp_path / "prob.nii.gz", probabilities)

    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="A1")

    assert caught.value.reason == MSG_PROBABILITY.format(min=0.0, max=float(np.float32(0.9)))
    assert caught.value.fix == FIX_PROBABILITY
    assert "0 to 0.9:" in caught.value.reason
    assert "`threshold`" in str(caught.value)


def test_a_threshold_binarises_a_probability_map_as_value_at_least_threshold(
    tmp_path: Path,
) -> None:
    probabilities = np.array([[[0.0, 0.25, 0.5], [0.5001, 0.75, 1.0]]], dtype=np.float64)
    np.save(tmp_path / "prob.npy", probabilities)

    loaded = load_mask(tmp_path / "prob.npy", threshold=0.5)

    np.testing.assert_array_equal(loaded.array, probabilities >= 0.5)
    assert loaded.array[0, 0, 2]  # exactly at the threshold is foreground


def test_the_threshold_is_ignored_for_integer_masks(tmp_path: Path) -> None:
    labels = np.array([[[0, 1, 2]]], np.uint8)
    np.save(tmp_path / "labels.npy", labels)

    loaded = load_mask(tmp_path / "labels.npy", threshold=0.5)

    np.testing.assert_array_equal(loaded.array, labels == 1)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_nan_voxels_are_refused_with_their_count(tmp_path: Path, threshold: float | None) -> None:
    data = blob().astype(np.float32)
    data[0, :3, 0] = np.nan
    data[1, 1, 1] = np.inf
    path = write_nifti(tmp_path / "nan.nii.gz", data)

    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="A1", threshold=threshold)

    assert caught.value.reason == MSG_NONFINITE.format(nan=3, inf=1)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "high"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(tmp_path: Path, threshold: Any) -> None:
    save_mask(tmp_path / "case.npy", blob())

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npy", threshold=threshold)

    assert caught.value.reason == MSG_BAD_THRESHOLD.format(threshold=threshold)


# --- dimensions ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".npy"])
def test_a_4d_mask_with_several_volumes_is_refused(tmp_path: Path, suffix: str) -> None:
    data = np.zeros((4, 5, 6, 3), np.uint8)
    path = tmp_path / f"series{suffix}"
    if suffix == ".npy":
        np.save(path, data)
    else:
        write_nifti(path, data)

    for read in (lambda: load_mask(path, case_id="A1"), lambda: read_shape(path, case_id="A1")):
        with pytest.raises(InputError) as caught:
            read()
        assert caught.value.reason == MSG_4D.format(ndim=4, volumes=3, shape=(4, 5, 6, 3))
        assert caught.value.reason.startswith("4-D mask with 3 volumes")
        assert caught.value.fix == FIX_4D


@pytest.mark.parametrize("suffix", [".nii.gz", ".npy", ".npz"])
def test_a_trailing_singleton_fourth_axis_is_squeezed(tmp_path: Path, suffix: str) -> None:
    mask = blob()
    data = mask[..., np.newaxis].astype(np.uint8)
    path = tmp_path / f"case{suffix}"
    if suffix == ".npy":
        np.save(path, data)
    elif suffix == ".npz":
        np.savez(path, mask=data, spacing=np.array([0.5, 0.6, 0.7, 1.0]))
    else:
        write_nifti(path, data, np.diag([0.5, 0.6, 0.7, 1.0]))

    loaded = load_mask(path)

    np.testing.assert_array_equal(loaded.array, mask)
    assert loaded.array.flags.c_contiguous or loaded.array.flags.f_contiguous
    assert read_shape(path) == mask.shape
    if suffix == ".npz":
        assert loaded.spacing == (0.5, 0.6, 0.7)
    elif suffix == ".nii.gz":
        assert loaded.spacing == f32([0.5, 0.6, 0.7])


@pytest.mark.parametrize("shape", [(), (7,)])
def test_0d_and_1d_arrays_are_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.save(tmp_path / "case.npy", np.ones(shape, np.uint8))

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npy")

    assert caught.value.reason == MSG_TOO_FEW_DIMS.format(ndim=len(shape), shape=shape)


def test_a_zero_length_axis_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "case.npy", np.ones((4, 0, 3), np.uint8))

    with pytest.raises(InputError, match="zero-length axis"):
        load_mask(tmp_path / "case.npy")


# --- size limit: refused from the header, before any voxel is read ---------------------------


def huge_nifti_bytes() -> bytes:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((10_000, 10_000, 10_000))
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4  # header + empty extension flag, no voxels at all


def huge_npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|u1", "fortran_order": False, "shape": (10_000, 10_000, 10_000)}
    )
    return buffer.getvalue()


def write_huge(path: Path) -> None:
    name = path.name
    if name.endswith(".nii.gz"):
        path.write_bytes(gzip.compress(huge_nifti_bytes()))
    elif name.endswith(".nii"):
        path.write_bytes(huge_nifti_bytes())
    elif name.endswith(".npy"):
        path.write_bytes(huge_npy_bytes())
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("mask.npy", huge_npy_bytes())


@pytest.mark.parametrize("suffix", ALL_FORMATS)
def test_a_header_promising_10_12_voxels_is_refused_without_allocating(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"huge{suffix}"
    write_huge(path)

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError) as caught:
            load_mask(path, case_id="A1")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * 2**20
    assert elapsed < 1.0
    assert caught.value.reason == MSG_TOO_LARGE.format(
        voxels=10**12, shape=(10_000, 10_000, 10_000), limit=1_000_000_000
    )
    assert caught.value.fix == FIX_TOO_LARGE
    assert "1,000,000,000,000 voxels" in str(caught.value)
    assert "`max_voxels`" in str(caught.value)


@pytest.mark.parametrize("suffix", ALL_FORMATS)
def test_read_shape_reads_only_the_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"huge{suffix}"
    write_huge(path)

    assert read_shape(path) == (10_000, 10_000, 10_000)


def test_max_voxels_is_inclusive_and_can_be_raised(tmp_path: Path) -> None:
    save_mask(tmp_path / "case.nii.gz", blob((10, 10, 10)))

    with pytest.raises(InputError, match="more than the limit of 999"):
        load_mask(tmp_path / "case.nii.gz", max_voxels=999)
    assert load_mask(tmp_path / "case.nii.gz", max_voxels=1000).array.size == 1000


# --- unusable files ------------------------------------------------------------------------


def test_a_pickled_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "case.npy", np.array([{"mask": 1}], dtype=object), allow_pickle=True)

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npy", case_id="A1")

    assert caught.value.reason == MSG_PICKLED.format(dtype="object")
    assert caught.value.fix == FIX_PICKLED


def test_a_pickled_npz_member_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.savez(tmp_path / "case.npz", mask=np.array([[None, 1]], dtype=object))

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "case.npz")

    assert caught.value.reason == MSG_PICKLED.format(dtype="object")


def test_a_truncated_nii_gz_is_refused_with_input_error(tmp_path: Path) -> None:
    save_mask(tmp_path / "full.nii.gz", blob((30, 30, 30)))
    data = (tmp_path / "full.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "cut.nii.gz", case_id="A1")

    assert caught.value.reason.startswith("cannot read this NIfTI file; it is truncated or corrupt")
    assert caught.value.fix == FIX_UNREADABLE.format(check="nibabel.load(path).get_fdata()")
    assert "'A1'" in str(caught.value)
    assert "cut.nii.gz" in str(caught.value)


@pytest.mark.parametrize("cut", [4, 8])
def test_a_nii_gz_whose_gzip_trailer_is_cut_is_refused_as_truncated(
    tmp_path: Path, cut: int
) -> None:
    """The trailer holds the CRC-32: without it, corrupt voxels would go unnoticed."""
    save_mask(tmp_path / "full.nii.gz", blob((30, 30, 30)))
    data = (tmp_path / "full.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[:-cut])

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "cut.nii.gz", case_id="A1")

    assert "without its trailer" in str(caught.value)
    assert "truncated" in caught.value.reason


def test_a_mask_that_cannot_be_opened_is_not_called_not_gzip_compressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without read permission (simulated: the tests may run as root, who reads anything)."""
    import builtins

    path = tmp_path / "locked.nii.gz"
    save_mask(path, blob())
    real_open = builtins.open

    def no_permission(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_permission)
    monkeypatch.setattr(nib.openers, "open", no_permission, raising=False)
    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="A1")
    assert "not gzip" not in str(caught.value)
    assert "Permission denied" in str(caught.value)


def test_an_npz_with_thousands_of_arrays_is_refused_with_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(20_000):
            zf.writestr(f"a{i:05d}.npy", b"")
    with pytest.raises(InputError) as caught:
        load_mask(path)
    assert len(str(caught.value)) < 1_000
    assert "'a00009', …] and 19,990 more" in str(caught.value)


def test_an_uncompressed_nifti_named_nii_gz_is_refused_with_the_rename_fix(
    tmp_path: Path,
) -> None:
    save_mask(tmp_path / "plain.nii", blob())
    shutil.copy(tmp_path / "plain.nii", tmp_path / "renamed.nii.gz")

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "renamed.nii.gz", case_id="A1")

    assert caught.value.reason == MSG_NOT_GZIP
    assert caught.value.fix == FIX_NOT_GZIP_BUT_NIFTI


def test_a_nii_gz_holding_garbage_is_refused_as_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "junk.nii.gz").write_bytes(b"<html>404 Not Found</html>" * 20)

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "junk.nii.gz")

    assert caught.value.reason == MSG_NOT_GZIP


def test_a_gzipped_file_named_nii_is_refused_with_the_rename_fix(tmp_path: Path) -> None:
    save_mask(tmp_path / "real.nii.gz", blob())
    shutil.copy(tmp_path / "real.nii.gz", tmp_path / "misnamed.nii")

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "misnamed.nii")

    assert caught.value.reason == MSG_GZIP_NAMED_NII


def test_a_missing_file_is_refused_naming_the_case_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.nii.gz"

    with pytest.raises(InputError) as caught:
        load_mask(path, case_id="A1")

    assert str(caught.value) == f"case 'A1', file '{path}': {MSG_MISSING}. Fix: {FIX_MISSING}"
    assert caught.value.case_id == "A1"
    assert caught.value.path == str(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.nii.gz").mkdir()

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / "dir.nii.gz")

    assert caught.value.reason == MSG_NOT_A_FILE


@pytest.mark.parametrize("name", ["case.mgz", "case.jpg", "case", "case.nii.bz2"])
def test_an_unsupported_suffix_is_refused_listing_the_supported_ones(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(b"whatever")

    with pytest.raises(InputError) as caught:
        load_mask(tmp_path / name)

    shown = name[name.find(".") :] if "." in name else name
    supported = ", ".join(SUPPORTED_SUFFIXES)
    assert caught.value.reason == MSG_SUFFIX.format(suffix=shown, supported=supported)
    assert caught.value.fix == FIX_SUFFIX


def test_a_truncated_npy_and_a_broken_npz_are_refused_with_input_error(tmp_path: Path) -> None:
    np.save(tmp_path / "full.npy", blob().astype(np.uint8))
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-100])
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")

    for name in ("cut.npy", "broken.npz"):
        with pytest.raises(InputError, match="truncated or corrupt"):
            load_mask(tmp_path / name, case_id="A1")


@pytest.mark.parametrize("suffix", ALL_FORMATS)
def test_truncated_and_bit_flipped_files_raise_nothing_but_input_error(
    tmp_path: Path, suffix: str
) -> None:
    # Whatever a damaged file holds, the caller sees a Mask or an InputError, never a raw
    # nibabel / zlib / zipfile / numpy error (found by fuzzing: TokenError, NotImplementedError).
    source = tmp_path / f"source{suffix}"
    if suffix == ".npy":
        np.save(source, blob((8, 9, 10)).astype(np.uint8))
    else:
        save_mask(source, blob((8, 9, 10)), FLIPPED)
    original = source.read_bytes()
    rng = np.random.default_rng(7)
    damaged = tmp_path / f"damaged{suffix}"
    errors: list[InputError] = []
    for trial in range(60):
        data = bytearray(original)
        if trial % 2:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for _ in range(3):
                data[int(rng.integers(0, min(len(data), 400)))] = int(rng.integers(0, 256))
        damaged.write_bytes(bytes(data))
        for read in (
            lambda: load_mask(damaged, case_id="A1", max_voxels=10**6),
            lambda: read_shape(damaged, case_id="A1"),
        ):
            try:
                read()
            except InputError as error:  # anything else fails the test
                errors.append(error)

    assert errors
    assert all(e.case_id == "A1" and e.path == str(damaged) and e.fix for e in errors)


# --- geometry ------------------------------------------------------------------------------


def grid(shape: tuple[int, ...], affine: np.ndarray, path: str | None = None) -> Mask:
    """A mask of the given grid with a recognisable, asymmetric content."""
    array = np.zeros(shape, bool)
    array[(slice(1, 3),) * len(shape)] = True
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, : len(shape)], axis=0))
    return Mask(array, spacing, affine, path)


def test_masks_on_the_same_grid_pass_within_the_tolerance() -> None:
    ref = grid((4, 5, 6), FLIPPED, "ref.nii.gz")
    nudged = FLIPPED.copy()
    nudged[0, 3] += 5e-4

    check_geometry(grid((4, 5, 6), nudged, "pred.nii.gz"), ref, case_id="A1")
    with pytest.raises(GeometryError):
        check_geometry(grid((4, 5, 6), nudged, "pred.nii.gz"), ref, atol=1e-4)


def test_a_shape_mismatch_names_the_case_both_files_and_both_shapes() -> None:
    pred = grid((4, 5, 6), FLIPPED, "pred/A1.nii.gz")
    ref = grid((4, 5, 7), FLIPPED, "expert/A1.nii.gz")

    with pytest.raises(GeometryError) as caught:
        check_geometry(pred, ref, case_id="A1")

    text = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert text.startswith("case 'A1', file 'pred/A1.nii.gz': prediction and reference are not")
    for part in ("pred/A1.nii.gz", "expert/A1.nii.gz", "(4, 5, 6)", "(4, 5, 7)", "LAS"):
        assert part in text
    assert caught.value.fix == FIX_RESAMPLE


def test_a_flipped_and_permuted_prediction_shows_both_orientations_and_suggests_reorient() -> None:
    pred, ref = reorient_target_pair()

    with pytest.raises(GeometryError) as caught:
        check_geometry(pred, ref, case_id="A1")

    text = str(caught.value)
    assert "orientation RAS" in text
    assert "orientation IRP" in text  # pred's axes point along -z, +x, -y: I, R, P
    assert caught.value.fix == FIX_REORIENT
    assert "`reorient = true`" in text


def test_a_different_spacing_is_not_offered_reorient() -> None:
    ref = grid((4, 5, 6), np.diag([0.5, 1.0, 2.0, 1.0]))
    pred = grid((4, 5, 6), np.diag([0.5, 1.0, 2.5, 1.0]))

    with pytest.raises(GeometryError) as caught:
        check_geometry(pred, ref, case_id="A1")

    assert "affines differ by up to 0.5 mm" in str(caught.value)
    assert caught.value.fix == FIX_RESAMPLE


def reorient_target_pair() -> tuple[Mask, Mask]:
    """A reference and the same voxels stored transposed (z, x, y) with z and y reversed.

    Built by hand, independently of nibabel's orientation code: pred[i, j, k] is
    ref[j, 4 - k, 5 - i], so pred's affine is ref's affine times that index map.
    """
    ref_affine = np.diag([0.5, 1.0, 2.0, 1.0])
    ref_affine[:3, 3] = [10.0, -20.0, 30.0]
    ref_array = blob((4, 5, 6), seed=11)
    pred_array = ref_array.transpose(2, 0, 1)[::-1, :, ::-1]
    index_map = np.array(
        [[0, 1, 0, 0], [0, 0, -1, 4], [-1, 0, 0, 5], [0, 0, 0, 1]], dtype=np.float64
    )
    pred_affine = ref_affine @ index_map
    pred = Mask(pred_array.copy(), (2.0, 0.5, 1.0), pred_affine, "pred.nii.gz")
    ref = Mask(ref_array, (0.5, 1.0, 2.0), ref_affine, "ref.nii.gz")
    return pred, ref


def test_reorient_like_on_a_flipped_and_permuted_copy_gives_back_the_identical_array() -> None:
    pred, ref = reorient_target_pair()
    # The construction is right: the same voxel sits at the same world position.
    i, j, k = 2, 1, 3
    world_pred = pred.affine @ [i, j, k, 1]
    world_ref = ref.affine @ [j, 4 - k, 5 - i, 1]
    np.testing.assert_allclose(world_pred, world_ref)

    moved = reorient_like(pred, ref, case_id="A1")

    np.testing.assert_array_equal(moved.array, ref.array)
    assert moved.array.flags.c_contiguous or moved.array.flags.f_contiguous
    assert not moved.array.flags.writeable
    assert moved.spacing == ref.spacing
    np.testing.assert_array_equal(moved.affine, ref.affine)
    assert moved.path == "pred.nii.gz"
    check_geometry(moved, ref)


def test_reorient_like_works_on_2d_masks() -> None:
    ref_affine = np.diag([0.5, 2.0, 1.0, 1.0])
    ref = Mask(blob((5, 7)), (0.5, 2.0), ref_affine)
    flipped_affine = ref_affine @ np.array(
        [[-1, 0, 0, 4], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64
    )
    pred = Mask(ref.array[::-1].copy(), (0.5, 2.0), flipped_affine)

    np.testing.assert_array_equal(reorient_like(pred, ref).array, ref.array)


def test_reorient_like_on_the_same_grid_returns_the_mask_itself() -> None:
    mask = grid((4, 5, 6), FLIPPED)

    assert reorient_like(mask, grid((4, 5, 6), FLIPPED)) is mask


def test_reorient_like_refuses_a_different_spacing() -> None:
    pred, ref = reorient_target_pair()
    coarser = Mask(ref.array, (0.5, 1.0, 3.0), np.diag([0.5, 1.0, 3.0, 1.0]), "coarse.nii.gz")

    with pytest.raises(GeometryError) as caught:
        reorient_like(pred, coarser, case_id="A1")

    assert "segfair does not resample" in str(caught.value)
    assert "'A1'" in str(caught.value)
    assert caught.value.fix == FIX_RESAMPLE


def test_reorient_like_refuses_a_rotation() -> None:
    angle = np.deg2rad(30)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    ref = grid((4, 5, 6), np.eye(4))

    with pytest.raises(GeometryError, match="does not resample"):
        reorient_like(grid((4, 5, 6), rotation), ref)


# --- writing -------------------------------------------------------------------------------


def test_save_mask_refuses_geometry_it_cannot_store_in_npy(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        save_mask(tmp_path / "case.npy", blob(), FLIPPED)

    assert caught.value.reason == MSG_SAVE_NPY_GEOMETRY
    assert caught.value.fix == FIX_SAVE_NPY_GEOMETRY
    assert not (tmp_path / "case.npy").exists()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (np.full((2, 2, 2), 300, np.int16), "labels from 300 to 300"),
        (np.full((2, 2, 2), -1, np.int8), "labels from -1 to -1"),
        (np.zeros((2, 2, 2), np.float32), "float32 values"),
    ],
)
def test_save_mask_refuses_what_uint8_nifti_cannot_hold(
    tmp_path: Path, data: np.ndarray, what: str
) -> None:
    with pytest.raises(InputError) as caught:
        save_mask(tmp_path / "case.nii.gz", data)

    assert caught.value.reason == MSG_SAVE_DTYPE.format(what=what)


def test_save_mask_keeps_integer_labels_in_nifti(tmp_path: Path) -> None:
    labels = (np.arange(24).reshape(2, 3, 4) % 3).astype(np.int64)
    save_mask(tmp_path / "labels.nii.gz", labels)

    assert np.asanyarray(nifti(tmp_path / "labels.nii.gz").dataobj).dtype == np.uint8
    np.testing.assert_array_equal(
        load_mask(tmp_path / "labels.nii.gz", labels=2).array, labels == 2
    )


def test_save_mask_refuses_an_affine_and_spacing_that_disagree(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="implies voxel sizes"):
        save_mask(tmp_path / "case.nii.gz", blob(), FLIPPED, spacing=(1.0, 1.0, 1.0))


def test_save_mask_leaves_only_the_file_behind(tmp_path: Path) -> None:
    for suffix in ALL_FORMATS:
        save_mask(tmp_path / f"case{suffix}", blob())

    assert sorted(os.listdir(tmp_path)) == sorted(f"case{s}" for s in ALL_FORMATS)


# --- content hash and the Mask itself ------------------------------------------------------


def test_content_hash_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(2 * 2**20 + 12345)  # crosses two chunk boundaries
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "empty.bin").write_bytes(b"")

    assert content_hash(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()
    assert content_hash(tmp_path / "empty.bin") == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("size", [1, 4096, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, (3 << 20) + 7])
def test_content_hash_is_the_sha256_of_files_either_side_of_its_first_read(
    tmp_path: Path, size: int
) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    assert content_hash(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()


def test_content_hash_of_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        content_hash(tmp_path / "nowhere.nii.gz")

    assert caught.value.reason == MSG_MISSING


def test_a_mask_refuses_non_boolean_arrays_and_mismatched_spacing() -> None:
    with pytest.raises(TypeError, match="boolean"):
        Mask(np.zeros((2, 2, 2), np.uint8), (1.0, 1.0, 1.0), np.eye(4))
    with pytest.raises(ValueError, match="spacing"):
        Mask(np.zeros((2, 2, 2), bool), (1.0, 1.0), np.eye(4))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        Mask(np.zeros((2, 2, 2, 2), bool), (1.0,) * 4, np.eye(4))


def test_a_mask_built_from_a_callers_array_leaves_that_array_writable() -> None:
    array = np.zeros((2, 3, 4), bool)

    mask = Mask(array, (1.0, 1.0, 1.0), np.eye(4))

    assert array.flags.writeable
    assert not mask.array.flags.writeable
    assert "shape (2, 3, 4)" in repr(mask)


# --- property ------------------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    array=st.integers(2, 3).flatmap(
        lambda ndim: hnp.arrays(
            np.bool_, hnp.array_shapes(min_dims=ndim, max_dims=ndim, max_side=6)
        )
    ),
    spacing=st.lists(st.floats(0.05, 8.0, allow_nan=False), min_size=3, max_size=3),
    flips=st.lists(st.booleans(), min_size=3, max_size=3),
    origin=st.lists(st.floats(-300.0, 300.0), min_size=3, max_size=3),
    suffix=st.sampled_from([".nii", ".nii.gz", ".npz", ".npy"]),
)
def test_save_then_load_round_trips_array_and_spacing(
    tmp_path: Path,
    array: np.ndarray,
    spacing: list[float],
    flips: list[bool],
    origin: list[float],
    suffix: str,
) -> None:
    ndim = array.ndim
    voxel = spacing[:ndim]
    affine = np.diag([-s if f else s for s, f in zip(spacing, flips, strict=True)] + [1.0])
    affine[:3, 3] = origin
    if ndim == 2:
        affine[2, 2] = 1.0
    path = tmp_path / f"prop{suffix}"

    if suffix == ".npy":
        save_mask(path, array)
        loaded = load_mask(path, spacing=voxel)
    else:
        save_mask(path, array, affine)
        loaded = load_mask(path)

    np.testing.assert_array_equal(loaded.array, array)
    if suffix in NIFTI:
        assert loaded.spacing == f32(voxel)
        np.testing.assert_array_equal(loaded.affine, affine.astype(np.float32).astype(np.float64))
    elif suffix == ".npz":
        np.testing.assert_allclose(loaded.spacing, voxel, rtol=1e-15)
        np.testing.assert_array_equal(loaded.affine, affine)
    else:
        assert loaded.spacing == tuple(voxel)


# --- speed paths: same results whatever the inflater, bounding box found while reading ---------


def test_zlib_and_isal_inflate_a_nifti_to_the_same_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    import segfair.io.inflate as sio

    mask = blob((15, 12, 9))
    save_mask(tmp_path / "case.nii.gz", mask)
    with_default = load_mask(tmp_path / "case.nii.gz").array
    monkeypatch.setattr(sio, "_inflate_lib", zlib)
    with_zlib = load_mask(tmp_path / "case.nii.gz").array
    np.testing.assert_array_equal(with_default, mask)
    np.testing.assert_array_equal(with_zlib, mask)


def test_the_bounding_box_found_while_reading_a_binary_mask_is_reused_by_the_metrics(
    tmp_path: Path,
) -> None:
    from segfair.metrics import arrays

    mask = np.zeros((20, 18, 12), bool)
    mask[4:9, 7:15, 2:5] = True
    save_mask(tmp_path / "case.nii.gz", mask)

    loaded = load_mask(tmp_path / "case.nii.gz")

    assert id(loaded.array) in arrays._KNOWN_EXTENTS  # found while checking for 0/1
    assert arrays.find_extent(loaded.array) == [(4, 9), (7, 15), (2, 5)]


def _variants(tmp_path: Path) -> dict[str, Path]:
    """NIfTI files as different writers make them: every one must read as nibabel reads it."""
    data = blob((9, 8, 7)).astype(np.uint8)
    affine = np.array(
        [[-0.7, 0.1, 0, 90], [0, 0.7, 0.2, -100], [0.05, 0, 1.5, 20], [0, 0, 0, 1]], np.float64
    )
    out: dict[str, Path] = {}

    def save(name: str, img: Any) -> None:
        out[name] = tmp_path / name
        nib.save(img, out[name])

    img = nib.Nifti1Image(data, affine)
    save("sform_and_qform.nii.gz", img)
    qform_only = nib.Nifti1Image(data, None)
    qform_only.set_qform(affine, code=1)
    qform_only.set_sform(None, code=0)
    save("qform_only.nii.gz", qform_only)
    sform_only = nib.Nifti1Image(data, None)
    sform_only.set_sform(affine, code=2)
    sform_only.set_qform(None, code=0)
    # a writer keeps pixdim equal to the voxel sizes the sform implies (see the test below)
    sform_only.header.set_zooms(tuple(np.linalg.norm(affine[:3, :3], axis=0)))
    save("sform_only.nii", sform_only)
    no_transform = nib.Nifti1Image(data, None)
    no_transform.set_sform(None, code=0)
    no_transform.set_qform(None, code=0)
    save("no_transform.nii.gz", no_transform)
    save("nifti2.nii.gz", nib.Nifti2Image(data.astype(np.int16), affine))
    big = nib.Nifti1Image(data.astype(">i2"), affine)
    save("big_endian.nii.gz", big)
    extended = nib.Nifti1Image(data, affine)
    extended.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment"))
    save("with_extension.nii.gz", extended)
    save("four_d.nii.gz", nib.Nifti1Image(data[..., None], affine))
    return out


def test_every_kind_of_nifti_header_reads_as_nibabel_reads_it(tmp_path: Path) -> None:
    for name, path in _variants(tmp_path).items():
        img = nifti(path)
        geometry = read_geometry(path)
        loaded = load_mask(path)
        np.testing.assert_array_equal(geometry.affine, img.affine, err_msg=name)
        assert geometry.spacing == tuple(float(z) for z in img.header.get_zooms()[:3]), name
        assert geometry.shape == img.shape[:3], name
        np.testing.assert_array_equal(loaded.affine, img.affine, err_msg=name)
        np.testing.assert_array_equal(
            loaded.array, np.asanyarray(img.dataobj).reshape(img.shape[:3]) == 1, err_msg=name
        )


@pytest.mark.parametrize(
    ("pixdim", "message"),
    [
        ((5.0, 5.0, 5.0), "its pixdim says voxels of (5.0, 5.0, 5.0) mm, its sform places them"),
        ((1.0, 1.0, 1.0), "its pixdim says voxels of (1.0, 1.0, 1.0) mm, its sform places them"),
        ((0.7, 0.7, 0.0), "voxel spacing (0.7, 0.7, 0.0) from the NIfTI header is not finite"),
        ((-0.7, 0.7, 1.5), "voxel spacing (-0.7, 0.7, 1.5) from the NIfTI header is not finite"),
    ],
)
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_nifti_header_that_contradicts_itself_is_refused_before_any_repair(
    tmp_path: Path, pixdim: tuple[float, ...], message: str, suffix: str
) -> None:
    """pixdim is what distances were computed from, the sform where voxels are: a 5 mm pixdim
    under a 0.7 mm sform turned HD95 from 1.5 into 5.0 mm; nibabel turns a 0 into 1 mm and a
    negative size into its absolute value without a word."""
    affine = np.diag([0.7, 0.7, 1.5, 1.0])
    img = nib.Nifti1Image(blob((9, 8, 7)).astype(np.uint8), affine)
    img.header["pixdim"][1:4] = pixdim
    path = tmp_path / f"stale{suffix}"
    nib.save(img, path)
    with pytest.raises(InputError) as err:
        read_geometry(path)
    text = str(err.value).replace("0.699999988079071", "0.7")
    assert message in text
    assert str(path) in text
    with pytest.raises(InputError):
        load_mask(path)


def test_a_whole_gzip_stream_is_inflated_at_once_into_the_promised_size(tmp_path: Path) -> None:
    import segfair.io.inflate as sio

    save_mask(tmp_path / "case.nii", blob((10, 9, 8)))
    plain = (tmp_path / "case.nii").read_bytes()
    packed = gzip.compress(plain)

    assert sio._inflate_at_once(packed, len(plain)) == plain
    assert sio._inflate_at_once(packed, len(plain) - 1) is None  # the trailer disagrees
    assert sio._inflate_at_once(packed[:-9] + packed[-8:], len(plain)) is None  # damaged


@pytest.mark.parametrize("zeros_mib", [16, 128])
def test_a_gzip_bomb_whose_trailer_lies_about_its_size_still_reads_only_the_header_promise(
    tmp_path: Path, zeros_mib: int
) -> None:
    # The trailer claims the promised size; the stream holds megabytes more. 16 MiB: small enough
    # for the one-shot inflate to try (bounded by 8x the promise + 64 MiB), which then sees the
    # wrong size and hands over to the capped streaming path; 128 MiB: too large to try at all.
    # Either way memory stays bounded. 16 MiB: the streaming path reads on to the trailer, whose
    # length check fails: refused (until the trailer was checked, it was read). 128 MiB: a file
    # far larger than its data goes to nibabel, which reads the promised voxels and ignores
    # the rest, as before.
    save_mask(tmp_path / "small.nii", np.zeros((8, 8, 8), bool))
    raw = (tmp_path / "small.nii").read_bytes()
    bomb = bytearray(gzip.compress(raw + bytes(zeros_mib << 20)))
    bomb[-4:] = len(raw).to_bytes(4, "little")
    (tmp_path / "bomb.nii.gz").write_bytes(bytes(bomb))

    tracemalloc.start()
    try:
        if zeros_mib == 16:
            with pytest.raises(InputError, match="truncated or corrupt"):
                load_mask(tmp_path / "bomb.nii.gz")
        else:
            loaded = load_mask(tmp_path / "bomb.nii.gz")
            assert loaded.shape == (8, 8, 8)
            assert not loaded.array.any()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * len(raw) + (80 << 20)


def test_an_atomic_write_never_follows_a_link_planted_at_a_temporary_name(
    tmp_path: Path,
) -> None:
    """Before, the temporary name was predictable (.<pid>.<thread>.tmp.<name>) and opened with
    open(..., "w"): a symbolic link planted there made segfair overwrite the link's target."""
    import threading

    from segfair.io import atomic_write_text

    target = tmp_path / "victim.txt"
    target.write_text("precious")
    name = "out.json"
    planted = tmp_path / f".{os.getpid()}.{threading.get_ident()}.tmp.{name}"
    planted.symlink_to(target)
    atomic_write_text(tmp_path / name, "new content")
    assert target.read_text() == "precious"
    assert (tmp_path / name).read_text() == "new content"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would give
