"""The configuration: ``[tool.segfair]`` in ``pyproject.toml`` or a ``segfair.toml``, validated.

Paths in the configuration are relative to the file that holds it. Every key is checked; a typo
is an error that names the key and the closest valid one.

Example
-------
>>> cfg = parse_config({"cases": "meta.csv", "rulers": {"expert": "ref/{case_id}.nii.gz"},
...                     "models": {"m": "pred/{case_id}.nii.gz"}}, root=".")
>>> cfg.trusted_ruler
'expert'
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from segfair.errors import ConfigError

__all__ = [
    "BAD_TEMPLATE",
    "CONFIG_FILENAMES",
    "DEFAULT_STRUCTURE",
    "NAME_CLASH",
    "NAME_PATTERN",
    "NO_CONFIG",
    "NO_TOOL_TABLE",
    "UNKNOWN_KEY",
    "UNKNOWN_TRUSTED",
    "AttributeSpec",
    "DesignSpec",
    "SegfairConfig",
    "SourceSpec",
    "StructureLabels",
    "find_config",
    "load_config",
    "parse_config",
    "valid_name",
]

#: Files searched, in order, when a folder is given instead of a file.
CONFIG_FILENAMES = ("segfair.toml", "pyproject.toml")

NO_CONFIG = (
    "no segfair configuration found in {where}: expected a 'segfair.toml' or a 'pyproject.toml' "
    "with a [tool.segfair] table. Run 'segfair init' to write one."
)
NO_TOOL_TABLE = (
    "{path} has no [tool.segfair] table. Add one (see the README's quick start) or run "
    "'segfair init'."
)
UNKNOWN_KEY = "unknown key {key!r}{hint}. Valid keys here: {valid}."
BAD_TEMPLATE = (
    "path template {template!r} of {kind} {name!r} must contain '{{case_id}}' exactly once "
    "(e.g. 'segmentations/expert/{{case_id}}.nii.gz')"
)
UNKNOWN_TRUSTED = "trusted_ruler {name!r} is not among the configured rulers {valid}"
NAME_CLASH = "{name!r} is configured both as a ruler and as a model; give them different names"

#: The name of the one structure of a configuration without ``[tool.segfair.structures]``.
DEFAULT_STRUCTURE = "foreground"
#: What a structure may be called: it becomes part of gate ids (``gap[…][enhancing]``), report
#: keys and file names, so a letter first, then letters, digits, ``_`` and ``-``.
STRUCTURE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
BAD_STRUCTURE_NAME = (
    "structure name {name!r} must start with a letter and hold only letters, digits, '_' and "
    "'-' (e.g. tumor_core)"
)
BAD_STRUCTURE_LABELS = (
    "structure {name!r} must be a label or a non-empty list of distinct labels, each an "
    "integer ≥ 1 (0 is the background), e.g. {name} = 3 or {name} = [1, 3]; got {value!r}"
)
SAME_STRUCTURE_NAME = "structures {a!r} and {b!r} differ only in case; give them distinct names"
SAME_STRUCTURE_LABELS = (
    "structures {a!r} and {b!r} select the same labels {labels}; declare each structure once"
)
STRUCTURES_WITH = (
    "{what} cannot be combined with [structures]: structures select labels from each source's "
    "integer label map. {fix}"
)
STRUCTURES_WITH_LABELS_FIX = (
    "Declare the single structure under [structures] instead (e.g. lesion = {labels}), or "
    "remove [structures] to read one structure with labels"
)
STRUCTURES_WITH_SOURCE_LABELS_FIX = (
    "Write every source's masks with the same label values (the structures name them), or "
    "remove [structures] and keep one structure whose labels may differ per source"
)
STRUCTURES_WITH_THRESHOLD_FIX = (
    "A thresholded probability map is one structure: remove [structures] to keep it, or "
    "write integer label maps"
)
#: A structure as configured: one label, or the labels whose union it is.
StructureLabels = int | list[int]

#: What a ruler or model may be called (it becomes part of ids, file names and report keys).
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_NAME = NAME_PATTERN


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a ruler or a model (:data:`NAME_PATTERN`)."""
    # fullmatch: with re.match, "$" also matches before a trailing newline
    return re.fullmatch(NAME_PATTERN, name) is not None


