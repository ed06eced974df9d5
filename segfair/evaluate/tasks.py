"""The unit of work: one :class:`CaseTask` per case (plain data, cheap to pickle) and its
:class:`CaseResult`; :func:`build_tasks` makes them from a cohort."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segfair.cohort import Cohort
from segfair.errors import Problem, SegfairError

__all__ = ["CaseResult", "CaseTask", "build_tasks"]


@dataclass(frozen=True)
class CaseTask:
    """Everything one worker needs to evaluate one case; plain data, cheap to pickle."""

    case_id: str
    files: Mapping[str, str]
    read: Mapping[str, Mapping[str, Any]]
    pairs: Sequence[tuple[str, str]]
    describe: Sequence[str]
    metrics: Sequence[str]
    settings: Mapping[str, Any]
    reorient: bool = False
    atol: float = 1e-3
    cache_dir: str | None = None
    #: set by :func:`evaluate` after its cache lookup, so a worker does not hash the files again
    cache_key: str | None = None


@dataclass
class CaseResult:
    """Scores of one case: ``pairs[(pred, ref)][metric]`` and ``morphology[ref][descriptor]``."""

    case_id: str
    pairs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    morphology: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    cached: bool = False


def build_tasks(
    cohort: Cohort,
    *,
    metrics: Sequence[str] | None = None,
    cache_dir: str | None = None,
) -> list[CaseTask]:
    """One task per case, in case-id order."""
    from segfair.metrics import ALL_METRICS

    cfg = cohort.config
    chosen = list(metrics or cfg.metrics or ALL_METRICS)
    unknown = [m for m in chosen if m not in ALL_METRICS]
    if unknown:
        raise SegfairError(
            f"unknown metric(s) {unknown}; valid metrics are {', '.join(ALL_METRICS)}"
        )
    settings = {"hd95_method": cfg.hd95, "nsd_tolerance": cfg.nsd_tolerance}
    trusted = f"ruler:{cfg.trusted_ruler}"
    tasks = []
    for case_id in cohort.case_ids:
        available = cohort.available(case_id)
        # the trusted ruler first: it is the grid the other masks are checked against
        keys = sorted(available, key=lambda s: (s != ("ruler", cfg.trusted_ruler), s[0] == "model"))
        files = {f"{k}:{n}": str(available[(k, n)]) for k, n in keys}
        read: dict[str, dict[str, Any]] = {}
        for key in files:
            kind, name = key.split(":", 1)
            spec = (cfg.models if kind == "model" else cfg.rulers)[name]
            read[key] = {
                "labels": spec.labels if spec.labels is not None else list(cfg.labels),
                "threshold": spec.threshold if spec.threshold is not None else cfg.threshold,
                "max_voxels": cfg.max_voxels,
            }
            spacing = spec.spacing if spec.spacing is not None else cfg.spacing
            if spacing is not None:  # only when declared: the cache keys of others stay
                read[key]["spacing"] = list(spacing)
        pairs = [(f"model:{m}", f"ruler:{r}") for m in cfg.models for r in cfg.rulers]
        pairs += [(f"ruler:{a}", trusted) for a in cfg.automated_rulers]
        pairs = [(p, r) for p, r in pairs if p in files and r in files]
        describe = [f"ruler:{r}" for r in cfg.rulers if f"ruler:{r}" in files]
        tasks.append(
            CaseTask(
                case_id=case_id,
                files=files,
                read=read,
                pairs=pairs,
                describe=describe,
                metrics=chosen,
                settings=settings,
                reorient=cfg.reorient,
                atol=cfg.geometry_tolerance,
                cache_dir=cache_dir,
            )
        )
    return tasks
