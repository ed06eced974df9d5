"""The cohort layer: the configuration, the metadata table, the validated cohort, the file index.

``config`` (the ``[tool.segfair]`` settings) → ``table`` (the metadata table and its subgroups) →
``cohort`` (:class:`Cohort`) → ``loading`` (:func:`load_cohort`, every problem at once);
``sites`` says what a cluster bootstrap needs (site columns, clusters per group);
``fileindex`` remembers what was learnt about input files. Names are resolved on first use
(PEP 562), so reading the configuration imports neither numpy nor pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from segfair.cohort.cohort import Cohort, SourceKind
    from segfair.cohort.config import (
        CONFIG_FILENAMES,
        AttributeSpec,
        DesignSpec,
        SegfairConfig,
        SourceSpec,
        find_config,
        load_config,
        parse_config,
    )
    from segfair.cohort.fileindex import FileIndex, file_index
    from segfair.cohort.loading import (
        DUPLICATE_ID,
        MISSING_COLUMN,
        MISSING_FILE,
        NOT_A_FILE,
        UNSAFE_ID,
        cache_folder,
        load_cohort,
    )
    from segfair.cohort.sites import (
        FEW_CLUSTERS,
        SITE_WORDS,
        cluster_warnings,
        quote,
        site_columns,
    )
    from segfair.cohort.table import (
        DEFAULT_AGE_RANGE,
        NON_FINITE,
        NON_NUMERIC,
        OUT_OF_RANGE,
        SUPPORTED_TABLES,
        bin_labels,
        read_table,
        safe_case_id,
    )

__all__ = [
    "CONFIG_FILENAMES",
    "DEFAULT_AGE_RANGE",
    "DUPLICATE_ID",
    "FEW_CLUSTERS",
    "MISSING_COLUMN",
    "MISSING_FILE",
    "NON_FINITE",
    "NON_NUMERIC",
    "NOT_A_FILE",
    "OUT_OF_RANGE",
    "SITE_WORDS",
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
    "cluster_warnings",
    "file_index",
    "find_config",
    "load_cohort",
    "load_config",
    "parse_config",
    "quote",
    "read_table",
    "safe_case_id",
    "site_columns",
]

# Submodule → the public names it provides (resolved on first use).
_MODULES = {
    "cohort": "Cohort SourceKind",
    "config": "CONFIG_FILENAMES AttributeSpec DesignSpec SegfairConfig SourceSpec find_config "
    "load_config parse_config",
    "fileindex": "FileIndex file_index",
    "loading": "DUPLICATE_ID MISSING_COLUMN MISSING_FILE NOT_A_FILE UNSAFE_ID cache_folder "
    "load_cohort",
    "sites": "FEW_CLUSTERS SITE_WORDS cluster_warnings quote site_columns",
    "table": "DEFAULT_AGE_RANGE NON_FINITE NON_NUMERIC OUT_OF_RANGE SUPPORTED_TABLES bin_labels "
    "read_table safe_case_id",
}
_HOME = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
