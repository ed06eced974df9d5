"""Evaluating one case: read its masks once, check their grid, score every pair, describe the
references (run in worker processes, by reference)."""

from __future__ import annotations

import contextlib
import sqlite3

from segfair.cohort.config import DEFAULT_STRUCTURE
from segfair.errors import InputError, Problem
from segfair.evaluate.cache import _cache_key
from segfair.evaluate.store import Layout, ResultStore, StoreRow
from segfair.evaluate.tasks import CaseResult, CaseTask

__all__ = ["evaluate_case"]


def evaluate_case(task: CaseTask) -> CaseResult:
    """Evaluate one case: read each file once, check geometry, score every pair of every
    structure, describe the references.

    Bad input is returned as problems (not raised) so that a run reports every bad case at once.
    A task with ``cache_dir`` (a direct call) reads and writes that folder's results store;
    :func:`~segfair.evaluate.evaluate` sends its workers tasks without one (it looks results up
    and stores them itself, in the main process).
    """
    key = None
    if task.cache_dir is not None:
        try:
            key = task.cache_key or _cache_key(task)
        except InputError as exc:  # a file vanished or became unreadable since validation
            return CaseResult(
                task.case_id, problems=[Problem.from_input_error("unusable masks", exc)]
            )
        with ResultStore(task.cache_dir) as store:
            found = store.get_many([key]).get(key)
        if found is not None and found.case_id == task.case_id and found.layout.fits(task):
            return found.layout.to_result(task.case_id, found.values)
    result = _compute(task)
    if key is not None and task.cache_dir is not None and not result.problems:
        layout, values = Layout.of(result)
        # the cache is an optimisation: a full disk costs a recomputation, never the run
        with contextlib.suppress(OSError, sqlite3.Error), ResultStore(task.cache_dir) as store:
            store.put_many([StoreRow(key, task.case_id, layout, values)])
    return result


def _compute(task: CaseTask) -> CaseResult:
    from segfair import io, metrics
    from segfair.metrics import morphology
    from segfair.metrics.arrays import crop_to_union

    result = CaseResult(case_id=task.case_id)
    masks: dict[str, io.Mask | io.LabelMap] = {}
    for name, file in task.files.items():
        try:
            if task.structures is None:
                masks[name] = io.load_mask(file, case_id=task.case_id, **task.read[name])
            else:  # read once as a label map; every structure is selected from it below
                masks[name] = io.load_labels(file, case_id=task.case_id, **task.read[name])
        except InputError as exc:
            result.problems.append(Problem.from_input_error("unusable masks", exc))
    if result.problems:
        return result
    # every mask is compared on the grid of the first reference (the trusted one when present)
    anchor_name = next((k for k in task.files if k.startswith("ruler:")), next(iter(masks)))
    anchor = masks[anchor_name]
    for name, mask in list(masks.items()):
        if name == anchor_name:
            continue
        try:
            padded = io.uncrop_like(mask, anchor, atol=task.atol)  # a SEG without empty frames
            if padded is not None:
                mask = masks[name] = padded
            if task.reorient:
                mask = io.reorient_like(mask, anchor, case_id=task.case_id)
                masks[name] = mask
            io.check_geometry(anchor, mask, case_id=task.case_id, atol=task.atol)
        except InputError as exc:
            result.problems.append(Problem.from_input_error("geometry mismatches", exc))
    if result.problems:
        return result

    settings = metrics.MetricSettings(
        hd95_method=task.settings["hd95_method"], nsd_tolerance=task.settings["nsd_tolerance"]
    )
    lesions = task.settings.get("lesions")
    lesion_settings = metrics.LesionSettings(**lesions) if lesions else None  # None: defaults
    try:
        if task.structures is None:
            # crops to the box of the case's voxels, each mask scanned once: the metrics and each
            # reference's descriptors then neither scan nor copy them again
            crops = crop_to_union({k: m.array for k, m in masks.items()})
            per_structure = {DEFAULT_STRUCTURE: crops}
        else:
            maps = {k: m for k, m in masks.items() if isinstance(m, io.LabelMap)}
            per_structure = io.select_structures(maps, task.structures, case_id=task.case_id)
        for structure, arrays in per_structure.items():
            # crops of one structure share its box, which holds all of its voxels: the metrics
            # and the descriptors of the crops are those of the full-size masks
            result.scores[structure] = metrics.compute_many(
                arrays,
                list(task.pairs),
                anchor.spacing,
                list(task.metrics),
                settings=settings,
                lesion_settings=lesion_settings,
            )
            result.shapes[structure] = {
                k: morphology.describe_mask(arrays[k], anchor.spacing) for k in task.describe
            }
    except InputError as exc:
        result.problems.append(Problem.from_input_error("unusable masks", exc))
        return result
    return result
