"""Prediction-powered gates through the pytest plugin, the way users run it: a model repository
with a partial expert ruler, its configuration in ``pyproject.toml`` and no conftest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Repo, to_toml
from ppi_repos import PPI_GAP, make_partial_repo, without_a_complete_proxy

# pytester's in-process runs restore sys.modules afterwards; importing the numeric stack here,
# once, keeps it out of that churn (as tests/test_plugin.py does)
import segfair.audit
import segfair.report
import segfair.synth  # noqa: F401

pytest_plugins = ["pytester"]

ASSERTING = """
def test_the_prediction_powered_age_gap_is_small(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", ruler="expert",
                             max={max}, min_group_size=2, estimator="ppi")
"""


@pytest.fixture
def partial(pytester: pytest.Pytester) -> Repo:
    return make_partial_repo(pytester.path)


def _pyproject(repo: Repo, gates: list[dict[str, Any]], **settings: Any) -> None:
    """The configuration as ``[tool.segfair]`` of the project's pyproject.toml (no
    segfair.toml, no conftest.py)."""
    repo.config_path.unlink()
    text = to_toml({**repo.config, **settings, "gates": gates}, table="tool.segfair")
    (repo.root / "pyproject.toml").write_text('[project]\nname = "model"\n\n' + text)


def _report(pytester: pytest.Pytester) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((pytester.path / "out" / "r.json").read_text("utf-8"))
    return doc


def test_a_ppi_gap_gate_in_pyproject_passes_and_fails_as_its_interval_says(
    pytester: pytest.Pytester, partial: Repo
) -> None:
    _pyproject(partial, [{**PPI_GAP, "max": 0.9}, {**PPI_GAP, "by": "ethnicity", "max": 0.001}])
    assert not (pytester.path / "conftest.py").exists()
    result = pytester.runpytest("-v", "--segfair-json", "out/r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*segfair::gap[[]dice,age_group,candidate,expert,ppi[]] PASSED*",
            "*segfair::gap[[]dice,ethnicity,candidate,expert,ppi[]] FAILED*",
        ]
    )
    gates = {g["id"]: g for g in _report(pytester)["gates"]}
    fair = gates["gap[dice,age_group,candidate,expert,ppi]"]
    unfair = gates["gap[dice,ethnicity,candidate,expert,ppi]"]
    # the verdicts are what the prediction-powered intervals say
    assert fair["status"] == "passed"
    assert fair["upper"] <= 0.9
    assert unfair["status"] == ("failed" if unfair["lower"] > 0.001 else "inconclusive")
    for g in (fair, unfair):
        assert g["estimator"] == "ppi"
        [block] = g["prediction_powered"]
        assert block["proxy"] == "automated"
        assert block["gap"]["upper"] == pytest.approx(g["upper"])
        assert sum(r["n"] for r in block["groups"]) == 24  # two cases in three labelled
        assert sum(r["n_all"] for r in block["groups"]) == 36


def test_an_assertion_with_estimator_ppi_passes_and_fails_as_its_interval_says(
    pytester: pytest.Pytester, partial: Repo
) -> None:
    _pyproject(partial, [])
    pytester.makepyfile(test_fair=ASSERTING.format(max=0.9))
    pytester.makepyfile(test_unfair=ASSERTING.format(max=0.001))
    result = pytester.runpytest("--segfair-json", "out/r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*gap[[]dice,age_group,candidate,expert,ppi[]]*"])
    gates = _report(pytester)["gates"]  # the same gate at two limits
    assert sorted(g["status"] for g in gates) == ["failed", "passed"]
    for g in gates:
        assert g["estimator"] == "ppi"
        assert g["prediction_powered"][0]["model"] == "candidate"
        assert g["status"] == ("passed" if g["upper"] <= g["threshold"] else "failed")


def test_the_report_header_names_the_runs_estimator_and_proxy(
    pytester: pytest.Pytester, partial: Repo
) -> None:
    _pyproject(partial, [{**PPI_GAP, "max": 0.9}], estimator="ppi", proxy="automated")
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(
        [
            "segfair: config *pyproject.toml, seed 0, 1 configured gate, "
            "estimator ppi (proxy automated)"
        ]
    )


@pytest.mark.parametrize(
    ("settings", "gate", "says"),
    [
        ({"estimator": "ppx"}, {}, "*estimator*'labelled' or 'ppi'*ppx*"),
        ({}, {"estimator": "ppx"}, "*estimator*'labelled' or 'ppi'*"),
        (
            {"proxy": "expert"},
            {},
            "*proxy = 'expert' must name a ruler other than*valid: automated*",
        ),
        ({"proxy": "nope"}, {}, "*proxy = 'nope' must name a ruler other than*valid: automated*"),
    ],
)
def test_a_bad_estimator_or_proxy_is_a_usage_error_listing_the_valid_values(
    pytester: pytest.Pytester,
    partial: Repo,
    settings: dict[str, Any],
    gate: dict[str, Any],
    says: str,
) -> None:
    _pyproject(partial, [{**PPI_GAP, "max": 0.9, **gate}], **settings)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([says])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_ppi_without_a_complete_ruler_fails_the_gate_saying_which_rulers_to_choose_from(
    pytester: pytest.Pytester, partial: Repo
) -> None:
    without_a_complete_proxy(partial)
    _pyproject(partial, [{**PPI_GAP, "max": 0.9}])
    result = pytester.runpytest()
    assert result.ret != pytest.ExitCode.OK
    text = result.stdout.str() + result.stderr.str()
    assert "no other ruler scores every case. Set proxy = one of: automated" in text
    assert "Traceback" not in text
