"""The one error mapping (``_exchange.map_transport_error``), the error-body reader
(``read_error``), and the deadline helpers of ``_deadlines`` they run on.

Every transport raises the neutral errors of ``_transports.base``; these tests pin down which
public error each becomes, and that an error response is read within bounds.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
import typing

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    BadRequestError,
    ChatStream,
    IncompleteStreamError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    Timeouts,
)
from aura_anyio._deadlines import (
    CLOSE_TIMEOUT,
    DeadlineExpired,
    close_shielded,
    deadline_after,
    run_until,
)
from aura_anyio._exceptions import RequestInfo
from aura_anyio._exchange import ERROR_BODY_LIMIT, map_transport_error, read_error
from aura_anyio._options import redact_url
from aura_anyio._transports.base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    Request,
    TransportClosed,
    TransportError,
    TransportTimeout,
    WriteTimeout,
)
from aura_anyio.testing import MockResponse, MockTransport

from .helpers import BASE_URL, Pause, Script, make_client, reply

if typing.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

URL = "https://chat.test/api/chat"
INFO = RequestInfo("POST", URL)
HELLO = [{"role": "user", "content": "hi"}]


# --- map_transport_error: every neutral error class ---------------------------------------


@pytest.mark.parametrize(
    ("exc", "error_type", "start", "retryable"),
    [
        (
            ConnectTimeout("5 s"),
            APITimeoutError,
            f"connect timeout: could not connect to {URL} in time (5 s)",
            True,
        ),
        (
            ReadTimeout("60 s"),
            APITimeoutError,
            "read timeout: the server sent nothing for too long (60 s); raise Timeouts.read",
            True,
        ),
        (
            WriteTimeout("9 s"),
            APITimeoutError,
            f"write timeout: sending the request to {URL} took too long (9 s)",
            True,
        ),
        (
            PoolTimeout("busy"),
            APITimeoutError,
            "pool timeout: busy (raise max_connections or lower the concurrency)",
            True,
        ),
        (TransportTimeout("slow"), APITimeoutError, f"timeout talking to {URL} (slow)", True),
        (
            CertificateError("self-signed certificate"),
            APIConnectionError,
            f"TLS certificate verification failed for {URL}: self-signed certificate;",
            False,
        ),
        (
            ProxyError("Invalid username/password", refused=True),
            APIConnectionError,
            "the proxy failed: Invalid username/password; check the proxy's user name and password",
            False,
        ),
        (
            ProxyError("502 Bad Gateway"),
            APIConnectionError,
            "the proxy failed: 502 Bad Gateway",
            True,
        ),
        (
            ConnectError("refused"),
            APIConnectionError,
            f"could not connect to {URL}: refused; check the URL, network and proxy",
            True,
        ),
        (NetworkError("reset"), APIConnectionError, f"the connection to {URL} broke: reset", True),
        (
            ProtocolError("bad chunk size"),
            APIConnectionError,
            f"the connection to {URL} broke: bad chunk size",
            True,
        ),
        (
            TransportClosed("closed"),
            APIConnectionError,
            f"the connection to {URL} broke: closed",
            True,
        ),
        (TransportError("odd"), APIConnectionError, f"the connection to {URL} broke: odd", True),
    ],
)
def test_each_neutral_error_becomes_one_public_error(
    exc: TransportError, error_type: type[APIConnectionError], start: str, retryable: bool
) -> None:
    error = map_transport_error(exc, INFO)
    assert type(error) is error_type
    assert str(error).startswith(start)
    assert error.request is INFO
    assert error.retryable is retryable


def test_a_certificate_error_says_how_to_trust_the_server() -> None:
    error = map_transport_error(CertificateError("unable to get local issuer certificate"), INFO)
    assert "verify=" in str(error)
    assert "ssl.SSLContext" in str(error)


def test_a_proxy_error_that_is_not_a_refusal_gets_no_credentials_hint() -> None:
    assert "user name" not in str(map_transport_error(ProxyError("Connection refused"), INFO))


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (ConnectTimeout(), "in time (ConnectTimeout)"),
        (ReadTimeout(), "for too long (ReadTimeout);"),
        (PoolTimeout(), "pool timeout: PoolTimeout (raise"),
        (ConnectError(), "chat: ConnectError; check"),
        (ProxyError(""), "the proxy failed: ProxyError"),
        (NetworkError(), "broke: NetworkError"),
    ],
)
def test_an_error_without_text_is_named_by_its_class(exc: TransportError, shown: str) -> None:
    assert shown in str(map_transport_error(exc, INFO))


_NEUTRAL_CLASSES: Sequence[type[TransportError]] = (
    TransportError,
    ConnectError,
    CertificateError,
    NetworkError,
    ProtocolError,
    TransportTimeout,
    ConnectTimeout,
    ReadTimeout,
    WriteTimeout,
    PoolTimeout,
    TransportClosed,
)


@st.composite
def neutral_errors(draw: st.DrawFn) -> TransportError:
    """Any neutral error, with any detail text (empty included)."""
    detail = draw(st.text(max_size=40))
    if draw(st.booleans()):
        return ProxyError(detail, refused=draw(st.booleans()))
    return draw(st.sampled_from(_NEUTRAL_CLASSES))(detail)


@given(
    neutral_errors(),
    st.sampled_from(["https://chat.test/api/chat", "http://127.0.0.1:8000/v1/chat/completions"]),
)
def test_any_neutral_error_becomes_an_api_error_naming_the_url_or_the_detail(
    exc: TransportError, url: str
) -> None:
    info = RequestInfo("POST", url)
    error = map_transport_error(exc, info)
    assert isinstance(error, APIConnectionError)  # each one is about the connection
    assert isinstance(error, APIError)
    assert error.request is info
    detail = str(exc) or type(exc).__name__
    assert url in str(error) or detail in str(error)
    assert detail in str(error)
    # Only a timeout is an APITimeoutError, and only what cannot heal is not retried.
    assert isinstance(error, APITimeoutError) is isinstance(exc, TransportTimeout)
    permanent = isinstance(exc, CertificateError) or (isinstance(exc, ProxyError) and exc.refused)
    assert error.retryable is not permanent


async def test_no_secret_of_the_request_reaches_a_mapped_error() -> None:
    """The key and the cookies travel in the headers; no error message ever shows them."""
    script = Script(
        ConnectionRefusedError("refused"), ConnectionRefusedError(), ConnectionResetError()
    )
    async with make_client(
        script, key="sk-secret", cookies={"session": "c-secret"}, max_retries=2
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.complete(HELLO)
    assert script.call_count == 3
    assert script.calls[0].headers.get("cookie") == "session=c-secret"  # it was sent
    assert "could not connect to https://chat.test/api/chat" in str(caught.value)
    for secret in ("sk-secret", "c-secret"):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value.request)


# --- read_error ----------------------------------------------------------------------------


class FakeResponse:
    """A transport response whose body is the given chunks; counts the chunks read."""

    def __init__(
        self,
        status_code: int,
        chunks: Sequence[bytes | Exception] = (),
        *,
        reason: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers: Mapping[str, str] = dict(headers or {})
        self._chunks = chunks
        self.reads = 0
        self.closed = False

    def __aiter__(self) -> FakeResponse:
        return self

    async def __anext__(self) -> bytes:
        # A plain iterator, not an async generator: read_error stops early on purpose.
        await anyio.lowlevel.checkpoint()
        if self.reads == len(self._chunks):
            raise StopAsyncIteration
        chunk = self._chunks[self.reads]
        self.reads += 1
        if isinstance(chunk, Exception):
            raise chunk
        return chunk

    async def aclose(self, *, linger: float = 0.0) -> None:
        self.closed = True


async def test_read_error_reads_at_most_the_limit() -> None:
    chunks = [bytes([65 + i]) * 1000 for i in range(20)]
    response = FakeResponse(500, chunks, reason="Internal Server Error")
    error = await read_error(response, INFO)
    assert isinstance(error, ServerError)
    assert len(error.body) == ERROR_BODY_LIMIT
    assert error.body == b"".join(chunks)[:ERROR_BODY_LIMIT].decode()
    assert response.reads == math.ceil(ERROR_BODY_LIMIT / 1000)  # it stopped reading there
    assert not response.closed  # closing is the caller's


async def test_read_error_cuts_one_huge_chunk_to_the_limit() -> None:
    response = FakeResponse(400, [b"x" * (3 * ERROR_BODY_LIMIT)], reason="Bad Request")
    error = await read_error(response, INFO)
    assert type(error) is BadRequestError
    assert error.body == "x" * ERROR_BODY_LIMIT


async def test_read_error_reads_a_body_exactly_at_the_limit() -> None:
    response = FakeResponse(500, [b"y" * ERROR_BODY_LIMIT, b"never read"])
    error = await read_error(response, INFO)
    assert error.body == "y" * ERROR_BODY_LIMIT
    assert response.reads == 1


async def test_read_error_survives_a_body_that_breaks() -> None:
    response = FakeResponse(500, [b"Err", NetworkError("reset"), b"never"], reason="Boom")
    error = await read_error(response, INFO)
    assert isinstance(error, ServerError)
    assert error.body == "Err"
    assert error.reason == "Boom"
    assert str(error).startswith(f"HTTP 500 Boom from POST {URL}; body: 'Err'")
    assert error.request is INFO


async def test_read_error_lets_anything_but_a_transport_error_through() -> None:
    response = FakeResponse(500, [b"Err", RuntimeError("a bug")])
    with pytest.raises(RuntimeError, match="a bug"):
        await read_error(response, INFO)


async def test_read_error_decodes_invalid_utf8_with_replacement() -> None:
    error = await read_error(FakeResponse(502, [b"caf\xc3", b"\xff"]), INFO)
    assert error.body == "caf\ufffd\ufffd"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_read_error_notes_a_redirect_with_its_location_redacted(status: int) -> None:
    location = "http://user:p-secret@elsewhere.test/api/chat"
    response = FakeResponse(status, reason="Moved", headers={"location": location})
    error = await read_error(response, INFO)
    assert error.reason == "Moved (redirect to 'http://***@elsewhere.test/api/chat' not followed)"
    assert "p-secret" not in str(error)
    assert "p-secret" not in error.reason


async def test_read_error_leaves_the_reason_of_a_redirect_without_location() -> None:
    error = await read_error(FakeResponse(302, reason="Found"), INFO)
    assert error.reason == "Found"


async def test_read_error_ignores_a_location_on_a_status_that_is_not_a_redirect() -> None:
    response = FakeResponse(404, reason="Not Found", headers={"location": "https://x.test/"})
    assert (await read_error(response, INFO)).reason == "Not Found"


async def test_read_error_parses_retry_after_seconds() -> None:
    response = FakeResponse(429, [b"slow down"], reason="Too Many", headers={"retry-after": "7"})
    error = await read_error(response, INFO)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    assert "retry after 7 s" in str(error)
    assert error.headers["retry-after"] == "7"


async def test_read_error_parses_a_retry_after_date() -> None:
    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    response = FakeResponse(429, headers={"retry-after": date})
    error = await read_error(response, INFO)
    assert isinstance(error, RateLimitError)
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


async def test_read_error_without_retry_after() -> None:
    error = await read_error(FakeResponse(429), INFO)
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


async def test_read_error_over_a_mock_transport_response() -> None:
    """The same over MockTransport's response, whose body breaks with an OSError."""

    def chunks() -> Iterator[bytes]:
        yield b"Error"
        raise ConnectionResetError("reset")

    transport = MockTransport(lambda _: MockResponse(503, chunks=chunks(), reason="Upstream down"))
    response = await transport.send(Request("POST", URL, {}, b"{}"))
    error = await read_error(response, INFO)
    assert isinstance(error, ServerError)
    assert (error.status_code, error.reason) == (503, "Upstream down")
    assert error.body == "Error"
    assert transport.open_responses == 0  # the broken body closed itself


