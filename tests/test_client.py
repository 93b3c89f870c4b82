"""AuraClient on its production path: status mapping, retries, timeouts, limits and secrets.

Requests go through ``aura_anyio.testing.MockTransport`` (a :class:`Script` from helpers
answers them), which drives the same client code as the default transport, or through the
default transport to a ``ReferenceServer`` where a real socket says more (what the server
received, environment proxies). The transport seam itself is tested here too.
"""

from __future__ import annotations

import gzip
import importlib
import json
import logging
import socket
import ssl
import sys
import traceback
import typing

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    AuthenticationError,
    BadRequestError,
    ChatStream,
    EmptyReplyError,
    IncompleteStreamError,
    InvalidRequestError,
    RateLimitError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from aura_anyio._options import environment_proxy
from aura_anyio._transports.base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    TransportClosed,
    TransportError,
    TransportTimeout,
    WriteTimeout,
)
from aura_anyio.testing import (
    MockResponse,
    MockTransport,
    ReferenceServer,
    default_reply,
)

from .helpers import BASE_URL, FAST_RETRIES, URL, Pause, Script, drain, make_client, reply

if typing.TYPE_CHECKING:
    from anyio.abc import SocketListener, TaskStatus

    from aura_anyio._transports.base import Request, Response

HELLO = [{"role": "user", "content": "hello"}]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def client_on(script: Script, **kwargs: typing.Any) -> tuple[AuraClient, MockTransport]:
    """An AuraClient on a MockTransport answered by ``script``, and that transport."""
    transport = MockTransport(script)
    options: dict[str, typing.Any] = {"max_retries": FAST_RETRIES}
    options.update(kwargs)
    return AuraClient(BASE_URL, transport=transport, **options), transport


# Replies, and what the client sends.


async def test_streams_text_and_sends_the_wire_body() -> None:
    script = Script(reply("Hel", "lo ", "wörld"))
    async with make_client(script, key="k-secret", cookies={"sid": "c-secret"}) as client:
        async with client.stream(
            [{"role": "system", "content": "sys"}, *HELLO], temperature=0.2
        ) as chunks:
            pieces = [text async for text in chunks]
        assert pieces == ["Hel", "lo ", "wörld"]
        assert chunks.text == "Hello wörld"
        assert chunks.attempts == 1
        assert chunks.status_code == 200
        assert (chunks.finish_reason, chunks.usage) == (None, None)  # /api/chat says neither
    (request,) = script.calls
    assert (request.method, request.url) == ("POST", URL)
    assert json.loads(request.content) == request.json()
    assert request.json() == {
        "model": {
            "id": "openchat_3.6",
            "name": "OpenChat 3.6 (latest)",
            "maxLength": 24576,
            "tokenLimit": 8192,
        },
        "messages": HELLO,
        "key": "k-secret",
        "prompt": "sys",
        "temperature": 0.2,
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["cookie"] == "sid=c-secret"
    assert request.headers["accept-encoding"] == "identity"
    assert "k-secret" not in repr(request)


async def test_complete_joins_the_reply() -> None:
    async with make_client(Script(reply("a", "b", "c"))) as client:
        assert await client.complete(HELLO) == "abc"


async def test_an_empty_reply_is_retried_then_raised_never_an_empty_string() -> None:
    empty = Script(*[reply() for _ in range(6)])
    async with make_client(empty) as client:
        with pytest.raises(EmptyReplyError, match="no text at all"):
            await client.complete(HELLO)
        with pytest.raises(EmptyReplyError, match="no text at all"):
            async with client.stream(HELLO):
                pass  # raised on entering: the body ended before any text
    assert len(empty.calls) == 6  # three attempts each
    async with make_client(Script(reply(), reply("abc"))) as client:
        assert await client.complete(HELLO) == "abc"


async def test_multibyte_characters_split_across_chunks_survive() -> None:
    raw = "naïve 😀 €".encode()
    async with make_client(Script(reply(*[raw[i : i + 1] for i in range(len(raw))]))) as client:
        assert await client.complete(HELLO) == "naïve 😀 €"


async def test_invalid_bytes_are_replaced() -> None:
    async with make_client(Script(reply(b"ok \xff\xfe done"))) as client:
        assert await client.complete(HELLO) == "ok \ufffd\ufffd done"


async def test_a_character_cut_by_the_end_of_the_reply_becomes_a_replacement() -> None:
    # The text the decoder holds back for the rest of a character comes out at the end.
    async with make_client(Script(reply(b"ok ", "\u20ac".encode()[:2]))) as client:
        async with client.stream(HELLO) as stream:
            assert [text async for text in stream] == ["ok ", "\ufffd"]
        assert stream.text == "ok \ufffd"


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "hex", "no-such"])
async def test_a_hostile_charset_falls_back_to_utf8(charset: str) -> None:
    script = Script(reply("héllo", headers={"content-type": f"text/plain; charset={charset}"}))
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "héllo"


