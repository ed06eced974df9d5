"""Reliability, end to end through the CLI: bad input, faults, hostile content, determinism.

Every row of ``docs/bad-input.md`` names the test behind it. The contract: bad input ends with exit
status 2 and ``segfair: error:`` naming the case and the file (never a traceback), or it is
legitimate and shows up counted, per group, in the report (never a silent drop).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import AFFINE, Repo, make_repo, write_nifti

import segfair.cohort
from segfair.cli import main
from segfair.cohort import load_cohort
from segfair.evaluate import build_tasks, evaluate_case
from segfair.report import github_annotations

GAP = {
    "kind": "gap",
    "metric": "dice",
    "by": "age_group",
    "model": "candidate",
    "max": 0.9,
    "min_group_size": 2,
}
BAD = "CASE_001"  # the case every bad-input scenario spoils

# the module (the package attribute `segfair.evaluate` is the public function)
evaluate_module = importlib.import_module("segfair.evaluate")
# where the tasks are run (and `evaluate_case` looked up) and progress is shown
executors_module = importlib.import_module("segfair.evaluate.executors")


@dataclass
class Run:
    code: int
    out: str
    err: str


def audit(config: Path, *args: str) -> Run:
    """``segfair audit`` in this process; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["audit", "--config", str(config), *args], stdout=out)
    return Run(code, out.getvalue(), err.getvalue())


def assert_refused(run: Run, *needles: str) -> None:
    """Exit status 2, one ``segfair: error:`` message holding every needle, no traceback."""
    assert run.code == 2, run
    # progress lines may come first (they are on in CI); the error is one message after them
    errors = [line for line in run.err.splitlines() if line.startswith("segfair: error: ")]
    assert len(errors) == 1, run.err
    assert run.err.index(errors[0]) > run.err.rfind(" cases (") or " cases (" not in run.err
    assert "Traceback" not in run.err + run.out
    for needle in needles:
        assert needle in run.err, (needle, run.err)


def small_repo(root: Path, **kwargs: Any) -> Repo:
    repo = make_repo(root, n_cases=4, **kwargs)
    repo.write_config(gates=[GAP], n_boot=100)
    return repo


def pred(repo: Repo, case_id: str = BAD) -> Path:
    return repo.mask_path("model", "candidate", case_id)


def ref(repo: Repo, case_id: str = BAD) -> Path:
    return repo.mask_path("ruler", "expert", case_id)


def voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def save_float(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)


def flipped(path: Path) -> None:
    """Rewrite a mask flipped along x with the affine that puts every voxel where it was."""
    data = voxels(path)
    flip = AFFINE.copy()
    flip[0, 0] = -flip[0, 0]
    flip[0, 3] = AFFINE[0, 0] * (data.shape[0] - 1)
    write_nifti(path, data[::-1], flip)


