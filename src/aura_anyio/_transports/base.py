"""The transport seam: what the client asks of whatever moves its bytes.

A :class:`Transport` sends one :class:`Request` and returns a :class:`Response` once the
response's head has arrived; iterating the response gives its body as bytes arrive. Reading
the body to its end releases the response (its connection goes back to the pool, say);
``aclose()`` is only needed when the reader stops early, and closing twice is harmless.

Every transport raises these errors and no others (besides cancellation), mapping its own
library's errors to them once; the client maps them to the public errors in one place
(``_exchange``)::

    TransportError
    ├── ConnectError              could not connect
    │   ├── CertificateError      the server's TLS certificate is not trusted
    │   └── ProxyError            the proxy failed, or refused the credentials (.refused)
    ├── NetworkError              the connection broke while sending or receiving
    ├── ProtocolError             the response (or the request) is not valid HTTP/1.1
    ├── TransportTimeout          ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout
    └── TransportClosed           the transport was closed before the request

Nothing here does I/O: the protocols and errors are what transports and the client share.
"""

from __future__ import annotations

import dataclasses
import json
import typing

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

__all__ = [
    "CertificateError",
    "ConnectError",
    "ConnectTimeout",
    "NetworkError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadTimeout",
    "Request",
    "Response",
    "Transport",
    "TransportClosed",
    "TransportError",
    "TransportTimeout",
    "WriteTimeout",
]


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, as the client hands it to a transport.

    Attributes:
        method: ``"POST"``.
        url: The absolute URL, without credentials.
        headers: Lower-case names; the transport adds ``host`` and ``content-length``.
        content: The body.
        connect_timeout: Seconds to connect (TLS and proxy handshakes included), or ``None``.
        read_timeout: The longest silence while sending the request or reading the
            response, in seconds, or ``None``.
    """

    method: str
    url: str
    # Cookies, keys and the body are secrets: kept out of repr and tracebacks.
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    content: bytes = dataclasses.field(repr=False)
    connect_timeout: float | None = None
    read_timeout: float | None = None

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.content)


class Response(typing.Protocol):
    """A response whose head has arrived; its body is read by iterating it."""

    @property
    def status_code(self) -> int:
        """The status code."""
        ...

    @property
    def reason(self) -> str:
        """The reason phrase, decoded as Latin-1 (openchat-ui puts its error details there)."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names; repeated fields joined with ``", "``."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; raises :class:`TransportError` if it breaks."""
        ...

    async def aclose(self, *, linger: float = 0.0) -> None:
        """End the response at once; idempotent.

        Args:
            linger: Seconds to wait for the rest of the body, when that lets the connection
                serve another request (the caller stopped at an end marker of its own).
        """
        ...


class Transport(typing.Protocol):
    """Sends requests; ``AuraClient(transport=...)`` takes any object with these methods."""

    async def send(self, request: Request) -> Response:
        """Send ``request`` and return the response once its head has arrived.

        Raises:
            TransportError: The request failed; nothing else escapes but cancellation.
        """
        ...

    async def aclose(self) -> None:
        """Close every connection; a later :meth:`send` raises :class:`TransportClosed`."""
        ...


class TransportError(Exception):
    """Base class of the errors a transport raises."""


class ConnectError(TransportError):
    """No connection to the server could be made."""


class CertificateError(ConnectError):
    """The server's TLS certificate failed verification; trying again cannot help."""


class ProxyError(ConnectError):
    """The proxy failed; ``refused`` when it refused the credentials (trying again cannot help)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class NetworkError(TransportError):
    """The connection broke while the request was sent or the response read."""


class ProtocolError(TransportError):
    """The response is not valid HTTP/1.1 (or uses what the client does not speak)."""


class TransportTimeout(TransportError):
    """A transport's time limit expired."""


class ConnectTimeout(TransportTimeout):
    """Connecting (TLS and proxy handshakes included) took longer than the connect timeout."""


class ReadTimeout(TransportTimeout):
    """The server sent nothing for longer than the read timeout."""


class WriteTimeout(TransportTimeout):
    """Sending the request took longer than the read timeout."""


class PoolTimeout(TransportTimeout):
    """No connection became free within the connect timeout."""


class TransportClosed(TransportError):
    """The transport was closed before the request was sent."""
