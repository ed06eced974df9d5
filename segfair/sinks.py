"""Text from data made inert for the place it is written to: a terminal or log, Markdown.

Column names, group labels, case ids and file names come from files segfair does not trust
(SECURITY.md). Printed raw they could colour or hide text and make links (ANSI and OSC escape
sequences), reverse what a reader sees (bidirectional overrides), or — in a GitHub Actions log —
run workflow commands (a line that starts with ``::``). Each sink has one function here, and
every front uses it.

Example
-------
>>> for_terminal("site\\x1b[8m hidden\\n::add-mask::x")
'site\\\\x1b[8m hidden\\n: :add-mask::x'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["for_csv_cell", "for_markdown_text", "for_terminal"]

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional formatting characters
_CONTROL: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# a workflow command is a line that starts with "::" (after blanks)
_COMMAND: Final = re.compile(r"^(\s*):(?=:)", re.MULTILINE)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """``text`` safe for a terminal and a CI log: control and bidi characters shown as escapes
    (``\\x1b``), a line starting with ``::`` broken (``: :``) so no runner reads it as a
    command. Newlines and tabs stay."""
    return _COMMAND.sub(r"\1: ", _CONTROL.sub(_visible, text.replace("\r\n", "\n")))


def for_markdown_text(text: str) -> str:
    """The part of Markdown safety that is about text, not syntax: control characters shown as
    escapes, and no bare link (``https://…``, ``www.…``), which GitHub would make clickable.
    Markdown syntax itself is escaped by :func:`segfair.report.md_escape`, which calls this."""
    text = _CONTROL.sub(_visible, text)
    return text.replace("://", ":&#8203;//").replace("www.", "www&#8203;.")


# a cell a spreadsheet would run as a formula (OWASP's list of first characters)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def for_csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs: text starting like a formula gets a leading ``'``;
    anything else (numbers included) is returned as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
