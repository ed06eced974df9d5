"""The worst cases: contours of prediction, trusted and automated labels on one slice, read
from the masks (and kept in the result cache)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from segfair.errors import SegfairError
from segfair.report.rows import _labels
from segfair.report.values import _num
from segfair.scores import DEFAULT_STRUCTURE
from segfair.version import __version__

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.cohort import Cohort, SourceKind
    from segfair.cohort.config import SegfairConfig

NO_COHORT_REASON: Final = (
    "the report was built without the cohort (build_report(..., cohort=None)), so the mask files "
    "could not be read; pass cohort= to draw the worst cases"
)


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def outline_path(mask: np.ndarray) -> str:
    """SVG path data of the pixel-exact outline of a 2-D mask (``[row, column]`` = ``[y, x]``).

    Every boundary between a foreground and a background pixel is one unit edge; collinear
    edges are merged, so the path stays short.

    Examples
    --------
    >>> outline_path(np.array([[1, 1], [0, 0]], dtype=bool))
    'M0 0H2M0 1H2M0 0V1M2 0V1'
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    parts: list[str] = []
    horizontal = m[1:, 1:-1] != m[:-1, 1:-1]  # (H+1, W): edge along row line y
    for y in np.flatnonzero(horizontal.any(axis=1)):
        for s, e in zip(*_runs(horizontal[y]), strict=True):
            parts.append(f"M{s} {y}H{e}")
    vertical = m[1:-1, 1:] != m[1:-1, :-1]  # (H, W+1): edge along column line x
    for x in np.flatnonzero(vertical.any(axis=0)):
        for s, e in zip(*_runs(vertical[:, x]), strict=True):
            parts.append(f"M{x} {s}V{e}")
    return "".join(parts)


def fill_path(mask: np.ndarray) -> str:
    """SVG path data filling a 2-D mask with one rectangle per run of each row."""
    m = np.asarray(mask, dtype=bool)
    parts: list[str] = []
    for y in np.flatnonzero(m.any(axis=1)):
        for s, e in zip(*_runs(m[y]), strict=True):
            parts.append(f"M{s} {y}h{e - s}v1h{s - e}z")
    return "".join(parts)


def _by_case(values: pd.Series) -> pd.Series:
    values.index = values.index.astype(str)
    return values


def _worst_of_groups(
    values: pd.Series,
    labels: pd.Series,
    order: Sequence[str],
    per_group: int,
    worse_is_higher: bool,
) -> list[tuple[str, str]]:
    """The ``per_group`` worst cases of each group in ``order``: the highest ``values`` when
    ``worse_is_higher``, else the lowest; ties by case id. ``values`` and ``labels`` are indexed
    by case id (text).

    Examples
    --------
    >>> v = pd.Series([0.9, 0.2, 0.5, 0.2], index=["a", "b", "c", "d"])
    >>> g = pd.Series(["x", "x", "y", "x"], index=["a", "b", "c", "d"])
    >>> _worst_of_groups(v, g, ["x", "y"], 2, worse_is_higher=False)
    [('x', 'b'), ('x', 'd'), ('y', 'c')]
    """
    if per_group <= 0:
        return []
    key = values.to_numpy(dtype=float) * (-1.0 if worse_is_higher else 1.0)
    ids = values.index.to_numpy(dtype=object)
    group = labels.reindex(values.index).to_numpy(dtype=object)
    chosen: list[tuple[str, str]] = []
    for name in order:
        rows = np.flatnonzero(group == name)
        if len(rows) > per_group:
            # every case at or under the per_group-th smallest key: the worst, and their ties
            cut = np.partition(key[rows], per_group - 1)[per_group - 1]
            rows = rows[key[rows] <= cut]
        ranked = sorted((float(key[i]), str(ids[i])) for i in rows)
        chosen += [(name, c) for _, c in ranked[:per_group]]
    return chosen


