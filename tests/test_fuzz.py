"""Fuzzing: configuration, gates, metadata tables, baselines, escaping and metrics.

Each property is a plain ``check_*`` function over a strategy's example, wrapped here in a
bounded Hypothesis test (``SUITE_EXAMPLES``) and run with many more examples by
``benchmarks/fuzz_long.py``. The contract under test: whatever the input, segfair raises nothing
but its own documented errors (:class:`segfair.errors.SegfairError` subclasses; for the parse
functions :class:`~segfair.errors.ConfigError`), and what it returns has the stated properties.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segfair.cohort import load_cohort
from segfair.config import SegfairConfig, parse_config
from segfair.errors import CohortError, ConfigError, SegfairError
from segfair.gates import _KIND_MODELS, GATE_KINDS, baseline_gap, parse_gates
from segfair.metrics import ALL_METRICS, compute
from segfair.report import md_escape
from segfair.report.github import _escape_data, _escape_property

#: Examples per property in the test suite; benchmarks/fuzz_long.py runs many more.
SUITE_EXAMPLES = 60

# ---- strategies -------------------------------------------------------------------------------

#: Keys that are valid somewhere, so that examples reach past "unknown key" into the values.
CONFIG_KEYS = sorted(
    {f.alias or name for name, f in SegfairConfig.model_fields.items() if not f.exclude}
)
SOURCE_KEYS = ["path", "labels", "threshold", "partial"]
ATTRIBUTE_KEYS = ["column", "bins", "labels", "order", "missing_label", "valid_range"]
GATE_KEYS = sorted({k for m in _KIND_MODELS.values() for k in m.model_fields})
NAMES = ["expert", "automated", "candidate", "age_group", "dice", "hd95", "age", "x", ""]

floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, 0.5, 1.0, -1.0, 1.5, 100.0, 1e300, -0.0]
)
text = st.text(max_size=12) | st.sampled_from(
    [*NAMES, "{case_id}", "labels/{case_id}.nii.gz", "{case_id}{case_id}", "../{case_id}", "nan"]
)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | floats | text
# TOML-ish values: what tomllib can give (no None there, but a Python caller may pass one)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | text, values, max_size=len(keys))


sources = st.dictionaries(
    st.sampled_from(NAMES) | text,
    st.sampled_from(["labels/{case_id}.nii.gz", "p/{case_id}.npy", "no-placeholder"])
    | _table(SOURCE_KEYS)
    | values,
    max_size=3,
)
attributes = st.dictionaries(
    st.sampled_from(NAMES) | text, _table(ATTRIBUTE_KEYS) | values, max_size=3
)
config_dicts = st.fixed_dictionaries(
    {},
    optional={
        "cases": st.sampled_from(["cases.csv", "meta.xlsx"]) | values,
        "rulers": sources | values,
        "models": sources | values,
        "attributes": attributes,
        "gates": st.lists(_table(GATE_KEYS) | values, max_size=2) | values,
    },
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(CONFIG_KEYS) | text, values).map(
        lambda extra: {**extra, **base}
    )
)

gate_values = (
    floats
    | st.sampled_from([*NAMES, "bound", "estimate", "gap", "ratio", "to_overall"])
    | st.lists(st.sampled_from(NAMES), max_size=3)
    | values
)
gate_dicts = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(GATE_KINDS) | text,
        "metric": st.sampled_from(["dice", "hd95", "volume_error", "nsd"]) | text,
        "by": st.sampled_from(NAMES) | st.lists(st.sampled_from(NAMES), max_size=3) | values,
        "model": st.sampled_from(NAMES) | values,
        "max": floats | values,
        "min": floats | values,
    },
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(GATE_KEYS) | text, gate_values, max_size=6).map(
        lambda extra: {**extra, **base}
    )
)

#: Cells of a metadata table, the awkward ones on purpose.
cells = st.text(max_size=10) | st.sampled_from(
    [
        "",
        " ",
        "nan",
        "NaN",
        "NA",
        "None",
        "-5",
        "200",
        "40",
        "40.0",
        "1e400",
        "inf",
        "-inf",
        "0x1F",
        "forty",
        "1,5",
        '=HYPERLINK("http://evil.example","x")',
        "<script>alert(1)</script>",
        "a|b",
        "line\nbreak",
        '"quoted"',
        "../etc/passwd",
        "a/b",
        "CASE 1",
        ".hidden",
        "101",
        "101.0",
        "é",
        "\x00",
    ]
)
tables = st.lists(
    st.fixed_dictionaries({"case_id": cells, "age": cells, "ethnicity": cells}), max_size=8
)
GAP_ID = "gap[dice,age_group,m,expert]"
baseline_entries = st.fixed_dictionaries(
    {"id": st.just(GAP_ID) | text},
    optional={"gap": values | st.dictionaries(st.just("estimate"), values), "estimate": values},
)
baselines = values | st.dictionaries(
    st.sampled_from(["gaps", "gates"]) | text,
    st.lists(baseline_entries | values, max_size=3) | values,
    max_size=3,
)
raw_csv = st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))


# ---- properties -------------------------------------------------------------------------------


def check_parse_config(data: dict[str, Any]) -> None:
    """Any mapping either validates into a config or raises ConfigError naming a key."""
    try:
        cfg = parse_config(data, root=".")
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error).strip()
        return
    assert isinstance(cfg, SegfairConfig)
    assert cfg.trusted_ruler in cfg.rulers
    assert all(s.path.count("{case_id}") == 1 for s in [*cfg.rulers.values(), *cfg.models.values()])
    for number in (cfg.cap, cfg.confidence, cfg.nsd_tolerance, cfg.geometry_tolerance):
        assert math.isfinite(number)


def check_parse_gates(items: list[dict[str, Any]]) -> None:
    """Any list of gate tables either validates or raises ConfigError; valid gates have ids."""
    try:
        gates = parse_gates(items, trusted_ruler="expert")
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error).startswith("invalid gate")
        return
    assert len(gates) == len(items)
    for g in gates:
        assert g.kind in GATE_KINDS
        assert g.id.startswith(f"{g.kind}[")
        for name in ("max", "min", "max_gap", "threshold", "negligible", "max_increase"):
            value = getattr(g, name, None)
            assert value is None or math.isfinite(value), (name, value)


def _write_config(root: Path, extra: Mapping[str, Any] | None = None) -> SegfairConfig:
    # every mask is optional, so that the table alone is under test
    return parse_config(
        {
            "cases": "cases.csv",
            "rulers": {"expert": {"path": "m/{case_id}.nii.gz", "partial": True}},
            "models": {"m": "p/{case_id}.nii.gz"},
            "missing_predictions": "exclude",
            "attributes": {
                "age_group": {"column": "age", "bins": [40, 55]},
                "ethnicity": {"column": "ethnicity", "order": ["white", "black"]},
            },
            **(extra or {}),
        },
        root=root,
    )


def check_load_cohort_table(rows: list[dict[str, str]]) -> None:
    """A metadata table loads, or fails with CohortError/ConfigError; nothing is dropped."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["case_id", "age", "ethnicity"])
        writer.writeheader()
        writer.writerows(rows)
        (root / "cases.csv").write_text(buf.getvalue(), encoding="utf-8")
        try:
            cohort = load_cohort(_write_config(root), check_geometry=False)
        except (CohortError, ConfigError) as exc:
            error: SegfairError | None = exc
        else:
            error = None
        if error is not None:
            assert str(error).strip()
            return
        assert len(cohort) >= 1
        assert cohort.metadata.index.is_unique
        # every case is in exactly one group of every attribute: missing values are 'unknown'
        assert not cohort.groups.isna().any().any()
        assert list(cohort.groups.index) == list(cohort.metadata.index)
        assert len(cohort.exclusions) == 2 * len(cohort)  # no mask exists: all counted


