"""Loading a cohort: metadata joined with mask sources, every problem reported at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AFFINE, Repo, write_nifti

from segfair.cohort import (
    FEW_CLUSTERS,
    SegfairConfig,
    bin_labels,
    cluster_warnings,
    load_cohort,
    parse_config,
    safe_case_id,
    site_columns,
)
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


# ---- sites and clusters -----------------------------------------------------------------------


def _site_table(sites: dict[str, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metadata (one ``dataset`` per case) and groups (``age_group``) from group → sites."""
    rows = [(g, s) for g, ss in sites.items() for s in ss]
    index = pd.Index([f"c{i:03d}" for i in range(len(rows))], name="case_id")
    metadata = pd.DataFrame({"dataset": [s for _, s in rows]}, index=index)
    groups = pd.DataFrame(
        {"age_group": pd.Categorical([g for g, _ in rows], categories=list(sites))}, index=index
    )
    return metadata, groups


def _config(**keys: object) -> SegfairConfig:
    return parse_config(
        {"cases": "m.csv", "rulers": {"expert": "e/{case_id}.nii"}, "models": {"m": "p/{case_id}"}}
        | keys
    )


def test_columns_named_like_a_site_are_found_the_most_site_like_first() -> None:
    columns = ["age", "Manufacturer", "acquisition_site", "website", "centres", "ScannerModel"]
    assert site_columns(columns) == ["acquisition_site", "centres", "ScannerModel", "Manufacturer"]
    assert site_columns(columns, declared=["hosp"]) == ["hosp"]
    assert site_columns(columns, declared=[]) == []


def test_a_dataset_column_without_cluster_is_a_warning_that_says_how_to_set_it() -> None:
    metadata, groups = _site_table({"young": ["DUKE", "ISPY1"] * 5, "older": ["ISPY2"] * 10})
    (warning,) = cluster_warnings(_config(), metadata, groups)
    assert "'dataset' (3 values) looks like a site" in warning
    assert "the configuration sets no cluster" in warning
    assert 'cluster = "dataset"' in warning


def test_with_cluster_set_a_dataset_column_is_not_a_warning() -> None:
    sites = [f"S{i}" for i in range(10)]
    metadata, groups = _site_table({"young": sites * 2, "older": sites * 2})
    assert cluster_warnings(_config(cluster="dataset"), metadata, groups) == []


def test_a_site_column_of_one_value_or_one_per_case_is_no_warning() -> None:
    metadata, groups = _site_table({"young": ["DUKE"] * 5, "older": ["DUKE"] * 5})
    assert cluster_warnings(_config(), metadata, groups) == []
    metadata["dataset"] = [f"S{i}" for i in range(len(metadata))]
    assert cluster_warnings(_config(), metadata, groups) == []


def test_declaring_no_site_columns_silences_the_warning() -> None:
    metadata, groups = _site_table({"young": ["A", "B"] * 5, "older": ["A", "B"] * 5})
    assert cluster_warnings(_config(site_columns=[]), metadata, groups) == []
    metadata["hosp"] = metadata.pop("dataset")
    (warning,) = cluster_warnings(_config(site_columns=["hosp"]), metadata, groups)
    assert "'hosp' (2 values) looks like a site" in warning


def test_a_group_in_a_single_cluster_is_said_to_have_no_interval() -> None:
    metadata, groups = _site_table({"young": ["DUKE"] * 6, "older": ["ISPY1", "ISPY2"] * 3})
    single, few = cluster_warnings(_config(cluster="dataset"), metadata, groups)
    assert "group 'young' of 'age_group' lies in a single cluster" in single
    assert "no interval" in single
    assert "'older' 2" in few
    assert f"fewer than {FEW_CLUSTERS} clusters" in few


def test_a_handful_of_clusters_per_group_is_said_to_give_rough_intervals() -> None:
    metadata, groups = _site_table(
        {"young": ["A", "B", "C", "D"] * 3, "older": [f"S{i}" for i in range(FEW_CLUSTERS)]}
    )
    (warning,) = cluster_warnings(_config(cluster="dataset"), metadata, groups)
    assert "'young' 4" in warning
    assert "'older'" not in warning
    assert "rough intervals" in warning


def test_names_from_the_data_reach_a_warning_escaped() -> None:
    column = "site\n::error::forged\x1b[31m\u202e"
    metadata, groups = _site_table({"young": ["A", "B"] * 5, "older": ["A", "B"] * 5})
    metadata[column] = metadata.pop("dataset")
    (warning,) = cluster_warnings(_config(), metadata, groups)
    assert warning.isprintable()
    assert "\\n::error::forged\\x1b[31m\\u202e" in warning
    metadata = metadata.rename(columns={column: "dataset"})
    groups["age_group"] = groups["age_group"].cat.rename_categories(["young\r\n::x", "older"])
    metadata["dataset"] = ["A"] * 10 + ["A", "B"] * 5
    warnings = cluster_warnings(_config(cluster="dataset"), metadata, groups)
    assert warnings
    assert all(w.isprintable() for w in warnings)


def test_a_loaded_cohort_carries_its_site_warning(repo: Repo) -> None:
    # the repository's metadata table has a `site` column (A or B) and no cluster
    (warning,) = load_cohort(repo.config_path).warnings
    assert "'site' (2 values) looks like a site" in warning
    repo.write_config(cluster="site")
    assert not any("sets no cluster" in w for w in load_cohort(repo.config_path).warnings)


def test_a_declared_site_column_the_table_lacks_is_refused_naming_it(repo: Repo) -> None:
    repo.write_config(site_columns=["hospital"])
    with pytest.raises(CohortError, match=r"'hospital' \(site column\)"):
        load_cohort(repo.config_path)


def test_the_cluster_counts_a_warning_gives_are_those_the_bootstrap_resamples(repo: Repo) -> None:
    from segfair.session import SegfairSession

    repo.write_config(cluster="site")
    session = SegfairSession.from_path(repo.config_path, progress=False)
    (few,) = [w for w in session.warnings if "'age_group'" in w]
    grouping = session.audit.grouping("age_group")
    assert grouping.design.clustered
    for label, k in zip(grouping.labels, grouping.design.n_clusters, strict=True):
        assert f"{label!r} {int(k)}" in few
