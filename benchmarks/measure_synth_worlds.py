"""The effects of the brats, multifocal and dermoscopy presets, measured from the written files.

For each seed, writes one cohort of each preset and reports, per model and for the automated
labels (each scored against the expert files), the numbers docs/synthetic.md states:

- ``brats``: the enhancing-tumour and whole-tumour Dice gaps (50 and over − under 50);
- ``multifocal``: the small-lesion detection gap (share of the 50–500 mm³ expert lesions that a
  mask overlaps, pooled per group) and the case Dice gap;
- ``dermoscopy``: the Dice gap I-II − V-VI.

Files are read back with nibabel and Pillow and scored with ``segfair.metrics.dice``; lesions are
``scipy.ndimage.label`` components (26-connected)::

    python benchmarks/measure_synth_worlds.py --seeds 0 1 2 3 4 5
    python benchmarks/measure_synth_worlds.py --seeds 0 --n-cases 200 --default-shapes
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from segfair.metrics import dice
from segfair.synth import LAYOUT, WORLD_TABLE, make_cohort

ROLES = ("trained_on_expert", "trained_on_automated", "automated")
SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "brats": (40, (48, 48, 40)),
    "multifocal": (40, (48, 48, 32)),
    "dermoscopy": (60, (64, 64)),
}


def _read(root: Path, role: str, case_id: str) -> Any:
    png = root / LAYOUT[role] / f"{case_id}.png"
    if png.is_file():
        with Image.open(png) as image:
            return np.asarray(image)
    return np.asarray(nib.load(root / LAYOUT[role] / f"{case_id}.nii.gz").dataobj)


def _table(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / WORLD_TABLE)
    table["group"] = np.where(table["age"] < 50, "younger", "older")
    return table


def brats(root: Path, role: str) -> dict[str, float]:
    table = _table(root)
    out = {}
    for name, labels in (("enhancing", [3]), ("whole_tumor", [1, 2, 3])):
        table[name] = [
            dice(np.isin(_read(root, role, c), labels), np.isin(_read(root, "expert", c), labels))
            for c in table["case_id"]
        ]
        means = table.groupby("group")[name].mean()
        out[f"{name} gap"] = means["older"] - means["younger"]
    return out


def multifocal(root: Path, role: str, voxel_mm3: float) -> dict[str, float]:
    table = _table(root)
    rows = []
    for case_id in table["case_id"]:
        truth = _read(root, "expert", case_id) > 0
        pred = _read(root, role, case_id) > 0
        labels, n = ndimage.label(truth, structure=np.ones((3, 3, 3)))
        volumes = np.bincount(labels.ravel())[1:] * voxel_mm3
        small = [k + 1 for k in range(n) if 50 < volumes[k] <= 500]
        rows.append(
            (dice(pred, truth), len(small), sum(bool((pred & (labels == k)).any()) for k in small))
        )
    table[["dice", "small", "found"]] = rows
    sums = table.groupby("group")[["small", "found"]].sum()
    rate = sums["found"] / sums["small"]
    means = table.groupby("group")["dice"].mean()
    return {
        "detection gap": rate["older"] - rate["younger"],
        "dice gap": means["older"] - means["younger"],
    }


def dermoscopy(root: Path, role: str) -> dict[str, float]:
    table = pd.read_csv(root / WORLD_TABLE)
    table["dice"] = [
        dice(_read(root, role, c) > 0, _read(root, "expert", c) > 0) for c in table["case_id"]
    ]
    means = table.groupby("skin_tone")["dice"].mean()
    return {"dice gap I-II − V-VI": means["I-II"] - means["V-VI"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--n-cases", type=int, default=None, help="default: 40 / 40 / 60")
    parser.add_argument("--default-shapes", action="store_true", help="the presets' default shapes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for preset, (n, shape) in SIZES.items():
                root = Path(tmp) / f"{preset}-{seed}"
                start = time.perf_counter()
                make_cohort(
                    root,
                    n_cases=args.n_cases or n,
                    shape=None if args.default_shapes else shape,
                    preset=preset,
                    seed=seed,
                )
                took = time.perf_counter() - start
                for role in ROLES:
                    if preset == "brats":
                        values = brats(root, role)
                    elif preset == "multifocal":
                        values = multifocal(root, role, voxel_mm3=1.5**3)
                    else:
                        values = dermoscopy(root, role)
                    text = ", ".join(f"{k} {v:.3f}" for k, v in values.items())
                    print(f"seed {seed} {preset:10s} ({took:4.1f} s) {role:22s} {text}")


if __name__ == "__main__":
    main()
