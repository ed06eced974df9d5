"""The file index: content hashes and header geometries remembered while a file is unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Repo, write_nifti

import segfair.cohort.fileindex
import segfair.fileindex
import segfair.io
from segfair.cohort import load_cohort
from segfair.errors import CohortError, InputError
from segfair.fileindex import FileIndex


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file counts as settled (in real use: unchanged for two seconds)."""
    monkeypatch.setattr(segfair.cohort.fileindex, "SETTLE_NS", -(10**18))


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    calls: list[str] = []
    real = getattr(segfair.io, name)

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(segfair.io, name, counting)
    return calls


def _touch_later(path: Path) -> None:
    # within one timestamp tick a rewrite may keep mtime: move it so the test is exact
    # (in real use the settle time covers that window)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_settled_unchanged_file_is_hashed_once_across_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"first")
    calls = _counting(monkeypatch, "content_hash")
    index = FileIndex(tmp_path / "cache")
    first = index.content_hash(f)
    assert index.content_hash(f) == first == hashlib.sha256(b"first").hexdigest()
    index.save()
    assert FileIndex(tmp_path / "cache").content_hash(f) == first  # a new process, same answer
    assert len(calls) == 1


def test_a_file_whose_content_changed_at_the_same_size_is_hashed_again(
    tmp_path: Path, settled: None
) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"first")
    index = FileIndex(tmp_path / "cache")
    index.content_hash(f)
    assert index.remembered(f) == hashlib.sha256(b"first").hexdigest()
    f.write_bytes(b"other")
    _touch_later(f)
    assert index.remembered(f) is None  # forgotten: the stamp changed
    assert index.content_hash(f) == hashlib.sha256(b"other").hexdigest()
    f.unlink()
    assert index.remembered(f) is None


def test_a_file_modified_just_now_is_hashed_but_not_remembered(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"fresh")
    index = FileIndex(tmp_path / "cache")
    assert index.content_hash(f) == hashlib.sha256(b"fresh").hexdigest()
    assert index.entries == {}


def test_a_corrupt_or_foreign_index_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    f = tmp_path / "a.bin"
    f.write_bytes(b"data")
    for text in ('{"format": 1, "entries": [', '{"format": 99, "entries": {}}', "[]"):
        (tmp_path / "cache" / "file-index.json").write_text(text)
        got = FileIndex(tmp_path / "cache").content_hash(f)
        assert got == hashlib.sha256(b"data").hexdigest()


def test_a_header_is_read_once_and_its_geometry_comes_back_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    f = tmp_path / "m.nii.gz"
    affine = np.array([[-0.7, 0, 0, 12.5], [0, 0.7, 0, -3.25], [0, 0, 1.5, 7.0], [0, 0, 0, 1]])
    write_nifti(f, np.zeros((6, 5, 4)), affine=affine)
    calls = _counting(monkeypatch, "read_geometry_and_hash")
    index = FileIndex(tmp_path / "cache")
    first = index.geometry(f, max_voxels=10**9)
    index.save()
    again = FileIndex(tmp_path / "cache").geometry(f, max_voxels=10**9)
    assert len(calls) == 1
    assert again.shape == first.shape == (6, 5, 4)
    assert again.spacing == first.spacing
    np.testing.assert_array_equal(again.affine, first.affine)
    np.testing.assert_allclose(first.affine, affine)


def test_a_new_header_in_the_same_file_is_read_again(tmp_path: Path, settled: None) -> None:
    f = tmp_path / "m.nii.gz"
    write_nifti(f, np.zeros((6, 5, 4)))
    index = FileIndex(tmp_path / "cache")
    index.geometry(f, max_voxels=10**9)
    write_nifti(f, np.zeros((6, 5, 3)))
    _touch_later(f)
    assert index.geometry(f, max_voxels=10**9).shape == (6, 5, 3)


def test_a_bad_header_raises_every_time_and_is_never_remembered(
    tmp_path: Path, settled: None
) -> None:
    f = tmp_path / "m.nii.gz"
    f.write_bytes(b"not a nifti at all")
    index = FileIndex(tmp_path / "cache")
    for _ in range(2):
        with pytest.raises(InputError, match=r"m\.nii\.gz"):
            index.geometry(f, case_id="CASE_1", max_voxels=10**9)
    assert index.entries == {}


