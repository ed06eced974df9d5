"""The unit of work: one :class:`CaseTask` per case (plain data, cheap to pickle) and its
:class:`CaseResult`; :func:`build_tasks` makes them from a cohort."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segfair.cohort import Cohort
from segfair.cohort.config import DEFAULT_STRUCTURE
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
    #: declared structures (name → labels): each file is read once as a label map and every
    #: structure selected from it; None: one structure, :data:`DEFAULT_STRUCTURE`, read as a
    #: binary mask with ``read`` (labels, threshold)
    structures: Mapping[str, tuple[int, ...]] | None = None

    @property
    def structure_names(self) -> tuple[str, ...]:
        return (DEFAULT_STRUCTURE,) if self.structures is None else tuple(self.structures)


#: Metric values of one structure: ``(pred, ref) → metric → value``.
PairScores = dict[tuple[str, str], dict[str, float]]
#: Descriptors of one structure: ``ref → descriptor → value``.
ShapeScores = dict[str, dict[str, float]]


@dataclass
class CaseResult:
    """Scores of one case per structure: ``scores[structure][(pred, ref)][metric]`` and
    ``shapes[structure][ref][descriptor]``."""

    case_id: str
    scores: dict[str, PairScores] = field(default_factory=dict)
    shapes: dict[str, ShapeScores] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    cached: bool = False

    @property
    def pairs(self) -> PairScores:
        """The metric values of a case of one structure (``scores``' only entry)."""
        return self._only(self.scores)

    @property
    def morphology(self) -> ShapeScores:
        """The descriptors of a case of one structure (``shapes``' only entry)."""
        return self._only(self.shapes)

    def _only(self, per: dict[str, Any]) -> Any:
        if len(per) > 1:
            raise ValueError(
                f"case {self.case_id!r} has {len(per)} structures ({', '.join(per)}): "
                "read CaseResult.scores / .shapes by structure"
            )
        return next(iter(per.values()), {})


def build_tasks(
    cohort: Cohort,
    *,
    metrics: Sequence[str] | None = None,
    cache_dir: str | None = None,
) -> list[CaseTask]:
    """One task per case, in case-id order."""
    from segfair.metrics import ALL_METRICS, KNOWN_METRICS, LESION_METRICS

    cfg = cohort.config
    chosen = list(metrics or cfg.metrics or ALL_METRICS)
    unknown = [m for m in chosen if m not in KNOWN_METRICS]
    if unknown:
        raise SegfairError(
            f"unknown metric(s) {unknown}; valid metrics are {', '.join(KNOWN_METRICS)}"
        )
    settings: dict[str, Any] = {"hd95_method": cfg.hd95, "nsd_tolerance": cfg.nsd_tolerance}
    if any(m in LESION_METRICS for m in chosen):
        # only then: the cache key of a run without lesion-wise scores stays what it was, and
        # with them it changes with every lesion setting (no stale scores after an edit)
        settings["lesions"] = cfg.lesion_settings
    trusted = f"ruler:{cfg.trusted_ruler}"
    automated = cfg.automated_rulers
    structures = None if cfg.structures is None else cfg.structure_labels
    # what a task reads and scores depends only on which sources the case has: built once per
    # distinct set and shared by its tasks (a million cases hold a few of them, not a million;
    # the cache keys encode each shared part once)
    shared: dict[tuple[str, ...], tuple[dict[str, Any], list[Any], list[str]]] = {}
    # the trusted ruler first: it is the grid the other masks are checked against
    order = sorted(
        cohort.sources(), key=lambda s: (s != ("ruler", cfg.trusted_ruler), s[0] == "model")
    )
    names = {s: f"{s[0]}:{s[1]}" for s in order}
    tasks = []
    for case_id in cohort.case_ids:
        available = cohort.available(case_id)
        files = {names[s]: available[s] for s in order if s in available}
        present = tuple(files)
        if present not in shared:
            shared[present] = _read_and_pairs(cohort, present, trusted, automated)
        read, pairs, describe = shared[present]
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
                structures=structures,
            )
        )
    return tasks


def _read_and_pairs(
    cohort: Cohort, names: Sequence[str], trusted: str, automated: Sequence[str]
) -> tuple[dict[str, Any], list[Any], list[str]]:
    """How each of a case's files is read, the pairs scored and the references described, for
    a case with the files ``names`` (``kind:name``)."""
    cfg = cohort.config
    read: dict[str, dict[str, Any]] = {}
    for key in names:
        kind, name = key.split(":", 1)
        spec = (cfg.models if kind == "model" else cfg.rulers)[name]
        read[key] = {
            "labels": spec.labels if spec.labels is not None else list(cfg.labels),
            "threshold": spec.threshold if spec.threshold is not None else cfg.threshold,
            "max_voxels": cfg.max_voxels,
        }
        if cfg.structures is not None:  # label maps: labels are the structures'
            read[key] = {"max_voxels": cfg.max_voxels}
        spacing = spec.spacing if spec.spacing is not None else cfg.spacing
        if spacing is not None:  # only when declared: the cache keys of others stay
            read[key]["spacing"] = list(spacing)
    pairs = [(f"model:{m}", f"ruler:{r}") for m in cfg.models for r in cfg.rulers]
    pairs += [(f"ruler:{a}", trusted) for a in automated]
    pairs = [(p, r) for p, r in pairs if p in names and r in names]
    describe = [f"ruler:{r}" for r in cfg.rulers if f"ruler:{r}" in names]
    return read, pairs, describe
