"""Labels the planner asks for, labelled-only vs prediction-powered, on the synthetic presets.

For each preset (``hidden``, ``parikh``) a cohort is scored once with every expert label; each
repeat keeps the expert labels of a uniform 15% of the cases and plans every gate twice: as
configured (``estimator = "labelled"``) and prediction-powered (``plan(..., compare=True)``:
the same gate with ``estimator = "ppi"``, the automated ruler as proxy). The gates are the
trusted gap and the ruler gate whose share the cohort shows (``ruler_shrinkage`` when the
automated ruler hides part of the gap, else ``ruler_inflation``), with thresholds on both
sides of the all-labels value at 1.5 and 2.5 of its all-labels half-widths.

Per preset, gate and threshold it prints how often each estimator's gate is still open with
15%, its feasible plans among the open ones, the median plan, and the median extra labels to a
decision (0: decided already; ∞: open and not plannable); then, for one target half-width (1.5
× the all-labels one) the labels each estimator asks for; and how often the 15% interval of
the gap covers the all-labels gap.

``--realised R`` instead checks what a prediction-powered plan promises: R synthetic cohorts
(two groups, a proxy correlated ``--rho`` with the trusted score), each planned from a 15%
pilot, the planned labels then added from the known truth and the gate decided again; the
share of feasible plans that decided is the realised power (promised: 0.8), beside the
plan's own ``simulate`` estimate, and the same for the labelled-only plan of the same pilot.

Run: ``nice -n 10 python benchmarks/bench_planner_ppi.py --repeats 25 --n-boot 500``
and ``nice -n 10 python benchmarks/bench_planner_ppi.py --realised 200 --n-boot 500``
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from partial_labels import keep_expert  # the same partial ruler as that benchmark

from segfair.audit import Audit
from segfair.gates import GapGate, RulerInflationGate, RulerShrinkageGate, evaluate_gate
from segfair.planner import plan, select_cases
from segfair.scores import Scores
from segfair.session import SegfairSession
from segfair.synth import make_cohort

MODEL, BY, AUTO = "trained_on_automated", "age_group", "automated"
EST = ("labelled", "ppi")


def open_(audit: Audit, gate: Any) -> bool:
    """Whether the gate's interval straddles its limit (the planner has work to do)."""
    r = evaluate_gate(audit, gate)
    return bool(r.lower <= gate.max < r.upper) or r.status == "inconclusive"


def gates_of(full: Audit, preset: str) -> tuple[list[tuple[str, float, Any]], dict[str, float]]:
    gap = full.gap("dice", by=BY, model=MODEL).gap
    d = full.ruler_distortion("dice", by=BY, model=MODEL, automated=AUTO)
    # the ruler gate whose share the preset's automated ruler actually shows
    inflates = d.inflation.estimate > 0 and not d.shrinkage.estimate > 0
    ruler_cls = RulerInflationGate if inflates else RulerShrinkageGate
    share = d.inflation if inflates else d.shrinkage
    out: list[tuple[str, float, Any]] = []
    width: dict[str, float] = {}
    for name, est, kind in (("gap", gap, GapGate), (ruler_cls.__name__, share, ruler_cls)):
        half_lo, half_hi = est.estimate - est.lower, est.upper - est.estimate
        if half_lo + half_hi > 0:
            width[name] = round(1.5 * (half_lo + half_hi) / 2, 4)
        for k in (-2.5, -1.5, 1.5, 2.5):
            limit = round(est.estimate + k * (half_hi if k > 0 else half_lo), 3)
            try:
                if kind is GapGate:
                    g = GapGate(metric="dice", by=BY, model=MODEL, ruler="expert", max=limit)
                else:
                    g = kind(metric="dice", by=BY, model=MODEL, automated=AUTO, max=limit)
            except ValueError:
                continue  # a wide interval reaches past what the gate's limit can be
            if all(o[:2] != (name, limit) for o in out):
                out.append((name, limit, g))
    print(f"  all labels: gap {gap}; {ruler_cls.__name__} share {share}")
    return out, width


