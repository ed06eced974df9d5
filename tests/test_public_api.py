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


def test_segfair_evaluate_stays_the_function_after_its_module_is_imported() -> None:
    # the import system binds a submodule to the package attribute of the same name; the README's
    # `segfair.evaluate(cohort)` must work whatever was imported before
    import subprocess
    import sys

    code = (
        "import segfair.cohort, segfair.evaluate, segfair; "
        "from segfair.evaluate import evaluate_case; "
        "import importlib; m = importlib.import_module('segfair.evaluate'); "
        "print(callable(segfair.evaluate), segfair.evaluate is m.evaluate, "
        "type(m).__name__, evaluate_case.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "module", "segfair.evaluate"]
