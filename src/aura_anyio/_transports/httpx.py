"""The httpx adapter: a borrowed ``httpx.AsyncClient``, or an owned pool for SOCKS proxies.

Imported only when used (``http_client=``, or a ``socks5://`` proxy): ``import aura_anyio``
and a request on the default transport load neither httpx nor httpcore. This module maps
httpx's and httpcore's errors to the neutral ones of ``base``, once (:func:`_neutral`), and
guards against httpcore 1.0.9's bugs:

- A request cancelled while it waits for a pooled connection can leave a new connection
  stuck in the pool for good, holding a slot (encode/httpcore#1093, open). The client admits
  at most ``max_connections`` attempts to each server itself (``_endpoints.Endpoints``), so
  none waits inside httpcore, and the owned pool has no connection limit.
- Cancelling a TLS handshake leaks the TCP socket: ``start_tls`` closes it on ``Exception``
  only. The owned pool is built with a network backend (:class:`_GuardedBackend`) that
  closes it.
- httpcore's DEBUG log of a SOCKS5 handshake prints the proxy's user name and password; a
  filter on the ``httpcore.socks`` logger cuts them out, for borrowed clients too.
- socksio's ``ProtocolError`` escapes httpcore unwrapped when a proxy hangs up during the
  SOCKS5 handshake.
- httpx reads a body through nested async generators that closing the response leaves
  half-way; Trio warns about each (encode/httpx#3686). :func:`close_response` ends them.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import re
import ssl
import typing

import anyio
import httpcore
import httpx

from .base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    TransportClosed,
    TransportError,
    TransportTimeout,
    WriteTimeout,
)

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping

    from .base import Request

__all__ = ["HttpxResponse", "HttpxTransport", "RequestBody", "close_response", "socks_transport"]

# httpcore reads 64 KiB at a time, and each chunk left in h11's buffer holds at least a byte.
LEFTOVER_CHUNKS = 65536
_PROXY_REFUSED = re.compile(r"\b407\b|username/password|authentication", re.IGNORECASE)
_SOCKS_AUTH = re.compile(r"\bauth=.*")


class _HideSocksAuth(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "auth=" in record.msg:
            record.msg = _SOCKS_AUTH.sub("auth=<hidden>", record.msg)
        return True


def hide_socks_credentials() -> None:
    """Cut SOCKS5 credentials out of httpcore's DEBUG log records, from now on; idempotent."""
    socks_logger = logging.getLogger("httpcore.socks")
    if not any(isinstance(f, _HideSocksAuth) for f in socks_logger.filters):
        socks_logger.addFilter(_HideSocksAuth())


def _socks_errors() -> tuple[type[Exception], ...]:
    try:
        module = importlib.import_module("socksio.exceptions")
    except ImportError:
        return ()
    return (typing.cast("type[Exception]", module.ProtocolError),)


_SOCKS_ERRORS = _socks_errors()
# What httpx and httpcore raise besides cancellation; httpcore's errors have no common base.
_FAILURES: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpcore.ConnectionNotAvailable,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.TimeoutException,
    httpcore.UnsupportedProtocol,
    *_SOCKS_ERRORS,
)
# The neutral class for each of httpx's and httpcore's, most specific first.
_NEUTRAL: tuple[tuple[tuple[type[Exception], ...], type[TransportError]], ...] = (
    ((httpx.ConnectTimeout, httpcore.ConnectTimeout), ConnectTimeout),
    ((httpx.ReadTimeout, httpcore.ReadTimeout), ReadTimeout),
    ((httpx.WriteTimeout, httpcore.WriteTimeout), WriteTimeout),
    ((httpx.PoolTimeout, httpcore.PoolTimeout), PoolTimeout),
    ((httpx.TimeoutException, httpcore.TimeoutException), TransportTimeout),
    (
        (
            httpx.ConnectError,
            httpcore.ConnectError,
            httpx.UnsupportedProtocol,
            httpcore.UnsupportedProtocol,
        ),
        ConnectError,
    ),
    ((httpx.RemoteProtocolError, httpcore.RemoteProtocolError), ProtocolError),
)


