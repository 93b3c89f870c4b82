"""The README's fault table has a test for every row, and every Python block runs as written.

A block that defines a test is run as that test; every other block is a program (it ends with
``asyncio.run``, ``trio.run`` or ``anyio.run``), run as it stands against the reference
server, with the README's URLs pointed at it.
"""

from __future__ import annotations

import pathlib
import re
import typing

import pytest

from aura_anyio.testing import ReceivedRequest, ReferenceServer, ToolCalls, default_reply

from .helpers import served_in_thread

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

pytestmark = pytest.mark.network

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


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def defines_a_test(block: str) -> bool:
    return re.search(r"^async def test_", block, re.MULTILINE) is not None


def readme_example_tests() -> list[str]:
    """The README's Python blocks that define a test of their own (no network involved)."""
    return [block for block in python_blocks() if defines_a_test(block)]


def readme_programs() -> list[str]:
    """The README's other Python blocks: programs that run themselves."""
    return [block for block in python_blocks() if not defines_a_test(block)]


@pytest.mark.parametrize("block", readme_example_tests(), ids=lambda b: b.split("(")[0][-40:])
async def test_readme_examples_run_as_written(block: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # our own README
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    await typing.cast("Callable[[], Awaitable[None]]", tests[0])()


def test_the_readme_has_example_tests() -> None:
    assert len(readme_example_tests()) >= 2


# The servers the README's programs name; each is pointed at the reference server.
README_URLS = ("https://openchat.team", "http://localhost:8000")


def readme_reply(request: ReceivedRequest) -> str | ToolCalls:
    """The reference server's reply, but a tool call when a user asks with tools offered."""
    if "tools" in request.extra_body and request.kept_messages[-1]["role"] == "user":
        return ToolCalls([("get_weather", '{"city": "Paris"}')])
    return default_reply(request)


def test_every_readme_program_runs_itself() -> None:
    programs = readme_programs()
    assert len(programs) >= 5
    for block in programs:
        last = block.strip().splitlines()[-1]
        assert re.match(r"(print\()?(asyncio|trio|anyio)\.run\(|print\(g4f\.", last), last


@pytest.mark.parametrize("block", readme_programs(), ids=lambda b: b.split("def ", 1)[-1][:30])
def test_readme_programs_run_as_written(
    block: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a program's files go (the cache's, say)
    # A program starts its own event loop, so the server runs in a thread of its own.
    with served_in_thread(ReferenceServer(reply=readme_reply)) as server:
        code = block
        for url in README_URLS:
            code = code.replace(url, server.base_url)
        assert code != block
        exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})  # our own README
        received = server.requests
    out = capsys.readouterr().out
    assert "Hello from the reference server" in out
    assert all(request.error is None for request in received)
    if "tool_calls" in block:  # the tool's answer went back, after the call
        sent = received[-1].messages
        assert sent[-2]["tool_calls"] == [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
        assert sent[-1] == {"role": "tool", "tool_call_id": "call_0", "content": "18 °C in Paris"}
