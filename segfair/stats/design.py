"""The resampling design: cases in group blocks and the stratified bootstrap count matrix.

:class:`segfair.audit.Audit` arranges the cases of a cohort into group blocks once per attribute
(a :class:`Design`), draws the bootstrap *count matrix* of that design once, and reuses it for
every model, ruler and metric, so that differences between rulers or models are paired: each
replicate scores the same resampled cases.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from segfair.stats.resample import CountStream, stable_hash

__all__ = ["STREAM_ABOVE", "Design", "build_design", "stable_hash"]

#: A design whose count matrix would hold more than this many entries (``n_boot × cases``; 2,000
#: resamples × 8,388 cases) is *streamed*: its counts are drawn block by block from keyed
#: streams whenever they are needed (:mod:`segfair.stats.resample`) and never stored, so memory
#: does not grow with the cohort. Smaller designs draw and keep the whole matrix, exactly as
#: before streaming existed (their resamples, and so every report of such a cohort, unchanged).
STREAM_ABOVE = 2**24


@dataclass(frozen=True, eq=False)
class Design:
    """The cases of a cohort in group blocks, with the bootstrap count matrix of one ``by``.

    Attributes
    ----------
    key
        The attribute name(s) the groups come from.
    labels
        Group labels, in report order.
    order
        Positions (into the case-sorted cohort) of the cases, group after group.
    bounds
        ``bounds[g]:bounds[g + 1]`` is group ``g``'s block in :attr:`order`.
    weights
        ``(n_boot, n_cases)`` multiplicity of each case (block order) in each resample.
    n_clusters
        Number of resampling units per group (cases, or clusters when clustered).
    clustered
        Whether whole clusters were resampled instead of cases.
        None when the design is streamed (:attr:`streamed`): :meth:`unit_counts` draws them.
    units
        Resampling unit of each case (block order; codes unique across groups), or None when
        every case is its own unit. The studentized intervals need it for cluster-level sums.
    resamples
        Number of resamples of a streamed design (the rows of :attr:`weights` otherwise).
    seed
        The audit seed (a streamed design draws its counts from it).
    """

    key: tuple[str, ...]
    labels: tuple[str, ...]
    order: np.ndarray
    bounds: np.ndarray
    weights: np.ndarray | None
    n_clusters: np.ndarray
    clustered: bool
    units: np.ndarray | None = None
    resamples: int = 0
    seed: int = 0

    @property
    def n_boot(self) -> int:
        """Number of bootstrap resamples."""
        return int(self.weights.shape[0]) if self.weights is not None else self.resamples

    @property
    def streamed(self) -> bool:
        """Whether the counts are drawn block by block when needed instead of stored."""
        return self.weights is None

    def unit_offsets(self) -> np.ndarray:
        """Where each group's resampling units start in the design's unit numbering."""
        return np.concatenate([[0], np.cumsum(self.n_clusters)])

    def local_units(self, g: int) -> np.ndarray:
        """The resampling unit (``0 .. n_clusters[g] - 1``) of each case of group ``g``'s block."""
        sl = self.block(g)
        if self.units is None:
            return np.arange(sl.stop - sl.start, dtype=np.int64)
        return self.units[sl] - int(self.unit_offsets()[g])

    def unit_counts(self, g: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Bootstrap counts of group ``g``'s resampling units, block by block: ``(lo, hi,
        counts)`` for units ``lo:hi`` with ``counts`` of shape ``(n_boot, hi - lo)``.

        A stored design yields one block (its matrix, read at each unit's first case).

        Example
        -------
        >>> d = build_design(np.array([0, 0, 1]), ("a", "b"), key=("g",), n_boot=4, seed=1)
        >>> [(lo, hi, c.shape) for lo, hi, c in d.unit_counts(0)]
        [(0, 2, (4, 2))]
        """
        m = int(self.n_clusters[g])
        if m == 0:
            return
        if self.weights is not None:
            sl = self.block(g)
            w = self.weights[:, sl]
            if self.units is not None:
                _, first = np.unique(self.local_units(g), return_index=True)
                w = w[:, first]
            yield 0, m, np.asarray(w)
            return
        stream = CountStream(
            seed=self.seed, key=self.key, label=self.labels[g], n_units=m, n_boot=self.n_boot
        )
        yield from stream.blocks()

    @property
    def sizes(self) -> np.ndarray:
        """Number of cohort cases per group."""
        return np.diff(self.bounds)

    def block(self, g: int) -> slice:
        """The slice of group ``g`` in block order."""
        return slice(int(self.bounds[g]), int(self.bounds[g + 1]))


def build_design(
    codes: np.ndarray,
    labels: Sequence[str],
    *,
    key: tuple[str, ...],
    n_boot: int,
    seed: int,
    clusters: np.ndarray | None = None,
    stream: bool | None = None,
) -> Design:
    """Arrange cases in group blocks and draw the stratified bootstrap count matrix.

    Parameters
    ----------
    codes
        Group code (``0 .. len(labels) - 1``) of each case, cases sorted by ``case_id``.
    labels
        Group labels.
    key
        Attribute name(s); with ``seed`` it determines the random stream, so the resamples of an
        attribute do not depend on which statistics were asked for before.
    n_boot
        Number of resamples.
    seed
        Audit seed.
    clusters
        Optional cluster code of each case (e.g. the site); whole clusters are then resampled
        within each group.
    stream
        Draw the counts block by block when they are needed instead of storing them (default:
        when the matrix would exceed :data:`STREAM_ABOVE` entries).

    Returns
    -------
    Design

    Examples
    --------
    >>> d = build_design(np.array([0, 0, 1]), ("a", "b"), key=("g",), n_boot=4, seed=1)
    >>> d.weights.sum(axis=1).tolist()
    [3.0, 3.0, 3.0, 3.0]
    """
    codes = np.asarray(codes, dtype=np.int64)
    n_groups = len(labels)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_groups)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    if stream is None:
        stream = n_boot * len(codes) > STREAM_ABOVE
    n_units, units = _units(clusters, order, bounds)
    return Design(
        key=key,
        labels=tuple(labels),
        order=order,
        bounds=bounds,
        # a streamed design draws its counts when they are needed (segfair.stats.resample)
        weights=None if stream else _drawn(n_boot, seed, key, bounds, n_units, units),
        n_clusters=n_units,
        clustered=clusters is not None,
        units=units,
        resamples=int(n_boot),
        seed=int(seed),
    )


def _units(
    clusters: np.ndarray | None, order: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resampling units per group, and each case's unit (block order; codes unique across
    groups, group after group), or None when every case is its own unit."""
    n_units = np.diff(bounds).astype(np.int64)
    if clusters is None:
        return n_units, None
    units = np.zeros(len(order), dtype=np.int64)
    offset = 0
    for g in range(len(n_units)):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi == lo:
            continue
        _, unit_of_case = np.unique(np.asarray(clusters)[order[lo:hi]], return_inverse=True)
        n_units[g] = int(unit_of_case.max()) + 1
        units[lo:hi] = unit_of_case + offset
        offset += int(n_units[g])
    return n_units, units


def _drawn(
    n_boot: int,
    seed: int,
    key: tuple[str, ...],
    bounds: np.ndarray,
    n_units: np.ndarray,
    units: np.ndarray | None,
) -> np.ndarray:
    """The stored count matrix ``(n_boot, n_cases)``, group after group from one stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stable_hash("by", *key)]))
    # column-major: a group's block of cases is then one contiguous piece of memory, which the
    # matrix products of group_statistic read once
    weights = np.zeros((n_boot, int(bounds[-1])), dtype=np.float64, order="F")
    rows = np.arange(n_boot)[:, None]
    offsets = np.concatenate([[0], np.cumsum(n_units)])
    for g in range(len(n_units)):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi == lo:
            continue
        m = int(n_units[g])
        # one integer matrix per group, no loop over resamples: row b holds the m units drawn
        drawn = rng.integers(0, m, size=(n_boot, m))
        drawn += rows * m
        counts = np.bincount(drawn.ravel(), minlength=n_boot * m).reshape(n_boot, m)
        weights[:, lo:hi] = counts if units is None else counts[:, units[lo:hi] - offsets[g]]
    return weights
