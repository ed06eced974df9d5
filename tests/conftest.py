"""Shared fixtures: tiny model repositories written to disk, the way users lay them out."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

AFFINE = np.diag([-0.8, -0.8, 1.5, 1.0])

#: A gap gate that the repositories of make_repo(young_penalty=1.5) pass.
GAP_GATE = {
    "kind": "gap",
    "metric": "dice",
    "by": "age_group",
    "model": "candidate",
    "ruler": "expert",
    "max": 0.9,
    "min_group_size": 2,
}


@pytest.fixture(autouse=True, scope="session")
def _cache_key_outside_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The cache key file (segfair.io.signing) of this test session, not the user's: tests never
    write to ~/.config. Subprocesses (the CLI, the example repository) inherit it."""
    import os

    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))
    os.environ.pop("SEGFAIR_CACHE_KEY", None)


def ball(shape: Sequence[int], center: Sequence[float], radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    return d2 <= radius**2


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.uint8), affine), path)
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(config: Mapping[str, Any], *, table: str = "") -> str:
    """A minimal TOML writer for test configurations (tables, arrays of tables, scalars)."""
    lines: list[str] = []
    scalars = {
        k: v
        for k, v in config.items()
        if not isinstance(v, Mapping)
        and not (isinstance(v, list) and v and isinstance(v[0], Mapping))
    }
    if table and scalars:
        lines.append(f"[{table}]")
    lines += [f"{k} = {toml_value(v)}" for k, v in scalars.items()]
    for key, value in config.items():
        name = f"{table}.{key}" if table else key
        if isinstance(value, Mapping):
            if not any(isinstance(v, Mapping) for v in value.values()):
                lines.append(f"[{name}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
            else:
                lines.append(to_toml(value, table=name))
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            for item in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Repo:
    """A tiny model repository on disk: masks, a metadata table and a configuration."""

    root: Path
    config: dict[str, Any]
    case_ids: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "segfair.toml"

    def write_config(self, **overrides: Any) -> Path:
        self.config.update(overrides)
        self.config_path.write_text(to_toml(self.config))
        return self.config_path

    def mask_path(self, kind: str, name: str, case_id: str) -> Path:
        table = self.config["models" if kind == "model" else "rulers"]
        template = table[name] if isinstance(table[name], str) else table[name]["path"]
        return self.root / template.replace("{case_id}", case_id)


def make_repo(
    root: Path,
    *,
    n_cases: int = 12,
    shape: tuple[int, int, int] = (16, 16, 10),
    seed: int = 0,
    models: Sequence[str] = ("candidate",),
    rulers: Sequence[str] = ("expert", "automated"),
    young_penalty: float = 0.0,
) -> Repo:
    """Write a repository whose masks are balls; predictions shift more for young cases when
    ``young_penalty`` > 0 (in voxels)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"CASE_{i:03d}" for i in range(n_cases)]
    ages = rng.integers(25, 80, size=n_cases)
    ethn = rng.choice(["white", "black", "asian"], size=n_cases, p=[0.6, 0.3, 0.1])
    rows = ["case_id,age,ethnicity,site"]
    for cid, age, eth in zip(ids, ages, ethn, strict=True):
        rows.append(f"{cid},{age},{eth},{'A' if rng.random() < 0.5 else 'B'}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    c = np.array(shape) / 2
    for cid, age in zip(ids, ages, strict=True):
        r = rng.uniform(2.5, 4.0)
        truth = ball(shape, c, r)
        write_nifti(root / "labels" / "expert" / f"{cid}.nii.gz", truth)
        for name in rulers[1:]:
            write_nifti(root / "labels" / name / f"{cid}.nii.gz", ball(shape, c, r * 0.9))
        for name in models:
            shift = rng.uniform(0, 1.0) + (young_penalty if age <= 40 else 0.0)
            write_nifti(
                root / "preds" / name / f"{cid}.nii.gz", ball(shape, c + np.array([shift, 0, 0]), r)
            )
    config: dict[str, Any] = {
        "cases": "cases.csv",
        "case_id": "case_id",
        "trusted_ruler": "expert",
        "seed": 0,
        "n_boot": 200,
        "min_group_size": 2,
        "cache": False,
        "workers": 1,
        "rulers": {name: f"labels/{name}/{{case_id}}.nii.gz" for name in rulers},
        "models": {name: f"preds/{name}/{{case_id}}.nii.gz" for name in models},
        "attributes": {
            "age_group": {
                "column": "age",
                "bins": [40, 55],
                "labels": ["young", "middle", "older"],
            },
            "ethnicity": {"column": "ethnicity"},
        },
    }
    repo = Repo(root=root, config=config, case_ids=ids)
    repo.write_config()
    return repo


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[..., Repo]:
    counter = iter(range(1000))

    def factory(**kwargs: Any) -> Repo:
        return make_repo(tmp_path / f"repo{next(counter)}", **kwargs)

    return factory


@pytest.fixture
def repo(repo_factory: Callable[..., Repo]) -> Repo:
    return repo_factory()
