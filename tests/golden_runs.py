"""Fixed runs whose reports are kept as golden files in ``tests/golden/``.

A change that means to move code without changing behaviour must leave these reports identical
(after :func:`normalise`: the time a report was made and the folders a run used). Regenerate only
when a change of behaviour is intended, and say so in the commit:

    python tests/golden_runs.py --write
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "model-repo"
SHAPE = (24, 24, 12)
N_BOOT = 300

# Every gate kind at least once, so that each kind's check is in a golden report. Thresholds are
# chosen so that the verdicts differ (pass, fail, insufficient evidence).
EXTRA_GATES = """
[[gates]]
kind = "gap"
metric = "hd95"
by = "age_group"
model = "trained_on_expert"
max = 3.0

[[gates]]
kind = "gap"
metric = "dice"
by = ["age_group", "site"]
model = "trained_on_expert"
statistic = "ratio"
min = 0.8
allow_insufficient = true

[[gates]]
kind = "ruler_inflation"
metric = "dice"
by = "age_group"
model = "trained_on_expert"
automated = "automated"
max = 0.5

[[gates]]
kind = "label_agreement"
metric = "dice"
by = "ethnicity"
automated = "automated"
min = 0.6

[[gates]]
kind = "min_group_metric"
metric = "nsd"
by = "site"
model = "trained_on_automated"
min = 0.5

[[gates]]
kind = "dpd"
metric = "dice"
threshold = 0.7
by = "age_group"
model = "trained_on_automated"
max = 0.2

[[gates]]
kind = "dir"
metric = "dice"
threshold = 0.7
by = "age_group"
model = "trained_on_expert"
min = 0.8

[[gates]]
kind = "coverage"
by = "age_group"
min = 0.95

