"""SVG charts of the HTML report: geometry here, markup in the templates (Jinja escapes every
label)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from segfair.report.formatting import fmt, fmt_interval
from segfair.report.palette import TRUSTED_COLOUR


def _el(tag: str, text: str | None = None, **attrs: Any) -> dict[str, Any]:
    return {
        "tag": tag,
        "text": text,
        "attrs": {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items() if v is not None},
    }


def _line(x1: float, x2: float, y1: float, y2: float, **attrs: Any) -> dict[str, Any]:
    """An SVG line, its ends at 0.1 px."""
    return _el("line", x1=f"{x1:.1f}", x2=f"{x2:.1f}", y1=f"{y1:.1f}", y2=f"{y2:.1f}", **attrs)


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
                    _line(
                        sx(row["lower"]),
                        sx(row["upper"]),
                        y,
                        y,
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
            els.append(_line(gxs(t), gxs(t), top, bottom, class_="grid"))
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
                    _line(
                        gxs(gp["lower"]),
                        gxs(gp["upper"]),
                        y + bar_h / 2,
                        y + bar_h / 2,
                        stroke=gp["colour"],
                        stroke_width="2",
                    )
                )
            if gp.get("estimate") is not None:
                els.append(
                    _line(
                        gxs(gp["estimate"]),
                        gxs(gp["estimate"]),
                        y,
                        y + bar_h,
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
            els.append(_line(sx(r["p05"]), sx(r["p95"]), y, y, stroke="#555", stroke_width="1.2"))
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
            _line(sx(r["median"]), sx(r["median"]), y - 6, y + 6, stroke=colour, stroke_width="2.5")
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


def _clip(text: Any, n: int) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"
