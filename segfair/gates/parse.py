"""Validating ``[[gates]]`` entries into gate models, with error messages a person can act on."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from segfair.errors import ConfigError
from segfair.gates.kinds import _GATES, _KIND_MODELS, GATE_KINDS, Gate

UNKNOWN_KIND = "unknown gate kind {kind!r}{hint}; valid kinds: {valid}"
MISSING_KIND = "every gate needs a kind; valid kinds: {valid}"
UNKNOWN_GATE_KEY = "unknown key {key!r}{hint} for a {kind} gate; valid keys: {valid}"
MISSING_GATE_KEY = "required key {key!r} is missing for a {kind} gate"
UNKNOWN_GATE_STRUCTURE = (
    "structure = {name!r} is not a configured structure{hint}; configured: {valid}"
)


def parse_gate(
    raw: Mapping[str, Any],
    *,
    source: str | Path | None = None,
    trusted_ruler: str | None = None,
    structures: Sequence[str] | None = None,
) -> Gate:
    """Validate one ``[[gates]]`` entry.

    Parameters
    ----------
    raw
        The entry as read from TOML (or keywords).
    source
        The configuration file, named in error messages.
    trusted_ruler
        When given, a gate that defaults to the trusted ruler gets it written in, so that its
        id names the ruler it is decided on.
    structures
        The cohort's structures, when known: a gate's ``structure`` must be one of them (it is
        dropped when there is only one, so ids stay as without structures); here a gate of a
        cohort of several structures must name one (:func:`parse_gates` instead expands it).

    Raises
    ------
    segfair.errors.ConfigError
        Listing every problem with its key and the valid values.

    Examples
    --------
    >>> parse_gate({"kind": "coverage", "by": "age_group", "min": 0.95}).kind
    'coverage'
    >>> parse_gate({"kind": "gap", "metric": "dice", "by": "age", "model": "m", "max": 0.05},
    ...            trusted_ruler="expert").id
    'gap[dice,age,m,expert]'
    """
    gates = parse_gates(
        [raw], source=source, trusted_ruler=trusted_ruler, structures=structures, prefix="gate"
    )
    if len(gates) > 1:
        valid = ", ".join(g.structure or "" for g in gates)
        raise ConfigError(
            f"gate: name the structure it is decided on, structure = one of {valid}",
            key="gate.structure",
            source=source,
        )
    return gates[0]


def parse_gates(
    raw: Sequence[Mapping[str, Any]],
    *,
    source: str | Path | None = None,
    trusted_ruler: str | None = None,
    structures: Sequence[str] | None = None,
    prefix: str = "gates",
) -> list[Gate]:
    """Validate a ``[[gates]]`` array; see :func:`parse_gate`.

    With several ``structures``, a gate without ``structure`` becomes one gate per structure
    (ids ``<id>[<structure>]``, in declared order), each its own verdict and each a member of
    Holm's family like any other gate.

    Examples
    --------
    >>> [g.id for g in parse_gates([{"kind": "dir", "metric": "dice", "by": "age",
    ...                              "model": "m"}])]
    ['dir[dice>0.8,age,m]']
    >>> [g.id for g in parse_gates([{"kind": "coverage", "by": "age", "min": 0.9}],
    ...                            structures=["core", "enhancing"])]
    ['coverage[age][core]', 'coverage[age][enhancing]']
    """
    items = [dict(r) for r in raw]
    try:
        gates: list[Gate] = _GATES.validate_python(items)
    except ValidationError as exc:
        problems = _friendly(exc, items, prefix)
        first = exc.errors()[0]["loc"]
        key = f"{prefix}[{first[0]}]" if prefix == "gates" and first else prefix
        raise ConfigError(
            invalid_gates(problems, several=len(items) > 1),
            key=key,
            source=source,
        ) from None
    if trusted_ruler is not None:
        gates = [_with_trusted(g, trusted_ruler) for g in gates]
    if structures is not None:
        gates = _per_structure(gates, list(structures), source, prefix)
    return gates


def _per_structure(
    gates: list[Gate], structures: list[str], source: str | Path | None, prefix: str
) -> list[Gate]:
    problems = []
    for i, g in enumerate(gates):
        if g.structure is not None and g.structure not in structures:
            close = difflib.get_close_matches(g.structure, structures, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{prefix}[{i}]" if prefix == "gates" else prefix
            text = UNKNOWN_GATE_STRUCTURE.format(
                name=g.structure, hint=hint, valid=", ".join(structures)
            )
            problems.append(f"{where}.structure: {text}")
    if problems:
        raise ConfigError(invalid_gates(problems), key=f"{prefix}.structure", source=source)
    if len(structures) == 1:  # the one structure need not be named: ids as before
        return [g.model_copy(update={"structure": None}) if g.structure else g for g in gates]
    return [
        g.model_copy(update={"structure": s}) if g.structure is None else g
        for g in gates
        for s in (structures if g.structure is None else [g.structure])
    ]


def invalid_gates(problems: Sequence[str], *, several: bool | None = None) -> str:
    """The text of a refusal listing ``problems``, one a line.

    Example
    -------
    >>> print(invalid_gates(["gates[0].by: required key 'by' is missing for a gap gate"]))
    invalid gate:
      - gates[0].by: required key 'by' is missing for a gap gate
    """
    plural = len(problems) > 1 if several is None else several
    return "invalid gate" + ("s" if plural else "") + ":\n  - " + "\n  - ".join(problems)


def _with_trusted(gate: Gate, trusted: str) -> Gate:
    # min_group_size's and coverage's optional fields mean "any", not "the trusted ruler": they
    # have no trusted_field
    key = gate.trusted_field
    if key is not None and getattr(gate, key) is None:
        return gate.model_copy(update={key: trusted})
    return gate


def _friendly(error: ValidationError, items: list[dict[str, Any]], prefix: str) -> list[str]:
    out = []
    for err in error.errors():
        loc = list(err["loc"])
        index = loc.pop(0) if loc and isinstance(loc[0], int) else 0
        where = f"{prefix}[{index}]" if prefix == "gates" else prefix
        item = items[index] if isinstance(index, int) and index < len(items) else {}
        kind = str(item.get("kind", ""))
        if err["type"] == "union_tag_not_found":
            out.append(f"{where}: " + MISSING_KIND.format(valid=", ".join(GATE_KINDS)))
            continue
        if err["type"] == "union_tag_invalid":
            close = difflib.get_close_matches(kind, GATE_KINDS, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                f"{where}.kind: "
                + UNKNOWN_KIND.format(kind=kind, hint=hint, valid=", ".join(GATE_KINDS))
            )
            continue
        if loc and loc[0] == kind:
            loc.pop(0)
        model = _KIND_MODELS.get(kind)
        valid = sorted(model.model_fields) if model is not None else []
        dotted = ".".join([where, *(str(p) for p in loc)])
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                f"{dotted}: "
                + UNKNOWN_GATE_KEY.format(key=key, hint=hint, kind=kind, valid=", ".join(valid))
            )
        elif err["type"] == "missing":
            out.append(f"{dotted}: " + MISSING_GATE_KEY.format(key=str(loc[-1]), kind=kind))
        else:
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            out.append(f"{dotted}: {msg}" if loc else f"{where} ({kind}): {msg}")
    return out
