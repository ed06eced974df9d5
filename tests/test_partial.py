"""Partial trusted rulers and sampling-design weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from segfair.audit import Audit
from segfair.config import parse_config
from segfair.errors import ConfigError
from segfair.planner import PlanError, design_weights
from segfair.scores import Scores
from segfair.stats import build_design, group_statistic


def make_scores(n: int = 600, seed: int = 0) -> Scores:
    """Two attributes; dice depends on age and on sex; the automated ruler shrinks the gap."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:04d}" for i in range(n)]
    age = rng.choice(["young", "old"], size=n, p=[0.3, 0.7])
    sex = rng.choice(["f", "m"], size=n)
    base = 0.8 - 0.1 * (age == "young") - 0.05 * (sex == "f")
    expert = np.clip(base + rng.normal(0, 0.08, n), 0, 1)
    auto = np.clip(0.8 - 0.03 * (age == "young") + rng.normal(0, 0.05, n), 0, 1)
    rows = [("m", "expert", expert), ("m", "auto", auto)]
    table = pd.concat(
        [
            pd.DataFrame({"case_id": ids, "model": m, "ruler": r, "metric": "dice", "value": v})
            for m, r, v in rows
        ],
        ignore_index=True,
    )
    agreement = pd.DataFrame(
        {
            "case_id": ids,
            "ruler": "auto",
            "reference": "expert",
            "metric": "dice",
            "value": np.clip(0.9 - 0.1 * (age == "young") + rng.normal(0, 0.03, n), 0, 1),
        }
    )
    groups = pd.DataFrame({"age": age, "sex": sex}, index=pd.Index(ids, name="case_id"))
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=("m",),
        agreement=agreement,
    )


def keep_expert(scores: Scores, keep: set[str]) -> Scores:
    t = scores.table
    table = t[(t["ruler"] != scores.trusted_ruler) | t["case_id"].isin(keep)]
    agreement = scores.agreement[scores.agreement["case_id"].isin(keep)]
    return dataclasses.replace(scores, table=table, agreement=agreement)


def oversampled(scores: Scores, seed: int = 1) -> tuple[Scores, pd.Series]:
    fractions = {"young": 0.5, "old": 0.1}
    rng = np.random.default_rng(seed)
    age = scores.groups["age"]
    keep = {c for c, a in age.items() if rng.random() < fractions[a]}
    weights = design_weights({"by": "age", "fractions": fractions}, scores.groups)
    return keep_expert(scores, keep), weights


def test_group_statistic_with_unit_weights_equals_the_unweighted_one() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    x[3, 0] = np.nan
    d = build_design(rng.integers(0, 3, 50), ("a", "b", "c"), key=("g",), n_boot=100, seed=0)
    for stat in ("mean", "median"):
        plain = group_statistic(d, x, stat)  # type: ignore[arg-type]
        ones = group_statistic(d, x, stat, np.ones(50))  # type: ignore[arg-type]
        np.testing.assert_allclose(plain.estimate, ones.estimate)
        np.testing.assert_allclose(plain.reps, ones.reps)


def test_weighted_means_are_hajek_estimates() -> None:
    x = np.array([[1.0], [2.0], [3.0], [np.nan]])
    d = build_design(np.zeros(4, int), ("a",), key=("g",), n_boot=100, seed=0)
    r = group_statistic(d, x, "mean", np.array([1.0, 1.0, 2.0, 5.0]))
    assert r.estimate[0, 0] == pytest.approx((1 + 2 + 6) / 4)
    assert r.n[0, 0] == 3


def test_a_partial_ruler_uses_the_labelled_cases_and_counts_them_per_group() -> None:
    scores = make_scores()
    keep = set(list(scores.groups.index)[::5])
    audit = Audit(keep_expert(scores, keep), n_boot=200)
    n = audit.by_group("dice", by="age", model="m").by_group["n"]
    expected = scores.groups.loc[sorted(keep), "age"].value_counts()
    assert n.to_dict() == expected.reindex(n.index).to_dict()


def test_ruler_distortion_and_label_audit_are_paired_on_the_labelled_cases() -> None:
    scores = make_scores()
    keep = set(list(scores.groups.index)[::4])
    audit = Audit(keep_expert(scores, keep), n_boot=200)
    d = audit.ruler_distortion("dice", by="age", model="m", automated="auto")
    assert d.by_group.loc["auto"]["n"].sum() == len(keep)
    assert d.by_group.loc["expert"]["n"].sum() == len(keep)
    la = audit.label_audit(by="age", metrics=("dice",))
    assert la.by_group["n"].sum() == len(keep)


def test_design_weights_leave_within_stratum_group_means_alone() -> None:
    part, w = oversampled(make_scores())
    plain = Audit(part, n_boot=200).by_group("dice", by="age", model="m")
    weighted = Audit(part, n_boot=200, design_weights=w).by_group("dice", by="age", model="m")
    pd.testing.assert_series_equal(plain.by_group["estimate"], weighted.by_group["estimate"])
    assert plain.overall["estimate"] != pytest.approx(weighted.overall["estimate"])


def test_design_weights_correct_the_overall_and_cross_attribute_estimates() -> None:
    scores = make_scores(n=3000)
    full = Audit(scores, n_boot=200)
    errs_plain, errs_weighted = [], []
    for seed in range(101, 106):
        part, w = oversampled(scores, seed=seed)
        for audit, errs in (
            (Audit(part, n_boot=200), errs_plain),
            (Audit(part, n_boot=200, design_weights=w), errs_weighted),
        ):
            by_sex = audit.by_group("dice", by="sex", model="m")
            truth = full.by_group("dice", by="sex", model="m")
            errs.append(float(by_sex.overall["estimate"] - truth.overall["estimate"]))
    # oversampling the (worse) young group biases the unweighted overall mean downwards
    assert np.mean(errs_plain) < -0.01
    assert abs(np.mean(errs_weighted)) < 0.005


def test_design_weights_do_not_touch_complete_series() -> None:
    part, w = oversampled(make_scores())
    plain = Audit(part, n_boot=200).by_group("dice", by="sex", model="m", ruler="auto")
    weighted = Audit(part, n_boot=200, design_weights=w).by_group(
        "dice", by="sex", model="m", ruler="auto"
    )
    assert plain.overall["estimate"] == weighted.overall["estimate"]


def test_a_weights_column_gives_the_design_weights() -> None:
    g = pd.DataFrame({"age": ["a", "b"]}, index=["x", "y"])
    meta = pd.DataFrame({"w": ["2", "10"]}, index=["x", "y"])
    assert design_weights({"weights": "w"}, g, meta).tolist() == [2.0, 10.0]


def test_a_design_without_a_fraction_for_some_group_is_an_error() -> None:
    g = pd.DataFrame({"age": ["young", "old"]}, index=["x", "y"])
    with pytest.raises(PlanError, match="old"):
        design_weights({"by": "age", "fractions": {"young": 0.5}}, g)


def test_the_design_table_is_validated_in_the_configuration() -> None:
    base = {
        "cases": "m.csv",
        "rulers": {"expert": "e/{case_id}.nii.gz"},
        "models": {"m": "p/{case_id}.nii.gz"},
    }
    cfg = parse_config({**base, "design": {"by": "age", "fractions": {"young": 0.3}}})
    assert cfg.design is not None
    assert cfg.design.fractions == {"young": 0.3}
    with pytest.raises(ConfigError, match="either"):
        parse_config({**base, "design": {"by": "age"}})
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        parse_config({**base, "design": {"by": "age", "fractions": {"young": 1.5}}})
