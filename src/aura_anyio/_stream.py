"""One streamed reply: the retry loop until the first text, then the text as it arrives.

Each attempt's response is read by an ``_exchange.ReplyReader``; this module decides when to
try again, and how long the first text and the whole reply may take.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import typing

import anyio

from ._deadlines import DeadlineExpired, run_until
from ._exceptions import (
    APIError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    ResponseTooLargeError,
    end_with_history,
)
from ._exchange import ReplyReader, StoredReader
from ._retry import pause_after, retry_delay

if typing.TYPE_CHECKING:
    from types import TracebackType

    from ._exchange import Exchange
    from ._messages import ToolCall
    from ._routing import Ticket
    from ._usage import Usage

__all__ = ["Attempts", "ChatStream", "Reply", "complete_reply", "plan_retry"]

logger = logging.getLogger("aura_anyio")


@dataclasses.dataclass(slots=True)
class Attempts:
    """Retry bookkeeping shared by every attempt at one request."""

    started: float
    count: int = 0
    # The last attempt's endpoint: the next leaves it to the others, and a 429 pauses it.
    ticket: Ticket | None = None
    # The last attempt's stream (or the cache's), which knows what arrived even when the
    # request failed or was cancelled.
    stream: ChatStream | None = None
    # What ended each attempt that was retried, oldest first.
    errors: list[APIError] = dataclasses.field(default_factory=list[APIError])

    def end(self, error: APIError) -> APIError:
        """Give ``error``, which ends the request, the history of the attempts before it."""
        end_with_history(error, tuple(self.errors))
        return error

    def reply(self) -> Reply | None:
        """What the last stream knew; ``None`` before the first."""
        return None if self.stream is None else Reply.of(self.stream)

    def deadline(self, seconds: float | None) -> float:
        """The deadline ``seconds`` after the first attempt started; ``math.inf`` for ``None``."""
        return math.inf if seconds is None else self.started + seconds


def plan_retry(error: APIError, exchange: Exchange, attempts: Attempts) -> float | None:
    """Return how long to wait before retrying after ``error``, or ``None`` to give up.

    When the server asked the client to wait, the other requests are held off too: those to
    that server, when the client has several (and the retry goes at once, elsewhere if it
    can), else the fan-out's.
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
    pause = pause_after(error, delay=delay, policy=exchange.policy, now=now)
    if pause is not None and exchange.hold_off(attempts.ticket, pause) and delay is not None:
        delay = 0.0  # the server that asked is paused: the retry goes to another at once
    if delay is None:
        attempts.end(error)
    else:
        attempts.errors.append(error)
        logger.info(
            "retrying POST %s in %.2f s (retry %d of %d) after: %s",
            (error.request or exchange.info).url,
            delay,
            attempts.count,
            exchange.policy.max_retries,
            error,
        )
    return delay


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """What a stream knew when it ended: the text, and what the wire said about it."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    tool_calls: list[ToolCall] | None
    endpoint: str | None
    cached: bool
    ttft: float | None
    reasoning: str | None

    @classmethod
    def of(cls, stream: ChatStream) -> Reply:
        """The record of ``stream`` as it stands."""
        return cls(
            stream.text,
            stream.finish_reason,
            stream.usage,
            stream.tool_calls,
            stream.endpoint,
            stream.cached,
            stream.ttft,
            stream.reasoning,
        )


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
        "_deadline",
        "_exchange",
        "_first_at",
        "_look_up",
        "_pending",
        "_reader",
        "_sent_at",
        "_state",
        "_status",
    )

    def __init__(
        self,
        exchange: Exchange,
        attempts: Attempts | None = None,
        *,
        replay: StoredReader | None = None,
        look_up: bool = True,
    ) -> None:
        self._exchange = exchange
        # The clock of a stream of its own starts when it is entered, not when it is made.
        self._attempts = attempts
        self._state = "new"
        self._status: int | None = None
        # A reply from the cache, given instead of sending.
        self._reader: ReplyReader | StoredReader | None = replay
        self._pending: str | None = None  # the first text, read while entering
        self._look_up = look_up  # whether to ask the cache before sending
        # When the last attempt was sent, and when its first text came (event loop clock).
        self._sent_at: float | None = None
        self._first_at: float | None = None
        # The whole reply's (Timeouts.total), fixed once entered: read with every chunk.
        self._deadline = math.inf

    @property
    def text(self) -> str:
        """All the text received so far."""
        return "" if self._reader is None else self._reader.text

    @property
    def attempts(self) -> int:
        """How many times the request was sent (1 when it was not retried)."""
        return 0 if self._attempts is None else self._attempts.count

    @property
    def endpoint(self) -> str | None:
        """The root URL of the server the last attempt went to; ``None`` before the first,
        and for a reply from the cache."""
        ticket = None if self._attempts is None or self.cached else self._attempts.ticket
        return None if ticket is None else ticket.endpoint.url

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended (``"stop"``, ``"length"``...), once the wire has said so.

        The OpenAI wire says; ``/api/chat`` never does (``None``).
        """
        return None if self._reader is None else self._reader.finish_reason

    @property
    def usage(self) -> Usage | None:
        """The token counts the server sent with the reply, if it sent any (OpenAI wire)."""
        return None if self._reader is None else self._reader.usage

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls the reply made so far (OpenAI wire), assembled from their pieces.

        Each is ``{"id", "type", "function": {"name", "arguments"}}``, in the server's
        ``index`` order; ``None`` if the reply made none. Its ``finish_reason`` is then
        ``"tool_calls"``.
        """
        return None if self._reader is None else self._reader.tool_calls

    @property
    def reasoning(self) -> str | None:
        """The reasoning (a model's thinking) the reply sent so far, apart from its text:
        ``delta.reasoning_content`` or ``delta.reasoning`` on the OpenAI wire; ``None`` if it
        sent none. It grows as events arrive, so a caller can show it live; iterating yields
        only the text."""
        return None if self._reader is None else self._reader.reasoning

    @property
    def text_events(self) -> int:
        """How many of the last attempt's events carried text so far (server-sent events on
        the OpenAI wire; body reads on ``/api/chat``; one for a reply from the cache).

        One piece of text that iterating yields may join several events that arrived in one
        read; a benchmark counts the gaps between events from this, at no cost to a reply
        nobody times.
        """
        return 0 if self._reader is None else self._reader.text_events

    @property
    def ttft(self) -> float | None:
        """Seconds from the last attempt's send to its first text (time to first text);
        ``None`` before any text, and for a reply from the cache."""
        if self._sent_at is None or self._first_at is None:
            return None
        return self._first_at - self._sent_at

    @property
    def status_code(self) -> int | None:
        """The status of the last response received; ``None`` before there is one, and for a
        reply from the cache."""
        return self._status

    @property
    def cached(self) -> bool:
        """Whether the reply came from the client's :class:`ResponseCache`, not the server."""
        return isinstance(self._reader, StoredReader)

    def __repr__(self) -> str:
        info = self._exchange.info
        return f"<ChatStream {info} attempts={self.attempts} chars={len(self.text)}>"

    async def __aenter__(self) -> ChatStream:
        if self._state != "new":
            raise RuntimeError("a ChatStream can be entered only once; call stream() again")
        self._state = "open"
        if self._attempts is None:
            self._attempts = Attempts(started=anyio.current_time())
        self._deadline = self._attempts.deadline(self._exchange.timeouts.total)
        replay = self._reader
        if replay is None and self._look_up:
            replay = self._reader = await self._exchange.cached()
        if replay is not None:
            self._pending = replay.text or None
            return self
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
        if isinstance(exc, APIError) and self._attempts is not None:
            self._attempts.end(exc)  # a reply of stream() that broke part-way
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
        reader = self._reader
        assert reader is not None  # set by _open
        deadline = self._deadline
        while not reader.done:
            try:
                try:
                    text = await run_until(deadline, reader.next_text)
                except DeadlineExpired:
                    await reader.aclose()
                    raise self._timeout_error(first=False) from None
            except APIError as error:
                if isinstance(error, ResponseTooLargeError):  # it keeps its own class
                    error.partial_text = reader.text
                    raise
                raise IncompleteStreamError(
                    f"the reply broke after {len(reader.text)} characters: {error}",
                    partial_text=reader.text,
                    request=error.request,
                ) from error
            if text:
                return text
        raise StopAsyncIteration

    async def _open(self, attempts: Attempts) -> None:
        """Send until a response gives its first text (or ends), retrying what may be."""
        exchange = self._exchange
        timeouts = exchange.timeouts
        total_deadline = attempts.deadline(timeouts.total)
        while True:
            if exchange.gate is not None:
                await exchange.gate.admit(exchange.tokens)
            attempts.count += 1
            deadline = total_deadline
            if timeouts.first_chunk is not None:
                deadline = min(deadline, anyio.current_time() + timeouts.first_chunk)
            try:
                try:
                    self._pending = await run_until(deadline, self._first_text)
                except DeadlineExpired:
                    first = deadline < total_deadline
                    error = self._timeout_error(first=first)
                    if first and isinstance(self._reader, ReplyReader):
                        self._reader.blame(error)  # the server was too slow to start
                    raise error from None
                return
            except APIError as error:
                if isinstance(error, APIStatusError):
                    self._status = error.status_code
                await self._close()
                delay = plan_retry(error, exchange, attempts)
                if delay is None:
                    raise
            await anyio.sleep(delay)

    async def _first_text(self) -> str | None:
        exchange = self._exchange
        attempts = self._attempts
        assert attempts is not None  # set on entering
        self._reader = None
        last = attempts.ticket
        ticket = attempts.ticket = await exchange.take(None if last is None else last.endpoint)
        logger.debug("POST %s (attempt %d)", ticket.endpoint.url, attempts.count)
        self._sent_at = anyio.current_time()
        reader = self._reader = await exchange.open(ticket)
        self._status = reader.status_code
        while not reader.done:
            text = await reader.next_text()
            if text:
                self._first_at = anyio.current_time()
                return text
        return None

    def _timeout_error(self, *, first: bool) -> APITimeoutError:
        timeouts = self._exchange.timeouts
        reader = self._reader
        info = reader.info if isinstance(reader, ReplyReader) else self._exchange.info
        if first:
            return APITimeoutError(
                f"first-chunk timeout: no text within {timeouts.first_chunk:g} s",
                request=info,
            )
        return APITimeoutError(
            f"total timeout: the reply did not finish within {timeouts.total:g} s",
            request=info,
        )

    async def _close(self) -> None:
        if self._reader is not None:
            await self._reader.aclose()


