"""What a user sees of prediction-powered estimates: ``Audit.prediction_powered``, the gate
results that name their estimator and carry the prediction-powered table, and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from segfair.audit import Audit, AuditError, PredictionPoweredResult
from segfair.gates import (
    AmplificationGate,
    GapGate,
    GateResult,
    RulerShrinkageGate,
    evaluate_gate,
    parse_gate,
)
from segfair.scores import Scores

N_BOOT = 200


def partial_scores(
    *,
    n: int = 600,
    frac: float = 0.2,
    rho: float = 0.95,
    seed: int = 0,
    proxy_complete: bool = True,
    constant_proxy: bool = False,
) -> tuple[Scores, pd.DataFrame]:
    """A cohort whose automated ruler scores every case (biased by +0.03 for the young) and
    whose expert ruler labels a uniform sample; two models. Also the per-case truth."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n)]
    young = rng.random(n) < 0.5
    lab = rng.random(n) < frac
    rows = []
    truth = {}
    for k, model in enumerate(("m", "base")):
        t = np.clip(0.8 - (0.05 + 0.02 * k) * young + 0.08 * rng.standard_normal(n), 0, 1)
        noise = np.sqrt(1 / rho**2 - 1) * 0.08 * rng.standard_normal(n)
        a = np.clip(t + np.where(young, 0.03, 0.0) + noise, 0, 1)
        if constant_proxy:
            a = np.where(young, 0.7, 0.8)
        has_a = np.ones(n, dtype=bool) if proxy_complete else rng.random(n) < 0.9
        rows.append(
            pd.DataFrame(
                {"case_id": np.array(ids)[has_a], "model": model, "ruler": "auto"}
                | {"metric": "dice", "value": a[has_a]}
            )
        )
        rows.append(
            pd.DataFrame(
                {"case_id": np.array(ids)[lab], "model": model, "ruler": "expert"}
                | {"metric": "dice", "value": t[lab]}
            )
        )
        truth[model] = (t, a)
    groups = pd.DataFrame(
        {"age": np.where(young, "young", "old")}, index=pd.Index(ids, name="case_id")
    )
    scores = Scores(
        table=pd.concat(rows, ignore_index=True),
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=("m", "base"),
    )
    per_case = pd.DataFrame(
        {
            "young": young,
            "labelled": lab,
            "t": truth["m"][0],
            "a": truth["m"][1],
        },
        index=ids,
    )
    return scores, per_case


@pytest.fixture(scope="module")
def scores() -> tuple[Scores, pd.DataFrame]:
    return partial_scores()


