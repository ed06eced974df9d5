"""The per-case score tables that `evaluate` produces and `Audit` consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_STRUCTURE", "SCORE_COLUMNS", "Scores"]

#: The name of the one structure of a cohort without ``[structures]`` (the same text as
#: ``segfair.cohort.config.DEFAULT_STRUCTURE``; the two layers may not import each other).
DEFAULT_STRUCTURE = "foreground"
#: Columns of :attr:`Scores.table` (one row per case, structure, model, ruler and metric).
SCORE_COLUMNS = ("case_id", "structure", "model", "ruler", "metric", "value")
#: Columns of :attr:`Scores.agreement` (automated ruler scored against the trusted ruler).
AGREEMENT_COLUMNS = ("case_id", "structure", "ruler", "reference", "metric", "value")
#: Columns of :attr:`Scores.morphology` (descriptors of each reference mask).
MORPHOLOGY_COLUMNS = ("case_id", "structure", "ruler", "descriptor", "value")
UNKNOWN_STRUCTURE = "unknown structure {name!r}; the structures are: {valid}"
WHICH_STRUCTURE = (
    "these scores hold {n} structures ({valid}): name one with structure=…, or take one "
    "structure's view with Scores.for_structure(name)"
)
#: Columns of :attr:`Scores.exclusions` (a case left out of one source, and why).
EXCLUSION_COLUMNS = ("case_id", "kind", "source", "reason")


def _only(frame: pd.DataFrame, structure: str) -> pd.DataFrame:
    return frame.loc[frame["structure"].astype(str) == structure].reset_index(drop=True)


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
        ``case_id, structure, model, ruler, metric, value``: every metric of every model against
        every ruler, per structure. Distances of a missed lesion are ``inf`` here; capping happens
        in the audit, counted. A frame without ``structure`` (built by hand) gets the column,
        holding the one structure.
    agreement
        ``case_id, structure, ruler, reference, metric, value``: each automated ruler scored as
        if it were a prediction against the trusted ruler (the label audit).
    morphology
        ``case_id, structure, ruler, descriptor, value``: descriptors of each reference mask
        (volume in ml, surface area in mm², sphericity, components, elongation, flatness).
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
    structures
        The structure names in declared order (default: those in the tables, else
        :data:`DEFAULT_STRUCTURE`). :meth:`for_structure` gives one structure's view.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"case_id": ["a", "a"], "structure": ["core", "enh"], "model": "m",
    ...                   "ruler": "e", "metric": "dice", "value": [0.9, 0.5]})
    >>> s = Scores(t, pd.DataFrame({"sex": ["F"]}, index=["a"]), "e", ("e",), ("m",))
    >>> s.structures, float(s.for_structure("enh").values("dice", model="m", ruler="e")["a"])
    (('core', 'enh'), 0.5)
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
    structures: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        frames = ("table", "agreement", "morphology")
        seen = [
            str(v)
            for name in frames
            if "structure" in getattr(self, name).columns
            for v in pd.unique(getattr(self, name)["structure"])
        ]
        names = tuple(self.structures) or tuple(dict.fromkeys(seen)) or (DEFAULT_STRUCTURE,)
        object.__setattr__(self, "structures", tuple(str(n) for n in names))
        unknown = sorted(set(seen) - set(self.structures))
        if unknown:
            raise ValueError(
                f"Scores hold structures {unknown} that are not among {list(self.structures)}"
            )
        for name in frames:
            frame = getattr(self, name)
            if "structure" not in frame.columns:
                if len(self.structures) > 1:
                    raise ValueError(
                        f"Scores.{name} needs a structure column: the structures are "
                        f"{list(self.structures)}"
                    )
                frame = frame.copy()
                frame.insert(min(1, len(frame.columns)), "structure", self.structures[0])
                object.__setattr__(self, name, frame)
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

    def for_structure(self, name: str) -> Scores:
        """The scores of one structure (itself when it is the only one).

        Raises
        ------
        ValueError
            ``name`` is not a structure of these scores (the message lists them).
        """
        if name not in self.structures:
            raise ValueError(UNKNOWN_STRUCTURE.format(name=name, valid=", ".join(self.structures)))
        if len(self.structures) == 1:
            return self
        return replace(
            self,
            table=_only(self.table, name),
            agreement=_only(self.agreement, name),
            morphology=_only(self.morphology, name),
            structures=(name,),
        )

    def _one(self, frame: pd.DataFrame, structure: str | None) -> pd.DataFrame:
        if structure is None:
            if len(self.structures) > 1:
                raise ValueError(
                    WHICH_STRUCTURE.format(n=len(self.structures), valid=", ".join(self.structures))
                )
            return frame
        if structure not in self.structures:
            raise ValueError(
                UNKNOWN_STRUCTURE.format(name=structure, valid=", ".join(self.structures))
            )
        return frame[frame["structure"].astype(str) == structure]

    def values(
        self, metric: str, *, model: str, ruler: str, structure: str | None = None
    ) -> pd.Series:
        """Per-case values of one metric for one model scored on one ruler (index ``case_id``);
        ``structure`` may be omitted when there is one."""
        t = self._one(self.table, structure)
        sel = t[(t["metric"] == metric) & (t["model"] == model) & (t["ruler"] == ruler)]
        return pd.Series(
            sel["value"].to_numpy(dtype=float),
            index=pd.Index(sel["case_id"], name="case_id"),
            name=metric,
        )

    def agreement_values(
        self, metric: str, *, ruler: str, structure: str | None = None
    ) -> pd.Series:
        """Per-case agreement of an automated ruler with the trusted one (index ``case_id``)."""
        t = self._one(self.agreement, structure)
        sel = t[(t["metric"] == metric) & (t["ruler"] == ruler)]
        return pd.Series(
            sel["value"].to_numpy(dtype=float),
            index=pd.Index(sel["case_id"], name="case_id"),
            name=metric,
        )

    def descriptor(
        self, descriptor: str, *, ruler: str | None = None, structure: str | None = None
    ) -> pd.Series:
        """Per-case morphology descriptor of a ruler's masks (default: the trusted ruler)."""
        t = self._one(self.morphology, structure)
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
