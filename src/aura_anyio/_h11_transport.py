"""A lean HTTP/1.1 transport for httpx, on AnyIO streams and h11.

httpcore's pool does bookkeeping on every request that grows with the pool (encode/httpcore
PR #1035), reads bodies through nested async generators (encode/httpx#3686) and loses slots
to cancellation (encode/httpcore#1093). This transport keeps a stack of idle connections per
origin and nothing else: the AuraClient's semaphore bounds the connections in use, a
connection is either idle in the pool or owned by one response, and a response that is not
read to its end closes its connection. Bodies are read by a plain async iterator.

Errors are raised as httpx's own exceptions, chained to their cause, so that ``_http``
translates them as it does httpx's.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import typing
from collections import defaultdict

import anyio
import h11
import httpx

if typing.TYPE_CHECKING:
    from collections.abc import Generator

    from anyio.abc import ByteStream

__all__ = ["H11Transport"]

READ_SIZE = 65536
# How long an idle connection is kept for the next request.
KEEPALIVE_EXPIRY = 5.0

Origin = tuple[str, str, int]


@contextlib.contextmanager
def _mapped(
    timeout: type[httpx.TimeoutException], broken: type[httpx.TransportError]
) -> Generator[None, None, None]:
    """Raise httpx's exception for what AnyIO, the OS, TLS or h11 raised."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc)) from exc
    except (
        OSError,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,  # the transport was closed under a response
        anyio.EndOfStream,
        ssl.SSLError,
    ) as exc:
        raise broken(str(exc) or type(exc).__name__) from exc