def test_the_table_sets_the_prediction_powered_means_beside_the_labelled_only_ones(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    audit = Audit(scores[0], n_boot=N_BOOT)
    r = audit.prediction_powered("dice", by="age", model="m")
    assert isinstance(r, PredictionPoweredResult)
    ppi = audit.with_estimator("ppi").by_group("dice", by="age", model="m").by_group
    lab = audit.with_estimator("labelled").by_group("dice", by="age", model="m").by_group
    for col in ("n", "estimate", "lower", "upper"):
        assert r.by_group[col].tolist() == ppi[col].tolist()
    for col in ("estimate", "lower", "upper"):
        assert r.by_group[f"labelled_{col}"].tolist() == lab[col].tolist()
    assert r.proxy == "auto"
    assert r.ruler == "expert"
    assert r.by == ("age",)
    gap = audit.with_estimator("ppi").gap("dice", by="age", model="m").gap
    assert (r.gap.estimate, r.gap.lower, r.gap.upper) == (gap.estimate, gap.lower, gap.upper)
    assert r.overall["n_all"] == 600


def test_the_rectifier_is_the_mean_of_trusted_minus_proxy_over_the_labelled_cases(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    r = Audit(scores[0], n_boot=N_BOOT).prediction_powered("dice", by="age", model="m")
    cases = scores[1]
    for group, young in (("young", True), ("old", False)):
        mine = cases[(cases["young"] == young)]
        labelled = mine[mine["labelled"]]
        row = r.by_group.loc[group]
        assert row["n"] == len(labelled)
        assert row["n_all"] == len(mine)
        assert row["rectifier"] == pytest.approx((labelled["t"] - labelled["a"]).mean())
        assert row["proxy_mean"] == pytest.approx(mine["a"].mean())
    # the automated ruler reads the young 0.03 high: the rectifier says so
    assert r.by_group.loc["young", "rectifier"] == pytest.approx(-0.03, abs=0.01)
    assert r.by_group.loc["old", "rectifier"] == pytest.approx(0.0, abs=0.01)


def test_a_well_correlated_proxy_narrows_every_interval_and_raises_the_effective_n(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    r = Audit(scores[0], n_boot=N_BOOT).prediction_powered("dice", by="age", model="m")
    assert (r.by_group["width_ratio"] < 0.75).all()
    assert (r.by_group["effective_n"] > 1.5 * r.by_group["n"]).all()
    assert (r.by_group["lam"] > 0.5).all()
    assert r.gap.width < r.labelled_gap.width


def test_a_proxy_that_says_nothing_leaves_the_labelled_mean_and_its_sample_size() -> None:
    # a constant proxy within each group: λ = 0, the estimate is the labelled mean
    s, _ = partial_scores(constant_proxy=True)
    r = Audit(s, n_boot=N_BOOT).prediction_powered("dice", by="age", model="m")
    assert r.by_group["lam"].tolist() == [0.0, 0.0]
    assert r.by_group["estimate"].to_numpy() == pytest.approx(
        r.by_group["labelled_estimate"].to_numpy()
    )
    # the same variance, up to the small-sample factors k / (k − 1) of n and of N cases
    assert r.by_group["effective_n"].to_numpy() == pytest.approx(
        r.by_group["n"].to_numpy(), rel=0.02
    )


def test_the_result_is_the_same_whatever_the_audits_estimator(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    one = Audit(scores[0], n_boot=N_BOOT).prediction_powered("dice", by="age", model="m")
    two = Audit(scores[0], n_boot=N_BOOT, estimator="ppi").prediction_powered(
        "dice", by="age", model="m"
    )
    assert one.to_dict() == two.to_dict()


def test_its_dict_is_strict_json_and_valid_against_the_report_schema(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    r = Audit(scores[0], n_boot=N_BOOT).prediction_powered("dice", by="age", model="m")
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert [g["group"] for g in d["groups"]] == ["old", "young"]
    assert isinstance(d["groups"][0]["n"], int)
    assert _schema_errors(d, "#/$defs/prediction_powered") == []


@pytest.mark.parametrize(
    ("make", "kwargs", "says"),
    [
        (lambda: partial_scores(frac=1.0)[0], {}, "every case has a 'expert' label"),
        (lambda: partial_scores()[0], {"ruler": "auto"}, "of the trusted ruler 'expert'"),
        (lambda: partial_scores()[0], {"ruler": "nope"}, "nope"),
        (
            lambda: partial_scores(proxy_complete=False)[0],
            {},
            "no other ruler scores every case. Set proxy = one of: auto",
        ),
    ],
)
def test_it_is_refused_with_the_reason_when_there_is_nothing_to_power(
    make: Any, kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(AuditError, match=None) as err:
        Audit(make(), n_boot=N_BOOT).prediction_powered("dice", by="age", model="m", **kwargs)
    assert says in str(err.value)


def test_it_is_refused_for_medians_naming_the_statistic_to_use(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    with pytest.raises(AuditError, match="statistic = 'mean'"):
        Audit(scores[0], n_boot=N_BOOT, statistic="median").prediction_powered(
            "dice", by="age", model="m"
        )


# ---- gate results ----------------------------------------------------------------------------


def test_a_gate_result_names_the_estimator_it_was_decided_with(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    audit = Audit(scores[0], n_boot=N_BOOT, min_group_size=5)
    gate = dict(metric="dice", by="age", model="m", max=0.2)
    labelled = evaluate_gate(audit, GapGate(**gate))
    assert labelled.estimator == "labelled"
    assert labelled.prediction_powered is None
    assert "prediction_powered" not in labelled.to_dict()
    # the run's estimator, when the gate names none
    run = evaluate_gate(Audit(scores[0], n_boot=N_BOOT, estimator="ppi"), GapGate(**gate))
    assert run.estimator == "ppi"
    assert run.prediction_powered is not None
    # a kind without the choice names none
    coverage = evaluate_gate(audit, parse_gate({"kind": "coverage", "by": "age", "min": 0.1}))
    assert coverage.estimator is None
    assert coverage.to_dict()["estimator"] is None


def test_a_gate_decided_prediction_powered_carries_the_table_its_verdict_rests_on(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    audit = Audit(scores[0], n_boot=N_BOOT, min_group_size=5)
    r = evaluate_gate(audit, GapGate(metric="dice", by="age", model="m", max=0.2, estimator="ppi"))
    assert r.id == "gap[dice,age,m,ppi]"
    assert r.estimator == "ppi"
    assert r.prediction_powered is not None
    assert len(r.prediction_powered) == 1
    block = r.prediction_powered[0]
    assert block["model"] == "m"
    assert block["proxy"] == "auto"
    # the gate's decisive interval is the block's prediction-powered gap
    assert block["gap"]["estimate"] == pytest.approx(r.estimate)
    assert block["gap"]["upper"] == pytest.approx(r.upper)
    assert block["gap"]["upper"] - block["gap"]["lower"] < (
        block["labelled_gap"]["upper"] - block["labelled_gap"]["lower"]
    )
    again = GateResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.to_dict() == r.to_dict()
    # the text a failed assertion shows says what the labelled cases alone would have given
    assert "estimator:     ppi (m, proxy auto): the labelled cases alone give a gap of" in (
        r.explain()
    )


def test_an_amplification_gate_carries_both_models_and_a_ruler_gate_its_trusted_side(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    audit = Audit(scores[0], n_boot=N_BOOT, min_group_size=5, estimator="ppi")
    amp = evaluate_gate(
        audit, AmplificationGate(metric="dice", by="age", model="m", baseline="base", max=5.0)
    )
    assert amp.prediction_powered is not None
    assert [b["model"] for b in amp.prediction_powered] == ["m", "base"]
    shrink = evaluate_gate(
        audit,
        RulerShrinkageGate(metric="dice", by="age", model="m", automated="auto", max=0.9),
    )
    assert shrink.prediction_powered is not None
    assert [b["ruler"] for b in shrink.prediction_powered] == ["expert"]


def test_a_gate_on_an_automated_ruler_has_no_prediction_powered_table(
    scores: tuple[Scores, pd.DataFrame],
) -> None:
    audit = Audit(scores[0], n_boot=N_BOOT, min_group_size=5, estimator="ppi")
    r = evaluate_gate(audit, GapGate(metric="dice", by="age", model="m", ruler="auto", max=0.2))
    assert r.estimator == "ppi"
    assert r.prediction_powered is None


# ---- the report ------------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"


def test_the_prediction_powered_golden_report_is_valid_and_shows_the_estimator() -> None:
    doc = json.loads((GOLDEN / "partial_ppi.json.golden").read_text("utf-8"))
    doc["generated_at"] = "2026-01-01T00:00:00Z"  # normalised in the golden file
    assert _schema_errors(doc) == []
    assert doc["provenance"]["estimator"] == "ppi"
    assert doc["provenance"]["proxy"] == "automated"
    powered = [g for g in doc["gates"] if g.get("prediction_powered")]
    assert powered
    assert all(g["estimator"] == "ppi" for g in powered)
    html = (GOLDEN / "partial_ppi.html.golden").read_text("utf-8")
    assert "estimator ppi (proxy: automated)" in html
    assert html.count("<h4>Prediction-powered:") == sum(
        len(g["prediction_powered"]) for g in powered
    )
    assert "effective n" in html
    assert "labelled only" in html
    md = (GOLDEN / "partial_ppi.md.golden").read_text("utf-8")
    assert "**Prediction-powered**" in md
    assert "· estimator ppi ·" in md


def test_a_labelled_report_names_its_estimator_but_shows_no_prediction_powered_panel() -> None:
    doc = json.loads((GOLDEN / "partial.json.golden").read_text("utf-8"))
    assert doc["provenance"]["estimator"] == "labelled"
    assert doc["provenance"]["proxy"] is None
    assert {g["estimator"] for g in doc["gates"]} <= {"labelled", None}
    assert not any("prediction_powered" in g for g in doc["gates"])
    assert "Prediction-powered" not in (GOLDEN / "partial.html.golden").read_text("utf-8")
    assert "rediction-powered" not in (GOLDEN / "partial.md.golden").read_text("utf-8")


def _schema_errors(doc: dict[str, Any], ref: str | None = None) -> list[str]:
    import jsonschema

    schema = json.loads(
        (Path(__file__).parents[1] / "templates" / "report.schema.json").read_text("utf-8")
    )
    if ref is not None:
        schema = {**schema, "$ref": ref}
        schema.pop("required", None)
        schema.pop("properties", None)
        schema.pop("type", None)
        schema.pop("additionalProperties", None)
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(doc)]


def test_the_gaps_may_be_taken_over_some_groups_while_the_table_lists_every_group() -> None:
    s, cases = partial_scores()
    three = np.where(cases["young"], "young", np.where(np.arange(600) % 2, "old", "older"))
    s.groups["age3"] = pd.Categorical(three)
    audit = Audit(s, n_boot=N_BOOT)
    r = audit.prediction_powered("dice", by="age3", model="m", groups=["old", "older"])
    assert sorted(r.by_group.index) == ["old", "older", "young"]
    only = audit.with_estimator("ppi").gap("dice", by="age3", model="m", groups=["old", "older"])
    assert r.gap == only.gap
    lab = audit.with_estimator("labelled").gap(
        "dice", by="age3", model="m", groups=["old", "older"]
    )
    assert r.labelled_gap == lab.gap
    assert "the gaps are taken over the groups 'old', 'older' only" in r.notes


def test_a_gate_deciding_on_its_large_groups_only_takes_the_tables_gaps_over_them() -> None:
    s, cases = partial_scores()
    three = np.where(cases["young"], "young", np.where(np.arange(600) % 10, "old", "oldest"))
    s.groups["age3"] = pd.Categorical(three)
    audit = Audit(s, n_boot=N_BOOT, min_group_size=20, estimator="ppi")
    r = evaluate_gate(audit, GapGate(metric="dice", by="age3", model="m", max=0.5))
    assert r.prediction_powered is not None
    [block] = r.prediction_powered
    assert len(block["groups"]) == 3  # 'oldest' (about 6 labelled) is listed, not decided on
    assert block["gap"]["estimate"] == pytest.approx(r.estimate)
    assert block["gap"]["upper"] == pytest.approx(r.upper)
