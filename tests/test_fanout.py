"""fan_out() and gather() against the reference server, on every backend."""

from __future__ import annotations

import logging
import math
import typing
from collections.abc import Sequence

import anyio
import pytest

from aura_anyio import (
    APITimeoutError,
    AuraClient,
    ChatRequest,
    ChatResult,
    FanOutProgress,
    InvalidRequestError,
    RateLimiter,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from aura_anyio.testing import Fault, MockResponse, MockTransport, Outcome, ReferenceServer

from .helpers import FAST_RETRIES, reply_to, until

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from aura_anyio._transports.base import Request
    from aura_anyio._wire import WireName
    from aura_anyio.testing import ReceivedRequest


def client_for(server: ReferenceServer, **kwargs: typing.Any) -> AuraClient:
    return AuraClient(server.base_url, max_retries=FAST_RETRIES, **kwargs)


class Times(list[float]):
    """A reference server's reply function that records when each request arrived."""

    def __call__(self, request: ReceivedRequest) -> str:
        self.append(anyio.current_time())
        return "ok"


class Arrivals(list[tuple[float, str]]):
    """A reference server's reply function that records when each request arrived, and the
    last message it carried."""

    def __call__(self, request: ReceivedRequest) -> str:
        self.append((anyio.current_time(), request.kept_messages[-1]["content"]))
        return "ok"


@pytest.mark.network
async def test_gather_keeps_input_order_and_every_kind_of_input() -> None:
    requests: list[object] = [
        "plain prompt",
        [{"role": "user", "content": "a message list"}],
        ChatRequest([{"role": "user", "content": "a request"}], id="r3", temperature=0.1),
        *[f"prompt {n}" for n in range(20)],
    ]
    async with ReferenceServer(delay=0.001) as server, client_for(server) as client:
        results = await client.gather(requests, max_concurrency=5)
    assert [result.index for result in results] == list(range(len(requests)))
    assert all(result.ok and result.attempts == 1 for result in results)
    assert results[0].text == reply_to("plain prompt")
    assert results[1].text == reply_to("a message list")
    assert results[2].request.id == "r3"
    assert results[22].text == reply_to("prompt 19")
    assert all(result.elapsed > 0 for result in results)
    assert server.max_in_flight <= 5


@pytest.mark.network
async def test_the_concurrency_limit_holds_and_is_used() -> None:
    async with ReferenceServer(delay=0.01) as server, client_for(server) as client:
        results = await client.gather([f"p{n}" for n in range(40)], max_concurrency=7)
    assert len(results) == 40
    assert server.max_in_flight == 7  # counted by the server: never more, and all used


@pytest.mark.network
async def test_one_failure_never_stops_the_others() -> None:
    bad = Fault(status=400, reason="Bad prompt")
    flaky = Fault(status=503, times=1)
    requests: list[object] = [f"ok {n}" for n in range(10)]
    requests[3] = f"bad {bad.marker()}"
    requests[6] = f"flaky {flaky.marker()}"
    requests.insert(8, 42)  # not a message list: an InvalidRequestError result
    async with ReferenceServer() as server, client_for(server) as client:
        async with client.fan_out(requests, max_concurrency=4) as results:
            collected = [result async for result in results]
            progress = results.progress
    by_index = {result.index: result for result in collected}
    assert len(by_index) == 11
    assert by_index[3].error is not None
    assert by_index[3].error.__class__.__name__ == "BadRequestError"
    assert "Bad prompt" in str(by_index[3].error)
    assert by_index[6].ok
    assert by_index[6].attempts == 2
    assert isinstance(by_index[8].error, InvalidRequestError)
    assert by_index[8].attempts == 0
    assert sum(result.ok for result in collected) == 9
    assert progress.started == progress.done == 11
    assert (progress.failed, progress.retried, progress.in_flight) == (2, 1, 0)


@pytest.mark.network
async def test_the_input_is_pulled_lazily() -> None:
    pulled = 0

    def prompts() -> Iterator[str]:
        nonlocal pulled
        for n in range(100_000):
            pulled += 1
            yield f"p{n}"

    async with ReferenceServer() as server, client_for(server) as client:
        async with client.fan_out(prompts(), max_concurrency=16) as results:
            count = 0
            async for _ in results:
                count += 1
                if count == 30:
                    break
    assert pulled < 200


@pytest.mark.debug
@pytest.mark.network
async def test_an_async_input_is_closed_when_the_block_ends() -> None:
    closed = False

    async def prompts() -> AsyncIterator[str]:
        nonlocal closed
        try:
            for n in range(1000):
                yield f"p{n}"
        finally:
            closed = True

    async with ReferenceServer() as server, client_for(server) as client:
        async with client.fan_out(prompts(), max_concurrency=4) as results:
            first = await results.__anext__()
    assert first.ok
    assert closed


@pytest.mark.debug
@pytest.mark.network
async def test_leaving_early_cancels_the_rest_and_closes_their_connections() -> None:
    stalled = [f"p{n} {Fault(stall_after=5).marker()}" for n in range(8)]
    async with ReferenceServer() as server:
        async with client_for(server, timeout=Timeouts(read=60)) as client:
            async with client.fan_out(["quick", *stalled], max_concurrency=9) as results:
                first = await results.__anext__()
                await server.wait_until(lambda: server.in_flight == 8)
            assert first.text == reply_to("quick")
            # Every stalled response was cut by the client the moment the block ended.
            await server.wait_until(lambda: server.aborted == 8, timeout=1)
            assert Outcome.PENDING not in server.outcomes


@pytest.mark.debug
@pytest.mark.network
async def test_leaving_while_every_worker_waits_to_hand_over_a_result() -> None:
    async with ReferenceServer() as server, client_for(server) as client:
        async with client.fan_out([f"p{n}" for n in range(20)], max_concurrency=4) as results:
            first = await results.__anext__()
            # Eight more replies finish meanwhile: four fill the channel's buffer (as many as
            # the workers), and every worker waits for the consumer with one it cannot hand
            # over, starting no other.
            await until(lambda: results.progress.done == 9)
            await anyio.sleep(0.2)
            assert results.progress == FanOutProgress(started=9, done=9)
    assert first.ok


@pytest.mark.debug
@pytest.mark.network
async def test_a_cancelled_consumer_takes_no_result_and_none_is_lost() -> None:
    async with ReferenceServer() as server, client_for(server) as client:
        async with client.fan_out([f"p{n}" for n in range(8)], max_concurrency=4) as results:
            await until(lambda: results.progress.done >= 4)  # results wait in the channel
            with anyio.CancelScope() as scope:
                scope.cancel()
                await results.__anext__()  # a cancellation is taken before a waiting result
            assert scope.cancelled_caught
            texts = [result.text async for result in results]
    assert sorted(texts) == sorted(reply_to(f"p{n}") for n in range(8))


@pytest.mark.network
async def test_the_callers_exception_comes_out_as_itself() -> None:
    async def fail_while_reading(client: AuraClient) -> None:
        async with client.fan_out([f"p{n}" for n in range(50)]) as results:
            async for _ in results:
                raise KeyError("mine")

    async with ReferenceServer() as server, client_for(server) as client:
        with pytest.raises(KeyError, match="mine"):
            await fail_while_reading(client)
        await server.wait_until(lambda: Outcome.PENDING not in server.outcomes)


@pytest.mark.network
async def test_an_exception_from_the_input_comes_out_as_itself() -> None:
    def prompts() -> Iterator[str]:
        yield "one"
        raise LookupError("the input broke")

    async with ReferenceServer() as server, client_for(server) as client:
        with pytest.raises(LookupError, match="the input broke"):
            await client.gather(prompts())


@pytest.mark.network
async def test_request_timeout_ends_one_request_and_keeps_its_text() -> None:
    slow = f"slow {Fault(stall_after=12).marker()}"
    async with ReferenceServer() as server, client_for(server, timeout=Timeouts(read=60)) as client:
        start = anyio.current_time()
        # Long enough for a fast reply on a loaded machine; only the stall can reach it.
        results = await client.gather(["fast", slow, "fast again"], request_timeout=1.5)
    assert anyio.current_time() - start < 10
    fast, timed_out, again = results
    assert fast.ok
    assert again.ok
    assert isinstance(timed_out.error, APITimeoutError)
    assert "request_timeout" in str(timed_out.error)
    assert timed_out.text == "Hello from t"
    assert 1.5 <= timed_out.elapsed < 10


@pytest.mark.network
async def test_requests_per_second_is_a_token_bucket() -> None:
    arrivals = Times()

    async with ReferenceServer(reply=arrivals) as server, client_for(server) as client:
        start = anyio.current_time()
        results = await client.gather(
            [f"p{n}" for n in range(30)], max_concurrency=30, requests_per_second=20
        )
    assert all(result.ok for result in results)
    # A burst of one second's worth (20), then one every 1/20 s: the last 10 take 0.5 s.
    assert arrivals[-1] - start >= 0.45
    # No window of one second ever saw more than a burst plus a second's worth.
    for first in arrivals:
        assert sum(first <= at < first + 1 for at in arrivals) <= 40


@pytest.mark.network
async def test_fan_outs_that_share_a_limiter_share_its_rate() -> None:
    arrivals = Times()

    shared = RateLimiter(requests_per_second=2)  # a burst of 2, then one each 1/2 s
    async with ReferenceServer(reply=arrivals) as server, client_for(server) as client:

        async def run(prompts: list[str]) -> None:
            results = await client.gather(prompts, max_concurrency=2, limiter=shared)
            assert all(result.ok for result in results)

        start = anyio.current_time()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run, ["a1", "a2"])
            task_group.start_soon(run, ["b1", "b2"])
    # Each alone would be one burst; together, the last two wait their turn.
    assert len(arrivals) == 4
    assert arrivals[-1] - start >= 0.9


