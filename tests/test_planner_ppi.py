"""The label planner with prediction-powered estimates: the PPI variance, its floor, the plans."""

from __future__ import annotations

import io
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segfair.audit import Audit
from segfair.gates import GapGate, MinGroupMetricGate, RulerShrinkageGate
from segfair.planner import plan
from segfair.planner.allocation import _ppi_mean_stats, _ppi_stats
from segfair.scores import Scores

SIGMA = 0.08  # sd of the trusted Dice within a group


def partial_scores(
    *,
    n: int = 1200,
    frac: float = 0.15,
    rho: float = 0.9,
    seed: int = 0,
    gap: float = 0.05,
    young_frac: float | None = None,
) -> Scores:
    """Two age groups, a complete automated ruler correlated ``rho`` with the trusted one (and
    biased by +0.03 in the young), expert labels on a uniform ``frac`` of the cases (of the
    young: ``young_frac`` if given, a stratified design)."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n)]
    young = rng.random(n) < 0.5
    t = 0.8 - gap * young + SIGMA * rng.standard_normal(n)
    if rho > 0:
        noise = math.sqrt(1 / rho**2 - 1) * SIGMA * rng.standard_normal(n)
        a = t + 0.03 * young + noise
    else:  # a proxy that knows nothing about the case
        a = 0.8 + SIGMA * rng.standard_normal(n)
    lab = rng.random(n) < np.where(young, frac if young_frac is None else young_frac, frac)
    table = pd.concat(
        [
            pd.DataFrame(
                {"case_id": ids, "model": "m", "ruler": "auto", "metric": "dice", "value": a}
            ),
            pd.DataFrame(
                {
                    "case_id": np.array(ids)[lab],
                    "model": "m",
                    "ruler": "expert",
                    "metric": "dice",
                    "value": t[lab],
                }
            ),
        ],
        ignore_index=True,
    )
    groups = pd.DataFrame(
        {"age": np.where(young, "young", "old")}, index=pd.Index(ids, name="case_id")
    )
    return Scores(
        table=table, groups=groups, trusted_ruler="expert", rulers=("expert", "auto"), models=("m",)
    )


def audit_of(rho: float, **kw: object) -> Audit:
    return Audit(partial_scores(rho=rho), n_boot=300, seed=0, **kw)  # type: ignore[arg-type]


def gap_gate(estimator: str | None = None, max_: float = 0.08) -> GapGate:
    return GapGate(metric="dice", by="age", model="m", max=max_, estimator=estimator)


def test_the_ppi_variance_formula_matches_a_simulation_of_the_estimator() -> None:
    # superpopulation: T ~ N(0.8, σ²), A = T + noise with corr(T, A) = ρ; N cases, n labelled
    big_n, n, rho, reps = 1000, 100, 0.9, 3000
    sd_a = SIGMA / rho
    lam = rho * SIGMA / sd_a  # cov(T, A) / var(A)
    # hand-derived: Var(θ̂) = σ_R²/n + (λ²σ_A² + 2λ cov(A, R))/N with cov(A, T − λA) = 0
    formula = SIGMA**2 * (1 - rho**2) / n + lam**2 * sd_a**2 / big_n
    rng = np.random.default_rng(5)
    est = np.empty(reps)
    for r in range(reps):
        t = 0.8 + SIGMA * rng.standard_normal(big_n)
        a = t + math.sqrt(sd_a**2 - SIGMA**2) * rng.standard_normal(big_n)
        lab = rng.choice(big_n, n, replace=False)
        tl, al = t[lab], a[lab]
        lam_hat = np.cov(tl, al, ddof=0)[0, 1] / np.var(a, ddof=1)  # re-tuned, as the audit
        est[r] = lam_hat * a.mean() + np.mean(tl - lam_hat * al)
    # the sample variance of 3,000 normal draws is within 3 × sqrt(2/3000) ≈ 8% of the truth
    assert np.var(est, ddof=1) == pytest.approx(formula, rel=0.08)
    labelled_only = SIGMA**2 / n
    assert formula < 0.3 * labelled_only  # and why the planner cares


def test_the_planner_estimates_the_rectifier_sd_and_the_floor_from_the_data() -> None:
    audit = Audit(partial_scores(n=20000, frac=0.2, rho=0.9, seed=1), n_boot=100)
    series = audit.with_estimator("ppi").estimand_series("dice", model="m", ruler="expert")
    stats, lam = _ppi_mean_stats(audit, series, "age")
    sd_r = SIGMA * math.sqrt(1 - 0.9**2)
    assert stats.sd / sd_r == pytest.approx([1, 1], rel=0.05)
    assert lam == pytest.approx([0.81, 0.81], rel=0.1)  # ρσ_T/σ_A = ρ²
    big_n = stats.n + stats.avail
    # λ²σ_A²/N with λσ_A = ρσ: c = (ρσ)²/N
    assert stats.floors() * big_n / (0.9 * SIGMA) ** 2 == pytest.approx([1, 1], rel=0.1)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    slope=st.floats(0.0, 2.0),
    noise=st.floats(0.01, 0.2),
)
def test_with_every_case_labelled_the_ppi_variance_is_the_labelled_one(
    seed: int, slope: float, noise: float
) -> None:
    # Σ sd_R²/N + c = Var(T)/N exactly when n = N: the floor is what labels cannot remove
    rng = np.random.default_rng(seed)
    scores = partial_scores(n=60, frac=1.0, rho=0.5, seed=seed)
    audit = Audit(scores, n_boot=100)
    a = rng.uniform(0.5, 0.9, 60)
    t = slope * a + noise * rng.standard_normal(60)
    codes = audit.grouping("age").codes
    lam = np.zeros(2)
    for i in range(2):
        ai, ti = a[codes == i], t[codes == i]
        lam[i] = np.cov(ti, ai, ddof=1)[0, 1] / np.var(ai, ddof=1)
    u = lam[codes] * a
    stats = _ppi_stats(audit, "age", u, t - u)
    for i in range(2):
        ti = t[codes == i]
        total = stats.sd[i] ** 2 / stats.n[i] + stats.floors()[i]
        assert total == pytest.approx(np.var(ti, ddof=1) / len(ti), rel=1e-9)


def test_ppi_plans_need_far_fewer_labels_when_the_proxy_tracks_the_trusted_ruler() -> None:
    audit = audit_of(0.95)
    labelled = plan(audit, gap_gate("labelled"), target_halfwidth=0.015)
    ppi = plan(audit, gap_gate("ppi"), target_halfwidth=0.015)
    assert (labelled.estimator, ppi.estimator) == ("labelled", "ppi")
    assert labelled.total_additional > 100
    assert ppi.total_additional < 0.4 * labelled.total_additional
    assert ppi.feasible


def test_ppi_plans_need_about_as_many_labels_when_the_proxy_is_noise() -> None:
    audit = audit_of(0.0)
    labelled = plan(audit, gap_gate("labelled"), target_halfwidth=0.015)
    ppi = plan(audit, gap_gate("ppi"), target_halfwidth=0.015)
    assert labelled.total_additional > 100
    assert ppi.total_additional == pytest.approx(labelled.total_additional, rel=0.25)


def test_a_target_below_the_floor_of_the_proxy_is_not_plannable() -> None:
    audit = audit_of(0.95)
    p = plan(audit, gap_gate("ppi"), target_halfwidth=0.004)
    assert not p.feasible
    assert any("floor" in note and "no number of labels" in note for note in p.notes)
    assert "even then the gate may stay open" in p.sentence()


def test_a_level_below_the_floor_is_not_plannable_for_that_group() -> None:
    audit = audit_of(0.95)
    gate = MinGroupMetricGate(metric="dice", by="age", model="m", min=0.5, estimator="ppi")
    p = plan(audit, gate, target_halfwidth=0.003)
    assert not p.feasible
    assert any(n.startswith("group ") and "floor" in n for n in p.notes)


def test_the_simulation_of_a_ppi_plan_agrees_with_the_promised_power() -> None:
    audit = audit_of(0.8)
    # a margin the pilot cannot settle, yet can plan for (the gap estimate is 0.064)
    p = plan(audit, gap_gate("ppi", max_=0.046), power=0.8, simulate=400, seed=3)
    assert p.estimator == "ppi"
    assert p.feasible
    assert p.total_additional > 0
    # Monte-Carlo error of 400 runs: 0.02; the closed form is a normal approximation
    assert abs(p.simulated_power - 0.8) < 3 * 0.02 + 0.05


def test_a_run_with_estimator_ppi_plans_its_gates_prediction_powered_unless_they_say_not() -> None:
    audit = audit_of(0.9, estimator="ppi")
    assert plan(audit, gap_gate()).estimator == "ppi"
    assert plan(audit, gap_gate("labelled")).estimator == "labelled"


def test_a_fully_labelled_ruler_is_planned_labelled_only_whatever_the_estimator() -> None:
    audit = Audit(partial_scores(n=200, frac=1.0), n_boot=100)
    p = plan(audit, gap_gate("ppi"), compare=True)
    assert p.estimator == "labelled"
    assert p.prediction_powered is None


def test_a_ppi_plan_says_what_it_is_for_and_a_labelled_plan_reads_as_before() -> None:
    from segfair.report import load_schema

    audit = audit_of(0.9)
    ppi = plan(audit, gap_gate("ppi"), target_halfwidth=0.01)
    lab = plan(audit, gap_gate("labelled"), target_halfwidth=0.01)
    assert ppi.to_dict()["estimator"] == "ppi"
    assert "planned for its prediction-powered estimate" in ppi.sentence()
    assert "estimator" not in lab.to_dict()
    assert "prediction_powered" not in lab.to_dict()
    assert "prediction-powered" not in lab.sentence()
    schema = load_schema()
    for doc in (ppi.to_dict(), lab.to_dict()):
        jsonschema.validate(doc, {"$defs": schema["$defs"], "$ref": "#/$defs/labels_needed"})


def test_the_comparison_gives_what_the_same_gate_would_need_prediction_powered() -> None:
    from segfair.report import load_schema

    audit = audit_of(0.95)
    p = plan(audit, gap_gate("labelled"), target_halfwidth=0.015, compare=True)
    twin = p.prediction_powered
    assert twin is not None
    assert twin.estimator == "ppi"
    assert twin.gate_id.endswith(",ppi]")
    assert twin.total_additional < p.total_additional
    assert f"it would need about {twin.total_additional}" in p.sentence()
    doc = p.to_dict()
    assert doc["prediction_powered"]["total_additional"] == twin.total_additional
    jsonschema.validate(doc, {"$defs": load_schema()["$defs"], "$ref": "#/$defs/labels_needed"})
    # without compare, the plan is the labelled-only one alone
    assert plan(audit, gap_gate("labelled"), target_halfwidth=0.015).prediction_powered is None


def test_a_shrinkage_share_is_planned_prediction_powered_with_a_floor() -> None:
    audit = audit_of(0.9)
    share = {"metric": "dice", "by": "age", "model": "m", "automated": "auto", "max": 0.9}
    lab = plan(audit, RulerShrinkageGate(**share, estimator="labelled"), target_halfwidth=0.3)
    ppi = plan(audit, RulerShrinkageGate(**share, estimator="ppi"), target_halfwidth=0.3)
    assert ppi.estimator == "ppi"
    assert lab.estimator == "labelled"
    # most of a share's variance is the automated gap's, on every case: a floor labels keep
    assert all(f > 0 for f in ppi.floor)
    # the labels only measure the rectifier, less variable than the trusted score itself
    assert (ppi.groups["sd"] < lab.groups["sd"]).all()
    assert ppi.feasible


def test_segfair_plan_says_which_estimator_a_plan_is_for_and_compares(tmp_path: Path) -> None:
    from segfair.cli import main
    from segfair.synth import make_cohort

    root = tmp_path / "c"
    make_cohort(root, n_cases=60, shape=(16, 16, 8), preset="hidden", seed=0)
    cfg = (root / "segfair.toml").read_text()
    cfg = cfg.replace(
        'expert = "segmentations/expert/{case_id}.nii.gz"',
        'expert = { path = "segmentations/expert/{case_id}.nii.gz", partial = true }',
    )
    (root / "segfair.toml").write_text(cfg)
    for f in sorted((root / "segmentations" / "expert").glob("*.nii.gz"))[::2]:
        f.unlink()

    def run() -> str:
        buf = io.StringIO()
        argv = ["plan", "--config", str(root), "--out", str(tmp_path / "p.csv"), "--workers", "1"]
        assert main(argv, stdout=buf) == 0, buf.getvalue()
        return buf.getvalue()

    labelled = run()  # labelled-only gates on a partial ruler: the prediction-powered twin
    assert "estimator 'ppi'" in labelled
    assert "planned for the prediction-powered estimate" not in labelled
    (root / "segfair.toml").write_text(cfg.replace("seed = 0\n", 'seed = 0\nestimator = "ppi"\n'))
    assert "planned for the prediction-powered estimate (estimator 'ppi')" in run()


def test_a_stratified_sample_is_planned_prediction_powered_with_its_design_weights() -> None:
    from segfair.planner import design_weights

    scores = partial_scores(rho=0.95, frac=0.1, young_frac=0.3, seed=2)
    w = design_weights({"by": "age", "fractions": {"young": 0.3, "old": 0.1}}, scores.groups)
    audit = Audit(scores, n_boot=300, seed=0, design_weights=w)
    labelled = plan(audit, gap_gate("labelled"), target_halfwidth=0.015)
    ppi = plan(audit, gap_gate("ppi"), target_halfwidth=0.015)
    assert ppi.estimator == "ppi"
    assert np.isfinite(ppi.groups["sd"]).all()
    assert all(f > 0 for f in ppi.floor)
    # the young are oversampled (the design weights make up for it)
    assert ppi.groups.loc["young", "labelled"] > 2 * ppi.groups.loc["old", "labelled"]
    assert ppi.total_additional < 0.5 * labelled.total_additional
