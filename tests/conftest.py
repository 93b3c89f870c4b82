"""Shared fixtures: every async test runs on asyncio (plain and in debug mode), uvloop and trio."""

from __future__ import annotations

import importlib.util
import typing

import pytest

if typing.TYPE_CHECKING:
    from aura_anyio._wire import WireName

_BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    # Debug mode, as AnyIO's own suite runs it: it reports coroutines never awaited, slow
    # callbacks and calls from the wrong thread.
    pytest.param(("asyncio", {"debug": True}), id="asyncio-debug"),
    pytest.param(
        ("asyncio", {"use_uvloop": True}),
        id="uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
    pytest.param(
        ("trio", {}),
        id="trio",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("trio") is None, reason="trio is not installed"
        ),
    ),
]


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """The AnyIO backend (and its options) each async test runs on."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["aura", "openai"])
def wire(request: pytest.FixtureRequest) -> WireName:
    """The wire a test speaks, for behaviour that must be the same on both."""
    return typing.cast("WireName", request.param)