# keys left out of the dumped configuration (the report's provenance and its hash) while unset,
# so that configurations written before they existed keep their report byte for byte
_OMIT_WHEN_NONE = ("spacing", "structures", "lesions")


class _Strict(BaseModel):
    # NaN and ±inf are never a meaningful setting (a NaN threshold or an infinite cap would
    # silently disable what they configure): refused everywhere, with the key named
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in _OMIT_WHEN_NONE:
                if key in data and data[key] is None:
                    del data[key]
        return data


# voxel size (mm) per axis, for files that hold none (NumPy, PNG without pHYs, TIFF without
# resolution); a file's own geometry wins (docs/formats.md)
_Spacing = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=3)]


class SourceSpec(_Strict):
    """Where a kind of mask lives: a path template with ``{case_id}``.

    ``labels``/``threshold``/``spacing`` override the cohort-wide mask reading settings for this
    source; ``partial`` (rulers only) declares that some cases have no mask from this source.
    """

    path: str
    labels: list[int] | None = None
    threshold: float | None = None
    spacing: _Spacing | None = None
    partial: bool = False


class AttributeSpec(_Strict):
    """A subgroup variable derived from one metadata column.

    Numeric columns are binned with ``bins`` (edges; a value equal to an edge falls in the lower
    bin, so ``[40, 55]`` gives ``≤40``, ``40–55``, ``>55``). Missing values form the group
    ``missing_label`` ("unknown"); they are never dropped. ``valid_range = [low, high]`` makes
    any value outside it an error naming the case; a column named ``age`` (any case) is checked
    against ``[0, 130]`` unless ``valid_range`` says otherwise (see ``docs/bad-input.md``).
    """

    column: str
    bins: list[float] | None = None
    labels: list[str] | None = None
    order: list[str] | None = None
    missing_label: str = "unknown"
    valid_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check_bins(self) -> AttributeSpec:
        if self.bins is not None:
            if len(self.bins) == 0:
                raise ValueError("bins must list at least one edge, e.g. [40, 55]")
            if list(self.bins) != sorted(set(self.bins)):
                raise ValueError(f"bins must be strictly increasing, got {self.bins}")
            if self.labels is not None and len(self.labels) != len(self.bins) + 1:
                raise ValueError(
                    f"{len(self.bins)} bin edges make {len(self.bins) + 1} groups, but "
                    f"{len(self.labels)} labels were given: {self.labels}"
                )
            if self.labels is not None:
                repeated = sorted({x for x in self.labels if self.labels.count(x) > 1})
                if repeated:
                    raise ValueError(
                        f"labels must name each bin once; {repeated} name several bins, which "
                        "would merge different groups"
                    )
                if self.missing_label in self.labels:
                    raise ValueError(
                        f"the label {self.missing_label!r} is also the missing_label: cases "
                        "without a value would join that bin; rename the bin or set "
                        "missing_label"
                    )
        elif self.labels is not None:
            raise ValueError("labels name the bins of a numeric attribute; give bins as well")
        if self.valid_range is not None:
            if self.bins is None:
                raise ValueError(
                    "valid_range applies to numeric attributes; give bins as well, e.g. [40, 55]"
                )
            if self.valid_range[0] > self.valid_range[1]:
                raise ValueError(
                    f"valid_range must be [low, high] with low ≤ high, got {list(self.valid_range)}"
                )
        return self


