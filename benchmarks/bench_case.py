"""One realistic case: time to read its files vs time for every metric and the morphology.

Writes one synthetic 512×512×160 case (``parikh`` preset, seed 3, ``volume_ml=45``: lesions of
≈80k–120k voxels at 0.7×0.7×1.5 mm, like MAMA-MIA's larger tumours) and measures, interleaved
round by round so that a busy machine slows every row alike, the median over rounds of:

* reading the prediction and both references with nibabel (``np.asanyarray(nib.load(f).dataobj)``,
  the floor the target is stated against);
* segfair's ``load_mask`` of the same three files (read, checks, boolean foreground);
* ``content_hash`` of the three files (what a cache lookup costs);
* ``compute_many`` for 1 prediction × 2 references plus the automated-vs-trusted pair, every metric,
  on the loaded masks (Fortran-ordered, as NIfTI stores them);
* ``describe_mask`` for both references;
* ``evaluate_case`` end to end (read + geometry check + metrics + morphology), no cache;
* when the optional ``isal`` is installed, ``load_mask`` and ``evaluate_case`` again with the
  standard library's zlib, as on an installation without it.

Target (issue "Scale", benchmark 1): ``evaluate_case`` ≤ 1.3× the nibabel read.

    python benchmarks/bench_case.py [--shape 512x512x160] [--rounds 15] [--volume-ml 45]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from segfair import io, metrics, morphology
from segfair.cohort import load_cohort
from segfair.evaluate import build_tasks, evaluate_case
from segfair.io import inflate
from segfair.metrics.arrays import find_extent, union_box
from segfair.synth import make_cohort

KEYS = ("model:trained_on_automated", "ruler:expert", "ruler:automated")


def with_zlib(fn: Callable[[], object]) -> object:
    """Run ``fn`` with segfair.io inflating by the standard library's zlib (as without isal)."""
    saved = inflate._inflate_lib
    inflate._inflate_lib = zlib
    try:
        return fn()
    finally:
        inflate._inflate_lib = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", default="512x512x160")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--volume-ml", type=float, default=45.0, help="synth median lesion volume")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(int(x) for x in args.shape.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        config = make_cohort(
            Path(tmp) / "c",
            n_cases=1,
            shape=shape,
            preset="parikh",
            seed=args.seed,
            volume_ml=args.volume_ml,
        )
        task = build_tasks(load_cohort(config), cache_dir=None)[0]
        pairs = [(KEYS[0], KEYS[1]), (KEYS[0], KEYS[2]), (KEYS[2], KEYS[1])]
        task = replace(task, files={k: task.files[k] for k in KEYS}, pairs=pairs)
        files = [task.files[k] for k in KEYS]
        masks = {k: io.load_mask(f) for k, f in zip(KEYS, files, strict=True)}
        arrays = {k: m.array for k, m in masks.items()}
        spacing = masks["ruler:expert"].spacing
        sizes = {k: int(np.count_nonzero(a)) for k, a in arrays.items()}
        box = union_box((find_extent(a) for a in arrays.values()), len(shape))
        crop = tuple(s.stop - s.start for s in box)
        compressed = sum(Path(f).stat().st_size for f in files)

        steps: dict[str, Callable[[], object]] = {
            "read 3 files, nibabel (the floor)": lambda: [
                np.asanyarray(nib.load(f).dataobj) for f in files
            ],
            "read 3 files, segfair load_mask": lambda: [io.load_mask(f) for f in files],
            "content hash of 3 files (cache key)": lambda: [io.content_hash(f) for f in files],
            "10 metrics × 3 pairs (compute_many)": lambda: metrics.compute_many(
                arrays, pairs, spacing, metrics.ALL_METRICS
            ),
            "morphology of 2 references": lambda: [
                morphology.describe_mask(arrays[k], spacing) for k in KEYS[1:]
            ],
            "evaluate_case end to end": lambda: evaluate_case(task),
        }
        if inflate._inflate_lib is not zlib:  # isal installed: also time the stdlib-only path
            steps["read 3 files, load_mask, zlib only (no isal)"] = lambda: with_zlib(
                lambda: [io.load_mask(f) for f in files]
            )
            steps["evaluate_case end to end, zlib only (no isal)"] = lambda: with_zlib(
                lambda: evaluate_case(task)
            )
        for fn in steps.values():  # warm up: imports, page cache, lazy tables
            fn()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, fn in steps.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    floor_name = next(iter(steps))
    floor = times[floor_name]
    print(
        f"case {'×'.join(map(str, shape))} at {spacing} mm, lesion voxels {sizes}, "
        f"union crop {crop}, {compressed / 1e3:.0f} kB compressed; {args.rounds} interleaved "
        f"rounds; inflater {inflate._inflate_lib.__name__}"
    )
    print()
    print("| step | median s | × nibabel read (ratio of medians) | median of per-round ratios |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        per_round = statistics.median(v / f for v, f in zip(values, floor, strict=True))
        print(f"| {name} | {med:.3f} | {med / statistics.median(floor):.2f} | {per_round:.2f} |")


if __name__ == "__main__":
    main()
