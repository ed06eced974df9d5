"""Building the report document of an audit and its gate results (:func:`build_report`)."""

from __future__ import annotations

import copy
import functools
import itertools
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pandas as pd

from segfair.metrics import LESION_METRICS
from segfair.report.caselists import (
    CASE_ROWS,
    MAX_LISTED,
    _columns,
    _excluded_counts,
    _value_cases,
)
from segfair.report.drawings import _worst_cases, _worst_cases_of_structures
from segfair.report.locations import config_gate_locations
from segfair.report.provenance import _provenance
from segfair.report.schema import SCHEMA_ID
from segfair.report.sections import (
    LESION_COUNTS_NEEDED,
    _amplification_entry,
    _attempt,
    _cohort_summary,
    _controlled_entry,
    _coverage,
    _distortion_entry,
    _fairness_entry,
    _gap_entry,
    _label_audit_entries,
    _lesion_entry,
    _morphology_entry,
)
from segfair.report.values import _jsonable
from segfair.report.verdict import _gate_ok, order_gates, verdict
from segfair.version import __version__

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.cohort import Cohort
    from segfair.cohort.config import SegfairConfig
    from segfair.gates import GateResult

T = TypeVar("T")

# The sections of an audit's report, by function and arguments, with the notes they left: they
# depend on the audit alone (the amplification pairs, which the gates choose, are arguments),
# so a second report of the same audit reuses them instead of summarising the replicates again
# (an xdist controller builds one while its workers check gates, then the final one).
_SECTIONS: weakref.WeakKeyDictionary[Audit, dict[tuple[str, tuple[Any, ...]], Any]] = (
    weakref.WeakKeyDictionary()
)

#: Metrics shown in the tables (the headline first); others stay in the score table.
TABLE_METRICS: Final = ("dice", "hd95")


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
    # a configuration gate without its line (the CLI, an xdist controller) gets it here
    where = config_gate_locations(config)
    for g in gates:
        if g.get("location") is None and g.get("id") in where:
            g["location"] = where[g["id"]]
    gates = [dict(g) for g in order_gates(gates)]

    rulers = list(scores.rulers)
    pairs = _model_pairs(gates, models)
    # every section is per structure; with several, each entry names its structure (one: the
    # document of before, no structure named)
    names = list(audit.structures)
    shared: dict[str, Any] = dict(
        attributes=attributes,
        models=models,
        rulers=rulers,
        metrics=metrics,
        metric=metric,
        table_metrics=table_metrics,
        pairs=pairs,
    )
    # a large cohort: learn what the sections ask of the bootstrap, compute it in one pass per
    # attribute (nothing happens for a cohort whose resamples are stored)
    audit.prefetch(
        lambda: [
            _structure_sections(audit.for_structure(s), [], **shared, prefix="", learning=True)
            for s in names
        ]
    )
    parts = [
        _structure_sections(
            audit.for_structure(s), notes, **shared, prefix=f"{s}: " if len(names) > 1 else ""
        )
        for s in names
    ]

    def merged(entries: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if len(names) == 1:
            return entries[0]
        return [{"structure": s, **e} for s, part in zip(names, entries, strict=True) for e in part]

    groups, gaps = merged([p[0] for p in parts]), merged([p[1] for p in parts])
    sections = {key: merged([p[2][key] for p in parts]) for key in parts[0][2]}
    coverage = parts[0][3] if len(names) == 1 else _merged_coverage(names, [p[3] for p in parts])

    first = audit.for_structure(names[0])
    attribute, model = _headline(gates, attributes, models, gaps, metric, trusted)
    headline_structure = _gate_structure(gates, names)
    how: dict[str, Any] = {
        "metric": metric,
        "attribute": attribute,
        "model": model,
        "per_group": worst_per_group,
    }
    if len(names) == 1:
        worst = _worst_cases(audit.for_structure(names[0]), cohort, config, **how)
    else:  # each structure's worst cases, the headline structure's first
        drawn = [headline_structure, *(s for s in names if s != headline_structure)]
        audits = [(s, audit.for_structure(s)) for s in drawn]
        worst = _worst_cases_of_structures(audits, cohort, config, **how)

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
        "cohort": _cohort_summary(first, attributes, metrics)
        | ({"structures": names} if len(names) > 1 else {}),
        "gates": gates,
        "verdict": verdict(gates),
        "groups": groups,
        "gaps": gaps,
        **sections,
        "coverage": coverage,
        "worst_cases": worst,
        "provenance": _provenance(first, config, seed),
        "notes": sorted(set(notes)),
        "warnings": _warnings(first, config, cohort),
    }
    out: dict[str, Any] = _jsonable(doc)
    # exclusions are per case (the same for every structure); values per structure
    rows = _case_rows(audit, parts[0][4])
    if rows is not None:  # a large cohort: its lists are counted here, listed in the sidecar
        out["coverage"]["excluded_counts"] = _excluded_counts(parts[0][4], first, attributes)
        out["coverage"]["case_lists"] = {
            "file": None,
            "max_listed": MAX_LISTED,
            "excluded": len(rows["excluded"]["case_id"]),
            "capped": rows["values"]["value"].count("capped"),
            "undefined": rows["values"]["value"].count("undefined"),
        }
        out[CASE_ROWS] = rows
    return out