def _neutral(exc: Exception) -> TransportError:
    """The neutral error for one of :data:`_FAILURES`; the caller raises it ``from exc``."""
    detail = str(exc) or type(exc).__name__
    certificate = _certificate_error(exc)
    if certificate is not None:
        words = getattr(certificate, "verify_message", None) or getattr(certificate, "reason", None)
        return CertificateError(words or detail)
    if isinstance(exc, _SOCKS_ERRORS):
        return ProxyError(f"the SOCKS proxy handshake failed: {detail}")
    if isinstance(exc, (httpx.ProxyError, httpcore.ProxyError)):
        # httpcore's words for a proxy refusing the credentials (HTTP 407, or SOCKS5's
        # answers): asking again with the same ones cannot help.
        return ProxyError(detail, refused=_PROXY_REFUSED.search(detail) is not None)
    if isinstance(exc, (httpx.LocalProtocolError, httpcore.LocalProtocolError)):
        # Its text may quote a header value (a cookie, say), so it stays out of the message.
        return ProtocolError(f"the request could not be sent as valid HTTP ({type(exc).__name__})")
    for classes, neutral in _NEUTRAL:
        if isinstance(exc, classes):
            return neutral(detail)
    return NetworkError(detail)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind ``exc``, however httpx and httpcore chained it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@typing.final
class _GuardedStream(httpcore.AsyncNetworkStream):
    """A network stream whose TLS upgrade closes it when cancelled."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            upgraded = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise
        return _GuardedStream(upgraded)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


# The sockets the owned SOCKS pool opens during one request: httpcore 1.0.9 leaves a socket
# whose SOCKS5 handshake failed open (a refused password, a proxy hanging up), so the
# request closes them itself when it fails.
_OPENED: contextvars.ContextVar[list[httpcore.AsyncNetworkStream] | None] = contextvars.ContextVar(
    "_OPENED", default=None
)


@typing.final
class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO network backend, handing out :class:`_GuardedStream`s."""

    def __init__(self) -> None:
        # AnyIO's backend serves asyncio and Trio alike. httpcore defines a stand-in class of
        # that name when anyio is missing, which type checkers see too; anyio never is.
        self._backend = typing.cast("httpcore.AsyncNetworkBackend", httpcore.AnyIOBackend())

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        opened = _OPENED.get()
        if opened is not None:
            opened.append(stream)
        return _GuardedStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _GuardedStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


@typing.final
class _OneChunk:
    # A plain iterator, not an async generator: httpx's own request body is one, and Trio
    # reports it with a ResourceWarning when a request is cancelled while it is being sent.
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


@typing.final
class RequestBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body sent in one piece; it can be sent again, for a retry or a redirect."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._data,))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._data)


@typing.final
class _PoolBody(httpx.AsyncByteStream):
    """An httpcore response body as httpx's; its errors stay httpcore's, for :func:`_neutral`."""

    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        aclose: Callable[[], typing.Awaitable[object]] | None = getattr(
            self._stream, "aclose", None
        )
        if aclose is not None:
            await aclose()


@typing.final
class _SocksTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over a SOCKS5 pool that this module builds itself."""

    def __init__(self, proxy: str, *, ssl_context: ssl.SSLContext, max_idle: int) -> None:
        url = httpx.URL(proxy)
        auth = (url.username, url.password) if url.username or url.password else None
        self._pool = httpcore.AsyncSOCKSProxy(
            proxy_url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            proxy_auth=auth,
            ssl_context=ssl_context,
            max_connections=None,  # the client's admission is the limit (#1093, above)
            max_keepalive_connections=max_idle,
            network_backend=_GuardedBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        opened: list[httpcore.AsyncNetworkStream] = []
        token = _OPENED.set(opened)
        try:
            return await self._handle(request)
        except BaseException:
            with anyio.CancelScope(shield=True):
                for stream in opened:
                    await stream.aclose()
            raise
        finally:
            _OPENED.reset(token)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        response = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=typing.cast("typing.AsyncIterable[bytes]", request.stream),
                extensions=request.extensions,
            )
        )
        stream = typing.cast("typing.AsyncIterable[bytes]", response.stream)
        extensions = typing.cast("dict[str, object]", response.extensions)  # pyright: ignore[reportUnknownMemberType]
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PoolBody(stream),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


async def close_response(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close ``response``, then run ``chunks``, its body iterator, to its end.

    httpx and httpcore read a body through a chain of nested async generators, and closing
    the response does not close them; Trio reports each one collected half-way with a
    ResourceWarning (encode/httpx#3686). Once the response, and so its connection, is closed,
    reading on makes every generator of the chain end with the error of a closed connection.
    """
    await response.aclose()
    # Chunks already buffered come first, then the closed connection ends the chain; the
    # bound only guards against a body stream that ignores being closed.
    with contextlib.suppress(Exception):
        for _ in range(LEFTOVER_CHUNKS):
            await chunks.__anext__()


