"""The self-contained HTML report: the Jinja environment over the shipped templates."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from segfair.report.formatting import _status_label, fmt, fmt_interval, fmt_p, fmt_pct
from segfair.report.values import _jsonable
from segfair.report.verdict import _gate_ok, _status, order_gates, verdict
from segfair.report.views import (
    _controlled_views,
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
)
SHOWN_STRUCTURE = (
    "The cohort has {n} structures ({names}): the gates table shows every gate, and the "
    "sections of this report show the structure {shown!r} (that of the first blocking gate, "
    "else of the first gate). The JSON report holds the sections of every structure."
)


def _one_structure(doc: dict[str, Any]) -> dict[str, Any]:
    """A document of several structures with its sections restricted to the structure the
    worst cases show (the first blocking gate's), saying so in its notes; the HTML shows one
    structure's sections rather than mixing several under one heading."""
    names = list((doc.get("cohort") or {}).get("structures") or [])
    if len(names) < 2:
        return doc
    shown = (doc.get("worst_cases") or {}).get("structure") or names[0]
    out = dict(doc)
    for key in STRUCTURE_SECTIONS:
        out[key] = [e for e in doc.get(key) or [] if e.get("structure") == shown]
    coverage = dict(doc.get("coverage") or {})
    coverage["capped"] = [r for r in coverage.get("capped") or [] if r.get("structure") == shown]
    out["coverage"] = coverage
    note = SHOWN_STRUCTURE.format(n=len(names), names=", ".join(names), shown=shown)
    out["notes"] = [note, *(doc.get("notes") or [])]
    return out


def render_html(doc: Mapping[str, Any]) -> str:
    """The self-contained HTML report: inline CSS and SVG, no script, no request of any kind."""
    counter = iter(range(1, 1 << 30))

    def ids() -> str:
        return f"chart-{next(counter)}"

    # gates may come from other processes (merged xdist results) or older writers: every field
    # the template reads gets a default, so a missing optional field never breaks the report
    doc = dict(doc, gates=[_gate_defaults(g) for g in order_gates(doc.get("gates") or [])])
    doc = _one_structure(doc)
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
