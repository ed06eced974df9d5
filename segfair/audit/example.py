"""A tiny deterministic cohort for the docstring examples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segfair.scores import Scores

__all__ = ["example_scores"]


def example_scores() -> Scores:
    """A tiny deterministic cohort for the docstring examples."""
    ids = [f"c{i:02d}" for i in range(40)]
    young = np.arange(40) < 20
    spread = np.tile(np.linspace(-0.02, 0.02, 20), 2)
    rows = []
    for i, cid in enumerate(ids):
        d = (0.70 if young[i] else 0.80) + spread[i]
        rows += [
            (cid, "m", "expert", "dice", d),
            (cid, "m", "auto", "dice", d + (0.05 if young[i] else 0.0)),
            (cid, "m", "expert", "hd95", 20.0 if young[i] else 10.0),
            (cid, "m2", "expert", "dice", d - (0.05 if young[i] else 0.0)),
            (cid, "m2", "expert", "hd95", 20.0 if young[i] else 10.0),
        ]
    table = pd.DataFrame(rows, columns=["case_id", "model", "ruler", "metric", "value"])
    agreement = pd.DataFrame(
        [(cid, "auto", "expert", "dice", 0.8 if young[i] else 0.9) for i, cid in enumerate(ids)],
        columns=["case_id", "ruler", "reference", "metric", "value"],
    )
    morphology = pd.DataFrame(
        [
            (cid, "expert", "volume_ml", (15.0 if young[i] else 10.0) + 250 * spread[(i * 7) % 40])
            for i, cid in enumerate(ids)
        ],
        columns=["case_id", "ruler", "descriptor", "value"],
    )
    index = pd.Index(ids, name="case_id")
    groups = pd.DataFrame(
        {"age": pd.Categorical(np.where(young, "young", "old"), categories=["young", "old"])},
        index=index,
    )
    metadata = pd.DataFrame({"age": np.where(young, 35, 65) + np.arange(40) % 7}, index=index)
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", "auto"),
        models=("m", "m2"),
        agreement=agreement,
        morphology=morphology,
        metadata=metadata,
        attribute_columns={"age": "age"},
    )
