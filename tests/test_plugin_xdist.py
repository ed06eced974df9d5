"""The plugin under pytest-xdist: the cohort is evaluated and audited once per run, by the
controller, which checks the workers' gates (segfair.relay) — or, where it cannot relay, by
whichever process needs it first — and the run reads exactly as a serial one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import GAP_GATE, Repo, make_repo

pytest_plugins = ["pytester"]


# the same gate as the configuration's first (listed once), another one, and a plain test
TESTS = """
def test_the_configured_age_gap_checked_again(segfair_audit):
    segfair_audit.assert_gap("dice", by="age_group", model="candidate", ruler="expert",
                             max=0.9, min_group_size=2)

def test_the_ethnicity_gap(segfair_audit):
    segfair_audit.assert_gap("dice", by="ethnicity", model="candidate", max=0.0001,
                             min_group_size=2)

def test_scores(segfair_scores):
    assert len(segfair_scores.table) > 0

def test_plain():
    assert True
"""

# every process of the run (controller, workers) logs what it computes, and its pid
COUNTING_CONFTEST = """
import importlib
import os

# modules by name: the package re-exports a function named evaluate
audit = importlib.import_module("segfair.audit")
cohort = importlib.import_module("segfair.cohort")
evaluation = importlib.import_module("segfair.evaluate")

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "computed.log")


def _counted(what, function):
    def wrapper(*args, **kwargs):
        with open(LOG, "a") as fh:
            fh.write(f"{what} {os.getpid()}\\n")
        return function(*args, **kwargs)
    return wrapper


cohort.load_cohort = _counted("cohort", cohort.load_cohort)
evaluation.evaluate = _counted("scores", evaluation.evaluate)
audit.Audit.__init__ = _counted("audit", audit.Audit.__init__)
"""

# the first process that evaluates the cohort dies there, holding the lock
CRASHING_CONFTEST = """
import importlib
import os

evaluation = importlib.import_module("segfair.evaluate")
{relay}
MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashed")
_evaluate = evaluation.evaluate


