"""Named structures: several structures per case, from the configuration to the reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Repo, ball, to_toml, write_nifti
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segfair import metrics
from segfair.audit import Audit
from segfair.cli import main
from segfair.cohort import load_cohort
from segfair.cohort.config import DEFAULT_STRUCTURE, parse_config
from segfair.errors import ConfigError, InputError
from segfair.evaluate import build_tasks, evaluate, evaluate_case
from segfair.gates import parse_gates
from segfair.io import LabelMap, load_labels, select_structures
from segfair.metrics.morphology import describe_mask
from segfair.scores import DEFAULT_STRUCTURE as SCORES_DEFAULT
from segfair.scores import Scores

pytest_plugins = ["pytester"]

BRATS = {"whole_tumor": [1, 2, 3], "tumor_core": [1, 3], "enhancing": 3}
BASE = {
    "cases": "cases.csv",
    "rulers": {"expert": "e/{case_id}.nii.gz"},
    "models": {"m": "m/{case_id}.nii.gz"},
}
ENHANCING_GATE = {
    "kind": "gap",
    "metric": "dice",
    "by": "sex",
    "model": "candidate",
    "max": 0.05,
    "structure": "enhancing",
}
WHOLE_GATE = {**ENHANCING_GATE, "max": 0.1, "structure": "whole_tumor"}


def brats_case(
    shape: tuple[int, int, int], radius: float, rng: np.random.Generator, *, rim: float
) -> np.ndarray:
    """Nested regions: necrosis (1) inside an enhancing rim (3) of width ``rim`` inside edema
    (2); the centre jitters so that masks touch different voxels."""
    c = np.array(shape) / 2 + rng.uniform(-1, 1, size=3)
    out = np.zeros(shape, np.uint8)
    out[ball(shape, c, radius)] = 2
    out[ball(shape, c, radius * 0.6)] = 3
    out[ball(shape, c, radius * 0.6 - rim)] = 1
    return out


def make_brats_repo(root: Path, *, n_per_group: int = 10, seed: int = 0) -> Repo:
    """A BraTS-like cohort: the model under-segments the enhancing rim of group M (relabels
    most of it as necrosis), so enhancing Dice drops for M while whole tumour stays exact. One
    case of each group has no enhancing tumour in either mask (an empty structure)."""
    rng = np.random.default_rng(seed)
    shape = (20, 20, 14)
    ids, rows = [], ["case_id,sex"]
    for i in range(2 * n_per_group):
        cid, sex = f"B{i:03d}", "F" if i % 2 == 0 else "M"
        ids.append(cid)
        rows.append(f"{cid},{sex}")
        ref = brats_case(shape, rng.uniform(5.5, 7.0), rng, rim=2.0)
        pred = ref.copy()
        if i < 2:  # no enhancing tumour at all, in both masks
            ref[ref == 3] = 1
            pred[pred == 3] = 1
        elif sex == "M":
            inner = brats_case(shape, 1.0, rng, rim=0.0)  # unused draw keeps streams aligned
            del inner
            rim = np.argwhere(pred == 3)
            keep = rng.random(len(rim)) < 0.35  # most of the rim is missed
            lost = rim[~keep]
            pred[tuple(lost.T)] = 1
        write_nifti(root / "labels" / "expert" / f"{cid}.nii.gz", ref)
        write_nifti(root / "preds" / "candidate" / f"{cid}.nii.gz", pred)
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    config: dict[str, Any] = {
        "cases": "cases.csv",
        "trusted_ruler": "expert",
        "n_boot": 200,
        "min_group_size": 5,
        "cache": False,
        "workers": 1,
        "rulers": {"expert": "labels/expert/{case_id}.nii.gz"},
        "models": {"candidate": "preds/candidate/{case_id}.nii.gz"},
        "attributes": {"sex": {"column": "sex"}},
        "structures": BRATS,
    }
    repo = Repo(root=root, config=config, case_ids=ids)
    repo.write_config()
    return repo


@pytest.fixture(scope="module")
def brats(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return make_brats_repo(tmp_path_factory.mktemp("brats"))


# ---- configuration ----------------------------------------------------------------------------


def test_structures_are_a_label_or_a_union_of_labels_in_declared_order() -> None:
    cfg = parse_config({**BASE, "trusted_ruler": "expert", "structures": BRATS})
    assert cfg.structure_labels == {
        "whole_tumor": (1, 2, 3),
        "tumor_core": (1, 3),
        "enhancing": (3,),
    }


def test_without_structures_there_is_one_structure_of_the_cohort_labels() -> None:
    cfg = parse_config({**BASE, "trusted_ruler": "expert", "labels": [2, 4]})
    assert cfg.structure_labels == {DEFAULT_STRUCTURE: (2, 4)}
    assert DEFAULT_STRUCTURE == SCORES_DEFAULT == "foreground"
    # and the recorded configuration is that of before: no `structures` key at all
    assert "structures" not in cfg.model_dump(mode="json")


@pytest.mark.parametrize(
    ("structures", "words"),
    [
        ({"a": []}, ["structure 'a'", "non-empty list"]),
        ({"a": 1.5}, ["structure 'a'", "integer ≥ 1"]),
        ({"a": "1"}, ["structure 'a'", "integer"]),
        ({"a": True}, ["structure 'a'"]),
        ({"a": [0, 1]}, ["0 is the background"]),
        ({"a": [1, 1]}, ["distinct labels"]),
        ({"1a": 1}, ["'1a'", "start with a letter"]),
        ({"a b": 1}, ["'a b'", "letters, digits"]),
        ({"core": 1, "Core": 2}, ["'core' and 'Core'", "differ only in case"]),
        ({"a": [1, 3], "b": [3, 1]}, ["'a' and 'b'", "same labels [1, 3]"]),
        ({}, ["[structures] is empty"]),
    ],
)
def test_a_bad_structure_is_refused_with_what_to_write(
    structures: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**BASE, "trusted_ruler": "expert", "structures": structures})
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"labels": [1]}, ["labels cannot be combined with [structures]", "lesion = [1]"]),
        ({"threshold": 0.5}, ["threshold cannot be combined", "probability map is one"]),
        (
            {"models": {"m": {"path": "m/{case_id}.nii.gz", "labels": [255]}}},
            ["models.m.labels cannot be combined", "same label values"],
        ),
        (
            {"rulers": {"expert": {"path": "e/{case_id}.nii.gz", "threshold": 0.5}}},
            ["rulers.expert.threshold cannot be combined"],
        ),
    ],
)
def test_binary_mask_settings_are_refused_with_structures_saying_how_to_express_them(
    extra: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**BASE, "trusted_ruler": "expert", "structures": {"a": 1}, **extra})
    for w in words:
        assert w in str(e.value)


# ---- one pass over the label maps equals full-volume scoring ----------------------------------


def _maps(ndim: int) -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(*[st.integers(1, 7)] * ndim)
    return shape.flatmap(
        lambda s: st.tuples(
            hnp.arrays(np.uint8, s, elements=st.integers(0, 4)),
            hnp.arrays(np.uint8, s, elements=st.integers(0, 4)),
        )
    )


STRUCTURE_SETS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.lists(st.integers(1, 5), min_size=1, max_size=3, unique=True),
    min_size=1,
    max_size=4,
)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ndim=st.sampled_from([2, 3]), data=st.data(), structures=STRUCTURE_SETS)
def test_scores_of_the_structure_crops_equal_scores_of_full_size_binary_masks(
    ndim: int, data: st.DataObject, structures: dict[str, list[int]]
) -> None:
    pred, ref = data.draw(_maps(ndim))
    if data.draw(st.booleans()):  # NIfTI volumes are Fortran-ordered: the scan handles both
        pred, ref = np.asfortranarray(pred), np.asfortranarray(ref)
    spacing = data.draw(st.sampled_from([None, (0.7,) * ndim, tuple(range(1, ndim + 1))]))
    voxel = tuple(float(s) for s in spacing) if spacing else (1.0,) * ndim
    maps = {"p": LabelMap(pred, voxel, np.eye(4)), "r": LabelMap(ref, voxel, np.eye(4))}
    wanted = {x for labels in structures.values() for x in labels}
    try:
        crops = select_structures(maps, structures, case_id="X")
    except InputError:
        # refused only when a map holds labels but none that any structure selects
        assert any(m.any() and not np.isin(m, list(wanted)).any() for m in (pred, ref))
        return
    for name, labels in structures.items():
        full_p, full_r = np.isin(pred, labels), np.isin(ref, labels)
        got = metrics.compute_many(crops[name], [("p", "r")], voxel)[("p", "r")]
        want = metrics.compute(full_p, full_r, voxel)
        assert got.keys() == want.keys()
        assert all(_same(got[k], want[k]) for k in want), (name, got, want)
        shape_got, shape_want = describe_mask(crops[name]["r"], voxel), describe_mask(full_r, voxel)
        assert all(_same(shape_got[k], shape_want[k]) for k in shape_want)
        # the crop holds every voxel of the structure, and only its box
        assert int(crops[name]["p"].sum()) == int(full_p.sum())
        assert int(crops[name]["r"].sum()) == int(full_r.sum())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=hnp.arrays(
        np.uint8,
        st.tuples(*[st.integers(1, 14)] * 3) | st.tuples(*[st.integers(1, 20)] * 2),
        elements=st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 5]),
    ),
    fortran=st.booleans(),
    top=st.sampled_from([1, 2, 5, 9]),
)
def test_label_boxes_found_block_by_block_are_those_of_find_objects(
    labels: np.ndarray, fortran: bool, top: int
) -> None:
    from scipy import ndimage

    from segfair.io import structures as io_structures

    data = np.asfortranarray(labels) if fortran else labels
    view = data.T if fortran else data  # the last axis contiguous, as _label_boxes hands it over
    want = {
        i + 1: b for i, b in enumerate(ndimage.find_objects(view, max_label=top)) if b is not None
    }
    assert io_structures._find_boxes(view, top) == want


def test_label_boxes_of_organs_spread_over_a_volume_are_found_inside_small_blocks() -> None:
    from scipy import ndimage

    from segfair.io import structures as io_structures

    shape = (40, 60, 50)
    labels = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(0)
    for label in range(1, 9):
        centre = rng.uniform(6, np.array(shape) - 6)
        labels[ball(shape, centre, 4.5)] = label
    labels[0, 0, 0] = 3  # a stray voxel far from organ 3 widens its box
    visited: list[int] = []
    find = ndimage.find_objects

    def counting(data: np.ndarray, max_label: int = 0) -> Any:
        visited.append(data.size)
        return find(data, max_label=max_label)

    want = {i + 1: b for i, b in enumerate(find(labels)) if b is not None}
    io_structures.ndimage.find_objects = counting  # type: ignore[assignment]
    try:
        got = io_structures._find_boxes(labels, 8)
    finally:
        io_structures.ndimage.find_objects = find  # type: ignore[assignment]
    assert got == want
    assert sum(visited) < labels.size / 4  # the blocks, not the volume, were walked voxel by voxel


def test_a_structure_absent_from_both_masks_is_an_empty_mask_scored_by_the_empty_rules() -> None:
    lab = np.zeros((5, 6, 4), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    m = LabelMap(lab, (1.0, 1.0, 1.0), np.eye(4))
    crops = select_structures({"p": m, "r": m}, {"core": [1], "enhancing": [3]})
    assert not crops["enhancing"]["p"].any()
    scored = metrics.compute_many(crops["enhancing"], [("p", "r")], (1.0, 1.0, 1.0))
    assert scored[("p", "r")]["dice"] == 1.0  # both empty (docs/metrics.md)
    assert scored[("p", "r")]["hd95"] == 0.0


def test_a_label_map_holding_none_of_the_structures_labels_is_refused_naming_the_file() -> None:
    lab = np.zeros((4, 4), np.uint8)
    lab[1, 1] = 255
    m = LabelMap(lab, (1.0, 1.0), np.eye(4), "pred.nii.gz")
    with pytest.raises(InputError) as e:
        select_structures({"p": m}, {"core": [1, 3]}, case_id="A1")
    text = str(e.value)
    assert "A1" in text
    assert "pred.nii.gz" in text
    assert "[255]" in text
    assert "[structures]" in text


def test_a_probability_map_is_not_a_label_map(tmp_path: Path) -> None:
    p = tmp_path / "p.npy"
    np.save(p, np.array([[0.2, 0.9], [0.0, 0.4]], np.float32))
    with pytest.raises(InputError) as e:
        load_labels(p, case_id="A1")
    assert "probability map" in str(e.value)
    assert "remove [structures]" in str(e.value)


def test_a_float_label_map_of_whole_numbers_is_read_as_labels(tmp_path: Path) -> None:
    p = tmp_path / "p.npy"
    np.save(p, np.array([[0.0, 3.0], [1.0, 0.0]], np.float32))
    m = load_labels(p, case_id="A1")
    crops = select_structures({"x": m}, {"core": [1, 3], "enhancing": [3]})
    assert crops["core"]["x"].tolist() == [[False, True], [True, False]]
    assert crops["enhancing"]["x"].tolist() == [[True]]


# ---- scores, audit and gates per structure ----------------------------------------------------


def test_the_score_tables_hold_every_structure_and_one_structure_reads_like_before(
    brats: Repo,
) -> None:
    scores = evaluate(load_cohort(brats.config_path), workers=1, cache=False)
    assert scores.structures == ("whole_tumor", "tumor_core", "enhancing")
    assert list(pd_unique(scores.table["structure"])) == list(scores.structures)
    assert set(scores.morphology["structure"]) == set(scores.structures)
    with pytest.raises(ValueError, match="3 structures"):
        scores.values("dice", model="candidate", ruler="expert")
    whole = scores.for_structure("whole_tumor")
    assert whole.structures == ("whole_tumor",)
    assert (whole.values("dice", model="candidate", ruler="expert") == 1.0).all()
    enh = scores.values("dice", model="candidate", ruler="expert", structure="enhancing")
    # the two cases without enhancing tumour: both masks empty, Dice 1, kept (never dropped)
    assert len(enh) == len(brats.case_ids)
    assert enh["B000"] == 1.0
    assert enh["B001"] == 1.0
    with pytest.raises(ValueError, match="whole_tumor, tumor_core, enhancing"):
        scores.for_structure("edema")


def test_each_file_is_read_once_per_case_whatever_the_number_of_structures(
    brats: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segfair.io as io

    calls: list[str] = []
    real = io.load_labels

    def counting(path: Any, **kw: Any) -> Any:
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(io, "load_labels", counting)
    task = build_tasks(load_cohort(brats.config_path))[0]
    result = evaluate_case(task)
    assert len(calls) == len(task.files) == 2
    assert list(result.scores) == ["whole_tumor", "tumor_core", "enhancing"]


def test_a_cached_case_of_several_structures_reads_back_the_same_scores(
    brats: Repo, tmp_path: Path
) -> None:
    cohort = load_cohort(brats.config_path)
    first = evaluate(cohort, workers=1, cache=tmp_path / "c")
    again = evaluate(cohort, workers=1, cache=tmp_path / "c")
    assert first.table.equals(again.table)
    assert first.morphology.equals(again.morphology)


def test_the_audit_is_per_structure_and_the_enhancing_gap_is_found(brats: Repo) -> None:
    scores = evaluate(load_cohort(brats.config_path), workers=1, cache=False)
    audit = Audit(scores, n_boot=200, min_group_size=5)
    enh = audit.for_structure("enhancing").gap("dice", by="sex", model="candidate")
    whole = audit.for_structure("whole_tumor").gap("dice", by="sex", model="candidate")
    assert enh.gap.estimate > 0.2
    assert enh.min_group == "M"
    assert whole.gap.estimate == 0.0
    assert audit.for_structure("enhancing") is audit.for_structure("enhancing")
    with pytest.raises(Exception, match="for_structure"):
        audit.gap("dice", by="sex", model="candidate")
    for estimand in (
        lambda a: a.coverage(by="sex"),
        lambda a: a.group_sizes(by="sex", ruler="expert"),
        lambda a: a.series("dice", model="candidate", ruler="expert"),
    ):
        with pytest.raises(Exception, match="3 structures"):
            estimand(audit)  # never numbers that mix structures, nor an empty table
    # the audit crosses processes (pytest-xdist) and its structures' audits still work
    import pickle

    again = pickle.loads(pickle.dumps(audit))
    assert again.for_structure("enhancing").gap("dice", by="sex", model="candidate").gap == enh.gap
    # replicates computed on a structure travel with the audit (pytest-xdist)
    other = Audit(scores, n_boot=200, min_group_size=5)
    other.adopt(audit.computed())
    assert other.for_structure("enhancing").computed().keys() == (
        audit.for_structure("enhancing").computed().keys()
    )


def test_a_gate_without_structure_applies_to_every_structure_each_in_holms_family() -> None:
    spec = {k: v for k, v in ENHANCING_GATE.items() if k != "structure"}
    gates = parse_gates([spec, WHOLE_GATE], trusted_ruler="expert", structures=list(BRATS))
    ids = [g.id for g in gates]
    assert ids[:3] == [
        "gap[dice,sex,candidate,expert][whole_tumor]",
        "gap[dice,sex,candidate,expert][tumor_core]",
        "gap[dice,sex,candidate,expert][enhancing]",
    ]
    assert ids[-1] == "gap[dice,sex,candidate,expert][whole_tumor]"


def test_with_one_structure_a_gate_may_name_it_and_its_id_is_unchanged() -> None:
    spec = {k: v for k, v in ENHANCING_GATE.items() if k != "structure"}
    named = parse_gates(
        [{**spec, "structure": "foreground"}], trusted_ruler="e", structures=["foreground"]
    )
    plain = parse_gates([spec], trusted_ruler="e", structures=["foreground"])
    assert named[0].id == plain[0].id == "gap[dice,sex,candidate,e]"


def test_an_unknown_structure_of_a_gate_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as e:
        parse_gates([{**ENHANCING_GATE, "structure": "enhancin"}], structures=list(BRATS))
    assert "gates[0].structure" in str(e.value)
    assert "did you mean 'enhancing'" in str(e.value)
    assert "whole_tumor, tumor_core, enhancing" in str(e.value)


def test_scores_built_by_hand_without_a_structure_column_have_the_one_structure() -> None:
    import pandas as pd

    t = pd.DataFrame(
        {"case_id": ["a"], "model": "m", "ruler": "e", "metric": "dice", "value": [0.5]}
    )
    s = Scores(t, pd.DataFrame({"g": ["x"]}, index=["a"]), "e", ("e",), ("m",))
    assert s.structures == ("foreground",)
    assert list(s.table.columns) == ["case_id", "structure", "model", "ruler", "metric", "value"]
    assert s.for_structure("foreground") is s


def pd_unique(series: Any) -> list[Any]:
    import pandas as pd

    return list(pd.unique(series))


# ---- end to end: the CLI and the plugin -------------------------------------------------------


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    """Validate against this checkout's schema (the installed package may read another's)."""
    import jsonschema

    schema = json.loads(
        (Path(__file__).parents[1] / "templates" / "report.schema.json").read_text("utf-8")
    )
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def test_the_cli_fails_the_enhancing_gate_and_passes_the_whole_tumour_gate(
    brats: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    brats.write_config(gates=[ENHANCING_GATE, WHOLE_GATE], holm=True)
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    html = tmp_path / "r.html"
    code = main(
        [
            "audit",
            "--config",
            str(brats.config_path),
            "--json",
            str(out),
            "--md",
            str(md),
            "--html",
            str(html),
        ]
    )
    assert code == 1
    doc = json.loads(out.read_text())
    status = {g["id"]: g["status"] for g in doc["gates"]}
    assert status == {
        "gap[dice,sex,candidate,expert][enhancing]": "failed",
        "gap[dice,sex,candidate,expert][whole_tumor]": "passed",
    }
    assert {g["structure"] for g in doc["gates"]} == {"enhancing", "whole_tumor"}
    assert all(g["holm"]["family_size"] == 2 for g in doc["gates"])
    assert doc["cohort"]["structures"] == list(BRATS)
    gaps = {(g["structure"], g["metric"]) for g in doc["gaps"]}
    assert {("enhancing", "dice"), ("whole_tumor", "dice"), ("tumor_core", "dice")} <= gaps
    assert not _schema_errors(doc)
    assert "[enhancing]" in md.read_text()
    assert "Structure 'enhancing': The dice gap" in md.read_text()
    assert "[enhancing]" in capsys.readouterr().out
    # the HTML shows every structure's sections, each under its own heading
    assert doc["worst_cases"]["structure"] == "enhancing"
    assert all(f'<section id="structure-{s}"' in html.read_text() for s in BRATS)


def test_a_gate_without_structure_is_decided_on_each_structure_by_the_cli(
    brats: Repo, tmp_path: Path
) -> None:
    spec = {k: v for k, v in ENHANCING_GATE.items() if k != "structure"}
    brats.write_config(gates=[spec], holm=True)
    out = tmp_path / "r.json"
    assert main(["audit", "--config", str(brats.config_path), "--json", str(out)]) == 1
    gates = json.loads(out.read_text())["gates"]
    status = {g["structure"]: g["status"] for g in gates}
    assert status == {"whole_tumor": "passed", "tumor_core": "passed", "enhancing": "failed"}
    # each structure's gate is one member of Holm's family, like three gates written out
    assert [g["holm"]["family_size"] for g in gates] == [3, 3, 3]


def test_an_unknown_structure_exits_2_naming_the_valid_ones(
    brats: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    brats.write_config(gates=[{**ENHANCING_GATE, "structure": "edema"}])
    assert main(["audit", "--config", str(brats.config_path)]) == 2
    err = capsys.readouterr().err
    assert "edema" in err
    assert "whole_tumor, tumor_core, enhancing" in err
    assert "Traceback" not in err


PLUGIN_TEST = """
import pytest