def _worst_cases(
    audit: Audit,
    cohort: Cohort | None,
    config: SegfairConfig,
    *,
    metric: str,
    attribute: str | None,
    model: str | None,
    per_group: int,
    limit: int | None = None,
) -> dict[str, Any]:
    from segfair.stats import LOWER_IS_BETTER

    scores = audit.scores
    trusted = scores.trusted_ruler
    automated = [r for r in scores.rulers if r != trusted]
    out: dict[str, Any] = {
        "available": False,
        "reason": None,
        "metric": metric,
        "attribute": attribute,
        "model": model,
        "trusted": trusted,
        "automated": automated,
        "cases": [],
        "problems": [],
    }
    if attribute is None or model is None:
        out["reason"] = "the cohort has no attribute or no model"
        return out
    if cohort is None:
        out["reason"] = NO_COHORT_REASON
        return out
    try:
        values = scores.values(metric, model=model, ruler=trusted)
    except (SegfairError, ValueError) as exc:  # pragma: no cover - metrics always hold dice
        out["reason"] = f"no {metric} scores of {model} on {trusted}: {exc}"
        return out
    values.index = values.index.astype(str)
    values = values[values.notna()]
    labels = _labels(scores.groups[attribute])
    order = list(dict.fromkeys(str(g) for g in audit.group_sizes(by=attribute).index))
    chosen = _worst_of_groups(values, labels, order, per_group, metric in LOWER_IS_BETTER)
    chosen = chosen if limit is None else chosen[:limit]
    if not chosen:
        out["reason"] = f"no case has a {metric} score of {model} on {trusted} labels"
        return out
    # each ruler's scores read once, not once per drawn case (a scan of the whole table)
    shown = {r: _by_case(scores.values(metric, model=model, ruler=r)) for r in scores.rulers}
    agree = {
        n: _by_case(scores.agreement_values(metric, ruler=n))
        for n in automated
        if len(scores.agreement)
    }

    def draw(item: tuple[str, str]) -> dict[str, Any] | str:
        group, case_id = item
        try:
            drawing = _cached_drawing(
                cohort, config, case_id, model, trusted, automated, scores.structures[0]
            )
        except (SegfairError, ValueError, OSError) as exc:
            return f"{case_id}: {type(exc).__name__}: {exc}"
        return {
            "group": group,
            "case_id": case_id,
            "value_trusted": _num(shown[trusted].get(case_id)),
            "value_automated": {n: _num(shown[n].get(case_id)) for n in automated},
            "agreement": {n: _num(a.get(case_id)) for n, a in agree.items()},
            **drawing,
        }

    # Reading the masks is most of a warm run's report time; inflating releases the GIL, so
    # threads share it across cores. map keeps the order, so the report is the same.
    with ThreadPoolExecutor(max_workers=min(len(chosen), os.cpu_count() or 1)) as pool:
        for drawn in pool.map(draw, chosen):
            if isinstance(drawn, str):
                out["problems"].append(drawn)
            else:
                out["cases"].append(drawn)
    out["available"] = bool(out["cases"])
    if not out["cases"]:
        out["reason"] = "no worst case could be drawn (see problems)"
    return out


#: At most this many worst cases are drawn in a report of several structures (the report stays
#: small): the headline structure's first, then each other structure's in declared order.
MAX_DRAWINGS: Final = 24


