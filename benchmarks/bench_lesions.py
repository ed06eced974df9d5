"""Lesion-wise scores of one multifocal case vs the time to read its two files.

Writes one BraTS-grid case (240×240×155, 1 mm isotropic, uint8 NIfTI .nii.gz): 30 reference
lesions (radii 2–12 mm, metastasis-like, inside a brain-sized ellipsoid), a prediction that finds
25 of them (shifted by up to 2 voxels, radius ×0.8–1.2), misses 5 and adds 3 false positives.
Measures, interleaved round by round so that a busy machine slows every row alike, the median of:

* reading the prediction and the reference with nibabel (``np.asanyarray(nib.load(f).dataobj)``,
  the floor the target is stated against);
* segfair's ``load_mask`` of the same two files;
* ``compute_many`` of every lesion-wise score (``LESION_METRICS``) for the pair, per matching
  rule, on the loaded masks.

Target (issue 17, "Speed"): lesion-wise metrics for a case with 30 lesions ≤ 2× the read.

    python benchmarks/bench_lesions.py [--rounds 9] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from segfair import io, metrics

SHAPE = (240, 240, 155)


def draw_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = np.zeros(SHAPE, bool)
    pred = np.zeros(SHAPE, bool)
    centre = np.array(SHAPE) / 2
    semi = np.array([70.0, 85.0, 60.0])  # a brain-sized ellipsoid, mm
    placed: list[tuple[np.ndarray, float]] = []

    def paint(mask: np.ndarray, c: np.ndarray, r: float) -> None:
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, SHAPE)
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d2 = sum((g - x) ** 2 for g, x in zip(grid, c, strict=True))
        mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] |= d2 <= r * r

    while len(placed) < 30:
        c = centre + rng.uniform(-1, 1, 3) * semi
        if np.sum(((c - centre) / semi) ** 2) > 1:
            continue
        r = float(rng.choice([2.0, 3.0, 4.0, 6.0, 9.0, 12.0], p=[0.25, 0.25, 0.2, 0.15, 0.1, 0.05]))
        if any(np.linalg.norm(c - c2) < r + r2 + 8 for c2, r2 in placed):
            continue
        placed.append((c, r))
        paint(ref, c, r)
    for i, (c, r) in enumerate(placed):
        if i % 6 == 5:
            continue  # missed
        paint(pred, c + rng.integers(-2, 3, 3), r * float(rng.uniform(0.8, 1.2)))
    for _ in range(3):
        paint(pred, centre + rng.uniform(-0.8, 0.8, 3) * semi, float(rng.uniform(2, 4)))
    return pred, ref


def median_times(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pred, ref = draw_case(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, arr in (("pred", pred), ("ref", ref)):
            files[name] = Path(tmp) / f"{name}.nii.gz"
            nib.save(nib.Nifti1Image(arr.astype(np.uint8), np.eye(4)), files[name])
        loaded = {k: io.load_mask(str(f)) for k, f in files.items()}
        arrays = {k: m.array for k, m in loaded.items()}
        spacing = loaded["ref"].spacing
        counts = {k: metrics.label_lesions(a)[1] for k, a in arrays.items()}

        def lesions(rule: str) -> Callable[[], object]:
            settings = metrics.LesionSettings(match=rule)  # type: ignore[arg-type]
            return lambda: metrics.compute_many(
                arrays,
                [("pred", "ref")],
                spacing,
                metrics.LESION_METRICS,
                lesion_settings=settings,
            )

        fns: dict[str, Callable[[], object]] = {
            "nibabel read (2 files)": lambda: [
                np.asanyarray(nib.load(f).dataobj) for f in files.values()
            ],
            "segfair load_mask (2 files)": lambda: [io.load_mask(str(f)) for f in files.values()],
            "lesion scores, brats rule": lesions("brats"),
            "lesion scores, iou rule": lesions("iou"),
        }
        result = median_times(fns, args.rounds)
        scores = fns["lesion scores, brats rule"]()
    read = result["nibabel read (2 files)"]
    print(f"case: {SHAPE}, components: reference {counts['ref']}, prediction {counts['pred']}")
    print(f"brats scores: {scores}")
    for name, t in result.items():
        print(f"{name:32s} {t * 1000:8.1f} ms   {t / read:5.2f}× read")
    worst = max(result["lesion scores, brats rule"], result["lesion scores, iou rule"])
    print(f"target: lesion scores ≤ 2× read: {'met' if worst <= 2 * read else 'NOT met'}")


if __name__ == "__main__":
    main()
