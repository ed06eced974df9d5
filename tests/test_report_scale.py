"""Reports of large cohorts stay small: per-case lists are counted on the page, cut in the JSON and
written in full to the sidecar; the work behind them has no per-case Python loop that changes a
digest or a choice (docs/report-schema.md, "Large cohorts")."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segfair.audit import Audit
from segfair.cohort.config import parse_config
from segfair.report import (
    CASE_ROWS,
    MAX_LISTED,
    MAX_TABLE_ROWS,
    build_report,
    case_lists_path,
    render_case_lists,
    render_html,
    render_json,
    render_markdown,
    write_reports,
)
from segfair.report.caselists import _excluded
from segfair.report.drawings import _worst_of_groups
from segfair.report.provenance import _frame_hash, _metadata_hash
from segfair.report.views import _coverage_view
from segfair.scores import Scores

MODELS = ("candidate", "previous_release")
RULERS = ("expert", "automated")
METRICS = ("dice", "hd95", "nsd")
SITES = ("DUKE", "ISPY1", "ISPY2", "NACT")


def large_scores(n: int, *, seed: int = 0, shuffle: bool = False) -> Scores:
    """``n`` cases, a third of them without an expert label (a partial ruler: ``n / 3``
    exclusions),
    3% without a prediction of ``previous_release``, missed lesions (hd95 inf) and empty
    references (NaN), three attributes."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"case_{i:06d}" for i in range(n)], dtype=object)
    age = rng.normal(50, 11, n).clip(22, 85)
    labelled = np.arange(n) % 3 != 0
    missing = rng.random(n) < 0.03
    frames = []
    for m, model in enumerate(MODELS):
        for ruler in RULERS:
            rows = (~missing if m else np.ones(n, bool)) & (labelled if ruler == "expert" else True)
            dice = np.clip(rng.normal(0.8, 0.08, n), 0, 1)
            dice[rng.random(n) < 0.01] = 0.0
            hd95 = np.where(dice == 0, np.inf, 2 + 30 * (1 - dice) ** 2)
            nsd = np.where(rng.random(n) < 0.005, np.nan, dice)
            for metric, v in zip(METRICS, (dice, hd95, nsd), strict=True):
                frames.append(
                    pd.DataFrame(
                        {"case_id": ids[rows], "model": model, "ruler": ruler, "metric": metric}
                        | {"value": v[rows]}
                    )
                )
    table = pd.concat(frames, ignore_index=True)
    both = ids[labelled]
    agreement = pd.DataFrame(
        {"case_id": both, "ruler": "automated", "reference": "expert", "metric": "dice"}
        | {"value": rng.uniform(0.7, 1.0, len(both))}
    )
    morphology = pd.DataFrame(
        {"case_id": ids, "ruler": "automated", "descriptor": "volume_ml"}
        | {"value": rng.lognormal(0, 0.5, n)}
    )
    index = pd.Index(ids, name="case_id")
    groups = pd.DataFrame(
        {
            "age_group": pd.cut(
                age, [-np.inf, 40, 55, np.inf], labels=["young", "middle", "older"]
            ),
            "site": pd.Categorical.from_codes(np.arange(n) % 4, categories=list(SITES)),
        },
        index=index,
    )
    exclusions = pd.concat(
        [
            pd.DataFrame(
                {"case_id": ids[missing], "kind": "model", "source": MODELS[1]}
                | {"reason": "prediction file missing"}
            ),
            pd.DataFrame(
                {"case_id": ids[~labelled], "kind": "ruler", "source": "expert"}
                | {"reason": "no label from this (partial) ruler"}
            ),
        ],
        ignore_index=True,
    )
    if shuffle:  # the same cohort, its rows in another order
        table = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
        exclusions = exclusions.sample(frac=1.0, random_state=2).reset_index(drop=True)
    return Scores(
        table=table,
        groups=groups,
        trusted_ruler="expert",
        rulers=RULERS,
        models=MODELS,
        agreement=agreement,
        morphology=morphology,
        metadata=pd.DataFrame({"age": age}, index=index),
        attribute_columns={"age_group": "age", "site": "site"},
        exclusions=exclusions,
        settings={"cap": 150.0, "metrics": list(METRICS)},
    )


