"""Sampling-design weights: from the ``[design]`` table, and after an annotation batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from segfair.planner.errors import PlanError

if TYPE_CHECKING:
    from segfair.cohort.config import DesignSpec, SegfairConfig
    from segfair.scores import Scores


def design_weights(
    design: DesignSpec | Mapping[str, Any],
    groups: pd.DataFrame,
    metadata: pd.DataFrame | None = None,
) -> pd.Series:
    """Inverse inclusion probability of each case (index ``case_id``) under a sampling design.

    ``by`` + ``fractions``: a case of group ``h`` was sent for trusted labels with probability
    ``fractions[h]``, so its weight is ``1 / fractions[h]``. ``weights``: the metadata column
    holds the weight itself. Only the labelled cases' weights are ever used.

    Examples
    --------
    >>> g = pd.DataFrame({"age": ["young", "old", "old"]}, index=["a", "b", "c"])
    >>> design_weights({"by": "age", "fractions": {"young": 0.5, "old": 0.25}}, g).tolist()
    [2.0, 4.0, 4.0]
    """
    spec = dict(design) if isinstance(design, Mapping) else design.model_dump()
    if spec.get("weights"):
        col = str(spec["weights"])
        if metadata is None or col not in metadata.columns:
            raise PlanError(f"design weights column {col!r} is not in the metadata table")
        w = pd.to_numeric(metadata[col], errors="coerce").astype(float)
        w.index = w.index.astype(str)
        return w.rename("weight")
    by, fractions = spec.get("by"), spec.get("fractions") or {}
    if by is None or by not in groups.columns:
        raise PlanError(
            f"design.by = {by!r} is not an attribute; valid: {', '.join(map(str, groups.columns))}"
        )
    labels = groups[by].astype(str)
    missing = sorted(set(labels) - set(map(str, fractions)))
    if missing:
        raise PlanError(f"design.fractions has no fraction for the group(s) {missing} of {by!r}")
    f = labels.map({str(k): float(v) for k, v in fractions.items()})
    w = 1.0 / f
    w.index = w.index.astype(str)
    return w.rename("weight")


def config_weights(config: SegfairConfig, scores: Scores) -> pd.Series | None:
    """The design weights a configuration declares (None without ``[design]``)."""
    if config.design is None:
        return None
    return design_weights(config.design, scores.groups, scores.metadata)


def batch_weights(batch: pd.DataFrame, labelled: Sequence[str] | pd.Index) -> pd.Series:
    """Design weights of the trusted sample once an annotation batch has been labelled.

    The cases labelled before the batch (``labelled``) are a census of themselves: weight 1.
    The batch (``select_cases``'s table, every case of it labelled) was drawn from the cases
    *without* a label, within each group, with the recorded ``inclusion_probability``; each
    batch case stands for ``1 / inclusion_probability`` of those: its ``weight``. The Hajek
    mean ``Σ w x / Σ w`` over the enlarged sample then estimates the group's mean (and any
    other domain's) whatever the first design was — oversampling, or the disagreement-driven
    PPS of an earlier batch — because it conditions on who was labelled before. Put the
    result in a metadata column and declare it as ``design.weights``.

    Examples
    --------
    >>> batch = pd.DataFrame({"case_id": ["c", "d"], "inclusion_probability": [0.5, 0.25]})
    >>> batch_weights(batch, ["a", "b"]).to_dict()
    {'a': 1.0, 'b': 1.0, 'c': 2.0, 'd': 4.0}
    """
    ids = [str(c) for c in batch["case_id"]]
    before = [str(c) for c in labelled]
    both = sorted(set(ids) & set(before))
    if both:
        raise PlanError(
            f"case(s) {both[:5]} are in the batch and were labelled before: a batch from "
            "select_cases holds only cases without a trusted label"
        )
    pi = pd.to_numeric(batch["inclusion_probability"], errors="coerce").to_numpy(dtype=float)
    bad = [c for c, q in zip(ids, pi, strict=True) if not 0 < q <= 1]
    if bad:
        raise PlanError(f"case(s) {bad[:5]} have no inclusion probability in (0, 1]")
    out = pd.Series(
        [1.0] * len(before) + list(1.0 / pi),
        index=pd.Index(before + ids, name="case_id"),
        name="weight",
    )
    return out
