"""Group means and medians (optionally weighted) in every bootstrap resample of a design.

Example
-------
>>> import numpy as np
>>> from segfair.stats import build_design
>>> codes = np.repeat([0, 1], [50, 50])
>>> design = build_design(codes, ("a", "b"), key=("g",), n_boot=200, seed=0)
>>> x = np.r_[np.full(50, 0.7), np.full(50, 0.8)]
>>> reps = group_statistic(design, x[:, None], "mean")
>>> np.round(reps.estimate[:, 0], 2).tolist()
[0.7, 0.8]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segfair.stats.design import Design
from segfair.stats.kinds import STATISTICS, Statistic

__all__ = ["Replicates", "group_statistic"]

_BIG = 1e300
#: Half-width of a resample-median window, in √n sorted positions (±8 standard deviations of
#: where a resample's median falls); a resample outside it widens the window (exact anyway).
_WINDOW = 4
#: Memory for the windows of the series whose resample medians one pass computes.
_MEDIAN_BYTES = 384 * 2**20


@dataclass(frozen=True, eq=False)
class Replicates:
    """Point estimates and bootstrap replicates of a statistic per group, for S series.

    Attributes
    ----------
    estimate
        ``(G, S)`` group estimates (NaN for a group without values).
    reps
        ``(B, G, S)`` replicates (NaN where a resample holds no value of that group).
    n
        ``(G, S)`` number of values behind each estimate.
    overall
        ``(S,)`` estimate over all cases.
    overall_reps
        ``(B, S)`` replicates of :attr:`overall`.
    se
        ``(G, S)`` standard error of each group mean (linearised, with the small-sample factor
        ``K / (K - 1)`` over its K resampling units), or None for medians.
    se_reps
        ``(B, G, S)`` the same standard error computed in every resample, for studentized
        (bootstrap-t) intervals; None for medians.
    """

    estimate: np.ndarray
    reps: np.ndarray
    n: np.ndarray
    overall: np.ndarray
    overall_reps: np.ndarray
    se: np.ndarray | None = None
    se_reps: np.ndarray | None = None

    def series(self, j: int) -> Replicates:
        """The replicates of series ``j`` alone (``S = 1``)."""
        return Replicates(
            estimate=self.estimate[:, j : j + 1],
            reps=self.reps[:, :, j : j + 1],
            n=self.n[:, j : j + 1],
            overall=self.overall[j : j + 1],
            overall_reps=self.overall_reps[:, j : j + 1],
            se=None if self.se is None else self.se[:, j : j + 1],
            se_reps=None if self.se_reps is None else self.se_reps[:, :, j : j + 1],
        )

    @staticmethod
    def stack(parts: Sequence[Replicates]) -> Replicates:
        """Replicates of several series side by side, in order (the inverse of :meth:`series`).

        Example
        -------
        >>> from segfair.stats import build_design
        >>> d = build_design(np.zeros(4, int), ("a",), key=("g",), n_boot=100, seed=0)
        >>> r = group_statistic(d, np.arange(8.0).reshape(4, 2), "mean")
        >>> Replicates.stack([r.series(1), r.series(0)]).estimate.tolist()
        [[4.0, 3.0]]
        """

        def cat(name: str, axis: int) -> np.ndarray | None:
            values = [getattr(p, name) for p in parts]
            if any(v is None for v in values):
                return None
            return np.concatenate(values, axis=axis)

        return Replicates(
            estimate=np.concatenate([p.estimate for p in parts], axis=1),
            reps=np.concatenate([p.reps for p in parts], axis=2),
            n=np.concatenate([p.n for p in parts], axis=1),
            overall=np.concatenate([p.overall for p in parts]),
            overall_reps=np.concatenate([p.overall_reps for p in parts], axis=1),
            se=cat("se", 1),
            se_reps=cat("se_reps", 2),
        )


def group_statistic(
    design: Design,
    values: np.ndarray | Sequence[np.ndarray],
    statistic: Statistic,
    case_weights: np.ndarray | None = None,
) -> Replicates:
    """Group means or medians of each column of ``values`` in every resample of ``design``.

    Parameters
    ----------
    design
        From :func:`build_design`.
    values
        ``(n_cases, S)`` in case-sorted order, or S columns of ``n_cases``; NaN marks a value
        that is missing or undefined and is left out (the audit counts those separately).
    statistic
        ``"mean"`` or ``"median"``.
    case_weights
        Optional design weights (inverse inclusion probabilities), ``(n_cases,)`` or
        ``(n_cases, S)`` in case-sorted order: means become ``Σ w x / Σ w`` (Hajek), medians
        weighted medians, in the point estimate and in every resample.

    Returns
    -------
    Replicates

    Examples
    --------
    >>> from segfair.stats import build_design
    >>> d = build_design(np.zeros(4, int), ("a",), key=("g",), n_boot=3, seed=0)
    >>> group_statistic(d, np.array([[1.0], [2.0], [3.0], [np.nan]]), "median").estimate
    array([[2.]])
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}; got {statistic!r}")
    if design.streamed:
        return _streamed_statistic(design, values, statistic, case_weights)
    if not isinstance(values, np.ndarray):
        values = np.stack(values, axis=1)
    x = np.asarray(values, dtype=np.float64)[design.order]
    valid = ~np.isnan(x)
    xz = np.where(valid, x, 0.0)
    vf = valid.astype(np.float64)
    n_boot, n_groups, n_series = design.n_boot, len(design.labels), x.shape[1]
    # design weights (inverse inclusion probabilities, case-sorted like ``values``): Hajek
    # estimators sum(w x) / sum(w); ``n`` still counts the values (see docs/partial-labels.md)
    cw: np.ndarray | None = None
    if case_weights is not None:
        cw = np.asarray(case_weights, dtype=np.float64)
        cw = np.broadcast_to(cw.reshape(len(cw), -1), x.shape)[design.order]
    xw, vw = (xz, vf) if cw is None else (xz * cw, vf * cw)
    est = np.full((n_groups, n_series), np.nan)
    reps = np.full((n_boot, n_groups, n_series), np.nan)
    n = np.zeros((n_groups, n_series), dtype=np.int64)
    w = design.weights
    assert w is not None  # a stored design (a streamed one took the branch above)
    with np.errstate(invalid="ignore", divide="ignore"):
        if statistic == "mean":
            se = np.full((n_groups, n_series), np.nan)
            se_reps = np.full((n_boot, n_groups, n_series), np.nan)
            sq = _unit_sums(design, xw, vw, vf, plain=cw is None)
            tot_num = np.zeros((n_boot, n_series))
            tot_den = np.zeros((n_boot, n_series))
            both = np.concatenate([xw, vw, *sq], axis=1)
            for g in range(n_groups):
                sl = design.block(g)
                # the whole bootstrap of one group is one matrix product: sums, counts and the
                # unit-level sums of squares its standard error needs
                prod = w[:, sl] @ both[sl]
                num, den = prod[:, :n_series], prod[:, n_series : 2 * n_series]
                tot_num += num
                tot_den += den
                reps[:, g, :] = num / den
                se_reps[:, g, :] = _se(reps[:, g, :], den, prod[:, 2 * n_series :], n_series)
                n[g] = valid[sl].sum(axis=0)
                one = both[sl].sum(axis=0)[None, :]
                est[g] = xw[sl].sum(axis=0) / vw[sl].sum(axis=0)
                se[g] = _se(
                    est[g][None, :],
                    one[:, n_series : 2 * n_series],
                    one[:, 2 * n_series :],
                    n_series,
                )[0]
            overall_reps = tot_num / tot_den
            overall = xw.sum(axis=0) / vw.sum(axis=0)
        else:
            overall_reps = np.full((n_boot, n_series), np.nan)
            overall = np.full(n_series, np.nan)
            for s in range(n_series):
                for g in range(n_groups):
                    sl = design.block(g)
                    col = x[sl, s]
                    keep = valid[sl, s]
                    n[g, s] = int(keep.sum())
                    if cw is None:
                        est[g, s], reps[:, g, s] = _weighted_median(col[keep], w[:, sl][:, keep])
                    else:
                        cg = cw[sl, s][keep]
                        est[g, s] = _weighted_median(col[keep], cg[None, :])[1][0]
                        reps[:, g, s] = _weighted_median(col[keep], w[:, sl][:, keep] * cg)[1]
                vs = valid[:, s]
                if cw is None:
                    overall[s], overall_reps[:, s] = _weighted_median(x[vs, s], w[:, vs])
                else:
                    overall[s] = _weighted_median(x[vs, s], cw[vs, s][None, :])[1][0]
                    overall_reps[:, s] = _weighted_median(x[vs, s], w[:, vs] * cw[vs, s])[1]
    est[n == 0] = np.nan
    if statistic != "mean":
        return Replicates(estimate=est, reps=reps, n=n, overall=overall, overall_reps=overall_reps)
    return Replicates(
        estimate=est,
        reps=reps,
        n=n,
        overall=overall,
        overall_reps=overall_reps,
        se=se,
        se_reps=se_reps,
    )


