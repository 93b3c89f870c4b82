"""How bytes move: the sender an AuraClient owns.

Without a proxy, the lean :class:`LeanTransport` (AnyIO and ``_http1``) does the work. Through a
proxy (given, or from the environment), httpx's own transport does, and three httpcore 1.0.9
bugs are guarded here:

- A request cancelled while it waits for a pooled connection can leave a new connection
  stuck in the pool for good, holding a slot (encode/httpcore#1093, open). The client admits
  at most ``max_connections`` requests with its own semaphore (on either transport), so none
  waits inside httpcore,
  and httpcore's pool gets no connection limit: the stray object the race can still leave
  holds no socket and blocks no one.
- Cancelling a TLS handshake leaks the TCP socket: ``start_tls`` closes it on ``Exception``
  only, and cancellation is not one. :class:`_GuardedBackend` closes it.
- httpcore's DEBUG log of a SOCKS5 handshake prints the proxy's user name and password;
  :class:`_HideSocksAuth` cuts them out of the record.
"""

from __future__ import annotations

import logging
import os
import re
import typing

import anyio
import httpcore
import httpx

from ._http import HttpxReply
from ._http1 import encode_request
from ._lean_transport import LeanTransport, Route

if typing.TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Iterable, Iterator

    from ._http import Reply
    from ._models import Timeouts

__all__ = [
    "HttpxSender",
    "LeanSender",
    "RequestBody",
    "Sender",
    "hide_socks_credentials",
    "make_sender",
]

_SOCKS_AUTH = re.compile(r"\bauth=.*")


class _HideSocksAuth(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "auth=" in record.msg:
            record.msg = _SOCKS_AUTH.sub("auth=<hidden>", record.msg)
        return True


_SOCKS_LOG_FILTER = _HideSocksAuth()


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


@typing.final
class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own network backend, handing out :class:`_GuardedStream`s."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

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


def _guard(transport: object) -> None:
    # httpx keeps its httpcore pool in ``_pool``, and httpcore its backend in
    # ``_network_backend``; if a release renames either, the guard is skipped, not the request.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(
        backend, _GuardedBackend
    ):
        pool._network_backend = _GuardedBackend(backend)  # type: ignore[union-attr]


def _environment_proxies() -> bool:
    """Whether httpx would route through a proxy named in the environment."""
    names = ("http_proxy", "https_proxy", "all_proxy")
    return any(value for name, value in os.environ.items() if name.lower() in names)


def hide_socks_credentials() -> None:
    """Cut SOCKS5 credentials out of httpcore's DEBUG log records, from now on; idempotent.

    The filter sits on the ``httpcore.socks`` logger, so it also covers a borrowed client.
    """
    socks_logger = logging.getLogger("httpcore.socks")
    if _SOCKS_LOG_FILTER not in socks_logger.filters:
        socks_logger.addFilter(_SOCKS_LOG_FILTER)


@typing.final
class LeanSender:
    """Sends a client's requests on its own :class:`LeanTransport`, skipping httpx."""

    def __init__(self, transport: LeanTransport, route: Route, timeouts: Timeouts) -> None:
        self._transport: LeanTransport = transport
        self._route: Route = route
        self._timeouts: Timeouts = timeouts

    @property
    def is_closed(self) -> bool:
        """Whether the transport has been closed."""
        return self._transport.is_closed

    async def send(self, body: bytes) -> Reply:
        """Post ``body``; return the response once its head has arrived."""
        return await self._transport.send(
            self._route.origin,
            encode_request(self._route.prefix, body),
            connect_timeout=self._timeouts.connect,
            read_timeout=self._timeouts.read,
        )

    async def aclose(self) -> None:
        """Close every connection."""
        await self._transport.aclose()


@typing.final
class HttpxSender:
    """Sends a client's requests through an httpx client: behind a proxy, or one lent to it."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str], timeouts: Timeouts
    ) -> None:
        self.http: httpx.AsyncClient = http
        self._url: str = url
        self._headers: dict[str, str] = headers
        self._timeout: httpx.Timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.connect
        )

    @property
    def is_closed(self) -> bool:
        """Whether the httpx client has been closed."""
        return self.http.is_closed

    async def send(self, body: bytes) -> Reply:
        """Post ``body``; return the response once its head has arrived."""
        request = self.http.build_request(
            "POST", self._url, content=body, headers=self._headers, timeout=self._timeout
        )
        request.stream = RequestBody(body)  # keeps the Content-Length just set
        return HttpxReply(await self.http.send(request, stream=True, follow_redirects=False))

    async def aclose(self) -> None:
        """Close the httpx client."""
        await self.http.aclose()


Sender = LeanSender | HttpxSender


def make_sender(
    *,
    url: str,
    headers: dict[str, str],
    timeouts: Timeouts,
    proxy: str | None,
    verify: bool | ssl.SSLContext,
    max_connections: int,
) -> Sender:
    """Return the sender an AuraClient owns: on the lean transport, unless there is a proxy.

    Through a proxy (given, or from the environment) httpx's own transport does the work,
    with the guards above in place.

    Raises:
        ImportError: ``proxy`` is a SOCKS proxy and socksio is not installed.
    """
    if proxy is None and not _environment_proxies():
        # The common case: no proxy, so neither httpx's models nor httpcore (see _lean_transport).
        lean = LeanTransport(
            ssl_context=httpx.create_ssl_context(verify=verify), max_idle=max_connections
        )
        return LeanSender(lean, Route(url, headers), timeouts)
    client = httpx.AsyncClient(
        proxy=proxy,
        verify=verify,
        follow_redirects=False,
        # The AuraClient's semaphore is the limit (see the module docstring).
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_connections),
    )
    # Proxies, including those from the environment, are mounted transports of their own.
    mounts = getattr(client, "_mounts", None)
    mounted = typing.cast("dict[object, object]", mounts) if isinstance(mounts, dict) else {}
    for pooled in (getattr(client, "_transport", None), *mounted.values()):
        _guard(pooled)
    return HttpxSender(client, url, headers, timeouts)
