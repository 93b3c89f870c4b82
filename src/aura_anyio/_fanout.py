"""Fan-out: many prompts through one client, with structured concurrency and bounded memory.

Each worker, when free, pulls the next request from the input itself, so no more than
``max_concurrency`` requests exist at once, and a sync input costs no task and no task switch
per item; workers send results over a channel that holds ``max_concurrency`` of them, so a
worker rarely waits to hand one over, and a slow consumer slows the workers down instead of
piling results up (memory stays O(``max_concurrency``)). The task group lives in the async
context manager, never across a ``yield``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import AsyncIterable, Iterable

import anyio
import anyio.lowlevel

from ._deadlines import DeadlineExpired, deadline_after, run_until
from ._exceptions import APITimeoutError, AuraError, InvalidRequestError
from ._models import ChatRequest, ChatResult, to_request
from ._numbers import check_positive, is_int
from ._ratelimit import Limiter, RateLimiter
from ._stream import Attempts, Reply, complete_reply
from ._task_groups import hosted_task_group
from ._tokens import used_tokens
from ._usage import detail_count

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator

    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._exchange import Exchange

__all__ = ["DEFAULT_MAX_CONCURRENCY", "FanOut", "FanOutLimits", "FanOutProgress", "Requests"]

DEFAULT_MAX_CONCURRENCY = 16

#: What a fan-out takes: a sync or async iterable of ``ChatRequest``s, message lists or
#: prompt strings, in any mix.
Requests = Iterable[object] | AsyncIterable[object]
#: Builds the exchange for one request; the client's, with the fan-out's gate.
MakeExchange = typing.Callable[[ChatRequest, Limiter], "Exchange"]


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class FanOutProgress:
    """Counts of a fan-out so far, for a progress display.

    Attributes:
        started: Requests taken from the input.
        done: Requests finished, whether they succeeded or not.
        failed: Finished requests whose result has an error.
        retried: Extra attempts made by finished requests.
        in_flight: Requests started and not yet finished.
        prompt_tokens: The prompt tokens finished requests' replies reported (``usage``);
            replies from the cache cost none and are not counted.
        completion_tokens: The completion tokens they reported.
        cached_tokens: Of the prompt tokens, those the server's prompt cache served, where
            the replies said (``usage.prompt_tokens_details.cached_tokens``).
        reasoning_tokens: Of the completion tokens, those a reasoning model thought with,
            where the replies said (``usage.completion_tokens_details.reasoning_tokens``).
        cached: Finished requests answered from the client's cache.
    """

    started: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class FanOutLimits:
    """How hard a fan-out may press the servers; checked once, when made.

    Attributes:
        max_concurrency: The most requests in flight at once.
        requests_per_second: Attempts a second, retries included; ``None``: no limit.
        request_timeout: Seconds each request may take, retries included; ``None``: none.
        tokens_per_minute: A budget of tokens a minute for every attempt together;
            ``None``: no limit.
        limiter: Limits shared with other fan-outs, instead of the two above.

    Raises:
        InvalidRequestError: A limit is invalid, or a rate is given beside a limiter.
    """

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    requests_per_second: float | None = None
    request_timeout: float | None = None
    tokens_per_minute: float | None = None
    limiter: Limiter | None = None

    def __post_init__(self) -> None:
        concurrency: object = self.max_concurrency
        if not is_int(concurrency) or concurrency < 1:
            raise InvalidRequestError(f"max_concurrency must be an int >= 1, got {concurrency!r}")
        check_positive("requests_per_second", self.requests_per_second)
        check_positive("request_timeout", self.request_timeout)
        check_positive("tokens_per_minute", self.tokens_per_minute)
        if self.limiter is not None and not isinstance(self.limiter, Limiter):
            raise InvalidRequestError(
                f"limiter must be a Limiter (a RateLimiter, say), got {type(self.limiter).__name__}"
            )
        if self.limiter is not None and (
            self.requests_per_second is not None or self.tokens_per_minute is not None
        ):
            # Which would hold? Neither answer is right often enough to guess it.
            raise InvalidRequestError(
                "requests_per_second and tokens_per_minute cannot be given beside a limiter; "
                "give them to the RateLimiter"
            )

    def check(self, requests: object, max_connections: int | None) -> None:
        """Check that ``requests`` is an input these limits can be applied to, by a client
        that has at most ``max_connections`` connections (``None``: no limit of its own).

        Raises:
            InvalidRequestError: It is not.
        """
        if not isinstance(requests, (Iterable, AsyncIterable)) or isinstance(
            requests, (str, bytes)
        ):
            raise InvalidRequestError(
                "requests must be an iterable or async iterable of ChatRequest, message lists "
                f"or prompt strings, got {type(requests).__name__}"
            )
        if max_connections is not None and self.max_concurrency > max_connections:
            raise InvalidRequestError(
                f"max_concurrency={self.max_concurrency} is more than the client's "
                f"max_connections={max_connections}; raise max_connections to match"
            )


@typing.final
class FanOut(anyio.AsyncContextManagerMixin):
    """The results of a fan-out, as each request finishes: ``async for result in results``.

    Made by :meth:`AuraClient.fan_out`, and used as an async context manager: leaving the
    block, early or not, cancels what is still running and closes its connections.
    """

    def __init__(
        self,
        make_exchange: MakeExchange,
        requests: Requests,
        limits: FanOutLimits,
    ) -> None:
        self._make_exchange = make_exchange
        self._requests = requests
        self._limits = limits
        # Counted here, and copied into a FanOutProgress only when someone asks.
        self._started = self._done = self._failed = self._retried = 0
        self._prompt_tokens = self._completion_tokens = self._cached = 0
        self._cached_tokens = self._reasoning_tokens = 0
        self._failure: BaseException | None = None
        self._task_group: TaskGroup | None = None
        self._results: MemoryObjectReceiveStream[ChatResult] | None = None
        self._entered = False

    @property
    def progress(self) -> FanOutProgress:
        """The counts so far."""
        return FanOutProgress(
            started=self._started,
            done=self._done,
            failed=self._failed,
            retried=self._retried,
            in_flight=self._started - self._done,
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            cached=self._cached,
            cached_tokens=self._cached_tokens,
            reasoning_tokens=self._reasoning_tokens,
        )

    @contextlib.asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[FanOut, None]:
        if self._entered:
            raise RuntimeError("a fan-out can be entered only once; call fan_out() again")
        self._entered = True
        limits = self._limits
        gate = limits.limiter  # shared with other fan-outs, or one of its own
        if gate is None:
            gate = RateLimiter(limits.requests_per_second, limits.tokens_per_minute)
        results_in, results_out = anyio.create_memory_object_stream[ChatResult](
            limits.max_concurrency
        )
        self._results = results_out
        try:
            async with contextlib.AsyncExitStack() as stack:
                source = _Source(self._requests, stack)  # an async input is closed after
                async with hosted_task_group() as task_group:
                    self._task_group = task_group
                    with results_in:
                        for _ in range(limits.max_concurrency):
                            task_group.start_soon(self._work, gate, source, results_in.clone())
                    yield self
        finally:
            # Only now: closed earlier, it would wake a worker waiting to hand over a result
            # with BrokenResourceError instead of the cancellation.
            results_out.close()
        # _fail() cancels the task group, whose scope also covers the caller's block: its
        # cancellation, absorbed by the group, makes way for the failure.
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def __aiter__(self) -> FanOut:
        return self

    async def __anext__(self) -> ChatResult:
        results = self._results
        if results is None:
            raise RuntimeError("iterate a fan-out inside its block: async with client.fan_out(...)")
        try:
            # A result that waits is taken without a turn of the event loop, so that the
            # results that came in one turn are not handed over one turn each (the workers
            # waiting meanwhile); a cancellation is still taken first.
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                return results.receive_nowait()
            except anyio.WouldBlock:
                return await results.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            # Every result was received, or the block has ended. A failure never ends up
            # here: it cancels the block, and __aexit__ raises it.
            raise StopAsyncIteration from None

    def _fail(self, failure: BaseException) -> None:
        """Stop everything for an exception that is not a request's own AuraError."""
        self._failure = self._failure or failure  # the first one is the cause of the rest
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()

    async def _work(
        self, gate: Limiter, source: _Source, results: MemoryObjectSendStream[ChatResult]
    ) -> None:
        async with results:
            while True:
                try:
                    job = await source.take()
                    if job is None:
                        return
                    result = await self._run(*job, gate)
                except Exception as exc:  # the caller's input failed, or a bug: it propagates
                    self._fail(exc)
                    return
                try:  # to the consumer, or the channel's buffer, without a task switch
                    results.send_nowait(result)
                except anyio.WouldBlock:
                    await results.send(result)

    async def _run(self, index: int, request: ChatRequest, gate: Limiter) -> ChatResult:
        start = anyio.current_time()
        attempts = Attempts(started=start)
        reply: Reply | None = None
        error: AuraError | None = None
        tokens = 0  # what the request took from the token budget
        self._started += 1
        try:
            exchange = self._make_exchange(request, gate)
            tokens = exchange.tokens
            try:
                reply = await run_until(
                    deadline_after(self._limits.request_timeout), complete_reply, exchange, attempts
                )
            except DeadlineExpired:
                error = attempts.end(
                    APITimeoutError(
                        "request_timeout: no whole reply within "
                        f"{self._limits.request_timeout:g} s",
                        request=exchange.info,
                    )
                )
        except AuraError as exc:
            error = exc
        if reply is None:  # what the last attempt knew when the request failed
            reply = attempts.reply()
        self._done += 1
        self._failed += error is not None
        self._retried += max(0, attempts.count - 1)
        usage = None if reply is None else reply.usage
        cached = reply is not None and reply.cached
        self._cached += cached
        if usage is not None and not cached:
            self._prompt_tokens += usage.get("prompt_tokens", 0)
            self._completion_tokens += usage.get("completion_tokens", 0)
            self._cached_tokens += detail_count(usage, "prompt_tokens_details", "cached_tokens")
            self._reasoning_tokens += detail_count(
                usage, "completion_tokens_details", "reasoning_tokens"
            )
            used = used_tokens(usage)
            if used is not None:
                gate.correct(tokens, used)  # the server's count settles the estimate
        previous = tuple(attempts.errors)
        if reply is None:
            return ChatResult(
                index,
                request,
                "",
                error,
                attempts.count,
                anyio.current_time() - start,
                previous_errors=previous,
            )
        return ChatResult(
            index,
            request,
            reply.text,
            error,
            attempts.count,
            anyio.current_time() - start,
            finish_reason=reply.finish_reason,
            usage=usage,
            endpoint=reply.endpoint,
            tool_calls=reply.tool_calls,
            cached=cached,
            ttft=reply.ttft,
            previous_errors=previous,
            reasoning=reply.reasoning,
        )


