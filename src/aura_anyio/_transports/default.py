"""The default transport: HTTP/1.1 on AnyIO streams, parsed by ``_http11``, with a pool.

httpcore's pool does bookkeeping on every request that grows with the pool (encode/httpcore
PR #1035), reads bodies through nested async generators (encode/httpx#3686) and loses slots
to cancellation (encode/httpcore#1093); httpx builds ``Request`` and ``Response`` objects the
client does not need, and h11 parses a body one chunk at a time. This transport keeps a
stack of idle connections per origin and nothing else: the client bounds the connections in
use, a connection is either idle in the pool or owned by one response, and a response that
is not read to its end closes its connection. A body is read by a plain async iterator that
returns everything that has arrived at once.

An ``http://`` connection without a proxy is an ``_asyncio_stream`` on asyncio (and uvloop)
and a ``_trio_stream`` on Trio, instead of AnyIO's socket stream alone: the same bytes for a
fraction of the cost per chunk read, and a read timeout that enters no cancel scope.

Through an ``http://`` or ``https://`` proxy, each connection is a tunnel (``_proxy``). Errors
are the neutral ones of ``base``, mapped here once (:func:`_neutral`).
"""

from __future__ import annotations

import functools
import select
import ssl
import typing
from collections import defaultdict
from urllib.parse import quote, urlsplit

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from .._deadlines import DeadlineExpired, deadline_after, run_until
from .._http11 import (
    RemoteProtocolError,
    ResponseParser,
    encode_request,
    request_prefix,
)
from ._asyncio_stream import AsyncioStream, connect as asyncio_connect, on_asyncio
from ._proxy import HTTPProxy, ascii_host
from .base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    ProtocolError,
    ReadTimeout,
    TransportClosed,
    TransportError,
    WriteTimeout,
)

if typing.TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable, Mapping

    from anyio.abc import ByteStream

    from .._http11 import Head
    from .base import Request

__all__ = ["AnyIOResponse", "AnyIOTransport", "Origin", "Route", "make_ssl_context"]

READ_SIZE = 65536
# How long an idle connection is kept for the next request.
# Below the 5 s that uvicorn (vLLM's server) and others keep an idle connection: reused at the
# same moment the server closes it, a request would fail.
KEEPALIVE_EXPIRY = 4.0
# A proxy's answer to CONNECT is a head only; more than this is not a proxy.

Origin = tuple[str, str, int]
_A = typing.TypeVar("_A")
_T = typing.TypeVar("_T")
# What a request target may carry unescaped (RFC 3986 pchar and "/"); "%" keeps what the URL
# had escaped already.
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~"

# What the OS, TLS and AnyIO raise when a connection breaks or was closed under a response
# (TimeoutError is an OSError).
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError)
_FAILURES = (RemoteProtocolError, DeadlineExpired, *_BROKEN)


def _neutral(
    exc: Exception, timeout: type[TransportError], broken: type[TransportError]
) -> TransportError:
    """The neutral error for one of :data:`_FAILURES`, in a stage with these two classes."""
    if isinstance(exc, (TimeoutError, DeadlineExpired)):
        return timeout(str(exc) or "timed out")
    if isinstance(exc, RemoteProtocolError):
        return ProtocolError(str(exc))
    current: BaseException | None = exc
    while current is not None:  # anyio may chain the TLS failure under its own error
        if isinstance(current, ssl.SSLCertVerificationError):
            return CertificateError(current.verify_message or current.reason or str(current))
        current = current.__cause__ or current.__context__
    return broken(str(exc) or type(exc).__name__)


