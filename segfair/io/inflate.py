"""Inflating gzip streams: zlib, or ISA-L when installed, in one call when that is safe."""

from __future__ import annotations

import zlib
from typing import Any, Final

_inflate_lib: Any  # zlib, or ISA-L's drop-in isal_zlib
try:  # optional (segfair[fast]): ISA-L inflates the same gzip stream ≈1.3x faster than zlib
    from isal import isal_zlib

    _inflate_lib = isal_zlib
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (isal_zlib.error,)
except ImportError:  # pragma: no cover - depends on the environment
    _inflate_lib = zlib
    _INFLATE_ERRORS = ()
_INFLATE_FAILURES: tuple[type[Exception], ...] = (zlib.error, *_INFLATE_ERRORS)

_GZIP_MAGIC = b"\x1f\x8b"


def _gzip_inflater() -> Any:
    """A streaming inflater of a gzip stream (gzip wrapper only), by the library in use."""
    return _inflate_lib.decompressobj(wbits=16 + zlib.MAX_WBITS)


# Deflate cannot expand its input more than 1032-fold (a run of 258 bytes costs at least 2 bits).
_DEFLATE_MAX_RATIO: Final = 1032


def _inflate_at_once(raw: bytes, size: int) -> bytes | None:
    """A whole single-member gzip stream inflated in one call into one ``size``-byte buffer.

    The fast path: CPython's streaming decompressor grows its output in blocks and joins them at
    the end, which costs as much as inflating (≈80 ms instead of ≈40 ms for a 42 MB mask with
    zlib); the one-shot call told the size writes straight into one buffer. It has no output cap,
    so it is used only when the gzip trailer promises exactly ``size`` bytes and the input is
    too short to expand beyond ``8 * size + 64 MiB`` whatever it holds: memory stays bounded by
    the header's promise. Anything else (trailing data, several members, a damaged stream)
    returns None and goes through the capped streaming path, which also explains the damage.
    """
    if len(raw) < 18 or len(raw) * _DEFLATE_MAX_RATIO > 8 * size + (64 << 20):
        return None
    if int.from_bytes(raw[-4:], "little") != size % (1 << 32):  # ISIZE of the (last) member
        return None
    try:
        out: bytes = _inflate_lib.decompress(raw, 16 + zlib.MAX_WBITS, size)
    except _INFLATE_FAILURES:
        return None
    return out if len(out) == size else None
