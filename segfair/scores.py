"""The per-case score tables that `evaluate` produces and `Audit` consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["SCORE_COLUMNS", "Scores"]

#: Columns of :attr:`Scores.table` (one row per case, model, ruler and metric).
SCORE_COLUMNS = ("case_id", "model", "ruler", "metric", "value")
#: Columns of :attr:`Scores.agreement` (automated ruler scored against the trusted ruler).
AGREEMENT_COLUMNS = ("case_id", "ruler", "reference", "metric", "value")
#: Columns of :attr:`Scores.morphology` (descriptors of each reference mask).
MORPHOLOGY_COLUMNS = ("case_id", "ruler", "descriptor", "value")
#: Columns of :attr:`Scores.exclusions` (a case left out of one source, and why).
EXCLUSION_COLUMNS = ("case_id", "kind", "source", "reason")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="float64" if c == "value" else "object") for c in columns}
    )


@dataclass(frozen=True, eq=False)
class Scores:
    """Tidy per-case measurements of one cohort.

    Attributes
    ----------
    table
        ``case_id, model, ruler, metric, value``: every metric of every model against every ruler.
        Distances of a missed lesion are ``inf`` here; capping happens in the audit, counted.
    agreement
        ``case_id, ruler, reference, metric, value``: each automated ruler scored as if it were a
        prediction against the trusted ruler (the label audit).
    morphology
        ``case_id, ruler, descriptor, value``: descriptors of each reference mask (volume in ml,
        surface area in mm², sphericity, components, elongation, flatness).
    groups
        One row per case of the cohort (index ``case_id``), one column per attribute holding the
        subgroup label; missing values are the explicit group ``"unknown"``.
    metadata
        The case metadata as read (index ``case_id``), for numeric covariates such as age.
    attribute_columns
        Attribute name → the metadata column it was derived from.
    exclusions
        ``case_id, kind, source, reason``: a case left out of a model or ruler, never silently.
    trusted_ruler, rulers, models
        Names as configured; ``rulers`` includes the trusted one.
    settings
        Metric definitions used (HD95 variant, NSD tolerance, surface definition, empty-mask
        policy); recorded with every result.
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    trusted_ruler: str
    rulers: tuple[str, ...]
    models: tuple[str, ...]
    agreement: pd.DataFrame = field(default_factory=lambda: _empty(AGREEMENT_COLUMNS))
    morphology: pd.DataFrame = field(default_factory=lambda: _empty(MORPHOLOGY_COLUMNS))
    metadata: pd.DataFrame | None = None
    attribute_columns: Mapping[str, str] = field(default_factory=dict)
    exclusions: pd.DataFrame = field(default_factory=lambda: _empty(EXCLUSION_COLUMNS))
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, cols in (
            ("table", SCORE_COLUMNS),
            ("agreement", AGREEMENT_COLUMNS),
            ("morphology", MORPHOLOGY_COLUMNS),
            ("exclusions", EXCLUSION_COLUMNS),
        ):
            frame = getattr(self, name)
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(
                    f"Scores.{name} lacks the columns {missing}; expected {list(cols)}"
                )
        if self.trusted_ruler not in self.rulers:
            raise ValueError(
                f"trusted ruler {self.trusted_ruler!r} is not among the rulers {list(self.rulers)}"
            )

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attribute (subgroup) names, in declared order."""
        return tuple(str(c) for c in self.groups.columns)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names present in :attr:`table`, in first-seen order."""
        return tuple(pd.unique(self.table["metric"]))

    def values(self, metric: str, *, model: str, ruler: str) -> pd.Series:
        """Per-case values of one metric for one model scored on one ruler (index ``case_id``)."""
        t = self.table
        sel = t[(t["metric"] == metric) & (t["model"] == model) & (t["ruler"] == ruler)]
        return pd.Series(
            sel["value"].to_numpy(dtype=float),
            index=pd.Index(sel["case_id"], name="case_id"),
            name=metric,
        )

    def agreement_values(self, metric: str, *, ruler: str) -> pd.Series:
        """Per-case agreement of an automated ruler with the trusted one (index ``case_id``)."""
        t = self.agreement
        sel = t[(t["metric"] == metric) & (t["ruler"] == ruler)]
        return pd.Series(
            sel["value"].to_numpy(dtype=float),
            index=pd.Index(sel["case_id"], name="case_id"),
            name=metric,
        )

    def descriptor(self, descriptor: str, *, ruler: str | None = None) -> pd.Series:
        """Per-case morphology descriptor of a ruler's masks (default: the trusted ruler)."""
        t = self.morphology
        ruler = self.trusted_ruler if ruler is None else ruler
        sel = t[(t["descriptor"] == descriptor) & (t["ruler"] == ruler)]
        return pd.Series(
            sel["value"].to_numpy(dtype=float),
            index=pd.Index(sel["case_id"], name="case_id"),
            name=descriptor,
        )

    def wide(self) -> pd.DataFrame:
        """The score table joined with the subgroup labels, one row per score."""
        return self.table.join(self.groups, on="case_id")
