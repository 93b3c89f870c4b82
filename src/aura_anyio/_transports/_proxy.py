"""Tunnels through an HTTP proxy, for the default transport (RFC 9110 section 9.3.6).

Every connection through an ``http://`` or ``https://`` proxy is a tunnel opened with
``CONNECT``, for ``http://`` origins too; TLS to the origin runs inside it. The proxy's URL may
carry credentials: they go in ``Proxy-Authorization`` and never in a message.
"""

from __future__ import annotations

import base64
import ssl
import typing
from urllib.parse import unquote, urlsplit

import anyio

from .._http11 import RemoteProtocolError, parse_head
from .base import ProxyError

if typing.TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import ByteStream

    from .._http11 import Head

__all__ = ["MAX_PROXY_HEAD", "HTTPProxy", "ascii_host"]

# A proxy's answer to CONNECT is a head only; more than this is not a proxy.
MAX_PROXY_HEAD = 16384


def ascii_host(host: str) -> str:
    """``host`` as it goes on the wire: IDNA-encoded if it is not ASCII."""
    if host.isascii():
        return host
    import idna  # httpx's IDNA 2008 library, needed only for a host that is not ASCII

    return str(idna.encode(host, uts46=True).decode("ascii"))


@typing.final
class HTTPProxy:
    """An HTTP proxy that opens tunnels with ``CONNECT``."""

    __slots__ = ("_authorization", "_host", "_port", "_shown", "_tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._tls = parts.scheme == "https"
        self._host = ascii_host(parts.hostname or "")
        self._port = parts.port or (443 if self._tls else 80)
        shown = f"[{self._host}]" if ":" in self._host else self._host
        self._shown = f"{parts.scheme}://{shown}:{self._port}"  # never the credentials
        self._authorization = b""
        if parts.username is not None or parts.password is not None:
            credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            token = base64.b64encode(credentials.encode()).decode("ascii")
            # Spelled as RFC 9110 does: some proxies (pproxy) match the name case-sensitively.
            self._authorization = f"Proxy-Authorization: Basic {token}\r\n".encode()

    async def tunnel(
        self, host: str, port: int, ssl_context: Callable[[], ssl.SSLContext]
    ) -> ByteStream:
        """A stream to ``host:port`` through the proxy; ``ssl_context()`` is called only for
        an ``https://`` proxy.

        Raises:
            ProxyError: The proxy answered ``CONNECT`` with anything but 2xx.
        """
        try:
            if self._tls:
                stream: ByteStream = await anyio.connect_tcp(
                    self._host,
                    self._port,
                    ssl_context=ssl_context(),
                    tls_hostname=self._host,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(self._host, self._port)
        except OSError as exc:
            if isinstance(exc, ssl.SSLError):  # the proxy's certificate: said as such
                raise
            # The proxy may come from the environment: say it was the proxy that failed.
            raise ProxyError(f"could not connect to the proxy {self._shown}: {exc}") from exc
        try:
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            await stream.send(
                b"CONNECT %s HTTP/1.1\r\nhost: %s\r\n%s\r\n"
                % (authority.encode(), authority.encode(), self._authorization)
            )
            head, extra = await self._read_head(stream)
            if not 200 <= head.status_code < 300:
                # A refusal may come with a body (an error page): the status says it all.
                raise ProxyError(
                    f"the proxy answered CONNECT with {head.status_code} {head.reason}".rstrip(),
                    refused=head.status_code == 407,
                )
            if extra:  # the origin speaks only after the client has
                raise RemoteProtocolError("the proxy sent bytes after its answer to CONNECT")
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        return stream

    @staticmethod
    async def _read_head(stream: ByteStream) -> tuple[Head, bytes]:
        """The proxy's answer to CONNECT, and any bytes that came after it."""
        buffer = b""
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_PROXY_HEAD:
                raise RemoteProtocolError("the proxy's answer to CONNECT is too long")
            try:
                buffer += await stream.receive(MAX_PROXY_HEAD)
            except anyio.EndOfStream:
                raise ProxyError("the proxy closed the connection during CONNECT") from None
        return parse_head(buffer[:end]), buffer[end + 4 :]
