"""2-D nearest border pixels by a column search, compiled with numba when it is installed.

A 512×512 mask's crop holds ≈30,000 pixels and its border ≈600: a feature transform of the crop
(≈0.6 ms) or a k-d tree (≈0.3–0.5 ms for two askers) costs far more than what is asked — the
nearest border pixel of one mask for each of a few hundred border pixels of another. This asks
that directly. The border pixels of the target are grouped by column, rows ascending; a pixel at
``(y, x)`` looks in its own column, then ``x ± 1``, ``x ± 2``, … — in each column the nearest rows
above and below ``y`` (a binary search) are the only candidates — and stops once ``(k·s_x)²``
alone reaches its best squared distance, which no farther column can beat.

Each candidate's squared distance is the same float64 sum the engine computes from the feature
transform's nearest pixel, ``(Δy·s_y)² + (Δx·s_x)²`` added in axis order, and the least is kept:
the distances equal the transform's (where two border pixels are exactly equally far, the
transform returns one of them; if their float sums differ in the last bit, this keeps the lesser).

The search is a loop over pixels, which only compiled code makes cheap: with ``numba`` (the
``fast`` extra) it takes ≈10 µs for a 512×512 case's border; without it, :func:`column_runs`
returns ``None`` and the engine keeps the transform or the tree.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from segfair.metrics.arrays import FloatArray

__all__: list[str] = []


def _column_runs(
    rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], width: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Border pixels given in row-major order, grouped by column: ``start`` (width + 1 offsets)
    and the rows of each column, ascending (a stable counting sort by column)."""
    start = np.zeros(width + 1, dtype=np.intp)
    for x in cols:
        start[x + 1] += 1
    for x in range(width):
        start[x + 1] += start[x]
    fill = start[:-1].copy()
    runs = np.empty(rows.size, dtype=np.intp)
    for i in range(rows.size):
        x = cols[i]
        runs[fill[x]] = rows[i]
        fill[x] += 1
    return start, runs


def _nearest_squared(
    rows: npt.NDArray[np.intp],
    cols: npt.NDArray[np.intp],
    start: npt.NDArray[np.intp],
    runs: npt.NDArray[np.intp],
    step_y: float,
    step_x: float,
) -> FloatArray:
    """For each pixel ``(rows[i], cols[i])``, the least ``(Δy·s_y)² + (Δx·s_x)²`` over the
    border pixels in ``start``/``runs`` (which hold at least one)."""
    width = start.size - 1
    out = np.empty(rows.size)
    for i in range(rows.size):
        y, x = rows[i], cols[i]
        best = np.inf
        k = 0
        while x - k >= 0 or x + k < width:
            delta_x = float(k) * step_x
            across = delta_x * delta_x
            if across >= best:  # every pixel k or more columns away is at least this far
                break
            for side in range(2 if k else 1):
                column = x + k if side else x - k
                if column < 0 or column >= width:
                    continue
                lo, hi = start[column], start[column + 1]
                if lo == hi:
                    continue
                # the first row of the column at or below y: it and the one above are the nearest
                a, b = lo, hi
                while a < b:
                    middle = (a + b) // 2
                    if runs[middle] < y:
                        a = middle + 1
                    else:
                        b = middle
                for j in (a - 1, a):
                    if lo <= j < hi:
                        delta_y = float(runs[j] - y) * step_y
                        squared = delta_y * delta_y + across
                        if squared < best:
                            best = squared
            k += 1
        out[i] = best
    return out


@functools.cache
def _kernels() -> tuple[Any, Any] | None:
    """The two loops compiled by numba (once per process; cached on disk where it can), or
    ``None`` without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    # no fastmath: the IEEE float64 arithmetic of the engine, bit for bit
    return (
        numba.njit(cache=True, nogil=True)(_column_runs),
        numba.njit(cache=True, nogil=True)(_nearest_squared),
    )


def column_runs(
    points: npt.NDArray[np.intp], width: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None:
    """The border pixels ``points`` (coordinates, shape (2, m), row-major order) of a 2-D crop
    ``width`` columns wide, grouped by column for :func:`nearest_squared`; ``None`` without
    numba (the caller keeps its transform or tree)."""
    kernels = _kernels()
    if kernels is None:  # pragma: no cover - depends on the environment
        return None
    rows, cols = (np.ascontiguousarray(points[axis], dtype=np.intp) for axis in (0, 1))
    runs: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] = kernels[0](rows, cols, width)
    return runs


def nearest_squared(
    runs: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    asked: npt.NDArray[np.intp],
    spacing: tuple[float, ...],
) -> FloatArray:
    """Squared distances in mm² from each pixel of ``asked`` (coordinates, shape (2, n)) to the
    nearest border pixel of ``runs`` (from :func:`column_runs`, at least one pixel).

    Examples
    --------
    >>> import numpy as np
    >>> border = np.array([[0, 3], [0, 4]])  # pixels (0, 0) and (3, 4)
    >>> runs = column_runs(border, 5)
    >>> if runs is not None:  # numba installed
    ...     print(nearest_squared(runs, np.array([[0, 3], [1, 3]]), (1.0, 2.0)).tolist())
    ... else:
    ...     print([4.0, 4.0])
    [4.0, 4.0]
    """
    kernels = _kernels()
    assert kernels is not None, "column_runs returned runs: numba is installed"
    rows, cols = (np.ascontiguousarray(asked[axis], dtype=np.intp) for axis in (0, 1))
    start, by_column = runs
    squared: FloatArray = kernels[1](
        rows, cols, start, by_column, float(spacing[0]), float(spacing[1])
    )
    return squared
