"""The audit report: a JSON document, rendered as HTML for people and Markdown for CI summaries.

:func:`build_report` turns an :class:`~segfair.audit.Audit` and the gate results into one
JSON-able document (schema ``segfair-report/1``, see ``docs/report-schema.md`` and the JSON Schema
``report.schema.json`` shipped in :mod:`segfair.templates`). Everything the renderers show comes
from that document alone: under pytest-xdist the controller renders a document that a worker
built, with ``doc["gates"]`` replaced by the results merged from every worker, so the verdict is
always derived from ``doc["gates"]`` at render time and never stored as the source of truth.

The report's job is to make the *biased ruler* visible: every subgroup estimate is shown under the
trusted ruler and under each automated ruler side by side, with the share of the gap the automated
labels hide (or add), the label audit, the amplification between models, the gap with difficulty
held fixed, the morphology of each group, what is missing, and the worst cases drawn as contours.

Example
-------
>>> doc = build_report(session.audit, results, config=session.config, seed=0)  # doctest: +SKIP
>>> write_reports(doc, html="fairness.html", json_path="fairness.json")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import resources
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np
import pandas as pd

from segfair.errors import SegfairError
from segfair.version import __version__

if TYPE_CHECKING:
    import jinja2

    from segfair.audit import Audit
    from segfair.cohort import Cohort, SourceKind
    from segfair.config import SegfairConfig
    from segfair.gates import GateResult

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "build_report",
    "github_annotations",
    "load_schema",
    "markdown_report",
    "render_html",
    "render_json",
    "render_markdown",
    "summary_lines",
    "summary_lines_from_dicts",
    "verdict",
    "write_reports",
]

#: Version of the document layout; bumped on any incompatible change (``"schema"`` field).
REPORT_SCHEMA_VERSION: Final = "1"
SCHEMA_ID: Final = f"segfair-report/{REPORT_SCHEMA_VERSION}"
#: Significant digits kept for the audit's numbers: enough for any decision, and it keeps the
#: document byte-stable across platforms whose last float bits may differ.
DIGITS: Final = 6
#: Metrics shown in the tables (the headline first); others stay in the score table.
TABLE_METRICS: Final = ("dice", "hd95")
#: Per-case lists (exclusions, missing cases) are cut here so the document stays small.
MAX_LISTED: Final = 500
#: Okabe–Ito palette (colour-blind safe), by role.
TRUSTED_COLOUR: Final = "#0072B2"
AUTOMATED_COLOURS: Final = ("#D55E00", "#CC79A7", "#E69F00", "#F0E442")
MODEL_COLOURS: Final = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#D55E00")
PREDICTION_COLOUR: Final = "#000000"
MARKERS: Final = ("circle", "square", "diamond", "triangle", "cross")
NO_COHORT_REASON: Final = (
    "the report was built without the cohort (build_report(..., cohort=None)), so the mask files "
    "could not be read; pass cohort= to draw the worst cases"
)

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------
# small value helpers
# ----------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite float rounded to :data:`DIGITS` significant digits, else None (NaN, inf)."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return float(f"{x:.{DIGITS}g}")


def _int(value: Any) -> int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0
    return int(x) if math.isfinite(x) else 0


def _est(e: Any) -> dict[str, float | None]:
    """An :class:`~segfair.audit.Estimate` as ``{estimate, lower, upper}``."""
    return {"estimate": _num(e.estimate), "lower": _num(e.lower), "upper": _num(e.upper)}


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, tuples as lists, NaN and ±inf as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _labels(column: pd.Series) -> pd.Series:
    """Group label of every case, as the audit names them (missing → ``"unknown"``)."""
    from segfair.audit import UNKNOWN_LABEL

    out = column.astype(object).where(column.notna(), UNKNOWN_LABEL).map(str)
    out.index = out.index.astype(str)
    return out


def _group_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for group, row in frame.iterrows():
        rows.append(
            {
                "group": str(group),
                "n": _int(row.get("n", 0)),
                "estimate": _num(row.get("estimate")),
                "lower": _num(row.get("lower")),
                "upper": _num(row.get("upper")),
                "capped": _int(row.get("capped", 0)),
                "undefined": _int(row.get("undefined", 0)),
            }
        )
    return rows


def _overall(series: pd.Series) -> dict[str, Any]:
    return {
        "n": _int(series.get("n", 0)),
        "estimate": _num(series.get("estimate")),
        "lower": _num(series.get("lower")),
        "upper": _num(series.get("upper")),
        "capped": _int(series.get("capped", 0)),
        "undefined": _int(series.get("undefined", 0)),
    }


def _attempt(notes: list[str], what: str, fn: Callable[[], T]) -> T | None:
    """Run one part of the report; a part that cannot be computed becomes a note, not a crash.

    The report is written at the end of a CI run, after every gate was decided: losing the whole
    document (and the gates' evidence in it) because, say, one attribute has a single group or a
    lazily imported SciPy module is unavailable would be worse than a section with a note. The
    tests assert that a normal cohort's report has no notes, so bugs do not hide here.
    """
    try:
        return fn()
    except Exception as exc:
        notes.append(f"{what}: not computed ({type(exc).__name__}: {exc})")
        return None


def _sha256_text(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _sha256_file(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def _frame_hash(frame: pd.DataFrame, keys: Sequence[str]) -> str:
    """sha256 of a long table in a canonical order (row order of the input never matters)."""
    cols = [c for c in keys if c in frame.columns]
    if len(frame) == 0:
        return _sha256_text(["\t".join(cols)])
    f = frame.loc[:, [*cols, "value"]].copy()
    for c in cols:
        f[c] = f[c].astype(str)
    f = f.sort_values(cols, kind="stable")
    # column-wise, then one join: ~10× faster than formatting row by row (93k rows at MAMA-MIA
    # scale), and the same text, so the same digest
    values = [repr(v) for v in f["value"].to_numpy(dtype=np.float64).tolist()]
    key_cols = [f[c].to_numpy(dtype=object).tolist() for c in cols]
    lines = map("\t".join, zip(*key_cols, values, strict=True))
    return _sha256_text(["\t".join([*cols, "value"]), "\n".join(lines)])


def _metadata_hash(metadata: pd.DataFrame | None, table: Path) -> str | None:
    """sha256 of the metadata table's content, rows by case id and columns by name: shuffling
    the rows of the file changes no number in the audit, so it changes nothing in the report."""
    if metadata is None:
        return _sha256_file(table)
    frame = metadata.sort_index(kind="stable")
    cols = sorted(map(str, frame.columns))
    frame.columns = pd.Index(map(str, frame.columns))
    lines = [json.dumps(["case_id", *cols], ensure_ascii=False)]
    for case_id, row in zip(frame.index, frame.loc[:, cols].itertuples(index=False), strict=True):
        cells = [None if _missing(v) else str(v) for v in row]
        lines.append(json.dumps([str(case_id), *cells], ensure_ascii=False))
    return _sha256_text(lines)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# verdict (always derived from doc["gates"])
# ----------------------------------------------------------------------------------------------


def _gate_ok(gate: Mapping[str, Any]) -> bool:
    ok = gate.get("ok")
    if isinstance(ok, bool):
        return ok
    status = gate.get("status")
    return status == "passed" or (status == "insufficient_evidence" and bool(gate.get("allowed")))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def verdict(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict of a set of gate results (dicts as :meth:`GateResult.to_dict` writes them).

    Returns
    -------
    dict
        ``status`` (``"passed"``, ``"failed"`` or ``"no_gates"``), ``ok``, ``counts``
        (``total, passed, failed, insufficient_evidence, allowed``), ``blocking`` (the ids of the
        gates that fail the build, in order) and ``line`` (the one-line verdict).

    Examples
    --------
    >>> verdict([{"id": "gap[dice,age,m]", "status": "failed", "ok": False}])["line"]
    'segfair: FAILED — 1 of 1 gate does not hold: gap[dice,age,m]'
    """
    counts = {
        "total": len(gates),
        "passed": 0,
        "failed": 0,
        "insufficient_evidence": 0,
        "allowed": 0,
    }
    blocking: list[str] = []
    for g in gates:
        status = str(g.get("status", ""))
        if status in ("passed", "failed", "insufficient_evidence"):
            counts[status] += 1
        if status == "insufficient_evidence" and _gate_ok(g):
            counts["allowed"] += 1
        if not _gate_ok(g):
            blocking.append(str(g.get("id", "?")))
    n = len(gates)
    if n == 0:
        status = "no_gates"
        line = (
            "segfair: NO GATES — nothing was checked; declare [[gates]] in the configuration "
            "or assert them in tests"
        )
    elif blocking:
        shown = ", ".join(blocking[:3]) + (
            f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
        )
        verb = "does not hold" if len(blocking) == 1 else "do not hold"
        status = "failed"
        line = f"segfair: FAILED — {len(blocking)} of {_plural(n, 'gate')} {verb}: {shown}"
    else:
        status = "passed"
        passed = _plural(counts["passed"], "gate") + " passed"
        if counts["allowed"]:
            passed = (
                f"{passed}, {counts['allowed']} with insufficient evidence (allowed)"
                if counts["passed"]
                else f"{_plural(counts['allowed'], 'gate')} with insufficient evidence (allowed)"
            )
        line = f"segfair: PASSED — {passed}"
    return {
        "status": status,
        "ok": not blocking,
        "counts": counts,
        "blocking": blocking,
        "line": line,
    }


# ----------------------------------------------------------------------------------------------
# building the document
# ----------------------------------------------------------------------------------------------


def build_report(
    audit: Audit,
    results: Sequence[GateResult],
    *,
    config: SegfairConfig,
    seed: int,
    cohort: Cohort | None = None,
    worst_per_group: int = 2,
) -> dict[str, Any]:
    """Build the report document (JSON-able) of an audit and its gate results.

    Parameters
    ----------
    audit
        The audit the gates were decided on.
    results
        Gate results, in the order to show them.
    config
        The configuration of the run (recorded with its hash in the provenance).
    seed
        The bootstrap seed used.
    cohort
        The cohort, to read the masks of the worst cases; without it that section says why it is
        empty.
    worst_per_group
        How many worst cases to draw per group of the headline attribute.

    Returns
    -------
    dict
        The document described in ``docs/report-schema.md``. Deterministic for the same inputs
        and seed, except the top-level ``generated_at`` timestamp.
    """
    scores = audit.scores
    trusted = scores.trusted_ruler
    automated = [r for r in scores.rulers if r != trusted]
    models = list(scores.models)
    attributes = list(scores.attributes)
    # the configured order, never the first-seen order of the rows (which depends on row order)
    declared = [str(m) for m in scores.settings.get("metrics", ()) if m in scores.metrics]
    metrics = declared + sorted(set(scores.metrics) - set(declared))
    metric = "dice" if "dice" in metrics else (metrics[0] if metrics else "dice")
    table_metrics: list[str] = [m for m in TABLE_METRICS if m in metrics] or [metric]
    notes: list[str] = []
    gates = [_jsonable(r.to_dict()) for r in results]

    rulers = list(scores.rulers)
    pairs = _model_pairs(gates, models)
    descriptors = set(
        scores.morphology.loc[
            scores.morphology["ruler"].astype(str) == trusted, "descriptor"
        ].astype(str)
    )
    stratify = "volume_ml" if "volume_ml" in descriptors else None
    if stratify is None:
        notes.append("difficulty-controlled gap: no volume_ml descriptor of the trusted masks")

    def each(what: str, fn: Callable[..., T], keys: Iterable[tuple[Any, ...]]) -> list[T]:
        found = (_attempt(notes, what.format(*k), functools.partial(fn, audit, *k)) for k in keys)
        return [x for x in found if x is not None]

    tables = each(
        "{} by {} for {} on {}",
        _gap_entry,
        itertools.product(table_metrics, attributes, models, rulers),
    )
    label_audit = each(
        "label audit by {}", _label_audit_entries, ((a, tuple(table_metrics)) for a in attributes)
    )
    groups = [t[0] for t in tables]
    gaps = [t[1] for t in tables]
    sections = {
        "fairness": each(
            "fairness scores of {1} by {2} for {3} on {4}",
            _fairness_entry,
            ((tuple(metrics), metric, a, m, r) for a in attributes for m in models for r in rulers),
        ),
        "distortion": each(
            "ruler distortion of {} by {} for {} ({})",
            _distortion_entry,
            itertools.product(table_metrics, attributes, models, automated),
        ),
        "amplification": each(
            "amplification of {} by {}: {} over {}",
            _amplification_entry,
            ((m, a, mo, b) for m in table_metrics for a in attributes for mo, b in pairs),
        ),
        "label_audit": [e for entries in label_audit for e in entries],
        "controlled_gap": each(
            "difficulty-controlled gap of {} by {} for {} ({})",
            _controlled_entry,
            ((metric, a, m, stratify) for a in attributes for m in models if stratify is not None),
        ),
        "morphology": each("morphology by {}", _morphology_entry, ((a,) for a in attributes)),
    }
    coverage = _coverage(audit, attributes, groups, notes, shown=table_metrics)

    attribute, model = _headline(gates, attributes, models, gaps, metric, trusted)
    worst = _worst_cases(
        audit,
        cohort,
        config,
        metric=metric,
        attribute=attribute,
        model=model,
        per_group=worst_per_group,
    )

    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "segfair_version": __version__,
        "headline": {
            "metric": metric,
            "attribute": attribute,
            "model": model,
            "trusted": trusted,
            "automated": automated,
        },
        "cohort": _cohort_summary(audit, attributes, metrics),
        "gates": gates,
        "verdict": verdict(gates),
        "groups": groups,
        "gaps": gaps,
        **sections,
        "coverage": coverage,
        "worst_cases": worst,
        "provenance": _provenance(audit, config, seed),
        "notes": sorted(set(notes)),
    }
    out: dict[str, Any] = _jsonable(doc)
    return out