def test_a_warm_cohort_load_reads_no_header(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, settled: None, tmp_path: Path
) -> None:
    cold = load_cohort(repo.config_path, cache=tmp_path / "cache")
    segfair.fileindex.file_index.cache_clear()  # a new process
    calls = _counting(monkeypatch, "read_geometry_and_hash")
    warm = load_cohort(repo.config_path, cache=tmp_path / "cache")
    assert calls == []
    assert warm.case_ids == cold.case_ids


def test_a_warm_cohort_load_still_finds_a_mask_that_moved_off_the_grid(
    repo: Repo, settled: None, tmp_path: Path
) -> None:
    load_cohort(repo.config_path, cache=tmp_path / "cache")
    cid = repo.case_ids[2]
    bad = repo.mask_path("model", "candidate", cid)
    write_nifti(bad, np.zeros((16, 16, 9)))
    _touch_later(bad)
    with pytest.raises(CohortError, match=cid):
        load_cohort(repo.config_path, cache=tmp_path / "cache")


def test_a_small_files_hash_is_learnt_with_its_header_and_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    f = tmp_path / "m.nii.gz"
    write_nifti(f, np.zeros((6, 5, 4)))
    index = FileIndex(tmp_path / "cache")
    index.geometry(f, max_voxels=10**9)
    calls = _counting(monkeypatch, "content_hash")
    assert index.remembered(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert index.content_hash(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert calls == []


def test_a_large_files_hash_is_left_until_it_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    f = tmp_path / "m.nii"  # uncompressed: larger than ALSO_MAX_BYTES
    write_nifti(f, np.zeros((96, 96, 10)))
    assert f.stat().st_size > segfair.cohort.fileindex.ALSO_MAX_BYTES
    index = FileIndex(tmp_path / "cache")
    index.geometry(f, max_voxels=10**9)
    assert index.remembered(f) is None
    assert index.content_hash(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_a_cold_run_after_loading_the_cohort_hashes_no_small_file_again(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, settled: None, tmp_path: Path
) -> None:
    from segfair import evaluate

    cohort = load_cohort(repo.config_path, cache=tmp_path / "cache")
    calls = _counting(monkeypatch, "content_hash")
    scores = evaluate(cohort, workers=1, cache=tmp_path / "cache", progress=False)
    assert calls == []
    assert set(scores.table["case_id"]) == set(cohort.case_ids)


def test_checks_run_by_worker_processes_give_the_cohort_and_the_index_of_a_serial_load(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, settled: None, tmp_path: Path
) -> None:
    import segfair.cohort.loading

    bad = repo.mask_path("model", "candidate", repo.case_ids[1])
    bad.write_bytes(b"not a mask")  # a worker cannot read it: the main process reports it
    off = repo.mask_path("ruler", "expert", repo.case_ids[3])
    write_nifti(off, np.zeros((16, 16, 9)))  # off the grid of its case's other masks
    absorbed: list[int] = []
    real_absorb = FileIndex.absorb

    def absorb(self: FileIndex, learnt: Any) -> None:
        absorbed.append(len(learnt[1]))
        real_absorb(self, learnt)

    monkeypatch.setattr(FileIndex, "absorb", absorb)
    errors = []
    for workers, cache in ((1, "serial"), (2, "parallel")):
        monkeypatch.setattr(segfair.cohort.loading, "PARALLEL_CHECKS", 0)
        segfair.fileindex.file_index.cache_clear()
        segfair.cohort.fileindex._INDEXES.clear()
        with pytest.raises(CohortError) as err:
            load_cohort(repo.config_path, cache=tmp_path / cache, workers=workers)
        errors.append(str(err.value))
    assert sum(absorbed) == 3 * len(repo.case_ids) - 1  # the workers read all but the bad one
    assert errors[0] == errors[1]
    assert repo.case_ids[1] in errors[0]
    assert repo.case_ids[3] in errors[0]
    serial, parallel = (FileIndex(tmp_path / c) for c in ("serial", "parallel"))
    assert parallel.entries.keys() == serial.entries.keys()
    assert len(parallel.entries) == 3 * len(repo.case_ids) - 1  # all but the bad file
    for path, entry in serial.entries.items():
        assert parallel.remembered(path) == entry["sha256"]
        assert (
            parallel.geometry(path, max_voxels=10**9).shape
            == serial.geometry(path, max_voxels=10**9).shape
        )


def test_a_cohort_checked_by_worker_processes_has_the_exclusions_of_a_serial_load(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import segfair.cohort.loading

    monkeypatch.setattr(segfair.cohort.loading, "PARALLEL_CHECKS", 0)
    repo.write_config(missing_predictions="exclude")
    repo.mask_path("model", "candidate", repo.case_ids[2]).unlink()
    loads = [
        load_cohort(repo.config_path, cache=cache, workers=workers)
        for workers, cache in ((1, False), (2, False), (2, tmp_path / "cache"))
    ]
    for cohort in loads[1:]:
        assert cohort.case_ids == loads[0].case_ids
        pd.testing.assert_frame_equal(cohort.exclusions, loads[0].exclusions)
    assert loads[0].exclusions["case_id"].tolist() == [repo.case_ids[2]]


def test_what_another_index_learnt_is_absorbed_with_its_grids_renumbered(
    tmp_path: Path, settled: None
) -> None:
    small, large = tmp_path / "small.nii.gz", tmp_path / "large.nii.gz"
    other = tmp_path / "other.nii.gz"
    write_nifti(small, np.zeros((4, 5, 6)))
    write_nifti(large, np.zeros((7, 5, 6)))
    write_nifti(other, np.zeros((4, 5, 6)))
    main = FileIndex(tmp_path / "main")
    main.geometry(small, max_voxels=10**9)  # its grid 0: (4, 5, 6)
    main.content_hash(other)  # a fact of another kind about a file the worker also reads
    worker = FileIndex(None)
    worker.geometry(large, max_voxels=10**9)  # the worker's grid 0: (7, 5, 6)
    worker.geometry(other, max_voxels=10**9)  # the worker's grid 1: (4, 5, 6)
    main.absorb(worker.learnt())
    assert len(main.grids) == 2
    assert main.geometry(large, max_voxels=10**9).shape == (7, 5, 6)
    assert main.geometry(other, max_voxels=10**9).shape == (4, 5, 6)
    name = next(k for k in main.entries[str(other)] if k.startswith("geometry:"))
    assert main.entries[str(other)][name] == main.entries[str(small)][name] == 0
    assert main.remembered(other) == hashlib.sha256(other.read_bytes()).hexdigest()


def test_a_small_pngs_hash_comes_from_the_read_of_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: None
) -> None:
    from PIL import Image

    f = tmp_path / "m.png"
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(f)
    calls = _counting(monkeypatch, "content_hash")
    index = FileIndex(tmp_path / "cache")
    index.geometry(f, max_voxels=10**9)
    assert calls == []  # one read gave the header and the hash
    assert index.remembered(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def _killed_worker(*args: Any) -> Any:
    os._exit(1)  # a worker killed mid-check (out of memory, a signal)


def test_a_worker_killed_while_checking_leaves_the_checks_to_the_main_process(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, settled: None, tmp_path: Path
) -> None:
    import segfair.cohort.loading

    monkeypatch.setattr(segfair.cohort.loading, "PARALLEL_CHECKS", 0)
    serial = load_cohort(repo.config_path, cache=False, workers=1)
    monkeypatch.setattr(segfair.cohort.loading, "_check_chunk", _killed_worker)
    here: list[int] = []  # checks run by this process (a worker's are not seen here)
    real_run = segfair.cohort.loading._Checks.run

    def run(self: Any, case_ids: Any, *args: Any) -> Any:
        here.append(len(case_ids))
        return real_run(self, case_ids, *args)

    monkeypatch.setattr(segfair.cohort.loading._Checks, "run", run)
    cohort = load_cohort(repo.config_path, cache=tmp_path / "cache", workers=2)
    assert here == [len(repo.case_ids)]  # the workers died: every case checked here
    assert cohort.case_ids == serial.case_ids
    assert len(FileIndex(tmp_path / "cache").entries) == 3 * len(repo.case_ids)
