"""``segfair init``: inspect a model repository and write its segfair configuration and test.

Detects the MAMA-MIA layout (``segmentations/<ruler>/{case_id}.nii.gz``,
``clinical_and_imaging_info.xlsx``), other metadata tables, prediction folders, and a column that
identifies the site of each case (MAMA-MIA's ``dataset``), written as ``cluster``.

Example
-------
>>> init_repository(Path("my-model-repo"))  # doctest: +SKIP
[PosixPath('my-model-repo/pyproject.toml'), PosixPath('my-model-repo/tests/test_fairness.py')]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segfair.errors import SegfairError

__all__ = ["Layout", "detect_layout", "init_repository"]

TABLE_SUFFIXES = (".xlsx", ".csv", ".tsv", ".parquet")
ID_COLUMNS = ("patient_id", "case_id", "subject_id", "id")
TRUSTED_NAMES = ("expert", "manual", "gold", "reference", "ground_truth", "gt")
CATEGORICAL = (
    "ethnicity",
    "race",
    "sex",
    "gender",
    "dataset",
    "site",
    "manufacturer",
    "scanner",
    "menopause",
    "field_strength",
)
REFUSE_OVERWRITE = "{path} already has {what}; pass --force to overwrite it"
BAD_FOLDER_NAME = (
    "the folder {path!r} holds masks but its name cannot name a ruler or a model (letters, "
    "digits, '_', '-' and '.' only, starting with a letter, digit or '_'): rename the folder, or "
    "write [tool.segfair] by hand"
)


@dataclass
class Layout:
    """What was found in a repository."""

    root: Path
    table: Path | None = None
    sheet: str | None = None
    case_id: str = "case_id"
    rulers: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    cluster: str | None = None


def _mask_template(folder: Path, root: Path) -> str | None:
    # every suffix segfair reads, in its order (".seg.nrrd" before ".nrrd")
    from segfair.io import SUPPORTED_SUFFIXES

    for suffix in SUPPORTED_SUFFIXES:
        if any(folder.glob(f"*{suffix}")):
            rel = folder.relative_to(root).as_posix()
            return f"{rel}/{{case_id}}{suffix}"
    return None


def _sources(parent: Path, root: Path) -> dict[str, str]:
    from segfair.cohort.config import valid_name

    found = {}
    if parent.is_dir():
        for sub in sorted(p for p in parent.iterdir() if p.is_dir()):
            template = _mask_template(sub, root)
            if template is None:
                continue
            # a folder name becomes a name in the configuration and in the test code: one from
            # a dataset someone else wrote must not carry quotes, '=' or code into them
            if not valid_name(sub.name):
                raise SegfairError(BAD_FOLDER_NAME.format(path=str(sub)))
            found[sub.name] = template
    return found


def detect_layout(root: Path) -> Layout:
    """Find the metadata table, the reference folders and the prediction folders."""
    layout = Layout(root=root)
    tables = [p for p in sorted(root.iterdir()) if p.is_file() and p.name.endswith(TABLE_SUFFIXES)]
    preferred = [p for p in tables if p.stem == "clinical_and_imaging_info"]
    layout.table = next(iter(preferred or tables), None)
    if layout.table is not None:
        from segfair.cohort import read_table

        sheet = "dataset_info" if layout.table.suffix == ".xlsx" else None
        try:
            frame = read_table(layout.table, sheet=sheet)
        except SegfairError:
            sheet = None
            frame = read_table(layout.table)
        layout.sheet = sheet
        layout.columns = [str(c) for c in frame.columns]
        ids = [c for c in ID_COLUMNS if c in layout.columns]
        layout.case_id = ids[0] if ids else layout.columns[0]
        layout.cluster = _site_column(frame, layout.case_id)
    for name in ("segmentations", "labels", "references", "ground_truth"):
        layout.rulers.update(_sources(root / name, root))
    for name in ("predictions", "preds", "outputs"):
        layout.models.update(_sources(root / name, root))
    return layout


def _site_column(frame: Any, case_id: str) -> str | None:
    """The most site-like column that groups the cases (2 to n − 1 distinct values)."""
    from segfair.cohort import site_columns

    for column in site_columns(c for c in frame.columns if str(c) != case_id):
        k = int(frame[column].nunique(dropna=True))
        if 2 <= k < len(frame):
            return str(column)
    return None


def _trusted(rulers: dict[str, str]) -> str:
    for name in TRUSTED_NAMES:
        if name in rulers:
            return name
    return next(iter(rulers))


def render_config(layout: Layout) -> str:
    """The ``[tool.segfair]`` section for a detected layout."""
    if layout.table is None:
        raise SegfairError(
            f"{layout.root}: no metadata table (CSV, XLSX, Parquet) found at the "
            "top of the repository; add one with a row per case and run init again"
        )
    if not layout.rulers:
        raise SegfairError(
            f"{layout.root}: no reference masks found under segmentations/, "
            "labels/ or references/ (one folder per label source)"
        )
    if not layout.models:
        raise SegfairError(
            f"{layout.root}: no predictions found under predictions/ (one folder "
            "per model, one mask per case)"
        )
    q = json.dumps
    lines = ["[tool.segfair]", f"cases = {q(layout.table.relative_to(layout.root).as_posix())}"]
    if layout.sheet:
        lines.append(f"sheet = {q(layout.sheet)}")
    lines += [
        f"case_id = {q(layout.case_id)}",
        f"trusted_ruler = {q(_trusted(layout.rulers))}",
        "seed = 0",
    ]
    if layout.cluster is not None:
        lines += [
            "# cases of one site resemble each other: the bootstrap resamples whole sites",
            f"cluster = {q(layout.cluster)}",
        ]
    lines += [
        "# the reports, from `pytest` and from `segfair audit` alike (CI uploads reports/)",
        'html = "reports/fairness.html"',
        'json = "reports/fairness.json"',
        'md = "reports/fairness.md"',
    ]
    lines += ["", "[tool.segfair.rulers]"]
    lines += [f"{_toml_key(name)} = {q(t)}" for name, t in layout.rulers.items()]
    lines += ["", "[tool.segfair.models]"]
    lines += [f"{_toml_key(name)} = {q(t)}" for name, t in layout.models.items()]
    if "age" in layout.columns:
        lines += [
            "",
            "[tool.segfair.attributes.age_group]",
            'column = "age"',
            "bins = [40, 55]",
            'labels = ["young", "middle", "older"]',
        ]
    for col in _attributes(layout):
        lines += ["", f"[tool.segfair.attributes.{_toml_key(col)}]", f"column = {q(col)}"]
    # the gates live here, where `pytest` (one test item each) and `segfair audit` both see them
    trusted = _trusted(layout.rulers)
    model = next(iter(layout.models))
    by = _by(layout)
    lines += [
        "",
        "# the Dice gap across groups, on the trusted labels, is below 0.05",
        "[[tool.segfair.gates]]",
        'kind = "gap"',
        'metric = "dice"',
        f"by = {q(by)}",
        f"model = {q(model)}",
        f"ruler = {q(trusted)}",
        "max = 0.05",
    ]
    for auto in (r for r in layout.rulers if r != trusted):
        lines += [
            "",
            f"# the {auto} labels hide at most a quarter of that gap",
            "[[tool.segfair.gates]]",
            'kind = "ruler_shrinkage"',
            'metric = "dice"',
            f"by = {q(by)}",
            f"model = {q(model)}",
            f"automated = {q(auto)}",
            "max = 0.25",
        ]
    return "\n".join(lines) + "\n"


def _by(layout: Layout) -> str:
    return "age_group" if "age" in layout.columns else next(iter(_attributes(layout)), "age_group")


def _toml_key(name: str) -> str:
    """A TOML key: bare when it may be (no '.', which would make a dotted key), else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _attributes(layout: Layout) -> list[str]:
    # not the cluster: each of its groups would lie in a single cluster, with no interval
    return [c for c in layout.columns if c.lower() in CATEGORICAL and c != layout.cluster]


