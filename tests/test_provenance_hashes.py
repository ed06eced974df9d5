"""The provenance hashes read a million-case table column by column; they must hash exactly the
text they always hashed (reports of every earlier run keep their digests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from test_report_scale import _frame_hash_of_before

from segfair.report.provenance import _frame_hash, _metadata_hash


def _old_metadata_hash(metadata: pd.DataFrame) -> str:
    frame = metadata.sort_index(kind="stable")
    cols = sorted(map(str, frame.columns))
    frame.columns = pd.Index(map(str, frame.columns))
    lines = [json.dumps(["case_id", *cols], ensure_ascii=False)]
    for case_id, row in zip(frame.index, frame.loc[:, cols].itertuples(index=False), strict=True):
        cells = [None if pd.isna(v) else str(v) for v in row]
        lines.append(json.dumps([str(case_id), *cells], ensure_ascii=False))
    h = hashlib.sha256()
    for part in lines:
        h.update(part.encode("utf-8") + b"\n")
    return h.hexdigest()


def _tricky_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:03d}" for i in rng.permutation(n)], dtype=object)
    return pd.DataFrame(
        {
            "case_id": pd.Categorical(np.repeat(ids, 2)),
            "model": np.tile(np.array(["m2", "m10"], dtype=object), n),
            "ruler": [1 if i % 3 else "1" for i in range(2 * n)],  # the same text, two types
            "metric": "dice",
            "value": np.where(rng.random(2 * n) < 0.1, np.inf, rng.random(2 * n)),
        }
    )


def test_the_score_table_hash_is_the_hash_of_its_sorted_text() -> None:
    for seed in range(3):
        t = _tricky_table(150, seed)
        keys = ("case_id", "model", "ruler", "metric")
        assert _frame_hash(t, keys) == _frame_hash_of_before(t, keys)


def test_the_score_table_hash_ignores_row_order_and_categorical_storage() -> None:
    t = _tricky_table(100, 4)
    keys = ("case_id", "model", "ruler", "metric")
    shuffled = t.sample(frac=1.0, random_state=1).reset_index(drop=True)
    shuffled["model"] = shuffled["model"].astype("category")
    assert _frame_hash(shuffled, keys) == _frame_hash(t, keys)


def test_the_metadata_hash_is_the_hash_of_its_rows_as_json() -> None:
    meta = pd.DataFrame(
        {
            "age": [45.0, np.nan, 61.5, 30.0],
            "site": ["Düke", None, 'quo"te', "a\\b"],
            3: pd.Categorical(["x", "y", None, "x"]),
            "flag": [True, False, True, False],
        },
        index=pd.Index(["d", "b", "a", "c"], name="case_id"),
    )
    assert _metadata_hash(meta, Path("unused.csv")) == _old_metadata_hash(meta)
