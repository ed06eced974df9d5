"""Bootstrap counts drawn block by block from keyed streams, so that no n × resamples matrix
is ever stored.

A stratified bootstrap resample of a group of ``m`` resampling units draws ``m`` units with
replacement: the counts of the units follow a multinomial distribution. The units are cut into
blocks of :data:`BLOCK` and the multinomial is drawn block by block: the number of draws that
land in a block is binomial given the draws left (``Binomial(left, u / units left)``), and those
draws are spread uniformly over the block's ``u`` units. That is the same multinomial,
exactly. Each block draws from its own generator, keyed by (seed, attribute, group, block), so a
block's counts depend on nothing else — not on how many blocks are processed at once, not on
the other groups — and every model, ruler and metric that asks for them gets the same ones.

Example
-------
>>> import hashlib

import numpy as np
>>> s = CountStream(seed=0, key=("age",), label="old", n_units=5000, n_boot=10)
>>> total = sum(c.sum(axis=1) for _, _, c in s.blocks())
>>> total.tolist() == [5000.0] * 10
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK", "CountStream", "stable_hash"]

#: Units per block of a keyed stream. Part of the definition of the random stream (changing it
#: changes every resample of a streamed design), and it bounds the memory: ``n_boot × BLOCK``
#: counts at a time (2,000 × 2,048 float32 = 16 MiB).
BLOCK = 2048
#: Resamples per ``bincount``: its output then fits in the processor's cache (measured 2×
#: faster than one ``bincount`` over the whole block).
_ROWS = 32


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


@dataclass(frozen=True)
class CountStream:
    """The bootstrap counts of one group's resampling units, block by block.

    Attributes
    ----------
    seed
        Audit seed.
    key
        The attribute name(s) of the grouping.
    label
        The group's label (the stream is keyed by it, not by its position).
    n_units
        Number of resampling units (cases, or clusters) of the group.
    n_boot
        Number of resamples.
    """

    seed: int
    key: tuple[str, ...]
    label: str
    n_units: int
    n_boot: int

    def _generator(self, block: int) -> np.random.Generator:
        entropy = [self.seed % 2**64, stable_hash("stream", *self.key), stable_hash(self.label)]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*entropy, block])))

    def blocks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(lo, hi, counts)`` per block: units ``lo:hi`` and their ``(n_boot, hi - lo)``
        counts, float32 (exact: each row sums, over all blocks, to :attr:`n_units`).

        Example
        -------
        >>> s = CountStream(seed=1, key=("g",), label="a", n_units=3, n_boot=2)
        >>> [(lo, hi, c.shape) for lo, hi, c in s.blocks()]
        [(0, 3, (2, 3))]
        """
        m, b = self.n_units, self.n_boot
        left = np.full(b, m, dtype=np.int64)  # draws not yet placed, per resample
        for k, lo in enumerate(range(0, m, BLOCK)):
            hi = min(m, lo + BLOCK)
            u = hi - lo
            rng = self._generator(k)
            # draws landing in this block: all that are left in the last block, else binomial
            # given the draws left and the share of the units left that this block holds
            here = left.copy() if hi == m else rng.binomial(left, u / (m - lo))
            left -= here
            yield lo, hi, _spread(rng, here, u)


def _spread(rng: np.random.Generator, draws: np.ndarray, u: int) -> np.ndarray:
    """Counts ``(len(draws), u)``: row ``i`` places ``draws[i]`` draws uniformly on ``u`` units."""
    n_rows = len(draws)
    total = int(draws.sum())
    if u & (u - 1) == 0 and u <= 65536:
        # a power of two (every full block): 16 random bits a pick, sliced from the generator's
        # 64-bit words (3× faster than bounded integers, and exactly uniform)
        words = rng.bit_generator.random_raw(-(-total // 4))
        picks = words.view(np.uint16)[:total] & np.uint16(u - 1)
    else:
        picks = rng.integers(0, u, size=total, dtype=np.uint16 if u <= 65535 else np.int64)
    starts = np.concatenate([[0], np.cumsum(draws)])
    # each pick's place in its row chunk's bincount, made once for the whole block
    flat = np.repeat((np.arange(n_rows) % _ROWS).astype(np.int64) * u, draws) + picks
    # float32 holds every count exactly, and halves what the matrix products read
    out = np.empty((n_rows, u), dtype=np.float32)
    for r0 in range(0, n_rows, _ROWS):
        r1 = min(n_rows, r0 + _ROWS)
        a, z = int(starts[r0]), int(starts[r1])
        out[r0:r1] = np.bincount(flat[a:z], minlength=(r1 - r0) * u).reshape(r1 - r0, u)
    return out
