"""One streamed reply: sending with retries, timeouts, decoding and closing."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import typing

import anyio

from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    IncompleteStreamError,
    RequestInfo,
    ResponseTooLargeError,
)
from ._http import TRANSPORT_ERRORS, read_error, translate_error
from ._retry import RetryPolicy, pause_after, retry_delay
from ._wire import BrokenReply, ReportedError

if typing.TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from ._http import Reply
    from ._models import Timeouts
    from ._ratelimit import Gate
    from ._transport import Sender
    from ._wire import ReplyDecoder, Wire

__all__ = ["Attempts", "ChatStream", "Exchange", "complete_reply", "plan_retry"]

logger = logging.getLogger("aura_anyio")

# Closing a response is shielded from cancellation but must not hang on a dead peer.
CLOSE_TIMEOUT = 5.0
# After the wire's end marker, how long the rest of the body may take to come: a server
# ends the body at once, and then the connection can serve the next request.
LINGER = 0.25


@dataclasses.dataclass(slots=True)
class Attempts:
    """Retry bookkeeping shared by every attempt at one request."""

    started: float
    count: int = 0


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """Everything needed to send one request again: what the client hands a stream."""

    sender: Sender
    url: str
    # The body holds the key: kept out of repr and tracebacks.
    body: bytes = dataclasses.field(repr=False)
    wire: Wire
    timeouts: Timeouts
    policy: RetryPolicy
    max_response_bytes: int
    # At most this many requests in flight; None for a borrowed httpx client (see _transport).
    slots: anyio.Semaphore | None = None
    # The fan-out's rate limit and shared pause, if the request is part of one.
    gate: Gate | None = None


def plan_retry(error: APIError, exchange: Exchange, attempts: Attempts) -> float | None:
    """Return how long to wait before retrying after ``error``, or ``None`` to give up.

    A fan-out's other requests are paused too when the server asked the client to wait.
    """
    now = time.time()
    delay = retry_delay(
        error,
        attempt=attempts.count,
        policy=exchange.policy,
        now=now,
        random=random.random(),
        elapsed=anyio.current_time() - attempts.started,
        budget=exchange.timeouts.total,
    )
    if exchange.gate is not None:
        pause = pause_after(error, delay=delay, policy=exchange.policy, now=now)
        if pause is not None:
            exchange.gate.pause(pause)
    if delay is not None:
        logger.info(
            "retrying POST %s in %.2f s (retry %d of %d) after: %s",
            exchange.url,
            delay,
            attempts.count,
            exchange.policy.max_retries,
            error,
        )
    return delay


def _deadline(start: float, seconds: float | None) -> float:
    return math.inf if seconds is None else start + seconds


@typing.final
class ChatStream:
    """A reply being streamed; use it as ``async with client.stream(...) as reply``.

    Entering sends the request, retrying as the client's policy allows until the first text
    arrives; iterating yields the reply's text piece by piece; leaving closes the response at
    once, even when cancelled. ``text`` is everything received so far, so a reply that breaks
    part-way loses nothing. Made by :meth:`AuraClient.stream`, not directly.
    """

    __slots__ = (
        "_attempts",
        "_bytes",
        "_decoder",
        "_done",
        "_exchange",
        "_info",
        "_marked_end",
        "_parts",
        "_pending",
        "_reply",
        "_slot",
        "_state",
        "_status",
    )

    def __init__(self, exchange: Exchange, attempts: Attempts | None = None) -> None:
        self._exchange = exchange
        # The clock of a stream of its own starts when it is entered, not when it is made.
        self._attempts = attempts
        self._state = "new"
        self._status: int | None = None
        # check_base_url() refuses credentials, so the URL is safe to show as it is.
        self._info = RequestInfo("POST", exchange.url)
        self._reply: Reply | None = None
        self._decoder: ReplyDecoder | None = None
        self._parts: list[str] = []
        self._pending: str | None = None
        self._bytes = 0
        self._done = False
        self._marked_end = False  # the wire marked the reply's end before the body's
        self._slot = False

    @property
    def text(self) -> str:
        """All the text received so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def attempts(self) -> int:
        """How many times the request was sent (1 when it was not retried)."""
        return 0 if self._attempts is None else self._attempts.count

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended (``"stop"``, ``"length"``...), once the wire has said so.

        The OpenAI wire says; ``/api/chat`` never does (``None``).
        """
        return None if self._decoder is None else self._decoder.finish_reason

    @property
    def usage(self) -> Mapping[str, int] | None:
        """The token counts the server sent with the reply, if it sent any (OpenAI wire)."""
        return None if self._decoder is None else self._decoder.usage

    @property
    def status_code(self) -> int | None:
        """The status of the last response received, or ``None`` before there is one."""
        return self._status

    def __repr__(self) -> str:
        return f"<ChatStream {self._info} attempts={self.attempts} chars={len(self.text)}>"

    async def __aenter__(self) -> ChatStream:
        if self._state != "new":
            raise RuntimeError("a ChatStream can be entered only once; call stream() again")
        self._state = "open"
        if self._attempts is None:
            self._attempts = Attempts(started=anyio.current_time())
        try:
            await self._open(self._attempts)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = "closed"
        await self._close()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        if self._state != "open":
            raise RuntimeError(
                "iterate a ChatStream inside its block: async with client.stream(...) as reply"
                if self._state == "new"
                else "this ChatStream's block has ended; its text is in .text"
            )
        if self._pending is not None:
            text, self._pending = self._pending, None
            return text
        while not self._done:
            try:
                text = await self._next_text(first=False)
            except ResponseTooLargeError as error:
                self._done = True
                error.partial_text = self.text
                raise
            except APIError as error:
                self._done = True
                raise IncompleteStreamError(
                    f"the reply broke after {len(self.text)} characters: {error}",
                    partial_text=self.text,
                    request=self._info,
                ) from error
            if text:
                return text
        raise StopAsyncIteration

    async def _open(self, attempts: Attempts) -> None:
        """Send until a response gives its first text (or ends), retrying what may be."""
        exchange = self._exchange
        timeouts = exchange.timeouts
        total_deadline = _deadline(attempts.started, timeouts.total)
        while True:
            if exchange.gate is not None:
                await exchange.gate.admit()
            attempts.count += 1
            deadline = total_deadline
            if timeouts.first_chunk is not None:
                deadline = min(deadline, anyio.current_time() + timeouts.first_chunk)
            logger.debug("POST %s (attempt %d)", exchange.url, attempts.count)
            try:
                if deadline == math.inf:  # the default: no scope to pay for
                    self._pending = await self._first_text()
                    return
                with anyio.CancelScope(deadline=deadline) as scope:
                    self._pending = await self._first_text()
                if scope.cancelled_caught:
                    raise self._timeout_error(first=deadline < total_deadline)
                return
            except APIError as error:
                await self._close()
                delay = plan_retry(error, exchange, attempts)
                if delay is None:
                    raise
            await anyio.sleep(delay)

    def _timeout_error(self, *, first: bool) -> APITimeoutError:
        timeouts = self._exchange.timeouts
        if first:
            return APITimeoutError(
                f"first-chunk timeout: no text within {timeouts.first_chunk:g} s",
                request=self._info,
            )
        return APITimeoutError(
            f"total timeout: the reply did not finish within {timeouts.total:g} s",
            request=self._info,
        )

    async def _take_slot(self, slots: anyio.Semaphore) -> None:
        try:  # the common case, without the cost of a cancel scope
            slots.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            self._slot = True
            return
        with anyio.move_on_after(self._exchange.timeouts.connect):
            await slots.acquire()
            self._slot = True
            return
        raise APITimeoutError(
            f"pool timeout: every connection stayed busy for {self._exchange.timeouts.connect:g} "
            "s (raise max_connections or lower the concurrency)",
            request=self._info,
        )

    async def _first_text(self) -> str | None:
        exchange = self._exchange
        self._bytes = 0
        self._done = self._marked_end = False
        if exchange.slots is not None:
            await self._take_slot(exchange.slots)
        try:
            reply = self._reply = await exchange.sender.send(exchange.body)
        except TRANSPORT_ERRORS as exc:
            raise translate_error(exc, self._info) from exc
        self._status = reply.status_code
        if not 200 <= reply.status_code < 300:
            raise await read_error(reply, self._info)
        self._decoder = exchange.wire.decoder(reply.headers.get("content-type"))
        while not self._done:
            text = await self._next_text(first=True)
            if text:
                return text
        return None

    async def _next_text(self, *, first: bool) -> str:
        """Read one chunk and return its text ("" when it completed no character)."""
        reply = self._reply
        decoder = self._decoder
        assert reply is not None
        assert decoder is not None  # made with the reply
        assert self._attempts is not None
        deadline = _deadline(self._attempts.started, self._exchange.timeouts.total)
        chunk: bytes | None = None
        try:
            if first or deadline == math.inf:
                chunk = await reply.__anext__()
            else:
                with anyio.CancelScope(deadline=deadline) as scope:
                    chunk = await reply.__anext__()
                if scope.cancelled_caught:
                    raise self._timeout_error(first=False)
        except StopAsyncIteration:
            self._done = True
        except TRANSPORT_ERRORS as exc:
            raise translate_error(exc, self._info) from exc
        if chunk is not None:
            self._bytes += len(chunk)
            limit = self._exchange.max_response_bytes
            if self._bytes > limit:
                raise ResponseTooLargeError(
                    f"the reply passed max_response_bytes={limit}; raise the limit to accept it",
                    limit=limit,
                    request=self._info,
                )
        try:
            if chunk is None:
                text = decoder.close()
            else:
                text = decoder.feed(chunk)
                # The wire's end marker ends the reply, even if the body goes on (or stalls).
                self._done = self._marked_end = decoder.done
        except BrokenReply as exc:
            raise APIConnectionError(f"the reply broke: {exc}", request=self._info) from exc
        except ReportedError as exc:
            raise APIError(f"the server reported an error: {exc}", request=self._info) from exc
        if text:
            self._parts.append(text)
        return text

    async def _close(self) -> None:
        reply, self._reply = self._reply, None
        try:
            if reply is not None and not reply.finished:
                with anyio.CancelScope(shield=True) as scope:
                    scope.deadline = anyio.current_time() + CLOSE_TIMEOUT
                    try:
                        await reply.aclose(linger=LINGER if self._marked_end else 0.0)
                    except Exception as exc:
                        logger.warning("error while closing a response to %s: %r", self._info, exc)
        finally:
            if self._slot:
                self._slot = False
                assert self._exchange.slots is not None
                self._exchange.slots.release()


async def complete_reply(
    exchange: Exchange,
    attempts: Attempts,
    on_stream: Callable[[ChatStream], None] | None = None,
) -> str:
    """Return the whole reply, retrying a reply cut part-way as the policy allows.

    ``on_stream`` sees each attempt's stream, so a caller that cancels this can still read
    the text received so far.
    """
    while True:
        stream = ChatStream(exchange, attempts)
        if on_stream is not None:
            on_stream(stream)
        async with stream as reply:
            try:
                async for _ in reply:
                    pass
            except IncompleteStreamError as exc:
                error = exc
            else:
                return reply.text
        delay = plan_retry(error, exchange, attempts)
        if delay is None:
            raise error
        await anyio.sleep(delay)
