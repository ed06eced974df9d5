"""The worlds beside the breast one, by preset name, and writing one of their cases."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from segfair.io import atomic_write_bytes, save_mask
from segfair.synth import brain, dermoscopy, multifocal
from segfair.synth.files import LAYOUT, _affine
from segfair.synth.grid import TABLE as WORLD_TABLE
from segfair.synth.grid import _Case, _Kind

__all__ = ["ERR_EFFECTS_BREAST_ONLY", "ERR_PILLOW", "ERR_PNG_SPACING", "WORLD_NAMES", "WORLD_TABLE"]

_WORLDS: Final[Mapping[str, _Kind]] = MappingProxyType(
    {kind.name: kind for kind in (brain.KIND, multifocal.KIND, dermoscopy.KIND)}
)
#: Presets that are worlds of their own (not effect sets of the breast world).
WORLD_NAMES: Final = tuple(_WORLDS)
#: Suffixes of every world's mask files (an earlier cohort's stale cases are removed by them).
_SUFFIXES: Final = tuple(sorted({".nii.gz", *(k.suffix for k in _WORLDS.values())}))
ERR_EFFECTS_BREAST_ONLY: Final = (
    "effects ({names}) tune the breast world (presets 'null', 'hidden', 'parikh'); the "
    "{preset!r} preset takes none"
)
ERR_PILLOW: Final = (
    "the {preset!r} preset writes PNG files with Pillow, which is not installed; install it "
    "with: pip install 'segfair[images]' (or pip install pillow)"
)

ERR_PNG_SPACING: Final = (
    "the {preset!r} preset writes the pixel size into each PNG as whole pixels per metre, so "
    "1000 / spacing must be a whole number for each axis (e.g. 0.1, 0.05, 0.125); got {value!r}"
)


def _png(mask: npt.NDArray[np.uint8], spacing: Sequence[float]) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L")
    buffer = io.BytesIO()
    # The pixel size as the PNG's pHYs (whole pixels per metre along x, then y); Pillow writes no
    # timestamp, so equal arrays give equal bytes.
    per_metre = [round(1000.0 / s) for s in reversed(spacing)]
    image.save(buffer, format="PNG", dpi=tuple(p * 0.0254 for p in per_metre))
    return buffer.getvalue()


@dataclass(frozen=True)
class _WorldTask:
    preset: str
    seed: int
    case: _Case
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    out_dir: str

    def run(self) -> None:
        kind = _WORLDS[self.preset]
        masks = kind.simulate(self.seed, self.case, self.shape, self.spacing)
        for role, folder in LAYOUT.items():
            path = Path(self.out_dir) / folder / f"{self.case.patient_id}{kind.suffix}"
            if kind.suffix == ".png":
                atomic_write_bytes(path, _png(masks[role], self.spacing))
            else:
                save_mask(path, masks[role], _affine(self.shape, self.spacing))


def _world(preset: str) -> _Kind | None:
    return _WORLDS.get(preset)


def _check_png(preset: str, spacing: Sequence[float]) -> None:
    """A PNG world needs Pillow, and a pixel size that PNG's pHYs holds exactly."""
    if _WORLDS[preset].suffix != ".png":
        return
    if any(abs(1000 / s - round(1000 / s)) > 1e-6 for s in spacing):
        raise ValueError(ERR_PNG_SPACING.format(preset=preset, value=tuple(spacing)))
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise ValueError(ERR_PILLOW.format(preset=preset)) from None


def _rows(cases: Sequence[_Case]) -> list[list[Any]]:
    return [[c.patient_id, *c.values] for c in cases]
