"""The Markdown summary (``$GITHUB_STEP_SUMMARY``, PR comments) and Markdown escaping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from segfair.report.caselists import CASES_SUFFIX
from segfair.report.formatting import _distortion_sentence, _status_label, fmt, fmt_interval
from segfair.report.verdict import _gate_ok, _status, _warns, order_gates, verdict
from segfair.sinks import for_markdown_text

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
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    for old, new in _MD_ESCAPES:
        text = text.replace(old, new)
    # after the escapes: the zero-width spaces it inserts are entities that must stay entities
    return for_markdown_text(text).replace("\n", "<br>")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = [
        "| " + " | ".join(header) + " |",  # our own words; the data cells are escaped
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return out


def _md_warnings(warnings: Iterable[Any]) -> list[str]:
    """The run's warnings (sites without ``cluster``, too few clusters) as a quoted block."""
    items = [f"> - {md_escape(w)}" for w in warnings]
    return ["> ⚠️ **Warnings**", ">", *items, ""] if items else []


def _with_unit(text: str, gate: Mapping[str, Any]) -> str:
    unit = gate.get("unit") or ""
    return f"{text} {unit}" if unit and text != "n/a" else text


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A compact summary for ``$GITHUB_STEP_SUMMARY`` and PR comments: the verdict, the gate
    table and the headline ruler comparison."""
    gates = order_gates(list(doc.get("gates") or []))
    v = verdict(gates)
    icon = {"passed": "✅", "failed": "❌", "error": "🛑"}.get(v["status"], "⚠️")
    lines = [f"## {icon} {md_escape(v['line'])}", ""]
    lines += _md_warnings(doc.get("warnings") or ())
    blocking = [g for g in gates if not _gate_ok(g)]
    for g in blocking + [g for g in gates if _warns(g)]:
        lines.append(
            f"- **{md_escape(g.get('id', '?'))}** ({_status_label(g)}): "
            f"{md_escape(g.get('message', ''))}"
        )
        steps = list(g.get("next_steps") or [])
        if steps:
            lines.append(f"  - next: {md_escape(steps[0])}")
    if blocking or v["warnings"]:
        lines.append("")
    # labels help an undecided gate only: a passed or failed one is decided (issue 15)
    planned = [
        g
        for g in gates
        if _status(g) == "inconclusive" and (g.get("labels_needed") or {}).get("total_additional")
    ]
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
    lines += _md_prediction_powered(gates)
    if gates:
        lines += _md_table(
            [
                "gate",
                "status",
                "reason",
                "estimate [interval]",
                "threshold",
                "decidable limit (80% power)",
                "decision rule",
            ],
            [
                [
                    g.get("id", "?"),
                    _status_label(g),
                    g.get("reason") or "",
                    fmt_interval(g),
                    _with_unit(fmt(g.get("threshold")), g),
                    _with_unit(fmt(g.get("decidable_limit")), g),
                    g.get("decision_rule", ""),
                ]
                for g in gates
            ],
        )
        lines.append("")
    head = doc.get("headline") or {}
    # with several structures, the ruler table and the lesion line of each (entries name theirs)
    names: list[str | None] = list((doc.get("cohort") or {}).get("structures") or []) or [None]
    for name in names:
        lines += _md_ruler(doc, head, name if len(names) > 1 else None)
    for name in names:
        lines += _md_lesions(doc, head, name if len(names) > 1 else None)
    lists = (doc.get("coverage") or {}).get("case_lists")
    if lists:  # a large cohort: say where its per-case lists went
        # unnamed when rendered before write_reports named it: the report's name, then the suffix
        where = (
            f"`{md_escape(lists['file'])}`" if lists.get("file") else f"the `*{CASES_SUFFIX}` file"
        )
        lines += [
            f"Per-case lists ({lists['excluded']} exclusions, {lists['capped']} capped and "
            f"{lists['undefined']} undefined values) are in {where} next to the JSON report.",
            "",
        ]
    c = doc.get("cohort") or {}
    prov = doc.get("provenance") or {}
    lines.append(
        f"<sub>segfair {md_escape(doc.get('segfair_version', '?'))} · "
        f"{md_escape(c.get('n_cases', '?'))} cases · seed {md_escape(prov.get('seed'))}"
        f" · n_boot {md_escape(prov.get('n_boot'))}"
        + (" · estimator ppi" if prov.get("estimator") == "ppi" else "")
        + " · the HTML report holds the full "
        "evidence</sub>"
    )
    return "\n".join(lines) + "\n"


def _md_prediction_powered(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per model of each gate decided prediction-powered: its gap beside the
    labelled-only gap, the proxy and the labelled sample the estimate is worth."""
    lines: list[str] = []
    for g in gates:
        for b in g.get("prediction_powered") or []:
            rows = b.get("groups") or []
            n = sum(int(r.get("n") or 0) for r in rows)
            worth = sum(float(r["effective_n"]) for r in rows if r.get("effective_n") is not None)
            alone = fmt_interval(b.get("labelled_gap"))
            lines.append(
                f"- {md_escape(g.get('id', '?'))}: {md_escape(b.get('model'))} gap "
                f"{fmt_interval(b.get('gap'))} (labelled only {alone}); proxy "
                f"{md_escape(b.get('proxy'))}; {n} labelled cases worth about {round(worth)}"
            )
    if not lines:
        return []
    head = "**Prediction-powered** (the proxy ruler on every case, corrected on the labelled ones):"
    return [head, *lines, ""]


def _md_ruler(doc: Mapping[str, Any], head: Mapping[str, Any], structure: str | None) -> list[str]:
    """The headline ruler comparison (of one structure, when the cohort has several)."""
    lines: list[str] = []
    dist = [
        d
        for d in doc.get("distortion") or []
        if d["metric"] == head.get("metric")
        and d["attribute"] == head.get("attribute")
        and d["model"] == head.get("model")
        and d.get("structure") == structure
    ]
    if dist:
        metric, attr, model = head["metric"], head["attribute"], head["model"]
        of = "" if structure is None else f" (structure {md_escape(structure)})"
        lines.append(
            f"### The ruler: {md_escape(metric)} of {md_escape(model)} by {md_escape(attr)}{of}"
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
    return lines


def _md_lesions(
    doc: Mapping[str, Any], head: Mapping[str, Any], structure: str | None
) -> list[str]:
    """One line of lesions detected per group (headline attribute and model, trusted ruler)."""
    trusted = (doc.get("cohort") or {}).get("trusted_ruler") or head.get("trusted")
    lines: list[str] = []
    for e in doc.get("lesions") or []:
        if (e["attribute"], e["model"], e["ruler"], e.get("structure")) != (
            head.get("attribute"),
            head.get("model"),
            trusted,
            structure,
        ):
            continue
        parts = []
        for r in e["groups"]:
            said = []
            if r.get("all"):
                said.append(f"{r['all']['detected']} of {r['all']['lesions']} detected")
            if r.get("small"):
                said.append(f"small {r['small']['detected']} of {r['small']['lesions']}")
            parts.append(f"{r['group']}: {', '.join(said)}")
        of = "" if structure is None else f", structure {md_escape(structure)}"
        tail = ""
        if e.get("detection_gap") and e["detection_gap"].get("estimate") is not None:
            tail = f"; small-lesion detection gap {fmt_interval(e['detection_gap'])}"
        lines.append(
            f"**Lesions** ({md_escape(e['model'])} on {md_escape(e['ruler'])} by "
            f"{md_escape(e['attribute'])}{of}): {md_escape('; '.join(parts))}{tail}"
        )
        lines.append("")
    return lines


markdown_report = render_markdown
