"""The audit report: the JSON document, its schema, the HTML and Markdown renderings, escaping,
the terminal summary and GitHub annotations."""

from __future__ import annotations

import doctest
import importlib
import json
import math
import os
import pkgutil
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import segfair.report as report
from segfair.audit import Audit
from segfair.config import SegfairConfig, load_config, parse_config
from segfair.gates import evaluate_gate, parse_gate
from segfair.report import (
    REPORT_SCHEMA_VERSION,
    build_report,
    github_annotations,
    markdown_report,
    md_escape,
    order_gates,
    outline_path,
    render_html,
    render_json,
    render_markdown,
    summary_lines,
    summary_lines_from_dicts,
    verdict,
    write_reports,
)
from segfair.scores import Scores
from segfair.session import SegfairSession

XSS = "<script>alert(1)</script>"
SECTIONS = (
    "verdict",
    "gates",
    "rulers",
    "labels",
    "amplification",
    "controlled",
    "morphology",
    "coverage",
    "worst",
    "provenance",
)
TOP_LEVEL = {
    "schema",
    "generated_at",
    "segfair_version",
    "headline",
    "cohort",
    "gates",
    "verdict",
    "groups",
    "gaps",
    "fairness",
    "distortion",
    "amplification",
    "label_audit",
    "controlled_gap",
    "morphology",
    "coverage",
    "worst_cases",
    "provenance",
    "notes",
    "warnings",
}


# ---- fixtures ---------------------------------------------------------------------------------