async def test_a_declared_charset_is_honoured() -> None:
    script = Script(
        reply("héllo".encode("latin-1"), headers={"content-type": "text/plain; charset=latin-1"})
    )
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "héllo"


@pytest.mark.network
async def test_headers_merge_case_insensitively() -> None:
    async with ReferenceServer() as server:
        client = AuraClient(
            server.base_url,
            headers={"User-Agent": "mine/1.0", "Cookie": "a=1", "Accept": "text/plain"},
            cookies={"b": "2"},
        )
        assert "cookies=<hidden>" in repr(client)
        async with client:
            await client.complete(HELLO)
    # The server joins a repeated field with ", ": one value each means one field each.
    headers = server.requests[-1].headers
    assert headers["user-agent"] == "mine/1.0"
    assert headers["cookie"] == "a=1; b=2"
    assert headers["accept"] == "text/plain"
    assert headers["accept-encoding"] == "identity"


# Content codings: none is asked for, and one that comes anyway is refused.


@pytest.mark.parametrize("encoding", ["gzip", " GZip "])
async def test_a_content_encoded_reply_is_refused_not_retried(encoding: str) -> None:
    body = gzip.compress("naïve ✓ reply".encode())
    encoded = reply(body[:7], body[7:], headers={"Content-Encoding": encoding})
    script = Script(encoded, encoded, reply("never"))
    client, transport = client_on(script)
    async with client:
        with pytest.raises(APIError) as caught:
            await client.complete(HELLO)
        assert script.call_count == 1  # not retried
        with pytest.raises(APIError) as streamed:
            async with client.stream(HELLO):
                pass  # pragma: no cover (entering fails)
        assert script.call_count == 2
    for error in (caught.value, streamed.value):
        assert type(error) is APIError
        assert str(error).startswith("the server sent a reply with Content-Encoding 'gzip'")
        assert "accept-encoding: identity" in str(error)
        assert "does not decode compressed replies" in str(error)
        assert error.request is not None
        assert error.request.url == URL
    assert all(request.headers["accept-encoding"] == "identity" for request in script.calls)
    assert transport.open_responses == 0


async def test_an_identity_content_encoding_is_accepted() -> None:
    script = Script(reply("plain", headers={"Content-Encoding": "Identity"}))
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "plain"


# Status codes.


@pytest.mark.parametrize(
    ("status", "reason", "error_type"),
    [
        (400, "Bad Request", BadRequestError),
        (401, "Unauthorized", AuthenticationError),
        (429, "Too Many Requests", RateLimitError),
        # openchat-ui's upstream 429, as the 500 it answers with (DESIGN section 9)
        (500, "Rate limit reached for openchat", RateLimitError),
        (500, "Internal Server Error", ServerError),
        (503, "Service Unavailable", ServerError),
    ],
)
async def test_status_mapping(status: int, reason: str, error_type: type[APIStatusError]) -> None:
    client, transport = client_on(Script(*[reply("Error", status=status, reason=reason)] * 3))
    async with client:
        with pytest.raises(error_type) as caught:
            await client.complete(HELLO)
    error = caught.value
    assert type(error) is error_type
    assert error.status_code == status
    assert error.reason == reason
    assert error.body == "Error"
    assert f"{status} {reason}" in str(error)
    assert "'Error'" in str(error)
    assert error.request is not None
    assert error.request.url == URL
    assert transport.open_responses == 0


async def test_the_standard_reason_phrase_is_used_when_none_is_given() -> None:
    async with make_client(Script(reply(status=404))) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.reason == "Not Found"
    assert "404 Not Found" in str(caught.value)


async def test_error_body_is_read_only_up_to_its_bound() -> None:
    async with make_client(Script(reply(*[b"x" * 1024] * 1000, status=400))) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert len(caught.value.body) == 8192
    assert len(str(caught.value)) < 600


async def test_an_error_body_that_breaks_still_gives_the_status_error() -> None:
    script = Script(reply("Err", ConnectionResetError("reset"), status=400, reason="Bad"))
    async with make_client(script) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert (caught.value.status_code, caught.value.reason, caught.value.body) == (400, "Bad", "Err")


async def test_a_latin1_reason_phrase_survives_and_a_long_one_is_bounded() -> None:
    reason = "Limite de débit atteinte " + "x" * 5000
    async with make_client(Script(reply(status=400, reason=reason))) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    # The attribute keeps the first 1024 characters, the message an excerpt of those.
    assert caught.value.reason == reason[:1024] + "…"
    assert "400 Limite de débit atteinte xxx" in str(caught.value)
    assert len(str(caught.value)) < 800


