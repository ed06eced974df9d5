"""Patients: site, age, ethnicity, menopause and scanner of each case, drawn from its own
generator (MAMA-MIA proportions)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

__all__: list[str] = []

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
