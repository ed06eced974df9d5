"""The results cache is trusted only as far as its key: forged, moved or committed entries never
decide a gate (SECURITY.md)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Repo

from segfair.cohort import load_cohort
from segfair.errors import SegfairError
from segfair.evaluate import build_tasks, evaluate, evaluate_case
from segfair.evaluate.cache import _cache_key as _key
from segfair.evaluate.store import STORE_NAME, Layout, ResultStore, StoreRow
from segfair.io import signing


def _entries(cache: Path) -> list[tuple[Any, ...]]:
    """The rows of the results store: (key, case_id, layout, payload, tag), by key."""
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db:
        sql = "SELECT key, case_id, layout, payload, tag FROM results ORDER BY key"
        return db.execute(sql).fetchall()


def _update(cache: Path, key: bytes, **columns: Any) -> None:
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db, db:
        sets = ", ".join(f"{c} = ?" for c in columns)
        db.execute(f"UPDATE results SET {sets} WHERE key = ?", [*columns.values(), key])


def _with_dice(cache: Path, layout_id: bytes, payload: bytes, dice: float) -> bytes:
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db:
        (spec,) = db.execute("SELECT spec FROM layouts WHERE id = ?", (layout_id,)).fetchone()
    values = np.frombuffer(payload, dtype="<f8").copy()
    for j, (*_, metric) in enumerate(Layout.from_spec(spec).scores):
        if metric == "dice":
            values[j] = dice
    return values.tobytes()


def _forge(cache: Path, row: tuple[Any, ...], dice: float) -> None:
    """What an attacker who can write the cache does: change a Dice, recompute the checksum
    the way the entry's own code would without the key (an unkeyed SHA-256 of the rest)."""
    key, case_id, layout, payload, _ = row
    payload = _with_dice(cache, layout, payload, dice)
    digest = hashlib.sha256(key + layout + case_id.encode() + b"\x00" + payload).digest()
    _update(cache, key, payload=payload, tag=digest)


