"""The resampling design: cases in group blocks and the stratified bootstrap count matrix.

:class:`segfair.audit.Audit` arranges the cases of a cohort into group blocks once per attribute
(a :class:`Design`), draws the bootstrap *count matrix* of that design once, and reuses it for
every model, ruler and metric, so that differences between rulers or models are paired: each
replicate scores the same resampled cases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Design", "build_design", "stable_hash"]


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process and Python version.

    ``hash()`` of a string is salted per process, so seeding from it would make results depend
    on the run; this is what the bootstrap seeds are derived from.

    Examples
    --------
    >>> stable_hash("age_group") == stable_hash("age_group")
    True
    """
    data = "\x1f".join(repr(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


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
    units
        Resampling unit of each case (block order; codes unique across groups), or None when
        every case is its own unit. The studentized intervals need it for cluster-level sums.
    """

    key: tuple[str, ...]
    labels: tuple[str, ...]
    order: np.ndarray
    bounds: np.ndarray
    weights: np.ndarray
    n_clusters: np.ndarray
    clustered: bool
    units: np.ndarray | None = None

    @property
    def n_boot(self) -> int:
        """Number of bootstrap resamples."""
        return int(self.weights.shape[0])

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
    rng = np.random.default_rng(np.random.SeedSequence([seed, stable_hash("by", *key)]))
    # column-major: a group's block of cases is then one contiguous piece of memory, which the
    # matrix products of group_statistic read once
    weights = np.zeros((n_boot, len(codes)), dtype=np.float64, order="F")
    n_units = np.zeros(n_groups, dtype=np.int64)
    units = np.zeros(len(codes), dtype=np.int64) if clusters is not None else None
    rows = np.arange(n_boot)[:, None]
    for g in range(n_groups):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi == lo:
            continue
        unit_of_case = None
        if clusters is None:
            m = hi - lo
        else:
            _, unit_of_case = np.unique(np.asarray(clusters)[order[lo:hi]], return_inverse=True)
            m = int(unit_of_case.max()) + 1
        n_units[g] = m
        # one integer matrix per group, no loop over resamples: row b holds the m units drawn
        drawn = rng.integers(0, m, size=(n_boot, m))
        drawn += rows * m
        counts = np.bincount(drawn.ravel(), minlength=n_boot * m).reshape(n_boot, m)
        weights[:, lo:hi] = counts if unit_of_case is None else counts[:, unit_of_case]
        if units is not None and unit_of_case is not None:
            units[lo:hi] = unit_of_case + (int(units[:lo].max()) + 1 if lo else 0)
    return Design(
        key=key,
        labels=tuple(labels),
        order=order,
        bounds=bounds,
        weights=weights,
        n_clusters=n_units,
        clustered=clusters is not None,
        units=units,
    )
