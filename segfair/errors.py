"""The errors segfair raises on purpose: each names the case, the file and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CohortError",
    "ConfigError",
    "GeometryError",
    "InputError",
    "Problem",
    "SegfairError",
]


class SegfairError(Exception):
    """Base class of every error segfair raises deliberately.

    Fronts (the CLI, the pytest plugin) turn these into a message and exit status 2, never a
    traceback; anything else escaping is a bug in segfair.
    """


class ConfigError(SegfairError):
    """The configuration is invalid: a key, a value or a reference to something undeclared."""

    def __init__(self, message: str, *, key: str | None = None, source: str | Path | None = None):
        self.key = key
        self.source = str(source) if source is not None else None
        prefix = f"{self.source}: " if self.source else ""
        super().__init__(prefix + message)


class InputError(SegfairError):
    """One input file or array is unusable (unreadable, wrong dtype, wrong labels, too large)."""

    def __init__(
        self,
        message: str,
        *,
        case_id: str | None = None,
        path: str | Path | None = None,
        fix: str | None = None,
    ):
        self.case_id = case_id
        self.path = str(path) if path is not None else None
        self.fix = fix
        self.reason = message
        where = []
        if case_id is not None:
            where.append(f"case {case_id!r}")
        if path is not None:
            where.append(f"file {str(path)!r}")
        text = (", ".join(where) + ": " if where else "") + message
        super().__init__(_with_fix(text, fix))


def _with_fix(text: str, fix: str | None) -> str:
    """``text``, then its fix as a sentence of its own (a message without a final stop used to
    run into it: "…field_strength Fix: rename…")."""
    if not fix:
        return text
    end = "" if text.rstrip().endswith((".", "!", "?", ":", ";")) else "."
    return f"{text.rstrip()}{end} Fix: {fix}"


class GeometryError(InputError):
    """A prediction and a reference do not share a voxel grid (shape or affine)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while validating a cohort; many are reported together."""

    kind: str
    message: str
    case_id: str | None = None
    path: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = []
        if self.case_id is not None:
            where.append(f"case {self.case_id!r}")
        if self.path is not None:
            where.append(f"file {self.path!r}")
        text = (", ".join(where) + ": " if where else "") + self.message
        return _with_fix(text, self.fix)

    @classmethod
    def from_input_error(cls, kind: str, error: InputError) -> Problem:
        return cls(
            kind=kind, message=error.reason, case_id=error.case_id, path=error.path, fix=error.fix
        )


class CohortError(SegfairError):
    """Validation of a cohort found problems; all of them, grouped by kind, are in the message."""

    def __init__(self, problems: Sequence[Problem], *, source: str | Path | None = None):
        self.problems = list(problems)
        self.source = str(source) if source is not None else None
        super().__init__(self._render(self.problems, self.source))

    @staticmethod
    def _render(problems: Iterable[Problem], source: str | None) -> str:
        groups: dict[str, list[Problem]] = {}
        for p in problems:
            groups.setdefault(p.kind, []).append(p)
        total = sum(len(v) for v in groups.values())
        head = f"{total} problem{'s' if total != 1 else ''} in the cohort"
        if source:
            head += f" configured in {source}"
        lines = [head + ":"]
        for kind, items in groups.items():
            lines.append(f"  {kind} ({len(items)}):")
            shown = items[:20]
            lines.extend(f"    - {p}" for p in shown)
            if len(items) > len(shown):
                lines.append(f"    ... and {len(items) - len(shown)} more of this kind")
        return "\n".join(lines)
