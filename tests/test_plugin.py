"""The pytest plugin, tested the way users run it: a tiny model repository and pytest inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import GAP_GATE, Repo, make_repo

# pytester's in-process runs restore sys.modules afterwards; importing the numeric stack here,
# once, keeps it out of that churn (scipy does not survive being half-unloaded) and keeps runs fast
import segfair.audit
import segfair.report
import segfair.synth  # noqa: F401

pytest_plugins = ["pytester"]

FAILING_GAP = {**GAP_GATE, "max": 0.001}

TEST_FILE = """
def test_the_age_gap_on_expert_labels_is_small(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", ruler="expert",
                             max={max}, min_group_size=2)
"""


@pytest.fixture
def segtester(pytester: pytest.Pytester) -> Repo:
    """A model repository in pytester's folder, with a segfair.toml and no gates yet."""
    return make_repo(pytester.path, n_cases=24, young_penalty=1.5)


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "error")}


def test_a_configured_gate_that_holds_passes_as_a_test_item(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE])
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*segfair::gap[[]dice,age_group,candidate,expert[]] PASSED*",
            "*- segfair -*",
            "*PASSED gap[[]dice,age_group,candidate,expert[]]*",
            "*1 gate passed*",
        ]
    )
    assert result.ret == 0


def test_a_gap_above_the_threshold_fails_the_build_with_the_group_table(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[FAILING_GAP])
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    for word in ("young", "middle", "older", "0.001", "expert"):
        assert word in out


def test_a_repository_with_no_test_file_still_runs_its_configured_gates(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE, {**GAP_GATE, "by": "ethnicity"}])
    assert not list(pytester.path.glob("test_*.py"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_gate_items_can_be_selected_with_k_like_any_test(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE, {**FAILING_GAP, "by": "ethnicity"}])
    result = pytester.runpytest("-k", "age_group")
    result.assert_outcomes(passed=1)
    assert result.ret == 0


def test_assertion_helpers_pass_and_fail_like_pytest_assertions(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_fair=TEST_FILE.format(max=0.9))
    pytester.makepyfile(test_unfair=TEST_FILE.format(max=0.001))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "AssertionError" in out or "gap" in out
    assert "segfair/plugin.py" not in out  # __tracebackhide__ keeps the helper out


def test_a_typo_in_the_config_is_a_usage_error_naming_the_key(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[{**GAP_GATE, "maxx": 0.1}])
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gates*maxx*did you mean 'max'*"])


def test_the_report_header_shows_config_seed_and_gate_count(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE])
    result = pytester.runpytest("--segfair-seed", "7", "--co")
    result.stdout.fnmatch_lines(
        ["segfair: config *segfair.toml, seed 7, 1 configured gate, estimator labelled"]
    )


def test_a_bad_seed_option_lists_what_is_valid(pytester: pytest.Pytester, segtester: Repo) -> None:
    result = pytester.runpytest("--segfair-seed", "abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--segfair-seed expects a whole number, got 'abc'*"])


def test_reports_are_written_where_the_options_say(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE])
    result = pytester.runpytest(
        "--segfair-json", "out/r.json", "--segfair-md", "out/r.md", "--segfair-html", "out/r.html"
    )
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "out" / "r.json").read_text())
    assert [g["id"] for g in doc["gates"]] == ["gap[dice,age_group,candidate,expert]"]
    assert (pytester.path / "out" / "r.md").read_text().strip()
    assert "<html" in (pytester.path / "out" / "r.html").read_text().lower()


