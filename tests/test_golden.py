"""Fixed runs keep their reports: a refactoring that changes a report byte fails here.

The golden files are in ``tests/golden/``; ``python tests/golden_runs.py --write`` rewrites them
when a change of behaviour is intended (say so in the commit).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from golden_runs import RUNS, SUFFIXES, first_difference, golden_path, produce


@pytest.mark.parametrize("name", list(RUNS))
def test_a_fixed_run_writes_the_same_reports_as_its_golden_files(name: str, tmp_path: Path) -> None:
    reports = produce(name, tmp_path)
    for suffix in SUFFIXES:
        expected = golden_path(name, suffix).read_text(encoding="utf-8")
        actual = reports[suffix]
        assert actual == expected, first_difference(expected, actual, f"{name}.{suffix}")


def test_normalising_a_report_takes_out_only_its_time_and_folders(tmp_path: Path) -> None:
    from golden_runs import normalise

    text = f'{{"generated_at": "2026-01-02T03:04:05Z", "path": "{tmp_path}/a.nii.gz", "x": 1}}'
    assert (
        normalise(text, tmp_path) == '{"generated_at": "<time>", "path": "<root>/a.nii.gz", "x": 1}'
    )