def _session(root: Path) -> SegfairSession:
    """A small synthetic cohort (masks on disk) with a fast audit."""
    from segfair.synth import make_cohort

    path = make_cohort(root, n_cases=60, shape=(24, 24, 12), preset="hidden", seed=0)
    cfg = load_config(path)
    cfg = cfg.model_copy(update={"n_boot": 200, "min_group_size": 5, "cache": False})
    return SegfairSession(cfg, workers=1, cache=False, progress=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[SegfairSession, Any]:
    session = _session(tmp_path_factory.mktemp("cohort"))
    results = list(session.check_config_gates())
    # one gate that passes and one that cannot, so every status is on the page
    results.append(
        session.check(
            {
                "kind": "gap",
                "metric": "dice",
                "by": "age_group",
                "model": "trained_on_expert",
                "max": 0.9,
            }
        )
    )
    # and one whose whole interval lies beyond its limit (evidence of harm)
    results.append(
        session.check(
            {
                "kind": "min_group_metric",
                "metric": "dice",
                "by": "age_group",
                "model": "trained_on_automated",
                "min": 0.99,
            }
        )
    )
    results.append(
        session.check(
            {
                "kind": "gap",
                "metric": "dice",
                "by": "ethnicity",
                "model": "trained_on_expert",
                "max": 0.2,
                "min_group_size": 50,
                "allow_insufficient": True,
            }
        )
    )
    return session, results


@pytest.fixture(scope="module")
def doc(synth: tuple[SegfairSession, Any]) -> dict[str, Any]:
    session, results = synth
    return build_report(
        session.audit, results, config=session.config, seed=session.seed, cohort=session.cohort
    )


@pytest.fixture(scope="module")
def html(doc: dict[str, Any]) -> str:
    return render_html(doc)


def _hostile_scores() -> Scores:
    """Scores whose every name comes from an attacker: case ids, groups, models, rulers."""
    rng = np.random.default_rng(0)
    ids = [XSS, *(f"c|{i}`<b>" for i in range(39))]
    group = [f"<i>young</i>|{XSS}" if i % 2 else "old\nline" for i in range(40)]
    model, trusted, auto = "m<script>", "exp<b>ert", "auto|`x`"
    rows = []
    for i, cid in enumerate(ids):
        d = float(np.clip(rng.normal(0.75 - 0.1 * (i % 2), 0.05), 0, 1))
        for ruler, v in ((trusted, d), (auto, min(d + 0.05 * (i % 2), 1.0))):
            rows.append((cid, model, ruler, "dice", v))
            rows.append((cid, model, ruler, "hd95", 5.0 + 10 * (1 - v)))
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    agreement = pd.DataFrame(
        [(cid, auto, trusted, "dice", 0.9) for cid in ids],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    morphology = pd.DataFrame(
        [(cid, trusted, "volume_ml", 1.0 + (i % 5)) for i, cid in enumerate(ids)],
        columns=["case_id", "ruler", "descriptor", "value"],
    )
    index = pd.Index(ids, name="case_id")
    groups = pd.DataFrame({"att<r>|": group}, index=index)
    exclusions = pd.DataFrame(
        [(XSS, "ruler", auto, f"reason {XSS}")], columns=["case_id", "kind", "source", "reason"]
    )
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler=trusted,
        rulers=(trusted, auto),
        models=(model,),
        agreement=agreement,
        morphology=morphology,
        exclusions=exclusions,
        settings={"cap": 150.0, "note": XSS},
    )


def _config(root: Path) -> SegfairConfig:
    return parse_config(
        {
            "cases": "cases.csv",
            "rulers": {"expert": "e/{case_id}.nii.gz"},
            "models": {"m": "p/{case_id}.nii.gz"},
        },
        root=root,
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scores = _hostile_scores()
    audit = Audit(scores, n_boot=200, min_group_size=5)
    gate = parse_gate(
        {
            "kind": "gap",
            "metric": "dice",
            "by": "att<r>|",
            "model": "m<script>",
            "ruler": "exp<b>ert",
            "max": 0.01,
            "name": XSS,
        }
    )
    result = evaluate_gate(audit, gate)
    return build_report(audit, [result], config=_config(tmp_path_factory.mktemp("cfg")), seed=0)


# ---- the document -----------------------------------------------------------------------------


def test_document_has_every_part(doc: dict[str, Any], synth: tuple[SegfairSession, Any]) -> None:
    session, results = synth
    scores = session.audit.scores
    assert set(doc) == TOP_LEVEL
    assert doc["schema"] == f"segfair-report/{REPORT_SCHEMA_VERSION}"
    # every gate, in the one order of every front (issue 15): by severity, then declaration
    assert sorted(g["id"] for g in doc["gates"]) == sorted(r.id for r in results)
    assert doc["gates"] == order_gates(doc["gates"])
    assert doc["notes"] == []
    # every attribute, model and ruler, for the headline metric and HD95
    want = {
        (m, a, mo, r)
        for m in ("dice", "hd95")
        for a in scores.attributes
        for mo in scores.models
        for r in scores.rulers
    }
    assert {(g["metric"], g["attribute"], g["model"], g["ruler"]) for g in doc["groups"]} == want
    gaps = {g["id"]: g for g in doc["gaps"]}
    # the gap of a gap gate is found under the gate's own id
    gate = next(g for g in doc["gates"] if g["kind"] == "gap")
    assert gaps[gate["id"]]["gap"]["estimate"] == pytest.approx(gate["estimate"], rel=1e-5)
    assert {
        (d["attribute"], d["model"], d["automated"])
        for d in doc["distortion"]
        if d["metric"] == "dice"
    } == {(a, m, "automated") for a in scores.attributes for m in scores.models}
    assert {(a["model"], a["baseline"]) for a in doc["amplification"]} == {
        ("trained_on_automated", "trained_on_expert")
    }
    assert {e["attribute"] for e in doc["label_audit"]} == set(scores.attributes)
    assert {c["stratify"] for c in doc["controlled_gap"]} == {"volume_ml"}
    assert {m["attribute"] for m in doc["morphology"]} == set(scores.attributes)
    assert doc["headline"] == {
        "metric": "dice",
        "attribute": "age_group",
        "model": "trained_on_automated",
        "trusted": "expert",
        "automated": ["automated"],
    }
    prov = doc["provenance"]
    assert prov["seed"] == session.seed
    assert prov["n_boot"] == 200
    assert re.fullmatch(r"[0-9a-f]{64}", prov["config_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", prov["inputs"]["scores_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", prov["inputs"]["metadata_sha256"])
    assert "max_directed" in json.dumps(prov["metric_definitions"])
    assert prov["git"] == {"commit": None, "dirty": None}  # a temporary folder


def test_worst_cases_are_drawn_from_the_masks(doc: dict[str, Any]) -> None:
    w = doc["worst_cases"]
    assert w["available"]
    assert w["reason"] is None
    assert w["problems"] == []
    assert {c["group"] for c in w["cases"]} == {"young", "middle", "older"}
    for c in w["cases"]:
        roles = [k["role"] for k in c["contours"]]
        assert roles == ["prediction", "trusted", "automated"]
        assert c["contours"][1]["path"].startswith("M")  # the trusted lesion is on the slice
        assert c["width"] > 0
        assert c["height"] > 0
    # worst first within a group
    young = [c["value_trusted"] for c in w["cases"] if c["group"] == "young"]
    assert young == sorted(young)


def test_worst_cases_without_the_cohort_say_why(synth: tuple[SegfairSession, Any]) -> None:
    session, results = synth
    doc = build_report(session.audit, results[:1], config=session.config, seed=session.seed)
    assert doc["worst_cases"]["available"] is False
    assert "cohort" in doc["worst_cases"]["reason"]
    html = render_html(doc)
    section = html[html.index('id="worst"') : html.index('id="provenance"')]
    assert "No worst cases are shown" in section
    assert "cohort=" in section


def test_json_is_deterministic_apart_from_the_timestamp(
    synth: tuple[SegfairSession, Any], doc: dict[str, Any]
) -> None:
    session, results = synth
    # a fresh audit of the same scores and seed: byte-identical JSON once the stamp is aligned
    audit = Audit(session.audit.scores, seed=session.seed, n_boot=200, min_group_size=5)
    again = build_report(
        audit, results, config=session.config, seed=session.seed, cohort=session.cohort
    )
    assert again["generated_at"] != ""
    assert set(again) == set(doc)
    again["generated_at"] = doc["generated_at"]
    assert render_json(again) == render_json(doc)


def test_json_does_not_depend_on_row_order(tmp_path: Path) -> None:
    scores = _hostile_scores()
    rng = np.random.default_rng(1)

    def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[rng.permutation(len(frame))]

    permuted = Scores(
        table=shuffled(scores.table),
        groups=shuffled(scores.groups),
        trusted_ruler=scores.trusted_ruler,
        rulers=scores.rulers,
        models=scores.models,
        agreement=shuffled(scores.agreement),
        morphology=shuffled(scores.morphology),
        exclusions=scores.exclusions,
        settings=scores.settings,
    )
    config = _config(tmp_path)
    docs = [
        build_report(Audit(s, n_boot=200, min_group_size=5), [], config=config, seed=3)
        for s in (scores, permuted)
    ]
    docs[1]["generated_at"] = docs[0]["generated_at"]
    assert render_json(docs[0]) == render_json(docs[1])
    assert docs[0]["provenance"]["inputs"]["metadata_file"] == "cases.csv"


def test_json_is_strict_and_sorted() -> None:
    doc = {
        "schema": "segfair-report/1",
        "b": float("nan"),
        "a": [float("inf"), -math.inf, 1.5],
        "gates": [],
    }
    text = render_json(doc)
    assert text.endswith("\n")

    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["b"] is None
    assert data["a"] == [None, None, 1.5]
    assert list(data) == sorted(data)
    assert data["verdict"]["status"] == "no_gates"


def _validator() -> Any:
    try:
        import jsonschema
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("jsonschema is missing: add 'jsonschema>=4.18' to the test extra")
        pytest.skip("jsonschema is not installed (pip install jsonschema)")
    schema = report.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_json_validates_against_its_schema(doc: dict[str, Any], hostile: dict[str, Any]) -> None:
    validator = _validator()
    for d in (doc, hostile):
        data = json.loads(render_json(d))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == []
    broken = json.loads(render_json(doc))
    broken["gates"][0]["status"] = "maybe"
    del broken["provenance"]
    assert len(list(validator.iter_errors(broken))) >= 2


@pytest.mark.parametrize("attributes", [["age"], []], ids=["one-attribute", "no-attribute"])
def test_a_minimal_cohort_renders(tmp_path: Path, attributes: list[str]) -> None:
    # one ruler, one model, no agreement or morphology: the sections say they are empty
    ids = [f"c{i:02d}" for i in range(30)]
    table = pd.DataFrame(
        {
            "case_id": ids,
            "model": "m",
            "ruler": "expert",
            "metric": "dice",
            "value": np.linspace(0.5, 0.9, 30),
        }
    )
    groups = pd.DataFrame({"age": ["young", "old"] * 15}, index=pd.Index(ids, name="case_id"))
    scores = Scores(
        table=table,
        groups=groups[attributes],
        trusted_ruler="expert",
        rulers=("expert",),
        models=("m",),
    )
    doc = build_report(Audit(scores, n_boot=200), [], config=_config(tmp_path), seed=0)
    assert doc["distortion"] == []
    assert doc["amplification"] == []
    assert doc["label_audit"] == []
    html = render_html(doc)
    for text in (
        "No automated ruler",
        "One model only",
        "No difficulty covariate",
        "No morphology descriptors",
        "No gate results were recorded",
    ):
        assert text in html
    assert render_markdown(doc).startswith("## ⚠️ segfair: NO GATES")
    data = json.loads(render_json(doc))
    assert data["worst_cases"]["available"] is False
    assert list(_validator().iter_errors(data)) == []


def test_renders_from_the_dict_alone(doc: dict[str, Any]) -> None:
    # the xdist controller only has the JSON-able document a worker sent
    data = json.loads(render_json(doc))
    html = render_html(data)
    assert 'id="verdict"' in html
    assert "<svg" in html
    assert render_markdown(data) == render_markdown(doc)


def test_verdict_comes_from_the_gates_at_render_time(doc: dict[str, Any]) -> None:
    passing = dict(doc, gates=[g for g in doc["gates"] if g["ok"]])
    assert json.loads(render_json(passing))["verdict"]["status"] == "passed"
    assert render_markdown(passing).startswith("## ✅ segfair: PASSED")
    assert "VERDICT: PASSED" in render_html(passing)
    failing = dict(
        passing,
        gates=[
            *passing["gates"],
            {
                "id": "coverage[age_group]",
                "kind": "coverage",
                "status": "failed",
                "ok": False,
                "message": "Group 'young' misses 3 predictions.",
                "estimate": 0.9,
                "lower": 0.9,
                "upper": 0.9,
                "threshold": 0.95,
                "decision_rule": "coverage ≥ 0.95",
                "evidence": [],
            },
        ],
    )
    out = json.loads(render_json(failing))["verdict"]
    assert (out["status"], out["blocking"]) == ("failed", ["coverage[age_group]"])
    html = render_html(failing)
    verdict_part = html[html.index('id="verdict"') : html.index('id="gates"')]
    assert "VERDICT: FAILED" in verdict_part
    assert "misses 3 predictions" in verdict_part


def test_verdict_counts_and_line() -> None:
    gates = [
        {"id": "a", "status": "passed", "ok": True},
        {"id": "b", "status": "failed", "ok": False},
        {"id": "c", "status": "inconclusive", "ok": False},
        {"id": "d", "status": "inconclusive", "allowed": True, "on_inconclusive": "warn"},
    ]
    v = verdict(gates)
    assert v["counts"] == {
        "total": 4,
        "passed": 1,
        "failed": 1,
        "inconclusive": 2,
        "error": 0,
        "allowed": 1,
    }
    assert v["blocking"] == ["b", "c"]
    assert v["warnings"] == ["d"]
    assert not v["ok"]
    assert v["line"] == "segfair: FAILED — 2 of 4 gates do not hold: b, c"
    assert verdict(gates[:1])["line"] == "segfair: PASSED — 1 gate passed"
    assert verdict([gates[0], gates[3]])["line"] == (
        "segfair: PASSED — 1 gate passed, 1 inconclusive (not blocking)"
    )
    assert verdict([gates[0], gates[2]])["line"] == (
        "segfair: INCONCLUSIVE — 1 of 2 gates is undecided: c"
    )
    assert verdict([gates[0], {"id": "e", "status": "error", "ok": False}])["status"] == "error"
    # a report written before schema 2 still reads
    old = verdict([{"id": "f", "status": "insufficient_evidence", "ok": False}])
    assert old["counts"]["inconclusive"] == 1
    assert verdict([])["status"] == "no_gates"


# ---- HTML -------------------------------------------------------------------------------------


def test_html_is_self_contained_with_every_section_in_order(html: str) -> None:
    positions = [html.index(f'<section id="{s}"') for s in SECTIONS]
    assert positions == sorted(positions)
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
    ) in html
    # nothing to fetch: no script, no stylesheet link, no URL of any kind
    for banned in (
        "<script",
        "<link",
        "<iframe",
        "@import",
        "url(",
        "http://",
        "https://",
        " src=",
    ):
        assert banned not in html, banned
    assert "@media print" in html
    # charts have text alternatives, and a table next to them
    assert html.count("<svg") >= 10
    for chart in re.findall(r"<svg class=\"chart\"[^>]*>", html):
        assert 'role="img"' in chart
        assert "aria-labelledby" in chart
    rulers = html[html.index('id="rulers"') : html.index('id="labels"')]
    assert "<table" in rulers
    assert "expert (trusted)" in rulers
    assert "automated" in rulers
    worst = html[html.index('id="worst"') : html.index('id="provenance"')]
    assert worst.count('class="card worst-case"') == 6
    assert '<path d="M' in worst


def test_html_shows_the_gates_and_their_status(doc: dict[str, Any], html: str) -> None:
    gates = html[html.index('id="gates"') : html.index('id="rulers"')]
    for g in doc["gates"]:
        assert g["id"] in gates
    assert "FAILED" in gates
    assert "PASSED" in gates
    assert "INCONCLUSIVE (warning)" in gates
    assert "Okabe" not in html  # a palette, not a word on the page
    assert report.TRUSTED_COLOUR in html
    assert report.AUTOMATED_COLOURS[0] in html


def test_hostile_names_render_as_text(hostile: dict[str, Any]) -> None:
    html = render_html(hostile)
    assert XSS not in html
    assert "<script" not in html
    assert "<b>" not in html
    assert "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the case id, shown as text
    cov = html[html.index('id="coverage"') : html.index('id="worst"')]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cov
    md = render_markdown(hostile)
    assert XSS not in md
    assert "<b>" not in md
    assert "<i>" not in md
    # every | from the data is escaped: each table keeps one column count on every row
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) == 2
    for t in tables:
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in t}) == 1
    for a in github_annotations(hostile):
        assert "\n" not in a
        assert re.match(r"::error (file=[^,:]*,line=\d+,)?title=segfair gate failed%3A ", a)


