"""The sections of the report document computed from an audit, one function per section, each
reading the audit through its public methods only."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar, cast

import numpy as np
import pandas as pd

from segfair.report.caselists import MAX_LISTED, _excluded, _rows
from segfair.report.rows import _group_rows, _overall
from segfair.report.values import _est, _int, _num

if TYPE_CHECKING:
    from segfair.audit import Audit

#: ``iterrows()`` of a frame with a MultiIndex (pandas-stubs types its keys as ``Hashable``).
_KeyedRows: TypeAlias = Iterable[tuple[tuple[Any, ...], pd.Series]]

T = TypeVar("T")


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
        "trusted_groups": _group_rows(cast(pd.DataFrame, d.by_group.loc[d.trusted])),
        "automated_groups": _group_rows(cast(pd.DataFrame, d.by_group.loc[automated])),
        "notes": list(d.notes),
    }


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
        "model_groups": _group_rows(cast(pd.DataFrame, a.by_group.loc[model])),
        "baseline_groups": _group_rows(cast(pd.DataFrame, a.by_group.loc[baseline])),
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
    r = audit.morphology_shift(by=attr)
    if audit.learning:  # only its replicates were wanted
        return {}
    g = audit.grouping(attr)
    tests = r.tests
    out = []
    for name in list(dict.fromkeys(str(d) for d in r.by_group.index.get_level_values(0))):
        # the descriptor per case in cohort order; each group's finite values
        x = audit.descriptor_series(name, ruler=r.ruler).x
        rows = []
        for group, row in r.by_group.loc[name].iterrows():
            v = g.values_of(g.labels.index(str(group)), x)
            v = v[np.isfinite(v)]
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
    # each row's case in the groups table, found once for all attributes (a million cases)
    codes, uniques = pd.factorize(frame["case_id"], use_na_sentinel=False)
    index = scores.groups.index.astype(str)
    where = index.get_indexer(pd.Index([str(u) for u in uniques], dtype=object))[codes]
    rows = []
    for attr in attributes:
        labels = scores.groups[attr].astype(str).to_numpy(dtype=object)
        group = np.where(where >= 0, labels[where], np.nan)
        counts = frame.assign(group=group).groupby(["metric", "model", "ruler", "group"])
        summed = counts[["n", "capped", "undefined"]].sum()
        # a MultiIndex: every key is a (metric, model, ruler, group) tuple
        for (metric, model, ruler, g), row in cast(_KeyedRows, summed.iterrows()):
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
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The coverage section, and every exclusion (the section lists the first
    :data:`MAX_LISTED`)."""
    scores = audit.scores
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    missing: list[pd.DataFrame] = []
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
            for (m, g), row in cast(_KeyedRows, cov.by_group.iterrows())
        ]
        predictions.append({"attribute": attr, "rows": rows})
        missing.append(cov.missing)
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
    excluded = _excluded(missing, scores.exclusions)
    section = {
        "n_cases": len(audit.cases),
        "predictions": predictions,
        "labels": labels,
        "capped": capped,
        "cap": _num(audit.cap),
        "excluded": _rows(excluded, MAX_LISTED),
        "excluded_total": len(excluded),
    }
    return section, excluded


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


#: The per-case lesion counts the lesion-wise section reads (segfair.metrics.lesions): every
#: kept reference lesion and those detected, the small ones and those detected.
LESION_COUNTS: Final = ("lesions", "lesions_detected", "small_lesions", "small_lesions_detected")
LESION_COUNTS_NEEDED: Final = (
    "lesion-wise section: no per-case lesion counts were scored, so missed lesions cannot be "
    'listed; add them to metrics (metrics = [..., "lesions", "lesions_detected", '
    '"small_lesions", "small_lesions_detected"])'
)


def _lesion_counts(total: float, detected: float) -> dict[str, Any]:
    return {
        "lesions": _int(total),
        "detected": _int(detected),
        "missed": _int(total - detected),
        "rate": _num(detected / total) if total else None,
    }


def _lesion_entry(audit: Audit, attr: str, model: str, ruler: str) -> dict[str, Any] | None:
    """Reference lesions, detected and missed, per group of ``attr``: every lesion, the small
    ones (with their rate's interval and the detection gap, :meth:`Audit.detection_gap`) and the
    larger ones (every lesion minus the small ones). None when no count was scored."""
    from segfair.audit import AuditError

    g = audit.grouping(attr)
    series: dict[str, Any] = {}
    for name in LESION_COUNTS:
        try:
            series[name] = audit.series(name, model=model, ruler=ruler)
        except AuditError:  # not among the metrics: that part of the table is left out
            continue
    have_all = {"lesions", "lesions_detected"} <= set(series)
    have_small = {"small_lesions", "small_lesions_detected"} <= set(series)
    if not (have_all or have_small):
        return None
    # a case is counted with all its counts or not at all (a partial ruler, a missing mask)
    valid = np.logical_and.reduce([s.valid for s in series.values()])
    x = {k: np.where(valid, s.x, 0.0) for k, s in series.items()}
    notes: list[str] = []
    detection = None
    if have_small:
        detection = audit.detection_gap(by=attr, model=model, ruler=ruler)
        notes += list(detection.notes)

    def part(rows: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"n": int(np.count_nonzero(rows))}
        if have_all:
            out["all"] = _lesion_counts(x["lesions"][rows].sum(), x["lesions_detected"][rows].sum())
        if have_small:
            small, found = x["small_lesions"][rows].sum(), x["small_lesions_detected"][rows].sum()
            out["small"] = _lesion_counts(small, found)
            if have_all:
                out["larger"] = _lesion_counts(
                    x["lesions"][rows].sum() - small, x["lesions_detected"][rows].sum() - found
                )
        return out

    groups = []
    for k, label in enumerate(g.labels):
        row = {"group": str(label), **part(valid & (g.codes == k))}
        if detection is not None and label in detection.by_group.index:
            d = detection.by_group.loc[label]
            row["small"] |= {"lower": _num(d["lower"]), "upper": _num(d["upper"])}
        groups.append(row)
    return {
        "id": _gate_key("lesions", attr, model, ruler),
        "attribute": attr,
        "model": model,
        "ruler": ruler,
        "small_volume": None if detection is None else _num(detection.small_volume),
        "groups": groups,
        "overall": part(valid),
        "detection_gap": None if detection is None else _est(detection.gap),
        "min_group": None if detection is None else detection.min_group,
        "max_group": None if detection is None else detection.max_group,
        "notes": notes,
    }
