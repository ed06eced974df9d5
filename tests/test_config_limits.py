"""Settings that size memory or processes have bounds, and unreadable configurations are
refused with a message — never a traceback (issue 16, "tracebacks with exit 1")."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import Repo

from segfair.cli import EXIT_USAGE, main
from segfair.cohort import load_cohort
from segfair.cohort.config import MAX_N_BOOT, MAX_WORKERS, load_config
from segfair.errors import CohortError, ConfigError


def _audit(repo: Repo, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "--config", str(repo.config_path)], stdout=io.StringIO())
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("n_boot", 10**12, f"less than or equal to {MAX_N_BOOT}"),
        ("workers", 1_000_000, f"less than or equal to {MAX_WORKERS}"),
        ("seed", -1, "greater than or equal to 0"),
    ],
)
def test_a_setting_beyond_its_bound_exits_2_naming_the_key(
    repo: Repo, capsys: pytest.CaptureFixture[str], key: str, value: int, words: str
) -> None:
    repo.write_config(**{key: value})
    code, err = _audit(repo, capsys)
    assert code == EXIT_USAGE
    assert key in err
    assert words in err
    assert "Traceback" not in err


def test_a_toml_nested_thousands_of_levels_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "segfair.toml"
    path.write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)
    code = main(["audit", "--config", str(path)], stdout=io.StringIO())
    assert code == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_a_300_character_case_id_is_refused_as_unsafe_not_a_crash(repo: Repo) -> None:
    import pandas as pd

    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table.loc[0, "case_id"] = "a" * 300
    table.to_csv(repo.root / "cases.csv", index=False)
    with pytest.raises(CohortError) as info:
        load_cohort(repo.config_path)
    assert [p.kind for p in info.value.problems] == ["unsafe case ids"]
    assert "at most 128 characters" in str(info.value)


def test_workers_never_outnumber_the_cases(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    run = importlib.import_module("segfair.evaluate.run")

    seen: list[int] = []
    real = run._run

    def spy(tasks, executor, n_workers, update):  # type: ignore[no-untyped-def]
        seen.append(n_workers)
        return real(tasks, executor, 1, update)

    monkeypatch.setattr(run, "_run", spy)
    run.evaluate(load_cohort(repo.config_path), workers=200, cache=False)
    assert seen == [len(repo.case_ids)]