def _worst_cases_of_structures(
    audits: Sequence[tuple[str, Audit]],
    cohort: Cohort | None,
    config: SegfairConfig,
    *,
    metric: str,
    attribute: str | None,
    model: str | None,
    per_group: int,
    limit: int = MAX_DRAWINGS,
) -> dict[str, Any]:
    """The worst cases of each structure (``audits``: the headline structure's first), each
    case naming its structure, at most ``per_group`` per group and structure and ``limit`` in
    all; the structures left without a drawing by the limit are listed in ``not_drawn``."""
    parts: list[tuple[str, dict[str, Any]]] = []
    left = limit
    not_drawn: list[str] = []
    for name, audit in audits:
        if left <= 0:
            not_drawn.append(name)
            continue
        part = _worst_cases(
            audit,
            cohort,
            config,
            metric=metric,
            attribute=attribute,
            model=model,
            per_group=per_group,
            limit=left,
        )
        left -= len(part["cases"])
        parts.append((name, part))
    first = parts[0][1]
    cases = [{"structure": s, **c} for s, p in parts for c in p["cases"]]
    problems = [f"{s}: {m}" for s, p in parts for m in p["problems"]]
    problems += [f"{s}: {p['reason']}" for s, p in parts[1:] if p["reason"] and not p["cases"]]
    out = {
        "structure": parts[0][0],
        **first,
        "available": bool(cases),
        "cases": cases,
        "problems": problems,
        "structures": [s for s, p in parts if p["cases"]],
        "not_drawn": not_drawn,
        "limit": limit,
    }
    if cases and not first["cases"]:
        out["reason"] = None  # the headline structure's reason is among the problems
        out["problems"] = [f"{parts[0][0]}: {first['reason']}", *problems]
    return out


def _read(
    cohort: Cohort, config: SegfairConfig, kind: str, name: str, case_id: str, structure: str
) -> Any:
    from segfair.io import Mask, load_labels, load_mask

    table = config.models if kind == "model" else config.rulers
    spec = table[name]
    labels = spec.labels if spec.labels is not None else config.labels
    path = cohort.path("model" if kind == "model" else "ruler", name, case_id)
    if config.structures is not None:
        # the drawn structure's labels, from the label map read as the evaluation reads it: a
        # structure absent from a mask is an empty mask there (not load_mask's refusal)
        found = load_labels(
            path,
            case_id=case_id,
            max_voxels=config.max_voxels,
            spacing=spec.spacing if spec.spacing is not None else config.spacing,
        )
        chosen = np.isin(found.array, list(config.structure_labels[structure]))
        return Mask(chosen, found.spacing, found.affine, found.path)
    return load_mask(
        path,
        case_id=case_id,
        labels=labels,
        threshold=spec.threshold if spec.threshold is not None else config.threshold,
        max_voxels=config.max_voxels,
        spacing=spec.spacing if spec.spacing is not None else config.spacing,
    )


#: Bumped whenever what :func:`_drawing` returns changes.
DRAWING_FORMAT = 2  # 2: entries carry an HMAC


