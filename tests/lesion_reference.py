"""Write tests/data/lesion_conformance.json: lesion-wise scores of a varied set of cases, computed
by the peers' own code, for tests/test_lesions.py to compare segfair with.

Not run by the test suite (the peers do not install next to segfair's numpy): run it by hand in
a separate environment holding panoptica (2.1.7: it pins numpy < 2.3) and a checkout of the
BraTS 2023 metrics code::

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install panoptica==2.1.7 nibabel
    git clone https://github.com/rachitsaluja/BraTS-2023-Metrics /tmp/brats23  # 43c9052
    /tmp/refvenv/bin/python tests/lesion_reference.py --panoptica-cases /tmp/unit_test_utils.py
    python3.11 -m venv /tmp/bratsvenv && /tmp/bratsvenv/bin/pip install numpy==1.26.4 \\
        pandas==1.5.3 scipy==1.11.4 nibabel==5.1.0 connected-components-3d==3.12.4
    /tmp/bratsvenv/bin/python tests/lesion_reference.py --brats /tmp/brats23

``--panoptica-cases`` is panoptica's own ``unit_tests/unit_test_utils.py`` (its hand-made 2-D
cases, ported here as data). Every case is stored as the flat indices of its voxels, so the test
needs neither peer nor this script's random draws.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).parent / "data" / "lesion_conformance.json"
BRATS_COMMIT = "43c905242b2eecf421d4ab2da7af8ece9777d322"
#: BraTS 2023 challenge names and their (dilation, lesion_volume_thresh) in metrics.py.
CHALLENGES = {"BraTS-GLI": (3, 50), "BraTS-MEN": (1, 50), "BraTS-MET": (1, 2)}


def blob(shape: tuple[int, ...], centre: Any, radius: float, spacing: Any = None) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    step = np.ones(len(shape)) if spacing is None else np.asarray(spacing, float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, step, strict=True))
    return d2 <= radius**2


def random_case(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Reference lesions of varied sizes; the prediction finds some (shifted, grown, shrunk,
    split), misses others, and adds false positives."""
    ref = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 6))):
        centre = rng.uniform(3, np.asarray(shape) - 3)
        radius = float(rng.uniform(1.0, 5.0))
        ref |= blob(shape, centre, radius)
        fate = rng.random()
        if fate < 0.6:
            shift = rng.integers(-2, 3, size=len(shape))
            pred |= blob(shape, centre + shift, radius * float(rng.uniform(0.6, 1.4)))
        elif fate < 0.75:  # split: two halves with a gap
            part = blob(shape, centre, radius)
            axis = int(rng.integers(len(shape)))
            cut = np.indices(shape)[axis]
            c = round(centre[axis])
            pred |= part & ((cut < c - 1) | (cut > c))
    for _ in range(int(rng.integers(0, 3))):
        pred |= blob(shape, rng.uniform(2, np.asarray(shape) - 2), float(rng.uniform(0.8, 3.0)))
    return pred, ref


def hand_cases() -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]]:
    s = (32, 32, 32)
    a, b = blob(s, (8, 8, 8), 4), blob(s, (22, 22, 22), 3)
    cases = [
        ("two lesions, one missed", a.copy(), a | b, (1.0, 1.0, 1.0)),
        ("perfect", a | b, a | b, (1.0, 1.0, 1.0)),
        ("false positive only", a.copy(), np.zeros(s, bool), (1.0, 1.0, 1.0)),
        ("both empty", np.zeros(s, bool), np.zeros(s, bool), (1.0, 1.0, 1.0)),
        ("prediction empty", np.zeros(s, bool), a | b, (1.0, 1.0, 1.0)),
    ]
    split = a.copy()
    split[8, :, :] = False  # one reference lesion, two predicted halves
    cases.append(("split prediction", split, a, (1.0, 1.0, 1.0)))
    near = blob(s, (8, 8, 16), 3) | blob(s, (8, 8, 24), 3)  # 2 voxels apart
    cases.append(("merged prediction", blob(s, (8, 8, 20), 6), near, (1.0, 1.0, 1.0)))
    cases.append(("reference lesions merged by dilation", near.copy(), near, (1.0, 1.0, 1.0)))
    tiny = np.zeros(s, bool)
    tiny[3, 3, 3] = tiny[28, 28, 28] = True
    cases.append(("tiny reference lesions", a.copy(), a | tiny, (1.0, 1.0, 1.0)))
    cases.append(("anisotropic spacing", a.copy(), a | b, (1.0, 1.0, 2.5)))
    diag = np.zeros(s, bool)
    diag[10, 10, 10] = diag[11, 11, 11] = True  # one lesion at 26, two at 6
    cases.append(("diagonal neighbours", diag | a, diag | a, (1.0, 1.0, 1.0)))
    return cases


