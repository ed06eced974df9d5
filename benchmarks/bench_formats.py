"""Reading one mask in each format: ``load_mask`` of the same mask as .nii.gz, .mha, .nrrd,
.seg.nrrd, DICOM-SEG (binary, every frame), PNG and TIFF, and the header alone (``read_geometry``).

Writes one mask (a ball of ≈100k voxels on a 512×512×160 grid, 0.7×0.7×1.5 mm; the PNG gets its
middle slice, 512×512) and reports the median over interleaved rounds, so that a busy machine
slows every row alike. Needs the extras ``itk``, ``dicom`` and ``images``; the DICOM-SEG is
written by the tests' pydicom helper (``tests/dicomseg_files.py``).

    python benchmarks/bench_formats.py [--shape 512x512x160] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segfair import io

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicomseg_files import write_seg

SPACING = (0.7, 0.7, 1.5)


def seg_nrrd(path: Path, mask: np.ndarray) -> None:
    """The mask as a one-segment, one-layer 3D Slicer segmentation (gzip), via SimpleITK."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(mask.astype(np.uint8).T))
    image.SetSpacing(SPACING)
    for key, value in (("ID", "s1"), ("Name", "tumour"), ("LabelValue", "1"), ("Layer", "0")):
        image.SetMetaData(f"Segment0_{key}", value)
    sitk.WriteImage(image, str(path), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", default="512x512x160")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split("x"))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [n / 2 for n in shape]
    radius = [20 / s for s in SPACING]  # a 40 mm ball
    mask = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius, strict=True)) <= 1
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    folder = Path(tempfile.mkdtemp())
    files = {}
    for suffix in (".nii.gz", ".mha", ".nrrd", ".tif"):
        files[suffix] = folder / f"m{suffix}"
        io.save_mask(files[suffix], mask, affine if suffix != ".tif" else None, spacing=SPACING)
    files[".seg.nrrd"] = folder / "m.seg.nrrd"
    seg_nrrd(files[".seg.nrrd"], mask)
    files[".dcm"] = write_seg(
        folder / "m.dcm", {1: mask}, spacing=SPACING, origin=(0.0, 0.0, 0.0), omit_empty=False
    )
    files[".png"] = folder / "m.png"
    io.save_mask(files[".png"], mask[:, :, shape[2] // 2], spacing=(0.5, 0.5))

    reference = io.load_mask(files[".nii.gz"])
    for suffix, path in files.items():
        got = io.load_mask(path)
        if suffix != ".png":
            assert np.array_equal(got.array, reference.array), suffix
            if suffix != ".tif":  # an image holds no orientation: diag(spacing)
                assert np.allclose(got.affine, reference.affine, atol=1e-6), suffix

    runs: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], object]) -> None:
        start = time.perf_counter()
        fn()
        runs.setdefault(name, []).append(time.perf_counter() - start)

    for _ in range(args.rounds):
        for suffix, path in files.items():
            timed(f"load_mask {suffix}", lambda p=path: io.load_mask(p))
            timed(f"read_geometry {suffix}", lambda p=path: io.read_geometry(p))
    nifti = statistics.median(runs["load_mask .nii.gz"])
    print(f"mask {shape}, {int(mask.sum()):,} voxels; median of {args.rounds} rounds")
    print(f"{'':24}{'ms':>10}{'× .nii.gz':>12}{'size KiB':>11}")
    for name, times in runs.items():
        t = statistics.median(times)
        size = files[name.split()[1]].stat().st_size // 1024
        ratio = f"{t / nifti:.2f}" if name.startswith("load") else ""
        print(f"{name:24}{t * 1e3:10.2f}{ratio:>12}{size:>11}")


if __name__ == "__main__":
    main()