@pytest.mark.network
async def test_a_429_pauses_every_fan_out_that_shares_the_limiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aura_anyio")
    arrivals = Arrivals()

    limited = f"limited {Fault(status=429, retry_after='0.5', times=1).marker()}"
    shared = RateLimiter()  # no rate: only the pause is shared

    async with ReferenceServer(reply=arrivals) as server, client_for(server) as client:

        async def other() -> None:
            await until(lambda: "retrying POST" in caplog.text)
            assert (await client.gather(["other"], limiter=shared))[0].ok

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(other)
            assert (await client.gather([limited], limiter=shared))[0].ok
    rejected_at = arrivals[0][0]
    assert [content for _, content in arrivals].count("other") == 1
    assert next(at for at, content in arrivals if content == "other") >= rejected_at + 0.45


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"requests_per_second": 0},
            "requests_per_second must be a positive number or None, got 0",
        ),
        ({"tokens_per_minute": math.inf}, "tokens_per_minute must be a positive number"),
        ({"requests_per_second": "5"}, "requests_per_second must be a positive number"),
    ],
)
def test_a_rate_limiters_limits_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.network
async def test_a_429_pauses_every_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aura_anyio")
    arrivals = Arrivals()

    limited = f"limited {Fault(status=429, retry_after='0.5', times=1).marker()}"

    async def prompts() -> AsyncIterator[str]:
        yield limited
        # The rest come once the client has seen the 429 (it logs the retry after pausing).
        await until(lambda: "retrying POST" in caplog.text)
        for n in range(6):
            yield f"p{n}"

    async with ReferenceServer(reply=arrivals) as server, client_for(server) as client:
        results = await client.gather(prompts(), max_concurrency=3)
    assert all(result.ok for result in results)
    assert [content for _, content in arrivals].count(limited) == 2  # the 429, then the retry
    rejected_at = arrivals[0][0]
    later = [at for at, content in arrivals if content != limited]
    assert len(later) == 6
    assert min(later) >= rejected_at + 0.45  # none went out while the server asked to wait


