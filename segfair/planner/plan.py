"""How many more trusted labels per group would make a gate conclusive (:func:`plan`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segfair.audit import AuditError
from segfair.gates import decision_audit, parse_gate
from segfair.planner.allocation import (
    _FLOOR,
    _SCALED,
    _UNDECIDABLE,
    _allocate,
    _bootstrap_se,
    _gate_checks,
    _pair_variance,
    _scale,
    _Stats,
    _sum_variance,
    _target_se,
    _z,
)
from segfair.planner.errors import PlanError
from segfair.planner.gateplan import GatePlan
from segfair.planner.parts import _gate_parts, _plan_stats
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
    compare: bool = False,
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
    compare
        Also plan the same gate prediction-powered (``estimator = "ppi"``) when it is planned
        labelled-only on a partial trusted ruler: :attr:`GatePlan.prediction_powered`.

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

    A gate decided prediction-powered (its ``estimator``, else the audit's: the audit of
    :func:`segfair.gates.decision_audit`) is planned with the PPI variance of a group mean,
    ``sd_R²/n + c_g``: ``sd_R`` the per-label sd of the tuned rectifier ``T − λA``, ``c_g``
    the floor the proxy on all the group's cases leaves (:func:`_ppi_stats`); the Neyman
    allocation runs on ``sd_R`` and a target below the floor is not plannable.
    """
    if isinstance(gate, Mapping):
        gate = parse_gate(
            gate, trusted_ruler=audit.scores.trusted_ruler, structures=audit.structures
        )
    asked = audit
    # every estimand is per structure, and a gate may name its own estimator
    audit = decision_audit(audit, gate)
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
    st, estimator = _plan_stats(audit, gate, what, x, by)

    cohort = st.n + st.avail
    lower = np.where(cohort > 0, np.minimum(np.maximum(st.n, min_n), cohort), 0).astype(float)
    upper = cohort.astype(float)
    for i in np.where((cohort > 0) & (cohort < min_n))[0]:
        notes.append(
            f"group {st.labels[i]!r} has only {int(cohort[i])} cases in the cohort, fewer than "
            f"min_group_size = {min_n}: label them all, or lower min_group_size"
        )
    pl = _Planning(
        audit=audit,
        gate=gate,
        by=by,
        conf=conf,
        min_n=min_n,
        power=power,
        target_halfwidth=target_halfwidth,
        what=what,
        z_a=z_a,
        st=st,
        need=lower.copy(),
        upper=upper,
        has=np.isfinite(st.mean) & (cohort > 0),
        feasible=bool(((cohort >= min_n) | (cohort == 0)).all()),
        notes=notes,
    )
    for kind_, limit in checks:
        if kind_ == "gap":
            _plan_gap(pl, limit)
        elif kind_ == "share":
            _plan_share(pl, limit)
        else:
            _plan_level(pl, kind_, limit)
    st, feasible = pl.st, pl.feasible
    estimate, threshold, target_se = pl.estimate, pl.threshold, pl.target_se
    need = np.maximum(pl.need, st.n)
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
        contrasts=tuple(pl.contrasts),
        structure=gate.structure,
        estimator=estimator,
        floor=() if st.floor is None else tuple(float(f) for f in st.floor),
    )
    if compare and estimator == "labelled":
        out = replace(out, prediction_powered=_ppi_twin(asked, gate, power, target_halfwidth, conf))
    if simulate and checks:
        out = replace(
            out, simulated_power=simulate_plan(audit, out, gate, n_sim=simulate, seed=seed)
        )
    return out


@dataclass
class _Planning:
    """What :func:`plan` works on: the gate, the group statistics and the plan so far."""

    audit: Audit
    gate: Any
    by: Any
    conf: float
    min_n: int
    power: float
    target_halfwidth: float | None
    what: str
    z_a: float
    st: _Stats
    need: np.ndarray
    upper: np.ndarray
    has: np.ndarray
    feasible: bool
    notes: list[str]
    estimate: float = float("nan")
    threshold: float = float("nan")
    target_se: float = float("nan")
    contrasts: list[tuple[str, ...]] = field(default_factory=list)
    checks: list[Any] | None = None

    def checks_of(self) -> list[Any]:
        """The gate's checks: one evaluation of the gate, only if a calibration needs it."""
        if self.checks is None:
            self.checks = _gate_checks(self.audit, self.gate, self.conf)
        return self.checks

    def calibrate(self, st_: _Stats, v0: float, boot: float | None) -> tuple[_Stats, float]:
        """The plan's sds scaled to the gate's own bootstrap interval (see _bootstrap_se)."""
        kappa = _scale(boot, v0)
        if kappa == 1.0:
            return st_, v0
        self.notes.append(_SCALED.format(kappa=kappa))
        floor = None if st_.floor is None else st_.floor * kappa**2
        return replace(st_, sd=st_.sd * kappa, floor=floor), v0 * kappa**2

    def allocate(self, idx: np.ndarray, var_target: float) -> tuple[np.ndarray, bool]:
        """Labels for the groups ``idx`` (at least those planned so far) that bring the
        contrast's variance to ``var_target`` (:func:`_allocate`, its note kept)."""
        n, ok, note = _allocate(self.st, idx, self.need, self.upper, var_target)
        if note is not None and note not in self.notes:
            self.notes.append(note)
        return n, ok

    def target(self, margin: float, v0: float, z: float) -> float:
        """The contrast's target standard error; 0 (with a note) when none is plannable."""
        if self.target_halfwidth is not None:
            return self.target_halfwidth / self.z_a
        se = _target_se(margin, v0, z, self.power)
        if se <= 0:
            undecidable = _UNDECIDABLE.format(margin=margin, se=math.sqrt(v0), power=self.power)
            self.notes.append(undecidable)
        return se


