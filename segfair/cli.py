"""Command-line front of segfair: ``segfair audit | demo | synth | init | plan``.

Exit status: 0 when every gate passes (or is inconclusive and let through by
``on_inconclusive``), 1 when a gate blocks (failed, error, or inconclusive under
``on_inconclusive = "fail"``), 2 for bad input or usage (with the error, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from segfair.errors import SegfairError
from segfair.sinks import for_csv_cell, for_terminal
from segfair.version import __version__

if TYPE_CHECKING:
    from segfair.session import SegfairSession

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
NO_GATES = (
    "no gate is configured in {where}: nothing would be checked. Declare gates as "
    '[[tool.segfair.gates]] (segfair init writes some; README "Gates"), or pass '
    "--allow-no-gates to audit without a verdict"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse exits 2 on usage errors too; keep its message, drop nothing
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"segfair: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 96x96x48, got {text!r}") from None
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"expected three positive sizes like 96x96x48 (two, like 128x128, for the 2-D "
            f"dermoscopy preset), got {text!r}"
        )
    return dims


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="segfair",
        description="Subgroup fairness of segmentation models as a CI gate.",
    )
    parser.add_argument("--version", action="version", version=f"segfair {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    quiet = _Parser(add_help=False)
    quiet.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and the verdict"
    )

    reports = _Parser(add_help=False)
    reports.add_argument("--html", metavar="PATH", help="write the HTML audit report here")
    reports.add_argument("--json", metavar="PATH", help="write the JSON report here")
    reports.add_argument("--md", metavar="PATH", help="write the Markdown summary here")

    audit = sub.add_parser(
        "audit",
        parents=[quiet, reports],
        help="evaluate the cohort and check the configured gates",
        epilog="exit status: 0 no gate blocks; 1 a gate blocks (failed, error, or inconclusive "
        "under on_inconclusive = fail); 2 bad input or usage, with a message",
    )
    audit.add_argument(
        "--config",
        metavar="PATH",
        default=".",
        help="segfair.toml, pyproject.toml, or a folder holding one (default: .)",
    )
    audit.add_argument("--seed", type=int, default=None, help="override the configured seed")
    audit.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="processes for evaluation (default: configured, else all CPUs)",
    )
    audit.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="a running Dask scheduler to evaluate on (needs segfair[dask])",
    )
    audit.add_argument("--no-cache", action="store_true", help="ignore and do not write the cache")
    audit.add_argument(
        "--baseline",
        metavar="PATH",
        default=None,
        help="a previous JSON report, for no_regression gates",
    )
    audit.add_argument(
        "--on-inconclusive",
        choices=("fail", "warn", "pass"),
        default=None,
        help="what an inconclusive gate does to the exit status: fail (default), warn or pass "
        "(default: the configured on_inconclusive); an error always fails",
    )
    audit.add_argument(
        "--allow-no-gates",
        action="store_true",
        help="audit and write the reports even when no gate is configured (exit 0); without it, "
        "a configuration with no [[tool.segfair.gates]] exits 2: nothing would be checked",
    )

    demo = sub.add_parser(
        "demo", parents=[quiet], help="generate a synthetic cohort with a hidden gap and audit it"
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        default="segfair-demo",
        help="folder for the cohort and the reports (default: ./segfair-demo)",
    )
    demo.add_argument(
        "--n-cases", type=_positive_int, default=600, help="number of patients (default 600)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the cohort and the bootstrap")
    demo.add_argument(
        "--workers", type=_positive_int, default=None, help="processes (default: every CPU)"
    )

    synth = sub.add_parser(
        "synth",
        parents=[quiet],
        help="write a synthetic cohort with known disparities (breast DCE-MRI in the MAMA-MIA "
        "layout, BraTS-like brain tumours, multifocal lesions or 2-D dermoscopy PNGs)",
    )
    synth.add_argument("out", metavar="OUT_DIR", help="folder to write the cohort into")
    synth.add_argument(
        "--preset",
        default="hidden",
        help="breast DCE-MRI: null, hidden (default) or parikh; brats (nested tumour labels), "
        "multifocal (small satellite lesions) or dermoscopy (2-D PNG)",
    )
    synth.add_argument(
        "--n-cases", type=_positive_int, default=200, help="number of patients (default 200)"
    )
    synth.add_argument(
        "--shape",
        type=_shape,
        default=None,
        help="e.g. 96x96x48 (default: the preset's: 96x96x48 breast, 96x96x64 brats, 64x64x40 "
        "multifocal, 128x128 dermoscopy)",
    )
    synth.add_argument(
        "--seed", type=int, default=0, help="seed of every draw: same seed, same bytes"
    )
    synth.add_argument(
        "--workers", type=_positive_int, default=1, help="processes writing cases (default 1)"
    )
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder that is not an earlier synth output",
    )

    init = sub.add_parser(
        "init",
        parents=[quiet],
        help="write a [tool.segfair] section and a fairness test for a repository",
    )
    init.add_argument(
        "dir", metavar="DIR", nargs="?", default=".", help="the repository (default .)"
    )
    init.add_argument("--force", action="store_true", help="overwrite what exists")

    plan = sub.add_parser(
        "plan",
        parents=[quiet],
        help="how many more trusted labels each gate needs, and which cases to label",
    )
    plan.add_argument(
        "--config", metavar="PATH", default=".", help="configuration file or folder (default .)"
    )
    plan.add_argument(
        "--out",
        metavar="CSV",
        default="labels_to_annotate.csv",
        help="the list of cases to send to the annotators (default labels_to_annotate.csv)",
    )
    plan.add_argument(
        "--power",
        type=float,
        default=0.8,
        help="probability that each gate decides once the labels are added (default 0.8)",
    )
    plan.add_argument(
        "--target-halfwidth",
        type=float,
        default=None,
        help="plan for an interval half-width (metric units) instead of a power",
    )
    plan.add_argument(
        "--within",
        choices=("disagreement", "random"),
        default="disagreement",
        help="inside a group, pick the cases where model and automated labels disagree most "
        "(default) or at random",
    )
    plan.add_argument(
        "--seed", type=int, default=None, help="seed of the selection (default: the configured)"
    )
    plan.add_argument(
        "--workers", type=_positive_int, default=None, help="processes scoring the cases"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status (0 pass, 1 gate failed, 2 bad input or usage)."""
    out = stdout or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return EXIT_USAGE
    try:
        if args.command == "audit":
            return _audit(args, out)
        if args.command == "demo":
            return _demo(args, out)
        if args.command == "synth":
            return _synth(args, out)
        if args.command == "init":
            return _init(args, out)
        if args.command == "plan":
            return _plan(args, out)
    except SegfairError as exc:
        print(for_terminal(f"segfair: error: {exc}"), file=sys.stderr)
        if args.command == "audit":
            _github_input_error(str(exc), out)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("segfair: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


def _say(args: argparse.Namespace, out: TextIO, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(for_terminal(text), file=out)


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    from segfair.report import summary_lines_from_dicts
    from segfair.session import SegfairSession

    session = SegfairSession.from_path(
        args.config,
        seed=args.seed,
        workers=args.workers,
        progress=False if args.quiet else None,
        cache=False if args.no_cache else None,
        baseline=args.baseline,
        scheduler=args.scheduler,
        on_inconclusive=args.on_inconclusive,
    )
    cfg = session.config
    # validate gates before any heavy work; with none, a green exit would check nothing
    if not session.gates and not args.allow_no_gates:
        raise SegfairError(NO_GATES.format(where=cfg.source or args.config))
    _check_proxy(session)
    results = session.check_config_gates()
    document = session.report()
    try:
        written = session.write_reports(
            html=args.html or (cfg.resolve(cfg.html) if cfg.html else None),
            json_path=args.json or (cfg.resolve(cfg.json_report) if cfg.json_report else None),
            md=args.md or (cfg.resolve(cfg.md) if cfg.md else None),
            document=document,
        )
    except OSError as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        raise SegfairError(f"cannot write the report{where}: {exc.strerror or exc}") from None
    for warning in session.warnings:  # on stderr, even with --quiet: said, never silent
        print(for_terminal(f"segfair: warning: {warning}"), file=sys.stderr)
    # the document's gates: with their locations, so in the order of every report
    lines = summary_lines_from_dicts(
        document["gates"], written, rerun_hint="re-run with --html PATH to get the audit report"
    )
    for line in lines if not args.quiet else lines[-1:]:
        print(for_terminal(line), file=out)
    _github_report(document, out, root=cfg.root)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _check_proxy(session: SegfairSession) -> None:
    """A run or gate that asks for prediction-powered estimates of a partial trusted ruler needs
    a proxy ruler: without one the run is refused (exit 2, the audit's message lists the
    rulers), not left to each gate to error on."""
    wanted = session.config.estimator == "ppi" or any(
        getattr(g, "estimator", None) == "ppi" for g in session.gates
    )
    if wanted:
        audit = session.audit.with_estimator("ppi")
        if not bool(audit.labelled_mask().all()):
            audit.proxy_ruler()


def _github_report(document: Any, out: TextIO, *, root: Path | None = None) -> None:
    """In GitHub Actions, what the plugin does: the Markdown summary appended to the job
    summary, one annotation per gate that fails the build (or warns)."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from segfair.report import github_annotations, markdown_report

    _append_job_summary(markdown_report(document))
    # workflow commands, escaped by their builder; file= relative to the repository
    for line in github_annotations(document, root=root):
        print(line, file=out)


def _github_input_error(message: str, out: TextIO) -> None:
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from segfair.report import md_escape
    from segfair.report.github import error_annotation

    _append_job_summary("## 🛑 segfair: input error — no gate was checked\n\n" + md_escape(message))
    print(error_annotation("segfair input error", message), file=out)


def _append_job_summary(text: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


def _synth(args: argparse.Namespace, out: TextIO) -> int:
    from segfair.synth import make_cohort

    try:
        config = make_cohort(
            Path(args.out),
            n_cases=args.n_cases,
            shape=args.shape,
            preset=args.preset,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as exc:
        # bad arguments, or an output folder that holds something else: say so, no traceback
        raise SegfairError(str(exc)) from None
    _say(
        args,
        out,
        f"wrote {args.n_cases} cases ({args.preset} preset) to {args.out}; "
        f"audit them with: segfair audit --config {config}",
    )
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from segfair.demo import run_demo

    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise SegfairError(
            f"--out {str(folder)!r} is a file; the demo writes a folder (its cohort and reports): "
            "give a folder name"
        )
    try:
        return run_demo(
            folder,
            n_cases=args.n_cases,
            seed=args.seed,
            workers=args.workers,
            quiet=args.quiet,
            out=out,
        )
    except OSError as exc:
        raise SegfairError(f"cannot write the demo to {str(folder)!r}: {exc}") from None


def _check_out_file(path: Path, flag: str) -> None:
    if path.is_dir():
        raise SegfairError(
            f"{flag} {str(path)!r} is a folder; give the name of the file to write, e.g. "
            f"{str(path / 'labels_to_annotate.csv')!r}"
        )


def _spreadsheet_safe(table: Any) -> Any:
    """``table`` with every text cell that a spreadsheet would evaluate made inert."""
    import pandas as pd

    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(for_csv_cell)
    return safe


def _init(args: argparse.Namespace, out: TextIO) -> int:
    from segfair.scaffold import init_repository

    written = init_repository(Path(args.dir), force=args.force)
    for path in written:
        _say(args, out, f"wrote {path}")
    _say(args, out, "next: review the [tool.segfair] section, then run: pytest")
    return EXIT_OK


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    """``segfair plan``: print the per-gate plans and write the annotation list."""
    import math

    from segfair.planner import plan_all, select_cases
    from segfair.session import SegfairSession

    path = Path(args.out)
    _check_out_file(path, "--out")  # before the audit, not after minutes of work
    session = SegfairSession.from_path(
        args.config,
        seed=args.seed,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    if not session.gates:  # labels are planned for gates: with none, there is nothing to plan
        raise SegfairError(NO_GATES.format(where=session.config.source or args.config))
    _check_proxy(session)
    audit = session.audit
    plans = plan_all(
        audit,
        session.gates,
        power=args.power,
        target_halfwidth=args.target_halfwidth,
        simulate=200,
        seed=session.seed,
        compare=True,  # a labelled-only gate on a partial ruler: what 'ppi' would need
    )
    cases = select_cases(audit, plans, within=args.within, seed=session.seed)
    # each gate's line agrees with the audit's verdict for it (the same gates, seed and audit)
    verdicts = {r.id: r for r in session.check_config_gates()}
    from segfair.io import atomic_write_text

    try:
        atomic_write_text(path, _spreadsheet_safe(cases).to_csv(index=False))
    except OSError as exc:
        raise SegfairError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    for p in plans:
        if not args.quiet:
            result = verdicts.get(p.gate_id)
            line = p.verdict_sentence(result) if result is not None else p.sentence()
            print(for_terminal(f"{p.gate_id}: {line}"), file=out)
            twin = p.prediction_powered
            if p.estimator == "ppi":
                print("  planned for the prediction-powered estimate (estimator 'ppi')", file=out)
            elif twin is not None and "estimator 'ppi'" not in line:
                more = (
                    f"about {twin.total_additional} more label(s)"
                    if twin.feasible
                    else "no plannable number of labels"
                )
                print(f"  the same gate prediction-powered (estimator 'ppi'): {more}", file=out)
            if math.isfinite(p.simulated_power):
                print(f"  simulated power at the planned sizes: {p.simulated_power:.0%}", file=out)
    print(f"wrote {len(cases)} case(s) to annotate to {path}", file=out)
    if len(cases) and not args.quiet:
        print(
            "once they are labelled, weight the enlarged sample: 1 for the cases labelled before, "
            "the list's `weight` for these (segfair.planner.batch_weights; "
            "docs/partial-labels.md)",
            file=out,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
