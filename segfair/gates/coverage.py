"""The ``coverage`` gate: every group has usable predictions for its cases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal, TypeAlias, cast

import pandas as pd
from pydantic import model_validator

from segfair.audit import Audit, Estimate
from segfair.gates.base import BaseGate, Baseline, Only, _by_text, _fraction, _make_id
from segfair.gates.outcome import Check, Outcome, _by_arg

# (model, group) rows of a coverage table, as iterrows yields them
_KeyedRows: TypeAlias = Iterable[tuple[tuple[str, str], pd.Series]]


class CoverageGate(BaseGate):
    """Every group has a usable prediction for at least ``min`` of its cases (all models if none).

    Examples
    --------
    >>> CoverageGate(by="age_group", min=0.95).id
    'coverage[age_group]'
    """

    kind: Literal["coverage"] = "coverage"
    census: ClassVar[bool] = True
    by: str | tuple[str, ...]
    model: str | None = None
    min: float

    @model_validator(mode="after")
    def _limits(self) -> CoverageGate:
        _fraction(self.min, "min", " (the share of cases with a usable prediction)")
        return self

    @property
    def id(self) -> str:
        return _make_id(self.kind, _by_text(self.by), self.model)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        cov = audit.coverage(by=by, model=self.model, confidence=conf)
        table = cov.by_group[cov.by_group["expected"] > 0]
        checks = [
            Check(
                f"coverage of {m} in group {g!r}",
                Estimate(float(row["coverage"]), float(row["lower"]), float(row["upper"]), conf),
                self.min,
                "min",
                group=str(g),
            )
            for (m, g), row in cast(_KeyedRows, table.iterrows())
        ]
        ev = pd.DataFrame(
            {
                "source": [f"{m} coverage" for m, _ in table.index],
                "group": [str(g) for _, g in table.index],
                "n": table["expected"].to_numpy(),
                "estimate": table["coverage"].to_numpy(),
                "lower": table["lower"].to_numpy(),
                "upper": table["upper"].to_numpy(),
            }
        )
        short = table[table["coverage"] < self.min]
        steps = [
            f"{m} misses {int(row['missing'])} case(s) of {g!r} ({row['reasons']}); "
            "predict them or record why they are excluded"
            for (m, g), row in cast(_KeyedRows, short.iterrows())
        ]
        # the first group short of predictions is the finding; the report lists every case
        finding, steps = (steps[0], steps[1:]) if steps else ("", [])
        if finding:
            steps.append(
                "the HTML report's Coverage section lists each missing case and why it is missing"
            )
        return Outcome(
            checks=checks,
            sizes=pd.Series(dtype=float),
            evidence=ev,
            context="(cases with a usable prediction)",
            subject=f"the coverage of every {by_name} group",
            next_steps=steps,
            finding=finding,
            deterministic=True,
        )
