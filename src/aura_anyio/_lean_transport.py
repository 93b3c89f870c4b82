"""The lean HTTP/1.1 transport: AnyIO streams and the parser of ``_http1``.

httpcore's pool does bookkeeping on every request that grows with the pool (encode/httpcore
PR #1035), reads bodies through nested async generators (encode/httpx#3686) and loses slots
to cancellation (encode/httpcore#1093); httpx builds ``Request`` and ``Response`` objects the
client does not need, and h11 parses a body one chunk at a time. This transport keeps a
stack of idle connections per origin and nothing else: the AuraClient's semaphore bounds the
connections in use, a connection is either idle in the pool or owned by one response, and a
response that is not read to its end closes its connection. A body is read by a plain async
iterator that returns everything that has arrived at once.

Errors are raised as httpx's own exceptions, chained to their cause, so that ``_http``
translates them as it does httpx's.
"""

from __future__ import annotations

import select
import ssl
import typing
from collections import defaultdict

import anyio
import httpx

from ._http1 import ProtocolError, ResponseParser, request_prefix

if typing.TYPE_CHECKING:
    from anyio.abc import ByteStream

    from ._http1 import Head

__all__ = ["LeanResponse", "LeanTransport", "Route"]

READ_SIZE = 65536
# How long an idle connection is kept for the next request.
# Below the 5 s that uvicorn (vLLM's server) and others keep an idle connection: reused at the
# same moment the server closes it, a request would fail.
KEEPALIVE_EXPIRY = 4.0

Origin = tuple[str, str, int]

# What the OS, TLS and AnyIO raise when a connection breaks or was closed under a response.
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError)
# What _mapped() turns into httpx's exceptions (TimeoutError is an OSError).
_FAILURES = (ProtocolError, *_BROKEN)


def _mapped(
    exc: Exception, timeout: type[httpx.TimeoutException], broken: type[httpx.TransportError]
) -> httpx.TransportError:
    """httpx's exception for one of :data:`_FAILURES`."""
    if isinstance(exc, TimeoutError):
        return timeout(str(exc) or "timed out")
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(str(exc))
    return broken(str(exc) or type(exc).__name__)


@typing.final
class Route:
    """Where a client's requests go, worked out once per client: origin and request prefix.

    Args:
        url: The absolute URL requests are posted to.
        headers: The request headers, checked and without framing headers.
    """

    __slots__ = ("origin", "prefix")

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)  # IDNA, percent-encoding and default ports, as httpx does
        default_port = 443 if parsed.scheme == "https" else 80
        # raw_host is the ASCII (IDNA) form, which DNS and TLS want.
        self.origin: Origin = (
            parsed.scheme,
            parsed.raw_host.decode("ascii"),
            parsed.port or default_port,
        )
        self.prefix: bytes = request_prefix(
            "POST", parsed.raw_path, parsed.netloc.decode(), headers
        )


@typing.final
class _Connection:
    """One HTTP/1.1 connection: an AnyIO byte stream and the parser of its current response."""

    __slots__ = ("idle_since", "origin", "parser", "poller", "stream")

    def __init__(self, origin: Origin, stream: ByteStream) -> None:
        self.origin: Origin = origin
        self.stream: ByteStream = stream
        self.parser: ResponseParser = ResponseParser()
        self.idle_since: float = 0.0
        # Made once: the idle check runs before every reuse of the connection.
        self.poller: select.poll | None = _poller(stream)

    async def receive(self, timeout: float | None) -> None:
        """Give the parser what the server sends next (or the end of the stream)."""
        try:
            if timeout is None:
                data = await self.stream.receive(READ_SIZE)
            else:
                with anyio.fail_after(timeout):
                    data = await self.stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            self.parser.feed_eof()
        else:
            self.parser.feed(data)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


