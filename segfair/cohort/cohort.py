"""The :class:`Cohort`: a validated cohort's cases, subgroup labels and where each mask lives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import pandas as pd

from segfair.cohort.config import SegfairConfig

__all__ = ["Cohort", "SourceKind"]

SourceKind = Literal["model", "ruler"]


@dataclass(frozen=True, eq=False)
class Cohort:
    """A validated cohort: cases, their subgroup labels and where each mask lives.

    Attributes
    ----------
    config
        The configuration it was built from.
    metadata
        The metadata table, index ``case_id`` (text), sorted by case id.
    groups
        One column per attribute with the subgroup label of each case (``"unknown"`` for missing).
    exclusions
        ``case_id, kind, source, reason``: masks a case lacks by declaration (a partial ruler,
        or a missing prediction with ``missing_predictions = "exclude"``).
    cache_dir
        The cache folder of the run that loaded it (None: the cache is off), where what is
        learnt about its files is kept (:mod:`segfair.cohort.fileindex`, the report's drawings).
    warnings
        What the run should say about the cohort without refusing it: site columns while
        ``cluster`` is not set, groups with too few clusters (:mod:`segfair.cohort.sites`).
    """

    config: SegfairConfig
    metadata: pd.DataFrame
    groups: pd.DataFrame
    exclusions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["case_id", "kind", "source", "reason"])
    )
    cache_dir: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.metadata.index)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.config.models)

    @property
    def rulers(self) -> tuple[str, ...]:
        return tuple(self.config.rulers)

    @property
    def trusted_ruler(self) -> str:
        return self.config.trusted_ruler

    def __len__(self) -> int:
        return len(self.metadata)

    def path(self, kind: SourceKind, name: str, case_id: str) -> Path:
        """The file of one case's mask from one source."""
        return Path(self.file(kind, name, case_id))

    def file(self, kind: SourceKind, name: str, case_id: str) -> str:
        """:meth:`path` as text (no ``Path`` parse: a million files)."""
        return self._templates[kind, name].replace("{case_id}", case_id)

    @cached_property
    def _templates(self) -> dict[tuple[SourceKind, str], str]:
        # each source's template resolved once (two Path parses a file were ≈15% of building
        # the tasks of 100,000 small cases): a case id (letters, digits, '_', '-', '.', spaces;
        # load_cohort refuses others) cannot change what resolving does
        return {
            (kind, name): str(
                self.config.resolve(
                    (self.config.models if kind == "model" else self.config.rulers)[name].path
                )
            )
            for kind, name in self.sources()
        }

    def sources(self) -> Iterator[tuple[SourceKind, str]]:
        for name in self.config.models:
            yield "model", name
        for name in self.config.rulers:
            yield "ruler", name

    @cached_property
    def _excluded(self) -> dict[str, set[tuple[str, str]]]:
        # one pass over the exclusions, not a table filter per case (quadratic in cohort size)
        out: dict[str, set[tuple[str, str]]] = {}
        for cid, kind, source in zip(
            self.exclusions["case_id"],
            self.exclusions["kind"],
            self.exclusions["source"],
            strict=True,
        ):
            out.setdefault(str(cid), set()).add((str(kind), str(source)))
        return out

    def available(self, case_id: str) -> dict[tuple[SourceKind, str], str]:
        """The files of the masks this case has (declared exclusions left out)."""
        missing = self._excluded.get(case_id, set())
        return {
            (k, n): self.file(k, n, case_id) for k, n in self.sources() if (k, n) not in missing
        }
