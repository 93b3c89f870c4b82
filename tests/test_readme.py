"""The README's fault table has a test for every row, and nothing else claims to be one."""

from __future__ import annotations

import pathlib
import re

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
