"""Synthetic cohorts: layout, determinism, validation, and the disparities the presets promise,
measured from the written files with segfair's own reader and Dice."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from segfair import synth
from segfair.io import load_mask
from segfair.metrics import dice
from segfair.synth import EFFECTS, PRESETS, make_cohort
from segfair.synth import writer as synth_writer
from segfair.synth.files import _run_task
from segfair.synth.models import _simulate
from segfair.synth.presets import _resolve_world

TINY = (16, 16, 16)
SMALL = (32, 32, 16)
# The measured cohorts: the size the presets' test-scale promises are stated for.
MEASURED_N = 300
MEASURED_SHAPE = (48, 48, 24)
GROUPS = ("young", "middle", "older")
ROLES = {
    "expert": "segmentations/expert",
    "automated": "segmentations/automatic",
    "trained_on_expert": "predictions/trained_on_expert",
    "trained_on_automated": "predictions/trained_on_automated",
}
PAIRS = (
    ("trained_on_expert", "expert"),
    ("trained_on_expert", "automated"),
    ("trained_on_automated", "expert"),
    ("trained_on_automated", "automated"),
    ("automated", "expert"),
)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def age_group(age: pd.Series) -> pd.Series:
    return pd.cut(age, [-np.inf, 40, 55, np.inf], labels=list(GROUPS)).astype(str)


def measure(root: Path) -> pd.DataFrame:
    """Per-case Dice of every pair, read back from disk with segfair's reader and metric."""
    table = pd.read_csv(root / synth.TABLE_CSV)
    rows = []
    for case_id in table["patient_id"]:
        masks = {
            role: load_mask(root / folder / f"{case_id}.nii.gz") for role, folder in ROLES.items()
        }
        row = {f"{a}|{b}": dice(masks[a].array, masks[b].array) for a, b in PAIRS}
        expert = masks["expert"]
        row["volume_mm3"] = float(expert.array.sum()) * float(np.prod(expert.spacing))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["age"] = table["age"]
    out["age_group"] = age_group(table["age"])
    return out


