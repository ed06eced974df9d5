"""The brats, multifocal and dermoscopy presets: each documented effect is found in the files.

Every measurement reads the written files back (nibabel, Pillow) and scores arrays with
segfair's metric functions; lesions are scipy's connected components. Ranges were measured at
seeds 0–5 with the sizes used here (docs/synthetic.md).
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from segfair.cli import main
from segfair.metrics import compute, dice
from segfair.synth import (
    ERR_EFFECTS_BREAST_ONLY,
    LAYOUT,
    MANIFEST,
    PRESET_NAMES,
    WORLD_NAMES,
    WORLD_TABLE,
    make_cohort,
)

BRATS = {"n_cases": 40, "shape": (48, 48, 40)}
MULTIFOCAL = {"n_cases": 40, "shape": (48, 48, 32)}
DERMOSCOPY = {"n_cases": 60, "shape": (64, 64)}
ROLES = ("automated", "trained_on_expert", "trained_on_automated")
SUFFIX = {"brats": ".nii.gz", "multifocal": ".nii.gz", "dermoscopy": ".png"}


def _read(root: Path, role: str, case_id: str, suffix: str) -> Any:
    path = root / LAYOUT[role] / f"{case_id}{suffix}"
    if suffix == ".png":
        with Image.open(path) as image:
            return np.asarray(image)
    return np.asarray(nib.load(path).dataobj)


def _cases(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / WORLD_TABLE)
    table["group"] = np.where(table["age"] < 50, "younger", "older")
    return table


def _group_gap(table: pd.DataFrame, column: str, by: str = "group") -> float:
    means = table.groupby(by)[column].mean()
    return float(means.max() - means.min())


@pytest.fixture(scope="module")
def brats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("brats")
    make_cohort(root, preset="brats", seed=0, **BRATS)  # type: ignore[arg-type]
    return root


@pytest.fixture(scope="module")
def multifocal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multifocal")
    make_cohort(root, preset="multifocal", seed=0, **MULTIFOCAL)  # type: ignore[arg-type]
    return root


@pytest.fixture(scope="module")
def dermoscopy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dermoscopy")
    make_cohort(root, preset="dermoscopy", seed=0, **DERMOSCOPY)  # type: ignore[arg-type]
    return root


# -- brats ------------------------------------------------------------------------------------


def _structure_dice(root: Path, role: str, labels: list[int]) -> pd.DataFrame:
    table = _cases(root)
    table["dice"] = [
        dice(
            np.isin(_read(root, role, c, ".nii.gz"), labels),
            np.isin(_read(root, "expert", c, ".nii.gz"), labels),
        )
        for c in table["case_id"]
    ]
    return table


def test_brats_label_maps_hold_a_necrotic_core_inside_an_enhancing_rim_inside_oedema(
    brats: Path,
) -> None:
    for case_id in _cases(brats)["case_id"]:
        truth = _read(brats, "expert", case_id, ".nii.gz")
        assert truth.dtype == np.uint8
        assert set(np.unique(truth)) == {0, 1, 2, 3}
        # the core touches only the rim; the rim is wrapped in oedema (nothing of the core meets
        # the background)
        necrosis_next = ndimage.binary_dilation(truth == 1) & (truth != 1)
        assert set(np.unique(truth[necrosis_next])) <= {3}
        core_next = ndimage.binary_dilation(np.isin(truth, [1, 3])) & ~np.isin(truth, [1, 3])
        assert set(np.unique(truth[core_next])) <= {2}


def test_brats_rims_are_thinner_under_50_in_the_files(brats: Path) -> None:
    table = _cases(brats)
    share = []
    for case_id in table["case_id"]:
        truth = _read(brats, "expert", case_id, ".nii.gz")
        share.append(np.count_nonzero(truth == 3) / np.count_nonzero(np.isin(truth, [1, 3])))
    table["rim_share"] = share
    means = table.groupby("group")["rim_share"].mean()
    assert means["younger"] < means["older"] - 0.1


@pytest.mark.parametrize("role", ROLES)
def test_brats_enhancing_tumour_dice_gap_is_large_and_the_whole_tumour_gap_small(
    brats: Path, role: str
) -> None:
    enhancing = _structure_dice(brats, role, [3])
    whole = _structure_dice(brats, role, [1, 2, 3])
    means = enhancing.groupby("group")["dice"].mean()
    # seeds 0–5: the enhancing gap is 0.29–0.74 (the younger group worse), the whole-tumour gap
    # at most 0.011 (docs/synthetic.md)
    assert means["older"] - means["younger"] > 0.2
    assert _group_gap(whole, "dice") < 0.03


# -- multifocal -------------------------------------------------------------------------------


def _lesion_counts(root: Path, role: str) -> pd.DataFrame:
    voxel = 1.5**3
    table = _cases(root)
    rows = []
    for case_id in table["case_id"]:
        truth = _read(root, "expert", case_id, ".nii.gz") > 0
        pred = _read(root, role, case_id, ".nii.gz") > 0
        labels, n = ndimage.label(truth, structure=np.ones((3, 3, 3)))
        volumes = np.bincount(labels.ravel())[1:] * voxel
        small = [k + 1 for k in range(n) if 50 < volumes[k] <= 500]
        found = sum(bool((pred & (labels == k)).any()) for k in small)
        rows.append((dice(pred, truth), len(small), found))
    table[["dice", "small", "found"]] = rows
    return table


def test_multifocal_lesions_are_separate_under_the_brats_2023_dilation(multifocal: Path) -> None:
    # BraTS 2023 merges reference lesions whose 3-fold dilations touch: none here do
    full = np.ones((3, 3, 3), dtype=bool)
    for case_id in _cases(multifocal)["case_id"]:
        truth = _read(multifocal, "expert", case_id, ".nii.gz") > 0
        _, n = ndimage.label(truth, structure=full)
        dilated = ndimage.binary_dilation(
            truth, structure=ndimage.generate_binary_structure(3, 2), iterations=3
        )
        assert ndimage.label(dilated, structure=full)[1] == n


def test_multifocal_younger_patients_have_more_small_lesions(multifocal: Path) -> None:
    counts = _lesion_counts(multifocal, "trained_on_expert").groupby("group")["small"].mean()
    assert counts["younger"] > 1.5 * counts["older"]


@pytest.mark.parametrize("role", ROLES)
def test_multifocal_small_lesion_detection_gap_is_large_and_the_dice_gap_small(
    multifocal: Path, role: str
) -> None:
    table = _lesion_counts(multifocal, role)
    sums = table.groupby("group")[["small", "found"]].sum()
    rate = sums["found"] / sums["small"]
    # seeds 0–5: detection gap 0.34–0.60 (pooled over a group's small lesions), Dice gap ≤ 0.034
    assert rate["older"] - rate["younger"] > 0.25
    assert _group_gap(table, "dice") < 0.05


# -- dermoscopy -------------------------------------------------------------------------------


def test_dermoscopy_masks_are_8_bit_pngs_of_0_and_1_with_their_pixel_size(
    dermoscopy: Path,
) -> None:
    for role in ("expert", *ROLES):
        path = dermoscopy / LAYOUT[role] / "DERM-00000.png"
        with Image.open(path) as image:
            assert image.mode == "L"
            assert image.size == DERMOSCOPY["shape"]
            # pHYs: 10,000 pixels per metre = 0.1 mm
            assert [round(d / 0.0254) for d in image.info["dpi"]] == [10000, 10000]
            assert set(np.unique(np.asarray(image))) == {0, 1}


@pytest.mark.parametrize("role", ROLES)
def test_dermoscopy_dice_is_lower_on_darker_skin(dermoscopy: Path, role: str) -> None:
    table = pd.read_csv(dermoscopy / WORLD_TABLE)
    table["dice"] = [
        compute(
            _read(dermoscopy, role, c, ".png") > 0,
            _read(dermoscopy, "expert", c, ".png") > 0,
            (0.1, 0.1),
            metrics=["dice"],
        )["dice"]
        for c in table["case_id"]
    ]
    means = table.groupby("skin_tone")["dice"].mean()
    # seeds 0–5: I-II − V-VI is 0.12–0.34
    assert means["I-II"] - means["V-VI"] > 0.08
    assert means["I-II"] > means["III-IV"] > means["V-VI"]


# -- configurations ---------------------------------------------------------------------------


def _gates(root: Path) -> list[dict[str, Any]]:
    with open(root / "segfair.toml", "rb") as fh:
        config = tomllib.load(fh)
    cases = pd.read_csv(root / config["cases"])
    assert cases.columns[0] == config["case_id"]
    for source in (*config["rulers"].values(), *config["models"].values()):
        assert all((root / source.format(case_id=c)).is_file() for c in cases[config["case_id"]])
    return list(config["gates"])


def test_the_brats_configuration_gates_enhancing_and_whole_tumour_separately(
    brats: Path,
) -> None:
    with open(brats / "segfair.toml", "rb") as fh:
        assert tomllib.load(fh)["structures"] == {
            "whole_tumor": [1, 2, 3],
            "tumor_core": [1, 3],
            "enhancing": 3,
        }
    gates = _gates(brats)
    assert [(g["kind"], g["structure"], g["max"]) for g in gates] == [
        ("gap", "enhancing", 0.1),
        ("gap", "whole_tumor", 0.05),
    ]


def test_the_multifocal_configuration_asks_for_lesion_wise_scores_and_a_detection_gate(
    multifocal: Path,
) -> None:
    with open(multifocal / "segfair.toml", "rb") as fh:
        config = tomllib.load(fh)
    assert {"lesion_dice", "small_lesions", "small_lesions_detected"} <= set(config["metrics"])
    assert config["lesions"] == {"min_volume": 50.0, "small_volume": 500.0}
    kinds = [(g["kind"], g.get("metric")) for g in _gates(multifocal)]
    assert kinds == [("gap", "dice"), ("detection_gap", None), ("gap", "lesion_sensitivity")]


def test_the_dermoscopy_configuration_states_labels_and_pixel_size(dermoscopy: Path) -> None:
    with open(dermoscopy / "segfair.toml", "rb") as fh:
        config = tomllib.load(fh)
    assert config["labels"] == [1]
    assert config["spacing"] == [0.1, 0.1]
    assert config["attributes"]["skin_tone"]["order"] == ["I-II", "III-IV", "V-VI"]
    assert [(g["kind"], g["by"]) for g in _gates(dermoscopy)] == [("gap", "skin_tone")]


# -- determinism and arguments ----------------------------------------------------------------


def _bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("preset", "shape"),
    [("brats", (32, 32, 24)), ("multifocal", (40, 40, 24)), ("dermoscopy", (48, 48))],
)
def test_the_same_seed_writes_the_same_bytes_whatever_the_worker_count(
    tmp_path: Path, preset: str, shape: tuple[int, ...]
) -> None:
    make_cohort(tmp_path / "a", n_cases=4, shape=shape, preset=preset, seed=3)
    make_cohort(tmp_path / "b", n_cases=4, shape=shape, preset=preset, seed=3, workers=2)
    make_cohort(tmp_path / "c", n_cases=4, shape=shape, preset=preset, seed=4)
    first = _bytes(tmp_path / "a")
    assert first == _bytes(tmp_path / "b")
    assert first != _bytes(tmp_path / "c")
    assert len(first) == 4 * 4 + 3  # four masks a case, the table, configuration and recipe


@pytest.mark.parametrize("preset", WORLD_NAMES)
def test_a_case_does_not_depend_on_the_number_of_cases(tmp_path: Path, preset: str) -> None:
    shape = (40, 40) if preset == "dermoscopy" else (32, 32, 24)
    make_cohort(tmp_path / "two", n_cases=2, shape=shape, preset=preset, seed=1)
    make_cohort(tmp_path / "five", n_cases=5, shape=shape, preset=preset, seed=1)
    for role in ("expert", *ROLES):
        for first in (tmp_path / "two" / LAYOUT[role]).iterdir():
            assert (
                first.read_bytes() == (tmp_path / "five" / LAYOUT[role] / first.name).read_bytes()
            )


def test_every_world_is_a_preset_name() -> None:
    assert set(WORLD_NAMES) == {"brats", "multifocal", "dermoscopy"}
    assert set(WORLD_NAMES) <= set(PRESET_NAMES)


def test_effects_of_the_breast_world_are_refused_by_the_other_worlds(tmp_path: Path) -> None:
    expected = ERR_EFFECTS_BREAST_ONLY.format(names="label_noise", preset="brats")
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        make_cohort(tmp_path, n_cases=1, preset="brats", label_noise=0.1)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("preset", "kwargs", "message"),
    [
        ("dermoscopy", {"shape": (32, 32, 8)}, "shape must be two positive integers"),
        ("dermoscopy", {"spacing": (0.1, 0.1, 1.0)}, "spacing must be two positive finite"),
        ("brats", {"shape": (32, 32)}, "shape must be three positive integers"),
        ("dermoscopy", {"spacing": (0.3, 0.3)}, r"1000 / spacing must be a whole number"),
    ],
)
def test_a_geometry_the_preset_cannot_write_is_refused(
    tmp_path: Path, preset: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_cohort(tmp_path, n_cases=1, preset=preset, **kwargs)


def test_without_pillow_the_dermoscopy_preset_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ValueError, match=r"pip install 'segfair\[images\]'"):
        make_cohort(tmp_path, n_cases=1, shape=(32, 32), preset="dermoscopy")
    assert not any(tmp_path.iterdir())


def test_a_cohort_of_another_world_replaces_an_earlier_one_without_stale_cases(
    tmp_path: Path,
) -> None:
    make_cohort(tmp_path, n_cases=3, shape=(32, 32, 24), preset="brats")
    make_cohort(tmp_path, n_cases=2, shape=(32, 32), preset="dermoscopy")
    for role in ("expert", *ROLES):
        assert sorted(p.name for p in (tmp_path / LAYOUT[role]).iterdir()) == [
            "DERM-00000.png",
            "DERM-00001.png",
        ]


def test_the_cli_writes_each_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs: list[Callable[[], int]] = [
        lambda: main(
            [
                "synth",
                str(tmp_path / "d"),
                "--preset",
                "dermoscopy",
                "--shape",
                "32x32",
                "--n-cases",
                "2",
            ]
        ),
        lambda: main(
            [
                "synth",
                str(tmp_path / "b"),
                "--preset",
                "brats",
                "--shape",
                "32x32x24",
                "--n-cases",
                "2",
            ]
        ),
    ]
    for run in runs:
        assert run() == 0
    assert "(dermoscopy preset)" in capsys.readouterr().out
    assert (tmp_path / "d" / LAYOUT["expert"] / "DERM-00001.png").is_file()
    assert (tmp_path / "b" / MANIFEST).is_file()


# -- end to end: each preset's configuration, audited from its files by the CLI and the plugin ----
# The audits need at least min_group_size = 20 cases in every group: larger cohorts than above.
END_TO_END = [
    ("brats", 80, (40, 40, 32), {"enhancing": "failed", "whole_tumor": "passed"}),
    (
        "multifocal",
        80,
        (48, 48, 32),
        {"detection_gap": "failed", "lesion_sensitivity": "failed", "gap[dice": "passed"},
    ),
    ("dermoscopy", 120, (64, 64), {"skin_tone": "failed"}),
]


def _statuses(gates: dict[str, str], expected: dict[str, str]) -> dict[str, str]:
    """The status of the one gate whose id holds each expected part."""
    found = {}
    for part in expected:
        (gate_id,) = [gate_id for gate_id in gates if part in gate_id]
        found[part] = gates[gate_id]
    return found


@pytest.mark.parametrize(("preset", "n_cases", "shape", "expected"), END_TO_END)
def test_each_preset_audits_end_to_end_with_the_verdicts_its_configuration_announces(
    tmp_path: Path, preset: str, n_cases: int, shape: tuple[int, ...], expected: dict[str, str]
) -> None:
    import json

    make_cohort(tmp_path / "c", n_cases=n_cases, shape=shape, preset=preset)
    report = tmp_path / "report.json"
    status = main(
        ["audit", "--config", str(tmp_path / "c" / "segfair.toml"), "--json", str(report), "-q"]
    )
    assert status == 1  # each preset's configuration holds a gate its effect fails
    gates = {g["id"]: g["status"] for g in json.loads(report.read_text())["gates"]}
    assert _statuses(gates, expected) == expected


pytest_plugins = ["pytester"]


@pytest.mark.parametrize(("preset", "n_cases", "shape", "expected"), END_TO_END)
def test_each_preset_gates_a_pytest_run_with_the_same_verdicts(
    pytester: pytest.Pytester,
    preset: str,
    n_cases: int,
    shape: tuple[int, ...],
    expected: dict[str, str],
) -> None:
    import json

    make_cohort(pytester.path, n_cases=n_cases, shape=shape, preset=preset, overwrite=True)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--segfair-json", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    gates = {
        g["id"]: g["status"] for g in json.loads((pytester.path / "r.json").read_text())["gates"]
    }
    assert _statuses(gates, expected) == expected
    # every configured gate is a test item, failed exactly when its verdict blocks
    assert result.parseoutcomes()["failed"] == sum(s != "passed" for s in gates.values())