_END = object()


@typing.final
class _Source:
    """The input of a fan-out, taken a request at a time by whichever worker is free.

    An async input is read by one worker at a time (an async generator cannot be awaited by
    two) and closed, if it can be, by ``stack``.
    """

    __slots__ = ("_async_items", "_index", "_items", "_lock")

    def __init__(self, requests: Requests, stack: contextlib.AsyncExitStack) -> None:
        self._index = 0
        self._items: Iterator[object] | None = None
        self._async_items: AsyncIterator[object] | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        if isinstance(requests, AsyncIterable):
            iterator = requests.__aiter__()
            aclose: Callable[[], Awaitable[object]] | None = getattr(iterator, "aclose", None)
            if aclose is not None:
                stack.push_async_callback(aclose)
            self._async_items = iterator
        else:
            self._items = iter(requests)

    async def take(self) -> tuple[int, ChatRequest] | None:
        """The next request and its index in the input; ``None`` once the input has ended.

        Raises:
            Exception: Whatever the input raised, or :class:`InvalidRequestError` for an item
                that is not a request.
        """
        items = self._items
        if items is not None:
            item = next(items, _END)
        else:
            async with self._lock:
                async_items = self._async_items
                if async_items is None:
                    return None
                try:
                    item = await async_items.__anext__()
                except StopAsyncIteration:
                    item = _END
        if item is _END:
            self._items = self._async_items = None  # ended: no worker asks the input again
            return None
        index = self._index
        self._index += 1
        return index, to_request(item)