def evaluate(*args, **kwargs):
    try:
        os.close(os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return _evaluate(*args, **kwargs)
    os._exit(3)


evaluation.evaluate = evaluate
"""
# a controller that cannot relay (a remote worker, Windows): each worker computes for itself
NO_RELAY = """
relay = importlib.import_module("segfair.relay")
relay.relay_supported = lambda folder: False
"""

# each process says, as it ends, whether it imported pandas, and whether it is a worker
IMPORTS_CONFTEST = """
import os
import sys

def pytest_sessionfinish(session):
    role = "worker" if hasattr(session.config, "workerinput") else "controller"
    with open(os.path.join(str(session.config.rootpath), "imports.log"), "a") as fh:
        fh.write(f"{role} {'pandas' in sys.modules}\\n")
"""


@pytest.fixture
def segtester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A model repository in pytester's folder, with one configured gate; the run's temporary
    folder is its own, so that what segfair leaves there can be listed."""
    repo = make_repo(pytester.path, n_cases=24, young_penalty=1.5)
    repo.write_config(gates=[GAP_GATE])
    tmp = pytester.path.parent / f"{pytester.path.name}-tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return repo


def computed(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "computed.log"
    return sorted(log.read_text().split("\n")[:-1]) if log.exists() else []


def files(pytester: pytest.Pytester) -> set[str]:
    """The repository's files, less pytester's own (its subprocess's output and basetemp)."""
    return {
        str(p.relative_to(pytester.path))
        for p in pytester.path.rglob("*")
        if "__pycache__" not in p.parts
        and p.relative_to(pytester.path).parts[0] not in ("stdout", "stderr")
        and not p.relative_to(pytester.path).parts[0].startswith("runpytest")
    }


def left_in_tmp(pytester: pytest.Pytester) -> list[str]:
    tmp = pytester.path.parent / f"{pytester.path.name}-tmp"
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("segfair"))


def test_with_two_workers_the_cohort_is_evaluated_and_audited_once_for_the_whole_run(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_fairness=TESTS)
    pytester.makeconftest(COUNTING_CONFTEST)
    result = pytester.runpytest_subprocess("-n", "2", "--segfair-json", "r.json")
    result.assert_outcomes(passed=4, failed=1)
    assert "[gw1]" in result.stdout.str() or "2 workers" in result.stdout.str()
    # one process computed, the other worker and the controller (the report) loaded its work
    once = computed(pytester)
    assert [line.split()[0] for line in once] == ["audit", "cohort", "scores"]
    assert len({line.split()[1] for line in once}) == 1
    assert (pytester.path / "r.json").is_file()
    assert left_in_tmp(pytester) == []


def test_serially_the_cohort_is_evaluated_and_audited_once_as_before(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(test_fairness=TESTS)
    pytester.makeconftest(COUNTING_CONFTEST)
    result = pytester.runpytest_subprocess("--segfair-json", "r.json")
    result.assert_outcomes(passed=4, failed=1)
    once = computed(pytester)
    assert [line.split()[0] for line in once] == ["audit", "cohort", "scores"]
    assert len({line.split()[1] for line in once}) == 1
    assert left_in_tmp(pytester) == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_with_no_segfair_test_selected_nothing_is_computed_or_left_behind(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    pytester.makepyfile(test_fairness=TESTS)
    pytester.makeconftest(COUNTING_CONFTEST)
    before = files(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "plain", *xdist)
    result.assert_outcomes(passed=1)
    assert files(pytester) == before
    assert "- segfair -" not in result.stdout.str()
    assert computed(pytester) == []
    assert left_in_tmp(pytester) == []


def json_text(path: Path) -> str:
    # the time of the run is the only field that may differ
    return re.sub(r'"generated_at": "[^"]*"', '"generated_at": ""', path.read_text())


def test_the_json_report_with_two_workers_is_byte_for_byte_the_serial_one(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[GAP_GATE, {**GAP_GATE, "by": "ethnicity", "max": 0.0001}])
    pytester.makepyfile(test_fairness=TESTS)
    serial = pytester.runpytest_subprocess("-p", "no:randomly", "--segfair-json", "serial.json")
    workers = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-n", "2", "--segfair-json", "workers.json"
    )
    assert serial.parseoutcomes()["passed"] == workers.parseoutcomes()["passed"] == 4
    assert serial.parseoutcomes()["failed"] == workers.parseoutcomes()["failed"] == 2
    assert json_text(pytester.path / "serial.json") == json_text(pytester.path / "workers.json")


def test_workers_that_only_assert_gates_import_no_numeric_stack(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(
        test_fairness="""
        def test_the_ethnicity_gap(segfair_audit):
            segfair_audit.assert_gap("dice", by="ethnicity", model="candidate", max=0.5)
        """
    )
    pytester.makeconftest(IMPORTS_CONFTEST)
    result = pytester.runpytest_subprocess("-n", "2", "--segfair-json", "r.json")
    result.assert_outcomes(passed=2)  # the configured gate and the asserted one
    log = sorted((pytester.path / "imports.log").read_text().split("\n")[:-1])
    assert log == ["controller True", "worker False", "worker False"]
    assert (pytester.path / "r.json").is_file()


def test_a_controller_that_dies_while_evaluating_ends_the_run_it_does_not_hang_it(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makeconftest(CRASHING_CONFTEST.format(relay=""))
    result = pytester.runpytest_subprocess("-n", "2", "--segfair-json", "r.json", timeout=300)
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert not (pytester.path / "r.json").exists()


def test_without_a_relay_a_worker_that_dies_while_evaluating_does_not_hang_the_others(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    # the lock dies with the process: another process evaluates, and the run ends
    segtester.write_config(
        gates=[GAP_GATE, {**GAP_GATE, "by": "ethnicity"}, {**GAP_GATE, "metric": "iou"}]
    )
    pytester.makeconftest(CRASHING_CONFTEST.format(relay=NO_RELAY))
    result = pytester.runpytest_subprocess("-n", "2", "--segfair-json", "r.json", timeout=300)
    out = result.stdout.str()
    assert "crashed" in out
    assert result.parseoutcomes().get("passed", 0) >= 1
    assert (pytester.path / "r.json").is_file()
    assert left_in_tmp(pytester) == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_an_input_error_in_the_first_worker_is_met_again_by_the_others_not_waited_on(
    pytester: pytest.Pytester, segtester: Repo, xdist: list[str]
) -> None:
    segtester.mask_path("model", "candidate", segtester.case_ids[0]).unlink()
    pytester.makepyfile(test_fairness=TESTS)
    result = pytester.runpytest_subprocess(*xdist, timeout=300)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*segfair: input error: *1 problem in the cohort*"])
    assert left_in_tmp(pytester) == []


# ---- the relay: the controller checks the workers' gates ---------------------------------------
def test_with_two_workers_a_typo_in_the_configured_gates_is_the_serial_usage_error(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    segtester.write_config(gates=[{**GAP_GATE, "maxx": 0.1}])
    result = pytester.runpytest_subprocess("-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "did you mean 'max'" in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_with_two_workers_an_assertion_returns_the_result_and_the_audit_stays_readable(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    pytester.makepyfile(
        test_fairness="""
def test_the_result_reads_as_serially(segfair_audit):
    result = segfair_audit.assert_gap("dice", by="ethnicity", model="candidate", max=0.9,
                                      min_group_size=2)
    assert result.status == "passed" and result.ok
    assert result.id == "gap[dice,ethnicity,candidate,expert]"
    assert result.location["file"] == "test_fairness.py" and result.location["line"] == 2


def test_the_audit_itself(segfair_audit):
    gap = segfair_audit.gap("dice", by="ethnicity", model="candidate")
    assert 0 <= gap.gap.estimate <= 1
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_with_two_workers_the_configured_gates_keep_their_line_in_the_report(
    pytester: pytest.Pytester, segtester: Repo
) -> None:
    serial = pytester.runpytest_subprocess("--segfair-json", "serial.json")
    workers = pytester.runpytest_subprocess("-n", "2", "--segfair-json", "workers.json")
    assert serial.ret == workers.ret
    locations = [
        [g.get("location") for g in json.loads((pytester.path / name).read_text())["gates"]]
        for name in ("serial.json", "workers.json")
    ]
    assert locations[0] == locations[1]
    assert locations[0][0] is not None
