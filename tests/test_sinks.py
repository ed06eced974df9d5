"""Text from data is inert wherever segfair writes it (issue 16, "injection into CI output")."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from conftest import Repo
from hypothesis import given
from hypothesis import strategies as st

from segfair.cli import EXIT_USAGE, main
from segfair.report import md_escape
from segfair.sinks import for_markdown_text, for_terminal


def test_escape_sequences_and_bidi_overrides_are_shown_not_obeyed() -> None:
    assert for_terminal("a\x1b[8mhidden\x1b]8;;http://x\x07link") == (
        "a\\x1b[8mhidden\\x1b]8;;http://x\\x07link"
    )
    assert for_terminal("evil\u202eexe.txt") == "evil\\u202eexe.txt"
    assert for_terminal("carriage\rreturn") == "carriage\\x0dreturn"
    assert for_terminal("two\nlines\tand a tab") == "two\nlines\tand a tab"


@pytest.mark.parametrize(
    "line", ["::add-mask::secret", "  ::warning::x", "::stop-commands::token", "\t::error::x"]
)
def test_no_line_from_data_can_start_a_workflow_command(line: str) -> None:
    out = for_terminal("group label\n" + line)
    assert not any(ln.lstrip().startswith("::") for ln in out.splitlines())


@given(st.text())
def test_any_text_leaves_no_control_character_and_no_command_line(text: str) -> None:
    out = for_terminal(text)
    assert not any(ln.lstrip().startswith("::") for ln in out.splitlines())
    assert all(c in "\n\t" or (ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F) for c in out)


def test_bare_links_in_markdown_are_not_clickable() -> None:
    assert "https://" not in md_escape("see https://evil.example/x")
    assert "www.evil" not in md_escape("www.evil.example")
    assert for_markdown_text("a\x1b[31mred") == "a\\x1b[31mred"


def test_a_hostile_column_name_in_an_error_reaches_stderr_inert(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object)
    table.insert(0, "x\n::add-mask::secret\x1b]8;;http://evil\x07", "v")
    table.to_csv(repo.root / "cases.csv", index=False)
    attributes = dict(repo.config["attributes"])
    attributes["sex"] = {"column": "sexx"}
    gate = {"kind": "gap", "metric": "dice", "by": "age_group", "model": "candidate", "max": 0.5}
    repo.write_config(attributes=attributes, gates=[gate])
    code = main(["audit", "--config", str(repo.config_path)], stdout=io.StringIO())
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "sexx" in err
    assert not any(ln.lstrip().startswith("::") for ln in err.splitlines())
    assert "\x1b" not in err


def test_an_annotation_carries_no_escape_sequence_from_data() -> None:
    from segfair.report import github_annotations

    gate = {"id": "gap[dice,age]", "status": "failed", "ok": False, "message": "a\x1b]8;;u\x07b"}
    (line,) = github_annotations({"gates": [gate]})
    assert "\x1b" not in line
    assert "\x07" not in line
