"""The README's fault table, row by row, against the reference server on every backend.

Each test is marked with ``fault_row`` and the name of the row it proves; ``test_readme.py``
checks that every row of the README table has one. Every row runs on both wires (``/api/chat``
and the OpenAI-compatible one) and through both ``stream()`` and ``complete()``, which differ
only in what they may retry once text has arrived. The server counts a cut's bytes in the
reply's text on both wires, and cuts fall between words, so the text kept is the same.
"""

from __future__ import annotations

import typing

import anyio
import pytest

from aura_anyio import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    AuthenticationError,
    EmptyReplyError,
    IncompleteStreamError,
    RateLimitError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from aura_anyio.testing import Fault, Outcome, ReferenceServer, default_reply
from aura_anyio.testing._chat import split_words

from .helpers import fault_row

if typing.TYPE_CHECKING:
    from collections.abc import Callable

    from aura_anyio._wire import WireName
    from aura_anyio.testing import ReceivedRequest

pytestmark = pytest.mark.network

E = typing.TypeVar("E", bound=BaseException)

RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.01)
TIMEOUTS = Timeouts(connect=5.0, read=5.0)
# For the stalls, which only a read timeout ends; nothing else may wait this short.
SHORT_READ = Timeouts(connect=5.0, read=0.3)
ALL_ATTEMPTS = 1 + RETRIES.max_retries


class Mode(str):
    """How a test reads the reply: ``"stream"`` or ``"complete"``, over ``wire``."""

    __slots__ = ("wire",)
    wire: WireName


@pytest.fixture(params=["stream", "complete"])
def mode(request: pytest.FixtureRequest, wire: WireName) -> Mode:
    """Whether the reply is read with ``stream()`` or ``complete()``, and on which wire."""
    read = Mode(typing.cast("str", request.param))
    read.wire = wire
    return read


async def ask(client: AuraClient, content: str, mode: str) -> str:
    """Send one prompt and return the whole reply, as ``mode`` reads it."""
    messages = [{"role": "user", "content": content}]
    if mode == "complete":
        return await client.complete(messages)
    async with client.stream(messages) as reply:
        return "".join([text async for text in reply])


def client_for(server: ReferenceServer, mode: str, **kwargs: typing.Any) -> AuraClient:
    options: dict[str, typing.Any] = {"timeout": TIMEOUTS, "max_retries": RETRIES}
    options.update(kwargs)
    return AuraClient(server.base_url, wire=typing.cast("Mode", mode).wire, **options)


async def fail(
    fault: Fault,
    mode: str,
    expected: type[E],
    *,
    reply: Callable[[ReceivedRequest], str] | None = None,
    **kwargs: typing.Any,
) -> tuple[E, ReferenceServer]:
    """Ask a server with ``fault`` once; return the error it raised and the server."""
    async with ReferenceServer(fault=fault, reply=reply) as server:
        async with client_for(server, mode, **kwargs) as client:
            with pytest.raises(expected) as caught:
                await ask(client, "hi", mode)
        # Whatever happened, every connection is closed and the server saw it.
        await server.wait_until(lambda: server.open_connections == 0)
    assert Outcome.PENDING not in server.outcomes
    return caught.value, server


async def succeed(
    fault: Fault, mode: str, *, reply: Callable[[ReceivedRequest], str] | None = None
) -> tuple[str, ReferenceServer]:
    async with ReferenceServer(fault=fault, reply=reply) as server:
        async with client_for(server, mode) as client:
            text = await ask(client, "hi", mode)
        await server.wait_until(lambda: server.open_connections == 0)
    return text, server


# Statuses


@fault_row("5xx status")
async def test_5xx_is_retried_then_raised(mode: str) -> None:
    error, server = await fail(Fault(status=500, reason="Upstream failed"), mode, ServerError)
    assert (error.status_code, error.reason, error.body) == (500, "Upstream failed", "Error")
    assert "Upstream failed" in str(error)
    assert len(server.requests) == ALL_ATTEMPTS


@fault_row("5xx, then success")
async def test_5xx_then_success(mode: str) -> None:
    text, server = await succeed(Fault(status=503, times=1), mode)
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2