def render_test(layout: Layout) -> str:
    """A starter ``tests/test_fairness.py``: the gates are in the configuration; this file shows
    how to add one that needs code (an example, not a second copy of a configured gate, which
    would be counted twice)."""
    model = next(iter(layout.models))
    by = _by(layout)
    q = json.dumps
    # names are written as string literals (JSON's are Python's too), never spliced in raw
    return f'''"""Fairness checks of this model.

The gates are declared in pyproject.toml ([[tool.segfair.gates]]): `pytest` runs each as a test
item, and `segfair audit` checks the same ones. Add a test here for a check that needs code, for
example a floor on every group's Dice:

    def test_every_group_keeps_a_dice_of_0_6(segfair_audit):
        segfair_audit.assert_min_group_metric("dice", by={q(by)}, model={q(model)}, min=0.6)
"""


def test_the_fairness_configuration_is_valid(segfair_config):
    assert segfair_config.gates, "declare gates under [[tool.segfair.gates]]"
'''


def init_repository(root: Path, *, force: bool = False) -> list[Path]:
    """Write ``[tool.segfair]`` into ``pyproject.toml`` and ``tests/test_fairness.py``.

    Refuses to overwrite an existing section or test file unless ``force``.
    """
    if not root.is_dir():
        raise SegfairError(f"{root}: no such folder")
    layout = detect_layout(root)
    section = render_config(layout)
    pyproject = root / "pyproject.toml"
    test = root / "tests" / "test_fairness.py"
    existing = pyproject.read_text() if pyproject.exists() else ""
    if "[tool.segfair" in existing and not force:
        raise SegfairError(REFUSE_OVERWRITE.format(path=pyproject, what="a [tool.segfair] table"))
    if test.exists() and not force:
        raise SegfairError(REFUSE_OVERWRITE.format(path=test, what="a fairness test"))
    if "[tool.segfair" in existing:
        existing = _strip_tool_segfair(existing)
    sep = (
        ""
        if not existing or existing.endswith("\n\n")
        else ("\n" if existing.endswith("\n") else "\n\n")
    )
    pyproject.write_text(existing + sep + section)
    test.parent.mkdir(parents=True, exist_ok=True)
    test.write_text(render_test(layout))
    return [pyproject, test]


def _strip_tool_segfair(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped.startswith(("[tool.segfair]", "[tool.segfair.", "[[tool.segfair."))
        if not skipping:
            out.append(line)
    return "".join(out)
