"""The default AnyIO transport: scripted raw peers, routes, and HTTP ``CONNECT`` proxies.

The reference-server suites cover replies, faults, TLS and cancellation through it; these
tests cover what only a misbehaving raw peer (or proxy) can show, how a URL becomes an
origin, a request target and a Host header, and tunnels through a ``CONNECT`` proxy written
here (relaying to a :class:`ReferenceServer`, or answering as a test scripts it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import socket
import ssl
import struct
import typing

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

from aura_anyio import APIConnectionError, AuraClient
from aura_anyio._transports.base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    Request,
    TransportClosed,
    TransportError,
    WriteTimeout,
)
from aura_anyio._transports.default import AnyIOTransport, Route, make_ssl_context
from aura_anyio.testing import ReferenceServer, default_reply

from .helpers import FAST_RETRIES, until

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from anyio.abc import ByteStream

    from aura_anyio._transports.default import AnyIOResponse

pytestmark = [pytest.mark.network, pytest.mark.debug]

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HELLO = [{"role": "user", "content": "hello"}]
# Where a test waits for something that must happen: long enough for a loaded machine.
PATIENCE = 10.0


async def read_request(stream: ByteStream) -> bytes:
    """Read one request head (these tests send no bodies); b"" if the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b""
    return data


Handler = typing.Callable[[int, "ByteStream"], "Awaitable[None]"]


