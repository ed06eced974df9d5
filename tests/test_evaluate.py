"""Per-case evaluation: the tidy tables, reading each file once, parallel and cached runs."""

from __future__ import annotations

import contextlib
import io as stdio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Repo, write_nifti

import segfair.io
from segfair import metrics
from segfair.cohort import load_cohort
from segfair.errors import CohortError
from segfair.evaluate import (
    build_tasks,
    evaluate,
    evaluate_case,
)
from segfair.evaluate.executors import _Progress
from segfair.evaluate.store import STORE_NAME, Layout


def test_the_score_table_holds_every_metric_of_every_model_on_every_ruler(repo: Repo) -> None:
    scores = evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    t = scores.table
    assert list(t.columns) == ["case_id", "structure", "model", "ruler", "metric", "value"]
    assert set(t["structure"]) == {"foreground"}  # the one structure of a cohort without any
    assert len(t) == 12 * 1 * 2 * len(metrics.ALL_METRICS)
    assert set(t["ruler"]) == {"expert", "automated"}
    assert scores.agreement["ruler"].unique().tolist() == ["automated"]
    assert scores.agreement["reference"].unique().tolist() == ["expert"]
    assert len(scores.agreement) == 12 * len(metrics.ALL_METRICS)
    assert set(scores.morphology["ruler"]) == {"expert", "automated"}
    assert scores.trusted_ruler == "expert"
    assert scores.attribute_columns == {"age_group": "age", "ethnicity": "ethnicity"}
    assert scores.settings["hd95_method"] == "max_directed"


def test_scores_equal_the_metrics_computed_directly_on_the_files(repo: Repo) -> None:
    scores = evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    cid = repo.case_ids[4]
    pred = segfair.io.load_mask(repo.mask_path("model", "candidate", cid))
    ref = segfair.io.load_mask(repo.mask_path("ruler", "automated", cid))
    direct = metrics.compute(pred.array, ref.array, pred.spacing)
    got = scores.values("hd95", model="candidate", ruler="automated")[cid]
    assert got == pytest.approx(direct["hd95"])
    assert scores.values("dice", model="candidate", ruler="automated")[cid] == pytest.approx(
        direct["dice"]
    )


