"""Imports point down the layers: pure modules do no I/O; testing/ never uses the client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "aura_anyio"
PURE = [
    "_checks",
    "_exceptions",
    "_exports",
    "_http1",
    "_http1_head",
    "_jsonl",
    "_messages",
    "_models",
    "_payload",
    "_retry",
    "_decoding",
    "_sse",
    "_openai_reply",
    "_wire",
    "_options",
    "_version",
]
IO_LIBRARIES = {"httpx", "anyio", "asyncio", "trio", "sniffio", "h11", "socket", "ssl"}
CLIENT_MODULES = {"_client", "_stream", "_http", "_provider"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            found.add(prefix + (node.module or ""))
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    imports = imported_modules(PACKAGE / f"{module}.py")
    roots = {name.split(".")[0] for name in imports if not name.startswith(".")}
    assert not roots & IO_LIBRARIES, f"{module} imports {roots & IO_LIBRARIES}"
    relative = {name.lstrip(".").split(".")[0] for name in imports if name.startswith(".")}
    assert relative <= set(PURE), f"{module} imports I/O modules {relative - set(PURE)}"


def test_testing_never_imports_the_client() -> None:
    for path in (PACKAGE / "testing").glob("*.py"):
        imports = imported_modules(path)
        names = {name.lstrip(".").split(".")[-1] for name in imports} | {
            part for name in imports for part in name.split(".")
        }
        assert not names & CLIENT_MODULES, f"{path.name} imports {names & CLIENT_MODULES}"
