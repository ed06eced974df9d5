"""The results store: one SQLite file per cache folder that survives a killed writer, takes
concurrent writers, believes only what its key signed, and hands a run its scores column by
column (segfair/evaluate/store.py, docs/performance.md)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Repo
from hypothesis import given, settings
from hypothesis import strategies as st

from segfair.cohort import Cohort, load_cohort
from segfair.errors import SegfairError
from segfair.evaluate import CACHE_NOT_WRITABLE, build_tasks, evaluate, evaluate_case
from segfair.evaluate.cache import _cache_key
from segfair.evaluate.run import NOT_STORED, _Writer, load_scores
from segfair.evaluate.store import (
    STORE_FORMAT,
    STORE_NAME,
    Layout,
    ResultStore,
    StoreRow,
)
from segfair.evaluate.tasks import CaseResult
from segfair.io import signing
from segfair.scores import AGREEMENT_COLUMNS, MORPHOLOGY_COLUMNS, SCORE_COLUMNS

LAYOUT = Layout(
    scores=tuple(
        ("foreground", f"model:{m}", f"ruler:{r}", metric)
        for m in ("a", "b")
        for r in ("expert", "auto")
        for metric in ("dice", "hd95", "nsd")
    ),
    shapes=(("foreground", "ruler:expert", "volume_ml"),),
)


def _key(i: int) -> str:
    return hashlib.sha256(f"case {i}".encode()).hexdigest()


def _rows(ids: Iterable[int]) -> list[StoreRow]:
    return [
        StoreRow(_key(i), f"case-{i:06d}", LAYOUT, np.arange(LAYOUT.width, dtype=float) + i)
        for i in ids
    ]


class _Recording(ThreadPoolExecutor):
    """Keeps every case task it is sent (the runner sends them in batches)."""

    def __init__(self, workers: int, sent: list[Any]) -> None:
        super().__init__(workers)
        self.sent = sent

    def submit(self, fn: Any, batch: Any, *a: Any, **k: Any) -> Any:  # type: ignore[override]
        self.sent.extend(batch if isinstance(batch, list | tuple) else [batch])
        return super().submit(fn, batch, *a, **k)


class _Refusing(ThreadPoolExecutor):
    def submit(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("a warm run sent a task to a worker")


# -- the store on its own ---------------------------------------------------------------------


def test_rows_put_in_one_transaction_are_read_back_in_chunks_beyond_the_parameter_limit(
    tmp_path: Path,
) -> None:
    with ResultStore(tmp_path) as store:
        assert store.put_many(_rows(range(2000))) == 2000
        got = store.get_many([_key(i) for i in range(2100)])
    assert len(got) == 2000  # 100 keys were never stored: misses
    assert got[_key(1234)].case_id == "case-001234"
    assert got[_key(1234)].values.tolist() == (np.arange(LAYOUT.width) + 1234.0).tolist()
    assert got[_key(7)].layout == LAYOUT


def test_the_store_is_one_sqlite_file_in_wal_mode_with_one_layout_row_per_layout(
    tmp_path: Path,
) -> None:
    with ResultStore(tmp_path) as store:
        store.put_many(_rows(range(50)))
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_FORMAT
        assert db.execute("SELECT count(*) FROM layouts").fetchone()[0] == 1
        (payload,) = db.execute("SELECT payload FROM results LIMIT 1").fetchone()
    assert len(payload) == 8 * LAYOUT.width  # packed float64, nothing else


def test_an_edited_payload_a_moved_entry_and_an_edited_layout_are_misses(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put_many(_rows(range(3)))
    a, b, c = (bytes.fromhex(_key(i)) for i in range(3))
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db, db:
        payload = np.zeros(LAYOUT.width).tobytes()
        db.execute("UPDATE results SET payload = ? WHERE key = ?", (payload, a))
        # case 0's genuine entry (payload and tag) copied under case 1's key
        row = db.execute("SELECT case_id, layout, payload, tag FROM results WHERE key = ?", (c,))
        db.execute(
            "UPDATE results SET case_id = ?, layout = ?, payload = ?, tag = ? WHERE key = ?",
            (*row.fetchone(), b),
        )
    with ResultStore(tmp_path) as store:
        assert store.get_many([_key(i) for i in range(3)]).keys() == {_key(2)}
    # a layout whose slots were renamed (hd95 read as dice) no longer hashes to its id
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db, db:
        db.execute("UPDATE layouts SET spec = replace(spec, 'hd95', 'dice')")
    with ResultStore(tmp_path) as store:
        assert store.get_many([_key(2)]) == {}


def test_an_entry_signed_under_another_key_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(signing.KEY_ENV, "k" * 40)
    with ResultStore(tmp_path) as store:
        store.put_many(_rows(range(3)))
    monkeypatch.setenv(signing.KEY_ENV, "s" * 40)
    with ResultStore(tmp_path) as store:
        assert store.get_many([_key(i) for i in range(3)]) == {}


def test_a_store_file_of_garbage_bytes_is_set_aside_with_a_message_and_started_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / STORE_NAME).write_bytes(os.urandom(4096))
    with ResultStore(tmp_path) as store:
        assert store.get_many([_key(1)]) == {}
        store.put_many(_rows([1]))
        assert store.get_many([_key(1)]).keys() == {_key(1)}
    err = capsys.readouterr().err
    assert "is not a database" in err
    assert "moved to" in err
    assert "Traceback" not in err
    assert len(list(tmp_path.glob(f"{STORE_NAME}.unusable-*"))) == 1


def test_a_store_of_a_newer_format_is_left_alone_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ResultStore(tmp_path) as store:
        store.put_many(_rows([1]))
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db:
        db.execute(f"PRAGMA user_version = {STORE_FORMAT + 1}")
    with ResultStore(tmp_path) as store:
        assert store.get_many([_key(1)]) == {}
        assert store.put_many(_rows([2])) == 0
    assert "written by a newer segfair" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_FORMAT + 1
        assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 1


def test_a_database_of_another_program_in_the_stores_place_is_set_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db:
        db.execute("CREATE TABLE results (x)")
    with ResultStore(tmp_path) as store:
        assert store.put_many(_rows([1])) == 1
    assert "another program" in capsys.readouterr().err


_WRITER = """
import sys
import numpy as np
from segfair.evaluate.store import Layout, ResultStore, StoreRow
sys.path.insert(0, sys.argv[2])
from test_store import _rows
with ResultStore(sys.argv[1]) as store:
    for batch in range(10_000):
        store.put_many(_rows(range(batch * 100, batch * 100 + 100)))
        print(batch, flush=True)