def brats_scores(
    metrics_py: Path, pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]
) -> dict[str, dict[str, float]]:
    import nibabel as nib
    import pandas as pd

    # metrics.py pins pandas 1.3.4 (no wheel for Python 3.11); pandas 1.5 refuses
    # DataFrame.replace(np.inf, 374) on its column of arrays (predicted_lesion_numbers), which
    # holds no inf: replace in the other columns only, as pandas 1.3 did
    if not getattr(pd.DataFrame.replace, "_shim", False):
        original = pd.DataFrame.replace

        def replace(self: Any, to_replace: Any = None, value: Any = None, **kw: Any) -> Any:
            arrays = [
                c for c in self.columns if self[c].map(lambda v: isinstance(v, np.ndarray)).any()
            ]
            if not arrays:
                return original(self, to_replace, value, **kw)
            out = self.copy()
            rest = [c for c in self.columns if c not in arrays]
            out[rest] = original(self[rest], to_replace, value)
            return out

        replace._shim = True  # type: ignore[attr-defined]
        pd.DataFrame.replace = replace  # type: ignore[method-assign]
    sys.path.insert(0, str(metrics_py.parent))
    spec = importlib.util.spec_from_file_location("brats23_metrics", metrics_py)
    assert spec
    assert spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        affine = np.diag([*spacing, 1.0])
        # label 3 makes WT = TC = ET = the mask; the ET row is read
        for name, arr in (("pred", pred), ("ref", ref)):
            nib.save(nib.Nifti1Image(arr.astype(np.uint8) * 3, affine), f"{tmp}/{name}.nii.gz")
        for challenge in CHALLENGES:
            df = mod.get_LesionWiseResults(f"{tmp}/pred.nii.gz", f"{tmp}/ref.nii.gz", challenge)
            row = df[df["Labels"] == "ET"].iloc[0]
            out[challenge] = {
                "lesion_dice": float(row["LesionWise_Score_Dice"]),
                "lesion_hd95": float(row["LesionWise_Score_HD95"]),
                "tp": int(row["Num_TP"]),
                "fp": int(row["Num_FP"]),
                "fn": int(row["Num_FN"]),
            }
    return out


def panoptica_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict:
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )
    from panoptica.metrics import Metric
    from panoptica.utils.edge_case_handling import (
        EdgeCaseHandler,
        EdgeCaseResult,
        MetricZeroTPEdgeCaseHandling,
    )

    # panoptica's defaults, plus HD95 (NaN without a matched pair: the test reads it only then)
    handling = {
        m: MetricZeroTPEdgeCaseHandling(
            no_instances_result=EdgeCaseResult.NAN, default_result=EdgeCaseResult.ZERO
        )
        for m in (Metric.DSC, Metric.IOU)
    }
    handling[Metric.HD95] = MetricZeroTPEdgeCaseHandling(default_result=EdgeCaseResult.NAN)
    evaluator = Panoptica_Evaluator(
        edge_case_handler=EdgeCaseHandler(listmetric_zeroTP_handling=handling),
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=0.5),
        instance_metrics=[Metric.DSC, Metric.IOU, Metric.HD95],
    )
    r = evaluator.evaluate(pred.astype(np.uint8), ref.astype(np.uint8), voxelspacing=spacing)[
        "ungrouped"
    ]

    def num(x: Any) -> float | None:
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

    return {
        "tp": int(r.tp),
        "fp": int(r.fp),
        "fn": int(r.fn),
        "rq": num(r.rq),
        "sq_dsc": num(r.sq_dsc),
        "sq_hd95": num(r.sq_hd95),
        "rec": num(r.rec) if r.tp + r.fn else None,
    }


