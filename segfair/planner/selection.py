"""Which cases to send to the annotators: per group, by disagreement (PPS) or at random."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segfair.errors import SegfairError
from segfair.planner.errors import PlanError
from segfair.planner.gateplan import GatePlan

if TYPE_CHECKING:
    from segfair.audit import Audit


#: Columns of the annotation list written by ``segfair plan``.
CASE_COLUMNS = ("case_id", "group", "priority", "reason", "inclusion_probability", "weight")


def _pps(size: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities ∝ ``size`` summing to ``k``, capped at 1."""
    size = np.asarray(size, dtype=float)
    pi = np.zeros(len(size))
    if k <= 0 or len(size) == 0:
        return pi
    if k >= len(size):
        return np.ones(len(size))
    capped = np.zeros(len(size), dtype=bool)
    for _ in range(len(size)):
        rest = k - int(capped.sum())
        s = size[~capped]
        pi[~capped] = rest * s / s.sum()
        over = (~capped) & (pi >= 1)
        if not over.any():
            break
        capped |= over
        pi[capped] = 1.0
    return np.clip(pi, 0.0, 1.0)


def select_cases(
    audit: Audit,
    plans: Sequence[GatePlan],
    *,
    within: str = "disagreement",
    automated: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The cases to send for trusted labels, per group, as the annotation team's list.

    Across groups the numbers come from the plans (the largest over gates on one attribute,
    i.e. the Neyman allocation of the most demanding gate). Within a group:

    * ``within="disagreement"`` (default): probability-proportional-to-size sampling with
      size ``0.05 + (1 − Dice(model, automated label))`` — the cases where the automated label
      and the model disagree most carry most of the uncertainty about the model's trusted
      score, so they are the best value per label. The draw is random (systematic PPS), the
      ``inclusion_probability`` is recorded and ``weight = 1 / inclusion_probability`` must go
      into a design weights column for the estimates to stay unbiased.
    * ``within="random"``: a uniform random sample of the group (no weights needed for group
      means when the design is stratified by the same attribute).

    Returns
    -------
    pandas.DataFrame
        ``case_id, group, priority, reason, inclusion_probability, weight``; ``priority`` 1 is
        the most useful label.
    """
    if within not in ("disagreement", "random"):
        raise PlanError(f"within must be 'disagreement' or 'random'; got {within!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    labelled = audit.labelled_mask()
    rows: list[dict[str, Any]] = []
    chosen: set[str] = set()
    auto = automated
    if auto is None:
        others = [r for r in audit.scores.rulers if r != audit.scores.trusted_ruler]
        auto = others[0] if others else None
    # one draw per group of an attribute, of the largest number any gate asks there: drawing
    # the second gate's extra cases from what the first left would record their conditional
    # probability as the inclusion probability, and the weights would no longer add up
    by_attr: dict[tuple[str, ...], list[GatePlan]] = {}
    for p in plans:
        by_attr.setdefault(tuple(p.by), []).append(p)
    for key, attr_plans in by_attr.items():
        g = audit.grouping(list(key) if len(key) > 1 else key[0])
        for i, lab in enumerate(g.labels):
            asks = [
                (int(q.groups["additional"][lab]), n, q)
                for n, q in enumerate(attr_plans)
                if lab in q.groups.index
            ]
            if not asks:
                continue
            k, _, p = max(asks, key=lambda t: (t[0], -t[1]))  # the first of the largest
            if k <= 0:
                continue
            # disagreement on the structure the plan's gate is decided on
            on = audit if p.structure is None else audit.for_structure(p.structure)
            dis = _disagreement(on, p.model, auto) if within == "disagreement" else None
            pool = np.where((g.codes == i) & ~labelled)[0]
            pool = np.array([c for c in pool if str(audit.cases[c]) not in chosen], dtype=int)
            if len(pool) == 0:
                continue
            k = min(k, len(pool))
            if dis is None:
                pi = np.full(len(pool), k / len(pool))
                pick = rng.choice(len(pool), size=k, replace=False)
                score = np.zeros(len(pool))
            else:
                score = np.nan_to_num(
                    dis[pool], nan=float(np.nanmean(dis)) if np.isfinite(dis).any() else 0.5
                )
                pi = _pps(0.05 + score, k)
                # systematic PPS in random order: exactly k cases, P(case) = pi
                order = rng.permutation(len(pool))
                cum = np.cumsum(pi[order])
                starts = rng.uniform(0, 1) + np.arange(k)
                pick = order[np.searchsorted(cum, starts, side="right").clip(0, len(pool) - 1)]
                pick = np.unique(pick)
            for j in pick:
                cid = str(audit.cases[pool[j]])
                chosen.add(cid)
                asked = int(p.groups["additional"][lab])
                why = f"{p.gate_id}: Neyman allocation asks {asked} more in {lab!r}"
                if dis is not None:
                    why += f"; model vs {auto} disagreement 1 − Dice = {score[j]:.2f}"
                rows.append(
                    {
                        "case_id": cid,
                        "group": lab,
                        "attribute": g.name,
                        "reason": why,
                        "score": float(score[j]),
                        "inclusion_probability": float(pi[j]),
                        "weight": float(1 / pi[j]) if pi[j] > 0 else float("nan"),
                    }
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "case_id",
            "group",
            "attribute",
            "reason",
            "score",
            "inclusion_probability",
            "weight",
        ],
    )
    frame = frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(2, "priority", np.arange(1, len(frame) + 1))
    return frame.loc[:, list(CASE_COLUMNS)]


def _disagreement(audit: Audit, model: str | None, automated: str | None) -> np.ndarray | None:
    """Per case ``1 − Dice(model, automated label)``; None when not scored."""
    if model is None or automated is None:
        return None
    try:
        s = audit.series("dice", model=model, ruler=automated)
    except SegfairError:
        return None
    return np.asarray(1.0 - s.x)
