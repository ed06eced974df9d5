"""Issue 15's road, as a newcomer walks it: a fresh cohort in the MAMA-MIA layout,
``segfair init``, ``segfair audit``, then ``pytest`` in the same folder."""

from __future__ import annotations

import io
import json

import pytest

from segfair.cli import EXIT_FAILED, EXIT_OK, main

pytest_plugins = ["pytester"]


def test_init_then_audit_exits_1_on_a_real_gap_and_pytest_reports_the_same_gates(
    pytester: pytest.Pytester,
) -> None:
    from segfair.synth import make_cohort

    root = pytester.path
    # the 'hidden' preset: the model trained on automated labels is worse for the young, by more
    # than init's default limit of 0.05 on the Dice gap (0.12 [0.065, 0.215] on this cohort)
    make_cohort(root, n_cases=120, shape=(24, 24, 12), preset="hidden", seed=0)
    (root / "segfair.toml").unlink()  # a fresh cohort: only the data, in the MAMA-MIA layout
    out = io.StringIO()
    assert main(["init", str(root)], stdout=out) == EXIT_OK, out.getvalue()
    out = io.StringIO()
    code = main(["audit", "--config", str(root), "--workers", "1"], stdout=out)
    assert code == EXIT_FAILED, out.getvalue()
    audited = json.loads((root / "reports" / "fairness.json").read_text())
    by_audit = {g["id"]: g["status"] for g in audited["gates"]}
    assert "failed" in by_audit.values()
    assert "gap[dice,age_group,trained_on_automated,expert]" in by_audit

    (root / "reports" / "fairness.json").unlink()
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tested = json.loads((root / "reports" / "fairness.json").read_text())
    by_pytest = {g["id"]: g["status"] for g in tested["gates"] if g["id"] in by_audit}
    assert by_pytest == by_audit  # the same gates, the same verdicts
    for gate_id, status in by_audit.items():
        word = status.upper()
        result.stdout.fnmatch_lines([f"{word} {gate_id.replace('[', '[[]')}*"])
