"""Where to invest in labels: sampling-design weights, label planning and the annotation list.

With a partial trusted ruler (an automated pipeline labels every case, experts label a sample),
this module answers three questions (the statistics are in ``docs/partial-labels.md``):

* :func:`design_weights` — the inverse inclusion probability of each labelled case, from the
  ``[tool.segfair.design]`` table (per-group fractions or a weight column), for
  ``Audit(..., design_weights=...)``.
* :func:`plan` — how many more trusted labels each group needs before a gate's decision is
  expected to be conclusive: its interval clear of the threshold with probability ``power`` (or
  a stated half-width), by a normal approximation with Neyman allocation across groups, checked
  by a bootstrap simulation.
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

:func:`evaluate_gate` and :func:`evaluate_gates` decide gates as :mod:`segfair.gates` does and
attach the label plan of an undecided gate (``labels_needed`` and a first next step).
"""

from __future__ import annotations

from segfair.planner.advice import evaluate_gate, evaluate_gates, with_label_plan
from segfair.planner.allocation import _neyman, _target_se  # noqa: F401 - kept importable
from segfair.planner.errors import PlanError
from segfair.planner.gateplan import PLAN_COLUMNS, GatePlan
from segfair.planner.plan import plan, plan_all
from segfair.planner.selection import (
    CASE_COLUMNS,
    _pps,  # noqa: F401 - kept importable
    select_cases,
)
from segfair.planner.simulate import simulate_plan
from segfair.planner.weights import batch_weights, config_weights, design_weights

__all__ = [
    "CASE_COLUMNS",
    "PLAN_COLUMNS",
    "GatePlan",
    "PlanError",
    "batch_weights",
    "config_weights",
    "design_weights",
    "evaluate_gate",
    "evaluate_gates",
    "plan",
    "plan_all",
    "select_cases",
    "simulate_plan",
    "with_label_plan",
]