@pytest.mark.network
async def test_openchat_uis_hidden_429_pauses_every_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # openchat-ui turns its upstream's 429 into "500 Rate limit reached ...", without a
    # Retry-After: the fan-out pauses for the backoff of the request that saw it.
    caplog.set_level(logging.INFO, logger="aura_anyio")
    arrivals = Arrivals()

    reason = "Rate limit reached for gpt-4 in organization org-x on tokens per min."
    limited = f"limited {Fault(status=500, reason=reason, times=1).marker()}"

    async def prompts() -> AsyncIterator[str]:
        yield limited
        await until(lambda: "retrying POST" in caplog.text)
        for n in range(6):
            yield f"p{n}"

    backoff = RetryPolicy(max_retries=2, initial_delay=0.5, max_delay=0.5)  # jitter: >= 0.375
    async with ReferenceServer(reply=arrivals) as server:
        async with AuraClient(server.base_url, max_retries=backoff) as client:
            results = await client.gather(prompts(), max_concurrency=3)
    assert all(result.ok for result in results)
    assert [content for _, content in arrivals].count(limited) == 2
    rejected_at = arrivals[0][0]
    later = [at for at, content in arrivals if content != limited]
    assert len(later) == 6
    assert min(later) >= rejected_at + 0.35  # none went out during the pause


@pytest.mark.network
async def test_a_429_that_asks_too_much_is_a_result() -> None:
    too_long = f"x {Fault(status=429, retry_after='3600').marker()}"
    async with ReferenceServer() as server, client_for(server) as client:
        start = anyio.current_time()
        results = await client.gather([too_long, "fine"])
    assert anyio.current_time() - start < 5
    assert isinstance(results[0].error, RateLimitError)
    assert results[1].ok


