"""One computation for a pytest-xdist run: the controller checks every gate, workers ask it.

Under ``pytest -n N`` every worker process would import the numeric stack, load the cohort's
scores and audit (or evaluate them) and check its share of the gates, on top of what a serial
run does. Instead the controller evaluates and audits the cohort once, and answers its workers'
gate checks over a local socket: a worker that only asserts gates imports neither numpy nor
pandas. The controller starts computing when the first worker says, right after collecting,
that its tests use segfair (a run that deselects them computes nothing).

The transport is :mod:`multiprocessing.connection` over a Unix socket in the run's private share
folder (mode 0700; on Linux an abstract socket when that path is too long for a socket address),
authenticated by a random key the controller gives its workers; requests and answers are plain
dictionaries. A worker that cannot reach the controller (a remote worker, an error) computes for
itself, as a serial run does.

Nothing here imports pytest; :mod:`segfair.plugin` wires it to pytest-xdist's hooks.
"""

from __future__ import annotations

import contextlib
import pickle
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfair.errors import SegfairError

if TYPE_CHECKING:
    from segfair.session import SegfairSession

__all__ = ["RelayClient", "RelayServer", "RelayUnavailable", "relay_supported"]

#: The socket's file name in the share folder.
SOCKET_NAME = "relay.sock"
# AF_UNIX paths are limited to about 107 bytes (104 on macOS): a longer share path has no relay
_MAX_SOCKET_PATH = 100


# seconds computing waits, at most, for the controller to say its workers are started
_RELEASE_TIMEOUT = 30.0


class RelayUnavailable(Exception):
    """The controller cannot be reached: the worker computes for itself."""


def relay_supported(folder: Path) -> bool:
    """Whether a relay can listen for ``folder``: Unix sockets exist, and the socket's path
    fits in a socket address or Linux's abstract namespace can hold it instead."""
    if not hasattr(socket, "AF_UNIX") or sys.platform == "win32":
        return False  # multiprocessing.connection speaks AF_UNIX on POSIX only
    return len(str(folder / SOCKET_NAME)) <= _MAX_SOCKET_PATH or sys.platform == "linux"


def _address(folder: Path) -> str:
    path = str(folder / SOCKET_NAME)
    if len(path) <= _MAX_SOCKET_PATH:
        return path
    # the authentication key, not the name, keeps other local processes out
    return f"\0segfair-relay-{secrets.token_hex(16)}"


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (so the worker raises the same exception), else a
    :class:`SegfairError` (for segfair's own errors) or a ``RuntimeError`` with its text; an
    unexpected error carries the controller's traceback as a note."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
        if type(copy) is type(exc) and str(copy) == str(exc):
            portable: BaseException = exc
        else:
            raise TypeError("not the same after pickling")
    except Exception:
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, SegfairError):
            portable = SegfairError(text)
        else:
            portable = RuntimeError(f"{type(exc).__name__}: {text}")
    if not isinstance(exc, SegfairError):
        frames = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        portable.add_note("segfair: raised in the pytest-xdist controller:\n" + frames)
    portable.__traceback__ = None
    return portable


