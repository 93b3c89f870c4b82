"""The lean HTTP/1.1 transport against scripted raw servers: reuse, closes, and odd peers.

The reference-server suites cover replies, faults, TLS and cancellation through it; these
tests cover what only a misbehaving raw peer can show.
"""

from __future__ import annotations

import contextlib
import ssl
import typing

import anyio
import httpx
import pytest

from aura_anyio._http11 import encode_request
from aura_anyio._lean_transport import LeanTransport, Route

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import SocketStream

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def read_request(stream: SocketStream) -> bytes:
    """Read one request head (these tests send no bodies); b"" if the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b""
    return data


Handler = typing.Callable[[int, "SocketStream"], "Awaitable[None]"]


class RawServer:
    """Calls ``handler(connection_number, stream)`` for each connection, from 0."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _serve(self, stream: SocketStream) -> None:
        number = self.connections
        self.connections += 1
        async with stream:
            await self.handler(number, stream)


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[RawServer, str]]:
    server = RawServer(handler)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, server._serve)
        yield server, f"http://127.0.0.1:{server.port}/x"
        tasks.cancel_scope.cancel()


def transport(max_idle: int = 10) -> LeanTransport:
    return LeanTransport(ssl_context=ssl.create_default_context(), max_idle=max_idle)


async def get(client: LeanTransport, url: str) -> bytes:
    """POST an empty body to ``url`` and return the whole response body."""
    route = Route(url, {})
    response = await client.send(
        route.origin, encode_request(route.prefix, b""), connect_timeout=5.0, read_timeout=5.0
    )
    return b"".join([data async for data in response])


async def run(
    handler: Handler,
    body: Callable[[LeanTransport, str, RawServer], Awaitable[None]],
    *,
    max_idle: int = 10,
) -> RawServer:
    async with serving(handler) as (server, url):
        client = transport(max_idle)
        try:
            await body(client, url, server)
        finally:
            await client.aclose()
    return server


async def test_a_connection_is_reused_and_never_sent_twice() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(OK)
        if number == 0:
            # Keep the connection open, but drop it as soon as the next request arrives.
            await read_request(stream)
            return
        while await read_request(stream):
            await stream.send(OK)

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        # The server may have the request: the transport does not send it again on its own.
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await get(client, url)
        assert await get(client, url) == b"ok"  # on a new connection
        assert await get(client, url) == b"ok"  # which is reused

    server = await run(handler, body)
    assert server.connections == 2


async def test_a_peer_that_closed_an_idle_connection_is_not_used() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(OK)  # then the connection closes

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        await get(client, url)
        await anyio.sleep(0.05)  # the close reaches the client's socket
        await get(client, url)

    assert (await run(handler, body)).connections == 2


async def test_no_response_on_a_fresh_connection_is_an_error() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)  # and hang up

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await get(client, url)

    await run(handler, body)


async def test_connection_close_and_an_interim_response() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        await stream.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        assert await get(client, url) == b"ok"

    assert (await run(handler, body)).connections == 2  # "connection: close" was honoured


async def test_idle_connections_are_bounded_and_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        while await read_request(stream):
            await anyio.sleep(0.05)  # so that the requests overlap
            await stream.send(OK)

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(get, client, url)
        assert client._idle_count == 1  # three came back; two were closed
        monkeypatch.setattr("aura_anyio._lean_transport.KEEPALIVE_EXPIRY", 0.0)
        await get(client, url)  # the idle one had expired: a new connection

    assert (await run(handler, body, max_idle=1)).connections == 4


async def test_a_closed_transport_refuses_requests() -> None:
    lean = transport()
    await lean.aclose()
    assert lean.is_closed
    with pytest.raises(RuntimeError, match="the transport is closed"):
        await get(lean, "http://127.0.0.1:9/")


async def test_a_switch_of_protocols_is_an_error_not_a_hang() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"
        )
        await anyio.sleep(5)

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        with anyio.fail_after(2), pytest.raises(httpx.RemoteProtocolError, match="switched"):
            await get(client, url)

    await run(handler, body)