def _streamed_statistic(
    design: Design,
    values: np.ndarray | Sequence[np.ndarray],
    statistic: Statistic,
    case_weights: np.ndarray | None,
) -> Replicates:
    """:func:`group_statistic` of a streamed design: the counts are drawn block by block and
    the resample sums accumulated per block, so memory is ``n_boot × BLOCK``, not
    ``n_boot × n``. ``values`` may be a sequence of per-case columns (read block by block,
    never stacked)."""
    if isinstance(values, np.ndarray):
        x = np.asarray(values, dtype=np.float64)
        columns = [x[:, j] for j in range(x.shape[1])]
    else:
        columns = [np.asarray(c, dtype=np.float64) for c in values]
    n_cases = len(design.order)
    weights: list[np.ndarray] | None = None
    if case_weights is not None:
        cw = np.asarray(case_weights, dtype=np.float64)
        cw = np.broadcast_to(cw.reshape(len(cw), -1), (n_cases, len(columns)))
        weights = [cw[:, j] for j in range(len(columns))]
    n_groups = len(design.labels)
    n = np.zeros((n_groups, len(columns)), dtype=np.int64)
    for g in range(n_groups):
        rows = design.order[design.block(g)]
        n[g] = [int(np.count_nonzero(~np.isnan(c[rows]))) for c in columns]
    if statistic == "mean":
        out = _streamed_means(design, columns, weights)
    else:
        out = _streamed_medians(design, columns, weights)
    out.estimate[n == 0] = np.nan
    return Replicates(n=n, **vars(out))