def test_markdown_escapes_table_cells() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("`x`") == "\\`x\\`"
    assert md_escape("<b>&") == "&lt;b&gt;&amp;"
    assert md_escape("one\ntwo\r\nthree") == "one<br>two<br>three"
    assert md_escape("a\\|b") == "a\\\\\\|b"  # a backslash cannot un-escape the pipe


def test_markdown_cells_mention_nobody() -> None:
    # a model or group named like a GitHub team must not notify it when the summary is posted
    assert md_escape("@octo-org/reviewers") == "@&#8203;octo-org/reviewers"
    assert "@o" not in md_escape("cc @octocat and me@x.org")


def test_markdown_summary(doc: dict[str, Any]) -> None:
    md = markdown_report(doc)
    assert md is not None
    assert md == render_markdown(doc)
    lines = md.splitlines()
    assert lines[0].startswith("## ❌ segfair: FAILED")
    assert (
        "| gate | status | reason | estimate [interval] | threshold | "
        "decidable limit (80% power) | decision rule |"
    ) in md
    assert "### The ruler: dice of trained_on_automated by age_group" in md
    assert "expert (trusted)" in md
    assert "**gap**" in md
    assert len(md) < 8000  # a step summary, not the report


# ---- terminal and GitHub ----------------------------------------------------------------------


