"""The httpx boundary: every httpx error becomes an AuraError, and odd URLs stay secret-free."""

from __future__ import annotations

import logging
import sys

import httpx
import pytest
import respx

from aura_anyio import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuraClient,
    InvalidRequestError,
)
from aura_anyio._exceptions import RequestInfo
from aura_anyio._http import _leaked_errors, translate_error
from aura_anyio._options import redact_url
from aura_anyio._transport import HttpxSender

from .helpers import ScriptedStream, make_client, reply, route

INFO = RequestInfo("POST", "https://chat.test/api/chat")
HELLO = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("exc", "error_type", "needle"),
    [
        (httpx.ConnectTimeout("t"), APITimeoutError, "connect timeout"),
        (httpx.ReadTimeout("t"), APITimeoutError, "read timeout"),
        (httpx.WriteTimeout("t"), APITimeoutError, "timeout talking to"),
        (httpx.PoolTimeout("t"), APITimeoutError, "pool timeout"),
        (httpx.ConnectError("refused"), APIConnectionError, "could not connect"),
        (httpx.ReadError("reset"), APIConnectionError, "broke"),
        (httpx.RemoteProtocolError("incomplete chunked read"), APIConnectionError, "broke"),
        (httpx.ProxyError("407"), APIConnectionError, "the proxy failed"),
        (httpx.ProxyError("Invalid username/password"), APIConnectionError, "user name"),
        (httpx.DecodingError("bad gzip"), APIConnectionError, "broke"),
        (httpx.LocalProtocolError("Illegal header value b'c-secret'"), APIError, "valid HTTP"),
        (httpx.TooManyRedirects("loop"), APIError, "HTTP error"),
    ],
)
def test_translate_error(exc: httpx.HTTPError, error_type: type[APIError], needle: str) -> None:
    error = translate_error(exc, INFO)
    assert type(error) is error_type
    assert needle in str(error)
    assert error.request is INFO
    assert "c-secret" not in str(error)


def test_a_socks_protocol_error_leaking_from_httpcore_is_translated() -> None:
    from socksio.exceptions import ProtocolError

    error = translate_error(ProtocolError("Malformed reply"), INFO)
    assert type(error) is APIConnectionError
    assert str(error) == "the SOCKS proxy handshake failed: Malformed reply"


async def test_a_leaked_socks_error_from_the_transport_becomes_ours() -> None:
    from socksio.exceptions import ProtocolError

    async with make_client(respx.MockRouter(using=None)) as client:
        sender = client._sender
        assert isinstance(sender, HttpxSender)  # respx lends the client an httpx client
        sender.http._transport = httpx.MockTransport(ProtocolErrorRaiser(ProtocolError("x")))
        with pytest.raises(APIConnectionError, match="SOCKS proxy handshake failed"):
            await client.complete(HELLO)


class ProtocolErrorRaiser:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __call__(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


def test_without_socksio_nothing_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio.exceptions", None)
    assert _leaked_errors() == ()


@pytest.mark.parametrize(
    ("message", "retryable"),
    [
        ("407 Proxy Authentication Required", False),
        ("Invalid username/password", False),
        ("Requested NO AUTHENTICATION REQUIRED from proxy server, but got ...", False),
        ("Proxy Server could not connect: 0x05", True),
        ("502 Bad Gateway", True),
    ],
)
def test_a_proxy_refusing_the_credentials_is_not_retried(message: str, retryable: bool) -> None:
    error = translate_error(httpx.ProxyError(message), INFO)
    assert isinstance(error, APIConnectionError)
    assert error.retryable is retryable


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
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"base_url": b"https://x"}, "base_url must be a str"), ({"proxy": 3128}, "proxy must be")],
)
def test_option_types(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        AuraClient(**kwargs)  # type: ignore[arg-type]


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, using=None)


async def test_an_error_body_that_breaks_still_gives_the_status_error(
    router: respx.MockRouter,
) -> None:
    route(router, reply("Err", httpx.ReadError("reset"), status=400, reason="Bad"))
    async with make_client(router) as client:
        with pytest.raises(APIError) as caught:
            await client.complete(HELLO)
    assert "400 Bad" in str(caught.value)


async def test_an_empty_reply_is_an_empty_string(router: respx.MockRouter) -> None:
    route(router, reply(), reply(b"", b""))
    async with make_client(router) as client:
        assert await client.complete(HELLO) == ""
        async with client.stream(HELLO) as chunks:
            assert [text async for text in chunks] == []
            assert chunks.status_code == 200
            assert "attempts=1" in repr(chunks)
        assert chunks.status_code == 200  # still known after the block


class FailingClose(ScriptedStream):
    async def aclose(self) -> None:
        raise RuntimeError("close failed")


async def test_a_failing_close_is_logged_not_raised(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aura_anyio")
    route(router, httpx.Response(200, stream=FailingClose([b"first ", b"second"])))
    async with make_client(router) as client, client.stream(HELLO) as chunks:
        assert await chunks.__anext__() == "first "
    assert "close failed" in caplog.text


async def test_the_api_key_alias_and_closing_twice(router: respx.MockRouter) -> None:
    client = make_client(router)
    await client.aclose()
    await client.aclose()
    assert client.base_url == "https://chat.test"
    assert client.timeouts.read == 60.0
    assert client.retry_policy.max_retries == 2


def test_a_socks_proxy_without_socksio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)
    with pytest.raises(InvalidRequestError, match=r"install 'aura_anyio\[socks\]'") as caught:
        AuraClient(proxy="socks5://user:p-secret@127.0.0.1:1080")
    assert "p-secret" not in str(caught.value)
