"""Gates: declared checks with thresholds, decided on the audit's confidence bounds.

A gate comes from a ``[[gates]]`` entry of the configuration (or is built in Python) and is
decided by :func:`evaluate_gate` into a :class:`GateResult`: ``passed``, ``failed``,
``inconclusive`` or ``error``, with a machine-readable ``reason``, the estimate, its interval,
the evidence table and a message a person can act on. Each gate kind is one class (one module)
that owns its check; the registry of kinds is :mod:`segfair.gates.kinds`.

Decision rules
--------------
* By default a gate decides on the **bound** of the two-sided interval at ``confidence``: an
  upper limit (``max``) passes when the *upper* bound is within it, a lower limit (``min``) when
  the *lower* bound is. "No evidence of harm" is not "evidence of no harm"; a bound-based verdict
  passes a harmful model with probability at most ``(1 - confidence) / 2``. It is ``failed``
  when the whole interval lies beyond the limit (evidence of harm) and ``inconclusive`` when it
  straddles the limit. ``decide_on = "estimate"`` compares the point estimate instead (passed
  or failed).
* An inconclusive verdict blocks the build unless the release policy lets it through:
  ``on_inconclusive = "fail"`` (default), ``"warn"`` or ``"pass"``, per gate or for the run.
  The legacy ``allow_insufficient = true`` lets through an inconclusive verdict *for lack of
  data* (small groups, nothing decidable, no baseline). ``error`` always blocks.
* Groups smaller than ``min_group_size`` are set aside and the gate is decided on the others; if
  it fails there it fails, otherwise it is ``inconclusive`` (reason
  ``groups_below_min_size``). A small group can explain why a gate cannot pass, never rescue one.
* ``coverage`` and ``min_group_size`` gates are counts over the whole cohort, not estimates from a
  sample: they decide on the observed values and ignore ``decide_on``.
* Ratio gates (``ruler_shrinkage``, ``ruler_inflation``, ``amplification``) need a denominator
  gap shown to exceed ``negligible``. Otherwise they are ``inconclusive`` (reason
  ``precondition_not_met``): the declared share cannot be applied, and is never silently
  replaced. A gate that declares ``max_difference`` decides then on the difference of the gaps
  in metric units against it: passed when its bound is within it, failed when its lower bound
  exceeds it, else inconclusive.

These functions return the verdict alone; :func:`segfair.planner.evaluate_gate` and
:func:`segfair.planner.evaluate_gates` also attach the label plan of an undecided gate.

Example
-------
>>> from segfair.audit import Audit, example_scores
>>> gate = parse_gate({"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.05,
...                    "min_group_size": 10})
>>> result = evaluate_gate(Audit(example_scores(), n_boot=200), gate)
>>> result.id, result.status
('gap[dice,age,m]', 'failed')
"""

from __future__ import annotations

from segfair.gates.amplification import AmplificationGate
from segfair.gates.base import (
    AT_LEAST,
    CONFIDENCE_RANGE,
    DISTANCE_NEEDS_MAX,
    EMPTY_BY,
    FRACTION_RANGE,
    GAP_NEEDS_MAX,
    ONE_OF,
    RATIO_NEEDS_MIN,
    SCORE_NEEDS_MIN,
    BaseGate,
    Baseline,
    DecideOn,
    MetricGate,
    Only,
    _Gate,  # noqa: F401 - the old private base, kept importable
)
from segfair.gates.coverage import CoverageGate
from segfair.gates.detection import DetectionGapGate
from segfair.gates.evaluate import decision_audit, evaluate_gate, evaluate_gates, gate_checks
from segfair.gates.gap import GapGate
from segfair.gates.kinds import (
    _KIND_MODELS,  # noqa: F401 - the old private map, kept importable
    GATE_CLASSES,
    GATE_KINDS,
    Gate,
)
from segfair.gates.label_agreement import LabelAgreementGate
from segfair.gates.min_group_metric import MinGroupMetricGate
from segfair.gates.min_group_size import MinGroupSizeGate
from segfair.gates.no_regression import (
    NO_BASELINE,
    NOT_IN_BASELINE,
    NoRegressionGate,
    baseline_gap,
)
from segfair.gates.outcome import Check, Outcome
from segfair.gates.parse import (
    MISSING_GATE_KEY,
    MISSING_KIND,
    UNKNOWN_GATE_KEY,
    UNKNOWN_GATE_STRUCTURE,
    UNKNOWN_KIND,
    invalid_gates,
    parse_gate,
    parse_gates,
)
from segfair.gates.rates import DirGate, DpdGate
from segfair.gates.result import (
    BAD_ON_INCONCLUSIVE,
    EVIDENCE_COLUMNS,
    LACK_OF_DATA,
    ON_INCONCLUSIVE,
    REASONS,
    STATUSES,
    GateResult,
    OnInconclusive,
    Reason,
    Status,
    check_on_inconclusive,
    lets_through,
)
from segfair.gates.ruler import RulerInflationGate, RulerShrinkageGate

__all__ = [
    "AT_LEAST",
    "BAD_ON_INCONCLUSIVE",
    "CONFIDENCE_RANGE",
    "DISTANCE_NEEDS_MAX",
    "EMPTY_BY",
    "EVIDENCE_COLUMNS",
    "FRACTION_RANGE",
    "GAP_NEEDS_MAX",
    "GATE_CLASSES",
    "GATE_KINDS",
    "LACK_OF_DATA",
    "MISSING_GATE_KEY",
    "MISSING_KIND",
    "NOT_IN_BASELINE",
    "NO_BASELINE",
    "ONE_OF",
    "ON_INCONCLUSIVE",
    "RATIO_NEEDS_MIN",
    "REASONS",
    "SCORE_NEEDS_MIN",
    "STATUSES",
    "UNKNOWN_GATE_KEY",
    "UNKNOWN_GATE_STRUCTURE",
    "UNKNOWN_KIND",
    "AmplificationGate",
    "BaseGate",
    "Baseline",
    "Check",
    "CoverageGate",
    "DecideOn",
    "DetectionGapGate",
    "DirGate",
    "DpdGate",
    "GapGate",
    "Gate",
    "GateResult",
    "LabelAgreementGate",
    "MetricGate",
    "MinGroupMetricGate",
    "MinGroupSizeGate",
    "NoRegressionGate",
    "OnInconclusive",
    "Only",
    "Outcome",
    "Reason",
    "RulerInflationGate",
    "RulerShrinkageGate",
    "Status",
    "baseline_gap",
    "check_on_inconclusive",
    "decision_audit",
    "evaluate_gate",
    "evaluate_gates",
    "gate_checks",
    "invalid_gates",
    "lets_through",
    "parse_gate",
    "parse_gates",
]
