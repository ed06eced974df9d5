"""Where to invest in labels: sampling-design weights, label planning and the annotation list.

With a partial trusted ruler (an automated pipeline labels every case, experts label a sample),
this module answers three questions (the statistics are in ``docs/partial-labels.md``):

* :func:`design_weights` — the inverse inclusion probability of each labelled case, from the
  ``[tool.segfair.design]`` table (per-group fractions or a weight column), for
  ``Audit(..., design_weights=...)``.
* :func:`plan` (also :meth:`segfair.audit.Audit.plan`) — how many more trusted labels each group
  needs before a gate's decision is expected to be conclusive: its interval clear of the
  threshold with probability ``power`` (or a stated half-width), by a normal approximation with
  Neyman allocation across groups, checked by a bootstrap simulation.
* :func:`select_cases` — which cases to send to the annotators, per group, as a table
  (``case_id, group, priority, reason, inclusion_probability, weight``).

Example
-------
>>> from segfair.audit import Audit, example_scores
>>> from segfair.gates import GapGate
>>> audit = Audit(example_scores(), n_boot=200)
>>> p = plan(audit, GapGate(metric="dice", by="age", model="m", max=0.2))
>>> p.method, p.total_additional >= 0
('normal', True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from segfair.errors import SegfairError

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.config import DesignSpec, SegfairConfig
    from segfair.scores import Scores

__all__ = [
    "PLAN_COLUMNS",
    "GatePlan",
    "PlanError",
    "batch_weights",
    "design_weights",
    "plan",
    "plan_all",
    "select_cases",
    "simulate_plan",
]

#: Columns of :attr:`GatePlan.groups`.
PLAN_COLUMNS = ("labelled", "unlabelled", "estimate", "sd", "needed", "additional")
#: Columns of the annotation list written by ``segfair plan``.
CASE_COLUMNS = ("case_id", "group", "priority", "reason", "inclusion_probability", "weight")


class PlanError(SegfairError, ValueError):
    """A sampling design or plan request that cannot be honoured."""


# ----------------------------------------------------------------------------------------------
# sampling design
# ----------------------------------------------------------------------------------------------


def design_weights(
    design: DesignSpec | Mapping[str, Any],
    groups: pd.DataFrame,
    metadata: pd.DataFrame | None = None,
) -> pd.Series:
    """Inverse inclusion probability of each case (index ``case_id``) under a sampling design.

    ``by`` + ``fractions``: a case of group ``h`` was sent for trusted labels with probability
    ``fractions[h]``, so its weight is ``1 / fractions[h]``. ``weights``: the metadata column
    holds the weight itself. Only the labelled cases' weights are ever used.

    Examples
    --------
    >>> g = pd.DataFrame({"age": ["young", "old", "old"]}, index=["a", "b", "c"])
    >>> design_weights({"by": "age", "fractions": {"young": 0.5, "old": 0.25}}, g).tolist()
    [2.0, 4.0, 4.0]
    """
    spec = dict(design) if isinstance(design, Mapping) else design.model_dump()
    if spec.get("weights"):
        col = str(spec["weights"])
        if metadata is None or col not in metadata.columns:
            raise PlanError(f"design weights column {col!r} is not in the metadata table")
        w = pd.to_numeric(metadata[col], errors="coerce").astype(float)
        w.index = w.index.astype(str)
        return w.rename("weight")
    by, fractions = spec.get("by"), spec.get("fractions") or {}
    if by is None or by not in groups.columns:
        raise PlanError(
            f"design.by = {by!r} is not an attribute; valid: {', '.join(map(str, groups.columns))}"
        )
    labels = groups[by].astype(str)
    missing = sorted(set(labels) - set(map(str, fractions)))
    if missing:
        raise PlanError(f"design.fractions has no fraction for the group(s) {missing} of {by!r}")
    f = labels.map({str(k): float(v) for k, v in fractions.items()})
    w = 1.0 / f
    w.index = w.index.astype(str)
    return w.rename("weight")


def config_weights(config: SegfairConfig, scores: Scores) -> pd.Series | None:
    """The design weights a configuration declares (None without ``[design]``)."""
    if config.design is None:
        return None
    return design_weights(config.design, scores.groups, scores.metadata)


# ----------------------------------------------------------------------------------------------
# planning
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GatePlan:
    """How many more trusted labels per group a gate needs (:func:`plan`).

    Attributes
    ----------
    gate_id, kind
        The gate.
    method
        ``"normal"`` (closed form, Neyman allocation) or ``"min_group_size"`` (this kind of gate
        has no closed form: the plan only brings every group to ``min_group_size``).
    by
        The attribute whose groups are planned.
    groups
        Per group: ``labelled`` (trusted labels now), ``unlabelled`` (cases that could still
        be labelled), ``estimate`` and ``sd`` (per-label standard deviation, design effect
        included), ``needed`` (labelled cases wanted) and ``additional`` (= needed − labelled).
    estimate, threshold
        The decisive quantity now and its limit.
    target_se
        The standard error the plan aims for.
    feasible
        False when even labelling every remaining case would not make the gate conclusive.
    simulated_power
        Share of bootstrap simulations at the planned sizes where the decision was conclusive
        (:func:`simulate_plan`); NaN when not run.
    """

    gate_id: str
    kind: str
    method: str
    by: tuple[str, ...]
    model: str | None
    groups: pd.DataFrame
    estimate: float
    threshold: float
    target_se: float
    confidence: float
    power: float
    feasible: bool
    notes: tuple[str, ...] = ()
    simulated_power: float = float("nan")
    contrasts: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    @property
    def total_additional(self) -> int:
        """Trusted labels to add over all groups."""
        return int(self.groups["additional"].sum())

    @property
    def additional(self) -> dict[str, int]:
        """Group → labels to add (groups needing none left out)."""
        a = self.groups["additional"]
        return {str(g): int(v) for g, v in a.items() if v > 0}

    def sentence(self) -> str:
        """One line for a gate's next steps."""
        if not self.additional:
            if not self.feasible:
                return (
                    "no more labels can be planned: with the cases available this gate may "
                    "stay inconclusive"
                )
            return "the current trusted labels should suffice"
        parts = ", ".join(f"{v} in {g!r}" for g, v in self.additional.items())
        goal = (
            f"to make this gate conclusive with power {self.power:.0%}"
            if self.feasible
            else "— even then the gate may stay open (see the plan's notes)"
        )
        return (
            f"label about {self.total_additional} more cases with the trusted ruler ({parts}) "
            f"{goal}; 'segfair plan' lists which"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""

        def num(x: float) -> float | None:
            return None if x is None or not math.isfinite(float(x)) else float(x)

        return {
            "gate": self.gate_id,
            "kind": self.kind,
            "method": self.method,
            "by": list(self.by),
            "estimate": num(self.estimate),
            "threshold": num(self.threshold),
            "target_se": num(self.target_se),
            "power": self.power,
            "feasible": self.feasible,
            "total_additional": self.total_additional,
            "simulated_power": num(self.simulated_power),
            "groups": [
                {
                    "group": str(g),
                    **{k: (num(v) if k in ("estimate", "sd") else int(v)) for k, v in row.items()},
                }
                for g, row in self.groups.iterrows()
            ],
            "notes": list(self.notes),
        }


@dataclass
class _Stats:
    labels: tuple[str, ...]
    n: np.ndarray  # labelled values per group
    avail: np.ndarray  # cases of the group without a trusted label
    mean: np.ndarray
    sd: np.ndarray  # per-label sd: Var(mean) ≈ sd² / n


def _group_stats(audit: Audit, x: np.ndarray, by: Any) -> _Stats:
    g = audit.grouping(by)
    weights = audit.case_weights([_series_like(x)])
    w = np.ones(len(x)) if weights is None else weights[:, 0]
    labelled = audit.labelled_mask()
    k = len(g.labels)
    n, avail = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    mean, sd = np.full(k, np.nan), np.full(k, np.nan)
    for i in range(k):
        in_g = g.codes == i
        ok = in_g & ~np.isnan(x)
        n[i] = int(ok.sum())
        avail[i] = int((in_g & ~labelled).sum())
        if n[i] == 0:
            continue
        xi, wi = x[ok], w[ok]
        m = float(np.sum(wi * xi) / np.sum(wi))
        mean[i] = m
        if n[i] >= 2:
            # linearised variance of the Hajek mean, times n: the design effect is included
            var_mean = float(np.sum(wi**2 * (xi - m) ** 2) / np.sum(wi) ** 2) * n[i] / (n[i] - 1)
            sd[i] = math.sqrt(var_mean * n[i])
    # a group with fewer than two values borrows the largest sd seen (cautious)
    fallback = float(np.nanmax(sd)) if np.isfinite(sd).any() else float("nan")
    sd = np.where(np.isfinite(sd), sd, fallback)
    return _Stats(g.labels, n, avail, mean, sd)


@dataclass(frozen=True)
class _FakeSeries:
    present: np.ndarray


def _series_like(x: np.ndarray) -> Any:
    return _FakeSeries(present=~np.isnan(x))


_SCALED = "standard deviations scaled by {kappa:.2f} to match the gate's bootstrap interval"
_UNDECIDABLE = (
    "the margin to the threshold ({margin:.3g}) is within the noise of the current labels "
    "(standard error {se:.3g}): even labelling every case of an unlimited cohort would decide "
    "it with less than {power:.0%} probability, so no number is planned. Check whether the "
    "threshold is the one intended, or label a batch and plan again"
)


def _gate_checks(audit: Audit, gate: Any, conf: float) -> list[Any]:
    """The checks (estimate and bootstrap interval against a limit) the gate decides on."""
    from segfair.gates import _eval

    try:
        return list(_eval(audit, gate, conf, None).checks)
    except Exception:  # advice only: without them the plan stays on the normal approximation
        return []


def _bootstrap_se(
    checks: Sequence[Any], limit: float, group: str | None, z: float, up: bool
) -> float | None:
    """The standard error the gate's own bootstrap interval implies on its decisive side.

    The closed form is a normal approximation; per-case Dice is skewed (a tail of failures),
    and the percentile bootstrap that decides the gate then reaches further on one side than
    ``z·SE``. Scaling the plan's standard deviations to the interval the gate actually uses
    keeps "already conclusive" and "conclusive after the plan" the gate's own notions.
    """
    for c in checks:
        if c.group == group and math.isclose(c.limit, limit, rel_tol=1e-9, abs_tol=1e-12):
            v = c.value
            half = (v.upper - v.estimate) if up else (v.estimate - v.lower)
            return float(half / z) if math.isfinite(half) and half > 0 else None
    return None


def _scale(se_boot: float | None, v_normal: float) -> float:
    """Bootstrap-to-normal ratio of standard errors, kept within [0.5, 3] (a guard against a
    degenerate interval, e.g. from very few resamples)."""
    if se_boot is None or not (v_normal > 0 and math.isfinite(v_normal)):
        return 1.0
    return min(max(se_boot / math.sqrt(v_normal), 0.5), 3.0)


def _pair_variance(st: _Stats, a: int, b: int) -> float:
    """Variance of the difference of two group means with the labels there now."""
    if st.n[a] <= 0 or st.n[b] <= 0:
        return float("inf")
    return float(st.sd[a] ** 2 / st.n[a] + st.sd[b] ** 2 / st.n[b])


def _neyman(
    sd: np.ndarray, lower: np.ndarray, upper: np.ndarray, var_target: float
) -> tuple[np.ndarray, bool]:
    """Smallest total ``n`` with ``Σ sd²/n ≤ var_target`` and ``lower ≤ n ≤ upper``.

    Neyman allocation ``n_g ∝ sd_g`` on the groups not held at a bound; groups whose optimum
    falls outside their bounds are held there and the rest re-solved.
    """
    k = len(sd)
    sd = np.nan_to_num(np.asarray(sd, dtype=float), nan=0.0)  # no values: nothing to allocate
    n = np.asarray(lower, dtype=float).copy()
    held = np.zeros(k, dtype=bool)
    for _ in range(2 * k + 1):
        free = ~held
        rest = var_target - float(np.sum(sd[held] ** 2 / np.maximum(n[held], 1e-12)))
        if not free.any():
            break
        if rest <= 0:
            n[free] = upper[free]
            break
        cand = sd[free] * float(np.sum(sd[free])) / rest
        n_free = np.where(free)[0]
        low_hit = cand < lower[free]
        high_hit = cand > upper[free]
        if not low_hit.any() and not high_hit.any():
            n[free] = cand
            break
        if low_hit.any():
            idx = n_free[low_hit]
            n[idx] = lower[idx]
            held[idx] = True
        else:
            idx = n_free[high_hit]
            n[idx] = upper[idx]
            held[idx] = True
    n = np.clip(np.ceil(n - 1e-9), lower, upper)
    ok = float(np.sum(sd**2 / np.maximum(n, 1e-12))) <= var_target * (1 + 1e-9)
    return n.astype(np.int64), bool(ok)


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


def _target_se(margin: float, v0: float, z: float, power: float) -> float:
    """Largest final standard error at which the decision is conclusive with predictive
    probability ``power``, given the labels already there; 0 when no number of labels gets there.

    With pilot labels the final estimate of a contrast (or group mean) is the pilot estimate
    ``e`` plus what the new labels add: given the pilot it is ``N(e, v0 − v)``, where ``v0`` is
    the pilot's variance and ``v`` the final one (flat prior on the truth: the *predictive
    power* of Spiegelhalter, Freedman & Blackburn 1986). It ends clear of the threshold — at
    ``margin = |e − limit|`` — with probability ``Φ((margin − z√v) / √(v0 − v))``. Planning on
    it instead of on ``Φ(margin/√v − z)`` (the current estimate taken as the truth) accounts for
    the pilot's own error: the power promised is the power a team can expect, and a margin the
    pilot cannot tell from zero (``Φ(margin/√v0) < power``) is reported as not plannable
    instead of producing a number that fails half the time. Solving ``Φ(·) = power`` for
    ``u = √v`` is a quadratic:
    ``u = (margin·z − z_p·√((z² + z_p²)·v0 − margin²)) / (z² + z_p²)``.
    """
    if not (margin > 0 and v0 > 0 and math.isfinite(v0)):
        return 0.0
    if margin >= z * math.sqrt(v0):
        return math.sqrt(v0)  # already conclusive: no label needed
    z_p = _z(power)
    if margin < z_p * math.sqrt(v0):
        return 0.0  # not even every label of an infinite cohort would make it likely
    a = z * z + z_p * z_p
    return max(0.0, (margin * z - z_p * math.sqrt(max(a * v0 - margin * margin, 0.0))) / a)


def _gate_parts(audit: Audit, gate: Any) -> tuple[str, np.ndarray | None, list[tuple[str, float]]]:
    """(what, per-case series or None, [(check kind, limit)]) of a gate."""
    from segfair import gates as G

    trusted = audit.scores.trusted_ruler
    if isinstance(gate, G.GapGate) and gate.statistic in ("gap", "to_overall"):
        s = audit.series(gate.metric, model=gate.model, ruler=gate.ruler or trusted)
        assert gate.max is not None
        return "gap", s.x, [("gap", float(gate.max))]
    if isinstance(gate, G.DpdGate):
        s = audit.series(gate.metric, model=gate.model, ruler=trusted)
        x = np.where(s.valid, (s.x > gate.threshold).astype(float), np.nan)
        return "dpd", x, [("gap", float(gate.max))]
    if isinstance(gate, G.MinGroupMetricGate):
        s = audit.series(gate.metric, model=gate.model, ruler=gate.ruler or trusted)
        if gate.min is not None:
            return "level", s.x, [("min", float(gate.min))]
        assert gate.max is not None
        return "level", s.x, [("max", float(gate.max))]
    if isinstance(gate, G.LabelAgreementGate):
        s = audit.agreement_series(gate.metric, ruler=gate.automated)
        checks: list[tuple[str, float]] = []
        if gate.min is not None:
            checks.append(("min", float(gate.min)))
        if gate.max is not None:
            checks.append(("max", float(gate.max)))
        if gate.max_gap is not None:
            checks.append(("gap", float(gate.max_gap)))
        return "agreement", s.x, checks
    if isinstance(gate, G.RulerShrinkageGate | G.RulerInflationGate):
        sh = _share_parts(audit, gate, gate.by if isinstance(gate.by, str) else list(gate.by))
        if sh is not None:
            return "share", sh.y, [("share", float(gate.max))]
    return "other", None, []


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
    from segfair import gates as G

    if isinstance(gate, Mapping):
        gate = G.parse_gate(gate, trusted_ruler=audit.scores.trusted_ruler)
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


@dataclass(frozen=True)
class _Share:
    """A shrinkage/inflation gate's share ``1 − r`` or ``r − 1``, ``r = gap_a / gap_t``."""

    y: np.ndarray  # per case: its term of the share's linearisation (see _share_parts)
    estimate: float
    passing: bool
    pairs: tuple[tuple[int, int], ...]  # the trusted ruler's extreme groups, then the automated
    trusted: _Stats  # trusted values on the cases scored on both rulers


def _share_parts(audit: Audit, gate: Any, by: Any) -> _Share | None:
    """The share a ruler gate decides on, linearised over the groups (None: no trusted gap).

    Both gaps are taken on the cases scored on both rulers, each between its own ruler's
    extreme groups: ``gap_t = t̄_hi − t̄_lo`` and ``gap_a = ā_ha − ā_la``. By the delta
    method ``Var(r) ≈ Σ_g Var(α_g·a − r·τ_g·t)_g / (n_g · gap_t²)`` (``τ_g``, ``α_g`` = +1, −1
    or 0 as ``g`` is the high, low or neither group of each ruler): one term per group, so the
    per-case series ``y = (α_g·a − r·τ_g·t) / gap_t`` has the group standard deviations the
    Neyman allocation needs — the middle groups included when they are the automated extremes,
    and the trusted noise, which the two gaps share, cancelled where it cancels.
    """
    from segfair import gates as G

    t = audit.series(
        gate.metric, model=gate.model, ruler=gate.trusted or audit.scores.trusted_ruler
    )
    a = audit.series(gate.metric, model=gate.model, ruler=gate.automated)
    both = t.valid & a.valid
    st_t = _group_stats(audit, np.where(both, t.x, np.nan), by)
    st_a = _group_stats(audit, np.where(both, a.x, np.nan), by)
    idx = np.where(np.isfinite(st_t.mean))[0]
    if len(idx) < 2:
        return None
    hi, lo = (int(idx[f(st_t.mean[idx])]) for f in (np.argmax, np.argmin))
    ha, la = (int(idx[f(st_a.mean[idx])]) for f in (np.argmax, np.argmin))
    gap_t = float(st_t.mean[hi] - st_t.mean[lo])
    if not gap_t > 0:
        return None
    r = float(st_a.mean[ha] - st_a.mean[la]) / gap_t
    tau, alpha = np.zeros(len(st_t.labels)), np.zeros(len(st_t.labels))
    tau[hi], tau[lo] = 1.0, -1.0
    alpha[ha] += 1.0
    alpha[la] -= 1.0
    codes = audit.grouping(by).codes
    y = np.where(both, (alpha[codes] * a.x - r * tau[codes] * t.x) / gap_t, np.nan)
    estimate = 1.0 - r if isinstance(gate, G.RulerShrinkageGate) else r - 1.0
    return _Share(y, estimate, estimate <= gate.max, ((hi, lo), (ha, la)), st_t)


def _sum_variance(st: _Stats) -> float:
    """Variance of a sum of independent group terms, ``Σ sd_g² / n_g``, with the labels there."""
    on = st.sd > 0
    if (st.n[on] <= 0).any():
        return float("inf")
    return float(np.sum(st.sd[on] ** 2 / st.n[on]))


def _defined_labels(
    audit: Audit,
    gate: Any,
    st: _Stats,
    pair: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    z: float,
    power: float,
    decidable: bool,
) -> tuple[np.ndarray | None, list[str]]:
    """Labels for the two groups of ``pair`` that show the trusted gap above ``negligible``.

    A share of a gap is defined only when the trusted gap's lower bound exceeds ``negligible``
    (else the gate is ``insufficient_evidence`` whatever the share): a one-sided check of that
    gap, planned like a failing gap and calibrated to its bootstrap interval. None: no number
    of labels is likely to get there.
    """
    neg = audit.negligible_for(gate.metric, gate.negligible)
    hi, lo = int(pair[0]), int(pair[1])
    gap_t = float(st.mean[hi] - st.mean[lo])
    v0 = _pair_variance(st, hi, lo)
    notes: list[str] = []
    if decidable:
        d = audit.ruler_distortion(
            gate.metric,
            by=gate.by if isinstance(gate.by, str) else list(gate.by),
            model=gate.model,
            automated=gate.automated,
            trusted=gate.trusted,
            negligible=gate.negligible,
        )
        half = d.gap_trusted.estimate - d.gap_trusted.lower
        kappa = _scale(half / z if math.isfinite(half) and half > 0 else None, v0)
        v0 *= kappa**2
        sd = st.sd[pair] * kappa
    else:
        sd = st.sd[pair]
    se = _target_se(gap_t - neg, v0, z, power)
    if se <= 0:
        notes.append(
            f"the share is defined only once the trusted gap ({gap_t:.3g}) is shown to exceed "
            f"negligible = {neg:g}: "
            + _UNDECIDABLE.format(margin=gap_t - neg, se=math.sqrt(v0), power=power)
        )
        return None, notes
    n, ok = _neyman(sd, bounds[0][pair], bounds[1][pair], se**2)
    if not ok:
        notes.append(
            f"the share is defined only once the trusted gap ({gap_t:.3g}) is shown to exceed "
            f"negligible = {neg:g}, and the cohort holds too few cases to show it with "
            f"{power:.0%} probability"
        )
        return None, notes
    return n, notes


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
    hits = 0
    for _ in range(n_sim):
        means, ses = np.full(len(labels), np.nan), np.full(len(labels), np.nan)
        for i, (vals, prob, mean) in enumerate(pools):
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


def plan_all(audit: Audit, gates: Sequence[Any], **kwargs: Any) -> list[GatePlan]:
    """:func:`plan` for every statistical gate that has groups (others are skipped)."""
    out = []
    for gate in gates:
        if getattr(gate, "by", None) is None or not getattr(gate, "statistical", True):
            continue
        out.append(plan(audit, gate, **kwargs))
    return out


# ----------------------------------------------------------------------------------------------
# which cases to label
# ----------------------------------------------------------------------------------------------


def _pps(size: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities ∝ ``size`` summing to ``k``, capped at 1."""
    size = np.asarray(size, dtype=float)
    pi = np.zeros(len(size))
    if k <= 0 or len(size) == 0:
        return pi
    if k >= len(size):
        return np.ones(len(size))
    capped = np.zeros(len(size), dtype=bool)
    for _ in range(len(size)):
        rest = k - int(capped.sum())
        s = size[~capped]
        pi[~capped] = rest * s / s.sum()
        over = (~capped) & (pi >= 1)
        if not over.any():
            break
        capped |= over
        pi[capped] = 1.0
    return np.clip(pi, 0.0, 1.0)


def select_cases(
    audit: Audit,
    plans: Sequence[GatePlan],
    *,
    within: str = "disagreement",
    automated: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The cases to send for trusted labels, per group, as the annotation team's list.

    Across groups the numbers come from the plans (the largest over gates on one attribute,
    i.e. the Neyman allocation of the most demanding gate). Within a group:

    * ``within="disagreement"`` (default): probability-proportional-to-size sampling with
      size ``0.05 + (1 − Dice(model, automated label))`` — the cases where the automated label
      and the model disagree most carry most of the uncertainty about the model's trusted
      score, so they are the best value per label. The draw is random (systematic PPS), the
      ``inclusion_probability`` is recorded and ``weight = 1 / inclusion_probability`` must go
      into a design weights column for the estimates to stay unbiased.
    * ``within="random"``: a uniform random sample of the group (no weights needed for group
      means when the design is stratified by the same attribute).

    Returns
    -------
    pandas.DataFrame
        ``case_id, group, priority, reason, inclusion_probability, weight``; ``priority`` 1 is
        the most useful label.
    """
    if within not in ("disagreement", "random"):
        raise PlanError(f"within must be 'disagreement' or 'random'; got {within!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
    labelled = audit.labelled_mask()
    rows: list[dict[str, Any]] = []
    chosen: set[str] = set()
    auto = automated
    if auto is None:
        others = [r for r in audit.scores.rulers if r != audit.scores.trusted_ruler]
        auto = others[0] if others else None
    # one draw per group of an attribute, of the largest number any gate asks there: drawing
    # the second gate's extra cases from what the first left would record their conditional
    # probability as the inclusion probability, and the weights would no longer add up
    by_attr: dict[tuple[str, ...], list[GatePlan]] = {}
    for p in plans:
        by_attr.setdefault(tuple(p.by), []).append(p)
    for key, attr_plans in by_attr.items():
        g = audit.grouping(list(key) if len(key) > 1 else key[0])
        for i, lab in enumerate(g.labels):
            asks = [
                (int(q.groups.loc[lab, "additional"]), n, q)
                for n, q in enumerate(attr_plans)
                if lab in q.groups.index
            ]
            if not asks:
                continue
            k, _, p = max(asks, key=lambda t: (t[0], -t[1]))  # the first of the largest
            if k <= 0:
                continue
            dis = _disagreement(audit, p.model, auto) if within == "disagreement" else None
            pool = np.where((g.codes == i) & ~labelled)[0]
            pool = np.array([c for c in pool if str(audit.cases[c]) not in chosen], dtype=int)
            if len(pool) == 0:
                continue
            k = min(k, len(pool))
            if dis is None:
                pi = np.full(len(pool), k / len(pool))
                pick = rng.choice(len(pool), size=k, replace=False)
                score = np.zeros(len(pool))
            else:
                score = np.nan_to_num(
                    dis[pool], nan=float(np.nanmean(dis)) if np.isfinite(dis).any() else 0.5
                )
                pi = _pps(0.05 + score, k)
                # systematic PPS in random order: exactly k cases, P(case) = pi
                order = rng.permutation(len(pool))
                cum = np.cumsum(pi[order])
                starts = rng.uniform(0, 1) + np.arange(k)
                pick = order[np.searchsorted(cum, starts, side="right").clip(0, len(pool) - 1)]
                pick = np.unique(pick)
            for j in pick:
                cid = str(audit.cases[pool[j]])
                chosen.add(cid)
                asked = int(p.groups.loc[lab, "additional"])
                why = f"{p.gate_id}: Neyman allocation asks {asked} more in {lab!r}"
                if dis is not None:
                    why += f"; model vs {auto} disagreement 1 − Dice = {score[j]:.2f}"
                rows.append(
                    {
                        "case_id": cid,
                        "group": lab,
                        "attribute": g.name,
                        "reason": why,
                        "score": float(score[j]),
                        "inclusion_probability": float(pi[j]),
                        "weight": float(1 / pi[j]) if pi[j] > 0 else float("nan"),
                    }
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "case_id",
            "group",
            "attribute",
            "reason",
            "score",
            "inclusion_probability",
            "weight",
        ],
    )
    frame = frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(2, "priority", np.arange(1, len(frame) + 1))
    return frame.loc[:, list(CASE_COLUMNS)]


def batch_weights(batch: pd.DataFrame, labelled: Sequence[str] | pd.Index) -> pd.Series:
    """Design weights of the trusted sample once an annotation batch has been labelled.

    The cases labelled before the batch (``labelled``) are a census of themselves: weight 1.
    The batch (``select_cases``'s table, every case of it labelled) was drawn from the cases
    *without* a label, within each group, with the recorded ``inclusion_probability``; each
    batch case stands for ``1 / inclusion_probability`` of those: its ``weight``. The Hajek
    mean ``Σ w x / Σ w`` over the enlarged sample then estimates the group's mean (and any
    other domain's) whatever the first design was — oversampling, or the disagreement-driven
    PPS of an earlier batch — because it conditions on who was labelled before. Put the
    result in a metadata column and declare it as ``design.weights``.

    Examples
    --------
    >>> batch = pd.DataFrame({"case_id": ["c", "d"], "inclusion_probability": [0.5, 0.25]})
    >>> batch_weights(batch, ["a", "b"]).to_dict()
    {'a': 1.0, 'b': 1.0, 'c': 2.0, 'd': 4.0}
    """
    ids = [str(c) for c in batch["case_id"]]
    before = [str(c) for c in labelled]
    both = sorted(set(ids) & set(before))
    if both:
        raise PlanError(
            f"case(s) {both[:5]} are in the batch and were labelled before: a batch from "
            "select_cases holds only cases without a trusted label"
        )
    pi = pd.to_numeric(batch["inclusion_probability"], errors="coerce").to_numpy(dtype=float)
    bad = [c for c, q in zip(ids, pi, strict=True) if not 0 < q <= 1]
    if bad:
        raise PlanError(f"case(s) {bad[:5]} have no inclusion probability in (0, 1]")
    out = pd.Series(
        [1.0] * len(before) + list(1.0 / pi),
        index=pd.Index(before + ids, name="case_id"),
        name="weight",
    )
    return out


def _disagreement(audit: Audit, model: str | None, automated: str | None) -> np.ndarray | None:
    """Per case ``1 − Dice(model, automated label)``; None when not scored."""
    if model is None or automated is None:
        return None
    try:
        s = audit.series("dice", model=model, ruler=automated)
    except SegfairError:
        return None
    return np.asarray(1.0 - s.x)


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------


def session_audit(session: Any) -> Audit:
    """The audit of a :class:`~segfair.session.SegfairSession` (which applies ``[design]``)."""
    audit: Audit = session.audit
    return audit


def cli_plan(args: Any, out: Any) -> int:
    """``segfair plan``: print the per-gate plans and write the annotation list."""
    from pathlib import Path

    from segfair.session import SegfairSession

    session = SegfairSession.from_path(
        args.config,
        seed=args.seed,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    audit = session_audit(session)
    plans = plan_all(
        audit,
        session.gates,
        power=args.power,
        target_halfwidth=args.target_halfwidth,
        simulate=200,
        seed=session.seed,
    )
    cases = select_cases(audit, plans, within=args.within, seed=session.seed)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    cases.to_csv(tmp, index=False)
    tmp.replace(path)
    for p in plans:
        if not args.quiet:
            print(f"{p.gate_id}: {p.sentence()}", file=out)
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
