"""pytest plugin: segfair gates as tests, fixtures for fairness assertions, reports at the end.

pytest imports every installed plugin on every run, so this module imports only the standard
library and pytest at the top; the numeric stack is imported inside hooks and fixtures, and
nothing is written unless segfair is configured or its fixtures are used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from segfair.sinks import for_terminal

T = TypeVar("T")

if TYPE_CHECKING:
    import threading
    from types import FrameType

    from segfair.audit import Audit
    from segfair.gates import Gate, GateResult
    from segfair.relay import RelayClient, RelayServer
    from segfair.session import SegfairSession

STATE_KEY: pytest.StashKey[_State] = pytest.StashKey()
# the workerinput key of the share folder (an xdist controller's, for its workers)
_SHARE_KEY = "segfair_share"
# … and of the relay: where the controller answers its workers' gate checks, and its gates
_RELAY_KEY = "segfair_relay"

# segfair.cohort.config.CONFIG_FILENAMES, repeated: detecting a configuration imports no pydantic
_CONFIG_FILENAMES = ("segfair.toml", "pyproject.toml")

_OPTIONS = (
    # (flag suffix, ini key, help)
    (
        "config",
        "segfair_config",
        "segfair.toml or pyproject.toml holding [tool.segfair] (default: found in the rootdir)",
    ),
    ("html", "segfair_html", "write the HTML audit report to PATH"),
    ("json", "segfair_json", "write the JSON report to PATH (the baseline format)"),
    ("md", "segfair_md", "write the Markdown summary to PATH"),
    ("seed", "segfair_seed", "seed of the bootstrap (default: the configured seed)"),
    ("baseline", "segfair_baseline", "a previous JSON report, for no_regression gates"),
    (
        "on-inconclusive",
        "segfair_on_inconclusive",
        "fail (default), warn or pass: what an inconclusive gate does to the run "
        "(default: the configured on_inconclusive)",
    ),
)

# segfair.gates.ON_INCONCLUSIVE, repeated: reading the option imports no numeric stack
_ON_INCONCLUSIVE = ("fail", "warn", "pass")
BAD_ON_INCONCLUSIVE_INI = "segfair_on_inconclusive must be one of {valid}; got {value!r}"


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"--segfair-seed expects a whole number, got {text!r}"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("segfair", "segfair: subgroup fairness gates")
    for suffix, ini, text in _OPTIONS:
        kwargs: dict[str, Any] = {"dest": ini, "default": None, "help": text}
        if suffix == "seed":
            kwargs["type"] = _seed
            kwargs["metavar"] = "N"
        elif suffix == "on-inconclusive":
            kwargs["choices"] = _ON_INCONCLUSIVE
        else:
            kwargs["metavar"] = "PATH"
        group.addoption(f"--segfair-{suffix}", **kwargs)
        parser.addini(ini, help=text, default=None)


class _State:
    """Run-wide segfair state of one pytest process (controller or xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self.config_path = self._find_config(config)
        seed = self._value("seed")
        self.seed = int(seed) if seed is not None else None
        policy = self._value("on_inconclusive")
        if policy is not None and policy not in _ON_INCONCLUSIVE:
            raise pytest.UsageError(
                "segfair: "
                + BAD_ON_INCONCLUSIVE_INI.format(
                    valid=", ".join(map(repr, _ON_INCONCLUSIVE)), value=policy
                )
            )
        self.on_inconclusive: str | None = policy
        self._session: SegfairSession | None = None
        # the run's share folder (SegfairSession.share): an xdist controller creates it for its
        # workers, which find it in their workerinput; a remote worker, with no such folder
        # here, computes for itself
        self.share: Path | None = None
        workerinput = getattr(config, "workerinput", {})
        share = workerinput.get(_SHARE_KEY)
        if share and Path(share).is_dir():
            self.share = Path(share)
        # an xdist controller's relay (segfair.relay): it checks every gate of the run; its
        # workers ask it, and collect the configured gates it parsed (no numeric stack here)
        self.server: RelayServer | None = None
        self.relay: RelayClient | None = None
        relay = workerinput.get(_RELAY_KEY)
        if relay and self.share is not None:
            from segfair.relay import RelayClient

            self.relay = RelayClient(relay["address"], bytes.fromhex(relay["authkey"]))
        self.used = False
        self.gates_collected = False  # the configuration file's gates are items already
        # an invalid [[gates]] entry: a usage error (on an xdist controller, its relay's text)
        self.gate_error: Exception | str | None = None
        self.prefetch: threading.Thread | None = None  # an xdist controller loading the audit
        self.importer: threading.Thread | None = None  # … and importing the report's stack
        self.results: dict[str, dict[str, Any]] = {}
        self.document: dict[str, Any] | None = None
        self.from_workers = False  # the xdist controller, holding its workers' results
        self.written: list[Path] = []
        self.annotations: list[str] = []
        self.error: str | None = None
        # a configuration or cohort error: said once, short, and in CI (not per test, not with
        # segfair's frames)
        self.input_error: str | None = None

    def _value(self, key: str) -> Any:
        value = self.pytest_config.getoption(f"segfair_{key}", default=None)
        if value is None:
            value = self.pytest_config.getini(f"segfair_{key}") or None
        return value

    def _find_config(self, config: pytest.Config) -> Path | None:
        explicit = config.getoption("segfair_config", default=None) or (
            config.getini("segfair_config") or None
        )
        if explicit:
            path = Path(explicit)
            return path if path.is_absolute() else Path(config.rootpath, path)
        for name in _CONFIG_FILENAMES:
            candidate = config.rootpath / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_tool_table(candidate)):
                return candidate
        return None

    @property
    def configured(self) -> bool:
        return self.config_path is not None

    @property
    def session(self) -> SegfairSession:
        session = self.open()
        self.used = True
        return session

    def open(self) -> SegfairSession:
        """The session, not yet marked used: collecting the configured gates reads the
        configuration only, and a run that deselects them all computes nothing."""
        if self._session is None:
            if self.config_path is None:
                raise pytest.UsageError(
                    "segfair: no configuration found. Add a segfair.toml or a [tool.segfair] "
                    "table to pyproject.toml in the rootdir, or pass --segfair-config PATH."
                )
            from segfair.session import SegfairSession

            self._session = SegfairSession.from_path(
                self.config_path,
                seed=self.seed,
                baseline=self._value("baseline"),
                progress=False,
                on_inconclusive=self.on_inconclusive,
                share=self.share,
            )
        return self._session

    def record(self, result: GateResult | dict[str, Any], nodeid: str) -> None:
        # keyed by test and gate: the same gate checked by two tests is two rows of evidence
        data = result if isinstance(result, dict) else result.to_dict()
        self.results[f"{nodeid} {data['id']}"] = data

    def path(self, key: str) -> Path | None:
        value = self._value(key)
        if value is None and self._session is not None:
            cfg = self._session.config
            configured = {"html": cfg.html, "json": cfg.json_report, "md": cfg.md}[key]
            return cfg.resolve(configured) if configured else None
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else Path(self.pytest_config.invocation_params.dir, path)