# xdist workers share the measured cohorts through a file lock where the platform has one.
HAVE_FLOCK = importlib.util.find_spec("fcntl") is not None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    if not HAVE_FLOCK:  # pragma: no cover - not POSIX: every worker uses its own directory
        yield
        return
    import fcntl

    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """The quantities named by :class:`segfair.synth.Promise`."""
    out: dict[str, float] = {}
    for a, b in PAIRS:
        col = f"{a}|{b}"
        means = scores.groupby("age_group")[col].mean().reindex(list(GROUPS))
        for group, value in means.items():
            out[f"label({group})" if a == "automated" else f"mean({col}|{group})"] = float(value)
        out["gap(label)" if a == "automated" else f"gap({col})"] = float(means.max() - means.min())
    te, ta = out["gap(trained_on_expert|expert)"], out["gap(trained_on_automated|expert)"]
    out["shrinkage"] = 1 - out["gap(trained_on_automated|automated)"] / ta
    out["distortion(trained_on_expert)"] = out["gap(trained_on_expert|automated)"] / te - 1
    out["amplification"] = ta / te - 1
    return out


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Under xdist every worker has its own basetemp; their parent is shared by the whole run.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class Measured:
    """Cohorts generated and measured once per test run, even when xdist workers ask for the same
    one concurrently (a file lock in the run's shared temporary directory)."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared

    def root(
        self,
        preset: str,
        *,
        n: int = MEASURED_N,
        shape: tuple[int, int, int] = MEASURED_SHAPE,
        seed: int = 0,
    ) -> Path:
        return self.shared / f"synth-{preset}-{n}-{'x'.join(map(str, shape))}-{seed}"

    def scores(self, preset: str, **kwargs: Any) -> pd.DataFrame:
        root = self.root(preset, **kwargs)
        table = root.with_suffix(".csv")
        with locked(root.with_suffix(".lock")):
            if not table.exists():
                args = {"n": MEASURED_N, "shape": MEASURED_SHAPE, "seed": 0, **kwargs}
                make_cohort(
                    root,
                    n_cases=args["n"],
                    shape=args["shape"],
                    preset=preset,
                    seed=args["seed"],
                    overwrite=True,
                    # under xdist the other core is busy with other tests already
                    workers=1 if os.environ.get("PYTEST_XDIST_WORKER") else 2,
                )
                measure(root).to_csv(root.with_suffix(".tmp"), index=False)
                os.replace(root.with_suffix(".tmp"), table)
        return pd.read_csv(table)

    def table(self, preset: str) -> pd.DataFrame:
        self.scores(preset)
        return pd.read_csv(self.root(preset) / synth.TABLE_CSV)


@pytest.fixture(scope="session")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    # Under xdist every worker has its own basetemp; their parent is shared by the whole run.
    base = tmp_path_factory.getbasetemp()
    shared = HAVE_FLOCK and os.environ.get("PYTEST_XDIST_WORKER")
    return Measured(base.parent if shared else base)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_cohort(tmp_path / "tiny", n_cases=6, shape=TINY, preset="hidden", seed=3).parent


# --- determinism -------------------------------------------------------------------------------


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    a = make_cohort(tmp_path / "a", n_cases=5, shape=SMALL, seed=7).parent
    b = make_cohort(tmp_path / "b", n_cases=5, shape=SMALL, seed=7).parent
    fa, fb = files(a), files(b)
    assert fa.keys() == fb.keys()
    different = [name for name in fa if fa[name] != fb[name]]
    assert different == []


def test_a_different_seed_writes_a_different_cohort(tmp_path: Path) -> None:
    a = make_cohort(tmp_path / "a", n_cases=5, shape=SMALL, seed=1).parent
    b = make_cohort(tmp_path / "b", n_cases=5, shape=SMALL, seed=2).parent
    ta = pd.read_csv(a / synth.TABLE_CSV)
    tb = pd.read_csv(b / synth.TABLE_CSV)
    assert not ta.equals(tb)
    first_a = sorted((a / ROLES["expert"]).iterdir())[0]
    first_b = sorted((b / ROLES["expert"]).iterdir())[0]
    assert not np.array_equal(load_mask(first_a).array, load_mask(first_b).array)


def test_a_case_does_not_depend_on_the_number_of_cases_or_the_worker_count(
    tmp_path: Path,
) -> None:
    few = make_cohort(tmp_path / "few", n_cases=4, shape=SMALL, seed=5).parent
    many = make_cohort(tmp_path / "many", n_cases=9, shape=SMALL, seed=5, workers=2).parent
    ids = pd.read_csv(few / synth.TABLE_CSV)["patient_id"].tolist()
    assert pd.read_csv(many / synth.TABLE_CSV)["patient_id"].tolist()[:4] == ids
    for folder in ROLES.values():
        for case_id in ids:
            name = f"{folder}/{case_id}.nii.gz"
            assert (few / name).read_bytes() == (many / name).read_bytes(), name


def test_the_workbook_is_byte_identical_across_runs_despite_its_timestamps(
    tmp_path: Path,
) -> None:
    a = make_cohort(tmp_path / "a", n_cases=3, shape=TINY).parent / synth.TABLE_XLSX
    b = make_cohort(tmp_path / "b", n_cases=3, shape=TINY).parent / synth.TABLE_XLSX
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


# --- files and metadata ----------------------------------------------------------------------


def test_the_cohort_has_the_mama_mia_layout(tiny: Path) -> None:
    ids = pd.read_csv(tiny / synth.TABLE_CSV)["patient_id"].tolist()
    for folder in ROLES.values():
        assert sorted(p.name for p in (tiny / folder).iterdir()) == sorted(
            f"{i}.nii.gz" for i in ids
        )
    assert {p.name for p in tiny.iterdir()} == {
        "segmentations",
        "predictions",
        "clinical_and_imaging_info.xlsx",
        "clinical_and_imaging_info.csv",
        "segfair.toml",
        "segfair_synth.json",
    }


def test_masks_round_trip_through_nibabel_with_the_anisotropic_flipped_affine(
    tmp_path: Path,
) -> None:
    root = make_cohort(
        tmp_path / "c", n_cases=2, shape=(20, 18, 12), spacing=(0.8, 0.6, 2.0)
    ).parent
    for folder in ROLES.values():
        for path in (root / folder).iterdir():
            img = nib.load(path)
            assert isinstance(img, nib.Nifti1Image)
            assert img.shape == (20, 18, 12)
            assert img.get_data_dtype() == np.uint8
            assert np.allclose(img.header.get_zooms(), (0.8, 0.6, 2.0))
            # LPS → RAS: the first two axes run backwards, as scanners' NIfTI exports do
            assert np.allclose(np.diag(img.affine)[:3], (-0.8, -0.6, 2.0))
            assert np.allclose(img.get_qform(), img.get_sform())
            assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1}
            mask = load_mask(path)
            assert mask.spacing == pytest.approx((0.8, 0.6, 2.0))
    expert = sorted((root / ROLES["expert"]).iterdir())
    assert all(load_mask(p).array.any() for p in expert)


def test_the_clinical_table_is_the_same_in_xlsx_and_csv(tiny: Path) -> None:
    xlsx = pd.read_excel(tiny / synth.TABLE_XLSX, sheet_name="dataset_info")
    csv = pd.read_csv(tiny / synth.TABLE_CSV)
    assert list(xlsx.columns) == [
        "patient_id",
        "dataset",
        "age",
        "ethnicity",
        "menopause",
        "manufacturer",
        "field_strength",
    ]
    pd.testing.assert_frame_equal(xlsx, csv, check_dtype=False)


def test_patient_ids_carry_their_site_prefix_and_are_unique(measured: Measured) -> None:
    table = measured.table("null")
    formats = {
        "DUKE": r"DUKE_\d{3}",
        "ISPY1": r"ISPY1_1\d{3}",
        "ISPY2": r"ISPY2_1\d{5}",
        "NACT": r"NACT_\d{2}",
    }
    for pid, site in zip(table["patient_id"], table["dataset"], strict=True):
        assert re.fullmatch(formats[site], pid), (pid, site)
    assert table["patient_id"].is_unique


def test_ages_ethnicities_sites_and_scanners_mix_like_mama_mia(measured: Measured) -> None:
    table = measured.table("null")
    n = len(table)
    shares = age_group(table["age"]).value_counts(normalize=True)
    # ±3 binomial standard errors at n = 300
    for group, expected in {"young": 0.23, "middle": 0.50, "older": 0.27}.items():
        assert shares[group] == pytest.approx(expected, abs=3 * math.sqrt(0.25 / n))
    ethnicity = table["ethnicity"].value_counts(normalize=True, dropna=False)
    assert ethnicity["white"] == pytest.approx(0.75 * 0.985, abs=0.08)
    assert ethnicity["african american"] == pytest.approx(0.16, abs=0.06)
    assert 0 < table["ethnicity"].isna().sum() < 0.08 * n  # the audit's "unknown" group
    sites = table["dataset"].value_counts(normalize=True)
    assert sites.idxmax() == "ISPY2"
    assert sites["NACT"] < 0.1
    assert set(table["field_strength"]) <= {1.5, 3.0}
    assert set(table.loc[table["dataset"] == "NACT", "manufacturer"]) <= {"GE"}


def test_menopause_follows_age(measured: Measured) -> None:
    table = measured.table("null")
    assert set(table.loc[table["age"] < 45, "menopause"]) == {"pre"}
    assert set(table.loc[table["age"] > 56, "menopause"]) == {"post"}
    assert set(table["menopause"]) == {"pre", "peri", "post"}


def test_the_config_is_the_documented_toml(tiny: Path) -> None:
    config = tomllib.loads((tiny / "segfair.toml").read_text())
    assert config["cases"] == "clinical_and_imaging_info.xlsx"
    assert config["sheet"] == "dataset_info"
    assert config["case_id"] == "patient_id"
    assert config["trusted_ruler"] == "expert"
    assert config["seed"] == 3
    assert config["rulers"] == {
        "expert": "segmentations/expert/{case_id}.nii.gz",
        "automated": "segmentations/automatic/{case_id}.nii.gz",
    }
    assert config["models"] == {
        "trained_on_expert": "predictions/trained_on_expert/{case_id}.nii.gz",
        "trained_on_automated": "predictions/trained_on_automated/{case_id}.nii.gz",
    }
    assert config["attributes"] == {
        "age_group": {"column": "age", "bins": [40, 55], "labels": ["young", "middle", "older"]},
        "ethnicity": {"column": "ethnicity"},
        "site": {"column": "dataset"},
    }
    common = {"metric": "dice", "by": "age_group", "model": "trained_on_automated"}
    assert config["gates"] == [
        {"kind": "gap", **common, "ruler": "expert", "max": 0.05},
        {"kind": "ruler_shrinkage", **common, "automated": "automated", "max": 0.25},
        {"kind": "amplification", **common, "baseline": "trained_on_expert", "max": 0.25},
    ]


def test_the_manifest_records_the_recipe_including_overridden_effects(tmp_path: Path) -> None:
    root = make_cohort(
        tmp_path / "c", n_cases=2, shape=TINY, preset="parikh", seed=4, label_noise=0.05
    ).parent
    recipe = json.loads((root / synth.MANIFEST).read_text())
    assert recipe["preset"] == "parikh"
    assert recipe["seed"] == 4
    assert recipe["shape"] == list(TINY)
    assert recipe["effects"] == {**PRESETS["parikh"], "label_noise": 0.05}


# --- validation --------------------------------------------------------------------------------


def test_an_unknown_effect_is_refused_with_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown effect") as info:
        make_cohort(tmp_path, n_cases=1, shape=TINY, age_gap=0.1)
    assert "age_gap" in str(info.value)
    assert all(name in str(info.value) for name in EFFECTS)
    assert not any(tmp_path.iterdir())


def test_an_effect_outside_its_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label_noise"):
        make_cohort(tmp_path, n_cases=1, shape=TINY, label_noise=-1.0)
    with pytest.raises(ValueError, match="youth_age_young"):
        make_cohort(tmp_path, n_cases=1, shape=TINY, youth_age_young=60.0, youth_age_old=50.0)


def test_an_unknown_preset_is_refused_with_the_valid_values(tmp_path: Path) -> None:
    expected = (
        "preset must be one of 'null', 'hidden', 'parikh', 'brats', 'multifocal', 'dermoscopy'; "
        "got 'fair'"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        make_cohort(tmp_path, n_cases=1, shape=TINY, preset="fair")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_cases": 0}, "n_cases"),
        ({"n_cases": 2.5}, "n_cases"),
        ({"shape": (16, 16)}, "shape"),
        ({"shape": (16, 0, 16)}, "shape"),
        ({"shape": (16, 16.5, 16)}, "shape"),
        ({"spacing": (0.7, -0.7, 1.5)}, "spacing"),
        ({"spacing": (0.7, float("nan"), 1.5)}, "spacing"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_invalid_sizes_and_counts_are_refused(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"n_cases": 1, "shape": TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_cohort(tmp_path / "c", **args)


def test_a_foreign_non_empty_directory_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_cohort(tmp_path, n_cases=1, shape=TINY)
    make_cohort(tmp_path, n_cases=1, shape=TINY, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "segfair.toml").is_file()


def test_an_earlier_synth_output_is_replaced_without_stale_cases(tmp_path: Path) -> None:
    make_cohort(tmp_path, n_cases=6, shape=TINY, seed=1)
    make_cohort(tmp_path, n_cases=2, shape=TINY, seed=2)
    ids = set(pd.read_csv(tmp_path / synth.TABLE_CSV)["patient_id"])
    for folder in ROLES.values():
        assert {p.name.removesuffix(".nii.gz") for p in (tmp_path / folder).iterdir()} == ids


def test_a_directory_left_by_an_interrupted_run_is_recognised_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(tasks: list[Any]) -> int:
        _run_task(tasks[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(synth_writer, "_run_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_cohort(tmp_path, n_cases=5, shape=TINY, seed=1)
    assert json.loads((tmp_path / synth.MANIFEST).read_text())["complete"] is False
    monkeypatch.undo()
    make_cohort(tmp_path, n_cases=2, shape=TINY, seed=2)
    ids = set(pd.read_csv(tmp_path / synth.TABLE_CSV)["patient_id"])
    for folder in ROLES.values():
        assert {p.name.removesuffix(".nii.gz") for p in (tmp_path / folder).iterdir()} == ids
    assert json.loads((tmp_path / synth.MANIFEST).read_text())["complete"] is True


def test_the_output_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    config = make_cohort(tmp_path / "a" / "b", n_cases=1, shape=TINY)
    assert config == tmp_path / "a" / "b" / "segfair.toml"


def test_a_sixteen_voxel_volume_still_holds_a_lesion_in_every_case(tmp_path: Path) -> None:
    root = make_cohort(tmp_path, n_cases=12, shape=TINY, preset="hidden").parent
    for path in (root / ROLES["expert"]).iterdir():
        assert load_mask(path).array.any()


# --- effects and presets -----------------------------------------------------------------------


def test_every_effect_has_a_default_a_description_and_bounds() -> None:
    for name, effect in EFFECTS.items():
        assert effect.low <= effect.default <= effect.high, name
        assert effect.description, name


def test_every_preset_sets_every_effect_and_documents_what_it_promises() -> None:
    assert set(PRESETS) == {"null", "hidden", "parikh"}
    for name, preset in PRESETS.items():
        assert set(preset) == set(EFFECTS), name
        assert preset.promises, name
        assert "Promises" in (preset.__doc__ or ""), name
        for promise in preset.promises:
            assert promise.quantity in (preset.__doc__ or "")


def test_the_null_preset_has_no_link_from_age_to_morphology() -> None:
    null = PRESETS["null"]
    assert null["young_volume_ratio"] == null["young_volume_var_ratio"] == 1.0
    assert null["young_lobulation"] == null["young_spicules"] == null["young_satellites"] == 0.0


def test_age_reaches_the_masks_only_through_the_lesion() -> None:
    # With the age → morphology link cut, a 25- and a 75-year-old with the same random draws get
    # the same lesion, hence — since nothing downstream sees age — the same labels and predictions.
    world = _resolve_world("null", {})
    young = _simulate(0, 3, 25, world, SMALL, (0.7, 0.7, 1.5))
    older = _simulate(0, 3, 75, world, SMALL, (0.7, 0.7, 1.5))
    for role in ROLES:
        assert np.array_equal(getattr(young, role), getattr(older, role)), role


@pytest.mark.parametrize("preset", ["null", "hidden", "parikh"])
def test_each_preset_lands_in_the_ranges_it_promises(measured: Measured, preset: str) -> None:
    promises = [
        p
        for p in PRESETS[preset].promises
        if p.n_cases <= MEASURED_N and tuple(p.shape) == MEASURED_SHAPE
    ]
    assert promises, f"{preset} promises nothing at n={MEASURED_N}, shape {MEASURED_SHAPE}"
    summary = summarise(measured.scores(preset))
    misses = [
        f"{p.quantity} = {summary[p.quantity]:.3f} not in [{p.low}, {p.high}]"
        for p in promises
        if not p.low <= summary[p.quantity] <= p.high
    ]
    assert misses == []


def test_dice_has_a_realistic_spread_across_cases(measured: Measured) -> None:
    scores = measured.scores("hidden")
    for col in ("trained_on_expert|expert", "trained_on_automated|expert"):
        assert 0.08 <= scores[col].std() <= 0.2, col
        assert 0.6 <= scores[col].mean() <= 0.85, col


def test_young_patients_have_larger_lesions_and_only_where_age_is_linked(
    measured: Measured,
) -> None:
    def ratio(preset: str) -> float:
        volumes = measured.scores(preset).groupby("age_group")["volume_mm3"].mean()
        return float(volumes["young"] / volumes["older"])

    # published: +66% mean volume; at n = 300 the ratio of means is known to about ±25%
    assert 1.3 <= ratio("hidden") <= 2.2
    assert 0.75 <= ratio("null") <= 1.3


def test_automated_labels_are_worse_for_young_patients_through_morphology(
    measured: Measured,
) -> None:
    for preset in ("hidden", "parikh"):
        label = measured.scores(preset).groupby("age_group")["automated|expert"].mean()
        assert label["young"] < label["middle"] < label["older"], preset
    null = measured.scores("null").groupby("age_group")["automated|expert"].mean()
    assert null.max() - null.min() < 0.01


def test_the_hidden_preset_shows_a_smaller_gap_on_automated_labels(
    measured: Measured,
) -> None:
    summary = summarise(measured.scores("hidden"))
    on_expert = summary["gap(trained_on_automated|expert)"]
    on_automated = summary["gap(trained_on_automated|automated)"]
    assert on_automated < 0.75 * on_expert


def kruskal_by_age(scores: pd.DataFrame, column: str) -> float:
    samples = [scores.loc[scores["age_group"] == g, column] for g in GROUPS]
    return float(stats.kruskal(*samples).pvalue)


NULL_SEEDS = (11, 12, 13)
NULL_N = 100


def null_cohorts(measured: Measured) -> Iterator[pd.DataFrame]:
    yield measured.scores("null")
    for seed in NULL_SEEDS:
        yield measured.scores("null", n=NULL_N, shape=SMALL, seed=seed)


@pytest.mark.parametrize(
    "column",
    ["trained_on_expert|expert", "trained_on_automated|expert", "trained_on_automated|automated"],
)
def test_the_null_preset_shows_no_age_effect_across_seeds(measured: Measured, column: str) -> None:
    # Kruskal–Wallis of Dice across the age groups in four independent null cohorts, combined
    # with Fisher's method: under no effect the p-values are uniform, so with these fixed seeds
    # neither the combination nor any single one may be small.
    pvalues = [kruskal_by_age(scores, column) for scores in null_cohorts(measured)]
    combined = stats.combine_pvalues(pvalues, method="fisher").pvalue
    assert combined > 0.01, pvalues
    assert min(pvalues) > 0.01 / len(pvalues), pvalues


def test_the_same_age_test_detects_the_hidden_presets_gap(
    measured: Measured,
) -> None:
    # the null test above is not vacuous: at the same size it sees the hidden preset's gap
    assert kruskal_by_age(measured.scores("hidden"), "trained_on_automated|expert") < 1e-3
