"""Synthetic breast DCE-MRI cohorts whose subgroup disparities are known because we built them.

:func:`make_cohort` writes a cohort in the MAMA-MIA layout (expert and automated labels, two
models' predictions, a clinical table and a ``segfair.toml``). Nothing in it writes a gap or a
score: the only place age enters is the *morphology* of the expert lesion (younger patients get
larger, more lobulated, more spiculated lesions with more satellites). The automated labeller and
both models are functions of the expert mask alone, so every disparity a user then measures comes
out of the masks on disk, the way it does in the published audit (Parikh, Das & Feragen, arXiv
2511.00477 and 2510.27421).

The world, in four steps
------------------------
1. **Patients.** Site (``DUKE``/``ISPY1``/``ISPY2``/``NACT`` in MAMA-MIA proportions), age (about
   23% ≤ 40, 50% 40–55, 27% > 55), ethnicity (a few missing), menopause consistent with age,
   scanner manufacturer and field strength by site.
2. **Expert lesion.** A star-shaped body whose radius is modulated over directions by a smooth
   random field (lobulation), plus thin tapering spikes (spicules), a random ellipsoidal
   elongation and small satellite nodules. Its volume is log-normal. A patient's *youth*
   (1 at or below ``youth_age_young``, 0 at or above ``youth_age_old``, linear between; by
   default the age bins 40 and 55) moves the volume distribution (mean and variance to the
   published +66% and +70% at youth 1) and the lobulation, spicule and satellite rates. This is
   the only place age enters.
3. **Automated labeller.** The expert mask is blurred at a scale proportional to the lesion's
   radius and cut at the level that keeps its volume: a smooth blob comes out as it went in,
   while lobes are rounded off, clefts filled, spicules cut and satellites lost (components below
   a size are dropped). Then a small boundary bias and smooth noise. Its error is the lesion's
   irregularity, hence larger for the young, with no age term.
4. **Models.** ``trained_on_expert`` moves the expert boundary (slightly blurred: a model's
   resolution) by a case-level bias and smooth random boundary noise, and now and then fails
   (misses the lesion, misses part of it, or leaks into the tissue next to it). The noise and the
   failure rate grow with the lesion's *atypicality* — its fine detail and how far its volume is
   from the typical one, both read off the mask. ``trained_on_automated`` starts from the
   labeller's systematic output (the same blur, cut and bias, without the labeller's own noise),
   so it shares the labeller's errors, and adds its own, which grow faster with atypicality.

The labeller and the models take the expert mask and nothing else (no age, no generator
parameters), so the disparities are consequences of morphology, as in the audit. With the
age → morphology link cut (the ``null`` preset) a 25- and a 75-year-old with the same random
draws get identical masks of every kind.

Lesion sizes are physical (ml). When the field of view is too small for them the whole world is
shrunk by one factor for every case (so that the body of a 97.5th-percentile lesion fits), and a
lesion that still does not fit is scaled down alone; spicule tips and satellites beyond the edge
of the volume are cut. Every error scale is relative to the lesion's radius, so the Dice
distribution depends little on the image size once lesions span several voxels: from 48×48×24 to
the default 96×96×48 trained_on_expert gains about 0.01–0.02 (small lesions, mostly older
patients', suffer less from coarse voxels) and the rest moves by less than 0.01. At 32×32×16 and
below the voxels are too coarse for the models' boundary noise and the presets' ranges do not
apply.

Determinism: each case draws from its own generators seeded by ``(seed, case index, stream)``, so
a case's files do not depend on ``n_cases``, on the worker count or on other cases, and two runs
write identical bytes (NIfTI gzip streams carry no timestamp; the workbook's timestamps are fixed).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from segfair.io import save_mask

__all__ = ["EFFECTS", "PRESETS", "Effect", "Preset", "Promise", "make_cohort"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]

#: Directory names of the MAMA-MIA layout, by the role of the masks they hold.
LAYOUT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "expert": "segmentations/expert",
        "automated": "segmentations/automatic",
        "trained_on_expert": "predictions/trained_on_expert",
        "trained_on_automated": "predictions/trained_on_automated",
    }
)
TABLE_XLSX: Final = "clinical_and_imaging_info.xlsx"
TABLE_CSV: Final = "clinical_and_imaging_info.csv"
SHEET: Final = "dataset_info"
CONFIG: Final = "segfair.toml"
#: Provenance of a synthetic cohort; its presence marks a directory as an earlier synth output.
MANIFEST: Final = "segfair_synth.json"
_GENERATOR: Final = "segfair.synth.make_cohort"
COLUMNS: Final = (
    "patient_id",
    "dataset",
    "age",
    "ethnicity",
    "menopause",
    "manufacturer",
    "field_strength",
)

PRESET_NAMES: Final = ("null", "hidden", "parikh")
ERR_PRESET: Final = (
    "preset must be one of " + ", ".join(map(repr, PRESET_NAMES)) + "; got {value!r}"
)
ERR_EFFECT: Final = "unknown effect(s) {names}; valid effects are: {valid}"
ERR_EFFECT_VALUE: Final = (
    "effect {name!r} must be a finite number in [{low}, {high}]; got {value!r}"
)
ERR_YOUTH_AGES: Final = "youth_age_young ({young}) must be below youth_age_old ({old})"
ERR_N_CASES: Final = "n_cases must be an integer >= 1; got {value!r}"
ERR_SHAPE: Final = "shape must be three positive integers; got {value!r}"
ERR_SPACING: Final = "spacing must be three positive finite numbers (mm); got {value!r}"
ERR_SEED: Final = "seed must be an integer >= 0; got {value!r}"
ERR_WORKERS: Final = "workers must be an integer >= 1; got {value!r}"
ERR_NOT_EMPTY: Final = (
    "{path} is not empty and is not an earlier segfair.synth output; pass overwrite=True to write "
    "into it anyway (files of the cohort are replaced, nothing else is touched)"
)
ERR_NOT_DIR: Final = "{path} exists and is not a directory"


# --------------------------------------------------------------------------------------------
# Effects: every knob of the world, documented, bounded, with one default
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Presets: effect values plus the ranges they promise, measured on generated cohorts
# --------------------------------------------------------------------------------------------


class Promise(NamedTuple):
    """A range a preset promises for one quantity measured on the cohorts it writes.

    Quantities (Dice read back from the files; groups are the age bins ≤ 40, 40–55, > 55):

    - ``mean(<model>|<ruler>|<group>)``: mean Dice of a model against a ruler within a group;
    - ``gap(<model>|<ruler>)``: max − min of the three group means;
    - ``label(<group>)`` and ``gap(label)``: the same for the automated labels scored against
      the expert ones (the label audit);
    - ``shrinkage`` = 1 − gap(trained_on_automated|automated) / gap(trained_on_automated|expert),
      the share of the true gap the automated ruler hides;
    - ``amplification`` = gap(trained_on_automated|expert) / gap(trained_on_expert|expert) − 1;
    - ``distortion(trained_on_expert)`` = gap(trained_on_expert|automated) /
      gap(trained_on_expert|expert) − 1.

    Each range held for every seed measured (seeds 0–11 at 300 cases, 1–3 at 3000) at ``shape``
    with the default spacing; the test suite checks the 300-case ranges, ``python
    benchmarks/bench_synth.py --measure --n-cases 3000 --shape 96 96 48`` reports the rest. Ratios
    of two gaps are too noisy to promise at 300 cases.
    """

    quantity: str
    low: float
    high: float
    n_cases: int
    shape: tuple[int, int, int]


class Preset(dict[str, float]):
    """A named, complete set of effect values; ``promises`` lists what it is tuned to produce."""

    def __init__(
        self, name: str, values: Mapping[str, float], promises: Sequence[Promise], doc: str
    ) -> None:
        super().__init__(values)
        self.name = name
        self.promises = tuple(promises)
        self.__doc__ = (
            doc
            + "\n\nPromises\n--------\n"
            + "\n".join(
                f"- {p.quantity} in [{p.low:g}, {p.high:g}] at n ≥ {p.n_cases}, "
                f"shape {'×'.join(map(str, p.shape))}"
                for p in self.promises
            )
        )

    def __repr__(self) -> str:
        return f"Preset({self.name!r}, {dict(self)!r})"


_DEFAULTS: Final = {name: spec.default for name, spec in EFFECTS.items()}
_NO_AGE_LINK: Final = {
    "young_volume_ratio": 1.0,
    "young_volume_var_ratio": 1.0,
    "young_lobulation": 0.0,
    "young_spicules": 0.0,
    "young_satellites": 0.0,
}
# Promises are stated at two sizes: the one the test suite measures (300 cases at 48×48×24, wide
# ranges: a gap of three group means has a standard error of about 0.02 there) and the default
# shape at 3000 cases, which the benchmark's --measure mode reports.
_SMALL: Final = (300, (48, 48, 24))
_LARGE: Final = (3000, (96, 96, 48))
_TE, _TA = "trained_on_expert", "trained_on_automated"


def _promises(
    size: tuple[int, tuple[int, int, int]], **ranges: tuple[float, float]
) -> list[Promise]:
    # keyword names stand for quantities: "gap__TA__expert" → "gap(trained_on_automated|expert)"
    out = []
    for key, (low, high) in ranges.items():
        kind, *parts = key.split("__")
        names = [{"TE": _TE, "TA": _TA}.get(p, p) for p in parts]
        quantity = f"{kind}({'|'.join(names)})" if names else kind
        out.append(Promise(quantity, low, high, size[0], size[1]))
    return out


PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {
        "null": Preset(
            "null",
            {**_DEFAULTS, **_NO_AGE_LINK},
            _promises(
                _SMALL,
                gap__TE__expert=(0.0, 0.06),
                gap__TA__expert=(0.0, 0.06),
                gap__TA__automated=(0.0, 0.06),
                gap__label=(0.0, 0.02),
            )
            + _promises(
                _LARGE,
                gap__TE__expert=(0.0, 0.025),
                gap__TA__expert=(0.0, 0.025),
                gap__TA__automated=(0.0, 0.025),
                gap__label=(0.0, 0.01),
            ),
            "No disparity anywhere: lesion morphology does not depend on age (the five young_* "
            "effects are neutral) and nothing else sees age, so every age gap is sampling noise "
            "— for false-alarm tests. Measured at 3000 cases: every gap ≤ 0.015.",
        ),
        "hidden": Preset(
            "hidden",
            dict(_DEFAULTS),
            _promises(
                _SMALL,
                gap__TA__expert=(0.05, 0.13),
                gap__TA__automated=(0.015, 0.09),
                shrinkage=(0.2, 0.75),
                gap__TE__expert=(0.0, 0.08),
                gap__label=(0.08, 0.13),
                mean__TA__expert__young=(0.65, 0.73),
                mean__TA__expert__older=(0.74, 0.82),
            )
            + _promises(
                _LARGE,
                gap__TA__expert=(0.07, 0.12),
                gap__TA__automated=(0.03, 0.075),
                shrinkage=(0.25, 0.6),
                gap__TE__expert=(0.02, 0.065),
                gap__TE__automated=(0.07, 0.115),
                gap__label=(0.09, 0.12),
                mean__TA__expert__young=(0.66, 0.7),
                mean__TA__expert__older=(0.755, 0.795),
            ),
            "The biased ruler hides the harm, as in the background note: trained_on_automated's "
            "age gap is ≈ 0.095 on expert labels but looks like ≈ 0.055 on automated ones (≈ 40% "
            "hidden); the automated labels score ≈ 0.81 / 0.86 / 0.91 against the expert ones for "
            "young / middle / older, and trained_on_expert's true gap is ≈ 0.04 (measured at "
            "3000 cases, 96×96×48).",
        ),
        "parikh": Preset(
            "parikh",
            {
                **_DEFAULTS,
                # a gentler labeller and less age-dependent morphology than "hidden", noisier
                # models, and a trained_on_automated whose own errors grow faster on atypical
                # lesions: the ruler now inflates the gap and training amplifies it
                "young_lobulation": 0.17,
                "young_spicules": 3.0,
                "label_smoothing": 0.45,
                "model_noise": 0.13,
                "model_noise_case_sd": 0.3,
                "model_atypical_gain": 0.5,
                "automated_atypical_gain": 1.1,
                "automated_noise": 0.78,
            },
            _promises(
                _SMALL,
                gap__TE__expert=(0.0, 0.08),
                gap__TE__automated=(0.01, 0.1),
                gap__TA__expert=(0.01, 0.12),
                gap__label=(0.04, 0.08),
                mean__TE__expert__young=(0.69, 0.77),
                mean__TE__expert__older=(0.72, 0.8),
                mean__TA__expert__young=(0.65, 0.74),
                mean__TA__expert__older=(0.72, 0.79),
            )
            + _promises(
                _LARGE,
                gap__TE__expert=(0.025, 0.06),
                gap__TE__automated=(0.04, 0.08),
                gap__TA__expert=(0.05, 0.095),
                gap__label=(0.05, 0.065),
                distortion__TE=(0.1, 1.0),
                amplification=(0.2, 2.5),
                mean__TE__expert__young=(0.735, 0.765),
                mean__TE__expert__older=(0.775, 0.81),
                mean__TE__automated__young=(0.7, 0.73),
                mean__TA__expert__young=(0.665, 0.7),
                mean__TA__expert__older=(0.74, 0.77),
            ),
            "Approaches the published MAMA-MIA numbers (Parikh et al.), measured at 3000 cases, "
            "96×96×48: trained_on_expert's gap ≈ 0.040 on expert labels (published 0.040) and "
            "≈ 0.058 on automated ones (0.056: the ruler inflates it by ≈ 45%, published 40%); "
            "trained_on_automated's ≈ 0.074 on expert labels (0.066: amplification ≈ +85%, "
            "published +66%). Group means young / middle / older ≈ 0.75 / 0.78 / 0.79, "
            "0.72 / 0.75 / 0.78 and 0.68 / 0.73 / 0.76 (published 0.73 / 0.73 / 0.77, "
            "0.69 / 0.71 / 0.75 and 0.68 / 0.71 / 0.75).",
        ),
    }
)


def _resolve_world(preset: str, effects: Mapping[str, Any]) -> _World:
    if preset not in PRESETS:
        raise ValueError(ERR_PRESET.format(value=preset))
    unknown = sorted(set(effects) - set(EFFECTS))
    if unknown:
        raise ValueError(ERR_EFFECT.format(names=", ".join(unknown), valid=", ".join(EFFECTS)))
    return _World(**{**PRESETS[preset], **effects})


# --------------------------------------------------------------------------------------------
# Patients
# --------------------------------------------------------------------------------------------

# MAMA-MIA's sites with their case counts (291 / 171 / 980 / 64 of 1,506), their patient-id
# formats and their scanners; the imbalance is part of the realism.
_SITES: Final = ("DUKE", "ISPY1", "ISPY2", "NACT")
_SITE_P: Final = np.array([291, 171, 980, 64]) / 1506
_SCANNERS: Final[Mapping[str, tuple[tuple[str, float, float], ...]]] = {
    # (manufacturer, field strength in T, probability)
    "DUKE": (("GE", 1.5, 0.35), ("GE", 3.0, 0.35), ("SIEMENS", 1.5, 0.1), ("SIEMENS", 3.0, 0.2)),
    "ISPY1": (("GE", 1.5, 0.6), ("SIEMENS", 1.5, 0.25), ("PHILIPS", 1.5, 0.15)),
    "ISPY2": (
        ("GE", 1.5, 0.3),
        ("GE", 3.0, 0.2),
        ("SIEMENS", 1.5, 0.15),
        ("SIEMENS", 3.0, 0.15),
        ("PHILIPS", 1.5, 0.1),
        ("PHILIPS", 3.0, 0.1),
    ),
    "NACT": (("GE", 1.5, 1.0),),
}
_ETHNICITIES: Final = ("white", "african american", "asian", "hispanic")
_ETHNICITY_P: Final = np.array([0.75, 0.16, 0.06, 0.03])
# Registries often lack ethnicity at one site; missing values become the audit's `unknown` group.
_ETHNICITY_MISSING: Final = {"DUKE": 0.01, "ISPY1": 0.02, "ISPY2": 0.01, "NACT": 0.25}
# (probability, lowest age, highest age) of the three age bands of MAMA-MIA.
_AGE_BANDS: Final = ((0.23, 24, 40), (0.50, 41, 55), (0.27, 56, 82))


@dataclass(frozen=True)
class _Patient:
    index: int
    dataset: str
    age: int
    ethnicity: str | None
    menopause: str
    manufacturer: str
    field_strength: float
    patient_id: str = ""


def _stream(seed: int, index: int, stream: int) -> np.random.Generator:
    # One generator per (case, purpose): a case never depends on n_cases or on other cases, and
    # changing one mechanism's effects leaves the draws of the others untouched.
    return np.random.default_rng([seed, index, stream])


_S_PATIENT, _S_LESION, _S_LABEL, _S_EXPERT_MODEL, _S_AUTO_MODEL = range(5)


def _draw_patient(seed: int, index: int) -> _Patient:
    rng = _stream(seed, index, _S_PATIENT)
    site = _SITES[int(rng.choice(len(_SITES), p=_SITE_P))]
    band = int(rng.choice(3, p=[b[0] for b in _AGE_BANDS]))
    _, lo, hi = _AGE_BANDS[band]
    # Within a band ages are uniform except the oldest, whose density falls off with age.
    u = rng.random() ** (1.6 if band == 2 else 1.0)
    age = int(lo + math.floor(u * (hi - lo + 1)))
    if rng.random() < _ETHNICITY_MISSING[site]:
        ethnicity: str | None = None
    else:
        ethnicity = _ETHNICITIES[int(rng.choice(len(_ETHNICITIES), p=_ETHNICITY_P))]
    # Menopause follows age: pre before 45, post after 55, a transition in between.
    p_post = min(max((age - 45) / 10, 0.0), 1.0)
    r = rng.random()
    if r < p_post:
        menopause = "post"
    elif 45 <= age <= 55 and r < p_post + 0.35:
        menopause = "peri"
    else:
        menopause = "pre"
    options = _SCANNERS[site]
    k = int(rng.choice(len(options), p=[o[2] for o in options]))
    return _Patient(index, site, age, ethnicity, menopause, options[k][0], options[k][1])


def _patient_id(site: str, k: int) -> str:
    # The k-th (0-based) patient of a site, in the site's own id format.
    if site == "DUKE":
        return f"DUKE_{k + 1:03d}"
    if site == "ISPY1":
        return f"ISPY1_{1001 + k}"
    if site == "ISPY2":
        return f"ISPY2_{100101 + k}"
    return f"NACT_{k + 1:02d}"


def _patients(seed: int, n_cases: int) -> list[_Patient]:
    counts = dict.fromkeys(_SITES, 0)
    out = []
    for i in range(n_cases):
        p = _draw_patient(seed, i)
        pid = _patient_id(p.dataset, counts[p.dataset])
        counts[p.dataset] += 1
        out.append(replace(p, patient_id=pid))
    return out


# --------------------------------------------------------------------------------------------
# Expert lesions: morphology is where age acts, and the only place
# --------------------------------------------------------------------------------------------

_N_DIRS: Final = 400


def _fibonacci_sphere(n: int) -> npt.NDArray[np.float64]:
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = math.pi * (1 + 5**0.5) * k
    rho = np.sqrt(1 - z**2)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


_DIRS: Final = _fibonacci_sphere(_N_DIRS)


def _youth(age: float, w: _World) -> float:
    return min(max((w.youth_age_old - age) / (w.youth_age_old - w.youth_age_young), 0.0), 1.0)


def _log_volume(youth: float, w: _World) -> tuple[float, float]:
    """Mean and SD of ln(volume in ml) at a given youth.

    The mean and the variance of the volume move linearly with youth to the published ratios at
    youth 1 (a log-normal is then fixed by its first two moments).
    """
    s0 = w.volume_log_sd
    mean0 = w.volume_ml * math.exp(s0**2 / 2)
    var0 = mean0**2 * math.expm1(s0**2)
    mean = mean0 * (1 + (w.young_volume_ratio - 1) * youth)
    var = var0 * (1 + (w.young_volume_var_ratio - 1) * youth)
    s2 = math.log1p(var / mean**2) if mean > 0 else 0.0
    return math.log(mean) - s2 / 2, math.sqrt(s2)


def _radius_mm(volume_ml: float) -> float:
    return float((3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3))


def _world_scale(shape: Sequence[int], spacing: Sequence[float], w: _World) -> float:
    """One factor for all lengths of the world so that large lesions fit the field of view."""
    half_fov = min(n * s for n, s in zip(shape, spacing, strict=True)) / 2
    big = max(mu + 1.96 * sd for mu, sd in (_log_volume(y, w) for y in (0.0, 1.0)))
    # How far a strongly lobulated, elongated body reaches, in radii (lobes peak near 2.5 SD).
    lobes = 1 + 2.5 * max(w.lobulation, w.lobulation + w.young_lobulation)
    body = lobes * math.exp(2 * w.elongation)
    # The body of a 97.5th-percentile lesion spans 95% of the half field of view.
    return min(1.0, 0.95 * half_fov / (body * _radius_mm(math.exp(big))))


@dataclass(frozen=True)
class _Crop:
    """A box of the volume around one lesion, with the mm coordinates of its voxels."""

    slices: tuple[slice, slice, slice]
    coords: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    spacing: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.coords[0]), len(self.coords[1]), len(self.coords[2]))


def _smooth_field(
    rng: np.random.Generator, crop: _Crop, length: float, n_modes: int = 24
) -> FloatArray:
    """A stationary, unit-variance Gaussian-like random field with correlation length ``length``.

    Random Fourier features: a sum of plane waves with Gaussian frequencies has (approximately)
    a Gaussian covariance exp(-d²/2ℓ²). Each wave factorises over the axes,
    cos(a + b + c) = Re(e^{ia} e^{ib} e^{ic}), so the sum is two small real matrix products
    instead of a 3-D filter.
    """
    omega = rng.normal(scale=1 / max(length, 1e-6), size=(n_modes, 3))
    phase = rng.uniform(0, 2 * math.pi, size=n_modes)
    x, y, z = crop.coords
    ex = np.exp(1j * (omega[:, :1] * x[None, :] + phase[:, None]))
    ey = np.exp(1j * (omega[:, 1:2] * y[None, :]))
    ez = np.exp(1j * (omega[:, 2:3] * z[None, :]))
    xy = (ex[:, :, None] * ey[:, None, :]).reshape(n_modes, -1)
    real = xy.real.astype(np.float32).T @ ez.real.astype(np.float32)
    real -= xy.imag.astype(np.float32).T @ ez.imag.astype(np.float32)
    real *= np.float32(math.sqrt(2 / n_modes))
    return real.reshape(crop.shape)


def _lesion(
    rng: np.random.Generator,
    youth: float,
    w: _World,
    scale: float,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> tuple[_Crop, BoolArray]:
    """Draw one expert lesion; returns its crop and mask (the crop leaves room for errors)."""
    mu, sd = _log_volume(youth, w)
    radius = _radius_mm(math.exp(rng.normal(mu, sd))) * scale

    # Lobulation: a smooth random function on the sphere, low angular frequency, unit SD.
    n_lobe = 8
    k = rng.normal(size=(n_lobe, 3))
    k *= (w.lobulation_order * rng.uniform(0.7, 1.3, size=n_lobe) / np.linalg.norm(k, axis=1))[
        :, None
    ]
    lobe_phase = rng.uniform(0, 2 * math.pi, size=n_lobe)
    lobe_weight = rng.normal(size=n_lobe)
    amp = (w.lobulation + w.young_lobulation * youth) * math.exp(rng.normal(0, 0.3))

    def lobes(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(np.cos(u @ k.T + lobe_phase) @ lobe_weight)

    ref = lobes(_DIRS)
    lobe_mean, lobe_sd = float(ref.mean()), float(ref.std()) or 1.0

    # Spicules: narrow bumps of the radius that taper to a point along random directions.
    n_spic = int(rng.poisson(w.spicules + w.young_spicules * youth))
    spic_dir = rng.normal(size=(n_spic, 3))
    spic_dir /= np.linalg.norm(spic_dir, axis=1, keepdims=True)
    spic_len = w.spicule_length * rng.uniform(0.5, 1.5, size=n_spic)
    spic_width = rng.uniform(0.004, 0.012, size=n_spic)  # in 1 − cos(angle)

    def radial(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        r = 1 + amp * (lobes(u) - lobe_mean) / lobe_sd
        if n_spic:
            r = r + np.exp(-(1 - u @ spic_dir.T) / spic_width) @ spic_len
        return np.maximum(r, 0.25)

    # Elongation: a random rotation and axis lengths with product 1 (volume kept).
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    axes = np.exp(rng.normal(0, w.elongation, size=3))
    axes /= np.prod(axes) ** (1 / 3)

    # Satellites: small nodules just outside the main body.
    n_sat = int(rng.poisson(w.satellites + w.young_satellites * youth))
    sat_dir = rng.normal(size=(n_sat, 3))
    sat_dir /= np.linalg.norm(sat_dir, axis=1, keepdims=True)
    sat_r = rng.uniform(0.12, 0.3, size=n_sat)
    sat_gap = rng.uniform(0.1, 0.5, size=n_sat)
    sat_dist = radial(sat_dir) * axes.max() + sat_r + sat_gap if n_sat else np.zeros(0)

    # Bounds of the radius over directions: sampled, plus the exact spicule tips, plus slack for
    # lobe maxima between samples. Voxels outside the bounds need no evaluation.
    on_dirs = radial(_DIRS)
    # Lobes and spicules add volume (E[r³] > 1); rescale so the body has the volume drawn above
    # and youth changes volume only through the volume effects.
    radius /= float(np.mean(on_dirs**3)) ** (1 / 3)
    lobe_hi = 1 + amp * (float(ref.max()) - lobe_mean) / lobe_sd + 0.1 * amp
    r_hi = max(float(on_dirs.max()), float(radial(spic_dir).max()) if n_spic else 0.0)
    r_hi = max(r_hi + 0.1 * amp, lobe_hi)
    r_lo = max(float(on_dirs.min()) - 0.1 * amp, 0.0) * axes.min()
    outer = r_hi * axes.max()
    if n_sat:
        outer = max(outer, float((sat_dist + sat_r).max()))

    # Keep the lesion's body inside the volume (shrink this one lesion if it does not fit);
    # spicule tips and satellites beyond the edge of the volume are cut, as a scan's would be.
    fov = np.array(shape) * np.array(spacing)
    body_reach = lobe_hi * float(axes.max())
    radius = min(radius, 0.95 * float(fov.min()) / 2 / body_reach)
    reach = outer * radius
    centre = rng.uniform(body_reach * radius, fov - body_reach * radius)
    box = []
    for ax in range(3):
        a = max(math.floor((centre[ax] - reach) / spacing[ax]), 0)
        b = min(math.ceil((centre[ax] + reach) / spacing[ax]) + 1, shape[ax])
        box.append(np.arange(a, b))
    # voxel centres sit at (index + 0.5) * spacing in this frame
    coords = [(idx + 0.5) * spacing[ax] - centre[ax] for ax, idx in enumerate(box)]
    # Voxel positions in the lesion's own frame (rotated, axes divided out, in radii), where the
    # body is star-shaped; built by broadcasting the three 1-D coordinate vectors.
    frame = (rot / axes[None, :] / radius).astype(np.float32)
    cx, cy, cz = (c.astype(np.float32) for c in coords)
    body = [
        cx[:, None, None] * frame[0, j]
        + cy[None, :, None] * frame[1, j]
        + cz[None, None, :] * frame[2, j]
        for j in range(3)
    ]
    rho = np.sqrt(body[0] ** 2 + body[1] ** 2 + body[2] ** 2).ravel()
    inside = rho <= r_lo
    # Only the shell between the bounds needs the radius, and beyond the lobes' reach only the
    # directions a spicule points to: evaluate the cheap spicule term first, the lobes last.
    shell = np.flatnonzero(~inside & (rho <= r_hi))
    u = np.stack([b.ravel()[shell] for b in body], axis=1) / np.maximum(rho[shell], 1e-9)[:, None]
    spike = (
        np.exp(-(1 - u @ spic_dir.T) / spic_width) @ spic_len if n_spic else np.zeros(len(shell))
    )
    near = rho[shell] <= lobe_hi + spike
    idx = shell[near]
    r = 1 + amp * (lobes(u[near]) - lobe_mean) / lobe_sd + spike[near]
    inside[idx] = rho[idx] <= np.maximum(r, 0.25)
    mask = inside.reshape(len(box[0]), len(box[1]), len(box[2]))
    if not mask.any():
        # A lesion smaller than a voxel still marks the voxel it sits in.
        mask[tuple(int(np.argmin(np.abs(c))) for c in coords)] = True

    # Tight crop: the mask's bounding box plus room for a model to over-segment. Blurs use zero
    # padding, which is exact here because the mask is zero outside the crop.
    slices = []
    crop_coords = []
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        pad = math.ceil(0.45 * radius / spacing[ax]) + 1
        a = max(int(box[ax][hit[0]]) - pad, 0)
        b = min(int(box[ax][hit[-1]]) + pad + 1, shape[ax])
        slices.append(slice(a, b))
        crop_coords.append((np.arange(a, b) + 0.5) * spacing[ax] - centre[ax])
    # Copy the evaluated mask into the crop where the two boxes (both in volume indices) overlap.
    out = np.zeros([s.stop - s.start for s in slices], dtype=bool)
    into, take = [], []
    for ax, s in enumerate(slices):
        first = int(box[ax][0])
        lo, hi = max(s.start, first), min(s.stop, first + mask.shape[ax])
        into.append(slice(lo - s.start, hi - s.start))
        take.append(slice(lo - first, hi - first))
    out[tuple(into)] = mask[tuple(take)]
    crop = _Crop(
        (slices[0], slices[1], slices[2]),
        (crop_coords[0], crop_coords[1], crop_coords[2]),
        spacing,
    )
    return crop, out


# --------------------------------------------------------------------------------------------
# What a labeller and a model see: the expert mask, nothing else
# --------------------------------------------------------------------------------------------

_DETAIL_SCALE: Final = 0.3  # smoothing scale (× radius) below which shape counts as detail
_DETAIL_REF: Final = 0.10  # detail of a typical, gently lobulated lesion
_TRUNCATE: Final = 3.5  # Gaussian kernels stop at 3.5 sigma: beyond, a blurred mask is 0 or 1
_REACH: Final = 4.5  # distances recovered from a blur are trusted up to 4.5 sigma
_MAX_SHIFT: Final = 1.2  # largest boundary displacement, × radius (within the far field's reach)


@dataclass(frozen=True)
class _Shape:
    """What the labeller and the models know of a case: its expert mask, summarised."""

    volume_mm3: float
    radius: float  # equivalent-sphere radius, mm
    detail: float  # share of the volume in features finer than _DETAIL_SCALE × radius
    far: FloatArray  # the mask blurred at far_sigma (distances far from the edge)
    far_sigma: float


def _sigma(relative: float, radius: float, spacing: Sequence[float]) -> float:
    # A blur finer than about half a voxel leaves a mask binary and its edge profile unreadable,
    # so no scale goes below that; at coarse resolutions fine detail is lost, as in real images.
    return max(relative * radius, 0.6 * max(spacing))


def _blur(mask: BoolArray, sigma_mm: float, spacing: Sequence[float]) -> FloatArray:
    sigma = [sigma_mm / s for s in spacing]
    return np.asarray(
        ndimage.gaussian_filter(mask.astype(np.float32), sigma, mode="constant", truncate=_TRUNCATE)
    )


def _describe(mask: BoolArray, spacing: Sequence[float]) -> _Shape:
    n = int(mask.sum())
    volume = n * float(np.prod(spacing))
    radius = _radius_mm(volume / 1000)
    far_sigma = _sigma(_DETAIL_SCALE, radius, spacing)
    far = _blur(mask, far_sigma, spacing)
    flat = far.ravel()
    # Threshold the blurred mask at the level that keeps its volume, so a smooth blob has no
    # detail whatever its size, and lobes and spicules show up as the symmetric difference.
    level = np.partition(flat, flat.size - n)[flat.size - n]
    detail = int(np.count_nonzero((flat >= level) != mask.ravel())) / n
    return _Shape(volume, radius, detail, far, far_sigma)


def _atypicality(shape: _Shape, w: _World, typical_volume_mm3: float) -> float:
    """How far a lesion is from what models see most: fine detail and unusual size."""
    detail = max(shape.detail - _DETAIL_REF, 0.0) / _DETAIL_REF
    size = abs(math.log(shape.volume_mm3 / typical_volume_mm3))
    return detail + w.size_atypicality * size


def _logit(b: FloatArray | float) -> Any:
    b = np.clip(b, np.float32(1e-6), np.float32(1 - 1e-6))
    return np.log((1 - b) / b)


def _distance(blurred: FloatArray, sigma_mm: float, level: float = 0.5) -> FloatArray:
    # Near a flat edge a Gaussian-blurred mask is Φ(−d/σ), so inverting the profile recovers the
    # signed distance d (mm, < 0 inside) to the ``level`` set without an exact distance
    # transform. Φ is replaced by the logistic 1/(1 + exp(−1.702 x)) (error < 0.01), whose
    # inverse is one logarithm.
    d = (_logit(blurred) - np.float32(_logit(level))) * np.float32(sigma_mm / 1.702)
    return np.asarray(d, dtype=np.float32)


def _level_set(
    blurred: FloatArray, sigma_mm: float, shape: _Shape, level: float = 0.5
) -> FloatArray:
    """Signed distance (mm, < 0 inside) to the ``level`` set of ``blurred``, over the whole crop.

    Within ``_TRUNCATE`` sigma of that level the blur itself gives the distance; farther out it
    saturates, so the distance comes from the coarser blur in ``shape.far``, which reaches about
    ``_MAX_SHIFT`` radii.
    """
    near = _distance(blurred, sigma_mm, level)
    # Beyond this the blur has (nearly) saturated at 0 or 1 and the near distance means nothing.
    reach = np.float32(_REACH * sigma_mm)
    out_of_reach = np.abs(near) >= reach
    far = _distance(shape.far[out_of_reach], shape.far_sigma)
    near[out_of_reach] = np.sign(near[out_of_reach]) * np.maximum(np.abs(far), reach)
    return near


def _drop_small(mask: BoolArray, min_fraction: float) -> BoolArray:
    if min_fraction <= 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= min_fraction * sizes.sum()
    keep[1 + int(np.argmax(sizes))] = True
    return np.asarray(keep[labels])


def _systematic_label(
    truth: BoolArray, shape: _Shape, w: _World, spacing: Sequence[float], inherit: float = 1.0
) -> FloatArray:
    """The labeller's deterministic errors as a level set: blur, threshold, missed components,
    boundary bias (the level set is shifted so that its zero level is the biased boundary).

    The blurred mask is cut at the level that keeps the lesion's volume: a smooth blob comes out
    as it went in, while lobes are rounded off, clefts filled, spicules and satellites lost; the
    error is the lesion's irregularity, not its size.
    """
    sigma = _sigma(inherit * w.label_smoothing, shape.radius, spacing)
    smooth = _blur(truth, sigma, spacing)
    flat = smooth.ravel()
    n = int(truth.sum())
    level = min(max(float(np.partition(flat, flat.size - n)[flat.size - n]), 1e-3), 1 - 1e-3)
    labelled = smooth >= level
    kept = _drop_small(labelled, w.label_min_component)
    phi = _level_set(smooth, sigma, shape, level) - np.float32(w.label_bias * shape.radius)
    # Dropped components stay dropped whatever the noise does to the level set.
    phi[labelled & ~kept] = np.float32(np.inf)
    return phi


def _shift(
    phi: FloatArray,
    shape: _Shape,
    crop: _Crop,
    rng: np.random.Generator,
    bias: float,
    sd: float,
    w: _World,
) -> BoolArray:
    """Move the zero level of ``phi`` out by ``bias`` plus smooth noise of SD ``sd`` (× radius)."""
    noise = _smooth_field(rng, crop, w.noise_length * shape.radius)
    limit = _MAX_SHIFT * shape.radius
    shift = np.clip(shape.radius * (bias + sd * noise), -limit, limit)
    return np.asarray(phi <= shift)


def _automated_label(
    truth: BoolArray,
    shape: _Shape,
    crop: _Crop,
    w: _World,
    rng: np.random.Generator,
    systematic: FloatArray,
) -> BoolArray:
    """An automated pipeline's label: smoothed, satellites missed, biased, with its own noise."""
    label = _shift(systematic, shape, crop, rng, 0.0, w.label_noise, w)
    # A pipeline that returns nothing for a visible lesion is caught at spot-check: keep its
    # systematic output then (or, for a lesion too small to survive it, the expert mask).
    for candidate in (label, np.asarray(systematic <= 0)):
        if candidate.any():
            return candidate
    return truth.copy()


