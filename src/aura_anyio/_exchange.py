"""One request and its responses: sending it, judging the status, reading the body as text.

This is the one place where the transports' neutral errors (``_transports.base``) become
public ones, chained with ``raise ... from``, and where an error response is read, within
bounds, into an :class:`APIStatusError`. Retrying is the caller's (``_stream``): an
:class:`Exchange` holds everything needed to send the request again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import typing

from ._deadlines import close_shielded
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    EmptyReplyError,
    ResponseTooLargeError,
    make_status_error,
)
from ._options import redact_url
from ._retry import parse_retry_after
from ._routing import counts_against
from ._stored import StoredReply
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
from ._wire import BrokenReply, EmptyReply, ReplyError

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._cache import ResponseCache
    from ._endpoints import Endpoints
    from ._exceptions import RequestInfo
    from ._messages import ToolCall
    from ._models import Timeouts
    from ._ratelimit import Limiter
    from ._retry import RetryPolicy
    from ._routing import Endpoint, Ticket
    from ._transports.base import Request, Response, Transport
    from ._usage import Usage
    from ._wire import ReplyDecoder, Wire

__all__ = [
    "ERROR_BODY_LIMIT",
    "Exchange",
    "ReplyReader",
    "StoredReader",
    "map_transport_error",
    "read_error",
]

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
    # The servers, each taking at most max_connections attempts at once (no limit for a
    # borrowed httpx client, whose own pool limits apply).
    endpoints: Endpoints
    # The fan-out's rate limit and shared pause, if the request is part of one.
    gate: Limiter | None = None
    # What each attempt takes from the gate's token budget: the request's estimate.
    tokens: int = 0
    # Where whole replies are kept, and this request's key there.
    cache: ResponseCache | None = None
    cache_key: bytes = b""

    async def cached(self) -> StoredReader | None:
        """The reply the cache keeps for this request, as a response that has ended; ``None``
        without a cache, or without the reply in it."""
        if self.cache is None:
            return None
        stored = await self.cache.lookup(self.cache_key)
        return None if stored is None else StoredReader(stored)

    def hold_off(self, ticket: Ticket | None, seconds: float) -> bool:
        """The server asked to wait: hold the other requests off for ``seconds``.

        With several servers, those to the one that asked (and ``True``: a retry may go to
        another at once); else the fan-out's, if the request is part of one.
        """
        if self.endpoints.several and ticket is not None:
            self.endpoints.pause(ticket, seconds)
            return True
        if self.gate is not None:
            self.gate.pause(seconds)
        return False

    async def take(self, avoid: Endpoint | None) -> Ticket:
        """Wait for an endpoint to send an attempt to (``avoid``: the last attempt's).

        A wait for a free connection (``max_connections`` at every endpoint) lasts at most
        the connect timeout.

        Raises:
            APITimeoutError: Every endpoint stayed full for the connect timeout.
        """
        connect = self.timeouts.connect
        ticket = await self.endpoints.take(avoid, math.inf if connect is None else connect)
        if ticket is None:
            exc = PoolTimeout(f"every connection stayed busy for {connect:g} s")
            raise map_transport_error(exc, self.info) from exc
        return ticket

    async def open(self, ticket: Ticket) -> ReplyReader:
        """Send the request once to the ticket's endpoint; return the reader of a successful
        response, which then holds the ticket.

        The ticket is given back (with its verdict) whatever happens: cancelling this leaves
        no connection or attempt in flight behind.

        Raises:
            APIError: The request failed, or the response has an error status.
            RuntimeError: The transport is closed.
        """
        endpoints = self.endpoints
        request = self.request
        info = self.info
        if endpoints.several:
            target = endpoints.target(ticket.endpoint)
            request = dataclasses.replace(request, url=target.url)
            info = target.info
        try:
            response = await self.transport.send(request)
        except TransportClosed as exc:
            endpoints.ended(ticket)
            raise RuntimeError(str(exc)) from exc
        except TransportError as exc:
            error = map_transport_error(exc, info)
            _give_back(endpoints, ticket, error)
            raise error from exc
        except BaseException:
            endpoints.ended(ticket)
            raise
        # From here the reader holds the ticket, and gives it back when it is closed.
        reader = ReplyReader(response, self, ticket, info)
        wait = self.wire.admission_wait(response.headers)
        if wait is not None:
            # The server says its limit is spent: hold the other requests to it off until
            # it resets, rather than have them refused (at most as long as a Retry-After
            # would be honoured).
            self.hold_off(ticket, min(wait, self.policy.max_retry_after))
        try:
            if not 200 <= response.status_code < 300:
                raise reader.blame(await read_error(response, info, self.wire))
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding not in _IDENTITY:
                raise APIError(
                    f"the server sent a reply with Content-Encoding {encoding!r}, although the "
                    "request asked for none (accept-encoding: identity); this client does not "
                    "decode compressed replies",
                    request=info,
                )
        except BaseException:
            await reader.aclose()
            raise
        return reader


def _give_back(
    endpoints: Endpoints, ticket: Ticket, error: APIError | None, *, whole: bool = False
) -> None:
    """End an attempt with its verdict: ``whole`` if the reply was, else ``error`` (what it
    failed with) decides whether it counts against the endpoint."""
    if whole:
        endpoints.succeeded(ticket)
    elif error is not None and counts_against(error):
        endpoints.failed(ticket)
    else:
        endpoints.ended(ticket)


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
        "_error",
        "_exchange",
        "_failure",
        "_finished",
        "_marked_end",
        "_parts",
        "_response",
        "_ticket",
        "complete",
        "done",
        "endpoint",
        "info",
        "status_code",
    )

    def __init__(
        self, response: Response, exchange: Exchange, ticket: Ticket, info: RequestInfo
    ) -> None:
        self._response = response
        self._exchange = exchange
        self._ticket: Ticket | None = ticket  # given back, with a verdict, when closed
        self.endpoint = ticket.endpoint
        self.info = info
        self._error: APIError | None = None  # what ended the reply, for the endpoint's verdict
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
    def usage(self) -> Usage | None:
        """The token counts the server sent, if any."""
        return self._decoder.usage

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls the reply made so far, if any."""
        return self._decoder.tool_calls

    @property
    def reasoning(self) -> str | None:
        """The reasoning the reply sent apart from its text so far, if any."""
        return self._decoder.reasoning

    @property
    def text_events(self) -> int:
        """How many events carried text so far."""
        return self._decoder.text_events

    def blame(self, error: APIError) -> APIError:
        """Note that ``error`` ended the reply (the endpoint's verdict, on closing, follows
        from it); return it."""
        self._error = error
        return error

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
            try:
                text = self._decoder.close()
            except ReplyError as exc:
                text = self._fault(exc)
            if text:
                self._parts.append(text)
            self.done = self.complete = self._failure is None
            await self._keep()
            return text
        except TransportError as exc:
            self.done = True
            raise self.blame(map_transport_error(exc, self.info)) from exc
        self._bytes += len(chunk)
        limit = self._exchange.max_response_bytes
        if self._bytes > limit:
            self.done = True
            raise self.blame(
                ResponseTooLargeError(
                    f"the reply passed max_response_bytes={limit}; raise the limit to accept it",
                    limit=limit,
                    request=self.info,
                )
            )
        decoder = self._decoder
        try:
            text = decoder.feed(chunk)
        except ReplyError as exc:
            text = self._fault(exc)
        if text:
            self._parts.append(text)
        # The wire's end marker ends the reply, even if the body goes on (or stalls).
        if decoder.done and self._failure is None:
            self.done = self._marked_end = self.complete = True
            await self._keep()
        return text

    async def _keep(self) -> None:
        """Keep the reply in the cache, if it is whole and the client has one."""
        exchange = self._exchange
        if self.complete and exchange.cache is not None:
            reply = StoredReply(
                self.text, self.finish_reason, self.usage, self.tool_calls, self.reasoning
            )
            await exchange.cache.store(exchange.cache_key, reply)

    def _fault(self, exc: ReplyError) -> str:
        """Turn the wire's ``exc`` into the reply's error; return the text before it.

        Raises:
            APIError: At once, when no text came before the fault.
        """
        info = self.info
        if isinstance(exc, BrokenReply):
            error: APIError = APIConnectionError(f"the reply broke: {exc}", request=info)
        elif isinstance(exc, EmptyReply):
            error = EmptyReplyError(
                f"{exc} (openchat-ui does so under load: send fewer requests at once if it "
                "persists)",
                request=info,
            )
        else:
            error = APIError(f"the server reported an error: {exc}", request=info)
        self.blame(error)
        if not exc.text:
            self.done = True
            raise error from exc
        # The text that came before the fault reaches the caller first, and the fault
        # at the next read: whatever the chunking, no text is lost.
        error.__cause__ = exc  # as `raise ... from exc` will not be there to set it
        self._failure = error
        return exc.text

    async def aclose(self) -> None:
        """End the response at once (unless it was read to its end); idempotent.

        Shielded from cancellation, so that a cancelled request never keeps a connection.
        The endpoint gets its attempt back, with the verdict: whole, failed the server's
        way, or neither (cancelled, left early, the request's own fault).
        """
        self.done = True
        ticket, self._ticket = self._ticket, None
        try:
            if not self._finished:
                self._finished = True
                try:
                    await close_shielded(
                        self._response.aclose, linger=LINGER if self._marked_end else 0.0
                    )
                except Exception as exc:
                    logger.warning("error while closing a response to %s: %r", self.info, exc)
        finally:
            if ticket is not None:
                _give_back(self._exchange.endpoints, ticket, self._error, whole=self.complete)


@typing.final
class StoredReader:
    """A reply from the cache, read like a response that has ended: its text is all there,
    there is nothing more to read and nothing to close."""

    __slots__ = ("_reply",)

    done = True
    complete = True

    def __init__(self, reply: StoredReply) -> None:
        self._reply = reply

    @property
    def text(self) -> str:
        """The whole reply."""
        return self._reply.text

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended, if the wire said."""
        return self._reply.finish_reason

    @property
    def usage(self) -> Usage | None:
        """The token counts the server sent with it, if any."""
        return self._reply.usage

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls it made, if any."""
        return self._reply.tool_calls

    @property
    def reasoning(self) -> str | None:
        """The reasoning it sent apart from its text, if any."""
        return self._reply.reasoning

    @property
    def text_events(self) -> int:
        """One, for the whole text at once; none without text."""
        return 1 if self._reply.text else 0

    async def next_text(self) -> str:
        """Nothing: the whole text is :attr:`text`."""
        return ""

    async def aclose(self) -> None:
        """Nothing to close."""
