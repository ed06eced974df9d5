"""The command line: exit statuses 0 / 1 / 2, and the commands a team runs."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GAP_GATE, Repo

from segfair.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

PASSING = GAP_GATE
FAILING = {**PASSING, "max": 0.001}


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def test_audit_exits_0_when_every_gate_passes(repo: Repo) -> None:
    repo.write_config(gates=[PASSING])
    code, out = run("audit", "--config", str(repo.config_path), "--quiet")
    assert code == EXIT_OK
    assert "passed" in out


def test_audit_exits_1_when_a_gate_fails_and_still_writes_the_reports(
    repo_factory: type, tmp_path: Path
) -> None:
    repo = repo_factory(young_penalty=2.0)
    repo.write_config(gates=[FAILING])
    report = tmp_path / "r.json"
    code, out = run("audit", "--config", str(repo.config_path), "--json", str(report))
    assert code == EXIT_FAILED
    assert report.is_file()
    assert "FAILED gap[dice,age_group,candidate,expert]" in out


def test_audit_exits_2_with_the_error_not_a_traceback_on_bad_input(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write_config(gates=[PASSING])
    repo.mask_path("model", "candidate", repo.case_ids[0]).unlink()
    code, _ = run("audit", "--config", str(repo.config_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "segfair: error: 1 problem in the cohort" in err
    assert repo.case_ids[0] in err
    assert "Traceback" not in err


def test_audit_exits_2_on_a_config_typo_naming_the_key(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write_config(gates=[{**PASSING, "mx": 0.1}])
    code, _ = run("audit", "--config", str(repo.config_path))
    assert code == EXIT_USAGE
    assert "mx" in capsys.readouterr().err


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["audit", "--workers", "0"])
    assert info.value.code == EXIT_USAGE
    assert "expected a number ≥ 1, got 0" in capsys.readouterr().err


def test_the_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("segfair 0.")


def test_the_console_script_runs_as_a_program() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "segfair.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "audit" in out.stdout
    assert "demo" in out.stdout


def test_init_writes_a_config_and_a_test_for_a_mama_mia_layout(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from conftest import write_nifti

    root = tmp_path / "model-repo"
    pd.DataFrame(
        {"patient_id": ["DUKE_001", "DUKE_002"], "age": [38, 61], "ethnicity": ["white", "asian"]}
    ).to_excel(
        root.mkdir() or root / "clinical_and_imaging_info.xlsx",
        sheet_name="dataset_info",
        index=False,
    )
    for folder in ("segmentations/expert", "segmentations/automatic", "predictions/unet"):
        for cid in ("DUKE_001", "DUKE_002"):
            write_nifti(root / folder / f"{cid}.nii.gz", np.zeros((4, 4, 4)))
    code, _out = run("init", str(root))
    assert code == EXIT_OK
    text = (root / "pyproject.toml").read_text()
    assert 'cases = "clinical_and_imaging_info.xlsx"' in text
    assert 'sheet = "dataset_info"' in text
    assert 'case_id = "patient_id"' in text
    assert 'expert = "segmentations/expert/{case_id}.nii.gz"' in text
    assert 'unet = "predictions/unet/{case_id}.nii.gz"' in text
    # the gates are in the configuration, where pytest and `segfair audit` both see them
    from segfair.config import load_config

    config = load_config(root)
    assert config.trusted_ruler == "expert"
    assert [(g["kind"], g.get("automated")) for g in config.gates] == [
        ("gap", None),
        ("ruler_shrinkage", "automatic"),
    ]
    assert config.html == "reports/fairness.html"
    test = (root / "tests" / "test_fairness.py").read_text()
    assert "assert_min_group_metric" in test  # an example of a gate that needs code
    code, _ = run("init", str(root))
    assert code == EXIT_USAGE  # refuses to overwrite without --force
    assert run("init", str(root), "--force")[0] == EXIT_OK


def test_audit_warns_on_stderr_of_a_site_column_while_cluster_is_not_set(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    # the repository's metadata table has a `site` column (A or B)
    repo.write_config(gates=[PASSING])
    code, _out = run("audit", "--config", str(repo.config_path), "--quiet")
    assert code == EXIT_OK
    err = capsys.readouterr().err
    assert "segfair: warning: 'site' (2 values) looks like a site" in err
    assert 'cluster = "site"' in err
    repo.write_config(gates=[PASSING], cluster="site")
    assert run("audit", "--config", str(repo.config_path), "--quiet")[0] == EXIT_OK
    err = capsys.readouterr().err
    assert "looks like a site" not in err
    # 12 cases in two sites: every age group spans at most two clusters, and that is said
    assert "segfair: warning: cluster 'site': groups of 'age_group' span only a handful" in err


def test_init_sets_cluster_to_the_dataset_column_of_a_mama_mia_layout(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from conftest import write_nifti

    root = tmp_path / "model-repo"
    ids = [f"{site}_{i:03d}" for site in ("DUKE", "ISPY1", "NACT") for i in range(2)]
    pd.DataFrame(
        {
            "patient_id": ids,
            "dataset": [i.split("_")[0] for i in ids],
            "age": [38, 61, 45, 52, 70, 33],
            "manufacturer": ["GE", "SIEMENS"] * 3,
        }
    ).to_excel(
        root.mkdir() or root / "clinical_and_imaging_info.xlsx",
        sheet_name="dataset_info",
        index=False,
    )
    for folder in ("segmentations/expert", "predictions/unet"):
        for cid in ids:
            write_nifti(root / folder / f"{cid}.nii.gz", np.zeros((4, 4, 4)))
    assert run("init", str(root))[0] == EXIT_OK
    from segfair.config import load_config

    config = load_config(root)
    assert config.cluster == "dataset"
    # a group of the cluster column would lie in one cluster: it is not made an attribute
    assert "dataset" not in {a.column for a in config.attributes.values()}
    assert "manufacturer" in config.attributes
    from segfair.cohort import load_cohort

    assert not any("sets no cluster" in w for w in load_cohort(root).warnings)


def test_the_demo_prints_the_headline_and_writes_the_reports(tmp_path: Path) -> None:
    code, out = run(
        "demo", "--out", str(tmp_path / "demo"), "--n-cases", "60", "--workers", "1", "--quiet"
    )
    assert code == EXIT_OK
    headline = next(line for line in out.splitlines() if line.startswith("On automated labels"))
    assert "the age gap in Dice looks like" in headline
    assert "on expert labels it is" in headline
    for name in ("report.html", "report.json", "summary.md"):
        assert (tmp_path / "demo" / name).is_file()
    assert out.splitlines()[-1].startswith("segfair: ")


# ---- four verdicts and the release policy -----------------------------------------------------
# repo_factory(n_cases=24, young_penalty=1.5): the age gap is 0.365 [0.293, 0.436]
GAP_OF = {**PASSING, "max": 0.9}
UNDECIDED = {**PASSING, "max": 0.4}
HARMFUL = {**PASSING, "max": 0.2}


@pytest.mark.parametrize(
    ("gate", "status", "code"),
    [
        (GAP_OF, "PASSED", EXIT_OK),
        (HARMFUL, "FAILED", EXIT_FAILED),
        (UNDECIDED, "INCONCLUSIVE", EXIT_FAILED),
    ],
)
def test_audit_prints_each_verdict_and_exits_by_it(
    repo_factory: type, tmp_path: Path, gate: dict[str, object], status: str, code: int
) -> None:
    import json

    repo = repo_factory(n_cases=24, young_penalty=1.5)
    repo.write_config(gates=[gate])
    report = tmp_path / "r.json"
    got, out = run("audit", "--config", str(repo.config_path), "--json", str(report))
    assert got == code
    assert f"{status} gap[dice,age_group,candidate,expert]" in out
    assert out.splitlines()[-1].startswith(f"segfair: {status}")
    doc = json.loads(report.read_text())
    assert doc["schema"] == "segfair-report/2"
    assert doc["gates"][0]["status"] == status.lower()
    assert doc["gates"][0]["blocking"] is (code != EXIT_OK)


@pytest.mark.parametrize(
    ("policy", "code"), [("fail", EXIT_FAILED), ("warn", EXIT_OK), ("pass", EXIT_OK)]
)
def test_on_inconclusive_sets_the_exit_status_of_an_undecided_gate(
    repo_factory: type, policy: str, code: int
) -> None:
    repo = repo_factory(n_cases=24, young_penalty=1.5)
    repo.write_config(gates=[UNDECIDED])
    got, out = run("audit", "--config", str(repo.config_path), "--on-inconclusive", policy)
    assert got == code
    assert "INCONCLUSIVE" in out
    # the configuration says the same, and a gate's own key wins over both
    repo.write_config(gates=[UNDECIDED], on_inconclusive=policy)
    assert run("audit", "--config", str(repo.config_path))[0] == code
    repo.write_config(gates=[{**UNDECIDED, "on_inconclusive": "fail"}], on_inconclusive=policy)
    assert run("audit", "--config", str(repo.config_path))[0] == EXIT_FAILED


def test_a_gate_that_raises_is_an_error_that_fails_the_audit_next_to_a_passing_one(
    repo_factory: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from segfair.gates import CoverageGate

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the coverage table is broken")

    monkeypatch.setattr(CoverageGate, "check", boom)
    repo = repo_factory(n_cases=24, young_penalty=1.5)
    repo.write_config(gates=[GAP_OF, {"kind": "coverage", "by": "age_group", "min": 0.9}])
    report = tmp_path / "r.json"
    code, out = run(
        "audit",
        "--config",
        str(repo.config_path),
        "--json",
        str(report),
        "--on-inconclusive",
        "pass",
    )
    assert code == EXIT_FAILED  # an error always blocks, whatever on_inconclusive says
    assert (
        "ERROR coverage[age_group]: Could not evaluate the gate: RuntimeError: the coverage" in out
    )
    assert out.splitlines()[-1] == (
        "segfair: ERROR — 1 of 2 gates could not be evaluated: coverage[age_group]"
    )
    doc = json.loads(report.read_text())
    assert [g["status"] for g in doc["gates"]] == ["error", "passed"]  # severity first (issue 15)
    assert doc["verdict"]["status"] == "error"


def test_a_ratio_gate_below_its_precondition_is_inconclusive_under_its_declared_share(
    repo_factory: type, tmp_path: Path
) -> None:
    import json

    repo = repo_factory(n_cases=24)  # no age effect: the expert gap is not established
    shrink = {
        "kind": "ruler_shrinkage",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "automated": "automated",
        "max": 0.25,
        "min_group_size": 2,
        "negligible": 0.05,
    }
    repo.write_config(gates=[shrink])
    report = tmp_path / "r.json"
    code, _ = run("audit", "--config", str(repo.config_path), "--json", str(report))
    assert code == EXIT_FAILED
    gate = json.loads(report.read_text())["gates"][0]
    assert (gate["status"], gate["reason"]) == ("inconclusive", "precondition_not_met")
    assert gate["threshold"] == 0.25  # the declared share, not negligible in dice units
    assert "≤ 0.25 (not applicable: the expert gap" in gate["decision_rule"]
    assert "cannot be applied" in gate["message"]
    # a declared fallback decides it, in metric units, and says so
    repo.write_config(gates=[{**shrink, "max_difference": 0.5}])
    code, _ = run("audit", "--config", str(repo.config_path), "--json", str(report))
    gate = json.loads(report.read_text())["gates"][0]
    assert (code, gate["status"], gate["threshold"]) == (EXIT_OK, "passed", 0.5)
    assert "(max_difference)" in gate["decision_rule"]


def test_audit_and_plan_with_no_gate_exit_2_saying_how_to_add_one(
    repo: Repo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A green exit that checked nothing would read as 'all gates pass'."""
    assert not repo.config.get("gates")
    code, _ = run("audit", "--config", str(repo.config_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "no gate is configured" in err
    assert "[[tool.segfair.gates]]" in err
    code, _ = run("plan", "--config", str(repo.config_path), "--out", str(tmp_path / "p.csv"))
    assert code == EXIT_USAGE
    assert "no gate is configured" in capsys.readouterr().err
    code, _out = run("audit", "--config", str(repo.config_path), "--allow-no-gates")
    assert code == EXIT_OK


def test_in_github_actions_segfair_audit_writes_the_job_summary_and_annotations(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo.root))
    failing = {**PASSING, "max": 0.0001, "decide_on": "estimate"}
    repo.write_config(gates=[failing])
    code, out = run("audit", "--config", str(repo.config_path), "--quiet")
    assert code == EXIT_FAILED
    assert "segfair: FAILED" in summary.read_text()
    # the annotation attaches to the gate's [[gates]] table (issue 15)
    assert any(
        line.startswith("::error file=segfair.toml,line=") and ",title=segfair gate failed" in line
        for line in out.splitlines()
    )
    # an input error: the job summary and one annotation say it too
    repo.mask_path("model", "candidate", repo.case_ids[0]).unlink()
    code, out = run("audit", "--config", str(repo.config_path), "--quiet")
    assert code == EXIT_USAGE
    assert "input error" in summary.read_text()
    assert (
        sum(line.startswith("::error title=segfair input error") for line in out.splitlines()) == 1
    )


@pytest.mark.parametrize("command", ["audit", "plan", "synth", "demo", "init"])
def test_every_option_of_every_command_is_described(command: str) -> None:
    from segfair.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]  # type: ignore[attr-defined]
    bare = [
        a.option_strings or a.dest for a in sub._actions if not a.help and a.dest not in ("help",)
    ]
    assert bare == []
    if command == "audit":
        assert "exit status: 0" in sub.format_help()