def _fail(
    pred: BoolArray, phi: FloatArray, shape: _Shape, crop: _Crop, rng: np.random.Generator
) -> BoolArray:
    """A failure: the lesion missed entirely, partly missed, or leaking into its surroundings."""
    kind = rng.random()
    if kind < 0.2:
        return np.zeros_like(pred)
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    x, y, z = crop.coords
    side = (
        normal[0] * x[:, None, None] + normal[1] * y[None, :, None] + normal[2] * z[None, None, :]
    )
    if kind < 0.65:
        # part of the lesion on one side of a plane is missed
        return np.asarray(pred & (side > rng.uniform(-0.6, 0.4) * shape.radius))
    # enhancing tissue next to the lesion is taken for tumour on one side
    leak = phi <= rng.uniform(0.15, 0.4) * shape.radius
    return np.asarray(pred | (leak & (side > rng.uniform(-0.2, 0.5) * shape.radius)))


def _model(
    phi: FloatArray,
    shape: _Shape,
    crop: _Crop,
    w: _World,
    rng: np.random.Generator,
    gain: float,
    atypicality: float,
    scale: float = 1.0,
) -> BoolArray:
    """A model's prediction: the level set ``phi`` moved by a bias and smooth boundary noise, and
    now and then a failure; both the noise and the failure rate grow by ``1 + gain·atypicality``.
    """
    growth = scale * (1 + gain * atypicality)
    sd = w.model_noise * growth * math.exp(rng.normal(0, w.model_noise_case_sd))
    bias = rng.normal(0, w.model_bias_sd)
    pred = _shift(phi, shape, crop, rng, bias, sd, w)
    p_fail = w.model_failure_rate * growth
    if rng.random() < p_fail:
        pred = _fail(pred, phi, shape, crop, rng)
    return pred


