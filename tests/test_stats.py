"""The bootstrap core: resampling design, group statistics and the intervals built on them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from segfair.stats import (
    build_design,
    group_statistic,
    max_abs_interval,
    percentile_interval,
    ratio_interval,
    stable_hash,
    wilson_interval,
)


def test_stable_hash_does_not_depend_on_the_process() -> None:
    # a fixed value: Python's salted hash() would differ from run to run
    assert stable_hash("by", "age_group") == 8913314935827091433
    assert stable_hash("by", "age_group") != stable_hash("by", "ethnicity")


def test_every_resample_keeps_each_group_at_its_size() -> None:
    codes = np.repeat([0, 1, 2], [5, 17, 40])
    design = build_design(codes, ("a", "b", "c"), key=("g",), n_boot=300, seed=1)
    for g, size in enumerate((5, 17, 40)):
        assert (design.weights[:, design.block(g)].sum(axis=1) == size).all()
    assert design.weights.shape == (300, 62)


def test_resamples_depend_only_on_the_seed_and_the_attribute() -> None:
    codes = np.repeat([0, 1], [30, 30])
    a = build_design(codes, ("x", "y"), key=("age",), n_boot=200, seed=7)
    b = build_design(codes, ("x", "y"), key=("age",), n_boot=200, seed=7)
    c = build_design(codes, ("x", "y"), key=("site",), n_boot=200, seed=7)
    d = build_design(codes, ("x", "y"), key=("age",), n_boot=200, seed=8)
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    assert not np.array_equal(a.weights, d.weights)


def test_group_mean_interval_agrees_with_normal_theory_for_a_large_sample() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.7, 0.2, size=3000)
    design = build_design(np.zeros(3000, int), ("all",), key=("g",), n_boot=2000, seed=0)
    reps = group_statistic(design, x[:, None], "mean")
    lo, hi = percentile_interval(reps.reps[:, 0, 0], 0.95)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert float(lo) == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert float(hi) == pytest.approx(x.mean() + half, abs=0.1 * half)
    assert reps.estimate[0, 0] == pytest.approx(x.mean())


def test_the_mean_of_each_resample_is_the_weighted_mean_of_its_cases() -> None:
    rng = np.random.default_rng(4)
    x = rng.random(20)
    codes = np.repeat([0, 1], 10)
    design = build_design(codes, ("a", "b"), key=("g",), n_boot=50, seed=0)
    reps = group_statistic(design, x[:, None], "mean")
    w = design.weights
    expected = (w[:, :10] @ x[:10]) / 10
    assert np.allclose(reps.reps[:, 0, 0], expected)
    assert np.allclose(reps.overall_reps[:, 0], (w @ x[design.order]) / 20)


def test_the_median_of_each_resample_is_the_median_of_the_expanded_sample() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=15)
    design = build_design(np.zeros(15, int), ("a",), key=("g",), n_boot=100, seed=2)
    reps = group_statistic(design, x[:, None], "median")
    expected = [np.median(np.repeat(x, w.astype(int))) for w in design.weights]
    assert np.allclose(reps.reps[:, 0, 0], expected)
    assert reps.estimate[0, 0] == pytest.approx(np.median(x))


def test_nan_values_are_left_out_of_the_statistic_and_the_count() -> None:
    x = np.array([1.0, np.nan, 3.0, 5.0])
    design = build_design(np.zeros(4, int), ("a",), key=("g",), n_boot=100, seed=0)
    reps = group_statistic(design, x[:, None], "mean")
    assert reps.n[0, 0] == 3
    assert reps.estimate[0, 0] == pytest.approx(3.0)
    assert not np.isnan(reps.reps[:, 0, 0]).all()


def test_an_empty_group_gives_nan_without_crashing() -> None:
    design = build_design(np.zeros(5, int), ("a", "b"), key=("g",), n_boot=100, seed=0)
    for stat in ("mean", "median"):
        reps = group_statistic(design, np.ones((5, 1)), stat)
        assert reps.n[:, 0].tolist() == [5, 0]
        assert np.isnan(reps.estimate[1, 0])
        assert np.isnan(reps.reps[:, 1, 0]).all()


def test_a_cluster_bootstrap_moves_whole_clusters_within_each_group() -> None:
    codes = np.repeat([0, 1], 12)
    clusters = np.tile(np.repeat([0, 1, 2], 4), 2)
    design = build_design(codes, ("a", "b"), key=("g",), n_boot=100, seed=0, clusters=clusters)
    assert design.n_clusters.tolist() == [3, 3]
    w = design.weights[:, design.block(0)]
    members = clusters[design.order][:12]
    for c in range(3):
        block = w[:, members == c]
        assert (block == block[:, [0]]).all()  # a cluster's cases come and go together
    assert (w.sum(axis=1) % 4 == 0).all()


def test_the_gap_upper_bound_is_the_largest_end_of_the_pair_intervals() -> None:
    rng = np.random.default_rng(6)
    reps = np.column_stack([0.10 + rng.normal(0, 0.01, 4000), 0.02 + rng.normal(0, 0.01, 4000)])
    est, lo, hi = max_abs_interval(np.array([0.10, 0.02]), reps, 0.95)
    assert est == pytest.approx(0.10)
    assert hi == pytest.approx(np.quantile(reps[:, 0], 0.975), rel=1e-9)
    # Bonferroni over the two contrasts, two-sided each, α/2 in total: α/(4K) per side
    assert lo == pytest.approx(np.quantile(reps[:, 0], 0.05 / 8), rel=1e-9)


def test_the_gap_lower_bound_is_zero_when_every_contrast_may_be_zero() -> None:
    rng = np.random.default_rng(7)
    reps = rng.normal(0, 0.01, size=(4000, 3))
    est, lo, hi = max_abs_interval(np.array([0.001, -0.002, 0.0005]), reps, 0.95)
    assert lo == 0.0
    assert hi > est > 0


def test_a_negative_contrast_counts_by_its_size() -> None:
    rng = np.random.default_rng(8)
    reps = -0.2 + rng.normal(0, 0.01, size=(4000, 1))
    est, lo, hi = max_abs_interval(np.array([-0.2]), reps, 0.95)
    assert est == pytest.approx(0.2)
    assert 0.17 < lo < 0.2 < hi < 0.23


def test_the_ratio_interval_follows_the_gap_of_the_logs() -> None:
    rng = np.random.default_rng(9)
    reps = np.column_stack([0.6 + rng.normal(0, 0.01, 4000), 0.8 + rng.normal(0, 0.01, 4000)])
    est, lo, hi = ratio_interval(np.array([0.6, 0.8]), reps, 0.95)
    assert est == pytest.approx(0.75)
    assert lo < 0.75 < hi
    ratio = reps[:, 0] / reps[:, 1]
    # the ratio's upper end is the gap's lower end: α/(4K) per side with K = 1 contrast
    assert hi == pytest.approx(np.quantile(ratio, 1 - 0.05 / 4), rel=1e-3)


def test_a_negative_group_estimate_has_no_ratio() -> None:
    est, lo, hi = ratio_interval(np.array([-0.1, 0.5]), np.zeros((10, 2)), 0.95)
    assert np.isnan([est, lo, hi]).all()


def test_percentile_interval_ignores_nan_replicates() -> None:
    reps = np.r_[np.arange(101.0), [np.nan] * 20]
    lo, hi = percentile_interval(reps, 0.9)
    assert (float(lo), float(hi)) == pytest.approx((5.0, 95.0))


def test_wilson_interval_matches_the_textbook_formula() -> None:
    lo, hi = wilson_interval(95, 100, 0.95)
    z = sps.norm.ppf(0.975)
    p, n = 0.95, 100
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert np.isnan(wilson_interval(0, 0, 0.95)).all()