async def test_bytes_nobody_asked_for_spoil_the_connection() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(OK + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nEVIL!")
        while await read_request(stream):
            await stream.send(OK)

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        assert await get(client, url) == b"ok"  # not the unasked-for "EVIL!"

    assert (await run(handler, body)).connections == 2


async def test_closing_the_transport_under_a_response() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await anyio.sleep(5)

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        route = Route(url, {})
        request = encode_request(route.prefix, b"")
        response = await client.send(route.origin, request, connect_timeout=5, read_timeout=5)
        assert await response.__anext__() == b"hello"
        await client.aclose()
        with pytest.raises(httpx.ReadError):
            await response.__anext__()
        await response.aclose()

    await run(handler, body)


@pytest.mark.parametrize("check", ["select", "error"])
async def test_the_idle_check_without_poll_and_when_it_fails(
    check: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        while await read_request(stream):
            await stream.send(OK)

    def broken(*args: object) -> object:
        raise ValueError("filedescriptor out of range in select()")

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        monkeypatch.delattr("select.poll")  # before the connection is made
        await get(client, url)
        if check == "error":
            monkeypatch.setattr("select.select", broken)
        await get(client, url)

    server = await run(handler, body)
    assert server.connections == (1 if check == "select" else 2)  # in doubt: a new one


async def test_a_server_that_never_reads_is_a_timeout() -> None:
    stop = anyio.Event()

    async def handler(number: int, stream: SocketStream) -> None:
        await stop.wait()  # reads nothing, so the client's send buffer fills up

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        route = Route(url, {})
        request = encode_request(route.prefix, b"x" * (32 * 1024 * 1024))
        # asyncio's transport takes the whole request into its own buffer, so there the time
        # runs out waiting for the response; on Trio, while sending.
        try:
            with pytest.raises((httpx.WriteTimeout, httpx.ReadTimeout)):
                await client.send(route.origin, request, connect_timeout=5, read_timeout=0.5)
        finally:
            stop.set()

    await run(handler, body)


async def test_no_read_timeout_at_all() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await anyio.sleep(0.01)
        await stream.send(b"2\r\nok\r\n0\r\n\r\n")

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        route = Route(url, {})
        request = encode_request(route.prefix, b"")
        response = await client.send(route.origin, request, connect_timeout=5, read_timeout=None)
        assert b"".join([data async for data in response]) == b"ok"
        assert response.finished

    await run(handler, body)


@pytest.mark.parametrize("rest", ["arrives", "stalls", "never"])
async def test_closing_may_linger_for_the_rest_of_the_body(rest: str) -> None:
    """After an end marker, the body's own end is a moment behind: worth waiting for."""

    async def handler(number: int, stream: SocketStream) -> None:
        while await read_request(stream):
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
            if rest == "never":
                return  # the connection closes with half the body
            await anyio.sleep(0.05 if rest == "arrives" else 5)
            await stream.send(b"world")

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        route = Route(url, {})
        request = encode_request(route.prefix, b"")
        response = await client.send(route.origin, request, connect_timeout=5, read_timeout=5)
        assert await response.__anext__() == b"hello"
        await response.aclose(linger=1.0 if rest != "stalls" else 0.1)
        assert response.finished == (rest == "arrives")
        assert client._idle_count == (1 if rest == "arrives" else 0)

    await run(handler, body)


async def test_a_body_already_buffered_is_read_on_close_and_the_connection_kept() -> None:
    async def handler(number: int, stream: SocketStream) -> None:
        while await read_request(stream):
            await stream.send(OK)  # head and body in one write

    async def body(client: LeanTransport, url: str, server: RawServer) -> None:
        route = Route(url, {})
        request = encode_request(route.prefix, b"")
        for _ in range(2):
            response = await client.send(route.origin, request, connect_timeout=5, read_timeout=5)
            await response.aclose()  # without reading: the body came with the head
            if response.finished:
                assert client._idle_count == 1

    server = await run(handler, body)
    assert server.connections in (1, 2)  # 1 unless the body was a read behind its head