@dataclass(frozen=True)
class _CaseMasks:
    crop: _Crop
    expert: BoolArray
    automated: BoolArray
    trained_on_expert: BoolArray
    trained_on_automated: BoolArray


def _simulate(
    seed: int,
    index: int,
    age: float,
    w: _World,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> _CaseMasks:
    scale = _world_scale(shape, spacing, w)
    crop, truth = _lesion(_stream(seed, index, _S_LESION), _youth(age, w), w, scale, shape, spacing)
    # From here on only the expert mask is used: no age, no youth, no generator parameters.
    desc = _describe(truth, spacing)
    atyp = _atypicality(desc, w, typical_volume_mm3=w.volume_ml * 1000 * scale**3)
    systematic = _systematic_label(truth, desc, w, spacing)
    label = _automated_label(truth, desc, crop, w, _stream(seed, index, _S_LABEL), systematic)

    sigma = _sigma(w.model_resolution, desc.radius, spacing)
    phi_truth = _level_set(_blur(truth, sigma, spacing), sigma, desc)
    rng = _stream(seed, index, _S_EXPERT_MODEL)
    te = _model(phi_truth, desc, crop, w, rng, w.model_atypical_gain, atyp)
    if w.automated_inherit != 1.0:
        systematic = _systematic_label(truth, desc, w, spacing, inherit=w.automated_inherit)
    rng = _stream(seed, index, _S_AUTO_MODEL)
    ta = _model(systematic, desc, crop, w, rng, w.automated_atypical_gain, atyp, w.automated_noise)
    return _CaseMasks(crop, truth, label, te, ta)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _affine(shape: Sequence[int], spacing: Sequence[float]) -> npt.NDArray[np.float64]:
    # Scanners store LPS; NIfTI is RAS: the first two axes are flipped, as real exports are.
    # The origin puts the volume's centre at the scanner's isocentre.
    diag = np.array([-spacing[0], -spacing[1], spacing[2]])
    affine = np.diag([*diag, 1.0])
    affine[:3, 3] = -diag * (np.array(shape) - 1) / 2
    return affine


@dataclass(frozen=True)
class _Task:
    seed: int
    index: int
    patient_id: str
    age: float
    world: _World
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    out_dir: str


def _run_task(task: _Task) -> None:
    masks = _simulate(task.seed, task.index, task.age, task.world, task.shape, task.spacing)
    affine = _affine(task.shape, task.spacing)
    # NIfTI stores voxels in Fortran order; an F-ordered array is written without a transposing
    # copy (3× faster at 512×512×160).
    full = np.zeros(task.shape, dtype=np.uint8, order="F")
    for role, folder in LAYOUT.items():
        full[masks.crop.slices] = getattr(masks, role)
        # segfair's own writer: uint8, qform = sform (code 1), mm units, atomic rename; nibabel's
        # gzip stream has no timestamp, so equal arrays give equal bytes.
        save_mask(Path(task.out_dir) / folder / f"{task.patient_id}.nii.gz", full, affine)


def _rows(patients: Sequence[_Patient]) -> list[list[Any]]:
    return [
        [p.patient_id, p.dataset, p.age, p.ethnicity, p.menopause, p.manufacturer, p.field_strength]
        for p in patients
    ]


_FIXED_TIME: Final = _dt.datetime(2000, 1, 1)


def _write_xlsx(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has one sheet
    ws.title = SHEET
    ws.append(list(COLUMNS))
    for row in rows:
        ws.append(list(row))
    # Fixed document and zip-entry timestamps: the same cohort gives the same bytes, so content
    # hashes (segfair's cache) do not change between runs.
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                # openpyxl stamps "modified" with the time of saving, whatever we set
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>2000-01-01T00:00:00Z\g<2>",
                    data,
                )
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)


