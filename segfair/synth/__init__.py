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

Beside this world, three presets are worlds of their own, written by the same machinery
(docs/synthetic.md): ``brats`` (``brain``: nested tumour label maps whose enhancing rim is thinner
under 50), ``multifocal`` (a main lesion with satellites, smaller and more numerous under 50) and
``dermoscopy`` (2-D PNG masks, lower image contrast on darker skin); ``grid`` holds what they
share and ``worlds`` lists them.

The package: ``effects`` → ``presets``; ``patients``; ``lesions`` (step 2) → ``labels`` (step 3)
→ ``models`` (step 4, and one case end to end) → ``files`` → ``writer`` (:func:`make_cohort`).

Determinism: each case draws from its own generators seeded by ``(seed, case index, stream)``, so
a case's files do not depend on ``n_cases``, on the worker count or on other cases, and two runs
write identical bytes (NIfTI gzip streams carry no timestamp; the workbook's timestamps are fixed).
"""

from __future__ import annotations

from segfair.synth.effects import EFFECTS, ERR_EFFECT_VALUE, ERR_YOUTH_AGES, Effect
from segfair.synth.files import COLUMNS, CONFIG, LAYOUT, MANIFEST, SHEET, TABLE_CSV, TABLE_XLSX
from segfair.synth.lesions import BoolArray, FloatArray
from segfair.synth.presets import ERR_EFFECT, ERR_PRESET, PRESET_NAMES, PRESETS, Preset, Promise
from segfair.synth.worlds import (
    ERR_EFFECTS_BREAST_ONLY,
    ERR_PILLOW,
    ERR_PNG_SPACING,
    WORLD_NAMES,
    WORLD_TABLE,
)
from segfair.synth.writer import (
    ERR_N_CASES,
    ERR_NOT_DIR,
    ERR_NOT_EMPTY,
    ERR_SEED,
    ERR_SHAPE,
    ERR_SHAPE_2D,
    ERR_SPACING,
    ERR_SPACING_2D,
    ERR_WORKERS,
    make_cohort,
)

__all__ = [
    "COLUMNS",
    "CONFIG",
    "EFFECTS",
    "ERR_EFFECT",
    "ERR_EFFECTS_BREAST_ONLY",
    "ERR_EFFECT_VALUE",
    "ERR_NOT_DIR",
    "ERR_NOT_EMPTY",
    "ERR_N_CASES",
    "ERR_PILLOW",
    "ERR_PNG_SPACING",
    "ERR_PRESET",
    "ERR_SEED",
    "ERR_SHAPE",
    "ERR_SHAPE_2D",
    "ERR_SPACING",
    "ERR_SPACING_2D",
    "ERR_WORKERS",
    "ERR_YOUTH_AGES",
    "LAYOUT",
    "MANIFEST",
    "PRESETS",
    "PRESET_NAMES",
    "SHEET",
    "TABLE_CSV",
    "TABLE_XLSX",
    "WORLD_NAMES",
    "WORLD_TABLE",
    "BoolArray",
    "Effect",
    "FloatArray",
    "Preset",
    "Promise",
    "make_cohort",
]
