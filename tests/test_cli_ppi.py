"""``segfair audit`` on a partial trusted ruler with prediction-powered estimates: the verdicts
and the report, and every bad estimator or proxy refused with exit 2 and the valid values."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Repo
from ppi_repos import PPI_GAP, make_partial_repo, without_a_complete_proxy

from segfair.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

RUN_GAP = {k: v for k, v in PPI_GAP.items() if k != "estimator"}  # the run's estimator


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


@pytest.fixture
def partial(tmp_path: Path) -> Repo:
    return make_partial_repo(tmp_path / "repo")


def test_audit_with_the_runs_estimator_ppi_decides_and_reports_prediction_powered(
    partial: Repo, tmp_path: Path
) -> None:
    partial.write_config(
        estimator="ppi", gates=[{**RUN_GAP, "max": 0.9}, {**RUN_GAP, "max": 0.001}]
    )
    report = tmp_path / "r.json"
    html = tmp_path / "r.html"
    code, out = run(
        "audit", "--config", str(partial.config_path), "--json", str(report), "--html", str(html)
    )
    doc = json.loads(report.read_text("utf-8"))
    assert doc["provenance"]["estimator"] == "ppi"
    assert doc["provenance"]["proxy"] == "automated"
    assert code == EXIT_FAILED  # the tight limit does not hold
    for g in doc["gates"]:
        # the run's estimator: the id is the labelled twin's, the entry says how it was decided
        assert g["id"] == "gap[dice,age_group,candidate,expert]"
        assert g["estimator"] == "ppi"
        assert g["prediction_powered"][0]["gap"]["upper"] == pytest.approx(g["upper"])
        # a verdict as its prediction-powered interval says
        assert (g["status"] == "passed") == (g["upper"] <= g["threshold"])
    assert "FAILED gap[dice,age_group,candidate,expert]" in out
    page = html.read_text("utf-8")
    assert "estimator ppi (proxy: automated)" in page
    assert "Prediction-powered: dice of candidate" in page


def test_a_gate_may_ask_for_ppi_in_a_labelled_run_and_gets_its_own_id(
    partial: Repo, tmp_path: Path
) -> None:
    partial.write_config(gates=[{**RUN_GAP, "max": 0.9}, {**PPI_GAP, "max": 0.9}])
    report = tmp_path / "r.json"
    code, _ = run("audit", "--config", str(partial.config_path), "--json", str(report), "-q")
    assert code == EXIT_OK
    gates = {g["id"]: g for g in json.loads(report.read_text("utf-8"))["gates"]}
    assert gates["gap[dice,age_group,candidate,expert]"]["estimator"] == "labelled"
    assert "prediction_powered" not in gates["gap[dice,age_group,candidate,expert]"]
    assert gates["gap[dice,age_group,candidate,expert,ppi]"]["estimator"] == "ppi"
    assert "prediction_powered" in gates["gap[dice,age_group,candidate,expert,ppi]"]


@pytest.mark.parametrize(
    ("settings", "gate", "says"),
    [
        ({"estimator": "ppx"}, {}, "estimator: Input should be 'labelled' or 'ppi' (got 'ppx')"),
        ({}, {"estimator": "ppx"}, "gates[0].estimator: Input should be 'labelled' or 'ppi'"),
        ({"proxy": "expert"}, {}, "proxy = 'expert' must name a ruler other than the trusted"),
        ({"proxy": "nope"}, {}, "proxy = 'nope' must name a ruler other than the trusted one"),
    ],
)
def test_a_bad_estimator_or_proxy_exits_2_listing_the_valid_values(
    partial: Repo,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, Any],
    gate: dict[str, Any],
    says: str,
) -> None:
    partial.write_config(**settings, gates=[{**PPI_GAP, "max": 0.9, **gate}])
    code, _ = run("audit", "--config", str(partial.config_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert says in err
    if "proxy" in settings:
        assert "valid: automated" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["run", "gate"])
def test_ppi_without_a_complete_ruler_exits_2_before_any_gate_listing_the_rulers(
    partial: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    without_a_complete_proxy(partial)
    gate = {**RUN_GAP, "max": 0.9} | ({"estimator": "ppi"} if where == "gate" else {})
    partial.write_config(**({"estimator": "ppi"} if where == "run" else {}), gates=[gate])
    report = tmp_path / "r.json"
    code, _ = run("audit", "--config", str(partial.config_path), "--json", str(report))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "estimator 'ppi' needs a proxy" in err
    assert "no other ruler scores every case. Set proxy = one of: automated" in err
    assert "Traceback" not in err
    assert not report.exists()  # refused before any gate: no verdict reads as one


def test_plan_refuses_ppi_without_a_complete_ruler_before_planning(
    partial: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without_a_complete_proxy(partial)
    partial.write_config(estimator="ppi", gates=[{**RUN_GAP, "max": 0.9}])
    out = tmp_path / "to_label.csv"
    code, _ = run("plan", "--config", str(partial.config_path), "--out", str(out))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "no other ruler scores every case. Set proxy = one of: automated" in err
    assert "Traceback" not in err
    assert not out.exists()