def check_load_cohort_raw(text_: str) -> None:
    """Arbitrary bytes as the metadata file: a cohort or a segfair error, never a crash."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cases.csv").write_text(text_, encoding="utf-8", errors="surrogateescape")
        with contextlib.suppress(SegfairError):
            load_cohort(_write_config(root), check_geometry=False)


def check_baseline(doc: Any) -> None:
    """A baseline report of any shape gives a number, None, or a ConfigError."""
    try:
        value = baseline_gap(doc, GAP_ID)
    except ConfigError:
        return
    assert value is None or isinstance(value, float)


def check_escaping(value: str) -> None:
    """Data never breaks out of a Markdown cell or a workflow command."""
    md = md_escape(value)
    assert "\n" not in md
    assert "\r" not in md
    ours = md.replace("<br>", "")  # the line breaks we write
    assert "<" not in ours
    assert ">" not in ours
    assert "](" not in md.replace("]\\(", "")
    assert "@" not in md.replace("@&#8203;", "")  # no @-mention
    # every | is escaped: an odd number of backslashes before it
    for i, ch in enumerate(md):
        if ch == "|":
            run = len(md[:i]) - len(md[:i].rstrip("\\"))
            assert run % 2 == 1
    data = _escape_data(value)
    assert "\n" not in data
    assert "\r" not in data
    prop = _escape_property(value)
    for ch in ":,\n\r":
        assert ch not in prop


MASK_SHAPES = st.sampled_from([(1, 1), (5, 7), (3, 4, 5), (6, 6, 6), (1, 8, 2)])
spacings = st.floats(0.05, 20.0, allow_nan=False)


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    shape = draw(MASK_SHAPES)
    pred = draw(hnp.arrays(np.bool_, shape))
    ref = draw(st.just(pred.copy()) | hnp.arrays(np.bool_, shape))
    spacing = tuple(draw(spacings) for _ in shape)
    return pred, ref, spacing


def check_metrics(example: tuple[np.ndarray, np.ndarray, tuple[float, ...]]) -> None:
    """The definitions' properties hold on any pair of masks and any spacing."""
    pred, ref, spacing = example
    m = compute(pred, ref, spacing)
    r = compute(ref, pred, spacing)
    assert set(m) == set(ALL_METRICS)
    for name in ("dice", "iou", "precision", "nsd"):
        assert 0.0 <= m[name] <= 1.0, (name, m[name])
    if not math.isnan(m["sensitivity"]):
        assert 0.0 <= m["sensitivity"] <= 1.0
    assert m["dice"] == pytest.approx(2 * m["iou"] / (1 + m["iou"]))
    for name in ("dice", "iou", "hausdorff", "hd95", "assd", "masd", "nsd"):
        assert m[name] == pytest.approx(r[name]), name  # symmetric
    assert m["precision"] == pytest.approx(r["sensitivity"]) or not ref.any() or not pred.any()
    for name in ("hausdorff", "hd95", "assd", "masd"):
        assert m[name] >= 0, name  # never NaN either
    if pred.any() and ref.any():
        assert math.isfinite(m["hausdorff"])
        assert m["hd95"] <= m["hausdorff"] + 1e-9
        assert m["assd"] <= m["hausdorff"] + 1e-9
        assert m["masd"] <= m["hausdorff"] + 1e-9
    if np.array_equal(pred, ref):
        assert (m["dice"], m["hausdorff"], m["nsd"]) == (1.0, 0.0, 1.0)
    elif pred.any() != ref.any():  # one empty: MetricsReloaded's conventions
        assert (m["dice"], m["hausdorff"], m["hd95"]) == (0.0, math.inf, math.inf)
    if ref.any():
        assert m["volume_error"] == pytest.approx((pred.sum() - ref.sum()) / ref.sum())