class RawServer:
    """Calls ``handler(connection_number, stream)`` for each connection, from 0.

    ``connections`` counts the connections accepted, ``open`` those whose handler has not
    returned yet (a handler that reads until the client leaves returns when it hangs up).
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.port = 0

    async def serve(self, stream: ByteStream) -> None:
        number = self.connections
        self.connections += 1
        self.open += 1
        try:
            async with stream:
                await self.handler(number, stream)
        finally:
            self.open -= 1


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[RawServer, str]]:
    """Serve ``handler`` on a loopback port (through TLS with ``tls``) while in the block."""
    server = RawServer(handler)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server.port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[ByteStream] = tcp
    if tls is not None:
        listener = TLSListener(tcp, tls, standard_compatible=False)
    scheme = "http" if tls is None else "https"
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, server.serve)
        yield server, f"{scheme}://127.0.0.1:{server.port}/x"
        tasks.cancel_scope.cancel()


def transport(
    max_idle: int = 10, *, proxy: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> AnyIOTransport:
    return AnyIOTransport(verify=ssl_context or True, max_idle=max_idle, proxy=proxy)


def request(
    url: str,
    content: bytes = b"",
    *,
    headers: Mapping[str, str] | None = None,
    read_timeout: float | None = PATIENCE,
    connect_timeout: float | None = PATIENCE,
) -> Request:
    return Request(
        "POST",
        url,
        {} if headers is None else headers,
        content,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


async def read_all(response: AnyIOResponse) -> bytes:
    return b"".join([data async for data in response])


async def get(client: AnyIOTransport, url: str) -> bytes:
    """POST an empty body to ``url`` and return the whole response body."""
    return await read_all(await client.send(request(url)))


async def run(
    handler: Handler,
    body: Callable[[AnyIOTransport, str, RawServer], Awaitable[None]],
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


async def serve_ok(number: int, stream: ByteStream) -> None:
    """Answer every request on the connection with ``OK``."""
    while await read_request(stream):
        await stream.send(OK)


# Routes: origin, request target and Host header


@pytest.mark.parametrize(
    ("url", "origin", "target", "host"),
    [
        ("http://chat.example", ("http", "chat.example", 80), b"/", "chat.example"),
        ("http://chat.example:80/x", ("http", "chat.example", 80), b"/x", "chat.example"),
        ("https://chat.example:443/x", ("https", "chat.example", 443), b"/x", "chat.example"),
        ("https://chat.example:80/x", ("https", "chat.example", 80), b"/x", "chat.example:80"),
        ("http://chat.example:443/x", ("http", "chat.example", 443), b"/x", "chat.example:443"),
        (
            "https://Chat.EXAMPLE:8443/v1",
            ("https", "chat.example", 8443),
            b"/v1",
            "chat.example:8443",
        ),
        ("http://[::1]:8080/x", ("http", "::1", 8080), b"/x", "[::1]:8080"),
        ("http://[::1]/x", ("http", "::1", 80), b"/x", "[::1]"),
        ("https://[2001:db8::7]/x", ("https", "2001:db8::7", 443), b"/x", "[2001:db8::7]"),
        ("http://127.0.0.1:8000/x", ("http", "127.0.0.1", 8000), b"/x", "127.0.0.1:8000"),
        # IDNA 2008 with UTS 46 mapping (as httpx): DNS, TLS and Host all get the A-label.
        (
            "https://bücher.example/api/chat",
            ("https", "xn--bcher-kva.example", 443),
            b"/api/chat",
            "xn--bcher-kva.example",
        ),
        (
            "http://ÉCOLE.example:8080/x",
            ("http", "xn--cole-9oa.example", 8080),
            b"/x",
            "xn--cole-9oa.example:8080",
        ),
        ("http://münchen.de", ("http", "xn--mnchen-3ya.de", 80), b"/", "xn--mnchen-3ya.de"),
        # What cannot travel in a request line is percent-encoded; what is encoded stays so.
        ("http://h/a b/ü", ("http", "h", 80), b"/a%20b/%C3%BC", "h"),
        ("http://h/a%20b/%C3%BC", ("http", "h", 80), b"/a%20b/%C3%BC", "h"),
        (
            "http://h/v1/~me/a-b_c.d!$&'()*+,;=:@",
            ("http", "h", 80),
            b"/v1/~me/a-b_c.d!$&'()*+,;=:@",
            "h",
        ),
        ("http://h/x?q=1&r=%20", ("http", "h", 80), b"/x?q=1&r=%20", "h"),
        ("http://h/x#fragment", ("http", "h", 80), b"/x", "h"),
    ],
)
def test_a_route_is_the_origin_target_and_host(
    url: str, origin: tuple[str, str, int], target: bytes, host: str
) -> None:
    route = Route(url)
    assert (route.origin, route.target, route.host) == (origin, target, host)


def test_a_query_is_percent_encoded_too() -> None:
    assert Route("http://h/x?q=a b").target == b"/x?q=a%20b"
    assert Route("http://h/x?q=ü").target == b"/x?q=%C3%BC"


async def test_the_request_line_and_host_header_on_the_wire() -> None:
    heads: list[bytes] = []

    async def handler(number: int, stream: ByteStream) -> None:
        while head := await read_request(stream):
            heads.append(head)
            await stream.send(OK)

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        base = url.removesuffix("/x")
        assert await get(client, f"{base}/a b/ü?q=1") == b"ok"
        # Two header mappings for one URL: each request carries its own.
        first = await client.send(request(url, b"{}", headers={"x-first": "1"}))
        assert await read_all(first) == b"ok"
        second = await client.send(request(url, b"[]", headers={"x-second": "2"}))
        assert await read_all(second) == b"ok"

    server = await run(handler, body)
    port = server.port
    line = f"POST /a%20b/%C3%BC?q=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    assert heads[0].startswith(line.encode())
    assert b"content-length: 0\r\n" in heads[0]
    assert b"x-first: 1\r\n" in heads[1]
    assert b"x-second" not in heads[1]
    assert b"x-second: 2\r\n" in heads[2]
    assert b"x-first" not in heads[2]
    assert server.connections == 1


async def test_an_ipv6_literal_origin() -> None:
    async with ReferenceServer(host="::1") as server:
        assert server.base_url.startswith("http://[::1]:")
        async with AuraClient(server.base_url) as client:
            assert await client.complete(HELLO) == default_reply(server.requests[0])
    assert server.requests[0].headers["host"] == f"[::1]:{server.port}"


# Scripted raw peers


async def test_a_connection_is_reused_and_never_sent_twice() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(OK)
        if number == 0:
            # Keep the connection open, but drop it as soon as the next request arrives.
            await read_request(stream)
            return
        await serve_ok(number, stream)

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        # The server may have the request: the transport does not send it again on its own.
        with pytest.raises(ProtocolError, match="without sending a response"):
            await get(client, url)
        assert await get(client, url) == b"ok"  # on a new connection
        assert await get(client, url) == b"ok"  # which is reused

    server = await run(handler, body)
    assert server.connections == 2


async def test_a_peer_that_closed_an_idle_connection_is_not_used() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(OK)  # then the connection closes

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        await get(client, url)
        await until(lambda: server.open == 0)  # closed: the FIN is in the client's socket
        assert await get(client, url) == b"ok"

    assert (await run(handler, body)).connections == 2


async def test_no_response_on_a_fresh_connection_is_an_error() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)  # and hang up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        with pytest.raises(ProtocolError, match="without sending a response"):
            await get(client, url)

    await run(handler, body)


async def test_connection_close_and_an_interim_response() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        await stream.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        await read_request(stream)  # until the client hangs up, as "close" told it to

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        await until(lambda: server.open == 0)  # closed by the client at the body's end
        assert await get(client, url) == b"ok"

    assert (await run(handler, body)).connections == 2  # "connection: close" was honoured


async def test_idle_connections_are_bounded_and_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    three = anyio.Event()

    async def handler(number: int, stream: ByteStream) -> None:
        if number == 2:
            three.set()
        await read_request(stream)
        await three.wait()  # the first three requests overlap: three connections
        await stream.send(OK)
        await serve_ok(number, stream)

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(get, client, url)
        assert server.connections == 3
        await until(lambda: server.open == 1)  # three came back; two were closed
        assert await get(client, url) == b"ok"  # on the one kept
        assert server.connections == 3
        monkeypatch.setattr("aura_anyio._transports.default.KEEPALIVE_EXPIRY", 0.0)
        assert await get(client, url) == b"ok"  # the idle one had expired: a new connection
        assert server.connections == 4
        await until(lambda: server.open == 1)  # and the expired one is closed

    assert (await run(handler, body, max_idle=1)).connections == 4


async def test_the_oldest_idle_connection_goes_first_across_origins() -> None:
    async with serving(serve_ok) as (first, first_url), serving(serve_ok) as (second, second_url):
        client = transport(max_idle=1)
        try:
            assert await get(client, first_url) == b"ok"
            assert await get(client, second_url) == b"ok"  # the first origin's one is closed
            await until(lambda: first.open == 0)
            assert second.open == 1
            assert await get(client, second_url) == b"ok"  # reused
        finally:
            await client.aclose()
    assert (first.connections, second.connections) == (1, 1)


async def test_a_closed_transport_refuses_requests_and_closes_its_connections() -> None:
    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        assert server.open == 1  # idle in the pool
        await client.aclose()
        await until(lambda: server.open == 0)
        with pytest.raises(TransportClosed, match="the transport is closed"):
            await get(client, url)
        await client.aclose()  # twice is harmless

    assert (await run(serve_ok, body)).connections == 1


async def test_a_switch_of_protocols_is_an_error_not_a_hang() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"
        )
        await read_request(stream)  # until the client hangs up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        with anyio.fail_after(PATIENCE), pytest.raises(ProtocolError, match="switched"):
            await get(client, url)
        await until(lambda: server.open == 0)  # and the connection is not kept

    await run(handler, body)


async def test_bytes_nobody_asked_for_spoil_the_connection() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(OK + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nEVIL!")
        await serve_ok(number, stream)

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        assert await get(client, url) == b"ok"
        assert await get(client, url) == b"ok"  # not the unasked-for "EVIL!"

    assert (await run(handler, body)).connections == 2


async def test_closing_the_transport_under_a_response() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await read_request(stream)  # until the client hangs up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url))
        assert await response.__anext__() == b"hello"
        await client.aclose()
        with pytest.raises(NetworkError):
            await response.__anext__()
        await response.aclose()
        with pytest.raises(StopAsyncIteration):  # a failed body ends there
            await response.__anext__()
        await until(lambda: server.open == 0)

    await run(handler, body)


async def test_a_response_read_after_the_transport_closed_is_not_pooled() -> None:
    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url))
        await client.aclose()
        # The body came with the head: it is there to read, but the connection is gone.
        assert await read_all(response) == b"ok"
        await until(lambda: server.open == 0)

    await run(serve_ok, body)


@pytest.mark.parametrize("check", ["select", "error"])
async def test_the_idle_check_without_poll_and_when_it_fails(
    check: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> object:
        raise ValueError("filedescriptor out of range in select()")

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        monkeypatch.delattr("select.poll")  # before the connection is made
        await get(client, url)
        if check == "error":
            monkeypatch.setattr("select.select", broken)
        await get(client, url)

    server = await run(serve_ok, body)
    assert server.connections == (1 if check == "select" else 2)  # in doubt: a new one


async def test_a_server_that_never_reads_is_a_timeout() -> None:
    stop = anyio.Event()

    async def handler(number: int, stream: ByteStream) -> None:
        await stop.wait()  # reads nothing, so the client's send buffer fills up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        # asyncio's transport takes the whole request into its own buffer, so there the time
        # runs out waiting for the response; on Trio, while sending.
        try:
            with pytest.raises((WriteTimeout, ReadTimeout)):
                await client.send(request(url, b"x" * (32 * 1024 * 1024), read_timeout=0.5))
        finally:
            stop.set()

    await run(handler, body)


async def test_a_connection_reset_while_sending_is_a_network_error() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        # A zero linger time makes closing send RST instead of FIN.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        with pytest.raises(NetworkError):
            await client.send(request(url, b"x" * (32 * 1024 * 1024)))

    await run(handler, body)


async def test_a_silent_server_is_a_read_timeout_and_the_connection_is_closed() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        if number == 1:
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await read_request(stream)  # then silence, until the client hangs up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        with pytest.raises(ReadTimeout):  # no head
            await client.send(request(url, read_timeout=0.2))
        await until(lambda: server.open == 0)
        # A second for the head, which comes at once: the silence after it is the point.
        response = await client.send(request(url, read_timeout=1.0))
        assert await response.__anext__() == b"hello"
        with pytest.raises(ReadTimeout):  # half a body
            await response.__anext__()
        await until(lambda: server.open == 0)

    assert (await run(handler, body)).connections == 2


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url))
        with pytest.raises(ProtocolError, match="without sending complete message body"):
            await read_all(response)

    await run(handler, body)


async def test_cancelled_while_reading_the_body_closes_the_connection() -> None:
    hung_up = anyio.Event()

    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        assert await read_request(stream) == b""  # the client hangs up, sending nothing
        hung_up.set()

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url))
        assert await response.__anext__() == b"hello"
        with anyio.CancelScope() as scope:
            scope.cancel()
            await response.__anext__()
        assert scope.cancelled_caught
        with anyio.fail_after(PATIENCE):
            await hung_up.wait()
        with pytest.raises(StopAsyncIteration):
            await response.__anext__()

    await run(handler, body)


async def test_cancelled_while_waiting_for_the_head_closes_the_connection() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await read_request(stream)  # no answer; returns when the client hangs up

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.send, request(url))
                await until(lambda: server.connections == 1)
                scope.cancel()
        await until(lambda: server.open == 0)

    await run(handler, body)


async def test_no_read_timeout_at_all() -> None:
    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await anyio.sleep(0.01)  # the body comes apart from the head
        await stream.send(b"2\r\nok\r\n0\r\n\r\n")
        await serve_ok(number, stream)

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url, read_timeout=None))
        assert await read_all(response) == b"ok"
        assert await get(client, url) == b"ok"  # the whole body was read: reused

    assert (await run(handler, body)).connections == 1


@pytest.mark.parametrize("rest", ["arrives", "stalls", "never"])
async def test_closing_may_linger_for_the_rest_of_the_body(rest: str) -> None:
    """After an end marker, the body's own end is a moment behind: worth waiting for."""
    closing = anyio.Event()
    hung_up = anyio.Event()

    async def handler(number: int, stream: ByteStream) -> None:
        if number > 0:
            await serve_ok(number, stream)
            return
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        if rest == "never":
            return  # the connection closes with half the body
        if rest == "arrives":
            await closing.wait()  # the client lingers in aclose() now
            await stream.send(b"world")
            await serve_ok(number, stream)
            return
        assert await read_request(stream) == b""  # stalls until the client hangs up
        hung_up.set()

    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        response = await client.send(request(url))
        assert await response.__anext__() == b"hello"
        closing.set()
        await response.aclose(linger=PATIENCE if rest != "stalls" else 0.1)
        if rest == "stalls":
            with anyio.fail_after(PATIENCE):
                await hung_up.wait()
        await response.aclose()  # twice is harmless
        assert await get(client, url) == b"ok"  # on the same connection if it was kept

    server = await run(handler, body)
    assert server.connections == (1 if rest == "arrives" else 2)