@fault_row("429 with Retry-After")
async def test_429_waits_for_retry_after(mode: str) -> None:
    start = anyio.current_time()
    text, server = await succeed(Fault(status=429, retry_after="0.2", times=1), mode)
    assert anyio.current_time() - start >= 0.2
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2


# What openchat-ui's reason phrase says when its upstream (OpenAI's API) refused for a rate limit.
UPSTREAM_LIMIT = (
    "Rate limit reached for default-gpt-3.5-turbo in organization org-x on requests per min."
)


@fault_row("openchat-ui's hidden 429")
async def test_a_500_that_says_rate_limit_reached_is_a_rate_limit_on_the_aura_wire(
    mode: Mode,
) -> None:
    fault = Fault(status=500, reason=UPSTREAM_LIMIT)
    if mode.wire == "aura":
        error, server = await fail(fault, mode, RateLimitError)
        assert (error.status_code, error.retry_after) == (500, None)
        assert "Rate limit reached" in str(error)
        assert "rate limited: slow down" in str(error)
        assert len(server.requests) == ALL_ATTEMPTS  # retried, as a 429 is
    else:  # an OpenAI-compatible server says 429 when it means it
        failure, server = await fail(fault, mode, ServerError)
        assert not isinstance(failure, RateLimitError)
        assert len(server.requests) == ALL_ATTEMPTS


@fault_row("429 with Retry-After above the cap")
async def test_429_asking_too_long_is_raised_at_once(mode: str) -> None:
    error, server = await fail(Fault(status=429, retry_after="3600"), mode, RateLimitError)
    assert error.retry_after == 3600
    assert len(server.requests) == 1


@fault_row("408 status")
async def test_408_is_retried(mode: str) -> None:
    error, server = await fail(Fault(status=408), mode, APIStatusError)
    assert error.status_code == 408
    assert len(server.requests) == ALL_ATTEMPTS


@fault_row("other 4xx status")
async def test_4xx_is_not_retried(mode: str) -> None:
    error, server = await fail(Fault(status=401, reason="Bad key"), mode, APIStatusError)
    assert type(error) is AuthenticationError
    assert error.reason == "Bad key"
    assert len(server.requests) == 1


@fault_row("501 or 505 status")
@pytest.mark.parametrize("status", [501, 505])
async def test_501_and_505_are_raised_at_once(mode: str, status: int) -> None:
    error, server = await fail(Fault(status=status), mode, ServerError)
    assert error.status_code == status
    assert "retrying will not help" in str(error)
    assert "retrying later may help" not in str(error)
    assert len(server.requests) == 1


@fault_row("redirect")
async def test_redirects_are_not_followed(mode: str) -> None:
    fault = Fault(status=307, location="http://elsewhere.test/api/chat")
    error, server = await fail(fault, mode, APIStatusError)
    assert error.status_code == 307
    assert "'http://elsewhere.test/api/chat' not followed" in str(error)
    assert len(server.requests) == 1


@fault_row("huge error body")
async def test_a_huge_error_body_is_read_only_to_its_bound(mode: str) -> None:
    fault = Fault(status=500, error_body_bytes=50_000_000)
    error, server = await fail(fault, mode, ServerError)
    body = error.body
    assert body.startswith("Error Error")
    assert len(body) == 8192
    assert len(str(error)) < 1000
    # The client hung up after 8 KiB each time instead of reading 50 MB.
    assert server.outcomes == [Outcome.ABORTED] * ALL_ATTEMPTS


# Stalls


@fault_row("stall before the status line")
async def test_stall_before_the_status_line(mode: str) -> None:
    error, server = await fail(
        Fault(stall_before_status=True), mode, APITimeoutError, timeout=SHORT_READ
    )
    assert str(error).startswith("read timeout")
    assert server.outcomes == [Outcome.ABORTED] * ALL_ATTEMPTS


