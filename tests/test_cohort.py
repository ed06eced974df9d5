"""Loading a cohort: metadata joined with mask sources, every problem reported at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AFFINE, Repo, write_nifti

from segfair.cohort import bin_labels, load_cohort, safe_case_id
from segfair.errors import CohortError, ConfigError


def test_a_valid_repository_loads_with_one_row_per_case(repo: Repo) -> None:
    cohort = load_cohort(repo.config_path)
    assert len(cohort) == 12
    assert cohort.case_ids == tuple(sorted(repo.case_ids))
    assert cohort.models == ("candidate",)
    assert cohort.rulers == ("expert", "automated")
    assert list(cohort.groups.columns) == ["age_group", "ethnicity"]
    assert list(cohort.groups["age_group"].cat.categories) == ["young", "middle", "older"]
    assert cohort.exclusions.empty


def test_a_folder_holding_the_config_loads_like_the_file(repo: Repo) -> None:
    assert load_cohort(repo.root).case_ids == load_cohort(repo.config_path).case_ids


def test_numeric_attributes_are_binned_with_edges_in_the_lower_bin(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    table["age"] = table["age"].astype(float)
    table.loc[0, "age"], table.loc[1, "age"], table.loc[2, "age"] = 40, 41, 55.5
    table.to_csv(repo.root / "cases.csv", index=False)
    groups = load_cohort(repo.config_path).groups["age_group"]
    ids = table["case_id"]
    assert groups[ids[0]] == "young"
    assert groups[ids[1]] == "middle"
    assert groups[ids[2]] == "older"


def test_missing_attribute_values_form_an_explicit_unknown_group(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    table["age"] = table["age"].astype(float)
    table.loc[3, "age"] = None
    table.loc[4, "ethnicity"] = None
    table.to_csv(repo.root / "cases.csv", index=False)
    cohort = load_cohort(repo.config_path)
    assert cohort.groups.loc[table["case_id"][3], "age_group"] == "unknown"
    assert cohort.groups.loc[table["case_id"][4], "ethnicity"] == "unknown"
    assert len(cohort) == 12  # nothing dropped


def test_default_bin_labels_read_as_intervals() -> None:
    assert bin_labels([40, 55]) == ["≤40", "40–55", ">55"]
    assert bin_labels([2.5]) == ["≤2.5", ">2.5"]


def test_non_numeric_ages_are_reported_with_their_case_ids(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    table["age"] = table["age"].astype(object)
    table.loc[5, "age"] = "forty"
    table.to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    text = str(info.value)
    assert "non-numeric attribute values (1)" in text
    assert f"case {table['case_id'][5]!r}" in text
    assert "'forty'" in text


def test_several_problems_are_reported_together_and_grouped(repo: Repo) -> None:
    ids = repo.case_ids
    repo.mask_path("model", "candidate", ids[0]).unlink()
    repo.mask_path("ruler", "automated", ids[1]).unlink()
    write_nifti(repo.mask_path("model", "candidate", ids[2]), np.zeros((16, 16, 9)))
    table = pd.read_csv(repo.root / "cases.csv")
    table = pd.concat([table, table.iloc[[3]]])
    table.to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    kinds = {p.kind for p in info.value.problems}
    assert kinds == {"duplicate case ids"}  # ids are checked before any file is looked at
    table.drop_duplicates().to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    by_kind = {p.kind: p for p in info.value.problems}
    assert set(by_kind) == {"missing files", "geometry mismatches"}
    assert len(info.value.problems) == 3
    text = str(info.value)
    assert "3 problems in the cohort" in text
    assert f"case {ids[0]!r}" in text
    assert f"case {ids[1]!r}" in text
    assert (
        "shapes (16, 16, 10) and (16, 16, 9) differ" in text
        or "shapes (16, 16, 9) and (16, 16, 10) differ" in text
    )
    assert by_kind["missing files"].fix is not None


def test_a_duplicate_case_id_is_named_with_its_count(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    pd.concat([table, table.iloc[[0, 0]]]).to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError, match=rf"case id '{repo.case_ids[0]}' appears 3 times"):
        load_cohort(repo.config_path)


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "..", ".hidden", "a\\b", " pad"])
def test_case_ids_that_could_escape_their_folder_are_refused(repo: Repo, bad: str) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    table.loc[0, "case_id"] = bad
    table.to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    assert [p.kind for p in info.value.problems] == ["unsafe case ids"]
    assert not safe_case_id(bad)


def test_a_missing_attribute_column_names_the_closest_column(repo: Repo) -> None:
    repo.config["attributes"]["age_group"]["column"] = "agee"
    repo.write_config()
    with pytest.raises(
        CohortError,
        match=r"column 'agee' \(attribute 'age_group'\) is not in the "
        r"metadata table \(did you mean 'age'\?\)",
    ):
        load_cohort(repo.config_path)


def test_a_missing_metadata_table_is_a_config_error(repo: Repo) -> None:
    (repo.root / "cases.csv").unlink()
    with pytest.raises(ConfigError, match=r"metadata table .* does not exist"):
        load_cohort(repo.config_path)


def test_an_xlsx_sheet_is_read_like_mama_mia_metadata(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv").rename(columns={"case_id": "patient_id"})
    table.to_excel(
        repo.root / "clinical_and_imaging_info.xlsx", sheet_name="dataset_info", index=False
    )
    repo.write_config(
        cases="clinical_and_imaging_info.xlsx", sheet="dataset_info", case_id="patient_id"
    )
    cohort = load_cohort(repo.config_path)
    assert cohort.case_ids == tuple(sorted(repo.case_ids))


def test_a_missing_xlsx_sheet_names_the_sheet(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv")
    table.to_excel(repo.root / "meta.xlsx", sheet_name="other", index=False)
    repo.write_config(cases="meta.xlsx", sheet="dataset_info")
    with pytest.raises(ConfigError, match="dataset_info"):
        load_cohort(repo.config_path)


def test_a_partial_ruler_turns_missing_files_into_counted_exclusions(repo: Repo) -> None:
    repo.config["rulers"]["expert"] = {"path": "labels/expert/{case_id}.nii.gz", "partial": True}
    repo.write_config()
    repo.mask_path("ruler", "expert", repo.case_ids[0]).unlink()
    cohort = load_cohort(repo.config_path)
    ex = cohort.exclusions
    assert ex.to_dict("records") == [
        {
            "case_id": repo.case_ids[0],
            "kind": "ruler",
            "source": "expert",
            "reason": "no label from this (partial) ruler",
        }
    ]
    assert ("ruler", "expert") not in cohort.available(repo.case_ids[0])


def test_missing_predictions_may_be_excluded_by_configuration(repo: Repo) -> None:
    repo.write_config(missing_predictions="exclude")
    repo.mask_path("model", "candidate", repo.case_ids[3]).unlink()
    cohort = load_cohort(repo.config_path)
    assert cohort.exclusions["reason"].tolist() == ["prediction file missing"]


def test_flipped_masks_are_accepted_when_reorientation_is_enabled(
    repo_factory: Callable[..., Repo],
) -> None:
    repo = repo_factory(n_cases=3)
    cid = repo.case_ids[0]
    path = repo.mask_path("model", "candidate", cid)
    import nibabel as nib

    data = np.asanyarray(nib.load(path).dataobj)
    flip = AFFINE.copy()
    flip[0, 0] = -flip[0, 0]
    flip[0, 3] = AFFINE[0, 0] * (data.shape[0] - 1)
    write_nifti(path, data[::-1], flip)
    with pytest.raises(CohortError, match="reorient = true"):
        load_cohort(repo.config_path)
    repo.write_config(reorient=True)
    assert len(load_cohort(repo.config_path)) == 3


def test_an_empty_table_is_an_empty_cohort_error(repo: Repo) -> None:
    (repo.root / "cases.csv").write_text("case_id,age,ethnicity,site\n")
    with pytest.raises(CohortError, match="empty cohort"):
        load_cohort(repo.config_path)


def test_a_file_promising_too_many_voxels_is_refused_up_front(repo: Repo) -> None:
    repo.write_config(max_voxels=100)
    with pytest.raises(CohortError, match="unreadable files"):
        load_cohort(repo.config_path)


def test_paths_resolve_relative_to_the_config_file_not_the_working_directory(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(load_cohort(repo.config_path)) == 12
