"""A streamed design (a large cohort) draws its bootstrap counts block by block from keyed
streams instead of storing an n × resamples matrix: the same stratified bootstrap, the same
statistics, memory independent of n."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import segfair.audit.core as audit_core
import segfair.stats.bootstrap as bootstrap
import segfair.stats.design as design_module
from segfair.audit import Audit, example_scores
from segfair.stats import build_design, group_statistic
from segfair.stats.resample import BLOCK, CountStream


def _stream(m: int, n_boot: int = 300, label: str = "a") -> np.ndarray:
    s = CountStream(seed=7, key=("g",), label=label, n_units=m, n_boot=n_boot)
    blocks = list(s.blocks())
    assert all(hi - lo <= BLOCK for lo, hi, _ in blocks)
    assert [lo for lo, _, _ in blocks] == list(range(0, m, BLOCK))
    return np.concatenate([c for _, _, c in blocks], axis=1)


@pytest.mark.parametrize("m", [1, 7, BLOCK, BLOCK + 1, 2 * BLOCK + 5])
def test_every_resample_of_a_stream_draws_exactly_as_many_units_as_the_group_has(m: int) -> None:
    counts = _stream(m)
    assert counts.shape == (300, m)
    assert (counts.sum(axis=1) == m).all()
    assert (counts >= 0).all()
    assert np.array_equal(counts, np.round(counts))


def test_stream_counts_have_the_multinomial_moments() -> None:
    m, b = 3 * BLOCK + 100, 600
    counts = _stream(m, b)
    # each unit: Binomial(m, 1/m), mean 1 and variance 1 − 1/m (2.2 M counts: se ≈ 0.001)
    assert abs(counts.mean() - 1) < 0.005
    assert abs(counts.var() - (1 - 1 / m)) < 0.02
    # a block's share: Binomial(m, u/m) — the binomial chain between blocks is right
    first = counts[:, :BLOCK].sum(axis=1)
    p = BLOCK / m
    assert abs(first.mean() - m * p) < 4 * np.sqrt(m * p * (1 - p) / b)
    assert abs(first.var() / (m * p * (1 - p)) - 1) < 0.2
    # disjoint blocks are negatively correlated as multinomial counts are
    second = counts[:, BLOCK : 2 * BLOCK].sum(axis=1)
    expected = -p / (1 - p)
    assert abs(np.corrcoef(first, second)[0, 1] - expected) < 0.15


def test_a_stream_is_keyed_by_seed_attribute_and_group_and_nothing_else() -> None:
    a = _stream(5000)
    assert np.array_equal(a, _stream(5000))
    assert not np.array_equal(a, _stream(5000, label="b"))
    other = CountStream(seed=8, key=("g",), label="a", n_units=5000, n_boot=300)
    assert not np.array_equal(a, np.concatenate([c for _, _, c in other.blocks()], axis=1))


def test_a_groups_resamples_do_not_depend_on_the_other_groups() -> None:
    small = build_design(
        np.repeat([0, 1], [300, 50]), ("a", "b"), key=("g",), n_boot=50, seed=1, stream=True
    )
    large = build_design(
        np.repeat([0, 1], [300, 900]), ("a", "b"), key=("g",), n_boot=50, seed=1, stream=True
    )
    (_, _, ca), (_, _, cb) = next(small.unit_counts(0)), next(large.unit_counts(0))
    assert np.array_equal(ca, cb)


def _as_stored(d: design_module.Design) -> design_module.Design:
    """The same design with its streamed counts written into a stored matrix."""
    weights = np.zeros((d.n_boot, len(d.order)), order="F")
    for g in range(len(d.labels)):
        full = np.zeros((d.n_boot, int(d.n_clusters[g])))
        for lo, hi, c in d.unit_counts(g):
            full[:, lo:hi] = c
        weights[:, d.block(g)] = full[:, d.local_units(g)]
    return dataclasses.replace(d, weights=weights)


@pytest.mark.parametrize("clustered", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_a_streamed_design_computes_what_the_stored_one_computes_on_the_same_counts(
    clustered: bool, weighted: bool, statistic: str
) -> None:
    rng = np.random.default_rng(3)
    n = 3 * BLOCK + 321
    codes = rng.integers(0, 3, n)
    clusters = rng.integers(0, 40, n) if clustered else None
    d = build_design(
        codes, ("a", "b", "c"), key=("g",), n_boot=120, seed=5, clusters=clusters, stream=True
    )
    assert d.streamed
    assert d.weights is None
    x = np.c_[rng.beta(5, 2, n), np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2, 3, n))]
    cw = rng.uniform(0.5, 3, n) if weighted else None
    got = group_statistic(d, x, statistic, cw)  # type: ignore[arg-type]
    want = group_statistic(_as_stored(d), x, statistic, cw)  # type: ignore[arg-type]
    # plain means are multiplied in float32 on centred values: equal to ~7 digits of the spread
    plain = statistic == "mean" and not (clustered or weighted)
    tol = {"rtol": 1e-6, "atol": 1e-6} if plain else {"rtol": 1e-10, "atol": 1e-12}
    for field in ("estimate", "reps", "overall", "overall_reps", "n", "se", "se_reps"):
        a, b = getattr(got, field), getattr(want, field)
        if b is None:
            assert a is None
            continue
        np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"], err_msg=field)


def test_resample_medians_stay_exact_when_their_window_must_widen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bootstrap, "_WINDOW", 0)  # a window of 16 positions: most resamples miss
    rng = np.random.default_rng(11)
    n = 2000
    d = build_design(rng.integers(0, 2, n), ("a", "b"), key=("g",), n_boot=80, seed=2, stream=True)
    x = rng.normal(size=(n, 1))
    cw = rng.uniform(0.2, 5, n)
    for weights in (None, cw):
        got = group_statistic(d, x, "median", weights)
        want = group_statistic(_as_stored(d), x, "median", weights)
        np.testing.assert_array_equal(got.reps, want.reps)
        np.testing.assert_array_equal(got.overall_reps, want.overall_reps)


def test_series_computed_together_or_alone_get_the_same_replicates() -> None:
    rng = np.random.default_rng(4)
    n = BLOCK + 500
    d = build_design(rng.integers(0, 2, n), ("a", "b"), key=("g",), n_boot=100, seed=0, stream=True)
    x = rng.random((n, 3))
    together = group_statistic(d, x, "mean")
    alone = group_statistic(d, x[:, 1:2], "mean")
    np.testing.assert_allclose(together.series(1).reps, alone.reps, rtol=1e-6)


def test_studentized_intervals_on_a_streamed_design_cover_at_their_level() -> None:
    """300 samples of a skewed metric in two groups of 60 and 140: the 95% interval of each
    group's mean covers the true mean in 95% ± 2.5% of them (Monte-Carlo se 1.3%)."""
    rng = np.random.default_rng(12)
    hits, total = 0, 0
    codes = np.repeat([0, 1], [60, 140])
    for rep in range(300):
        x = rng.beta(2, 5, 200)  # mean 2/7
        d = build_design(codes, ("a", "b"), key=("g",), n_boot=300, seed=rep, stream=True)
        r = group_statistic(d, x[:, None], "mean")
        lo, hi = Audit.group_interval(r, 0, 0.95)
        hits += int(((lo <= 2 / 7) & (hi >= 2 / 7)).sum())
        total += 2
    assert abs(hits / total - 0.95) < 0.025


