"""segfair: subgroup fairness of medical image segmentation models, as a CI gate.

A *ruler* is a source of reference masks that a model's predictions are scored against: the
*trusted* ruler (expert labels) or an *automated* one (labels a model drew). A *gate* is a declared
check with a threshold, e.g. "the Dice gap across age groups on the trusted ruler is below 0.05" or
"the automated ruler does not hide more than 25% of that gap"; a failed gate fails the build.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
