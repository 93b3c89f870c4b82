"""One request and its responses: sending it, judging the status, reading the body as text.

This is the one place where the transports' neutral errors (``_transports.base``) become
public ones, chained with ``raise ... from``, and where an error response is read, within
bounds, into an :class:`APIStatusError`. Retrying is the caller's (``_stream``): an
:class:`Exchange` holds everything needed to send the request again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing

import anyio

from ._deadlines import DeadlineExpired, close_shielded, deadline_after, run_until
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ResponseTooLargeError,
    make_status_error,
)
from ._options import redact_url
from ._retry import parse_retry_after
from ._transports.base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ProxyError,
    ReadTimeout,
    TransportClosed,
    TransportError,
    TransportTimeout,
    WriteTimeout,
)
from ._wire import BrokenReply, ReplyError

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from ._cache import ResponseCache
    from ._exceptions import RequestInfo
    from ._models import Timeouts
    from ._ratelimit import Gate
    from ._retry import RetryPolicy
    from ._transports.base import Request, Response, Transport
    from ._wire import ReplyDecoder, ToolCall, Wire

__all__ = ["ERROR_BODY_LIMIT", "Exchange", "ReplyReader", "map_transport_error", "read_error"]

logger = logging.getLogger("aura_anyio")

# An error body is read only this far: a hostile or broken server cannot make us buffer more.
ERROR_BODY_LIMIT = 8192
# After the wire's end marker, how long the rest of the body may take to come: a server
# ends the body at once, and then the connection can serve the next request.
LINGER = 0.25
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_IDENTITY = ("", "identity")


def map_transport_error(exc: TransportError, info: RequestInfo) -> APIError:
    """Return the public error for a transport's error; the caller raises it ``from exc``."""
    detail = str(exc) or type(exc).__name__
    url = info.url
    if isinstance(exc, TransportTimeout):
        if isinstance(exc, ConnectTimeout):
            message = f"connect timeout: could not connect to {url} in time ({detail})"
        elif isinstance(exc, ReadTimeout):
            message = (
                f"read timeout: the server sent nothing for too long ({detail}); "
                "raise Timeouts.read if replies pause longer"
            )
        elif isinstance(exc, WriteTimeout):
            message = f"write timeout: sending the request to {url} took too long ({detail})"
        elif isinstance(exc, PoolTimeout):
            message = f"pool timeout: {detail} (raise max_connections or lower the concurrency)"
        else:
            message = f"timeout talking to {url} ({detail})"
        return APITimeoutError(message, request=info)
    if isinstance(exc, CertificateError):
        return APIConnectionError(
            f"TLS certificate verification failed for {url}: {detail}; the server's "
            "certificate is not trusted. Pass verify= an ssl.SSLContext that trusts its CA "
            "(or verify=False, which is insecure)",
            request=info,
            retryable=False,
        )
    if isinstance(exc, ProxyError):
        hint = "; check the proxy's user name and password" if exc.refused else ""
        return APIConnectionError(
            f"the proxy failed: {detail}{hint}", request=info, retryable=not exc.refused
        )
    if isinstance(exc, ConnectError):
        return APIConnectionError(
            f"could not connect to {url}: {detail}; check the URL, network and proxy",
            request=info,
        )
    return APIConnectionError(f"the connection to {url} broke: {detail}", request=info)


async def read_error(
    response: Response, info: RequestInfo, wire: Wire | None = None
) -> APIStatusError:
    """Read at most :data:`ERROR_BODY_LIMIT` bytes of an error response and build its error.

    ``wire`` says which statuses are a rate limit's. The response is not closed here: the
    caller closes it.
    """
    body = bytearray()
    try:
        async for chunk in response:
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                del body[ERROR_BODY_LIMIT:]
                break
    except TransportError:
        pass  # the status already says what went wrong; a broken body adds nothing
    headers = response.headers
    reason = response.reason
    status = response.status_code
    rate_limited = None if wire is None else wire.rate_limited(status, reason)
    if status in _REDIRECTS and "location" in headers:
        reason = f"{reason} (redirect to {redact_url(headers['location'])!r} not followed)"
    return make_status_error(
        status_code=status,
        reason=reason,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        request=info,
        retry_after=parse_retry_after(headers, now=time.time()),
        rate_limited=rate_limited,
    )


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """Everything needed to send one request, and again: what the client hands a stream."""

    transport: Transport
    request: Request
    info: RequestInfo
    wire: Wire
    timeouts: Timeouts
    policy: RetryPolicy
    max_response_bytes: int
    # At most this many requests in flight; None for a borrowed httpx client, whose own
    # pool limits apply.
    slots: anyio.Semaphore | None = None
    # The fan-out's rate limit and shared pause, if the request is part of one.
    gate: Gate | None = None
    # What each attempt takes from the gate's token budget: the request's estimate.
    tokens: int = 0
    # Where whole replies are kept, and this request's key there.
    cache: ResponseCache | None = None
    cache_key: bytes = b""

    async def open(self) -> ReplyReader:
        """Send the request once and return the reader of a successful response.

        Waits for a free connection first (``max_connections``), for up to the connect
        timeout. Cancelling it leaves no connection or slot behind.

        Raises:
            APIError: The request failed, or the response has an error status.
            RuntimeError: The transport is closed.
        """
        slots = self.slots
        try:
            if slots is not None:
                await self._take_slot(slots)
            try:
                response = await self.transport.send(self.request)
            except BaseException:
                if slots is not None:
                    slots.release()
                raise
        except TransportClosed as exc:
            raise RuntimeError(str(exc)) from exc
        except TransportError as exc:
            raise map_transport_error(exc, self.info) from exc
        # From here the reader holds the slot, and gives it back when it is closed.
        reader = ReplyReader(response, self, None if slots is None else slots.release)
        if self.gate is not None:
            # The server says its limit is spent: hold the fan-out's other requests off
            # until it resets, rather than have them refused (at most as long as a
            # Retry-After would be honoured).
            wait = self.wire.admission_wait(response.headers)
            if wait is not None:
                self.gate.pause(min(wait, self.policy.max_retry_after))
        try:
            if not 200 <= response.status_code < 300:
                raise await read_error(response, self.info, self.wire)
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding not in _IDENTITY:
                raise APIError(
                    f"the server sent a reply with Content-Encoding {encoding!r}, although the "
                    "request asked for none (accept-encoding: identity); this client does not "
                    "decode compressed replies",
                    request=self.info,
                )
        except BaseException:
            await reader.aclose()
            raise
        return reader

    async def _take_slot(self, slots: anyio.Semaphore) -> None:
        try:  # the common case, without the cost of a deadline
            slots.acquire_nowait()
        except anyio.WouldBlock:
            connect = self.timeouts.connect
            try:
                await run_until(deadline_after(connect), slots.acquire)
            except DeadlineExpired:
                raise PoolTimeout(f"every connection stayed busy for {connect:g} s") from None


