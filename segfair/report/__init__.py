"""The audit report: a JSON document, rendered as HTML for people and Markdown for CI summaries."""

# :func:`build_report` turns an :class:`~segfair.audit.Audit` and the gate results into one
# JSON-able document (schema ``segfair-report/1``, see ``docs/report-schema.md`` and the JSON
# Schema ``report.schema.json`` shipped in :mod:`segfair.templates`). Everything the renderers
# show comes from that document alone: under pytest-xdist the controller renders a document that
# a worker built, with ``doc["gates"]`` replaced by the results merged from every worker, so the
# verdict is always derived from ``doc["gates"]`` at render time and never stored as the source of
# truth.
#
# The report's job is to make the *biased ruler* visible: every subgroup estimate is shown under
# the trusted ruler and under each automated ruler side by side, with the share of the gap the
# automated labels hide (or add), the label audit, the amplification between models, the gap with
# difficulty held fixed, the morphology of each group, what is missing, and the worst cases drawn
# as contours.
#
# Example:
#
#     doc = build_report(session.audit, results, config=session.config, seed=0)
#     write_reports(doc, html="fairness.html", json_path="fairness.json")
#
# The data flow, one module per step: values, rows → sections, provenance, drawings → document
# (build_report); verdict → formatting → summary, github, markdown; palette → charts → views →
# html; jsonfile; caselists (the per-case lists of a large cohort, and their sidecar file);
# writer (write_reports).

from __future__ import annotations

from segfair.report.caselists import (
    CASE_ROWS,
    CASES_SUFFIX,
    MAX_LISTED,
    MAX_TABLE_ROWS,
    case_lists_path,
    render_case_lists,
)
from segfair.report.charts import box_chart, interval_chart
from segfair.report.document import TABLE_METRICS, build_report
from segfair.report.drawings import DRAWING_FORMAT, NO_COHORT_REASON, fill_path, outline_path
from segfair.report.formatting import STATUS_LABELS, fmt, fmt_interval, fmt_p, fmt_pct
from segfair.report.github import github_annotations
from segfair.report.html import render_html
from segfair.report.jsonfile import render_json
from segfair.report.locations import config_gate_locations, gate_table_lines, location
from segfair.report.markdown import markdown_report, md_escape, render_markdown
from segfair.report.palette import (
    AUTOMATED_COLOURS,
    MARKERS,
    MODEL_COLOURS,
    PREDICTION_COLOUR,
    TRUSTED_COLOUR,
)
from segfair.report.schema import REPORT_SCHEMA_VERSION, SCHEMA_ID, load_schema
from segfair.report.summary import summary_lines, summary_lines_from_dicts
from segfair.report.values import DIGITS
from segfair.report.verdict import order_gates, verdict
from segfair.report.writer import write_reports

__all__ = [
    "AUTOMATED_COLOURS",
    "CASES_SUFFIX",
    "CASE_ROWS",
    "DIGITS",
    "DRAWING_FORMAT",
    "MARKERS",
    "MAX_LISTED",
    "MAX_TABLE_ROWS",
    "MODEL_COLOURS",
    "NO_COHORT_REASON",
    "PREDICTION_COLOUR",
    "REPORT_SCHEMA_VERSION",
    "SCHEMA_ID",
    "STATUS_LABELS",
    "TABLE_METRICS",
    "TRUSTED_COLOUR",
    "box_chart",
    "build_report",
    "case_lists_path",
    "config_gate_locations",
    "fill_path",
    "fmt",
    "fmt_interval",
    "fmt_p",
    "fmt_pct",
    "gate_table_lines",
    "github_annotations",
    "interval_chart",
    "load_schema",
    "location",
    "markdown_report",
    "md_escape",
    "order_gates",
    "outline_path",
    "render_case_lists",
    "render_html",
    "render_json",
    "render_markdown",
    "summary_lines",
    "summary_lines_from_dicts",
    "verdict",
    "write_reports",
]
