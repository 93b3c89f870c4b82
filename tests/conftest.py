"""Shared fixtures: every async test runs on asyncio (plain and in debug mode), uvloop and trio."""

from __future__ import annotations

import importlib.util
import ssl
import typing

import pytest
import trustme

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


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority no system trusts."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """For servers and proxies on loopback, and for the names tunnels lead to."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    names = ("127.0.0.1", "::1", "localhost", "chat.example", "xn--bcher-kva.example")
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts :func:`ca`, and nothing else."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
