"""Where a gate is declared (file and line), for annotations that attach to a pull request's
diff: a configuration gate at its ``[[gates]]`` table, an assertion at the test's line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segfair.cohort.config import SegfairConfig

# tomllib gives no line numbers: the tables are found in the text. The header of an array of
# tables may carry spaces and quoted keys (`[[ tool . "segfair" . gates ]]`) and a comment.
_KEY = r'\s*(?:"{name}"|\'{name}\'|{name})\s*'
_GATES_HEADER = re.compile(r"^\s*\[\[" + _KEY.format(name="gates") + r"\]\]\s*(?:#.*)?$")
_TOOL_GATES_HEADER = re.compile(
    r"^\s*\[\["
    + r"\.".join(_KEY.format(name=n) for n in ("tool", "segfair", "gates"))
    + r"\]\]\s*(?:#.*)?$"
)


def gate_table_lines(text: str, *, in_pyproject: bool) -> list[int]:
    """The 1-based line of every ``[[gates]]`` table of a segfair TOML file, or of every
    ``[[tool.segfair.gates]]`` table of a ``pyproject.toml``, in order (lines inside multi-line
    strings are skipped).

    Examples
    --------
    >>> gate_table_lines('seed = 1\\n\\n[[gates]]\\nkind = "gap"\\n[[ gates ]] # two\\n',
    ...                  in_pyproject=False)
    [3, 5]
    >>> gate_table_lines('[tool.segfair]\\n[[tool.segfair.gates]]\\n', in_pyproject=True)
    [2]
    """
    header = _TOOL_GATES_HEADER if in_pyproject else _GATES_HEADER
    out = []
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is None and header.match(line):
            out.append(number)
        for quote in ('"""', "'''"):
            # an odd number of triple quotes on a line opens or closes a multi-line string
            if line.count(quote) % 2 and in_string in (None, quote):
                in_string = None if in_string == quote else quote
    return out


def config_gate_locations(config: SegfairConfig) -> dict[str, dict[str, Any]]:
    """Gate id → ``{"file", "line", "origin": "configuration"}`` for the gates of
    ``config`` (``file`` relative to the configuration's folder); empty when the configuration
    was not read from a file or its tables cannot be matched to its gates."""
    from segfair.gates import parse_gates

    if not config.source or not config.gates:
        return {}
    path = Path(config.source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    lines = gate_table_lines(text, in_pyproject=path.name == "pyproject.toml")
    if len(lines) != len(config.gates):
        return {}  # an inline array of gates, or tables we could not tell apart
    out: dict[str, dict[str, Any]] = {}
    for spec, line in zip(config.gates, lines, strict=True):
        try:
            # an entry's copies per structure (a cohort of several) share its line
            gates = parse_gates(
                [spec], trusted_ruler=config.trusted_ruler, structures=list(config.structure_labels)
            )
        except Exception:  # an invalid gate is reported as an error elsewhere; no line for it
            continue
        for gate in gates:
            out.setdefault(gate.id, location(path, line, origin="configuration", root=config.root))
    return out


def location(path: str | Path, line: int, *, origin: str, root: str | Path) -> dict[str, Any]:
    """A gate's location: ``file`` relative to ``root`` (``/``-separated), ``line``, ``origin``.

    Examples
    --------
    >>> location("/repo/tests/test_fair.py", 12, origin="test", root="/repo")
    {'file': 'tests/test_fair.py', 'line': 12, 'origin': 'test'}
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return {"file": Path(rel).as_posix(), "line": int(line), "origin": origin}


def annotation_file(
    loc: Mapping[str, Any], *, root: str | Path | None, workspace: str | Path | None = None
) -> str | None:
    """The file of a location relative to the repository (``workspace``: ``GITHUB_WORKSPACE``,
    else the working directory), as GitHub wants it to attach an annotation to the diff; None
    when it lies outside the repository.

    Examples
    --------
    >>> annotation_file({"file": "pyproject.toml", "line": 3}, root="/repo/model",
    ...                 workspace="/repo")
    'model/pyproject.toml'
    """
    file = loc.get("file")
    if not file:
        return None
    base = Path(root) if root is not None else Path.cwd()
    ws = Path(workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
    rel = os.path.relpath(os.path.abspath(base / str(file)), os.path.abspath(ws))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return Path(rel).as_posix()
