"""The self-contained HTML report: the Jinja environment over the shipped templates."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from segfair.report.formatting import _status_label, fmt, fmt_interval, fmt_p, fmt_pct
from segfair.report.values import _jsonable
from segfair.report.verdict import _gate_ok, _status, order_gates, verdict
from segfair.report.views import (
    _controlled_views,
    _coverage_view,
    _label_views,
    _model_views,
    _morphology_views,
    _pct_conf,
    _ruler_views,
    _worst_view,
)

if TYPE_CHECKING:
    import jinja2


def _pretty(value: Any) -> str:
    return json.dumps(_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)


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


_GATE_DEFAULTS: Final[Mapping[str, Any]] = {
    "id": "?",
    "name": None,
    "kind": "",
    "status": "",
    "reason": "",
    "allowed": False,
    "decidable_limit": None,
    "cases_needed": None,
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
    out["status"] = _status(gate)
    return out


#: The sections of the document whose entries are per structure.
STRUCTURE_SECTIONS = (
    "groups",
    "gaps",
    "fairness",
    "distortion",
    "amplification",
    "label_audit",
    "controlled_gap",
    "morphology",
    "lesions",
)
#: The HTML sections shown per structure, in order (``lesions`` only when it was scored).
STRUCTURE_PARTS = ("rulers", "labels", "amplification", "controlled", "morphology", "lesions")
#: The HTML sections of the whole cohort that follow the structures' sections.
COHORT_PARTS = ("coverage", "worst", "provenance")


def _structure_docs(doc: Mapping[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """The document of each structure (its entries of the per-structure sections), or the
    document itself, unnamed, when the cohort has one structure."""
    names = list((doc.get("cohort") or {}).get("structures") or [])
    if len(names) < 2:
        return [(None, dict(doc))]
    out: list[tuple[str | None, dict[str, Any]]] = []
    for name in names:
        sub = dict(doc)
        for key in STRUCTURE_SECTIONS:
            if key in doc:
                sub[key] = [e for e in doc.get(key) or [] if e.get("structure") == name]
        out.append((name, sub))
    return out


def _numbers(
    names: Sequence[str | None], lesions: bool
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Section numbers: with one structure 3 Rulers … 7 Morphology (8 Lesions), then the
    cohort's; with several, one number per structure (its sections k.1, k.2, …), then the
    cohort's."""
    parts = [p for p in STRUCTURE_PARTS if p != "lesions" or lesions]
    if len(names) == 1:
        own = [{p: str(3 + i) for i, p in enumerate(parts)}]
        after = 3 + len(parts)
    else:
        own = [
            {"structure": str(3 + k), **{p: f"{3 + k}.{i + 1}" for i, p in enumerate(parts)}}
            for k in range(len(names))
        ]
        after = 3 + len(names)
    return own, {p: str(after + i) for i, p in enumerate(COHORT_PARTS)}


def _lesion_views(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lesion-wise entries by attribute; each row with its small-lesion rate as an interval
    (``small_rate``) for the ``interval`` filter."""
    entries = []
    for e in doc.get("lesions") or []:
        rows = []
        for r in [*e["groups"], {"group": None, **e["overall"]}]:
            small = r.get("small") or {}
            rows.append({**r, "small_rate": {"estimate": small.get("rate"), **_bounds(small)}})
        entries.append({**e, "rows": rows})
    return [
        {"attribute": a, "entries": [e for e in entries if e["attribute"] == a]}
        for a in dict.fromkeys(e["attribute"] for e in entries)
    ]


def _bounds(counts: Mapping[str, Any]) -> dict[str, Any]:
    return {"lower": counts.get("lower"), "upper": counts.get("upper")}


def render_html(doc: Mapping[str, Any]) -> str:
    """The self-contained HTML report: inline CSS and SVG, no script, no request of any kind."""
    counter = iter(range(1, 1 << 30))

    def ids() -> str:
        return f"chart-{next(counter)}"

    # gates may come from other processes (merged xdist results) or older writers: every field
    # the template reads gets a default, so a missing optional field never breaks the report
    doc = dict(doc, gates=[_gate_defaults(g) for g in order_gates(doc.get("gates") or [])])
    v = verdict(doc["gates"])
    docs = _structure_docs(doc)
    multi = len(docs) > 1
    numbers, cohort_numbers = _numbers([n for n, _ in docs], "lesions" in doc)
    shown = (doc.get("worst_cases") or {}).get("structure")
    # chart ids in the order of before: every structure's ruler charts, the glance, the rest
    rulers = [_ruler_views(d, ids) for _, d in docs]
    k = next((i for i, (n, _) in enumerate(docs) if n == shown), 0)
    head = next((r for r in rulers[k] if r["headline"]), rulers[k][0] if rulers[k] else None)
    glance = None
    if head is not None:
        glance = {**head, "chart": {**head["chart"], "id": ids()}}
    parts = [
        {
            "name": name,
            "suffix": f"-{name}" if multi else "",
            "h": 3 if multi else 2,
            "no": no,
            "doc": d,
            "rulers": ruler_views,
            "models": _model_views(d, ids),
            "labels": _label_views(d, ids),
            "controlled": _controlled_views(d, ids),
            "morphology": _morphology_views(d, ids),
            "lesions": _lesion_views(d) if "lesions" in doc else None,
        }
        for (name, d), ruler_views, no in zip(docs, rulers, numbers, strict=True)
    ]
    view = {
        "verdict": v,
        "blocking": [g for g in doc.get("gates") or [] if not _gate_ok(g)],
        "glance": glance,
        "glance_structure": docs[k][0],
        "multi": multi,
        "parts": parts,
        "no": cohort_numbers,
        "worst": _worst_view(doc),
        "coverage": _coverage_view(doc),
        "confidence": _pct_conf(doc),
    }
    return _environment().get_template("report.html.j2").render(doc=doc, v=view)