def _gate_key(kind: str, *parts: str | None) -> str:
    """Ids in the gates' own format, so a ``no_regression`` baseline lookup can share them."""
    return f"{kind}[{','.join(p for p in parts if p)}]"


def _gap_entry(
    audit: Audit, metric: str, attr: str, model: str, ruler: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    r = audit.gap(metric, by=attr, model=model, ruler=ruler)
    group = {
        "id": _gate_key("by_group", metric, attr, model, ruler),
        "metric": metric,
        "attribute": attr,
        "model": model,
        "ruler": ruler,
        "statistic": r.statistic,
        "groups": _group_rows(r.by_group),
        "overall": _overall(r.overall),
        "notes": list(r.notes),
    }
    gap = {
        "id": _gate_key("gap", metric, attr, model, ruler),
        "metric": metric,
        "attribute": attr,
        "model": model,
        "ruler": ruler,
        "gap": _est(r.gap),
        "ratio": _est(r.ratio),
        "to_overall": _est(r.to_overall),
        "max_group": r.max_group,
        "min_group": r.min_group,
    }
    return group, gap


def _fairness_entry(
    audit: Audit, metrics: Sequence[str], metric: str, attr: str, model: str, ruler: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metric": metric,
        "attribute": attr,
        "model": model,
        "ruler": ruler,
        "equity_scaled": None,
        "mamamia": None,
        "dpd": None,
        "dir": None,
        "threshold": 0.8,
        "slope": None,
        "kruskal_p": None,
    }
    es = audit.equity_scaled(metric, by=attr, model=model, ruler=ruler)
    out["equity_scaled"] = _est(es.es)
    if metric == "dice":
        rate = audit.dpd_dir(metric, by=attr, model=model, ruler=ruler, threshold=0.8)
        out["dpd"], out["dir"] = _est(rate.dpd), _est(rate.dir)
        if "hd95" in metrics:
            out["mamamia"] = _est(audit.mamamia_fairness(by=attr, model=model, ruler=ruler).score)
    assoc = audit.association(metric, attribute=attr, model=model, ruler=ruler)
    out["kruskal_p"] = _num(assoc.kruskal_p)
    if assoc.column is not None and math.isfinite(assoc.slope):
        out["slope"] = {
            "column": assoc.column,
            "estimate": _num(assoc.slope),
            "lower": _num(assoc.slope_lower),
            "upper": _num(assoc.slope_upper),
            "p": _num(assoc.slope_p),
        }
    return out


def _distortion_entry(
    audit: Audit, metric: str, attr: str, model: str, automated: str
) -> dict[str, Any]:
    d = audit.ruler_distortion(metric, by=attr, model=model, automated=automated)
    return {
        "id": _gate_key("ruler_distortion", metric, attr, model, automated, d.trusted),
        "metric": metric,
        "attribute": attr,
        "model": model,
        "trusted": d.trusted,
        "automated": automated,
        "defined": d.defined,
        "negligible": _num(d.negligible),
        "gap_trusted": _est(d.gap_trusted),
        "gap_automated": _est(d.gap_automated),
        "distortion": _est(d.distortion),
        "shrinkage": _est(d.shrinkage),
        "inflation": _est(d.inflation),
        "hidden_gap": _est(d.hidden_gap),
        # both rulers on the same (paired) cases: the chart compares like with like
        "trusted_groups": _group_rows(d.by_group.loc[d.trusted]),
        "automated_groups": _group_rows(d.by_group.loc[automated]),
        "notes": list(d.notes),
    }


def _model_pairs(
    gates: Sequence[Mapping[str, Any]], models: Sequence[str]
) -> list[tuple[str, str]]:
    """(model, baseline) pairs: those of amplification gates first, then every other pair with
    the earlier-declared model as the baseline."""
    out: list[tuple[str, str]] = []
    for g in gates:
        if g.get("kind") == "amplification":
            found = [t for t in _gate_tokens(str(g.get("id", ""))) if t in models]
            if len(found) >= 2 and found[0] != found[1] and (found[0], found[1]) not in out:
                out.append((found[0], found[1]))
    for i, base in enumerate(models):
        for model in models[i + 1 :]:
            if (model, base) not in out and (base, model) not in out:
                out.append((model, base))
    return out


def _amplification_entry(
    audit: Audit, metric: str, attr: str, model: str, baseline: str
) -> dict[str, Any]:
    a = audit.amplification(metric, by=attr, model=model, baseline=baseline)
    return {
        "id": _gate_key("amplification", metric, attr, model, baseline, a.ruler),
        "metric": metric,
        "attribute": attr,
        "model": model,
        "baseline": baseline,
        "ruler": a.ruler,
        "defined": a.defined,
        "negligible": _num(a.negligible),
        "gap_model": _est(a.gap_model),
        "gap_baseline": _est(a.gap_baseline),
        "amplification": _est(a.amplification),
        "added_gap": _est(a.added_gap),
        "model_groups": _group_rows(a.by_group.loc[model]),
        "baseline_groups": _group_rows(a.by_group.loc[baseline]),
        "notes": list(a.notes),
    }


def _label_audit_entries(audit: Audit, attr: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    la = audit.label_audit(by=attr, metrics=tuple(metrics))
    out = []
    for (ruler, metric), r in la.results.items():
        out.append(
            {
                "id": _gate_key("label_agreement", metric, attr, ruler),
                "metric": metric,
                "attribute": attr,
                "automated": ruler,
                "trusted": la.trusted,
                "gap": _est(r.gap),
                "min_group": r.min_group,
                "max_group": r.max_group,
                "groups": _group_rows(r.by_group),
                "overall": _overall(r.overall),
                "notes": list(r.notes),
            }
        )
    return out


def _controlled_entry(
    audit: Audit, metric: str, attr: str, model: str, stratify: str
) -> dict[str, Any]:
    c = audit.controlled_gap(metric, by=attr, model=model, stratify=stratify)
    groups = [
        {
            "group": str(g),
            "n": _int(row["n"]),
            "crude": _num(row["crude"]),
            "standardised": _num(row["standardised"]),
            "lower": _num(row["lower"]),
            "upper": _num(row["upper"]),
        }
        for g, row in c.by_group.iterrows()
    ]
    strata = [
        {
            "stratum": str(s),
            "n": _int(row["n"]),
            "weight": _num(row["weight"]),
            "estimate": _num(row["estimate"]),
            "lower": _num(row["lower"]),
            "upper": _num(row["upper"]),
        }
        for s, row in c.stratum_gaps.iterrows()
    ]
    return {
        "id": _gate_key("controlled_gap", metric, attr, model, c.ruler, stratify),
        "metric": metric,
        "attribute": attr,
        "model": model,
        "ruler": c.ruler,
        "stratify": stratify,
        "gap": _est(c.gap),
        "crude_gap": _est(c.crude_gap),
        "persists": c.persists,
        "groups": groups,
        "strata": strata,
        "excluded_strata": list(c.excluded_strata),
        "notes": list(c.notes),
    }


def _morphology_entry(audit: Audit, attr: str) -> dict[str, Any]:
    scores = audit.scores
    r = audit.morphology_shift(by=attr)
    labels = _labels(scores.groups[attr])
    tests = r.tests
    out = []
    for name in list(dict.fromkeys(str(d) for d in r.by_group.index.get_level_values(0))):
        values = scores.descriptor(name, ruler=r.ruler)
        values.index = values.index.astype(str)
        values = values[np.isfinite(values.to_numpy(dtype=float))]
        per_case = labels.reindex(values.index)
        rows = []
        for group, row in r.by_group.loc[name].iterrows():
            v = values[per_case == str(group)].to_numpy(dtype=float)
            q = np.quantile(v, [0.0, 0.05, 0.95, 1.0]) if len(v) else [np.nan] * 4
            rows.append(
                {
                    "group": str(group),
                    "n": _int(row["n"]),
                    "mean": _num(row["mean"]),
                    "sd": _num(row["sd"]),
                    "median": _num(row["median"]),
                    "q1": _num(row["q1"]),
                    "q3": _num(row["q3"]),
                    "min": _num(q[0]),
                    "p05": _num(q[1]),
                    "p95": _num(q[2]),
                    "max": _num(q[3]),
                    "mean_ratio": _num(row["mean_ratio"]),
                    "mean_ratio_lower": _num(row["mean_ratio_lower"]),
                    "mean_ratio_upper": _num(row["mean_ratio_upper"]),
                    "var_ratio": _num(row["var_ratio"]),
                    "var_ratio_lower": _num(row["var_ratio_lower"]),
                    "var_ratio_upper": _num(row["var_ratio_upper"]),
                    "mannwhitney_p": _num(row["mannwhitney_p"]),
                    "rank_biserial": _num(row["rank_biserial"]),
                }
            )
        test = tests.loc[name] if name in tests.index else None
        out.append(
            {
                "descriptor": name,
                "kruskal_h": _num(test["kruskal_h"]) if test is not None else None,
                "kruskal_p": _num(test["kruskal_p"]) if test is not None else None,
                "groups": rows,
            }
        )
    return {
        "attribute": attr,
        "ruler": r.ruler,
        "reference": r.reference,
        "descriptors": out,
        "notes": list(r.notes),
    }


def _unshown_capped(
    audit: Audit, attributes: Sequence[str], shown: Sequence[str]
) -> list[dict[str, Any]]:
    """Capped and undefined values of the metrics without a group table (any of them may be
    decided on by a gate), counted per group straight from the score table."""
    from segfair.stats import DISTANCE_METRICS

    scores = audit.scores
    table = scores.table.loc[~scores.table["metric"].isin(list(shown))]
    if table.empty:
        return []
    values = table["value"].to_numpy(dtype=float)
    capped = table["metric"].isin(list(DISTANCE_METRICS)).to_numpy() & np.isposinf(values)
    frame = table.loc[:, ["case_id", "metric", "model", "ruler"]].assign(
        n=1, capped=capped, undefined=~np.isfinite(values) & ~capped
    )
    rows = []
    for attr in attributes:
        group = frame["case_id"].map(scores.groups[attr].astype(str))
        counts = frame.assign(group=group).groupby(["metric", "model", "ruler", "group"])
        for (metric, model, ruler, g), row in counts[["n", "capped", "undefined"]].sum().iterrows():
            if row["capped"] or row["undefined"]:
                rows.append(
                    {
                        "attribute": attr,
                        "metric": str(metric),
                        "model": str(model),
                        "ruler": str(ruler),
                        "group": str(g),
                        "n": _int(row["n"]),
                        "capped": _int(row["capped"]),
                        "undefined": _int(row["undefined"]),
                    }
                )
    return rows


def _coverage(
    audit: Audit,
    attributes: Sequence[str],
    groups: Sequence[Mapping[str, Any]],
    notes: list[str],
    shown: Sequence[str] = (),
) -> dict[str, Any]:
    scores = audit.scores
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    missing_rows: dict[tuple[str, str, str], str] = {}
    for attr in attributes:
        cov = _attempt(notes, f"coverage by {attr}", functools.partial(audit.coverage, by=attr))
        if cov is None:
            continue
        rows = [
            {
                "model": str(m),
                "group": str(g),
                "expected": _int(row["expected"]),
                "covered": _int(row["covered"]),
                "coverage": _num(row["coverage"]),
                "lower": _num(row["lower"]),
                "upper": _num(row["upper"]),
                "missing": _int(row["missing"]),
                "reasons": str(row["reasons"]),
            }
            for (m, g), row in cov.by_group.iterrows()
        ]
        predictions.append({"attribute": attr, "rows": rows})
        for _, row in cov.missing.iterrows():
            missing_rows[(str(row["case_id"]), "model", str(row["model"]))] = str(row["reason"])
        everyone = audit.group_sizes(by=attr)
        lrows = []
        for ruler in scores.rulers:
            have = audit.group_sizes(by=attr, ruler=ruler)
            for g, n in everyone.items():
                lrows.append(
                    {
                        "ruler": ruler,
                        "group": str(g),
                        "expected": _int(n),
                        "labelled": _int(have.get(g, 0)),
                        "coverage": _num(have.get(g, 0) / n) if n else None,
                    }
                )
        labels.append({"attribute": attr, "rows": lrows})
    ex = scores.exclusions
    for _, row in ex.iterrows():
        key = (str(row["case_id"]), str(row["kind"]), str(row["source"]))
        missing_rows.setdefault(key, str(row["reason"]))
    capped = [
        {
            "attribute": g["attribute"],
            "metric": g["metric"],
            "model": g["model"],
            "ruler": g["ruler"],
            "group": row["group"],
            "n": row["n"],
            "capped": row["capped"],
            "undefined": row["undefined"],
        }
        for g in groups
        for row in g["groups"]
        if row["capped"] or row["undefined"]
    ]
    capped += _unshown_capped(audit, attributes, shown)
    listed = sorted(missing_rows.items())
    return {
        "n_cases": len(audit.cases),
        "predictions": predictions,
        "labels": labels,
        "capped": capped,
        "cap": _num(audit.cap),
        "excluded": [
            {"case_id": c, "kind": k, "source": s, "reason": r}
            for (c, k, s), r in listed[:MAX_LISTED]
        ],
        "excluded_total": len(listed),
    }


def _gate_tokens(gate_id: str) -> list[str]:
    if "[" not in gate_id:
        return []
    inner = gate_id[gate_id.index("[") + 1 : gate_id.rindex("]") if "]" in gate_id else None]
    return [t for part in inner.split(",") for t in part.split("×")]


def _headline(
    gates: Sequence[Mapping[str, Any]],
    attributes: Sequence[str],
    models: Sequence[str],
    gaps: Sequence[Mapping[str, Any]],
    metric: str,
    trusted: str,
) -> tuple[str | None, str | None]:
    """The attribute and model the reader should see first: those of the first blocking gate,
    else of the first gate, else the model with the largest trusted gap."""
    ordered = [g for g in gates if not _gate_ok(g)] + [g for g in gates if _gate_ok(g)]
    attribute = model = None
    for g in ordered:
        tokens = _gate_tokens(str(g.get("id", "")))
        attribute = attribute or next((t for t in tokens if t in attributes), None)
        model = model or next((t for t in tokens if t in models), None)
    attribute = attribute or (attributes[0] if attributes else None)
    if model is None and models:
        best = [
            (-(g["gap"]["estimate"] or 0.0), models.index(g["model"]), g["model"])
            for g in gaps
            if g["metric"] == metric and g["attribute"] == attribute and g["ruler"] == trusted
        ]
        model = min(best)[2] if best else models[0]
    return attribute, model


def _cohort_summary(
    audit: Audit, attributes: Sequence[str], metrics: Sequence[str]
) -> dict[str, Any]:
    scores = audit.scores
    attrs = []
    for attr in attributes:
        sizes = audit.group_sizes(by=attr)
        attrs.append(
            {
                "name": attr,
                "column": scores.attribute_columns.get(attr),
                "groups": [{"group": str(g), "n": _int(n)} for g, n in sizes.items()],
            }
        )
    return {
        "n_cases": len(audit.cases),
        "models": list(scores.models),
        "rulers": list(scores.rulers),
        "trusted_ruler": scores.trusted_ruler,
        "automated_rulers": [r for r in scores.rulers if r != scores.trusted_ruler],
        "metrics": list(metrics),
        "attributes": attrs,
    }


def _git(root: Path) -> dict[str, Any]:
    """The commit of the repository holding the configuration, if any (never fails)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # a read must not refresh the index

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                env=env,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "scipy", "nibabel", "jinja2"):
        try:
            out[name] = _package_version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def _provenance(audit: Audit, config: SegfairConfig, seed: int) -> dict[str, Any]:
    scores = audit.scores
    dumped = _jsonable(config.model_dump(mode="json", by_alias=True))
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    source = Path(config.source) if config.source else None
    table = config.resolve(config.cases)
    settings = _jsonable(dict(scores.settings))
    return {
        "segfair_version": __version__,
        "versions": _versions(),
        "seed": int(seed),
        "n_boot": audit.n_boot,
        "confidence": audit.confidence,
        "statistic": audit.statistic,
        "cap": _num(audit.cap),
        "min_group_size": audit.min_group_size,
        "cluster": audit.cluster,
        "holm": bool(getattr(config, "holm", False)),
        "config": dumped,
        "config_sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        # paths relative to the configuration's folder: the same repository checked out
        # elsewhere (CI clones into a fresh folder) must give the same document
        "config_file": _relative(source, config.root) if source is not None else None,
        "config_file_sha256": _sha256_file(source) if source is not None else None,
        "metric_definitions": settings,
        "inputs": {
            "scores_sha256": _frame_hash(scores.table, ("case_id", "model", "ruler", "metric")),
            "scores_rows": len(scores.table),
            "agreement_sha256": _frame_hash(
                scores.agreement, ("case_id", "ruler", "reference", "metric")
            ),
            "morphology_sha256": _frame_hash(scores.morphology, ("case_id", "ruler", "descriptor")),
            "metadata_file": _relative(table, config.root),
            "metadata_sha256": _metadata_hash(scores.metadata, table),
        },
        "git": _git(config.root),
    }


# ----------------------------------------------------------------------------------------------
# worst cases: contours of prediction, trusted and automated labels on one slice
# ----------------------------------------------------------------------------------------------


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def outline_path(mask: np.ndarray) -> str:
    """SVG path data of the pixel-exact outline of a 2-D mask (``[row, column]`` = ``[y, x]``).

    Every boundary between a foreground and a background pixel is one unit edge; collinear
    edges are merged, so the path stays short.

    Examples
    --------
    >>> outline_path(np.array([[1, 1], [0, 0]], dtype=bool))
    'M0 0H2M0 1H2M0 0V1M2 0V1'
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    parts: list[str] = []
    horizontal = m[1:, 1:-1] != m[:-1, 1:-1]  # (H+1, W): edge along row line y
    for y in np.flatnonzero(horizontal.any(axis=1)):
        for s, e in zip(*_runs(horizontal[y]), strict=True):
            parts.append(f"M{s} {y}H{e}")
    vertical = m[1:-1, 1:] != m[1:-1, :-1]  # (H, W+1): edge along column line x
    for x in np.flatnonzero(vertical.any(axis=0)):
        for s, e in zip(*_runs(vertical[:, x]), strict=True):
            parts.append(f"M{x} {s}V{e}")
    return "".join(parts)


def fill_path(mask: np.ndarray) -> str:
    """SVG path data filling a 2-D mask with one rectangle per run of each row."""
    m = np.asarray(mask, dtype=bool)
    parts: list[str] = []
    for y in np.flatnonzero(m.any(axis=1)):
        for s, e in zip(*_runs(m[y]), strict=True):
            parts.append(f"M{s} {y}h{e - s}v1h{s - e}z")
    return "".join(parts)


def _worst_cases(
    audit: Audit,
    cohort: Cohort | None,
    config: SegfairConfig,
    *,
    metric: str,
    attribute: str | None,
    model: str | None,
    per_group: int,
) -> dict[str, Any]:
    from segfair.stats import DISTANCE_METRICS

    scores = audit.scores
    trusted = scores.trusted_ruler
    automated = [r for r in scores.rulers if r != trusted]
    out: dict[str, Any] = {
        "available": False,
        "reason": None,
        "metric": metric,
        "attribute": attribute,
        "model": model,
        "trusted": trusted,
        "automated": automated,
        "cases": [],
        "problems": [],
    }
    if attribute is None or model is None:
        out["reason"] = "the cohort has no attribute or no model"
        return out
    if cohort is None:
        out["reason"] = NO_COHORT_REASON
        return out
    try:
        values = scores.values(metric, model=model, ruler=trusted)
    except (SegfairError, ValueError) as exc:  # pragma: no cover - metrics always hold dice
        out["reason"] = f"no {metric} scores of {model} on {trusted}: {exc}"
        return out
    values.index = values.index.astype(str)
    values = values[values.notna()]
    labels = _labels(scores.groups[attribute])
    worse_is_higher = metric in DISTANCE_METRICS
    order = list(dict.fromkeys(str(g) for g in audit.group_sizes(by=attribute).index))
    chosen: list[tuple[str, str]] = []
    for group in order:
        ids = [c for c in values.index if labels.get(c) == group]
        ids.sort(key=lambda c: ((-values[c] if worse_is_higher else values[c]), c))
        chosen += [(group, c) for c in ids[:per_group]]
    if not chosen:
        out["reason"] = f"no case has a {metric} score of {model} on {trusted} labels"
        return out

    def draw(item: tuple[str, str]) -> dict[str, Any] | str:
        group, case_id = item
        try:
            return _draw_case(audit, cohort, config, metric, group, case_id, model, automated)
        except (SegfairError, ValueError, OSError) as exc:
            return f"{case_id}: {type(exc).__name__}: {exc}"

    # Reading the masks is most of a warm run's report time; inflating releases the GIL, so
    # threads share it across cores. map keeps the order, so the report is the same.
    with ThreadPoolExecutor(max_workers=min(len(chosen), os.cpu_count() or 1)) as pool:
        for drawn in pool.map(draw, chosen):
            if isinstance(drawn, str):
                out["problems"].append(drawn)
            else:
                out["cases"].append(drawn)
    out["available"] = bool(out["cases"])
    if not out["cases"]:
        out["reason"] = "no worst case could be drawn (see problems)"
    return out


def _read(cohort: Cohort, config: SegfairConfig, kind: str, name: str, case_id: str) -> Any:
    from segfair.io import load_mask

    table = config.models if kind == "model" else config.rulers
    spec = table[name]
    return load_mask(
        cohort.path("model" if kind == "model" else "ruler", name, case_id),
        case_id=case_id,
        labels=spec.labels if spec.labels is not None else config.labels,
        threshold=spec.threshold if spec.threshold is not None else config.threshold,
        max_voxels=config.max_voxels,
    )


def _draw_case(
    audit: Audit,
    cohort: Cohort,
    config: SegfairConfig,
    metric: str,
    group: str,
    case_id: str,
    model: str,
    automated: Sequence[str],
) -> dict[str, Any]:
    scores = audit.scores
    trusted = scores.trusted_ruler
    drawing = _cached_drawing(cohort, config, case_id, model, trusted, automated)

    def value(ruler: str) -> float | None:
        v = scores.values(metric, model=model, ruler=ruler)
        v.index = v.index.astype(str)
        return _num(v.get(case_id))

    agreement: dict[str, float | None] = {}
    for name in automated:
        if len(scores.agreement):
            agree = scores.agreement_values(metric, ruler=name)
            agree.index = agree.index.astype(str)
            agreement[name] = _num(agree.get(case_id))
    return {
        "group": group,
        "case_id": case_id,
        "value_trusted": value(trusted),
        "value_automated": {n: value(n) for n in automated},
        "agreement": agreement,
        **drawing,
    }


#: Bumped whenever what :func:`_drawing` returns changes.
DRAWING_FORMAT = 1


def _cached_drawing(
    cohort: Cohort,
    config: SegfairConfig,
    case_id: str,
    model: str,
    trusted: str,
    automated: Sequence[str],
) -> dict[str, Any]:
    """:func:`_drawing`, kept in the result cache next to the case's scores.

    Drawing a worst case reads its masks again — most of a warm re-run's report time at
    MAMA-MIA size. The entry is keyed like a case result, by the content of the files.
    """
    if cohort.cache_dir is None:  # the run's cache is off
        return _drawing(cohort, config, case_id, model, trusted, automated)
    from segfair.fileindex import file_index
    from segfair.io import atomic_write_text

    sources: list[tuple[SourceKind, str]] = [("model", model), ("ruler", trusted)]
    sources += [("ruler", n) for n in automated]
    paths = {f"{k}:{n}": cohort.path(k, n, case_id) for k, n in sources}
    index = file_index(cohort.cache_dir)
    try:
        files = {k: (index.content_hash(v) if v.is_file() else None) for k, v in paths.items()}
    except SegfairError:
        return _drawing(cohort, config, case_id, model, trusted, automated)
    payload = {
        "format": DRAWING_FORMAT,
        "segfair": __version__,
        "case_id": case_id,
        "files": files,
        "order": list(paths),
        "labels": list(config.labels),
        "threshold": config.threshold,
        "read": {
            k: [spec.labels, spec.threshold]
            for k, spec in (
                (f"{kind}:{n}", (config.models if kind == "model" else config.rulers)[n])
                for kind, n in sources
            )
        },
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(cohort.cache_dir) / "drawings" / key[:2] / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(path.read_text("utf-8"))
        if isinstance(cached, dict) and cached.get("key") == key:
            return dict(cached["drawing"])
    drawing = _drawing(cohort, config, case_id, model, trusted, automated)
    with contextlib.suppress(OSError):  # the cache is an optimisation, never the run
        atomic_write_text(path, json.dumps({"key": key, "drawing": drawing}, sort_keys=True))
    index.save()
    return drawing


def _drawing(
    cohort: Cohort,
    config: SegfairConfig,
    case_id: str,
    model: str,
    trusted: str,
    automated: Sequence[str],
) -> dict[str, Any]:
    """What a worst case's picture needs from its masks (everything but the scores)."""
    pred = _read(cohort, config, "model", model, case_id)
    ref = _read(cohort, config, "ruler", trusted, case_id)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and {trusted} {ref.shape} grids differ")
    autos: list[tuple[str, Any]] = []
    missing: list[str] = []
    for name in automated:
        path = cohort.path("ruler", name, case_id)
        if not path.is_file():
            missing.append(name)
            continue
        mask = _read(cohort, config, "ruler", name, case_id)
        if mask.shape == ref.shape:
            autos.append((name, mask))
    p, t = pred.array, ref.array
    spacing = pred.spacing
    if p.ndim == 2:
        axis, index, sl = -1, 0, (slice(None), slice(None))
        plane_axes: tuple[int, ...] = (0, 1)
    else:
        # slice across the coarsest axis (the acquisition's slice direction); ties → last
        axis = int(max(range(3), key=lambda a: (spacing[a], a)))
        plane_axes = tuple(a for a in range(3) if a != axis)
        other = plane_axes
        disagreement = (p ^ t).sum(axis=other)
        weight = disagreement if disagreement.any() else (p | t).sum(axis=other)
        index = int(np.argmax(weight))
        sl_list: list[Any] = [slice(None)] * 3
        sl_list[axis] = index
        sl = tuple(sl_list)

    def plane(a: np.ndarray) -> np.ndarray:
        # rows = second in-plane axis (upside down, as viewers show it), columns = the first
        return np.asarray(a[sl]).T[::-1, :]

    pp, tt = plane(p), plane(t)
    aa = [(n, plane(m.array)) for n, m in autos]
    union = pp | tt
    for _, a in aa:
        union = union | a
    h, w = pp.shape
    if union.any():
        rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
        margin = 3
        y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)
        x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    crop = (slice(y0, y1), slice(x0, x1))
    sx = float(spacing[plane_axes[0]])
    sy = float(spacing[plane_axes[1]])

    n_slices = 1 if p.ndim == 2 else int(p.shape[axis])
    return {
        "slice": {"axis": axis, "index": index, "n_slices": n_slices},
        "disagreement_voxels": int((pp ^ tt).sum()),
        "prediction_voxels": int(p.sum()),
        "prediction_voxels_on_slice": int(pp.sum()),
        "missed_voxels": int((tt & ~pp).sum()),
        "extra_voxels": int((pp & ~tt).sum()),
        "width": int(x1 - x0),
        "height": int(y1 - y0),
        "spacing": [_num(sx), _num(sy)],
        "trusted_fill": fill_path(tt[crop]),
        "contours": [
            {"source": model, "role": "prediction", "path": outline_path(pp[crop])},
            {"source": trusted, "role": "trusted", "path": outline_path(tt[crop])},
            *({"source": n, "role": "automated", "path": outline_path(a[crop])} for n, a in aa),
        ],
        "missing_sources": missing,
    }


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def _with_verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    out["verdict"] = verdict(list(doc.get("gates") or []))
    return out


def render_json(doc: Mapping[str, Any]) -> str:
    """The document as strict JSON: sorted keys, indent 2, NaN/±inf as null, a final newline.

    The verdict is recomputed from ``doc["gates"]`` first.
    """
    return (
        json.dumps(
            _jsonable(_with_verdict(doc)),
            sort_keys=True,
            indent=2,
            ensure_ascii=False,
            allow_nan=False,
        )
        + "\n"
    )


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report document (``report.schema.json`` in the package)."""
    text = resources.files("segfair.templates").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# ----------------------------------------------------------------------------------------------
# text formatting shared by the renderers
# ----------------------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, ``n/a`` for missing values."""
    if x is None or isinstance(x, bool):
        return "n/a" if x is None else str(x)
    if isinstance(x, str):
        return x  # "inf" as GateResult.to_dict writes it
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 10 ** -(digits + 1):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"


def fmt_interval(e: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``estimate [lower, upper]``; the bracket is left out when there is no interval."""
    if not e:
        return "n/a"
    est = fmt(e.get("estimate"), digits)
    lo, hi = e.get("lower"), e.get("upper")
    if lo is None and hi is None:
        return est
    return f"{est} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def fmt_pct(x: Any) -> str:
    if x is None or isinstance(x, str):
        return "n/a" if x is None else x
    v = float(x)
    if not math.isfinite(v):
        return "n/a"
    return f"{v * 100:.0f}%"


def fmt_p(x: Any) -> str:
    if x is None:
        return "n/a"
    v = float(x)
    return "< 0.001" if v < 0.001 else f"{v:.2g}"


STATUS_LABELS: Final = {
    "passed": "PASSED",
    "failed": "FAILED",
    "insufficient_evidence": "INSUFFICIENT EVIDENCE",
}


def _status_label(gate: Mapping[str, Any]) -> str:
    label = STATUS_LABELS.get(str(gate.get("status")), str(gate.get("status", "?")).upper())
    if gate.get("status") == "insufficient_evidence" and _gate_ok(gate):
        label += " (allowed)"
    return label


def _distortion_sentence(d: Mapping[str, Any]) -> str:
    """What an automated ruler does to the gap, in words (shrinkage or inflation)."""
    metric, auto, trusted = d["metric"], d["automated"], d["trusted"]
    gt, ga = d["gap_trusted"], d["gap_automated"]
    hidden = d["hidden_gap"]
    base = (
        f"gap {fmt(gt['estimate'])} on {trusted} labels vs {fmt(ga['estimate'])} on {auto} labels"
    )
    if not d.get("defined"):
        return (
            f"{base}: the trusted gap is not shown to exceed {fmt(d.get('negligible'))}, so "
            f"read the hidden gap: {fmt_interval(hidden)} {metric}"
        )
    dist = d["distortion"]["estimate"]
    if dist is None:
        return base
    if dist < 0:
        s = d["shrinkage"]
        return (
            f"{base}: {auto} labels hide {fmt_pct(s['estimate'])} "
            f"[{fmt_pct(s['lower'])}, {fmt_pct(s['upper'])}] of the gap"
        )
    s = d["inflation"]
    return (
        f"{base}: {auto} labels inflate the gap by {fmt_pct(s['estimate'])} "
        f"[{fmt_pct(s['lower'])}, {fmt_pct(s['upper'])}]"
    )


# ----------------------------------------------------------------------------------------------
# terminal summary and GitHub annotations
# ----------------------------------------------------------------------------------------------


def summary_lines(
    results: Sequence[GateResult],
    written: Sequence[Path],
    *,
    rerun_hint: str = "re-run with --html PATH to get the audit report",
) -> list[str]:
    """The terminal summary of :class:`GateResult` s (the CLI's); see
    :func:`summary_lines_from_dicts`."""
    return summary_lines_from_dicts([r.to_dict() for r in results], written, rerun_hint=rerun_hint)


def summary_lines_from_dicts(
    results: Sequence[Mapping[str, Any]],
    written: Sequence[Path],
    *,
    rerun_hint: str = "re-run with --segfair-html PATH to get the audit report",
) -> list[str]:
    """The terminal summary: one line per gate, the counts, the reports, the next step, and the
    one-line verdict **last** (``--quiet`` prints only that line).

    Examples
    --------
    >>> lines = summary_lines_from_dicts(
    ...     [{"id": "gap[dice,age,m,expert]", "status": "failed", "ok": False, "estimate": 0.083,
    ...       "lower": 0.051, "upper": 0.112,
    ...       "decision_rule": "upper 95% bound of the gap of dice ≤ 0.05"}], [])
    >>> print(lines[0])
    FAILED gap[dice,age,m,expert]: 0.083 [0.051, 0.112], rule: upper 95% bound of the gap of ...
    >>> lines[1], lines[-1]
    ('1 gate failed', 'segfair: FAILED — 1 of 1 gate does not hold: gap[dice,age,m,expert]')
    """
    lines = []
    for g in results:
        head = f"{_status_label(g)} {g.get('id', '?')}"
        if g.get("estimate") is None:
            lines.append(f"{head}: {g.get('message') or g.get('decision_rule', '')}")
        else:
            lines.append(f"{head}: {fmt_interval(g)}, rule: {g.get('decision_rule', '')}")
    v = verdict(list(results))
    c = v["counts"]
    parts = [
        (c["failed"], "failed"),
        (c["passed"], "passed"),
        (c["insufficient_evidence"] - c["allowed"], "insufficient evidence"),
        (c["allowed"], "insufficient evidence (allowed)"),
    ]
    shown = [(n, w) for n, w in parts if n]
    if shown:
        n0, w0 = shown[0]
        first = f"{_plural(n0, 'gate')} {'with ' if w0.startswith('insufficient') else ''}{w0}"
        lines.append(", ".join([first, *(f"{n} {w}" for n, w in shown[1:])]))
    paths = [Path(p) for p in written]
    lines.append("reports: " + (", ".join(str(p) for p in paths) if paths else "none written"))
    html = next((p for p in paths if p.suffix.lower() in (".html", ".htm")), None)
    if html is not None:
        lines.append(
            f"open {html} for the evidence"
            if not v["ok"]
            else f"the evidence behind every gate is in {html}"
        )
    elif results:
        lines.append(rerun_hint)
    lines.append(v["line"])
    return lines


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(doc: Mapping[str, Any]) -> list[str]:
    """One ``::error`` workflow command per gate that fails the build, escaped per GitHub's rules
    (``%``, CR, LF everywhere; ``:`` and ``,`` in properties too).

    Examples
    --------
    >>> github_annotations({"gates": [{"id": "gap[dice,age]", "status": "failed", "ok": False,
    ...                                "message": "50% over\\nthe limit"}]})
    ['::error title=segfair gate failed%3A gap[dice%2Cage]::50%25 over%0Athe limit']
    """
    out = []
    for g in doc.get("gates") or []:
        if _gate_ok(g):
            continue
        title = _escape_property(f"segfair gate failed: {g.get('id', '?')}")
        message = str(g.get("message") or g.get("decision_rule") or g.get("status"))
        out.append(f"::error title={title}::{_escape_data(message)}")
    return out


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------

# the backslash first, so one from the data cannot un-escape the characters that follow it
_MD_ESCAPES: Final = (
    ("\\", "\\\\"),
    ("&", "&amp;"),
    ("|", "\\|"),
    ("`", "\\`"),
    ("<", "&lt;"),
    (">", "&gt;"),
    # no link or image from the data: `![x](https://…)` would make the job summary fetch it
    # (a reference definition `[x]: url` needs a line of its own, which data never starts)
    ("](", "]\\("),
    # no @-mention from the data: a group or model named `@team` would notify people when the
    # summary is posted as a pull-request comment (a zero-width space breaks it, as Dependabot)
    ("@", "@&#8203;"),
)


class _Markdown(str):
    """Markdown we wrote ourselves (not data): :func:`md_escape` leaves it as it is."""

    __slots__ = ()


def md_escape(value: Any) -> str:
    """Text safe in a Markdown table cell: ``| ` < >`` and friends escaped, newlines as ``<br>``.

    Examples
    --------
    >>> md_escape("a|b <c>\\nd")
    'a\\\\|b &lt;c&gt;<br>d'
    """
    if isinstance(value, _Markdown):
        return str(value)
    text = str(value)
    for old, new in _MD_ESCAPES:
        text = text.replace(old, new)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = [
        "| " + " | ".join(header) + " |",  # our own words; the data cells are escaped
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A compact summary for ``$GITHUB_STEP_SUMMARY`` and PR comments: the verdict, the gate
    table and the headline ruler comparison."""
    v = verdict(list(doc.get("gates") or []))
    icon = {"passed": "✅", "failed": "❌"}.get(v["status"], "⚠️")
    lines = [f"## {icon} {md_escape(v['line'])}", ""]
    gates = list(doc.get("gates") or [])
    blocking = [g for g in gates if not _gate_ok(g)]
    for g in blocking:
        lines.append(f"- **{md_escape(g.get('id', '?'))}**: {md_escape(g.get('message', ''))}")
        steps = list(g.get("next_steps") or [])
        if steps:
            lines.append(f"  - next: {md_escape(steps[0])}")
    if blocking:
        lines.append("")
    planned = [g for g in gates if (g.get("labels_needed") or {}).get("total_additional")]
    if planned:
        lines.append("**Labels needed** (trusted labels to add before these gates can decide):")
        for g in planned:
            plan_ = g["labels_needed"]
            per = ", ".join(
                f"{int(r['additional'])} in {r['group']}"
                for r in plan_.get("groups") or []
                if r.get("additional")
            )
            tail = "" if plan_.get("feasible") else " — even then it may stay open (see the plan)"
            lines.append(
                f"- {md_escape(g.get('id', '?'))}: {int(plan_['total_additional'])} "
                f"({md_escape(per)}){tail}"
            )
        lines += ["", "`segfair plan` writes which cases to send to the annotators.", ""]
    if gates:
        lines += _md_table(
            ["gate", "status", "estimate [interval]", "threshold", "decision rule"],
            [
                [
                    g.get("id", "?"),
                    _status_label(g),
                    fmt_interval(g),
                    fmt(g.get("threshold")),
                    g.get("decision_rule", ""),
                ]
                for g in gates
            ],
        )
        lines.append("")
    head = doc.get("headline") or {}
    dist = [
        d
        for d in doc.get("distortion") or []
        if d["metric"] == head.get("metric")
        and d["attribute"] == head.get("attribute")
        and d["model"] == head.get("model")
    ]
    if dist:
        metric, attr, model = head["metric"], head["attribute"], head["model"]
        lines.append(
            f"### The ruler: {md_escape(metric)} of {md_escape(model)} by {md_escape(attr)}"
        )
        lines.append("")
        rulers = [
            md_escape(dist[0]["trusted"]) + " (trusted)",
            *(md_escape(d["automated"]) for d in dist),
        ]
        tables = [dist[0]["trusted_groups"], *(d["automated_groups"] for d in dist)]
        names = [r["group"] for r in tables[0]]
        rows = []
        for i, name in enumerate(names):
            rows.append(
                [
                    name,
                    str(tables[0][i]["n"]),
                    *(fmt_interval(t[i]) if i < len(t) else "n/a" for t in tables),
                ]
            )
        rows.append(
            [
                _Markdown("**gap**"),
                "",
                fmt_interval(dist[0]["gap_trusted"]),
                *(fmt_interval(d["gap_automated"]) for d in dist),
            ]
        )
        lines += _md_table(["group", "n", *rulers], rows)
        lines.append("")
        for d in dist:
            lines.append(f"- {md_escape(_distortion_sentence(d))}")
        lines.append("")
    c = doc.get("cohort") or {}
    prov = doc.get("provenance") or {}
    lines.append(
        f"<sub>segfair {md_escape(doc.get('segfair_version', '?'))} · "
        f"{md_escape(c.get('n_cases', '?'))} cases · seed {md_escape(prov.get('seed'))}"
        f" · n_boot {md_escape(prov.get('n_boot'))} · the HTML report holds the full "
        "evidence</sub>"
    )
    return "\n".join(lines) + "\n"


markdown_report = render_markdown


# ----------------------------------------------------------------------------------------------
# SVG charts (geometry here, markup in the templates; every label is escaped by Jinja)
# ----------------------------------------------------------------------------------------------


def _el(tag: str, text: str | None = None, **attrs: Any) -> dict[str, Any]:
    return {
        "tag": tag,
        "text": text,
        "attrs": {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items() if v is not None},
    }


def _nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[float, float, list[float]]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.1 or 0.05
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    ticks = [round(start + i * step, 12) for i in range(round((end - start) / step) + 1)]
    return start, end, ticks


def _x_axis(
    ticks: Sequence[float],
    sx: Callable[[float], float],
    top: float,
    bottom: float,
    label: str,
    label_x: float,
    *,
    digits: int,
    tick_dy: float,
    label_dy: float,
) -> list[dict[str, Any]]:
    """Vertical grid lines at the ticks, their values under the plot and the axis label."""
    els: list[dict[str, Any]] = []
    for t in ticks:
        x = f"{sx(t):.1f}"
        els.append(_el("line", x1=x, x2=x, y1=f"{top:.1f}", y2=f"{bottom:.1f}", class_="grid"))
        els.append(
            _el(
                "text",
                fmt(t, digits),
                x=x,
                y=f"{bottom + tick_dy:.1f}",
                class_="tick",
                text_anchor="middle",
            )
        )
    els.append(
        _el(
            "text",
            label,
            x=f"{label_x:.1f}",
            y=f"{bottom + label_dy:.1f}",
            class_="axis",
            text_anchor="middle",
        )
    )
    return els


def _marker(kind: str, x: float, y: float, colour: str, size: float = 4.5) -> dict[str, Any]:
    s = size
    if kind == "circle":
        return _el(
            "circle",
            cx=f"{x:.1f}",
            cy=f"{y:.1f}",
            r=f"{s:.1f}",
            fill=colour,
            stroke="#fff",
            stroke_width="1",
        )
    if kind == "square":
        return _el(
            "rect",
            x=f"{x - s:.1f}",
            y=f"{y - s:.1f}",
            width=f"{2 * s:.1f}",
            height=f"{2 * s:.1f}",
            fill=colour,
            stroke="#fff",
            stroke_width="1",
        )
    if kind == "diamond":
        s *= 1.3
        pts = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},{y + s:.1f} {x - s:.1f},{y:.1f}"
        return _el("polygon", points=pts, fill=colour, stroke="#fff", stroke_width="1")
    if kind == "triangle":
        s *= 1.25
        pts = f"{x:.1f},{y - s:.1f} {x + s:.1f},{y + s * 0.8:.1f} {x - s:.1f},{y + s * 0.8:.1f}"
        return _el("polygon", points=pts, fill=colour, stroke="#fff", stroke_width="1")
    d = (
        f"M{x - s:.1f} {y - s:.1f}L{x + s:.1f} {y + s:.1f}M{x - s:.1f} {y + s:.1f}L{x + s:.1f} "
        f"{y - s:.1f}"
    )
    return _el("path", d=d, stroke=colour, stroke_width="2.5", fill="none")


def interval_chart(
    series: Sequence[Mapping[str, Any]],
    *,
    title: str,
    axis_label: str,
    gaps: Sequence[Mapping[str, Any]] | None = None,
    chart_id: str,
) -> dict[str, Any]:
    """A dot-and-interval chart: one row per group, one point+interval per series in it, and an
    optional panel with each series' gap (max − min) and its interval.

    ``series``: ``{"name", "colour", "marker", "rows": [{"group", "estimate", "lower", "upper",
    "n"}]}``; ``gaps``: ``{"name", "colour", "estimate", "lower", "upper"}`` per series.
    """
    groups = list(dict.fromkeys(r["group"] for s in series for r in s["rows"]))
    values = [
        v
        for s in series
        for r in s["rows"]
        for v in (r.get("lower"), r.get("estimate"), r.get("upper"))
        if v is not None
    ]
    lo, hi, ticks = _nice_ticks(min(values, default=0.0), max(values, default=1.0))
    label_w, plot_w, gap_w, pad = 118.0, 330.0, 150.0 if gaps else 0.0, 14.0
    width = label_w + plot_w + (gap_w + pad if gaps else 0.0) + 12
    legend_h, axis_h = 26.0, 34.0
    sub = 13.0
    row_h = max(len(series), 1) * sub + 12
    height = legend_h + len(groups) * row_h + axis_h
    x0 = label_w

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * plot_w

    els: list[dict[str, Any]] = []
    # legend: colour *and* marker shape per series, so it reads without colour too
    lx = x0
    for s in series:
        els.append(_marker(s["marker"], lx + 5, 11, s["colour"]))
        els.append(_el("text", str(s["name"]), x=f"{lx + 14:.1f}", y="15", class_="legend"))
        lx += 24 + 6.6 * len(str(s["name"]))
    top = legend_h
    bottom = top + len(groups) * row_h
    els += _x_axis(
        ticks, sx, top, bottom, axis_label, x0 + plot_w / 2, digits=4, tick_dy=14, label_dy=29
    )
    for i, g in enumerate(groups):
        y_top = top + i * row_h
        if i % 2 == 0:
            els.append(
                _el(
                    "rect",
                    x="0",
                    y=f"{y_top:.1f}",
                    width=f"{x0 + plot_w:.1f}",
                    height=f"{row_h:.1f}",
                    class_="band",
                )
            )
        ns = [r.get("n") for s in series for r in s["rows"] if r["group"] == g]
        n_text = f"n = {ns[0]}" if ns and ns[0] is not None else ""
        els.append(
            _el(
                "text",
                _clip(g, 18),
                x=f"{x0 - 8:.1f}",
                y=f"{y_top + row_h / 2 - 1:.1f}",
                class_="group",
                text_anchor="end",
            )
        )
        els.append(
            _el(
                "text",
                n_text,
                x=f"{x0 - 8:.1f}",
                y=f"{y_top + row_h / 2 + 10:.1f}",
                class_="small",
                text_anchor="end",
            )
        )
        for k, s in enumerate(series):
            row = next((r for r in s["rows"] if r["group"] == g), None)
            if row is None or row.get("estimate") is None:
                continue
            y = y_top + 6 + sub * k + sub / 2
            if row.get("lower") is not None and row.get("upper") is not None:
                els.append(
                    _el(
                        "line",
                        x1=f"{sx(row['lower']):.1f}",
                        x2=f"{sx(row['upper']):.1f}",
                        y1=f"{y:.1f}",
                        y2=f"{y:.1f}",
                        stroke=s["colour"],
                        stroke_width="2.2",
                    )
                )
            els.append(_marker(s["marker"], sx(row["estimate"]), y, s["colour"]))
    if gaps:
        gx = x0 + plot_w + pad + 8
        gw = gap_w - 14
        gvals = [
            v
            for gp in gaps
            for v in (gp.get("lower"), gp.get("estimate"), gp.get("upper"))
            if v is not None
        ]
        glo, ghi, gticks = _nice_ticks(0.0, max(gvals, default=0.05) or 0.05, 3)

        def gxs(v: float) -> float:
            return gx + (v - glo) / (ghi - glo) * gw

        els.append(
            _el(
                "text",
                "gap (max − min)",
                x=f"{gx + gw / 2:.1f}",
                y=f"{top - 8:.1f}",
                class_="axis",
                text_anchor="middle",
            )
        )
        for t in gticks:
            els.append(
                _el(
                    "line",
                    x1=f"{gxs(t):.1f}",
                    x2=f"{gxs(t):.1f}",
                    y1=f"{top:.1f}",
                    y2=f"{bottom:.1f}",
                    class_="grid",
                )
            )
            els.append(
                _el(
                    "text",
                    fmt(t, 3),
                    x=f"{gxs(t):.1f}",
                    y=f"{bottom + 14:.1f}",
                    class_="tick",
                    text_anchor="middle",
                )
            )
        bar_h = max(min(10.0, (bottom - top) / max(len(gaps), 1) - 16), 4.0)
        for k, gp in enumerate(gaps):
            # the series' name over its bar: the panel reads without the legend's colours
            y = top + 16 + k * (bar_h + 18)
            els.append(
                _el(
                    "text",
                    f"{_clip(gp['name'], 22)}: {fmt(gp.get('estimate'))}",
                    x=f"{gx:.1f}",
                    y=f"{y - 3:.1f}",
                    class_="small",
                )
            )
            if gp.get("estimate") is not None:
                els.append(
                    _el(
                        "rect",
                        x=f"{gx:.1f}",
                        y=f"{y:.1f}",
                        width=f"{max(gxs(gp['estimate']) - gx, 0.5):.1f}",
                        height=f"{bar_h:.1f}",
                        fill=gp["colour"],
                        fill_opacity="0.35",
                    )
                )
            if gp.get("lower") is not None and gp.get("upper") is not None:
                els.append(
                    _el(
                        "line",
                        x1=f"{gxs(gp['lower']):.1f}",
                        x2=f"{gxs(gp['upper']):.1f}",
                        y1=f"{y + bar_h / 2:.1f}",
                        y2=f"{y + bar_h / 2:.1f}",
                        stroke=gp["colour"],
                        stroke_width="2",
                    )
                )
            if gp.get("estimate") is not None:
                els.append(
                    _el(
                        "line",
                        x1=f"{gxs(gp['estimate']):.1f}",
                        x2=f"{gxs(gp['estimate']):.1f}",
                        y1=f"{y:.1f}",
                        y2=f"{y + bar_h:.1f}",
                        stroke=gp["colour"],
                        stroke_width="2.5",
                    )
                )
    desc = "; ".join(
        f"{s['name']}: " + ", ".join(f"{r['group']} {fmt_interval(r)}" for r in s["rows"])
        for s in series
    )
    if gaps:
        desc += "; gaps: " + ", ".join(f"{gp['name']} {fmt_interval(gp)}" for gp in gaps)
    return {
        "id": chart_id,
        "title": title,
        "desc": desc,
        "width": f"{width:.0f}",
        "height": f"{height:.0f}",
        "elements": els,
    }


def box_chart(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    axis_label: str,
    reference: str | None,
    chart_id: str,
) -> dict[str, Any]:
    """A small horizontal box plot per group: whiskers 5th–95th percentile, box the quartiles,
    a tick at the median and a dot at the mean."""
    vals = [
        r[k] for r in rows for k in ("p05", "p95", "q1", "q3", "median") if r.get(k) is not None
    ]
    lo, hi, ticks = _nice_ticks(min(vals, default=0.0), max(vals, default=1.0), 4)
    label_w, plot_w, row_h, top, axis_h = 116.0, 200.0, 20.0, 6.0, 30.0
    width, height = label_w + plot_w + 14, top + row_h * len(rows) + axis_h

    def sx(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    els: list[dict[str, Any]] = []
    bottom = top + row_h * len(rows)
    els += _x_axis(
        ticks, sx, top, bottom, axis_label, label_w + plot_w / 2, digits=3, tick_dy=12, label_dy=25
    )
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        name = str(r["group"]) + (" (ref.)" if r["group"] == reference else "")
        els.append(
            _el(
                "text",
                _clip(name, 19),
                x=f"{label_w - 6:.1f}",
                y=f"{y + 4:.1f}",
                class_="group",
                text_anchor="end",
            )
        )
        if r.get("median") is None:
            continue
        colour = TRUSTED_COLOUR
        if r.get("p05") is not None and r.get("p95") is not None:
            els.append(
                _el(
                    "line",
                    x1=f"{sx(r['p05']):.1f}",
                    x2=f"{sx(r['p95']):.1f}",
                    y1=f"{y:.1f}",
                    y2=f"{y:.1f}",
                    stroke="#555",
                    stroke_width="1.2",
                )
            )
        if r.get("q1") is not None and r.get("q3") is not None:
            els.append(
                _el(
                    "rect",
                    x=f"{sx(r['q1']):.1f}",
                    y=f"{y - 6:.1f}",
                    width=f"{max(sx(r['q3']) - sx(r['q1']), 1):.1f}",
                    height="12",
                    fill=colour,
                    fill_opacity="0.25",
                    stroke=colour,
                    stroke_width="1.2",
                )
            )
        els.append(
            _el(
                "line",
                x1=f"{sx(r['median']):.1f}",
                x2=f"{sx(r['median']):.1f}",
                y1=f"{y - 6:.1f}",
                y2=f"{y + 6:.1f}",
                stroke=colour,
                stroke_width="2.5",
            )
        )
        if r.get("mean") is not None:
            els.append(_marker("diamond", sx(r["mean"]), y, "#000", 2.6))
    desc = "; ".join(
        f"{r['group']}: median {fmt(r.get('median'))}, quartiles {fmt(r.get('q1'))}–"
        f"{fmt(r.get('q3'))}, 5–95% {fmt(r.get('p05'))}–{fmt(r.get('p95'))}, mean "
        f"{fmt(r.get('mean'))}"
        for r in rows
    )
    return {
        "id": chart_id,
        "title": title,
        "desc": desc,
        "width": f"{width:.0f}",
        "height": f"{height:.0f}",
        "elements": els,
    }


def _pretty(value: Any) -> str:
    return json.dumps(_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)


def _clip(text: Any, n: int) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------


def _load_template(name: str) -> str:
    return resources.files("segfair.templates").joinpath(name).read_text("utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,  # every value from the data is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt, interval=fmt_interval, pct=fmt_pct, p=fmt_p, pretty=_pretty)
    env.globals.update(status_label=_status_label, gate_ok=_gate_ok)
    return env


def _colours(trusted: str, automated: Sequence[str]) -> dict[str, tuple[str, str]]:
    out = {trusted: (TRUSTED_COLOUR, MARKERS[0])}
    for i, name in enumerate(automated):
        out[name] = (
            AUTOMATED_COLOURS[i % len(AUTOMATED_COLOURS)],
            MARKERS[1 + i % (len(MARKERS) - 1)],
        )
    return out


def _ruler_views(doc: Mapping[str, Any], ids: Callable[[], str]) -> list[dict[str, Any]]:
    """One view per (metric, attribute, model): the chart and tables of the ruler comparison."""
    cohort = doc.get("cohort") or {}
    trusted = cohort.get("trusted_ruler", "")
    automated = list(cohort.get("automated_rulers") or [])
    colours = _colours(trusted, automated)
    head = doc.get("headline") or {}
    views = []
    keys = list(
        dict.fromkeys((g["metric"], g["attribute"], g["model"]) for g in doc.get("groups") or [])
    )
    for metric, attr, model in keys:
        dist = [
            d
            for d in doc.get("distortion") or []
            if (d["metric"], d["attribute"], d["model"]) == (metric, attr, model)
        ]
        tables = {
            g["ruler"]: g
            for g in doc.get("groups") or []
            if (g["metric"], g["attribute"], g["model"]) == (metric, attr, model)
        }
        gaps = {
            g["ruler"]: g
            for g in doc.get("gaps") or []
            if (g["metric"], g["attribute"], g["model"]) == (metric, attr, model)
        }
        if dist:
            series_rows = [(trusted, dist[0]["trusted_groups"], dist[0]["gap_trusted"])]
            series_rows += [
                (d["automated"], d["automated_groups"], d["gap_automated"]) for d in dist
            ]
        else:
            series_rows = [
                (r, t["groups"], gaps[r]["gap"] if r in gaps else None) for r, t in tables.items()
            ]
        series = [
            {
                "name": name + (" (trusted)" if name == trusted else ""),
                "colour": colours.get(name, ("#555", "cross"))[0],
                "marker": colours.get(name, ("#555", "cross"))[1],
                "rows": rows,
            }
            for name, rows, _ in series_rows
        ]
        gap_bars = [
            {"name": s["name"], "colour": s["colour"], **(gap or {})}
            for s, (_, _, gap) in zip(series, series_rows, strict=True)
        ]
        chart = interval_chart(
            series,
            title=f"{metric} of {model} by {attr}: trusted vs automated rulers",
            axis_label=f"{metric} (mean, {_pct_conf(doc)} interval)",
            gaps=gap_bars,
            chart_id=ids(),
        )
        names = [r["group"] for r in series[0]["rows"]] if series else []
        table = [
            {
                "group": g,
                "cells": [next((r for r in s["rows"] if r["group"] == g), None) for s in series],
            }
            for g in names
        ]
        views.append(
            {
                "metric": metric,
                "attribute": attr,
                "model": model,
                "chart": chart,
                "series": series,
                "table": table,
                "gap_bars": gap_bars,
                "distortion": dist,
                "sentences": [_distortion_sentence(d) for d in dist],
                "headline": (metric, attr, model)
                == (head.get("metric"), head.get("attribute"), head.get("model")),
            }
        )
    return views


def _pct_conf(doc: Mapping[str, Any]) -> str:
    conf = (doc.get("provenance") or {}).get("confidence") or 0.95
    return f"{float(conf) * 100:.4g}%"


def _model_views(doc: Mapping[str, Any], ids: Callable[[], str]) -> list[dict[str, Any]]:
    out = []
    for a in doc.get("amplification") or []:
        series = [
            {
                "name": a["model"],
                "colour": MODEL_COLOURS[0],
                "marker": "circle",
                "rows": a["model_groups"],
            },
            {
                "name": a["baseline"] + " (baseline)",
                "colour": MODEL_COLOURS[1],
                "marker": "square",
                "rows": a["baseline_groups"],
            },
        ]
        gap_bars = [
            {"name": a["model"], "colour": MODEL_COLOURS[0], **a["gap_model"]},
            {"name": a["baseline"], "colour": MODEL_COLOURS[1], **a["gap_baseline"]},
        ]
        chart = interval_chart(
            series,
            title=f"{a['metric']} by {a['attribute']} on {a['ruler']} labels: "
            f"{a['model']} vs {a['baseline']}",
            axis_label=f"{a['metric']} on {a['ruler']} labels",
            gaps=gap_bars,
            chart_id=ids(),
        )
        out.append({"entry": a, "chart": chart})
    return out


def _label_views(doc: Mapping[str, Any], ids: Callable[[], str]) -> list[dict[str, Any]]:
    out = []
    cohort = doc.get("cohort") or {}
    colours = _colours(cohort.get("trusted_ruler", ""), cohort.get("automated_rulers") or [])
    entries = list(doc.get("label_audit") or [])
    for attr in dict.fromkeys(e["attribute"] for e in entries):
        mine = [e for e in entries if e["attribute"] == attr]
        charts = []
        for metric in dict.fromkeys(e["metric"] for e in mine):
            sel = [e for e in mine if e["metric"] == metric]
            series = [
                {
                    "name": e["automated"],
                    "colour": colours.get(e["automated"], ("#555", "cross"))[0],
                    "marker": colours.get(e["automated"], ("#555", "cross"))[1],
                    "rows": e["groups"],
                }
                for e in sel
            ]
            gap_bars = [
                {"name": s["name"], "colour": s["colour"], **e["gap"]}
                for s, e in zip(series, sel, strict=True)
            ]
            charts.append(
                interval_chart(
                    series,
                    title=f"{metric} agreement of automated labels with "
                    f"{sel[0]['trusted']} labels by {attr}",
                    axis_label=f"{metric} of automated vs {sel[0]['trusted']} labels",
                    gaps=gap_bars,
                    chart_id=ids(),
                )
            )
        out.append({"attribute": attr, "entries": mine, "charts": charts})
    return out


def _controlled_views(doc: Mapping[str, Any], ids: Callable[[], str]) -> list[dict[str, Any]]:
    out = []
    for c in doc.get("controlled_gap") or []:
        series = [
            {
                "name": "crude",
                "colour": "#999999",
                "marker": "square",
                "rows": [
                    {
                        "group": g["group"],
                        "n": g["n"],
                        "estimate": g["crude"],
                        "lower": None,
                        "upper": None,
                    }
                    for g in c["groups"]
                ],
            },
            {
                "name": f"standardised by {c['stratify']}",
                "colour": MODEL_COLOURS[0],
                "marker": "circle",
                "rows": [
                    {
                        "group": g["group"],
                        "n": g["n"],
                        "estimate": g["standardised"],
                        "lower": g["lower"],
                        "upper": g["upper"],
                    }
                    for g in c["groups"]
                ],
            },
        ]
        gap_bars = [
            {"name": "crude", "colour": "#999999", **c["crude_gap"]},
            {"name": "standardised", "colour": MODEL_COLOURS[0], **c["gap"]},
        ]
        chart = interval_chart(
            series,
            title=f"{c['metric']} of {c['model']} by {c['attribute']}, crude and with "
            f"{c['stratify']} held fixed",
            axis_label=f"{c['metric']} on {c['ruler']} labels",
            gaps=gap_bars,
            chart_id=ids(),
        )
        out.append({"entry": c, "chart": chart})
    return out


def _morphology_views(doc: Mapping[str, Any], ids: Callable[[], str]) -> list[dict[str, Any]]:
    out = []
    for m in doc.get("morphology") or []:
        if not m["descriptors"]:
            continue  # its note says why; the section says so when no attribute has any
        panels = []
        for d in m["descriptors"]:
            panels.append(
                {
                    "descriptor": d,
                    "chart": box_chart(
                        d["groups"],
                        title=f"{d['descriptor']} of {m['ruler']} masks by {m['attribute']}",
                        axis_label=d["descriptor"],
                        reference=m["reference"],
                        chart_id=ids(),
                    ),
                }
            )
        out.append({"entry": m, "panels": panels})
    return out


def _worst_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    w = dict(doc.get("worst_cases") or {})
    colours = _colours(w.get("trusted", ""), w.get("automated") or [])
    cases = []
    for c in w.get("cases") or []:
        width, height = float(c["width"]), float(c["height"])
        sx, sy = (float(v or 1.0) for v in c["spacing"])
        scale = 150.0 / max(width * sx, height * sy, 1e-9)
        contours = []
        for k in c["contours"]:
            if k["role"] == "prediction":
                colour, dash, sw = PREDICTION_COLOUR, None, "2.2"
            elif k["role"] == "trusted":
                colour, dash, sw = TRUSTED_COLOUR, None, "2.2"
            else:
                colour, dash, sw = colours.get(k["source"], ("#555", ""))[0], "5 3", "2"
            contours.append({**k, "colour": colour, "dash": dash, "stroke_width": sw})
        cases.append(
            {
                **c,
                "contours": contours,
                "px_w": f"{width * sx * scale:.0f}",
                "px_h": f"{height * sy * scale:.0f}",
                "sx": f"{sx:.6g}",
                "sy": f"{sy:.6g}",
                "vb_w": f"{width * sx:.6g}",
                "vb_h": f"{height * sy:.6g}",
            }
        )
    groups = list(dict.fromkeys(c["group"] for c in cases))
    w["by_group"] = [{"group": g, "cases": [c for c in cases if c["group"] == g]} for g in groups]
    w["legend"] = [
        {"name": f"{w.get('model')} (prediction)", "colour": PREDICTION_COLOUR, "dash": None},
        {"name": f"{w.get('trusted')} (trusted)", "colour": TRUSTED_COLOUR, "dash": None},
        *(
            {"name": f"{a} (automated)", "colour": colours.get(a, ("#555", ""))[0], "dash": "5 3"}
            for a in w.get("automated") or []
        ),
    ]
    return w


_GATE_DEFAULTS: Final[Mapping[str, Any]] = {
    "id": "?",
    "name": None,
    "kind": "",
    "status": "",
    "allowed": False,
    "estimate": None,
    "lower": None,
    "upper": None,
    "threshold": None,
    "measure": "",
    "decision_rule": "",
    "message": "",
    "notes": [],
    "next_steps": [],
    "evidence": [],
}


def _gate_defaults(gate: Mapping[str, Any]) -> dict[str, Any]:
    out = {**_GATE_DEFAULTS, **gate}
    out["ok"] = _gate_ok(gate)
    return out


def render_html(doc: Mapping[str, Any]) -> str:
    """The self-contained HTML report: inline CSS and SVG, no script, no request of any kind."""
    counter = iter(range(1, 1 << 30))

    def ids() -> str:
        return f"chart-{next(counter)}"

    # gates may come from other processes (merged xdist results) or older writers: every field
    # the template reads gets a default, so a missing optional field never breaks the report
    doc = dict(doc, gates=[_gate_defaults(g) for g in doc.get("gates") or []])
    v = verdict(doc["gates"])
    rulers = _ruler_views(doc, ids)
    head = next((r for r in rulers if r["headline"]), rulers[0] if rulers else None)
    glance = None
    if head is not None:
        glance = {**head, "chart": {**head["chart"], "id": ids()}}
    view = {
        "verdict": v,
        "blocking": [g for g in doc.get("gates") or [] if not _gate_ok(g)],
        "glance": glance,
        "rulers": rulers,
        "models": _model_views(doc, ids),
        "labels": _label_views(doc, ids),
        "controlled": _controlled_views(doc, ids),
        "morphology": _morphology_views(doc, ids),
        "worst": _worst_view(doc),
        "confidence": _pct_conf(doc),
    }
    return _environment().get_template("report.html.j2").render(doc=doc, v=view)


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from a CI artifact reader
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_reports(
    doc: Mapping[str, Any],
    *,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    md: str | Path | None = None,
) -> list[Path]:
    """Render and write the requested reports atomically; returns the paths written.

    Everything is rendered before anything is written, so a rendering error leaves no report
    from this run next to reports of an earlier one. The verdict of each comes from
    ``doc["gates"]``.
    """
    jobs: list[tuple[Path, Callable[[Mapping[str, Any]], str]]] = []
    if html is not None:
        jobs.append((Path(html), render_html))
    if json_path is not None:
        jobs.append((Path(json_path), render_json))
    if md is not None:
        jobs.append((Path(md), render_markdown))
    rendered = [(path, render(doc)) for path, render in jobs]
    for path, text in rendered:
        _atomic_write(path, text)
    return [path for path, _ in rendered]