@pytest.mark.network
async def test_server_errors_are_retried_then_reported() -> None:
    failing = f"x {Fault(status=500).marker()}"
    async with ReferenceServer() as server, client_for(server) as client:
        (result,) = await client.gather([failing])
    assert isinstance(result.error, ServerError)
    assert result.attempts == 3
    assert result.text == ""
    assert not result.ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be an int >= 1, got 0"),
        ({"max_concurrency": 2.0}, "max_concurrency must be an int >= 1, got 2.0"),
        ({"max_concurrency": 101}, "raise max_connections to match"),
        ({"requests_per_second": 0}, "requests_per_second must be a positive number"),
        ({"request_timeout": -1}, "request_timeout must be a positive number"),
        (
            {"limiter": RateLimiter(5), "requests_per_second": 5},
            "requests_per_second and tokens_per_minute cannot be given beside a limiter",
        ),
        (
            {"limiter": RateLimiter(), "tokens_per_minute": 100},
            "requests_per_second and tokens_per_minute cannot be given beside a limiter",
        ),
        ({"limiter": 5}, "limiter must be a Limiter \\(a RateLimiter, say\\), got int"),
    ],
)
def test_fan_out_arguments_are_checked(kwargs: dict[str, object], message: str) -> None:
    client = AuraClient()
    with pytest.raises(InvalidRequestError, match=message):
        client.fan_out(["x"], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("requests", ["one string", b"bytes", 3, None])
def test_the_input_must_be_an_iterable_of_requests(requests: object) -> None:
    with pytest.raises(InvalidRequestError, match="requests must be an iterable"):
        AuraClient().fan_out(requests)  # type: ignore[arg-type]


@pytest.mark.network
async def test_a_fan_out_is_used_once_and_inside_its_block() -> None:
    async with ReferenceServer() as server, client_for(server) as client:
        fan_out = client.fan_out(["x"])
        with pytest.raises(RuntimeError, match="inside its block"):
            await fan_out.__anext__()
        async with fan_out as results:
            assert [result.ok async for result in results] == [True]
        with pytest.raises(StopAsyncIteration):
            await fan_out.__anext__()  # the block has ended: nothing more
        with pytest.raises(RuntimeError, match="entered only once"):
            async with fan_out:
                pass  # pragma: no cover


def test_chat_result_ok() -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}])
    assert ChatResult(0, request, "hi", None, 1, 0.1).ok
    assert not ChatResult(0, request, "", ServerError("x", status_code=500), 3, 0.1).ok


class BrokenMessages(Sequence[object]):
    """A message list that fails as no message list should: a bug, not bad input."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> object:  # type: ignore[override]
        raise RuntimeError("a broken message list")


@pytest.mark.network
async def test_a_bug_in_a_request_stops_the_fan_out_and_comes_out_as_itself() -> None:
    requests = [ChatRequest(BrokenMessages()), ChatRequest(BrokenMessages()), "fine"]  # type: ignore[arg-type]
    async with ReferenceServer() as server, client_for(server) as client:
        with pytest.raises(RuntimeError, match="a broken message list"):
            await client.gather(requests, max_concurrency=2)


class Countdown:
    """An async iterable that is a plain class, with no aclose()."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __aiter__(self) -> Countdown:
        return self

    async def __anext__(self) -> str:
        if self.count == 0:
            raise StopAsyncIteration
        self.count -= 1
        return f"p{self.count}"


@pytest.mark.network
async def test_any_async_iterable_is_input() -> None:
    async with ReferenceServer() as server, client_for(server) as client:
        results = await client.gather(Countdown(5))
    assert [result.text for result in results] == [reply_to(f"p{n}") for n in (4, 3, 2, 1, 0)]


_EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


async def _arrivals_under(
    headers: dict[str, str], *, wire: WireName, policy: RetryPolicy = FAST_RETRIES
) -> list[float]:
    """When each of three requests of a fan-out (one at a time) reached the server, if the
    first response carries ``headers``."""
    arrivals: list[float] = []

    def handler(request: Request) -> MockResponse:
        arrivals.append(anyio.current_time())
        first = len(arrivals) == 1
        body = _EVENTS if wire == "openai" else b"ok"
        return MockResponse(200, chunks=[body], headers=headers if first else None)

    transport = MockTransport(handler)
    async with AuraClient(
        "https://chat.test", transport=transport, wire=wire, max_retries=policy
    ) as client:
        results = await client.gather(["a", "b", "c"], max_concurrency=1)
    assert [result.text for result in results] == ["ok"] * 3
    return arrivals


SPENT = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "500ms"}


async def test_spent_rate_limit_headers_hold_the_fan_out_off_until_the_reset() -> None:
    arrivals = await _arrivals_under(SPENT, wire="openai")
    assert arrivals[1] - arrivals[0] >= 0.45  # held off until the reset, not refused