@dataclass
class _Partial:
    """The fields of :class:`Replicates` a streamed pass computes (all but ``n``)."""

    estimate: np.ndarray
    reps: np.ndarray
    overall: np.ndarray
    overall_reps: np.ndarray
    se: np.ndarray | None = None
    se_reps: np.ndarray | None = None


def _streamed_means(
    design: Design, columns: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None
) -> _Partial:
    n_boot, n_groups, s = design.n_boot, len(design.labels), len(columns)
    est = np.full((n_groups, s), np.nan)
    se = np.full((n_groups, s), np.nan)
    reps = np.full((n_boot, n_groups, s), np.nan)
    se_reps = np.full((n_boot, n_groups, s), np.nan)
    tot = np.zeros((n_boot, 2 * s))
    tot_one = np.zeros(2 * s)
    # the plain columns are centred on each series' mean and multiplied in float32 (3× faster
    # than float64 here); centred, nothing cancels: the means and their standard errors keep
    # ~7 significant digits of the spread, far below the resampling error
    centre = np.zeros(s)
    if weights is None and design.units is None:
        for j, c in enumerate(columns):
            ok = ~np.isnan(c)
            centre[j] = float(c[ok].mean()) if ok.any() else 0.0
    for g in range(n_groups):
        if int(design.n_clusters[g]) == 0:
            continue
        cols = _UnitColumns(design, g, columns, weights, centre)
        acc = np.zeros((n_boot, cols.width))
        one = np.zeros((1, cols.width))
        for lo, hi, counts in design.unit_counts(g):
            exact = cols.rows(lo, hi)
            block = cols.narrow(exact)
            acc += counts.astype(block.dtype, copy=False) @ block
            # the point estimates from the values themselves, in float64
            one += exact.sum(axis=0)
        t1, m1, sq1 = cols.sums(one)
        t, m, sq = cols.sums(acc)
        with np.errstate(invalid="ignore", divide="ignore"):
            e1, er = t1[0] / m1[0], t / m
            se[g] = _se(e1[None, :], m1, sq1, s)[0]
            se_reps[:, g, :] = _se(er, m, sq, s)
            est[g] = e1 + centre
            reps[:, g, :] = er + centre
        tot += np.concatenate([t, m], axis=1)
        tot_one += np.concatenate([t1[0], m1[0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = tot_one[:s] / tot_one[s:] + centre
        overall_reps = tot[:, :s] / tot[:, s:] + centre
    return _Partial(est, reps, overall, overall_reps, se, se_reps)


class _UnitColumns:
    """Per resampling unit of one group: the sums ``T`` (of weighted values) and ``N`` (of
    weights), and what the standard error needs (``T²``, ``T N``, ``N²``, the unit count).

    Unclustered and unweighted (the common case) a unit is a case and ``N`` is 0/1, so
    ``T N = T`` and ``N² = N``: only ``T, T², N`` are multiplied by the counts (series with the
    same valid cases sharing one ``N`` column), the rest read back from them, and the values
    are gathered block by block. Otherwise the unit sums are made once for the group.
    """

    def __init__(
        self,
        design: Design,
        g: int,
        columns: Sequence[np.ndarray],
        weights: Sequence[np.ndarray] | None,
        centre: np.ndarray,
    ) -> None:
        self.rows_of = design.order[design.block(g)]  # the group's cases, unit by unit
        self.columns = columns
        self.centre = centre
        self.s = s = len(columns)
        self.n_units = int(design.n_clusters[g])
        self.plain = design.units is None and weights is None
        self.m_cols = np.arange(s)
        if self.plain:
            # series with the same valid cases share one column of counts (most of them do)
            seen: dict[bytes, int] = {}
            self.first: list[int] = []
            for j, c in enumerate(columns):
                pattern = np.packbits(np.isnan(c[self.rows_of])).tobytes()
                if pattern not in seen:
                    seen[pattern] = len(self.first)
                    self.first.append(j)
                self.m_cols[j] = seen[pattern]
            self.width = 2 * s + len(self.first)
            return
        rows = self.rows_of
        x = np.stack([c[rows] for c in columns], axis=1)
        keep = ~np.isnan(x)
        xz = np.where(keep, x, 0.0)
        vf = keep.astype(np.float64)
        if weights is not None:
            w = np.stack([c[rows] for c in weights], axis=1)
            xz, vw = xz * w, vf * w
        else:
            vw = vf
        if design.units is not None:
            units = design.local_units(g)
            tu = np.zeros((self.n_units, s))
            mu = np.zeros((self.n_units, s))
            hu = np.zeros((self.n_units, s))
            np.add.at(tu, units, xz)
            np.add.at(mu, units, vw)
            np.add.at(hu, units, vf)
            self.t, self.m, self.has = tu, mu, (hu > 0).astype(np.float64)
        else:
            self.t, self.m, self.has = xz, vw, vf
        self.width = 6 * s

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """The columns of units ``lo:hi`` that the counts multiply, in float64."""
        if self.plain:
            r = self.rows_of[lo:hi]
            x = np.stack([c[r] for c in self.columns], axis=1)
            keep = ~np.isnan(x)
            tc = np.where(keep, x - self.centre, 0.0)
            return np.concatenate([tc, tc * tc, keep[:, self.first].astype(np.float64)], axis=1)
        t, m = self.t[lo:hi], self.m[lo:hi]
        return np.concatenate([t, m, t * t, t * m, m * m, self.has[lo:hi]], axis=1)

    def narrow(self, exact: np.ndarray) -> np.ndarray:
        """What the counts multiply: plain columns in float32 (each square taken of the float32
        value), the others as they are."""
        if not self.plain:
            return exact
        s = self.s
        tc = exact[:, :s].astype(np.float32)
        return np.concatenate([tc, tc * tc, exact[:, 2 * s :].astype(np.float32)], axis=1)

    def sums(self, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Σ T``, ``Σ N`` and the columns of :func:`_se` (``Σ T², Σ T N, Σ N², K``) from
        accumulated :meth:`rows`."""
        s = self.s
        t = acc[:, :s]
        if self.plain:
            m = acc[:, 2 * s :][:, self.m_cols]
            return t, m, np.concatenate([acc[:, s : 2 * s], t, m, m], axis=1)
        return t, acc[:, s : 2 * s], acc[:, 2 * s :]


def _streamed_medians(
    design: Design, columns: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None
) -> _Partial:
    """Group and overall (weighted) medians per resample, one series at a time."""
    n_boot, n_groups, s = design.n_boot, len(design.labels), len(columns)
    est = np.full((n_groups, s), np.nan)
    reps = np.full((n_boot, n_groups, s), np.nan)
    overall = np.full(s, np.nan)
    overall_reps = np.full((n_boot, s), np.nan)
    j = 0
    while j < s:
        # as many series per pass over the counts as their windows fit in _MEDIAN_BYTES
        batch: list[tuple[int, _WindowMedians, dict[int, _Window]]] = []
        used = 0
        while j < s and (not batch or used < _MEDIAN_BYTES):
            w = None if weights is None else weights[j]
            med = _WindowMedians(design, columns[j], ~np.isnan(columns[j]), w)
            first, windows = med.start()
            est[:, j], overall[j] = first[:n_groups], first[-1]
            used += sum(win.win.nbytes + win.pos.nbytes for win in windows.values())
            used += med.value.nbytes + med.weight.nbytes + med.group.nbytes + med.unit.nbytes
            batch.append((j, med, windows))
            j += 1
        while any(windows for _, _, windows in batch):
            _fill(design, [windows for _, _, windows in batch])
            for k, _, windows in batch:
                for p in list(windows):
                    found = windows[p].medians()
                    if found is None:  # a resample's median outside the window: widen it
                        windows[p] = windows[p].wider()
                        continue
                    if p < n_groups:
                        reps[:, p, k] = found
                    else:
                        overall_reps[:, k] = found
                    del windows[p]
    return _Partial(est, reps, overall, overall_reps)


def _fill(design: Design, parts: Sequence[dict[int, _Window]]) -> None:
    """One pass over the counts of every group, filling the windows that need them (a group's
    own window and the overall one of each series)."""
    n_groups = len(design.labels)
    for g in range(n_groups):
        mine = [w for windows in parts for p, w in windows.items() if p in (g, n_groups)]
        if not mine or int(design.n_clusters[g]) == 0:
            continue
        for w in mine:
            w.prepare(g)
        for lo, hi, counts in design.unit_counts(g):
            for w in mine:
                w.add(g, lo, hi, counts)


class _WindowMedians:
    """Exact resample medians without the resample matrix.

    A resample's median sits, in the sorted values, within a few √n positions of the sample's
    (its position has a standard deviation of about √n / 2). One pass over the counts keeps,
    per resample, the weight below a window of sorted positions around the sample median and
    the counts of the cases inside it; the median is found in the window whenever the weight
    below it is under half and the weight up to its end over half — checked for every resample.
    Where the check fails (never seen in practice: ±8 standard deviations) the window is
    widened four times and the pass repeated, so the result is always the exact median of the
    resample, the same as :func:`_weighted_median` on the full matrix.
    """

    def __init__(self, design: Design, x: np.ndarray, valid: np.ndarray, cw: np.ndarray | None):
        self.design = design
        n_groups = len(design.labels)
        # every population (each group, then all cases): its valid cases sorted by value, with
        # the group and the local unit of each
        groups, units, vals, wts = [], [], [], []
        for g in range(n_groups):
            rows = design.order[design.block(g)]
            keep = valid[rows]
            groups.append(np.full(int(keep.sum()), g, dtype=np.int64))
            units.append(design.local_units(g)[keep])
            vals.append(x[rows][keep])
            wts.append(np.ones(int(keep.sum())) if cw is None else cw[rows][keep])
        self.group = np.concatenate(groups) if groups else np.zeros(0, np.int64)
        self.unit = np.concatenate(units) if units else np.zeros(0, np.int64)
        self.value = np.concatenate(vals) if vals else np.zeros(0)
        self.weight = np.concatenate(wts) if wts else np.zeros(0)
        self.weighted = cw is not None
        self.pops = [np.flatnonzero(self.group == g) for g in range(n_groups)]
        self.pops.append(np.arange(len(self.value)))

    def start(self) -> tuple[np.ndarray, dict[int, _Window]]:
        """The point estimate of every population (the groups, then all cases) and a window
        around each one's median to fill."""
        est = np.full(len(self.pops), np.nan)
        windows: dict[int, _Window] = {}
        for p, members in enumerate(self.pops):
            if len(members) == 0:
                continue
            order = members[np.argsort(self.value[members], kind="stable")]
            if self.weighted:
                est[p] = _weighted_median(self.value[order], self.weight[order][None, :])[1][0]
            else:
                est[p] = float(np.median(self.value[members]))
            cum = np.cumsum(self.weight[order])
            centre = int(np.searchsorted(cum, cum[-1] / 2))
            half = int(_WINDOW * np.ceil(np.sqrt(len(order)))) + 16
            windows[p] = _Window(self, order, centre, half)
        return est, windows


class _Window:
    """One population's window of sorted positions and its per-resample accumulators."""

    def __init__(self, owner: _WindowMedians, order: np.ndarray, centre: int, half: int):
        self.owner, self.order, self.centre, self.half = owner, order, centre, half
        self.a = max(0, centre - half)
        self.z = min(len(order), centre + half)
        n_boot = owner.design.n_boot
        self.below = np.zeros(n_boot)
        self.total = np.zeros(n_boot)
        # counts are exact in float32; weighted counts are not
        self.win = np.zeros((n_boot, self.z - self.a), np.float64 if owner.weighted else np.float32)
        inside = order[self.a : self.z]
        by_unit = np.lexsort((owner.unit[inside], owner.group[inside]))
        self.w_group = owner.group[inside][by_unit]
        self.w_unit = owner.unit[inside][by_unit]
        self.w_col = by_unit
        self.w_wt = owner.weight[inside][by_unit]
        self.pos = np.full(len(owner.value), -1, dtype=np.int64)
        self.pos[order] = np.arange(len(order))
        self._per_unit: tuple[np.ndarray, np.ndarray, int, int] | None = None

    def wider(self) -> _Window:
        return _Window(self.owner, self.order, self.centre, 4 * self.half)

    def prepare(self, g: int) -> None:
        """Per unit of group ``g``: its weight in the population and below the window."""
        o = self.owner
        cases = np.flatnonzero((o.group == g) & (self.pos >= 0))
        m = int(o.design.n_clusters[g])
        units, wt = o.unit[cases], o.weight[cases]
        w_all = np.bincount(units, weights=wt, minlength=m)
        w_below = np.bincount(
            units, weights=np.where(self.pos[cases] < self.a, wt, 0.0), minlength=m
        )
        g_lo = int(np.searchsorted(self.w_group, g, "left"))
        g_hi = int(np.searchsorted(self.w_group, g, "right"))
        self._per_unit = (w_all, w_below, g_lo, g_hi)

    def add(self, g: int, lo: int, hi: int, counts: np.ndarray) -> None:
        assert self._per_unit is not None
        w_all, w_below, g_lo, g_hi = self._per_unit
        self.below += counts @ w_below[lo:hi]
        self.total += counts @ w_all[lo:hi]
        units = self.w_unit[g_lo:g_hi]
        i0 = g_lo + int(np.searchsorted(units, lo, "left"))
        i1 = g_lo + int(np.searchsorted(units, hi, "left"))
        if i1 > i0:
            self.win[:, self.w_col[i0:i1]] = counts[:, self.w_unit[i0:i1] - lo] * self.w_wt[i0:i1]

    def medians(self) -> np.ndarray | None:
        """Each resample's median, or None when one of them lies outside the window."""
        cum = self.below[:, None] + np.cumsum(self.win, axis=1, dtype=np.float64)
        lo_pos = np.floor((self.total - 1) / 2)
        hi_pos = np.floor(self.total / 2)
        empty = self.total == 0
        top = cum[:, -1] if cum.shape[1] else self.below
        if not (empty | ((self.below <= lo_pos) & (top > hi_pos))).all():
            return None
        v = self.owner.value[self.order[self.a : self.z]]
        i_lo = (cum > lo_pos[:, None]).argmax(axis=1)
        i_hi = (cum > hi_pos[:, None]).argmax(axis=1)
        med = (v[i_lo] + v[i_hi]) / 2
        med[empty] = np.nan
        return np.asarray(med, dtype=np.float64)


def _unit_sums(
    design: Design, xw: np.ndarray, vw: np.ndarray, vf: np.ndarray, *, plain: bool
) -> list[np.ndarray]:
    """Per-case columns whose resample sums give Σ T², Σ T N, Σ N² and the unit count K.

    ``T`` and ``N`` are a resampling unit's weighted sum of values and of weights (a case, or a
    whole cluster). A unit drawn ``w`` times counts ``w`` times, and all cases of a cluster
    share its count, so a cluster's totals are placed on its first case and zeros elsewhere:
    the same count-matrix product then sums them.
    """
    if design.units is None:
        if plain:
            # T = x, N = v ∈ {0, 1}: T N = x, N² = N = K-indicator = v
            return [xw * xw, xw, vw, vf]
        return [xw * xw, xw * vw, vw * vw, vf]
    units = design.units
    n_units = int(units.max()) + 1 if units.size else 0
    t = np.zeros((n_units, xw.shape[1]))
    m = np.zeros_like(t)
    has = np.zeros_like(t)
    np.add.at(t, units, xw)
    np.add.at(m, units, vw)
    np.add.at(has, units, vf)
    first = np.zeros(len(units), dtype=bool)
    _, idx = np.unique(units, return_index=True)
    first[idx] = True
    cols = [t * t, t * m, m * m, (has > 0).astype(np.float64)]
    return [np.where(first[:, None], c[units], 0.0) for c in cols]


def _se(mean: np.ndarray, den: np.ndarray, sq: np.ndarray, s: int) -> np.ndarray:
    """Linearised standard error of a (Hajek) mean from unit sums (rows = resamples)."""
    q, p, r, k = sq[:, :s], sq[:, s : 2 * s], sq[:, 2 * s : 3 * s], sq[:, 3 * s :]
    resid = np.maximum(q - 2 * mean * p + mean**2 * r, 0.0)
    # the K / (K − 1) factor makes the plug-in variance unbiased for equal weights
    var = resid / den**2 * np.where(k > 1, k / (k - 1), np.nan)
    return np.sqrt(var)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Median of ``values`` and, per row of integer ``weights``, of the resample it encodes."""
    if values.size == 0:
        return float("nan"), np.full(weights.shape[0], np.nan)
    idx = np.argsort(values, kind="stable")
    v = values[idx]
    cum = np.cumsum(weights[:, idx], axis=1)
    total = cum[:, -1]
    # positions (0-based) of the two middle elements of each expanded resample
    lo = np.floor((total - 1) / 2)
    hi = np.floor(total / 2)
    i_lo = (cum > lo[:, None]).argmax(axis=1)
    i_hi = (cum > hi[:, None]).argmax(axis=1)
    med = (v[i_lo] + v[i_hi]) / 2
    med[total == 0] = np.nan
    return float(np.median(values)), med


def _quantiles(reps: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """NaN-ignoring quantiles along axis 0 that tolerate ±inf (shape ``(len(qs), ...)``)."""
    r = np.clip(reps, -_BIG, _BIG)
    has_nan = np.isnan(r).any(axis=0)
    if not np.any(has_nan):
        # np.quantile partitions whole columns at once; nanquantile loops over them
        out = np.quantile(r, list(qs), axis=0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns → NaN, on purpose
            out = np.nanquantile(r, list(qs), axis=0)
    out = np.where(out >= _BIG / 2, np.inf, out)
    return np.where(out <= -_BIG / 2, -np.inf, out)
