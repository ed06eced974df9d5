"""The layers hold: imports only point down, and no module uses another package's private names.

The import contracts are in ``pyproject.toml`` (``[tool.importlinter]``) and drawn in
``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segfair"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package under ``root`` (a fresh process: the ``segfair`` found
    is the one on that ``PYTHONPATH``, not the one this test session imported)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command as c; c()",
            "--config",
            str(root / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(PACKAGE, root / "segfair", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_import_contracts_hold() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("stats/__init__.py", "import segfair.audit", "Imports only point down"),
        ("metrics/__init__.py", "import segfair.io", "Imports only point down"),
        ("audit/__init__.py", "import segfair.config", "old import paths"),
        ("report/__init__.py", "import pytest", "Only the plugin imports pytest"),
        ("stats/__init__.py", "import pandas", "numerical core"),
    ],
)
def test_an_import_that_breaks_a_layer_fails_the_contracts(
    package_copy: Path, module: str, line: str, contract: str
) -> None:
    path = package_copy / "segfair" / module
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + f"\n{line}  # a violation planted by the test\n")
        done = _lint_imports(package_copy)
    finally:
        path.write_text(original, encoding="utf-8")
    assert done.returncode != 0, done.stdout
    assert contract in done.stdout
    assert "BROKEN" in done.stdout


# -- private names ------------------------------------------------------------------------------


def _package_of(module: str) -> str:
    """The top-level package (``segfair.audit``) a module (``segfair.audit.gaps``) belongs to."""
    return ".".join(module.split(".")[:2])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


# objects of another package whose underscore attributes are that package's private parts
_FOREIGN_OBJECTS = {
    "audit": "segfair.audit",
    "session": "segfair.session",
    "cohort": "segfair.cohort",
}


def private_uses(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Each use, in ``source`` (the text of ``module``), of an underscore name that belongs to
    another top-level segfair package: imported by name, read off an imported module, or read
    off an object of that package held in a variable named for it (``audit._series``)."""
    own = _package_of(module)
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, is_package)
            if not target.startswith("segfair"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    if _package_of(target) != own:
                        yield f"line {node.lineno}: from {target} import {alias.name}"
                elif target == "segfair":
                    aliases[alias.asname or alias.name] = full
                else:
                    aliases[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("segfair"):
                    aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
            continue
        if node.attr.startswith("__"):
            continue
        chain = []
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name):
            continue
        owner = None
        if value.id in aliases:
            owner = ".".join([aliases[value.id], *reversed(chain)])
        elif not chain and value.id in _FOREIGN_OBJECTS:
            owner = _FOREIGN_OBJECTS[value.id]
        elif chain and chain[0] in _FOREIGN_OBJECTS and value.id == "self":
            owner = _FOREIGN_OBJECTS[chain[0]]
        if owner is not None and owner.startswith("segfair.") and _package_of(owner) != own:
            yield f"line {node.lineno}: {ast.unparse(node)}"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_uses_another_packages_private_names() -> None:
    found = {
        _module_name(p): list(
            private_uses(p.read_text(encoding="utf-8"), _module_name(p), p.name == "__init__.py")
        )
        for p in _modules()
    }
    assert {m: uses for m, uses in found.items() if uses} == {}


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from segfair.audit.core import _by\n", "segfair.planner.plan"),
        ("from ..audit import _Series\n", "segfair.planner.plan"),
        ("from segfair import metrics\nmetrics._extent(x)\n", "segfair.io.nifti"),
        ("import segfair.metrics\nsegfair.metrics._extent(x)\n", "segfair.io.nifti"),
        ("def f(audit):\n    return audit._score_index\n", "segfair.planner.plan"),
        ("def f(self):\n    return self.audit._reps\n", "segfair.report.document"),
    ],
)
def test_the_private_name_check_finds_a_planted_use(source: str, module: str) -> None:
    assert list(private_uses(source, module))


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from segfair.audit.core import _Groups\n", "segfair.audit.gaps"),
        ("from ._shared import _fmt\n", "segfair.report.html"),
        ("def f(audit):\n    return audit.grouping('age')\n", "segfair.planner.plan"),
        ("from segfair.version import __version__\n", "segfair.io.nifti"),
    ],
)
def test_the_private_name_check_allows_siblings_and_public_names(source: str, module: str) -> None:
    assert list(private_uses(source, module)) == []


def test_every_package_is_listed_for_the_wheel() -> None:
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(PACKAGE.parent).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found | {"segfair.templates"} == listed
