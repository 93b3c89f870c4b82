"""AuraClient against respx: status mapping, retries, timeouts, limits and secrets."""

from __future__ import annotations

import gzip
import json
import logging

import anyio
import httpx
import pytest
import respx

from aura_anyio import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    ChatStream,
    IncompleteStreamError,
    InvalidRequestError,
    RateLimitError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    Timeouts,
)

from .helpers import URL, Pause, drain, make_client, reply, route

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, using=None)


async def test_streams_text_and_sends_the_wire_body(router: respx.MockRouter) -> None:
    calls = route(router, reply("Hel", "lo ", "wörld"))
    async with make_client(router, key="k-secret", cookies={"sid": "c-secret"}) as client:
        async with client.stream(
            [{"role": "system", "content": "sys"}, *HELLO], temperature=0.2
        ) as chunks:
            pieces = [text async for text in chunks]
        assert pieces == ["Hel", "lo ", "wörld"]
        assert chunks.text == "Hello wörld"
        assert chunks.attempts == 1
    request = calls.calls.last.request
    assert json.loads(request.content) == {
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


async def test_complete_joins_the_reply(router: respx.MockRouter) -> None:
    route(router, reply("a", "b", "c"))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "abc"


async def test_multibyte_characters_split_across_chunks_survive(router: respx.MockRouter) -> None:
    raw = "naïve 😀 €".encode()
    route(router, reply(*[raw[i : i + 1] for i in range(len(raw))]))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "naïve 😀 €"


async def test_invalid_bytes_are_replaced(router: respx.MockRouter) -> None:
    route(router, reply(b"ok \xff\xfe done"))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "ok \ufffd\ufffd done"


@pytest.mark.parametrize(
    ("status", "reason", "error_type"),
    [
        (400, "Bad Request", APIStatusError),
        (401, "Unauthorized", APIStatusError),
        (429, "Too Many Requests", RateLimitError),
        (500, "Rate limit reached for openchat", ServerError),
        (503, "Service Unavailable", ServerError),
    ],
)
async def test_status_mapping(
    router: respx.MockRouter, status: int, reason: str, error_type: type[APIStatusError]
) -> None:
    route(router, *[reply("Error", status=status, reason=reason)] * 3)
    async with make_client(router) as client:
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


async def test_error_body_is_read_only_up_to_its_bound(router: respx.MockRouter) -> None:
    route(router, reply(*[b"x" * 1024] * 1000, status=400))
    async with make_client(router) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert len(caught.value.body) == 8192
    assert len(str(caught.value)) < 600


async def test_5xx_is_retried_then_succeeds(router: respx.MockRouter) -> None:
    calls = route(router, reply(status=500), reply(status=502), reply("fine"))
    async with make_client(router) as client, client.stream(HELLO) as chunks:
        assert [t async for t in chunks] == ["fine"]
        assert chunks.attempts == 3
    assert calls.call_count == 3


async def test_retries_are_bounded(router: respx.MockRouter) -> None:
    calls = route(router, *[reply(status=500)] * 5)
    async with make_client(router) as client:
        with pytest.raises(ServerError):
            await client.complete(HELLO)
    assert calls.call_count == 3  # the first attempt and two retries


async def test_client_errors_are_not_retried(router: respx.MockRouter) -> None:
    calls = route(router, reply(status=404), reply("never"))
    async with make_client(router) as client:
        with pytest.raises(APIStatusError):
            await client.complete(HELLO)
    assert calls.call_count == 1


async def test_connection_errors_are_retried(router: respx.MockRouter) -> None:
    calls = route(router, httpx.ConnectError("refused"), reply("ok"))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "ok"
    assert calls.call_count == 2


async def test_connection_error_after_retries_is_translated(router: respx.MockRouter) -> None:
    route(router, *[httpx.ConnectError("refused")] * 3)
    async with make_client(router) as client:
        with pytest.raises(APIConnectionError, match="could not connect") as caught:
            await client.complete(HELLO)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_retry_after_is_honoured(router: respx.MockRouter) -> None:
    calls = route(
        router, reply(status=429, headers={"Retry-After": "0.2"}), reply("after the wait")
    )
    async with make_client(router) as client:
        started = anyio.current_time()
        assert await client.complete(HELLO) == "after the wait"
        assert anyio.current_time() - started >= 0.2
    assert calls.call_count == 2


async def test_retry_after_past_the_cap_is_raised_not_slept(router: respx.MockRouter) -> None:
    calls = route(router, reply(status=429, headers={"Retry-After": "3600"}), reply("no"))
    async with make_client(router) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(HELLO)
    assert caught.value.retry_after == 3600
    assert "retry after 3600 s" in str(caught.value)
    assert calls.call_count == 1


async def test_stream_never_retries_once_text_reached_the_caller(
    router: respx.MockRouter,
) -> None:
    calls = route(router, reply("Hel", httpx.ReadError("reset")), reply("Hello"))
    seen: list[str] = []

    async def consume(chunks: ChatStream) -> None:
        async for text in chunks:
            seen.append(text)

    async with make_client(router) as client, client.stream(HELLO) as chunks:
        with pytest.raises(IncompleteStreamError) as caught:
            await consume(chunks)
    assert seen == ["Hel"]
    assert caught.value.partial_text == "Hel"
    assert chunks.text == "Hel"
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert calls.call_count == 1


async def test_complete_retries_a_reply_cut_midway(router: respx.MockRouter) -> None:
    calls = route(router, reply("Hel", httpx.ReadError("reset")), reply("Hello"))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "Hello"
    assert calls.call_count == 2


async def test_complete_keeps_partial_text_when_retries_run_out(router: respx.MockRouter) -> None:
    route(router, reply("Hel", httpx.ReadError("reset")))
    async with make_client(router, max_retries=0) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            await client.complete(HELLO)
    assert caught.value.partial_text == "Hel"


async def test_max_response_bytes(router: respx.MockRouter) -> None:
    route(router, reply("abcd", "efgh", "ijkl"))
    async with make_client(router, max_response_bytes=10) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.complete(HELLO)
    assert caught.value.partial_text == "abcdefgh"
    assert caught.value.limit == 10


async def test_first_chunk_timeout_is_retried_then_raised(router: respx.MockRouter) -> None:
    calls = route(router, *[reply(Pause(5), "late")] * 3)
    async with make_client(router, timeout=Timeouts(first_chunk=0.05)) as client:
        with pytest.raises(APITimeoutError, match="first-chunk timeout"):
            await client.complete(HELLO)
    assert calls.call_count == 3


async def test_total_timeout_mid_reply_keeps_the_text(router: respx.MockRouter) -> None:
    route(router, reply("early ", Pause(5), "late"))
    client = make_client(router, timeout=Timeouts(total=0.2))
    async with client, client.stream(HELLO) as chunks:
        with pytest.raises(IncompleteStreamError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == "early "
    assert isinstance(caught.value.__cause__, APITimeoutError)


async def test_read_timeout_is_translated(router: respx.MockRouter) -> None:
    route(router, *[httpx.ReadTimeout("silent")] * 3)
    async with make_client(router) as client:
        with pytest.raises(APITimeoutError, match="read timeout"):
            await client.complete(HELLO)


async def test_redirects_are_not_followed(router: respx.MockRouter) -> None:
    route(router, reply(status=302, headers={"Location": "https://elsewhere.test/steal"}))
    elsewhere = router.route(host="elsewhere.test").mock(return_value=reply("stolen"))
    async with make_client(router, key="k-secret") as client:
        with pytest.raises(APIStatusError, match="not followed") as caught:
            await client.complete(HELLO)
    assert caught.value.status_code == 302
    assert not elsewhere.called


async def test_invalid_input_never_reaches_the_network(router: respx.MockRouter) -> None:
    calls = route(router, reply("never"))
    async with make_client(router) as client:
        with pytest.raises(InvalidRequestError, match="temperature"):
            client.stream(HELLO, temperature=3)
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.role"):
            await client.complete([{"role": "robot", "content": "x"}])
        with pytest.raises(InvalidRequestError, match="max_tokens"):
            await client.complete(HELLO, max_tokens=100)
    assert not calls.called


async def test_secrets_never_show(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    route(router, *[reply("Error", status=500, reason="upstream failed")] * 3)
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    client = AuraClient(
        "https://chat.test",
        key="k-secret",
        cookies={"sid": "c-secret"},
        http_client=http,
        max_retries=RetryPolicy(max_retries=2, initial_delay=0.001),
    )
    async with http, client:
        with pytest.raises(ServerError) as caught:
            await client.complete(HELLO)
    texts = [repr(client), str(caught.value), repr(caught.value), caplog.text]
    assert "retrying POST" in caplog.text
    for text in texts:
        assert "k-secret" not in text
        assert "c-secret" not in text


def test_proxy_credentials_never_show() -> None:
    client = AuraClient(proxy="http://user:p-secret@127.0.0.1:3128")
    assert "p-secret" not in repr(client)
    assert "***@127.0.0.1:3128" in repr(client)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "https://u:p@x"}, "credentials"),
        ({"base_url": "https://x/?a=1"}, "query"),
        ({"key": 3}, "key"),
        ({"timeout": 5}, "Timeouts"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"proxy": "gopher://x"}, "proxy"),
        ({"headers": {"a": 1}}, "headers"),
        ({"cookies": ["a"]}, "cookies"),
        ({"proxy": "http://p:1", "http_client": httpx.AsyncClient()}, "http_client"),
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


