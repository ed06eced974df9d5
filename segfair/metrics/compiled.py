"""Loops over 2-D pixels compiled with numba when it is installed (``segfair[fast]``).

Nearest border pixels by a column search (the surface distances of 2-D masks), the sums, cell
histogram and components of one crop (the 2-D shape descriptors), each in one pass; and the
extent of a 2-D mask (:func:`planar_extent`).

A 512×512 mask's crop holds ≈30,000 pixels and its border ≈600: a feature transform of the crop
(≈0.6 ms) or a k-d tree (≈0.3–0.5 ms for two askers) costs far more than what is asked — the
nearest border pixel of one mask for each of a few hundred border pixels of another. This asks
that directly. The border pixels of the target are grouped by column, rows ascending; a pixel at
``(y, x)`` looks in its own column, then ``x ± 1``, ``x ± 2``, … — in each column the nearest rows
above and below ``y`` (a cursor per column, moving down) are the only candidates — and stops
once ``(k·s_x)²`` alone reaches its best squared distance, which no farther column can beat.

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

# not segfair.metrics.arrays' alias: arrays imports this module (the extent of a 2-D mask)
FloatArray = npt.NDArray[np.float64]

__all__: list[str] = []


def _extent_bytes(
    flat: npt.NDArray[np.uint8], rows: int, width: int, stride: int
) -> tuple[int, int, int, int]:
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` holding the nonzero bytes of a 2-D array whose
    row ``i`` is ``flat[i·stride : i·stride + width]`` (``(0, 0, 0, 0)`` when there are none).

    The first and last nonzero rows come from the top and the bottom (an OR over each row); the
    rows between them are ORed into one row, whose first and last nonzero bytes are the columns.
    Plain ORs over contiguous bytes, with no branch per byte, are what the compiler vectorises
    (≈6 µs for a 512×512 mask, ≈35 µs with numpy's reductions).
    """

    def row_set(i: int) -> bool:
        acc = np.uint8(0)
        for x in flat[i * stride : i * stride + width]:
            acc |= x
        return acc != 0

    top = 0
    while top < rows and not row_set(top):
        top += 1
    if top == rows:
        return 0, 0, 0, 0
    bottom = rows - 1
    while bottom > top and not row_set(bottom):
        bottom -= 1
    seen = np.zeros(width, dtype=np.uint8)
    for i in range(top, bottom + 1):
        row = flat[i * stride : i * stride + width]
        for j in range(width):
            seen[j] |= row[j]
    lo, hi = 0, width
    while not seen[lo]:
        lo += 1
    while not seen[hi - 1]:
        hi -= 1
    return top, bottom + 1, lo, hi