async def test_a_body_already_buffered_is_read_on_close_and_the_connection_kept() -> None:
    async def body(client: AnyIOTransport, url: str, server: RawServer) -> None:
        for _ in range(3):
            response = await client.send(request(url))
            # Without reading: the body came with the head (one write on loopback is one
            # read), so closing drains it and keeps the connection.
            await response.aclose()
        assert server.open == 1

    server = await run(serve_ok, body)
    assert server.connections == 1


async def test_a_connection_refused_is_a_connect_error() -> None:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    await tcp.aclose()  # nobody listens there now
    client = transport()
    try:
        with pytest.raises(ConnectError) as caught:
            await get(client, f"http://127.0.0.1:{port}/x")
    finally:
        await client.aclose()
    assert type(caught.value) is ConnectError


async def test_an_untrusted_certificate_is_a_certificate_error(
    server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="anyio.streams.tls")  # the server's side of it
    async with serving(serve_ok, tls=server_tls) as (server, url):
        client = transport()  # the system's CAs, which do not know trustme's
        try:
            with pytest.raises(CertificateError, match="certificate"):
                await get(client, url)
        finally:
            await client.aclose()
        assert server.connections == 0  # the TLS listener never handed the stream over


async def test_https_to_a_trusted_server(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with serving(serve_ok, tls=server_tls) as (server, url):
        client = transport(ssl_context=client_tls)
        try:
            assert await get(client, url) == b"ok"
            assert await get(client, url) == b"ok"
        finally:
            await client.aclose()
    assert server.connections == 1


def test_make_ssl_context() -> None:
    mine = ssl.create_default_context()
    assert make_ssl_context(mine) is mine
    checked = make_ssl_context(True)
    assert (checked.verify_mode, checked.check_hostname) == (ssl.CERT_REQUIRED, True)
    unchecked = make_ssl_context(False)
    assert (unchecked.verify_mode, unchecked.check_hostname) == (ssl.CERT_NONE, False)


async def test_a_client_of_http_urls_makes_no_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the system's CAs costs tens of milliseconds: made at the first TLS connection,
    never by a client that speaks plain HTTP."""

    def refuse(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise AssertionError("a TLS context was made")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        assert await client.complete(HELLO) == default_reply(server.requests[0])
    # Nor through an http:// proxy: the tunnel asks for a context only for an https:// one.
    async with ReferenceServer() as server, serving(Proxy(server.port)) as (proxied, _):
        proxy_url = f"http://127.0.0.1:{proxied.port}"
        async with AuraClient(server.base_url, proxy=proxy_url) as client:
            assert await client.complete(HELLO) == default_reply(server.requests[0])
    assert proxied.connections == 1


# HTTP CONNECT proxies


@dataclasses.dataclass(frozen=True)
class ConnectHead:
    """A CONNECT request as the proxy received it."""

    line: str
    fields: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> ConnectHead:
        line, *rest = raw.decode("latin-1").split("\r\n")
        fields: dict[str, str] = {}
        for field in filter(None, rest):
            name, _, value = field.partition(":")
            fields[name.strip().lower()] = value.strip()
        return cls(line, fields)


@dataclasses.dataclass
class Proxy:
    """A CONNECT proxy whose every tunnel leads to ``127.0.0.1:upstream``.

    With ``credentials`` (``user:password``) it answers 407 to a CONNECT without them; with
    ``answer`` it sends those bytes instead of tunnelling, then waits for the client to leave.
    """

    upstream: int = 0
    credentials: str | None = None
    answer: bytes | None = None
    heads: list[ConnectHead] = dataclasses.field(default_factory=list)

    async def __call__(self, number: int, stream: ByteStream) -> None:
        raw = await read_request(stream)
        if not raw:
            return
        head = ConnectHead.parse(raw)
        self.heads.append(head)
        if self.answer is not None:
            await stream.send(self.answer)
            await read_request(stream)  # until the client hangs up
            return
        if self.credentials is not None:
            token = base64.b64encode(self.credentials.encode()).decode()
            if head.fields.get("proxy-authorization") != f"Basic {token}":
                await stream.send(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'proxy-authenticate: Basic realm="tests"\r\ncontent-length: 0\r\n\r\n'
                )
                return
        async with await anyio.connect_tcp("127.0.0.1", self.upstream) as upstream:
            await stream.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await relay(stream, upstream)


async def relay(one: ByteStream, other: ByteStream) -> None:
    """Copy bytes both ways until either side closes."""
    async with anyio.create_task_group() as tasks:

        async def pump(source: ByteStream, sink: ByteStream) -> None:
            with contextlib.suppress(
                anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                while True:
                    await sink.send(await source.receive())
            tasks.cancel_scope.cancel()

        tasks.start_soon(pump, one, other)
        tasks.start_soon(pump, other, one)


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
@pytest.mark.parametrize("origin_tls", [False, True], ids=["http-origin", "https-origin"])
async def test_a_reply_through_a_connect_proxy(
    proxy_tls: bool,
    origin_tls: bool,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    """Every origin goes through a tunnel, http:// too; TLS to the origin runs inside it."""
    async with ReferenceServer(ssl_context=server_tls if origin_tls else None) as server:
        proxy = Proxy(server.port)
        async with serving(proxy, tls=server_tls if proxy_tls else None) as (proxied, _):
            scheme = "https" if proxy_tls else "http"
            proxy_url = f"{scheme}://127.0.0.1:{proxied.port}"
            client = AuraClient(server.base_url, proxy=proxy_url, verify=client_tls)
            async with client:
                text = await client.complete(HELLO)
                async with client.stream(HELLO) as reply:
                    streamed = "".join([piece async for piece in reply])
            await until(lambda: proxied.open == 0)  # the tunnel is closed with the client
    assert text == streamed == default_reply(server.requests[0])
    authority = f"127.0.0.1:{server.port}"
    assert [head.line for head in proxy.heads] == [f"CONNECT {authority} HTTP/1.1"]
    assert proxy.heads[0].fields == {"host": authority}  # no credentials: none sent
    assert server.requests[0].headers["host"] == authority
    # One tunnel, reused for the second request.
    assert proxied.connections == server.accepted_connections == 1


@pytest.mark.parametrize(
    ("origin", "authority", "host"),
    [
        ("http://chat.example", "chat.example:80", "chat.example"),
        ("http://chat.example:80", "chat.example:80", "chat.example"),
        ("https://chat.example", "chat.example:443", "chat.example"),
        ("http://chat.example:8080", "chat.example:8080", "chat.example:8080"),
        ("https://bücher.example", "xn--bcher-kva.example:443", "xn--bcher-kva.example"),
        ("http://[::1]:8080", "[::1]:8080", "[::1]:8080"),
        ("https://[::1]", "[::1]:443", "[::1]"),
    ],
)
async def test_the_connect_authority_and_host_of_any_origin(
    origin: str,
    authority: str,
    host: str,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    """The proxy resolves nothing here: every tunnel leads to the reference server."""
    tls = server_tls if origin.startswith("https") else None
    async with ReferenceServer(ssl_context=tls) as server:
        proxy = Proxy(server.port)
        async with serving(proxy) as (proxied, _):
            proxy_url = f"http://127.0.0.1:{proxied.port}"
            async with AuraClient(origin, proxy=proxy_url, verify=client_tls) as client:
                assert await client.complete(HELLO) == default_reply(server.requests[0])
    assert proxy.heads[0].line == f"CONNECT {authority} HTTP/1.1"
    assert proxy.heads[0].fields["host"] == authority
    assert server.requests[0].headers["host"] == host


# user "us@er", password "p:ss wörd": percent-encoded in the URL, as RFC 3986 wants.
USER, PASSWORD = "us@er", "p:ss wörd"
ENCODED = "us%40er:p%3Ass%20w%C3%B6rd"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


async def test_proxy_credentials_arrive_as_basic_auth_and_stay_secret() -> None:
    async with ReferenceServer() as server:
        proxy = Proxy(server.port, credentials=f"{USER}:{PASSWORD}")
        async with serving(proxy) as (proxied, _):
            proxy_url = f"http://{ENCODED}@127.0.0.1:{proxied.port}"
            async with AuraClient(server.base_url, proxy=proxy_url) as client:
                assert await client.complete(HELLO) == default_reply(server.requests[0])
                shown = repr(client)
    assert proxy.heads[0].fields["proxy-authorization"] == f"Basic {TOKEN}"
    assert f"***@127.0.0.1:{proxied.port}" in shown
    for secret in ("p%3Ass", "p:ss", "wörd", TOKEN):
        assert secret not in shown
    # The origin never sees them: they are for the proxy alone.
    assert "proxy-authorization" not in server.requests[0].headers


@pytest.mark.parametrize(("user", "password"), [("onlyuser", None), (None, "onlypass")])
async def test_a_user_name_or_a_password_alone(user: str | None, password: str | None) -> None:
    async with ReferenceServer() as server:
        expected = f"{user or ''}:{password or ''}"
        proxy = Proxy(server.port, credentials=expected)
        async with serving(proxy) as (proxied, _):
            userinfo = f"{user or ''}" + (f":{password}" if password is not None else "")
            client = transport(proxy=f"http://{userinfo}@127.0.0.1:{proxied.port}")
            try:
                response = await client.send(request(f"{server.base_url}/nowhere"))
                assert response.status_code == 404
                assert await read_all(response) == b"Not Found"
            finally:
                await client.aclose()
    token = base64.b64encode(expected.encode()).decode()
    assert proxy.heads[0].fields["proxy-authorization"] == f"Basic {token}"


async def test_a_proxy_refusing_the_credentials_is_not_retried() -> None:
    async with ReferenceServer() as server:
        proxy = Proxy(server.port, credentials="someone:else")
        async with serving(proxy) as (proxied, _):
            proxy_url = f"http://{ENCODED}@127.0.0.1:{proxied.port}"
            client = transport(proxy=proxy_url)
            try:
                with pytest.raises(ProxyError) as refused:
                    await get(client, f"{server.base_url}/api/chat")
            finally:
                await client.aclose()
            async with AuraClient(
                server.base_url, proxy=proxy_url, max_retries=FAST_RETRIES
            ) as aura:
                with pytest.raises(APIConnectionError) as caught:
                    await aura.complete(HELLO)
    assert refused.value.refused is True
    assert str(refused.value) == "the proxy answered CONNECT with 407 Proxy Authentication Required"
    error = caught.value
    assert error.retryable is False
    assert "check the proxy's user name and password" in str(error)
    assert isinstance(error.__cause__, ProxyError)
    assert len(proxy.heads) == 2  # one CONNECT each: the client did not try again
    assert server.requests == []
    shown = [repr(refused.value), str(error), repr(error), repr(error.request)]
    for secret in ("p%3Ass", "p:ss", "wörd", TOKEN):
        assert not any(secret in text for text in shown), secret


async def test_a_proxy_that_fails_is_retried() -> None:
    proxy = Proxy(answer=b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
    async with serving(proxy) as (proxied, _):
        proxy_url = f"http://127.0.0.1:{proxied.port}"
        client = transport(proxy=proxy_url)
        try:
            with pytest.raises(ProxyError) as failed:
                await get(client, "http://chat.example/api/chat")
        finally:
            await client.aclose()
        async with AuraClient(
            "http://chat.example", proxy=proxy_url, max_retries=FAST_RETRIES
        ) as aura:
            with pytest.raises(APIConnectionError) as caught:
                await aura.complete(HELLO)
        await until(lambda: proxied.open == 0)  # every refused tunnel was closed
    assert failed.value.refused is False
    assert str(failed.value) == "the proxy answered CONNECT with 502 Bad Gateway"
    assert caught.value.retryable is True
    assert "the proxy failed: the proxy answered CONNECT with 502" in str(caught.value)
    assert len(proxy.heads) == 1 + 1 + FAST_RETRIES.max_retries


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            ProtocolError,
            "bytes after its answer",
        ),
        (b"HTTP/1.1 200 OK\r\nx-pad: " + b"a" * 20_000, ProtocolError, "too long"),
        (b"SOCKS, not HTTP\r\n\r\n", ProtocolError, "invalid status line"),
        (b"HTTP/1.1 200 Connection est", ProxyError, "closed the connection during CONNECT"),
    ],
    ids=["bytes-after-the-answer", "over-long-answer", "not-http", "closed-during-connect"],
)
async def test_a_proxy_answering_nonsense(
    answer: bytes, error: type[Exception], message: str
) -> None:
    """Refused, and the tunnel closed; nothing of it reaches the origin."""

    async def handler(number: int, stream: ByteStream) -> None:
        await read_request(stream)
        await stream.send(answer)  # in one write: the client reads it at once
        if error is not ProxyError:
            await read_request(stream)  # until the client hangs up
        # else: hang up during CONNECT, the answer unfinished

    async with serving(handler) as (proxied, _):
        client = transport(proxy=f"http://127.0.0.1:{proxied.port}")
        try:
            with pytest.raises(error, match=message) as caught:
                await get(client, "http://chat.example/api/chat")
        finally:
            await client.aclose()
        await until(lambda: proxied.open == 0)
    if isinstance(caught.value, ProxyError):
        assert caught.value.refused is False


