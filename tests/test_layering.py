"""Imports point down the layers of DESIGN.md section 3, checked from the source with ``ast``.

Pure modules do no I/O; transports know nothing of the client; ``testing/`` never uses it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "aura_anyio"
# The layers of DESIGN section 3, lowest first: a module imports modules of its own layer or
# of a lower one, never of a higher one. An entry is a module (``_x``) or a whole package
# (``_wire``); the longest entry that holds a module places it.
LAYERS: dict[str, list[str]] = {
    # Stdlib only, no I/O: computable without awaiting.
    "pure": [
        "_error_body",
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
        "_bench",
        "_stored",
        "_tokens",
        "_usage",
        "_version",
        "_wire",
        "_http11",
        "_transports/base",
        "_cli/jsonl",
    ],
    "lowest I/O": ["_deadlines", "_task_groups"],
    "transports": ["_transports"],
    # The fan-out is the client's own (AuraClient.fan_out), so it sits in this layer.
    "client": ["_exchange", "_endpoints", "_cache", "_ratelimit", "_stream", "_fanout", "_client"],
    "built on the client": ["_provider"],
    "outer": ["testing", "_cli", "ray", "g4f", "__init__", "__main__"],
}
# Modules, or whole packages, that import neither an I/O library nor anything but each other.
PURE = LAYERS["pure"]
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


def module_of(target: str) -> str | None:
    """The package-relative module a resolved import names: ``x`` or ``x/__init__``; ``None``
    for a name that is neither (an attribute of a package's ``__init__``)."""
    if (PACKAGE / f"{target}.py").exists():
        return target
    if (PACKAGE / target / "__init__.py").exists():
        return f"{target}/__init__"
    return None


def import_graph() -> dict[str, set[str]]:
    """Each module of the package, and the modules of the package it imports, type-only
    imports included: importing a package's module runs the package's ``__init__`` too."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).with_suffix("").as_posix()
        own = name.split("/")[:-1]
        edges: set[str] = set()
        for target in imports_of(path)[1]:
            parts = target.split("/")
            module = module_of(target) or module_of("/".join(parts[:-1]))
            if module is not None:
                edges.add(module)
            for depth in range(1, len(parts)):
                package = parts[:depth]
                if package != own[:depth] and (found := module_of("/".join(package))):
                    edges.add(found)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, as the modules round it, or ``None``."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph.get(module, ())):
            if (loop := visit(target, [*path, module])) is not None:
                return loop
        done.add(module)
        return None

    for module in sorted(graph):
        if (loop := visit(module, [])) is not None:
            return loop
    return None


def test_no_module_imports_itself_round_a_loop() -> None:
    loop = find_loop(import_graph())
    assert loop is None, " -> ".join(loop or ())


def test_the_loop_finder_finds_loops() -> None:
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_loop({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    graph = import_graph()
    assert "_messages" in graph["_models"]
    assert "_wire/__init__" in graph["_client"]


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer whose longest entry holds ``module``."""
    found = [
        (len(entry), index)
        for index, entries in enumerate(LAYERS.values())
        for entry in entries
        if module == entry or module.startswith(f"{entry}/")
    ]
    assert found, f"{module} is on no layer of LAYERS"
    return max(found)[1]


def test_every_module_is_on_one_layer() -> None:
    graph = import_graph()
    assert len(graph) > 60
    for module in graph:
        layer_of(module)
    entries = [entry for entries in LAYERS.values() for entry in entries]
    assert len(entries) == len(set(entries))
    # The longest entry places a module: _cli/jsonl is pure, the rest of _cli is outer.
    assert (layer_of("_cli/jsonl"), layer_of("_cli/batch"), layer_of("_wire/sse")) == (0, 5, 0)


def test_imports_only_point_down_the_layers() -> None:
    names = list(LAYERS)
    upward = [
        f"{module} ({names[layer_of(module)]}) imports {target} ({names[layer_of(target)]})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []
