"""The boundary with httpx: error translation and bounded reads.

This is the one place where httpx exceptions become aura_anyio's (chained with ``from``); no
httpx exception escapes the public API.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import ssl
import time
import typing

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    RequestInfo,
    make_status_error,
)
from ._options import redact_url
from ._retry import parse_retry_after

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping


class Reply(typing.Protocol):
    """A response whose head has arrived: what a sender returns, on either transport.

    Iterating gives the body's bytes as they arrive; ``aclose()`` ends the response at
    once, closing its connection if the body was not read to its end. Errors are httpx's.
    """

    @property
    def status_code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names; repeated fields joined with ``", "``."""
        ...

    @property
    def finished(self) -> bool:
        """Whether the body was read to its end, leaving nothing for ``aclose()`` to do."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def __anext__(self) -> bytes: ...
    async def aclose(self, *, linger: float = 0.0) -> None:
        """End the response; wait up to ``linger`` seconds for the rest of its body, if
        that lets the connection serve the next request."""
        ...


__all__ = [
    "ERROR_BODY_LIMIT",
    "TRANSPORT_ERRORS",
    "HttpxReply",
    "Reply",
    "close_response",
    "read_error",
    "translate_error",
]

# An error body is read only this far: a hostile or broken server cannot make us buffer more.
ERROR_BODY_LIMIT = 8192
_PROXY_REFUSED = re.compile(r"\b407\b|username/password|authentication", re.IGNORECASE)
# httpcore reads 64 KiB at a time, and each chunk left in h11's buffer holds at least a byte.
_LEFTOVER_CHUNKS = 65536


def _leaked_errors() -> tuple[type[Exception], ...]:
    # httpcore 1.0 lets socksio's ProtocolError out of a failed SOCKS5 handshake unwrapped,
    # such as when the proxy hangs up on a client that offered no credentials.
    try:
        module = importlib.import_module("socksio.exceptions")
    except ImportError:
        return ()
    return (typing.cast("type[Exception]", module.ProtocolError),)


#: What sending a request or reading its body can raise besides cancellation.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, *_leaked_errors())


def translate_error(exc: Exception, info: RequestInfo) -> APIError:
    """Return the aura_anyio error for one of :data:`TRANSPORT_ERRORS`.

    The caller raises it ``from exc``.
    """
    detail = str(exc) or type(exc).__name__
    if not isinstance(exc, httpx.HTTPError):
        return APIConnectionError(f"the SOCKS proxy handshake failed: {detail}", request=info)
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError(
            f"connect timeout: could not connect to {info.url} in time ({detail})", request=info
        )
    if isinstance(exc, httpx.ReadTimeout):
        return APITimeoutError(
            f"read timeout: the server sent nothing for too long ({detail}); "
            "raise Timeouts.read if replies pause longer",
            request=info,
        )
    if isinstance(exc, httpx.PoolTimeout):
        return APITimeoutError(
            "pool timeout: no free connection in the pool in time; every connection is busy "
            "(raise the pool size or lower the concurrency)",
            request=info,
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timeout talking to {info.url} ({detail})", request=info)
    certificate = _certificate_error(exc)
    if certificate is not None:
        return APIConnectionError(
            f"TLS certificate verification failed for {info.url}: "
            f"{certificate.verify_message or certificate.reason}; the server's certificate is "
            "not trusted. Pass verify= an ssl.SSLContext that trusts its CA (or verify=False, "
            "which is insecure)",
            request=info,
            retryable=False,
        )
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"could not connect to {info.url}: {detail}; check the URL, network and proxy",
            request=info,
        )
    if isinstance(exc, httpx.LocalProtocolError):
        # Its text may quote a header value (a cookie, say), so it stays out of the message.
        return APIError(
            f"the request could not be sent as valid HTTP ({type(exc).__name__})", request=info
        )
    if isinstance(exc, httpx.ProxyError):
        # httpcore's words for a proxy refusing the credentials (HTTP 407, or SOCKS5's
        # answers): asking again with the same ones cannot help.
        refused = _PROXY_REFUSED.search(detail) is not None
        hint = "; check the proxy's user name and password" if refused else ""
        return APIConnectionError(
            f"the proxy failed: {detail}{hint}", request=info, retryable=not refused
        )
    if isinstance(exc, (httpx.TransportError, httpx.DecodingError)):
        return APIConnectionError(f"the connection to {info.url} broke: {detail}", request=info)
    return APIError(f"HTTP error talking to {info.url}: {detail}", request=info)


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
        for _ in range(_LEFTOVER_CHUNKS):
            await chunks.__anext__()


@typing.final
class HttpxReply:
    """An httpx response as a :class:`Reply`."""

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
        # aiter_raw() skips httpx's decoder and re-chunker, which cost a tenth of the client's
        # CPU per reply; they are needed only when the body is content-encoded.
        encoded = "content-encoding" in response.headers
        self._chunks = response.aiter_bytes() if encoded else response.aiter_raw()

    @property
    def finished(self) -> bool:
        # An exhausted aiter_raw() or aiter_bytes() has closed the response and ended every
        # generator under it.
        return self._finished

    def __aiter__(self) -> HttpxReply:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            self._finished = True
            raise

    async def aclose(self, *, linger: float = 0.0) -> None:
        # httpx reads a body's rest only through the generators it leaves half-way.
        await close_response(self._response, self._chunks)


_REDIRECTS = frozenset((301, 302, 303, 307, 308))


async def read_error(reply: Reply, info: RequestInfo) -> APIStatusError:
    """Read at most :data:`ERROR_BODY_LIMIT` bytes of an error response and build its error.

    The reply is not closed here: the caller closes it.
    """
    body = bytearray()
    try:
        async for chunk in reply:
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                del body[ERROR_BODY_LIMIT:]
                break
    except httpx.HTTPError:
        pass  # the status already says what went wrong; a broken body adds nothing
    headers = reply.headers
    retry_after = parse_retry_after(headers, now=time.time())
    reason = reply.reason
    if reply.status_code in _REDIRECTS and "location" in headers:
        reason = f"{reason} (redirect to {redact_url(headers['location'])!r} not followed)"
    return make_status_error(
        status_code=reply.status_code,
        reason=reason,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        request=info,
        retry_after=retry_after,
    )