def edit_table(repo: Repo, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    table = pd.read_csv(repo.root / "cases.csv", dtype=object, keep_default_na=False)
    edit(table).to_csv(repo.root / "cases.csv", index=False)


def set_cell(column: str, value: str, case_id: str = BAD) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[table["case_id"] == case_id, column] = value
        return table

    return edit


# ---- bad mask files: exit 2 naming the case and the file ---------------------------------------


def _missing_prediction(repo: Repo) -> Path:
    pred(repo).unlink()
    return pred(repo)


def _missing_reference(repo: Repo) -> Path:
    ref(repo).unlink()
    return ref(repo)


def _folder_instead_of_file(repo: Repo) -> Path:
    pred(repo).unlink()
    pred(repo).mkdir()
    return pred(repo)


def _truncated(repo: Repo) -> Path:
    data = pred(repo).read_bytes()
    pred(repo).write_bytes(data[: len(data) // 2])
    return pred(repo)


def _uncompressed_named_nii_gz(repo: Repo) -> Path:
    pred(repo).write_bytes(nib.Nifti1Image(voxels(pred(repo)), AFFINE).to_bytes())
    return pred(repo)


def _error_page_named_nii_gz(repo: Repo) -> Path:
    pred(repo).write_bytes(b"<html><body>404 Not Found</body></html>\n")
    return pred(repo)


def _shape_mismatch(repo: Repo) -> Path:
    write_nifti(pred(repo), np.zeros((16, 16, 9)))
    return pred(repo)


def _affine_mismatch(repo: Repo) -> Path:
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    write_nifti(pred(repo), voxels(pred(repo)), shifted)
    return pred(repo)


def _flipped_orientation(repo: Repo) -> Path:
    flipped(pred(repo))
    return pred(repo)


def _four_d(repo: Repo) -> Path:
    data = voxels(pred(repo))
    write_nifti(pred(repo), np.stack([data, data], axis=-1))
    return pred(repo)


def _probabilities(repo: Repo) -> Path:
    save_float(pred(repo), voxels(pred(repo)) * 0.7)
    return pred(repo)


def _labels_0_2(repo: Repo) -> Path:
    write_nifti(ref(repo), voxels(ref(repo)) * 2)
    return ref(repo)


def _nan_voxels(repo: Repo) -> Path:
    data = voxels(pred(repo)).astype(np.float32)
    data[0, 0, 0] = np.nan
    save_float(pred(repo), data)
    return pred(repo)


def _huge_header(repo: Repo) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((10_000, 10_000, 10_000))  # 10¹² voxels promised, 352 bytes given
    import gzip

    pred(repo).write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    return pred(repo)


BAD_MASKS: dict[str, tuple[Callable[[Repo], Path], str]] = {
    "missing-prediction": (_missing_prediction, "missing_predictions"),
    "missing-reference": (_missing_reference, "declare the ruler partial"),
    "folder-instead-of-file": (_folder_instead_of_file, "is not a regular file"),
    "truncated-nii-gz": (_truncated, "truncated or corrupt"),
    "uncompressed-nifti-named-nii-gz": (_uncompressed_named_nii_gz, "rename it to .nii"),
    "error-page-named-nii-gz": (_error_page_named_nii_gz, "is not gzip-compressed"),
    "shape-mismatch": (_shape_mismatch, "shapes (16, 16, 10) and (16, 16, 9) differ"),
    "affine-mismatch": (_affine_mismatch, "affines differ by up to 5 mm"),
    "flipped-orientation": (_flipped_orientation, "reorient = true"),
    "4d-mask": (_four_d, "4-D mask with 2 volumes"),
    "float-probabilities": (_probabilities, "set `threshold`"),
    "labels-0-and-2": (_labels_0_2, "labels = [2]"),
    "nan-voxels": (_nan_voxels, "1 voxel(s) are NaN"),
    "header-promising-10-12-voxels": (_huge_header, "1,000,000,000,000 voxels"),
}


@pytest.mark.parametrize("scenario", list(BAD_MASKS))
def test_a_bad_mask_file_exits_2_naming_the_case_and_the_file(
    scenario: str, tmp_path: Path
) -> None:
    spoil, hint = BAD_MASKS[scenario]
    repo = small_repo(tmp_path / "repo")
    bad_file = spoil(repo)
    run = audit(repo.config_path, "--json", str(tmp_path / "r.json"))
    assert_refused(run, f"case {BAD!r}", f"file {str(bad_file)!r}", hint, "1 problem")
    assert not (tmp_path / "r.json").exists()  # no report from a refused run


class _Payload:
    """Unpickling this runs ``Path(marker).touch()``: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickled_npy_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    for kind, name in (("ruler", "expert"), ("ruler", "automated"), ("model", "candidate")):
        table = repo.config["rulers" if kind == "ruler" else "models"]
        table[name] = table[name].replace(".nii.gz", ".npy")
        for cid in repo.case_ids:
            nifti = Path(str(repo.mask_path(kind, name, cid)).replace(".npy", ".nii.gz"))
            np.save(repo.mask_path(kind, name, cid), voxels(nifti))
    repo.write_config()
    marker = tmp_path / "payload-ran"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    np.save(pred(repo), payload, allow_pickle=True)
    run = audit(repo.config_path)
    assert_refused(run, f"case {BAD!r}", str(pred(repo)), "never unpickles")
    assert not marker.exists()


def test_problems_in_several_cases_are_reported_in_one_run(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    a, b, c = repo.case_ids[:3]
    pred(repo, a).unlink()
    write_nifti(pred(repo, b), np.zeros((16, 16, 9)))
    pred(repo, c).write_bytes(b"garbage")
    run = audit(repo.config_path)
    assert_refused(run, "3 problems", f"case {a!r}", f"case {b!r}", f"case {c!r}")


# ---- bad metadata tables ------------------------------------------------------------------------

BAD_TABLES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], tuple[str, ...]]] = {
    "duplicate-case-id": (
        lambda t: pd.concat([t, t.iloc[[1]]]),
        (f"case id {BAD!r} appears 2 times",),
    ),
    "case-id-with-a-slash": (set_cell("case_id", "a/b"), ("'a/b' is not safe in a file path",)),
    "case-id-with-dot-dot": (
        set_cell("case_id", "../../etc/passwd"),
        ("'../../etc/passwd' is not safe in a file path",),
    ),
    "case-id-with-markup": (
        set_cell("case_id", "<script>alert(1)</script>"),
        ("'<script>alert(1)</script>' is not safe in a file path",),
    ),
    "case-id-with-a-pipe-newline-and-colons": (
        set_cell("case_id", "a|b\n::error::x"),
        ("'a|b\\n::error::x' is not safe in a file path",),
    ),
    "case-id-missing": (set_cell("case_id", ""), ("row 3 of the metadata table has no 'case_id'",)),
    "attribute-column-missing": (
        lambda t: t.drop(columns=["ethnicity"]),
        ("column 'ethnicity' (attribute 'ethnicity') is not in the metadata table", "cases.csv"),
    ),
    "non-numeric-age": (set_cell("age", "forty"), (f"case {BAD!r}", "non-numeric value 'forty'")),
    "negative-age": (
        set_cell("age", "-3"),
        (f"case {BAD!r}", "holds '-3', outside the valid range 0–130", "valid_range"),
    ),
    "implausible-age": (set_cell("age", "400"), (f"case {BAD!r}", "outside the valid range")),
    "infinite-age": (set_cell("age", "inf"), (f"case {BAD!r}", "'inf', which is not a finite")),
    "empty-cohort": (lambda t: t.iloc[:0], ("the metadata table has no cases", "cases.csv")),
}


@pytest.mark.parametrize("scenario", list(BAD_TABLES))
def test_a_bad_metadata_table_exits_2_naming_the_case_or_the_table(
    scenario: str, tmp_path: Path
) -> None:
    edit, needles = BAD_TABLES[scenario]
    repo = small_repo(tmp_path / "repo")
    edit_table(repo, edit)
    assert_refused(audit(repo.config_path), *needles)


def test_an_unreadable_or_missing_metadata_table_exits_2_naming_it(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    table = repo.root / "cases.csv"
    table.write_bytes(b"\xff\xfe\x00\x00garbage\x00")
    assert_refused(audit(repo.config_path), "cannot read", str(table))
    table.unlink()
    assert_refused(audit(repo.config_path), "does not exist", str(table))


def test_a_case_id_column_the_table_lacks_names_the_closest_column(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    repo.write_config(case_id="case_ID")
    assert_refused(audit(repo.config_path), "column 'case_ID'", "did you mean 'case_id'?")


# ---- bad configuration ------------------------------------------------------------------------


def _gate(**changes: Any) -> Callable[[Repo], None]:
    return lambda repo: repo.write_config(gates=[{**GAP, **changes}])


def _config(**changes: Any) -> Callable[[Repo], None]:
    return lambda repo: repo.write_config(**changes)


def _nested_typo(repo: Repo) -> None:
    repo.config["attributes"]["age_group"]["colum"] = "age"
    repo.write_config()


def _reversed_range(repo: Repo) -> None:
    repo.config["attributes"]["age_group"]["valid_range"] = [130, 0]
    repo.write_config()


def _no_placeholder(repo: Repo) -> None:
    repo.config["models"]["candidate"] = "preds/candidate/mask.nii.gz"
    repo.write_config()


BAD_CONFIGS: dict[str, tuple[Callable[[Repo], None], tuple[str, ...]]] = {
    "typo-in-a-key": (_config(n_bot=200), ("'n_bot'", "did you mean 'n_boot'?")),
    "typo-in-a-nested-key": (_nested_typo, ("attributes.age_group.colum", "'column'")),
    "typo-in-a-gate-key": (_gate(mx=0.1), ("gates[0].mx", "did you mean 'max'?")),
    "unknown-gate-kind": (_gate(kind="gapp"), ("gates[0].kind", "did you mean 'gap'?")),
    "gate-names-an-unconfigured-ruler": (
        _gate(ruler="expret"),
        ("gates[0].ruler = 'expret' is not a configured ruler", "'expert'"),
    ),
    "gate-names-an-unconfigured-model": (
        _gate(model="candidat"),
        ("gates[0].model = 'candidat' is not a configured model", "'candidate'"),
    ),
    "gate-names-an-unconfigured-attribute": (
        _gate(by="sex"),
        ("gates[0].by = 'sex' is not a configured attribute", "age_group, ethnicity"),
    ),
    "gate-names-an-unknown-metric": (
        _gate(metric="dise"),
        ("gates[0].metric = 'dise' is not a configured metric", "'dice'"),
    ),
    "gate-threshold-above-1": (_gate(max=1.5), ("max must be a fraction in [0, 1]", "1.5")),
    "gate-threshold-negative": (
        _gate(metric="hd95", max=-1.0),
        ("max must be ≥ 0 for 'hd95'",),
    ),
    "gate-threshold-nan": (_gate(max=float("nan")), ("gates[0]", "finite number")),
    "gate-confidence-out-of-range": (_gate(confidence=0.3), ("confidence must be in (0.5, 1)",)),
    "confidence-out-of-range": (_config(confidence=1.5), ("confidence", "less than 1")),
    "n-boot-too-small": (_config(n_boot=5), ("n_boot", "greater than or equal to 100")),
    "threshold-nan": (_config(threshold=float("nan")), ("threshold", "finite number")),
    "cap-infinite": (_config(cap=float("inf")), ("cap", "finite number")),
    "template-without-placeholder": (_no_placeholder, ("must contain '{case_id}' exactly once",)),
    "valid-range-reversed": (_reversed_range, ("valid_range must be [low, high]",)),
}


@pytest.mark.parametrize("scenario", list(BAD_CONFIGS))
def test_a_bad_configuration_exits_2_naming_the_key_before_any_mask_is_read(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spoil, needles = BAD_CONFIGS[scenario]
    repo = small_repo(tmp_path / "repo")
    spoil(repo)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cohort was loaded despite an invalid configuration")

    monkeypatch.setattr(segfair.cohort, "load_cohort", never)
    assert_refused(audit(repo.config_path), str(repo.config_path), *needles)


def test_a_missing_or_invalid_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    assert_refused(audit(tmp_path / "nowhere.toml"), "no such file or folder")
    bad = tmp_path / "segfair.toml"
    bad.write_text("cases = [\n")
    assert_refused(audit(bad), str(bad), "not valid TOML")


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{not json", "cannot read the baseline report"), ("[1, 2]", "not a segfair JSON report")],
    ids=["not-json", "a-json-array"],
)
def test_a_baseline_that_is_not_a_report_exits_2(tmp_path: Path, content: str, needle: str) -> None:
    repo = small_repo(tmp_path / "repo")
    regression = {k: v for k, v in GAP.items() if k != "max"}
    repo.write_config(gates=[{**regression, "kind": "no_regression"}])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content)
    assert_refused(audit(repo.config_path, "--baseline", str(baseline)), needle, str(baseline))


def test_an_unwritable_cache_fails_up_front_naming_the_folder(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    repo.write_config(cache="cases.csv")  # a file where the cache folder should be
    assert_refused(audit(repo.config_path), "the cache folder", "cases.csv", "--no-cache")


def test_an_unwritable_report_path_exits_2_naming_it(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "repo")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert_refused(audit(repo.config_path, "--json", str(folder)), "cannot write the report")


# ---- odd but legitimate input: counted, per group, in every report ------------------------------

HOSTILE = {
    "CASE_004": "<script>alert(1)</script>",
    "CASE_005": "a|b",
    "CASE_006": "::error title=pwned::injected",
    "CASE_007": '=HYPERLINK("http://evil.example/","click")',
    "CASE_008": "![x](http://evil.example/pixel.png)",
    "CASE_009": "{{ 7 * 7 }}",
    "CASE_010": "two\nlines",
    "CASE_001": '!!python/object/apply:os.system ["touch /tmp/segfair-pwned"]',
}
SITE_GATES: list[dict[str, Any]] = [
    {"kind": "gap", "metric": "dice", "model": "candidate", "max": 0.5},
    {"kind": "min_group_metric", "metric": "dice", "model": "candidate", "min": 0.1},
    {"kind": "dpd", "metric": "dice", "model": "candidate", "max": 0.5},
    {"kind": "dir", "metric": "dice", "model": "candidate"},
    {
        "kind": "ruler_shrinkage",
        "metric": "dice",
        "model": "candidate",
        "automated": "automated",
        "max": 0.5,
    },
    {
        "kind": "ruler_inflation",
        "metric": "dice",
        "model": "candidate",
        "automated": "automated",
        "max": 0.5,
    },
    {
        "kind": "amplification",
        "metric": "dice",
        "model": "candidate",
        "baseline": "baseline",
        "max": 0.5,
    },
    {"kind": "label_agreement", "automated": "automated", "min": 0.1},
    {"kind": "coverage", "min": 0.5},
    {"kind": "min_group_size", "min": 2},
    {"kind": "no_regression", "metric": "dice", "model": "candidate"},
    {
        "kind": "gap",
        "metric": "hd95",
        "model": "candidate",
        "max": 50.0,
        "name": "allowed",
        "allow_insufficient": True,
    },
]


@dataclass
class Odd:
    repo: Repo
    run: Run
    doc: dict[str, Any]
    html: str
    md: str
    cases: dict[str, str]  # role → case id


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    import fcntl

    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Odd:
    """One audit of a cohort holding every odd-but-legitimate input at once, run once per test
    session: pytest-xdist workers share it through their common temporary folder."""
    if worker_id == "master":
        root = tmp_path_factory.mktemp("odd")
        _build_odd(root)
        return _load_odd(root)
    root = tmp_path_factory.getbasetemp().parent / "odd"
    with _exclusive(root.with_suffix(".lock")):
        if not (root / "odd.json").is_file():
            _build_odd(root)
    return _load_odd(root)


def _build_odd(root: Path) -> None:
    repo = make_repo(root / "repo", n_cases=12, models=("candidate", "baseline"))
    ids = repo.case_ids
    cases = {
        "empty_prediction": ids[0],
        "empty_reference": ids[1],
        "missing_age": ids[2],
        "flipped": ids[3],
        "probabilities": ids[4],
        "labels_0_2": ids[5],
        "excluded": ids[6],
        "unlisted_value": ids[11],
        "lonely_site": ids[3],
    }
    shape = voxels(ref(repo, ids[0])).shape
    write_nifti(pred(repo, cases["empty_prediction"]), np.zeros(shape))
    write_nifti(ref(repo, cases["empty_reference"]), np.zeros(shape))
    flipped(pred(repo, cases["flipped"]))
    save_float(pred(repo, cases["probabilities"]), voxels(pred(repo, cases["probabilities"])) * 0.8)
    auto = repo.mask_path("ruler", "automated", cases["labels_0_2"])
    write_nifti(auto, voxels(auto) * 2)
    repo.mask_path("model", "baseline", cases["excluded"]).unlink()

    def edit(t: pd.DataFrame) -> pd.DataFrame:
        t.loc[t["case_id"] == cases["missing_age"], "age"] = "NaN"
        t.loc[t["case_id"] == cases["unlisted_value"], "ethnicity"] = "pacific islander"
        for cid, value in HOSTILE.items():
            t.loc[t["case_id"] == cid, "ethnicity"] = value
        t["site"] = np.where(t["case_id"] == cases["lonely_site"], "B", "A")
        return t

    edit_table(repo, edit)
    repo.config["models"]["candidate"] = {
        "path": "preds/candidate/{case_id}.nii.gz",
        "threshold": 0.5,
    }
    repo.config["rulers"]["automated"] = {
        "path": "labels/automated/{case_id}.nii.gz",
        "labels": [1, 2],
    }
    repo.config["attributes"]["ethnicity"]["order"] = ["white", "black", "asian"]
    repo.config["attributes"]["site"] = {"column": "site", "order": ["A", "B", "ghost"]}
    gates = [{**g, "by": "site", "min_group_size": 2} for g in SITE_GATES]
    gates.append({**GAP, "by": "ethnicity"})
    repo.write_config(gates=gates, reorient=True, missing_predictions="exclude", n_boot=100)
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        # nothing may reach the network: any attempt fails the run loudly
        def offline(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"network access attempted: {args}")

        mp.setattr(socket.socket, "connect", offline)
        mp.setattr(socket, "create_connection", offline)
        run = audit(
            repo.config_path,
            *("--html", str(out / "r.html"), "--json", str(out / "r.json")),
            *("--md", str(out / "r.md")),
        )
    state = {"run": vars(run), "cases": cases, "config": repo.config, "case_ids": ids}
    (root / "odd.json").write_text(json.dumps(state))


def _load_odd(root: Path) -> Odd:
    state = json.loads((root / "odd.json").read_text())
    out = root / "out"
    return Odd(
        repo=Repo(root=root / "repo", config=state["config"], case_ids=state["case_ids"]),
        run=Run(**state["run"]),
        doc=json.loads((out / "r.json").read_text()),
        html=(out / "r.html").read_text(),
        md=(out / "r.md").read_text(),
        cases=state["cases"],
    )


def _scores(odd: Odd, case_id: str) -> dict[tuple[str, str], dict[str, float]]:
    cohort = load_cohort(odd.repo.config_path)
    task = next(t for t in build_tasks(cohort) if t.case_id == case_id)
    return evaluate_case(task).pairs


def _group_of(odd: Odd, case_id: str, attribute: str) -> str:
    return str(load_cohort(odd.repo.config_path).groups.loc[case_id, attribute])


def _capped(odd: Odd, metric: str, model: str, ruler: str) -> dict[str, tuple[int, int]]:
    return {
        r["group"]: (r["capped"], r["undefined"])
        for r in odd.doc["coverage"]["capped"]
        if (r["attribute"], r["metric"], r["model"], r["ruler"])
        == ("age_group", metric, model, ruler)
    }


def test_the_odd_cohort_is_audited_not_refused_and_nothing_is_fetched(odd: Odd) -> None:
    assert odd.run.code == 1, odd.run  # gates fail or cannot decide; the input is fine
    assert "Traceback" not in odd.run.err
    assert odd.doc["cohort"]["n_cases"] == 12


def test_an_empty_prediction_scores_dice_0_with_capped_distances_counted_in_its_group(
    odd: Odd,
) -> None:
    case = odd.cases["empty_prediction"]
    values = _scores(odd, case)[("model:candidate", "ruler:expert")]
    assert values["dice"] == 0.0
    assert values["hd95"] == np.inf  # capped at `cap` in every average, and counted
    group = _group_of(odd, case, "age_group")
    assert _capped(odd, "hd95", "candidate", "expert")[group][0] >= 1
    assert odd.doc["coverage"]["cap"] == 150.0
    table = odd.html[odd.html.index("Capped and undefined values") :]
    assert "capped at 150 mm" in table


def test_an_empty_reference_scores_dice_0_and_counts_undefined_sensitivity(odd: Odd) -> None:
    case = odd.cases["empty_reference"]
    values = _scores(odd, case)[("model:candidate", "ruler:expert")]
    assert values["dice"] == 0.0
    assert np.isnan(values["sensitivity"])
    group = _group_of(odd, case, "age_group")
    assert _capped(odd, "hd95", "candidate", "expert")[group][0] >= 1
    assert _capped(odd, "sensitivity", "candidate", "expert")[group][1] == 1


def test_a_missing_age_is_the_unknown_group_counted_in_the_report(odd: Odd) -> None:
    age = next(a for a in odd.doc["cohort"]["attributes"] if a["name"] == "age_group")
    assert {"group": "unknown", "n": 1} in age["groups"]
    assert sum(g["n"] for g in age["groups"]) == 12


def test_an_attribute_value_outside_the_declared_order_is_its_own_group(odd: Odd) -> None:
    eth = next(a for a in odd.doc["cohort"]["attributes"] if a["name"] == "ethnicity")
    names = [g["group"] for g in eth["groups"]]
    assert "pacific islander" in names
    declared = [n for n in names if n in ("white", "black", "asian")]
    assert names[: len(declared)] == declared  # the declared order first, then the rest
    assert sum(g["n"] for g in eth["groups"]) == 12


def test_a_flipped_prediction_is_scored_on_the_reference_grid_with_reorient(odd: Odd) -> None:
    case = odd.cases["flipped"]
    got = _scores(odd, case)[("model:candidate", "ruler:expert")]["dice"]
    data = voxels(pred(odd.repo, case))[::-1].astype(bool)  # undo the flip by hand
    truth = voxels(ref(odd.repo, case)).astype(bool)
    assert got == pytest.approx(2 * (data & truth).sum() / (data.sum() + truth.sum()))


def test_probabilities_with_a_threshold_and_labels_0_2_with_labels_are_scored(odd: Odd) -> None:
    probs = _scores(odd, odd.cases["probabilities"])[("model:candidate", "ruler:expert")]
    assert 0.0 < probs["dice"] <= 1.0
    agreement = _scores(odd, odd.cases["labels_0_2"])[("ruler:automated", "ruler:expert")]
    assert agreement["dice"] > 0.5


def test_an_excluded_prediction_is_counted_per_group_and_listed(odd: Odd) -> None:
    case = odd.cases["excluded"]
    group = _group_of(odd, case, "age_group")
    rows = next(p for p in odd.doc["coverage"]["predictions"] if p["attribute"] == "age_group")
    row = next(r for r in rows["rows"] if (r["model"], r["group"]) == ("baseline", group))
    assert row["missing"] == 1
    assert row["covered"] == row["expected"] - 1
    assert {
        "case_id": case,
        "kind": "model",
        "source": "baseline",
        "reason": "prediction file missing",
    } in odd.doc["coverage"]["excluded"]


def test_groups_of_0_and_1_cases_leave_every_gate_kind_undecided_never_crashed(odd: Odd) -> None:
    by_site = [g for g in odd.doc["gates"] if ",site" in g["id"] or "[site" in g["id"]]
    assert {g["kind"] for g in by_site} == {g["kind"] for g in SITE_GATES}
    for g in by_site:
        if g["kind"] == "min_group_size":  # a count, not an estimate: 0 < 2 fails outright
            assert g["status"] == "failed"
            assert "'ghost'" in g["message"]
            continue
        if g["kind"] == "coverage":  # a count too: B has its 1 prediction, ghost none to miss
            assert g["status"] == "passed"
            continue
        assert g["status"] == "inconclusive", g
        if g["kind"] != "no_regression":
            assert "'ghost' (n = 0)" in g["message"]
            assert "'B' (n = 1)" in g["message"]
    allowed = next(g for g in by_site if g["name"] == "allowed")
    assert allowed["ok"] is True
    blocking = {g["kind"] for g in by_site if not g["ok"]}
    assert blocking == {g["kind"] for g in SITE_GATES} - {"coverage"}  # the allowed one is a gap


# ---- hostile content --------------------------------------------------------------------------


def test_hostile_attribute_values_render_as_text_in_html(odd: Odd) -> None:
    html = odd.html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7 * 7 }}" in html  # shown, not evaluated by the template engine
    assert 'href="http://evil.example' not in html
    assert 'src="http://evil.example' not in html
    assert "default-src 'none'" in html  # and the page may not fetch anything anyway


def test_hostile_attribute_values_stay_inside_their_markdown_cells(odd: Odd) -> None:
    md = odd.md
    assert "<script" not in md
    assert "](http://evil.example" not in md  # no image or link from data
    for line in md.splitlines():
        if line.startswith("|"):
            assert "\n" not in line
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    for t in (t for t in tables if t):
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in t}) == 1


def test_hostile_attribute_values_cannot_forge_github_annotations(odd: Odd) -> None:
    lines = github_annotations(odd.doc)
    failing = [g for g in odd.doc["gates"] if not g["ok"]]
    # one ::error per blocking gate, one ::warning per inconclusive gate let through with one
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == len(failing)
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        # file= and line= (escaped like any property) may come first: they attach it to the diff
        title = re.sub(r"^(::\w+ )file=[^,:]*,line=\d+,", r"\1", line)
        assert title.startswith(
            (
                "::error title=segfair gate failed%3A ",
                "::error title=segfair gate inconclusive%3A ",
                "::warning title=segfair gate inconclusive (not blocking)%3A ",
            )
        )
    eth = next(line for line in lines if "ethnicity" in line.split("::")[1])
    assert "<script>alert(1)</script>" in eth  # plain text in an annotation, on its one line


def test_hostile_values_and_formulas_round_trip_verbatim_in_json(odd: Odd) -> None:
    eth = next(a for a in odd.doc["cohort"]["attributes"] if a["name"] == "ethnicity")
    names = {g["group"] for g in eth["groups"]}
    assert set(HOSTILE.values()) <= names  # text, exactly as in the table: nothing evaluated
    assert not Path("/tmp/segfair-pwned").exists()


# ---- faults -------------------------------------------------------------------------------------

DIE_ON = "SEGFAIR_TEST_DIE_ON"  # read by _dying_evaluate_case, in worker processes only


def _dying_evaluate_case(task: evaluate_module.CaseTask) -> evaluate_module.CaseResult:
    """Test-only stand-in for evaluate_case: the worker dies on one case, as if OOM-killed."""
    how, _, case = os.environ.get(DIE_ON, "").partition(":")
    if task.case_id == case:
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(1)
    return _ORIGINAL_EVALUATE_CASE(task)


_ORIGINAL_EVALUATE_CASE = evaluate_module.evaluate_case


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_worker_that_dies_is_named_and_the_run_fails_cleanly(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", n_cases=8, rulers=("expert",))
    repo.write_config(gates=[GAP], n_boot=100)
    victim = repo.case_ids[3]
    monkeypatch.setenv(DIE_ON, f"{how}:{victim}")
    monkeypatch.setattr(executors_module, "evaluate_case", _dying_evaluate_case)
    run = audit(repo.config_path, "--workers", "2", "--json", str(tmp_path / "r.json"))
    assert_refused(run, "a worker process died", repr(victim), "were not evaluated")
    assert not (tmp_path / "r.json").exists()


def _cache_entries(folder: Path) -> list[tuple[bytes, bytes]]:
    """The case results in the folder's results store: (key, payload), by key."""
    from segfair.evaluate.store import STORE_NAME

    if not (folder / STORE_NAME).exists():
        return []
    with contextlib.closing(sqlite3.connect(folder / STORE_NAME, timeout=30)) as db:
        try:
            return db.execute("SELECT key, payload FROM results ORDER BY key").fetchall()
        except sqlite3.OperationalError:  # created, its tables not yet
            return []


def _verified(folder: Path, keys: list[bytes]) -> int:
    """How many of these entries read back whole and signed."""
    from segfair.evaluate.store import ResultStore

    with ResultStore(folder) as store:
        return len(store.get_many([k.hex() for k in keys]))


def test_a_corrupt_cache_entry_is_detected_and_recomputed_end_to_end(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", n_cases=6, rulers=("expert",))
    repo.write_config(gates=[GAP], n_boot=100, cache=".cache")
    first = audit(repo.config_path, "--json", str(tmp_path / "a.json"))
    cache = repo.root / ".cache"
    entries = _cache_entries(cache)
    assert first.code in (0, 1)
    assert len(entries) == 6
    from segfair.evaluate.store import STORE_NAME

    (k0, p0), (k1, p1), (k2, _), (k3, _) = entries[:4]
    flipped = bytearray(p1)
    flipped[3] ^= 0x01  # one bit of one value
    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db, db:
        update = "UPDATE results SET {} = ? WHERE key = ?"
        db.execute(update.format("payload"), (p0[:5], k0))  # truncated
        db.execute(update.format("payload"), (bytes(flipped), k1))
        db.execute(update.format("layout"), (b"\x00" * 32, k2))  # a layout that is not there
        db.execute(update.format("tag"), (os.urandom(64), k3))  # garbage
    cached: list[bool] = []
    counts: list[tuple[int, int]] = []
    original = executors_module._Progress.update

    def spy(self: Any, result: evaluate_module.CaseResult) -> None:
        cached.append(result.cached)
        original(self, result)
        counts.append((self.done, self.cached))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(executors_module._Progress, "update", spy)
        second = audit(repo.config_path, "--json", str(tmp_path / "b.json"))
    assert second.code == first.code
    # the hits are counted at once, the 4 recomputed cases one by one
    assert cached.count(False) == 4
    assert counts[-1] == (6, 2)
    assert _without_timestamp(tmp_path / "a.json") == _without_timestamp(tmp_path / "b.json")
    entries = _cache_entries(cache)
    assert _verified(cache, [k for k, _ in entries]) == 6  # rewritten whole


@pytest.mark.slow
def test_a_run_killed_mid_evaluation_leaves_a_valid_cache_and_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # more cases than the store's first batch (results are committed every 1,000 or every
    # second): the run is still evaluating when that batch is in
    n = 2500
    repo = make_repo(tmp_path / "repo", n_cases=n, rulers=("expert",), shape=(12, 12, 8))
    repo.write_config(gates=[GAP], n_boot=100, cache=".cache", workers=1)
    report = tmp_path / "report.json"
    report.write_text('{"old": true}\n')
    cmd = [
        sys.executable,
        "-m",
        "segfair.cli",
        "audit",
        "--config",
        str(repo.config_path),
        "--json",
        str(report),
    ]
    env = {**os.environ, "CI": "true"}  # progress lines on stderr, with the cached count
    cache = repo.root / ".cache"
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(_cache_entries(cache)) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no cache entry appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    from segfair.evaluate.store import STORE_NAME

    with contextlib.closing(sqlite3.connect(cache / STORE_NAME)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    entries = _cache_entries(cache)
    assert 3 <= len(entries) < n
    assert _verified(cache, [k for k, _ in entries]) == len(entries)  # every committed one whole
    assert report.read_text() == '{"old": true}\n'  # the old report, whole
    monkeypatch.setenv("CI", "true")
    rerun = audit(repo.config_path, "--json", str(report))  # in this process: no second import
    assert rerun.code in (0, 1), rerun
    assert "Traceback" not in rerun.err
    done = re.findall(rf"segfair: {n}/{n} cases \((\d+) cached\)", rerun.err)
    assert done, rerun.err
    assert int(done[-1]) >= len(entries)  # resumed from the cache
    assert json.loads(report.read_text())["schema"] == "segfair-report/2"


# ---- determinism ------------------------------------------------------------------------------


def _without_timestamp(path: Path) -> str:
    doc = json.loads(path.read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc.pop("generated_at"))
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False)


def test_the_json_report_is_identical_across_workers_row_order_and_repeated_runs(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", n_cases=12, young_penalty=1.0)
    four_fifths = {k: v for k, v in GAP.items() if k != "max"}
    repo.write_config(gates=[GAP, {**four_fifths, "kind": "dir"}], n_boot=100)

    def report(name: str, *args: str) -> bytes:
        path = tmp_path / f"{name}.json"
        run = audit(repo.config_path, "--quiet", "--no-cache", "--json", str(path), *args)
        assert run.code in (0, 1), run
        raw = path.read_bytes()
        stamp = re.search(rb'"generated_at": "[^"]*",?\n', raw)
        assert stamp is not None  # the one field allowed to differ, isolated on its own line
        return raw.replace(stamp.group(0), b"")

    one = report("one", "--workers", "1")
    assert report("two", "--workers", "2") == one
    assert report("again", "--workers", "1") == one
    edit_table(repo, lambda t: t.sample(frac=1.0, random_state=7))
    assert report("shuffled", "--workers", "2") == one


# ---- the table in the docs --------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


def test_every_row_of_the_bad_input_table_names_tests_that_exist() -> None:
    import ast

    tests = Path(__file__).resolve().parent
    defined: dict[str, tuple[set[str], str]] = {}
    rows = [
        line
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith(("| input ", "| event ", "| ---"))
    ]
    assert len(rows) >= 50
    for row in rows:
        refs = re.findall(r"`(test_\w+\.py)::(test_\w+)(?:\[([^\]]+)\])?`", row)
        assert refs, f"a row without a test: {row}"
        for file, name, param in refs:
            if file not in defined:
                source = (tests / file).read_text(encoding="utf-8")
                names = {
                    n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)
                }
                names |= set(re.findall(r"^(test_\w+) = ", source, flags=re.M))
                defined[file] = (names, source)
            names, source = defined[file]
            assert name in names, f"{file}::{name} does not exist"
            if param:
                assert f'"{param}"' in source, f"{file}::{name}[{param}] does not exist"
