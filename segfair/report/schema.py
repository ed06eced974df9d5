"""The report document's schema: its version, its id and the shipped JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

#: Version of the document layout; bumped on any incompatible change (``"schema"`` field).
REPORT_SCHEMA_VERSION: Final = "2"

SCHEMA_ID: Final = f"segfair-report/{REPORT_SCHEMA_VERSION}"


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report document (``report.schema.json`` in the package)."""
    text = resources.files("segfair.templates").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
