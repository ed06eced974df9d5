"""Reports of several structures and of lesion-wise scores: per-structure HTML sections, each
structure's worst cases, and the lesion-wise section (missed lesions by size and group)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Repo, write_nifti
from test_structures import BRATS, ENHANCING_GATE, WHOLE_GATE, _schema_errors, make_brats_repo

from segfair.cli import main
from segfair.report.drawings import _worst_cases_of_structures

LESION_COUNTS = ["lesions", "lesions_detected", "small_lesions", "small_lesions_detected"]


def run(repo: Repo, out: Path) -> tuple[int, dict[str, Any], str, str]:
    code = main(
        [
            "audit",
            "--config",
            str(repo.config_path),
            "--no-cache",
            "--allow-no-gates",
            "--json",
            str(out / "r.json"),
            "--md",
            str(out / "r.md"),
            "--html",
            str(out / "r.html"),
        ]
    )
    doc = json.loads((out / "r.json").read_text("utf-8"))
    return code, doc, (out / "r.html").read_text("utf-8"), (out / "r.md").read_text("utf-8")


@pytest.fixture(scope="module")
def brats_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    root = tmp_path_factory.mktemp("brats-report")
    repo = make_brats_repo(root / "repo")
    repo.write_config(gates=[ENHANCING_GATE, WHOLE_GATE], metrics=["dice", "hd95"])
    code, doc, html, md = run(repo, root)
    assert code == 1
    return doc, html, md


def test_the_html_of_several_structures_has_one_section_per_structure_in_the_navigation(
    brats_run: tuple[dict[str, Any], str, str],
) -> None:
    doc, html, _ = brats_run
    assert not _schema_errors(doc)
    for number, name in enumerate(BRATS, start=3):
        assert html.count(f'<section id="structure-{name}"') == 1
        assert f'<a href="#structure-{name}">{number} {name}</a>' in html
        for part in ("rulers", "labels", "amplification", "controlled", "morphology"):
            assert html.count(f'<section id="{part}-{name}"') == 1
            assert f'<a href="#{part}-{name}">' in html
    # each structure's section holds its own gap: the enhancing dice gap, not the whole tumour's
    gaps = {
        g["structure"]: g["gap"]["estimate"]
        for g in doc["gaps"]
        if (g["metric"], g["ruler"]) == ("dice", "expert")
    }
    assert gaps["enhancing"] > 0.1 > gaps["whole_tumor"]
    sections = re.split(r'<section id="structure-', html)[1:]
    assert [s.split('"', 1)[0] for s in sections] == list(BRATS)
    # no single-structure note any more: every structure is shown
    assert "sections of this report show the structure" not in html


def test_the_gates_table_shows_each_gates_structure(
    brats_run: tuple[dict[str, Any], str, str],
) -> None:
    _, html, _ = brats_run
    table = html.split('<table class="gates num">', 1)[1].split("</table>", 1)[0]
    assert '<th scope="col">structure</th>' in table
    for name in ("enhancing", "whole_tumor"):
        row = table.split(f"gap[dice,sex,candidate,expert][{name}]", 1)[1].split("</tr>", 1)[0]
        assert f"<td>{name}</td>" in row


def test_the_markdown_lists_the_ruler_table_of_each_structure(tmp_path: Path) -> None:
    from segfair.report.markdown import render_markdown

    doc = {
        "cohort": {"structures": ["a", "b"]},
        "headline": {"metric": "dice", "attribute": "sex", "model": "m"},
        "distortion": [
            {
                "structure": s,
                "metric": "dice",
                "attribute": "sex",
                "model": "m",
                "trusted": "expert",
                "automated": "auto",
                "trusted_groups": [{"group": "F", "n": 3, "estimate": 0.9}],
                "automated_groups": [{"group": "F", "n": 3, "estimate": 0.8}],
                "gap_trusted": {"estimate": 0.1},
                "gap_automated": {"estimate": 0.05},
                "hidden_gap": {"estimate": 0.05, "lower": 0.0, "upper": 0.1},
                "defined": False,
                "negligible": 0.01,
            }
            for s in ("a", "b")
        ],
    }
    md = render_markdown(doc)
    assert "### The ruler: dice of m by sex (structure a)" in md
    assert "### The ruler: dice of m by sex (structure b)" in md
    assert md.count("| F | 3 | 0.9 | 0.8 |") == 2  # each structure's table once


def test_each_structures_worst_cases_are_drawn_and_their_number_is_capped(
    brats_run: tuple[dict[str, Any], str, str],
) -> None:
    doc, html, _ = brats_run
    w = doc["worst_cases"]
    assert w["structure"] == "enhancing"  # the failing gate's structure first
    assert w["structures"] == ["enhancing", "whole_tumor", "tumor_core"]
    assert w["problems"] == []  # a case without enhancing tumour is drawn empty, not refused
    per = {}
    for c in w["cases"]:
        per.setdefault((c["structure"], c["group"]), []).append(c["case_id"])
    assert set(per) == {(s, g) for s in BRATS for g in ("F", "M")}
    assert all(len(ids) == 2 for ids in per.values())  # worst_per_group = 2
    assert "<h3>enhancing: sex = M</h3>" in html
    assert html.count('<figure class="card worst-case">') == len(w["cases"]) == 12


def test_the_worst_cases_stop_at_the_limit_and_name_the_structures_left_undrawn(
    tmp_path: Path,
) -> None:
    from segfair.cohort import load_cohort
    from segfair.config import load_config
    from segfair.session import SegfairSession

    repo = make_brats_repo(tmp_path / "repo", n_per_group=5)
    cfg = load_config(repo.config_path)
    session = SegfairSession(cfg, workers=1, cache=False, progress=False)
    audit = session.audit
    out = _worst_cases_of_structures(
        [(s, audit.for_structure(s)) for s in BRATS],
        load_cohort(cfg),
        cfg,
        metric="dice",
        attribute="sex",
        model="candidate",
        per_group=2,
        limit=6,
    )
    assert len(out["cases"]) == 6
    assert out["structures"] == ["whole_tumor", "tumor_core"]
    assert out["not_drawn"] == ["enhancing"]
    assert [c["structure"] for c in out["cases"]] == ["whole_tumor"] * 4 + ["tumor_core"] * 2


# -- the lesion-wise section ----------------------------------------------------------------------


def cube(shape: tuple[int, int, int], at: tuple[int, int, int], side: int) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[tuple(slice(a, a + side) for a in at)] = True
    return out


#: Per case: its group, then each reference lesion as (corner, side, detected?). Sides of 4
#: voxels (64 mm³) are small (≤ 500 mm³), of 9 (729 mm³) larger; all above min_volume (50 mm³).
LESION_CASES: dict[str, tuple[str, list[tuple[tuple[int, int, int], int, bool]]]] = {
    "L0": ("F", [((2, 2, 2), 9, True), ((20, 20, 20), 4, True), ((20, 2, 20), 4, True)]),
    "L1": ("F", [((2, 2, 2), 9, True), ((20, 20, 20), 4, False)]),
    "L2": ("F", [((2, 2, 2), 9, False)]),
    "L3": ("M", [((2, 2, 2), 9, True), ((20, 20, 20), 4, False), ((20, 2, 20), 4, False)]),
    "L4": ("M", [((20, 20, 20), 4, True), ((2, 20, 2), 4, False)]),
    "L5": ("M", [((2, 2, 2), 9, True)]),
}


def make_lesion_repo(root: Path) -> Repo:
    shape = (28, 28, 28)
    rows = ["case_id,sex"]
    for cid, (sex, lesions) in LESION_CASES.items():
        rows.append(f"{cid},{sex}")
        ref, pred = np.zeros(shape, bool), np.zeros(shape, bool)
        for at, side, found in lesions:
            ref |= cube(shape, at, side)
            if found:
                pred |= cube(shape, at, side)
        write_nifti(root / "labels" / f"{cid}.nii.gz", ref)
        write_nifti(root / "preds" / f"{cid}.nii.gz", pred)
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    config: dict[str, Any] = {
        "cases": "cases.csv",
        "trusted_ruler": "expert",
        "n_boot": 200,
        "min_group_size": 2,
        "cache": False,
        "workers": 1,
        "rulers": {"expert": "labels/{case_id}.nii.gz"},
        "models": {"candidate": "preds/{case_id}.nii.gz"},
        "attributes": {"sex": {"column": "sex"}},
        "metrics": ["dice", "lesion_dice"],
    }
    repo = Repo(root=root, config=config, case_ids=list(LESION_CASES))
    repo.write_config()
    return repo


def hand_count(group: str | None, small: bool | None) -> tuple[int, int]:
    """(reference lesions, detected) of a group (None: all), of a size (None: every size)."""
    n = found = 0
    for sex, lesions in LESION_CASES.values():
        for _, side, hit in lesions:
            if group in (None, sex) and small in (None, side == 4):
                n += 1
                found += hit
    return n, found


def test_the_lesion_section_lists_missed_lesions_by_size_and_group_as_counted_by_hand(
    tmp_path: Path,
) -> None:
    repo = make_lesion_repo(tmp_path / "repo")
    repo.write_config(metrics=["dice", "lesion_dice", *LESION_COUNTS])
    _, doc, html, md = run(repo, tmp_path)
    assert not _schema_errors(doc)
    (entry,) = doc["lesions"]
    assert (entry["attribute"], entry["model"], entry["ruler"]) == ("sex", "candidate", "expert")
    rows = {r["group"]: r for r in entry["groups"]} | {None: entry["overall"]}
    for group, row in rows.items():
        for part, small in (("all", None), ("small", True), ("larger", False)):
            n, found = hand_count(group, small)
            counts = row[part]
            assert (counts["lesions"], counts["detected"], counts["missed"]) == (
                n,
                found,
                n - found,
            ), (group, part)
            assert counts["rate"] == pytest.approx(found / n)
    assert rows["F"]["n"] == rows["M"]["n"] == 3
    # small lesions: F found 2 of 3, M 1 of 4: the detection gap is that of Audit.detection_gap
    assert entry["detection_gap"]["estimate"] == pytest.approx(2 / 3 - 1 / 4, abs=1e-6)
    assert (entry["min_group"], entry["max_group"], entry["small_volume"]) == ("M", "F", 500.0)
    assert '<section id="lesions"' in html
    assert '<a href="#lesions">8 Lesions</a>' in html
    # the HTML row of group M: 3 cases, 6 lesions (3 found, 3 missed), 4 small (1 found)
    m_row = '<th scope="row">M</th><td>3</td><td>6</td><td>3</td><td>3</td><td>50%</td>'
    assert m_row + "<td>4</td><td>1</td><td>3</td>" in html
    assert '<h2 id="cov-title"><span class="no">9</span>Coverage</h2>' in html
    assert "**Lesions** (candidate on expert by sex)" in md
    assert "M: 3 of 6 detected, small 1 of 4" in md


def test_the_lesion_section_appears_only_when_lesion_metrics_were_scored(tmp_path: Path) -> None:
    repo = make_lesion_repo(tmp_path / "repo")
    repo.write_config(metrics=["dice", "hd95"])
    _, doc, html, md = run(repo, tmp_path / "plain")
    assert "lesions" not in doc
    assert 'id="lesions' not in html
    assert "Lesions" not in md
    # one structure: the numbers and ids of before, no structure column or heading
    assert '<a href="#rulers">3 Rulers</a>' in html
    assert 'id="structure-' not in html
    assert '<a href="#provenance">10 Provenance</a>' in html
    assert '<th scope="col">structure</th>' not in html
    # a lesion-wise score without the counts: the section is there, empty, saying what to add
    repo.write_config(metrics=["dice", "lesion_dice"])
    (tmp_path / "scored").mkdir()
    _, doc, html, _ = run(repo, tmp_path / "scored")
    assert doc["lesions"] == []
    assert any("add them to metrics" in n for n in doc["notes"])
    assert '<section id="lesions"' in html
    assert "No per-case lesion counts" in html
    assert not _schema_errors(doc)