def make_ssl_context(verify: bool | ssl.SSLContext) -> ssl.SSLContext:
    """The client-side TLS context for ``verify``: the system's CAs, yours, or none."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


@typing.final
class Route:
    """Where requests to one URL go: the origin, the request target and the Host header.

    Args:
        url: An absolute ``http://`` or ``https://`` URL without credentials.
    """

    __slots__ = ("host", "origin", "target")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = ascii_host(parts.hostname or "")
        default_port = 443 if scheme == "https" else 80
        port = parts.port or default_port
        self.origin: Origin = (scheme, host, port)
        # Only what cannot travel in a request line is escaped; what is escaped stays so.
        path = quote(parts.path or "/", safe=_TARGET_SAFE)
        query = f"?{quote(parts.query, safe=_TARGET_SAFE + '?')}" if parts.query else ""
        self.target: bytes = (path + query).encode("ascii")
        shown = f"[{host}]" if ":" in host else host
        self.host: str = shown if port == default_port else f"{shown}:{port}"


@typing.final
class _Connection:
    """One HTTP/1.1 connection: an AnyIO byte stream and the parser of its current response."""

    __slots__ = (
        "idle_since",
        "origin",
        "parser",
        "poller",
        "read",
        "stream",
        "write",
    )

    def __init__(self, origin: Origin, stream: ByteStream) -> None:
        self.origin: Origin = origin
        self.stream: ByteStream = stream
        self.parser: ResponseParser = ResponseParser()
        self.idle_since: float = 0.0
        # Made once: the idle check runs before every reuse of the connection.
        self.poller: select.poll | None = _poller(stream)
        # read(read_timeout, max_bytes) and write(write_timeout, data): our own streams'
        # receive_within and send_within (AsyncioStream, TrioStream: timeouts with no cancel
        # scope), else AnyIO's receive and send under a deadline; chosen once, not per call.
        own_read: Callable[[float | None, int], Awaitable[bytes]] | None = getattr(
            stream, "receive_within", None
        )
        self.read = own_read or functools.partial(_within_deadline, stream.receive)
        own_write: Callable[[float | None, bytes], Awaitable[None]] | None = getattr(
            stream, "send_within", None
        )
        self.write = own_write or functools.partial(_within_deadline, stream.send)

    async def receive(self, read_timeout: float | None) -> None:
        """Give the parser what the server sends next (or the end of the stream)."""
        try:
            data = await self.read(read_timeout, READ_SIZE)
        except anyio.EndOfStream:
            self.parser.feed_eof()
        else:
            self.parser.feed(data)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


@typing.final
class AnyIOResponse:
    """A response's head, and its body as an async iterator of the bytes that have arrived.

    The connection goes back to the pool at the end of the body, or is closed by
    :meth:`aclose` if the body was left unread.
    """

    __slots__ = ("_connection", "_timeout", "_transport", "headers", "reason", "status_code")

    def __init__(
        self, transport: AnyIOTransport, connection: _Connection, head: Head, timeout: float | None
    ) -> None:
        self.status_code: int = head.status_code
        self.reason: str = head.reason
        self.headers: dict[str, str] = head.headers
        self._transport: AnyIOTransport = transport
        self._connection: _Connection | None = connection
        self._timeout: float | None = timeout

    def __aiter__(self) -> AnyIOResponse:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        parser = connection.parser
        read = connection.read
        try:
            data = parser.read_body()
            while not data and not parser.done:
                try:  # connection.receive() written out: a coroutine fewer per token
                    parser.feed(await read(self._timeout, READ_SIZE))
                except anyio.EndOfStream:
                    parser.feed_eof()
                data = parser.read_body()
        except _FAILURES as exc:
            await self.aclose()
            raise _neutral(exc, ReadTimeout, NetworkError) from exc
        except BaseException:
            await self.aclose()
            raise
        if parser.done:  # back to the pool at once, not when the caller asks for more
            self._connection = None
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
            await self._transport.release(connection)
        else:
            await self._transport.discard(connection)


@typing.final
class AnyIOTransport:
    """HTTP/1.1 on AnyIO, with a pool of idle connections; see the module docstring.

    Args:
        verify: For ``https://`` origins (and an ``https://`` proxy): check certificates
            against the system's CAs (``True``), not at all (``False``), or your context.
        max_idle: The most idle connections kept, across origins.
        proxy: An ``http://`` or ``https://`` proxy URL, credentials and all, or ``None``.
    """

    def __init__(
        self, *, verify: bool | ssl.SSLContext, max_idle: int, proxy: str | None = None
    ) -> None:
        self._verify = verify
        # Made at the first TLS connection: loading the system's CAs takes tens of
        # milliseconds, most of what making a client cost, which http:// never needs.
        self._tls: ssl.SSLContext | None = None
        self._max_idle: int = max_idle
        self._proxy: HTTPProxy | None = None if proxy is None else HTTPProxy(proxy)
        self._idle: defaultdict[Origin, list[_Connection]] = defaultdict(list)
        self._idle_count: int = 0
        self._active: set[_Connection] = set()
        self._closed: bool = False
        # Per URL: the route, and the request head for the headers it was built from; a
        # client sends one headers mapping with every request, so it is built once.
        self._routes: dict[str, tuple[Route, Mapping[str, str], bytes]] = {}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = make_ssl_context(self._verify)
        return self._tls

    def _prefix(self, request: Request) -> tuple[Route, bytes]:
        cached = self._routes.get(request.url)
        if cached is not None and cached[1] is request.headers:
            return cached[0], cached[2]
        route = Route(request.url) if cached is None else cached[0]
        prefix = request_prefix(request.method, route.target, route.host, dict(request.headers))
        self._routes[request.url] = (route, request.headers, prefix)
        return route, prefix

    async def send(self, request: Request) -> AnyIOResponse:
        """Send ``request`` and return the response once its head has arrived.

        Reading the body is the caller's to do, or to abandon with ``aclose()``. A request
        is never sent twice, even when a reused connection turns out to be closed: the
        server may have it already, and the client's own retry policy decides.
        """
        if self._closed:
            raise TransportClosed("the transport is closed")
        route, prefix = self._prefix(request)
        read_timeout = request.read_timeout
        connection = await self._take(route.origin, request.connect_timeout)
        try:
            try:  # writing is bounded like reading
                await connection.write(read_timeout, encode_request(prefix, request.content))
            except _FAILURES as exc:
                raise _neutral(exc, WriteTimeout, NetworkError) from exc
            try:
                parser = connection.parser
                head = parser.head()
                while head is None:
                    await connection.receive(read_timeout)
                    head = parser.head()
            except _FAILURES as exc:
                raise _neutral(exc, ReadTimeout, NetworkError) from exc
        except BaseException:
            await self.discard(connection)
            raise
        return AnyIOResponse(self, connection, head, read_timeout)

    async def _take(self, origin: Origin, connect_timeout: float | None) -> _Connection:
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
            stream = await run_until(deadline_after(connect_timeout), self._connect, origin)
        except _FAILURES as exc:
            raise _neutral(exc, ConnectTimeout, ConnectError) from exc
        connection = _Connection(origin, stream)
        self._active.add(connection)
        return connection

    async def _connect(self, origin: Origin) -> ByteStream:
        scheme, host, port = origin
        if self._proxy is None:
            if scheme == "https":
                return await anyio.connect_tcp(
                    host,
                    port,
                    ssl_context=self._ssl_context(),
                    tls_hostname=host,
                    tls_standard_compatible=False,
                )
            if on_asyncio():
                return await asyncio_connect(host, port)
            from ._trio_stream import TrioStream  # imports Trio: only here, on Trio

            return TrioStream(await anyio.connect_tcp(host, port))
        stream = await self._proxy.tunnel(host, port, self._ssl_context)
        if scheme == "https":
            try:
                return await TLSStream.wrap(
                    stream,
                    hostname=host,
                    ssl_context=self._ssl_context(),
                    standard_compatible=False,
                )
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        return stream

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


def _within_deadline(
    func: Callable[[_A], Awaitable[_T]], timeout: float | None, argument: _A
) -> Awaitable[_T]:
    """``func(argument)`` (an AnyIO stream's ``receive`` or ``send``), cancelled after
    ``timeout`` seconds (``DeadlineExpired``)."""
    return run_until(deadline_after(timeout), func, argument)


def _poller(stream: ByteStream) -> select.poll | None:
    """A poll object watching the stream's socket for input, or ``None`` without poll()."""
    if not hasattr(select, "poll"):  # Windows has select() only
        return None
    poller = select.poll()
    poller.register(_raw_socket(stream), select.POLLIN)
    return poller


def _raw_socket(stream: ByteStream) -> socket.socket:
    own: socket.socket | None = getattr(stream, "raw_socket", None)  # AsyncioStream, TrioStream
    return own if own is not None else stream.extra(anyio.abc.SocketAttribute.raw_socket)


def _still_open(connection: _Connection) -> bool:
    """Whether an idle connection's peer has not closed it (a closed socket reads as ready).

    An idle HTTP/1.1 connection has nothing to read: anything there is a close, or junk.
    """
    stream = connection.stream
    if type(stream) is AsyncioStream and not stream.quiet:  # the loop has read it already
        return False
    try:
        if connection.poller is not None:  # select() fails on descriptors from 1024 up
            return not connection.poller.poll(0)
        readable, _, _ = select.select([_raw_socket(stream)], [], [], 0)
    except (OSError, ValueError):
        return False  # when in doubt, a new connection
    return not readable