# ---- the CLI as a whole ---------------------------------------------------------------------

#: Mutations of one mask's NIfTI header: (byte offset, struct format, values).
_HEADER_FIELDS = {
    "dim": (40, "<8h"),
    "datatype": (70, "<h"),
    "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"),
    "sform_code": (254, "<h"),
    "srow_x": (280, "<4f"),
}
_header_values = st.one_of(
    st.integers(-(2**15), 2**15 - 1),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
)


@st.composite
def cli_runs(draw: st.DrawFn) -> dict[str, Any]:
    """A small repository with hostile configuration values, table cells and mask headers."""
    # half the runs keep a valid configuration, so that hostile tables and headers reach the
    # evaluation; the others get hostile values for settings and gates
    hostile = draw(st.booleans())
    keys = st.sampled_from(
        [
            "n_boot",
            "seed",
            "workers",
            "cap",
            "confidence",
            "min_group_size",
            "cluster",
            "metrics",
            "on_inconclusive",
            "holm",
            "cache_verify",
            "nsd_tolerance",
        ]
    )
    overrides = (
        draw(st.dictionaries(keys, scalars | st.lists(scalars, max_size=3), max_size=3))
        if hostile
        else {}
    )
    valid_gate = {"kind": "gap", "metric": "dice", "by": "age_group", "model": "candidate"}
    gates = draw(st.lists(gate_dicts, max_size=2)) if hostile else [{**valid_gate, "max": 0.1}]
    edits = draw(st.just({}) | st.dictionaries(st.integers(0, 5), cells | st.none(), max_size=2))
    # most runs keep their masks whole, so that the rest reaches the evaluation
    field_ = draw(st.none() | st.none() | st.none() | st.sampled_from(sorted(_HEADER_FIELDS)))
    header = None
    if field_ is not None:
        fmt = _HEADER_FIELDS[field_][1]
        count = len(struct.unpack(fmt, bytes(struct.calcsize(fmt))))
        header = (field_, draw(st.lists(_header_values, min_size=count, max_size=count)))
    truncate = draw(st.none() | st.none() | st.none() | st.integers(0, 400))
    return {
        "overrides": overrides,
        "gates": gates,
        "cells": edits,
        "header": header,
        "truncate": truncate,
    }


