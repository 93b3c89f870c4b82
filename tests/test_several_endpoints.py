"""One client over several reference servers (DESIGN section 8), on every backend.

Each server is a real loopback server: the spread, a server killed mid-fan-out, one that
always answers 503, a slow one and one that answers 429 are each the behaviour a user of a
few vLLM or OpenChat replicas would see.
"""

from __future__ import annotations

import contextlib
import typing

import anyio
import anyio.abc
import pytest

from aura_anyio import (
    AuraClient,
    InvalidRequestError,
    RateLimitError,
    RetryPolicy,
    Timeouts,
    _routing,
)
from aura_anyio.testing import Fault, MockResponse, MockTransport, ReferenceServer

from .helpers import FAST_RETRIES, reply_to

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from aura_anyio import ChatResult
    from aura_anyio._transports.base import Request
    from aura_anyio._wire import WireName


@contextlib.asynccontextmanager
async def servers(*made: ReferenceServer) -> AsyncIterator[list[ReferenceServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(server) for server in made]


def client_for(
    running: Sequence[ReferenceServer], wire: WireName = "aura", **kwargs: typing.Any
) -> AuraClient:
    return AuraClient(
        [server.base_url for server in running], max_retries=FAST_RETRIES, wire=wire, **kwargs
    )


def assert_every_reply(results: Sequence[ChatResult], count: int) -> None:
    """Every request ended once, well, with its own reply."""
    assert sorted(result.index for result in results) == list(range(count))
    failed = [result.error for result in results if not result.ok]
    assert not failed
    for result in results:
        assert result.text == reply_to(f"prompt {result.index}")


@pytest.mark.network
async def test_healthy_servers_share_the_requests_evenly(wire: WireName) -> None:
    async with servers(*(ReferenceServer() for _ in range(3))) as running:
        async with client_for(running, wire) as client:
            results = await client.gather([f"prompt {n}" for n in range(150)], max_concurrency=12)
            figures = client.endpoints
    assert_every_reply(results, 150)
    for server, endpoint in zip(running, figures, strict=True):
        assert 0.25 <= len(server.requests) / 150 <= 0.42
        assert endpoint.url == server.base_url
        assert endpoint.done == len(server.requests)
        assert endpoint.in_flight == endpoint.failed == 0
        assert endpoint.benched_until is None
    served = {server.base_url: len(server.requests) for server in running}
    for server in running:
        counted = sum(result.endpoint == server.base_url for result in results)
        assert counted == served[server.base_url]


@pytest.mark.network
async def test_a_server_killed_mid_fan_out_costs_no_request_and_is_probed_when_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_routing, "FIRST_COOL_DOWN", 0.2)
    doomed = ReferenceServer(delay=0.001)
    kill = anyio.Event()

    async def host(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with doomed:
            task_status.started()
            await kill.wait()

    async with servers(ReferenceServer(), ReferenceServer()) as running:
        async with anyio.create_task_group() as tasks:
            await tasks.start(host)
            port = doomed.port
            async with client_for([*running, doomed]) as client:
                results: list[ChatResult] = []
                async with client.fan_out(
                    (f"prompt {n}" for n in range(300)), max_concurrency=12
                ) as finished:
                    async for result in finished:
                        results.append(result)
                        if len(results) == 100:
                            kill.set()  # mid-reply for some requests
                assert_every_reply(results, 300)
                figures = client.endpoints[2]
                assert figures.failed >= _routing.FAILURES_TO_BENCH
                assert figures.benched_until is not None
                served_before = figures.done
                async with ReferenceServer(port=port) as revived:
                    # The bench ends; a probe finds the server back, and it serves again.
                    with anyio.fail_after(30):
                        while not revived.requests or client.endpoints[2].benched_until is not None:
                            await client.gather(["prompt 0"] * 6, max_concurrency=6)
                            await anyio.sleep(0.05)
                    assert figures.done > served_before
                    assert all(result.ok for result in await client.gather(["x"] * 30))
                    assert figures.benched_until is None


@pytest.mark.network
async def test_a_server_that_always_answers_503_is_benched_and_no_request_fails() -> None:
    broken = ReferenceServer(fault=Fault(status=503))
    async with servers(ReferenceServer(), broken, ReferenceServer()) as running:
        async with client_for(running) as client:
            results = await client.gather([f"prompt {n}" for n in range(300)], max_concurrency=6)
            figures = client.endpoints[1]
    assert_every_reply(results, 300)
    assert all(result.endpoint != broken.base_url for result in results)
    assert figures.done == 0
    assert figures.failed == len(broken.requests) >= _routing.FAILURES_TO_BENCH
    assert figures.benched_until is not None
    # Benched after three, it took only what was in flight then, and a probe or two.
    assert len(broken.requests) < 30


@pytest.mark.network
async def test_a_slow_server_ends_up_with_fewer_requests() -> None:
    slow = ReferenceServer(delay=0.1)
    async with servers(ReferenceServer(), slow, ReferenceServer()) as running:
        async with client_for(running) as client:
            results = await client.gather([f"prompt {n}" for n in range(150)], max_concurrency=6)
    assert_every_reply(results, 150)
    fast = [len(server.requests) for server in running if server is not slow]
    assert len(slow.requests) * 2 < min(fast)


@pytest.mark.network
async def test_a_429_pauses_that_server_alone_and_the_retry_goes_elsewhere_at_once() -> None:
    limited = ReferenceServer(fault=Fault(status=429, retry_after="30"))
    async with servers(ReferenceServer(), limited) as running:
        async with client_for(running) as client:
            started = anyio.current_time()
            with anyio.fail_after(20):  # far less than the 30 s the server asked for
                results = await client.gather(
                    [f"prompt {n}" for n in range(100)], max_concurrency=4
                )
            elapsed = anyio.current_time() - started
            figures = client.endpoints[1]
            # The pause holds: a request now goes to the other server, not to this one.
            async with client.stream([{"role": "user", "content": "prompt 0"}]) as reply:
                assert reply.endpoint == running[0].base_url
    assert_every_reply(results, 100)
    assert elapsed < 20
    # Only the requests in flight when the first 429 came went there.
    assert 1 <= len(limited.requests) <= 4
    assert figures.failed == 0  # a 429 is a pause, not a failure
    assert figures.benched_until is None
    retried = [result for result in results if result.attempts == 2]
    assert len(retried) == len(limited.requests)
    assert all(result.endpoint == running[0].base_url for result in results)


@pytest.mark.network
async def test_stream_and_complete_name_the_server_and_a_retry_moves_on() -> None:
    broken = ReferenceServer(fault=Fault(status=502, times=1))
    async with servers(broken, ReferenceServer()) as running:
        async with client_for(running) as client:
            async with client.stream([{"role": "user", "content": "prompt 1"}]) as reply:
                text = "".join([piece async for piece in reply])
            assert reply.attempts == 2  # the first went to the broken one, the retry not
            assert reply.endpoint == running[1].base_url
            assert text == reply_to("prompt 1")
            assert await client.complete([{"role": "user", "content": "prompt 2"}]) == reply_to(
                "prompt 2"
            )
            assert [endpoint.done for endpoint in client.endpoints] == [1, 1]
            assert [endpoint.failed for endpoint in client.endpoints] == [1, 0]


@pytest.mark.network
async def test_one_dead_server_of_one_is_never_benched() -> None:
    async with ReferenceServer() as server:
        url = server.base_url
    async with AuraClient(url, max_retries=FAST_RETRIES, timeout=Timeouts(connect=5)) as client:
        for _ in range(2 * _routing.FAILURES_TO_BENCH):
            with pytest.raises(Exception, match="could not connect"):
                await client.complete([{"role": "user", "content": "hi"}])
        (endpoint,) = client.endpoints
    assert endpoint.failed == 2 * _routing.FAILURES_TO_BENCH * 3
    assert endpoint.benched_until is None


def test_urls_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(InvalidRequestError, match=r"base_url\[1\] repeats base_url\[0\]"):
        AuraClient(["http://a:1", "http://a:1/"])
    with pytest.raises(InvalidRequestError, match="empty list"):
        AuraClient([])
    with pytest.raises(InvalidRequestError, match=r"base_url\[1\] must be an http"):
        AuraClient(["http://a:1", "ftp://b"])
    with pytest.raises(InvalidRequestError, match=r"base_url\[1\] must be a str, got int"):
        AuraClient(["http://a:1", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="str or a list"):
        AuraClient({"http://a:1"})  # type: ignore[arg-type]
    client = AuraClient(("http://a:1", "http://b:2/"))
    assert client.base_urls == ("http://a:1", "http://b:2")
    assert client.base_url == "http://a:1"
    assert "['http://a:1', 'http://b:2']" in repr(client)


# --- with a mock transport: what loopback servers cannot show on cue ------------------------

_EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
_URLS = ["https://a.test", "https://b.test"]


async def test_spent_rate_limit_headers_pause_that_server_alone() -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}
    served: list[str] = []

    def handler(request: Request) -> MockResponse:
        served.append(request.url)
        first = len(served) == 1
        return MockResponse(200, chunks=[_EVENTS], headers=spent if first else None)

    async with AuraClient(_URLS, transport=MockTransport(handler), wire="openai") as client:
        with anyio.fail_after(20):  # far less than the 30 s the first server asked for
            results = await client.gather(["x"] * 5, max_concurrency=1)
    assert all(result.ok for result in results)
    paused = served[0]
    assert paused not in served[1:]  # held off until its reset, the other took the rest
    assert len(served) == 5


async def test_a_429_on_the_last_attempt_is_the_error_and_pauses_its_server() -> None:
    served: list[str] = []

    def handler(request: Request) -> MockResponse:
        served.append(request.url)
        return MockResponse(429, headers={"retry-after": "0.2"})

    policy = RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.01)
    async with AuraClient(_URLS, transport=MockTransport(handler), max_retries=policy) as client:
        with pytest.raises(RateLimitError):
            await client.complete([{"role": "user", "content": "x"}])
        assert sorted(served) == [f"{url}/api/chat" for url in _URLS]  # the retry: the other
        started = anyio.current_time()
        with pytest.raises(RateLimitError):  # both paused: it waits for the first to resume
            await client.complete([{"role": "user", "content": "x"}])
        assert anyio.current_time() - started >= 0.1
    assert [endpoint.failed for endpoint in client.endpoints] == [0, 0]


