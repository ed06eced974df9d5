"""Sites: metadata columns that identify where a case was acquired, and the cluster warnings.

Cases of one site (a dataset, a centre, a scanner) resemble each other; a bootstrap that
resamples them as independent cases gives intervals that are too narrow for a new site. A column
that looks like a site while ``cluster`` is not set, a group that lies in a single cluster, and a
group with only a handful of clusters are each said once per run (:func:`cluster_warnings`),
computed when the cohort is loaded and shown by every front (terminal, reports, job summary).

Every column name and group label in a warning is quoted with its control characters escaped,
so that data can never start a line, a terminal escape or a CI workflow command.

Example
-------
>>> site_columns(["patient_id", "age", "dataset", "ScannerModel", "website_url"])
['dataset', 'ScannerModel']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pandas as pd

    from segfair.cohort.config import SegfairConfig

__all__ = [
    "FEW_CLUSTERS",
    "FEW_CLUSTERS_WARNING",
    "SINGLE_CLUSTER_WARNING",
    "SITE_WORDS",
    "UNSET_CLUSTER_WARNING",
    "cluster_warnings",
    "quote",
    "site_columns",
]

#: Words that make a column name look like a site, the most site-like first (a ``dataset`` or
#: ``site`` is the unit cases were collected in; a scanner or vendor may cut across sites).
SITE_WORDS: Final = (
    "dataset",
    "site",
    "center",
    "centre",
    "institution",
    "hospital",
    "clinic",
    "scanner",
    "manufacturer",
    "vendor",
)
#: Below this many clusters in a group, a cluster bootstrap is rough (docs/statistics.md).
FEW_CLUSTERS: Final = 10
#: How many group labels a warning names before "and N more".
_SHOWN: Final = 5

UNSET_CLUSTER_WARNING = (
    "{columns} look{s} like {what} and the configuration sets no cluster: cases of one site are "
    "resampled as if independent, so the intervals are too narrow when cases of a site resemble "
    "each other. "
    "Set cluster = {first} to resample whole sites, or site_columns = [] if no column "
    "identifies a site."
)
SINGLE_CLUSTER_WARNING = (
    "cluster {cluster}: {groups} of {attribute} lie{s} in a single cluster, so the cluster "
    "bootstrap has nothing to resample there: no interval for {them}, nor for the gaps by "
    "{attribute}."
)
FEW_CLUSTERS_WARNING = (
    "cluster {cluster}: groups of {attribute} span only a handful of clusters ({counts}); a "
    "cluster bootstrap over fewer than {few} clusters per group gives rough intervals, usually "
    "too narrow: read them as approximate."
)


def _tokens(name: str) -> list[str]:
    # "ScannerModel" → scanner, model; "acquisition-site_id" → acquisition, site, id
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w]
    return [w[:-1] if w.endswith("s") and w[:-1] in SITE_WORDS else w for w in words]


def _rank(name: str) -> int | None:
    ranks = [SITE_WORDS.index(t) for t in _tokens(name) if t in SITE_WORDS]
    return min(ranks) if ranks else None


def site_columns(columns: Iterable[object], *, declared: Sequence[str] | None = None) -> list[str]:
    """The columns that look like a site, the most site-like first.

    ``declared`` (the ``site_columns`` key) replaces the detection by name: ``[]`` declares that
    no column identifies a site.

    Examples
    --------
    >>> site_columns(["age", "manufacturer", "dataset"])
    ['dataset', 'manufacturer']
    >>> site_columns(["age", "dataset"], declared=["hosp_code"])
    ['hosp_code']
    """
    if declared is not None:
        return list(declared)
    ranked = [(r, i, str(c)) for i, c in enumerate(columns) if (r := _rank(str(c))) is not None]
    return [c for _, _, c in sorted(ranked)]


def quote(text: object) -> str:
    """Data as it may appear in a warning: quoted, with control and format characters escaped.

    Examples
    --------
    >>> print(quote("site\\n::error::x"))
    'site\\n::error::x'
    """
    return repr(str(text))


def _toml(text: str) -> str:
    # a TOML basic string the user can paste; \uXXXX for anything not printable
    return json.dumps(text, ensure_ascii=not text.isprintable())


def _names(labels: Sequence[str]) -> str:
    shown = ", ".join(quote(x) for x in labels[:_SHOWN])
    more = len(labels) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def cluster_warnings(
    config: SegfairConfig, metadata: pd.DataFrame, groups: pd.DataFrame
) -> list[str]:
    """The run's warnings about sites and clusters, as plain text safe to print.

    Without ``cluster``: one warning naming the columns that look like a site
    (:func:`site_columns`) and hold between 2 and n − 1 distinct values. With ``cluster``: per
    attribute, the groups that lie in a single cluster (no interval) and the groups with fewer
    than :data:`FEW_CLUSTERS` clusters (rough intervals). ``metadata`` and ``groups`` are those of
    the :class:`~segfair.cohort.Cohort` (index ``case_id``).

    Example
    -------
    >>> cluster_warnings(cohort.config, cohort.metadata, cohort.groups)  # doctest: +SKIP
    ["'dataset' (4 values) looks like a site and the configuration sets no cluster: ..."]
    """
    n = len(metadata)
    if config.cluster is None:
        found = []
        for column in site_columns(metadata.columns, declared=config.site_columns):
            if column not in metadata.columns:
                continue
            k = int(metadata[column].nunique(dropna=True))
            if 2 <= k < n:  # one value is one site; one per case is no grouping at all
                found.append((column, k))
        if not found:
            return []
        return [
            UNSET_CLUSTER_WARNING.format(
                columns=", ".join(f"{quote(c)} ({k} values)" for c, k in found),
                s="s" if len(found) == 1 else "",
                what="a site" if len(found) == 1 else "sites",
                first=_toml(found[0][0]),
            )
        ]
    raw = metadata[config.cluster].astype(object)
    # as the audit codes them: a missing value is a cluster of its own
    clusters = raw.where(raw.notna(), "unknown").astype(str)
    out: list[str] = []
    for attribute in groups.columns:
        per = clusters.groupby(groups[attribute], observed=True, sort=True).nunique()
        counts = [(str(g), int(k)) for g, k in per.items()]
        single = [g for g, k in counts if k < 2]
        few = [(g, k) for g, k in counts if 2 <= k < FEW_CLUSTERS]
        if single:
            out.append(
                SINGLE_CLUSTER_WARNING.format(
                    cluster=quote(config.cluster),
                    groups=("group " if len(single) == 1 else "groups ") + _names(single),
                    attribute=quote(attribute),
                    s="s" if len(single) == 1 else "",
                    them="it" if len(single) == 1 else "them",
                )
            )
        if few:
            shown = ", ".join(f"{quote(g)} {k}" for g, k in few[:_SHOWN])
            more = len(few) - _SHOWN
            out.append(
                FEW_CLUSTERS_WARNING.format(
                    cluster=quote(config.cluster),
                    attribute=quote(attribute),
                    counts=shown + (f" and {more} more" if more > 0 else ""),
                    few=FEW_CLUSTERS,
                )
            )
    return out