def check_cli_audit(run: dict[str, Any]) -> None:
    """`segfair audit` on anything: exit 0, 1 or 2, a message and never a traceback, and done
    within a bound."""
    import signal

    from conftest import make_repo

    from segfair.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "r", n_cases=6, shape=(8, 8, 6))
        repo.config.update({"n_boot": 100, "min_group_size": 2})
        repo.config["gates"] = run["gates"]
        try:
            repo.write_config(**run["overrides"])
        except (TypeError, ValueError):
            return  # a value TOML cannot hold (e.g. None) cannot reach segfair from a file
        table = (repo.root / "cases.csv").read_text().splitlines()
        for row, value in run["cells"].items():
            if value is not None and row + 1 < len(table):
                cells_ = table[row + 1].split(",")
                cells_[1] = '"' + value.replace('"', '""') + '"'
                table[row + 1] = ",".join(cells_)
        (repo.root / "cases.csv").write_text("\n".join(table) + "\n")
        mask = repo.mask_path("model", "candidate", repo.case_ids[0])
        if run["header"] is not None or run["truncate"] is not None:
            import gzip

            raw = bytearray(gzip.decompress(mask.read_bytes()))
            if run["header"] is not None:
                field_, values = run["header"]
                offset, fmt = _HEADER_FIELDS[field_]
                with contextlib.suppress(struct.error, OverflowError):
                    struct.pack_into(fmt, raw, offset, *values)
            if run["truncate"] is not None:
                raw = raw[: run["truncate"]]
            mask.write_bytes(gzip.compress(bytes(raw)))
        err = io.StringIO()

        def too_long(*_: Any) -> None:
            raise TimeoutError("segfair audit ran past 120 s on a tiny repository")

        previous = signal.signal(signal.SIGALRM, too_long)
        signal.alarm(120)
        try:
            with contextlib.redirect_stderr(err):
                code = main(
                    ["audit", "--config", str(repo.config_path), "--quiet", "--no-cache"],
                    stdout=io.StringIO(),
                )
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert code in (0, 1, 2), code
        assert "Traceback" not in err.getvalue()
        if code == 2:
            assert err.getvalue().strip()


#: Every property with its strategy, shared with benchmarks/fuzz_long.py.
PROPERTIES: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "parse_config": (check_parse_config, config_dicts),
    "parse_gates": (check_parse_gates, st.lists(gate_dicts, min_size=1, max_size=3)),
    "load_cohort_table": (check_load_cohort_table, tables),
    "load_cohort_raw": (check_load_cohort_raw, raw_csv),
    "baseline": (check_baseline, baselines),
    "escaping": (check_escaping, st.text() | cells),
    "metrics": (check_metrics, mask_pairs()),
    "cli_audit": (check_cli_audit, cli_runs()),
}


def _fuzz(name: str, examples: int = SUITE_EXAMPLES) -> Callable[[], None]:
    check, strategy = PROPERTIES[name]
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )(given(strategy)(check))


test_any_config_mapping_parses_or_raises_config_error = _fuzz("parse_config")
test_any_gate_list_parses_or_raises_config_error = _fuzz("parse_gates")
test_any_metadata_table_loads_or_raises_a_cohort_error_and_drops_nothing = _fuzz(
    "load_cohort_table"
)
test_any_bytes_as_the_metadata_file_raise_only_segfair_errors = _fuzz("load_cohort_raw")
test_any_baseline_document_gives_a_number_or_a_config_error = _fuzz("baseline")
test_no_text_breaks_out_of_a_markdown_cell_or_a_workflow_command = _fuzz("escaping")
test_metric_properties_hold_on_random_masks_and_spacings = _fuzz("metrics")
test_segfair_audit_on_anything_exits_0_1_or_2_without_a_traceback = _fuzz("cli_audit", 12)
