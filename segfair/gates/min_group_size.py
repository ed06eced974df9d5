"""The ``min_group_size`` gate: every group has enough cases."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from segfair.audit import Audit, Estimate
from segfair.gates.base import BaseGate, Baseline, Only, _by_text, _make_id
from segfair.gates.outcome import Check, Outcome, _by_arg


class MinGroupSizeGate(BaseGate):
    """Every group has at least ``min`` cases (with labels of ``ruler`` when given).

    Examples
    --------
    >>> MinGroupSizeGate(by="age_group", ruler="expert", min=30).id
    'min_group_size[age_group,expert]'
    """

    kind: Literal["min_group_size"] = "min_group_size"
    census: ClassVar[bool] = True
    by: str | tuple[str, ...]
    ruler: str | None = None
    min: int = Field(ge=1)

    @property
    def id(self) -> str:
        return _make_id(self.kind, _by_text(self.by), self.ruler)

    def check(self, audit: Audit, conf: float, groups: Only, baseline: Baseline = None) -> Outcome:
        by = _by_arg(self.by)
        by_name = _by_text(self.by)
        sizes = audit.group_sizes(by=by, ruler=self.ruler)
        need = self.min
        with_ruler = f" with {self.ruler} labels" if self.ruler else ""
        checks = [
            Check(
                f"size of group {g!r}",
                Estimate(float(n), float(n), float(n), conf),
                float(need),
                "min",
                group=str(g),
            )
            for g, n in sizes.items()
        ]
        ev = pd.DataFrame(
            {
                "source": f"cases{with_ruler}",
                "group": [str(g) for g in sizes.index],
                "n": sizes.to_numpy(),
                "estimate": np.nan,
                "lower": np.nan,
                "upper": np.nan,
            }
        )
        steps = [
            f"add {need - int(n)} case(s){with_ruler} to group {str(g)!r}"
            for g, n in sizes.items()
            if n < need
        ]
        return Outcome(
            checks=checks,
            sizes=pd.Series(dtype=float),
            evidence=ev,
            context=f"(cases{with_ruler})",
            subject=f"the number of cases{with_ruler} in every {by_name} group",
            next_steps=steps,
            deterministic=True,
        )
