"""`segfair init` runs on repositories and datasets someone else wrote: their folder and column
names never become code or configuration structure (issue 16, the first severe finding)."""

from __future__ import annotations

import ast
import io
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_nifti

from segfair.cli import EXIT_OK, EXIT_USAGE, main

MARKER = "PWNED_BY_FOLDER_NAME"


def _dataset(root: Path, model_folder: str, extra: dict[str, list[object]] | None = None) -> Path:
    root.mkdir()
    table = {"patient_id": ["A_001", "A_002"], "age": [38, 61], "ethnicity": ["x", "y"]}
    pd.DataFrame({**table, **(extra or {})}).to_csv(root / "cases.csv", index=False)
    for folder in ("segmentations/expert", "segmentations/auto.v2", f"predictions/{model_folder}"):
        for cid in ("A_001", "A_002"):
            write_nifti(root / folder / f"{cid}.nii.gz", np.zeros((4, 4, 4)))
    return root


@pytest.mark.parametrize(
    "folder",
    [
        f'x", max=1); import os; os.environ.__setitem__("{MARKER}", "1"); ("',
        "m = 1\n[tool.evil]",
        "a#b",
        "x(y)",
    ],
)
def test_a_prediction_folder_whose_name_holds_code_is_refused_and_nothing_is_written(
    tmp_path: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _dataset(tmp_path / "repo", folder)
    code = main(["init", str(root)], stdout=io.StringIO())
    assert code == EXIT_USAGE
    assert "cannot name a ruler or a model" in capsys.readouterr().err
    assert not (root / "pyproject.toml").exists()
    assert not (root / "tests" / "test_fairness.py").exists()


def test_names_with_dots_and_odd_columns_are_written_as_literals_that_parse(
    tmp_path: Path,
) -> None:
    """A ruler named 'auto.v2' would be a dotted TOML key if written bare; a site column named
    with quotes and a newline is written as a TOML string. The files parse, and the generated
    test runs what it says and nothing else."""
    column = 'centre "A"\n= 1'
    root = _dataset(tmp_path / "repo", "unet-1.0", {column: ["s1", "s2"]})
    assert main(["init", str(root)], stdout=io.StringIO()) == EXIT_OK
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["segfair"]
    assert set(config["rulers"]) == {"expert", "auto.v2"}
    assert set(config["models"]) == {"unet-1.0"}
    assert set(config) <= {
        "cases",
        "case_id",
        "trusted_ruler",
        "seed",
        "cluster",
        "rulers",
        "models",
        "attributes",
        "gates",
        "html",
        "json",
        "md",
    }
    gates = config["gates"]
    assert {g["model"] for g in gates} == {"unet-1.0"}
    assert {g.get("automated") for g in gates} == {None, "auto.v2"}
    source = (root / "tests" / "test_fairness.py").read_text()
    tree = ast.parse(source)  # valid Python
    assert "unet-1.0" in ast.get_docstring(tree)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert all(name.isidentifier() for name in functions)


def test_a_name_with_a_trailing_newline_is_not_a_valid_name() -> None:
    from segfair.cohort.config import parse_config, valid_name
    from segfair.errors import ConfigError

    assert valid_name("expert")
    assert not valid_name("expert\n")
    data = {
        "cases": "c.csv",
        "case_id": "id",
        "trusted_ruler": "expert\n",
        "rulers": {"expert\n": "{case_id}.nii"},
        "models": {"m": "p/{case_id}.nii"},
    }
    with pytest.raises(ConfigError, match="may only hold letters"):
        parse_config(data)