def _write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def _config_text(seed: int) -> str:
    return f"""\
# A synthetic cohort written by segfair.synth.make_cohort; see segfair_synth.json for its recipe.
cases = "{TABLE_XLSX}"
sheet = "{SHEET}"
case_id = "patient_id"
trusted_ruler = "expert"
seed = {seed}

[rulers]
expert = "{LAYOUT["expert"]}/{{case_id}}.nii.gz"
automated = "{LAYOUT["automated"]}/{{case_id}}.nii.gz"

[models]
trained_on_expert = "{LAYOUT["trained_on_expert"]}/{{case_id}}.nii.gz"
trained_on_automated = "{LAYOUT["trained_on_automated"]}/{{case_id}}.nii.gz"

[attributes.age_group]
column = "age"
bins = [40, 55]
labels = ["young", "middle", "older"]

[attributes.ethnicity]
column = "ethnicity"

[attributes.site]
column = "dataset"

[[gates]]
kind = "gap"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
ruler = "expert"
max = 0.05

[[gates]]
kind = "ruler_shrinkage"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
automated = "automated"
max = 0.25

[[gates]]
kind = "amplification"
metric = "dice"
by = "age_group"
model = "trained_on_automated"
baseline = "trained_on_expert"
max = 0.25
"""


def _prepare(out_dir: Path, overwrite: bool) -> list[str]:
    """Make ``out_dir`` ready; returns the case ids of an earlier synth output found there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(ERR_NOT_DIR.format(path=out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST
    if manifest.is_file():
        try:
            ids = json.loads(manifest.read_text(encoding="utf-8")).get("case_ids", [])
        except (ValueError, OSError):
            ids = []
        return [str(i) for i in ids]
    if not overwrite and any(out_dir.iterdir()):
        raise FileExistsError(ERR_NOT_EMPTY.format(path=out_dir))
    return []


def _check_int(value: Any, low: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(message.format(value=value))
    return int(value)


def _check_geometry(
    shape: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    try:
        dims = tuple(shape)
        ok = len(dims) == 3 and all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in dims
        )
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(ERR_SHAPE.format(value=shape))
    try:
        sp = tuple(float(s) for s in spacing)
        ok = len(sp) == 3 and all(math.isfinite(s) and s > 0 for s in sp)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(ERR_SPACING.format(value=spacing))
    return (int(dims[0]), int(dims[1]), int(dims[2])), (sp[0], sp[1], sp[2])


def _chunks(tasks: Sequence[_Task], workers: int) -> Iterator[list[_Task]]:
    size = max(1, min(16, len(tasks) // (4 * workers) or 1))
    for i in range(0, len(tasks), size):
        yield list(tasks[i : i + size])


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    # The matrix products here are small: BLAS threads only add overhead, and with one process
    # per core they oversubscribe it (measured: 2 workers were slower than 1). threadpoolctl is
    # optional; without it generation is merely slower.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return contextlib.nullcontext()
    return cast(contextlib.AbstractContextManager[Any], threadpool_limits(1, user_api="blas"))


def _run_chunk(tasks: list[_Task]) -> int:
    with _single_threaded_blas():
        for task in tasks:
            _run_task(task)
    return len(tasks)


def make_cohort(
    out_dir: str | os.PathLike[str],
    *,
    n_cases: int = 200,
    shape: Sequence[int] = (96, 96, 48),
    spacing: Sequence[float] = (0.7, 0.7, 1.5),
    preset: str = "hidden",
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    **effects: float,
) -> Path:
    """Write a synthetic breast DCE-MRI cohort with known, mechanistic age disparities.

    Parameters
    ----------
    out_dir
        Directory to write into; created if missing. It must be empty or hold an earlier
        ``make_cohort`` output (recognised by its ``segfair_synth.json``), unless ``overwrite``.
    n_cases
        Number of patients (≥ 1). Case ``i`` is the same whatever ``n_cases`` is.
    shape
        Volume shape in voxels, e.g. ``(16, 16, 16)`` for tests up to ``(512, 512, 160)``.
    spacing
        Voxel size in mm along the three array axes; the affine flips the first two (LPS → RAS).
    preset
        ``"null"``, ``"hidden"`` or ``"parikh"``: a complete set of effect values from
        :data:`PRESETS`, whose docstrings state the ranges they promise.
    seed
        Seed (≥ 0) of every random draw; the same seed gives byte-identical files.
    workers
        Processes generating cases (``1`` = in this process); the output does not depend on it.
    overwrite
        Write into a non-empty directory that is not an earlier synth output. Only the cohort's
        own files are replaced; nothing else is deleted.
    **effects
        Effect values overriding the preset's; names and meanings in :data:`EFFECTS`.

    Returns
    -------
    Path
        The ``segfair.toml`` describing the cohort (rulers, models, attributes and three gates).

    Raises
    ------
    ValueError
        An argument or effect is invalid; the message lists the valid values.
    FileExistsError
        ``out_dir`` holds unrelated files and ``overwrite`` is false.

    Notes
    -----
    Files, in the MAMA-MIA layout: ``segmentations/expert/{id}.nii.gz`` (the truth),
    ``segmentations/automatic/{id}.nii.gz``, ``predictions/trained_on_expert/{id}.nii.gz``,
    ``predictions/trained_on_automated/{id}.nii.gz`` (uint8, label 1),
    ``clinical_and_imaging_info.xlsx`` (sheet ``dataset_info``) and ``.csv`` with columns
    ``patient_id, dataset, age, ethnicity, menopause, manufacturer, field_strength``, the
    ``segfair.toml`` and ``segfair_synth.json`` (the recipe: every effect value, seed, shape).

    Examples
    --------
    >>> import tempfile
    >>> from segfair.synth import make_cohort
    >>> config = make_cohort(tempfile.mkdtemp(), n_cases=4, shape=(24, 24, 12), preset="null")
    >>> config.name
    'segfair.toml'
    >>> sorted(p.name for p in (config.parent / "segmentations").iterdir())
    ['automatic', 'expert']
    """
    n = _check_int(n_cases, 1, ERR_N_CASES)
    seed_ = _check_int(seed, 0, ERR_SEED)
    n_workers = _check_int(workers, 1, ERR_WORKERS)
    dims, sp = _check_geometry(shape, spacing)
    world = _resolve_world(preset, effects)
    root = Path(out_dir)
    earlier = _prepare(root, overwrite)

    patients = _patients(seed_, n)
    ids = {p.patient_id for p in patients}
    for folder in LAYOUT.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        # Masks of an earlier synth cohort that this one does not have would look like orphans.
        for stale in earlier:
            if stale not in ids:
                (root / folder / f"{stale}.nii.gz").unlink(missing_ok=True)
    # Until the cohort is complete the manifest says so, and lists every case whose files may
    # exist, so that a run after an interrupted one still recognises and cleans the directory.
    pending = {"generator": _GENERATOR, "complete": False, "case_ids": sorted(ids | set(earlier))}
    (root / MANIFEST).write_text(json.dumps(pending, indent=1) + "\n", encoding="utf-8")

    tasks = [
        _Task(seed_, p.index, p.patient_id, p.age, world, dims, sp, str(root)) for p in patients
    ]
    if n_workers == 1 or n == 1:
        _run_chunk(tasks)
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for _ in pool.map(_run_chunk, _chunks(tasks, n_workers)):
                pass

    rows = _rows(patients)
    _write_xlsx(root / TABLE_XLSX, rows)
    _write_csv(root / TABLE_CSV, rows)
    config = root / CONFIG
    config.write_text(_config_text(seed_), encoding="utf-8")
    recipe = {
        "generator": _GENERATOR,
        "complete": True,
        "preset": preset,
        "seed": seed_,
        "n_cases": n,
        "shape": list(dims),
        "spacing": list(sp),
        "effects": asdict(world),
        "case_ids": [p.patient_id for p in patients],
    }
    # Written last: only a finished cohort has a complete recipe.
    (root / MANIFEST).write_text(json.dumps(recipe, indent=1) + "\n", encoding="utf-8")
    return config