@typing.final
class _Connection:
    """One HTTP/1.1 connection: an AnyIO byte stream and the h11 state machine over it."""

    __slots__ = ("h11", "idle_since", "origin", "stream")

    def __init__(self, origin: Origin, stream: ByteStream) -> None:
        self.origin: Origin = origin
        self.stream: ByteStream = stream
        self.h11: h11.Connection = h11.Connection(h11.CLIENT)
        self.idle_since: float = 0.0

    async def next_event(self, read_timeout: float | None) -> object:
        """The next event from the server, reading more as h11 needs."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            with anyio.fail_after(read_timeout):
                try:
                    data = await self.stream.receive(READ_SIZE)
                except anyio.EndOfStream:
                    if self.h11.their_state is h11.SEND_RESPONSE:
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response."
                        ) from None
                    data = b""  # h11 ends a close-delimited body, or reports a cut one
            self.h11.receive_data(data)

    def reusable(self) -> bool:
        """Whether the connection sits at a clean request boundary, with nothing unasked for."""
        return (
            self.h11.our_state is h11.DONE
            and self.h11.their_state is h11.DONE
            and not self.h11.trailing_data[0]
        )

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


@typing.final
class _Body(httpx.AsyncByteStream):
    """A response body read from its connection; the connection goes back to the pool at
    the end of the body, or is closed if the body is left unread."""

    def __init__(self, transport: H11Transport, connection: _Connection, timeout: float | None):
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = timeout

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        try:
            with _mapped(httpx.ReadTimeout, httpx.ReadError):
                event = await connection.next_event(self._timeout)
        except BaseException:
            await self.aclose()
            raise
        if isinstance(event, h11.Data):
            return bytes(event.data)
        # EndOfMessage: h11 reports a body cut short as a protocol error, not as an event.
        self._connection = None
        await self._transport.release(connection)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._transport.discard(connection)


@typing.final
class H11Transport(httpx.AsyncBaseTransport):
    """An httpx transport for HTTP/1.1 on AnyIO; see the module docstring.

    Args:
        ssl_context: The context for ``https://`` origins.
        max_idle: The most idle connections kept, across origins.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext, max_idle: int) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle: defaultdict[Origin, list[_Connection]] = defaultdict(list)
        self._idle_count = 0
        self._active: set[_Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        # raw_host is the ASCII (IDNA) form, which DNS and TLS want.
        default_port = 443 if url.scheme == "https" else 80
        origin: Origin = (url.scheme, url.raw_host.decode("ascii"), url.port or default_port)
        connection = await self._take(origin, timeouts.get("connect"))
        try:
            head = await self._exchange_head(connection, request, timeouts)
        except BaseException:
            # No transparent retry, even on a reused connection: the server may have the
            # request already, and the client's own retry policy decides.
            await self.discard(connection)
            raise
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason},
        )

    async def _exchange_head(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> h11.Response:
        conn = connection.h11
        with _mapped(httpx.WriteTimeout, httpx.WriteError), anyio.fail_after(timeouts.get("write")):
            head = h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
            await connection.stream.send(conn.send(head))
            # httpx gives an async client's transport an async stream.
            async for chunk in typing.cast("httpx.AsyncByteStream", request.stream):
                await connection.stream.send(conn.send(h11.Data(data=chunk)))
            await connection.stream.send(conn.send(h11.EndOfMessage()))
        with _mapped(httpx.ReadTimeout, httpx.ReadError):
            while True:
                event = await connection.next_event(timeouts.get("read"))
                if isinstance(event, h11.Response):
                    return event
                if event is h11.PAUSED:  # after a 101: h11 would stay paused for good
                    raise httpx.RemoteProtocolError(
                        "the server switched protocols, which this client does not speak"
                    )
                # An interim 1xx response: the real one follows.

    async def _take(self, origin: Origin, timeout: float | None) -> _Connection:
        if self._closed:
            raise RuntimeError("the transport is closed")
        idle = self._idle[origin]
        now = anyio.current_time()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if now - connection.idle_since < KEEPALIVE_EXPIRY and _still_open(connection):
                self._active.add(connection)
                return connection
            await connection.aclose()
        connection = _Connection(origin, await self._connect(origin, timeout))
        self._active.add(connection)
        return connection

    async def _connect(self, origin: Origin, timeout: float | None) -> ByteStream:
        scheme, host, port = origin
        with _mapped(httpx.ConnectTimeout, httpx.ConnectError), anyio.fail_after(timeout):
            if scheme == "https":
                return await anyio.connect_tcp(
                    host,
                    port,
                    ssl_context=self._ssl_context,
                    tls_hostname=host,
                    tls_standard_compatible=False,
                )
            return await anyio.connect_tcp(host, port)

    async def release(self, connection: _Connection) -> None:
        """Take a connection back after a whole response: keep it idle, or close it."""
        self._active.discard(connection)
        if self._closed or not connection.reusable():
            await connection.aclose()
            return
        connection.h11.start_next_cycle()
        connection.idle_since = anyio.current_time()
        self._idle[connection.origin].append(connection)
        self._idle_count += 1
        if self._idle_count > self._max_idle:
            await self._close_oldest_idle()

    async def discard(self, connection: _Connection) -> None:
        """Close a connection whose response was not read to its end."""
        self._active.discard(connection)
        await connection.aclose()

    async def _close_oldest_idle(self) -> None:
        oldest = min(
            (stack[0] for stack in self._idle.values() if stack), key=lambda c: c.idle_since
        )
        self._idle[oldest.origin].remove(oldest)
        self._idle_count -= 1
        await oldest.aclose()

    async def aclose(self) -> None:
        self._closed = True
        connections = [c for stack in self._idle.values() for c in stack] + list(self._active)
        self._idle.clear()
        self._idle_count = 0
        self._active.clear()
        for connection in connections:
            await connection.aclose()


def _still_open(connection: _Connection) -> bool:
    """Whether an idle connection's peer has not closed it (a closed socket reads as ready).

    An idle HTTP/1.1 connection has nothing to read: anything there is a close, or junk.
    """
    raw = connection.stream.extra(anyio.abc.SocketAttribute.raw_socket)
    try:
        if hasattr(select, "poll"):  # select() fails on descriptors from 1024 up
            poller = select.poll()
            poller.register(raw, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([raw], [], [], 0)
    except (OSError, ValueError):
        return False  # when in doubt, a new connection
    return not readable
