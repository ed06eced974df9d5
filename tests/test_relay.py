"""segfair.relay: the socket over which an xdist controller checks its workers' gates."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from segfair.errors import ConfigError, SegfairError
from segfair.relay import RelayClient, RelayServer, RelayUnavailable, _portable, relay_supported


class _Result:
    location = None

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def to_dict(self) -> dict[str, Any]:
        return {"id": f"gap[{self.gate['metric']}]", "status": "passed", "location": None}

    def explain(self) -> str:
        return "explained"


class _Session:
    """What the relay needs of a session: its audit, gates, checks and report."""

    def __init__(self, *, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.checked: list[Any] = []
        self.gates = ["first configured gate"]

    @property
    def audit(self) -> object:
        if self.fail is not None:
            raise self.fail
        return object()

    def check(self, gate: Any) -> _Result:
        self.checked.append(gate)
        if isinstance(gate, dict) and gate.get("metric") == "bad":
            raise ConfigError("unknown metric 'bad'; did you mean 'dice'?", key="metric")
        return _Result(gate if isinstance(gate, dict) else {"metric": gate})

    def error_result(self, gate: Any, exc: BaseException) -> _Result:
        return _Result({"metric": "error"})

    def report(self, results: list[Any]) -> dict[str, Any]:
        return {}


@pytest.fixture
def folder() -> Any:
    with tempfile.TemporaryDirectory(prefix="sf-") as name:
        yield Path(name)


def serve(folder: Path, session: _Session) -> RelayServer:
    server = RelayServer(
        folder,
        open_session=lambda: session,  # type: ignore[arg-type, return-value]
        collect=lambda s: {"error": None, "items": [["g", 3]]},
        locate=lambda s, where: {"file": where["path"], "line": where["line"]},
    )
    server.start()
    server.release()
    return server


@pytest.mark.skipif(not relay_supported(Path(tempfile.gettempdir())), reason="no Unix sockets")
def test_a_worker_collects_asks_and_gets_the_controllers_answers(folder: Path) -> None:
    session = _Session()
    server = serve(folder, session)
    client = RelayClient(server.address, server.authkey)
    try:
        assert client.ask({"op": "gates"}) == {"gates": {"error": None, "items": [["g", 3]]}}
        assert client.ask({"op": "ready"}) == {}
        where = {"path": "t.py", "line": 7, "origin": "test"}
        answer = client.ask({"op": "check", "gate": {"metric": "dice"}, "where": where})
        assert answer["result"]["location"] == {"file": "t.py", "line": 7}
        assert answer["explain"] == "explained"
        # a configured gate by its position
        client.ask({"op": "check", "gate": {"config": 0}, "where": None})
        assert session.checked[-1] == "first configured gate"
        error = client.ask({"op": "check", "gate": {"metric": "bad"}, "where": None})
        assert isinstance(error["raised"], SegfairError)
        assert "did you mean 'dice'" in str(error["raised"])
        assert error["error_result"]["id"] == "gap[error]"
    finally:
        client.close()
        server.close()


@pytest.mark.skipif(not relay_supported(Path(tempfile.gettempdir())), reason="no Unix sockets")
def test_an_input_error_while_computing_is_every_workers_answer(folder: Path) -> None:
    server = serve(folder, _Session(fail=SegfairError("1 problem in the cohort: CASE_1")))
    client = RelayClient(server.address, server.authkey)
    try:
        assert client.ask({"op": "ready"}) == {"input_error": "1 problem in the cohort: CASE_1"}
        check = client.ask({"op": "check", "gate": {"metric": "dice"}})
        assert check == {"input_error": "1 problem in the cohort: CASE_1"}
    finally:
        client.close()
        server.close()


@pytest.mark.skipif(not relay_supported(Path(tempfile.gettempdir())), reason="no Unix sockets")
def test_a_client_with_the_wrong_key_or_no_controller_is_told_to_compute_itself(
    folder: Path,
) -> None:
    server = serve(folder, _Session())
    try:
        with pytest.raises(RelayUnavailable):
            RelayClient(server.address, b"not the key").ask({"op": "ready"})
    finally:
        server.close()
    with pytest.raises(RelayUnavailable):
        RelayClient(str(folder / "nobody.sock"), server.authkey).ask({"op": "ready"})


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickling calls cls(*args) with one arg
        super().__init__(f"{a}+{b}")


def test_an_exception_that_cannot_cross_processes_keeps_its_text_and_the_controllers_frames() -> (
    None
):
    try:
        raise _Unpicklable(1, 2)
    except _Unpicklable as exc:
        portable = _portable(exc)
    assert type(portable) is RuntimeError
    assert str(portable) == "_Unpicklable: 1+2"
    assert "raised in the pytest-xdist controller" in "".join(portable.__notes__)
    assert type(_portable(ConfigError("bad", key="metric"))) in (ConfigError, SegfairError)
    assert str(_portable(ConfigError("bad", key="metric"))) == "bad"
