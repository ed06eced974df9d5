"""Verdict calibration: one-sided error of every deciding bound where cohorts are small and skewed.

Per-case values are simulated from known populations (not ``segfair.synth``), the real
:class:`segfair.audit.Audit` is run on them, and for every scenario the script counts how often
each bound lies on the wrong side of the truth:

* **group lower bound** above the group's true mean (a ``min_group_metric`` gate passes a group
  that should fail), and the group interval's two-sided coverage;
* **gap upper bound** below the true gap (a ``gap`` gate passes a model at its limit);
* **gap lower bound** above the true gap (at a zero gap: "a real gap" where there is none);
* **share** (``ruler_distortion``) bounds on either side of the true distortion, where defined;
* the **pass rate** of a ``gap`` gate (upper bound ≤ limit) for the power scenario.

Each rate comes with its Monte-Carlo standard error ``sqrt(p (1 − p) / R)`` (R simulations; the
group rates average the groups of a simulation, so their standard error is that of the mean over
simulations). The script only uses the public ``Audit`` API, so the same command measures any
version of segfair: run it with ``PYTHONPATH`` pointing at the version to measure.

Run::

    nice -n 10 python benchmarks/verdict_calibration.py --reps 1000 --n-boot 1000 --jobs 2
    python benchmarks/verdict_calibration.py --reps 100 --n-boot 400     # a quick look
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segfair.audit import Audit
from segfair.scores import Scores

CAP = 150.0
LABELS = ("a", "b", "c")
MAMAMIA = (349, 754, 400)


@dataclass(frozen=True)
class Scenario:
    """One row of the study: group sizes, a value model and the group means it implies."""

    name: str
    sizes: tuple[int, ...]
    kind: str  # "dice0" | "beta" | "hd95" | "sites" | "paired" | "partial"
    means: tuple[float, ...]  # the Beta (or finite-distance) mean of each group
    miss: tuple[float, ...] = (0.0, 0.0, 0.0)  # share of zero-Dice / capped misses per group
    sd: float = 0.2
    limit: float = math.nan  # gap gate limit (pass rate reported when set)
    cluster: bool = False  # pass cluster="site" to the audit
    scale: float = 1.0  # paired: the automated gap is scale × the trusted gap
    extra: dict[str, float] = field(default_factory=dict, hash=False, compare=False)

    def truth(self) -> np.ndarray:
        m = np.asarray(self.means)
        p = np.asarray(self.miss)
        if self.kind == "hd95":
            return (1 - p) * m + p * CAP
        if self.kind == "partial":
            return m - HARD_SHARE * HARD_DROP
        return (1 - p) * m


HARD_SHARE = 0.3  # partial: share of hard cases, Dice lower by HARD_DROP, sampled more often
HARD_DROP = 0.2
SITE_SHARES = np.array([[0.4, 0.3, 0.2, 0.1], [0.25] * 4, [0.1, 0.2, 0.3, 0.4]])
SITE_SD = 0.04


def beta(rng: np.random.Generator, mean: np.ndarray, sd: float) -> np.ndarray:
    mean = np.clip(mean, 0.02, 0.98)
    sd_ok = np.minimum(sd, 0.9 * np.sqrt(mean * (1 - mean)))  # a Beta needs sd² < μ(1 − μ)
    k = mean * (1 - mean) / sd_ok**2 - 1
    return rng.beta(mean * k, (1 - mean) * k)


def simulate(sc: Scenario, rng: np.random.Generator) -> tuple[Scores, pd.Series | None]:
    g = np.repeat(np.arange(len(sc.sizes)), sc.sizes)
    n = len(g)
    mu = np.asarray(sc.means)[g]
    miss = rng.random(n) < np.asarray(sc.miss)[g]
    site = np.zeros(n, dtype=int)
    weights = None
    present = np.ones(n, dtype=bool)
    auto = None
    if sc.kind == "hd95":
        s2 = np.log(1 + (sc.sd / mu) ** 2)
        x = rng.lognormal(np.log(mu) - s2 / 2, np.sqrt(s2))
        x = np.where(miss, np.inf, np.minimum(x, CAP))
    elif sc.kind == "sites":
        site = np.array([rng.choice(4, p=SITE_SHARES[k]) for k in g])
        u = rng.normal(0, SITE_SD, 4)  # site effects: a new draw of sites every simulation
        x = beta(rng, mu + u[site], sc.sd)
    elif sc.kind == "partial":
        hard = rng.random(n) < HARD_SHARE
        x = beta(rng, mu - HARD_DROP * hard, sc.sd)
        pi = np.where(hard, 0.5, 0.15)  # hard cases are sent to the expert more often
        present = rng.random(n) < pi
        weights = 1 / pi
        auto = np.clip(x + rng.normal(0, 0.05, n), 0, 1)
    else:
        x = beta(rng, mu, sc.sd)
        x = np.where(miss, 0.0, x)
    if sc.kind == "paired":
        # A = 0.7 T + 0.3 V with V's means chosen so that A's gap is scale × T's gap
        anchor = float(np.min(sc.means))
        mu_a = anchor + sc.scale * (mu - anchor)
        nu = (mu_a - 0.7 * mu) / 0.3
        auto = 0.7 * x + 0.3 * beta(rng, nu, 0.15)
    ids = np.array([f"c{i:05d}" for i in range(n)])
    rows = [pd.DataFrame({"case_id": ids[present], "ruler": "expert", "value": x[present]})]
    rulers: tuple[str, ...] = ("expert",)
    if auto is not None:
        rows.append(pd.DataFrame({"case_id": ids, "ruler": "automated", "value": auto}))
        rulers = ("expert", "automated")
    table = pd.concat(rows, ignore_index=True)
    table["model"] = "m"
    table["metric"] = "hd95" if sc.kind == "hd95" else "dice"
    groups = pd.DataFrame(
        {
            "group": pd.Categorical(np.array(LABELS)[g], categories=list(LABELS)),
            "site": np.array([f"s{k}" for k in site]),
        },
        index=pd.Index(ids, name="case_id"),
    )
    scores = Scores(
        table=table[["case_id", "model", "ruler", "metric", "value"]],
        groups=groups,
        trusted_ruler="expert",
        rulers=rulers,
        models=("m",),
    )
    dw = None if weights is None else pd.Series(weights, index=pd.Index(ids, name="case_id"))
    return scores, dw


def run_one(sc: Scenario, seed: int, n_boot: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    scores, dw = simulate(sc, rng)
    audit = Audit(
        scores,
        seed=seed,
        n_boot=n_boot,
        cap=CAP,
        cluster="site" if sc.cluster else None,
        design_weights=dw,
    )
    metric = "hd95" if sc.kind == "hd95" else "dice"
    truth = sc.truth()
    gap_true = float(truth.max() - truth.min())
    r = audit.gap(metric, by="group", model="m", ruler="expert")
    bg = r.by_group
    lo, hi = bg["lower"].to_numpy(), bg["upper"].to_numpy()
    out: dict[str, float] = {
        "group_lo_err": float(np.mean(lo > truth)),
        "group_hi_err": float(np.mean(hi < truth)),
        "group_cover": float(np.mean((lo <= truth) & (truth <= hi))),
        "gap_hi_err": float(r.gap.upper < gap_true),
        "gap_lo_err": float(r.gap.lower > gap_true),
        "gap_cover": float(r.gap.lower <= gap_true <= r.gap.upper),
        "gap_nan": float(math.isnan(r.gap.upper)),
    }
    if not math.isnan(sc.limit):
        out["pass"] = float(r.gap.upper <= sc.limit)
    if sc.kind == "paired":
        d = audit.ruler_distortion(metric, by="group", model="m", automated="automated")
        t = sc.scale - 1
        out["defined"] = float(d.defined)
        if d.defined:
            out["share_lo_err"] = float(d.distortion.lower > t)
            out["share_hi_err"] = float(d.distortion.upper < t)
            out["share_cover"] = float(d.distortion.contains(t))
        # what ships a release: a shrinkage gate at its limit passes only when the share is
        # defined and its deciding bound errs (undefined is inconclusive, which blocks)
        out["share_gate_err"] = float(d.defined and d.distortion.lower > t)
    return out


def run_chunk(args: tuple[Scenario, list[int], int]) -> list[dict[str, float]]:
    sc, seeds, n_boot = args
    return [run_one(sc, s, n_boot) for s in seeds]


def scenarios() -> list[Scenario]:
    eq = (0.75, 0.75, 0.75)
    return [
        Scenario(
            "25/25/25 Dice, 10% zero-Dice misses, gap 0.10 at the limit",
            (25, 25, 25),
            "dice0",
            (0.80, 0.80, 0.80 - 0.10 / 0.9),
            miss=(0.1, 0.1, 0.1),
            sd=0.12,
            limit=0.10,
        ),
        Scenario(
            "60/60/60 Dice, 10% zero-Dice misses, gap 0.06 at the limit",
            (60, 60, 60),
            "dice0",
            (0.80, 0.80, 0.80 - 0.06 / 0.9),
            miss=(0.1, 0.1, 0.1),
            sd=0.12,
            limit=0.06,
        ),
        Scenario(
            "25/25/25 HD95 (mm), capped at 150, misses 2/2/6%",
            (25, 25, 25),
            "hd95",
            (8.0, 8.0, 8.0),
            miss=(0.02, 0.02, 0.06),
            sd=6.0,
        ),
        Scenario("349/754/400 Dice, no gap", MAMAMIA, "beta", eq),
        Scenario("300/300/300 Dice, no gap, 10% misses", (300, 300, 300), "dice0", (0.8,) * 3,
                 miss=(0.1, 0.1, 0.1), sd=0.12),
        Scenario("30/60/40 Dice, no gap", (30, 60, 40), "beta", eq),
        Scenario("25/25/25 Dice, no gap, 10% misses", (25, 25, 25), "dice0", (0.8,) * 3,
                 miss=(0.1, 0.1, 0.1), sd=0.12),
        Scenario("349/754/400 Dice, gap 0.05 at the limit", MAMAMIA, "beta",
                 (0.65, 0.665, 0.70), limit=0.05),
        Scenario("349/754/400, 4 sites, gap 0.05, no cluster=", MAMAMIA, "sites",
                 (0.65, 0.665, 0.70), limit=0.05),
        Scenario("349/754/400, 4 sites, gap 0.05, cluster=\"site\"", MAMAMIA, "sites",
                 (0.65, 0.665, 0.70), limit=0.05, cluster=True),
        Scenario("349/754/400 paired rulers, trusted gap 0.04 (≈2.7 SE), share 0.4", MAMAMIA,
                 "paired", (0.65, 0.662, 0.69), scale=0.6),
        Scenario("349/754/400 partial labels (15/50%), design weights, gap 0.05", MAMAMIA,
                 "partial", (0.70, 0.715, 0.75), sd=0.15),
        Scenario("349/754/400 Dice, power: true gap 0.025, limit 0.05", MAMAMIA, "beta",
                 (0.65, 0.6575, 0.675), limit=0.05),
        Scenario("700/700/40 HD95 (mm), capped at 150, misses only in the 40 (5%)",
                 (700, 700, 40), "hd95", (8.0,) * 3, miss=(0.0, 0.0, 0.05), sd=6.0),
        Scenario("700/700/40 Dice, zero-Dice misses only in the 40 (8%)", (700, 700, 40),
                 "dice0", (0.80,) * 3, miss=(0.0, 0.0, 0.08), sd=0.12),
        Scenario("349/754/400 paired rulers, trusted gap 0.08 (≈5.4 SE), share 0.4", MAMAMIA,
                 "paired", (0.65, 0.674, 0.73), scale=0.6),
    ]  # fmt: skip


def rate(x: pd.Series) -> str:
    x = x.dropna()
    if not len(x):
        return "—"
    p = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return f"{100 * p:.1f} ± {100 * se:.1f}"


def summarise(rows: list[tuple[Scenario, pd.DataFrame]]) -> str:
    lines = [
        "| scenario | group lower > truth | group upper < truth | group coverage "
        "| gap upper < truth | gap lower > truth | gap coverage | share lower > / upper < truth "
        "(defined) | share coverage | gate pass rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc, df in rows:
        share = "—"
        if "share_lo_err" in df:
            share = (
                f"{rate(df['share_lo_err'])} / {rate(df['share_hi_err'])} "
                f"({100 * df['defined'].mean():.0f}%; gate at its limit passes "
                f"{rate(df['share_gate_err'])})"
            )
        lines.append(
            f"| {sc.name} | {rate(df['group_lo_err'])} | {rate(df['group_hi_err'])} "
            f"| {rate(df['group_cover'])} | {rate(df['gap_hi_err'])} | {rate(df['gap_lo_err'])} "
            f"| {rate(df['gap_cover'])} | {share} "
            f"| {rate(df['share_cover']) if 'share_cover' in df else '—'} "
            f"| {rate(df['pass']) if 'pass' in df else '—'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulations per scenario")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--only", type=str, default="", help="scenarios whose name has this")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    all_sc = [sc for sc in scenarios() if args.only in sc.name]
    seeds = np.random.SeedSequence(args.seed).generate_state(args.reps * len(scenarios()))
    tasks = []
    for k, sc in enumerate(scenarios()):
        if sc not in all_sc:
            continue
        mine = [int(s) for s in seeds[k * args.reps : (k + 1) * args.reps]]
        tasks += [(sc, mine[i : i + 50], args.n_boot) for i in range(0, len(mine), 50)]
    print(
        f"<!-- {args.reps} simulations per row, n_boot = {args.n_boot}, confidence 0.95, "
        f"seed {args.seed} -->\n",
        flush=True,
    )
    print(summarise([]), end="", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for sc in all_sc:
            # one scenario at a time, its row printed as soon as it is done
            mine = [t for t in tasks if t[0] == sc]
            rows = [r for chunk in pool.map(run_chunk, mine) for r in chunk]
            line = summarise([(sc, pd.DataFrame(rows).astype(float))]).splitlines()[-1]
            print(line, flush=True)
    print(f"\n<!-- {time.perf_counter() - started:.0f} s -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
