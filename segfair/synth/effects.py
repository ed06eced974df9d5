"""Effects: every knob of the synthetic world, documented, bounded, with one default."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, NamedTuple

__all__ = ["EFFECTS", "ERR_EFFECT_VALUE", "ERR_YOUTH_AGES", "Effect"]

ERR_EFFECT_VALUE: Final = (
    "effect {name!r} must be a finite number in [{low}, {high}]; got {value!r}"
)
ERR_YOUTH_AGES: Final = "youth_age_young ({young}) must be below youth_age_old ({old})"


class Effect(NamedTuple):
    """One effect parameter of the synthetic world: its default, meaning and valid range."""

    default: float
    description: str
    low: float
    high: float


def _knob(default: float, description: str, low: float = 0.0, high: float = math.inf) -> Any:
    return field(default=default, metadata={"effect": Effect(default, description, low, high)})


@dataclass(frozen=True)
class _World:
    """Effect values of one cohort (the fields are exactly :data:`EFFECTS`)."""

    # -- the age → morphology link: the only place age enters the generator -------------------
    youth_age_young: float = _knob(40.0, "age (years) at or below which youth = 1", 0.0, 120.0)
    youth_age_old: float = _knob(55.0, "age (years) at or above which youth = 0", 0.0, 120.0)
    # -- expert lesion morphology ---------------------------------------------------------------
    volume_ml: float = _knob(5.0, "median lesion volume at youth 0, in ml", 1e-3, 1e3)
    volume_log_sd: float = _knob(0.7, "log-sd of lesion volume at youth 0", 0.0, 3.0)
    young_volume_ratio: float = _knob(
        1.66, "mean lesion volume at youth 1 / at youth 0 (published: 1.66)", 0.1, 10.0
    )
    young_volume_var_ratio: float = _knob(
        1.70, "variance of lesion volume at youth 1 / at youth 0 (published: 1.70)", 0.01, 100.0
    )
    lobulation: float = _knob(0.06, "lobulation amplitude (relative radius SD) at youth 0", 0, 1)
    young_lobulation: float = _knob(0.25, "lobulation amplitude added at youth 1", 0.0, 1.0)
    lobulation_order: float = _knob(
        3.0, "angular frequency of the lobulation field (about the number of lobes)", 0.5, 12.0
    )
    spicules: float = _knob(0.3, "mean number of spicules at youth 0", 0.0, 50.0)
    young_spicules: float = _knob(4.0, "mean number of spicules added at youth 1", 0.0, 50.0)
    spicule_length: float = _knob(0.5, "mean spicule length relative to the lesion radius", 0, 3)
    satellites: float = _knob(0.1, "mean number of satellite nodules at youth 0", 0.0, 10.0)
    young_satellites: float = _knob(0.6, "mean number of satellites added at youth 1", 0.0, 10.0)
    elongation: float = _knob(0.12, "log-sd of the lesion's three axis lengths", 0.0, 1.0)
    # -- the automated labeller (a function of the expert mask only) -------------------------
    label_smoothing: float = _knob(
        0.6, "labeller's blur sigma relative to the lesion radius (cuts lobes, spicules)", 0, 2
    )
    label_min_component: float = _knob(
        0.05, "labeller drops components below this fraction of the lesion volume", 0.0, 1.0
    )
    label_bias: float = _knob(
        -0.03, "labeller's boundary shift relative to the radius (< 0: under-segments)", -1, 1
    )
    label_noise: float = _knob(
        0.03, "labeller's smooth boundary noise SD relative to the radius", 0.0, 1.0
    )
    # -- the models (functions of the expert mask only) --------------------------------------
    model_resolution: float = _knob(
        0.08, "finest detail a model resolves: blur sigma relative to the radius", 0.0, 1.0
    )
    model_noise: float = _knob(
        0.07, "model boundary noise SD relative to the radius, for a typical lesion", 0.0, 2.0
    )
    model_noise_case_sd: float = _knob(
        0.35, "log-sd of the boundary noise across cases (case difficulty)", 0.0, 3.0
    )
    model_bias_sd: float = _knob(
        0.08, "SD across cases of the model's boundary bias, relative to the radius", 0.0, 1.0
    )
    model_failure_rate: float = _knob(
        0.05, "probability of a failure (miss, partial miss, leak) on a typical lesion", 0.0, 1.0
    )
    model_atypical_gain: float = _knob(
        0.6, "growth of trained_on_expert's errors per unit of atypicality", 0.0, 20.0
    )
    size_atypicality: float = _knob(
        0.5, "atypicality per unit |ln(volume / typical volume)|", 0.0, 20.0
    )
    noise_length: float = _knob(
        0.6, "correlation length of boundary noise relative to the radius", 0.05, 5.0
    )
    automated_noise: float = _knob(
        1.0, "trained_on_automated's boundary noise and failure rate / trained_on_expert's", 0, 5
    )
    automated_inherit: float = _knob(
        1.0, "share of the labeller's smoothing that trained_on_automated reproduces", 0.0, 2.0
    )
    automated_atypical_gain: float = _knob(
        0.7, "growth of trained_on_automated's own errors per unit of atypicality", 0.0, 20.0
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            spec: Effect = f.metadata["effect"]
            value = getattr(self, f.name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not spec.low <= value <= spec.high:
                raise ValueError(
                    ERR_EFFECT_VALUE.format(name=f.name, low=spec.low, high=spec.high, value=value)
                )
        if self.youth_age_young >= self.youth_age_old:
            raise ValueError(
                ERR_YOUTH_AGES.format(young=self.youth_age_young, old=self.youth_age_old)
            )


#: Every effect parameter :func:`make_cohort` accepts, by name: default, description, bounds.
EFFECTS: Final[Mapping[str, Effect]] = MappingProxyType(
    {f.name: f.metadata["effect"] for f in fields(_World)}
)
