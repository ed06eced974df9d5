"""How many more trusted labels per group would make a gate conclusive (:func:`plan`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segfair.gates import parse_gate
from segfair.planner.allocation import (
    _SCALED,
    _UNDECIDABLE,
    _bootstrap_se,
    _gate_checks,
    _group_stats,
    _neyman,
    _pair_variance,
    _scale,
    _Stats,
    _sum_variance,
    _target_se,
    _z,
)
from segfair.planner.errors import PlanError
from segfair.planner.gateplan import GatePlan
from segfair.planner.parts import _gate_parts
from segfair.planner.share import _defined_labels, _share_parts
from segfair.planner.simulate import simulate_plan

if TYPE_CHECKING:
    from segfair.audit import Audit


def plan(
    audit: Audit,
    gate: Any,
    *,
    target_halfwidth: float | None = None,
    power: float = 0.8,
    confidence: float | None = None,
    simulate: int = 0,
    seed: int = 0,
) -> GatePlan:
    """How many more trusted labels per group would make ``gate`` conclusive.

    Parameters
    ----------
    audit
        The audit (with its partial trusted ruler and design weights).
    gate
        A gate model, or a mapping like a ``[[gates]]`` entry.
    target_halfwidth
        Aim for an interval half-width of at most this (metric units) instead of a power.
    power
        Predictive probability that the decision is conclusive once the labels are added — the
        interval clear of the threshold on the side of the current estimate — given the labels
        there now (the truth is not taken to be the current estimate: see Notes).
    confidence
        Interval level (default: the gate's, else the audit's).
    simulate
        Number of bootstrap simulations checking the closed form (0: none).
    seed
        Seed of the simulations.

    Returns
    -------
    GatePlan

    Notes
    -----
    A gap's decisive contrast is the two extreme groups: ``SE² = sd_hi²/n_hi + sd_lo²/n_lo``,
    with ``SE0²`` its value with the labels there now. The decision is conclusive when
    ``|gap − limit| > z·SE`` (``z = z_{1−α/2}``, or the Bonferroni ``z`` of the gap's lower
    bound when the gap exceeds the limit). Given the current labels, the final gap is
    ``N(gap, SE0² − SE²)``, so the target ``SE`` solves
    ``Φ((|gap − limit| − z·SE) / √(SE0² − SE²)) = power`` (closed form in
    :func:`_target_se`). The smallest total of labels reaching it is the Neyman allocation
    ``n_g ∝ sd_g``; every other pair of groups is then checked and topped up the same way, and
    every group is brought to the gate's ``min_group_size``. A per-group level
    (``min_group_metric``, label agreement) is the same with one group:
    ``SE² = sd_g²/n_g``. A ruler shrinkage/inflation share is linearised over every group
    (:func:`_share_parts`), and its trusted gap is also sized to clear ``negligible``, without
    which the share is undefined.
    """
    if isinstance(gate, Mapping):
        gate = parse_gate(gate, trusted_ruler=audit.scores.trusted_ruler)
    if not 0 < power < 1:
        raise PlanError(f"power must lie in (0, 1); got {power!r}")
    if target_halfwidth is not None and not target_halfwidth > 0:
        raise PlanError(f"target_halfwidth must be positive; got {target_halfwidth!r}")
    conf = float(
        confidence
        if confidence is not None
        else (gate.confidence if gate.confidence is not None else audit.confidence)
    )
    min_n = int(gate.min_group_size if gate.min_group_size is not None else audit.min_group_size)
    by_raw = getattr(gate, "by", None)
    if by_raw is None:
        raise PlanError(f"gate {gate.id} has no 'by': nothing to plan per group")
    by = by_raw if isinstance(by_raw, str) else list(by_raw)
    what, x, checks = _gate_parts(audit, gate)
    z_a = _z(1 - (1 - conf) / 2)
    notes: list[str] = []
    if x is None:
        x = np.where(audit.labelled_mask(), 0.0, np.nan)
        notes.append(
            f"no closed form for {gate.kind} gates: the plan brings every group to "
            f"min_group_size = {min_n}"
        )
    st = _group_stats(audit, x, by)

    @functools.cache
    def checks_of() -> list[Any]:  # one evaluation of the gate, only if a calibration needs it
        return _gate_checks(audit, gate, conf)

    def calibrate(st_: _Stats, v0: float, boot: float | None) -> tuple[_Stats, float]:
        """The plan's sds scaled to the gate's own bootstrap interval (see _bootstrap_se)."""
        kappa = _scale(boot, v0)
        if kappa == 1.0:
            return st_, v0
        notes.append(_SCALED.format(kappa=kappa))
        return replace(st_, sd=st_.sd * kappa), v0 * kappa**2

    def target(margin: float, v0: float, z: float) -> float:
        """The contrast's target standard error; 0 (with a note) when none is plannable."""
        if target_halfwidth is not None:
            return target_halfwidth / z_a
        se = _target_se(margin, v0, z, power)
        if se <= 0:
            notes.append(_UNDECIDABLE.format(margin=margin, se=math.sqrt(v0), power=power))
        return se

    cohort = st.n + st.avail
    lower = np.where(cohort > 0, np.minimum(np.maximum(st.n, min_n), cohort), 0).astype(float)
    upper = cohort.astype(float)
    for i in np.where((cohort > 0) & (cohort < min_n))[0]:
        notes.append(
            f"group {st.labels[i]!r} has only {int(cohort[i])} cases in the cohort, fewer than "
            f"min_group_size = {min_n}: label them all, or lower min_group_size"
        )
    need = lower.copy()
    feasible = bool(((cohort >= min_n) | (cohort == 0)).all())
    estimate, threshold, target_se = float("nan"), float("nan"), float("nan")
    has = np.isfinite(st.mean) & (cohort > 0)
    contrasts: list[tuple[str, ...]] = []
    for kind_, limit in checks:
        if kind_ == "gap":
            idx = np.where(has)[0]
            if len(idx) < 2:
                notes.append("fewer than two groups with values: only min_group_size is planned")
                continue
            hi, lo = idx[int(np.argmax(st.mean[idx]))], idx[int(np.argmin(st.mean[idx]))]
            gap = float(st.mean[hi] - st.mean[lo])
            passing = gap <= limit
            estimate, threshold = gap, limit
            n_pairs = len(idx) * (len(idx) - 1) // 2
            z_side = z_a if passing else _z(1 - (1 - conf) / (2 * n_pairs))
            margin = abs(gap - limit)
            v0 = _pair_variance(st, hi, lo)
            decidable = bool((st.n[has] >= min_n).all())  # else the interval is not the gate's
            if decidable and getattr(gate, "statistic", "gap") == "gap":
                st, v0 = calibrate(st, v0, _bootstrap_se(checks_of(), limit, None, z_side, passing))
            se = target_se = target(margin, v0, z_side)
            if se <= 0:
                feasible = False
                continue
            pair = np.array([hi, lo])
            n_pair, ok = _neyman(st.sd[pair], need[pair], upper[pair], se**2)
            need[pair] = np.maximum(need[pair], n_pair)
            feasible &= ok
            contrasts.append((st.labels[hi], st.labels[lo]))
            # passing needs every pair below the limit: pairs close to it are topped up alike
            # (a failing gap is decided by its extreme pair alone)
            for a_ in idx if passing else ():
                for b_ in idx:
                    if a_ >= b_ or {a_, b_} == {hi, lo}:
                        continue
                    d = abs(float(st.mean[a_] - st.mean[b_]))
                    m2 = abs(d - limit)
                    se2 = (
                        target_se
                        if target_halfwidth is not None
                        else _target_se(m2, _pair_variance(st, a_, b_), z_side, power)
                    )
                    cur = st.sd[a_] ** 2 / need[a_] + st.sd[b_] ** 2 / need[b_]
                    if d + z_a * math.sqrt(cur) <= limit or se2 <= 0 or cur <= se2**2:
                        continue
                    p2 = np.array([a_, b_])
                    n2, ok2 = _neyman(st.sd[p2], need[p2], upper[p2], se2**2)
                    need[p2] = np.maximum(need[p2], n2)
                    feasible &= ok2
                    contrasts.append((st.labels[a_], st.labels[b_]))
        elif kind_ == "share":
            sh = _share_parts(audit, gate, by)
            assert sh is not None  # _gate_parts gave a "share" check only with one
            st = replace(st, mean=sh.trusted.mean)  # the table shows the trusted group means
            estimate, threshold = sh.estimate, limit
            k_ = max(int(has.sum()), 2)
            z_side = z_a if sh.passing else _z(1 - (1 - conf) / (k_ * (k_ - 1)))
            margin = abs(sh.estimate - limit)
            v0 = _sum_variance(st)
            # the linearisation of a ratio of two max − min gaps is rough where groups nearly
            # tie; the gate's own bootstrap interval of the share corrects it, also when a group
            # is below min_group_size (the interval is still the data's; the clip guards it)
            decidable = bool((st.n[has] >= 2).all())
            if decidable:
                boot = _bootstrap_se(checks_of(), limit, None, z_side, sh.passing)
                st, v0 = calibrate(st, v0, boot)
            se = target_se = target(margin, v0, z_side)
            if se <= 0:
                feasible = False
            else:
                n_all, ok = _neyman(st.sd, need, upper, se**2)
                need = np.maximum(need, n_all)
                feasible &= ok
            contrasts += [(st.labels[i], st.labels[j]) for i, j in sh.pairs]
            z_low = _z(1 - (1 - conf) / (k_ * (k_ - 1)))  # the trusted gap's lower bound
            pair = np.array(sh.pairs[0])
            n_def, more = _defined_labels(
                audit, gate, sh.trusted, pair, (need, upper), z_low, power, decidable
            )
            notes += more
            if n_def is None:
                feasible = False
            else:
                need[pair] = np.maximum(need[pair], n_def)
        else:
            threshold = limit
            worst = float("inf")
            for i in np.where(has)[0]:
                margin = (st.mean[i] - limit) if kind_ == "min" else (limit - st.mean[i])
                if margin < worst:
                    worst, estimate = margin, float(st.mean[i])
                v0 = float(st.sd[i] ** 2 / st.n[i]) if st.n[i] > 0 else float("inf")
                if what == "level" and st.n[i] >= min_n:
                    up = kind_ == "max"
                    boot = _bootstrap_se(checks_of(), limit, st.labels[i], z_a, up)
                    kappa = _scale(boot, v0)
                    st.sd[i] *= kappa
                    v0 *= kappa**2
                se = (
                    target_halfwidth / z_a
                    if target_halfwidth is not None
                    else _target_se(abs(margin), v0, z_a, power)
                )
                if se <= 0:
                    notes.append(
                        f"group {st.labels[i]!r}: "
                        + _UNDECIDABLE.format(margin=abs(margin), se=math.sqrt(v0), power=power)
                    )
                    feasible = False
                    continue
                n_i = math.ceil((st.sd[i] / se) ** 2)
                if n_i > upper[i]:
                    feasible = False
                need[i] = min(max(need[i], n_i), upper[i])
            if target_halfwidth is not None:
                target_se = target_halfwidth / z_a
            elif math.isfinite(worst):
                i_w = int(np.nanargmin(np.where(has, np.abs(st.mean - limit), np.nan)))
                v_w = float(st.sd[i_w] ** 2 / max(int(st.n[i_w]), 1))
                target_se = _target_se(abs(worst), v_w, z_a, power)
    need = np.maximum(need, st.n)
    frame = pd.DataFrame(
        {
            "labelled": st.n,
            "unlabelled": st.avail,
            "estimate": st.mean,
            "sd": st.sd,
            "needed": need.astype(np.int64),
            "additional": (need - st.n).astype(np.int64),
        },
        index=pd.Index(list(st.labels), name=audit.grouping(by).name),
    )
    if not feasible:
        notes.append("even labelling every remaining case may not make this gate conclusive")
    out = GatePlan(
        gate_id=gate.id,
        kind=gate.kind,
        method="normal" if checks else "min_group_size",
        by=audit.grouping(by).key,
        model=getattr(gate, "model", None),
        groups=frame,
        estimate=estimate,
        threshold=threshold,
        target_se=target_se,
        confidence=conf,
        power=power,
        feasible=feasible,
        notes=tuple(notes),
        contrasts=tuple(contrasts),
    )
    if simulate and checks:
        out = replace(
            out, simulated_power=simulate_plan(audit, out, gate, n_sim=simulate, seed=seed)
        )
    return out


def plan_all(audit: Audit, gates: Sequence[Any], **kwargs: Any) -> list[GatePlan]:
    """:func:`plan` for every statistical gate that has groups (others are skipped)."""
    out = []
    for gate in gates:
        if getattr(gate, "by", None) is None or not getattr(gate, "statistical", True):
            continue
        out.append(plan(audit, gate, **kwargs))
    return out