def _case_rows(audit: Audit, excluded: pd.DataFrame) -> dict[str, dict[str, list[Any]]] | None:
    """Every row of the per-case lists when one of them is longer than :data:`MAX_LISTED` (the
    report is then summarised), else None."""
    from segfair.stats import DISTANCE_METRICS

    values = _value_cases(audit, tuple(DISTANCE_METRICS))
    if len(excluded) <= MAX_LISTED and len(values) <= MAX_LISTED:
        return None
    return {"excluded": _columns(excluded), "values": _columns(values)}


def _structure_sections(
    audit: Audit,
    notes: list[str],
    *,
    attributes: Sequence[str],
    models: Sequence[str],
    rulers: Sequence[str],
    metrics: Sequence[str],
    metric: str,
    table_metrics: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    prefix: str,
    learning: bool = False,
) -> tuple[list[Any], list[Any], dict[str, list[Any]], dict[str, Any], pd.DataFrame]:
    """The group tables, gaps, per-metric sections and coverage of one structure's audit, and
    every exclusion (the coverage lists the first few). ``learning``: a run under
    :meth:`~segfair.audit.Audit.prefetch`, whose sections that used stand-in replicates are
    thrown away (those that did not are kept for the real run)."""
    scores = audit.scores
    trusted = scores.trusted_ruler
    automated = [r for r in rulers if r != trusted]
    morph = scores.morphology
    descriptors = {
        str(d) for d in morph.loc[morph["ruler"].astype(str) == trusted, "descriptor"].unique()
    }
    stratify = "volume_ml" if "volume_ml" in descriptors else None
    if stratify is None:
        notes.append(
            f"{prefix}difficulty-controlled gap: no volume_ml descriptor of the trusted masks"
        )

    kept = _SECTIONS.setdefault(audit, {})
    memo: dict[Any, Any] = {} if learning else kept

    def each(what: str, fn: Callable[..., T | None], keys: Iterable[tuple[Any, ...]]) -> list[T]:
        found: list[T] = []
        for k in keys:
            key = (fn.__name__, (prefix, *k))
            if key not in memo:
                left: list[str] = []
                part = functools.partial(fn, audit, *k)
                before = audit.stand_ins
                memo[key] = (_attempt(left, prefix + what.format(*k), part), left)
                if learning and audit.stand_ins == before:  # genuine: the real run reuses it
                    kept[key] = memo[key]
            entry, left = memo[key]
            notes.extend(left)
            if entry is not None:
                found.append(copy.deepcopy(entry))  # the document is the caller's to change
        return found

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
    if any(m in LESION_METRICS for m in metrics):  # only then: reports of before are unchanged
        sections["lesions"] = each(
            "lesion counts by {} for {} on {}",
            _lesion_entry,
            itertools.product(attributes, models, rulers),
        )
        if not sections["lesions"]:
            notes.append(prefix + LESION_COUNTS_NEEDED)
    if learning:  # the coverage asks nothing of the bootstrap: the real run computes it
        return groups, gaps, sections, {}, pd.DataFrame()
    coverage, excluded = _coverage(audit, attributes, groups, notes, shown=table_metrics)
    return groups, gaps, sections, coverage, excluded


def _merged_coverage(names: Sequence[str], parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One coverage section of several structures: the rows that differ per structure
    (capped and undefined values) name theirs; availability is per case, the same for all."""
    out = dict(parts[0])
    out["capped"] = [
        {"structure": s, **row} for s, p in zip(names, parts, strict=True) for row in p["capped"]
    ]
    return out


def _gate_structure(gates: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The structure of the first blocking gate, else of the first gate, else the first one."""
    ordered = [g for g in gates if not _gate_ok(g)] + [g for g in gates if _gate_ok(g)]
    for g in ordered:
        found = str(g.get("structure") or "")
        if found in names:
            return found
    return names[0]


def _warnings(audit: Audit, config: SegfairConfig, cohort: Cohort | None) -> list[str]:
    """The run's warnings (sites without ``cluster``, too few clusters): the cohort's, or,
    without it, the same computed from the metadata the scores carry."""
    if cohort is not None:
        return list(cohort.warnings)
    from segfair.cohort import cluster_warnings

    meta = audit.scores.metadata
    if meta is None or (config.cluster is not None and config.cluster not in meta.columns):
        return []
    return cluster_warnings(config, meta, audit.scores.groups)


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