def test_a_forged_cache_entry_is_recomputed_and_never_changes_a_score(
    repo: Repo, tmp_path: Path
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cold = evaluate(cohort, workers=1, cache=cache)
    for row in _entries(cache):
        _forge(cache, row, 1.0)
    results = [evaluate_case(t) for t in build_tasks(cohort, cache_dir=str(cache))]
    assert not any(r.cached for r in results)
    pd.testing.assert_frame_equal(cold.table, evaluate(cohort, workers=1, cache=cache).table)


def test_an_entry_signed_under_another_key_is_not_believed(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv(signing.KEY_ENV, "k" * 40)  # e.g. the attacker's own machine
    evaluate(cohort, workers=1, cache=cache)
    monkeypatch.setenv(signing.KEY_ENV, "s" * 40)  # the CI secret
    assert not any(evaluate_case(t).cached for t in build_tasks(cohort, cache_dir=str(cache)))


def test_a_genuine_entry_moved_to_another_key_is_not_believed(repo: Repo, tmp_path: Path) -> None:
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    evaluate(cohort, workers=1, cache=cache)
    # an old result of a case, copied over the entry its new masks would look up
    (_, case_id, layout, payload, tag), (new_key, *_) = _entries(cache)[:2]
    _update(cache, new_key, case_id=case_id, layout=layout, payload=payload, tag=tag)
    tasks = build_tasks(cohort, cache_dir=str(cache))
    assert any(evaluate_case(t).cached for t in tasks if t.case_id == case_id)
    moved = next(t for t in tasks if _key(t) == new_key.hex())
    assert not evaluate_case(moved).cached


def test_a_forged_file_index_is_ignored(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segfair.cohort.fileindex

    monkeypatch.setattr(segfair.cohort.fileindex, "SETTLE_NS", -(10**18))  # learn at once
    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    evaluate(cohort, workers=1, cache=cache)
    index = cache / "file-index.json"
    head, body = index.read_bytes().split(b"\n", 1)  # the format and tag, then the body
    doc = json.loads(body)
    for entry in doc["entries"].values():
        entry["sha256"] = "0" * 64
    index.write_bytes(head + b"\n" + json.dumps(doc).encode())  # the old tag kept
    from segfair.cohort.fileindex import FileIndex

    assert doc["entries"]
    assert FileIndex(cache).entries == {}


def test_a_cache_folder_tracked_by_git_is_refused_before_any_work(
    repo: Repo, tmp_path: Path
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = repo.config_path.parent
    cache = root / "committed-cache"
    (cache / "ab").mkdir(parents=True)
    (cache / "ab" / "entry.json").write_text("{}")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    for args in (["init", "-q"], ["add", "-f", "committed-cache"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)
    with pytest.raises(SegfairError, match="tracked by git") as err:
        evaluate(load_cohort(repo.config_path), workers=1, cache=cache)
    assert "outside the repository" in str(err.value)


def test_the_key_file_is_created_once_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    key = signing.cache_key()
    path = tmp_path / "segfair" / "cache.key"
    assert path.is_file()
    assert len(key) >= 32
    assert path.stat().st_mode & 0o077 == 0
    signing._KEYS.clear()
    assert signing.cache_key() == key


def test_a_short_key_in_the_environment_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(signing.KEY_ENV, "short")
    with pytest.raises(SegfairError, match="at least 32"):
        signing.cache_key()


def test_without_a_key_the_cached_run_stops_with_the_fix_and_exit_2(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from segfair.cli import EXIT_USAGE, main

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the configuration folder should be")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocked))
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    import io

    out = io.StringIO()
    gate = {"kind": "gap", "metric": "dice", "by": "age_group", "model": "candidate", "max": 0.5}
    repo.write_config(cache=str(tmp_path / "cache"), gates=[gate])
    code = main(["audit", "--config", str(repo.config_path), "--workers", "1"], stdout=out)
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the cache key file" in err
    assert "SEGFAIR_CACHE_KEY" in err
    assert "Traceback" not in err


def test_release_mode_recomputes_a_sample_and_refuses_an_altered_cache(
    repo: Repo, tmp_path: Path
) -> None:
    """A cache entry signed under the right key but wrong (an insider, a restored cache of other
    inputs, a computation changed without a format bump) is caught by cache_verify."""
    from segfair.evaluate import CACHE_MISMATCH  # noqa: F401  (the message users see)

    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    cold = evaluate(cohort, workers=1, cache=cache)
    repo.write_config(cache_verify=1.0)
    checked = load_cohort(repo.config_path)
    # a genuine cache passes the check, and the scores are the same
    pd.testing.assert_frame_equal(cold.table, evaluate(checked, workers=1, cache=cache).table)
    key, case_id, layout, payload, _ = _entries(cache)[0]
    with ResultStore(cache) as store:  # signed under the key: an insider
        (found,) = store.get_many([key.hex()]).values()
        altered = np.frombuffer(_with_dice(cache, layout, payload, 0.123), dtype="<f8")
        store.put_many([StoreRow(key.hex(), case_id, found.layout, altered)])
    with pytest.raises(SegfairError, match="differ from a recomputation") as err:
        evaluate(checked, workers=1, cache=cache)
    assert case_id in str(err.value)
    assert "cached 0.123" in str(err.value)


def test_release_mode_checks_a_seeded_sample_of_at_least_one_case() -> None:
    from segfair.evaluate.run import _to_verify

    ids = [f"c{i}" for i in range(40)]
    assert _to_verify(ids, 0.0, 0) == []
    assert len(_to_verify(ids, 0.001, 0)) == 1
    assert len(_to_verify(ids, 0.1, 0)) == 4
    assert _to_verify(ids, 0.1, 0) == _to_verify(ids, 0.1, 0)
    assert _to_verify(ids, 1.0, 3) == sorted(ids)


def test_the_example_workflow_signs_its_cache_and_lets_no_untrusted_ref_save_it() -> None:
    root = Path(__file__).resolve().parents[1]
    workflow = (root / "examples/model-repo/.github/workflows/fairness.yml").read_text()
    assert "restore-keys" not in workflow  # no restoring another branch's cache by prefix
    assert "actions/cache@" not in workflow  # the combined action saves on every ref
    save = workflow[workflow.index("actions/cache/save") - 200 :]
    assert "if: github.event_name == 'push' && github.ref == 'refs/heads/main'" in save
    gates = workflow[workflow.index("name: Fairness gates") :]
    assert "SEGFAIR_CACHE_KEY: ${{ secrets.SEGFAIR_CACHE_KEY }}" in gates


def test_an_empty_key_variable_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a CI secret gives a fork's pull request: the run falls back to its own key file."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv(signing.KEY_ENV, "")
    assert len(signing.cache_key()) >= 32
    assert (tmp_path / "segfair" / "cache.key").is_file()


def _read_key_into(barrier: Any, out: Any) -> None:
    try:
        barrier.wait()
        out.send(signing.cache_key())
    except BaseException as exc:  # pragma: no cover - reported by the assertion
        out.send(f"{type(exc).__name__}: {exc}")


def test_two_processes_making_the_key_at_once_both_get_the_same_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    for attempt in range(10):  # the window is short: give it several chances
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / str(attempt)))
        barrier = ctx.Barrier(2)
        pipes = [ctx.Pipe() for _ in range(2)]
        procs = [ctx.Process(target=_read_key_into, args=(barrier, there)) for _, there in pipes]
        for p in procs:
            p.start()
        keys = [here.recv() if here.poll(30) else "no answer" for here, _ in pipes]
        for p in procs:
            p.join(30)
        assert keys[0] == keys[1], keys
        assert isinstance(keys[0], bytes)
        assert len(keys[0]) >= signing.MIN_KEY_CHARS


def test_a_forged_cached_drawing_is_redrawn(repo: Repo, tmp_path: Path) -> None:
    from segfair.report.drawings import _cached_drawing

    repo.write_config(cache=str(tmp_path / "cache"))
    cohort = load_cohort(repo.config_path)
    args = (cohort, cohort.config, repo.case_ids[0], "candidate", "expert", ["automated"])
    true = _cached_drawing(*args)
    (entry,) = (tmp_path / "cache" / "drawings").rglob("*.json")
    doc = json.loads(entry.read_text())
    doc["drawing"] = {"forged": True}
    entry.write_text(json.dumps(doc))
    assert _cached_drawing(*args) == true