def test_enhancing(segfair_audit):
    segfair_audit.assert_gap("dice", by="sex", model="candidate", max=0.05,
                             structure="enhancing")

def test_whole(segfair_audit):
    segfair_audit.assert_gap("dice", by="sex", model="candidate", max=0.1,
                             structure="whole_tumor")

def test_a_structure_must_be_named(segfair_audit):
    with pytest.raises(Exception, match="whole_tumor, tumor_core, enhancing"):
        segfair_audit.assert_gap("dice", by="sex", model="candidate", max=0.1)

def test_the_audit_of_a_structure(segfair_audit):
    gap = segfair_audit.for_structure("enhancing").gap("dice", by="sex", model="candidate")
    assert gap.min_group == "M"
"""


def test_the_plugin_asserts_per_structure_and_runs_configured_gates_per_structure(
    pytester: pytest.Pytester,
) -> None:
    repo = make_brats_repo(pytester.path)
    spec = {k: v for k, v in ENHANCING_GATE.items() if k != "structure"}
    repo.write_config(gates=[spec])
    pytester.makepyfile(test_brats=PLUGIN_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*segfair::gap[[]dice,sex,candidate,expert[]][[]whole_tumor[]] PASSED*",
            "*segfair::gap[[]dice,sex,candidate,expert[]][[]enhancing[]] FAILED*",
            "*test_brats.py::test_enhancing FAILED*",
            "*test_brats.py::test_whole PASSED*",
        ]
    )


def test_the_brats_configuration_reads_back_as_written(tmp_path: Path) -> None:
    (tmp_path / "segfair.toml").write_text(to_toml({**BASE, "structures": BRATS}))
    from segfair.cohort.config import load_config

    cfg = load_config(tmp_path / "segfair.toml")
    assert list(cfg.structure_labels) == list(BRATS)


def test_no_regression_compares_each_structure_with_the_same_structure_of_the_baseline(
    brats: Repo, tmp_path: Path
) -> None:
    brats.write_config(gates=[WHOLE_GATE], holm=False)
    before = tmp_path / "before.json"
    main(["audit", "--config", str(brats.config_path), "--json", str(before), "--quiet"])
    gate = {"kind": "no_regression", "metric": "dice", "by": "sex", "model": "candidate"}
    brats.write_config(gates=[{**gate, "max_increase": 0.01, "decide_on": "estimate"}])
    out = tmp_path / "r.json"
    args = ["audit", "--config", str(brats.config_path), "--json", str(out)]
    assert main([*args, "--baseline", str(before)]) == 0
    gates = json.loads(out.read_text())["gates"]
    assert sorted(g["structure"] for g in gates) == sorted(BRATS)
    assert all(g["status"] == "passed" for g in gates)
    assert all(g["estimate"] == pytest.approx(0.0, abs=1e-4) for g in gates)


def test_the_planner_sizes_a_gate_on_its_structure(brats: Repo) -> None:
    from segfair.planner import plan

    scores = evaluate(load_cohort(brats.config_path), workers=1, cache=False)
    audit = Audit(scores, n_boot=200, min_group_size=5)
    p = plan(audit, {**ENHANCING_GATE, "ruler": "expert"})
    assert p.structure == "enhancing"
    assert p.gate_id == "gap[dice,sex,candidate,expert][enhancing]"
    assert p.to_dict()["structure"] == "enhancing"
    assert p.estimate == pytest.approx(
        audit.for_structure("enhancing").gap("dice", by="sex", model="candidate").gap.estimate
    )
    with pytest.raises(ConfigError, match="name the structure"):
        plan(audit, {k: v for k, v in ENHANCING_GATE.items() if k != "structure"})


def test_a_label_map_is_reoriented_like_a_mask_keeping_its_labels() -> None:
    from segfair.io import reorient_like

    lab = np.zeros((3, 4, 2), np.uint8)
    lab[0, 1, 1], lab[2, 3, 0] = 3, 1
    ref = LabelMap(lab, (1.0, 1.0, 1.0), np.eye(4))
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = 2.0  # x reversed, same world positions
    pred = LabelMap(lab[::-1], (1.0, 1.0, 1.0), flipped)
    moved = reorient_like(pred, ref)
    assert isinstance(moved, LabelMap)
    assert moved.array.tolist() == lab.tolist()
