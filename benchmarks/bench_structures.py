"""Named structures: scoring every structure of a case vs the time to read its files.

Writes two synthetic cases (prediction + reference, uint8 label maps, ``.nii.gz``) and measures,
interleaved round by round so that a busy machine slows every row alike, the median over rounds
of:

* reading both files with nibabel (``np.asanyarray(nib.load(f).dataobj)``), the floor the
  targets are stated against;
* ``load_labels`` of both files (segfair's read and checks);
* ``select_structures`` on the two label maps (one scan of each map, one crop per structure);
* ``evaluate_case`` end to end (read once, geometry check, every metric and the morphology of
  every structure), no cache.

Cases:

* ``brats``: 512×512×160, one tumour of nested regions (edema 2 ⊃ enhancing rim 3 ⊃ necrosis 1),
  three structures: whole_tumor {1, 2, 3}, tumor_core {1, 3}, enhancing {3}. Target (issue 17):
  ``evaluate_case`` ≤ 1.5× the read.
* ``organs``: 512×512×160 with 20 labelled blobs spread over the volume (organ-like), one
  structure per label. Target: ≤ 3× the read.

    nice -n 10 python benchmarks/bench_structures.py [--rounds 5] [--shape 512x512x160]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from segfair import io
from segfair.evaluate import evaluate_case
from segfair.evaluate.tasks import CaseTask
from segfair.metrics import ALL_METRICS

AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def _ball(shape: Sequence[int], centre: Sequence[float], radii: Sequence[float]) -> Any:
    box = [
        slice(max(0, int(c - r - 1)), min(n, int(c + r + 2)))
        for c, r, n in zip(centre, radii, shape, strict=True)
    ]
    grid = np.ogrid[tuple(box)]
    d2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return tuple(box), d2 <= 1.0


def _paint(out: np.ndarray, centre: Sequence[float], radii: Sequence[float], label: int) -> None:
    box, inside = _ball(out.shape, centre, radii)
    out[box][inside] = label


def brats_pair(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[Any, Any]:
    c = np.array(shape) / 2
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for arr, shift, rim in ((ref, 0.0, 4.0), (pred, 1.5, 2.5)):
        centre = c + np.array([shift, 0, 0])
        _paint(arr, centre, (40, 36, 30), 2)  # edema
        _paint(arr, centre, (22, 20, 16), 3)  # enhancing rim
        _paint(arr, centre, (22 - rim, 20 - rim, 16 - rim), 1)  # necrosis
    return pred, ref


def organ_pair(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[Any, Any]:
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for label in range(1, 21):
        radii = rng.uniform(10, 35, size=3)
        centre = [rng.uniform(r + 2, n - r - 2) for r, n in zip(radii, shape, strict=True)]
        _paint(ref, centre, radii, label)
        moved = np.array(centre) + rng.uniform(-2, 2, size=3)
        _paint(pred, moved, radii * rng.uniform(0.9, 1.05), label)
    return pred, ref


CASES: Mapping[str, tuple[Callable[..., tuple[Any, Any]], dict[str, Sequence[int]], float]] = {
    "brats": (
        brats_pair,
        {"whole_tumor": (1, 2, 3), "tumor_core": (1, 3), "enhancing": (3,)},
        1.5,
    ),
    "organs": (organ_pair, {f"organ_{i:02d}": (i,) for i in range(1, 21)}, 3.0),
}


def _median(fn: Callable[[], object], times: list[float]) -> None:
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)


def run(name: str, shape: tuple[int, int, int], rounds: int, folder: Path) -> float:
    make, structures, target = CASES[name]
    pred, ref = make(shape, np.random.default_rng(7))
    files = {
        "model:m": folder / f"{name}_pred.nii.gz",
        "ruler:expert": folder / f"{name}_ref.nii.gz",
    }
    nib.save(nib.Nifti1Image(pred, AFFINE), files["model:m"])
    nib.save(nib.Nifti1Image(ref, AFFINE), files["ruler:expert"])
    task = CaseTask(
        case_id=name,
        files={k: str(v) for k, v in files.items()},
        read={k: {"max_voxels": 10**9} for k in files},
        pairs=[("model:m", "ruler:expert")],
        describe=["ruler:expert"],
        metrics=list(ALL_METRICS),
        settings={"hd95_method": "max_directed", "nsd_tolerance": 2.0},
        structures={k: tuple(v) for k, v in structures.items()},
    )
    maps = {k: io.load_labels(v, case_id=name) for k, v in files.items()}
    rows: dict[str, list[float]] = {"read": [], "load": [], "select": [], "case": []}
    for _ in range(rounds):
        _median(lambda: [np.asanyarray(nib.load(f).dataobj) for f in files.values()], rows["read"])
        _median(lambda: [io.load_labels(f, case_id=name) for f in files.values()], rows["load"])
        _median(lambda: io.select_structures(maps, structures, case_id=name), rows["select"])
        _median(lambda: evaluate_case(task), rows["case"])
    result = evaluate_case(task)
    assert not result.problems, result.problems
    med = {k: statistics.median(v) for k, v in rows.items()}
    ratio = med["case"] / med["read"]
    print(f"\n{name}: {shape}, {len(structures)} structures, {rounds} rounds (median)")
    for k, label in (
        ("read", "nibabel read of both files"),
        ("load", "load_labels of both files"),
        ("select", "select_structures (all structures)"),
        ("case", "evaluate_case end to end"),
    ):
        print(f"  {label:<40} {med[k] * 1000:8.1f} ms")
    verdict = "meets" if ratio <= target else "MISSES"
    print(f"  evaluate_case / read = {ratio:.2f} (target ≤ {target}: {verdict})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", default="512x512x160")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    args = parser.parse_args()
    shape = tuple(int(x) for x in args.shape.lower().split("x"))
    assert len(shape) == 3
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES if args.case == "all" else [args.case]:
            run(name, shape, args.rounds, Path(tmp))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