def test_each_file_is_read_once_per_case_however_many_pairs_it_serves(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = segfair.io.load_mask

    def counting(path: str, **kwargs: object) -> segfair.io.Mask:
        calls.append(str(path))
        return original(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(segfair.io, "load_mask", counting)
    evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    assert len(calls) == len(set(calls)) == 12 * 3


def test_results_do_not_depend_on_worker_count_or_row_order(repo: Repo) -> None:
    one = evaluate(load_cohort(repo.config_path), workers=1, cache=False)
    table = pd.read_csv(repo.root / "cases.csv").sample(frac=1.0, random_state=3)
    table.to_csv(repo.root / "cases.csv", index=False)
    two = evaluate(load_cohort(repo.config_path), workers=2, cache=False)
    threads = evaluate(load_cohort(repo.config_path), executor=ThreadPoolExecutor(2), cache=False)
    pd.testing.assert_frame_equal(one.table, two.table)
    pd.testing.assert_frame_equal(one.table, threads.table)
    pd.testing.assert_frame_equal(one.agreement, two.agreement)
    pd.testing.assert_frame_equal(one.morphology, two.morphology)


def test_a_warm_run_is_served_from_the_cache_with_identical_scores(
    repo: Repo, tmp_path: Path
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cold = evaluate(cohort, workers=1, cache=cache)
    tasks = build_tasks(cohort, cache_dir=str(cache))
    assert all(evaluate_case(t).cached for t in tasks)
    warm = evaluate(cohort, workers=1, cache=cache)
    pd.testing.assert_frame_equal(cold.table, warm.table)


def test_a_corrupt_cache_entry_is_recomputed_not_trusted(repo: Repo, tmp_path: Path) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cold = evaluate(cohort, workers=1, cache=cache)
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db, db:
        rows = db.execute("SELECT key, payload, layout FROM results ORDER BY key").fetchall()
        assert len(rows) == 12
        # a payload cut short, and an entry pointing at a layout of fewer slots
        db.execute("UPDATE results SET payload = ? WHERE key = ?", (rows[0][1][:40], rows[0][0]))
        short = Layout(scores=(("foreground", "model:candidate", "ruler:expert", "dice"),))
        db.execute("INSERT INTO layouts VALUES (?, ?)", (short.id, short.spec))
        db.execute("UPDATE results SET layout = ? WHERE key = ?", (short.id, rows[1][0]))
    results = [evaluate_case(t) for t in build_tasks(cohort, cache_dir=str(cache))]
    assert sum(not r.cached for r in results) == 2
    pd.testing.assert_frame_equal(cold.table, evaluate(cohort, workers=1, cache=cache).table)


def test_changing_a_mask_or_a_metric_setting_misses_the_cache(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    evaluate(load_cohort(repo.config_path), workers=1, cache=cache)
    cid = repo.case_ids[0]
    write_nifti(repo.mask_path("model", "candidate", cid), np.zeros((16, 16, 10)))
    tasks = build_tasks(load_cohort(repo.config_path), cache_dir=str(cache))
    assert [t.case_id for t in tasks if not evaluate_case(t).cached] == [cid]
    repo.write_config(nsd_tolerance=1.0)
    tasks = build_tasks(load_cohort(repo.config_path), cache_dir=str(cache))
    assert not any(evaluate_case(t).cached for t in tasks[1:])


def test_bad_masks_in_several_cases_are_reported_together(repo: Repo) -> None:
    a, b = repo.case_ids[1], repo.case_ids[7]
    path = repo.mask_path("model", "candidate", a)
    import nibabel as nib

    prob = np.asanyarray(nib.load(path).dataobj).astype(np.float32) * 0.7
    nib.save(nib.Nifti1Image(prob, nib.load(path).affine), path)
    labels = np.asanyarray(nib.load(repo.mask_path("ruler", "expert", b)).dataobj) * 2
    write_nifti(repo.mask_path("ruler", "expert", b), labels)
    with pytest.raises(CohortError) as info:
        evaluate(load_cohort(repo.config_path), workers=2, cache=False)
    problems = info.value.problems
    assert sorted(p.case_id for p in problems) == [a, b]
    text = str(info.value)
    assert "threshold" in text
    assert "labels = [2]" in text


def test_progress_prints_sparse_lines_when_not_on_a_terminal() -> None:
    stream = stdio.StringIO()
    bar = _Progress(50, enabled=True, stream=stream)
    from segfair.evaluate import CaseResult

    for i in range(50):
        bar.update(CaseResult(case_id=str(i)))
    lines = stream.getvalue().splitlines()
    assert 5 <= len(lines) <= 11
    assert lines[-1].startswith("segfair: 50/50 cases (0 cached)")


def test_unknown_metric_names_list_the_valid_ones(repo: Repo) -> None:
    with pytest.raises(Exception, match="valid metrics are dice, iou"):
        evaluate(load_cohort(repo.config_path), metrics=["dise"], workers=1, cache=False)


class _RefusingExecutor(ThreadPoolExecutor):
    def submit(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("a warm run sent a task to a worker")


def test_a_warm_run_is_answered_by_the_cache_without_sending_a_task(
    repo: Repo, tmp_path: Path
) -> None:
    cohort = load_cohort(repo.config_path)
    cold = evaluate(cohort, workers=2, cache=tmp_path / "cache")
    with _RefusingExecutor(1) as refusing:
        warm = evaluate(cohort, executor=refusing, cache=tmp_path / "cache")
    pd.testing.assert_frame_equal(cold.table, warm.table)


def test_a_cache_miss_is_evaluated_by_a_worker_with_the_key_already_computed(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = load_cohort(repo.config_path)
    evaluate(cohort, workers=1, cache=tmp_path / "cache")
    cid = repo.case_ids[3]
    write_nifti(repo.mask_path("model", "candidate", cid), np.zeros((16, 16, 10)))
    sent: list[Any] = []

    class Recording(ThreadPoolExecutor):
        def submit(self, fn: Any, batch: Any, *a: Any, **k: Any) -> Any:
            sent.extend(batch)  # cases travel in batches
            return super().submit(fn, batch, *a, **k)

    with Recording(1) as pool:
        evaluate(load_cohort(repo.config_path), executor=pool, cache=tmp_path / "cache")
    assert [t.case_id for t in sent] == [cid]
    assert sent[0].cache_key is not None


def test_a_scheduler_without_dask_installed_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from segfair.errors import SegfairError
    from segfair.evaluate import dask_executor

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with (
        pytest.raises(SegfairError, match=r"tcp://h:8786.*pip install 'segfair\[dask\]'"),
        dask_executor("tcp://h:8786"),
    ):
        pass


# ---- batches ------------------------------------------------------------------------------------


def _tasks(n: int) -> list[Any]:
    from segfair.evaluate import CaseTask

    return [CaseTask(f"c{i:03d}", {}, {}, (), (), (), {}) for i in range(n)]


def test_a_batch_holds_one_case_until_a_case_s_cost_is_known() -> None:
    from segfair.evaluate.executors import _Batches

    batches = _Batches(_tasks(1000), window=4)
    assert [len(batches.take()) for _ in range(4)] == [1, 1, 1, 1]


def test_batches_are_sized_to_a_quarter_second_of_work_capped_and_shrinking_at_the_end() -> None:
    from segfair.evaluate.executors import _Batches

    batches = _Batches(_tasks(10_000), window=4)
    batches.take()
    batches.learn(1, 0.01)  # 10 ms a case: 0.25 s is 25 cases
    assert len(batches.take()) == 25
    batches.learn(25, 0.025)  # 1 ms a case now; the estimate moves halfway: 5.5 ms → 45 cases
    assert len(batches.take()) == 45
    for _ in range(6):  # next to free: at most 256 a batch
        batches.learn(10, 1e-5)
    assert len(batches.take()) == 256
    batches.next = 10_000 - 24  # 24 left over a window of 4: 3 a batch (two a slot remain)
    assert len(batches.take()) == 3


def test_a_large_case_costing_more_than_a_batch_s_budget_stays_alone() -> None:
    from segfair.evaluate.executors import _Batches

    batches = _Batches(_tasks(100), window=4)
    batches.learn(1, 2.0)  # a 3-D case of 2 s
    assert [len(batches.take()) for _ in range(3)] == [1, 1, 1]


def test_cases_travel_in_batches_each_once_and_the_scores_are_those_of_one_process(
    repo: Repo,
) -> None:
    cohort = load_cohort(repo.config_path)
    sent: list[list[str]] = []

    class Recording(ThreadPoolExecutor):
        def submit(self, fn: Any, batch: Any, *a: Any, **k: Any) -> Any:
            sent.append([t.case_id for t in batch])
            return super().submit(fn, batch, *a, **k)

    with Recording(2) as pool:
        batched = evaluate(cohort, executor=pool, workers=2, cache=False, progress=False)
    flat = [c for batch in sent for c in batch]
    assert flat == sorted(repo.case_ids)  # in case order, each case once
    serial = evaluate(cohort, workers=1, cache=False, progress=False)
    pd.testing.assert_frame_equal(batched.table, serial.table)
    pd.testing.assert_frame_equal(batched.morphology, serial.morphology)


def test_an_error_inside_a_batch_names_the_case_it_was_raised_on(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from segfair.evaluate.executors import _evaluate_batch

    executors = importlib.import_module("segfair.evaluate.executors")
    tasks = build_tasks(load_cohort(repo.config_path))
    victim = tasks[2].case_id

    def failing(task: Any) -> Any:
        if task.case_id == victim:
            raise RuntimeError("boom")
        return evaluate_case(task)

    monkeypatch.setattr(executors, "evaluate_case", failing)
    with pytest.raises(RuntimeError, match="boom") as raised:
        _evaluate_batch(tasks[:5])
    assert raised.value.__notes__ == [f"segfair: while evaluating case {victim!r}"]
    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError) as again:
        evaluate(load_cohort(repo.config_path), executor=pool, cache=False, progress=False)
    assert again.value.__notes__ == [f"segfair: while evaluating case {victim!r}"]  # once


def test_a_batch_a_cluster_gave_up_on_is_refused_naming_its_cases(repo: Repo) -> None:
    from concurrent.futures import Future

    from segfair.errors import SegfairError

    class KilledWorker(Exception):  # what distributed raises after too many dead workers
        pass

    class Dying(ThreadPoolExecutor):
        def submit(self, fn: Any, batch: Any, *a: Any, **k: Any) -> Any:
            future: Future[Any] = Future()
            future.set_exception(KilledWorker("the workers running it died"))
            return future

    cohort = load_cohort(repo.config_path)
    with Dying(1) as pool, pytest.raises(SegfairError, match="a worker process died") as raised:
        evaluate(cohort, executor=pool, cache=False, progress=False)
    # every batch failed; the first seen is named (batches of one case before any came back)
    named = [c for c in repo.case_ids if f"while evaluating case {c!r};" in str(raised.value)]
    assert len(named) == 1
    assert f"{len(repo.case_ids)} case(s) were not evaluated" in str(raised.value)


def test_a_2d_case_scores_as_the_metrics_and_descriptors_of_its_full_masks(
    tmp_path: Path,
) -> None:
    """The worker crops a 2-D case once and hands the crops on: the values are those of the
    full-size masks, bit for bit (a far-away stray pixel, an empty model)."""
    from segfair.evaluate.tasks import CaseTask
    from segfair.metrics import morphology

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:61, :77]
    expert = (yy - 30) ** 2 / 15**2 + (xx - 40) ** 2 / 22**2 < 1
    automated = np.roll(expert, 2, axis=1) & (rng.random(expert.shape) < 0.97)
    candidate = np.roll(expert, (-3, 4), axis=(0, 1))
    candidate[58, 2] = True  # a stray pixel across the image
    masks = {
        "ruler:expert": expert,
        "ruler:automated": automated,
        "model:candidate": candidate,
        "model:empty": np.zeros_like(expert),
    }
    files = {}
    for name, mask in masks.items():
        files[name] = str(tmp_path / f"{name.replace(':', '_')}.npy")
        np.save(files[name], mask.astype(np.uint8))
    spacing = (0.5, 0.7)
    pairs = [(m, r) for m in ("model:candidate", "model:empty") for r in ("ruler:expert",)]
    pairs += [("model:candidate", "ruler:automated"), ("ruler:automated", "ruler:expert")]
    task = CaseTask(
        "c0",
        files,
        {name: {"spacing": list(spacing)} for name in files},
        pairs,
        ["ruler:expert", "ruler:automated"],
        list(metrics.ALL_METRICS),
        {"hd95_method": "max_directed", "nsd_tolerance": 2.0},
    )
    result = evaluate_case(task)
    assert not result.problems
    expected = metrics.compute_many(masks, pairs, spacing, metrics.ALL_METRICS)
    assert result.scores["foreground"] == expected
    for name in ("ruler:expert", "ruler:automated"):
        shape = morphology.describe_mask(masks[name], spacing)
        assert result.shapes["foreground"][name] == shape
