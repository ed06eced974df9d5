"""The numerical core of the audit: a stratified, paired, vectorised bootstrap and its intervals."""

from __future__ import annotations

from segfair.stats.bootstrap import Replicates, group_statistic
from segfair.stats.design import Design, build_design, stable_hash
from segfair.stats.intervals import (
    cluster_df,
    few_clusters_interval,
    fieller_interval,
    max_abs_interval,
    percentile_interval,
    rare_extreme_bound,
    ratio_interval,
    selection_level,
    studentized_interval,
    wilson_interval,
)
from segfair.stats.kinds import (
    COUNT_METRICS,
    DISTANCE_METRICS,
    FRACTION_METRICS,
    LOWER_IS_BETTER,
    STATISTICS,
    Statistic,
)

__all__ = [
    "COUNT_METRICS",
    "DISTANCE_METRICS",
    "FRACTION_METRICS",
    "LOWER_IS_BETTER",
    "STATISTICS",
    "Design",
    "Replicates",
    "Statistic",
    "build_design",
    "cluster_df",
    "few_clusters_interval",
    "fieller_interval",
    "group_statistic",
    "max_abs_interval",
    "percentile_interval",
    "rare_extreme_bound",
    "ratio_interval",
    "selection_level",
    "stable_hash",
    "studentized_interval",
    "wilson_interval",
]
