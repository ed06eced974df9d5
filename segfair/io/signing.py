"""Authenticating what segfair reads back from its cache: HMAC-SHA256 under a key kept outside
the repository (SECURITY.md).

A cache folder can be written by others — committed in a pull request, restored by CI from
another branch. An unkeyed checksum proves nothing there: whoever changes a Dice can recompute
it. An entry is trusted only when its tag verifies under the key, which lives in
``$SEGFAIR_CACHE_KEY`` (e.g. a CI secret) or in a file of the user's own configuration folder
(``$XDG_CONFIG_HOME/segfair/cache.key``, else ``~/.config/segfair/cache.key``, created on first
use, readable by its owner only). Without the key, an entry is recomputed, never believed.

Example
-------
>>> import os
>>> os.environ[KEY_ENV] = "an example key of at least 32 characters"
>>> tag = sign(b"payload")
>>> verify(b"payload", tag), verify(b"forged", tag)
(True, False)
>>> del os.environ[KEY_ENV]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from segfair.errors import SegfairError

__all__ = [
    "KEY_ENV",
    "KEY_TOO_SHORT",
    "NO_KEY",
    "cache_key",
    "key_path",
    "sign",
    "sign_document",
    "verify",
    "verify_document",
]

#: Environment variable holding the cache key (takes precedence over the key file).
KEY_ENV: Final = "SEGFAIR_CACHE_KEY"
MIN_KEY_CHARS: Final = 32
KEY_TOO_SHORT: Final = (
    f"{KEY_ENV} holds {{n}} characters; a cache key needs at least {MIN_KEY_CHARS} (e.g. the "
    "output of `python -c 'import secrets; print(secrets.token_hex(32))'`)"
)
NO_KEY: Final = (
    "the cache key file {path} cannot be {what} ({reason}). Set {env} to a secret of at least "
    "{n} characters, make that folder writable, or turn the cache off (cache = false, or "
    "--no-cache)"
)


def key_path() -> Path:
    """Where the key file lives: the user's configuration folder, never the repository."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "segfair" / "cache.key"


def cache_key() -> bytes:
    """The key: ``$SEGFAIR_CACHE_KEY``, else the key file (created, mode 0600, on first use).

    Raises :class:`~segfair.errors.SegfairError` when neither can be had.
    """
    env = os.environ.get(KEY_ENV)
    memo = (env, str(key_path()))
    if memo not in _KEYS:  # read once per process: every cache entry is signed or checked
        _KEYS[memo] = _find_key(env)
    return _KEYS[memo]


_KEYS: dict[tuple[str | None, str], bytes] = {}


def _find_key(env: str | None) -> bytes:
    # an empty value is unset: what a CI secret gives a run that may not see it (a fork's PR)
    if env:
        if len(env) < MIN_KEY_CHARS:
            raise SegfairError(KEY_TOO_SHORT.format(n=len(env)))
        return env.encode("utf-8")
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except _ShortKey:
        # another process has just created it and is writing it: wait for the whole key
        return _whole_key(path)
    except OSError as exc:
        raise SegfairError(_no_key(path, "read", exc)) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two processes creating it at once keep one key; O_NOFOLLOW: never through a link
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
    except FileExistsError:
        # another process made it first: use theirs, once it has written it (two runs that
        # start at once on a fresh machine would otherwise read it empty)
        return _whole_key(path)
    except OSError as exc:
        raise SegfairError(_no_key(path, "created", exc)) from None
    return _whole_key(path)


def _whole_key(path: Path) -> bytes:
    """The key in ``path``, waiting a moment for a writer that has not finished it."""
    for _ in range(_WAIT_STEPS):
        try:
            return _read_key(path)
        except _ShortKey:
            time.sleep(_WAIT_STEP_S)
        except OSError:
            break
    try:
        return _read_key(path)
    except OSError as exc:
        raise SegfairError(_no_key(path, "read", exc)) from None


class _ShortKey(OSError):
    """The key file holds fewer than :data:`MIN_KEY_CHARS` characters."""


#: How long a process waits for another to finish writing the key file it created (20 × 50 ms).
_WAIT_STEPS, _WAIT_STEP_S = 20, 0.05


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        key = f.read(4096).strip()
    if len(key) < MIN_KEY_CHARS:
        raise _ShortKey(f"it holds {len(key)} characters, fewer than {MIN_KEY_CHARS}")
    return key


def _no_key(path: Path, what: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return NO_KEY.format(path=path, what=what, reason=reason, env=KEY_ENV, n=MIN_KEY_CHARS)


def sign(payload: bytes, key: bytes | None = None) -> str:
    """The hex HMAC-SHA256 tag of ``payload`` under ``key`` (default: :func:`cache_key`)."""
    return hmac.new(key if key is not None else cache_key(), payload, hashlib.sha256).hexdigest()


def verify(payload: bytes, tag: object, key: bytes | None = None) -> bool:
    """Whether ``tag`` is the tag of ``payload`` (compared in constant time)."""
    if not isinstance(tag, str):
        return False
    return hmac.compare_digest(sign(payload, key), tag)


#: The field of a JSON document that holds its tag.
TAG_FIELD: Final = "hmac"


def _body(doc: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in doc.items() if k != TAG_FIELD}, sort_keys=True).encode()


def sign_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with its tag (over its canonical JSON, every other field) in ``"hmac"``."""
    return {**doc, TAG_FIELD: sign(_body(doc))}


def verify_document(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` carries a valid tag (False without a key: then nothing is trusted)."""
    try:
        return verify(_body(doc), doc.get(TAG_FIELD))
    except SegfairError:
        return False