async def test_an_error_body_is_read_within_bounds_through_the_client() -> None:
    script = Script(reply(b"E" * (ERROR_BODY_LIMIT * 4), status=400, reason="Bad"))
    async with make_client(script) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.body == "E" * ERROR_BODY_LIMIT
    assert script.call_count == 1  # a 400 is not retried


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://chat.test/x", "https://chat.test/x"),
        ("http://u:p-secret@proxy.test:8080", "http://***@proxy.test:8080"),
        ("http://u:p-secret@[::1]:3128/", "http://***@[::1]:3128/"),
        ("socks5://only-user@proxy.test", "socks5://***@proxy.test"),
        ("http://u:p-secret@proxy.test:99999", "<malformed URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """What read_error (and every message naming a proxy) shows of a URL."""
    assert redact_url(url) == expected


# --- _deadlines ----------------------------------------------------------------------------


def test_no_deadline_is_infinite() -> None:
    assert deadline_after(None) == math.inf


async def test_a_deadline_is_on_anyios_clock() -> None:
    before = anyio.current_time()
    deadline = deadline_after(30.0)
    assert before + 30.0 <= deadline <= anyio.current_time() + 30.0


async def test_run_until_without_a_deadline_returns_the_result() -> None:
    async def double(x: int, *, times: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * times

    assert await run_until(math.inf, double, 21, times=2) == 42


async def test_run_until_a_deadline_that_does_not_pass_returns_the_result() -> None:
    async def answer() -> str:
        await anyio.lowlevel.checkpoint()
        return "done"

    assert await run_until(deadline_after(30.0), answer) == "done"


@pytest.mark.debug
async def test_run_until_a_deadline_that_passes_cancels_the_call() -> None:
    cancelled = False

    async def forever() -> None:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    with pytest.raises(DeadlineExpired):
        await run_until(deadline_after(0.01), forever)
    assert cancelled


@pytest.mark.debug
async def test_run_until_lets_an_outer_cancellation_through() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_until(deadline_after(30.0), anyio.sleep_forever)
    assert scope.cancelled_caught


@pytest.mark.debug
async def test_close_shielded_finishes_inside_a_cancelled_scope() -> None:
    closed = anyio.Event()

    async def close(event: anyio.Event) -> None:
        await anyio.sleep(0.01)  # a real wait, which the outer cancellation cannot stop
        event.set()

    with anyio.CancelScope() as scope:
        scope.cancel()
        await close_shielded(close, closed)
    assert closed.is_set()


@pytest.mark.debug
async def test_close_shielded_gives_up_after_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CLOSE_TIMEOUT == 5.0
    monkeypatch.setattr("aura_anyio._deadlines.CLOSE_TIMEOUT", 0.05)
    with anyio.fail_after(10):
        await close_shielded(anyio.sleep_forever)  # returns, without an error


# --- Exchange and ReplyReader over MockTransport -----------------------------------------------


def sse(*events: str) -> list[str]:
    """Server-sent events, one chunk each."""
    return [f"data: {event}\n\n" for event in events]


def delta(content: str, finish_reason: str | None = None) -> str:
    return json.dumps(
        {"choices": [{"delta": {"content": content}, "finish_reason": finish_reason}]}
    )


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_a_content_encoding_the_client_did_not_ask_for_is_refused(encoding: str) -> None:
    script = Script(reply(b"\x1f\x8b...", headers={"Content-Encoding": encoding}))
    transport = MockTransport(script)
    async with AuraClient(BASE_URL, transport=transport, max_retries=2) as client:
        with pytest.raises(APIError, match=f"Content-Encoding '{encoding}'") as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIError  # not worth another attempt
    assert script.call_count == 1
    assert script.calls[0].headers["accept-encoding"] == "identity"
    assert transport.open_responses == 0


@pytest.mark.parametrize("encoding", ["identity", " Identity ", ""])
async def test_the_identity_encoding_is_accepted(encoding: str) -> None:
    script = Script(reply("plain", headers={"content-encoding": encoding}))
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "plain"


async def test_a_request_waits_for_a_free_connection_no_longer_than_connect() -> None:
    holding, release = anyio.Event(), anyio.Event()
    transport = MockTransport(Script(reply("first ", Pause(3600)), reply("now")))
    async with AuraClient(
        BASE_URL,
        transport=transport,
        max_connections=1,
        max_retries=0,
        timeout=Timeouts(connect=0.2, read=3600),
    ) as client:

        async def hold() -> None:
            async with client.stream(HELLO) as chunks:
                assert await chunks.__anext__() == "first "
                holding.set()
                await release.wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await holding.wait()
            with anyio.fail_after(30), pytest.raises(APITimeoutError) as caught:
                await client.complete(HELLO)
            release.set()
        assert str(caught.value) == (
            "pool timeout: every connection stayed busy for 0.2 s "
            "(raise max_connections or lower the concurrency)"
        )
        assert transport.open_responses == 0
        assert await client.complete(HELLO) == "now"  # the slot came back


async def test_a_reply_past_max_response_bytes() -> None:
    transport = MockTransport(Script(reply("hello", " world")))
    async with AuraClient(BASE_URL, transport=transport, max_response_bytes=8) as client:
        async with client.stream(HELLO) as chunks:
            assert await chunks.__anext__() == "hello"
            with pytest.raises(ResponseTooLargeError, match="max_response_bytes=8") as caught:
                await chunks.__anext__()
    assert caught.value.partial_text == "hello"
    assert transport.open_responses == 0


async def test_the_openai_wire_end_marker_ends_the_reply_though_the_body_stalls() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    events = sse(delta("Hi"), delta(" there", "stop"), json.dumps({"choices": [], "usage": usage}))
    transport = MockTransport(
        Script(reply(*events, *sse("[DONE]"), Pause(3600), "data: never read\n\n"))
    )
    async with AuraClient(
        BASE_URL, transport=transport, wire="openai", timeout=Timeouts(read=3600)
    ) as client:
        with anyio.fail_after(30):
            async with client.stream(HELLO) as chunks:
                assert [text async for text in chunks] == ["Hi", " there"]
        assert chunks.finish_reason == "stop"
        assert chunks.usage == usage
        assert transport.open_responses == 0


async def test_a_reply_that_breaks_its_wire_is_a_connection_error() -> None:
    script = Script(reply(*sse("{not json")), reply(*sse(delta("ok", "stop"), "[DONE]")))
    async with make_client(script, wire="openai", max_retries=0) as client:
        with pytest.raises(
            APIConnectionError, match="the reply broke: an event's data is not JSON"
        ):
            await client.complete(HELLO)
        assert await client.complete(HELLO) == "ok"


async def test_an_error_the_server_reports_in_the_reply() -> None:
    body = json.dumps({"error": {"message": "the model is overloaded"}})
    script = Script(reply(*sse(body)))
    async with make_client(script, wire="openai", max_retries=2) as client:
        with pytest.raises(APIError, match="the server reported an error: the model is overloaded"):
            await client.complete(HELLO)
    assert script.call_count == 1  # the server said no: not retried


# --- a fault in the same read as text: the text first, then the fault ----------------------

_REPORTED = json.dumps({"error": {"message": "the model is overloaded"}})


@pytest.mark.parametrize(
    ("body", "text", "cause", "attempts"),
    [
        # llama.cpp's interrupt: a cut, which complete() sends again.
        ("".join(sse(delta("Hel"), delta("lo"), "[DONE]")), "Hello", APIConnectionError, 3),
        # The body ends inside an event, which is dropped (no blank line closed it).
        ("".join(sse(delta("Hel"))) + "data: " + delta("lo"), "Hel", APIConnectionError, 3),
        # The server's own error: not sent again.
        ("".join(sse(delta("Hel"), delta("lo"), _REPORTED)), "Hello", APIError, 1),
    ],
    ids=["done-without-finish-reason", "body-ends-mid-stream", "reported-error"],
)
async def test_text_in_the_same_read_as_a_fault_reaches_the_caller_first(
    body: str, text: str, cause: type[APIError], attempts: int
) -> None:
    script = Script(*[reply(body)] * 4)
    async with make_client(script, wire="openai") as client:
        pieces: list[str] = []

        async def read(chunks: ChatStream) -> None:
            async for piece in chunks:
                pieces.append(piece)

        async with client.stream(HELLO) as chunks:
            with pytest.raises(IncompleteStreamError) as caught:
                await read(chunks)
        assert pieces == [text]  # delivered before the fault, not dropped with it
        assert caught.value.partial_text == chunks.text == text
        assert type(caught.value.__cause__) is cause
        assert script.call_count == 1  # text reached the caller: stream() never retries
        with pytest.raises(IncompleteStreamError) as again:
            await client.complete(HELLO)
        assert again.value.partial_text == text
        assert script.call_count == 1 + attempts
