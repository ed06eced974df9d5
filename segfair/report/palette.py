"""The report's colours (Okabe–Ito, colour-blind safe) and marker shapes, by role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

#: Okabe–Ito palette (colour-blind safe), by role.
TRUSTED_COLOUR: Final = "#0072B2"
AUTOMATED_COLOURS: Final = ("#D55E00", "#CC79A7", "#E69F00", "#F0E442")
MODEL_COLOURS: Final = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#D55E00")
PREDICTION_COLOUR: Final = "#000000"
MARKERS: Final = ("circle", "square", "diamond", "triangle", "cross")


def _colours(trusted: str, automated: Sequence[str]) -> dict[str, tuple[str, str]]:
    out = {trusted: (TRUSTED_COLOUR, MARKERS[0])}
    for i, name in enumerate(automated):
        out[name] = (
            AUTOMATED_COLOURS[i % len(AUTOMATED_COLOURS)],
            MARKERS[1 + i % (len(MARKERS) - 1)],
        )
    return out