def _gate(**kw: Any) -> dict[str, Any]:
    base = {
        "id": "gap[dice,age_group,candidate,expert]",
        "kind": "gap",
        "status": "failed",
        "ok": False,
        "estimate": 0.083,
        "lower": 0.051,
        "upper": 0.112,
        "threshold": 0.05,
        "decision_rule": "upper 95% bound < 0.05",
        "message": "The gap is too large.",
    }
    return {**base, **kw}


def test_summary_lines(tmp_path: Path) -> None:
    gates = [
        _gate(),
        _gate(id="a", status="passed", ok=True),
        _gate(id="b", status="passed", ok=True),
        _gate(
            id="c",
            status="inconclusive",
            ok=False,
            estimate=None,
            message="Cannot decide: group 'young' is too small.",
        ),
    ]
    html = tmp_path / "r.html"
    lines = summary_lines_from_dicts(gates, [html, tmp_path / "r.json"])
    assert lines[0] == (
        "FAILED gap[dice,age_group,candidate,expert]: 0.083 [0.051, 0.112], "
        "rule: upper 95% bound < 0.05"
    )
    # blocking gates first, passed ones last (issue 15: one order everywhere)
    assert lines[1] == "INCONCLUSIVE c: Cannot decide: group 'young' is too small."
    assert lines[4] == "1 gate failed, 2 passed, 1 inconclusive"
    assert lines[5] == f"reports: {html}, {tmp_path / 'r.json'}"
    assert lines[6] == f"open {html} for the evidence"
    assert lines[-1].startswith("segfair: FAILED — 2 of 4 gates do not hold")
    # no HTML written: say how to get it, in the caller's own words
    assert "--segfair-html PATH" in summary_lines_from_dicts(gates, [])[-2]
    one = summary_lines_from_dicts([_gate(status="passed", ok=True)], [])
    assert one[1] == "1 gate passed"
    assert one[-1] == "segfair: PASSED — 1 gate passed"
    assert summary_lines_from_dicts([], [])[-1].startswith("segfair: NO GATES")


