"""Lesion-wise scores: connected components, matching of predicted to reference lesions, and the
per-case lesion-wise Dice, HD95, detection sensitivity, false positives, F1 and small-lesion
detection counts (docs/metrics.md, "Lesion-wise scores").

Two matching rules, each that of a peer:

- ``"brats"`` — the BraTS 2023 lesion-wise evaluation (github.com/rachitsaluja/BraTS-2023-Metrics,
  ``metrics.py`` at commit 43c9052): reference components whose dilations touch are one lesion;
  every predicted component that meets a reference lesion's dilation is matched to it (a
  predicted component may be matched to several lesions); reference lesions of volume
  ``<= min_volume`` mm³ are left out of every score; a missed lesion scores Dice 0 and the HD95
  penalty; each predicted component matched to no lesion (of any size) is a false positive and
  adds one entry scoring Dice 0 and the penalty.
- ``"iou"`` — panoptica's ``NaiveThresholdMatching`` (panoptica 2.1.7): components of both masks,
  one-to-one, pairs taken greedily in decreasing IoU and matched when ``IoU >= iou_threshold``.

Pure numpy/scipy; every mask is labelled once per case (:class:`_Components`) and shared by every
pair it takes part in.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from segfair.errors import InputError
from segfair.metrics.arrays import BoolArray, Spacing, as_array
from segfair.metrics.settings import (
    LESION_METRICS,
    LesionMetricName,
    MetricSettings,
)
from segfair.metrics.surface import _border, _distance_value

__all__ = [
    "CONNECTIVITIES",
    "LESION_EMPTY_POLICY",
    "MATCH_RULES",
    "LesionSettings",
    "MatchRule",
    "label_lesions",
    "lesion_scores",
]

MatchRule: TypeAlias = Literal["brats", "iou"]
#: The matching rules, in the order documented.
MATCH_RULES: Final[tuple[MatchRule, ...]] = ("brats", "iou")
#: Valid connectivities per number of axes; the last is the default (full connectivity, as
#: BraTS 2023 and panoptica's 3-D default, cc3d's 26).
CONNECTIVITIES: Final[dict[int, tuple[int, ...]]] = {2: (4, 8), 3: (6, 18, 26)}

#: Error texts (module-level constants that list the valid values).
BAD_RULE: Final = "unknown lesion matching rule {value!r}; valid rules are: {valid}."
BAD_CONNECTIVITY: Final = (
    "connectivity {value!r} is not valid for {ndim}-D masks; valid values are: {valid} "
    "(or None for the full connectivity, {full})."
)
BAD_NUMBER: Final = "{field} must be {what}; got {value!r}."

LESION_EMPTY_POLICY: Final = (
    "no reference lesion (above min_volume) and no false-positive lesion: lesion_dice = 1, "
    "lesion_hd95 = 0 (BraTS 2023), lesion_sensitivity = 1, lesion_f1 = 1 (segfair's both-empty "
    "rule; panoptica returns NaN for its F1, rq), lesion_fp = 0. No reference lesion but false "
    "positives: lesion_dice = 0, lesion_hd95 = penalty (BraTS 2023), lesion_sensitivity = nan "
    "(undefined, as segfair's sensitivity of an empty reference), lesion_f1 = 0. Reference "
    "lesions, none found: lesion_dice = 0, lesion_hd95 = penalty, lesion_sensitivity = 0, "
    "lesion_f1 = 0"
)


@dataclass(frozen=True, slots=True)
class LesionSettings:
    """How lesions are found, matched and scored; recorded with results. Defaults: BraTS 2023
    (BraTS-GLI: dilation 3, lesion volume threshold 50, HD95 penalty 374).

    Parameters
    ----------
    connectivity
        Neighbourhood of a connected component: 6, 18 or 26 in 3-D, 4 or 8 in 2-D; ``None``
        (default) is the full one (26 / 8).
    match
        ``"brats"`` (default) or ``"iou"`` (see the module docstring).
    iou_threshold
        The ``"iou"`` rule matches a pair when IoU >= this (panoptica's default comparison);
        in (0, 1].
    dilation
        ``"brats"``: iterations of the dilation of reference lesions (18-neighbourhood in 3-D,
        8 in 2-D); 0 matches by overlap and merges no lesions.
    min_volume
        Reference lesions of volume <= this (mm³) are left out (BraTS ``lesion_volume_thresh``);
        0 keeps all.
    small_volume
        Reference lesions of volume <= this (mm³) count as small (``small_lesions``); the default
        500 mm³ is a sphere of 9.8 mm diameter, about the 10 mm below which RANO-BM calls a
        metastasis non-measurable.
    hd95_penalty
        HD95 in mm of a missed or false-positive lesion (BraTS 2023: 374); finite, > 0.

    Examples
    --------
    >>> LesionSettings(match="iou").describe()["match"]
    'iou'
    """

    connectivity: int | None = None
    match: MatchRule = "brats"
    iou_threshold: float = 0.5
    dilation: int = 3
    min_volume: float = 50.0
    small_volume: float = 500.0
    hd95_penalty: float = 374.0

    def __post_init__(self) -> None:
        if self.match not in MATCH_RULES:
            raise ValueError(BAD_RULE.format(value=self.match, valid=", ".join(MATCH_RULES)))
        valid = sorted({c for cs in CONNECTIVITIES.values() for c in cs})
        if self.connectivity is not None and (
            isinstance(self.connectivity, bool) or self.connectivity not in valid
        ):
            raise ValueError(
                f"connectivity must be one of {', '.join(map(str, valid))} or None (full); got "
                f"{self.connectivity!r}."
            )
        _number(self.iou_threshold, "iou_threshold", "a number in (0, 1]", 0, 1, low_open=True)
        if (
            isinstance(self.dilation, bool)
            or not isinstance(self.dilation, numbers.Integral)
            or self.dilation < 0
        ):
            raise ValueError(
                BAD_NUMBER.format(
                    field="dilation", what="a whole number of iterations >= 0", value=self.dilation
                )
            )
        _number(self.min_volume, "min_volume", "a volume in mm³ >= 0", 0, math.inf)
        _number(self.small_volume, "small_volume", "a volume in mm³ >= 0", 0, math.inf)
        _number(self.hd95_penalty, "hd95_penalty", "a distance in mm > 0", 0, math.inf, True)

    def describe(self) -> dict[str, str | float | int | None]:
        """A JSON-able record of the lesion definitions in force.

        Examples
        --------
        >>> LesionSettings().describe()["hd95_penalty_mm"]
        374.0
        """
        rule = {
            "brats": (
                f"BraTS 2023: reference components merged when their dilations "
                f"({self.dilation} iterations) touch; a predicted component matches every "
                "reference lesion whose dilation it meets"
            ),
            "iou": (
                f"panoptica NaiveThresholdMatching: one-to-one, greedy by decreasing IoU, "
                f"IoU >= {self.iou_threshold:g}"
            ),
        }[self.match]
        return {
            "connectivity": self.connectivity,
            "connectivity_default": "full: 26 in 3-D, 8 in 2-D",
            "match": self.match,
            "matching": rule,
            "iou_threshold": float(self.iou_threshold),
            "dilation": int(self.dilation),
            "min_volume_mm3": float(self.min_volume),
            "small_volume_mm3": float(self.small_volume),
            "hd95_penalty_mm": float(self.hd95_penalty),
            "lesion_dice": "mean over reference lesions and false-positive lesions (0 each)",
            "lesion_hd95": "mean over reference lesions and false-positive lesions (penalty each)",
            "empty": LESION_EMPTY_POLICY,
        }


def _number(
    value: object,
    field: str,
    what: str,
    low: float,
    high: float,
    low_open: bool = False,
) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (low < v if low_open else low <= v) and v <= high and math.isfinite(v)
    if not ok:
        raise ValueError(BAD_NUMBER.format(field=field, what=what, value=value))


def _structure(ndim: int, connectivity: int | None) -> npt.NDArray[np.bool_]:
    valid = CONNECTIVITIES[ndim]
    if connectivity is None:
        connectivity = valid[-1]
    if connectivity not in valid:
        raise ValueError(
            BAD_CONNECTIVITY.format(
                value=connectivity, ndim=ndim, valid=", ".join(map(str, valid)), full=valid[-1]
            )
        )
    # rank 1, 2, 3 neighbourhoods: 6/18/26 in 3-D, 4/8 in 2-D
    return ndimage.generate_binary_structure(ndim, valid.index(connectivity) + 1)


def label_lesions(
    mask: npt.ArrayLike, *, connectivity: int | None = None
) -> tuple[npt.NDArray[np.int32], int]:
    """Label the connected components of a binary mask: ``(labels, count)``.

    Labels are numbered in C (row-major) order of each component's first voxel
    (``scipy.ndimage.label``).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 3), bool); m[0, 0] = m[1, 1] = True
    >>> label_lesions(m)[1], label_lesions(m, connectivity=4)[1]
    (1, 2)
    """
    arr = as_array("mask", mask)
    structure = _structure(arr.ndim, connectivity)
    labels, count = ndimage.label(arr != 0, structure=structure)
    return np.asarray(labels, dtype=np.int32), int(count)


#: Side of the blocks in which a crop is first looked at (8: one 64-bit word of booleans):
#: components are labelled only inside the boxes of the occupied blocks, not over the whole
#: crop (lesions fill little of it).
_BLOCK: Final = 8


def _blocks(mask: BoolArray) -> npt.NDArray[np.uint8]:
    """Which ``_BLOCK``-sided blocks of the mask hold a foreground voxel.

    Along the axis that is contiguous in memory, 8 booleans are one 64-bit word: a block's row
    is non-zero when its word is (a third of the time of reducing byte by byte); the other axes
    are reduced on that 8 times smaller array. A NIfTI crop (Fortran order) is read transposed.
    """
    flip = mask.flags.f_contiguous and not mask.flags.c_contiguous
    m = mask.T if flip else np.ascontiguousarray(mask)
    n = m.shape[-1]
    full = n - n % _BLOCK
    rows = []
    if full:
        rows.append(m[..., :full].view(np.uint64) != 0)
    if full < n:
        rows.append(m[..., full:].any(axis=-1, keepdims=True))
    coarse = (np.concatenate(rows, axis=-1) if len(rows) > 1 else rows[0]).view(np.uint8)
    for axis in range(m.ndim - 1):
        coarse = np.maximum.reduceat(coarse, np.arange(0, m.shape[axis], _BLOCK), axis=axis)
    return np.asarray(coarse.T if flip else coarse)


class _Components:
    """Connected components of one mask on the case crop: ``labels`` (0 outside), ``n``,
    ``sizes`` (voxels, index = label), ``boxes`` (slices, index = label - 1) and ``first`` (flat
    C-order index of each component's first voxel, index = label; the numbering-independent
    order ties are broken in).

    Components are labelled per group of touching occupied blocks: two voxels adjacent under any
    connectivity lie in the same or in 26-adjacent blocks, so each component lies in one group,
    and labelling the group's voxels alone finds it. The cost follows the lesions, not the crop.
    """

    def __init__(
        self,
        mask: BoolArray,
        structure: npt.NDArray[np.bool_],
        coarse: npt.NDArray[np.uint8] | None = None,
    ):
        self.labels = np.zeros(mask.shape, dtype=np.int32)
        sizes: list[int] = [0]
        self.boxes: list[tuple[slice, ...]] = []
        if mask.size:  # the crop of masks that are all empty has no voxels
            coarse = _blocks(mask) if coarse is None else coarse
            groups, _ = ndimage.label(coarse, structure=np.ones((3,) * mask.ndim, bool))
            for g, cbox in enumerate(ndimage.find_objects(groups), start=1):
                box = tuple(
                    slice(c.start * _BLOCK, min(c.stop * _BLOCK, n))
                    for c, n in zip(cbox, mask.shape, strict=True)
                )
                inside = groups[cbox] == g
                for axis in range(mask.ndim):
                    inside = np.repeat(inside, _BLOCK, axis=axis)
                sub = mask[box] & inside[tuple(slice(0, b.stop - b.start) for b in box)]
                local, count = ndimage.label(sub, structure=structure)
                if not count:
                    continue
                offset = len(sizes) - 1
                sizes.extend(np.bincount(local[sub], minlength=count + 1)[1:].tolist())
                for lbox in ndimage.find_objects(local):
                    self.boxes.append(
                        tuple(
                            slice(b.start + o.start, b.stop + o.start)
                            for b, o in zip(lbox, box, strict=True)
                        )
                    )
                view = self.labels[box]
                view[sub] = local[sub] + offset
        self.n = len(sizes) - 1
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self._first: npt.NDArray[np.int64] | None = None

    @property
    def first(self) -> npt.NDArray[np.int64]:
        """Flat C-order index of each component's first voxel (index = label): the order that
        does not depend on how labels are numbered. Lexicographic order is kept by translation,
        so the first voxel inside a component's box is its first voxel in the crop."""
        if self._first is None:
            first = [-1]
            for label, box in enumerate(self.boxes, start=1):
                local = int(np.argmax(self.labels[box] == label))
                coords = np.unravel_index(local, tuple(b.stop - b.start for b in box))
                first.append(
                    int(
                        np.ravel_multi_index(
                            tuple(c + b.start for c, b in zip(coords, box, strict=True)),
                            self.labels.shape,
                        )
                    )
                )
            self._first = np.asarray(first, dtype=np.int64)
        return self._first

    def overlaps(
        self, other: npt.NDArray[np.int32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(own label, other label, shared voxels)`` of every overlapping pair, read inside
        each component's box only."""
        own: list[int] = []
        theirs: list[int] = []
        shared: list[int] = []
        for label, box in enumerate(self.boxes, start=1):
            values = other[box][self.labels[box] == label]
            hit, counts = np.unique(values[values > 0], return_counts=True)
            own.extend([label] * hit.size)
            theirs.extend(hit.tolist())
            shared.extend(counts.tolist())
        return (
            np.asarray(own, dtype=np.int64),
            np.asarray(theirs, dtype=np.int64),
            np.asarray(shared, dtype=np.int64),
        )


class _Reference:
    """A reference mask's lesions under the ``"brats"`` rule: ``regions`` labels each lesion's
    dilated region (1..n) and ``lesions`` each reference voxel with its lesion (0 elsewhere).

    Reference components whose dilations meet or touch (under the declared connectivity) are
    one lesion: the components of the dilated mask, as BraTS's ``get_GTseg_combinedByDilation``
    finds them; each region is then that lesion's own dilation, the region BraTS matches
    against. Found per component (its dilation in its padded box) and joined pairwise, without
    labelling the dilated crop. On the crop this is exact: the crop holds every foreground voxel,
    and the dilations' overlaps and contacts outside it have nearer ones inside it (the
    neighbourhoods are boxes or cuboctahedra, unchanged when clamped into the crop).
    """

    def __init__(
        self,
        mask: BoolArray,
        structure: npt.NDArray[np.bool_],
        dilation: int,
        components: _Components,
    ):
        if dilation == 0 or not components.n:
            self.regions = self.lesions = components.labels
            self.n, self.sizes, self.boxes = components.n, components.sizes, components.boxes
            return
        grow = ndimage.generate_binary_structure(mask.ndim, min(2, mask.ndim))
        grown = [_dilate(mask.shape, components, j, grow, dilation) for j in range(components.n)]
        parent = list(range(components.n))

        def root(j: int) -> int:
            while parent[j] != j:
                parent[j] = parent[parent[j]]
                j = parent[j]
            return j

        # a sweep along the first axis: only dilations whose extents there meet can touch
        order = sorted(range(components.n), key=lambda j: grown[j][0][0].start)
        for i, j in enumerate(order):
            box_j, d_j = grown[j]
            for k in order[i + 1 :]:
                if grown[k][0][0].start > box_j[0].stop:
                    break
                if root(j) != root(k) and _touch(box_j, d_j, *grown[k], structure):
                    parent[root(k)] = root(j)
        roots = [root(j) for j in range(components.n)]
        number = {r: i for i, r in enumerate(dict.fromkeys(roots), start=1)}
        self.n = len(number)
        self.regions = np.zeros(mask.shape, dtype=np.int32)
        self.lesions = np.zeros(mask.shape, dtype=np.int32)
        sizes = np.zeros(self.n + 1, dtype=np.int64)
        members: dict[int, list[tuple[slice, ...]]] = {}
        for j, ((box, d), r) in enumerate(zip(grown, roots, strict=True)):
            lesion = number[r]
            view = self.regions[box]
            view[d] = lesion
            own = components.boxes[j]
            view = self.lesions[own]
            view[components.labels[own] == j + 1] = lesion
            sizes[lesion] += components.sizes[j + 1]
            members.setdefault(lesion, []).append(own)
        self.sizes = sizes
        self.boxes = [_union_box(members[i]) for i in range(1, self.n + 1)]


def _dilate(
    shape: tuple[int, ...],
    comps: _Components,
    j: int,
    grow: npt.NDArray[np.bool_],
    iterations: int,
) -> tuple[tuple[slice, ...], BoolArray]:
    """Component ``j + 1`` dilated ``iterations`` times, in its box padded by as much."""
    padded = tuple(
        slice(max(s.start - iterations, 0), min(s.stop + iterations, n))
        for s, n in zip(comps.boxes[j], shape, strict=True)
    )
    local = comps.labels[padded] == j + 1
    return padded, ndimage.binary_dilation(local, structure=grow, iterations=iterations)


def _touch(
    box_a: tuple[slice, ...],
    a: BoolArray,
    box_b: tuple[slice, ...],
    b: BoolArray,
    structure: npt.NDArray[np.bool_],
) -> bool:
    """Whether two dilated components overlap or are neighbours under ``structure``."""
    common = tuple(
        slice(max(p.start, q.start - 1), min(p.stop, q.stop + 1))
        for p, q in zip(box_a, box_b, strict=True)
    )
    if any(c.start >= c.stop for c in common):
        return False
    # b grown by one step, read where it can meet a
    grown_b = ndimage.binary_dilation(np.pad(b, 1), structure=structure)
    in_a = tuple(
        slice(c.start - p.start, c.stop - p.start) for c, p in zip(common, box_a, strict=True)
    )
    in_b = tuple(
        slice(c.start - q.start + 1, c.stop - q.start + 1)
        for c, q in zip(common, box_b, strict=True)
    )
    return bool(np.any(a[in_a] & grown_b[in_b]))


def _union_box(boxes: Sequence[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(
        slice(min(b[i].start for b in boxes), max(b[i].stop for b in boxes))
        for i in range(len(boxes[0]))
    )


def _hd95(
    pred: BoolArray, ref: BoolArray, spacing: tuple[float, ...], settings: MetricSettings
) -> float:
    """segfair's HD95 of two non-empty masks cropped to their union (docs/metrics.md)."""
    bp, br = _border(pred), _border(ref)
    d_pr = ndimage.distance_transform_edt(~br, sampling=spacing)[bp]
    d_rp = ndimage.distance_transform_edt(~bp, sampling=spacing)[br]
    return _distance_value("hd95", np.asarray(d_pr), np.asarray(d_rp), settings)


@dataclass(frozen=True)
class _Match:
    """The outcome of matching: per kept reference lesion, its predicted lesions; the false
    positives; each lesion's volume (mm³)."""

    kept: list[int]
    matched: dict[int, list[int]]
    volumes: npt.NDArray[np.float64]
    false_positives: int


def _match_brats(
    pred: _Components, ref: _Reference, voxel_volume: float, settings: LesionSettings
) -> _Match:
    p, k, _ = pred.overlaps(ref.regions)
    matched: dict[int, list[int]] = {}
    for pl, kl in zip(p.tolist(), k.tolist(), strict=True):
        matched.setdefault(kl, []).append(pl)
    volumes = ref.sizes.astype(np.float64) * voxel_volume
    kept = [i for i in range(1, ref.n + 1) if volumes[i] > settings.min_volume]
    return _Match(kept, matched, volumes, pred.n - len(np.unique(p)))


def _match_iou(
    pred: _Components, ref: _Components, voxel_volume: float, settings: LesionSettings
) -> _Match:
    p, r, inter = pred.overlaps(ref.labels)
    iou = inter / (pred.sizes[p] + ref.sizes[r] - inter)
    # greedy in decreasing IoU; ties in panoptica's order, by prediction then reference, each
    # component placed by its first voxel in C order (not by how labels happen to be numbered)
    order = np.lexsort((ref.first[r], pred.first[p], -iou))
    used_p: set[int] = set()
    matched: dict[int, list[int]] = {}
    for i in order.tolist():
        pl, rl = int(p[i]), int(r[i])
        if iou[i] < settings.iou_threshold:
            break
        if pl in used_p or rl in matched:
            continue
        used_p.add(pl)
        matched[rl] = [pl]
    volumes = ref.sizes.astype(np.float64) * voxel_volume
    kept = [i for i in range(1, ref.n + 1) if volumes[i] > settings.min_volume]
    # a prediction matched to a lesion below min_volume is neither a hit nor a false positive
    return _Match(kept, matched, volumes, pred.n - len(used_p))


def _scores(
    pred: _Components,
    ref_lesions: npt.NDArray[np.int32],
    ref_boxes: Sequence[tuple[slice, ...]],
    ref_sizes: npt.NDArray[np.int64],
    match: _Match,
    names: Sequence[LesionMetricName],
    spacing: tuple[float, ...],
    metric_settings: MetricSettings,
    settings: LesionSettings,
) -> dict[str, float]:
    penalty = float(settings.hd95_penalty)
    need_dice = "lesion_dice" in names
    need_hd = "lesion_hd95" in names
    dice_sum = hd_sum = 0.0
    found = small = small_found = 0
    overlap: dict[tuple[int, int], int] = {}
    if need_dice and match.matched:
        # voxels shared by each (predicted, reference) lesion pair that overlap
        pl, rl, inter = pred.overlaps(ref_lesions)
        overlap = dict(zip(zip(pl.tolist(), rl.tolist(), strict=True), inter.tolist(), strict=True))
    for lesion in match.kept:
        preds = match.matched.get(lesion, [])
        is_small = bool(match.volumes[lesion] <= settings.small_volume)
        small += is_small
        if not preds:
            hd_sum += penalty
            continue
        found += 1
        small_found += is_small
        if need_dice:
            shared = sum(overlap.get((q, lesion), 0) for q in preds)
            dice_sum += 2.0 * shared / (int(pred.sizes[preds].sum()) + int(ref_sizes[lesion]))
        if need_hd:
            box = _union_box([ref_boxes[lesion - 1], *(pred.boxes[q - 1] for q in preds)])
            p_mask = np.isin(pred.labels[box], preds)
            r_mask = ref_lesions[box] == lesion
            hd_sum += _hd95(p_mask, r_mask, spacing, metric_settings)
    n_ref, fp = len(match.kept), match.false_positives
    entries = n_ref + fp
    missed = n_ref - found
    values: dict[str, float] = {
        "lesion_dice": dice_sum / entries if entries else 1.0,
        "lesion_hd95": (hd_sum + fp * penalty) / entries if entries else 0.0,
        "lesion_sensitivity": found / n_ref if n_ref else (math.nan if fp else 1.0),
        "lesion_fp": float(fp),
        "lesion_f1": 2.0 * found / (2 * found + fp + missed) if entries else 1.0,
        "small_lesions": float(small),
        "small_lesions_detected": float(small_found),
        "lesions": float(n_ref),
        "lesions_detected": float(found),
    }
    return {name: values[name] for name in names}


class _LesionCase:
    """Components of each mask of one case (on its crop), computed once and shared by pairs."""

    def __init__(self, crops: dict[str, BoolArray], spacing: tuple[float, ...]):
        self._crops = crops
        self._spacing = spacing
        self._components: dict[tuple[str, int | None], _Components] = {}
        self._references: dict[tuple[str, int | None, int], _Reference] = {}

    def components(self, key: str, settings: LesionSettings) -> _Components:
        slot = (key, settings.connectivity)
        if slot not in self._components:
            mask = self._crops[key]
            self._components[slot] = _Components(mask, _structure(mask.ndim, settings.connectivity))
        return self._components[slot]

    def reference(self, key: str, settings: LesionSettings) -> _Reference:
        slot = (key, settings.connectivity, settings.dilation)
        if slot not in self._references:
            mask = self._crops[key]
            self._references[slot] = _Reference(
                mask,
                _structure(mask.ndim, settings.connectivity),
                settings.dilation,
                self.components(key, settings),
            )
        return self._references[slot]

    def scores(
        self,
        pred: str,
        ref: str,
        names: Sequence[LesionMetricName],
        metric_settings: MetricSettings,
        settings: LesionSettings,
    ) -> dict[str, float]:
        voxel_volume = float(np.prod(self._spacing))
        p = self.components(pred, settings)
        if settings.match == "brats":
            r = self.reference(ref, settings)
            match = _match_brats(p, r, voxel_volume, settings)
            lesions, boxes, sizes = r.lesions, r.boxes, r.sizes
        else:
            rc = self.components(ref, settings)
            match = _match_iou(p, rc, voxel_volume, settings)
            lesions, boxes, sizes = rc.labels, rc.boxes, rc.sizes
        return _scores(
            p, lesions, boxes, sizes, match, names, self._spacing, metric_settings, settings
        )


def lesion_scores(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    spacing: Spacing = None,
    *,
    settings: LesionSettings | None = None,
    metric_settings: MetricSettings | None = None,
    metrics: Sequence[str] = LESION_METRICS,
) -> dict[str, float]:
    """The lesion-wise scores of one prediction against one reference.

    Parameters
    ----------
    pred, ref
        Binary masks of the same shape (2-D or 3-D).
    spacing
        Voxel size in mm per axis; ``None`` means 1.0 per axis.
    settings
        Connectivity, matching rule and volumes (:class:`LesionSettings`, BraTS 2023 defaults).
    metric_settings
        The HD95 variant of each matched lesion's HD95 (:class:`MetricSettings`).
    metrics
        Names among :data:`LESION_METRICS` (default: all).

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((30, 30), bool); ref[2:6, 2:6] = ref[20:24, 20:24] = True
    >>> pred = np.zeros_like(ref); pred[2:6, 2:6] = True
    >>> out = lesion_scores(pred, ref, settings=LesionSettings(min_volume=0))
    >>> out["lesion_dice"], out["lesion_hd95"], out["lesion_sensitivity"], out["lesion_fp"]
    (0.5, 187.0, 0.5, 0.0)
    """
    from segfair.metrics.engine import compute_many

    return compute_many(
        {"pred": pred, "ref": ref},
        [("pred", "ref")],
        spacing,
        metrics,
        settings=metric_settings,
        lesion_settings=settings,
    )[("pred", "ref")]


def _check_ndim(ndim: int, settings: LesionSettings) -> None:
    """Raise InputError when the declared connectivity does not fit masks of ``ndim`` axes."""
    try:
        _structure(ndim, settings.connectivity)
    except ValueError as exc:
        raise InputError(
            str(exc), fix="set [lesions] connectivity to a value for these masks, or leave it unset"
        ) from None
