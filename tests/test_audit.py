"""The audit: subgroup estimates, gaps, paired ruler/model comparisons and the rest, on Scores
built directly from synthetic per-case tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from segfair.audit import (
    BAD_CONFIDENCE,
    BAD_N_BOOT,
    BAD_STATISTIC,
    NOT_IN_COHORT,
    UNKNOWN_ATTRIBUTE,
    UNKNOWN_GROUP,
    UNKNOWN_METRIC,
    UNKNOWN_MODEL,
    UNKNOWN_RULER,
    Audit,
    AuditError,
)
from segfair.errors import SegfairError
from segfair.scores import Scores

N_BOOT = 300
AGES = ["young", "middle", "older"]


def make_scores(
    values: Mapping[tuple[str, str, str], Sequence[float]],
    groups: Mapping[str, Sequence[object]],
    *,
    trusted: str = "expert",
    agreement: Mapping[tuple[str, str], Sequence[float]] | None = None,
    morphology: Mapping[str, Sequence[float]] | None = None,
    metadata: Mapping[str, Sequence[object]] | None = None,
    attribute_columns: Mapping[str, str] | None = None,
    exclusions: Sequence[tuple[str, str, str, str]] = (),
    ids: Sequence[str] | None = None,
) -> Scores:
    """Scores from per-case columns: ``values[(model, ruler, metric)]`` aligned with ``ids``;
    NaN-free positions only are scored unless the value is given as ``None`` (no row)."""
    n = len(next(iter(groups.values())))
    ids = list(ids) if ids is not None else [f"case{i:04d}" for i in range(n)]
    rows = [
        (cid, m, r, metric, v)
        for (m, r, metric), col in values.items()
        for cid, v in zip(ids, col, strict=True)
        if v is not None
    ]
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    index = pd.Index(ids, name="case_id")
    agree = pd.DataFrame(
        [
            (cid, r, trusted, metric, v)
            for (r, metric), col in (agreement or {}).items()
            for cid, v in zip(ids, col, strict=True)
            if v is not None
        ],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    morph = pd.DataFrame(
        [
            (cid, trusted, d, v)
            for d, col in (morphology or {}).items()
            for cid, v in zip(ids, col, strict=True)
        ],
        columns=["case_id", "ruler", "descriptor", "value"],
    )
    models = tuple(dict.fromkeys(k[0] for k in values))
    rulers = tuple(dict.fromkeys([trusted, *(k[1] for k in values)]))
    return Scores(
        table=table,
        groups=pd.DataFrame(dict(groups), index=index),
        trusted_ruler=trusted,
        rulers=rulers,
        models=models,
        agreement=agree,
        morphology=morph,
        metadata=pd.DataFrame(dict(metadata), index=index) if metadata else None,
        attribute_columns=dict(attribute_columns or {}),
        exclusions=pd.DataFrame(list(exclusions), columns=["case_id", "kind", "source", "reason"]),
    )


def spread(n: int, sd: float) -> np.ndarray:
    """A fixed, centred pattern with standard deviation ``sd``: group means stay exact."""
    x = np.linspace(-1, 1, n)
    return x / x.std() * sd if n > 1 else np.zeros(n)


def per_group(means: Mapping[str, float], sizes: Mapping[str, int], sd: float) -> np.ndarray:
    return np.concatenate([means[g] + spread(sizes[g], sd) for g in sizes])


@pytest.fixture(scope="module")
def cohort() -> Scores:
    """Three age groups × two ethnicities, two models, an automated ruler, several metrics."""
    rng = np.random.default_rng(11)
    sizes = {"young": 60, "middle": 120, "older": 80}
    n = sum(sizes.values())
    age = np.repeat(AGES, list(sizes.values()))
    eth = np.tile(["white", "black", "asian", "white"], n // 4 + 1)[:n]
    expert = np.clip(rng.beta(7, 3, n) - 0.05 * (age == "young"), 0, 1)
    automated = np.clip(expert + 0.03 * (age == "young") + rng.normal(0, 0.02, n), 0, 1)
    hd95 = rng.gamma(3, 4, n)
    hd95[[0, 5, 70]] = np.inf
    sens = rng.beta(8, 2, n)
    sens[[1, 2, 200]] = np.nan
    values = {
        ("candidate", "expert", "dice"): expert,
        ("candidate", "automated", "dice"): automated,
        ("candidate", "expert", "hd95"): hd95,
        ("candidate", "expert", "sensitivity"): sens,
        ("baseline", "expert", "dice"): np.clip(expert + 0.02 * (age != "young"), 0, 1),
        ("baseline", "expert", "hd95"): hd95 * 0.9,
    }
    ages_num = np.where(age == "young", 35, np.where(age == "middle", 48, 66)) + np.arange(n) % 5
    return make_scores(
        values,
        {"age_group": pd.Categorical(age, categories=AGES), "ethnicity": eth},
        agreement={
            ("automated", "dice"): np.clip(
                0.85 - 0.08 * (age == "young") + rng.normal(0, 0.05, n), 0, 1
            )
        },
        morphology={
            "volume_ml": rng.lognormal(2 + 0.4 * (age == "young"), 0.5),
            "sphericity": rng.beta(8, 3, n),
        },
        metadata={"age": ages_num, "dataset": np.tile(["DUKE", "ISPY1", "NACT"], n // 3 + 1)[:n]},
        attribute_columns={"age_group": "age"},
    )


@pytest.fixture(scope="module")
def audit(cohort: Scores) -> Audit:
    return Audit(cohort, n_boot=N_BOOT, seed=3)


def frame_of(scores: Scores, metric: str, model: str, ruler: str) -> pd.DataFrame:
    values = scores.values(metric, model=model, ruler=ruler)
    return scores.groups.join(values, how="inner")


# -- agreement with fairlearn and with hand computation ----------------------------------------


def test_group_means_and_differences_equal_fairlearn_metricframe(
    cohort: Scores, audit: Audit
) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    df = frame_of(cohort, "dice", "candidate", "expert")
    frame = fairlearn.MetricFrame(
        metrics=lambda y_true, y_pred: float(np.mean(y_pred)),
        y_true=df["dice"].to_numpy(),
        y_pred=df["dice"].to_numpy(),
        sensitive_features=df["age_group"].astype(str).to_numpy(),
    )
    ours = audit.by_group("dice", by="age_group", model="candidate")
    theirs = frame.by_group
    for g in AGES:
        assert ours.by_group.loc[g, "estimate"] == pytest.approx(theirs[g])
    assert ours.overall["estimate"] == pytest.approx(frame.overall)
    gap = audit.gap("dice", by="age_group", model="candidate")
    assert gap.gap.estimate == pytest.approx(frame.difference(method="between_groups"))
    assert gap.ratio.estimate == pytest.approx(frame.ratio(method="between_groups"))
    assert ours.difference() == pytest.approx(frame.difference(method="between_groups"))
    assert ours.ratio() == pytest.approx(frame.ratio(method="between_groups"))
    assert gap.to_overall.estimate == pytest.approx(frame.difference(method="to_overall"))


def test_intersectional_groups_equal_fairlearn_with_two_sensitive_features(
    cohort: Scores, audit: Audit
) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    df = frame_of(cohort, "dice", "candidate", "expert")
    frame = fairlearn.MetricFrame(
        metrics=lambda y_true, y_pred: float(np.mean(y_pred)),
        y_true=df["dice"].to_numpy(),
        y_pred=df["dice"].to_numpy(),
        sensitive_features=df[["age_group", "ethnicity"]].astype(str),
    )
    ours = audit.by_group("dice", by=["age_group", "ethnicity"], model="candidate").by_group
    assert ours.index.name == "age_group × ethnicity"
    for (age, eth), value in frame.by_group.items():
        assert ours.loc[f"{age} × {eth}", "estimate"] == pytest.approx(value)
    # ordered by the levels of each attribute: categorical order first, then sorted labels
    assert list(ours.index[:3]) == ["young × asian", "young × black", "young × white"]
    assert len(ours) == frame.by_group.size


def test_hand_computed_means_gap_ratio_and_reference_differences() -> None:
    scores = make_scores(
        {("m", "expert", "dice"): [0.6, 0.8, 0.7, 0.9, 0.5, 0.5]},
        {"g": ["a", "a", "b", "b", "c", "c"]},
    )
    r = Audit(scores, n_boot=200).gap("dice", by="g", model="m", reference="a")
    assert r.by_group["estimate"].tolist() == pytest.approx([0.7, 0.8, 0.5])
    assert r.gap.estimate == pytest.approx(0.3)
    assert r.ratio.estimate == pytest.approx(0.5 / 0.8)
    assert r.to_overall.estimate == pytest.approx(2 / 3 - 0.5)
    assert r.differences is not None
    assert r.differences["estimate"].tolist() == pytest.approx([0.0, 0.1, -0.2])
    assert r.to_reference is not None
    assert r.to_reference.estimate == pytest.approx(0.2)
    assert (r.max_group, r.min_group) == ("b", "c")
    assert list(r.summary.index) == ["gap", "ratio", "to_overall", "to_reference"]


def test_every_estimate_lies_inside_its_interval(audit: Audit) -> None:
    r = audit.gap("dice", by="age_group", model="candidate", reference="older")
    for e in (r.gap, r.ratio, r.to_overall, r.to_reference):
        assert e is not None
        assert e.lower <= e.estimate <= e.upper
    bg = r.by_group
    assert ((bg["lower"] <= bg["estimate"]) & (bg["estimate"] <= bg["upper"])).all()


# -- capped distances, undefined values, tiny groups ----------------------------------------------


def test_infinite_distances_are_capped_and_counted_per_group(cohort: Scores) -> None:
    audit = Audit(cohort, n_boot=N_BOOT, cap=150.0)
    r = audit.by_group("hd95", by="age_group", model="candidate")
    assert r.by_group["capped"].tolist() == [2, 1, 0]
    hd = cohort.values("hd95", model="candidate", ruler="expert")
    young = hd.iloc[:60].replace(np.inf, 150.0)
    assert r.by_group.loc["young", "estimate"] == pytest.approx(young.mean())
    assert r.overall["capped"] == 3
    smaller = Audit(cohort, n_boot=N_BOOT, cap=100.0).by_group(
        "hd95", by="age_group", model="candidate"
    )
    assert smaller.by_group.loc["young", "estimate"] < r.by_group.loc["young", "estimate"]


def test_undefined_values_are_left_out_and_counted_per_group(audit: Audit, cohort: Scores) -> None:
    r = audit.by_group("sensitivity", by="age_group", model="candidate")
    assert r.by_group["undefined"].tolist() == [2, 0, 1]
    assert r.by_group["n"].tolist() == [58, 120, 79]
    sens = cohort.values("sensitivity", model="candidate", ruler="expert")
    assert r.by_group.loc["young", "estimate"] == pytest.approx(sens.iloc[:60].mean())
    assert any("undefined" in note for note in r.notes)


def test_a_group_with_one_case_has_no_interval_and_a_note() -> None:
    scores = make_scores(
        {("m", "expert", "dice"): [0.7] * 10 + [0.9]}, {"g": ["big"] * 10 + ["alone"]}
    )
    audit = Audit(scores, n_boot=200)
    r = audit.by_group("dice", by="g", model="m")
    assert r.by_group.loc["alone", "n"] == 1
    assert np.isnan(r.by_group.loc["alone", ["lower", "upper"]].astype(float)).all()
    assert any("'alone' has a single value" in note for note in r.notes)
    gap = audit.gap("dice", by="g", model="m")
    assert gap.gap.estimate == pytest.approx(0.2)
    assert np.isnan(gap.gap.lower)
    assert np.isnan(gap.gap.upper)


def test_an_empty_category_is_listed_with_n_zero_and_left_out_of_the_gap() -> None:
    groups = {
        "age": pd.Categorical(
            ["young"] * 5 + ["older"] * 5, categories=["young", "middle", "older"]
        )
    }
    scores = make_scores({("m", "expert", "dice"): [0.6] * 5 + [0.8] * 5}, groups)
    audit = Audit(scores, n_boot=200)
    r = audit.gap("dice", by="age", model="m")
    assert r.by_group["n"].tolist() == [5, 0, 5]
    assert np.isnan(r.by_group.loc["middle", "estimate"])
    assert r.gap.estimate == pytest.approx(0.2)
    assert any("'middle' has no values" in note for note in r.notes)


def test_a_missing_attribute_value_becomes_the_unknown_group() -> None:
    scores = make_scores(
        {("m", "expert", "dice"): [0.6, 0.7, 0.8, 0.9]}, {"eth": ["a", None, "b", np.nan]}
    )
    r = Audit(scores, n_boot=200).by_group("dice", by="eth", model="m")
    assert list(r.by_group.index) == ["a", "b", "unknown"]
    assert r.by_group.loc["unknown", "estimate"] == pytest.approx(0.8)


def test_only_cases_scored_on_a_partial_ruler_count_for_it() -> None:
    n = 40
    expert = [0.7 if i % 2 == 0 else None for i in range(n)]
    scores = make_scores(
        {("m", "expert", "dice"): expert, ("m", "auto", "dice"): [0.6] * n},
        {"g": ["a", "b"] * (n // 2)},
    )
    r = Audit(scores, n_boot=200).by_group("dice", by="g", model="m")
    assert r.by_group["n"].tolist() == [20, 0]


# -- reproducibility and pairing ----------------------------------------------------------------


def _numbers(audit: Audit) -> list[float]:
    g = audit.gap("dice", by="age_group", model="candidate")
    d = audit.ruler_distortion("dice", by="age_group", model="candidate", automated="automated")
    return [
        g.gap.lower,
        g.gap.upper,
        *g.by_group["lower"],
        d.distortion.lower,
        d.distortion.upper,
        d.hidden_gap.lower,
    ]


def test_the_same_seed_gives_identical_numbers(cohort: Scores) -> None:
    assert _numbers(Audit(cohort, n_boot=N_BOOT, seed=5)) == _numbers(
        Audit(cohort, n_boot=N_BOOT, seed=5)
    )
    assert _numbers(Audit(cohort, n_boot=N_BOOT, seed=5)) != _numbers(
        Audit(cohort, n_boot=N_BOOT, seed=6)
    )


def test_shuffled_input_rows_give_identical_numbers(cohort: Scores) -> None:
    rng = np.random.default_rng(0)
    shuffled = Scores(
        table=cohort.table.sample(frac=1, random_state=1).reset_index(drop=True),
        groups=cohort.groups.iloc[rng.permutation(len(cohort.groups))],
        trusted_ruler=cohort.trusted_ruler,
        rulers=cohort.rulers,
        models=cohort.models,
    )
    assert _numbers(Audit(shuffled, n_boot=N_BOOT, seed=5)) == _numbers(
        Audit(cohort, n_boot=N_BOOT, seed=5)
    )


def test_the_order_of_calls_does_not_change_the_numbers(cohort: Scores) -> None:
    first = Audit(cohort, n_boot=N_BOOT, seed=5)
    first.gap("dice", by="ethnicity", model="baseline")
    first.by_group("hd95", by=["age_group", "ethnicity"], model="candidate")
    assert _numbers(first) == _numbers(Audit(cohort, n_boot=N_BOOT, seed=5))


def test_two_identical_rulers_distort_nothing_with_a_zero_width_interval() -> None:
    rng = np.random.default_rng(2)
    dice = rng.beta(6, 3, 90)
    dice[:30] -= 0.25
    scores = make_scores(
        {("m", "expert", "dice"): dice, ("m", "copy", "dice"): dice},
        {"g": np.repeat(["a", "b", "c"], 30)},
    )
    d = Audit(scores, n_boot=300).ruler_distortion("dice", by="g", model="m", automated="copy")
    assert d.defined
    for e in (d.distortion, d.shrinkage, d.inflation, d.hidden_gap):
        assert (e.estimate, e.lower, e.upper) == (0.0, 0.0, 0.0)
    assert d.gap_trusted.estimate == d.gap_automated.estimate


def test_distortion_shrinkage_and_hidden_gap_match_hand_computation(
    audit: Audit, cohort: Scores
) -> None:
    d = audit.ruler_distortion("dice", by="age_group", model="candidate", automated="automated")
    t = (
        frame_of(cohort, "dice", "candidate", "expert")
        .groupby("age_group", observed=True)["dice"]
        .mean()
    )
    a = (
        frame_of(cohort, "dice", "candidate", "automated")
        .groupby("age_group", observed=True)["dice"]
        .mean()
    )
    gap_t, gap_a = t.max() - t.min(), a.max() - a.min()
    assert d.gap_trusted.estimate == pytest.approx(gap_t)
    assert d.gap_automated.estimate == pytest.approx(gap_a)
    assert d.distortion.estimate == pytest.approx(gap_a / gap_t - 1)
    assert d.shrinkage.estimate == pytest.approx(max(0.0, 1 - gap_a / gap_t))
    assert d.inflation.estimate == pytest.approx(max(0.0, gap_a / gap_t - 1))
    assert d.hidden_gap.estimate == pytest.approx(gap_t - gap_a)
    assert d.distortion.lower <= d.distortion.estimate <= d.distortion.upper
    assert list(d.by_group.index.get_level_values("ruler").unique()) == ["automated", "expert"]


def test_a_negligible_trusted_gap_leaves_the_distortion_undefined() -> None:
    flat = per_group({"a": 0.8, "b": 0.8, "c": 0.802}, {"a": 40, "b": 40, "c": 40}, 0.05)
    auto = per_group({"a": 0.75, "b": 0.8, "c": 0.8}, {"a": 40, "b": 40, "c": 40}, 0.05)
    scores = make_scores(
        {("m", "expert", "dice"): flat, ("m", "auto", "dice"): auto},
        {"g": np.repeat(["a", "b", "c"], 40)},
    )
    d = Audit(scores, n_boot=300).ruler_distortion("dice", by="g", model="m", automated="auto")
    assert not d.defined
    assert d.negligible == 0.01
    assert d.hidden_gap.estimate == pytest.approx(0.002 - 0.05)
    assert any("undefined" in note for note in d.notes)


def test_a_distortion_without_an_interval_leaves_shrinkage_without_one() -> None:
    scores = make_scores(
        {("m", "expert", "dice"): [0.6, 0.7, 0.9], ("m", "auto", "dice"): [0.65, 0.7, 0.85]},
        {"g": ["a", "a", "b"]},
    )
    d = Audit(scores, n_boot=200).ruler_distortion("dice", by="g", model="m", automated="auto")
    assert d.distortion.estimate == pytest.approx(0.175 / 0.25 - 1)
    for e in (d.distortion, d.shrinkage, d.inflation, d.hidden_gap):
        assert np.isnan(e.lower)
        assert np.isnan(e.upper)
    assert not d.defined


def test_amplification_compares_two_models_on_the_trusted_ruler(
    audit: Audit, cohort: Scores
) -> None:
    r = audit.amplification("dice", by="age_group", model="baseline", baseline="candidate")
    assert r.ruler == "expert"
    b = (
        frame_of(cohort, "dice", "baseline", "expert")
        .groupby("age_group", observed=True)["dice"]
        .mean()
    )
    c = (
        frame_of(cohort, "dice", "candidate", "expert")
        .groupby("age_group", observed=True)["dice"]
        .mean()
    )
    expected = (b.max() - b.min()) / (c.max() - c.min()) - 1
    assert r.amplification.estimate == pytest.approx(expected)
    assert r.added_gap.estimate == pytest.approx((b.max() - b.min()) - (c.max() - c.min()))
    assert r.amplification.lower <= r.amplification.estimate <= r.amplification.upper


# -- the other statistics --------------------------------------------------------------------------


def test_dpd_and_dir_are_built_on_rates_above_the_threshold(audit: Audit, cohort: Scores) -> None:
    r = audit.dpd_dir("dice", by="age_group", model="candidate", threshold=0.7)
    df = frame_of(cohort, "dice", "candidate", "expert")
    rates = (df["dice"] > 0.7).groupby(df["age_group"], observed=True).mean()
    assert r.by_group["estimate"].tolist() == pytest.approx(rates.loc[AGES].tolist())
    assert r.dpd.estimate == pytest.approx(rates.max() - rates.min())
    assert r.dir.estimate == pytest.approx(rates.min() / rates.max())
    assert r.flagged == (rates.min() / rates.max() < 0.8)


def test_dpd_and_dir_equal_fairlearn_selection_rate_differences(
    audit: Audit, cohort: Scores
) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    df = frame_of(cohort, "dice", "candidate", "expert")
    hit = (df["dice"] > 0.8).astype(int).to_numpy()
    sensitive = df["age_group"].astype(str).to_numpy()
    r = audit.dpd_dir("dice", by="age_group", model="candidate", threshold=0.8)
    assert r.dpd.estimate == pytest.approx(
        fairlearn.demographic_parity_difference(hit, hit, sensitive_features=sensitive)
    )
    assert r.dir.estimate == pytest.approx(
        fairlearn.demographic_parity_ratio(hit, hit, sensitive_features=sensitive)
    )


def test_equity_scaled_score_follows_its_formula(audit: Audit, cohort: Scores) -> None:
    r = audit.equity_scaled("dice", by="age_group", model="candidate")
    df = frame_of(cohort, "dice", "candidate", "expert")
    means = df.groupby("age_group", observed=True)["dice"].mean()
    overall = df["dice"].mean()
    assert r.es.estimate == pytest.approx(overall / (1 + (means - overall).abs().sum()))
    assert r.es.lower <= r.es.estimate <= r.es.upper


def test_mamamia_fairness_uses_dice_and_capped_normalised_hd95(
    audit: Audit, cohort: Scores
) -> None:
    r = audit.mamamia_fairness(by="age_group", model="candidate")
    df = frame_of(cohort, "dice", "candidate", "expert")
    dice = df.groupby("age_group", observed=True)["dice"].mean()
    hd = frame_of(cohort, "hd95", "candidate", "expert")
    norm = np.minimum(hd["hd95"] / 150, 1).groupby(hd["age_group"], observed=True).mean()
    expected = 1 - 0.5 * ((dice.max() - dice.min()) + (norm.max() - norm.min()))
    assert r.score.estimate == pytest.approx(expected)
    assert r.score.lower <= r.score.estimate <= r.score.upper
    assert r.normhd.by_group["capped"].sum() == 3
    assert r.by_group.columns.get_level_values(0).unique().tolist() == ["dice", "normhd"]


def test_label_audit_reports_agreement_per_group_and_its_gap(audit: Audit) -> None:
    r = audit.label_audit(by="age_group")
    assert list(r.gaps.index) == [("automated", "dice")]
    young = r.by_group.loc[("automated", "dice", "young"), "estimate"]
    older = r.by_group.loc[("automated", "dice", "older"), "estimate"]
    assert young < older
    assert r.gaps.loc[("automated", "dice"), "min_group"] == "young"
    assert any("'hd95'" in note for note in r.notes)  # asked for by default, not computed


def test_controlled_gap_standardises_within_volume_strata(audit: Audit) -> None:
    r = audit.controlled_gap(
        "dice", by="age_group", model="candidate", stratify="volume_ml", bins=3
    )
    assert len(r.stratum_gaps) == 3
    assert r.weights.sum() == pytest.approx(1.0)
    strata = r.strata["estimate"].unstack("age_group")[AGES].loc[list(r.weights.index)]
    expected = (strata.mul(r.weights, axis=0)).sum()
    assert r.by_group["standardised"].tolist() == pytest.approx(expected[AGES].tolist())
    assert r.gap.estimate == pytest.approx(expected.max() - expected.min())
    assert r.crude_gap.lower <= r.crude_gap.estimate <= r.crude_gap.upper


def test_controlled_gap_reports_empty_cells_and_leaves_their_strata_out() -> None:
    sizes = {"a": 30, "b": 30}
    dice = per_group({"a": 0.6, "b": 0.8}, sizes, 0.05)
    size = np.r_[np.linspace(1, 10, 30), np.linspace(5, 20, 30)]  # 'a' never reaches the top
    scores = make_scores(
        {("m", "expert", "dice"): dice},
        {"g": np.repeat(["a", "b"], 30)},
        morphology={"volume_ml": size},
    )
    r = Audit(scores, n_boot=200).controlled_gap(
        "dice", by="g", model="m", stratify="volume_ml", bins=3
    )
    assert r.empty_cells
    assert all(cell[1] == "a" for cell in r.empty_cells)
    assert r.excluded_strata == tuple(cell[0] for cell in r.empty_cells)
    assert len(r.weights) == 3 - len(r.excluded_strata)


def test_controlled_gap_stratifies_by_a_metadata_column(audit: Audit) -> None:
    r = audit.controlled_gap("dice", by="age_group", model="candidate", stratify="dataset")
    assert list(r.stratum_gaps.index) == ["DUKE", "ISPY1", "NACT"]


def test_morphology_shift_compares_every_group_with_the_largest(
    audit: Audit, cohort: Scores
) -> None:
    r = audit.morphology_shift(by="age_group")
    assert r.reference == "middle"
    vol = cohort.descriptor("volume_ml")
    young, middle = vol.iloc[:60], vol.iloc[60:180]
    row = r.by_group.loc[("volume_ml", "young")]
    assert row["mean_ratio"] == pytest.approx(young.mean() / middle.mean())
    assert row["var_ratio"] == pytest.approx(young.var() / middle.var())
    assert row["mean_ratio_lower"] <= row["mean_ratio"] <= row["mean_ratio_upper"]
    assert row["median"] == pytest.approx(young.median())
    assert row["mannwhitney_p"] == pytest.approx(sps.mannwhitneyu(young, middle).pvalue)
    kw = sps.kruskal(young, middle, vol.iloc[180:])
    assert r.tests.loc["volume_ml", "kruskal_p"] == pytest.approx(kw.pvalue)


def test_coverage_counts_missing_predictions_with_their_reasons() -> None:
    dice = [0.7] * 8 + [None, None]
    scores = make_scores(
        {("m", "expert", "dice"): dice},
        {"g": ["a"] * 5 + ["b"] * 5},
        exclusions=[("case0008", "model", "m", "prediction file missing")],
    )
    r = Audit(scores, n_boot=200).coverage(by="g")
    b = r.by_group.loc[("m", "b")]
    assert (b["expected"], b["covered"], b["missing"]) == (5, 3, 2)
    assert b["coverage"] == pytest.approx(0.6)
    assert b["reasons"] == ("no scores and no recorded exclusion: 1; prediction file missing: 1")
    assert r.by_group.loc[("m", "a"), "coverage"] == 1.0
    assert set(r.missing["case_id"]) == {"case0008", "case0009"}


def test_association_matches_scipy(audit: Audit, cohort: Scores) -> None:
    r = audit.association("dice", attribute="age_group", model="candidate")
    df = frame_of(cohort, "dice", "candidate", "expert")
    groups = [df.loc[df["age_group"] == g, "dice"] for g in AGES]
    assert r.kruskal_p == pytest.approx(sps.kruskal(*groups).pvalue)
    assert r.anova_p == pytest.approx(sps.f_oneway(*groups).pvalue)
    age = cohort.metadata["age"] if cohort.metadata is not None else None
    assert age is not None
    lr = sps.linregress(age.loc[df.index].to_numpy(dtype=float), df["dice"].to_numpy())
    assert (r.slope, r.slope_p) == pytest.approx((lr.slope, lr.pvalue))
    assert r.slope_lower < r.slope < r.slope_upper
    assert r.column == "age"
    assert list(r.to_frame().index) == ["kruskal_wallis", "anova", "ols_slope"]


def test_the_median_statistic_estimates_group_medians(cohort: Scores) -> None:
    r = Audit(cohort, n_boot=N_BOOT, statistic="median").by_group(
        "dice", by="age_group", model="candidate"
    )
    df = frame_of(cohort, "dice", "candidate", "expert")
    medians = df.groupby("age_group", observed=True)["dice"].median()
    assert r.by_group["estimate"].tolist() == pytest.approx(medians.loc[AGES].tolist())
    assert r.statistic == "median"


def test_a_cluster_bootstrap_widens_the_interval_when_sites_differ() -> None:
    n = 120
    site = np.tile(np.repeat(["s1", "s2", "s3", "s4", "s5", "s6"], 5), 4)
    effect = {"s1": -0.1, "s2": 0.1, "s3": -0.05, "s4": 0.05, "s5": 0.0, "s6": 0.08}
    dice = 0.7 + np.array([effect[s] for s in site]) + spread(n, 0.01)
    scores = make_scores(
        {("m", "expert", "dice"): dice},
        {"g": np.repeat(["a", "b"], n // 2)},
        metadata={"site": site},
    )
    plain = Audit(scores, n_boot=400).by_group("dice", by="g", model="m").by_group
    clustered = (
        Audit(scores, n_boot=400, cluster="site").by_group("dice", by="g", model="m").by_group
    )
    width = (plain["upper"] - plain["lower"]).mean()
    assert (clustered["upper"] - clustered["lower"]).mean() > 1.5 * width


# -- errors --------------------------------------------------------------------------------------


def test_unknown_names_raise_with_the_valid_values(audit: Audit) -> None:
    with pytest.raises(AuditError) as e:
        audit.gap("dice", by="age_group", model="candiate")
    assert str(e.value) == UNKNOWN_MODEL.format(name="candiate", valid="candidate, baseline")
    with pytest.raises(AuditError) as e:
        audit.gap("dice", by="age_group", model="candidate", ruler="expret")
    assert str(e.value) == UNKNOWN_RULER.format(name="expret", valid="expert, automated")
    with pytest.raises(AuditError) as e:
        audit.gap("dcie", by="age_group", model="candidate")
    assert str(e.value) == UNKNOWN_METRIC.format(
        name="dcie", model="candidate", ruler="expert", valid="dice, hd95, sensitivity"
    )
    with pytest.raises(AuditError) as e:
        audit.gap("dice", by="age", model="candidate")
    assert str(e.value) == UNKNOWN_ATTRIBUTE.format(name="age", valid="age_group, ethnicity")
    with pytest.raises(AuditError) as e:
        audit.gap("dice", by="age_group", model="candidate", reference="old")
    assert str(e.value) == UNKNOWN_GROUP.format(
        name="old", by="age_group", valid="young, middle, older"
    )
    assert isinstance(e.value, SegfairError)
    assert isinstance(e.value, ValueError)


def test_invalid_settings_raise_with_the_valid_range(cohort: Scores) -> None:
    with pytest.raises(AuditError, match="n_boot must be") as e:
        Audit(cohort, n_boot=10)
    assert str(e.value) == BAD_N_BOOT.format(value=10)
    with pytest.raises(AuditError) as e:
        Audit(cohort, confidence=95)
    assert str(e.value) == BAD_CONFIDENCE.format(value=95)
    with pytest.raises(AuditError) as e:
        Audit(cohort, statistic="mode")  # type: ignore[arg-type]
    assert str(e.value) == BAD_STATISTIC.format(valid="mean, median", value="mode")


def test_a_scored_case_outside_the_cohort_is_an_error() -> None:
    scores = make_scores({("m", "expert", "dice"): [0.5, 0.6]}, {"g": ["a", "b"]})
    table = pd.concat(
        [
            scores.table,
            pd.DataFrame(
                [("ghost", "foreground", "m", "expert", "dice", 0.1)], columns=scores.table.columns
            ),
        ]
    )
    bad = Scores(
        table=table, groups=scores.groups, trusted_ruler="expert", rulers=("expert",), models=("m",)
    )
    with pytest.raises(AuditError) as e:
        Audit(bad)
    assert str(e.value) == NOT_IN_COHORT.format(count=1, examples="ghost")
