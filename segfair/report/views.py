"""What the HTML template shows, built from the document alone: charts and tables per section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from segfair.report.caselists import MAX_TABLE_ROWS
from segfair.report.charts import box_chart, interval_chart
from segfair.report.formatting import _distortion_sentence
from segfair.report.palette import MODEL_COLOURS, PREDICTION_COLOUR, TRUSTED_COLOUR, _colours


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
    # per structure (several: each case names its own) and group, in the order drawn
    keys = list(dict.fromkeys((c.get("structure"), c["group"]) for c in cases))
    w["by_group"] = [
        {
            "structure": s,
            "group": g,
            "cases": [c for c in cases if (c.get("structure"), c["group"]) == (s, g)],
        }
        for s, g in keys
    ]
    w["legend"] = [
        {"name": f"{w.get('model')} (prediction)", "colour": PREDICTION_COLOUR, "dash": None},
        {"name": f"{w.get('trusted')} (trusted)", "colour": TRUSTED_COLOUR, "dash": None},
        *(
            {"name": f"{a} (automated)", "colour": colours.get(a, ("#555", ""))[0], "dash": "5 3"}
            for a in w.get("automated") or []
        ),
    ]
    return w


def _coverage_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The capped/undefined table (totals per metric, model and ruler when it has more than
    :data:`MAX_TABLE_ROWS` rows) and, for a summarised report, where its per-case lists are."""
    cov = doc.get("coverage") or {}
    rows = list(cov.get("capped") or [])
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    if len(rows) > MAX_TABLE_ROWS:
        # every attribute splits the same cases: one attribute's groups add up to the total
        first: dict[tuple[Any, ...], Any] = {}
        for r in rows:
            key = (r.get("structure"), r["metric"], r["model"], r["ruler"])
            if first.setdefault(key, r["attribute"]) != r["attribute"]:
                continue
            t = totals.setdefault(
                key,
                {
                    "structure": key[0],
                    "metric": key[1],
                    "model": key[2],
                    "ruler": key[3],
                    "capped": 0,
                    "undefined": 0,
                },
            )
            t["capped"] += r["capped"]
            t["undefined"] += r["undefined"]
    lists = cov.get("case_lists")
    excluded = list(cov.get("excluded") or [])
    return {
        "capped_rows": len(rows),
        "capped_totals": list(totals.values()) if totals else None,
        "lists": lists,
        "file": (lists or {}).get("file"),
        # the exclusions are counted, not listed, when the JSON report could not hold them all
        "excluded_cut": int(cov.get("excluded_total") or 0) > len(excluded),
        "excluded_counts": list(cov.get("excluded_counts") or []),
    }