def coords(arr: np.ndarray) -> list[int]:
    """The voxels of a mask as flat indices in C order."""
    return np.flatnonzero(arr).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brats", type=Path, help="BraTS-2023-Metrics checkout: add its scores")
    parser.add_argument("--panoptica-cases", type=Path, help="write the cases and panoptica's")
    args = parser.parse_args()
    if args.brats:
        add_brats(args.brats)
    else:
        write_panoptica(args.panoptica_cases)


def add_brats(checkout: Path) -> None:
    """The BraTS 2023 scores of the 3-D cases already written (their code needs numpy 1 and
    pandas 1: DataFrame.append, np.Inf, DataFrame.replace on a column of arrays)."""
    doc = json.loads(OUT.read_text())
    for record in doc["cases"]:
        if len(record["shape"]) != 3:
            continue
        arrays = []
        for key in ("pred", "ref"):
            arr = np.zeros(record["shape"], bool)
            arr.flat[record[key]] = True
            arrays.append(arr)
        record["brats"] = brats_scores(checkout / "metrics.py", *arrays, tuple(record["spacing"]))
    doc["brats"] = (
        f"rachitsaluja/BraTS-2023-Metrics metrics.py at {BRATS_COMMIT} (numpy 1.26, pandas 1.5, "
        "cc3d 3.12), get_LesionWiseResults, ET row of a label-3 mask; (dilation, thresh) per "
        "challenge: " + json.dumps(CHALLENGES)
    )
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"added BraTS 2023 scores to {OUT}")


def write_panoptica(panoptica_cases: Path) -> None:
    from importlib.metadata import version

    cases: list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]] = hand_cases()
    rng = np.random.default_rng(17)
    for i in range(24):
        cases.append((f"random 3-D {i}", *random_case(rng, (28, 28, 28)), (1.0, 1.0, 1.0)))
    for i in range(12):
        cases.append((f"random 2-D {i}", *random_case(rng, (40, 40)), (1.0, 1.0)))
    spec = importlib.util.spec_from_file_location("pano_cases", panoptica_cases)
    assert spec
    assert spec.loader
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    for name in sorted(n for n in dir(utils) if n.startswith("case_")):
        # each returns (prediction_arr, reference_arr), as its own variable names say
        pred_arr, ref_arr = getattr(utils, name)()
        cases.append(
            (f"panoptica {name}", np.asarray(pred_arr) > 0, np.asarray(ref_arr) > 0, (1.0, 1.0))
        )

    records = []
    for name, pred, ref, spacing in cases:
        record: dict[str, Any] = {
            "name": name,
            "shape": list(pred.shape),
            "spacing": list(spacing),
            "pred": coords(pred),
            "ref": coords(ref),
            # panoptica labels 3-D masks with cc3d (26) and 2-D ones with scipy (4)
            "panoptica": panoptica_scores(pred, ref, spacing),
        }
        records.append(record)
    doc = {
        "about": "lesion-wise scores by the peers' own code; written by tests/lesion_reference.py",
        "panoptica": f"panoptica {version('panoptica')}: "
        "SEMANTIC input, ConnectedComponentsInstanceApproximator (cc3d 26 in 3-D, scipy 4 in "
        "2-D), NaiveThresholdMatching(IOU, 0.5, >=), instance metrics DSC, IOU, HD95",
        "cases": records,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {len(records)} cases to {OUT}")


if __name__ == "__main__":
    main()
