"""Does the audit recover the published effects on the synthetic ``parikh`` preset?

Generates a study-sized cohort and one with 20× more cases (independent seeds), evaluates Dice,
and checks that the study's 95% intervals of the ruler distortion (trained_on_expert, automated
vs expert labels) and of the amplification (trained_on_automated vs trained_on_expert, expert
labels) cover the values measured on the large cohort.

    python benchmarks/parikh_check.py [--n-cases 300] [--factor 20] [--shape 32x32x16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from segfair.audit import Audit
from segfair.cohort import load_cohort
from segfair.evaluate import evaluate
from segfair.synth import make_cohort


def measure(
    root: Path, n: int, shape: tuple[int, ...], seed: int, n_boot: int
) -> dict[str, object]:
    config = make_cohort(root, n_cases=n, shape=shape, preset="parikh", seed=seed, workers=2)
    scores = evaluate(load_cohort(config), metrics=["dice"], workers=2, cache=False, progress=False)
    audit = Audit(scores, seed=0, n_boot=n_boot)
    d = audit.ruler_distortion(
        "dice", by="age_group", model="trained_on_expert", automated="automated"
    )
    a = audit.amplification(
        "dice", by="age_group", model="trained_on_automated", baseline="trained_on_expert"
    )
    return {
        "distortion": d.distortion,
        "amplification": a.amplification,
        "gap_true": d.gap_trusted,
        "gap_observed": d.gap_automated,
        "gap_amplified": a.gap_model if hasattr(a, "gap_model") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cases", type=int, default=300)
    parser.add_argument("--factor", type=int, default=20)
    parser.add_argument("--shape", default="32x32x16")
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    shape = tuple(int(x) for x in args.shape.split("x"))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(Path(tmp) / "small", args.n_cases, shape, 1, args.n_boot)
        large = measure(Path(tmp) / "large", args.n_cases * args.factor, shape, 2, 200)
    print(f"parikh preset at {args.shape}: {args.n_cases} cases vs {args.n_cases * args.factor}")
    for key in ("gap_true", "gap_observed", "distortion", "amplification"):
        s, big = small[key], large[key]
        covered = s.lower <= big.estimate <= s.upper  # type: ignore[attr-defined]
        print(
            f"{key:<14} study {s.estimate:+.4f} [{s.lower:+.4f}, {s.upper:+.4f}]"  # type: ignore[attr-defined]
            f"   large {big.estimate:+.4f}   covered: {covered}"
        )  # type: ignore[attr-defined]
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