class DesignSpec(_Strict):
    """How the trusted ruler's labelled sample was drawn (``[tool.segfair.design]``).

    Either ``by`` (an attribute) with ``fractions`` (group → the fraction of its cases sent for
    trusted labels), or ``weights`` (a metadata column holding each labelled case's inverse
    inclusion probability). See ``docs/partial-labels.md``.
    """

    by: str | None = None
    fractions: dict[str, float] | None = None
    weights: str | None = None

    @model_validator(mode="after")
    def _one_design(self) -> DesignSpec:
        if (self.weights is None) == (self.fractions is None):
            raise ValueError(
                "give either by + fractions (e.g. by = 'age_group', fractions = {young = 0.3, "
                "older = 0.1}) or weights = '<metadata column>'"
            )
        if self.fractions is not None:
            if self.by is None:
                raise ValueError("fractions need by = '<attribute>' naming the sampling strata")
            bad = {k: v for k, v in self.fractions.items() if not 0 < v <= 1}
            if bad:
                raise ValueError(f"sampling fractions must lie in (0, 1]; got {bad}")
        return self


class LesionsSpec(_Strict):
    """How lesion-wise scores find and match lesions (``[tool.segfair.lesions]``); the defaults
    are BraTS 2023's (segfair.metrics.LesionSettings, docs/metrics.md "Lesion-wise scores").
    Read only when ``metrics`` asks for a lesion-wise score."""

    connectivity: Literal[4, 6, 8, 18, 26] | None = Field(
        default=None, description="6/18/26 in 3-D, 4/8 in 2-D; unset: full (26 / 8)"
    )
    match: Literal["brats", "iou"] = "brats"
    iou_threshold: float = Field(default=0.5, gt=0, le=1)
    dilation: int = Field(default=3, ge=0, le=100)
    min_volume: float = Field(
        default=50.0, ge=0, description="mm³; smaller reference lesions are left out"
    )
    small_volume: float = Field(
        default=500.0, ge=0, description="mm³; small_lesions are at most this"
    )
    hd95_penalty: float = Field(default=374.0, gt=0, description="mm; a missed or false lesion")


#: Set when [tool.segfair.lesions] is given but no lesion-wise score is asked for.
LESIONS_UNUSED = (
    "[lesions] is set but metrics asks for no lesion-wise score, so it would change nothing; "
    "add one of {valid} to metrics, or remove [lesions]"
)

#: Upper bounds of numeric settings that size memory or processes.
MAX_N_BOOT = 100_000
MAX_WORKERS = 256


