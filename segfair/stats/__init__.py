"""The numerical core of the audit: a stratified, paired, vectorised bootstrap and its intervals."""

from __future__ import annotations

from segfair.stats import kinds
from segfair.stats.bootstrap import Replicates, group_statistic
from segfair.stats.design import STREAM_ABOVE, Design, build_design, stable_hash
from segfair.stats.intervals import (
    cluster_df,
    few_clusters_interval,
    fieller_interval,
    max_abs_interval,
    percentile_interval,
    rare_extreme_bound,
    rare_proxy_bound,
    ratio_interval,
    selection_level,
    studentized_interval,
    wilson_interval,
)
from segfair.stats.kinds import *  # noqa: F403  (the metric kinds and statistics: kinds.__all__)
from segfair.stats.ppi import PPIDetail, ppi_means

__all__ = [
    "STREAM_ABOVE",
    "Design",
    "PPIDetail",
    "Replicates",
    "build_design",
    "cluster_df",
    "few_clusters_interval",
    "fieller_interval",
    "group_statistic",
    "max_abs_interval",
    "percentile_interval",
    "ppi_means",
    "rare_extreme_bound",
    "rare_proxy_bound",
    "ratio_interval",
    "selection_level",
    "stable_hash",
    "studentized_interval",
    "wilson_interval",
]
__all__ += kinds.__all__