def _plan_gap(pl: _Planning, limit: float) -> None:
    """A gap's extreme pair (and, when it passes, every pair close to the limit)."""
    idx = np.where(pl.has)[0]
    if len(idx) < 2:
        pl.notes.append("fewer than two groups with values: only min_group_size is planned")
        return
    hi, lo = idx[int(np.argmax(pl.st.mean[idx]))], idx[int(np.argmin(pl.st.mean[idx]))]
    gap = float(pl.st.mean[hi] - pl.st.mean[lo])
    passing = gap <= limit
    pl.estimate, pl.threshold = gap, limit
    n_pairs = len(idx) * (len(idx) - 1) // 2
    z_side = pl.z_a if passing else _z(1 - (1 - pl.conf) / (2 * n_pairs))
    margin = abs(gap - limit)
    v0 = _pair_variance(pl.st, hi, lo)
    decidable = bool((pl.st.n[pl.has] >= pl.min_n).all())  # else the interval is not the gate's
    if decidable and getattr(pl.gate, "statistic", "gap") == "gap":
        pl.st, v0 = pl.calibrate(
            pl.st, v0, _bootstrap_se(pl.checks_of(), limit, None, z_side, passing)
        )
    se = pl.target_se = pl.target(margin, v0, z_side)
    if se <= 0:
        pl.feasible = False
        return
    pair = np.array([hi, lo])
    n_pair, ok = pl.allocate(pair, se**2)
    pl.need[pair] = np.maximum(pl.need[pair], n_pair)
    pl.feasible &= ok
    pl.contrasts.append((pl.st.labels[hi], pl.st.labels[lo]))
    # passing needs every pair below the limit: pairs close to it are topped up alike
    # (a failing gap is decided by its extreme pair alone)
    for a_ in idx if passing else ():
        for b_ in idx:
            if a_ >= b_ or {a_, b_} == {hi, lo}:
                continue
            d = abs(float(pl.st.mean[a_] - pl.st.mean[b_]))
            m2 = abs(d - limit)
            se2 = (
                pl.target_se
                if pl.target_halfwidth is not None
                else _target_se(m2, _pair_variance(pl.st, a_, b_), z_side, pl.power)
            )
            fl = pl.st.floors()
            cur = pl.st.sd[a_] ** 2 / pl.need[a_] + pl.st.sd[b_] ** 2 / pl.need[b_]
            cur += fl[a_] + fl[b_]
            if d + pl.z_a * math.sqrt(cur) <= limit or se2 <= 0 or cur <= se2**2:
                continue
            p2 = np.array([a_, b_])
            n2, ok2 = pl.allocate(p2, se2**2)
            pl.need[p2] = np.maximum(pl.need[p2], n2)
            pl.feasible &= ok2
            pl.contrasts.append((pl.st.labels[a_], pl.st.labels[b_]))