def _count_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of series of every pass the audit makes over a design's counts, from now."""
    passes: list[int] = []
    real = audit_core.group_statistic

    def counting(design, values, statistic, case_weights=None):  # type: ignore[no-untyped-def]
        passes.append(len(values))
        return real(design, values, statistic, case_weights)

    monkeypatch.setattr(audit_core, "group_statistic", counting)
    return passes


def _forced_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(design_module, "STREAM_ABOVE", 0)
    monkeypatch.setattr(audit_core, "STREAM_ABOVE", 0)


def test_a_streamed_audit_agrees_with_a_stored_one_within_resampling_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = Audit(example_scores(), n_boot=1000, seed=0)
    want = stored.gap("dice", by="age", model="m")
    _forced_streaming(monkeypatch)
    streamed = Audit(example_scores(), n_boot=1000, seed=0)
    got = streamed.gap("dice", by="age", model="m")
    assert streamed.grouping("age").design.streamed
    assert got.gap.estimate == pytest.approx(want.gap.estimate, abs=1e-12)
    width = want.gap.upper - want.gap.lower
    assert abs(got.gap.lower - want.gap.lower) < 0.1 * width
    assert abs(got.gap.upper - want.gap.upper) < 0.1 * width


def test_prefetch_computes_what_a_report_asks_for_in_one_pass_per_grouping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _forced_streaming(monkeypatch)
    passes = _count_passes(monkeypatch)

    def work(a: Audit) -> list[float]:
        return [
            a.gap("dice", by="age", model="m").gap.upper,
            a.ruler_distortion("dice", by="age", model="m", automated="auto").shrinkage.estimate,
            a.dpd_dir("dice", by="age", model="m").dpd.estimate,
        ]

    fresh = Audit(example_scores(), n_boot=200, seed=0)
    want = work(fresh)
    alone = len(passes)
    passes.clear()
    prefetched = Audit(example_scores(), n_boot=200, seed=0)
    prefetched.prefetch(lambda: work(prefetched))
    assert len(passes) == 1 < alone  # one grouping, one pass
    assert work(prefetched) == want  # and then every request is answered from it
    assert len(passes) == 1


@pytest.mark.parametrize("name", ["hidden", "parikh", "partial"])
def test_golden_runs_reach_the_same_verdicts_when_their_resamples_are_streamed(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cohort large enough to stream draws other resamples than a stored design would: the
    verdicts of the golden runs must not depend on which (issue 18)."""
    from golden_runs import golden_path, produce

    _forced_streaming(monkeypatch)
    streamed = json.loads(produce(name, tmp_path)["json"])
    stored = json.loads(golden_path(name, "json").read_text(encoding="utf-8"))
    assert {g["id"]: g["status"] for g in streamed["gates"]} == {
        g["id"]: g["status"] for g in stored["gates"]
    }
    assert streamed["verdict"] == stored["verdict"]


def test_a_streamed_report_is_the_same_byte_for_byte_for_the_same_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from golden_runs import produce

    _forced_streaming(monkeypatch)
    first = produce("hidden", tmp_path / "a")["json"]
    second = produce("hidden", tmp_path / "b")["json"]
    assert first == second


def test_prefetch_learns_every_structure_of_an_audit_in_one_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd

    _forced_streaming(monkeypatch)
    one = example_scores()
    tables = [one.table.assign(structure=name) for name in ("core", "edema")]
    scores = dataclasses.replace(
        one,
        table=pd.concat(tables, ignore_index=True),
        agreement=one.agreement.iloc[:0],
        morphology=one.morphology.iloc[:0],
        structures=("core", "edema"),
    )
    passes = _count_passes(monkeypatch)
    audit = Audit(scores, n_boot=200, seed=0)

    def work() -> list[float]:
        return [
            audit.for_structure(s).gap("dice", by="age", model="m").gap.upper
            for s in audit.structures
        ]

    audit.prefetch(work)
    assert len(passes) == 2  # one pass per structure's grouping, learnt in one run
    first = work()
    assert len(passes) == 2
    assert all(np.isfinite(first))