@fault_row("stall before the first character")
async def test_stall_inside_the_first_character_is_before_any_text(mode: str) -> None:
    # One byte of "✓" arrives: no character was complete, so no text reached the caller.
    _error, server = await fail(
        Fault(stall_after=1), mode, APITimeoutError, reply=lambda _: "✓ done", timeout=SHORT_READ
    )
    assert len(server.requests) == ALL_ATTEMPTS


@fault_row("stall after text")
async def test_stall_after_text(mode: str) -> None:
    error, server = await fail(
        Fault(stall_after=11), mode, IncompleteStreamError, timeout=SHORT_READ
    )
    assert error.partial_text == "Hello from "
    assert isinstance(error.__cause__, APITimeoutError)
    assert len(server.requests) == (1 if mode == "stream" else ALL_ATTEMPTS)


@fault_row("first-chunk timeout")
async def test_first_chunk_timeout(mode: str) -> None:
    timeouts = Timeouts(read=30.0, first_chunk=0.2)
    error, server = await fail(
        Fault(stall_before_status=True), mode, APITimeoutError, timeout=timeouts
    )
    assert str(error).startswith("first-chunk timeout")
    assert len(server.requests) == ALL_ATTEMPTS


# Broken connections


@fault_row("reset before the body")
async def test_reset_before_the_body(mode: str) -> None:
    error, server = await fail(Fault(reset_after=0), mode, APIConnectionError)
    assert not isinstance(error, APITimeoutError)
    assert len(server.requests) == ALL_ATTEMPTS


@fault_row("reset after text")
async def test_reset_after_text(mode: str) -> None:
    error, server = await fail(Fault(reset_after=11), mode, IncompleteStreamError)
    # A reset may overtake data still in flight: what was kept is a prefix, never garbage.
    assert error.partial_text
    assert "Hello from ".startswith(error.partial_text)
    assert type(error.__cause__) is APIConnectionError
    assert len(server.requests) == (1 if mode == "stream" else ALL_ATTEMPTS)


@fault_row("closed without the final chunk")
async def test_closed_without_the_final_chunk(mode: str) -> None:
    error, server = await fail(Fault(close_after=11), mode, IncompleteStreamError)
    assert error.partial_text == "Hello from "
    assert type(error.__cause__) is APIConnectionError
    assert server.outcomes == [Outcome.CUT] * (1 if mode == "stream" else ALL_ATTEMPTS)


@fault_row("closed before the body")
async def test_closed_before_the_body(mode: str) -> None:
    _error, server = await fail(Fault(close_after=0), mode, APIConnectionError)
    assert len(server.requests) == ALL_ATTEMPTS


@fault_row("empty reply, as openchat-ui sends under load")
async def test_an_empty_reply_is_retried_then_raised(mode: Mode) -> None:
    # /api/chat always has text: no text at all is the failure; on the OpenAI wire a body
    # without data: [DONE] is a cut.
    expected = EmptyReplyError if mode.wire == "aura" else APIConnectionError
    error, server = await fail(Fault(empty_body=True), mode, expected)
    assert type(error) is expected
    assert len(server.requests) == ALL_ATTEMPTS
    text, server = await succeed(Fault(empty_body=True, times=1), mode)
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2


@fault_row("nothing listening")
async def test_nothing_listening(mode: str) -> None:
    async with ReferenceServer() as server:
        pass  # it stopped listening: its port is free
    async with client_for(server, mode) as client:
        with pytest.raises(APIConnectionError, match="could not connect to") as caught:
            await ask(client, "hi", mode)
    assert not isinstance(caught.value, APITimeoutError)


# Bodies


@fault_row("slow drip")
async def test_slow_drip_within_the_read_timeout(mode: str) -> None:
    # Some 60 drips on either wire (an event is some 170 bytes; 5 ms a drip).
    size = 4 if typing.cast("Mode", mode).wire == "aura" else 40
    text, server = await succeed(Fault(drip=0.005, chunk_size=size), mode)
    assert text == default_reply(server.requests[0])