async def test_a_borrowed_client_is_not_closed(router: respx.MockRouter) -> None:
    route(router, reply("ok"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    async with http:
        async with AuraClient("https://chat.test", http_client=http) as client:
            assert await client.complete(HELLO) == "ok"
        assert not http.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        client.stream(HELLO)


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


async def test_headers_merge_case_insensitively(router: respx.MockRouter) -> None:
    calls = route(router, reply("ok"))
    client = make_client(
        router,
        headers={"User-Agent": "mine/1.0", "Cookie": "a=1"},
        cookies={"b": "2"},
    )
    assert "cookies=<hidden>" in repr(client)
    async with client:
        await client.complete(HELLO)
    request = calls.calls.last.request
    assert request.headers.get_list("user-agent") == ["mine/1.0"]
    assert request.headers.get_list("cookie") == ["a=1; b=2"]


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "hex", "no-such"])
async def test_a_hostile_charset_falls_back_to_utf8(router: respx.MockRouter, charset: str) -> None:
    route(router, reply("héllo", headers={"content-type": f"text/plain; charset={charset}"}))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "héllo"


async def test_a_declared_charset_is_honoured(router: respx.MockRouter) -> None:
    route(
        router,
        reply("héllo".encode("latin-1"), headers={"content-type": "text/plain; charset=latin-1"}),
    )
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "héllo"


