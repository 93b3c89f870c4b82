"""Where conftest runs each test: the backends a marker chooses, and a socket no marker allowed.

A small suite of its own is run, in this process, against this project's conftest. (Each run
leaves its audit hook in the interpreter, idle: hooks cannot be removed.)
"""

from __future__ import annotations

import pathlib

import pytest

pytest_plugins = ["pytester"]

# The rules name every backend: run them where all are installed (not in tests_asyncio_only).
pytest.importorskip("trio")
pytest.importorskip("uvloop")

CONFTEST = pathlib.Path(__file__).with_name("conftest.py")
SUITE = """
import socket

import anyio
import pytest


async def test_in_memory() -> None:
    await anyio.sleep(0)


@pytest.mark.network
async def test_on_sockets() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


@pytest.mark.network
@pytest.mark.debug
async def test_guarding() -> None:
    await anyio.sleep(0)


@pytest.mark.network
@pytest.mark.loops("trio")
async def test_trio_own() -> None:
    await anyio.sleep(0)


async def test_unmarked_but_binds() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


def test_pure() -> None:
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    # The copy is no module of the tests package: it takes the guard this process has.
    conftest = CONFTEST.read_text(encoding="utf-8")
    pytester.makeconftest(conftest.replace("from . import offline", "from tests import offline"))
    pytester.makeini("[pytest]\nanyio_mode = auto\naddopts = -p no:asyncio -p no:trio\n")
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def ran(result: pytest.HookRecorder, outcome: str) -> set[str]:
    """The ids of the tests that ``outcome``: passed (their call), skipped or failed (any
    phase, the teardown included)."""
    return {
        report.nodeid.split("::")[-1]
        for report in result.getreports("pytest_runtest_logreport")
        if getattr(report, outcome) and (outcome != "passed" or report.when == "call")
    }


def test_each_test_runs_on_the_backends_its_markers_name(suite: pytest.Pytester) -> None:
    result = suite.inline_run("-p", "no:cacheprovider")
    passed = ran(result, "passed")
    assert {
        "test_in_memory[asyncio]",
        "test_in_memory[trio]",
        "test_on_sockets[asyncio]",
        "test_on_sockets[uvloop]",
        "test_on_sockets[trio]",
        "test_guarding[asyncio]",
        "test_guarding[asyncio-debug]",
        "test_guarding[uvloop]",
        "test_guarding[trio]",
        "test_trio_own[trio]",
        "test_pure",
    } <= passed
    assert not any(
        name.startswith(("test_in_memory[uvloop", "test_trio_own[asyncio")) for name in passed
    )
    # Its body ran and bound a socket: the marker is missing, and the teardown says so.
    assert ran(result, "failed") == {
        "test_unmarked_but_binds[asyncio]",
        "test_unmarked_but_binds[trio]",
    }
    failure = str(result.getfailures()[0].longrepr)
    assert "opened sockets (socket.bind ('127.0.0.1', 0))" in failure
    assert "mark it @pytest.mark.network" in failure


def test_backends_narrows_what_the_markers_allow(suite: pytest.Pytester) -> None:
    result = suite.inline_run("-p", "no:cacheprovider", "--backends=asyncio", "-k", "not binds")
    assert ran(result, "passed") == {
        "test_in_memory[asyncio]",
        "test_on_sockets[asyncio]",
        "test_guarding[asyncio]",
        "test_pure",
    }
    assert ran(result, "skipped") == {"test_trio_own[no-backend]"}  # skipped, not lost
    with pytest.raises(pytest.UsageError, match="unknown"):
        suite.parseconfigure("--backends=curio")