@typing.final
class HttpxResponse:
    """An httpx response as a ``base.Response``."""

    __slots__ = ("_chunks", "_finished", "_response", "headers", "reason", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response: httpx.Response = response
        self._finished: bool = False
        self.status_code: int = response.status_code
        # httpx decodes the reason phrase as ASCII, dropping what it cannot; HTTP allows
        # Latin-1 there (obs-text), and openchat-ui's upstream messages may use it.
        raw = response.extensions.get("reason_phrase")
        self.reason: str = (
            raw.decode("latin-1") if isinstance(raw, bytes) else response.reason_phrase
        )
        self.headers: Mapping[str, str] = dict(response.headers)
        # aiter_raw() skips httpx's decoder and re-chunker: the client asks for no content
        # coding, and refuses one it did not ask for.
        self._chunks: AsyncIterator[bytes] = (
            # A response built already read (a mock's httpx.Response(content=...)): its
            # stream is spent, its content is here.
            _OneChunk(response.content) if response.is_stream_consumed else response.aiter_raw()
        )

    def __aiter__(self) -> HttpxResponse:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            # An exhausted aiter_raw() has closed the response and ended every generator.
            self._finished = True
            raise
        except _FAILURES as exc:
            raise _neutral(exc) from exc

    async def aclose(self, *, linger: float = 0.0) -> None:
        """End the response; httpx cannot wait for the rest of a body, so ``linger`` is unused."""
        if not self._finished:
            self._finished = True
            await close_response(self._response, self._chunks)


@typing.final
class HttpxTransport:
    """Sends requests through an httpx client: one lent to the AuraClient, or a SOCKS pool.

    Args:
        client: The httpx client.
        owned: Whether :meth:`aclose` closes ``client`` (never for a borrowed one).
    """

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        hide_socks_credentials()
        self._client = client
        self._owned = owned
        self._timeouts: dict[tuple[float | None, float | None], httpx.Timeout] = {}

    def _timeout(self, request: Request) -> httpx.Timeout:
        key = (request.connect_timeout, request.read_timeout)
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read = key
            timeout = self._timeouts[key] = httpx.Timeout(
                connect=connect, read=read, write=read, pool=connect
            )
        return timeout

    async def send(self, request: Request) -> HttpxResponse:
        """Send ``request``; return the response once its head has arrived."""
        if self._client.is_closed:
            raise TransportClosed(
                "the httpx.AsyncClient lent to this AuraClient is closed"
                if not self._owned
                else "the transport is closed"
            )
        built = self._client.build_request(
            request.method,
            request.url,
            content=request.content,
            headers=dict(request.headers),
            timeout=self._timeout(request),
        )
        built.stream = RequestBody(request.content)  # keeps the Content-Length just set
        try:
            response = await self._client.send(built, stream=True, follow_redirects=False)
        except _FAILURES as exc:
            raise _neutral(exc) from exc
        return HttpxResponse(response)

    async def aclose(self) -> None:
        """Close the httpx client if it is this transport's own."""
        if self._owned:
            await self._client.aclose()


def socks_transport(proxy: str, *, verify: bool | ssl.SSLContext, max_idle: int) -> HttpxTransport:
    """An owned transport through the SOCKS5 proxy ``proxy``, with the guards above.

    Raises:
        ImportError: socksio (the ``socks`` extra) is not installed.
    """
    importlib.import_module("socksio")  # httpcore would fail only at the first request
    ssl_context = httpx.create_ssl_context(verify=verify)
    pool = _SocksTransport(proxy, ssl_context=ssl_context, max_idle=max_idle)
    client = httpx.AsyncClient(transport=pool, follow_redirects=False, trust_env=False)
    return HttpxTransport(client, owned=True)