def run_preset(preset: str, args: argparse.Namespace) -> None:
    root = Path(args.out) / preset
    t0 = time.perf_counter()
    make_cohort(
        root, n_cases=args.n_cases, shape=(24, 24, 12), preset=preset, seed=0, overwrite=True
    )
    scores = SegfairSession.from_path(root / "segfair.toml").scores
    print(f"## {preset}: {args.n_cases} cases scored in {time.perf_counter() - t0:.0f}s")
    full = Audit(scores, n_boot=args.n_boot)
    g_full = full.gap("dice", by=BY, model=MODEL).gap.estimate
    gates, width = gates_of(full, preset)
    ids = np.array(scores.groups.index.astype(str))
    # per gate and estimator, per repeat: extra labels to a decision (0: decided with 15%
    # or the plan finds today's labels enough; inf: open and no feasible plan)
    tally: dict[tuple[str, float], dict[str, list[float]]] = {
        (n, m): {"labelled": [], "ppi": []} for n, m, _ in gates
    }
    opened: dict[tuple[str, float], dict[str, int]] = {
        (n, m): {"labelled": 0, "ppi": 0} for n, m, _ in gates
    }
    cover = {"labelled": 0, "ppi": 0}
    # a fixed target: 1.5 × the all-labels half-width, the same for both estimators
    fixed: dict[str, list[tuple[int, int, bool, bool]]] = {k: [] for k in width}
    for r in range(args.repeats):
        rng = np.random.default_rng([r, 99])
        keep = set(ids[rng.random(len(ids)) < args.fraction])
        audit = Audit(keep_expert(scores, keep), n_boot=args.n_boot, seed=r)
        for est in cover:
            cover[est] += (
                audit.with_estimator(est).gap("dice", by=BY, model=MODEL).gap.contains(g_full)
            )
        for name, limit, gate in gates:
            t = tally[(name, limit)]
            ppi_gate = gate.model_copy(update={"estimator": "ppi"})
            is_open = (open_(audit, gate), open_(audit, ppi_gate))
            p = plan(audit, gate, compare=True, seed=r)
            twin = p.prediction_powered
            assert twin is not None
            assert twin.estimator == "ppi"
            for est, o, q in zip(("labelled", "ppi"), is_open, (p, twin), strict=True):
                opened[(name, limit)][est] += o
                t[est].append(
                    0.0 if not o else float(q.total_additional) if q.feasible else math.inf
                )
        for name in width:
            gate = next(g for n_, _, g in gates if n_ == name)
            p = plan(audit, gate, compare=True, target_halfwidth=width[name])
            twin = p.prediction_powered
            assert twin is not None
            fixed[name].append(
                (p.total_additional, twin.total_additional, p.feasible, twin.feasible)
            )
    n = args.repeats
    print()
    print(
        "| gate | max | open with 15%: labelled / ppi | feasible plans: labelled / ppi | "
        "median plan (feasible ones): labelled / ppi | median labels to a decision: "
        "labelled → ppi |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def med(x: list[float]) -> str:
        return "–" if not x else ("∞" if math.isinf(m := float(np.median(x))) else f"{m:.0f}")

    for key, t in tally.items():
        o = opened[key]
        feas = {e: [v for v in t[e] if 0 < v < math.inf] for e in t}
        n_feas = {e: o[e] - sum(math.isinf(v) for v in t[e]) for e in t}
        print(
            f"| {key[0]} | {key[1]} | {o['labelled']}/{n} / {o['ppi']}/{n} | "
            f"{n_feas['labelled']}/{o['labelled']} / {n_feas['ppi']}/{o['ppi']} | "
            f"{med(feas['labelled'])} / {med(feas['ppi'])} | "
            f"{med(t['labelled'])} → {med(t['ppi'])} |"
        )
    print()
    print(
        "| gate | target half-width | feasible: labelled / ppi | "
        "median extra labels: labelled → ppi | ppi / labelled (median of ratios) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, rows in fixed.items():
        arr = np.array(rows, dtype=float)
        both = (arr[:, 2] > 0) & (arr[:, 3] > 0) & (arr[:, 0] > 0)
        ratio = f"{np.median(arr[both, 1] / arr[both, 0]):.2f}" if both.any() else "–"
        print(
            f"| {name} | {width[name]} | {int(arr[:, 2].sum())}/{n} / {int(arr[:, 3].sum())}/{n} "
            f"| {int(np.median(arr[:, 0]))} → {int(np.median(arr[:, 1]))} | {ratio} |"
        )
    print()
    print(
        f"15% gap interval covers the all-labels gap ({g_full:.4f}): labelled "
        f"{cover['labelled']}/{n}, prediction-powered {cover['ppi']}/{n}"
    )
    print(f"{preset}: {time.perf_counter() - t0:.0f}s")


def synthetic(seed: int, rho: float, n: int, fraction: float) -> tuple[Scores, np.ndarray]:
    """Two groups (true gap 0.05), a proxy correlated ``rho`` with the trusted Dice and biased
    +0.03 in one group; expert labels kept on a uniform ``fraction``. Also every trusted value
    (the truth the planned labels are drawn from)."""
    rng = np.random.default_rng([seed, 19])
    young = rng.random(n) < 0.5
    t = 0.8 - 0.05 * young + 0.08 * rng.standard_normal(n)
    a = t + 0.03 * young + math.sqrt(1 / rho**2 - 1) * 0.08 * rng.standard_normal(n)
    ids = np.array([f"s{i:05d}" for i in range(n)])
    frames = [
        pd.DataFrame({"case_id": ids, "model": "m", "ruler": AUTO, "metric": "dice", "value": a}),
        pd.DataFrame(
            {"case_id": ids, "model": "m", "ruler": "expert", "metric": "dice", "value": t}
        ),
    ]
    groups = pd.DataFrame(
        {"age": np.where(young, "young", "old")}, index=pd.Index(ids, name="case_id")
    )
    full = Scores(
        table=pd.concat(frames, ignore_index=True),
        groups=groups,
        trusted_ruler="expert",
        rulers=("expert", AUTO),
        models=("m",),
    )
    return full, ids[rng.random(n) < fraction]


def realised(args: argparse.Namespace) -> None:
    """Plans from a 15% pilot, the labels added from the truth: how often the gate decides."""
    t0 = time.perf_counter()
    rows = {e: {"open": 0, "feasible": 0, "decided": 0, "sim": [], "extra": []} for e in EST}
    for r in range(args.realised):
        scores, keep = synthetic(r, args.rho, args.n_cases, args.fraction)
        labelled = set(keep)
        audit = Audit(keep_expert(scores, labelled), n_boot=args.n_boot, seed=r)
        for est in EST:
            gate = GapGate(metric="dice", by="age", model="m", max=args.max, estimator=est)
            if not open_(audit, gate):
                continue
            t = rows[est]
            t["open"] += 1
            p = plan(audit, gate, simulate=200, seed=r)
            if not p.feasible or p.total_additional == 0:
                continue
            t["feasible"] += 1
            t["sim"].append(p.simulated_power)
            t["extra"].append(p.total_additional)
            add = select_cases(audit, [p], within="random", seed=r)
            more = Audit(
                keep_expert(scores, labelled | set(add["case_id"])), n_boot=args.n_boot, seed=r
            )
            t["decided"] += not open_(more, gate)
    n = args.realised
    print(
        f"realised power: {n} cohorts of {args.n_cases}, ρ = {args.rho}, gap ≤ {args.max} "
        f"(true gap 0.05), {args.fraction:.0%} pilot, power 0.8, uniform extra labels"
    )
    print("| estimator | open | feasible plans | median extra labels | simulated | realised |")
    print("|---|---:|---:|---:|---:|---:|")
    for est, t in rows.items():
        k = max(t["feasible"], 1)
        extra = int(np.median(t["extra"])) if t["extra"] else 0
        sim = float(np.mean(t["sim"])) if t["sim"] else float("nan")
        print(
            f"| {est} | {t['open']}/{n} | {t['feasible']} | {extra} | {sim:.2f} | "
            f"{t['decided']}/{t['feasible']} ({t['decided'] / k:.0%}) |"
        )
    print(f"{time.perf_counter() - t0:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["hidden", "parikh"])
    ap.add_argument("--n-cases", type=int, default=1500)
    ap.add_argument("--fraction", type=float, default=0.15)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--out", default="/tmp/segfair_planner_ppi_bench")
    ap.add_argument("--realised", type=int, default=0, help="synthetic cohorts (see above)")
    ap.add_argument("--rho", type=float, default=0.7, help="with --realised")
    ap.add_argument("--max", type=float, default=0.065, help="with --realised: the gap limit")
    args = ap.parse_args()
    if args.realised:
        realised(args)
    for preset in args.presets if not args.realised else ():
        run_preset(preset, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