@typing.final
class LeanResponse:
    """A response's head, and its body as an async iterator of the bytes that have arrived.

    The connection goes back to the pool at the end of the body, or is closed by
    :meth:`aclose` if the body was left unread.
    """

    __slots__ = (
        "_connection",
        "_finished",
        "_timeout",
        "_transport",
        "headers",
        "reason",
        "status_code",
    )

    def __init__(
        self, transport: LeanTransport, connection: _Connection, head: Head, timeout: float | None
    ) -> None:
        self.status_code: int = head.status_code
        self.reason: str = head.reason
        self.headers: dict[str, str] = head.headers
        self._transport: LeanTransport = transport
        self._connection: _Connection | None = connection
        self._timeout: float | None = timeout
        self._finished: bool = False

    @property
    def finished(self) -> bool:
        """Whether the body was read to its end (the connection is back in the pool)."""
        return self._finished

    def __aiter__(self) -> LeanResponse:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        parser = connection.parser
        try:
            data = parser.read_body()
            while not data and not parser.done:
                await connection.receive(self._timeout)
                data = parser.read_body()
        except _FAILURES as exc:
            await self.aclose()
            raise _mapped(exc, httpx.ReadTimeout, httpx.ReadError) from exc
        except BaseException:
            await self.aclose()
            raise
        if parser.done:  # back to the pool at once, not when the caller asks for more
            self._connection = None
            self._finished = True
            await self._transport.release(connection)
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self, *, linger: float = 0.0) -> None:
        """Close the connection unless the body was read to its end; idempotent.

        The rest of the body is read and dropped if it has arrived already, or if it arrives
        within ``linger`` seconds (after an end marker the caller stopped at, the body's own
        end is a moment behind): then the connection is kept for the next request.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        parser = connection.parser
        try:
            while parser.read_body():  # what is buffered: no I/O
                pass
            if not parser.done and linger > 0:
                with anyio.move_on_after(linger):
                    while not parser.done:
                        await connection.receive(None)
                        while parser.read_body():
                            pass
        except _FAILURES:
            pass  # not reusable: discarded below
        if parser.done:
            self._finished = True
            await self._transport.release(connection)
        else:
            await self._transport.discard(connection)


@typing.final
class LeanTransport:
    """HTTP/1.1 on AnyIO, with a pool of idle connections; see the module docstring.

    Args:
        ssl_context: The context for ``https://`` origins.
        max_idle: The most idle connections kept, across origins.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext, max_idle: int) -> None:
        self._ssl_context: ssl.SSLContext = ssl_context
        self._max_idle: int = max_idle
        self._idle: defaultdict[Origin, list[_Connection]] = defaultdict(list)
        self._idle_count: int = 0
        self._active: set[_Connection] = set()
        self._closed: bool = False

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    async def send(
        self,
        origin: Origin,
        request: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> LeanResponse:
        """Send ``request`` (a whole HTTP/1.1 request) and return the response's head.

        Reading the body is the caller's to do, or to abandon with ``aclose()``. A request
        is never sent twice, even when a reused connection turns out to be closed: the
        server may have it already, and the client's own retry policy decides.
        """
        connection = await self._take(origin, connect_timeout)
        try:
            try:
                with anyio.fail_after(read_timeout):  # writing is bounded like reading
                    await connection.stream.send(request)
            except _FAILURES as exc:
                raise _mapped(exc, httpx.WriteTimeout, httpx.WriteError) from exc
            try:
                parser = connection.parser
                head = parser.head()
                while head is None:
                    await connection.receive(read_timeout)
                    head = parser.head()
            except _FAILURES as exc:
                raise _mapped(exc, httpx.ReadTimeout, httpx.ReadError) from exc
        except BaseException:
            await self.discard(connection)
            raise
        return LeanResponse(self, connection, head, read_timeout)

    async def _take(self, origin: Origin, timeout: float | None) -> _Connection:
        if self._closed:
            raise RuntimeError("the transport is closed")
        idle = self._idle[origin]
        now = anyio.current_time() if idle else 0.0
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if now - connection.idle_since < KEEPALIVE_EXPIRY and _still_open(connection):
                self._active.add(connection)
                return connection
            await connection.aclose()
        try:
            stream = await self._connect(origin, timeout)
        except _FAILURES as exc:
            raise _mapped(exc, httpx.ConnectTimeout, httpx.ConnectError) from exc
        connection = _Connection(origin, stream)
        self._active.add(connection)
        return connection

    async def _connect(self, origin: Origin, timeout: float | None) -> ByteStream:
        scheme, host, port = origin
        with anyio.fail_after(timeout):
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
        if self._closed or not connection.parser.reusable:
            await connection.aclose()
            return
        connection.parser = ResponseParser()
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
        """Close every connection, idle or in use; a response being read then fails."""
        self._closed = True
        connections = [c for stack in self._idle.values() for c in stack] + list(self._active)
        self._idle.clear()
        self._idle_count = 0
        self._active.clear()
        for connection in connections:
            await connection.aclose()


def _poller(stream: ByteStream) -> select.poll | None:
    """A poll object watching the stream's socket for input, or ``None`` without poll()."""
    if not hasattr(select, "poll"):  # Windows has select() only
        return None
    poller = select.poll()
    poller.register(stream.extra(anyio.abc.SocketAttribute.raw_socket), select.POLLIN)
    return poller


def _still_open(connection: _Connection) -> bool:
    """Whether an idle connection's peer has not closed it (a closed socket reads as ready).

    An idle HTTP/1.1 connection has nothing to read: anything there is a close, or junk.
    """
    try:
        if connection.poller is not None:  # select() fails on descriptors from 1024 up
            return not connection.poller.poll(0)
        raw = connection.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        readable, _, _ = select.select([raw], [], [], 0)
    except (OSError, ValueError):
        return False  # when in doubt, a new connection
    return not readable
