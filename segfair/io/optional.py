"""The optional packages of the formats behind extras, imported when a file of theirs is read.

A format whose extra is not installed is refused when its first header is read (cohort
validation), with the file, the format and the exact ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Final

from segfair.io.files import _Where
from segfair.io.messages import FIX_MISSING_EXTRA, MSG_MISSING_EXTRA

#: module → (the package to install, the segfair extra that installs it)
_PACKAGES: Final = {
    "SimpleITK": ("SimpleITK", "itk"),
    "pydicom": ("pydicom", "dicom"),
    "PIL": ("Pillow", "images"),
    "tifffile": ("tifffile", "images"),
}


def _optional(module: str, kind: str, where: _Where) -> ModuleType:
    """``import module``, or an :class:`~segfair.errors.InputError` naming the extra to install.

    ``kind`` names the format in the message (e.g. "MetaImage (.mha)").
    """
    found = sys.modules.get(module)
    if found is not None:
        # already imported: importlib's own path (module locks, spec checks) cost ≈10 µs a
        # call, once per header read — a second of a 100,000-file cohort's validation
        return found
    package, extra = _PACKAGES[module]
    try:
        return importlib.import_module(module)
    except ImportError:  # not installed, or blocked (sys.modules[name] = None)
        where.fail(
            MSG_MISSING_EXTRA.format(format=kind, package=package),
            FIX_MISSING_EXTRA.format(extra=extra),
        )