def _cached_drawing(
    cohort: Cohort,
    config: SegfairConfig,
    case_id: str,
    model: str,
    trusted: str,
    automated: Sequence[str],
    structure: str = DEFAULT_STRUCTURE,
) -> dict[str, Any]:
    """:func:`_drawing`, kept in the result cache next to the case's scores.

    Drawing a worst case reads its masks again — most of a warm re-run's report time at
    MAMA-MIA size. The entry is keyed like a case result, by the content of the files.
    """
    if cohort.cache_dir is None:  # the run's cache is off
        return _drawing(cohort, config, case_id, model, trusted, automated, structure)
    from segfair.cohort.fileindex import file_index
    from segfair.io import atomic_write_text
    from segfair.io.signing import sign_document, verify_document

    sources: list[tuple[SourceKind, str]] = [("model", model), ("ruler", trusted)]
    sources += [("ruler", n) for n in automated]
    paths = {f"{k}:{n}": cohort.path(k, n, case_id) for k, n in sources}
    index = file_index(cohort.cache_dir)
    try:
        files = {k: (index.content_hash(v) if v.is_file() else None) for k, v in paths.items()}
    except SegfairError:
        return _drawing(cohort, config, case_id, model, trusted, automated, structure)
    payload = {
        "format": DRAWING_FORMAT,
        "segfair": __version__,
        "case_id": case_id,
        "files": files,
        "order": list(paths),
        "labels": list(config.labels),
        "threshold": config.threshold,
        **({"structure": list(config.structure_labels[structure])} if config.structures else {}),
        "read": {
            k: [spec.labels, spec.threshold]
            for k, spec in (
                (f"{kind}:{n}", (config.models if kind == "model" else config.rulers)[n])
                for kind, n in sources
            )
        },
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(cohort.cache_dir) / "drawings" / key[:2] / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(path.read_text("utf-8"))
        # signed like the results (SECURITY.md): a forged drawing would show another case
        if isinstance(cached, dict) and cached.get("key") == key and verify_document(cached):
            return dict(cached["drawing"])
    drawing = _drawing(cohort, config, case_id, model, trusted, automated, structure)
    with contextlib.suppress(OSError, SegfairError):  # an optimisation, never the run
        entry = sign_document({"key": key, "drawing": drawing})
        atomic_write_text(path, json.dumps(entry, sort_keys=True))
    index.save()
    return drawing


def _drawing(
    cohort: Cohort,
    config: SegfairConfig,
    case_id: str,
    model: str,
    trusted: str,
    automated: Sequence[str],
    structure: str = DEFAULT_STRUCTURE,
) -> dict[str, Any]:
    """What a worst case's picture needs from its masks (everything but the scores)."""
    pred = _read(cohort, config, "model", model, case_id, structure)
    ref = _read(cohort, config, "ruler", trusted, case_id, structure)
    from segfair.io import uncrop_like

    pred = uncrop_like(pred, ref) or pred  # as evaluated: a cropped SEG on the ruler's grid
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and {trusted} {ref.shape} grids differ")
    autos: list[tuple[str, Any]] = []
    missing: list[str] = []
    for name in automated:
        path = cohort.path("ruler", name, case_id)
        if not path.is_file():
            missing.append(name)
            continue
        mask = _read(cohort, config, "ruler", name, case_id, structure)
        mask = uncrop_like(mask, ref) or mask
        if mask.shape == ref.shape:
            autos.append((name, mask))
    p, t = pred.array, ref.array
    spacing = pred.spacing
    if p.ndim == 2:
        axis, index, sl = -1, 0, (slice(None), slice(None))
        plane_axes: tuple[int, ...] = (0, 1)
    else:
        # slice across the coarsest axis (the acquisition's slice direction); ties → last
        axis = int(max(range(3), key=lambda a: (spacing[a], a)))
        plane_axes = tuple(a for a in range(3) if a != axis)
        other = plane_axes
        disagreement = (p ^ t).sum(axis=other)
        weight = disagreement if disagreement.any() else (p | t).sum(axis=other)
        index = int(np.argmax(weight))
        sl_list: list[Any] = [slice(None)] * 3
        sl_list[axis] = index
        sl = tuple(sl_list)

    def plane(a: np.ndarray) -> np.ndarray:
        # rows = second in-plane axis (upside down, as viewers show it), columns = the first
        return np.asarray(a[sl]).T[::-1, :]

    pp, tt = plane(p), plane(t)
    aa = [(n, plane(m.array)) for n, m in autos]
    union = pp | tt
    for _, a in aa:
        union = union | a
    h, w = pp.shape
    if union.any():
        rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
        margin = 3
        y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)
        x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    crop = (slice(y0, y1), slice(x0, x1))
    sx = float(spacing[plane_axes[0]])
    sy = float(spacing[plane_axes[1]])

    n_slices = 1 if p.ndim == 2 else int(p.shape[axis])
    return {
        "slice": {"axis": axis, "index": index, "n_slices": n_slices},
        "disagreement_voxels": int((pp ^ tt).sum()),
        "prediction_voxels": int(p.sum()),
        "prediction_voxels_on_slice": int(pp.sum()),
        "missed_voxels": int((tt & ~pp).sum()),
        "extra_voxels": int((pp & ~tt).sum()),
        "width": int(x1 - x0),
        "height": int(y1 - y0),
        "spacing": [_num(sx), _num(sy)],
        "trusted_fill": fill_path(tt[crop]),
        "contours": [
            {"source": model, "role": "prediction", "path": outline_path(pp[crop])},
            {"source": trusted, "role": "trusted", "path": outline_path(tt[crop])},
            *({"source": n, "role": "automated", "path": outline_path(a[crop])} for n, a in aa),
        ],
        "missing_sources": missing,
    }