def report_of(scores: Scores, root: Path) -> dict[str, Any]:
    (root / "cases.csv").write_text("case_id\n")
    config = parse_config(
        {
            "cases": "cases.csv",
            "rulers": {r: f"{r}/{{case_id}}.nii.gz" for r in RULERS},
            "models": {m: f"{m}/{{case_id}}.nii.gz" for m in MODELS},
            "n_boot": 100,
        },
        root=root,
    )
    return build_report(Audit(scores, seed=0, n_boot=100), [], config=config, seed=0)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """The documents of a cohort of 3,000 and of 12,000 cases (both summarised)."""
    return {n: report_of(large_scores(n), tmp_path_factory.mktemp(f"r{n}")) for n in (3000, 12000)}


def sidecar_rows(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_a_large_cohort_counts_its_exclusions_per_group_and_lists_every_one_in_the_sidecar(
    reports: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    doc = reports[12000]
    scores = large_scores(12000)
    cov = doc["coverage"]
    assert cov["excluded_total"] == len(scores.exclusions) > MAX_LISTED
    assert len(cov["excluded"]) == MAX_LISTED
    counts = [r for r in cov["excluded_counts"] if r["attribute"] == "site"]
    assert sum(r["n"] for r in counts) == len(scores.exclusions)
    assert {(r["group"], r["kind"]) for r in counts} == {
        (s, k) for s in SITES for k in ("model", "ruler")
    }
    written = write_reports(
        doc,
        html=tmp_path / "fairness.html",
        json_path=tmp_path / "fairness.json",
        md=tmp_path / "fairness.md",
    )
    sidecar = tmp_path / "fairness.cases.jsonl.gz"
    assert written[-1] == sidecar == case_lists_path(tmp_path / "fairness.json")
    rows = sidecar_rows(sidecar)
    excluded = [r for r in rows if r["list"] == "excluded"]
    assert {(r["case_id"], r["kind"], r["source"]) for r in excluded} == set(
        zip(
            scores.exclusions["case_id"],
            scores.exclusions["kind"],
            scores.exclusions["source"],
            strict=True,
        )
    )
    values = [r for r in rows if r["list"] == "values"]
    bad = scores.table[~np.isfinite(scores.table["value"])]
    assert len(values) == len(bad)
    assert {r["value"] for r in values if r["metric"] == "hd95"} == {"capped"}
    assert {r["value"] for r in values if r["metric"] == "nsd"} == {"undefined"}
    # the reports say what was summarised and where every row is
    saved = json.loads((tmp_path / "fairness.json").read_text("utf-8"))
    assert saved["coverage"]["case_lists"] == {
        "file": "fairness.cases.jsonl.gz",
        "max_listed": MAX_LISTED,
        "excluded": len(excluded),
        "capped": sum(r["value"] == "capped" for r in values),
        "undefined": sum(r["value"] == "undefined" for r in values),
    }
    assert CASE_ROWS not in saved
    page = (tmp_path / "fairness.html").read_text("utf-8")
    assert "<code>fairness.cases.jsonl.gz</code>" in page
    assert "counted per group here" in page
    assert "exclusions per group" in page
    assert excluded[-1]["case_id"] not in page  # no case id of the list on the page
    assert "`fairness.cases.jsonl.gz`" in (tmp_path / "fairness.md").read_text("utf-8")


def test_the_page_of_a_cohort_four_times_larger_is_no_larger(
    reports: dict[int, dict[str, Any]],
) -> None:
    small, large = (render_html(reports[n]) for n in (3000, 12000))
    assert len(large.encode()) < 1.05 * len(small.encode())
    assert len(large.encode()) < 1_000_000
    tags = len(re.findall(r"<[a-zA-Z]", large))
    assert tags < 1.05 * len(re.findall(r"<[a-zA-Z]", small))
    assert len(render_json(reports[12000]).encode()) < 1.05 * len(
        render_json(reports[3000]).encode()
    )


def test_the_json_and_the_sidecar_are_the_same_bytes_whatever_the_row_order(
    reports: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    again = report_of(large_scores(3000, shuffle=True), tmp_path)
    first = dict(reports[3000], generated_at="")
    again["generated_at"] = ""
    assert render_json(again) == render_json(first)
    assert render_case_lists(again[CASE_ROWS]) == render_case_lists(first[CASE_ROWS])
    # gzip without a name or a time: the bytes hold nothing but the rows
    blob = render_case_lists(first[CASE_ROWS])
    assert blob[4:8] == b"\0\0\0\0"  # no time
    assert not blob[3] & 0x08  # no name


def test_a_small_report_writes_no_sidecar_and_removes_one_left_by_a_larger_run(
    tmp_path: Path,
) -> None:
    doc = report_of(large_scores(200), tmp_path)
    assert CASE_ROWS not in doc
    assert "case_lists" not in doc["coverage"]
    assert "excluded_counts" not in doc["coverage"]
    stale = tmp_path / "out" / "fairness.cases.jsonl.gz"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    written = write_reports(doc, json_path=tmp_path / "out" / "fairness.json")
    assert written == [tmp_path / "out" / "fairness.json"]
    assert not stale.exists()


def test_without_a_json_report_the_sidecar_lies_next_to_the_html_one(
    reports: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    written = write_reports(reports[3000], html=tmp_path / "page.html")
    assert written == [tmp_path / "page.html", tmp_path / "page.cases.jsonl.gz"]
    assert "<code>page.cases.jsonl.gz</code>" in written[0].read_text("utf-8")


def test_the_capped_table_shows_totals_per_metric_model_and_ruler_over_its_row_limit() -> None:
    rows = [
        {
            "attribute": attr,
            "metric": metric,
            "model": "m",
            "ruler": "e",
            "group": f"g{g}",
            "n": 10,
            "capped": 1,
            "undefined": 2,
        }
        for attr, groups in (("a", 60), ("b", 2))
        for metric in ("hd95", "nsd")
        for g in range(groups)
    ]
    view = _coverage_view({"coverage": {"capped": rows[: MAX_TABLE_ROWS - 4]}})
    assert view["capped_totals"] is None
    view = _coverage_view({"coverage": {"capped": rows * 2}})  # 248 rows
    assert view["capped_rows"] == 248
    # the groups of the first attribute add up (twice 60 groups of 1 capped and 2 undefined)
    assert view["capped_totals"] == [
        {
            "structure": None,
            "metric": m,
            "model": "m",
            "ruler": "e",
            "capped": 120,
            "undefined": 240,
        }
        for m in ("hd95", "nsd")
    ]


def test_exclusions_are_listed_once_in_case_kind_source_order_the_coverage_s_reason_first() -> None:
    missing = pd.DataFrame(
        {"case_id": ["b", "a"], "model": ["m", "m"], "reason": ["no scores", "no scores"]}
    )
    recorded = pd.DataFrame(
        {
            "case_id": ["b", "Z", "é", "a", "a"],
            "kind": ["model", "ruler", "ruler", "ruler", "ruler"],
            "source": ["m", "e", "e", "e", "e"],
            "reason": ["file missing", "partial", "partial", "first", "second"],
        }
    )
    out = _excluded([missing], recorded)
    assert out.values.tolist() == [
        ["Z", "ruler", "e", "partial"],
        ["a", "model", "m", "no scores"],
        ["a", "ruler", "e", "first"],
        ["b", "model", "m", "no scores"],
        ["é", "ruler", "e", "partial"],
    ]


def _frame_hash_of_before(frame: pd.DataFrame, keys: Sequence[str]) -> str:
    """The digest as it was computed before issue 18 (a text copy of the table, sorted)."""
    cols = [c for c in keys if c in frame.columns]
    if len(frame) == 0:
        return _text_hash(["\t".join(cols)])
    f = frame.loc[:, [*cols, "value"]].copy()
    for c in cols:
        f[c] = f[c].astype(str)
    f = f.sort_values(cols, kind="stable")
    lines = [
        "\t".join([*(str(r[c]) for c in cols), repr(float(r["value"]))]) for _, r in f.iterrows()
    ]
    return _text_hash(["\t".join([*cols, "value"]), "\n".join(lines)])


def _text_hash(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") + b"\n")
    return h.hexdigest()


@pytest.mark.parametrize("combinations", [1, 100_000])  # trailing keys: per column, as one
def test_the_score_digest_is_the_one_of_before_in_chunks_and_in_any_row_order(
    monkeypatch: pytest.MonkeyPatch, combinations: int
) -> None:
    import segfair.report.provenance as provenance

    monkeypatch.setattr(provenance, "_HASH_CHUNK", 7)  # many chunks
    monkeypatch.setattr(provenance, "_MAX_COMBINATIONS", combinations)
    frame = pd.DataFrame(
        {
            "case_id": ["b", "a", "é", "Z", "a", "z", "10", "9", "b", "a"],
            "model": pd.Categorical(["m", "n", "m", "m", "m", "n", "m", "m", "m", "n"]),
            "metric": ["dice"] * 5 + ["hd95"] * 5,
            "value": [1.0, np.nan, np.inf, -0.0, 0.1, 2.5e-300, 1e16, 3, 1 / 3, 0.5],
        }
    )
    keys = ("case_id", "structure", "model", "metric")
    expected = _frame_hash_of_before(frame, keys)
    assert _frame_hash(frame, keys) == expected
    assert _frame_hash(frame.iloc[::-1], keys) == expected
    assert _frame_hash(frame.iloc[:0], keys) == _frame_hash_of_before(frame.iloc[:0], keys)


def test_the_metadata_digest_is_the_one_of_before(monkeypatch: pytest.MonkeyPatch) -> None:
    import segfair.report.provenance as provenance

    monkeypatch.setattr(provenance, "_HASH_CHUNK", 2)
    meta = pd.DataFrame(
        {"age": [35.0, np.nan, 61.5], "note": ['a "b"\n', None, "é\\"], "n": [1, 2, 3]},
        index=pd.Index(["c2", "c1", "c3"], name="case_id"),
    )
    lines = [json.dumps(["case_id", "age", "n", "note"], ensure_ascii=False)]
    lines += [
        json.dumps(["c1", None, "2", None], ensure_ascii=False),
        json.dumps(["c2", "35.0", "1", 'a "b"\n'], ensure_ascii=False),
        json.dumps(["c3", "61.5", "3", "é\\"], ensure_ascii=False),
    ]
    assert _metadata_hash(meta, Path("unused")) == _text_hash(lines)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["x", "y", "z"]),
            st.sampled_from([0.0, 0.25, 0.5, 1.0, float("inf")]),
        ),
        max_size=30,
    ),
    st.integers(0, 4),
    st.booleans(),
)
def test_the_worst_cases_are_those_a_full_sort_of_each_group_picks(
    cases: list[tuple[str, float]], per_group: int, higher: bool
) -> None:
    ids = [f"c{i:02d}" for i in range(len(cases))][::-1]  # ids not in row order
    values = pd.Series([v for _, v in cases], index=ids, dtype=float)
    labels = pd.Series([g for g, _ in cases], index=ids)
    expected = []
    for group in ("y", "x", "w"):
        members = [c for c in values.index if labels.get(c) == group]
        members.sort(key=lambda c: (-values[c] if higher else values[c], c))
        expected += [(group, c) for c in members[:per_group]]
    assert _worst_of_groups(values, labels, ["y", "x", "w"], per_group, higher) == expected


def test_each_sidecar_line_is_the_row_as_json_with_sorted_keys() -> None:
    rows = {
        "excluded": {
            "case_id": ['a"é\n', "b"],
            "kind": ["model", "ruler"],
            "source": ["m", "e"],
            "reason": ["x", "y\t"],
        },
        "values": {"case_id": ["c"], "structure": ["s"], "model": ["m"], "ruler": ["e"]}
        | {"metric": ["hd95"], "value": ["capped"]},
    }
    expected = [
        json.dumps(
            {"list": name, **{k: v[i] for k, v in cols.items()}},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for name, cols in rows.items()
        for i in range(len(cols["case_id"]))
    ]
    text = gzip.decompress(render_case_lists(rows)).decode("utf-8")
    assert text == "".join(f"{line}\n" for line in expected)


def test_the_page_says_its_capped_table_shows_totals_and_where_the_rows_are(
    reports: dict[int, dict[str, Any]],
) -> None:
    doc = reports[3000]
    rows = doc["coverage"]["capped"]
    many = [
        {**r, "group": f"{r['group']}-{k}"}
        for k in range(MAX_TABLE_ROWS // len(rows) + 1)
        for r in rows
    ]
    page = render_html({**doc, "coverage": {**doc["coverage"], "capped": many}})
    assert f"Totals per metric, model and ruler: the {len(many)} rows" in page
    assert "-0</td>" not in page  # no row of a group
    assert "-0</td>" in render_html({**doc, "coverage": {**doc["coverage"], "capped": many[:150]}})


def test_a_summary_rendered_before_the_reports_are_written_names_the_sidecar_by_its_suffix(
    reports: dict[int, dict[str, Any]],
) -> None:
    text = render_markdown(reports[3000])  # as the plugin's job summary does
    lists = reports[3000]["coverage"]["case_lists"]
    assert (
        f"Per-case lists ({lists['excluded']} exclusions, {lists['capped']} capped and "
        f"{lists['undefined']} undefined values) are in the `*.cases.jsonl.gz` file"
    ) in text