class RelayServer:
    """The controller's side: parses the configured gates, computes the audit, answers checks.

    Parameters
    ----------
    folder
        The run's private share folder, where the socket is created.
    open_session
        Opens the controller's :class:`~segfair.session.SegfairSession` (called once, in a
        thread: reading the configuration overlaps the workers' start).
    collect
        ``collect(session)`` → ``{"error": None, "items": [[gate id, line], …]}``: the
        configured gates, which the workers collect as test items without parsing them.
    locate
        ``locate(session, where)`` turns a worker's ``{"path", "line", "origin"}`` into the
        location recorded with the result (file relative to the configuration's root).
    eager
        Start computing as soon as the configuration is read, if it declares gates: the caller
        knows they will run (nothing deselects tests), so waiting for a worker to say so would
        only add the workers' start-up to the run.
    """

    #: Seconds without a request after which the report's statistics are computed: a check
    #: that arrives is answered first (the workers' tests wait on it; the report does not).
    IDLE = 0.05

    def __init__(
        self,
        folder: Path,
        *,
        open_session: Callable[[], SegfairSession],
        collect: Callable[[SegfairSession], dict[str, Any]],
        locate: Callable[[SegfairSession, Mapping[str, Any]], dict[str, Any]],
        eager: bool = False,
    ) -> None:
        self.eager = eager
        self.authkey = secrets.token_bytes(32)
        self.address = _address(folder)
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self._open_session = open_session
        self._collect_gates = collect
        self._locate = locate
        self.session: SegfairSession | None = None
        self._session_lock = threading.Lock()
        self._gates: dict[str, Any] = {}
        self._collected = threading.Event()
        self._ready = threading.Event()
        # one gate at a time: the audit's caches are not built for concurrent writers
        self._lock = threading.Lock()
        # requests in flight, and when the last one ended (the report waits for a quiet spell)
        self._activity = threading.Condition()
        self._in_flight = 0
        self._last = 0.0
        self._closed = False
        self._begun = False
        self._begin_lock = threading.Lock()
        self._released = threading.Event()
        #: A configuration or cohort error met while computing (the workers' input error).
        self.input_error: str | None = None
        self._failure: BaseException | None = None
        self.compute_thread = threading.Thread(target=self._compute, daemon=True)
        self._collect_thread = threading.Thread(target=self._collect, daemon=True)
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        """Listen for the workers, and read the configuration and parse the gates (imports
        only: nothing forks) while they start."""
        self._accept_thread.start()
        self._collect_thread.start()

    def release(self) -> None:
        """The workers are started: computing may begin (it may fork a process pool, which
        must not happen while the main thread forks and executes a worker)."""
        self._released.set()

    def gates_error(self) -> str | None:
        """The error that kept the configured gates from being parsed, if any (waits for it)."""
        self._collected.wait()
        error: str | None = self._gates.get("error")
        return error

    def begin(self) -> None:
        """Start computing the cohort, its scores and audit (once)."""
        with self._begin_lock:
            if not self._begun:
                self._begun = True
                self.compute_thread.start()

    def join(self) -> None:
        """Wait for the computation, if it was started."""
        if self._begun:
            self.compute_thread.join()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()

    # ---- computing -------------------------------------------------------------------------
    def _open(self) -> SegfairSession:
        with self._session_lock:
            if self.session is None:
                self.session = self._open_session()
            return self.session

    def _collect(self) -> None:
        try:
            session = self._open()
            if self.eager and session.config.gates:
                # the configured gates will run: computing starts now, alongside their parsing
                self.begin()
            self._gates = self._collect_gates(session)
        except Exception as exc:  # the workers report it as a usage error
            text = str(exc) if isinstance(exc, SegfairError) else f"{type(exc).__name__}: {exc}"
            self._gates = {"error": text, "items": []}
        finally:
            self._collected.set()

    def _compute(self) -> None:
        # a worker asks only once started; the wait is bounded so that nothing hangs if the
        # controller never says its workers are started
        self._released.wait(_RELEASE_TIMEOUT)
        try:
            self._open().audit  # noqa: B018 (the cohort, its scores and audit: once, for all)
        except SegfairError as exc:
            self.input_error = str(exc)
        except Exception as exc:  # a bug: each request re-raises it where a test can show it
            self._failure = exc
        finally:
            self._ready.set()
        if self.input_error is not None or self._failure is not None:
            return
        with self._activity:
            while self._in_flight or time.monotonic() - self._last < self.IDLE:
                self._activity.wait(self.IDLE)
        # the report's statistics depend on the audit alone: computed while the workers are
        # idle, so the report is ready when they are done (an error here is met again, and
        # said, when the report is built)
        with self._lock, contextlib.suppress(Exception):
            self._open().report([])

    # ---- answering -------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except Exception:  # closed, or a client that failed authentication
                if self._closed:
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                with self._activity:
                    self._in_flight += 1
                try:
                    answer = self.answer(request)
                finally:
                    with self._activity:
                        self._in_flight -= 1
                        self._last = time.monotonic()
                        self._activity.notify_all()
                conn.send(answer)

    def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request: ``{"op": "gates"}`` (the configured gates),
        ``{"op": "start"}`` (start computing; answered at once), ``{"op": "ready"}`` (once the
        audit is computed) or ``{"op": "check", "gate": …}`` (a mapping, a gate, or
        ``{"config": i}`` for the i-th configured gate, with ``where``, the file and line that
        declare it)."""
        op = request.get("op")
        if op == "gates":
            self._collected.wait()
            return {"gates": self._gates}
        self.begin()
        if op == "start":
            return {}
        self._ready.wait()
        if self.input_error is not None:
            return {"input_error": self.input_error}
        if self._failure is not None:
            return {"raised": _portable(self._failure)}
        if op == "ready":
            return {}
        session = self._open()
        gate = request["gate"]
        with self._lock:
            try:
                if isinstance(gate, Mapping) and set(gate) == {"config"}:
                    gate = session.gates[int(gate["config"])]
                result = session.check(gate)
            except Exception as exc:
                try:
                    error = session.error_result(gate, exc).to_dict()
                except Exception:  # recording must never hide the original error
                    error = None
                return {"raised": _portable(exc), "error_result": error}
            data = result.to_dict()
            where = request.get("where")
            if where is not None and result.location is None:
                data["location"] = self._locate(session, where)
            return {"result": data, "explain": result.explain()}


class RelayClient:
    """A worker's side: one connection to the controller, opened at the first request."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer; :class:`RelayUnavailable` if the
        controller cannot be reached."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = Client(self.address, family="AF_UNIX", authkey=self.authkey)
                self._conn.send(dict(request))
                answer: dict[str, Any] = self._conn.recv()
            except (OSError, EOFError, ValueError) as exc:
                self._conn = None
                raise RelayUnavailable(str(exc)) from exc
            except Exception as exc:  # e.g. multiprocessing.AuthenticationError
                self._conn = None
                raise RelayUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return answer

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
