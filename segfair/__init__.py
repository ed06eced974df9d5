"""segfair: subgroup fairness of medical image segmentation models, as a CI gate.

A *ruler* is a source of reference masks that a model's predictions are scored against: the
*trusted* ruler (expert labels) or an *automated* one (labels a model drew). Scored on a bent
ruler, a model bent the same way looks fair; segfair measures the subgroup gap on the trusted
ruler and how much each automated ruler shrinks or inflates it.

A *gate* is a declared check with a threshold — "the Dice gap across age groups on expert labels
is below 0.05", "the automated labels hide at most 25% of that gap", "training on automated
labels did not amplify the gap". A failed gate fails the build; the audit report shows why.

Example
-------
>>> import segfair
>>> cohort = segfair.load_cohort("segfair.toml")  # doctest: +SKIP
>>> audit = segfair.Audit(segfair.evaluate(cohort), seed=0)  # doctest: +SKIP
>>> audit.gap("dice", by="age_group", model="candidate").gap  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

from segfair.version import __version__ as __version__

# Public name → module. Resolved lazily (PEP 562) so that `import segfair` — and pytest loading
# `segfair.plugin` in every run — does not import numpy, pandas, scipy or nibabel.
_EXPORTS = {
    "Audit": "segfair.audit",
    "Cohort": "segfair.cohort",
    "CohortError": "segfair.errors",
    "ConfigError": "segfair.errors",
    "GatePlan": "segfair.planner",
    "GateResult": "segfair.gates",
    "GeometryError": "segfair.errors",
    "InputError": "segfair.errors",
    "Mask": "segfair.io",
    "MetricSettings": "segfair.metrics",
    "Scores": "segfair.scores",
    "batch_weights": "segfair.planner",
    "design_weights": "segfair.planner",
    "SegfairConfig": "segfair.cohort",
    "SegfairError": "segfair.errors",
    "SegfairSession": "segfair.session",
    "evaluate": "segfair.evaluate",
    "evaluate_gate": "segfair.planner",
    "evaluate_gates": "segfair.planner",
    "load_cohort": "segfair.cohort",
    "load_config": "segfair.cohort",
    "load_mask": "segfair.io",
    "make_cohort": "segfair.synth",
    "parse_gate": "segfair.gates",
    "plan": "segfair.planner",
    "select_cases": "segfair.planner",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from segfair.audit import Audit as Audit
    from segfair.cohort import Cohort as Cohort
    from segfair.cohort import SegfairConfig as SegfairConfig
    from segfair.cohort import load_cohort as load_cohort
    from segfair.cohort import load_config as load_config
    from segfair.errors import CohortError as CohortError
    from segfair.errors import ConfigError as ConfigError
    from segfair.errors import GeometryError as GeometryError
    from segfair.errors import InputError as InputError
    from segfair.errors import SegfairError as SegfairError
    from segfair.evaluate import evaluate as evaluate
    from segfair.gates import GateResult as GateResult
    from segfair.gates import parse_gate as parse_gate
    from segfair.io import Mask as Mask
    from segfair.io import load_mask as load_mask
    from segfair.metrics import MetricSettings as MetricSettings
    from segfair.planner import GatePlan as GatePlan
    from segfair.planner import batch_weights as batch_weights
    from segfair.planner import design_weights as design_weights
    from segfair.planner import evaluate_gate as evaluate_gate
    from segfair.planner import evaluate_gates as evaluate_gates
    from segfair.planner import plan as plan
    from segfair.planner import select_cases as select_cases
    from segfair.scores import Scores as Scores
    from segfair.session import SegfairSession as SegfairSession
    from segfair.synth import make_cohort as make_cohort


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segfair' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module, with one rule: a public name that is also a submodule's name
    (``segfair.evaluate``, the function, in the module ``segfair.evaluate``) stays the public
    object. The import system binds a submodule to its package's attribute when it first loads
    it; without this, ``segfair.evaluate(cohort)`` would stop working as soon as anything had
    imported the submodule. The submodule itself stays in ``sys.modules`` (``from
    segfair.evaluate import evaluate_case`` and pickling by reference are unaffected)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
