"""Every example in a docstring of the package runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import segfair


def test_every_docstring_example_in_the_package_holds() -> None:
    failed: list[str] = []
    attempted = 0
    for info in pkgutil.walk_packages(segfair.__path__, prefix="segfair."):
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
        attempted += result.attempted
        if result.failed:
            failed.append(f"{info.name}: {result.failed} of {result.attempted}")
    assert not failed, failed
    assert attempted >= 100  # the examples are there (a broken walk would find none)
