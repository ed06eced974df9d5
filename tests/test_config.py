"""The configuration: where it is found, what it accepts, and how it explains a mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from segfair.config import UNKNOWN_KEY, find_config, load_config, parse_config
from segfair.errors import ConfigError

MINIMAL = {
    "cases": "cases.csv",
    "rulers": {"expert": "ref/{case_id}.nii.gz", "automated": "auto/{case_id}.nii.gz"},
    "models": {"candidate": "pred/{case_id}.nii.gz"},
}


def test_a_minimal_config_gets_documented_defaults() -> None:
    cfg = parse_config(MINIMAL, root="/repo")
    assert cfg.trusted_ruler == "expert"
    assert cfg.automated_rulers == ("automated",)
    assert cfg.labels == [1]
    assert cfg.hd95 == "max_directed"
    assert cfg.cap == 150.0
    assert cfg.min_group_size == 20
    assert cfg.rulers["expert"].path == "ref/{case_id}.nii.gz"
    assert cfg.resolve("cases.csv") == Path("/repo/cases.csv")


def test_a_typo_in_a_key_names_the_key_and_the_closest_valid_one() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "trusted_rular": "expert"}, prefix="tool.segfair")
    text = str(info.value)
    assert (
        "tool.segfair.trusted_rular: unknown key 'trusted_rular' (did you mean 'trusted_ruler'?)"
        in text
    )


def test_a_typo_inside_a_nested_table_is_found_with_its_full_key() -> None:
    data = {**MINIMAL, "attributes": {"age_group": {"colunm": "age"}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert "attributes.age_group.colunm: unknown key 'colunm' (did you mean 'column'?)" in str(
        info.value
    )
    assert UNKNOWN_KEY.split("{")[0] == "unknown key "


def test_every_problem_in_a_config_is_reported_at_once() -> None:
    data = {**MINIMAL, "sed": 1, "hd95": "mean", "n_boot": 3}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    text = str(info.value)
    assert "sed" in text
    assert "hd95" in text
    assert "n_boot" in text
    assert "'max_directed'" in text
    assert "'pooled'" in text


def test_a_trusted_ruler_that_is_not_configured_is_refused_with_the_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"trusted_ruler 'gold' is not among the configured "
        r"rulers \['automated', 'expert'\]",
    ):
        parse_config({**MINIMAL, "trusted_ruler": "gold"})


def test_a_path_template_without_the_case_id_placeholder_is_refused() -> None:
    data = {**MINIMAL, "models": {"candidate": "pred/all.nii.gz"}}
    with pytest.raises(ConfigError, match=r"must contain '\{case_id\}' exactly once"):
        parse_config(data)


def test_a_ruler_may_be_declared_partial_with_a_table() -> None:
    data = {
        **MINIMAL,
        "rulers": {
            "expert": {"path": "ref/{case_id}.nii.gz", "partial": True},
            "automated": "auto/{case_id}.nii.gz",
        },
    }
    cfg = parse_config(data)
    assert cfg.rulers["expert"].partial
    assert not cfg.rulers["automated"].partial


def test_bins_and_labels_must_agree_in_number() -> None:
    data = {
        **MINIMAL,
        "attributes": {"age": {"column": "age", "bins": [40, 55], "labels": ["young", "old"]}},
    }
    with pytest.raises(ConfigError, match="2 bin edges make 3 groups, but 2 labels were given"):
        parse_config(data)


def test_the_config_is_found_in_pyproject_under_tool_segfair(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.segfair]\ncases = "c.csv"\n'
        '[tool.segfair.rulers]\nexpert = "r/{case_id}.nii.gz"\n'
        '[tool.segfair.models]\nm = "p/{case_id}.nii.gz"\n'
    )
    cfg = load_config(tmp_path)
    assert cfg.root == tmp_path.resolve()
    assert cfg.models["m"].path == "p/{case_id}.nii.gz"


def test_segfair_toml_is_preferred_over_pyproject_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.segfair]\ncases = "x"\n')
    (tmp_path / "segfair.toml").write_text('cases = "y"\n')
    assert find_config(tmp_path).name == "segfair.toml"


def test_a_pyproject_without_a_segfair_table_is_not_a_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match="no segfair configuration found"):
        find_config(tmp_path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "segfair.toml"
    bad.write_text("cases = \n")
    with pytest.raises(ConfigError, match=r"segfair\.toml: not valid TOML"):
        load_config(bad)


def test_errors_in_pyproject_carry_the_tool_segfair_prefix(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.segfair]\ncases = "c.csv"\nseeed = 3\n'
        '[tool.segfair.rulers]\nexpert = "r/{case_id}"\n[tool.segfair.models]\nm = "p/{case_id}"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.key == "seeed"
    assert "tool.segfair.seeed: unknown key 'seeed' (did you mean 'seed'?)" in str(info.value)
