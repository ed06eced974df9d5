"""The registry of gate kinds: the :data:`Gate` union, :data:`GATE_KINDS`, kind → class."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import Field, TypeAdapter

from segfair.gates.amplification import AmplificationGate
from segfair.gates.base import BaseGate
from segfair.gates.coverage import CoverageGate
from segfair.gates.detection import DetectionGapGate
from segfair.gates.gap import GapGate
from segfair.gates.label_agreement import LabelAgreementGate
from segfair.gates.min_group_metric import MinGroupMetricGate
from segfair.gates.min_group_size import MinGroupSizeGate
from segfair.gates.no_regression import NoRegressionGate
from segfair.gates.rates import DirGate, DpdGate
from segfair.gates.ruler import RulerInflationGate, RulerShrinkageGate

Gate = Annotated[
    GapGate
    | RulerShrinkageGate
    | RulerInflationGate
    | AmplificationGate
    | LabelAgreementGate
    | MinGroupMetricGate
    | DpdGate
    | DirGate
    | CoverageGate
    | MinGroupSizeGate
    | NoRegressionGate
    | DetectionGapGate,
    Field(discriminator="kind"),
]

_GATE: TypeAdapter[Any] = TypeAdapter(Gate)
_GATES: TypeAdapter[Any] = TypeAdapter(list[Gate])
#: Every gate kind, in the order of :data:`Gate` (the one list a new kind is added to).
GATE_CLASSES: tuple[type[BaseGate], ...] = get_args(get_args(Gate)[0])

#: The valid values of ``kind``.
GATE_KINDS: tuple[str, ...] = tuple(str(c.model_fields["kind"].default) for c in GATE_CLASSES)

_KIND_MODELS: dict[str, type[BaseGate]] = dict(zip(GATE_KINDS, GATE_CLASSES, strict=True))
