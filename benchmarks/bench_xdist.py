"""Wall time of ``pytest`` against ``pytest -n 2`` (pytest-xdist) on segfair repositories.

Three repositories, written into a temporary folder:

- ``example``: ``examples/model-repo`` with the stand-in data its README writes (400 cases,
  32×32×16, preset ``null``): three configured gates and four assertions in tests;
- ``synth90``: ``segfair synth`` with 90 cases of 64×64×32 (preset ``hidden``): three configured
  gates and no test file;
- ``trivial``: one test that asserts ``True`` and no segfair configuration: what pytest-xdist's
  own start-up (two worker processes, each importing pytest and its plugins) costs.

Each segfair repository is timed cold (its case cache deleted first) and warm (cache filled by
the run before), serial and ``-n 2`` alternating, ``--reps`` times in one run; the table gives the
median of each and the ratio ``-n 2`` / serial. The issue's target is a ratio of at most 1.1.

Usage::

    nice -n 10 python benchmarks/bench_xdist.py [--reps 5] [--only example,synth90,trivial]

Run it with ``PYTHONPATH`` pointing at the checkout to measure (the subprocesses inherit it).
The pytest runs use ``-p no:cacheprovider -p no:randomly -p no:hypothesispytest``: the last
imports hypothesis at the end of every process (about a second), which a development
environment has and a model repository does not; both modes get the same flags.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "model-repo"
PYTEST = [
    sys.executable,
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "-p",
    "no:hypothesispytest",
]
MODES = {"serial": [], "-n 2": ["-n", "2"]}
REPOS = ("example", "synth90", "trivial")
BAD_ONLY = "--only takes names among {valid}; got {value!r}"


def make_example(root: Path) -> Path:
    from segfair.synth import make_cohort

    repo = root / "example"
    shutil.copytree(
        EXAMPLE, repo, ignore=shutil.ignore_patterns("data", "reports", ".segfair_cache")
    )
    # what the example's README says to run: segfair synth data --preset null --n-cases 400 …
    make_cohort(repo / "data", n_cases=400, shape=(32, 32, 16), preset="null", seed=11)
    (repo / "data" / "segfair.toml").unlink()
    return repo


def make_synth90(root: Path) -> Path:
    from segfair.synth import make_cohort

    repo = root / "synth90"
    make_cohort(repo, n_cases=90, shape=(64, 64, 32), preset="hidden", seed=3)
    return repo


def make_trivial(root: Path) -> Path:
    repo = root / "trivial"
    repo.mkdir()
    (repo / "test_trivial.py").write_text("def test_nothing():\n    assert True\n")
    return repo


def clear_cache(repo: Path) -> None:
    for folder in repo.rglob(".segfair_cache"):
        shutil.rmtree(folder)


def cpu_of_children() -> float:
    """User + system CPU seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(repo: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all processes of the run: controller, workers, pools)."""
    start, cpu = time.perf_counter(), cpu_of_children()
    done = subprocess.run(
        [*PYTEST, *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # gates may fail; anything else is a broken run
        raise SystemExit(
            f"pytest {' '.join(args)} in {repo} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed, cpu_of_children() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each timing")
    parser.add_argument(
        "--only", default=",".join(REPOS), help=f"comma-separated, among {', '.join(REPOS)}"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    for name in chosen:
        if name not in REPOS:
            parser.error(BAD_ONLY.format(valid=", ".join(REPOS), value=name))
    makers = {"example": make_example, "synth90": make_synth90, "trivial": make_trivial}
    import segfair

    print(f"segfair from {Path(segfair.__file__).parent}")
    print(f"pytest command: {' '.join(PYTEST[1:])} [-n 2]; {args.reps} repetitions, alternating")
    rows: list[tuple[str, str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="segfair-bench-xdist-") as tmp:
        root = Path(tmp)
        # the cache's signing key (segfair.io.signing) goes here, not into the user's home
        env = dict(os.environ, XDG_CONFIG_HOME=str(root / "config-home"))
        for name in chosen:
            repo = makers[name](root)
            states = ("cold", "warm") if name != "trivial" else ("-",)
            times: dict[tuple[str, str], list[float]] = {(s, m): [] for s in states for m in MODES}
            cpus: dict[tuple[str, str], list[float]] = {(s, m): [] for s in states for m in MODES}
            for _ in range(args.reps):
                for mode, extra in MODES.items():
                    for state in states:
                        if state == "cold":
                            clear_cache(repo)
                        wall, cpu = run(repo, extra, env)
                        times[state, mode].append(wall)
                        cpus[state, mode].append(cpu)
            for state in states:
                serial = statistics.median(times[state, "serial"])
                workers = statistics.median(times[state, "-n 2"])
                cpu_s = statistics.median(cpus[state, "serial"])
                cpu_w = statistics.median(cpus[state, "-n 2"])
                rows.append((name, state, serial, workers, cpu_s, cpu_w))
                print(
                    f"  {name:8} {state:4}  serial "
                    + " ".join(f"{t:5.2f}" for t in times[state, "serial"])
                    + "  |  -n 2 "
                    + " ".join(f"{t:5.2f}" for t in times[state, "-n 2"]),
                    flush=True,
                )
    print()
    print(
        f"{'repository':10} {'cache':5} {'serial s':>9} {'-n 2 s':>8} {'ratio':>6}"
        f" {'CPU serial s':>13} {'CPU -n 2 s':>11} {'CPU ratio':>9}"
    )
    for name, state, serial, workers, cpu_s, cpu_w in rows:
        print(
            f"{name:10} {state:5} {serial:9.2f} {workers:8.2f} {workers / serial:6.2f}"
            f" {cpu_s:13.2f} {cpu_w:11.2f} {cpu_w / cpu_s:9.2f}"
        )
    trivial = [r for r in rows if r[0] == "trivial"]
    if trivial:
        extra = trivial[0][3] - trivial[0][2]
        print(f"\npytest-xdist's own start-up (trivial repository): {extra:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
