"""The cohort layer: the configuration, the metadata table, the validated cohort, the file index.

``config`` (the ``[tool.segfair]`` settings) → ``table`` (the metadata table and its subgroups) →
``cohort`` (:class:`Cohort`) → ``loading`` (:func:`load_cohort`, every problem at once);
``fileindex`` remembers what was learnt about input files. Names are resolved lazily (PEP 562),
so reading the configuration imports neither numpy nor pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Public name → module.
_EXPORTS = {
    "AttributeSpec": "segfair.cohort.config",
    "bin_labels": "segfair.cohort.table",
    "cache_folder": "segfair.cohort.loading",
    "Cohort": "segfair.cohort.cohort",
    "CONFIG_FILENAMES": "segfair.cohort.config",
    "DEFAULT_AGE_RANGE": "segfair.cohort.table",
    "DesignSpec": "segfair.cohort.config",
    "DUPLICATE_ID": "segfair.cohort.loading",
    "file_index": "segfair.cohort.fileindex",
    "FileIndex": "segfair.cohort.fileindex",
    "find_config": "segfair.cohort.config",
    "load_cohort": "segfair.cohort.loading",
    "load_config": "segfair.cohort.config",
    "MISSING_COLUMN": "segfair.cohort.loading",
    "MISSING_FILE": "segfair.cohort.loading",
    "NON_FINITE": "segfair.cohort.table",
    "NON_NUMERIC": "segfair.cohort.table",
    "NOT_A_FILE": "segfair.cohort.loading",
    "OUT_OF_RANGE": "segfair.cohort.table",
    "parse_config": "segfair.cohort.config",
    "read_table": "segfair.cohort.table",
    "safe_case_id": "segfair.cohort.table",
    "SegfairConfig": "segfair.cohort.config",
    "SourceKind": "segfair.cohort.cohort",
    "SourceSpec": "segfair.cohort.config",
    "SUPPORTED_TABLES": "segfair.cohort.table",
    "UNSAFE_ID": "segfair.cohort.loading",
}

__all__ = [
    "CONFIG_FILENAMES",
    "DEFAULT_AGE_RANGE",
    "DUPLICATE_ID",
    "MISSING_COLUMN",
    "MISSING_FILE",
    "NON_FINITE",
    "NON_NUMERIC",
    "NOT_A_FILE",
    "OUT_OF_RANGE",
    "SUPPORTED_TABLES",
    "UNSAFE_ID",
    "AttributeSpec",
    "Cohort",
    "DesignSpec",
    "FileIndex",
    "SegfairConfig",
    "SourceKind",
    "SourceSpec",
    "bin_labels",
    "cache_folder",
    "file_index",
    "find_config",
    "load_cohort",
    "load_config",
    "parse_config",
    "read_table",
    "safe_case_id",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from segfair.cohort.cohort import Cohort as Cohort
    from segfair.cohort.cohort import SourceKind as SourceKind
    from segfair.cohort.config import CONFIG_FILENAMES as CONFIG_FILENAMES
    from segfair.cohort.config import AttributeSpec as AttributeSpec
    from segfair.cohort.config import DesignSpec as DesignSpec
    from segfair.cohort.config import SegfairConfig as SegfairConfig
    from segfair.cohort.config import SourceSpec as SourceSpec
    from segfair.cohort.config import find_config as find_config
    from segfair.cohort.config import load_config as load_config
    from segfair.cohort.config import parse_config as parse_config
    from segfair.cohort.fileindex import FileIndex as FileIndex
    from segfair.cohort.fileindex import file_index as file_index
    from segfair.cohort.loading import DUPLICATE_ID as DUPLICATE_ID
    from segfair.cohort.loading import MISSING_COLUMN as MISSING_COLUMN
    from segfair.cohort.loading import MISSING_FILE as MISSING_FILE
    from segfair.cohort.loading import NOT_A_FILE as NOT_A_FILE
    from segfair.cohort.loading import UNSAFE_ID as UNSAFE_ID
    from segfair.cohort.loading import cache_folder as cache_folder
    from segfair.cohort.loading import load_cohort as load_cohort
    from segfair.cohort.table import DEFAULT_AGE_RANGE as DEFAULT_AGE_RANGE
    from segfair.cohort.table import NON_FINITE as NON_FINITE
    from segfair.cohort.table import NON_NUMERIC as NON_NUMERIC
    from segfair.cohort.table import OUT_OF_RANGE as OUT_OF_RANGE
    from segfair.cohort.table import SUPPORTED_TABLES as SUPPORTED_TABLES
    from segfair.cohort.table import bin_labels as bin_labels
    from segfair.cohort.table import read_table as read_table
    from segfair.cohort.table import safe_case_id as safe_case_id


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