def _plan_share(pl: _Planning, limit: float) -> None:
    """A ruler shrinkage/inflation share, and the trusted gap that makes it defined."""
    sh = _share_parts(pl.audit, pl.gate, pl.by)
    assert sh is not None  # _gate_parts gave a "share" check only with one
    pl.st = replace(pl.st, mean=sh.trusted.mean)  # the table shows the trusted group means
    pl.estimate, pl.threshold = sh.estimate, limit
    k_ = max(int(pl.has.sum()), 2)
    z_side = pl.z_a if sh.passing else _z(1 - (1 - pl.conf) / (k_ * (k_ - 1)))
    margin = abs(sh.estimate - limit)
    v0 = _sum_variance(pl.st)
    # the linearisation of a ratio of two max − min gaps is rough where groups nearly
    # tie; the gate's own bootstrap interval of the share corrects it, also when a group
    # is below min_group_size (the interval is still the data's; the clip guards it)
    decidable = bool((pl.st.n[pl.has] >= 2).all())
    if decidable:
        boot = _bootstrap_se(pl.checks_of(), limit, None, z_side, sh.passing)
        pl.st, v0 = pl.calibrate(pl.st, v0, boot)
    se = pl.target_se = pl.target(margin, v0, z_side)
    if se <= 0:
        pl.feasible = False
    else:
        n_all, ok = pl.allocate(np.arange(len(pl.st.labels)), se**2)
        pl.need = np.maximum(pl.need, n_all)
        pl.feasible &= ok
    pl.contrasts += [(pl.st.labels[i], pl.st.labels[j]) for i, j in sh.pairs]
    z_low = _z(1 - (1 - pl.conf) / (k_ * (k_ - 1)))  # the trusted gap's lower bound
    pair = np.array(sh.pairs[0])
    n_def, more = _defined_labels(
        pl.audit, pl.gate, sh.trusted, pair, (pl.need, pl.upper), z_low, pl.power, decidable
    )
    pl.notes += more
    if n_def is None:
        pl.feasible = False
    else:
        pl.need[pair] = np.maximum(pl.need[pair], n_def)


def _plan_level(pl: _Planning, kind_: str, limit: float) -> None:
    """A per-group level (``min`` or ``max``): every group on its own."""
    pl.threshold = limit
    worst = float("inf")
    for i in np.where(pl.has)[0]:
        margin = (pl.st.mean[i] - limit) if kind_ == "min" else (limit - pl.st.mean[i])
        if margin < worst:
            worst, pl.estimate = margin, float(pl.st.mean[i])
        fl = pl.st.floors()
        v0 = float(pl.st.sd[i] ** 2 / pl.st.n[i] + fl[i]) if pl.st.n[i] > 0 else float("inf")
        if pl.what == "level" and pl.st.n[i] >= pl.min_n:
            up = kind_ == "max"
            boot = _bootstrap_se(pl.checks_of(), limit, pl.st.labels[i], pl.z_a, up)
            kappa = _scale(boot, v0)
            pl.st.sd[i] *= kappa
            if pl.st.floor is not None:
                pl.st.floor[i] *= kappa**2
            v0 *= kappa**2
        se = (
            pl.target_halfwidth / pl.z_a
            if pl.target_halfwidth is not None
            else _target_se(abs(margin), v0, pl.z_a, pl.power)
        )
        if se <= 0:
            pl.notes.append(
                f"group {pl.st.labels[i]!r}: "
                + _UNDECIDABLE.format(margin=abs(margin), se=math.sqrt(v0), power=pl.power)
            )
            pl.feasible = False
            continue
        if pl.st.floor is not None and se**2 <= pl.st.floor[i]:
            floor_se = math.sqrt(pl.st.floor[i])
            pl.notes.append(f"group {pl.st.labels[i]!r}: " + _FLOOR.format(se=se, floor=floor_se))
            pl.feasible = False
            continue
        n_i = (
            math.ceil((pl.st.sd[i] / se) ** 2)
            if pl.st.floor is None
            else math.ceil(pl.st.sd[i] ** 2 / (se**2 - pl.st.floor[i]))
        )
        if n_i > pl.upper[i]:
            pl.feasible = False
        pl.need[i] = min(max(pl.need[i], n_i), pl.upper[i])
    if pl.target_halfwidth is not None:
        pl.target_se = pl.target_halfwidth / pl.z_a
    elif math.isfinite(worst):
        i_w = int(np.nanargmin(np.where(pl.has, np.abs(pl.st.mean - limit), np.nan)))
        v_w = float(pl.st.sd[i_w] ** 2 / max(int(pl.st.n[i_w]), 1) + pl.st.floors()[i_w])
        pl.target_se = _target_se(abs(worst), v_w, pl.z_a, pl.power)


def _ppi_twin(
    audit: Audit, gate: Any, power: float, target_halfwidth: float | None, conf: float
) -> GatePlan | None:
    """The plan of ``gate`` prediction-powered, when it has such a twin (a gate on a trusted
    group mean, gap or share of a partial ruler with a proxy ruler); else None."""
    if "estimator" not in type(gate).model_fields or audit.labelled_mask().all():
        return None
    twin = gate.model_copy(update={"estimator": "ppi"})
    try:
        p = plan(audit, twin, power=power, target_halfwidth=target_halfwidth, confidence=conf)
    except AuditError:  # no proxy ruler to power it (none complete, or several): no twin
        return None
    return p if p.estimator == "ppi" else None


def plan_all(audit: Audit, gates: Sequence[Any], **kwargs: Any) -> list[GatePlan]:
    """:func:`plan` for every statistical gate that has groups (others are skipped)."""
    out = []
    for gate in gates:
        if getattr(gate, "by", None) is None or not getattr(gate, "statistical", True):
            continue
        out.append(plan(audit, gate, **kwargs))
    return out
