"""The simulation check of a plan: the share of simulated label batches that decide the gate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from segfair.planner.allocation import _series_like, _z
from segfair.planner.gateplan import GatePlan
from segfair.planner.parts import _gate_parts

if TYPE_CHECKING:
    from segfair.audit import Audit


def simulate_plan(
    audit: Audit, p: GatePlan, gate: Any, *, n_sim: int = 200, seed: int = 0
) -> float:
    """Simulation check of a plan: the share of simulated label batches that decide the gate.

    It simulates what the closed form assumes, without its normal approximation of the
    decision: in every simulation each group's true mean is drawn from what the labels there
    now say about it (``N(mean_g, sd_g²/n_g)``), the planned extra labels are drawn with
    replacement from the group's labelled values (weighted by the design) shifted to that
    truth, and are added to the labels already there; the group means and standard errors of
    the enlarged sample then decide every planned contrast (or level) at the gate's
    confidence. ``plan(..., power=0.8)`` should come out near 0.8 when it is feasible.

    A prediction-powered plan (``p.estimator == "ppi"``) draws the extra labels as pairs
    (trusted, proxy) of the group's labelled cases, the trusted value shifted to the drawn
    rectifier, and decides the enlarged sample with the same estimator: ``λ`` re-tuned, the
    proxy mean over every case of the group unchanged, ``SE² = sd_R²/n + c_g``.
    """
    what, x, checks = _gate_parts(audit, gate)
    if x is None or not checks or what == "share":
        return float("nan")  # a share is not a contrast of group means: no simulation of it
    passing = p.estimate <= p.threshold
    n_pairs = max(1, len(p.contrasts))
    if not passing:
        k_ = int(np.isfinite(p.groups["estimate"]).sum())
        n_pairs = max(1, k_ * (k_ - 1) // 2)
    g = audit.grouping(list(p.by) if len(p.by) > 1 else p.by[0])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7331]))
    z_a = _z(1 - (1 - p.confidence) / 2)
    weights = audit.case_weights([_series_like(x)])
    w = np.ones(len(x)) if weights is None else weights[:, 0]
    pools = []
    for i in range(len(g.labels)):
        ok = (g.codes == i) & ~np.isnan(x)
        vals = x[ok]
        prob = w[ok] / w[ok].sum() if ok.any() else w[ok]
        mean = float(np.sum(prob * vals)) if ok.any() else float("nan")
        pools.append((vals, prob, mean))
    need = p.groups["needed"].to_numpy()
    sd = p.groups["sd"].to_numpy(dtype=float)
    # the plan's sd carries the design effect and the calibration to the gate's bootstrap
    # interval: simulated standard errors get the same factor over the plain sd of the values
    factor = np.ones(len(pools))
    for i, (vals, _, _) in enumerate(pools):
        if len(vals) >= 2 and np.std(vals, ddof=1) > 0 and np.isfinite(sd[i]):
            factor[i] = sd[i] / float(np.std(vals, ddof=1))
    labels = list(g.labels)
    ppi = _PPIPools(audit, gate, g, w, sd) if p.estimator == "ppi" else None
    hits = 0
    for _ in range(n_sim):
        means, ses = np.full(len(labels), np.nan), np.full(len(labels), np.nan)
        for i, (vals, prob, mean) in enumerate(pools):
            if ppi is not None:
                means[i], ses[i] = ppi.draw(i, int(need[i]), rng)
                continue
            n0, n = len(vals), int(need[i])
            if n0 == 0 or n < 2:
                continue
            shift = rng.normal(0.0, sd[i] / math.sqrt(n0)) if n > n0 else 0.0
            # the pilot's distribution, moved to the drawn truth
            new = rng.choice(vals, size=n - n0, replace=True, p=prob) + shift
            means[i] = (n0 * mean + float(new.sum())) / n
            ses[i] = factor[i] * np.concatenate([vals, new]).std(ddof=1) / math.sqrt(n)
        decided = True
        for kind_, limit in checks:
            if kind_ == "gap":
                lim = p.threshold
                z_g = z_a if passing else _z(1 - (1 - p.confidence) / (2 * n_pairs))
                for a_, b_ in p.contrasts:
                    i, j = labels.index(a_), labels.index(b_)
                    d = abs(means[i] - means[j])
                    se = math.hypot(ses[i], ses[j])
                    if not abs(d - lim) > z_g * se:
                        decided = False
            else:
                for i in range(len(labels)):
                    if np.isfinite(means[i]) and not abs(means[i] - limit) > z_a * ses[i]:
                        decided = False
        hits += decided
    return hits / n_sim


class _PPIPools:
    """Per group, what a prediction-powered simulation draws from: the labelled (trusted,
    proxy) pairs and their design weights, and the proxy on every case of the group."""

    def __init__(self, audit: Audit, gate: Any, g: Any, w: np.ndarray, sd: np.ndarray) -> None:
        s = audit.estimand_series(
            gate.metric, model=gate.model, ruler=gate.ruler or audit.scores.trusted_ruler
        )
        assert s.proxy is not None  # a plan is prediction-powered only with a proxy
        lam0 = audit.ppi_detail(g, s).lam[:, 0]
        t, a = s.x, s.proxy.x
        self.groups = []
        for i in range(len(g.labels)):
            in_g = g.codes == i
            ok = in_g & ~np.isnan(t) & ~np.isnan(a)
            a_all = a[in_g & ~np.isnan(a)]
            ti, ai, wi = t[ok], a[ok], w[ok]
            r0 = ti - lam0[i] * ai
            plain = float(np.std(r0, ddof=1)) if len(r0) >= 2 else 0.0
            # the plan's sd carries the design effect and the calibration: so do the draws
            factor = sd[i] / plain if plain > 0 and np.isfinite(sd[i]) else 1.0
            self.groups.append((ti, ai, wi, a_all, factor, float(sd[i])))

    def draw(self, i: int, n: int, rng: np.random.Generator) -> tuple[float, float]:
        """(estimate, standard error) of group ``i`` after ``n`` labels in all."""
        ti, ai, wi, a_all, factor, sd = self.groups[i]
        n0, big_n = len(ti), len(a_all)
        if n0 == 0 or n < 2 or big_n < 2:
            return float("nan"), float("nan")
        n = min(n, big_n)
        shift = rng.normal(0.0, sd / math.sqrt(n0)) if n > n0 else 0.0
        pick = rng.choice(n0, size=n - n0, replace=True, p=wi / wi.sum())
        t = np.concatenate([ti, ti[pick] + shift])
        a = np.concatenate([ai, ai[pick]])
        # the pilot's cases keep their design weights (scaled to count n0), the draws — already
        # drawn in proportion to them — count one each
        w = np.concatenate([wi * n0 / wi.sum(), np.ones(n - n0)])
        mean_a, var_a = float(a_all.mean()), float(np.var(a_all, ddof=1))
        mt, ma = float(np.sum(w * t) / w.sum()), float(np.sum(w * a) / w.sum())
        cov = float(np.sum(w * (t - mt) * (a - ma)) / w.sum())
        top = big_n / (big_n - n) if n < big_n else math.inf
        lam = min(max(cov / var_a, 0.0), top) if var_a > 0 else 0.0
        r = t - lam * a
        mr = float(np.sum(w * r) / w.sum())
        cov_ar = float(np.sum(w * (a - ma) * (r - mr)) / w.sum()) * n / (n - 1)
        floor = max(lam * lam * var_a + 2.0 * lam * cov_ar, 0.0) / big_n
        var = (factor * float(np.std(r, ddof=1))) ** 2 / n + factor**2 * floor
        return lam * mean_a + mr, math.sqrt(var)
