"""Configured gates as pytest items: node ids anchored to the configuration file, counted in
"collected N items", selectable by node id; a gate checked twice is one gate."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import GAP_GATE, Repo, make_repo, to_toml

# imported once here, outside the sys.modules churn of pytester's in-process runs (scipy does not
# survive being half-unloaded)
import segfair.audit
import segfair.report  # noqa: F401

pytest_plugins = ["pytester"]

ETHNICITY_GATE = {**GAP_GATE, "by": "ethnicity"}
AGE_ID = "gap[dice,age_group,candidate,expert]"
ETHNICITY_ID = "gap[dice,ethnicity,candidate,expert]"

SAME_GATE_IN_A_TEST = """
def test_the_configured_age_gap_checked_again(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", ruler="expert",
                             max=0.9, min_group_size=2)

def test_plain():
    assert True
"""


@pytest.fixture
def segtester(pytester: pytest.Pytester) -> Repo:
    repo = make_repo(pytester.path, n_cases=24, young_penalty=1.5)
    repo.write_config(gates=[GAP_GATE, ETHNICITY_GATE])
    return repo


def as_pyproject(pytester: pytest.Pytester, repo: Repo) -> None:
    """The same repository configured in pyproject.toml, its tests under tests/ (testpaths):
    pytest does not walk past the configuration file."""
    repo.config_path.unlink()
    (pytester.path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n\n'
        + to_toml(repo.config, table="tool.segfair")
    )
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_fairness.py").write_text(SAME_GATE_IN_A_TEST)


def test_configured_gates_are_items_of_the_configuration_file_and_counted_as_collected(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_fairness=SAME_GATE_IN_A_TEST)
    result = pytester.runpytest("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*collected 4 items*"])
    out = result.stdout.str()
    assert f"segfair.toml::segfair::{AGE_ID} PASSED" in out
    assert f"segfair.toml::segfair::{ETHNICITY_ID} PASSED" in out
    assert "\n::segfair::" not in out


def test_in_pyproject_with_testpaths_the_gates_are_still_collected_and_counted(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    as_pyproject(pytester, segtester)
    result = pytester.runpytest("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*collected 4 items*"])
    assert f"pyproject.toml::segfair::{AGE_ID} PASSED" in result.stdout.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_gate_checked_by_the_configuration_and_a_test_is_listed_and_counted_once(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    pytester.makepyfile(test_fairness=SAME_GATE_IN_A_TEST)
    result = pytester.runpytest("--segfair-json", "r.json", "--segfair-md", "r.md", *xdist)
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert out.count(f"PASSED {AGE_ID}:") == 1
    result.stdout.fnmatch_lines(["2 gates passed", "segfair: PASSED — 2 gates passed"])
    doc = json.loads((pytester.path / "r.json").read_text())
    assert sorted(g["id"] for g in doc["gates"]) == [AGE_ID, ETHNICITY_ID]
    assert doc["verdict"]["counts"]["total"] == 2
    assert (pytester.path / "r.md").read_text().count(AGE_ID) == 1


def test_the_same_gate_id_with_another_limit_stays_as_other_evidence(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_fairness=SAME_GATE_IN_A_TEST.replace("max=0.9", "max=0.0001"))
    result = pytester.runpytest("--segfair-json", "r.json")
    result.assert_outcomes(passed=3, failed=1)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert sorted(g["id"] for g in doc["gates"]) == [AGE_ID, AGE_ID, ETHNICITY_ID]
    assert doc["verdict"]["counts"]["total"] == 3


def test_junit_names_the_configuration_file_as_the_class_of_its_gates(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    as_pyproject(pytester, segtester)
    pytester.runpytest("--junitxml", "junit.xml")
    cases = {
        (c.get("classname"), c.get("name"))
        for c in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    assert ("pyproject.toml.segfair", AGE_ID) in cases
    assert ("pyproject.toml.segfair", ETHNICITY_ID) in cases
    assert ("tests.test_fairness", "test_plain") in cases


@pytest.mark.parametrize("pyproject", [False, True], ids=["segfair.toml", "pyproject.toml"])
def test_a_gate_node_id_pasted_on_the_command_line_runs_that_gate_alone(
    pytester: pytest.Pytester, segtester: Repo, pyproject: bool
) -> None:
    if pyproject:
        as_pyproject(pytester, segtester)
    else:
        pytester.makepyfile(test_fairness=SAME_GATE_IN_A_TEST)
    name = "pyproject.toml" if pyproject else "segfair.toml"
    result = pytester.runpytest("-v", f"{name}::segfair::{ETHNICITY_ID}")
    result.assert_outcomes(passed=1)
    assert f"{name}::segfair::{ETHNICITY_ID} PASSED" in result.stdout.str()
    every_gate = pytester.runpytest("-v", name)
    every_gate.assert_outcomes(passed=2)


def test_a_gate_item_is_located_at_its_entry_in_the_configuration(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    as_pyproject(pytester, segtester)
    pytester.makeconftest(
        """
def pytest_collection_finish(session):
    with open("locations.txt", "w") as fh:
        for item in session.items:
            fh.write(f"{item.location[0]} {item.location[1]} {item.name}\\n")
"""
    )
    pytester.runpytest("--co")
    lines = (pytester.path / "pyproject.toml").read_text().splitlines()
    headers = [i for i, line in enumerate(lines) if line == "[[tool.segfair.gates]]"]
    located = (pytester.path / "locations.txt").read_text().splitlines()
    assert f"pyproject.toml {headers[0]} {AGE_ID}" in located
    assert f"pyproject.toml {headers[1]} {ETHNICITY_ID}" in located


def test_an_invalid_gate_stays_a_usage_error_when_the_gates_are_collected_after_the_tests(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.config["gates"] = [{**GAP_GATE, "maxx": 0.1}]
    as_pyproject(pytester, segtester)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gates*maxx*did you mean 'max'*"])