@typing.final
class ReplyReader:
    """The body of one successful response, read as text through the wire's decoder.

    ``done`` turns true at the end of the reply (the body's end, the wire's end marker, an
    error, or :meth:`aclose`), and ``complete`` too if the reply is whole; ``text`` is
    everything read so far.
    """

    __slots__ = (
        "_bytes",
        "_chunks",
        "_decoder",
        "_exchange",
        "_failure",
        "_finished",
        "_marked_end",
        "_parts",
        "_release",
        "_response",
        "complete",
        "done",
        "status_code",
    )

    def __init__(
        self, response: Response, exchange: Exchange, release: Callable[[], None] | None
    ) -> None:
        self._response = response
        self._exchange = exchange
        self._release = release
        self._chunks: AsyncIterator[bytes] = response.__aiter__()
        self._decoder: ReplyDecoder = exchange.wire.decoder(response.headers.get("content-type"))
        self._parts: list[str] = []
        self._bytes = 0
        self._finished = False  # the body was read to its end: nothing to close
        self._marked_end = False  # the wire marked the reply's end before the body's
        self._failure: APIError | None = None  # raised at the next read, after its text
        self.done = False
        self.complete = False
        self.status_code = response.status_code

    @property
    def text(self) -> str:
        """All the text read so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended, if the wire has said so."""
        return self._decoder.finish_reason

    @property
    def usage(self) -> Mapping[str, int] | None:
        """The token counts the server sent, if any."""
        return self._decoder.usage

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls the reply made so far, if any."""
        return self._decoder.tool_calls

    async def next_text(self) -> str:
        """Read one piece of the body; return the text it completed (``""`` if none).

        Raises:
            APIError: The body broke, passed ``max_response_bytes``, or the wire says the
                reply is broken or reports an error; ``done`` is then true.
        """
        failure = self._failure
        if failure is not None:
            self._failure = None
            self.done = True
            raise failure
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._finished = True
            text = self._decode(None)
            self.done = self.complete = self._failure is None
            return text
        except TransportError as exc:
            self.done = True
            raise map_transport_error(exc, self._exchange.info) from exc
        self._bytes += len(chunk)
        limit = self._exchange.max_response_bytes
        if self._bytes > limit:
            self.done = True
            raise ResponseTooLargeError(
                f"the reply passed max_response_bytes={limit}; raise the limit to accept it",
                limit=limit,
                request=self._exchange.info,
            )
        text = self._decode(chunk)
        # The wire's end marker ends the reply, even if the body goes on (or stalls).
        if self._decoder.done and self._failure is None:
            self.done = self._marked_end = self.complete = True
        return text

    def _decode(self, chunk: bytes | None) -> str:
        try:
            text = self._decoder.close() if chunk is None else self._decoder.feed(chunk)
        except ReplyError as exc:
            info = self._exchange.info
            error = (
                APIConnectionError(f"the reply broke: {exc}", request=info)
                if isinstance(exc, BrokenReply)
                else APIError(f"the server reported an error: {exc}", request=info)
            )
            if not exc.text:
                self.done = True
                raise error from exc
            # The text that came before the fault reaches the caller first, and the fault
            # at the next read: whatever the chunking, no text is lost.
            error.__cause__ = exc  # as `raise ... from exc` will not be there to set it
            self._failure = error
            text = exc.text
        if text:
            self._parts.append(text)
        return text

    async def aclose(self) -> None:
        """End the response at once (unless it was read to its end); idempotent.

        Shielded from cancellation, so that a cancelled request never keeps a connection.
        """
        self.done = True
        release, self._release = self._release, None
        try:
            if not self._finished:
                self._finished = True
                try:
                    await close_shielded(
                        self._response.aclose, linger=LINGER if self._marked_end else 0.0
                    )
                except Exception as exc:
                    logger.warning(
                        "error while closing a response to %s: %r", self._exchange.info, exc
                    )
        finally:
            if release is not None:
                release()