def _has_tool_table(pyproject: Path) -> bool:
    import tomllib

    try:
        with pyproject.open("rb") as fh:
            return "segfair" in tomllib.load(fh).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _state(config: pytest.Config) -> _State:
    return config.stash[STATE_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[STATE_KEY] = _State(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "segfair-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None and state.relay is not None:
        state.relay.close()
    if state is not None and state.server is not None:
        state.server.close()
    if state is not None and state.share is not None and not _is_worker(config):
        import shutil

        shutil.rmtree(state.share, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = _state(config)
    if not state.configured:
        return None
    try:
        from segfair.cohort.config import load_config

        cfg = load_config(state.config_path)  # type: ignore[arg-type]
    except Exception as exc:
        return [f"segfair: {state.config_path} (invalid: {str(exc).splitlines()[0]})"]
    seed = cfg.seed if state.seed is None else state.seed
    n = len(cfg.gates)
    # the run's estimator of the trusted ruler's statistics (a gate may name its own)
    proxy = f" (proxy {cfg.proxy})" if cfg.estimator == "ppi" and cfg.proxy else ""
    return [
        f"segfair: config {state.config_path}, seed {seed}, "
        f"{n} configured gate{'s' if n != 1 else ''}, estimator {cfg.estimator}{proxy}"
    ]


# ---- configured gates become test items -------------------------------------------------------
# A gate declared in the configuration is an item of the configuration file, under a "segfair"
# collector (like pytest-mypy's ``file.py::mypy``): ``pyproject.toml::segfair::gap[dice,…]``,
# JUnit classname ``pyproject.toml.segfair``; ``pytest pyproject.toml`` runs the gates alone,
# and the node id of a failed gate can be pasted back on the command line.
class GateItem(pytest.Item):
    """One ``[[gates]]`` entry of the configuration, run as a test."""

    def __init__(
        self, *, gate: Gate | None, index: int, line: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.gate = gate  # None on an xdist worker whose controller checks the gate
        self.index = index  # its position among the configured gates
        self.line = line  # 0-based, of the entry's [[gates]] header, as pytest counts lines

    def runtest(self) -> None:
        state = _state(self.config)
        if state.relay is not None:
            where = None
            if self.line is not None:
                where = {"path": str(self.path), "line": self.line + 1, "origin": "configuration"}
            relayed = _relayed(state, {"config": self.index}, where, self)
            if relayed is not None:
                data, explain = relayed
                if not _ok(data):
                    raise GateFailure(data["message"], explain)
                return
            # the controller cannot be reached: this worker computes for itself
            self.gate = state.open().gates[self.index]
        assert self.gate is not None
        _load(state, lambda: state.session.audit)  # an input error: once, short
        try:
            result = state.session.check(self.gate)
        except Exception as exc:
            # an error never reads as a pass: the gate is recorded as `error`, then raised
            _record_error(state, self.gate, exc, self.nodeid, self.user_properties)
            raise
        result = _located(result, self._location(state))
        state.record(result, self.nodeid)
        _record_properties(self.user_properties, result)
        if not result.ok:
            raise GateFailure(result.message, result.explain())

    def _location(self, state: _State) -> dict[str, Any] | None:
        """This gate's ``[[gates]]`` table, found when it was collected."""
        if self.line is None:
            return None
        from segfair.report import location

        root = state.session.config.root
        return location(self.path, self.line + 1, origin="configuration", root=root)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateFailure):
            return for_terminal(excinfo.value.explanation)
        from segfair.errors import SegfairError

        if isinstance(excinfo.value, SegfairError):
            return for_terminal(f"segfair: {excinfo.value}")
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.line, f"segfair gate {self.name}"


class GateCollector(pytest.Collector):
    """Collects the gates declared in the configuration as :class:`GateItem` s."""

    def collect(self) -> Iterator[GateItem]:
        from segfair.errors import SegfairError

        state = _state(self.config)
        state.gates_collected = True
        relayed = _relayed_gates(state)
        if relayed is not None:
            # an xdist worker: its controller parsed the gates, and will check them
            if relayed["error"] is not None:
                state.gate_error = SegfairError(relayed["error"])
                return
            for i, (gate_id, line) in enumerate(relayed["items"]):
                yield GateItem.from_parent(self, name=gate_id, gate=None, index=i, line=line)
            return
        try:
            session = state.open()
            gates, entries = session.gates, session.gate_entries
        except SegfairError as exc:
            # a usage error once collection is over (pytest_collection_modifyitems), not a
            # collection error with segfair's frames
            state.gate_error = exc
            return
        # one line per [[gates]] entry; an entry's copies per structure share it
        lines = _gate_lines(self.path, len(session.config.gates))
        for i, (gate, entry) in enumerate(zip(gates, entries, strict=True)):
            yield GateItem.from_parent(self, name=gate.id, gate=gate, index=i, line=lines[entry])


def _ask(state: _State, request: dict[str, Any]) -> dict[str, Any] | None:
    """The xdist controller's answer to ``request`` (segfair.relay), or None without a
    reachable controller — then this worker stops asking and computes for itself."""
    from segfair.relay import RelayUnavailable

    if state.relay is None:
        return None
    try:
        return state.relay.ask(request)
    except RelayUnavailable:
        state.relay = None
        return None


def _relayed_gates(state: _State) -> dict[str, Any] | None:
    """The configured gates as the xdist controller parsed them (ids and lines), or None
    without a reachable controller."""
    answer = _ask(state, {"op": "gates"})
    return None if answer is None else answer["gates"]


def _collect_gates(session: SegfairSession, path: Path) -> dict[str, Any]:
    """What a worker needs to collect the configured gates of ``path``: their ids and lines."""
    gates, entries = session.gates, session.gate_entries
    lines = _gate_lines(path, len(session.config.gates))
    items = [[g.id, lines[e]] for g, e in zip(gates, entries, strict=True)]
    return {"error": None, "items": items}


class GateFile(pytest.File):
    """The configuration file, as a test file whose tests are its gates."""

    def collect(self) -> Iterator[GateCollector]:
        yield GateCollector.from_parent(self, name="segfair")


def _gate_lines(path: Path, count: int) -> list[int | None]:
    """The 0-based line of each gate's ``[[gates]]`` header (pytest counts lines from 0); none
    when the gates are written otherwise (an inline array)."""
    from segfair.report import gate_table_lines

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [None] * count
    starts = gate_table_lines(text, in_pyproject=path.name == "pyproject.toml")
    return [line - 1 for line in starts] if len(starts) == count else [None] * count


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> GateFile | None:
    # the configuration file, when pytest walks past it or is given it (pytest pyproject.toml)
    state = _state(parent.config)
    path = state.config_path
    if path is None or file_path.name != path.name or file_path.resolve() != path.resolve():
        return None
    return GateFile.from_parent(parent, path=file_path)


class GateFailure(AssertionError):
    """A configured gate that blocks: its message, and the explanation pytest shows."""

    def __init__(self, message: str, explanation: str) -> None:
        super().__init__(message)
        self.explanation = explanation


def _ok(data: Mapping[str, Any]) -> bool:
    """Whether a recorded result (``GateResult.to_dict()``) lets the build through."""
    return bool(data.get("ok", data.get("status") == "passed"))


def _relayed(
    state: _State, gate: Any, where: dict[str, Any] | None, node: pytest.Item
) -> tuple[dict[str, Any], str] | None:
    """Check ``gate`` on the xdist controller (segfair.relay) and record its result like a
    local check: ``(result dict, explanation)``; None when the controller cannot be reached
    (the caller computes). An input error fails the test as :func:`_load` does; an error is
    recorded as the gate's ``error`` verdict and raised."""
    __tracebackhide__ = True
    state.used = True
    answer: dict[str, Any] | None = (
        _ask(state, {"op": "check", "gate": gate, "where": where})
        if state.input_error is None
        else {"input_error": state.input_error}
    )
    if answer is None:
        return None
    if "input_error" in answer:
        _load(state, lambda: _raise_input_error(answer["input_error"]))
    if "raised" in answer:
        error = answer.get("error_result")
        if error is not None:
            state.record(error, node.nodeid)
            _record_properties(node.user_properties, error)
        raise answer["raised"]
    data: dict[str, Any] = answer["result"]
    state.record(data, node.nodeid)
    _record_properties(node.user_properties, data)
    return data, answer["explain"]


def _raise_input_error(text: str) -> Any:
    from segfair.errors import SegfairError

    raise SegfairError(text)


def _located(result: GateResult, where: Mapping[str, Any] | None) -> GateResult:
    """``result`` with the file and line it is declared at, for annotations on the diff."""
    from dataclasses import replace

    return (
        result if where is None or result.location is not None else replace(result, location=where)
    )


def _assertion_where(node: pytest.Item) -> dict[str, Any]:
    """The line of the test file that asserted the gate (the innermost frame in the test's
    file, so a helper in a conftest still points at the test), else the test's own line."""
    path = str(node.path)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename != path:
        frame = frame.f_back
    line = frame.f_lineno if frame is not None else int(node.location[1] or 0) + 1
    return {"path": path, "line": line, "origin": "test"}


def _locate(session: SegfairSession, where: Mapping[str, Any]) -> dict[str, Any]:
    """A location (:func:`segfair.report.location`) relative to the configuration's root."""
    from segfair.report import location

    return location(where["path"], where["line"], origin=where["origin"], root=session.config.root)


def _record_properties(
    props: list[tuple[str, object]], result: GateResult | Mapping[str, Any]
) -> None:
    data = result if isinstance(result, Mapping) else result.to_dict()
    for key in (
        "status",
        "reason",
        "blocking",
        "on_inconclusive",
        "estimate",
        "lower",
        "upper",
        "threshold",
        "decision_rule",
        "decidable_limit",
        "cases_needed",
    ):
        if key in data:
            props.append((f"segfair_{key}", data[key]))


def _record_error(
    state: _State,
    gate: Any,
    exc: BaseException,
    nodeid: str,
    props: list[tuple[str, object]],
) -> None:
    if isinstance(exc, pytest.UsageError) or state._session is None:
        return  # no session: nothing was configured, the usage error says so
    try:
        result = state.session.error_result(gate, exc)
    except Exception:  # recording must never hide the original error
        return
    state.record(result, nodeid)
    _record_properties(props, result)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # tryfirst: before -k/-m deselection, so gate items are selectable like any test
    state = _state(config)
    if not state.configured:
        return
    if not state.gates_collected:  # pytest did not walk past the configuration file
        path = state.config_path
        assert path is not None
        try:
            path.relative_to(config.rootpath)
            nodeid = None  # pytest's: the path from the rootdir
        except ValueError:  # a --segfair-config outside the rootdir
            nodeid = os.path.relpath(path, config.rootpath).replace(os.sep, "/")
        gate_file = GateFile.from_parent(session, path=path, nodeid=nodeid)
        # through pytest's collection, so that "collected N items" counts the gates
        items.extend(session.genitems(gate_file))
    if state.gate_error is not None:
        raise pytest.UsageError(for_terminal(f"segfair: {state.gate_error}"))


def pytest_collection_finish(session: pytest.Session) -> None:
    # an xdist worker whose tests use segfair tells its controller to start computing now,
    # while the workers start their tests (a run that deselects them computes nothing)
    state = _state(session.config)
    if state.relay is not None and any(_uses_segfair(item) for item in session.items):
        _ask(state, {"op": "start"})


_COMPUTING_FIXTURES = frozenset({"segfair_audit", "segfair_scores", "segfair_cohort"})


def _uses_segfair(item: pytest.Item) -> bool:
    return isinstance(item, GateItem) or not _COMPUTING_FIXTURES.isdisjoint(
        getattr(item, "fixturenames", ())
    )


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def segfair_session(request: pytest.FixtureRequest) -> SegfairSession:
    """The segfair session of this run (configuration, cohort, scores, audit)."""
    return _state(request.config).session


@pytest.fixture(scope="session")
def segfair_config(segfair_session: SegfairSession) -> Any:
    """The validated configuration (:class:`segfair.cohort.config.SegfairConfig`)."""
    return segfair_session.config


def _load(state: _State, get: Callable[[], T]) -> T:
    """``get()``, with segfair's input errors failing the test in one short message (no
    traceback through segfair's frames) and remembered: later tests fail at once with a
    pointer instead of loading the cohort again."""
    __tracebackhide__ = True
    from segfair.errors import SegfairError

    if state.input_error is not None:
        first = state.input_error.splitlines()[0]
        pytest.fail(
            for_terminal(f"segfair: input error (the first failure says all): {first}"),
            pytrace=False,
        )
    try:
        return get()
    except SegfairError as exc:
        state.input_error = str(exc)
    # outside the except block: the failure must not chain segfair's exception and its frames
    pytest.fail(for_terminal(f"segfair: input error: {state.input_error}"), pytrace=False)


@pytest.fixture(scope="session")
def segfair_cohort(request: pytest.FixtureRequest, segfair_session: SegfairSession) -> Any:
    """The validated cohort (:class:`segfair.cohort.Cohort`), loaded once per session."""
    return _load(_state(request.config), lambda: segfair_session.cohort)


@pytest.fixture(scope="session")
def segfair_scores(request: pytest.FixtureRequest, segfair_session: SegfairSession) -> Any:
    """The per-case scores (:class:`segfair.scores.Scores`), evaluated once per session."""
    return _load(_state(request.config), lambda: segfair_session.scores)


@pytest.fixture
def segfair_audit(request: pytest.FixtureRequest) -> AuditAssertions:
    """The audit with fairness assertions; the audit itself is computed once per session."""
    # not through the segfair_session fixture: an xdist worker that only asserts gates opens
    # no session (its controller checks them)
    state = _state(request.config)
    if state.relay is not None and _load(state, lambda: _relay_ready(state)):
        # an xdist worker whose controller checks the gates: the audit is loaded (from the
        # run's share folder) only if the test reads it, not to assert a gate
        return AuditAssertions(None, state=state, node=request.node)
    audit = _load(state, lambda: state.session.audit)
    return AuditAssertions(audit, state=state, node=request.node)


def _relay_ready(state: _State) -> bool:
    """Wait for the controller's audit: True when it is ready, False when the controller
    cannot be reached; its input error is raised (as :class:`~segfair.errors.SegfairError`)."""
    state.used = True
    answer = _ask(state, {"op": "ready"})
    if answer is None:
        return False
    if "input_error" in answer:
        _raise_input_error(answer["input_error"])
    if "raised" in answer:
        raise answer["raised"]
    return True


class _RelayedResult:
    """The :class:`~segfair.gates.GateResult` of a gate the xdist controller checked, built
    from its recorded dictionary on first use (so that asserting imports no numeric stack)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self._result: GateResult | None = None

    def _get(self) -> GateResult:
        if self._result is None:
            from segfair.gates import GateResult

            self._result = GateResult.from_dict(self._data)
        return self._result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_data", "_result"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def __repr__(self) -> str:
        return repr(self._get())


class AuditAssertions:
    """The :class:`segfair.audit.Audit` plus assertion helpers that fail like pytest asserts.

    Every attribute of the audit is available (``segfair_audit.gap(...)``); the ``assert_*``
    methods evaluate a gate, record it in the reports and raise ``AssertionError`` with the
    group table, the threshold and what to look at next.
    """

    def __init__(self, audit: Audit | None, *, state: _State, node: pytest.Item) -> None:
        self._audit = audit  # None: loaded on first use (an xdist worker that only asserts)
        self._state = state
        self._node = node

    @property
    def audit(self) -> Audit:
        """The run's :class:`segfair.audit.Audit`."""
        __tracebackhide__ = True
        if self._audit is None:
            state = self._state
            self._audit = _load(state, lambda: state.session.audit)
        return self._audit

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.audit, name)

    def assert_gate(
        self, spec: Gate | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> GateResult:
        """Evaluate a gate given as a model, a mapping or keywords; fail if it blocks.

        A failed gate, an error and an inconclusive gate under ``on_inconclusive = "fail"``
        (the default; pass ``on_inconclusive="warn"`` or ``"pass"`` to let an undecided gate
        through) raise ``AssertionError`` with the explanation; a gate that cannot be evaluated
        is recorded as ``error`` and its exception re-raised."""
        __tracebackhide__ = True
        gate = dict(spec or {}, **fields) if spec is None or isinstance(spec, Mapping) else spec
        if self._state.relay is not None:
            relayed = _relayed(self._state, gate, _assertion_where(self._node), self._node)
            if relayed is not None:
                data, explain = relayed
                if not _ok(data):
                    raise AssertionError(for_terminal(explain))
                return _RelayedResult(data)  # type: ignore[return-value]
        try:
            result = self._state.session.check(gate)
        except Exception as exc:
            # an error never reads as a pass: the gate is recorded as `error`, then raised
            _record_error(self._state, gate, exc, self._node.nodeid, self._node.user_properties)
            raise
        result = _located(result, _locate(self._state.session, _assertion_where(self._node)))
        self._state.record(result, self._node.nodeid)
        _record_properties(self._node.user_properties, result)
        if not result.ok:
            raise AssertionError(for_terminal(result.explain()))
        return result

    def assert_gap(
        self,
        metric: str,
        *,
        by: str,
        model: str,
        ruler: str | None = None,
        max: float,
        **options: Any,
    ) -> GateResult:
        """The gap (max − min of group estimates) is below ``max``."""
        __tracebackhide__ = True
        return self.assert_gate(
            kind="gap", metric=metric, by=by, model=model, **_opt(ruler=ruler), max=max, **options
        )

    def assert_ruler_shrinkage(
        self,
        metric: str,
        *,
        by: str,
        model: str,
        automated: str,
        max: float,
        trusted: str | None = None,
        **options: Any,
    ) -> GateResult:
        """The automated ruler hides at most ``max`` (a fraction) of the trusted-ruler gap."""
        __tracebackhide__ = True
        return self.assert_gate(
            kind="ruler_shrinkage",
            metric=metric,
            by=by,
            model=model,
            automated=automated,
            **_opt(trusted=trusted),
            max=max,
            **options,
        )

    def assert_no_amplification(
        self,
        metric: str,
        *,
        by: str,
        model: str,
        baseline: str,
        max: float = 0.0,
        ruler: str | None = None,
        **options: Any,
    ) -> GateResult:
        """The gap of ``model`` exceeds the gap of ``baseline`` by at most ``max`` (fraction)."""
        __tracebackhide__ = True
        return self.assert_gate(
            kind="amplification",
            metric=metric,
            by=by,
            model=model,
            baseline=baseline,
            **_opt(ruler=ruler),
            max=max,
            **options,
        )

    def assert_label_agreement(
        self, *, by: str, automated: str, min: float, metric: str = "dice", **options: Any
    ) -> GateResult:
        """Every group's agreement of the automated ruler with the trusted one is ≥ ``min``."""
        __tracebackhide__ = True
        return self.assert_gate(
            kind="label_agreement", metric=metric, by=by, automated=automated, min=min, **options
        )

    def assert_coverage(
        self, *, by: str, min: float, model: str | None = None, **options: Any
    ) -> GateResult:
        """Every group keeps at least ``min`` (a fraction) of its cases with a usable prediction."""
        __tracebackhide__ = True
        return self.assert_gate(kind="coverage", by=by, **_opt(model=model), min=min, **options)

    def assert_detection_gap(
        self,
        *,
        by: str,
        model: str,
        ruler: str | None = None,
        max: float,
        **options: Any,
    ) -> GateResult:
        """The gap across groups in the share of small reference lesions found is at most
        ``max`` (needs ``small_lesions`` and ``small_lesions_detected`` in ``metrics``)."""
        __tracebackhide__ = True
        return self.assert_gate(
            kind="detection_gap", by=by, model=model, **_opt(ruler=ruler), max=max, **options
        )


def _opt(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


# ---- end of session: merge, report, exit status -----------------------------------------------
class _XdistHooks:
    """Hooks that exist only with pytest-xdist: the controller gives its workers a private
    folder and its relay's address (segfair.relay: it computes the run once and checks their
    gates); without a relay, the first process to need the cohort evaluates and audits it there
    for all. Workers send their results; the controller merges them and writes the reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        state = _state(node.config)
        if not state.configured:
            return  # segfair is not used: nothing is created
        if state.share is None:
            import tempfile

            # private (0700) and unpredictable: its pickle is loaded, so only this run writes it
            state.share = Path(tempfile.mkdtemp(prefix="segfair-xdist-"))
        node.workerinput[_SHARE_KEY] = str(state.share)
        if state.server is None and state.importer is None:
            _start_relay(state)
        if state.server is None and state.importer is None:
            import threading

            # without a relay: the report's numeric stack, imported while the workers start
            # (imports only, no file read or written, nothing forked)
            state.importer = threading.Thread(target=_import_report_stack, daemon=True)
            state.importer.start()
        if state.server is not None:
            node.workerinput[_RELAY_KEY] = {
                "address": state.server.address,
                "authkey": state.server.authkey.hex(),
            }

    @pytest.hookimpl(hookwrapper=True)
    def pytest_sessionstart(self, session: pytest.Session) -> Iterator[None]:
        yield
        # the workers are started (pytest-xdist spawns them in its own pytest_sessionstart):
        # only now may the relay compute, which may fork a process pool (never while the main
        # thread forks and executes a worker)
        state = _state(session.config)
        if not _is_worker(session.config) and state.server is not None:
            state.server.release()

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        # a configured gate starts on a worker: the run uses segfair (see below)
        if "::segfair::" in nodeid and not _is_worker(self.config):
            _start_prefetch(_state(self.config))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # the controller, at its first report of a checked gate: the run uses segfair, so the
        # report will be built; import the numeric stack and load the shared audit meanwhile,
        # while the workers finish, rather than after them
        if report.when != "call" or _is_worker(self.config):
            return
        if any(key == "segfair_status" for key, _ in report.user_properties):
            _start_prefetch(_state(self.config))

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        state = _state(node.config)
        out = getattr(node, "workeroutput", {}).get("segfair")
        if not out:
            return
        state.results.update(out["results"])
        state.input_error = state.input_error or out.get("input_error")
        state.from_workers = True
        state.used = state.used or out.get("used", False)


def _start_relay(state: _State) -> None:
    """The controller's relay (segfair.relay): it reads the configuration and parses the gates
    while its workers start, computes the run (cohort, scores, audit) once when a worker's
    tests use it, and checks every gate for them. None where a relay cannot listen."""
    from segfair.relay import RelayServer, relay_supported

    assert state.share is not None
    assert state.config_path is not None
    if not relay_supported(state.share):
        return
    path = state.config_path
    try:
        server = RelayServer(
            state.share,
            open_session=state.open,
            collect=lambda session: _collect_gates(session, path),
            locate=_locate,
            eager=not _may_deselect(state.pytest_config),
        )
    except (OSError, ValueError):  # no socket here: every worker computes for itself
        return
    server.start()
    state.server = server


def _may_deselect(config: pytest.Config) -> bool:
    """Whether options may deselect the configured gates (which are collected whatever the
    paths given): then the controller waits for a worker to say its tests use segfair."""
    opt = config.option
    return bool(
        getattr(opt, "keyword", "")
        or getattr(opt, "markexpr", "")
        or getattr(opt, "deselect", None)
        or getattr(opt, "collectonly", False)
        or getattr(opt, "lf", False)
        or getattr(opt, "stepwise", False)
        or getattr(opt, "stepwise_skip", False)
    )


def _start_prefetch(state: _State) -> None:
    if state.prefetch is not None or state.share is None or state.server is not None:
        return
    import threading

    state.prefetch = threading.Thread(target=_prefetch, args=(state,), daemon=True)
    state.prefetch.start()


def _import_report_stack() -> None:
    try:
        import segfair.report  # noqa: F401
    except Exception:  # _document meets the same error, and says it
        return


def _prefetch(state: _State) -> None:
    try:
        if state.importer is not None:
            state.importer.join()
        session = state.open()
        session.audit  # noqa: B018 (a cached property: loaded here, used by _document)
        # the report's statistics depend on the audit alone (the gates only add their rows):
        # computing them now, while the workers finish, leaves _document the rendering
        session.report([])
    except Exception:  # _document meets the same error, and says it
        return


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = _state(config)
    if state.server is not None and state.server.gates_error() is not None:
        # an invalid [[gates]] entry is a usage error, as without xdist (a worker's usage
        # error in collection would end the run as "no tests ran")
        state.gate_error = state.server.gates_error()
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if not state.used and not state.results:
        return
    if _is_worker(config):
        # results only: the report needs every worker's gates (its headline, the amplification
        # pairs, the labels needed), so the controller builds it once from the merged results
        config.workeroutput["segfair"] = {  # type: ignore[attr-defined]
            "results": state.results,
            "used": state.used,
            "input_error": state.input_error,
        }
        if state._session is not None:
            # what this worker's gates computed, so the controller's report does not redo it
            state._session.share_computed()
        return
    if state.input_error is not None:
        _say_input_error(state)
    if state.document is None:
        state.document = _document(state)
    if state.document is not None:
        _write(state)
    failed = [r for r in state.results.values() if not r.get("ok", r.get("status") == "passed")]
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _say_input_error(state: _State) -> None:
    """In GitHub Actions: the job summary and one annotation say what the input error is (the
    terminal summary says it once in any case)."""
    if os.environ.get("GITHUB_ACTIONS") != "true" or state.input_error is None:
        return
    from segfair.report import md_escape
    from segfair.report.github import error_annotation

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(
                "## 🛑 segfair: input error — no gate was checked\n\n"
                + md_escape(state.input_error)
                + "\n"
            )
    state.annotations.append(error_annotation("segfair input error", state.input_error))


def _unique(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` without repeats: a gate that the configuration and a test (or two tests)
    check with the same outcome is one gate, listed and counted once; the same id with another
    outcome (another limit) is other evidence, and stays. Where it is declared does not make
    it another gate: the configuration's location is kept over a test's."""
    unique: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    for r in results:
        what = {k: v for k, v in r.items() if k != "location"}
        if what not in seen:
            seen.append(what)
            unique.append(r)
            continue
        k = seen.index(what)
        if (r.get("location") or {}).get("origin") == "configuration":
            unique[k] = r
    return unique


def _gate_dicts(state: _State) -> list[dict[str, Any]]:
    """The gate results of the run for its reports: in the order of their node ids (the same
    with and without xdist), without repeats."""
    return _unique(r for _, r in sorted(state.results.items()))


def _document(state: _State) -> dict[str, Any] | None:
    from segfair.gates import GateResult

    results = [GateResult.from_dict(r) for r in _gate_dicts(state)]
    if state.prefetch is not None:
        state.prefetch.join()
    if state.server is not None:
        state.server.join()
    try:
        if state.from_workers and state.configured:
            # the xdist controller ran no test: it opens the session here, and loads the cohort,
            # the scores and the audit that a worker saved in the share folder, and the
            # replicates the workers' gates computed
            state.session.adopt_shared_computed()
            return state.session.report(results)
        if state._session is None or "audit" not in state._session.__dict__:
            return None
        return state._session.report(results)
    except Exception as exc:
        state.error = f"could not build the report: {type(exc).__name__}: {exc}"
        return None


def _write(state: _State) -> None:
    from segfair.report import write_reports

    doc = state.document
    if doc is None:
        return
    doc = dict(doc)
    doc["gates"] = _gate_dicts(state)
    try:
        state.written = write_reports(
            doc, html=state.path("html"), json_path=state.path("json"), md=state.path("md")
        )
        if os.environ.get("GITHUB_ACTIONS") == "true":
            from segfair.report import github_annotations, markdown_report

            summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(markdown_report(doc) + "\n")
            root = state._session.config.root if state._session is not None else None
            state.annotations = github_annotations(doc, root=root)
    except OSError as exc:
        state.error = f"could not write the reports: {exc}"


def _run_warnings(state: _State) -> list[str]:
    """The run's warnings (sites without ``cluster``, too few clusters): the report's, else the
    loaded cohort's; none when no cohort was loaded."""
    if state.document is not None:
        return [str(w) for w in state.document.get("warnings") or ()]
    session = state._session
    if session is not None and "cohort" in session.__dict__:
        return session.warnings
    return []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if _is_worker(config):
        return
    if state.server is not None and state.gate_error is not None:
        terminalreporter.write_sep("-", "segfair")
        terminalreporter.write_line(for_terminal(f"ERROR: segfair: {state.gate_error}"), red=True)
        return
    warnings = _run_warnings(state)
    if not state.results and state.error is None and not warnings and not state.input_error:
        return
    tr = terminalreporter
    tr.write_sep("-", "segfair")
    for line in state.annotations:
        tr.write_line(line)
    for w in warnings:  # quoted and escaped where they hold data (segfair.cohort.sites)
        tr.write_line(for_terminal(f"segfair: warning: {w}"), yellow=True)
    from segfair.report import summary_lines_from_dicts

    if not state.input_error:  # with an input error no gate was checked: that is the verdict
        for line in summary_lines_from_dicts(_unique(state.results.values()), state.written):
            tr.write_line(for_terminal(line))
    if state.input_error:
        tr.write_line(for_terminal(f"segfair: input error: {state.input_error}"), red=True)
    elif state.error:
        tr.write_line(for_terminal(f"segfair: {state.error}"), red=True)
