"""The audit: subgroup estimates with intervals, gaps, ruler distortion and more, over Scores."""

from __future__ import annotations

from segfair.audit import messages, results
from segfair.audit.core import AuditCore, ByArg, Groups, Series
from segfair.audit.example import example_scores
from segfair.audit.facade import Audit
from segfair.audit.messages import *  # noqa: F403  (AuditError, the texts: messages.__all__)
from segfair.audit.results import *  # noqa: F403  (Estimate, the results: results.__all__)

__all__ = [
    "Audit",
    "AuditCore",
    "ByArg",
    "Groups",
    "Series",
    "example_scores",
]
__all__ += messages.__all__
__all__ += results.__all__