async def test_a_long_reset_holds_off_only_as_long_as_a_retry_after_would() -> None:
    spent = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    policy = RetryPolicy(max_retries=0, max_retry_after=0.5)
    arrivals = await _arrivals_under(spent, wire="openai", policy=policy)
    assert 0.45 <= arrivals[1] - arrivals[0] < 60


async def test_the_aura_wire_reads_no_rate_limit_headers() -> None:
    slow = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "120s"}
    arrivals = await _arrivals_under(slow, wire="aura")
    assert arrivals[-1] - arrivals[0] < 60  # not the two minutes the headers ask for


# -- tokens_per_minute ---------------------------------------------------------------------------


@pytest.mark.network
async def test_a_token_budget_holds_after_its_minute_of_burst() -> None:
    # 6,000 tokens a minute: a bucket of 6,000 that refills 100 a second; each request is
    # 400 characters, 100 tokens. So 60 go at once, then one a second.
    arrivals = Times()

    prompt = "x" * 400
    async with ReferenceServer(reply=arrivals) as server, client_for(server) as client:
        start = anyio.current_time()
        results = await client.gather([prompt] * 63, max_concurrency=10, tokens_per_minute=6000)
    assert all(result.ok for result in results)
    arrivals.sort()
    assert arrivals[-1] - start >= 2.5  # the last three waited for the refill
    for first in arrivals:  # never more than the bucket plus what refilled meanwhile
        window = [at for at in arrivals if first <= at < first + 1]
        assert len(window) <= 60 + 1 + 1


@pytest.mark.network
async def test_the_usage_a_reply_reports_settles_its_estimate() -> None:
    # Each request is estimated at max_tokens=1000 and more; the reference server reports
    # about 20. Without the correction ten requests would need over two minutes of budget.
    async with ReferenceServer() as server, client_for(server, wire="openai") as client:
        start = anyio.current_time()
        requests = [
            ChatRequest([{"role": "user", "content": f"hi {n}"}], model="m", max_tokens=1000)
            for n in range(10)
        ]
        results = await client.gather(requests, max_concurrency=2, tokens_per_minute=3000)
    assert all(result.ok and result.usage for result in results)
    assert anyio.current_time() - start < 30


@pytest.mark.network
async def test_a_request_larger_than_the_budget_is_its_own_error() -> None:
    async with ReferenceServer() as server, client_for(server) as client:
        results = await client.gather(["x" * 4004, "small"], tokens_per_minute=1000)
    assert isinstance(results[0].error, InvalidRequestError)
    assert "about 1001 tokens" in str(results[0].error)
    assert "tokens_per_minute=1000" in str(results[0].error)
    assert results[0].attempts == 0
    assert results[1].ok
    assert len(server.requests) == 1  # the large one was never sent


@pytest.mark.parametrize("budget", [0, -5, math.nan, math.inf, True, "100"])
async def test_tokens_per_minute_must_be_a_positive_number(budget: object) -> None:
    async with AuraClient("http://127.0.0.1:9") as client:
        with pytest.raises(InvalidRequestError, match="tokens_per_minute"):
            client.fan_out(["hi"], tokens_per_minute=budget)  # type: ignore[arg-type]


@pytest.mark.network
async def test_progress_totals_the_tokens_replies_report() -> None:
    async with ReferenceServer() as server, client_for(server, wire="openai") as client:
        requests = [ChatRequest([{"role": "user", "content": f"hi {n}"}], model="m") for n in "abc"]
        async with client.fan_out(requests) as results:
            finished = [result async for result in results]
            progress = results.progress
    assert all(result.usage for result in finished)
    assert progress.prompt_tokens == sum(r.usage["prompt_tokens"] for r in finished if r.usage)
    assert progress.completion_tokens == sum(
        r.usage["completion_tokens"] for r in finished if r.usage
    )
    assert progress.completion_tokens > 0


async def test_a_partial_usage_is_still_counted() -> None:
    # A server that reports only completion tokens: progress counts them; the token budget,
    # with no total to settle against, keeps the estimate.
    events = (
        b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}],'
        b'"usage":{"completion_tokens":5}}\n\ndata: [DONE]\n\n'
    )
    transport = MockTransport(lambda request: MockResponse(200, chunks=[events]))
    async with AuraClient("https://chat.test", transport=transport, wire="openai") as client:
        async with client.fan_out(["a", "b"], tokens_per_minute=1000) as results:
            finished = [result async for result in results]
            progress = results.progress
    assert [result.text for result in finished] == ["ok", "ok"]
    assert (progress.prompt_tokens, progress.completion_tokens) == (0, 10)
