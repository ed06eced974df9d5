"""What the planner plans for each gate kind: the per-case series and the checks on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from segfair.gates import (
    DpdGate,
    GapGate,
    LabelAgreementGate,
    MinGroupMetricGate,
    RulerInflationGate,
    RulerShrinkageGate,
)
from segfair.planner.allocation import _group_stats, _ppi_mean_stats, _ppi_stats, _Stats
from segfair.planner.share import _share_parts

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.stats import Estimator


def _gate_parts(audit: Audit, gate: Any) -> tuple[str, np.ndarray | None, list[tuple[str, float]]]:
    """(what, per-case series or None, [(check kind, limit)]) of a gate."""
    trusted = audit.scores.trusted_ruler
    if isinstance(gate, GapGate) and gate.statistic in ("gap", "to_overall"):
        s = audit.series(gate.metric, model=gate.model, ruler=gate.ruler or trusted)
        assert gate.max is not None
        return "gap", s.x, [("gap", float(gate.max))]
    if isinstance(gate, DpdGate):
        s = audit.series(gate.metric, model=gate.model, ruler=trusted)
        x = np.where(s.valid, (s.x > gate.threshold).astype(float), np.nan)
        return "dpd", x, [("gap", float(gate.max))]
    if isinstance(gate, MinGroupMetricGate):
        s = audit.series(gate.metric, model=gate.model, ruler=gate.ruler or trusted)
        if gate.min is not None:
            return "level", s.x, [("min", float(gate.min))]
        assert gate.max is not None
        return "level", s.x, [("max", float(gate.max))]
    if isinstance(gate, LabelAgreementGate):
        s = audit.agreement_series(gate.metric, ruler=gate.automated)
        checks: list[tuple[str, float]] = []
        if gate.min is not None:
            checks.append(("min", float(gate.min)))
        if gate.max is not None:
            checks.append(("max", float(gate.max)))
        if gate.max_gap is not None:
            checks.append(("gap", float(gate.max_gap)))
        return "agreement", s.x, checks
    if isinstance(gate, RulerShrinkageGate | RulerInflationGate):
        sh = _share_parts(audit, gate, gate.by if isinstance(gate.by, str) else list(gate.by))
        if sh is not None:
            return "share", sh.y, [("share", float(gate.max))]
    return "other", None, []


def _plan_stats(
    audit: Audit, gate: Any, what: str, x: np.ndarray, by: Any
) -> tuple[_Stats, Estimator]:
    """The group statistics a gate is planned on, and its estimator: prediction-powered when
    the gate's estimand is (a trusted group mean, gap or share on a partial ruler of an audit
    with ``estimator = "ppi"``), else the labelled-only statistics of ``x``."""
    if what in ("gap", "level"):
        s = audit.estimand_series(
            gate.metric, model=gate.model, ruler=gate.ruler or audit.scores.trusted_ruler
        )
        if s.proxy is not None:
            return _ppi_mean_stats(audit, s, by)[0], "ppi"
    if what == "share":
        sh = _share_parts(audit, gate, by)
        if sh is not None and sh.u is not None:
            return _ppi_stats(audit, by, sh.u, sh.y), "ppi"
    return _group_stats(audit, x, by), "labelled"
