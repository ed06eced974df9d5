"""Model repositories whose trusted ruler is partial (for prediction-powered runs): the tiny
repositories of ``conftest.make_repo`` with every third case's expert label removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Repo, make_repo

#: A gap gate on the partial expert ruler, prediction-powered.
PPI_GAP = {
    "kind": "gap",
    "metric": "dice",
    "by": "age_group",
    "model": "candidate",
    "ruler": "expert",
    "min_group_size": 2,
    "estimator": "ppi",
}


def make_partial_repo(root: Path, *, n_cases: int = 36, **kwargs: Any) -> Repo:
    """A repository whose expert ruler labels two cases in three (declared ``partial``) and
    whose automated ruler scores every case."""
    repo = make_repo(root, n_cases=n_cases, young_penalty=1.5, **kwargs)
    for cid in repo.case_ids[::3]:
        repo.mask_path("ruler", "expert", cid).unlink()
    repo.config["rulers"]["expert"] = {"path": repo.config["rulers"]["expert"], "partial": True}
    repo.write_config()
    return repo


def without_a_complete_proxy(repo: Repo) -> None:
    """Make the automated ruler partial too: no ruler scores every case."""
    for cid in repo.case_ids[1::3]:
        repo.mask_path("ruler", "automated", cid).unlink()
    spec = repo.config["rulers"]["automated"]
    repo.config["rulers"]["automated"] = {"path": spec, "partial": True}
    repo.write_config()
