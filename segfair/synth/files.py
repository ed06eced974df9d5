"""The files of a synthetic cohort: the MAMA-MIA layout, one case's masks (run in worker
processes, by reference), the clinical table and the ``segfair.toml``."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from segfair.io import atomic_write_bytes, atomic_write_text, save_mask
from segfair.synth.effects import _World
from segfair.synth.models import _simulate
from segfair.synth.patients import _Patient

__all__ = ["COLUMNS", "CONFIG", "LAYOUT", "MANIFEST", "SHEET", "TABLE_CSV", "TABLE_XLSX"]

#: Directory names of the MAMA-MIA layout, by the role of the masks they hold.
LAYOUT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "expert": "segmentations/expert",
        "automated": "segmentations/automatic",
        "trained_on_expert": "predictions/trained_on_expert",
        "trained_on_automated": "predictions/trained_on_automated",
    }
)
TABLE_XLSX: Final = "clinical_and_imaging_info.xlsx"
TABLE_CSV: Final = "clinical_and_imaging_info.csv"
SHEET: Final = "dataset_info"
#: Columns of the clinical table (both files), in order.
COLUMNS: Final = (
    "patient_id",
    "dataset",
    "age",
    "ethnicity",
    "menopause",
    "manufacturer",
    "field_strength",
)
CONFIG: Final = "segfair.toml"
#: Provenance of a synthetic cohort; its presence marks a directory as an earlier synth output.
MANIFEST: Final = "segfair_synth.json"
_GENERATOR: Final = "segfair.synth.make_cohort"


def _affine(shape: Sequence[int], spacing: Sequence[float]) -> npt.NDArray[np.float64]:
    # Scanners store LPS; NIfTI is RAS: the first two axes are flipped, as real exports are.
    # The origin puts the volume's centre at the scanner's isocentre.
    diag = np.array([-spacing[0], -spacing[1], spacing[2]])
    affine = np.diag([*diag, 1.0])
    affine[:3, 3] = -diag * (np.array(shape) - 1) / 2
    return affine


@dataclass(frozen=True)
class _Task:
    seed: int
    index: int
    patient_id: str
    age: float
    world: _World
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    out_dir: str


def _run_task(task: _Task) -> None:
    masks = _simulate(task.seed, task.index, task.age, task.world, task.shape, task.spacing)
    affine = _affine(task.shape, task.spacing)
    # NIfTI stores voxels in Fortran order; an F-ordered array is written without a transposing
    # copy (3× faster at 512×512×160).
    full = np.zeros(task.shape, dtype=np.uint8, order="F")
    for role, folder in LAYOUT.items():
        full[masks.crop.slices] = getattr(masks, role)
        # segfair's own writer: uint8, qform = sform (code 1), mm units, atomic rename; nibabel's
        # gzip stream has no timestamp, so equal arrays give equal bytes.
        save_mask(Path(task.out_dir) / folder / f"{task.patient_id}.nii.gz", full, affine)


def _rows(patients: Sequence[_Patient]) -> list[list[Any]]:
    return [
        [p.patient_id, p.dataset, p.age, p.ethnicity, p.menopause, p.manufacturer, p.field_strength]
        for p in patients
    ]


_FIXED_TIME: Final = _dt.datetime(2000, 1, 1)


def _write_xlsx(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has one sheet
    ws.title = SHEET
    ws.append(list(COLUMNS))
    for row in rows:
        ws.append(list(row))
    # Fixed document and zip-entry timestamps: the same cohort gives the same bytes, so content
    # hashes (segfair's cache) do not change between runs.
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                # openpyxl stamps "modified" with the time of saving, whatever we set
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>2000-01-01T00:00:00Z\g<2>",
                    data,
                )
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
    atomic_write_bytes(path, out.getvalue())


def _write_csv(path: Path, rows: Sequence[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> None:
    fh = io.StringIO(newline="")
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    # atomically: a link planted at the name is replaced, never written through
    atomic_write_text(path, fh.getvalue())


def _sources(suffix: str) -> str:
    """The [rulers] and [models] tables of a synthetic cohort whose masks end in ``suffix``."""
    return f"""\
[rulers]
expert = "{LAYOUT["expert"]}/{{case_id}}{suffix}"
automated = "{LAYOUT["automated"]}/{{case_id}}{suffix}"

[models]
trained_on_expert = "{LAYOUT["trained_on_expert"]}/{{case_id}}{suffix}"
trained_on_automated = "{LAYOUT["trained_on_automated"]}/{{case_id}}{suffix}"
"""


def _config_text(seed: int) -> str:
    return f"""\
# A synthetic cohort written by segfair.synth.make_cohort; see segfair_synth.json for its recipe.
cases = "{TABLE_XLSX}"
sheet = "{SHEET}"
case_id = "patient_id"
trusted_ruler = "expert"
seed = {seed}

{_sources(".nii.gz")}
[attributes.age_group]
column = "age"
bins = [40, 55]
labels = ["young", "middle", "older"]

[attributes.ethnicity]
column = "ethnicity"

[attributes.site]
column = "dataset"

[[gates]]
kind = "gap"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
ruler = "expert"
max = 0.05

[[gates]]
kind = "ruler_shrinkage"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
automated = "automated"
max = 0.25

[[gates]]
kind = "amplification"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
baseline = "trained_on_expert"
max = 0.25
"""
