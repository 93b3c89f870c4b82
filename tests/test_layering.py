"""Imports point down the layers of DESIGN.md section 3, checked from the source with ``ast``.

Pure modules do no I/O; transports know nothing of the client; ``testing/`` never uses it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "aura_anyio"
# Modules, or whole packages, that import neither an I/O library nor anything but each other.
PURE = [
    "_exceptions",
    "_messages",
    "_models",
    "_numbers",
    "_options",
    "_payload",
    "_retry",
    "_routing",
    "_rows",
    "_reservations",
    "_stops",
    "_stored",
    "_version",
    "_wire",
    "_http11",
    "_transports/base",
    "_cli/jsonl",
]
IO_LIBRARIES = {
    "httpx",
    "httpcore",
    "anyio",
    "asyncio",
    "trio",
    "sniffio",
    "h11",
    "socket",
    "ssl",
    "sqlite3",
}
CLIENT_MODULES = {
    "_cache",
    "_client",
    "_stream",
    "_exchange",
    "_fanout",
    "_provider",
    "_ratelimit",
}


def files_of(entry: str) -> list[Path]:
    """The source files of a module (``_x``) or of every module of a package (``_wire``)."""
    path = PACKAGE / entry
    return sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """The absolute imports' top-level names, and the package modules imported relatively.

    A relative import is resolved to a path inside the package, such as ``_wire/base`` or
    ``_exceptions``.
    """
    where = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
    absolute: set[str] = set()
    relative: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                absolute.add((node.module or "").split(".")[0])
                continue
            base = list(where[: len(where) - node.level + 1])
            targets = (
                [[*base, *node.module.split(".")]]
                if node.module
                else [[*base, alias.name] for alias in node.names]
            )
            relative.update("/".join(target) for target in targets)
    return absolute, relative


def is_pure(module: str) -> bool:
    """Whether a package-relative module path lies in :data:`PURE` (a package counts whole)."""
    return any(module == entry or module.startswith(f"{entry}/") for entry in PURE)


@pytest.mark.parametrize(
    "path", [path for entry in PURE for path in files_of(entry)], ids=lambda p: p.stem
)
def test_pure_modules_import_no_io(path: Path) -> None:
    assert path.exists(), f"{path} is listed as pure but does not exist"
    absolute, relative = imports_of(path)
    assert not absolute & IO_LIBRARIES, f"{path.name} imports {absolute & IO_LIBRARIES}"
    impure = {module for module in relative if not is_pure(module)}
    assert not impure, f"{path.name} imports I/O modules {impure}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "_transports").glob("*.py")), ids=str)
def test_transports_know_nothing_of_the_client(path: Path) -> None:
    _, relative = imports_of(path)
    assert not {module.split("/")[0] for module in relative} & CLIENT_MODULES


def test_testing_never_imports_the_client() -> None:
    for path in (PACKAGE / "testing").glob("*.py"):
        _, relative = imports_of(path)
        used = {module.split("/")[0] for module in relative}
        assert not used & CLIENT_MODULES, f"{path.name} imports {used & CLIENT_MODULES}"


def test_the_resolver_sees_relative_imports() -> None:
    # The checks above pass vacuously if relative imports are not found: make sure they are.
    _, relative = imports_of(PACKAGE / "_wire" / "__init__.py")
    assert {"_exceptions", "_wire/aura", "_wire/base"} <= relative
    _, relative = imports_of(PACKAGE / "testing" / "_mock.py")
    assert "_transports/base" in relative