async def complete_reply(exchange: Exchange, attempts: Attempts) -> Reply:
    """Return the whole reply, retrying a reply cut part-way as the policy allows.

    With a cache, a reply stored before is given instead, and of identical requests in
    flight at once only the first is sent. ``attempts.stream`` is each attempt's stream (or
    the cache's) in turn, so a caller whose request failed, or who cancelled this, can still
    read what arrived.
    """
    cache = exchange.cache
    if cache is None:
        return await _send_until_whole(exchange, attempts)
    async with cache.claim(exchange.cache_key) as stored:
        if stored is None:
            # The reply's clock starts when sending does, not while an identical request
            # was in flight.
            attempts.started = anyio.current_time()
            return await _send_until_whole(exchange, attempts)
        stream = attempts.stream = ChatStream(exchange, attempts, replay=StoredReader(stored))
        async with stream:
            return Reply.of(stream)


async def _send_until_whole(exchange: Exchange, attempts: Attempts) -> Reply:
    while True:
        # The cache, if any, was looked up already.
        stream = attempts.stream = ChatStream(exchange, attempts, look_up=False)
        async with stream as reply:
            try:
                async for _ in reply:
                    pass
            except IncompleteStreamError as exc:
                error = exc
            else:
                return Reply.of(reply)
        delay = plan_retry(error, exchange, attempts)
        if delay is None:
            raise error
        await anyio.sleep(delay)
