"""Writing a cohort: :func:`make_cohort` checks its arguments, prepares the folder, runs the
cases (in this process or a pool) and writes the table, configuration and manifest."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, cast

import numpy as np

from segfair.io import atomic_write_text
from segfair.synth.files import (
    _GENERATOR,
    CONFIG,
    LAYOUT,
    MANIFEST,
    TABLE_CSV,
    TABLE_XLSX,
    _config_text,
    _rows,
    _run_task,
    _Task,
    _write_csv,
    _write_xlsx,
)
from segfair.synth.patients import _patients
from segfair.synth.presets import _resolve_world
from segfair.synth.worlds import (
    _SUFFIXES,
    ERR_EFFECTS_BREAST_ONLY,
    WORLD_TABLE,
    _check_png,
    _world,
    _WorldTask,
)
from segfair.synth.worlds import _rows as _world_rows

__all__ = [
    "ERR_NOT_DIR",
    "ERR_NOT_EMPTY",
    "ERR_N_CASES",
    "ERR_SEED",
    "ERR_SHAPE",
    "ERR_SHAPE_2D",
    "ERR_SPACING",
    "ERR_SPACING_2D",
    "ERR_WORKERS",
    "make_cohort",
]

ERR_N_CASES: Final = "n_cases must be an integer >= 1; got {value!r}"
ERR_SHAPE: Final = "shape must be three positive integers; got {value!r}"
ERR_SPACING: Final = "spacing must be three positive finite numbers (mm); got {value!r}"
ERR_SHAPE_2D: Final = "shape must be two positive integers (rows, columns); got {value!r}"
ERR_SPACING_2D: Final = "spacing must be two positive finite numbers (mm); got {value!r}"
ERR_SEED: Final = "seed must be an integer >= 0; got {value!r}"
ERR_WORKERS: Final = "workers must be an integer >= 1; got {value!r}"
ERR_NOT_EMPTY: Final = (
    "{path} is not empty and is not an earlier segfair.synth output; pass overwrite=True to write "
    "into it anyway (files of the cohort are replaced, nothing else is touched)"
)
ERR_NOT_DIR: Final = "{path} exists and is not a directory"
_BREAST_SHAPE: Final = (96, 96, 48)
_BREAST_SPACING: Final = (0.7, 0.7, 1.5)


def _prepare(out_dir: Path, overwrite: bool) -> list[str]:
    """Make ``out_dir`` ready; returns the case ids of an earlier synth output found there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(ERR_NOT_DIR.format(path=out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST
    if manifest.is_file():
        try:
            ids = json.loads(manifest.read_text(encoding="utf-8")).get("case_ids", [])
        except (ValueError, OSError):
            ids = []
        return [str(i) for i in ids]
    if not overwrite and any(out_dir.iterdir()):
        raise FileExistsError(ERR_NOT_EMPTY.format(path=out_dir))
    return []


def _check_int(value: Any, low: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(message.format(value=value))
    return int(value)


def _check_geometry(
    shape: Sequence[int], spacing: Sequence[float], ndim: int = 3
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    shape_error, spacing_error = (
        (ERR_SHAPE, ERR_SPACING) if ndim == 3 else (ERR_SHAPE_2D, ERR_SPACING_2D)
    )
    try:
        dims = tuple(shape)
        ok = len(dims) == ndim and all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in dims
        )
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(shape_error.format(value=shape))
    try:
        sp = tuple(float(s) for s in spacing)
        ok = len(sp) == ndim and all(math.isfinite(s) and s > 0 for s in sp)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(spacing_error.format(value=spacing))
    return tuple(int(d) for d in dims), sp


def _chunks(tasks: Sequence[Any], workers: int) -> Iterator[list[Any]]:
    size = max(1, min(16, len(tasks) // (4 * workers) or 1))
    for i in range(0, len(tasks), size):
        yield list(tasks[i : i + size])


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    # The matrix products here are small: BLAS threads only add overhead, and with one process
    # per core they oversubscribe it (measured: 2 workers were slower than 1). threadpoolctl is
    # optional; without it generation is merely slower.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return contextlib.nullcontext()
    return cast(contextlib.AbstractContextManager[Any], threadpool_limits(1, user_api="blas"))


def _run_chunk(tasks: list[_Task] | list[_WorldTask]) -> int:
    with _single_threaded_blas():
        for task in tasks:
            if isinstance(task, _WorldTask):
                task.run()
            else:
                _run_task(task)
    return len(tasks)


def make_cohort(
    out_dir: str | os.PathLike[str],
    *,
    n_cases: int = 200,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    preset: str = "hidden",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    **effects: float,
) -> Path:
    """Write a synthetic cohort with known, mechanistic disparities (breast DCE-MRI by default).

    Parameters
    ----------
    out_dir
        Directory to write into; created if missing. It must be empty or hold an earlier
        ``make_cohort`` output (recognised by its ``segfair_synth.json``), unless ``overwrite``.
    n_cases
        Number of patients (≥ 1). Case ``i`` is the same whatever ``n_cases`` is.
    shape
        Volume shape in voxels, e.g. ``(16, 16, 16)`` for tests up to ``(512, 512, 160)``; two
        values (rows, columns) for ``"dermoscopy"``. Default: the preset's (96×96×48 for the
        breast presets, 96×96×64 ``brats``, 64×64×40 ``multifocal``, 128×128 ``dermoscopy``).
    spacing
        Voxel size in mm along the array axes (default: the preset's: 0.7×0.7×1.5 breast, 1 mm
        ``brats``, 1.5 mm ``multifocal``, 0.1 mm ``dermoscopy``); the NIfTI affine flips the
        first two (LPS → RAS).
    preset
        ``"null"``, ``"hidden"`` or ``"parikh"``: a complete set of effect values of the breast
        world from :data:`PRESETS`, whose docstrings state the ranges they promise; or a world
        of its own (docs/synthetic.md): ``"brats"`` (nested tumour label maps, a thin-rim age
        effect), ``"multifocal"`` (small satellites missed by size) or ``"dermoscopy"`` (2-D
        PNG masks, a skin-tone contrast effect), which take no ``effects``.
    seed
        Seed (≥ 0) of every random draw; the same seed gives byte-identical files.
    workers
        Processes generating cases (``1`` = in this process); the output does not depend on it.
    overwrite
        Write into a non-empty directory that is not an earlier synth output. Only the cohort's
        own files are replaced; nothing else is deleted.
    **effects
        Effect values overriding a breast preset's; names and meanings in :data:`EFFECTS`.

    Returns
    -------
    Path
        The ``segfair.toml`` describing the cohort (rulers, models, attributes and three gates).

    Raises
    ------
    ValueError
        An argument or effect is invalid; the message lists the valid values.
    FileExistsError
        ``out_dir`` holds unrelated files and ``overwrite`` is false.

    Notes
    -----
    Files, in the MAMA-MIA layout: ``segmentations/expert/{id}.nii.gz`` (the truth),
    ``segmentations/automatic/{id}.nii.gz``, ``predictions/trained_on_expert/{id}.nii.gz``,
    ``predictions/trained_on_automated/{id}.nii.gz`` (uint8, label 1),
    ``clinical_and_imaging_info.xlsx`` (sheet ``dataset_info``) and ``.csv`` with columns
    ``patient_id, dataset, age, ethnicity, menopause, manufacturer, field_strength``, the
    ``segfair.toml`` and ``segfair_synth.json`` (the recipe: every effect value, seed, shape).
    The other worlds use the same folders (``.png`` masks for ``dermoscopy``) and write
    ``cases.csv`` instead of the two clinical tables.

    Examples
    --------
    >>> import tempfile
    >>> from segfair.synth import make_cohort
    >>> config = make_cohort(tempfile.mkdtemp(), n_cases=4, shape=(24, 24, 12), preset="null")
    >>> config.name
    'segfair.toml'
    >>> sorted(p.name for p in (config.parent / "segmentations").iterdir())
    ['automatic', 'expert']
    """
    n = _check_int(n_cases, 1, ERR_N_CASES)
    seed_ = _check_int(seed, 0, ERR_SEED)
    n_workers = _check_int(workers, 1, ERR_WORKERS)
    kind = _world(preset)
    if kind is not None:
        if effects:
            raise ValueError(
                ERR_EFFECTS_BREAST_ONLY.format(names=", ".join(sorted(effects)), preset=preset)
            )
        dims, sp = _check_geometry(
            kind.shape if shape is None else shape,
            kind.spacing if spacing is None else spacing,
            kind.ndim,
        )
        _check_png(preset, sp)
        root = Path(out_dir)
        cases = kind.patients(seed_, n)
        tasks: list[Any] = [_WorldTask(preset, seed_, case, dims, sp, str(root)) for case in cases]
        ids = [c.patient_id for c in cases]
        recipe: dict[str, Any] = {}
    else:
        dims, sp = _check_geometry(
            (96, 96, 48) if shape is None else shape,
            (0.7, 0.7, 1.5) if spacing is None else spacing,
        )
        world = _resolve_world(preset, effects)
        root = Path(out_dir)
        patients = _patients(seed_, n)
        tasks = [
            _Task(
                seed_,
                p.index,
                p.patient_id,
                p.age,
                world,
                (dims[0], dims[1], dims[2]),
                (sp[0], sp[1], sp[2]),
                str(root),
            )
            for p in patients
        ]
        ids = [p.patient_id for p in patients]
        recipe = {"effects": asdict(world)}
    earlier = _prepare(root, overwrite)
    suffixes = _SUFFIXES if kind is not None else (".nii.gz",)
    for folder in LAYOUT.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        # Masks of an earlier synth cohort that this one does not have would look like orphans.
        for stale in earlier:
            if stale not in ids:
                for suffix in suffixes:
                    (root / folder / f"{stale}{suffix}").unlink(missing_ok=True)
    # Until the cohort is complete the manifest says so, and lists every case whose files may
    # exist, so that a run after an interrupted one still recognises and cleans the directory.
    pending = {
        "generator": _GENERATOR,
        "complete": False,
        "case_ids": sorted(set(ids) | set(earlier)),
    }
    atomic_write_text(root / MANIFEST, json.dumps(pending, indent=1) + "\n")

    if n_workers == 1 or n == 1:
        _run_chunk(tasks)
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for _ in pool.map(_run_chunk, _chunks(tasks, n_workers)):
                pass

    config = root / CONFIG
    if kind is not None:
        _write_csv(root / WORLD_TABLE, _world_rows(cases), kind.columns)
        atomic_write_text(config, kind.config(seed_, sp))
    else:
        rows = _rows(patients)
        _write_xlsx(root / TABLE_XLSX, rows)
        _write_csv(root / TABLE_CSV, rows)
        atomic_write_text(config, _config_text(seed_))
    recipe = {
        "generator": _GENERATOR,
        "complete": True,
        "preset": preset,
        "seed": seed_,
        "n_cases": n,
        "shape": list(dims),
        "spacing": list(sp),
        **recipe,
        "case_ids": ids,
    }
    # Written last: only a finished cohort has a complete recipe.
    atomic_write_text(root / MANIFEST, json.dumps(recipe, indent=1) + "\n")
    return config