def test_summary_lines_of_results(synth: tuple[SegfairSession, Any]) -> None:
    _, results = synth
    lines = summary_lines(results, [])
    assert len(lines) == len(results) + 4
    assert "--html PATH" in lines[-2]
    assert lines[-1] == verdict(order_gates([r.to_dict() for r in results]))["line"]


def test_github_annotations_escape_per_workflow_command_rules() -> None:
    gates = [
        _gate(message="50% over\r\nthe limit: see report"),
        _gate(id="ok", status="passed", ok=True),
        _gate(id="allowed", status="inconclusive", allowed=True, ok=True, message="open"),
        _gate(id="quiet", status="inconclusive", ok=True, on_inconclusive="pass"),
        _gate(id="broken", status="error", ok=False, message="unknown metric"),
    ]
    # in the order of every report: errors, failed, then warnings (issue 15)
    assert github_annotations({"gates": gates}) == [
        "::error title=segfair gate error%3A broken::unknown metric",
        "::error title=segfair gate failed%3A gap[dice%2Cage_group%2Ccandidate%2Cexpert]::"
        "50%25 over%0D%0Athe limit: see report",
        "::warning title=segfair gate inconclusive (not blocking)%3A allowed::open",
    ]


# ---- files ------------------------------------------------------------------------------------


