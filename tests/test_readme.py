"""The README's fault table has a test for every row, and its example tests run as written."""

from __future__ import annotations

import pathlib
import re
import typing

import pytest

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROOT = pathlib.Path(__file__).parent.parent


def readme_fault_rows() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Faults: what the caller sees", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip() for row in rows[1:]]  # without the header row


def rows_with_tests() -> set[str]:
    marker = re.compile(r'@fault_row\("([^"]+)"\)')
    return {
        name
        for path in (ROOT / "tests").glob("test_*.py")
        for name in marker.findall(path.read_text(encoding="utf-8"))
    }


def test_every_fault_row_has_a_test() -> None:
    rows = readme_fault_rows()
    assert len(rows) == len(set(rows)) > 20
    assert set(rows) == rows_with_tests()


def readme_example_tests() -> list[str]:
    """The README's Python blocks that define a test of their own (no network involved)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return [block for block in blocks if re.search(r"^async def test_", block, re.MULTILINE)]


@pytest.mark.parametrize("block", readme_example_tests(), ids=lambda b: b.split("(")[0][-40:])
async def test_readme_examples_run_as_written(block: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # our own README
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    await typing.cast("Callable[[], Awaitable[None]]", tests[0])()


def test_the_readme_has_example_tests() -> None:
    assert len(readme_example_tests()) >= 2