@fault_row("slow drip past the total timeout")
async def test_slow_drip_past_the_total_timeout(mode: str) -> None:
    # About a word per drip on either wire (an event is some 170 bytes).
    size = 2 if typing.cast("Mode", mode).wire == "aura" else 200
    fault = Fault(drip=0.05, chunk_size=size)
    error, server = await fail(fault, mode, IncompleteStreamError, timeout=Timeouts(total=0.5))
    assert isinstance(error.__cause__, APITimeoutError)
    assert str(error.__cause__).startswith("total timeout")
    assert default_reply(server.requests[0]).startswith(error.partial_text)
    assert len(server.requests) == 1  # no retry can start once the budget is spent


@fault_row("invalid UTF-8")
async def test_invalid_utf8_becomes_a_replacement_character(mode: str) -> None:
    text, server = await succeed(Fault(invalid_utf8=True), mode)
    reply = default_reply(server.requests[0])
    assert text == reply[:6] + "\ufffd" + reply[6:]


@fault_row("multi-byte characters split")
async def test_every_multibyte_character_split(mode: str) -> None:
    text, _ = await succeed(Fault(chunk_size=1), mode, reply=lambda _: "é ✓ 日本 😀 " * 5)
    assert text == "é ✓ 日本 😀 " * 5


@fault_row("endless body")
async def test_endless_body(mode: str) -> None:
    error, server = await fail(
        Fault(endless=True), mode, ResponseTooLargeError, max_response_bytes=20_000
    )
    assert error.limit == 20_000
    # The limit counts the body's bytes: on the OpenAI wire, events around the text too.
    least = 18_000 if typing.cast("Mode", mode).wire == "aura" else 200
    assert least < len(error.partial_text.encode()) <= 20_000
    assert error.partial_text.startswith(default_reply(server.requests[0]))
    assert server.outcomes == [Outcome.ABORTED]


@fault_row("reply ends early, cleanly")
async def test_a_reply_that_ends_early_cleanly_is_not_detectable(mode: str) -> None:
    text, _ = await succeed(Fault(), mode, reply=lambda _: "Hello wor")
    assert text == "Hello wor"


def first_words(text: str, count: int) -> str:
    return "".join(split_words(text)[:count])


@fault_row("reply interrupted, as llama.cpp does")
@pytest.mark.parametrize("words", [0, 3])
async def test_an_interrupted_reply_is_a_cut_on_the_openai_wire(mode: str, words: int) -> None:
    fault = Fault(interrupt_after=words)
    if typing.cast("Mode", mode).wire == "aura" and words == 0:  # no text at all: empty
        _empty, server = await fail(fault, mode, EmptyReplyError)
        assert len(server.requests) == ALL_ATTEMPTS
        return
    if typing.cast("Mode", mode).wire == "aura":  # no end marker: a clean early end
        text, server = await succeed(fault, mode)
        assert text == first_words(default_reply(server.requests[0]), words)
        assert len(server.requests) == 1
        return
    error: APIConnectionError | IncompleteStreamError
    if words == 0:
        error, server = await fail(fault, mode, APIConnectionError)
        assert not isinstance(error, IncompleteStreamError)
        assert len(server.requests) == ALL_ATTEMPTS
    else:
        cut, server = await fail(fault, mode, IncompleteStreamError)
        assert cut.partial_text == first_words(default_reply(server.requests[0]), words)
        assert type(cut.__cause__) is APIConnectionError
        assert len(server.requests) == (1 if mode == "stream" else ALL_ATTEMPTS)
        error = cut
    assert "(data: [DONE]) without a finish_reason" in str(error)
    # The server ended each reply cleanly (the client may hang up once [DONE] is in).
    assert Outcome.CUT not in server.outcomes


@fault_row("reply interrupted, as llama.cpp does")
async def test_an_interrupted_reply_is_retried_while_no_text_reached_the_caller(
    mode: str,
) -> None:
    # Before any text, stream() retries it too; after some, only complete() may.
    words = 0 if mode == "stream" else 3
    text, server = await succeed(Fault(interrupt_after=words, times=1), mode)
    if typing.cast("Mode", mode).wire == "aura" and words:  # a short reply, as it can tell
        assert text == first_words(default_reply(server.requests[0]), words)
        assert len(server.requests) == 1
        return
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2