def test_the_environment_must_agree_on_a_proxy_for_every_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "a.test")
    with pytest.raises(InvalidRequestError, match="some of its URLs through a proxy"):
        AuraClient(_URLS)
    monkeypatch.setenv("NO_PROXY", "a.test,b.test")
    AuraClient(_URLS)  # neither through the proxy: one way for both


async def test_a_5xx_without_retry_after_moves_on_without_pausing() -> None:
    served: list[str] = []

    def handler(request: Request) -> MockResponse:
        served.append(request.url)
        if len(served) == 1:
            return MockResponse(500)
        return MockResponse(200, chunks=[_EVENTS])

    async with AuraClient(_URLS, transport=MockTransport(handler), wire="openai") as client:
        assert await client.complete([{"role": "user", "content": "x"}]) == "ok"
        assert served[0] != served[1]
        first = client.endpoints[0 if served[0].startswith(_URLS[0]) else 1]
        assert first.failed == 1


async def test_spent_rate_limit_headers_with_one_server_outside_a_fan_out_change_nothing() -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}

    def handler(request: Request) -> MockResponse:
        return MockResponse(200, chunks=[_EVENTS], headers=spent)

    transport = MockTransport(handler)
    async with AuraClient(_URLS[0], transport=transport, wire="openai") as client:
        with anyio.fail_after(20):  # nothing to hold off: no fan-out, no other server
            for _ in range(3):
                assert await client.complete([{"role": "user", "content": "x"}]) == "ok"
