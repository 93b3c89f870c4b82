"""The guards around httpcore in ``_transport``: they wrap, delegate and stay out of the way."""

from __future__ import annotations

import logging
import ssl
import typing

import anyio
import httpcore
import httpx
import pytest

from aura_anyio import Timeouts
from aura_anyio._http import _LEFTOVER_CHUNKS, close_response
from aura_anyio._transport import (
    HttpxSender,
    RequestBody,
    _guard,
    _GuardedBackend,
    _GuardedStream,
    _HideSocksAuth,
    make_sender,
)

if typing.TYPE_CHECKING:
    import pathlib
    from collections.abc import AsyncGenerator

    from anyio.abc import SocketStream


def test_the_guard_wraps_each_pool_once_and_skips_what_it_does_not_know() -> None:
    sender = make_sender(
        url="http://127.0.0.1:9/api/chat",
        headers={},
        timeouts=Timeouts(),
        proxy="socks5://user:secret@127.0.0.1:1080",
        verify=True,
        max_connections=3,
    )
    assert isinstance(sender, HttpxSender)  # through a proxy: httpx's own transport, guarded
    client = sender.http
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        _guard(transport)  # a second time changes nothing
        backend = transport._pool._network_backend  # type: ignore[union-attr]
        assert isinstance(backend, _GuardedBackend)
        assert not isinstance(backend._backend, _GuardedBackend)
    _guard(object())  # no pool at all: nothing to guard, and no error


async def test_a_guarded_unix_socket_connection(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "sock")

    async def echo(stream: SocketStream) -> None:
        async with stream:
            await stream.send(await stream.receive())

    async with await anyio.create_unix_listener(path) as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        backend = _GuardedBackend(httpcore.AnyIOBackend())
        stream = await backend.connect_unix_socket(path, timeout=5.0)
        await stream.write(b"ping", timeout=5.0)
        assert await stream.read(10, timeout=5.0) == b"ping"
        assert stream.get_extra_info("socket") is not None
        await stream.aclose()
        await backend.sleep(0)
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "setup_socks5_connection.started stream=<S> host='h' port=1 auth=(b'u', b'pw')",
            "setup_socks5_connection.started stream=<S> host='h' port=1 auth=<hidden>",
        ),
        ("connect_tcp.started host='127.0.0.1' port=1080", None),
    ],
)
def test_socks_credentials_are_cut_from_httpcore_logs(message: str, shown: str | None) -> None:
    record = logging.LogRecord("httpcore.socks", logging.DEBUG, __file__, 1, message, (), None)
    assert _HideSocksAuth().filter(record)
    assert record.getMessage() == (shown or message)


def test_a_request_body_can_be_sent_again() -> None:
    body = RequestBody(b"payload")
    assert list(body) == [b"payload"]
    assert list(body) == [b"payload"]


async def test_a_request_body_is_iterated_without_a_generator() -> None:
    body = RequestBody(b"payload")
    for _ in range(2):  # once per attempt
        chunks = body.__aiter__()
        assert chunks.__aiter__() is chunks
        assert [chunk async for chunk in chunks] == [b"payload"]


class _Endless(httpx.AsyncByteStream):
    """A body that ignores being closed: the drain must still stop."""

    def __init__(self) -> None:
        self.reads = 0

    def __aiter__(self) -> _Endless:
        return self

    async def __anext__(self) -> bytes:
        self.reads += 1
        return b"x"


async def test_draining_a_closed_response_is_bounded() -> None:
    stream = _Endless()
    response = httpx.Response(200, stream=stream)
    chunks = typing.cast("AsyncGenerator[bytes, None]", response.aiter_raw())
    assert await chunks.__anext__() == b"x"
    await close_response(response, chunks)
    assert response.is_closed
    assert stream.reads == 1 + _LEFTOVER_CHUNKS
    await chunks.aclose()  # what the bound left suspended, closed here for Trio's sake


class _RefusingStream(httpcore.AsyncNetworkStream):
    """A stream whose TLS upgrade fails, as a cancelled or refused handshake does."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True

    async def start_tls(
        self,
        ssl_context: object,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
    ) -> httpcore.AsyncNetworkStream:
        raise anyio.BrokenResourceError("handshake refused")


async def test_a_failed_tls_upgrade_closes_the_stream() -> None:
    inner = _RefusingStream()
    with pytest.raises(anyio.BrokenResourceError):
        await _GuardedStream(inner).start_tls(ssl.create_default_context())
    assert inner.closed