async def test_response_too_large_while_streaming(router: respx.MockRouter) -> None:
    route(router, reply("abcd", "efgh", "ijkl"))
    async with make_client(router, max_response_bytes=10) as client, client.stream(HELLO) as chunks:
        with pytest.raises(ResponseTooLargeError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == chunks.text == "abcdefgh"
    assert caught.value.__cause__ is None


async def test_chat_stream_misuse_is_a_clear_error(router: respx.MockRouter) -> None:
    route(router, reply("ok"), reply("ok"))
    async with make_client(router) as client:
        unopened = client.stream(HELLO)
        with pytest.raises(RuntimeError, match="inside its block"):
            await unopened.__anext__()
        async with client.stream(HELLO) as chunks:
            with pytest.raises(RuntimeError, match="entered only once"):
                await chunks.__aenter__()
        with pytest.raises(RuntimeError, match="block has ended"):
            await chunks.__anext__()
        assert chunks.text == "ok"


def test_the_exchange_repr_hides_the_key_and_cookies() -> None:
    client = AuraClient(key="k-secret", cookies={"sid": "c-secret"})
    exchange = client._exchange(HELLO, model="openchat_3.6", temperature=0.5, max_tokens=8192)
    assert "k-secret" not in repr(exchange)
    assert "c-secret" not in repr(exchange)


async def test_a_closed_borrowed_client_is_a_clear_error() -> None:
    http = httpx.AsyncClient()
    await http.aclose()
    client = AuraClient(http_client=http)
    with pytest.raises(RuntimeError, match="lent to this AuraClient is closed"):
        client.stream(HELLO)


async def test_a_content_encoded_reply_is_decoded(router: respx.MockRouter) -> None:
    body = gzip.compress("naïve ✓ reply".encode())
    route(router, reply(body[:7], body[7:], headers={"content-encoding": "gzip"}))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == "naïve ✓ reply"


async def test_a_latin1_reason_phrase_survives_and_a_long_one_is_bounded(
    router: respx.MockRouter,
) -> None:
    route(router, reply(status=400, reason="Limite de débit atteinte " + "x" * 5000))
    async with make_client(router) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.reason.startswith("Limite de débit atteinte")
    assert len(caught.value.reason) > 5000
    assert "400 Limite de débit atteinte xxx" in str(caught.value)
    assert len(str(caught.value)) < 800
