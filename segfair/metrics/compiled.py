"""Loops over 2-D pixels compiled with numba when it is installed (``segfair[fast]``).

Nearest border pixels by a column search (the surface distances of 2-D masks), and the sums,
cell histogram and components of one crop (the 2-D shape descriptors), each in one pass.

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
``fast`` extra) it takes ≈10 µs for a 512×512 case's border; without it, :func:`border_runs`
returns ``None`` and the engine keeps the transform or the tree.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from segfair.metrics.arrays import FloatArray

__all__: list[str] = []


def _border_runs(
    crop: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The border pixels of a 2-D 0/1 crop (set pixels with a 4-neighbour unset or beyond the
    crop's edge, as ``surface._border``): their coordinates, shape (2, m), in row-major order;
    and the same pixels grouped by column for :func:`_nearest_squared`: ``start`` (width + 1
    offsets) and each column's rows, ascending."""
    rows, cols = crop.shape
    on_border = np.zeros((rows, cols), dtype=np.bool_)
    start = np.zeros(cols + 1, dtype=np.intp)
    for i in range(rows):
        for j in range(cols):
            if crop[i, j] and (
                i == 0
                or j == 0
                or i == rows - 1
                or j == cols - 1
                or not crop[i - 1, j]
                or not crop[i + 1, j]
                or not crop[i, j - 1]
                or not crop[i, j + 1]
            ):
                on_border[i, j] = True
                start[j + 1] += 1
    for j in range(cols):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    coords = np.empty((2, start[cols]), dtype=np.intp)
    runs = np.empty(start[cols], dtype=np.intp)
    k = 0
    for i in range(rows):
        for j in range(cols):
            if on_border[i, j]:
                coords[0, k] = i
                coords[1, k] = j
                k += 1
                runs[fill[j]] = i
                fill[j] += 1
    return coords, start, runs


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


def _planar_counts(padded: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], int]:
    """One pass over a 2-D 0/1 crop padded with one 0 on every side: ``[n, Σi, Σj, Σi², Σj²,
    Σij]`` of its pixels' indices (in the crop), then the histogram of the marching-squares
    configurations of the 2×2 cells of the padded crop (bit ``2i + j`` is the pixel at offset
    ``(i, j)`` of a cell), and the number of 8-connected components (one scan with union-find:
    a pixel joins the components of its already seen neighbours; above it, its up neighbour's
    component already holds its up-left and up-right ones)."""
    rows, cols = padded.shape[0] - 2, padded.shape[1] - 2
    out = np.zeros(6 + 16, dtype=np.int64)
    label = np.zeros(padded.shape, dtype=np.int32)  # 0: background; else a provisional number
    parent = np.empty(rows * cols + 1, dtype=np.int32)  # provisional number → a smaller one
    made = 0
    for i in range(rows + 1):
        for j in range(cols + 1):
            config = (
                padded[i, j]
                | (padded[i, j + 1] << 1)
                | (padded[i + 1, j] << 2)
                | (padded[i + 1, j + 1] << 3)
            )
            out[6 + config] += 1
            if i == rows or j == cols or not padded[i + 1, j + 1]:
                continue
            out[0] += 1
            out[1] += i
            out[2] += j
            out[3] += i * i
            out[4] += j * j
            out[5] += i * j
            # the pixel is (i + 1, j + 1) in the padded crop
            up, up_left, up_right = label[i, j + 1], label[i, j], label[i, j + 2]
            left = label[i + 1, j]
            if up:
                mine = up
            else:
                mine = left or up_left
                if up_right:
                    if mine:
                        a, b = mine, up_right
                        while parent[a] != a:
                            parent[a] = parent[parent[a]]
                            a = parent[a]
                        while parent[b] != b:
                            parent[b] = parent[parent[b]]
                            b = parent[b]
                        if a != b:
                            parent[max(a, b)] = min(a, b)
                    else:
                        mine = up_right
            if not mine:
                made += 1
                parent[made] = made
                mine = made
            label[i + 1, j + 1] = mine
    components = 0
    for k in range(1, made + 1):
        if parent[k] == k:
            components += 1
    return out, components


@functools.cache
def _kernels() -> dict[str, Any] | None:
    """The loops of this module compiled by numba (once per process; cached on disk where it
    can), or ``None`` without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    loops = {"border": _border_runs, "nearest": _nearest_squared, "planar": _planar_counts}
    # no fastmath: the IEEE float64 arithmetic of the engine, bit for bit
    try:  # compiled once and kept on disk (≈2 s the first time), loaded in ≈0.1 s afterwards
        return {name: numba.njit(cache=True, nogil=True)(loop) for name, loop in loops.items()}
    except RuntimeError:  # pragma: no cover - no writable cache folder: compile every process
        return {name: numba.njit(nogil=True)(loop) for name, loop in loops.items()}


def planar_counts(crop: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], int] | None:
    """What the 2-D descriptors of :mod:`segfair.metrics.morphology` are computed from, in one
    compiled pass over the crop (see :func:`_planar_counts`), or ``None`` without numba.

    Examples
    --------
    >>> import numpy as np
    >>> found = planar_counts(np.eye(2, dtype=bool))
    >>> found is None or (found[0][:6].tolist(), found[1]) == ([2, 1, 1, 1, 1, 1], 1)
    True
    """
    kernels = _kernels()
    if kernels is None:  # pragma: no cover - depends on the environment
        return None
    padded = np.zeros((crop.shape[0] + 2, crop.shape[1] + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = crop
    counts: tuple[npt.NDArray[np.int64], int] = kernels["planar"](padded)
    return counts


def border_runs(
    crop: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.intp], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] | None:
    """The border pixels of a 2-D crop: their coordinates (shape (2, m), row-major order) and
    the same grouped by column for :func:`nearest_squared`; ``None`` without numba (the caller
    keeps its transform or tree)."""
    kernels = _kernels()
    if kernels is None:  # pragma: no cover - depends on the environment
        return None
    coords, start, runs = kernels["border"](np.ascontiguousarray(crop).view(np.uint8))
    return coords, (start, runs)


def nearest_squared(
    runs: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    asked: npt.NDArray[np.intp],
    spacing: tuple[float, ...],
) -> FloatArray:
    """Squared distances in mm² from each pixel of ``asked`` (coordinates, shape (2, n)) to the
    nearest border pixel of ``runs`` (from :func:`border_runs`, at least one pixel).

    Examples
    --------
    >>> import numpy as np
    >>> crop = np.zeros((4, 5), bool); crop[0, 0] = crop[3, 4] = True
    >>> found = border_runs(crop)
    >>> if found is not None:  # numba installed
    ...     print(nearest_squared(found[1], np.array([[0, 3], [1, 3]]), (1.0, 2.0)).tolist())
    ... else:
    ...     print([4.0, 4.0])
    [4.0, 4.0]
    """
    kernels = _kernels()
    assert kernels is not None, "column_runs returned runs: numba is installed"
    rows, cols = (np.ascontiguousarray(asked[axis], dtype=np.intp) for axis in (0, 1))
    start, by_column = runs
    squared: FloatArray = kernels["nearest"](
        rows, cols, start, by_column, float(spacing[0]), float(spacing[1])
    )
    return squared