@pytest.mark.parametrize("xdist", [[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"])
def test_gates_and_assertions_are_reported_once_with_and_without_xdist(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    segtester.write_config(gates=[GAP_GATE, {**GAP_GATE, "by": "ethnicity"}])
    pytester.makepyfile(
        test_fair=TEST_FILE.format(max=0.9).replace(
            'by="age_group"', 'by="age_group", name="from_test"'
        )
    )
    result = pytester.runpytest("--segfair-json", "r.json", *xdist)
    result.assert_outcomes(passed=3)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert len(doc["gates"]) == 3
    assert result.stdout.str().count("- segfair -") == 1


def test_the_json_report_is_the_same_with_two_xdist_workers_as_without(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    # every section that depends on the gates (headline, labels needed, pairs) must see the
    # gates of every worker: the controller builds the report from the merged results
    segtester.write_config(gates=[GAP_GATE, {**GAP_GATE, "by": "ethnicity", "max": 0.0001}])
    pytester.makepyfile(test_fair=TEST_FILE.format(max=0.9))

    def run(name: str, *args: str) -> dict[str, Any]:
        pytester.runpytest("-p", "no:randomly", "--segfair-json", name, *args)
        doc = json.loads((pytester.path / name).read_text())
        doc.pop("generated_at")
        return doc

    assert run("serial.json", "-n", "0") == run("workers.json", "-n", "2")


def test_junit_xml_carries_the_numbers_of_each_gate(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE])
    pytester.runpytest("--junitxml", "junit.xml")
    tree = ET.parse(pytester.path / "junit.xml")
    props = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert props["segfair_status"] == "passed"
    assert float(props["segfair_threshold"]) == 0.9
    assert (
        float(props["segfair_lower"])
        <= float(props["segfair_estimate"])
        <= float(props["segfair_upper"])
    )


def test_in_github_actions_the_summary_is_appended_and_failures_annotated(
    pytester: pytest.Pytester, segtester: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    segtester.write_config(gates=[FAILING_GAP])
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "gap[dice,age_group,candidate,expert]" in text
    # attached to the gate's [[gates]] table in the configuration (issue 15)
    result.stdout.fnmatch_lines(
        ["::error file=segfair.toml,line=*,title=segfair gate failed*gap*::*"]
    )


def test_a_gap_that_grew_beyond_the_baseline_fails_the_no_regression_gate(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE])
    pytester.runpytest("--segfair-json", "baseline.json").assert_outcomes(passed=1)
    baseline = json.loads((pytester.path / "baseline.json").read_text())
    # pretend the last release had a much smaller gap than today's
    for gate in baseline["gates"]:
        gate["estimate"], gate["lower"], gate["upper"] = 0.0, 0.0, 0.0
    (pytester.path / "baseline.json").write_text(json.dumps(baseline))
    regression = {
        "kind": "no_regression",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "ruler": "expert",
        "max_increase": 0.0,
        "min_group_size": 2,
    }
    segtester.write_config(gates=[GAP_GATE, regression])
    result = pytester.runpytest("--segfair-baseline", "baseline.json")
    result.assert_outcomes(passed=1, failed=1)
    same = pytester.runpytest("--segfair-baseline", "baseline.json", "-k", "gap and not no_reg")
    same.assert_outcomes(passed=1)


def test_importing_the_plugin_does_not_import_the_numeric_stack() -> None:
    code = (
        "import sys, segfair.plugin, segfair; "
        "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'nibabel', 'jinja2', 'pydantic') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unconfigured_repository_gets_no_output_and_no_files(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    assert True\n")
    before = sorted(p.name for p in pytester.path.rglob("*"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "segfair:" not in out
    assert "- segfair -" not in out
    after = sorted(p.name for p in pytester.path.rglob("*") if "__pycache__" not in p.parts)
    assert [a for a in after if a != "__pycache__"] == [b for b in before if b != "__pycache__"]


def test_a_configured_repository_whose_fixtures_are_unused_and_without_gates_writes_nothing(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    assert True\n")
    before = {p for p in pytester.path.rglob("*") if "__pycache__" not in p.parts}
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    after = {p for p in pytester.path.rglob("*") if "__pycache__" not in p.parts}
    assert after == before


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_site_column_while_cluster_is_not_set_is_warned_in_the_summary_and_the_reports(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    # the repository's metadata table has a `site` column (A or B)
    segtester.write_config(gates=[GAP_GATE])
    result = pytester.runpytest("--segfair-json", "r.json", "--segfair-md", "r.md", *xdist)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*- segfair -*", "segfair: warning: 'site' (2 values) looks like a site*"]
    )
    (warning,) = json.loads((pytester.path / "r.json").read_text())["warnings"]
    assert 'cluster = "site"' in warning
    assert "looks like a site" in (pytester.path / "r.md").read_text()


def test_with_cluster_set_the_site_warning_gives_way_to_the_cluster_count(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE], cluster="site")
    result = pytester.runpytest("--segfair-json", "r.json")
    out = result.stdout.str()
    assert "looks like a site" not in out
    # 24 cases in two sites: a handful of clusters per group, said rather than silently used
    result.stdout.fnmatch_lines(["segfair: warning: cluster 'site': groups of 'age_group'*"])
    warnings = json.loads((pytester.path / "r.json").read_text())["warnings"]
    assert warnings
    assert not any("sets no cluster" in w for w in warnings)


# ---- four verdicts: passed, failed, inconclusive, error ---------------------------------------
# the segtester gap is 0.365 [0.293, 0.436]: 0.9 clears it, 0.2 lies below the whole interval,
# 0.4 lies inside it
OUTCOME_TESTS = """
def test_passes(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", max=0.9)

def test_fails(segfair_audit):
    segfair_audit.assert_gap("dice", by="ethnicity", model="candidate", max=0.01)

def test_undecided(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", max=0.4{extra})

def test_typo(segfair_audit):
    segfair_audit.assert_gap("dice_score", by="age_group", model="candidate", max=0.9)
"""


def _statuses(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {g["id"] + f" <{g['threshold']}>": (g["status"], g["reason"]) for g in report["gates"]}


def test_each_verdict_reads_the_same_in_the_terminal_junit_json_summary_and_annotations(
    pytester: pytest.Pytester, segtester: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_outcomes=OUTCOME_TESTS.format(extra=""))
    result = pytester.runpytest("--junitxml=junit.xml", "--segfair-json", "r.json")
    result.assert_outcomes(passed=1, failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((pytester.path / "r.json").read_text())
    statuses = sorted(s for s, _ in _statuses(report).values())
    assert statuses == ["error", "failed", "inconclusive", "passed"]
    reasons = sorted(r for _, r in _statuses(report).values())
    assert reasons == ["error", "evidence_of_harm", "interval_straddles_limit", "limit_cleared"]
    assert report["verdict"]["status"] == "error"
    for line in (
        "PASSED gap[[]dice,age_group,candidate,expert[]]*",
        "FAILED gap[[]dice,ethnicity,candidate,expert[]]*",
        "INCONCLUSIVE gap[[]dice,age_group,candidate,expert[]]*",
        "ERROR gap[[]dice_score,age_group,candidate,expert[]]: Could not evaluate the gate*",
        "1 gate error, 1 failed, 1 passed, 1 inconclusive",
        "segfair: ERROR — 1 of 4 gates could not be evaluated: gap[[]dice_score*",
    ):
        result.stdout.fnmatch_lines([line])
    assert "segfair: PASSED" not in result.stdout.str()
    text = summary.read_text()
    assert "ERROR" in text
    assert "dice_score" in text
    for line in (
        "::error *title=segfair gate error%3A gap[[]dice_score*",
        "::error *title=segfair gate inconclusive%3A gap*",
        "::error *title=segfair gate failed%3A gap*",
    ):
        result.stdout.fnmatch_lines([line])
    props = {
        case.get("name"): {
            p.get("name"): p.get("value") for p in case.iter("property") if p.get("name")
        }
        for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    assert props["test_passes"]["segfair_status"] == "passed"
    assert props["test_fails"]["segfair_status"] == "failed"
    assert props["test_undecided"]["segfair_status"] == "inconclusive"
    assert props["test_undecided"]["segfair_reason"] == "interval_straddles_limit"
    assert props["test_typo"]["segfair_status"] == "error"


def test_an_erroring_gate_next_to_a_passing_one_makes_the_verdict_error(
    pytester: pytest.Pytester, segtester: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    tests = OUTCOME_TESTS.format(extra="")
    pytester.makepyfile(
        test_two=tests[: tests.index("def test_fails")] + tests[tests.index("def test_typo") :]
    )
    result = pytester.runpytest("--segfair-html", "r.html")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["segfair: ERROR — 1 of 2 gates could not be evaluated*"])
    assert "segfair: PASSED" not in result.stdout.str()
    assert summary.read_text().startswith("## 🛑 segfair: ERROR")
    html = (pytester.path / "r.html").read_text()
    assert "VERDICT: ERROR" in html
    assert "VERDICT: PASSED" not in html
    result.stdout.fnmatch_lines(["::error title=segfair gate error*dice_score*"])


@pytest.mark.parametrize(
    ("how", "code", "label"),
    [
        ("default", 1, "INCONCLUSIVE gap"),
        ("option-warn", 0, "INCONCLUSIVE (warning) gap"),
        ("option-pass", 0, "INCONCLUSIVE (not blocking) gap"),
        ("ini-warn", 0, "INCONCLUSIVE (warning) gap"),
        ("config-warn", 0, "INCONCLUSIVE (warning) gap"),
        ("keyword-warn", 0, "INCONCLUSIVE (warning) gap"),
        ("keyword-fail-over-option-pass", 1, "INCONCLUSIVE gap"),
    ],
)
def test_on_inconclusive_decides_whether_an_undecided_gate_blocks(
    pytester: pytest.Pytester,
    segtester: Repo,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    code: int,
    label: str,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    extra = {"keyword-warn": ", on_inconclusive='warn'"}.get(how, "")
    extra = ", on_inconclusive='fail'" if how.startswith("keyword-fail") else extra
    tests = OUTCOME_TESTS.format(extra=extra)
    pytester.makepyfile(
        test_one=tests[tests.index("def test_undecided") : tests.index("def test_typo")]
    )
    args: list[str] = []
    if how in ("option-warn", "option-pass"):
        args = ["--segfair-on-inconclusive", how.split("-")[1]]
    elif how.endswith("option-pass"):
        args = ["--segfair-on-inconclusive", "pass"]
    elif how == "ini-warn":
        pytester.makeini("[pytest]\nsegfair_on_inconclusive = warn\n")
    elif how == "config-warn":
        segtester.write_config(on_inconclusive="warn")
    result = pytester.runpytest(*args)
    assert result.ret == code
    result.stdout.fnmatch_lines([f"{label.replace('[', '[[]')}*"])
    annotations = [line for line in result.stdout.lines if line.startswith("::")]
    if code == 1:
        assert annotations
        assert "title=segfair gate inconclusive" in annotations[0]
    elif "warning" in label:
        assert annotations
        assert annotations[0].startswith("::warning ")
    else:
        assert annotations == []


def test_a_bad_on_inconclusive_ini_value_is_a_usage_error(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makeini("[pytest]\nsegfair_on_inconclusive = maybe\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*segfair_on_inconclusive must be one of 'fail', 'warn', 'pass'*"])


def test_an_undecided_gate_says_how_far_the_cohort_is_from_deciding_it(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    tests = OUTCOME_TESTS.format(extra="")
    pytester.makepyfile(
        test_one=tests[tests.index("def test_undecided") : tests.index("def test_typo")]
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*INCONCLUSIVE*",
            "*reason:        interval_straddles_limit*",
            "*decidable:     * (the tightest limit this cohort could pass with 80% power*",
            "*to decide:     about * cases in all would likely decide it*",
        ]
    )


# ---- an input error: once, short, and in CI ---------------------------------------------------
TWO_ASSERTION_TESTS = """
def test_one(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", max=0.9)

def test_two(segfair_audit):
    segfair_audit.assert_gap("dice", by="ethnicity", model="candidate", max=0.9)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_missing_prediction_is_one_short_error_not_a_traceback_per_test(
    pytester: pytest.Pytester,
    segtester: Repo,
    monkeypatch: pytest.MonkeyPatch,
    xdist: list[str],
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    segtester.write_config(gates=[GAP_GATE])
    segtester.mask_path("model", "candidate", segtester.case_ids[0]).unlink()
    pytester.makepyfile(test_fairness=TWO_ASSERTION_TESTS)
    result = pytester.runpytest(*xdist)
    assert result.ret != 0
    out = result.stdout.str()
    assert "segfair/" not in out.replace("segfair/plugin", "")  # no frames of segfair's code
    assert "Traceback" not in out
    # the first failure (in each xdist worker), the annotation, the summary line, and pytest's
    # short summary (which, with CI set, repeats a message whole)
    assert out.count("missing files") <= 4 + (2 if xdist else 0)
    assert len(out.splitlines()) < 120  # was ~490 lines
    result.stdout.fnmatch_lines(["*segfair: input error: *1 problem in the cohort*"])
    assert "input error" in summary.read_text()
    assert segtester.case_ids[0] in summary.read_text()
    assert (
        sum(line.startswith("::error title=segfair input error") for line in out.splitlines()) == 1
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_a_misspelt_metric_in_an_assertion_gets_a_did_you_mean_and_is_recorded_as_an_error(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    pytester.makepyfile(
        test_fairness="""
def test_typo(segfair_audit):
    segfair_audit.assert_gap("dice_score", by="age_group", model="candidate", max=0.9)
"""
    )
    result = pytester.runpytest_subprocess(*xdist, "--segfair-json", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*dice_score*did you mean 'dice'?*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert [g["status"] for g in report["gates"]] == ["error"]


# ---- issue 15: annotations on the diff, one gate order everywhere ------------------------------
# on the automated ruler: gates of their own, not the configuration's again
ORDER_TESTS = """
def test_a_passing_gap(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", ruler="automated",
                             max=0.9, min_group_size=2)


def test_a_failing_gap(segfair_audit):
    segfair_audit.assert_gap(
        "dice", by="ethnicity", model="candidate", ruler="automated", max=0.001, min_group_size=2
    )
"""


def _pyproject(segtester: Repo, gates: list[dict[str, Any]]) -> str:
    from conftest import to_toml

    segtester.config_path.unlink()
    text = to_toml({**segtester.config, "gates": gates}, table="tool.segfair")
    (segtester.root / "pyproject.toml").write_text('[project]\nname = "model"\n\n' + text)
    return text


def test_in_github_actions_annotations_point_at_the_gate_table_and_the_assertion_line(
    pytester: pytest.Pytester, segtester: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))  # the repository's root
    _pyproject(segtester, [GAP_GATE, {**FAILING_GAP, "by": "ethnicity"}])
    pytester.makepyfile(test_fair=ORDER_TESTS)
    result = pytester.runpytest()
    lines = (pytester.path / "pyproject.toml").read_text().splitlines()
    tables = [i + 1 for i, line in enumerate(lines) if line == "[[tool.segfair.gates]]"]
    test_lines = (pytester.path / "test_fair.py").read_text().splitlines()
    asserted = next(i + 1 for i, line in enumerate(test_lines) if 'by="ethnicity"' in line)
    annotations = [line for line in result.stdout.lines if line.startswith("::error ")]
    folder = pytester.path.name
    # the failing configuration gate: the second [[tool.segfair.gates]] table, relative to the
    # workspace; the failing assertion: the line of the call in the test file
    assert annotations == [
        f"::error file={folder}/pyproject.toml,line={tables[1]},title=segfair gate failed%3A "
        "gap[dice%2Cethnicity%2Ccandidate%2Cexpert]::" + annotations[0].split("::", 2)[2],
        f"::error file={folder}/test_fair.py,line={asserted - 1},title=segfair gate failed%3A "
        "gap[dice%2Cethnicity%2Ccandidate%2Cautomated]::" + annotations[1].split("::", 2)[2],
    ]


def test_the_terminal_the_json_the_markdown_and_the_html_list_gates_in_one_order(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    import re

    segtester.write_config(
        gates=[GAP_GATE, {**FAILING_GAP, "by": "ethnicity"}],
        html="r.html",
        json_report="r.json",
        md="r.md",
    )
    pytester.makepyfile(test_fair=ORDER_TESTS)
    pytester.runpytest()
    doc = json.loads((pytester.path / "r.json").read_text())
    in_json = [(g["status"], g["id"], g["location"]["origin"]) for g in doc["gates"]]
    # failed before passed; the configuration's gates (in its order) before the assertions
    assert [(s, o) for s, _, o in in_json] == [
        ("failed", "configuration"),
        ("failed", "test"),
        ("passed", "configuration"),
        ("passed", "test"),
    ]
    ids = [i for _, i, _ in in_json]
    words = {"failed": "FAILED", "passed": "PASSED"}
    terminal = [
        line
        for line in pytester.runpytest().stdout.lines
        if line.startswith(("FAILED gap", "PASSED gap"))
    ]
    assert [t.split(":")[0] for t in terminal] == [f"{words[s]} {i}" for s, i, _ in in_json]
    table = [r for r in (pytester.path / "r.md").read_text().splitlines() if r.startswith("| gap")]
    assert [r.split(" | ")[0].removeprefix("| ") for r in table] == ids
    html = (pytester.path / "r.html").read_text()
    gates_table = html[html.index('<table class="gates') :].split("</table>")[0]
    assert re.findall(r'<td><span class="id">([^<]+)</span>', gates_table) == ids