def test_write_reports_atomically(doc: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    html, js, md = out / "r.html", out / "sub" / "r.json", out / "r.md"
    js.parent.mkdir(parents=True)
    js.write_text("old")
    written = write_reports(doc, html=html, json_path=str(js), md=md)
    assert written == [html, js, md]
    assert json.loads(js.read_text())["schema"] == "segfair-report/2"
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert md.read_text().startswith("## ")
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert write_reports(doc) == []


def test_a_rendering_error_writes_nothing(
    doc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(report.writer, "render_markdown", broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_reports(
            doc, html=tmp_path / "r.html", json_path=tmp_path / "r.json", md=tmp_path / "r.md"
        )
    assert list(tmp_path.iterdir()) == []


def test_session_writes_reports(synth: tuple[SegfairSession, Any], tmp_path: Path) -> None:
    session, _ = synth
    written = session.write_reports(json_path=tmp_path / "r.json", md=tmp_path / "r.md")
    assert [p.name for p in written] == ["r.json", "r.md"]


# ---- pieces -----------------------------------------------------------------------------------


def test_outline_path_traces_every_boundary_edge() -> None:
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:4, 2:6] = True
    mask[4, 3] = True
    path = outline_path(mask)
    length = 0
    for cmd in re.findall(r"M(\d+) (\d+)([HV])(\d+)", path):
        x, y, kind, end = int(cmd[0]), int(cmd[1]), cmd[2], int(cmd[3])
        length += abs(end - (x if kind == "H" else y))
    # the perimeter in pixel edges: 2 × (4 + 3) for the block, + 2 for the bump
    assert length == 16
    assert outline_path(np.zeros((3, 3), dtype=bool)) == ""


def test_doctests() -> None:
    failed = attempted = 0
    for name in sorted(pkgutil.iter_modules(report.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{report.__name__}.{name.name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        failed, attempted = failed + result.failed, attempted + result.attempted
    assert failed == 0
    assert attempted >= 5


def test_a_warm_report_draws_the_worst_cases_from_the_cache_without_reading_a_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segfair.report import drawings as report_module
    from segfair.synth import make_cohort

    path = make_cohort(tmp_path / "c", n_cases=30, shape=(16, 16, 8), preset="hidden", seed=1)
    cfg = load_config(path).model_copy(update={"n_boot": 100, "min_group_size": 3})

    def worst(session: SegfairSession) -> Any:
        results = session.check_config_gates()
        doc = build_report(
            session.audit, results, config=cfg, seed=session.seed, cohort=session.cohort
        )
        return doc["worst_cases"]

    cold = worst(SegfairSession(cfg, workers=1, progress=False))
    assert cold["available"]
    assert len(cold["cases"]) > 0
    assert list((tmp_path / "c" / ".segfair_cache" / "drawings").rglob("*.json"))

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a warm report read a mask")

    monkeypatch.setattr(report_module, "_read", no_reading)
    assert worst(SegfairSession(cfg, workers=1, progress=False)) == cold


def test_a_run_without_the_cache_keeps_no_drawings(tmp_path: Path) -> None:
    from segfair.synth import make_cohort

    path = make_cohort(tmp_path / "c", n_cases=30, shape=(16, 16, 8), preset="hidden", seed=1)
    cfg = load_config(path).model_copy(update={"n_boot": 100, "min_group_size": 3})
    session = SegfairSession(cfg, workers=1, progress=False, cache=False)  # --no-cache
    results = session.check_config_gates()
    doc = build_report(session.audit, results, config=cfg, seed=0, cohort=session.cohort)
    assert doc["worst_cases"]["available"]
    assert not (tmp_path / "c" / ".segfair_cache").exists()


# ---- warnings ---------------------------------------------------------------------------------


def test_a_site_column_while_cluster_is_not_set_is_warned_in_every_report(
    doc: dict[str, Any], html: str
) -> None:
    # synthetic MAMA-MIA metadata: four datasets and three manufacturers, no cluster configured
    (warning,) = doc["warnings"]
    assert warning.startswith("'dataset' (4 values), 'manufacturer' (")
    assert 'Set cluster = "dataset"' in warning
    assert "looks like a site" not in warning
    assert "look like sites" in warning
    assert 'class="warnings"' in html
    assert "look like sites" in html
    md = render_markdown(doc)
    assert "> ⚠️ **Warnings**" in md
    assert "look like sites" in md


def test_warnings_holding_markup_or_newlines_are_escaped_in_html_and_markdown(
    doc: dict[str, Any],
) -> None:
    hostile = dict(doc, warnings=[f"cluster {XSS}: group '@team\\n' ![x](https://x) |"])
    assert XSS not in render_html(hostile)
    md = render_markdown(hostile)
    assert XSS not in md
    assert "](https" not in md
    assert "@team" not in md
    assert render_markdown(dict(doc, warnings=[])).count("Warnings") == 0


def test_a_report_built_without_the_cohort_carries_the_same_warnings(
    synth: tuple[SegfairSession, Any], doc: dict[str, Any]
) -> None:
    session, results = synth
    alone = build_report(session.audit, results, config=session.config, seed=session.seed)
    assert alone["warnings"] == doc["warnings"] == session.warnings


def test_the_schema_lists_every_gate_status_reason_and_policy() -> None:
    from segfair.gates import ON_INCONCLUSIVE, REASONS, STATUSES

    gate = report.load_schema()["$defs"]["gate"]["properties"]
    assert tuple(gate["status"]["enum"]) == STATUSES
    assert tuple(gate["reason"]["enum"]) == REASONS
    assert tuple(gate["on_inconclusive"]["enum"]) == ON_INCONCLUSIVE
    verdict_status = report.load_schema()["properties"]["verdict"]["properties"]["status"]["enum"]
    assert verdict_status == [*STATUSES, "no_gates"]


def test_a_report_that_cannot_be_written_leaves_the_earlier_set_whole(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    from segfair.errors import SegfairError

    html, md = tmp_path / "r.html", tmp_path / "r.md"
    html.write_text("old html")
    md.write_text("old md")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(SegfairError) as err:
        write_reports(doc, html=html, json_path=blocked / "r.json", md=md)
    assert str(blocked / "r.json") in str(err.value)  # the report's path, not a temporary one
    assert ".tmp" not in str(err.value)
    assert html.read_text() == "old html"
    assert md.read_text() == "old md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "r.html", "r.md"]


# ---- issue 15: numbers for humans, units, one order ---------------------------------------------
def test_a_ratio_interval_with_a_tiny_lower_bound_prints_for_humans() -> None:
    from segfair.report import fmt, fmt_interval

    text = fmt_interval({"estimate": 0.62, "lower": 1.6e-12, "upper": 1.0})
    assert text == "0.62 [0.00, 1.00]"
    assert "e-" not in fmt(1.6e-12)


def test_the_markdown_gate_table_says_mm_for_a_distance_gate() -> None:
    gate = _gate(estimate=4.2, lower=2.95, upper=6.1, threshold=3.0, unit="mm")
    table_row = next(
        line for line in render_markdown({"gates": [gate]}).splitlines() if line.startswith("| gap")
    )
    assert "4.20 [2.95, 6.10] mm" in table_row
    assert "| 3 mm |" in table_row


def test_gates_are_ordered_by_severity_then_where_they_are_declared() -> None:
    def g(i: str, status: str, origin: str | None = None, line: int = 0) -> dict[str, Any]:
        loc = {"origin": origin, "file": "f", "line": line} if origin else None
        return {"id": i, "status": status, "ok": status == "passed", "location": loc}

    gates = [
        g("p", "passed", "configuration", 1),
        g("t2", "failed", "test", 30),
        g("t1", "failed", "test", 10),
        g("c2", "failed", "configuration", 20),
        g("api", "failed"),
        g("e", "error", "test", 5),
        g("i", "inconclusive", "configuration", 3),
    ]
    assert [x["id"] for x in order_gates(gates)] == ["e", "c2", "t1", "t2", "api", "i", "p"]
    assert order_gates(list(reversed(gates))) == order_gates(gates)  # not the run's order
