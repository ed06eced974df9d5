"""The example model repository in examples/ runs as a team would run it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# imported once here, outside pytester's sys.modules churn (scipy does not survive reloading)
import segfair.audit
import segfair.report  # noqa: F401
from segfair.synth import make_cohort

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "model-repo"


@pytest.fixture
def example(pytester: pytest.Pytester) -> Path:
    shutil.copytree(
        EXAMPLE,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("data", "reports", ".segfair_cache"),
    )
    # the stand-in the example's README and workflow write with `segfair synth`
    make_cohort(pytester.path / "data", n_cases=400, shape=(32, 32, 16), preset="null", seed=11)
    (pytester.path / "data" / "segfair.toml").unlink()
    return pytester.path


def test_the_example_repository_passes_its_gates_and_writes_its_reports(
    pytester: pytest.Pytester, example: Path
) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*5 gates passed, 1 inconclusive (not blocking)*"])
    # the amplification gate, undefined on a cohort without a gap, says so as a warning
    result.stdout.fnmatch_lines(["INCONCLUSIVE (warning) amplification*"])
    assert "precondition_not_met" in (example / "reports" / "fairness.md").read_text()
    for name in ("fairness.html", "fairness.json", "fairness.md"):
        assert (example / "reports" / name).is_file()


def test_the_example_workflow_uploads_the_report_even_when_a_gate_fails() -> None:
    workflow = (EXAMPLE / ".github" / "workflows" / "fairness.yml").read_text()
    upload = workflow[workflow.index("actions/upload-artifact") :]
    assert "if: always()" in workflow[workflow.index("Upload the audit report") :]
    assert "path: reports/" in upload
    assert "python -m pytest" in workflow
