"""The CLI refuses what it cannot do with exit 2 and a message (issue 16): outputs that are the
wrong kind of file, baselines that are not reports, cells a spreadsheet would run."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import Repo

from segfair.cli import EXIT_USAGE, main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args, stdout=io.StringIO())
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_segfair_plan_out_a_folder_exits_2_before_any_work(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["plan", "--config", str(repo.config_path), "--out", str(tmp_path)], capsys)
    assert code == EXIT_USAGE
    assert "is a folder" in err


def test_segfair_demo_out_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    code, err = _run(["demo", "--out", str(file), "--n-cases", "5"], capsys)
    assert code == EXIT_USAGE
    assert "is a file" in err
    assert file.read_text() == "not a folder"


def _baseline_run(
    repo: Repo, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    repo.write_config(
        gates=[
            {
                "kind": "no_regression",
                "metric": "dice",
                "by": "age_group",
                "model": "candidate",
                "max_increase": 0.05,
            }
        ]
    )
    return _run(["audit", "--config", str(repo.config_path), "--baseline", str(baseline)], capsys)


def test_a_baseline_that_is_a_fifo_is_refused_without_blocking(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "baseline.json"
    os.mkfifo(fifo)
    done: list[tuple[int, str]] = []
    worker = threading.Thread(target=lambda: done.append(_baseline_run(repo, fifo, capsys)))
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader so the test process can end, then fail
        with open(fifo, "w") as f:
            f.write("{}")
        worker.join()
        pytest.fail("reading the baseline blocked on a FIFO")
    code, err = done[0]
    assert code == EXIT_USAGE
    assert "not a regular file" in err


def test_a_baseline_nested_200000_levels_is_refused_with_a_message(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    code, err = _baseline_run(repo, deep, capsys)
    assert code == EXIT_USAGE
    assert "nested too deeply" in err


def test_plan_csv_cells_a_spreadsheet_would_run_are_made_inert() -> None:
    from segfair.cli import _spreadsheet_safe

    table = pd.DataFrame(
        {
            "case_id": ["c1", "c2", "c3"],
            "group": ['=HYPERLINK("http://x","y")', "+1", "young"],
            "weight": [-1.5, 2.0, 3.0],
        }
    )
    safe = _spreadsheet_safe(table)
    assert list(safe["group"]) == ['\'=HYPERLINK("http://x","y")', "'+1", "young"]
    assert list(safe["weight"]) == [-1.5, 2.0, 3.0]  # numbers stay numbers
    assert table.loc[0, "group"].startswith("=")  # the caller's table is not changed
