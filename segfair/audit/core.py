"""The plumbing of an audit: validated inputs, per-case series, groupings and replicates."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from segfair.audit.messages import (
    BAD_CAP,
    BAD_CONFIDENCE,
    BAD_ESTIMATOR,
    BAD_MIN_GROUP_SIZE,
    BAD_N_BOOT,
    BAD_NEGLIGIBLE,
    BAD_STATISTIC,
    DUPLICATE_SCORES,
    JOIN,
    NEGLIGIBLE_DISTANCE_GAP,
    NEGLIGIBLE_GAP,
    NO_PROXY,
    NOT_IN_COHORT,
    PPI_NEEDS_MEAN,
    UNKNOWN_AGREEMENT,
    UNKNOWN_ATTRIBUTE,
    UNKNOWN_CLUSTER,
    UNKNOWN_DESCRIPTOR,
    UNKNOWN_GROUP,
    UNKNOWN_LABEL,
    UNKNOWN_METRIC,
    UNKNOWN_MODEL,
    UNKNOWN_PROXY,
    UNKNOWN_RULER,
    UNKNOWN_STRUCTURE,
    WHICH_STRUCTURE,
    AuditError,
)
from segfair.audit.results import Estimate, _nan_estimate
from segfair.scores import Scores
from segfair.stats import (
    DISTANCE_METRICS,
    ESTIMATORS,
    FRACTION_METRICS,
    STATISTICS,
    STREAM_ABOVE,
    Design,
    Estimator,
    PPIDetail,
    Replicates,
    Statistic,
    build_design,
    cluster_df,
    few_clusters_interval,
    group_statistic,
    max_abs_interval,
    percentile_interval,
    ppi_means,
    rare_extreme_bound,
    rare_proxy_bound,
    studentized_interval,
)

__all__ = ["AuditCore", "ByArg", "Groups", "Series"]

#: Marks the replicates of one structure's audit in :meth:`AuditCore.computed`.
_STRUCTURE_KEY = "@structure"
#: Marks the replicates of the audit of another estimator (:meth:`AuditCore.with_estimator`).
_ESTIMATOR_KEY = "@estimator"


#: The values one pass over a streamed design's counts computes at most (``8 × cases × series``
#: bytes): more series are computed in more passes.
_PASS_BYTES = 256 * 2**20

#: The values of an index entry once its series is prepared (the series holds them).
_RELEASED = np.empty(0)

#: ``key → (cohort positions, values)`` of one long table.
_Index = dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]


class _WhichStructure(dict[Any, Any]):
    """The index of an audit of several structures: any read says to choose one."""

    def __init__(self, structures: tuple[str, ...]) -> None:
        super().__init__()
        self.structures = structures

    def _refuse(self, *_: Any) -> Any:
        n, valid = len(self.structures), ", ".join(self.structures)
        raise AuditError(WHICH_STRUCTURE.format(n=n, valid=valid))

    __getitem__ = get = items = keys = values = __iter__ = __contains__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (pytest-xdist's shared audit) by its structures, never by reading its items
        return (_WhichStructure, (self.structures,))


@dataclass(frozen=True, eq=False)
class Series:
    """One per-case series in cohort order: values used (NaN = not used) and what was set aside.

    ``proxy`` (a trusted-ruler series estimated prediction-powered): the same model and metric
    on the proxy ruler, which scores every case (:meth:`AuditCore.estimand_series`)."""

    key: tuple[Any, ...]
    label: str
    x: np.ndarray
    present: np.ndarray
    capped: np.ndarray
    undefined: np.ndarray
    proxy: Series | None = None

    def restrict(self, valid: np.ndarray, present: np.ndarray, tag: tuple[Any, ...]) -> Series:
        """The series on the ``valid`` cases only (a plain series: a restriction to some cases
        is estimated from them, never prediction-powered)."""
        return Series(
            key=(*self.key, *tag),
            label=self.label,
            x=np.where(valid, self.x, np.nan),
            present=self.present & present,
            capped=self.capped & valid,
            undefined=self.undefined & present,
        )

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.x)


@dataclass(frozen=True, eq=False)
class Groups:
    """Group labels of every case for one ``by`` and its bootstrap design."""

    key: tuple[str, ...]
    name: str
    labels: tuple[str, ...]
    codes: np.ndarray
    design: Design

    def values_of(self, i: int, x: np.ndarray) -> np.ndarray:
        """``x`` (cohort order) at the cases of group ``i``, in cohort order: ``x[codes == i]``
        without a pass over every case."""
        return x[self.design.order[self.design.block(i)]]


ByArg = str | Sequence[str]


class AuditCore:
    """The validated inputs of an audit and the plumbing every estimand uses.

    Row indexes of the long tables, per-case :class:`Series` (cached), :class:`Groups` with
    their bootstrap design, replicates, case weights, group tables and contrast gaps.
    """

    def __init__(
        self,
        scores: Scores,
        *,
        seed: int = 0,
        n_boot: int = 2000,
        confidence: float = 0.95,
        statistic: Statistic = "mean",
        cap: float = 150.0,
        cluster: str | None = None,
        min_group_size: int = 20,
        design_weights: pd.Series | None = None,
        estimator: Estimator = "labelled",
        proxy: str | None = None,
    ) -> None:
        if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 100:
            raise AuditError(BAD_N_BOOT.format(value=n_boot))
        _check_confidence(confidence)
        if statistic not in STATISTICS:
            raise AuditError(BAD_STATISTIC.format(valid=", ".join(STATISTICS), value=statistic))
        if not isinstance(cap, int | float) or not math.isfinite(cap) or cap <= 0:
            raise AuditError(BAD_CAP.format(value=cap))
        if (
            isinstance(min_group_size, bool)
            or not isinstance(min_group_size, int | np.integer)
            or min_group_size < 1
        ):
            raise AuditError(BAD_MIN_GROUP_SIZE.format(value=min_group_size))
        _check_estimator(estimator, statistic)
        if proxy is not None and (proxy not in scores.rulers or proxy == scores.trusted_ruler):
            valid = [r for r in scores.rulers if r != scores.trusted_ruler]
            raise AuditError(UNKNOWN_PROXY.format(name=proxy, valid=", ".join(valid) or "(none)"))
        self.scores = scores
        self.seed = int(seed)
        self.n_boot = int(n_boot)
        self.confidence = float(confidence)
        self.statistic: Statistic = statistic
        self.cap = float(cap)
        self.cluster = cluster
        self.min_group_size = int(min_group_size)
        self.design_weights = design_weights
        self.estimator: Estimator = estimator
        self.proxy = proxy
        self._settings: dict[str, Any] = dict(
            seed=seed,
            n_boot=n_boot,
            confidence=confidence,
            statistic=statistic,
            cap=cap,
            cluster=cluster,
            min_group_size=min_group_size,
            design_weights=design_weights,
            estimator=estimator,
            proxy=proxy,
        )
        self._children: dict[str, Self] = {}
        self._estimators: dict[str, Self] = {}
        self._ppi_details: dict[tuple[Any, ...], PPIDetail] = {}
        self._labelled: np.ndarray | None = None
        self._meta_columns: dict[Any, pd.Series] = {}
        #: The structures of the scores; with several, every estimand is asked of one
        #: structure's audit (:meth:`for_structure`), this one holds no series of its own.
        self.structures: tuple[str, ...] = tuple(scores.structures)
        groups = scores.groups.copy()
        groups.index = groups.index.astype(str)
        self._groups_table = groups.sort_index(kind="stable")
        self.cases = pd.Index(self._groups_table.index, name="case_id")
        self._score_index, self._agreement_index, self._morph_index = self._indexes(scores)
        self._cluster_codes = self._cluster(cluster) if cluster is not None else None
        self._groups_cache: dict[tuple[str, ...], Groups] = {}
        self._series_cache: dict[tuple[Any, ...], Series] = {}
        self._reps_cache: dict[tuple[Any, ...], Replicates] = {}
        #: replicates of single series on streamed designs (:meth:`_streamed_reps`)
        self._one_reps: dict[tuple[Any, ...], Replicates] = {}
        #: while :meth:`prefetch` learns: the series asked for, per grouping and statistic
        self._wanted: dict[tuple[Any, ...], dict[tuple[Any, ...], Series]] | None = None
        #: how many stand-in replicates :meth:`prefetch` has handed out (a result computed
        #: while this did not change is genuine)
        self.stand_ins = 0

    def _indexes(self, scores: Scores) -> tuple[_Index, _Index, _Index]:
        """The indexes of the score, agreement and morphology tables (checked once)."""
        if len(self.structures) > 1:
            # every estimand reads these indexes: with several structures, each read says to
            # choose a structure instead of mixing them (or finding nothing)
            which: _Index = _WhichStructure(self.structures)
            return which, which, which
        agreement = scores.agreement
        if "reference" in agreement.columns and len(agreement):
            agreement = agreement[agreement["reference"].astype(str) == scores.trusted_ruler]
        return (
            self._index_rows(scores.table, ("model", "ruler", "metric"), "score"),
            self._index_rows(agreement, ("ruler", "metric"), "agreement"),
            self._index_rows(scores.morphology, ("descriptor", "ruler"), "morphology"),
        )

    def __repr__(self) -> str:
        return (
            f"Audit({len(self.cases)} cases, models={list(self.scores.models)}, "
            f"rulers={list(self.scores.rulers)}, seed={self.seed}, n_boot={self.n_boot}, "
            f"confidence={self.confidence}, statistic={self.statistic!r})"
        )

    # -- input plumbing ------------------------------------------------------------------------

    def _index_rows(
        self, frame: pd.DataFrame, keys: tuple[str, ...], name: str
    ) -> dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]:
        """``key → (cohort positions, values)`` for one long table, checked once."""
        if len(frame) == 0:
            return {}
        # codes of the distinct values, each turned to text once (not once per row: a million
        # cases hold tens of millions of rows)
        codes, uniques = pd.factorize(frame["case_id"], use_na_sentinel=False)
        upos = self.cases.get_indexer(pd.Index([str(u) for u in uniques], dtype=object))
        pos = upos.astype(np.int32 if len(self.cases) < 2**31 else np.int64)[codes]
        del codes
        if (pos < 0).any():
            unknown = sorted({str(u) for u in np.asarray(uniques, dtype=object)[upos < 0]})
            raise AuditError(
                NOT_IN_COHORT.format(count=len(unknown), examples=", ".join(unknown[:5]))
            )
        values = frame["value"].to_numpy(dtype=np.float64)
        combined = np.zeros(len(frame), dtype=np.int64)
        for k in keys:
            c, u = pd.factorize(frame[k], use_na_sentinel=False)
            # values with the same text (1 and "1") are one key, as they always were
            text = [str(v) for v in u]
            distinct = {t: i for i, t in enumerate(dict.fromkeys(text))}
            width = max(1, len(distinct))
            if (int(combined.max()) + 1) * width > 2**62:  # keep the codes in range
                combined = pd.factorize(combined)[0].astype(np.int64)
            combined *= width
            combined += np.asarray([distinct[t] for t in text], dtype=np.int64)[c]
            del c
        inverse = pd.factorize(combined)[0]
        del combined
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(int(inverse.max()) + 2))
        del inverse
        first = order[bounds[:-1]]  # each key's first row (the sort is stable)
        at_first = [[str(v) for v in frame[k].iloc[first].tolist()] for k in keys]
        found = {tuple(col[i] for col in at_first): i for i in range(len(first))}
        # in the order of the keys' text, as the groups of a groupby were
        grouped = {kk: order[bounds[i] : bounds[i + 1]] for kk, i in sorted(found.items())}
        out: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        for kk, rows in grouped.items():
            p = pos[rows]
            # positions are cohort indexes: counting them finds a repeat in O(n)
            if len(p) and int(np.bincount(p, minlength=len(self.cases)).max()) > 1:
                dup = pd.Series(p).duplicated(keep=False).to_numpy()
                examples = sorted({self.cases[i] for i in p[dup]})[:3]
                raise AuditError(
                    DUPLICATE_SCORES.format(
                        table=name,
                        count=int(dup.sum()),
                        examples=", ".join(f"{e} {'/'.join(kk)}" for e in examples),
                    )
                )
            out[kk] = (p, values[rows])
        return out

    def metadata_column(self, column: str) -> pd.Series | None:
        """A metadata column in cohort order (index :attr:`cases`), or None when the metadata
        has no such column; aligned once per audit.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> Audit(example_scores(), n_boot=200).metadata_column("age").iloc[:2].tolist()
        [35, 36]
        """
        meta = self.scores.metadata
        if meta is None or column not in meta.columns:
            return None
        aligned = self._meta_columns.get(column)
        if aligned is None:
            col = meta[column]
            col = col.set_axis(col.index.astype(str))
            aligned = self._meta_columns[column] = col.reindex(self.cases)
        return aligned

    def numeric_metadata(self, column: str) -> pd.Series | None:
        """:meth:`metadata_column` as numbers (what cannot be read as one is NaN), converted
        once per audit; None when the metadata has no such column."""
        col = self.metadata_column(column)
        if col is None:
            return None
        key = ("numeric", column)
        found = self._meta_columns.get(key)
        if found is None:
            found = self._meta_columns[key] = pd.to_numeric(col, errors="coerce")
        return found

    def _cluster(self, column: str) -> np.ndarray:
        meta = self.scores.metadata
        found = self.metadata_column(column)
        if found is not None:
            col = found
        elif column in self._groups_table.columns:
            col = self._groups_table[column]
        else:
            valid = sorted(
                set(meta.columns if meta is not None else []) | set(self._groups_table.columns)
            )
            raise AuditError(UNKNOWN_CLUSTER.format(name=column, valid=", ".join(map(str, valid))))
        labels = col.astype(object).where(col.notna(), UNKNOWN_LABEL).astype(str)
        _, codes = np.unique(labels.to_numpy(dtype=object).astype(str), return_inverse=True)
        return codes.astype(np.int64)

    def grouping(self, by: ByArg) -> Groups:
        key = (by,) if isinstance(by, str) else tuple(by)
        if not key:
            raise AuditError(
                UNKNOWN_ATTRIBUTE.format(name="", valid=", ".join(self.scores.attributes))
            )
        cached = self._groups_cache.get(key)
        if cached is not None:
            return cached
        for a in key:
            if a not in self._groups_table.columns:
                raise AuditError(
                    UNKNOWN_ATTRIBUTE.format(
                        name=a, valid=", ".join(map(str, self._groups_table.columns))
                    )
                )
        levels: list[list[str]] = []
        codes_list: list[np.ndarray] = []
        for a in key:
            labels, codes = _encode(self._groups_table[a])
            levels.append(labels)
            codes_list.append(codes)
        if len(key) == 1:
            labels_t, codes = tuple(levels[0]), codes_list[0]
        else:
            # only combinations that occur, ordered by the levels of each attribute
            stacked = np.stack(codes_list, axis=1)
            combos, codes = np.unique(stacked, axis=0, return_inverse=True)
            labels_t = tuple(JOIN.join(levels[i][c] for i, c in enumerate(row)) for row in combos)
            codes = codes.reshape(-1)
        design = build_design(
            codes,
            labels_t,
            key=key,
            n_boot=self.n_boot,
            seed=self.seed,
            clusters=self._cluster_codes,
        )
        out = Groups(
            key=key,
            name=JOIN.join(key),
            labels=labels_t,
            codes=np.asarray(codes, dtype=np.int64),
            design=design,
        )
        self._groups_cache[key] = out
        return out

    def _check_model(self, model: str) -> None:
        if model not in self.scores.models:
            raise AuditError(UNKNOWN_MODEL.format(name=model, valid=", ".join(self.scores.models)))

    def _check_ruler(self, ruler: str) -> None:
        if ruler not in self.scores.rulers:
            raise AuditError(UNKNOWN_RULER.format(name=ruler, valid=", ".join(self.scores.rulers)))

    def series(self, metric: str, *, model: str, ruler: str) -> Series:
        self._check_model(model)
        self._check_ruler(ruler)
        idx = self._score_index

        def unknown() -> str:
            valid = sorted({k[2] for k in idx if k[0] == model and k[1] == ruler})
            return UNKNOWN_METRIC.format(
                name=metric, model=model, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("score", metric, model, ruler),
            idx,
            (model, ruler, metric),
            unknown,
            f"{model} @ {ruler}",
            metric,
        )

    def estimand_series(self, metric: str, *, model: str, ruler: str) -> Series:
        """The series a group statistic of ``model``'s ``metric`` on ``ruler`` is estimated from:
        :meth:`series`, carrying its proxy when this audit's estimator is ``"ppi"``, the ruler is
        the trusted one and some cases have no trusted label.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> a = Audit(example_scores(), n_boot=200, estimator="ppi")
        >>> a.estimand_series("dice", model="m", ruler="expert").proxy is None  # all labelled
        True
        """
        s = self.series(metric, model=model, ruler=ruler)
        if (
            self.estimator != "ppi"
            or ruler != self.scores.trusted_ruler
            or bool(self.labelled_mask().all())
        ):
            # every case labelled: the prediction-powered mean is the labelled one, exactly
            return s
        proxy = self.proxy_ruler()
        key = (*s.key, "ppi", proxy)
        hit = self._series_cache.get(key)
        if hit is None:
            p = self.series(metric, model=model, ruler=proxy)
            hit = Series(
                key=key,
                label=s.label,
                x=s.x,
                present=s.present,
                capped=s.capped,
                undefined=s.undefined,
                proxy=p,
            )
            self._series_cache[key] = hit
        return hit

    def proxy_ruler(self) -> str:
        """The ruler prediction-powered estimates use as proxy: ``proxy`` if given, else the one
        ruler other than the trusted one that scores every case.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> Audit(example_scores(), n_boot=200).proxy_ruler()
        'auto'
        """
        if self.proxy is not None:
            return self.proxy
        if len(self.structures) > 1:
            return self.for_structure(self.structures[0]).proxy_ruler()
        trusted = self.scores.trusted_ruler
        others = [r for r in self.scores.rulers if r != trusted]
        cover = {r: np.zeros(len(self.cases), dtype=bool) for r in others}
        for (_, r, _), (pos, _) in self._score_index.items():
            if r in cover:
                cover[r][pos] = True
        complete = [r for r in others if cover[r].all()]
        if len(complete) == 1:
            return complete[0]
        why = (
            f"several rulers do ({', '.join(complete)}): say which"
            if complete
            else "no other ruler scores every case"
        )
        raise AuditError(
            NO_PROXY.format(trusted=trusted, why=why, valid=", ".join(others) or "(none)")
        )

    def with_estimator(self, estimator: Estimator | None) -> Self:
        """This audit with another estimator for the trusted ruler's statistics (same scores,
        seed and settings; built once). None: this audit.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> a = Audit(example_scores(), n_boot=200)
        >>> a.with_estimator("ppi").estimator, a.with_estimator(None) is a
        ('ppi', True)
        """
        if estimator is None or estimator == self.estimator:
            return self
        _check_estimator(estimator, self.statistic)
        child = self._estimators.get(estimator)
        if child is None:
            child = type(self)(self.scores, **{**self._settings, "estimator": estimator})
            self._estimators[estimator] = child
        return child

    def agreement_series(self, metric: str, *, ruler: str) -> Series:
        self._check_ruler(ruler)
        idx = self._agreement_index

        def unknown() -> str:
            valid = sorted({k[1] for k in idx if k[0] == ruler})
            return UNKNOWN_AGREEMENT.format(
                name=metric, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("agreement", metric, ruler),
            idx,
            (ruler, metric),
            unknown,
            f"{ruler} vs {self.scores.trusted_ruler}",
            metric,
        )

    def descriptor_series(self, name: str, *, ruler: str) -> Series:
        idx = self._morph_index

        def unknown() -> str:
            valid = sorted({k[0] for k in idx if k[1] == ruler})
            return UNKNOWN_DESCRIPTOR.format(
                name=name, ruler=ruler, valid=", ".join(valid) or "(none)"
            )

        return self._cached(
            ("descriptor", name, ruler), idx, (name, ruler), unknown, f"{name} ({ruler})", name
        )

    def _cached(
        self,
        key: tuple[Any, ...],
        index: _Index,
        at: tuple[str, ...],
        unknown: Callable[[], str],
        label: str,
        metric: str,
    ) -> Series:
        """One per-case series, prepared once from ``index[at]`` (positions, values); a key
        the index does not hold raises ``unknown()`` (what it has)."""
        hit = self._series_cache.get(key)
        if hit is not None:
            return hit
        found = index.get(at)
        if found is None:
            raise AuditError(unknown())
        s = self._prepare(key, label, metric, *found)
        self._series_cache[key] = s
        # the series holds the values now: the index keeps only where they were (a million
        # cases: 8 bytes a row of every table)
        index[at] = (found[0], _RELEASED)
        return s

    def _prepare(
        self, key: tuple[Any, ...], label: str, metric: str, pos: np.ndarray, values: np.ndarray
    ) -> Series:
        n = len(self.cases)
        raw = np.full(n, np.nan)
        raw[pos] = values
        present = np.zeros(n, dtype=bool)
        present[pos] = True
        capped = np.zeros(n, dtype=bool)
        if metric in DISTANCE_METRICS:
            # a missed lesion has no finite distance; MAMA-MIA scores it at the cap
            capped = present & np.isposinf(raw)
            raw = np.where(capped, self.cap, raw)
        raw = np.where(np.isfinite(raw), raw, np.nan)
        undefined = present & np.isnan(raw)
        return Series(
            key=key, label=label, x=raw, present=present, capped=capped, undefined=undefined
        )

    def _reps(self, g: Groups, series: Sequence[Series], statistic: Statistic) -> Replicates:
        key = (g.key, tuple(s.key for s in series), statistic)
        hit = self._reps_cache.get(key)
        if hit is not None:
            return hit
        if any(s.proxy is not None for s in series):
            return self._ppi_reps(g, series, statistic, key)
        if g.design.streamed:
            out = self._streamed_reps(g, series, statistic)
            if self._wanted is not None:
                return out  # a stand-in, never kept
        else:
            x = np.stack([s.x for s in series], axis=1)
            out = group_statistic(g.design, x, statistic, self.case_weights(series))
        self._reps_cache[key] = out
        return out

    def _ppi_reps(
        self, g: Groups, series: Sequence[Series], statistic: Statistic, key: tuple[Any, ...]
    ) -> Replicates:
        """Replicates of series some of which are prediction-powered (:func:`ppi_means`), each
        computed on its own (one pass over the design's counts) and kept."""
        if statistic != "mean":
            raise AuditError(PPI_NEEDS_MEAN.format(statistic=statistic))
        if self._wanted is not None and g.design.streamed:
            # learning what a large cohort asks for: prediction-powered series are computed
            # when asked, each in its own pass, so nothing is noted
            self.stand_ins += 1
            return _stand_in(g, series, statistic)
        parts = []
        for s in series:
            if s.proxy is None:
                parts.append(self._reps(g, [s], statistic))
                continue
            hit = self._reps_cache.get((g.key, (s.key,), statistic))
            parts.append(hit if hit is not None else self._ppi_of(g, s)[0])
        out = parts[0] if len(parts) == 1 else Replicates.stack(parts)
        self._reps_cache[key] = out
        return out

    def ppi_detail(self, g: Groups, series: Series) -> PPIDetail:
        """What the prediction-powered estimate of ``series`` on ``g`` is made of (``λ``, the
        proxy mean, the rectifier, per group): computed with its replicates."""
        found = self._ppi_details.get((g.key, series.key))
        return found if found is not None else self._ppi_of(g, series)[1]

    def _ppi_of(self, g: Groups, series: Series) -> tuple[Replicates, PPIDetail]:
        """:func:`ppi_means` of one prediction-powered series on ``g``, both parts kept (the
        replicates as another process may have handed them over are not replaced)."""
        assert series.proxy is not None
        w = self.case_weights([series])
        reps, detail = ppi_means(
            g.design, [series.x], [series.proxy.x], None if w is None else [w[:, 0]]
        )
        reps = self._reps_cache.setdefault((g.key, (series.key,), "mean"), reps)
        self._ppi_details[(g.key, series.key)] = detail
        return reps, detail

    def _streamed_reps(
        self, g: Groups, series: Sequence[Series], statistic: Statistic
    ) -> Replicates:
        """Replicates on a streamed design, whose counts are drawn anew for every pass over
        them (a large cohort): for means, one pass computes every series this audit holds,
        each kept on its own for later requests. While :meth:`prefetch` learns what is asked
        for, the request is noted and answered with a stand-in."""
        one = self._one_reps
        missing = list({s.key: s for s in series if (g.key, s.key, statistic) not in one}.values())
        if self._wanted is not None:
            for s in missing:
                # one copy of a series asked for on several attributes (a paired series is
                # made anew by each request): a million cases hold 11 MB a series
                kept = self._wanted.setdefault((), {}).setdefault(s.key, s)
                self._wanted.setdefault((g.key, statistic), {})[s.key] = kept
            self.stand_ins += 1
            return _stand_in(g, series, statistic)
        if missing:
            self._compute(g, missing, statistic)
        return Replicates.stack([one[(g.key, s.key, statistic)] for s in series])

    def _compute(self, g: Groups, wanted: Sequence[Series], statistic: Statistic) -> None:
        """Replicates of ``wanted`` (and, for means, of every other series of this audit) in
        one pass over the counts of ``g``'s design: weighted series in a second one."""
        todo = list(wanted)
        if statistic == "mean":
            asked = {s.key for s in todo}
            todo += [
                s
                for s in self._known_series()
                if s.key not in asked and (g.key, s.key, statistic) not in self._one_reps
            ]
        weighted = [s for s in todo if self.case_weights([s]) is not None]
        plain = [s for s in todo if self.case_weights([s]) is None]
        for part in (plain, weighted):
            if part:
                r = group_statistic(
                    g.design, [s.x for s in part], statistic, self.case_weights(part)
                )
                for j, s in enumerate(part):
                    self._one_reps[(g.key, s.key, statistic)] = r.series(j)

    @property
    def learning(self) -> bool:
        """Whether :meth:`prefetch` is learning what is asked of the bootstrap: replicates are
        stand-ins, and an estimand may skip what does not ask for any (its result is thrown
        away)."""
        return self._wanted is not None

    def prefetch(self, work: Callable[[], object]) -> None:
        """Run ``work`` once to learn which replicates it asks for on streamed designs (a
        large cohort, :data:`segfair.stats.STREAM_ABOVE`), then compute them together: one pass
        over each design's counts instead of one per request. ``work`` sees stand-in
        replicates, so whatever it returns or raises is discarded; run it again afterwards.
        Nothing happens for a cohort whose designs are stored.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> a = Audit(example_scores(), n_boot=200)
        >>> a.prefetch(lambda: a.gap("dice", by="age", model="m"))  # small: nothing to do
        """
        if self.n_boot * len(self.cases) <= STREAM_ABOVE:
            return
        # every structure's audit learns in the same run (gates and sections ask each of them)
        audits = (
            [self] if len(self.structures) == 1 else list(map(self.for_structure, self.structures))
        )
        for a in audits:
            a._wanted = {}
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                work()
        except Exception:  # a stand-in may have misled it: the real run says what is wrong
            pass
        finally:
            learnt = [(a, a._wanted or {}) for a in audits]
            for a in audits:
                a._wanted = None
        for a, wanted in learnt:
            wanted.pop((), None)
            for (by, statistic), series in wanted.items():
                todo = [s for k, s in series.items() if (by, k, statistic) not in a._one_reps]
                if todo:
                    a._compute(a.grouping(by), todo, statistic)

    def _known_series(self) -> list[Series]:
        """Every score, agreement and descriptor series of this audit (of one structure)."""
        if len(self.structures) > 1:
            return []
        makers: list[Callable[[], Series]] = [
            *(
                functools.partial(self.series, k[2], model=k[0], ruler=k[1])
                for k in self._score_index
            ),
            *(
                functools.partial(self.agreement_series, k[1], ruler=k[0])
                for k in self._agreement_index
            ),
            *(
                functools.partial(self.descriptor_series, k[0], ruler=k[1])
                for k in self._morph_index
            ),
        ]
        out = []
        for make in makers:
            try:
                out.append(make())
            except AuditError:  # a model or ruler the scores hold but do not declare: not asked
                continue
        return out

    def for_structure(self, name: str) -> Self:
        """The audit of one structure (this audit when it is the only one), built once, with
        the same seed and settings: every estimand is per structure.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> a = Audit(example_scores(), n_boot=200)
        >>> a.for_structure("foreground") is a
        True
        """
        if name not in self.structures:
            raise AuditError(UNKNOWN_STRUCTURE.format(name=name, valid=", ".join(self.structures)))
        if len(self.structures) == 1:
            return self
        child = self._children.get(name)
        if child is None:
            child = type(self)(self.scores.for_structure(name), **self._settings)
            self._children[name] = child
        return child

    def computed(self) -> dict[tuple[Any, ...], Replicates]:
        """The bootstrap replicates computed so far, keyed by grouping, series and statistic.

        Another process auditing the same scores with the same seed and settings computes the
        same replicates (the bootstrap is deterministic), so it can :meth:`adopt` these instead
        of recomputing them — pytest-xdist's controller does, for the report.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> a, b = Audit(example_scores(), n_boot=200), Audit(example_scores(), n_boot=200)
        >>> _ = a.gap("dice", by="age", model="m")
        >>> b.adopt(a.computed())
        >>> b.gap("dice", by="age", model="m").gap == a.gap("dice", by="age", model="m").gap
        True
        """
        out = dict(self._reps_cache)
        for name, child in self._children.items():
            out.update({(_STRUCTURE_KEY, name, k): r for k, r in child.computed().items()})
        for name, child in self._estimators.items():
            out.update({(_ESTIMATOR_KEY, name, k): r for k, r in child.computed().items()})
        return out

    def adopt(self, computed: Mapping[tuple[Any, ...], Replicates]) -> None:
        """Take replicates :meth:`computed` by an audit of the same scores, seed and settings;
        those already computed here are kept (they are the same)."""
        for key, reps in computed.items():
            if len(key) == 3 and key[0] == _STRUCTURE_KEY:
                if key[1] in self.structures:
                    self.for_structure(key[1]).adopt({key[2]: reps})
                continue
            if len(key) == 3 and key[0] == _ESTIMATOR_KEY:
                if key[1] in ESTIMATORS:
                    self.with_estimator(key[1]).adopt({key[2]: reps})
                continue
            self._reps_cache.setdefault(key, reps)

    def labelled_mask(self) -> np.ndarray:
        """Which cases (in cohort order, :attr:`cases`) carry a score on the trusted ruler.

        Example
        -------
        >>> from segfair.audit import Audit, example_scores
        >>> int(Audit(example_scores(), n_boot=200).labelled_mask().sum())
        40
        """
        if len(self.structures) > 1:  # a case's trusted mask holds every structure
            return self.for_structure(self.structures[0]).labelled_mask()
        if self._labelled is None:
            mask = np.zeros(len(self.cases), dtype=bool)
            for (_, r, _), (pos, _) in self._score_index.items():
                if r == self.scores.trusted_ruler:
                    mask[pos] = True
            self._labelled = mask
        return self._labelled.copy()

    def case_weights(self, series: Sequence[Series]) -> np.ndarray | None:
        """Design weights per case and series, or None when no series is from the sample.

        A series is weighted when every case it holds is in the trusted ruler's labelled
        sample (and that sample is not the whole cohort); its availability is then set by the
        sampling design. A complete series (an automated ruler) keeps weight 1.
        """
        if self.design_weights is None:
            return None
        cached = getattr(self, "_design_cache", None)
        if cached is None:
            sampled = self.labelled_mask()
            w = pd.to_numeric(self.design_weights, errors="coerce")
            w.index = w.index.astype(str)
            wv = w.reindex(self.cases).to_numpy(dtype=np.float64)
            wv = np.where(np.isfinite(wv) & (wv > 0), wv, 1.0)
            cached = (sampled, wv)
            self._design_cache = cached
        sampled, wv = cached
        if sampled.all():
            return None
        cols = [wv if not (s.present & ~sampled).any() else np.ones_like(wv) for s in series]
        if all(c is not wv for c in cols):
            return None
        return np.stack(cols, axis=1)

    def _conf(self, confidence: float | None) -> float:
        if confidence is None:
            return self.confidence
        _check_confidence(confidence)
        return float(confidence)

    def _select(self, g: Groups, groups: Iterable[str] | None) -> np.ndarray:
        if groups is None:
            return np.arange(len(g.labels))
        wanted = list(groups)
        for w in wanted:
            if w not in g.labels:
                raise AuditError(UNKNOWN_GROUP.format(name=w, by=g.name, valid=", ".join(g.labels)))
        return np.array([i for i, lab in enumerate(g.labels) if lab in set(wanted)], dtype=int)

    def _counts(self, g: Groups, mask: np.ndarray) -> np.ndarray:
        return np.bincount(g.codes[mask], minlength=len(g.labels))

    # -- building blocks -----------------------------------------------------------------------

    def _group_table(
        self, g: Groups, reps: Replicates, s: int, series: Series, conf: float
    ) -> tuple[pd.DataFrame, pd.Series, list[str]]:
        notes: list[str] = []
        n = reps.n[:, s]
        lo, hi = self.group_interval(reps, s, conf)
        lo, hi = self._guard_rare(g, reps, s, series, conf, lo, hi)
        if g.design.clustered and reps.se is not None:
            # a few sites: the t reference with K − 1 degrees of freedom, where wider
            tlo, thi = few_clusters_interval(
                reps.estimate[:, s], reps.se[:, s], self._cluster_dfs(g, series), conf
            )
            lo, hi = np.fmin(lo, tlo), np.fmax(hi, thi)
        low, high = _metric_range(series, self._cap_for(series))
        # a mean lies in its metric's range: clipping there never loses coverage
        lo, hi = np.clip(lo, low, high), np.clip(hi, low, high)
        ok = self._interval_ok(g, n)
        lo = np.where(ok, lo, np.nan)
        hi = np.where(ok, hi, np.nan)
        for i, lab in enumerate(g.labels):
            if n[i] == 0:
                notes.append(f"group {lab!r} has no values of {series.label}: no estimate")
            elif n[i] == 1:
                notes.append(f"group {lab!r} has a single value of {series.label}: no interval")
            elif g.design.clustered and g.design.n_clusters[i] < 2:
                notes.append(f"group {lab!r} spans a single cluster: no interval")
        if series.proxy is not None:
            notes += self._ppi_notes(g, series)
        capped = self._counts(g, series.capped)
        undefined = self._counts(g, series.undefined)
        frame = pd.DataFrame(
            {
                "n": n.astype(np.int64),
                "estimate": reps.estimate[:, s],
                "lower": lo,
                "upper": hi,
                "capped": capped.astype(np.int64),
                "undefined": undefined.astype(np.int64),
            },
            index=pd.Index(list(g.labels), name=g.name),
        )
        olo, ohi = percentile_interval(reps.overall_reps[:, s], conf)
        n_all = int(n.sum())
        overall = pd.Series(
            {
                "n": n_all,
                "estimate": float(reps.overall[s]),
                "lower": float(olo) if n_all > 1 else float("nan"),
                "upper": float(ohi) if n_all > 1 else float("nan"),
                "capped": int(capped.sum()),
                "undefined": int(undefined.sum()),
            },
            name="overall",
            dtype=np.float64,
        )
        if int(undefined.sum()):
            notes.append(
                f"{int(undefined.sum())} undefined value(s) of {series.label} left out "
                "(counted per group in 'undefined')"
            )
        return frame, overall, notes

    def _ppi_notes(self, g: Groups, series: Series) -> list[str]:
        """What a prediction-powered group table rests on, and the labelled cases it could not
        use (a trusted score without a proxy score)."""
        assert series.proxy is not None
        proxy = series.proxy
        n_all = int(proxy.valid.sum())
        n_lab = int((series.valid & proxy.valid).sum())
        notes = [
            f"prediction-powered (estimator 'ppi'): {series.label} = λ × the mean of "
            f"{proxy.label} over all {n_all} cases with it + the mean of the difference over "
            f"the {n_lab} labelled ones ('n' counts those)"
        ]
        left_out = (
            (series.valid & ~proxy.valid, "labelled case(s)"),
            # a case the proxy does not score (missing or undefined) is outside the population
            # the proxy mean describes, labelled or not
            (~series.valid & ~proxy.valid, "unlabelled case(s)"),
        )
        for mask, what in left_out:
            lost = self._counts(g, mask)
            if int(lost.sum()):
                where = ", ".join(f"{g.labels[i]!r}: {int(c)}" for i, c in enumerate(lost) if c)
                notes.append(
                    f"{int(lost.sum())} {what} without a {proxy.label} score are left out of "
                    f"the prediction-powered estimate ({where})"
                )
        return notes

    def _cluster_dfs(self, g: Groups, series: Series) -> np.ndarray:
        """Per group, the effective degrees of freedom of its mean over its clusters."""
        cc = self._cluster_codes
        valid = ~np.isnan(series.x)
        out = np.full(len(g.labels), np.nan)
        if cc is None:
            return out
        for i in range(len(g.labels)):
            out[i] = cluster_df(cc[valid & (g.codes == i)])
        return out

    def extreme_of(self, series: Series) -> float | None:
        """The value of a miss for this series' metric (0 for overlaps, the cap for
        distances), or None when its means get no rare-miss guard (medians, clustered or
        design-weighted series, descriptors)."""
        if self.statistic != "mean" or self._cluster_codes is not None:
            return None
        if self.case_weights([series]) is not None or series.key[0] == "descriptor":
            return None
        metric = str(series.key[1])
        # A capped distance: whether or not the cohort drew a miss anywhere. One miss weighs
        # cap / sd (≈ 25) typical values, so misses a group did not draw dominate its mean
        # and nothing in the sample shows them — a small group's misses may be the only ones
        # (measured: 700/700/40 with misses only in the 40, gap upper bound erred 11%).
        if metric in DISTANCE_METRICS:
            return max(self.cap, self._penalty(metric))
        # An overlap score: a miss (0) weighs a few typical values, and the studentized interval
        # holds its rate unless the cohort shows a miss mechanism its small groups did not draw
        # (measured: misses only in a group of 40, 2.7%; docs/statistics.md)
        # (prediction-powered: a miss on either ruler)
        if metric in FRACTION_METRICS and (
            bool(np.any(series.x == 0.0))
            or (series.proxy is not None and bool(np.any(series.proxy.x == 0.0)))
        ):
            return 0.0
        return None

    def _rare_bound(
        self, g: Groups, i: int, reps: Replicates, s: int, series: Series, ext: float, conf: float
    ) -> float:
        """The rare-miss bound of group ``i``'s mean (NaN: none): :func:`rare_extreme_bound` of
        its values, or for a prediction-powered mean :func:`rare_proxy_bound` (misses the
        proxy shows but the labelled cases did not draw; discordances the labelled cases did
        not draw, where the cohort shows they occur or the metric is a distance)."""
        se = float(reps.se[i, s]) if reps.se is not None else float("nan")
        if series.proxy is None:
            return rare_extreme_bound(g.values_of(i, series.x), extreme=ext, confidence=conf, se=se)
        proxy = series.proxy.x
        at_t = np.isclose(series.x, ext, rtol=0.0, atol=1e-12)
        at_a = np.isclose(proxy, ext, rtol=0.0, atol=1e-12)
        discordance = str(series.key[1]) in DISTANCE_METRICS or bool(
            np.any(at_t & ~at_a & ~np.isnan(proxy))
        )
        return rare_proxy_bound(
            g.values_of(i, series.x),
            g.values_of(i, proxy),
            estimate=float(reps.estimate[i, s]),
            lam=float(self.ppi_detail(g, series).lam[i, 0]),
            extreme=ext,
            confidence=conf,
            se=se,
            discordance=discordance,
        )

    def _cap_for(self, series: Series) -> float:
        """The largest value a miss takes in this series: the cap, or a larger penalty."""
        metric = str(series.key[1]) if series.key[0] != "descriptor" else ""
        return max(self.cap, self._penalty(metric))

    def _penalty(self, metric: str) -> float:
        """The finite score a missed lesion gets in this metric's own definition (the
        lesion-wise HD95 penalty, recorded with the scores), else 0."""
        if metric != "lesion_hd95":
            return 0.0
        lesions = self.scores.settings.get("lesions")
        value = lesions.get("hd95_penalty_mm") if isinstance(lesions, dict) else None
        return float(value) if isinstance(value, int | float) else 0.0

    def _guard_rare(
        self,
        g: Groups,
        reps: Replicates,
        s: int,
        series: Series,
        conf: float,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Widen the bound toward the miss value where misses are rare in a small group
        (:func:`segfair.stats.rare_extreme_bound`); the other bound is kept."""
        ext = self.extreme_of(series)
        if ext is None or reps.se is None:
            return lo, hi
        lo, hi = lo.copy(), hi.copy()
        for i in range(len(g.labels)):
            b = self._rare_bound(g, i, reps, s, series, ext, conf)
            if math.isnan(b):
                continue
            if ext < reps.estimate[i, s]:
                lo[i] = min(lo[i], b)
            else:
                hi[i] = max(hi[i], b)
        return lo, hi

    @staticmethod
    def group_interval(reps: Replicates, s: int, conf: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-group interval of series ``s``: studentized for means, percentile for medians."""
        if reps.se is None or reps.se_reps is None:
            return percentile_interval(reps.reps[:, :, s], conf)
        return studentized_interval(
            reps.estimate[:, s], reps.se[:, s], reps.reps[:, :, s], reps.se_reps[:, :, s], conf
        )

    @staticmethod
    def contrast_se(
        reps: Replicates, s: int, i: np.ndarray, j: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Standard errors of the contrasts ``m_i − m_j`` of series ``s`` (groups are
        resampled independently, so variances add), point and per resample; None for medians."""
        if reps.se is None or reps.se_reps is None:
            return None, None
        se, sr = reps.se[:, s], reps.se_reps[:, :, s]
        return np.hypot(se[i], se[j]), np.hypot(sr[:, i], sr[:, j])

    def _interval_ok(self, g: Groups, n: np.ndarray) -> np.ndarray:
        ok = n >= 2
        if g.design.clustered:
            ok &= g.design.n_clusters >= 2
        return np.asarray(ok)

    def _contrast_gap(
        self,
        g: Groups,
        reps: Replicates,
        s: int,
        sel: np.ndarray,
        conf: float,
        series: Series | None = None,
    ) -> tuple[Estimate, np.ndarray, list[str]]:
        """Gap over ``sel`` groups; returns its Estimate, the groups used and notes.

        With ``series`` the upper bound also allows for misses a small group did not draw
        (:meth:`_rare_gap_upper`)."""
        notes: list[str] = []
        n = reps.n[sel, s]
        used = sel[n > 0]
        for i in sel[n == 0]:
            notes.append(f"group {g.labels[i]!r} has no values and is left out of the gap")
        if len(used) < 2:
            notes.append("fewer than two groups with values: no gap")
            return _nan_estimate(conf), used, notes
        est = reps.estimate[used, s]
        rr = reps.reps[:, used, s]
        i, j = np.triu_indices(len(used), k=1)
        cse, cse_reps = self.contrast_se(reps, s, used[i], used[j])
        limit = None if series is None else self._rare_away_limit(g, reps, s, series, used, conf)
        e, lo, hi = max_abs_interval(
            est[i] - est[j],
            rr[:, i] - rr[:, j],
            conf,
            se=cse,
            se_reps=cse_reps,
            away_limit=limit,
        )
        if series is not None and not math.isnan(hi):
            hi = max(hi, self._rare_gap_upper(g, reps, s, series, used, conf))
            low, high = _metric_range(series, self._cap_for(series))
            hi = min(hi, high - low)
        if not self._interval_ok(g, reps.n[:, s])[used].all():
            lo = hi = float("nan")
            notes.append(
                "a group without an interval (n = 1 or a single cluster) leaves the gap without one"
            )
        dropped = int(np.isnan(rr).any(axis=1).sum())
        if dropped:
            notes.append(
                f"{dropped} of {rr.shape[0]} resamples held no value of some group and "
                "were left out of the intervals"
            )
        return Estimate(e, lo, hi, conf), used, notes

    def _rare_bounds(
        self,
        g: Groups,
        reps: Replicates,
        s: int,
        series: Series,
        used: np.ndarray,
        conf2: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Group bounds of ``used`` at two-sided ``conf2`` (studentized), the bound toward the
        miss value widened by the rare-miss guard, and which groups it widened (None: none)."""
        ext = self.extreme_of(series)
        if ext is None or reps.se is None or len(used) < 2:
            return None
        lo, hi = self.group_interval(reps, s, conf2)
        lo, hi = lo[used].copy(), hi[used].copy()
        active = np.zeros(len(used), dtype=bool)
        for k, i in enumerate(used):
            b = self._rare_bound(g, i, reps, s, series, ext, conf2)
            # a guard that does not reach beyond the studentized bound changes nothing
            if ext < reps.estimate[i, s] and b < lo[k]:
                lo[k], active[k] = b, True
            elif ext > reps.estimate[i, s] and b > hi[k]:
                hi[k], active[k] = b, True
        return (lo, hi, active) if active.any() else None

    def _rare_gap_upper(
        self, g: Groups, reps: Replicates, s: int, series: Series, used: np.ndarray, conf: float
    ) -> float:
        """An upper bound of the gap over the pairs that hold a group with rare misses.

        Each pair is bounded by ``upper_i − lower_j`` with the group bounds at ``conf``, the
        bound toward the miss value widened by the rare-miss guard. Two half-widths add up to
        more than the contrast's (up to √2 times), which pays for combining two bounds; the
        guard pays for the misses a group did not draw. The gap's upper bound is the larger of
        this and the contrasts' bound. NaN when no group has unseen misses.
        """
        found = self._rare_bounds(g, reps, s, series, used, conf)
        if found is None:
            return float("nan")
        lo, hi, active = found
        pair = hi[:, None] - lo[None, :]
        involved = active[:, None] | active[None, :]
        np.fill_diagonal(involved, False)
        return float(np.nanmax(np.where(involved, pair, -np.inf)))

    def _rare_away_limit(
        self, g: Groups, reps: Replicates, s: int, series: Series, used: np.ndarray, conf: float
    ) -> np.ndarray | None:
        """Per pair (``triu`` order of ``used``) a ceiling on its distance from zero in the
        gap's lower bound, where a group has rare misses: ``max(0, lower_i − upper_j,
        lower_j − upper_i)`` with group bounds one-sided at ``(1 − conf) / (8K)``, the level
        of the contrasts' own Bonferroni bound. A group that drew none of its rare misses
        looks better than it is; this keeps it from making "a real gap"."""
        k = len(used) * (len(used) - 1) // 2
        if k == 0:
            return None
        found = self._rare_bounds(g, reps, s, series, used, 1 - (1 - conf) / (4 * k))
        if found is None:
            return None
        lo, hi, active = found
        i, j = np.triu_indices(len(used), k=1)
        away = np.maximum(np.maximum(lo[i] - hi[j], lo[j] - hi[i]), 0.0)
        return np.where(active[i] | active[j], away, np.nan)

    def _plugin_gap_reps(self, reps: Replicates, s: int, used: np.ndarray) -> np.ndarray:
        rr = reps.reps[:, used, s]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = rr.max(axis=1) - rr.min(axis=1)
        return np.asarray(out)

    def negligible_for(self, metric: str, negligible: float | None) -> float:
        if negligible is None:
            return NEGLIGIBLE_DISTANCE_GAP if metric in DISTANCE_METRICS else NEGLIGIBLE_GAP
        if not isinstance(negligible, int | float) or not negligible >= 0:
            raise AuditError(BAD_NEGLIGIBLE.format(value=negligible))
        return float(negligible)


def _stand_in(g: Groups, series: Sequence[Series], statistic: Statistic) -> Replicates:
    """Replicates that are only the point estimates (zero spread): what :meth:`AuditCore.prefetch`
    answers while it learns which replicates are needed."""
    n_groups, n_boot = len(g.labels), g.design.n_boot
    est = np.full((n_groups, len(series)), np.nan)
    n = np.zeros((n_groups, len(series)), dtype=np.int64)
    overall = np.full(len(series), np.nan)
    for j, s in enumerate(series):
        valid = s.valid
        n[:, j] = np.bincount(g.codes[valid], minlength=n_groups)
        if statistic == "mean":
            sums = np.bincount(g.codes[valid], weights=s.x[valid], minlength=n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                est[:, j] = sums / n[:, j]
            overall[j] = float(s.x[valid].mean()) if valid.any() else np.nan
        else:
            for i in range(n_groups):
                pick = valid & (g.codes == i)
                est[i, j] = float(np.median(s.x[pick])) if pick.any() else np.nan
            overall[j] = float(np.median(s.x[valid])) if valid.any() else np.nan
    zeros = np.zeros_like(est) if statistic == "mean" else None
    return Replicates(
        estimate=est,
        reps=np.broadcast_to(est, (n_boot, *est.shape)).copy(),
        n=n,
        overall=overall,
        overall_reps=np.broadcast_to(overall, (n_boot, len(series))).copy(),
        se=zeros,
        se_reps=None if zeros is None else np.zeros((n_boot, *est.shape)),
    )


def _metric_range(series: Series, cap: float) -> tuple[float, float]:
    """The values a mean of this series can take: [0, 1] for overlaps; for distances from 0 to
    the cap (or the largest finite distance above it)."""
    metric = str(series.key[1]) if series.key[0] != "descriptor" else ""
    if metric in FRACTION_METRICS:
        return 0.0, 1.0
    if metric in DISTANCE_METRICS:
        top = float(np.nanmax(series.x)) if series.valid.any() else cap
        return 0.0, max(cap, top)
    return -math.inf, math.inf


def _check_estimator(estimator: Any, statistic: str) -> None:
    if estimator not in ESTIMATORS:
        raise AuditError(BAD_ESTIMATOR.format(valid=", ".join(ESTIMATORS), value=estimator))
    if estimator == "ppi" and statistic != "mean":
        raise AuditError(PPI_NEEDS_MEAN.format(statistic=statistic))


def _check_confidence(confidence: Any) -> None:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.5 < confidence < 1
    ):
        raise AuditError(BAD_CONFIDENCE.format(value=confidence))


def _encode(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """Group labels (report order) and per-case codes of one attribute column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        labels = [str(c) for c in column.cat.categories]
        codes = column.cat.codes.to_numpy().astype(np.int64)
        if (codes < 0).any():
            # a missing value is a group of its own, never dropped
            if UNKNOWN_LABEL not in labels:
                labels.append(UNKNOWN_LABEL)
            codes = np.where(codes < 0, labels.index(UNKNOWN_LABEL), codes)
        return labels, codes
    # each distinct value turned to text once (a million cases, a handful of groups)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    text = [str(u) for u in uniques]
    present = set(text) | ({UNKNOWN_LABEL} if (codes < 0).any() else set())
    labels = sorted(present - {UNKNOWN_LABEL}) + (
        [UNKNOWN_LABEL] if UNKNOWN_LABEL in present else []
    )
    lookup = {lab: i for i, lab in enumerate(labels)}
    to_label = np.asarray([lookup[t] for t in text] + [lookup.get(UNKNOWN_LABEL, -1)], np.int64)
    return labels, to_label[codes]  # code -1 (missing) reads the last entry: unknown
