"""``segfair demo``: a synthetic cohort whose automated labels hide an age gap, audited end to end.

Example
-------
>>> run_demo(Path("segfair-demo"))  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from segfair.audit import DistortionResult

__all__ = ["DEMO_MODEL", "headline", "run_demo"]

#: The model whose gap the demo's headline is about (trained on the automated labels).
DEMO_MODEL = "trained_on_automated"
DEMO_ATTRIBUTE = "age_group"
DEMO_SHAPE = (96, 96, 48)


def headline(distortion: DistortionResult, *, attribute: str, metric: str = "Dice") -> str:
    """The demo's finding in plain words, from a :meth:`segfair.Audit.ruler_distortion` result.

    Example
    -------
    >>> headline(audit.ruler_distortion("dice", by="age_group", model="m", automated="auto"),
    ...          attribute="age_group")  # doctest: +SKIP
    'On auto labels the age gap in Dice looks like 0.03; on expert labels it is 0.09: ...'
    """
    auto_gap = float(distortion.gap_automated.estimate)
    true_gap = float(distortion.gap_trusted.estimate)
    trusted, automated = distortion.trusted, distortion.automated
    name = attribute.replace("_group", "").replace("_", " ")
    text = (
        f"On {automated} labels the {name} gap in {metric} looks like {auto_gap:.2f}; "
        f"on {trusted} labels it is {true_gap:.2f}"
    )
    if true_gap > 0 and auto_gap < true_gap:
        text += f": the {automated} labels hide {1 - auto_gap / true_gap:.0%} of it."
    elif true_gap > 0 and auto_gap > true_gap:
        text += f": the {automated} labels inflate it by {auto_gap / true_gap - 1:.0%}."
    else:
        text += "."
    return text


def run_demo(
    out_dir: Path,
    *,
    n_cases: int = 600,
    seed: int = 0,
    workers: int | None = None,
    quiet: bool = False,
    out: TextIO | None = None,
) -> int:
    """Generate the ``hidden`` preset cohort in ``out_dir``, audit it, write the reports and
    print the headline and each gate's verdict. Returns 0: gates that do not hold are the point
    of the demo, not an error."""
    from segfair.report import summary_lines
    from segfair.session import SegfairSession
    from segfair.synth import make_cohort

    stream = out or sys.stdout

    def say(text: str) -> None:
        if not quiet:
            print(text, file=stream, flush=True)

    start = time.perf_counter()
    cohort_dir = out_dir / "cohort"
    say(
        f"segfair demo: writing {n_cases} synthetic breast DCE-MRI cases (the 'hidden' preset) "
        f"to {cohort_dir} …"
    )
    config_path = make_cohort(
        cohort_dir,
        n_cases=n_cases,
        shape=DEMO_SHAPE,
        preset="hidden",
        seed=seed,
        overwrite=True,
        workers=workers or 1,
    )
    session = SegfairSession.from_path(config_path, workers=workers, progress=not quiet)
    say("segfair demo: scoring every model against the expert and the automated labels …")
    results = session.check_config_gates()
    cfg = session.config
    automated = cfg.automated_rulers[0]
    distortion = session.audit.ruler_distortion(
        "dice", by=DEMO_ATTRIBUTE, model=DEMO_MODEL, automated=automated
    )
    written = session.write_reports(
        html=out_dir / "report.html", json_path=out_dir / "report.json", md=out_dir / "summary.md"
    )
    print("", file=stream)
    print(headline(distortion, attribute=DEMO_ATTRIBUTE), file=stream)
    print("", file=stream)
    for line in summary_lines(results, written):
        print(line, file=stream)
    say(
        f"(demo finished in {time.perf_counter() - start:.1f} s. FAILED is evidence of harm; "
        "INCONCLUSIVE means this cohort cannot tell either way, and says how many cases would "
        "likely decide; ERROR is a gate that could not be evaluated. In a model repository each "
        'of them fails the build under the default on_inconclusive = "fail" ("warn" or "pass" '
        "let an undecided gate through); see docs/verdicts.md)"
    )
    return 0