class SegfairConfig(_Strict):
    """The validated ``[tool.segfair]`` configuration."""

    cases: str = Field(description="metadata table: CSV, Parquet or XLSX, one row per case")
    sheet: str | int | None = None
    case_id: str = "case_id"
    trusted_ruler: str = "expert"
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    rulers: dict[str, SourceSpec]
    models: dict[str, SourceSpec]
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    design: DesignSpec | None = None

    # how masks are read
    labels: list[int] = Field(default_factory=lambda: [1])
    # name → a label or the labels whose union is the structure; None: one structure, `labels`
    structures: dict[str, StructureLabels] | None = None
    threshold: float | None = None
    spacing: _Spacing | None = None
    max_voxels: int = Field(default=1_000_000_000, gt=0)
    reorient: bool = False
    geometry_tolerance: float = Field(default=1e-3, ge=0)
    missing_predictions: Literal["error", "exclude"] = "error"

    # how masks are scored
    metrics: list[str] | None = None
    hd95: Literal["max_directed", "pooled"] = "max_directed"
    nsd_tolerance: float = Field(default=2.0, gt=0)
    # lesion-wise scores (opt-in through metrics); None: BraTS 2023 defaults
    lesions: LesionsSpec | None = None

    # how the audit decides
    cap: float = Field(default=150.0, gt=0)
    # the bootstrap holds n_boot × groups replicates per series; 10**12 would ask for TiB
    n_boot: int = Field(default=2000, ge=100, le=MAX_N_BOOT)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_group_size: int = Field(default=20, ge=1)
    holm: bool = False
    # what an inconclusive gate does to the build: "fail" (block, the conservative default),
    # "warn" or "pass"; a gate's own on_inconclusive wins, an error always blocks
    on_inconclusive: Literal["fail", "warn", "pass"] = "fail"
    cluster: str | None = None
    # how statistics of a partial trusted ruler are estimated: from its labelled cases, or
    # prediction-powered (the proxy ruler over every case, corrected on the labelled ones)
    estimator: Literal["labelled", "ppi"] = "labelled"
    # the complete ruler prediction-powered estimates lean on (None: the only complete one)
    proxy: str | None = None
    # the metadata columns that identify a site; None: detected by name (segfair.cohort.sites)
    site_columns: list[str] | None = None

    # where things go
    cache: str | Literal[False] = ".segfair_cache"
    # release mode: recompute this fraction of the cached cases and refuse the run on a mismatch
    cache_verify: float = Field(default=0.0, ge=0, le=1)
    # each worker is a process: a typo of 1000000 must not fork until the process table is full
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    scheduler: str | None = None
    html: str | None = None
    json_report: str | None = Field(default=None, alias="json")
    md: str | None = None

    # not from the file: the folder paths are relative to, and the file itself
    root: Path = Field(default=Path("."), exclude=True)
    source: str | None = Field(default=None, exclude=True)

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("rulers", "models", mode="before")
    @classmethod
    def _expand_sources(cls, value: Any) -> Any:
        # a bare string is the common case: `expert = "segmentations/expert/{case_id}.nii.gz"`
        if isinstance(value, Mapping):
            return {k: ({"path": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("structures", mode="before")
    @classmethod
    def _check_structures(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # pydantic says what type it wants
        if not value:
            raise ValueError(
                "[structures] is empty: declare at least one, e.g. enhancing = 3, or remove it"
            )
        seen: dict[str, str] = {}
        labels_of: dict[tuple[int, ...], str] = {}
        for name, raw in value.items():
            if not isinstance(name, str) or re.fullmatch(STRUCTURE_NAME_PATTERN, name) is None:
                raise ValueError(BAD_STRUCTURE_NAME.format(name=name))
            if name.lower() in seen:
                raise ValueError(SAME_STRUCTURE_NAME.format(a=seen[name.lower()], b=name))
            seen[name.lower()] = name
            items = raw if isinstance(raw, list) else [raw]
            whole = all(type(x) is int for x in items)  # not bool, not 1.0, not "1"
            if not items or not whole or min(items) < 1 or len(set(items)) != len(items):
                raise ValueError(BAD_STRUCTURE_LABELS.format(name=name, value=raw))
            key = tuple(sorted(items))
            if key in labels_of:
                raise ValueError(
                    SAME_STRUCTURE_LABELS.format(a=labels_of[key], b=name, labels=list(key))
                )
            labels_of[key] = name
        return value

    @model_validator(mode="after")
    def _structures_read_label_maps(self) -> SegfairConfig:
        if self.structures is None:
            return self
        if "labels" in self.model_fields_set:
            fix = STRUCTURES_WITH_LABELS_FIX.format(labels=list(self.labels))
            raise ValueError(STRUCTURES_WITH.format(what="labels", fix=fix))
        if self.threshold is not None:
            fix = STRUCTURES_WITH_THRESHOLD_FIX
            raise ValueError(STRUCTURES_WITH.format(what="threshold", fix=fix))
        for kind, table in (("rulers", self.rulers), ("models", self.models)):
            for name, spec in table.items():
                if spec.labels is not None:
                    fix = STRUCTURES_WITH_SOURCE_LABELS_FIX
                    what = f"{kind}.{name}.labels"
                    raise ValueError(STRUCTURES_WITH.format(what=what, fix=fix))
                if spec.threshold is not None:
                    fix = STRUCTURES_WITH_THRESHOLD_FIX
                    what = f"{kind}.{name}.threshold"
                    raise ValueError(STRUCTURES_WITH.format(what=what, fix=fix))
        return self

    @model_validator(mode="after")
    def _proxy_is_a_ruler(self) -> SegfairConfig:
        others = [r for r in self.rulers if r != self.trusted_ruler]
        if self.proxy is not None and self.proxy not in others:
            raise ValueError(
                f"proxy = {self.proxy!r} must name a ruler other than the trusted one "
                f"({self.trusted_ruler!r}); valid: {', '.join(others) or '(none declared)'}"
            )
        return self

    @property
    def structure_labels(self) -> dict[str, tuple[int, ...]]:
        """Structure name → its labels (sorted), in declared order; without ``[structures]``,
        the one structure :data:`DEFAULT_STRUCTURE` of the cohort-wide ``labels``.

        Example
        -------
        >>> cfg = parse_config({"cases": "m.csv", "rulers": {"e": "e/{case_id}.nii.gz"},
        ...                     "models": {"m": "m/{case_id}.nii.gz"}, "trusted_ruler": "e",
        ...                     "structures": {"core": [3, 1], "enhancing": 3}})
        >>> cfg.structure_labels
        {'core': (1, 3), 'enhancing': (3,)}
        """
        if self.structures is None:
            return {DEFAULT_STRUCTURE: tuple(sorted(set(self.labels)))}
        return {
            n: tuple(sorted(v if isinstance(v, list) else [v])) for n, v in self.structures.items()
        }

    @model_validator(mode="after")
    def _check_names(self) -> SegfairConfig:

        for kind, table in (("ruler", self.rulers), ("model", self.models)):
            if not table:
                raise ValueError(f"at least one {kind} must be configured under [{kind}s]")
            for name, spec in table.items():
                if not valid_name(name):
                    raise ValueError(
                        f"{kind} name {name!r} may only hold letters, digits, '_', '-' and '.'"
                    )
                if spec.path.count("{case_id}") != 1:
                    raise ValueError(BAD_TEMPLATE.format(template=spec.path, kind=kind, name=name))
                if kind == "model" and spec.partial:
                    raise ValueError(
                        f"model {name!r}: 'partial' applies to rulers only; for missing "
                        'predictions set missing_predictions = "exclude"'
                    )
        if self.trusted_ruler not in self.rulers:
            raise ValueError(
                UNKNOWN_TRUSTED.format(name=self.trusted_ruler, valid=sorted(self.rulers))
            )
        for name in self.rulers:
            if name in self.models:
                raise ValueError(NAME_CLASH.format(name=name))
        return self

    @model_validator(mode="after")
    def _check_lesions(self) -> SegfairConfig:
        from segfair.metrics import LESION_METRICS

        asked = any(m in LESION_METRICS for m in self.metrics or ())
        if self.lesions is not None and not asked:
            raise ValueError(LESIONS_UNUSED.format(valid=", ".join(LESION_METRICS)))
        return self

    @property
    def lesion_settings(self) -> dict[str, Any]:
        """The lesion settings in force (``segfair.metrics.LesionSettings`` keywords)."""
        spec = self.lesions if self.lesions is not None else LesionsSpec()
        return spec.model_dump()

    @property
    def automated_rulers(self) -> tuple[str, ...]:
        """Every ruler but the trusted one, in declared order."""
        return tuple(r for r in self.rulers if r != self.trusted_ruler)

    def resolve(self, relative: str | Path) -> Path:
        """A path from the configuration, resolved against the configuration's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p


def _friendly_errors(error: ValidationError, data: Mapping[str, Any], prefix: str) -> list[str]:
    messages = []
    for err in error.errors():
        loc = tuple(err["loc"])
        dotted = ".".join([prefix, *(str(p) for p in loc)] if prefix else [str(p) for p in loc])
        if err["type"] == "extra_forbidden":
            valid = _valid_keys_at(SegfairConfig, loc[:-1], data)
            key = str(loc[-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            messages.append(
                f"{dotted}: "
                + UNKNOWN_KEY.format(key=key, hint=hint, valid=", ".join(sorted(valid)))
            )
        elif err["type"] == "missing":
            messages.append(f"{dotted}: required key is missing")
        else:
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            where = f"{dotted}: " if loc else (f"{prefix}: " if prefix else "")
            messages.append(f"{where}{msg} (got {err.get('input')!r})" if loc else where + msg)
    return messages


def _model_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, list, dict, Annotated)."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is Annotated:
        return _model_of(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _model_of(a)]
    return []


def _valid_keys_at(model: type[BaseModel], loc: Sequence[Any], data: Any) -> list[str]:
    """The keys valid at a location of the raw data, for 'did you mean' hints."""
    current: list[type[BaseModel]] = [model]
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(str(key))
            if field is None:
                continue
            ann = field.annotation
            origin = get_origin(ann)
            if origin is dict and i + 1 < len(loc):
                nxt.extend(_model_of(get_args(ann)[1]))
                i += 1
                node = node.get(key, {}) if isinstance(node, Mapping) else {}
                key = loc[i]
            else:
                nxt.extend(_model_of(ann))
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
        current = nxt
        i += 1
    keys: set[str] = set()
    for m in current:
        for name, f in m.model_fields.items():
            if f.exclude:
                continue
            keys.add(f.alias or name)
    return sorted(keys)


def parse_config(
    data: Mapping[str, Any],
    *,
    root: str | Path = ".",
    source: str | Path | None = None,
    prefix: str = "",
) -> SegfairConfig:
    """Validate a configuration mapping (the ``[tool.segfair]`` table) into a config.

    Raises :class:`~segfair.errors.ConfigError` listing every problem, each with its key.
    """
    raw = dict(data)
    for reserved in ("root", "source"):
        if reserved in raw:
            raise ConfigError(
                f"{prefix + '.' if prefix else ''}{reserved}: this key is reserved; paths are "
                "relative to the configuration file",
                key=reserved,
                source=source,
            )
    try:
        cfg = SegfairConfig.model_validate(
            {**raw, "root": Path(root), "source": str(source) if source is not None else None}
        )
    except ValidationError as exc:
        problems = _friendly_errors(exc, raw, prefix)
        first_key = ".".join(str(p) for p in exc.errors()[0]["loc"]) or None
        text = "invalid configuration:\n  - " + "\n  - ".join(problems)
        raise ConfigError(text, key=first_key, source=source) from None
    return cfg


def find_config(path: str | Path = ".") -> Path:
    """The configuration file for ``path``: the file itself, or the first of
    :data:`CONFIG_FILENAMES` in the folder that holds segfair settings."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise ConfigError(f"{p}: no such file or folder")
    for name in CONFIG_FILENAMES:
        candidate = p / name
        if candidate.is_file():
            if name == "pyproject.toml" and "segfair" not in _read_toml(candidate).get("tool", {}):
                continue
            return candidate
    raise ConfigError(NO_CONFIG.format(where=p))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=path) from None
    except RecursionError:
        # tomllib recurses once per nesting level: thousands of levels exhaust the stack
        raise ConfigError(
            "not valid TOML for segfair: tables or arrays nested too deeply to read", source=path
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None


def load_config(path: str | Path = ".") -> SegfairConfig:
    """Read and validate the configuration at ``path`` (a file, or a folder holding one).

    Example
    -------
    >>> cfg = load_config("examples/model-repo")  # doctest: +SKIP
    """
    file = find_config(path)
    doc = _read_toml(file)
    if file.name == "pyproject.toml" or ("tool" in doc and "segfair" in doc.get("tool", {})):
        table = doc.get("tool", {}).get("segfair")
        if table is None:
            raise ConfigError(NO_TOOL_TABLE.format(path=file), source=file)
        prefix = "tool.segfair"
    else:
        table, prefix = doc, ""
    return parse_config(table, root=file.resolve().parent, source=file, prefix=prefix)
