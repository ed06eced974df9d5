"""The metadata table is read as written: nothing is turned into something else without a word
(issue 16, "metadata read wrong, silently")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import Repo

from segfair.cohort import load_cohort
from segfair.cohort.config import parse_config
from segfair.errors import CohortError, ConfigError


def _rewrite(repo: Repo, **columns: list[object]) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object, keep_default_na=False)
    for name, values in columns.items():
        table[name] = values + list(table[name])[len(values) :]
    table.to_csv(repo.root / "cases.csv", index=False)


def test_na_none_and_null_in_a_text_column_are_categories_as_written(repo: Repo) -> None:
    _rewrite(repo, ethnicity=["NA", "None", "null", ""])
    groups = load_cohort(repo.config_path).groups["ethnicity"]
    first = [str(groups[cid]) for cid in repo.case_ids[:4]]
    assert first == ["NA", "None", "null", "unknown"]


def test_na_in_a_numeric_column_is_a_missing_value(repo: Repo) -> None:
    _rewrite(repo, age=["NA", "n/a", "null"])
    groups = load_cohort(repo.config_path).groups["age_group"]
    assert [str(groups[cid]) for cid in repo.case_ids[:3]] == ["unknown"] * 3


def test_a_spreadsheet_true_in_an_age_column_is_not_age_1(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table["age"] = table["age"].astype(object)
    table.loc[0, "age"] = True
    table.to_excel(repo.root / "cases.xlsx", index=False)
    repo.write_config(cases="cases.xlsx")
    with pytest.raises(CohortError, match="non-numeric value True") as info:
        load_cohort(repo.config_path)
    assert info.value.problems[0].case_id == repo.case_ids[0]


def test_an_xlsx_formula_without_a_computed_value_is_refused_not_read_as_unknown(
    repo: Repo,
) -> None:
    import openpyxl

    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table.to_excel(repo.root / "cases.xlsx", index=False)
    wb = openpyxl.load_workbook(repo.root / "cases.xlsx")
    wb.active["C2"] = "=B3"  # openpyxl writes formulas without a cached value
    wb.save(repo.root / "cases.xlsx")
    repo.write_config(cases="cases.xlsx")
    with pytest.raises(ConfigError, match="formula cell") as info:
        load_cohort(repo.config_path)
    assert "C2" in str(info.value)


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_column_named_twice_is_refused(repo: Repo, suffix: str) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table.insert(len(table.columns), "age_again", table["ethnicity"])
    table.columns = [*table.columns[:-1], "age"]
    path = repo.root / f"dup.{suffix}"
    if suffix == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_excel(path, index=False)
    repo.write_config(cases=path.name)
    with pytest.raises(ConfigError, match="names column 'age' 2 times"):
        load_cohort(repo.config_path)


def test_case_ids_that_differ_only_in_letter_case_are_refused(repo: Repo) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table.loc[1, "case_id"] = repo.case_ids[0].lower()
    table.to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError, match="differ only in letter case"):
        load_cohort(repo.config_path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["young", "young", "older"], "name several bins"),
        (["young", "unknown", "older"], "also the missing_label"),
    ],
)
def test_bin_labels_that_would_merge_groups_are_refused(
    tmp_path: Path, labels: list[str], message: str
) -> None:
    data = {
        "cases": "c.csv",
        "case_id": "id",
        "trusted_ruler": "e",
        "rulers": {"e": "{case_id}.nii"},
        "models": {"m": "p/{case_id}.nii"},
        "attributes": {"age_group": {"column": "age", "bins": [40, 55], "labels": labels}},
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(data, source=tmp_path / "segfair.toml")


def test_a_large_table_with_few_imaged_cases_counts_every_missing_file(repo: Repo) -> None:
    """Every row is checked and counted (the folders are listed once, not stat-ed per file)."""
    extra = [f"X{i:05d},50,white,A" for i in range(2_000)]
    with (repo.root / "cases.csv").open("a") as fh:
        fh.write("\n".join(extra) + "\n")
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    missing = [p for p in info.value.problems if p.kind == "missing files"]
    assert len(missing) == 3 * 2_000  # one prediction and two references per row
    assert {p.case_id for p in missing} == {f"X{i:05d}" for i in range(2_000)}
    assert len(str(info.value)) < 20_000  # listed in part, counted in full