def _border_runs(
    crop: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The border pixels of a 2-D 0/1 crop (set pixels with a 4-neighbour unset or beyond the
    crop's edge, as ``surface._border``): their coordinates, shape (2, m), in row-major order;
    and the same pixels grouped by column for :func:`_nearest_squared`: ``start`` (width + 1
    offsets) and each column's rows, ascending.

    First every row's border flags, each row in one branch-free pass over it and its two
    neighbours (which the compiler vectorises), with their number; then, in arrays of the right
    size, the pixels, reading only the nonzero 8-byte words of the flags (a blob's row holds
    two or three short runs of border pixels); then the same grouped by column."""
    rows, cols = crop.shape
    n_words = (cols + 7) // 8
    flags = np.zeros((rows, 8 * n_words), dtype=np.uint8)  # the bytes past ``cols`` stay 0
    m = 0
    for i in range(rows):
        row, edge = crop[i], flags[i]
        if i == 0 or i == rows - 1:  # the crop's edge: every pixel is a border pixel
            for j in range(cols):
                edge[j] = row[j]
        else:
            up, down = crop[i - 1], crop[i + 1]
            for j in range(1, cols - 1):
                edge[j] = row[j] & ~(up[j] & down[j] & row[j - 1] & row[j + 1])
            edge[0], edge[cols - 1] = row[0], row[cols - 1]
        for j in range(cols):
            m += edge[j]
    words = flags.reshape(-1).view(np.uint64)
    coords = np.empty((2, m), dtype=np.intp)
    start = np.zeros(cols + 1, dtype=np.intp)
    k = 0
    for w in range(words.size):
        if words[w]:
            i, first = divmod(8 * w, 8 * n_words)
            for j in range(first, first + 8):
                if flags[i, j]:
                    coords[0, k] = i
                    coords[1, k] = j
                    start[j + 1] += 1
                    k += 1
    for j in range(cols):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    runs = np.empty(m, dtype=np.intp)
    for k in range(m):  # row-major: each column's rows come ascending
        j = coords[1, k]
        runs[fill[j]] = coords[0, k]
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
    border pixels in ``start``/``runs`` (which hold at least one).

    The pixels come in row-major order (:func:`_border_runs`), so ``y`` mostly stays or grows:
    each column keeps a cursor on its first row at or below the last ``y`` asked, which moves
    down a step or none per visit (instead of a binary search with its mispredicted branches),
    and the least ``(Δy·s_y)²`` of its two candidate rows, which the other pixels of the same
    row reuse. Adding the same ``(Δx·s_x)²`` to both candidates keeps their order (rounding is
    monotonic), so the least sum is the least of the sums, as before.
    """
    width = start.size - 1
    out = np.empty(rows.size)
    cursor = start[:-1].copy()
    asked = np.full(width, -1, dtype=np.intp)  # the row each column's ``vertical`` is for
    vertical = np.empty(width)

    def gap(column: int, y: int) -> float:
        """The least (Δy·s_y)² from row ``y`` to the border pixels of ``column`` (inf if none)."""
        if asked[column] != y:
            asked[column] = y
            lo, hi = start[column], start[column + 1]
            least = np.inf
            if lo < hi:
                # the first row at or below y: it and the one above are the nearest
                a = cursor[column]
                if a > lo and runs[a - 1] >= y:  # asked rows out of order: from the top again
                    a = lo
                while a < hi and runs[a] < y:
                    a += 1
                cursor[column] = a
                if a < hi:
                    delta_y = float(runs[a] - y) * step_y
                    least = delta_y * delta_y
                if a > lo:
                    delta_y = float(runs[a - 1] - y) * step_y
                    least = min(least, delta_y * delta_y)
            vertical[column] = least
        return float(vertical[column])

    for i in range(rows.size):
        y, x = rows[i], cols[i]
        best = gap(x, y)
        k = 1
        while True:
            delta_x = float(k) * step_x
            across = delta_x * delta_x
            if across >= best:  # every pixel k or more columns away is at least this far
                break
            left, right = x - k, x + k
            if left < 0 and right >= width:
                break
            if left >= 0:
                best = min(best, gap(left, y) + across)
            if right < width:
                best = min(best, gap(right, y) + across)
            k += 1
        out[i] = best
    return out


def _planar_counts(padded: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], int]:
    """One pass over a 2-D 0/1 crop padded with one 0 on every side: ``[n, Σi, Σj, Σi², Σj²,
    Σij]`` of its pixels' indices (in the crop), then the histogram of the marching-squares
    configurations of the 2×2 cells of the padded crop (bit ``2i + j`` is the pixel at offset
    ``(i, j)`` of a cell), and the number of 8-connected components.

    Row by row, with loops the compiler vectorises: a row of cells' configurations into a
    buffer, of which only the 8-byte words that are neither all empty nor all full are read
    cell by cell; and the row's changes between 0 and 1, read the same way, which delimit its
    runs of pixels. A run's count, ``Σj`` and ``Σj²`` have closed forms; components are unions
    of runs (a run joins the runs of the row above that it touches, diagonally included:
    union-find), not of pixels: a blob's row is one or two runs.
    """
    rows, cols = padded.shape[0] - 2, padded.shape[1] - 2
    out = np.zeros(6 + 16, dtype=np.int64)
    width = cols + 1  # cells per pair of rows, and places a row can change between 0 and 1
    n_words = (width + 7) // 8
    cell = np.zeros(8 * n_words, dtype=np.uint8)  # the bytes past ``width`` stay 0
    change = np.zeros(8 * n_words, dtype=np.uint8)
    cell_words, change_words = cell.view(np.uint64), change.view(np.uint64)
    all_full = np.uint64(0x0F0F0F0F0F0F0F0F)
    most = (cols + 1) // 2 + 1  # runs a row can hold
    above = np.empty((3, most), dtype=np.intp)  # start, end (padded columns) and label of runs
    here = np.empty((3, most), dtype=np.intp)
    n_above = 0
    parent = np.empty(rows * most + 1, dtype=np.int32)  # provisional label → a smaller one
    made = 0
    empty = full = n = sum_i = sum_j = sum_ii = sum_jj = sum_ij = 0
    for i in range(rows + 1):
        top, bottom = padded[i], padded[i + 1]
        for j in range(width):
            cell[j] = top[j] | (top[j + 1] << 1) | (bottom[j] << 2) | (bottom[j + 1] << 3)
        for w in range(n_words):
            word = cell_words[w]
            if word == 0:
                empty += 8
            elif word == all_full:
                full += 8
            else:
                for j in range(8 * w, 8 * w + 8):
                    config = cell[j]
                    if config == 0:
                        empty += 1
                    elif config == 15:
                        full += 1
                    else:
                        out[6 + config] += 1
        empty -= 8 * n_words - width  # the buffer's spare bytes
        if i == rows:
            break
        # crop row i is padded row i + 1 (``bottom``): its runs, and their pixels' sums
        for j in range(width):
            change[j] = bottom[j] ^ bottom[j + 1]
        n_here = 0
        for w in range(n_words):
            if not change_words[w]:
                continue
            for j in range(8 * w, 8 * w + 8):
                if change[j]:  # between padded columns j and j + 1
                    if bottom[j + 1]:
                        here[0, n_here] = j + 1
                    else:
                        here[1, n_here] = j + 1
                        n_here += 1
        for r in range(n_here):
            # crop columns lo … hi - 1: their count, Σj and Σj² in closed form (exact integers)
            lo, hi = here[0, r] - 1, here[1, r] - 1
            count = hi - lo
            row_j = (lo + hi - 1) * count // 2
            row_jj = ((hi - 1) * hi * (2 * hi - 1) - (lo - 1) * lo * (2 * lo - 1)) // 6
            n += count
            sum_i += i * count
            sum_ii += i * i * count
            sum_ij += i * row_j
            sum_j += row_j
            sum_jj += row_jj
        k = 0  # the first run above that can touch this row's current run
        for r in range(n_here):
            lo, hi = here[0, r], here[1, r]
            while k < n_above and above[1, k] < lo:
                k += 1
            mine = 0
            q = k
            while q < n_above and above[0, q] <= hi:  # touches [lo - 1, hi + 1)
                a = above[2, q]
                while parent[a] != a:
                    parent[a] = parent[parent[a]]
                    a = parent[a]
                if mine == 0:
                    mine = a
                elif a != mine:
                    parent[max(a, mine)] = min(a, mine)
                    mine = min(a, mine)
                q += 1
            if mine == 0:
                made += 1
                parent[made] = made
                mine = made
            here[2, r] = mine
        above, here = here, above
        n_above = n_here
    out[0], out[1], out[2], out[3], out[4], out[5] = n, sum_i, sum_j, sum_ii, sum_jj, sum_ij
    out[6], out[6 + 15] = empty, full
    components = 0
    for k in range(1, made + 1):
        if parent[k] == k:
            components += 1
    return out, components


def _summary(distances: FloatArray, tolerance: float, rank: int) -> tuple[float, int, float, float]:
    """The largest of ``distances``, how many are ≤ ``tolerance``, and the ``rank``-th and
    ``rank + 1``-th smallest (from 0; both the largest when ``rank + 1`` is past the end): exact
    order statistics and counts, as numpy's ``max``, ``count_nonzero`` and ``partition`` give.

    The order statistics come from the ``n - rank`` largest values, kept sorted in a small
    buffer as the values go by (a 95th percentile keeps 5 %; most values are smaller than the
    least kept and cost one comparison), not from a partition of a copy."""
    n = distances.size
    keep = max(1, n - rank)
    top = np.empty(keep)  # the largest values seen, ascending
    held = 0
    within = 0
    for value in distances:
        if value <= tolerance:
            within += 1
        if held < keep:  # not full: insert, moving the larger ones up
            j = held
            while j > 0 and top[j - 1] > value:
                top[j] = top[j - 1]
                j -= 1
            top[j] = value
            held += 1
        elif value > top[0]:  # full: drop the least, moving the smaller ones down
            j = 0
            while j + 1 < keep and top[j + 1] < value:
                top[j] = top[j + 1]
                j += 1
            top[j] = value
    largest = top[keep - 1]
    if rank + 1 >= n:
        return largest, within, largest, largest
    return largest, within, top[0], top[1]


@functools.cache
def _kernels() -> dict[str, Any] | None:
    """The loops of this module compiled by numba (once per process; cached on disk where it
    can), or ``None`` without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    loops = {
        "border": _border_runs,
        "nearest": _nearest_squared,
        "planar": _planar_counts,
        "extent": _extent_bytes,
        "summary": _summary,
    }
    # no fastmath: the IEEE float64 arithmetic of the engine, bit for bit
    try:  # compiled once and kept on disk (≈2 s the first time), loaded in ≈0.1 s afterwards
        return {name: numba.njit(cache=True, nogil=True)(loop) for name, loop in loops.items()}
    except RuntimeError:  # pragma: no cover - no writable cache folder: compile every process
        return {name: numba.njit(nogil=True)(loop) for name, loop in loops.items()}


def planar_extent(arr: npt.NDArray[Any]) -> tuple[int, int, int, int] | None:
    """The rows ``[r0, r1)`` and columns ``[c0, c1)`` of the nonzero pixels of a 2-D array of
    bytes (bool, uint8, int8) whose rows or columns are contiguous, in one compiled pass
    (:func:`_extent_bytes`): ``(0, 0, 0, 0)`` when there are none; ``None`` for other arrays
    or without numba (the caller scans with numpy).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 9), bool); mask[1, 2] = mask[2, 7] = True
    >>> planar_extent(mask) in (None, (1, 3, 2, 8))
    True
    """
    if arr.ndim != 2 or arr.dtype.itemsize != 1 or arr.dtype.kind not in "biu" or arr.size == 0:
        return None
    kernels = _kernels()
    if kernels is None:  # pragma: no cover - depends on the environment
        return None
    transposed = arr.strides[1] != 1
    data = (arr.T if transposed else arr).view(np.uint8)
    rows, width = data.shape
    stride = data.strides[0]
    if data.strides[1] != 1 or (stride < width and rows > 1):
        return None  # neither rows nor columns contiguous, or reversed
    if data.flags.c_contiguous:
        flat = data.reshape(-1)
    else:  # a view's rows, with the bytes between them (never read)
        span = (rows - 1) * stride + width
        flat = np.lib.stride_tricks.as_strided(data, (span,), (1,), writeable=False)
    found: tuple[int, int, int, int] = kernels["extent"](flat, rows, width, stride)
    if transposed:
        return found[2], found[3], found[0], found[1]
    return found


def distance_summary(
    distances: FloatArray, tolerance: float, rank: int
) -> tuple[float, int, float, float] | None:
    """One compiled pass over a direction's distances (see :func:`_summary`): the largest, how
    many are within ``tolerance``, and the order statistics ``rank`` and ``rank + 1`` (those a
    percentile interpolates); ``None`` without numba.

    Examples
    --------
    >>> import numpy as np
    >>> found = distance_summary(np.array([3.0, 1.0, 2.0, 0.5]), 1.0, 1)
    >>> found is None or found == (3.0, 2, 1.0, 2.0)
    True
    """
    kernels = _kernels()
    if kernels is None:  # pragma: no cover - depends on the environment
        return None
    values = np.ascontiguousarray(distances, dtype=np.float64)
    # one compiled signature, whatever number types the caller passes
    found: tuple[float, int, float, float] = kernels["summary"](values, float(tolerance), int(rank))
    return found


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