@pytest.mark.parametrize("status", [407, 502])
async def test_a_refusal_with_a_body_is_still_a_refusal(status: int) -> None:
    body = b"<html>Proxy Authentication Required</html>"
    answer = b"HTTP/1.1 %d Refused\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)
    proxy = Proxy(answer=answer)  # head and body in one write
    async with serving(proxy) as (proxied, _):
        client = transport(proxy=f"http://127.0.0.1:{proxied.port}")
        try:
            with pytest.raises(TransportError) as caught:
                await get(client, "http://chat.example/x")
        finally:
            await client.aclose()
    assert isinstance(caught.value, ProxyError), repr(caught.value)
    assert caught.value.refused is (status == 407)


async def test_a_proxy_that_never_answers_is_a_connect_timeout() -> None:
    proxy = Proxy(answer=b"")  # reads the CONNECT, then says nothing
    async with serving(proxy) as (proxied, _):
        client = transport(proxy=f"http://127.0.0.1:{proxied.port}")
        try:
            with pytest.raises(ConnectTimeout):
                await client.send(request("http://chat.example/x", connect_timeout=0.2))
        finally:
            await client.aclose()
        await until(lambda: proxied.open == 0)
    assert len(proxy.heads) == 1


async def test_a_proxy_nobody_listens_on_is_a_proxy_error_naming_it() -> None:
    """The proxy may come from the environment: the error says it was the proxy."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    await tcp.aclose()  # nobody listens there now
    proxy_url = f"http://puser-7:secret-pw@127.0.0.1:{port}"
    client = transport(proxy=proxy_url)
    try:
        with pytest.raises(ProxyError) as caught:
            await get(client, "http://chat.example/x")
    finally:
        await client.aclose()
    async with AuraClient("http://chat.example", proxy=proxy_url, max_retries=0) as aura:
        with pytest.raises(APIConnectionError) as failed:
            await aura.complete(HELLO)
    assert str(caught.value).startswith(f"could not connect to the proxy http://127.0.0.1:{port}: ")
    assert caught.value.refused is False
    assert failed.value.retryable is True  # a proxy restarting may be back
    assert isinstance(failed.value.__cause__, ProxyError)
    for shown in (str(caught.value), repr(caught.value), str(failed.value), repr(failed.value)):
        assert "secret-pw" not in shown
        assert "puser-7" not in shown


async def test_an_https_proxy_with_an_untrusted_certificate(
    server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Said as a certificate failure, not a proxy one: verify= is the fix."""
    caplog.set_level(logging.CRITICAL, logger="anyio.streams.tls")  # the proxy's side of it
    proxy = Proxy()
    async with serving(proxy, tls=server_tls) as (proxied, _):
        client = transport(proxy=f"https://127.0.0.1:{proxied.port}")  # the system's CAs
        try:
            with pytest.raises(CertificateError):
                await get(client, "http://chat.example/x")
        finally:
            await client.aclose()
    assert proxy.heads == []


