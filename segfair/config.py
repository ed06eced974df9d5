"""Old import path, kept for users; the code lives in :mod:`segfair.cohort.config`."""

from __future__ import annotations

from segfair.cohort.config import (
    BAD_TEMPLATE,
    CONFIG_FILENAMES,
    NAME_CLASH,
    NO_CONFIG,
    NO_TOOL_TABLE,
    UNKNOWN_KEY,
    UNKNOWN_TRUSTED,
    AttributeSpec,
    DesignSpec,
    SegfairConfig,
    SourceSpec,
    find_config,
    load_config,
    parse_config,
)

__all__ = [
    "BAD_TEMPLATE",
    "CONFIG_FILENAMES",
    "NAME_CLASH",
    "NO_CONFIG",
    "NO_TOOL_TABLE",
    "UNKNOWN_KEY",
    "UNKNOWN_TRUSTED",
    "AttributeSpec",
    "DesignSpec",
    "SegfairConfig",
    "SourceSpec",
    "find_config",
    "load_config",
    "parse_config",
]
