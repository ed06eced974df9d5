"""HD95 + NSD + ASSD of one realistic pair: segfair vs MONAI, DeepMind surface-distance and medpy.

The pair is the prediction and the expert reference of the case of ``bench_case.py`` (synthetic,
512×512×160 at 0.7×0.7×1.5 mm, ``parikh`` preset, seed 3, ``volume_ml=45``: ≈80k and ≈105k lesion
voxels), read with segfair's ``load_mask`` and handed to every library as the same C-contiguous
boolean arrays (segfair is also timed on the Fortran-ordered arrays ``load_mask`` returns). Each
library computes HD95, NSD at 2 mm and ASSD the way its users would call it:

* segfair: one ``metrics.compute(pred, ref, spacing, ("hd95", "nsd", "assd"))``;
* MONAI: ``HausdorffDistanceMetric(percentile=95)``, ``SurfaceDiceMetric([2.0])`` and
  ``SurfaceDistanceMetric(symmetric=True)`` on ``(1, 1, X, Y, Z)`` tensors, with ``spacing``;
* surface-distance: ``compute_surface_distances`` once, then ``compute_robust_hausdorff(·, 95)``,
  ``compute_surface_dice_at_tolerance(·, 2.0)`` and ``compute_average_surface_distance``;
* medpy: ``hd95`` and ``assd`` (medpy has no NSD), which work on the whole volume.

A library that is not installed is skipped with a message. Install the peers into a virtual
environment by hand, never as segfair dependencies (torch first: a CPU build):

    pip install torch  # CPU build
    pip install monai surface-distance medpy
    python benchmarks/bench_peers.py [--rounds 7]

Values are compared under matching definitions: MONAI's HD95 (max of the directed 95th
percentiles) is segfair's default ``max_directed``; medpy's ``hd95`` pools both directions, as
segfair's ``hd95_method="pooled"``; MONAI's symmetric surface distance and medpy ≥ 0.5 ``assd`` are
segfair's ``assd`` (pooled mean); MONAI's surface Dice counts border voxels, as segfair's ``nsd``.
surface-distance weighs each surface element by its area (surfels between voxel corners, not
border voxels), so its three numbers differ by definition and are shown for reference only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io as _stdio
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from segfair import io, metrics
from segfair.synth import make_cohort

TOLERANCE_MM = 2.0


def _optional(name: str) -> ModuleType | None:
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(_stdio.StringIO()):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError as error:
        print(f"skipping {name.split('.')[0]}: not installed ({error})")
        return None


def _segfair(pred: Any, ref: Any, spacing: tuple[float, ...]) -> dict[str, float]:
    return metrics.compute(pred, ref, spacing, ("hd95", "nsd", "assd"))


def _monai_runner(
    pred: np.ndarray[Any, Any], ref: np.ndarray[Any, Any], spacing: tuple[float, ...]
) -> Callable[[], dict[str, float]] | None:
    mm = _optional("monai.metrics")
    torch = _optional("torch")
    if mm is None or torch is None:
        return None
    y_pred = torch.from_numpy(pred)[None, None]
    y = torch.from_numpy(ref)[None, None]
    hd = mm.HausdorffDistanceMetric(include_background=True, percentile=95)
    sdice = mm.SurfaceDiceMetric([TOLERANCE_MM], include_background=True)
    asd = mm.SurfaceDistanceMetric(include_background=True, symmetric=True)

    def run() -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {
                "hd95": float(hd(y_pred, y, spacing=spacing).item()),
                "nsd": float(sdice(y_pred, y, spacing=spacing).item()),
                "assd": float(asd(y_pred, y, spacing=spacing).item()),
            }

    return run


def _surface_distance_runner(
    pred: np.ndarray[Any, Any], ref: np.ndarray[Any, Any], spacing: tuple[float, ...]
) -> Callable[[], dict[str, float]] | None:
    sd = _optional("surface_distance")
    if sd is None:
        return None

    def run() -> dict[str, float]:
        d = sd.compute_surface_distances(ref, pred, spacing)
        gt_to_pred, pred_to_gt = sd.compute_average_surface_distance(d)
        n_gt, n_pred = float(d["surfel_areas_gt"].sum()), float(d["surfel_areas_pred"].sum())
        return {
            "hd95": float(sd.compute_robust_hausdorff(d, 95)),
            "nsd": float(sd.compute_surface_dice_at_tolerance(d, TOLERANCE_MM)),
            # area-weighted pooled mean of both directions, the closest to an ASSD it offers
            "assd": (gt_to_pred * n_gt + pred_to_gt * n_pred) / (n_gt + n_pred),
        }

    return run


def _medpy_runner(
    pred: np.ndarray[Any, Any], ref: np.ndarray[Any, Any], spacing: tuple[float, ...]
) -> Callable[[], dict[str, float]] | None:
    binary = _optional("medpy.metric.binary")
    if binary is None:
        return None

    def run() -> dict[str, float]:
        return {
            "hd95": float(binary.hd95(pred, ref, voxelspacing=spacing)),
            "nsd": float("nan"),  # not offered
            "assd": float(binary.assd(pred, ref, voxelspacing=spacing)),
        }

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of segfair and MONAI")
    parser.add_argument("--medpy-rounds", type=int, default=1, help="medpy takes ≈1 min a round")
    parser.add_argument("--shape", default="512x512x160")
    parser.add_argument("--volume-ml", type=float, default=45.0)
    args = parser.parse_args()
    shape = tuple(int(x) for x in args.shape.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        make_cohort(
            Path(tmp) / "c", n_cases=1, shape=shape, preset="parikh", seed=3, volume_ml=45.0
        )
        root = Path(tmp) / "c"
        pred_mask = io.load_mask(next(root.glob("predictions/trained_on_automated/*.nii.gz")))
        ref_mask = io.load_mask(next(root.glob("segmentations/expert/*.nii.gz")))
    spacing = tuple(float(s) for s in ref_mask.spacing)
    pred, ref = np.ascontiguousarray(pred_mask.array), np.ascontiguousarray(ref_mask.array)
    pooled = metrics.compute(
        pred, ref, spacing, ("hd95",), settings=metrics.MetricSettings(hd95_method="pooled")
    )["hd95"]

    runners: dict[str, tuple[Callable[[], dict[str, float]], int]] = {
        "segfair (C-ordered arrays)": (lambda: _segfair(pred, ref, spacing), args.rounds),
        "segfair (Fortran, as load_mask returns)": (
            lambda: _segfair(pred_mask.array, ref_mask.array, spacing),
            args.rounds,
        ),
    }
    for name, make, rounds in (
        ("MONAI", _monai_runner, args.rounds),
        ("surface-distance", _surface_distance_runner, args.rounds),
        ("medpy", _medpy_runner, args.medpy_rounds),
    ):
        run = make(pred, ref, spacing)
        if run is not None:
            runners[name] = (run, rounds)

    values = {name: run() for name, (run, _) in runners.items()}  # also warms up
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(max(r for _, r in runners.values())):
        for name, (run, rounds) in runners.items():
            if round_ < rounds:
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)

    ours = statistics.median(times["segfair (C-ordered arrays)"])
    print(
        f"pair {'×'.join(map(str, shape))} at {spacing} mm; lesion voxels pred "
        f"{int(pred.sum())}, ref {int(ref.sum())}; NSD tolerance {TOLERANCE_MM} mm; rounds: "
        + ", ".join(f"{n} {len(t)}" for n, t in times.items())
    )
    print()
    print("| library | median s (HD95 + NSD + ASSD) | × segfair | HD95 mm | NSD | ASSD mm |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t in times.items():
        med = statistics.median(t)
        v = values[name]
        print(
            f"| {name} | {med:.3f} | {med / ours:.1f} | {v['hd95']:.6f} | {v['nsd']:.6f} | "
            f"{v['assd']:.6f} |"
        )
    print(f"| segfair, hd95_method='pooled' (medpy's definition) | | | {pooled:.6f} | | |")
    print()
    ok = values["segfair (C-ordered arrays)"]
    checks = [("hd95 (max_directed)", "MONAI", "hd95", ok["hd95"])]
    checks += [("nsd (border voxels)", "MONAI", "nsd", ok["nsd"])]
    checks += [("assd (pooled mean)", "MONAI", "assd", ok["assd"])]
    checks += [("hd95 (pooled)", "medpy", "hd95", pooled), ("assd", "medpy", "assd", ok["assd"])]
    for label, peer, key, mine in checks:
        if peer in values:
            theirs = values[peer][key]
            print(
                f"{label}: segfair {mine:.9f}, {peer} {theirs:.9f}, "
                f"|difference| {abs(mine - theirs):.2e}"
            )


if __name__ == "__main__":
    main()