[[gates]]
kind = "min_group_size"
by = "ethnicity"
min = 5
"""


def normalise(text: str, *roots: Path) -> str:
    """A report with the run's time and folders taken out."""
    text = re.sub(r'"generated_at": "[^"]*"', '"generated_at": "<time>"', text)
    text = re.sub(r"generated_at[^<\n]{0,40}?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    for root in roots:
        for form in {str(root), str(root.resolve()), root.as_posix()}:
            text = text.replace(form, "<root>")
    return text


def _session_reports(config_path: Path, out: Path, *, baseline: Path | None = None) -> None:
    from segfair.config import load_config
    from segfair.session import SegfairSession

    config = load_config(config_path).model_copy(update={"n_boot": N_BOOT, "cache": False})
    session = SegfairSession(config, workers=1, progress=False, baseline=baseline)
    session.check_config_gates()
    session.write_reports(
        html=out / "report.html", json_path=out / "report.json", md=out / "report.md"
    )


def _synth(root: Path, preset: str, seed: int, n_cases: int = 90, holm: bool = False) -> Path:
    from segfair.synth import make_cohort

    path = make_cohort(root / "cohort", n_cases=n_cases, shape=SHAPE, preset=preset, seed=seed)
    path.write_text(f"holm = {str(holm).lower()}\n" + path.read_text() + EXTRA_GATES)
    return path


def run_demo(root: Path, out: Path) -> None:
    from segfair.demo import run_demo as demo

    demo(root, n_cases=60, seed=0, workers=1, quiet=True, out=io.StringIO())
    for name, target in (("report.html", "report.html"), ("report.json", "report.json")):
        shutil.copy(root / name, out / target)
    shutil.copy(root / "summary.md", out / "report.md")


def run_preset(preset: str, seed: int, holm: bool = False) -> Callable[[Path, Path], None]:
    def run(root: Path, out: Path) -> None:
        config = _synth(root, preset, seed, holm=holm)
        _session_reports(config, out)

    return run


def run_partial(root: Path, out: Path, *, estimator: str | None = None) -> None:
    config = _synth(root, "hidden", 5, n_cases=120)
    if estimator is not None:  # a top-level key: before the first table
        config.write_text(f'estimator = "{estimator}"\n' + config.read_text())
    text = config.read_text().replace(
        'expert = "segmentations/expert/{case_id}.nii.gz"',
        'expert = { path = "segmentations/expert/{case_id}.nii.gz", partial = true }',
    )
    config.write_text(text)
    for f in sorted((root / "cohort" / "segmentations" / "expert").glob("*.nii.gz"))[::3]:
        f.unlink()
    _session_reports(config, out)


def run_regression(root: Path, out: Path) -> None:
    """A no_regression gate against a baseline report of the same cohort, another model."""
    config = _synth(root, "parikh", 9, n_cases=60)
    first = root / "first"
    first.mkdir()
    _session_reports(config, first)
    config.write_text(
        config.read_text()
        + '\n[[gates]]\nkind = "no_regression"\nmetric = "dice"\nby = "age_group"\n'
        'model = "trained_on_automated"\nmax_increase = 0.02\n'
    )
    _session_reports(config, out, baseline=first / "report.json")


def run_example(root: Path, out: Path) -> None:
    from segfair.synth import make_cohort

    repo = root / "repo"
    shutil.copytree(
        EXAMPLE, repo, ignore=shutil.ignore_patterns("data", "reports", ".segfair_cache")
    )
    make_cohort(repo / "data", n_cases=200, shape=(24, 24, 12), preset="null", seed=11)
    (repo / "data" / "segfair.toml").unlink()
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("n_boot = 1000", f"n_boot = {N_BOOT}"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if not (repo / "reports" / "fairness.json").is_file():
        raise RuntimeError(f"the example repository wrote no report:\n{done.stdout}\n{done.stderr}")
    for name, suffix in (
        ("fairness.html", "html"),
        ("fairness.json", "json"),
        ("fairness.md", "md"),
    ):
        shutil.copy(repo / "reports" / name, out / f"report.{suffix}")


RUNS: dict[str, Callable[[Path, Path], None]] = {
    "demo": run_demo,
    "null": run_preset("null", 1),
    "hidden": run_preset("hidden", 2, holm=True),
    "parikh": run_preset("parikh", 3),
    "partial": run_partial,
    # the same partial cohort, every trusted-ruler mean prediction-powered
    "partial_ppi": lambda root, out: run_partial(root, out, estimator="ppi"),
    "regression": run_regression,
    "example": run_example,
}
SUFFIXES = ("json", "html", "md")


def produce(name: str, workdir: Path) -> dict[str, str]:
    """Run ``name`` in ``workdir``; its reports, normalised, by suffix."""
    root = workdir / "run"
    out = workdir / "out"
    root.mkdir(parents=True)
    out.mkdir()
    RUNS[name](root, out)
    return {
        suffix: normalise((out / f"report.{suffix}").read_text(encoding="utf-8"), root, workdir)
        for suffix in SUFFIXES
    }


def golden_path(name: str, suffix: str) -> Path:
    # ".golden": they are data, not source (no linter or duplicate finder should read them)
    return GOLDEN / f"{name}.{suffix}.golden"


def first_difference(expected: str, actual: str, label: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "golden/" + label, "now", n=2, lineterm=""
    )
    return "\n".join(list(diff)[:60])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    parser.add_argument("names", nargs="*", default=list(RUNS))
    args = parser.parse_args()
    GOLDEN.mkdir(exist_ok=True)
    bad = 0
    for name in args.names:
        with tempfile.TemporaryDirectory() as tmp:
            reports = produce(name, Path(tmp))
        for suffix, text in reports.items():
            path = golden_path(name, suffix)
            if args.write:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path}")
            elif not path.is_file() or path.read_text(encoding="utf-8") != text:
                bad += 1
                print(f"DIFFERS: {path}")
                if path.is_file():
                    print(first_difference(path.read_text(encoding="utf-8"), text, path.name))
            else:
                print(f"same: {path}")
    # the JSON of a report must stay JSON after normalisation
    if args.write:
        for name in args.names:
            json.loads(golden_path(name, "json").read_text(encoding="utf-8"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
