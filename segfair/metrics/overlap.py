"""Overlap metrics (dice, iou, precision, sensitivity, volume_error) from voxel counts."""

from __future__ import annotations

import math

from segfair.metrics.settings import MetricName


def _overlap_value(name: MetricName, tp: int, n_pred: int, n_ref: int) -> float:
    if n_pred == 0 and n_ref == 0:
        return 0.0 if name == "volume_error" else 1.0
    if name == "dice":
        return 2.0 * tp / (n_pred + n_ref)
    if name == "iou":
        return tp / (n_pred + n_ref - tp)
    if name == "precision":
        # An empty prediction of a non-empty reference is a miss: score it 0, not "undefined".
        return tp / n_pred if n_pred else 0.0
    if name == "sensitivity":
        # Nothing to detect: undefined; the false positives are scored by dice/precision instead.
        return tp / n_ref if n_ref else math.nan
    # volume_error
    return (n_pred - n_ref) / n_ref if n_ref else math.inf