"""


def test_a_writer_killed_in_the_middle_of_its_put_many_loop_leaves_every_committed_batch(
    tmp_path: Path,
) -> None:
    env = {**os.environ, signing.KEY_ENV: "w" * 40}
    tests = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), tests],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 20:
            break
    proc.send_signal(signal.SIGKILL)  # mid-loop: most likely inside a transaction
    proc.wait()
    assert committed >= 20
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_NAME)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    os.environ[signing.KEY_ENV] = "w" * 40
    try:
        with ResultStore(tmp_path) as store:
            got = store.get_many([_key(i) for i in range((committed + 1) * 100)])
            assert len(got) == (committed + 1) * 100  # every batch it reported committed
            store.put_many(_rows([10**7]))  # and it takes new writes
    finally:
        del os.environ[signing.KEY_ENV]


def _write_overlapping(folder: str, start: int, barrier: Any) -> None:
    os.environ[signing.KEY_ENV] = "c" * 40
    with ResultStore(folder) as store:
        barrier.wait()
        for batch in range(start, start + 400, 20):
            store.put_many(_rows(range(batch, batch + 20)))


def test_four_processes_writing_overlapping_keys_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_write_overlapping, args=(str(tmp_path), 100 * i, barrier))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    os.environ[signing.KEY_ENV] = "c" * 40
    try:
        with ResultStore(tmp_path) as store:
            got = store.get_many([_key(i) for i in range(700)])
    finally:
        del os.environ[signing.KEY_ENV]
    assert len(got) == 700  # keys 0..699, each written by one to four processes
    assert all(got[_key(i)].values[0] == i for i in range(700))


def _evaluate_into(cohort: Cohort, cache: str, barrier: Any, out: Any) -> None:
    try:
        barrier.wait()
        scores = evaluate(cohort, workers=1, cache=cache, progress=False)
        out.send(scores.table.astype({"case_id": str}).to_json())
    except BaseException as exc:  # pragma: no cover - reported by the assertion
        out.send(f"{type(exc).__name__}: {exc}")


def test_two_runs_sharing_a_cache_folder_at_once_both_work(repo: Repo, tmp_path: Path) -> None:
    cohort = load_cohort(repo.config_path)
    cache = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    pipes = [ctx.Pipe() for _ in range(2)]
    runs = [
        ctx.Process(target=_evaluate_into, args=(cohort, cache, barrier, there))
        for _, there in pipes
    ]
    for run in runs:
        run.start()
    answers = [here.recv() if here.poll(120) else "no answer" for here, _ in pipes]
    for run in runs:
        run.join(30)
    assert answers[0] == answers[1]
    assert answers[0].startswith("{")
    with _Refusing(1) as refusing:  # both wrote whole entries: the next run computes nothing
        warm = evaluate(cohort, executor=refusing, cache=cache)
    assert warm.table.astype({"case_id": str}).to_json() == answers[0]


# -- the store in a run ------------------------------------------------------------------------


def test_a_run_writes_its_results_in_batches_as_they_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = importlib.import_module("segfair.evaluate.run")

    class Counting:
        def __init__(self) -> None:
            self.batches: list[int] = []

        def put_many(self, rows: Sequence[StoreRow]) -> int:
            self.batches.append(len(rows))
            return len(rows)

    monkeypatch.setattr(run, "WRITE_EVERY", 3)
    store = Counting()
    results = [
        CaseResult(f"c{i}", scores={"foreground": {("model:m", "ruler:e"): {"dice": 0.5}}})
        for i in range(7)
    ]
    writer = _Writer(store, {f"c{i}": _key(i) for i in range(7) if i != 4})  # type: ignore[arg-type]
    for r in results:
        writer.add(r.case_id, *Layout.of(r))
    assert store.batches == [3, 3]  # c4 carries no key: a checked case, never written back
    writer.flush()
    assert store.batches == [3, 3, 0]


def test_workers_never_get_the_cache_folder_and_the_main_process_stores_their_results(
    repo: Repo, tmp_path: Path
) -> None:
    sent: list[Any] = []
    cohort = load_cohort(repo.config_path)
    with _Recording(2, sent) as pool:
        cold = evaluate(cohort, executor=pool, cache=tmp_path / "cache")
    assert len(sent) == len(repo.case_ids)
    assert all(t.cache_dir is None and t.cache_key is not None for t in sent)
    with ResultStore(tmp_path / "cache") as store:
        assert len(store) == len(repo.case_ids)
    with _Refusing(1) as refusing:
        warm = evaluate(cohort, executor=refusing, cache=tmp_path / "cache")
    pd.testing.assert_frame_equal(cold.table, warm.table)


def test_an_evaluation_with_a_garbage_store_rebuilds_it_and_gives_the_same_scores(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cold = evaluate(cohort, workers=1, cache=cache)
    (cache / STORE_NAME).write_bytes(b"garbage " * 512)
    for suffix in ("-wal", "-shm"):
        Path(f"{cache / STORE_NAME}{suffix}").unlink(missing_ok=True)
    again = evaluate(cohort, workers=1, cache=cache)
    pd.testing.assert_frame_equal(cold.table, again.table)
    assert "is not a database" in capsys.readouterr().err
    with _Refusing(1) as refusing:  # and the new store serves the next run
        evaluate(cohort, executor=refusing, cache=cache)


def _evaluate_as_nobody(cohort: Cohort, cache: str, out: Any) -> None:
    try:
        os.setuid(65534)
        evaluate(cohort, workers=1, cache=cache)
        out.send("no error")
    except SegfairError as exc:
        out.send(str(exc))
    except BaseException as exc:  # pragma: no cover - reported by the assertion
        out.send(f"{type(exc).__name__}: {exc}")


def test_a_read_only_cache_folder_is_the_cache_not_writable_error(repo: Repo) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tempfile.mkdtemp(prefix="segfair-ro-")
    try:
        os.chmod(cache, 0o555)
        if os.geteuid() != 0:
            with pytest.raises(SegfairError) as err:
                evaluate(cohort, workers=1, cache=cache)
            message = str(err.value)
        else:  # root writes anywhere: check as an unprivileged user, in a forked child
            ctx = multiprocessing.get_context("fork")
            here, there = ctx.Pipe()
            child = ctx.Process(target=_evaluate_as_nobody, args=(cohort, cache, there))
            child.start()
            message = here.recv() if here.poll(60) else "no answer"
            child.join(30)
        head = CACHE_NOT_WRITABLE.split("(")[0].format(path=cache)
        assert message.startswith(head), message
        assert not (Path(cache) / STORE_NAME).exists()
    finally:
        os.chmod(cache, 0o755)
        os.rmdir(cache)


# -- the per-file cache of before ---------------------------------------------------------------


def _old_entry(folder: Path, key: str, result: CaseResult, *, sign: bool = True) -> Path:
    """An entry as the per-file cache (CACHE_FORMAT 4) wrote it."""
    doc = {
        "format": 4,
        "key": key,
        "case_id": result.case_id,
        "pairs": [
            {"structure": s, "pred": p, "ref": r, "values": v}
            for s, per in result.scores.items()
            for (p, r), v in sorted(per.items())
        ],
        "morphology": [
            {"structure": s, "ref": r, "values": v}
            for s, per in result.shapes.items()
            for r, v in sorted(per.items())
        ],
    }
    doc = signing.sign_document(doc) if sign else {**doc, "hmac": "0" * 64}
    path = folder / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, sort_keys=True))
    return path


def test_a_per_file_cache_is_moved_into_the_store_once_and_its_files_removed(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    tasks = build_tasks(cohort)
    fresh = evaluate(cohort, workers=1, cache=False)
    paths = []
    for i, task in enumerate(tasks):
        result = evaluate_case(task)
        # the last case's entry is forged (not signed under our key): dropped, recomputed
        paths.append(_old_entry(cache, _cache_key(task), result, sign=i < len(tasks) - 1))
    (cache / "drawings").mkdir()  # the report's own cache is not ours to touch
    (cache / "drawings" / "x.json").write_text("{}")
    sent: list[Any] = []
    with _Recording(1, sent) as pool:
        migrated = evaluate(cohort, executor=pool, cache=cache)
    assert [t.case_id for t in sent] == [tasks[-1].case_id]
    err = capsys.readouterr().err
    assert f"moved {len(tasks) - 1} result(s) of the per-file cache" in err
    assert "removed 1 entry file(s)" in err
    assert not any(p.exists() for p in paths)
    assert not any(p.parent.exists() for p in paths)
    assert (cache / "drawings" / "x.json").exists()
    pd.testing.assert_frame_equal(fresh.table, migrated.table)
    pd.testing.assert_frame_equal(fresh.morphology, migrated.morphology)
    with _Refusing(1) as refusing:
        evaluate(cohort, executor=refusing, cache=cache)
    assert "per-file cache" not in capsys.readouterr().err  # once


def test_a_per_file_cache_is_kept_when_the_store_cannot_take_it(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    with ResultStore(cache) as store:
        store.put_many(_rows([1]))
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db:
        db.execute(f"PRAGMA user_version = {STORE_FORMAT + 1}")  # a newer segfair's store
    task = build_tasks(cohort)[0]
    entry = _old_entry(cache, _cache_key(task), evaluate_case(task))
    evaluate(cohort, workers=1, cache=cache)
    assert entry.exists()
    assert "per-file cache" not in capsys.readouterr().err


# -- columnar scores ----------------------------------------------------------------------------


def _row_by_row(cohort: Cohort, results: Iterable[CaseResult], metrics: Sequence[str]) -> Any:
    """The tables as segfair assembled them before the store: row by row, sorted by pandas."""
    cfg = cohort.config
    trusted = f"ruler:{cfg.trusted_ruler}"
    rows: list[Any] = []
    agree: list[Any] = []
    morph: list[Any] = []
    for res in results:
        for structure, pairs in res.scores.items():
            for (pred, ref), values in pairs.items():
                pk, pname = pred.split(":", 1)
                rname = ref.split(":", 1)[1]
                for m in metrics:
                    if pk == "model":
                        rows.append((res.case_id, structure, pname, rname, m, values[m]))
                    elif ref == trusted:
                        agree.append((res.case_id, structure, pname, rname, m, values[m]))
        for structure, shapes in res.shapes.items():
            for ref, desc in shapes.items():
                rname = ref.split(":", 1)[1]
                morph.extend((res.case_id, structure, rname, d, v) for d, v in desc.items())
    order: Mapping[str, Mapping[str, int]] = {
        "structure": {n: i for i, n in enumerate(cfg.structure_labels)},
        "model": {n: i for i, n in enumerate(cfg.models)},
        "ruler": {n: i for i, n in enumerate(cfg.rulers)},
        "metric": {n: i for i, n in enumerate(metrics)},
    }

    def key(s: pd.Series) -> pd.Series:
        return s.map(order[str(s.name)]) if s.name in order else s

    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    table = table.sort_values(["case_id", "structure", "model", "ruler", "metric"], key=key)
    agreement = pd.DataFrame(agree, columns=list(AGREEMENT_COLUMNS))
    agreement = agreement.sort_values(["case_id", "structure", "ruler", "metric"], key=key)
    morphology = pd.DataFrame(morph, columns=list(MORPHOLOGY_COLUMNS))
    morphology = morphology.sort_values(
        ["case_id", "structure", "ruler", "descriptor"],
        key=lambda s: s.map(order["structure"]) if s.name == "structure" else s,
        kind="stable",
    )
    return [f.reset_index(drop=True) for f in (table, agreement, morphology)]


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: str for c in frame.columns if c != "value"})


def test_columnar_scores_equal_the_row_by_row_tables_with_several_layouts(
    repo: Repo, tmp_path: Path
) -> None:
    repo.config["models"]["second"] = repo.config["models"]["candidate"]
    repo.config["rulers"]["automated"] = {
        "path": "labels/automated/{case_id}.nii.gz",
        "partial": True,
    }
    repo.write_config()
    repo.mask_path("ruler", "automated", repo.case_ids[3]).unlink()  # another layout
    cohort = load_cohort(repo.config_path)
    tasks = build_tasks(cohort)
    expected = _row_by_row(cohort, [evaluate_case(t) for t in tasks], tasks[0].metrics)
    for cache in (False, tmp_path / "cache", tmp_path / "cache"):  # computed, stored, read
        scores = evaluate(cohort, workers=1, cache=cache)
        got = [scores.table, scores.agreement, scores.morphology]
        assert all(isinstance(f["case_id"].dtype, pd.CategoricalDtype) for f in got)
        for frame, want in zip(got, expected, strict=True):
            pd.testing.assert_frame_equal(_as_text(frame), _as_text(want))
    assert len(expected[1]) < len(expected[0])  # the partial ruler's agreement rows are fewer


def test_load_scores_gives_a_runs_scores_from_its_keys_alone(repo: Repo, tmp_path: Path) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    scores = evaluate(cohort, workers=1, cache=cache)
    keys = [_cache_key(t) for t in build_tasks(cohort)]
    loaded = load_scores(cohort, keys, cache=cache)
    pd.testing.assert_frame_equal(scores.table, loaded.table)
    pd.testing.assert_frame_equal(scores.agreement, loaded.agreement)
    pd.testing.assert_frame_equal(scores.morphology, loaded.morphology)
    keys[2] = "0" * 64
    with pytest.raises(SegfairError) as err:
        load_scores(cohort, keys, cache=cache)
    assert NOT_STORED.split("{")[1].split("}")[1].strip() in str(err.value)
    assert str(err.value).startswith("1 case(s)")
    assert repr(repo.case_ids[2]) in str(err.value)


def test_a_layout_round_trips_a_case_result_and_knows_which_task_it_answers(
    repo: Repo,
) -> None:
    cohort = load_cohort(repo.config_path)
    task = build_tasks(cohort)[0]
    result = evaluate_case(task)
    layout, values = Layout.of(result)
    back = layout.to_result(task.case_id, values)
    assert back.scores == result.scores
    assert back.shapes == result.shapes
    assert layout.fits(task)
    assert not Layout(scores=layout.scores[:-1], shapes=layout.shapes).fits(task)
    assert Layout.from_spec(layout.spec) == layout
    assert values.dtype == np.float64
    assert len(values) == layout.width


_TEXT = st.text(min_size=1, max_size=12)
_READ = st.dictionaries(
    st.sampled_from(["labels", "threshold", "max_voxels", "spacing"]),
    st.one_of(
        st.none(),
        st.integers(-5, 10**9),
        st.floats(allow_nan=False),
        st.lists(st.floats(0.01, 9, allow_nan=False), max_size=3),
    ),
)


@st.composite
def _tasks(draw: st.DrawFn) -> list[Any]:
    """Tasks of one run: some share their read settings, pairs and metrics (as build_tasks makes
    them), others hold equal or different objects of their own."""
    from segfair.evaluate.tasks import CaseTask

    names = draw(st.lists(_TEXT, min_size=1, max_size=3, unique=True))
    shared_read = {n: draw(_READ) for n in names}
    shared_pairs = [(a, b) for a in names for b in names if a < b]
    settings = draw(st.dictionaries(_TEXT, st.one_of(st.floats(allow_nan=False), _TEXT)))
    metrics = draw(st.lists(st.sampled_from(["dice", "hd95", "nsd", "iou"]), unique=True))
    tasks = []
    for i in range(draw(st.integers(1, 6))):
        own = draw(st.booleans())
        tasks.append(
            CaseTask(
                case_id=draw(_TEXT) + str(i),
                files={n: f"/m/{n}/{i}" for n in names},
                read={n: dict(v) for n, v in shared_read.items()} if own else shared_read,
                pairs=list(shared_pairs) if own else shared_pairs,
                describe=draw(st.lists(st.sampled_from(names), unique=True)),
                metrics=metrics,
                settings=dict(settings) if own else settings,
                reorient=draw(st.booleans()),
                atol=draw(st.floats(0, 1)),
                structures=draw(
                    st.none() | st.dictionaries(_TEXT, st.tuples(st.integers(0, 9)), max_size=2)
                ),
            )
        )
    return tasks


@given(_tasks())
@settings(max_examples=60, deadline=None)
def test_a_runs_keys_are_the_sha256_of_each_tasks_whole_payload_as_canonical_json(
    tasks: list[Any],
) -> None:
    # the definition of a key since the per-file cache: a field-by-field encoding that
    # remembers shared parts must give every task the same key (stores stay valid)
    from segfair.evaluate.cache import CACHE_FORMAT, _KeyText
    from segfair.version import __version__

    text = _KeyText()
    for task in tasks:
        hashes = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in task.files.items()}
        payload = {
            "format": CACHE_FORMAT,
            "segfair": __version__,
            "case_id": task.case_id,
            "files": {k: hashes[k] for k, _ in sorted(task.files.items())},
            "read": {k: dict(v) for k, v in sorted(task.read.items())},
            "pairs": sorted(list(p) for p in task.pairs),
            "describe": sorted(task.describe),
            "metrics": list(task.metrics),
            "settings": dict(task.settings),
            "reorient": task.reorient,
            "atol": task.atol,
            "structures": None
            if task.structures is None
            else {k: list(v) for k, v in task.structures.items()},
        }
        whole = json.dumps(payload, sort_keys=True, default=str)
        assert text.of(task, hashes) == whole
        expected = hashlib.sha256(whole.encode()).hexdigest()
        assert _cache_key(task, lambda p: hashlib.sha256(p.encode()).hexdigest(), text) == expected


def test_tasks_of_cases_with_the_same_files_share_what_they_read_and_score(repo: Repo) -> None:
    tasks = build_tasks(load_cohort(repo.config_path))
    assert len(tasks) > 1
    assert all(t.read is tasks[0].read and t.pairs is tasks[0].pairs for t in tasks)


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_a_string_in_a_key_is_written_as_the_json_encoder_writes_it(text: str) -> None:
    from segfair.evaluate.cache import _string

    assert _string(text) == json.dumps(text)
