"""Run-wide state shared by the CLI and the pytest plugin.

A :class:`SegfairSession` holds the configuration and, computed lazily and once, the cohort, the
scores and the audit; it records every gate result (from the configuration or from assertions in
tests) and writes the reports.

Example
-------
>>> session = SegfairSession.from_path("segfair.toml")  # doctest: +SKIP
>>> results = session.check_config_gates()  # doctest: +SKIP
>>> session.write_reports(html="fairness.html")  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfair.cohort.config import SegfairConfig, load_config
from segfair.errors import ConfigError

if TYPE_CHECKING:
    from segfair.audit import Audit
    from segfair.cohort import Cohort
    from segfair.gates import Gate, GateResult
    from segfair.scores import Scores

__all__ = ["SegfairSession", "check_gate_names"]

#: A baseline report larger than this is refused (a report of a million cases is far smaller).
BASELINE_LIMIT = 256 << 20
UNKNOWN_NAME = "{where}{field} = {value!r} is not a configured {what}{hint}; configured: {valid}"
NAME_STRUCTURE = "name the structure the gate is decided on, one of: {valid}"
NEEDS_METRIC = (
    "{where}a {kind} gate reads the per-case {metric!r}; add it to metrics "
    '(metrics = [..., "small_lesions", "small_lesions_detected"])'
)


def check_gate_names(gate: Gate, config: SegfairConfig, index: int | None) -> list[str]:
    """Problems with the models, rulers, attributes and metrics a gate names."""
    from segfair.metrics import ALL_METRICS

    where = f"gates[{index}]." if index is not None else ""
    tables = {
        "model": ("model", list(config.models)),
        "baseline": ("model", list(config.models)),
        "ruler": ("ruler", list(config.rulers)),
        "automated": ("ruler", list(config.rulers)),
        "trusted": ("ruler", list(config.rulers)),
        "by": ("attribute", list(config.attributes)),
        "metric": ("metric", list(config.metrics or ALL_METRICS)),
        "structure": ("structure", list(config.structure_labels)),
    }
    problems = []
    # a gate that reads score-table metrics of its own (detection_gap: the small-lesion counts)
    for needed in getattr(gate, "needs_metrics", ()):
        if needed not in tables["metric"][1]:
            problems.append(NEEDS_METRIC.format(where=where, kind=gate.kind, metric=needed))
    for field, (what, valid) in tables.items():
        value = getattr(gate, field, None)
        if value is None or (field == "baseline" and not isinstance(value, str)):
            continue
        for item in (value,) if isinstance(value, str) else tuple(value):
            if item not in valid:
                problems.append(
                    UNKNOWN_NAME.format(
                        where=where,
                        field=field,
                        value=item,
                        what=what,
                        hint=_did_you_mean(str(item), valid),
                        valid=", ".join(valid) or "none",
                    )
                )
    structures = list(config.structure_labels)
    if len(structures) > 1 and gate.structure is None:
        problems.append(f"{where}structure: " + NAME_STRUCTURE.format(valid=", ".join(structures)))
    return problems


def _did_you_mean(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    if not close:
        # a valid name inside the typo ("dice_score" → "dice"), the longest that fits
        inside = sorted((v for v in valid if v and v.lower() in name.lower()), key=len)
        close = inside[-1:]
    return f" (did you mean {close[0]!r}?)" if close else ""


#: The files of :attr:`SegfairSession.share`: the lock and the pickled cohort, scores, audit.
SHARED_LOCK = "session.lock"
SHARED_FILE = "session.pickle"
#: Bootstrap replicates a process computed while checking its gates, one file per process.
SHARED_COMPUTED = "computed-{pid}.pickle"


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released by the kernel if the process dies); a no-op
    where ``fcntl`` does not exist: every process then computes for itself, as without a share."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_parts(path: Path) -> dict[Any, Any] | None:
    import pickle

    try:
        with path.open("rb") as fh:
            parts = pickle.load(fh)
    except Exception:  # absent, or unreadable: compute instead, as without a share
        return None
    return parts if isinstance(parts, dict) else None


def _save_parts(path: Path, parts: Mapping[Any, Any]) -> None:
    import pickle

    from segfair.io import atomic_write_bytes

    try:
        data = pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write_bytes(path, data)
    except Exception:  # not picklable, or no room: the others compute for themselves
        return


class SegfairSession:
    """The configuration of one run and everything derived from it, computed at most once."""

    def __init__(
        self,
        config: SegfairConfig,
        *,
        seed: int | None = None,
        workers: int | None = None,
        executor: Executor | None = None,
        scheduler: str | None = None,
        progress: bool | None = None,
        cache: bool | None = None,
        baseline: str | Path | None = None,
        on_inconclusive: str | None = None,
        share: str | Path | None = None,
    ) -> None:
        self.config = config
        #: The run's release policy for inconclusive gates (argument, else the config's, which
        #: its model validated: opening a session imports no gate, nor the numeric stack).
        self.on_inconclusive = config.on_inconclusive
        if on_inconclusive is not None:
            from segfair.gates import check_on_inconclusive

            self.on_inconclusive = check_on_inconclusive(on_inconclusive)
        self.seed = config.seed if seed is None else seed
        self.workers = workers
        self.executor = executor
        # an explicit executor wins; else --scheduler, else the config's `scheduler` key
        self.scheduler = None if executor is not None else (scheduler or config.scheduler)
        self.progress = progress
        self.cache = cache
        self.baseline_path = Path(baseline) if baseline is not None else None
        #: A private folder shared by the processes of one run (pytest-xdist's workers and
        #: controller): the first that needs the cohort computes it, the scores and the audit
        #: there under a lock, the others load them (see :meth:`_shared_parts`).
        self.share = Path(share) if share is not None else None
        self.results: dict[str, GateResult] = {}

    @classmethod
    def from_path(cls, path: str | Path = ".", **kwargs: Any) -> SegfairSession:
        return cls(load_config(path), **kwargs)

    # ---- the pipeline, lazily -------------------------------------------------------------
    @cached_property
    def gates(self) -> list[Gate]:
        """The gates declared in the configuration, validated; in a cohort of several
        structures, a gate without ``structure`` is one gate per structure."""
        return [g for g, _ in self._gates]

    @property
    def gate_entries(self) -> list[int]:
        """The index of the ``[[gates]]`` entry each of :attr:`gates` comes from."""
        return [i for _, i in self._gates]

    @cached_property
    def _gates(self) -> list[tuple[Gate, int]]:
        from segfair.gates import invalid_gates, parse_gates

        cfg = self.config
        options: dict[str, Any] = {
            "source": cfg.source,
            "trusted_ruler": cfg.trusted_ruler,
            "structures": list(cfg.structure_labels),
        }
        parse_gates(cfg.gates, **options)  # every problem of every entry at once
        gates = [(g, i) for i, raw in enumerate(cfg.gates) for g in parse_gates([raw], **options)]
        # a name that is not configured is found here, before any mask is read
        problems = [p for g, i in gates for p in check_gate_names(g, cfg, i)]
        problems = list(dict.fromkeys(problems))  # an entry's copies per structure say it once
        if problems:
            raise ConfigError(invalid_gates(problems), key="gates", source=cfg.source)
        return gates

    @cached_property
    def cohort(self) -> Cohort:
        if self.share is not None:
            return self._shared_parts["cohort"]
        return self._load_cohort()

    @property
    def warnings(self) -> list[str]:
        """What this run should say without refusing it (site columns while ``cluster`` is not
        set, groups with too few clusters), as text safe to print; loads the cohort."""
        return list(self.cohort.warnings)

    @cached_property
    def scores(self) -> Scores:
        if self.share is not None:
            return self._shared_parts["scores"]
        return self._evaluate(self.cohort)

    @cached_property
    def audit(self) -> Audit:
        if self.share is not None:
            return self._shared_parts["audit"]
        return self._make_audit(self.scores)

    def _load_cohort(self) -> Cohort:
        from segfair.cohort import load_cohort

        return load_cohort(self.config, cache=self.cache, workers=self.workers)

    def _evaluate(self, cohort: Cohort) -> Scores:
        from segfair.evaluate import dask_executor, evaluate

        if self.scheduler is None:
            return evaluate(
                cohort,
                executor=self.executor,
                workers=self.workers,
                progress=self.progress,
                cache=self.cache,
            )
        with dask_executor(self.scheduler) as executor:
            return evaluate(cohort, executor=executor, progress=self.progress, cache=self.cache)

    def _make_audit(self, scores: Scores) -> Audit:
        from segfair.audit import Audit
        from segfair.planner import config_weights

        cfg = self.config
        return Audit(
            scores,
            seed=self.seed,
            n_boot=cfg.n_boot,
            confidence=cfg.confidence,
            cap=cfg.cap,
            cluster=cfg.cluster,
            min_group_size=cfg.min_group_size,
            design_weights=config_weights(cfg, scores),
            estimator=cfg.estimator,
            proxy=cfg.proxy,
        )

    @cached_property
    def _shared_parts(self) -> dict[str, Any]:
        """The cohort, the scores and the audit, computed once per run across processes.

        Under an exclusive lock in :attr:`share`: load them if another process saved them, else
        compute them and save them (atomically, pickled right after the audit is built, before
        any gate fills its caches). An error releases the lock and saves nothing, so the next
        process computes, and meets the same input error, itself; so does one that finds no
        lock (Windows has no ``fcntl``) or a file it cannot read. The folder is private to the
        run (created by its controller, mode 0700), so loading its pickle trusts only this run.
        """
        assert self.share is not None
        path = self.share / SHARED_FILE
        with _exclusive_lock(self.share / SHARED_LOCK):
            parts = _read_parts(path)
            if parts is None:
                cohort = self._load_cohort()
                scores = self._evaluate(cohort)
                parts = {"cohort": cohort, "scores": scores, "audit": self._make_audit(scores)}
                _save_parts(path, parts)
        return parts

    def share_computed(self) -> None:
        """Save the bootstrap replicates this process computed (its gates') in :attr:`share`,
        for the process that builds the report; nothing without a share or an audit."""
        if self.share is None or "audit" not in self.__dict__:
            return
        import os

        computed = self.audit.computed()
        if computed:
            _save_parts(self.share / SHARED_COMPUTED.format(pid=os.getpid()), computed)

    def adopt_shared_computed(self) -> None:
        """Take the replicates other processes of the run saved (:meth:`share_computed`), so
        that the report recomputes none of what the gates computed."""
        if self.share is None:
            return
        for path in sorted(self.share.glob(SHARED_COMPUTED.format(pid="*"))):
            computed = _read_parts(path)
            if computed:
                self.audit.adopt(computed)

    @cached_property
    def baseline(self) -> Mapping[str, Any] | None:
        """A previous JSON report, for ``no_regression`` gates."""
        if self.baseline_path is None:
            return None
        from segfair.io import read_regular_text

        try:
            text = read_regular_text(self.baseline_path, limit=BASELINE_LIMIT)
            doc = json.loads(text)
        except (OSError, ValueError, RecursionError) as exc:
            why = (
                "it is nested too deeply to be a segfair report"
                if isinstance(exc, RecursionError)
                else (exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc))
            )
            raise ConfigError(
                f"cannot read the baseline report {str(self.baseline_path)!r}: {why}",
                key="baseline",
            ) from None
        if not isinstance(doc, Mapping):
            raise ConfigError(
                f"the baseline report {str(self.baseline_path)!r} is not a segfair JSON report "
                f"(a JSON object), but a JSON {type(doc).__name__}",
                key="baseline",
            )
        return doc

    # ---- gates -----------------------------------------------------------------------------
    def check(self, gate: Gate | Mapping[str, Any]) -> GateResult:
        """Evaluate one gate (a model or a mapping like a ``[[gates]]`` entry) and record it."""
        from segfair.gates import invalid_gates, parse_gate
        from segfair.planner import evaluate_gate

        structures = list(self.config.structure_labels)
        spec = (
            parse_gate(
                gate,
                source=self.config.source,
                trusted_ruler=self.config.trusted_ruler,
                structures=structures,
            )
            if isinstance(gate, Mapping)
            else gate
        )
        if len(structures) == 1 and spec.structure in structures:
            spec = spec.model_copy(update={"structure": None})  # the only one: ids as before
        problems = check_gate_names(spec, self.config, None)
        if problems:
            raise ConfigError(invalid_gates(problems, several=False), key="gate")
        result = evaluate_gate(
            self.audit, spec, baseline=self.baseline, on_inconclusive=self.on_inconclusive
        )
        self.results[result.id] = result
        return result

    def error_result(self, gate: Gate | Mapping[str, Any], exc: BaseException) -> GateResult:
        """The ``error`` verdict of a gate that raised ``exc`` (an unknown name, bad input, a
        bug), recorded so that no report reads as a pass; its id is the gate's when it parses,
        else built from the fields given."""
        from segfair.gates import GateResult, parse_gate

        spec: Any = gate
        if isinstance(gate, Mapping):
            try:
                spec = parse_gate(
                    gate,
                    source=self.config.source,
                    trusted_ruler=self.config.trusted_ruler,
                    structures=list(self.config.structure_labels),
                )
            except Exception:
                spec = None
        if spec is not None and not isinstance(spec, Mapping):
            gate_id, kind, name = spec.id, spec.kind, spec.name
        else:
            fields = dict(gate) if isinstance(gate, Mapping) else {}
            kind = str(fields.get("kind", "?"))
            parts = [fields.get(k) for k in ("metric", "by", "model", "automated", "baseline")]
            gate_id = f"{kind}[{','.join(str(p) for p in parts if p)}]"
            name = fields.get("name")
        text = str(exc).strip() or type(exc).__name__
        result = GateResult.error(id=gate_id, kind=kind, name=name, message=text)
        self.results[result.id] = result
        return result

    def check_config_gates(self) -> list[GateResult]:
        """Evaluate every gate of the configuration (Holm-adjusted when configured)."""
        from segfair.planner import evaluate_gates

        decide = functools.partial(
            evaluate_gates,
            self.audit,
            self.gates,
            holm=self.config.holm,
            baseline=self.baseline,
            on_inconclusive=self.on_inconclusive,
            errors="record",
        )
        self.audit.prefetch(decide)  # a large cohort: one pass per attribute
        results = decide()
        for r in results:
            self.results[r.id] = r
        return results

    # ---- reports ---------------------------------------------------------------------------
    def report(self, results: Sequence[GateResult] | None = None) -> dict[str, Any]:
        """The report document (JSON-able) for the recorded gate results."""
        from segfair.report import build_report

        chosen = list(self.results.values()) if results is None else list(results)
        return build_report(
            self.audit, chosen, config=self.config, seed=self.seed, cohort=self.cohort
        )

    def write_reports(
        self,
        *,
        html: str | Path | None = None,
        json_path: str | Path | None = None,
        md: str | Path | None = None,
        document: Mapping[str, Any] | None = None,
    ) -> list[Path]:
        """Write the requested reports (atomically) and return their paths."""
        from segfair.report import write_reports

        doc = self.report() if document is None else document
        return write_reports(doc, html=html, json_path=json_path, md=md)
