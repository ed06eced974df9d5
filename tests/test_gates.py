"""Gates: schema and validation, verdicts of every kind, Holm's procedure, and the words around
them (messages, explain(), JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from segfair.audit import Audit, AuditError
from segfair.errors import ConfigError
from segfair.gates import (
    CONFIDENCE_RANGE,
    DISTANCE_NEEDS_MAX,
    FRACTION_RANGE,
    GATE_KINDS,
    MISSING_GATE_KEY,
    RATIO_NEEDS_MIN,
    SCORE_NEEDS_MIN,
    UNKNOWN_GATE_KEY,
    UNKNOWN_KIND,
    GapGate,
    GateResult,
    evaluate_gate,
    evaluate_gates,
    parse_gate,
    parse_gates,
)
from segfair.scores import Scores
from segfair.stats import DISTANCE_METRICS

AGES = ("young", "middle", "older")
SD = 0.02

# group means per (model, ruler) of Dice; the spread around them is a fixed centred pattern
DICE = {
    ("candidate", "expert"): (0.70, 0.75, 0.80),  # gap 0.10
    ("candidate", "automated"): (0.74, 0.76, 0.79),  # gap 0.05: hides half of it
    ("candidate", "inflating"): (0.65, 0.72, 0.80),  # gap 0.15: adds half of it
    ("baseline", "expert"): (0.73, 0.75, 0.78),  # gap 0.05: the candidate doubles it
    ("fair", "expert"): (0.750, 0.752, 0.754),  # gap 0.004
    ("fair", "automated"): (0.750, 0.752, 0.754),
    ("wide", "expert"): (0.75, 0.75, 0.79),  # gap 0.04, upper bound ≈ 0.047
}
HD95 = (20.0, 15.0, 10.0)
AGREEMENT = (0.78, 0.85, 0.88)


def spread(n: int, sd: float) -> np.ndarray:
    x = np.linspace(-1, 1, n)
    return x / x.std() * sd if n > 1 else np.zeros(n)


def build(sizes: Mapping[str, int] | None = None, *, noisy_sd: float = 0.15) -> Scores:
    """A cohort with exact group means; 'baseline' misses 10 young cases (one without a reason)."""
    sizes = dict(sizes or {"young": 60, "middle": 60, "older": 60})
    labels = list(sizes)
    n = sum(sizes.values())
    ids = [f"c{i:04d}" for i in range(n)]
    group = np.repeat(labels, list(sizes.values()))

    def col(means: tuple[float, ...], sd: float = SD) -> np.ndarray:
        return np.concatenate(
            [m + spread(k, sd) for m, k in zip(means, sizes.values(), strict=True)]
        )

    rows: list[tuple[str, str, str, str, float]] = []
    missing = set(ids[:10])
    for (model, ruler), means in DICE.items():
        for cid, v in zip(ids, col(means), strict=True):
            if model == "baseline" and cid in missing:
                continue
            rows.append((cid, model, ruler, "dice", v))
    # noisy: a negligible trusted gap that the data cannot pin down; the automated ruler's
    # case-level noise is unrelated to the trusted one's, so pairing cannot pin it down either
    noisy_t = col((0.75, 0.754, 0.758), noisy_sd)
    noisy_a = col((0.75, 0.75, 0.75), noisy_sd)[np.random.default_rng(0).permutation(n)]
    rows += [(cid, "noisy", "expert", "dice", v) for cid, v in zip(ids, noisy_t, strict=True)]
    rows += [(cid, "noisy", "automated", "dice", v) for cid, v in zip(ids, noisy_a, strict=True)]
    rows += [
        (cid, "candidate", "expert", "hd95", v) for cid, v in zip(ids, col(HD95, 2.0), strict=True)
    ]
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    agreement = pd.DataFrame(
        [
            (cid, "automated", "expert", "dice", v)
            for cid, v in zip(ids, col(AGREEMENT), strict=True)
        ]
        + [
            (cid, "automated", "expert", "hd95", v)
            for cid, v in zip(ids, col((6.0, 4.0, 3.0), 0.5), strict=True)
        ],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    exclusions = pd.DataFrame(
        [(cid, "model", "baseline", "prediction file missing") for cid in ids[:9]],
        columns=["case_id", "kind", "source", "reason"],
    )
    return Scores(
        table=table,
        groups=pd.DataFrame(
            {"age_group": pd.Categorical(group, categories=labels)},
            index=pd.Index(ids, name="case_id"),
        ),
        trusted_ruler="expert",
        rulers=("expert", "automated", "inflating"),
        models=("candidate", "baseline", "fair", "wide", "noisy"),
        agreement=agreement,
        exclusions=exclusions,
    )


@pytest.fixture(scope="module")
def audit() -> Audit:
    return Audit(build(), n_boot=400, seed=1)


@pytest.fixture(scope="module")
def tiny_audit() -> Audit:
    """The 'older' group has only 8 cases (below the default min_group_size of 20)."""
    return Audit(build({"young": 60, "middle": 60, "older": 8}), n_boot=400, seed=1)


def check(audit: Audit, **raw: Any) -> GateResult:
    return evaluate_gate(audit, parse_gate(raw, trusted_ruler="expert"))


GAP = {"kind": "gap", "metric": "dice", "by": "age_group"}
SHRINK = {"kind": "ruler_shrinkage", "metric": "dice", "by": "age_group", "automated": "automated"}


# -- gap ------------------------------------------------------------------------------------------


def test_a_gap_below_the_threshold_passes(audit: Audit) -> None:
    r = check(audit, **GAP, model="fair", max=0.05)
    assert (r.status, r.ok, r.allowed) == ("passed", True, False)
    assert r.estimate == pytest.approx(0.004)
    assert r.upper < 0.05
    assert r.decision_rule == "upper 95% bound of the dice gap across age_group ≤ 0.05"
    assert r.message.startswith("The dice gap across age_group for fair on expert labels is 0.004")
    assert r.message.endswith("within the limit 0.05.")


def test_a_gap_above_the_threshold_fails_the_build(audit: Audit) -> None:
    r = check(audit, **GAP, model="candidate", max=0.05)
    assert (r.status, r.ok) == ("failed", False)
    assert r.estimate == pytest.approx(0.10)
    assert r.lower <= 0.10 <= r.upper
    assert r.threshold == 0.05
    assert "its whole interval is above the limit 0.05 (evidence of harm)" in r.message
    assert r.reason == "evidence_of_harm"
    assert "the 'young' group scores lowest (0.7)" in r.message


def test_a_gap_gate_decides_on_the_bound_unless_told_to_use_the_estimate(audit: Audit) -> None:
    on_bound = check(audit, **GAP, model="wide", max=0.045)
    on_estimate = check(audit, **GAP, model="wide", max=0.045, decide_on="estimate")
    assert on_bound.estimate == pytest.approx(0.04)
    assert on_bound.lower < 0.045 < on_bound.upper
    assert (on_bound.status, on_bound.reason) == ("inconclusive", "interval_straddles_limit")
    assert not on_bound.ok
    assert on_estimate.status == "passed"
    assert on_estimate.decision_rule == "estimate of the dice gap across age_group ≤ 0.045"


def test_the_ratio_and_distance_to_overall_can_be_gated(audit: Audit) -> None:
    ratio = check(audit, **GAP, model="candidate", statistic="ratio", min=0.9)
    assert ratio.status == "failed"
    assert ratio.estimate == pytest.approx(0.70 / 0.80)
    assert ratio.decision_rule.startswith("lower 95% bound of the dice ratio")
    assert check(audit, **GAP, model="fair", statistic="ratio", min=0.9).status == "passed"
    overall = check(audit, **GAP, model="candidate", statistic="to_overall", max=0.03)
    assert overall.status == "failed"
    assert overall.estimate == pytest.approx(0.05)


def test_a_group_below_min_group_size_makes_a_passing_gate_inconclusive(
    tiny_audit: Audit,
) -> None:
    r = check(tiny_audit, **GAP, model="fair", max=0.05)
    assert (r.status, r.ok, r.allowed) == ("inconclusive", False, False)
    assert r.reason == "groups_below_min_size"
    assert r.message.startswith(
        "Cannot decide the dice gap across age_group for fair on expert "
        "labels: group 'older' (n = 8) is below min_group_size = 20"
    )
    assert r.next_steps[0] == (
        "add cases (or trusted labels) to 'older', or set on_inconclusive = 'warn' to let an "
        "undecided gate through"
    )
    assert set(r.evidence["group"]) == set(AGES)  # the small group is still shown


def test_allow_insufficient_accepts_an_inconclusive_verdict_for_lack_of_data_without_passing(
    tiny_audit: Audit,
) -> None:
    r = check(tiny_audit, **GAP, model="fair", max=0.05, allow_insufficient=True)
    assert (r.status, r.allowed, r.ok) == ("inconclusive", True, True)
    assert "(allowed)" in r.explain().splitlines()[0]


def test_a_small_group_cannot_rescue_a_gate_that_fails_on_the_others(tiny_audit: Audit) -> None:
    r = check(tiny_audit, **GAP, model="candidate", max=0.02, allow_insufficient=True)
    assert r.status == "failed"
    assert not r.ok
    assert r.estimate == pytest.approx(0.05)  # young vs middle: 'older' set aside


def test_min_group_size_can_be_lowered_per_gate(tiny_audit: Audit) -> None:
    r = check(tiny_audit, **GAP, model="fair", max=0.05, min_group_size=5)
    assert r.status == "passed"


# -- ruler shrinkage / inflation ----------------------------------------------------------------


def test_an_automated_ruler_that_hides_half_the_gap_fails_a_25_percent_shrinkage_gate(
    audit: Audit,
) -> None:
    r = check(audit, **SHRINK, model="candidate", max=0.25)
    assert r.status == "failed"
    assert r.estimate == pytest.approx(0.5)
    assert r.id == "ruler_shrinkage[dice,age_group,candidate,automated,expert]"
    sources = r.evidence["source"].unique().tolist()
    assert sources == ["candidate @ expert", "candidate @ automated"]
    assert "that automated labels hide for candidate" in r.message


def test_a_shrinkage_gate_passes_when_its_upper_bound_is_within_the_limit(audit: Audit) -> None:
    r = check(audit, **SHRINK, model="candidate", max=0.75)
    assert r.status == "passed"
    assert r.upper < 0.75


def test_a_negligible_trusted_gap_makes_shrinkage_inconclusive_under_its_declared_share(
    audit: Audit,
) -> None:
    r = check(audit, **SHRINK, model="fair", max=0.25)
    assert (r.status, r.reason, r.ok) == ("inconclusive", "precondition_not_met", False)
    assert r.threshold == 0.25  # the declared share, never silently replaced
    assert "(not applicable: the expert gap (0.004" in r.decision_rule
    assert "so the share is undefined" in r.message
    assert "max_difference" in r.message


def test_a_declared_max_difference_decides_shrinkage_on_the_hidden_gap_in_metric_units(
    audit: Audit,
) -> None:
    r = check(audit, **SHRINK, model="fair", max=0.25, max_difference=0.01)
    assert (r.status, r.reason) == ("passed", "limit_cleared")
    assert r.threshold == 0.01  # the declared max_difference, in dice units
    assert r.estimate == pytest.approx(0.0)
    assert r.decision_rule.startswith("the expert gap (0.004")
    assert "so the share is undefined" in r.decision_rule


def test_an_uncertain_hidden_gap_makes_shrinkage_with_max_difference_inconclusive(
    audit: Audit,
) -> None:
    r = check(audit, **SHRINK, model="noisy", max=0.25, max_difference=0.01)
    assert (r.status, r.reason) == ("inconclusive", "interval_straddles_limit")
    assert r.lower < 0.01 < r.upper
    r_loose = check(audit, **SHRINK, model="noisy", max=0.25, negligible=0.2, max_difference=0.2)
    assert r_loose.status == "passed"


def test_an_automated_ruler_that_inflates_the_gap_fails_an_inflation_gate(audit: Audit) -> None:
    raw = {
        "kind": "ruler_inflation",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "automated": "inflating",
    }
    r = check(audit, **raw, max=0.25)
    assert r.status == "failed"
    assert r.estimate == pytest.approx(0.5)
    assert check(audit, **raw, max=1.0).status == "passed"
    shrink = {**SHRINK, "automated": "inflating"}
    assert check(audit, **shrink, model="candidate", max=0.25).status == "passed"


# -- amplification --------------------------------------------------------------------------------


def test_a_model_that_doubles_the_baseline_gap_fails_an_amplification_gate(audit: Audit) -> None:
    raw = {"kind": "amplification", "metric": "dice", "by": "age_group"}
    r = check(audit, **raw, model="candidate", baseline="baseline", max=0.25, min_group_size=10)
    assert r.status == "failed"
    # paired: both gaps on the cases both models scored (baseline misses 10 young cases)
    means = r.evidence.pivot(index="group", columns="source", values="estimate")
    gaps = means.max() - means.min()
    assert r.estimate == pytest.approx(gaps["candidate @ expert"] / gaps["baseline @ expert"] - 1)
    assert r.estimate > 0.9
    assert r.id == "amplification[dice,age_group,candidate,baseline,expert]"
    reverse = check(
        audit, **raw, model="baseline", baseline="candidate", max=0.0, min_group_size=10
    )
    assert reverse.status == "passed"
    assert reverse.estimate == pytest.approx(1 / (1 + r.estimate) - 1)


def test_amplification_over_a_negligible_baseline_gap_is_judged_on_a_declared_max_difference(
    audit: Audit,
) -> None:
    amp = {
        "kind": "amplification",
        "metric": "dice",
        "by": "age_group",
        "model": "candidate",
        "baseline": "fair",
        "max": 0.25,
    }
    undeclared = check(audit, **amp)
    assert (undeclared.status, undeclared.reason) == ("inconclusive", "precondition_not_met")
    assert undeclared.threshold == 0.25
    r = check(audit, **amp, max_difference=0.01)
    assert r.status == "failed"  # the added gap (≈ 0.096) is shown to exceed 0.01
    assert r.estimate == pytest.approx(0.096)
    assert r.threshold == 0.01


# -- label agreement, per-group minimum, DPD / DIR --------------------------------------------


def test_label_agreement_fails_when_one_group_is_below_the_minimum(audit: Audit) -> None:
    base = {"kind": "label_agreement", "by": "age_group", "automated": "automated"}
    r = check(audit, **base, min=0.8)
    assert r.status == "failed"
    assert r.measure == "dice agreement of group 'young'"
    assert r.decision_rule == "every group's lower 95% bound of the dice agreement ≥ 0.8"
    assert "the 'young' group agrees least" in r.message
    # what to do is the next step, not a repeat of the message (issue 15)
    assert "review the automated labels of the 'young' group" in r.next_steps[0]
    assert check(audit, **base, min=0.7).status == "passed"
    assert check(audit, **base, max_gap=0.05).status == "failed"
    both = check(audit, **base, min=0.7, max_gap=0.2)
    assert both.status == "passed"
    assert " and upper 95% bound of the gap in dice agreement" in both.decision_rule


def test_label_agreement_on_a_distance_uses_a_maximum(audit: Audit) -> None:
    base = {
        "kind": "label_agreement",
        "by": "age_group",
        "automated": "automated",
        "metric": "hd95",
    }
    # 60 cases a group and no miss drawn: up to 6% misses at the 150 mm cap may be unseen, so
    # the upper bound allows for them (the rare-miss guard, docs/statistics.md)
    assert check(audit, **base, max=16.0).status == "passed"
    assert check(audit, **base, max=8.0).status == "inconclusive"
    assert check(audit, **base, max=5.0).status == "failed"


def test_min_group_metric_checks_every_group(audit: Audit) -> None:
    base = {"kind": "min_group_metric", "by": "age_group", "model": "candidate"}
    assert check(audit, **base, metric="dice", min=0.65).status == "passed"
    low = check(audit, **base, metric="dice", min=0.72)
    assert low.status == "failed"
    assert low.estimate == pytest.approx(0.70)
    # the capped distance's upper bound allows for misses a group of 60 may not have drawn
    assert check(audit, **base, metric="hd95", max=30).status == "passed"
    assert check(audit, **base, metric="hd95", max=25).status == "inconclusive"
    far = check(audit, **base, metric="hd95", max=18)
    assert far.status == "failed"
    assert far.measure == "hd95 of group 'young' (mm)"  # units say themselves (issue 15)


def test_dpd_and_dir_gates_use_rates_above_the_threshold(audit: Audit) -> None:
    base = {"metric": "dice", "by": "age_group", "threshold": 0.72}
    dpd = check(audit, kind="dpd", **base, model="candidate", max=0.1)
    assert dpd.status == "failed"
    assert dpd.estimate > 0.5
    assert dpd.id == "dpd[dice>0.72,age_group,candidate,expert]"
    d = check(audit, kind="dir", **base, model="candidate")
    assert d.status == "failed"
    assert d.threshold == 0.8
    everyone = {**base, "threshold": 0.7}  # every 'fair' case is above: rates of 1 everywhere
    fair_dpd = check(audit, kind="dpd", **everyone, model="fair", max=0.1)
    assert fair_dpd.status == "passed"
    assert (fair_dpd.lower, fair_dpd.upper) == (0.0, 0.0)
    assert check(audit, kind="dir", **everyone, model="fair").status == "passed"


# -- coverage and group sizes -------------------------------------------------------------------


def test_coverage_fails_when_a_group_lost_predictions(audit: Audit) -> None:
    r = check(audit, kind="coverage", by="age_group", model="baseline", min=0.95)
    assert r.status == "failed"
    assert r.estimate == pytest.approx(50 / 60)
    assert r.message == (
        "The coverage of baseline in group 'young' (cases with a usable prediction) is 0.8333; "
        "it is below the limit 0.95: baseline misses 10 case(s) of 'young' (no scores and no "
        "recorded exclusion: 1; prediction file missing: 9); predict them or record why they "
        "are excluded."
    )
    assert (
        check(audit, kind="coverage", by="age_group", model="candidate", min=0.95).status
        == "passed"
    )
    assert check(audit, kind="coverage", by="age_group", min=0.95).status == "failed"


def test_coverage_and_group_size_decide_on_counts_whatever_decide_on_says(audit: Audit) -> None:
    r = check(audit, kind="coverage", by="age_group", model="candidate", min=0.99)
    assert r.status == "passed"
    assert r.decide_on == "estimate"


def test_min_group_size_fails_when_a_group_is_too_small(tiny_audit: Audit) -> None:
    ok = check(tiny_audit, kind="min_group_size", by="age_group", min=8)
    assert ok.status == "passed"
    small = check(tiny_audit, kind="min_group_size", by="age_group", ruler="expert", min=20)
    assert small.status == "failed"
    assert small.estimate == 8
    assert small.next_steps == ("add 12 case(s) with expert labels to group 'older'",)
    assert small.id == "min_group_size[age_group,expert]"


# -- Holm ---------------------------------------------------------------------------------------


def test_holm_makes_a_marginal_gate_fail_in_a_family_of_failures(audit: Audit) -> None:
    loose = audit.gap("dice", by="age_group", model="wide").gap.upper
    strict = audit.gap("dice", by="age_group", model="wide", confidence=1 - 0.05 / 3).gap.upper
    assert strict > loose
    limit = (loose + strict) / 2
    gates = parse_gates(
        [
            {**GAP, "model": "wide", "max": limit},
            {**GAP, "model": "candidate", "max": 0.05},
            {**SHRINK, "model": "candidate", "max": 0.25},
        ],
        trusted_ruler="expert",
    )
    plain = evaluate_gates(audit, gates)
    assert [r.status for r in plain] == ["passed", "failed", "failed"]
    holm = evaluate_gates(audit, gates, holm=True)
    # at the Holm level the marginal gate's interval straddles its limit: inconclusive, blocking
    assert [r.status for r in holm] == ["inconclusive", "failed", "failed"]
    assert not holm[0].ok
    first = holm[0]
    assert first.holm == {"family_size": 3, "step": 1, "confidence": pytest.approx(1 - 0.05 / 3)}
    assert first.confidence == pytest.approx(1 - 0.05 / 3)
    assert first.decision_rule.startswith("upper 98.33% bound of the dice gap")
    assert first.decision_rule.endswith("(Holm step 1 of 3)")


def test_holm_relaxes_the_level_step_by_step_as_gates_pass(audit: Audit) -> None:
    gates = parse_gates(
        [
            {**GAP, "model": "fair", "max": 0.05},
            {
                "kind": "min_group_metric",
                "metric": "dice",
                "by": "age_group",
                "model": "candidate",
                "min": 0.5,
            },
            {**GAP, "model": "candidate", "max": 0.05},
            {"kind": "coverage", "by": "age_group", "model": "candidate", "min": 0.9},
            {**GAP, "model": "fair", "max": 0.05, "decide_on": "estimate"},
        ],
        trusted_ruler="expert",
    )
    results = evaluate_gates(audit, gates, holm=True)
    assert [r.status for r in results] == ["passed", "passed", "failed", "passed", "passed"]
    assert results[0].holm == {
        "family_size": 3,
        "step": 1,
        "confidence": pytest.approx(1 - 0.05 / 3),
    }
    assert results[2].holm is not None
    assert results[2].holm["step"] == 2
    assert results[2].confidence == pytest.approx(0.95)  # one gate left: the plain level
    assert results[3].holm is None
    assert results[4].holm is None


# -- schema ---------------------------------------------------------------------------------------


def test_every_kind_parses_from_its_toml_form() -> None:
    raw = [
        {**GAP, "model": "m", "ruler": "expert", "max": 0.05},
        {**SHRINK, "model": "m", "max": 0.25},
        {
            "kind": "ruler_inflation",
            "metric": "dice",
            "by": "a",
            "model": "m",
            "automated": "auto",
            "max": 0.5,
        },
        {
            "kind": "amplification",
            "metric": "dice",
            "by": "a",
            "model": "m",
            "baseline": "b",
            "max": 0.25,
        },
        {"kind": "label_agreement", "by": "a", "automated": "auto", "min": 0.8},
        {"kind": "min_group_metric", "metric": "dice", "by": "a", "model": "m", "min": 0.7},
        {"kind": "dpd", "metric": "dice", "by": "a", "model": "m", "max": 0.1},
        {"kind": "dir", "metric": "dice", "by": "a", "model": "m"},
        {"kind": "coverage", "by": "a", "min": 0.95},
        {"kind": "min_group_size", "by": "a", "min": 30},
        {"kind": "no_regression", "metric": "dice", "by": "a", "model": "m", "max_increase": 0.01},
        {"kind": "detection_gap", "by": "a", "model": "m", "max": 0.1},
    ]
    gates = parse_gates(raw)
    assert [g.kind for g in gates] == list(GATE_KINDS)
    assert [g.id for g in gates] == [
        "gap[dice,age_group,m,expert]",
        "ruler_shrinkage[dice,age_group,m,automated]",
        "ruler_inflation[dice,a,m,auto]",
        "amplification[dice,a,m,b]",
        "label_agreement[dice,a,auto]",
        "min_group_metric[dice,a,m]",
        "dpd[dice>0.8,a,m]",
        "dir[dice>0.8,a,m]",
        "coverage[a]",
        "min_group_size[a]",
        "no_regression[dice,a,m]",
        "detection_gap[a,m]",
    ]


def test_the_trusted_ruler_is_written_into_ids_when_known() -> None:
    g = parse_gate({**GAP, "model": "m", "max": 0.05}, trusted_ruler="expert")
    assert g.id == "gap[dice,age_group,m,expert]"
    inter = parse_gate({**GAP, "by": ["age_group", "ethnicity"], "model": "m", "max": 0.05})
    assert inter.id == "gap[dice,age_group×ethnicity,m]"
    assert inter.by == ("age_group", "ethnicity")  # type: ignore[union-attr]


def _config_error(raw: Mapping[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        parse_gates([raw], source="segfair.toml")
    return str(e.value)


def test_an_unknown_key_names_the_closest_valid_one() -> None:
    text = _config_error({**GAP, "model": "m", "maxx": 0.05})
    valid = ", ".join(sorted(GapGate.model_fields))
    assert (
        "gates[0].maxx: "
        + UNKNOWN_GATE_KEY.format(
            key="maxx", hint=" (did you mean 'max'?)", kind="gap", valid=valid
        )
        in text
    )
    assert text.startswith("segfair.toml: invalid gate")


def test_an_unknown_kind_lists_the_valid_kinds() -> None:
    text = _config_error({"kind": "gapp", "metric": "dice"})
    assert (
        "gates[0].kind: "
        + UNKNOWN_KIND.format(
            kind="gapp", hint=" (did you mean 'gap'?)", valid=", ".join(GATE_KINDS)
        )
        in text
    )


def test_a_missing_key_is_named() -> None:
    text = _config_error({"kind": "gap", "metric": "dice", "by": "a", "max": 0.05})
    assert "gates[0].model: " + MISSING_GATE_KEY.format(key="model", kind="gap") in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {**GAP, "model": "m", "max": 1.5},
            FRACTION_RANGE.format(field="max", why=" for 'dice'", value=1.5),
        ),
        (
            {**GAP, "model": "m", "max": -0.1},
            FRACTION_RANGE.format(field="max", why=" for 'dice'", value=-0.1),
        ),
        ({**GAP, "model": "m", "statistic": "ratio", "max": 0.9}, RATIO_NEEDS_MIN),
        (
            {"kind": "min_group_metric", "metric": "hd95", "by": "a", "model": "m", "min": 5},
            DISTANCE_NEEDS_MAX.format(metric="hd95"),
        ),
        (
            {**SHRINK, "model": "m", "max": 2.0},
            FRACTION_RANGE.format(
                field="max", why=" (the fraction of the trusted gap hidden)", value=2.0
            ),
        ),
        ({**GAP, "model": "m", "max": 0.05, "confidence": 1.2}, CONFIDENCE_RANGE.format(value=1.2)),
    ],
)
def test_thresholds_out_of_range_are_rejected_with_the_valid_range(
    raw: dict[str, Any], message: str
) -> None:
    assert message in _config_error(raw)


def test_a_signed_metric_may_be_limited_from_either_side() -> None:
    base = {"kind": "min_group_metric", "metric": "volume_error", "by": "a", "model": "m"}
    assert parse_gate({**base, "max": 0.2}).max == 0.2  # type: ignore[union-attr]
    assert parse_gate({**base, "min": -0.2}).min == -0.2  # type: ignore[union-attr]
    assert SCORE_NEEDS_MIN.format(
        metric="dice", distances=", ".join(sorted(DISTANCE_METRICS))
    ) in _config_error({**base, "metric": "dice", "max": 0.9})


def test_a_gate_built_in_python_is_validated_by_pydantic() -> None:
    with pytest.raises(ValidationError, match="must be a fraction in"):
        GapGate(metric="dice", by="age_group", model="m", max=3.0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        GapGate(metric="dice", by="a", model="m", max=0.1, color="red")  # type: ignore[call-arg]


def test_an_unknown_model_is_reported_when_the_gate_is_evaluated(audit: Audit) -> None:
    with pytest.raises(AuditError, match="unknown model 'ghost'"):
        check(audit, **GAP, model="ghost", max=0.05)


# -- results ------------------------------------------------------------------------------------


def test_a_result_is_json_and_round_trips_through_to_dict(audit: Audit) -> None:
    r = check(audit, **SHRINK, model="candidate", max=0.25)
    data = r.to_dict()
    text = json.dumps(data)
    assert json.loads(text)["status"] == "failed"
    assert data["evidence"][0] == {
        "source": "candidate @ expert",
        "group": "young",
        "n": 60,
        "estimate": pytest.approx(0.70),
        "lower": pytest.approx(data["evidence"][0]["lower"]),
        "upper": pytest.approx(data["evidence"][0]["upper"]),
    }
    again = GateResult.from_dict(json.loads(text))
    assert again.to_dict() == data
    assert again.ok is False


def test_nan_values_become_null_in_json(tiny_audit: Audit) -> None:
    r = check(tiny_audit, kind="min_group_size", by="age_group", min=5)
    data = r.to_dict()
    assert data["evidence"][0]["estimate"] is None
    json.dumps(data)


def test_explain_shows_the_groups_the_rule_and_what_to_look_at_next(audit: Audit) -> None:
    r = check(audit, **SHRINK, model="candidate", max=0.25)
    text = r.explain()
    lines = text.splitlines()
    assert lines[0] == "ruler_shrinkage[dice,age_group,candidate,automated,expert]: FAILED"
    assert "  threshold:     0.25" in lines
    assert f"  decision rule: {r.decision_rule}" in lines
    assert "  evidence (95% intervals):" in lines
    assert "    candidate @ expert" in lines
    assert "    candidate @ automated" in lines
    young_rows = [line for line in lines if line.strip().startswith("young")]
    assert len(young_rows) == 2
    assert young_rows[0].split()[1] == "60"
    assert "  next:" in lines
    assert any("label_audit(by='age_group', automated='automated')" in line for line in lines)
    assert str(r).startswith("ruler_shrinkage[dice,age_group,candidate,automated,expert]: FAILED")


def test_a_failed_gap_suggests_the_label_audit_for_the_lowest_group(audit: Audit) -> None:
    text = check(audit, **GAP, model="candidate", max=0.05).explain()
    assert "look at the label audit for the 'young' group" in text
    assert "controlled_gap('dice', by='age_group', ..., stratify='volume_ml')" in text


def test_results_carry_a_number_for_every_field(audit: Audit) -> None:
    r = check(audit, **GAP, model="candidate", max=0.05)
    for v in (r.estimate, r.lower, r.upper, r.threshold):
        assert isinstance(v, float)
        assert not math.isnan(v)
    assert list(r.evidence.columns) == ["source", "group", "n", "estimate", "lower", "upper"]


def test_no_regression_compares_the_gap_with_the_baseline_report() -> None:
    from segfair.audit import example_scores

    audit = Audit(example_scores(), n_boot=200, min_group_size=10)
    gate = parse_gate(
        {"kind": "no_regression", "metric": "dice", "by": "age", "model": "m", "max_increase": 0.02}
    )
    gap = audit.gap("dice", by="age", model="m").gap
    grown = {"gaps": [{"id": gate.gap_id, "gap": {"estimate": gap.lower - 0.1}}]}
    same = {"gates": [{"id": gate.gap_id, "estimate": gap.upper + 0.05}]}
    assert evaluate_gate(audit, gate, baseline=grown).status == "failed"
    assert evaluate_gate(audit, gate, baseline=same).status == "passed"
    missing = evaluate_gate(audit, gate, baseline=None)
    assert (missing.status, missing.reason) == ("inconclusive", "no_baseline")
    assert "--segfair-baseline" in missing.decision_rule
    other = evaluate_gate(audit, gate, baseline={"gaps": []})
    assert other.status == "inconclusive"
    assert "has no gap[dice,age,m]" in other.decision_rule


# -- issue 15: a next step that is not the message, units -----------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        {**GAP, "model": "candidate", "max": 0.05},  # failed: evidence of harm
        {**GAP, "model": "wide", "max": 0.045},  # inconclusive: the interval straddles
        {**SHRINK, "model": "candidate", "max": 0.01},
        {**SHRINK, "model": "fair", "max": 0.25},  # the share is undefined
        {"kind": "label_agreement", "by": "age_group", "automated": "automated", "min": 0.8},
        {"kind": "coverage", "by": "age_group", "model": "baseline", "min": 0.95},
        {
            "kind": "min_group_metric",
            "metric": "dice",
            "by": "age_group",
            "model": "candidate",
            "min": 0.75,
        },
    ],
)
def test_the_next_step_of_a_gate_that_does_not_pass_is_never_its_message_again(
    audit: Audit, raw: dict[str, Any]
) -> None:
    r = check(audit, **raw)
    assert r.status != "passed"
    assert r.next_steps, r.message
    said = " ".join(r.message.lower().split())
    for step in r.next_steps:
        assert " ".join(step.lower().rstrip(".").split()) not in said


def test_a_group_below_min_group_size_says_what_to_add_as_its_next_step_only(
    tiny_audit: Audit,
) -> None:
    r = check(tiny_audit, **GAP, model="fair", max=0.05)
    assert r.next_steps[0].startswith("add cases (or trusted labels) to 'older'")
    assert "add cases" not in r.message


def test_a_distance_gate_says_mm_in_its_message_rule_and_measure(audit: Audit) -> None:
    r = check(
        audit, kind="min_group_metric", metric="hd95", by="age_group", model="candidate", max=18
    )
    assert r.unit == "mm"
    assert r.decision_rule.endswith("≤ 18 mm")
    assert "is within the limit" in r.message or "the limit 18 mm" in r.message
    assert " mm (95% interval " in r.message
    assert " mm)" in r.message
    assert r.measure.endswith("(mm)")
    assert r.to_dict()["unit"] == "mm"


def test_an_overlap_gate_has_no_unit(audit: Audit) -> None:
    r = check(audit, **GAP, model="candidate", max=0.05)
    assert r.unit == ""
    assert " mm" not in r.message
    assert r.decision_rule.endswith("≤ 0.05")


def test_a_tiny_bound_reads_as_a_bound_at_zero_not_in_scientific_notation() -> None:
    from segfair.gates.result import _f

    assert _f(1.6e-12) == "<0.0001"
    assert "e-" not in _f(-2.5e-9)
    assert _f(0.01234) == "0.01234"