async def test_an_untrusted_origin_behind_a_proxy_closes_the_tunnel(
    server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="anyio.streams.tls")  # the server's side of it
    async with ReferenceServer(ssl_context=server_tls) as server:
        proxy = Proxy(server.port)
        async with serving(proxy) as (proxied, _):
            client = transport(proxy=f"http://127.0.0.1:{proxied.port}")  # the system's CAs
            try:
                with pytest.raises(CertificateError):
                    await get(client, f"{server.base_url}/api/chat")
            finally:
                await client.aclose()
            await until(lambda: proxied.open == 0)
    assert server.requests == []


async def test_cancelled_during_the_tls_handshake_inside_a_tunnel(
    client_tls: ssl.SSLContext,
) -> None:
    """The origin never answers the ClientHello; cancelling closes the tunnel at once."""

    hello = anyio.Event()

    async def silent(number: int, stream: ByteStream) -> None:
        await stream.receive()  # the ClientHello, through the tunnel
        hello.set()
        await read_request(stream)  # never a blank line: waits for the close

    async with serving(silent) as (origin, _):
        proxy = Proxy(origin.port)
        async with serving(proxy) as (proxied, _):
            client = transport(proxy=f"http://127.0.0.1:{proxied.port}", ssl_context=client_tls)
            try:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(get, client, "https://chat.example/x")
                        with anyio.fail_after(PATIENCE):
                            await hello.wait()
                        scope.cancel()
                await until(lambda: proxied.open == 0 and origin.open == 0)
            finally:
                await client.aclose()