async def serve_one_response(response: bytes, *, task_status: TaskStatus[int]) -> None:
    """Answer one request on a loopback port (given to ``task_status``) with ``response``."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listeners:
        listener = typing.cast("SocketListener", listeners.listeners[0])
        task_status.started(listener.extra(SocketAttribute.local_port))
        stream = await listener.accept()
        async with stream:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += await stream.receive()
            await stream.send(response)


@pytest.mark.network
async def test_a_latin1_reason_phrase_survives_a_real_socket() -> None:
    response = "HTTP/1.1 400 Limite de débit atteinte\r\ncontent-length: 5\r\n\r\nError"
    async with anyio.create_task_group() as task_group:
        port = await task_group.start(serve_one_response, response.encode("latin-1"))
        async with AuraClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.complete(HELLO)
    assert (caught.value.reason, caught.value.body) == ("Limite de débit atteinte", "Error")
    assert "400 Limite de débit atteinte" in str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(status: int) -> None:
    location = "https://user:l-secret@elsewhere.test/steal"
    script = Script(reply(status=status, headers={"Location": location}))
    async with make_client(script, key="k-secret") as client:
        with pytest.raises(APIStatusError, match="not followed") as caught:
            await client.complete(HELLO)
    assert caught.value.status_code == status
    assert script.call_count == 1  # a followed redirect would be a second request
    assert "redirect to 'https://***@elsewhere.test/steal' not followed" in str(caught.value)
    for text in (str(caught.value), repr(caught.value)):
        assert "l-secret" not in text
        assert "k-secret" not in text


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("/elsewhere", "/elsewhere"),
        ("http://u:l-secret@[::1]:8080/x", "http://***@[::1]:8080/x"),
        ("http://u:l-secret@host:99999/x", "<malformed URL>"),
    ],
)
async def test_the_redirect_location_is_shown_redacted(location: str, shown: str) -> None:
    script = Script(reply(status=307, headers={"location": location}))
    async with make_client(script) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert f"(redirect to {shown!r} not followed)" in caught.value.reason
    assert "l-secret" not in str(caught.value)


async def test_a_redirect_without_a_location_is_a_plain_status_error() -> None:
    async with make_client(Script(reply(status=302))) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.reason == "Found"
    assert "not followed" not in str(caught.value)


# Retries.


async def test_5xx_is_retried_then_succeeds() -> None:
    script = Script(reply(status=500), reply(status=502), reply("fine"))
    async with make_client(script) as client, client.stream(HELLO) as chunks:
        assert [t async for t in chunks] == ["fine"]
        assert chunks.attempts == 3
    assert script.call_count == 3


async def test_retries_are_bounded() -> None:
    script = Script(*[reply(status=500)] * 5)
    async with make_client(script) as client:
        with pytest.raises(ServerError):
            await client.complete(HELLO)
    assert script.call_count == 3  # the first attempt and two retries


async def test_client_errors_are_not_retried() -> None:
    script = Script(reply(status=404), reply("never"))
    async with make_client(script) as client:
        with pytest.raises(APIStatusError):
            await client.complete(HELLO)
    assert script.call_count == 1


async def test_connection_errors_are_retried() -> None:
    script = Script(ConnectionRefusedError("refused"), reply("ok"))
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "ok"
    assert script.call_count == 2


async def test_connection_error_after_retries_is_translated() -> None:
    script = Script(*[ConnectionRefusedError("refused")] * 3)
    async with make_client(script) as client:
        with pytest.raises(APIConnectionError, match="could not connect") as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIConnectionError
    assert isinstance(caught.value.__cause__, ConnectError)
    assert isinstance(caught.value.__cause__.__cause__, ConnectionRefusedError)
    assert script.call_count == 3


async def test_retry_after_is_honoured() -> None:
    script = Script(reply(status=429, headers={"Retry-After": "0.2"}), reply("after the wait"))
    async with make_client(script) as client:
        started = anyio.current_time()
        assert await client.complete(HELLO) == "after the wait"
        assert anyio.current_time() - started >= 0.2
    assert script.call_count == 2


async def test_retry_after_past_the_cap_is_raised_not_slept() -> None:
    script = Script(reply(status=429, headers={"Retry-After": "3600"}), reply("no"))
    async with make_client(script) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(HELLO)
    assert caught.value.retry_after == 3600
    assert "retry after 3600 s" in str(caught.value)
    assert script.call_count == 1


async def test_stream_never_retries_once_text_reached_the_caller() -> None:
    script = Script(reply("Hel", ConnectionResetError("reset")), reply("Hello"))
    seen: list[str] = []

    async def consume(chunks: ChatStream) -> None:
        async for text in chunks:
            seen.append(text)

    client, transport = client_on(script)
    async with client, client.stream(HELLO) as chunks:
        with pytest.raises(IncompleteStreamError) as caught:
            await consume(chunks)
    assert seen == ["Hel"]
    assert caught.value.partial_text == "Hel"
    assert chunks.text == "Hel"
    cause = caught.value.__cause__
    assert isinstance(cause, APIConnectionError)
    assert "broke: reset" in str(cause)
    assert isinstance(cause.__cause__, NetworkError)
    assert script.call_count == 1
    assert transport.open_responses == 0


async def test_complete_retries_a_reply_cut_midway() -> None:
    script = Script(reply("Hel", ConnectionResetError("reset")), reply("Hello"))
    async with make_client(script) as client:
        assert await client.complete(HELLO) == "Hello"
    assert script.call_count == 2


async def test_complete_keeps_partial_text_when_retries_run_out() -> None:
    script = Script(reply("Hel", ConnectionResetError("reset")))
    async with make_client(script, max_retries=0) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            await client.complete(HELLO)
    assert caught.value.partial_text == "Hel"


# Limits and timeouts.


async def test_max_response_bytes() -> None:
    async with make_client(Script(reply("abcd", "efgh", "ijkl")), max_response_bytes=10) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.complete(HELLO)
    assert caught.value.partial_text == "abcdefgh"
    assert caught.value.limit == 10


async def test_response_too_large_while_streaming() -> None:
    client, transport = client_on(Script(reply("abcd", "efgh", "ijkl")), max_response_bytes=10)
    async with client, client.stream(HELLO) as chunks:
        with pytest.raises(ResponseTooLargeError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == chunks.text == "abcdefgh"
    assert caught.value.__cause__ is None
    assert transport.open_responses == 0


async def test_first_chunk_timeout_is_retried_then_raised() -> None:
    script = Script(*[reply(Pause(30), "late")] * 3)
    async with make_client(script, timeout=Timeouts(first_chunk=0.05)) as client:
        with pytest.raises(APITimeoutError, match=r"first-chunk timeout: no text within 0\.05 s"):
            await client.complete(HELLO)
    assert script.call_count == 3


async def test_total_timeout_mid_reply_keeps_the_text() -> None:
    client, transport = client_on(
        Script(reply("early ", Pause(30), "late")), timeout=Timeouts(total=0.5)
    )
    async with client, client.stream(HELLO) as chunks:
        with pytest.raises(IncompleteStreamError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == "early "
    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert "total timeout: the reply did not finish within 0.5 s" in str(caught.value)
    assert transport.open_responses == 0


async def test_total_timeout_before_any_text_is_not_retried() -> None:
    script = Script(reply(Pause(30), "late"), reply("never"))
    async with make_client(script, timeout=Timeouts(total=0.3)) as client:
        with pytest.raises(APITimeoutError, match="total timeout"):
            await client.complete(HELLO)
    assert script.call_count == 1  # no time is left for another attempt


async def test_read_timeout_is_translated() -> None:
    script = Script(*[reply(Pause(30), "late")] * 3)
    async with make_client(script, timeout=Timeouts(read=0.1)) as client:
        with pytest.raises(APITimeoutError, match="read timeout") as caught:
            await client.complete(HELLO)
    assert isinstance(caught.value.__cause__, ReadTimeout)
    assert script.call_count == 3  # a timeout before the first text is retried


async def test_a_response_head_slower_than_the_read_timeout_is_a_read_timeout() -> None:
    calls = 0

    async def handler(request: Request) -> MockResponse:
        nonlocal calls
        calls += 1
        await anyio.sleep(30)
        return reply("never")  # pragma: no cover

    client = AuraClient(
        BASE_URL,
        transport=MockTransport(handler),
        timeout=Timeouts(read=0.1),
        max_retries=FAST_RETRIES,
    )
    async with client:
        with pytest.raises(APITimeoutError, match="read timeout") as caught:
            await client.complete(HELLO)
    assert isinstance(caught.value.__cause__, ReadTimeout)
    assert calls == 3


# The transport seam: every neutral error becomes one public error, in one place.


class Failing:
    """A transport whose every request fails with ``error``."""

    def __init__(self, error: TransportError) -> None:
        self.error = error
        self.sent = 0

    async def send(self, request: Request) -> Response:
        self.sent += 1
        raise self.error

    async def aclose(self) -> None:
        pass  # pragma: no cover (a borrowed transport is never closed)


@pytest.mark.parametrize(
    ("error", "public", "message", "attempts"),
    [
        (ConnectError("refused"), APIConnectionError, f"could not connect to {URL}: refused", 3),
        (ConnectError(), APIConnectionError, f"could not connect to {URL}: ConnectError", 3),
        (
            CertificateError("self-signed"),
            APIConnectionError,
            f"TLS certificate verification failed for {URL}: self-signed",
            1,
        ),
        (ProxyError("down"), APIConnectionError, "the proxy failed: down", 3),
        (
            ProxyError("407", refused=True),
            APIConnectionError,
            "the proxy failed: 407; check the proxy's user name and password",
            1,
        ),
        (NetworkError("reset"), APIConnectionError, f"the connection to {URL} broke: reset", 3),
        (ProtocolError("bad head"), APIConnectionError, "broke: bad head", 3),
        (
            ConnectTimeout("slow"),
            APITimeoutError,
            f"connect timeout: could not connect to {URL} ",
            3,
        ),
        (ReadTimeout("quiet"), APITimeoutError, "read timeout: the server sent nothing", 3),
        (WriteTimeout("stuck"), APITimeoutError, f"write timeout: sending the request to {URL}", 3),
        (PoolTimeout("busy"), APITimeoutError, "pool timeout: busy (raise max_connections", 3),
        (TransportTimeout("odd"), APITimeoutError, f"timeout talking to {URL} (odd)", 3),
    ],
)
async def test_transport_errors_become_public_errors(
    error: TransportError, public: type[APIError], message: str, attempts: int
) -> None:
    transport = Failing(error)
    async with AuraClient(BASE_URL, transport=transport, max_retries=FAST_RETRIES) as client:
        with pytest.raises(APIError) as caught:
            await client.complete(HELLO)
    assert type(caught.value) is public
    assert message in str(caught.value)
    assert caught.value.__cause__ is error
    assert transport.sent == attempts


async def test_a_closed_transport_is_a_runtime_error_when_entering() -> None:
    script = Script(reply("never"))
    transport = MockTransport(script)
    await transport.aclose()
    client = AuraClient(BASE_URL, transport=transport, max_retries=FAST_RETRIES)
    stream = client.stream(HELLO)  # made without I/O
    with pytest.raises(RuntimeError, match="the transport is closed") as caught:
        async with stream:
            pass  # pragma: no cover (entering fails)
    assert isinstance(caught.value.__cause__, TransportClosed)
    with pytest.raises(RuntimeError, match="the transport is closed"):
        await client.complete(HELLO)
    assert not script.called


async def test_a_transport_is_borrowed_and_never_closed() -> None:
    script = Script(reply("one"), reply("two"))
    transport = MockTransport(script)
    async with AuraClient(BASE_URL, transport=transport) as first:
        assert await first.complete(HELLO) == "one"
    async with AuraClient(BASE_URL, transport=transport) as second:
        assert await second.complete(HELLO) == "two"
    assert script.call_count == 2
    assert transport.open_responses == 0
    with pytest.raises(RuntimeError, match="this AuraClient is closed"):
        first.stream(HELLO)


async def test_a_closed_client_refuses_requests_before_any_io() -> None:
    script = Script(reply("never"))
    client = make_client(script)
    await client.aclose()
    await client.aclose()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="this AuraClient is closed; create a new one"):
        client.stream(HELLO)
    with pytest.raises(RuntimeError, match="this AuraClient is closed; create a new one"):
        await client.complete(HELLO)
    with pytest.raises(RuntimeError, match="this AuraClient is closed; create a new one"):
        await client.gather(["x"])
    assert not script.called


async def test_a_transport_and_an_http_client_are_not_both_accepted() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidRequestError, match="pass transport or http_client, not both"):
            AuraClient(transport=MockTransport(Script()), http_client=http)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"proxy": "http://user:p-secret@127.0.0.1:3128"},
            "proxy cannot be combined with transport; configure it on the transport you pass in",
        ),
        ({"verify": False}, "verify cannot be combined with transport"),
        ({"verify": ssl.create_default_context()}, "verify cannot be combined with transport"),
    ],
)
def test_a_transport_brings_its_own_proxy_and_verify(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AuraClient(transport=MockTransport(Script()), **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "p-secret" not in str(caught.value)


@pytest.mark.parametrize("wire", ["grpc", "", "AURA", "openai ", None, 1])
def test_an_unknown_wire_is_refused_naming_both(wire: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AuraClient(wire=wire)  # type: ignore[arg-type]
    assert str(caught.value) == f"wire must be one of 'aura', 'openai', got {wire!r}"


async def test_max_connections_limits_the_requests_in_flight() -> None:
    in_flight = most = 0
    release = anyio.Event()

    async def handler(request: Request) -> MockResponse:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return reply("ok")

    transport = MockTransport(handler)
    texts: list[str] = []

    async def ask(client: AuraClient) -> None:
        texts.append(await client.complete(HELLO))

    async with AuraClient(BASE_URL, transport=transport, max_connections=2) as client:
        async with anyio.create_task_group() as task_group:
            for _ in range(5):
                task_group.start_soon(ask, client)
            # Every request got as far as it can before any reply is released.
            await anyio.wait_all_tasks_blocked()
            assert in_flight == 2
            release.set()
    assert texts == ["ok"] * 5
    assert most == 2
    assert transport.open_responses == 0


async def test_a_pool_timeout_when_every_connection_stays_busy() -> None:
    busy = anyio.Event()
    release = anyio.Event()
    calls = 0

    async def handler(request: Request) -> MockResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            busy.set()
            await release.wait()
        return reply("ok")

    client = AuraClient(
        BASE_URL,
        transport=MockTransport(handler),
        max_connections=1,
        # The only connection stays busy until the test releases it, so the wait can only
        # end with the timeout: a short one is safe.
        timeout=Timeouts(connect=0.2),
        max_retries=0,
    )
    texts: list[str] = []

    async def hold_the_connection() -> None:
        texts.append(await client.complete(HELLO))

    async with client:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(hold_the_connection)
            await busy.wait()
            with pytest.raises(APITimeoutError) as caught:
                await client.complete(HELLO)
            release.set()
        assert texts == ["ok"]
        assert calls == 1  # the second request never reached the transport
        # Its wait left no slot taken: the next request goes through.
        with anyio.fail_after(5):
            assert await client.complete(HELLO) == "ok"
    assert str(caught.value).startswith("pool timeout: every connection stayed busy for 0.2 s")
    assert isinstance(caught.value.__cause__, PoolTimeout)


# Environment proxies, read when the client is made.


def dead_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``monkeypatch``, with no proxy variable left from the machine's environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.network
async def test_an_environment_proxy_is_used(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    async with ReferenceServer() as server:
        async with AuraClient(server.base_url, max_retries=0) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.complete(HELLO)
        assert server.accepted_connections == 0  # nothing went to the server directly
    assert type(caught.value) is APIConnectionError
    assert "connect" in str(caught.value)
    assert "proxy" in str(caught.value)


@pytest.mark.network
async def test_no_proxy_bypasses_the_environment_proxy(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    environment.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, max_retries=0) as client,
    ):
        assert await client.complete(HELLO) == default_reply(server.requests[-1])
    assert server.accepted_connections == 1


@pytest.mark.network
async def test_an_environment_socks_proxy_is_used(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ALL_PROXY", f"socks5://127.0.0.1:{dead_port()}")
    async with ReferenceServer() as server:
        async with AuraClient(server.base_url, max_retries=0) as client:
            with pytest.raises(APIConnectionError, match="proxy"):
                await client.complete(HELLO)
        assert server.accepted_connections == 0


def test_an_environment_socks_proxy_needs_socksio(environment: pytest.MonkeyPatch) -> None:
    # Imported first, with socksio: the adapter reads which socksio errors exist on import.
    importlib.import_module("aura_anyio._transports.httpx")
    environment.setitem(sys.modules, "socksio", None)
    environment.setenv("all_proxy", "socks5://user:p-secret@127.0.0.1:1080")
    with pytest.raises(InvalidRequestError) as caught:
        AuraClient("http://127.0.0.1:9")
    assert "proxy 'socks5://***@127.0.0.1:1080' needs the socks extra" in str(caught.value)
    assert "pip install 'aura_anyio[socks]'" in str(caught.value)
    assert "p-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "proxy", ["gopher://x:1", "socks4://h:1", "http://[::1", "http://u:p-secret@h:99999"]
)
def test_an_unusable_environment_proxy_is_refused(
    environment: pytest.MonkeyPatch, proxy: str
) -> None:
    environment.setenv("ALL_PROXY", proxy)
    with pytest.raises(InvalidRequestError, match="the proxy from the environment") as caught:
        AuraClient("http://127.0.0.1:9")
    assert "p-secret" not in str(caught.value)


CHAT = "https://chat.test/api/chat"


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        (CHAT, {}, None),
        (CHAT, {"https_proxy": "http://lower:1"}, "http://lower:1"),
        (CHAT, {"HTTPS_PROXY": "http://upper:1"}, "http://upper:1"),
        (
            CHAT,
            {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1"},
            "http://lower:1",
        ),
        (CHAT, {"http_proxy": "http://plain:1"}, None),  # the scheme's own variable
        ("http://chat.test/", {"http_proxy": "http://plain:1"}, "http://plain:1"),
        (CHAT, {"all_proxy": "socks5://all:1"}, "socks5://all:1"),
        (CHAT, {"ALL_PROXY": "socks5://all:1"}, "socks5://all:1"),
        (CHAT, {"https_proxy": "http://mine:1", "all_proxy": "http://all:1"}, "http://mine:1"),
        (CHAT, {"https_proxy": "  ", "all_proxy": "http://all:1"}, "http://all:1"),
        (CHAT, {"https_proxy": " proxy.local:3128 "}, "http://proxy.local:3128"),
        (CHAT, {"https_proxy": "http://p:1", "no_proxy": "*"}, None),
        (CHAT, {"https_proxy": "http://p:1", "NO_PROXY": "other.test, chat.test"}, None),
        (CHAT, {"https_proxy": "http://p:1", "no_proxy": "CHAT.TEST"}, None),
        (CHAT, {"https_proxy": "http://p:1", "no_proxy": "other.test"}, "http://p:1"),
        (CHAT, {"https_proxy": "http://p:1", "no_proxy": ",, ,"}, "http://p:1"),
        (CHAT, {"https_proxy": "http://p:1", "no_proxy": "chat.test:443"}, None),
        ("https://api.chat.test/", {"https_proxy": "http://p:1", "no_proxy": "chat.test"}, None),
        ("https://api.chat.test/", {"https_proxy": "http://p:1", "no_proxy": ".chat.test"}, None),
        (
            "https://badchat.test/",
            {"https_proxy": "http://p:1", "no_proxy": "chat.test"},
            "http://p:1",
        ),
        ("http://[::1]:8080/", {"http_proxy": "http://p:1", "no_proxy": "[::1]"}, None),
        ("http://[::1]:8080/", {"http_proxy": "http://p:1", "no_proxy": "[::1]:8080"}, None),
        ("http://[::1]:8080/", {"http_proxy": "http://p:1", "no_proxy": "::1"}, None),
        ("http://[::2]:8080/", {"http_proxy": "http://p:1", "no_proxy": "[::1]"}, "http://p:1"),
    ],
)
def test_environment_proxy(url: str, environ: dict[str, str], expected: str | None) -> None:
    assert environment_proxy(url, environ) == expected


# Input, options and misuse.


async def test_invalid_input_never_reaches_the_network() -> None:
    script = Script(reply("never"))
    async with make_client(script) as client:
        with pytest.raises(InvalidRequestError, match="temperature"):
            client.stream(HELLO, temperature=3)
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.role"):
            await client.complete([{"role": "robot", "content": "x"}])
        with pytest.raises(InvalidRequestError, match="max_tokens"):
            await client.complete(HELLO, max_tokens=100)
    assert not script.called


async def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(*[reply("Error", status=500, reason="upstream failed")] * 3)
    client = make_client(
        script,
        key="k-secret",
        cookies={"sid": "c-secret"},
        max_retries=RetryPolicy(max_retries=2, initial_delay=0.001),
    )
    async with client:
        with pytest.raises(ServerError) as caught:
            await client.complete(HELLO)
    texts = [repr(client), str(caught.value), repr(caught.value), caplog.text]
    assert "retrying POST" in caplog.text
    for text in texts:
        assert "k-secret" not in text
        assert "c-secret" not in text


@pytest.mark.parametrize(
    "failure",
    [reply("Error", status=400), ConnectionRefusedError("refused")],
    ids=["status", "connect"],
)
async def test_tracebacks_with_locals_hide_the_key_and_cookies(
    failure: MockResponse | Exception,
) -> None:
    script = Script(failure)
    async with make_client(
        script, key="k-secret", cookies={"sid": "c-secret"}, max_retries=0
    ) as client:
        with pytest.raises(APIError) as caught:
            await client.complete(HELLO)
    rendered = "".join(
        traceback.TracebackException.from_exception(caught.value, capture_locals=True).format()
    )
    assert "Exchange(" in rendered  # the request's everything is among the locals shown
    assert "k-secret" not in rendered
    assert "c-secret" not in rendered


def test_proxy_credentials_never_show() -> None:
    client = AuraClient(proxy="http://user:p-secret@127.0.0.1:3128")
    assert "p-secret" not in repr(client)
    assert "***@127.0.0.1:3128" in repr(client)


def test_the_repr_names_what_differs_from_the_defaults() -> None:
    assert repr(AuraClient()) == "AuraClient(base_url='https://openchat.team')"
    shown = repr(AuraClient("https://x.test/", key="k", verify=False, wire="openai"))
    assert shown == (
        "AuraClient(base_url='https://x.test', key=<hidden>, verify=False, wire='openai')"
    )


def test_the_client_reports_its_settings() -> None:
    policy = RetryPolicy(max_retries=1)
    timeouts = Timeouts(read=5)
    client = AuraClient("https://x.test/", timeout=timeouts, max_retries=policy)
    assert (client.base_url, client.timeouts, client.retry_policy) == (
        "https://x.test",
        timeouts,
        policy,
    )
    assert AuraClient(max_retries=4).retry_policy.max_retries == 4


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "https://u:p@x"}, "credentials"),
        ({"base_url": "https://x/?a=1"}, "query"),
        ({"base_url": 3}, "base_url must be a str"),
        ({"key": 3}, "key"),
        ({"timeout": 5}, "Timeouts"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"max_connections": 0}, "max_connections must be an int >= 1"),
        ({"proxy": "gopher://x"}, "proxy"),
        ({"proxy": 3128}, "proxy must be a URL str"),
        ({"verify": "yes"}, "verify must be a bool or an ssl.SSLContext"),
        ({"headers": {"a": 1}}, "headers"),
        ({"headers": ["a"]}, "headers must be a mapping"),
        ({"cookies": ["a"]}, "cookies"),
    ],
)
def test_invalid_client_arguments(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        AuraClient(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("read", 0), ("connect", -1.0), ("total", float("inf")), ("first_chunk", "1")],
)
def test_invalid_timeouts(field: str, value: object) -> None:
    with pytest.raises(InvalidRequestError, match=f"timeout.{field}"):
        Timeouts(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"headers": {"x-token": "v-secret\r\nInjected: 1"}}, "headers['x-token'] must be"),
        ({"headers": {"x-token": "v-secret é"}}, "headers['x-token'] must be"),
        ({"headers": {"bad name": "v-secret"}}, "invalid name 'bad name'"),
        ({"headers": {"Content-Length": "v-secret"}}, "headers['Content-Length'] is set by the"),
        ({"headers": {"host": "v-secret"}}, "headers['host'] is set by the client itself"),
        ({"cookies": {"sid": "v-secret; other=1"}}, "cookies['sid'] has characters"),
        ({"cookies": {"sid": "v-secret\r\n"}}, "cookies['sid'] has characters"),
        ({"base_url": "http://127.0.0.1:99999"}, "base_url is not a valid URL"),
        ({"base_url": "http://[::1"}, "base_url is not a valid URL"),
        ({"base_url": "http://h\tost"}, "base_url must not contain spaces or control"),
        ({"base_url": "http://host/a\nb"}, "base_url must not contain spaces or control"),
        ({"base_url": "http://a b.com"}, "base_url must not contain spaces or control"),
        ({"base_url": "http://host:0"}, "port must be from 1 to 65535"),
        ({"proxy": "http://u:v-secret@127.0.0.1:99999"}, "proxy is not a valid URL"),
    ],
)
def test_unsendable_options_are_rejected_without_echoing_secrets(
    kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        AuraClient(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    assert "v-secret" not in str(caught.value)


async def test_chat_stream_misuse_is_a_clear_error() -> None:
    async with make_client(Script(reply("ok"), reply("ok"))) as client:
        unopened = client.stream(HELLO)
        assert (unopened.text, unopened.attempts, unopened.status_code) == ("", 0, None)
        assert (unopened.finish_reason, unopened.usage) == (None, None)
        with pytest.raises(RuntimeError, match="inside its block"):
            await unopened.__anext__()
        async with client.stream(HELLO) as chunks:
            with pytest.raises(RuntimeError, match="entered only once"):
                await chunks.__aenter__()
        with pytest.raises(RuntimeError, match="block has ended"):
            await chunks.__anext__()
        assert chunks.text == "ok"
        assert repr(chunks) == f"<ChatStream POST {URL} attempts=1 chars=2>"


class FailingClose:
    """A body whose closing fails, as a broken connection's may."""

    def __aiter__(self) -> FailingClose:
        return self

    async def __anext__(self) -> bytes:
        return b"more "

    async def aclose(self) -> None:
        raise RuntimeError("closing failed")


async def test_a_failing_close_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> MockResponse:
        return MockResponse(chunks=FailingClose())

    async with AuraClient(BASE_URL, transport=MockTransport(handler)) as client:
        async with client.stream(HELLO) as chunks:
            assert await chunks.__anext__() == "more "
    assert f"error while closing a response to POST {URL}" in caplog.text
    assert "closing failed" in caplog.text
