"""The public API: `segfair.__all__` is what `from segfair import *` and the docs promise."""

from __future__ import annotations

import importlib

import pytest

import segfair


@pytest.mark.parametrize("name", segfair.__all__)
def test_every_public_name_resolves_to_the_object_of_its_module(name: str) -> None:
    value = getattr(segfair, name)
    if name == "__version__":
        assert isinstance(value, str)
        return
    module = importlib.import_module(value.__module__)
    assert getattr(module, name) is value


def test_an_unknown_name_is_an_attribute_error_that_says_so() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = segfair.nothing_here  # type: ignore[attr-defined]


def test_the_planner_is_part_of_the_public_api() -> None:
    for name in ("plan", "select_cases", "design_weights", "batch_weights", "GatePlan"):
        assert name in segfair.__all__
