"""What a result says about its attempts: the errors before the last (``previous_errors``) and
the time to the first text (``ttft``), over MockTransport on asyncio and trio."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    ChatStream,
    EmptyReplyError,
    IncompleteStreamError,
    RateLimitError,
    ResponseCache,
    ResponseTooLargeError,
    ServerError,
    Timeouts,
)
from aura_anyio._exceptions import attempt_label, end_with_history
from aura_anyio.testing import Fault, ReferenceServer

from .helpers import Pause, Script, drain, make_client, reply

if typing.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aura_anyio._wire import WireName

HELLO = [{"role": "user", "content": "hello"}]
SERVER_ERROR = reply(b"Error", status=503)
BAD_REQUEST = reply(b"Error", status=400)
EMPTY = reply()


async def test_the_error_that_ends_a_request_keeps_the_attempts_before_it() -> None:
    async with make_client(Script(SERVER_ERROR, EMPTY, BAD_REQUEST)) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    error = caught.value
    assert error.status_code == 400
    assert [type(earlier) for earlier in error.previous_errors] == [ServerError, EmptyReplyError]
    assert error.previous_errors[0].previous_errors == ()  # no history of their own
    assert str(error).endswith("(earlier attempts: HTTP 503, empty reply)")


async def test_rate_limits_are_not_lost_behind_a_timeout() -> None:
    limited = reply(b"slow down", status=429)
    script = Script(limited, limited, reply(Pause(30), b"late"))
    async with make_client(script, timeout=Timeouts(read=0.2)) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.complete(HELLO)
    assert [type(earlier) for earlier in caught.value.previous_errors] == [
        RateLimitError,
        RateLimitError,
    ]
    assert str(caught.value).endswith("(earlier attempts: HTTP 429, HTTP 429)")


async def test_one_attempt_has_no_history() -> None:
    async with make_client(Script(BAD_REQUEST)) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.previous_errors == ()
    assert "after" not in str(caught.value)


async def test_a_stream_that_breaks_part_way_keeps_the_attempts_before_it() -> None:
    broken = reply(b"Hello", ConnectionResetError())
    async with make_client(Script(SERVER_ERROR, broken)) as client:
        stream = client.stream(HELLO)
        with pytest.raises(IncompleteStreamError) as caught:
            await read_through(stream)
    assert stream.text == "Hello"
    assert [type(earlier) for earlier in caught.value.previous_errors] == [ServerError]
    assert str(caught.value).endswith("(earlier attempts: HTTP 503)")


async def read_through(stream: ChatStream) -> None:
    async with stream:
        await drain(stream)


async def test_a_result_keeps_the_errors_its_retries_overcame() -> None:
    script = Script(SERVER_ERROR, reply(b"fine"), SERVER_ERROR, EMPTY, BAD_REQUEST)
    async with make_client(script) as client:
        first = await client.gather([HELLO], max_concurrency=1)
        second = await client.gather([HELLO], max_concurrency=1)
    assert first[0].ok
    assert first[0].attempts == 2
    assert [type(earlier) for earlier in first[0].previous_errors] == [ServerError]
    failed = second[0]
    assert isinstance(failed.error, APIStatusError)
    assert failed.error.status_code == 400
    assert failed.previous_errors == failed.error.previous_errors
    assert [type(earlier) for earlier in failed.previous_errors] == [ServerError, EmptyReplyError]


async def test_a_request_timeout_says_what_the_attempts_before_it_met() -> None:
    slow = reply(Pause(30), b"late")
    async with make_client(Script(SERVER_ERROR, slow)) as client:
        results = await client.gather([HELLO], request_timeout=0.5)
    error = results[0].error
    assert isinstance(error, APITimeoutError)
    assert str(error).startswith("request_timeout: no whole reply within 0.5 s")
    assert str(error).endswith("(earlier attempts: HTTP 503)")
    assert [type(earlier) for earlier in error.previous_errors] == [ServerError]


async def test_ttft_is_the_last_attempts_wait_for_its_first_text() -> None:
    late = reply(Pause(0.3), b"Hello", Pause(0.2), b" world")
    async with make_client(Script(SERVER_ERROR, late)) as client:
        async with client.stream(HELLO) as stream:
            assert stream.ttft is not None  # the first text came while entering
            async for _ in stream:
                pass
    assert stream.ttft is not None
    # A lower bound only: a busy machine makes it longer, never shorter.
    assert stream.ttft >= 0.29


async def test_a_results_ttft_comes_from_its_last_attempt() -> None:
    late = reply(Pause(0.3), b"Hello")
    async with make_client(Script(late, EMPTY, SERVER_ERROR, EMPTY)) as client:
        results = await client.gather([HELLO, HELLO], max_concurrency=1)
    ok, failed = results
    assert ok.ttft is not None
    assert 0.29 <= ok.ttft <= ok.elapsed
    assert failed.ttft is None  # no text ever came


async def test_a_reply_from_the_cache_has_no_ttft(tmp_path: Path) -> None:
    async with (
        ResponseCache(tmp_path / "cache.sqlite") as cache,
        make_client(Script(reply(b"Hello")), cache=cache) as client,
    ):
        sent = await client.gather([HELLO])
        stored = await client.gather([HELLO])
    assert sent[0].ttft is not None
    assert stored[0].cached
    assert stored[0].ttft is None


ERRORS: list[tuple[Callable[[], APIError], str]] = [
    (lambda: ServerError("x", status_code=503), "HTTP 503"),
    (lambda: RateLimitError("x"), "HTTP 429"),
    (lambda: EmptyReplyError("x"), "empty reply"),
    (lambda: IncompleteStreamError("x", partial_text="abc"), "cut after 3 characters"),
    (lambda: APITimeoutError("x"), "timeout"),
    (lambda: APIConnectionError("x"), "connection error"),
    (lambda: ResponseTooLargeError("x", limit=1), "too large"),
    (lambda: APIError("x"), "APIError"),
]


@given(st.lists(st.sampled_from(ERRORS), max_size=6), st.sampled_from(ERRORS))
def test_a_history_names_every_earlier_attempt_once(
    earlier: list[tuple[Callable[[], APIError], str]],
    last: tuple[Callable[[], APIError], str],
) -> None:
    previous = tuple(make() for make, _ in earlier)
    error = last[0]()
    end_with_history(error, previous)
    assert error.previous_errors == previous
    assert [attempt_label(one) for one in previous] == [label for _, label in earlier]
    if previous:
        labels = ", ".join(label for _, label in earlier)
        assert str(error) == f"x (earlier attempts: {labels})"
    else:
        assert str(error) == "x"
    if previous:  # given once, a history stays as it is
        end_with_history(error, (*previous, last[0]()))
        assert error.previous_errors == previous
        assert str(error).count("(earlier attempts") == 1


@pytest.mark.network
@pytest.mark.parametrize("wire", ["aura", "openai"])
async def test_ttft_against_a_server_that_thinks_before_its_first_chunk(wire: WireName) -> None:
    fault = Fault(first_chunk_after=0.3)
    async with (
        ReferenceServer(fault=fault) as server,
        AuraClient(server.base_url, wire=wire) as client,
    ):
        results = await client.gather(["one", "two"])
    for result in results:
        assert result.ok
        assert result.ttft is not None
        assert 0.29 <= result.ttft <= result.elapsed
